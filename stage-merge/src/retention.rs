//! Step 3a: user-weeks from the routing log, with the Coordinating Network's mean
//! probabilities as features and next-week activity as the label.
//!
//! Reads `routing.parquet` (`user_idx` UInt32, `ts` Timestamp(ms), `split` Utf8, `p_<obj>`
//! Float32) in two streamed passes: the first finds the time span, the second sums each
//! user's probabilities per week. Memory grows with the number of user-weeks, not rows.
//! Train and valid rows are used, test rows are skipped: the weights are fitted
//! parameters, and the test split is read only by stage-eval. Splits are cut by time, so
//! this ends the calendar where the test period starts, and no label looks into it.
//! Writes nothing.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use arrow::datatypes::DataType;
use common::columns::{f32_values_nan_null, timestamp_ms_values, timestamp_type, u32_values};
use common::interactions::decode_splits;
use common::schema::{files, SPLIT, TS, USER_IDX};
use common::{Error, Expect, ParquetInput, Split};

/// One week in milliseconds.
pub const WEEK_MS: i64 = 7 * 24 * 3_600_000;

/// The labelled user-weeks of a log.
#[derive(Debug, Clone, Default)]
pub struct UserWeeks {
    /// Owner of each labelled user-week, ascending with `week`.
    pub user: Vec<u32>,
    pub week: Vec<u32>,
    /// Row-major features: the user's mean p_k over the week's rows, one column per objective.
    pub features: Vec<f64>,
    /// 1.0 when the user has at least one row in the following week.
    pub label: Vec<f64>,
    pub n_features: usize,
    /// Milliseconds from the first to the last row.
    pub span_ms: i64,
    /// Rows read (train and valid; test rows are skipped and not counted).
    pub n_rows: u64,
    /// User-weeks with activity, labelled or not.
    pub n_active_user_weeks: u64,
}

impl UserWeeks {
    /// Number of labelled user-weeks.
    pub fn len(&self) -> usize {
        self.label.len()
    }

    /// True when no user-week has a label.
    pub fn is_empty(&self) -> bool {
        self.label.is_empty()
    }

    /// The features of user-week `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.features[i * self.n_features..(i + 1) * self.n_features]
    }
}

/// Whether week `w` has a label: its following week must end inside the log, or a week the
/// log only partly covers would count its cut-off users as lost.
pub fn has_label(week: u32, span_ms: i64) -> bool {
    (week as i64 + 2) * WEEK_MS - 1 <= span_ms
}

/// Column name of an objective's routing probability.
pub fn probability_column(objective: &str) -> String {
    format!("p_{objective}")
}

