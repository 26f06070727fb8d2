//! Reads the stage's inputs and turns the rows routed to the objective into ALS matrices.
//!
//! Reads interactions.parquet (split and the signals the objective needs), routing.parquet
//! (`routed_<objective>`, checked row by row against interactions.parquet) and
//! candidates.parquet (`source_idx`, `candidate_idx`). Which rows count and how:
//! - a row trains when it is in the train split, routed to the objective, and has a label
//!   (and, with `value` a signal, that signal);
//! - explicit mode: the target is the value (the 0/1 label or the signal); rows repeating
//!   a (user, video) pair become one cell of their mean, or a cell weighing all of them
//!   (`repeated_ratings`);
//! - implicit mode: a row labelled 1 is a positive (preference 1, confidence
//!   1 + alpha * value); a row labelled 0 is an explicit negative (preference 0, confidence
//!   1 + alpha, whatever the value);
//! - validation rows (valid split, routed, labelled) feed the validation metric: all of
//!   them for the explicit RMSE, the positives for the implicit ranking loss.

use std::path::Path;

use anyhow::{Context, Result};
use arrow::array::{Array, BooleanArray};
use arrow::datatypes::DataType;
use common::columns::u32_values;
use common::io::{Expect, ParquetInput};
use common::schema::{files, Split, CANDIDATE_IDX, SOURCE_IDX, USER_IDX, VIDEO_IDX};
use common::{Error, Interactions, Objective};

use crate::matrix::{Implicit, ImplicitCsr, RatingRows, RatingRowsCsr, RatingsCsr};
use crate::metrics::Holdout;
use crate::params::{AlsParams, Mode, RepeatedRatings, ValueSource};

/// The training matrix of one mode.
#[derive(Debug, Clone)]
pub enum TrainMatrix {
    /// Explicit, a repeated pair's rows merged to their mean.
    Explicit(RatingsCsr),
    /// Explicit, every rating row counted.
    ExplicitRows(RatingRowsCsr),
    Implicit(ImplicitCsr),
}

impl TrainMatrix {
    /// The user-major sparsity pattern (indptr, video indices) of the cells.
    pub fn pattern(&self) -> (&[usize], &[u32]) {
        match self {
            TrainMatrix::Explicit(m) => (&m.indptr, &m.indices),
            TrainMatrix::ExplicitRows(m) => (&m.indptr, &m.indices),
            TrainMatrix::Implicit(m) => (&m.indptr, &m.indices),
        }
    }

    /// Number of merged (user, video) cells.
    pub fn nnz(&self) -> usize {
        match self {
            TrainMatrix::Explicit(m) => m.nnz(),
            TrainMatrix::ExplicitRows(m) => m.nnz(),
            TrainMatrix::Implicit(m) => m.nnz(),
        }
    }
}

/// What `load_training` found.
#[derive(Debug, Clone)]
pub struct TrainingData {
    pub n_users: usize,
    pub n_videos: usize,
    pub matrix: TrainMatrix,
    pub holdout: Holdout,
    /// Rows of interactions.parquet.
    pub interaction_rows: usize,
    /// Rows routed to the objective, any split.
    pub routed_rows: usize,
    /// Train rows that entered the matrix (before duplicates merge).
    pub train_rows: usize,
    /// Of those, rows labelled 1 and 0.
    pub train_positive_rows: usize,
    pub train_negative_rows: usize,
    /// Routed train rows left out because their label or value is missing.
    pub train_rows_missing_value: usize,
    /// Validation rows kept for the metric.
    pub valid_rows: usize,
}

