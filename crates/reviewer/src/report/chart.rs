//! The dashboard's charts, computed: counts per ISO week and per answer,
//! and the geometry of their inline SVG bars.
//!
//! Only numbers and borrowed labels live here; the markup is in
//! `templates/report/`, where askama escapes every label.

use std::collections::BTreeMap;

use format::Day;

use super::Shown;

/// Weeks drawn one by one (empty weeks included) up to this span; a wider
/// span draws only the weeks that have submissions, so a hostile or damaged
/// received day (year 1 or 9999) cannot make a chart of half a million bars.
pub(super) const MAX_FILLED_WEEKS: i64 = 5 * 53;

/// Labels longer than this are cut in the SVG (the table and the bar's
/// `<title>` keep them whole).
const MAX_LABEL_CHARS: usize = 32;

// Horizontal bar chart geometry (SVG user units).
const H_LABEL_X: u32 = 232;
const H_BAR_X: u32 = 240;
const H_BAR_SPAN: u32 = 340;
const H_ROW: u32 = 24;
const H_BAR_HEIGHT: u32 = 16;
const H_WIDTH: u32 = 640;

// Week chart geometry.
const W_LEFT: u32 = 8;
const W_TOP: u32 = 20;
const W_PLOT_HEIGHT: u32 = 120;
const W_BOTTOM: u32 = 28;
const W_PLOT_WIDTH: u32 = 600;
const W_MIN_SLOT: u32 = 4;
const W_MAX_SLOT: u32 = 48;
/// Room a week label (`2024-W05`) needs below the axis.
const W_LABEL_ROOM: u32 = 64;

/// One horizontal bar: a label, its count, where it is drawn.
pub(super) struct HBar<'a> {
    /// The whole label (answer label, key, "not said" or a status).
    pub(super) label: Shown<'a>,
    /// The label as drawn in the SVG (at most [`MAX_LABEL_CHARS`]).
    pub(super) short: Shown<'a>,
    /// Whether `short` was cut (an ellipsis follows it).
    pub(super) cut: bool,
    /// How many submissions.
    pub(super) count: usize,
    /// Top of the bar.
    pub(super) y: u32,
    /// Baseline of the label and the number.
    pub(super) text_y: u32,
    /// Length of the bar.
    pub(super) width: u32,
    /// Where the number is written (just after the bar).
    pub(super) value_x: u32,
}

/// A horizontal bar chart (by category, region, status) and its table.
pub(super) struct HBarChart<'a> {
    /// Used in element ids: `chart-<id>`, `data-<id>`.
    pub(super) id: &'static str,
    /// The heading.
    pub(super) title: &'static str,
    /// The table's first column header.
    pub(super) column: &'static str,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) label_x: u32,
    pub(super) bar_x: u32,
    pub(super) bar_height: u32,
    pub(super) bars: Vec<HBar<'a>>,
}

/// Counts `labels`, most frequent first (ties by label), for a chart whose
/// order carries no meaning of its own.
pub(super) fn tally<'a>(labels: impl Iterator<Item = &'a str>) -> Vec<(&'a str, usize)> {
    let mut counts: BTreeMap<&'a str, usize> = BTreeMap::new();
    for l in labels {
        *counts.entry(l).or_default() += 1;
    }
    let mut out: Vec<(&'a str, usize)> = counts.into_iter().collect();
    // Stable sort on a label-ordered list: ties stay in label order.
    out.sort_by_key(|c| std::cmp::Reverse(c.1));
    out
}

/// Lays out a horizontal bar chart of `counts`, in the order given.
pub(super) fn hbars<'a>(
    id: &'static str,
    title: &'static str,
    column: &'static str,
    counts: Vec<(&'a str, usize)>,
) -> HBarChart<'a> {
    let max = counts.iter().map(|c| c.1).max().unwrap_or(0);
    let bars: Vec<HBar<'a>> = counts
        .into_iter()
        .enumerate()
        .map(|(i, (label, count))| {
            let row = u32::try_from(i).unwrap_or(u32::MAX).saturating_mul(H_ROW);
            let (short, cut) = cut_label(label);
            let width = scale(count, max, H_BAR_SPAN);
            HBar {
                label: Shown::line(label),
                short: Shown::line(short),
                cut,
                count,
                y: row.saturating_add((H_ROW - H_BAR_HEIGHT) / 2),
                text_y: row.saturating_add(H_ROW / 2 + 5),
                width,
                value_x: H_BAR_X + width + 6,
            }
        })
        .collect();
    let rows = u32::try_from(bars.len()).unwrap_or(u32::MAX);
    HBarChart {
        id,
        title,
        column,
        width: H_WIDTH,
        height: rows.saturating_mul(H_ROW).max(H_ROW),
        label_x: H_LABEL_X,
        bar_x: H_BAR_X,
        bar_height: H_BAR_HEIGHT,
        bars,
    }
}

