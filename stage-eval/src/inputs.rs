//! Step 0: reads every input of the evaluation.
//!
//! Reads `interactions.parquet` (`user_idx`, `video_idx`, `ts`, `split` and the signals of
//! the label rules), the row counts of `users.parquet` and `videos.parquet`,
//! `candidates.parquet` (`source_idx`, `candidate_idx`, `rank`, `score`), per objective
//! `als_<obj>.parquet` (`linear_score`) and `twotower_<obj>.parquet` (`nonlinear_score`),
//! each checked row by row against the candidate pairs, `weights.parquet` (`objective`,
//! `manual_weight`, `learned_weight`) and `related.parquet` (`source_idx`, `rank`,
//! `candidate_idx`); writes nothing.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use arrow::array::{Array, AsArray, Float64Array};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use common::columns::{string_values, u32_values};
use common::schema::{files, CANDIDATE_IDX, SOURCE_IDX};
use common::{Error, Expect, Interactions, ParquetInput, Split};

use crate::config::Config;
use crate::truth::TestRows;

/// Column of the ALS similarity.
pub const LINEAR_SCORE: &str = "linear_score";
/// Column of the two-tower similarity.
pub const NONLINEAR_SCORE: &str = "nonlinear_score";

/// What the evaluation needs of the interaction log.
#[derive(Debug, Clone)]
pub struct Log {
    pub path: PathBuf,
    pub n_rows: usize,
    pub n_videos: usize,
    /// Rows per video in the train split.
    pub train_counts: Vec<u64>,
    /// Rows of the evaluated split (test, or valid when tuning).
    pub test: TestRows,
}

/// Loads the log: train counts for popularity, and the rows of the evaluated split
/// (`config.split`, the test split unless tuning on valid) with their flags
/// (bit k: objective k's label is positive; bit n_objectives: a dislike).
pub fn read_log(config: &Config) -> Result<Log> {
    let mut signals: Vec<&str> = config
        .objectives
        .iter()
        .map(|o| o.label.signal.as_str())
        .collect();
    signals.push(config.dislike.signal.as_str());
    signals.sort_unstable();
    signals.dedup();
    let log = Interactions::load(&config.dir, &signals)?;
    if log.is_empty() {
        return Err(Error::Empty {
            path: log.path.clone(),
            what: "no interaction to evaluate against".into(),
        }
        .into());
    }

    let mut labels: Vec<Vec<i8>> = config
        .objectives
        .iter()
        .map(|o| log.labels(&o.label))
        .collect();
    labels.push(log.labels(&config.dislike));
    let mut train_counts = vec![0u64; log.n_videos as usize];
    let mut test = TestRows::default();
    for row in 0..log.len() {
        match log.split[row] {
            Split::Train => train_counts[log.video_idx[row] as usize] += 1,
            split if split == config.split => {
                let flags = labels
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l[row] == 1)
                    .fold(0u64, |f, (k, _)| f | (1 << k));
                test.user.push(log.user_idx[row]);
                test.video.push(log.video_idx[row]);
                test.ts_ms.push(log.ts_ms[row]);
                test.flags.push(flags);
            }
            _ => {}
        }
    }
    Ok(Log {
        path: log.path.clone(),
        n_rows: log.len(),
        n_videos: log.n_videos as usize,
        train_counts,
        test,
    })
}

/// The candidate pairs in file order, grouped by source.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    pub path: PathBuf,
    pub source_idx: Vec<u32>,
    pub candidate_idx: Vec<u32>,
    pub rank: Vec<u32>,
    /// The co-visitation score of stage 1.
    pub score: Vec<f32>,
    /// Row range of each source video (empty when the video has no candidate).
    pub groups: Vec<std::ops::Range<usize>>,
}

impl Candidates {
    /// The pairs as a score file must list them.
    pub fn pairs(&self) -> common::aligned::CandidatePairs<'_> {
        common::aligned::CandidatePairs {
            path: &self.path,
            source_idx: &self.source_idx,
            candidate_idx: &self.candidate_idx,
        }
    }

    pub fn len(&self) -> usize {
        self.source_idx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source_idx.is_empty()
    }

    /// Rows of one source (empty when it has none or lies outside the catalogue).
    pub fn rows_of(&self, source: u32) -> std::ops::Range<usize> {
        self.groups.get(source as usize).cloned().unwrap_or(0..0)
    }
}