/// Loads interactions and routing and builds the objective's training matrix and holdout.
pub fn load_training(
    dir: &Path,
    objective: &Objective,
    params: &AlsParams,
) -> Result<TrainingData> {
    let label_signal = objective.label.signal.as_str();
    let mut signals = vec![label_signal];
    if let ValueSource::Signal(signal) = &params.value {
        if signal != label_signal {
            signals.push(signal.as_str());
        }
    }
    let interactions = Interactions::load(dir, &signals)?;
    let routed = read_routing(dir, &objective.name, &interactions)?;

    let labels = interactions.labels(&objective.label);
    let value_column = match &params.value {
        ValueSource::Label => None,
        ValueSource::Signal(signal) => Some((signal.as_str(), interactions.signal(signal))),
    };
    let mut train = Rows::default();
    let mut valid = Holdout::default();
    let mut counts = (0usize, 0usize, 0usize, 0usize);
    for row in 0..interactions.len() {
        if !routed[row] {
            continue;
        }
        counts.0 += 1;
        let split = interactions.split[row];
        if split == Split::Test {
            continue;
        }
        let label = labels[row];
        let value = match value_column {
            None => (label >= 0).then_some(label as f32),
            Some((name, values)) => {
                let v = values[row];
                if v.is_infinite() {
                    return Err(bad_value(
                        &interactions.path,
                        name,
                        row,
                        v,
                        "values must be finite",
                    )
                    .into());
                }
                (!v.is_nan()).then_some(v)
            }
        };
        let (u, i) = (interactions.user_idx[row], interactions.video_idx[row]);
        match params.mode {
            Mode::Explicit => {
                let Some(value) = value else {
                    counts.3 += (split == Split::Train) as usize;
                    continue;
                };
                if split == Split::Train {
                    train.push(u, i, value);
                    counts.1 += (label == 1) as usize;
                    counts.2 += (label == 0) as usize;
                } else {
                    valid.users.push(u);
                    valid.videos.push(i);
                    valid.values.push(value);
                }
            }
            Mode::Implicit => {
                let cell = match implicit_cell(label, value, params.alpha) {
                    Ok(Some(cell)) => cell,
                    Ok(None) => {
                        counts.3 += (split == Split::Train) as usize;
                        continue;
                    }
                    Err(bad) => {
                        let name = value_column.map_or(label_signal, |(name, _)| name);
                        let reason = if bad < 0.0 {
                            "implicit confidence 1 + alpha * value needs value >= 0"
                        } else {
                            "implicit confidence 1 + alpha * value overflows f32 (lower alpha \
                             or rescale the column)"
                        };
                        return Err(bad_value(&interactions.path, name, row, bad, reason).into());
                    }
                };
                if split == Split::Train {
                    train.push_implicit(u, i, cell);
                    counts.1 += (label == 1) as usize;
                    counts.2 += (label == 0) as usize;
                } else if label == 1 {
                    valid.users.push(u);
                    valid.videos.push(i);
                    valid.values.push(1.0);
                }
            }
        }
    }

    let (routed_rows, positives, negatives, missing) = counts;
    let n_users = interactions.n_users as usize;
    let n_videos = interactions.n_videos as usize;
    let train_rows = train.users.len();
    let has_positive = match params.mode {
        Mode::Explicit => train_rows > 0,
        Mode::Implicit => positives > 0,
    };
    if !has_positive {
        return Err(Error::Empty {
            path: dir.join(files::ROUTING),
            what: format!(
                "objective \"{}\": no usable train row ({routed_rows} rows routed, {missing} train \
                 rows without a label or value{}); check routed_{} and the label rule \"{}\"",
                objective.name,
                if params.mode == Mode::Implicit { ", and implicit mode needs a positive" } else { "" },
                objective.name,
                label_signal,
            ),
        }
        .into());
    }

    let matrix = match (params.mode, params.repeated_ratings) {
        (Mode::Explicit, RepeatedRatings::Mean) => TrainMatrix::Explicit(
            RatingsCsr::from_triples(
                n_users,
                n_videos,
                &train.users,
                &train.videos,
                &train.values,
            )
            .context("building the training matrix")?,
        ),
        (Mode::Explicit, RepeatedRatings::Each) => {
            let rows: Vec<RatingRows> = train.values.iter().map(|&v| RatingRows::one(v)).collect();
            TrainMatrix::ExplicitRows(
                RatingRowsCsr::from_triples(n_users, n_videos, &train.users, &train.videos, &rows)
                    .context("building the training matrix")?,
            )
        }
        (Mode::Implicit, _) => TrainMatrix::Implicit(
            ImplicitCsr::from_triples(n_users, n_videos, &train.users, &train.videos, &train.cells)
                .context("building the training matrix")?,
        ),
    };
    Ok(TrainingData {
        n_users,
        n_videos,
        matrix,
        valid_rows: valid.len(),
        holdout: valid,
        interaction_rows: interactions.len(),
        routed_rows,
        train_rows,
        train_positive_rows: positives,
        train_negative_rows: negatives,
        train_rows_missing_value: missing,
    })
}