/// `count / max` of `span`, rounded; a non-zero count gets at least one
/// unit so it stays visible.
fn scale(count: usize, max: usize, span: u32) -> u32 {
    if max == 0 || count == 0 {
        return 0;
    }
    let count = count as u128;
    let max = max as u128;
    let v = (count * u128::from(span) + max / 2) / max;
    u32::try_from(v).unwrap_or(span).clamp(1, span)
}

/// The first [`MAX_LABEL_CHARS`] characters of `label`, and whether it was
/// longer.
fn cut_label(label: &str) -> (&str, bool) {
    match label.char_indices().nth(MAX_LABEL_CHARS) {
        Some((i, _)) => (&label[..i], true),
        None => (label, false),
    }
}

/// One week's bar.
#[derive(Debug)]
pub(super) struct VBar {
    /// `2024-W05`.
    pub(super) label: String,
    /// The week's Monday, `2024-01-29`.
    pub(super) monday: String,
    pub(super) count: usize,
    pub(super) x: u32,
    pub(super) y: u32,
    pub(super) w: u32,
    pub(super) h: u32,
    /// Middle of the bar (for the number above it).
    pub(super) mid_x: u32,
    /// Baseline of the number above the bar.
    pub(super) value_y: u32,
    /// Whether the number fits above the bar.
    pub(super) show_value: bool,
    /// Whether this bar's week label is written below the axis.
    pub(super) show_label: bool,
}

/// The submissions-per-week chart.
#[derive(Debug)]
pub(super) struct WeekChart {
    pub(super) width: u32,
    pub(super) height: u32,
    /// The axis line's height.
    pub(super) axis_y: u32,
    /// Baseline of the week labels.
    pub(super) label_y: u32,
    pub(super) axis_x1: u32,
    pub(super) axis_x2: u32,
    pub(super) bars: Vec<VBar>,
    /// `false` when the span was too wide and only weeks with submissions
    /// are drawn.
    pub(super) all_weeks: bool,
}

/// An ISO 8601 week: its week-numbering year, number and Monday.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct IsoWeek {
    /// Days from 1970-01-01 to the week's Monday (first, so weeks sort in
    /// time order).
    monday: i64,
    pub(super) year: i64,
    pub(super) week: u32,
}

impl IsoWeek {
    /// The ISO week `day` falls in.
    pub(super) fn of(day: Day) -> Self {
        Self::of_days(day.unix_midnight().div_euclid(86_400))
    }

    fn of_days(days: i64) -> Self {
        // 1970-01-01 was a Thursday: Monday = 0.
        let weekday = (days + 3).rem_euclid(7);
        let monday = days - weekday;
        // ISO 8601: a week belongs to the year its Thursday falls in, and
        // week 1 is the one holding that year's first Thursday.
        let thursday = monday + 3;
        let (year, _, _) = civil_from_days(thursday);
        let jan1 = days_from_civil(year, 1, 1);
        let week = u32::try_from((thursday - jan1) / 7 + 1).unwrap_or(0);
        IsoWeek { monday, year, week }
    }

    fn label(&self) -> String {
        format!("{:04}-W{:02}", self.year, self.week)
    }

    fn monday_label(&self) -> String {
        let (y, m, d) = civil_from_days(self.monday);
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// Counts `days` per ISO week and lays out the bars, oldest week first.
/// Weeks without submissions between the first and the last are drawn as
/// empty bars (unless the span exceeds [`MAX_FILLED_WEEKS`]).
pub(super) fn weeks(days: impl Iterator<Item = Day>) -> WeekChart {
    let mut counts: BTreeMap<IsoWeek, usize> = BTreeMap::new();
    for d in days {
        *counts.entry(IsoWeek::of(d)).or_default() += 1;
    }
    let first = counts.keys().next().map(|w| w.monday);
    let last = counts.keys().next_back().map(|w| w.monday);
    let mut all_weeks = true;
    let series: Vec<(IsoWeek, usize)> = match (first, last) {
        (Some(first), Some(last)) if (last - first) / 7 < MAX_FILLED_WEEKS => {
            let mut out = Vec::new();
            let mut monday = first;
            while monday <= last {
                let w = IsoWeek::of_days(monday);
                out.push((w, counts.get(&w).copied().unwrap_or(0)));
                monday += 7;
            }
            out
        }
        _ => {
            all_weeks = counts.is_empty();
            counts.into_iter().collect()
        }
    };

    let n = u32::try_from(series.len()).unwrap_or(u32::MAX).max(1);
    let slot = (W_PLOT_WIDTH / n).clamp(W_MIN_SLOT, W_MAX_SLOT);
    let gap = if slot >= 8 { slot / 4 } else { 1 };
    let every = W_LABEL_ROOM.div_ceil(slot).max(1);
    let max = series.iter().map(|s| s.1).max().unwrap_or(0);
    let axis_y = W_TOP + W_PLOT_HEIGHT;
    let bars = series
        .into_iter()
        .enumerate()
        .map(|(i, (week, count))| {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let x = W_LEFT.saturating_add(i.saturating_mul(slot));
            let h = scale(count, max, W_PLOT_HEIGHT);
            let w = slot - gap;
            VBar {
                label: week.label(),
                monday: week.monday_label(),
                count,
                x,
                y: axis_y - h,
                w,
                h,
                mid_x: x + w / 2,
                value_y: axis_y - h - 4,
                show_value: count > 0 && slot >= 16,
                show_label: i % every == 0,
            }
        })
        .collect();
    let plot = n.saturating_mul(slot);
    WeekChart {
        // Room on the right for the last week's label, which starts at its
        // bar.
        width: (W_LEFT * 2)
            .saturating_add(plot)
            .saturating_add(W_LABEL_ROOM)
            .max(W_PLOT_WIDTH + 2 * W_LEFT),
        height: axis_y + W_BOTTOM,
        axis_y,
        label_y: axis_y + 18,
        axis_x1: W_LEFT,
        axis_x2: W_LEFT.saturating_add(plot),
        bars,
        all_weeks,
    }
}

/// Proleptic Gregorian calendar date of a day count from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d is 1..=31 and m 1..=12 by construction.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn day(s: &str) -> Day {
        s.parse().unwrap()
    }

