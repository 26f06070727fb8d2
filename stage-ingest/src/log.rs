//! The raw log as read from the source files: interned ids, timestamps and signals of every
//! row that passed the validation rules, plus the count of rows each rule dropped.
//!
//! Rules (a dropped row is counted, never an error, because one bad measurement should not
//! stop a 100M-row ingest): NaN, infinite or negative `play_time_ms`; NaN, infinite or
//! negative `duration_ms`; NaN or infinite `rating`; a timestamp before 1990-01-01 or more
//! than one day after the wall-clock time of the run.

use std::path::Path;

use common::summary::FileRows;
use serde::Serialize;

use crate::events::{Flags, DURATION_MS, PLAY_TIME_MS, RATING};
use crate::intern::IdInterner;

/// 1990-01-01T00:00:00Z in epoch milliseconds: nothing in a video log is older.
pub const EARLIEST_MS: i64 = 631_152_000_000;

const DAY_MS: i64 = 86_400_000;

/// Why a row was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    PlayTime,
    Duration,
    Rating,
    TsBefore1990,
    TsInFuture,
}

impl DropReason {
    const ALL: [DropReason; 5] = [
        DropReason::PlayTime,
        DropReason::Duration,
        DropReason::Rating,
        DropReason::TsBefore1990,
        DropReason::TsInFuture,
    ];

    /// Name of the reason in the summary.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::PlayTime => "play_time_nan_or_negative",
            DropReason::Duration => "duration_nan_or_negative",
            DropReason::Rating => "rating_nan",
            DropReason::TsBefore1990 => "ts_before_1990",
            DropReason::TsInFuture => "ts_in_future",
        }
    }

    fn is_signal(self) -> bool {
        matches!(
            self,
            DropReason::PlayTime | DropReason::Duration | DropReason::Rating
        )
    }
}

/// Rows dropped per reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounts([u64; 5]);

impl DropCounts {
    /// Counts one dropped row.
    pub fn add(&mut self, reason: DropReason) {
        self.0[reason as usize] += 1;
    }

    /// Rows dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize]
    }

    /// Rows dropped for a bad play time, duration or rating.
    pub fn bad_signal(&self) -> u64 {
        DropReason::ALL
            .iter()
            .filter(|r| r.is_signal())
            .map(|&r| self.get(r))
            .sum()
    }

    /// Rows dropped for a timestamp outside the plausible window.
    pub fn bad_timestamp(&self) -> u64 {
        DropReason::ALL
            .iter()
            .filter(|r| !r.is_signal())
            .map(|&r| self.get(r))
            .sum()
    }

    /// Counts by reason name, for the summary.
    pub fn by_reason(&self) -> serde_json::Map<String, serde_json::Value> {
        DropReason::ALL
            .iter()
            .map(|&r| (r.name().to_string(), self.get(r).into()))
            .collect()
    }
}

/// The plausible time window of events.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TimeWindow {
    pub earliest_ms: i64,
    pub latest_ms: i64,
}

impl TimeWindow {
    /// From 1990-01-01 to one day after `now_ms`.
    pub fn until(now_ms: i64) -> TimeWindow {
        TimeWindow {
            earliest_ms: EARLIEST_MS,
            latest_ms: now_ms.saturating_add(DAY_MS),
        }
    }

    /// From 1990-01-01 to one day after the current wall-clock time.
    pub fn now() -> TimeWindow {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(i64::MAX);
        TimeWindow::until(now)
    }
}

/// One row's signals before validation; `None` is a null, `Some(NaN)` a NaN in the file.
#[derive(Debug, Clone, Copy, Default)]
pub struct RowSignals {
    pub flags: Flags,
    pub play_time_ms: Option<f32>,
    pub duration_ms: Option<f32>,
    pub rating: Option<f32>,
}

/// The rule a row breaks, if any (the first in the order of the module doc).
pub fn check_row(ts_ms: i64, signals: &RowSignals, window: TimeWindow) -> Option<DropReason> {
    let bad_quantity = |v: Option<f32>| v.is_some_and(|v| !v.is_finite() || v < 0.0);
    if bad_quantity(signals.play_time_ms) {
        return Some(DropReason::PlayTime);
    }
    if bad_quantity(signals.duration_ms) {
        return Some(DropReason::Duration);
    }
    if signals.rating.is_some_and(|v| !v.is_finite()) {
        return Some(DropReason::Rating);
    }
    if ts_ms < window.earliest_ms {
        return Some(DropReason::TsBefore1990);
    }
    if ts_ms > window.latest_ms {
        return Some(DropReason::TsInFuture);
    }
    None
}

/// Every kept row of the source, with interned ids.
#[derive(Debug)]
pub struct RawLog {
    pub users: IdInterner,
    pub videos: IdInterner,
    pub user_key: Vec<u32>,
    pub video_key: Vec<u32>,
    pub ts_ms: Vec<i64>,
    pub flags: Vec<Flags>,
    /// Numeric signals (NaN = null); empty when the source lacks the signal.
    pub numeric: [Vec<f32>; 3],
    pub has_numeric: [bool; 3],
    /// Data rows read from the log files, kept or not.
    pub rows_read: u64,
    pub drops: DropCounts,
    pub window: TimeWindow,
    /// Log files read, with their data rows.
    pub inputs: Vec<FileRows>,
}

