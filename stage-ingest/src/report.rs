//! The metrics of the JSON summary: row counts at each step, splits, entities, drops and
//! the time span, with times written as ISO 8601 UTC.

use serde::Serialize;

use crate::log::DropCounts;
use crate::split::SplitCuts;

/// What a run did, as reported in the summary's `metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Data rows read from the log (or generated).
    pub rows_read: u64,
    /// Rows of interactions.parquet.
    pub rows_written: u64,
    pub rows_train: u64,
    pub rows_valid: u64,
    pub rows_test: u64,
    pub n_users: u64,
    pub n_videos: u64,
    /// Rows folded into another row with the same (user, video, ts).
    pub duplicates_merged: u64,
    /// Rows dropped for a NaN/negative play time or duration, or a NaN rating.
    pub rows_dropped_bad_signal: u64,
    /// Rows dropped for a timestamp before 1990 or after tomorrow.
    pub rows_dropped_bad_timestamp: u64,
    /// Rows dropped, by reason.
    pub rows_dropped: serde_json::Map<String, serde_json::Value>,
    /// First and last event time, and the days between them.
    pub ts_min: String,
    pub ts_max: String,
    pub span_days: f64,
    /// Cut times of the split (null when that split is empty).
    pub valid_from: Option<String>,
    pub test_from: Option<String>,
    /// `Int64` or `Utf8`.
    pub user_id_type: String,
    pub video_id_type: String,
    /// Feature columns written to users.parquet and videos.parquet.
    pub user_columns: Vec<String>,
    pub video_columns: Vec<String>,
    /// Generator facts of the synthetic source (signal rates, retention, planted model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<serde_json::Value>,
}

impl Report {
    /// Fills the drop counts.
    pub fn set_drops(&mut self, drops: &DropCounts) {
        self.rows_dropped_bad_signal = drops.bad_signal();
        self.rows_dropped_bad_timestamp = drops.bad_timestamp();
        self.rows_dropped = drops.by_reason();
    }

    /// Fills the time span and the cut times.
    pub fn set_times(&mut self, ts_min: i64, ts_max: i64, cuts: &SplitCuts) {
        self.ts_min = iso_utc(ts_min);
        self.ts_max = iso_utc(ts_max);
        self.span_days = ((ts_max - ts_min) as f64 / 86_400_000.0 * 1000.0).round() / 1000.0;
        let cut = |ms: i64| (ms != i64::MAX).then(|| iso_utc(ms));
        self.valid_from = cut(cuts.valid_from_ms);
        self.test_from = cut(cuts.test_from_ms);
    }

    /// Every field as summary metrics.
    pub fn into_metrics(self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self).expect("plain data") {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("a struct serialises to an object"),
        }
    }
}

impl Default for Report {
    fn default() -> Self {
        Report {
            rows_read: 0,
            rows_written: 0,
            rows_train: 0,
            rows_valid: 0,
            rows_test: 0,
            n_users: 0,
            n_videos: 0,
            duplicates_merged: 0,
            rows_dropped_bad_signal: 0,
            rows_dropped_bad_timestamp: 0,
            rows_dropped: DropCounts::default().by_reason(),
            ts_min: String::new(),
            ts_max: String::new(),
            span_days: 0.0,
            valid_from: None,
            test_from: None,
            user_id_type: String::new(),
            video_id_type: String::new(),
            user_columns: Vec::new(),
            video_columns: Vec::new(),
            synthetic: None,
        }
    }
}

/// Epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian calendar).
pub fn iso_utc(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Civil-from-days over 400-year eras of 146097 days (H. Hinnant's date algorithms).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_match_known_instants() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(1_649_581_149_287), "2022-04-10T08:59:09.287Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_utc(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn empty_splits_report_no_cut() {
        let mut report = Report::default();
        report.set_times(
            0,
            86_400_000,
            &SplitCuts {
                valid_from_ms: 5,
                test_from_ms: i64::MAX,
            },
        );
        assert_eq!(report.span_days, 1.0);
        assert_eq!(
            report.valid_from.as_deref(),
            Some("1970-01-01T00:00:00.005Z")
        );
        assert_eq!(report.test_from, None);
    }
}