/// Builds the labelled user-weeks of `routing.parquet` for the given objectives.
pub fn read_user_weeks(dir: &Path, objectives: &[&str]) -> Result<UserWeeks> {
    let path = dir.join(files::ROUTING);
    let input = ParquetInput::open(&path)?;
    let names: Vec<String> = objectives.iter().map(|o| probability_column(o)).collect();
    let mut columns = vec![
        (USER_IDX, Expect::Exactly(DataType::UInt32)),
        (TS, Expect::Exactly(timestamp_type())),
        (SPLIT, Expect::Exactly(DataType::Utf8)),
    ];
    columns.extend(
        names
            .iter()
            .map(|n| (n.as_str(), Expect::Exactly(DataType::Float32))),
    );

    // Pass 1: the time span, after every column's type is checked.
    for (name, expect) in &columns {
        input.check_column(name, expect)?;
    }
    let (mut first_ms, mut last_ms, mut n_rows) = (i64::MAX, i64::MIN, 0u64);
    let mut last_row = 0usize;
    let mut splits = Vec::new();
    let mut offset = 0usize;
    for batch in input.batches(&columns[1..3])? {
        let batch = batch?;
        let ts = timestamp_ms_values(batch.column(0), &path, TS)?;
        splits.clear();
        decode_splits(batch.column(1), &path, offset, &mut splits)?;
        offset += ts.len();
        for (row_in_batch, (&t, &split)) in ts.iter().zip(&splits).enumerate() {
            if split == Split::Test {
                continue;
            }
            n_rows += 1;
            first_ms = first_ms.min(t);
            if t > last_ms {
                last_ms = t;
                last_row = offset - ts.len() + row_in_batch;
            }
        }
    }
    if n_rows == 0 {
        return Err(Error::Empty {
            path,
            what: "no train or valid routing rows: cannot learn objective weights".into(),
        }
        .into());
    }
    // Week numbers are u32 in the user-week keys; a timestamp further out would wrap them.
    let within_calendar = last_ms
        .checked_sub(first_ms)
        .is_some_and(|span| span / WEEK_MS <= u32::MAX as i64);
    if !within_calendar {
        return Err(Error::BadValue {
            path,
            column: TS.to_string(),
            row: last_row as u64,
            value: format!("{last_ms} ms"),
            reason: format!(
                "more than 2^32 weeks after the first train or valid row ({first_ms} ms)"
            ),
        }
        .into());
    }

    // Pass 2: per (user, week) sums, in file order so the sums are reproducible.
    let k = objectives.len();
    let mut slot_of: HashMap<u64, usize> = HashMap::new();
    let mut keys: Vec<u64> = Vec::new();
    let mut sums: Vec<f64> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    let mut offset = 0usize;
    for batch in input.batches(&columns)? {
        let batch = batch?;
        let users = u32_values(batch.column(0), &path, USER_IDX)?;
        let ts = timestamp_ms_values(batch.column(1), &path, TS)?;
        splits.clear();
        decode_splits(batch.column(2), &path, offset, &mut splits)?;
        let mut probabilities = Vec::with_capacity(k);
        for (c, name) in names.iter().enumerate() {
            let values = f32_values_nan_null(batch.column(3 + c), &path, name)?;
            if let Some(row) = values.iter().position(|p| !(0.0..=1.0).contains(p)) {
                return Err(Error::BadValue {
                    path,
                    column: name.clone(),
                    row: (offset + row) as u64,
                    value: if values[row].is_nan() {
                        "null".into()
                    } else {
                        values[row].to_string()
                    },
                    reason: "a probability must lie in [0, 1]".into(),
                }
                .into());
            }
            probabilities.push(values);
        }
        for row in (0..users.len()).filter(|&row| splits[row] != Split::Test) {
            let week = ((ts[row] - first_ms) / WEEK_MS) as u64;
            let key = (users[row] as u64) << 32 | week;
            let slot = *slot_of.entry(key).or_insert_with(|| {
                keys.push(key);
                sums.extend(std::iter::repeat_n(0.0, k));
                counts.push(0);
                keys.len() - 1
            });
            for (c, values) in probabilities.iter().enumerate() {
                sums[slot * k + c] += values[row] as f64;
            }
            counts[slot] += 1;
        }
        offset += users.len();
    }

    // Labelled weeks in (user, week) order, each with its next week's activity.
    let span_ms = last_ms - first_ms;
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_unstable_by_key(|&slot| keys[slot]);
    let mut weeks = UserWeeks {
        n_features: k,
        span_ms,
        n_rows,
        n_active_user_weeks: keys.len() as u64,
        ..Default::default()
    };
    for slot in order {
        let (user, week) = ((keys[slot] >> 32) as u32, keys[slot] as u32);
        if !has_label(week, span_ms) {
            continue;
        }
        weeks.user.push(user);
        weeks.week.push(week);
        let n = counts[slot] as f64;
        weeks
            .features
            .extend(sums[slot * k..(slot + 1) * k].iter().map(|s| s / n));
        let next = (user as u64) << 32 | (week as u64 + 1);
        weeks.label.push(if slot_of.contains_key(&next) {
            1.0
        } else {
            0.0
        });
    }
    Ok(weeks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_week_has_a_label_only_when_the_next_week_ends_inside_the_log() {
        assert!(!has_label(0, 2 * WEEK_MS - 2));
        assert!(has_label(0, 2 * WEEK_MS - 1));
        assert!(!has_label(1, 2 * WEEK_MS));
        assert!(has_label(1, 3 * WEEK_MS));
    }
}