    #[test]
    fn iso_weeks_at_year_edges() {
        // (day, ISO week, its Monday): year-boundary cases from ISO 8601.
        let cases = [
            ("1970-01-01", "1970-W01", "1969-12-29"),
            ("2021-01-03", "2020-W53", "2020-12-28"),
            ("2021-01-04", "2021-W01", "2021-01-04"),
            ("2024-01-01", "2024-W01", "2024-01-01"),
            ("2024-02-29", "2024-W09", "2024-02-26"),
            ("2024-12-29", "2024-W52", "2024-12-23"),
            ("2024-12-30", "2025-W01", "2024-12-30"),
            ("2026-12-31", "2026-W53", "2026-12-28"),
            ("2027-01-03", "2026-W53", "2026-12-28"),
            ("2008-12-29", "2009-W01", "2008-12-29"),
            ("2010-01-03", "2009-W53", "2009-12-28"),
        ];
        for (d, week, monday) in cases {
            let w = IsoWeek::of(day(d));
            assert_eq!(w.label(), week, "{d}");
            assert_eq!(w.monday_label(), monday, "{d}");
        }
    }

    #[test]
    fn civil_round_trips() {
        for days in [-719_468i64, -1, 0, 1, 11_016, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(
            civil_from_days(day("2024-02-29").unix_midnight() / 86_400),
            (2024, 2, 29)
        );
    }

    #[test]
    fn weeks_fill_gaps_in_order() {
        let c = weeks(
            ["2024-01-17", "2024-01-01", "2024-01-02", "2024-01-17"]
                .into_iter()
                .map(day),
        );
        let got: Vec<(&str, usize)> = c.bars.iter().map(|b| (b.label.as_str(), b.count)).collect();
        assert_eq!(got, [("2024-W01", 2), ("2024-W02", 0), ("2024-W03", 2)]);
        assert!(c.all_weeks);
        // Equal counts, equal heights; the empty week has none.
        assert_eq!(c.bars[0].h, c.bars[2].h);
        assert_eq!(c.bars[1].h, 0);
        assert_eq!(c.bars[0].h, W_PLOT_HEIGHT);
    }

    #[test]
    fn weeks_span_is_bounded() {
        let c = weeks(
            ["0001-01-01", "9999-12-31", "2024-05-05"]
                .into_iter()
                .map(day),
        );
        assert_eq!(c.bars.len(), 3);
        assert!(!c.all_weeks);
        assert_eq!(c.bars.iter().map(|b| b.count).sum::<usize>(), 3);
        let c = weeks(std::iter::empty());
        assert!(c.bars.is_empty());
    }

    #[test]
    fn bars_scale_and_cut() {
        let c = hbars(
            "x",
            "X",
            "x",
            vec![
                ("a", 4),
                ("ééééééééééééééééééééééééééééééééééé", 2),
                ("c", 0),
            ],
        );
        assert_eq!(c.bars[0].width, H_BAR_SPAN);
        assert_eq!(c.bars[1].width, H_BAR_SPAN / 2);
        assert_eq!(c.bars[2].width, 0);
        assert!(c.bars[1].cut);
        assert_eq!(c.bars[1].short.to_string().chars().count(), MAX_LABEL_CHARS);
        assert!(!c.bars[0].cut);
        assert_eq!(
            scale(1, 1_000_000, 340),
            1,
            "a non-zero count stays visible"
        );
    }

    #[test]
    fn tally_orders_by_count_then_label() {
        let t = tally(["b", "a", "c", "c", "b"].into_iter());
        assert_eq!(t, [("b", 2), ("c", 2), ("a", 1)]);
    }
}
