//! Model inputs of one interaction: side features of its user and video (from users.parquet
//! and videos.parquet) and the time context of its timestamp. The feedback signals are never
//! inputs: they are what the network predicts.

use std::path::Path;

use anyhow::{Context, Result};
use common::features::EntityFeatures;
use common::ids::IdColumn;
use common::schema::{files, NON_FEATURE_COLUMNS, USER_ID, USER_IDX, VIDEO_ID, VIDEO_IDX};
use common::ParquetInput;

/// Number of context features per interaction (hour of day and day of week, sin and cos).
pub const N_CONTEXT: usize = 4;

const MS_PER_HOUR: f64 = 3_600_000.0;
const MS_PER_DAY: i64 = 86_400_000;

/// Side features of both entity tables.
pub struct SideFeatures {
    pub users: EntityFeatures,
    pub videos: EntityFeatures,
}

impl SideFeatures {
    /// Reads the feature columns of users.parquet and videos.parquet in `dir` (every column
    /// but the index, the id and the descriptive ones such as `title`).
    pub fn read(dir: &Path) -> Result<SideFeatures> {
        let users_path = dir.join(files::USERS);
        let videos_path = dir.join(files::VIDEOS);
        let mut user_skip = vec![USER_IDX, USER_ID];
        user_skip.extend_from_slice(NON_FEATURE_COLUMNS);
        let mut video_skip = vec![VIDEO_IDX, VIDEO_ID];
        video_skip.extend_from_slice(NON_FEATURE_COLUMNS);
        // Features are looked up by row, so a table whose index column is not 0..n in row
        // order would silently give each interaction another entity's features.
        IdColumn::read(&ParquetInput::open(&users_path)?, USER_IDX, USER_ID)?;
        IdColumn::read(&ParquetInput::open(&videos_path)?, VIDEO_IDX, VIDEO_ID)?;
        let users = EntityFeatures::read(&users_path, &user_skip)
            .with_context(|| format!("reading side features of {}", users_path.display()))?;
        let videos = EntityFeatures::read(&videos_path, &video_skip)
            .with_context(|| format!("reading side features of {}", videos_path.display()))?;
        Ok(SideFeatures { users, videos })
    }

    /// Width of the dense part of a row: numeric user and video features, then context.
    pub fn n_dense(&self) -> usize {
        self.users.numeric.len() + self.videos.numeric.len() + N_CONTEXT
    }

    /// Appends the dense part of one interaction to `out`.
    pub fn push_dense(&self, user: u32, video: u32, ts_ms: i64, out: &mut Vec<f32>) {
        out.extend(self.users.numeric_row(user as usize));
        out.extend(self.videos.numeric_row(video as usize));
        out.extend_from_slice(&context(ts_ms));
    }

    /// Names of the inputs, for the log.
    pub fn describe(&self) -> String {
        let names = |features: &EntityFeatures, prefix: &str| -> Vec<String> {
            let categorical = features
                .categorical
                .iter()
                .map(|f| format!("{prefix}.{} (cat)", f.name));
            let numeric = features
                .numeric
                .iter()
                .map(|f| format!("{prefix}.{}", f.name));
            categorical.chain(numeric).collect()
        };
        let mut all = vec!["user id".to_string(), "video id".to_string()];
        all.extend(names(&self.users, "user"));
        all.extend(names(&self.videos, "video"));
        all.push("hour of day, day of week (sin/cos)".to_string());
        all.join(", ")
    }
}

/// Hour of day and day of week (UTC) of an epoch-millisecond time, each as a point on the
/// unit circle, so 23:59 sits next to 00:00 and Sunday next to Monday.
pub fn context(ts_ms: i64) -> [f32; N_CONTEXT] {
    let ms_of_day = ts_ms.rem_euclid(MS_PER_DAY);
    let hour = ms_of_day as f64 / MS_PER_HOUR;
    // 1970-01-01 was a Thursday: shift so that Monday is day 0.
    let day = (ts_ms.div_euclid(MS_PER_DAY) + 3).rem_euclid(7) as f64;
    let hour_angle = std::f64::consts::TAU * hour / 24.0;
    let week_angle = std::f64::consts::TAU * (day + hour / 24.0) / 7.0;
    [
        hour_angle.sin() as f32,
        hour_angle.cos() as f32,
        week_angle.sin() as f32,
        week_angle.cos() as f32,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn midnight_monday_is_the_origin_of_both_cycles() {
        // 1970-01-05 00:00 UTC was a Monday.
        let c = context(4 * MS_PER_DAY);
        assert!(
            close(c[0], 0.0) && close(c[1], 1.0) && close(c[2], 0.0) && close(c[3], 1.0),
            "{c:?}"
        );
    }

    #[test]
    fn six_in_the_morning_is_a_quarter_turn() {
        let c = context(4 * MS_PER_DAY + 6 * 3_600_000);
        assert!(close(c[0], 1.0) && close(c[1], 0.0), "{c:?}");
    }

    #[test]
    fn times_before_1970_wrap_correctly() {
        // 1969-12-31 18:00 UTC was a Wednesday evening: hour 18, day 2 of the week.
        let c = context(-6 * 3_600_000);
        let hour = std::f64::consts::TAU * 18.0 / 24.0;
        let week = std::f64::consts::TAU * (2.0 + 18.0 / 24.0) / 7.0;
        assert!(
            close(c[0], hour.sin() as f32) && close(c[1], hour.cos() as f32),
            "{c:?}"
        );
        assert!(
            close(c[2], week.sin() as f32) && close(c[3], week.cos() as f32),
            "{c:?}"
        );
    }
}
