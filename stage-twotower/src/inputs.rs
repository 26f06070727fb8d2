//! Reading the stage's inputs beyond the interaction table: the objective's routing flags
//! (checked to line up with interactions.parquet row by row) and the candidate pairs.

use std::path::Path;

use anyhow::Result;
use arrow::array::{Array, BooleanArray};
use arrow::datatypes::DataType;
use common::columns::u32_values;
use common::schema::{files, CANDIDATE_IDX, SOURCE_IDX, USER_IDX, VIDEO_IDX};
use common::{Error, Expect, Interactions, ParquetInput};

/// The `routed_<objective>` flag of every interaction, in interactions.parquet order.
pub fn read_routed(dir: &Path, objective: &str, table: &Interactions) -> Result<Vec<bool>> {
    let path = dir.join(files::ROUTING);
    let input = ParquetInput::open(&path)?;
    let column = format!("routed_{objective}");
    let stale = |what: String| Error::Empty {
        path: path.clone(),
        what: format!("{what}; it does not match interactions.parquet: re-run stage-coordinate"),
    };
    if input.n_rows() as usize != table.len() {
        return Err(stale(format!(
            "{} rows against {} interactions",
            input.n_rows(),
            table.len()
        ))
        .into());
    }

    let columns = input.read_columns(&[
        (USER_IDX, Expect::Exactly(DataType::UInt32)),
        (VIDEO_IDX, Expect::Exactly(DataType::UInt32)),
        (column.as_str(), Expect::Exactly(DataType::Boolean)),
    ])?;
    let users = u32_values(&columns[0], &path, USER_IDX)?;
    let videos = u32_values(&columns[1], &path, VIDEO_IDX)?;
    let mismatch = (0..users.len())
        .find(|&r| users[r] != table.user_idx[r] || videos[r] != table.video_idx[r]);
    if let Some(row) = mismatch {
        return Err(stale(format!(
            "row {row} is (user {}, video {})",
            users[row], videos[row]
        ))
        .into());
    }
    let flags = columns[2]
        .as_any()
        .downcast_ref::<BooleanArray>()
        .expect("checked Boolean");
    if let Some(row) = (0..flags.len()).find(|&r| flags.is_null(r)) {
        return Err(Error::BadValue {
            path,
            column,
            row: row as u64,
            value: "null".into(),
            reason: "routing flags may not be null".into(),
        }
        .into());
    }
    Ok((0..flags.len()).map(|r| flags.value(r)).collect())
}

/// Source and candidate video of every row of candidates.parquet, in file order.
pub struct Candidates {
    pub source: Vec<u32>,
    pub candidate: Vec<u32>,
}

/// Reads candidates.parquet and checks every index against videos.parquet.
pub fn read_candidates(dir: &Path, n_videos: u32) -> Result<Candidates> {
    let path = dir.join(files::CANDIDATES);
    let input = ParquetInput::open(&path)?;
    let columns = input.read_columns(&[
        (SOURCE_IDX, Expect::Exactly(DataType::UInt32)),
        (CANDIDATE_IDX, Expect::Exactly(DataType::UInt32)),
    ])?;
    let source = u32_values(&columns[0], &path, SOURCE_IDX)?;
    let candidate = u32_values(&columns[1], &path, CANDIDATE_IDX)?;
    for (name, values) in [(SOURCE_IDX, &source), (CANDIDATE_IDX, &candidate)] {
        if let Some(row) = values.iter().position(|&v| v >= n_videos) {
            return Err(Error::BadValue {
                path,
                column: name.to_string(),
                row: row as u64,
                value: values[row].to_string(),
                reason: format!("unknown video: {} has {n_videos} rows", files::VIDEOS),
            }
            .into());
        }
    }
    Ok(Candidates { source, candidate })
}

/// Checks the contract's order of interactions.parquet, which pair building relies on: by
/// user, then by time.
pub fn check_sorted(table: &Interactions) -> Result<(), Error> {
    for row in 1..table.len() {
        let (previous, current) = (table.user_idx[row - 1], table.user_idx[row]);
        let (column, value) = if current < previous {
            (USER_IDX, current as i64)
        } else if current == previous && table.ts_ms[row] < table.ts_ms[row - 1] {
            (common::schema::TS, table.ts_ms[row])
        } else {
            continue;
        };
        return Err(Error::BadValue {
            path: table.path.clone(),
            column: column.to_string(),
            row: row as u64,
            value: value.to_string(),
            reason: "rows must be sorted by (user_idx, ts, video_idx)".into(),
        });
    }
    Ok(())
}