/// The implicit cell of one row: label 1 with value v gives preference 1 and confidence
/// 1 + alpha v; label 0 gives preference 0 and confidence 1 + alpha (an explicit negative
/// weighs like one positive event). `Ok(None)` for a row without label or, when positive,
/// without value; `Err(v)` for a positive with a negative value, or one whose confidence
/// overflows f32.
pub fn implicit_cell(label: i8, value: Option<f32>, alpha: f64) -> Result<Option<Implicit>, f32> {
    match (label, value) {
        (1, Some(v)) if v < 0.0 => Err(v),
        (1, Some(v)) => {
            let confidence = (1.0 + alpha * v as f64) as f32;
            if !confidence.is_finite() {
                return Err(v);
            }
            Ok(Some(Implicit {
                preference: 1.0,
                confidence,
            }))
        }
        (0, _) => Ok(Some(Implicit {
            preference: 0.0,
            confidence: (1.0 + alpha) as f32,
        })),
        _ => Ok(None),
    }
}

#[derive(Default)]
struct Rows {
    users: Vec<u32>,
    videos: Vec<u32>,
    values: Vec<f32>,
    cells: Vec<Implicit>,
}

impl Rows {
    fn push(&mut self, u: u32, i: u32, value: f32) {
        self.users.push(u);
        self.videos.push(i);
        self.values.push(value);
    }

    fn push_implicit(&mut self, u: u32, i: u32, cell: Implicit) {
        self.users.push(u);
        self.videos.push(i);
        self.cells.push(cell);
    }
}