impl RawLog {
    /// An empty log whose source has the numeric signals marked in `has_numeric`.
    pub fn new(has_numeric: [bool; 3], window: TimeWindow) -> RawLog {
        RawLog {
            users: IdInterner::new(common::schema::USER_ID),
            videos: IdInterner::new(common::schema::VIDEO_ID),
            user_key: Vec::new(),
            video_key: Vec::new(),
            ts_ms: Vec::new(),
            flags: Vec::new(),
            numeric: Default::default(),
            has_numeric,
            rows_read: 0,
            drops: DropCounts::default(),
            window,
            inputs: Vec::new(),
        }
    }

    /// Starts a log file: later ids and rows count for it.
    pub fn begin_file(&mut self, path: &Path) {
        self.users.begin_file(path);
        self.videos.begin_file(path);
        self.inputs.push(FileRows::new(path, 0));
    }

    /// Kept rows so far.
    pub fn len(&self) -> usize {
        self.user_key.len()
    }

    /// True when no row was kept.
    pub fn is_empty(&self) -> bool {
        self.user_key.is_empty()
    }

    /// Adds one row read from the current file, or counts it as dropped; returns whether
    /// it was kept.
    pub fn push(&mut self, user_key: u32, video_key: u32, ts_ms: i64, signals: RowSignals) -> bool {
        self.rows_read += 1;
        if let Some(file) = self.inputs.last_mut() {
            file.rows += 1;
        }
        if let Some(reason) = check_row(ts_ms, &signals, self.window) {
            self.drops.add(reason);
            return false;
        }
        self.user_key.push(user_key);
        self.video_key.push(video_key);
        self.ts_ms.push(ts_ms);
        self.flags.push(signals.flags);
        let values = [signals.play_time_ms, signals.duration_ms, signals.rating];
        for signal in [PLAY_TIME_MS, DURATION_MS, RATING] {
            if self.has_numeric[signal] {
                self.numeric[signal].push(values[signal].unwrap_or(f32::NAN));
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn window() -> TimeWindow {
        TimeWindow::until(NOW)
    }

    fn with_play(value: f32) -> RowSignals {
        RowSignals {
            play_time_ms: Some(value),
            ..Default::default()
        }
    }

    #[test]
    fn nan_or_negative_play_time_is_dropped() {
        assert_eq!(
            check_row(NOW, &with_play(f32::NAN), window()),
            Some(DropReason::PlayTime)
        );
        assert_eq!(
            check_row(NOW, &with_play(-1.0), window()),
            Some(DropReason::PlayTime)
        );
        assert_eq!(check_row(NOW, &with_play(0.0), window()), None);
    }

    #[test]
    fn negative_duration_is_dropped_but_null_is_kept() {
        let negative = RowSignals {
            duration_ms: Some(-5.0),
            ..Default::default()
        };
        assert_eq!(
            check_row(NOW, &negative, window()),
            Some(DropReason::Duration)
        );
        assert_eq!(check_row(NOW, &RowSignals::default(), window()), None);
    }

    #[test]
    fn nan_rating_is_dropped() {
        let nan = RowSignals {
            rating: Some(f32::NAN),
            ..Default::default()
        };
        assert_eq!(check_row(NOW, &nan, window()), Some(DropReason::Rating));
    }

    #[test]
    fn timestamps_outside_1990_to_tomorrow_are_dropped() {
        let plain = RowSignals::default();
        assert_eq!(
            check_row(EARLIEST_MS - 1, &plain, window()),
            Some(DropReason::TsBefore1990)
        );
        assert_eq!(check_row(EARLIEST_MS, &plain, window()), None);
        assert_eq!(check_row(NOW + DAY_MS, &plain, window()), None);
        assert_eq!(
            check_row(NOW + DAY_MS + 1, &plain, window()),
            Some(DropReason::TsInFuture)
        );
    }

    #[test]
    fn push_counts_drops_and_keeps_present_signals_only() {
        let mut log = RawLog::new([true, false, false], window());
        log.begin_file(Path::new("log.csv"));
        assert!(log.push(0, 0, NOW, with_play(3.0)));
        assert!(!log.push(0, 1, NOW, with_play(-3.0)));
        assert!(!log.push(0, 1, 0, RowSignals::default()));
        assert_eq!((log.rows_read, log.len()), (3, 1));
        assert_eq!((log.drops.bad_signal(), log.drops.bad_timestamp()), (1, 1));
        assert_eq!(log.numeric[PLAY_TIME_MS], vec![3.0]);
        assert!(log.numeric[DURATION_MS].is_empty());
        assert_eq!(log.inputs[0].rows, 3);
    }
}
