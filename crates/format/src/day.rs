//! Calendar days: the finest time the relay ever records.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::macros::format_description;

/// A UTC calendar day, written `YYYY-MM-DD`.
///
/// The relay stores and exports times at this resolution and no finer: an
/// exact receive time would let an observer who saw a source's traffic match
/// it to a submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(time::Date);

const FORMAT: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

impl Day {
    /// Today, in UTC.
    pub fn today() -> Self {
        Self(time::OffsetDateTime::now_utc().date())
    }

    /// The day for a calendar date; `None` if it does not exist.
    pub fn from_ymd(year: i32, month: u8, day: u8) -> Option<Self> {
        let month = time::Month::try_from(month).ok()?;
        time::Date::from_calendar_date(year, month, day)
            .ok()
            .map(Self)
    }
}

impl Day {
    /// Seconds from 1970-01-01T00:00:00Z to this day's midnight (UTC).
    pub fn unix_midnight(self) -> i64 {
        // 2440588 is the Julian day number of 1970-01-01.
        (i64::from(self.0.to_julian_day()) - 2_440_588) * 86_400
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Formatting a valid date with a fixed numeric description cannot
        // fail; fall back to Debug rather than panic all the same.
        match self.0.format(FORMAT) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{:?}", self.0),
        }
    }
}

impl FromStr for Day {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Spec: "days are written YYYY-MM-DD (ISO 8601 calendar date, UTC)".
        if s.len() != 10 {
            return Err(crate::Error::invalid(
                "day",
                format!("{s:?} is not YYYY-MM-DD"),
            ));
        }
        time::Date::parse(s, FORMAT)
            .map(Self)
            .map_err(|_| crate::Error::invalid("day", format!("{s:?} is not YYYY-MM-DD")))
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints() {
        let d: Day = "2026-11-28".parse().unwrap();
        assert_eq!(d.to_string(), "2026-11-28");
        assert_eq!(Day::from_ymd(2026, 11, 28), Some(d));
    }

    #[test]
    fn unix_midnight() {
        assert_eq!("1970-01-01".parse::<Day>().unwrap().unix_midnight(), 0);
        assert_eq!(
            "2026-11-28".parse::<Day>().unwrap().unix_midnight(),
            1_795_824_000
        );
        assert_eq!(
            "1969-12-31".parse::<Day>().unwrap().unix_midnight(),
            -86_400
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "2026-11-28T10:00",
            "2026-13-01",
            "2026-02-30",
            "26-11-28",
            "",
            "2026-1-1",
        ] {
            assert!(bad.parse::<Day>().is_err(), "{bad} accepted");
        }
    }

    proptest! {
        #[test]
        fn round_trip(y in 1970i32..2200, m in 1u8..=12, d in 1u8..=28) {
            let day = Day::from_ymd(y, m, d).unwrap();
            let back: Day = day.to_string().parse().unwrap();
            prop_assert_eq!(day, back);
        }
    }
}