/// Reads `candidates.parquet`; rows of a source must be contiguous, sources ascending.
pub fn read_candidates(dir: &Path, n_videos: usize) -> Result<Candidates> {
    let path = dir.join(files::CANDIDATES);
    let input = ParquetInput::open(&path)?;
    let columns = input.read_columns(&[
        (SOURCE_IDX, Expect::Exactly(DataType::UInt32)),
        (CANDIDATE_IDX, Expect::Exactly(DataType::UInt32)),
        ("rank", Expect::Exactly(DataType::UInt32)),
        ("score", Expect::Exactly(DataType::Float32)),
    ])?;
    let source_idx = u32_values(&columns[0], &path, SOURCE_IDX)?;
    let candidate_idx = u32_values(&columns[1], &path, CANDIDATE_IDX)?;
    let rank = u32_values(&columns[2], &path, "rank")?;
    let scores = columns[3].as_primitive::<Float32Type>();
    if let Some(row) =
        (0..scores.len()).find(|&r| scores.is_null(r) || !scores.value(r).is_finite())
    {
        return Err(Error::BadValue {
            path,
            column: "score".into(),
            row: row as u64,
            value: if scores.is_null(row) {
                "null".into()
            } else {
                scores.value(row).to_string()
            },
            reason: "scores must be finite numbers".into(),
        }
        .into());
    }
    let score = scores.values().to_vec();
    if let Some(row) = source_idx.windows(2).position(|w| w[1] < w[0]) {
        return Err(Error::BadValue {
            path,
            column: SOURCE_IDX.into(),
            row: row as u64 + 1,
            value: source_idx[row + 1].to_string(),
            reason: "rows must be sorted by source_idx".into(),
        }
        .into());
    }
    for (column, values) in [(SOURCE_IDX, &source_idx), (CANDIDATE_IDX, &candidate_idx)] {
        if let Some(row) = values.iter().position(|&v| v as usize >= n_videos) {
            return Err(Error::BadValue {
                path,
                column: column.into(),
                row: row as u64,
                value: values[row].to_string(),
                reason: format!("unknown index: {} has {n_videos} rows", files::VIDEOS),
            }
            .into());
        }
    }
    let mut groups = vec![0..0; n_videos];
    let mut start = 0;
    for row in 1..=source_idx.len() {
        if row == source_idx.len() || source_idx[row] != source_idx[start] {
            groups[source_idx[start] as usize] = start..row;
            start = row;
        }
    }
    Ok(Candidates {
        path,
        source_idx,
        candidate_idx,
        rank,
        score,
        groups,
    })
}

/// The learned weight w_k of each objective, in configuration order; the manual weight in
/// the file must be the configuration's, or weights.parquet is stale.
pub fn read_learned_weights(dir: &Path, objectives: &[(String, f64)]) -> Result<Vec<f64>> {
    let path = dir.join(files::WEIGHTS);
    let input = ParquetInput::open(&path)?;
    let columns = input.read_columns(&[
        ("objective", Expect::Exactly(DataType::Utf8)),
        ("manual_weight", Expect::Exactly(DataType::Float64)),
        ("learned_weight", Expect::Exactly(DataType::Float64)),
    ])?;
    let names = string_values(&columns[0], &path, "objective")?;
    let manual: &Float64Array = columns[1].as_primitive::<Float64Type>();
    let learned: &Float64Array = columns[2].as_primitive::<Float64Type>();
    objectives
        .iter()
        .map(|(name, weight)| {
            let row = names.iter().position(|n| n == name).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no row for objective \"{name}\"; re-run stage-merge",
                    path.display()
                )
            })?;
            if manual.is_null(row) || manual.value(row) != *weight {
                bail!(
                    "{}: objective \"{name}\" has manual_weight {:?} but the configuration \
                     says {weight}; re-run stage-merge",
                    path.display(),
                    (!manual.is_null(row)).then(|| manual.value(row))
                );
            }
            if learned.is_null(row) || !learned.value(row).is_finite() {
                return Err(Error::BadValue {
                    path: path.clone(),
                    column: "learned_weight".into(),
                    row: row as u64,
                    value: "null or non-finite".into(),
                    reason: "weights must be finite numbers".into(),
                }
                .into());
            }
            Ok(learned.value(row))
        })
        .collect()
}

/// The lists of related.parquet: (source, candidates in rank order), sources ascending.
pub fn read_related(dir: &Path) -> Result<Vec<(u32, Vec<u32>)>> {
    let path = dir.join(files::RELATED);
    let input = ParquetInput::open(&path)?;
    let columns = input.read_columns(&[
        (SOURCE_IDX, Expect::Exactly(DataType::UInt32)),
        ("rank", Expect::Exactly(DataType::UInt32)),
        (CANDIDATE_IDX, Expect::Exactly(DataType::UInt32)),
    ])?;
    let sources = u32_values(&columns[0], &path, SOURCE_IDX)?;
    let ranks = u32_values(&columns[1], &path, "rank")?;
    let candidates = u32_values(&columns[2], &path, CANDIDATE_IDX)?;
    let mut lists: Vec<(u32, Vec<u32>)> = Vec::new();
    for row in 0..sources.len() {
        match lists.last_mut() {
            Some((s, list)) if *s == sources[row] => {
                if ranks[row] as usize != list.len() + 1 {
                    bail!(
                        "{}: row {row}: rank {} follows rank {} of source_idx {}",
                        path.display(),
                        ranks[row],
                        list.len(),
                        sources[row]
                    );
                }
                list.push(candidates[row]);
            }
            _ => lists.push((sources[row], vec![candidates[row]])),
        }
    }
    Ok(lists)
}
