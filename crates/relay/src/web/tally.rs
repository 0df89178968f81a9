//! What went wrong with submissions, counted instead of logged one by one.
//!
//! journald stamps every line with the exact time. A line written when a
//! submission was refused, failed or got no codename dates that request, and
//! an exact time matched against an ISP's logs identifies a source who used
//! HTTPS rather than Tor (even a refused try: the source usually tries again
//! a minute later). So the submission paths never log: they count here, and
//! the counts are written as a few lines (one per reason) at most once a day
//! ([`REPORT_EVERY`], by `server::start`) and when the relay stops, then
//! start again from zero. A report says only how many, and why, since the
//! last one.
//!
//! The reasons are the errors' own messages, which name the failing step
//! (a quota, a full disk, a busy derivation) and never anything the source
//! sent. At most `MAX_REASONS` (16) distinct reasons are kept per kind; more
//! are counted as "other".

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// How often the counts are written while the relay runs.
pub const REPORT_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Distinct reasons kept per kind.
const MAX_REASONS: usize = 16;

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// Refused with 503 (a quota, a full disk): nothing stored.
    Refused,
    /// Failed with 500: nothing stored.
    Failed,
    /// Stored, but no codename could be given.
    NoCodename,
}

impl Kind {
    fn message(self) -> &'static str {
        match self {
            Kind::Refused => "submissions refused since the last report (nothing stored)",
            Kind::Failed => "submissions failed since the last report (nothing stored)",
            Kind::NoCodename => "submissions stored without a codename since the last report",
        }
    }
}

/// The counts since the last report.
#[derive(Debug, Default)]
pub struct Tally {
    counts: Mutex<BTreeMap<(Kind, String), u64>>,
}

impl Tally {
    /// Counts one event of `kind`, for this reason.
    pub(crate) fn count(&self, kind: Kind, reason: &dyn std::fmt::Display) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        let mut reason = reason.to_string();
        let kept = counts.keys().filter(|(k, _)| *k == kind).count();
        if kept >= MAX_REASONS && !counts.contains_key(&(kind, reason.clone())) {
            reason = "other".into();
        }
        *counts.entry((kind, reason)).or_insert(0) += 1;
    }

    /// Writes the counts (one line per kind and reason; nothing if there
    /// is nothing to say) and starts again from zero. `when` is "daily" or
    /// "at shutdown".
    pub fn report(&self, when: &'static str) {
        let taken = match self.counts.lock() {
            Ok(mut counts) => std::mem::take(&mut *counts),
            Err(_) => return,
        };
        for ((kind, reason), count) in taken {
            tracing::warn!(report = when, count, reason = %reason, "{}", kind.message());
        }
    }

    /// The counts since the last report (tests).
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        self.counts
            .lock()
            .map(|c| {
                c.iter()
                    .map(|((k, r), n)| (format!("{}: {r}", k.message()), *n))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Tally {
    /// The relay is stopping (the state goes last, once every request has
    /// finished): what was counted since the last report is written.
    fn drop(&mut self) {
        self.report("at shutdown");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_and_reason_then_starts_again() {
        let t = Tally::default();
        t.count(Kind::Refused, &"storage quota reached");
        t.count(Kind::Refused, &"storage quota reached");
        t.count(Kind::NoCodename, &"busy");
        let s = t.snapshot();
        assert_eq!(s.len(), 2);
        assert!(s.iter().any(|(r, n)| r.contains("quota") && *n == 2));
        t.report("daily");
        assert!(t.snapshot().is_empty());
    }

    #[test]
    fn reasons_are_bounded() {
        let t = Tally::default();
        for i in 0..100 {
            t.count(Kind::Failed, &format!("reason {i}"));
        }
        let s = t.snapshot();
        assert_eq!(s.len(), MAX_REASONS + 1);
        assert!(
            s.iter()
                .any(|(r, n)| r.ends_with(": other") && *n == 100 - MAX_REASONS as u64)
        );
    }
}