fn bad_value(path: &Path, column: &str, row: usize, value: f32, reason: &str) -> Error {
    Error::BadValue {
        path: path.to_path_buf(),
        column: column.to_string(),
        row: row as u64,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Reads `routed_<objective>` from routing.parquet after checking that the file has the
/// same rows, in the same order, as interactions.parquet.
pub fn read_routing(dir: &Path, objective: &str, interactions: &Interactions) -> Result<Vec<bool>> {
    let path = dir.join(files::ROUTING);
    let input = ParquetInput::open(&path)?;
    let column = format!("routed_{objective}");
    let columns = [
        (USER_IDX, Expect::Exactly(DataType::UInt32)),
        (VIDEO_IDX, Expect::Exactly(DataType::UInt32)),
        (column.as_str(), Expect::Exactly(DataType::Boolean)),
    ];
    for (name, expect) in &columns {
        input.check_column(name, expect)?;
    }
    if input.n_rows() as usize != interactions.len() {
        return Err(Error::BadValue {
            path: path.clone(),
            column: USER_IDX.to_string(),
            row: input.n_rows().min(interactions.len() as u64),
            value: format!("{} rows", input.n_rows()),
            reason: format!(
                "{} has {} rows; routing.parquet must hold the same rows in the same order \
                 (re-run stage-coordinate)",
                interactions.path.display(),
                interactions.len()
            ),
        }
        .into());
    }

    let mut routed = Vec::with_capacity(interactions.len());
    for batch in input.batches(&columns)? {
        let batch = batch?;
        let offset = routed.len();
        let users = u32_values(batch.column(0), &path, USER_IDX)?;
        let videos = u32_values(batch.column(1), &path, VIDEO_IDX)?;
        for (name, found, expected) in [
            (
                USER_IDX,
                &users,
                &interactions.user_idx[offset..offset + users.len()],
            ),
            (
                VIDEO_IDX,
                &videos,
                &interactions.video_idx[offset..offset + videos.len()],
            ),
        ] {
            if let Some(row) = found.iter().zip(expected).position(|(a, b)| a != b) {
                return Err(Error::BadValue {
                    path: path.clone(),
                    column: name.to_string(),
                    row: (offset + row) as u64,
                    value: found[row].to_string(),
                    reason: format!(
                        "interactions.parquet has {} in this row; routing.parquet must hold the \
                         same rows in the same order (re-run stage-coordinate)",
                        expected[row]
                    ),
                }
                .into());
            }
        }
        let flags = batch
            .column(2)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("type checked above");
        if flags.null_count() > 0 {
            let row = (0..flags.len()).find(|&r| flags.is_null(r)).unwrap_or(0);
            return Err(Error::BadValue {
                path: path.clone(),
                column: column.clone(),
                row: (offset + row) as u64,
                value: "null".to_string(),
                reason: "routing flags may not be null".to_string(),
            }
            .into());
        }
        routed.extend(flags.values().iter());
    }
    Ok(routed)
}

/// Reads the (source, candidate) video pairs of candidates.parquet, checking every index
/// against the number of videos.
pub fn read_candidates(dir: &Path, n_videos: usize) -> Result<(Vec<u32>, Vec<u32>)> {
    let path = dir.join(files::CANDIDATES);
    let input = ParquetInput::open(&path)?;
    let columns = input.read_columns(&[
        (SOURCE_IDX, Expect::Exactly(DataType::UInt32)),
        (CANDIDATE_IDX, Expect::Exactly(DataType::UInt32)),
    ])?;
    let sources = u32_values(&columns[0], &path, SOURCE_IDX)?;
    let candidates = u32_values(&columns[1], &path, CANDIDATE_IDX)?;
    for (name, values) in [(SOURCE_IDX, &sources), (CANDIDATE_IDX, &candidates)] {
        if let Some(row) = values.iter().position(|&v| v as usize >= n_videos) {
            return Err(Error::BadValue {
                path: path.clone(),
                column: name.to_string(),
                row: row as u64,
                value: values[row].to_string(),
                reason: format!("unknown video index: videos.parquet has {n_videos} rows"),
            }
            .into());
        }
    }
    Ok((sources, candidates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_rows_weigh_by_value_and_negatives_by_alpha() {
        let cell = |p: f32, c: f32| {
            Ok(Some(Implicit {
                preference: p,
                confidence: c,
            }))
        };
        assert_eq!(implicit_cell(1, Some(1.0), 10.0), cell(1.0, 11.0));
        assert_eq!(implicit_cell(1, Some(2.5), 2.0), cell(1.0, 6.0));
        assert_eq!(implicit_cell(0, Some(0.0), 10.0), cell(0.0, 11.0));
        assert_eq!(implicit_cell(0, None, 3.0), cell(0.0, 4.0));
    }

    #[test]
    fn rows_without_label_or_positive_value_are_skipped() {
        assert_eq!(implicit_cell(-1, Some(1.0), 10.0), Ok(None));
        assert_eq!(implicit_cell(1, None, 10.0), Ok(None));
    }

    #[test]
    fn negative_value_of_a_positive_is_an_error() {
        assert_eq!(implicit_cell(1, Some(-2.0), 10.0), Err(-2.0));
        assert_eq!(implicit_cell(1, Some(3e38), 10.0), Err(3e38));
    }
}
