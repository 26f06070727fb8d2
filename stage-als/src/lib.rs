//! stage-als: alternating least squares factors for one objective, and the score of every
//! candidate video pair under those factors (the "linear" score, `similarity`).
//!
//! Inputs, in the dataset folder:
//! - `interactions.parquet`: `user_idx` UInt32, `video_idx` UInt32, `split` Utf8, the
//!   objective's label signal and the `value` signal (Boolean or Float32, nullable);
//! - `routing.parquet`: `user_idx`, `video_idx` (same rows and order as interactions),
//!   `routed_<objective>` Boolean;
//! - `users.parquet`, `videos.parquet`: `user_idx`/`video_idx` UInt32 and the original
//!   `user_id`/`video_id` (Int64 or Utf8);
//! - `candidates.parquet`: `source_idx` UInt32, `candidate_idx` UInt32.
//!
//! Outputs (written through `<file>.tmp` and a rename; als_<objective>.parquet last):
//! - `als_<objective>_users.parquet`: `user_idx` UInt32, `user_id`, `factors`
//!   FixedSizeList<Float32, k> (null for a user without factor);
//! - `als_<objective>_videos.parquet`: `video_idx` UInt32, `video_id`, `factors` (same);
//! - `als_<objective>.parquet`: one row per candidates row, same order: `source_idx` UInt32,
//!   `source_id`, `candidate_idx` UInt32, `candidate_id`, `linear_score` Float32 (by
//!   default the mean factor of the source's audience dotted with the candidate's factor,
//!   or the cosine of the two videos' factors: `similarity`; 0 when the pair cannot be
//!   scored).
//!
//! Which rows train, and how explicit and implicit feedback are weighted, is described in
//! `load`; the model and its two losses in `fit`; the solvers in `solve`. An entity gets a
//! factor when it has a training row (explicit mode) or a positive training row (implicit
//! mode). The stage does not use side features, does not score pairs outside
//! candidates.parquet, and does not keep the best iteration when early stopping: the
//! factors are those of the last iteration run.
//!
//! The ALS core (`fit_explicit` on a `RatingsCsr` or `RatingRowsCsr`, `fit_implicit` on an
//! `ImplicitCsr`) reads no files and is public, for tests and for the `als-bench` binary,
//! which times it on the anchors' holdout splits (`evaluate` holds the held-out measures). Threads: `--threads`
//! or `RELVID_THREADS` (0 = all cores); results do not depend on the count. On x86-64
//! CPUs with AVX2 and FMA the kernels use fused multiply-adds (and, for k a multiple of
//! 4, the explicit AVX2 kernels of `avx2`), so factors can differ in the last bits from a
//! machine without them. Normal equations are built and solved in f64; factors are
//! stored f32.

pub mod args;
pub mod avx2;
pub mod evaluate;
pub mod fit;
pub mod kernels;
pub mod load;
pub mod matrix;
pub mod metrics;
pub mod pages;
pub mod params;
pub mod similarity;
pub mod solve;
pub mod write;

use std::time::Instant;

use anyhow::{anyhow, Result};
use common::ids::read_entity_ids;
use common::io::AtomicParquetWriter;
use common::schema::{files, USER_ID, USER_IDX, VIDEO_ID, VIDEO_IDX};
use common::Summary;
use rayon::prelude::*;
use serde_json::json;

pub use args::{Args, Config};
pub use fit::{
    fit_explicit, fit_from, fit_implicit, AlsModel, Factors, FitError, IterationStats, Side,
};
pub use matrix::{Implicit, ImplicitCsr, RatingRows, RatingRowsCsr, RatingsCsr};
pub use metrics::Holdout;
pub use params::{AlsParams, AlsSection, FitParams};

use crate::load::{load_training, read_candidates, TrainMatrix};
use crate::metrics::Loss;
use crate::params::Mode;

/// Name of the stage in logs, metadata and the summary.
pub const STAGE: &str = "stage-als";

/// Runs the stage: read, fit, score, write; returns the summary.
pub fn run(config: &Config) -> Result<Summary> {
    let started = Instant::now();
    let objective = &config.objective.name;
    let effective = config.to_json();
    tracing::info!("objective {objective}: effective settings {effective}");

    // Inputs. Candidates are read before training so that a bad file fails fast.
    let (user_ids, video_ids) = read_entity_ids(&config.dir)?;
    let data = load_training(&config.dir, &config.objective, &config.params)?;
    let (sources, candidates) = read_candidates(&config.dir, video_ids.len())?;
    tracing::info!(
        "{} train rows ({} positive, {} negative) -> {} cells; {} validation rows; {} candidate pairs",
        data.train_rows,
        data.train_positive_rows,
        data.train_negative_rows,
        data.matrix.nnz(),
        data.valid_rows,
        sources.len()
    );

    if config.params.mode == Mode::Explicit
        && config.params.value == params::ValueSource::Label
        && data.train_negative_rows == 0
    {
        tracing::warn!(
            "objective {objective}: every routed train row is labelled 1, so the explicit \
             regression target is constant; mode = \"implicit\" ranks such data"
        );
    }

    // Fit.
    let fit = &config.params.fit;
    let (train_name, valid_name) = match config.params.mode {
        Mode::Explicit => (<f32 as Loss>::TRAIN_METRIC, <f32 as Loss>::VALID_METRIC),
        Mode::Implicit => (
            <Implicit as Loss>::TRAIN_METRIC,
            <Implicit as Loss>::VALID_METRIC,
        ),
    };
    let bar = common::progress::bar(fit.iterations as u64, "ALS sweeps");
    let mut on_iteration = |stats: &IterationStats| {
        let mut line = format!("{train_name} {:.6}", stats.train_metric);
        if let Some(valid) = stats.valid_metric {
            line += &format!(
                ", {valid_name} {valid:.6} ({} scored)",
                stats.n_valid_scored
            );
        }
        tracing::info!(
            "iteration {}/{}: {line}, {:.2} s",
            stats.iteration,
            fit.iterations,
            stats.sweep_seconds + stats.metric_seconds
        );
        bar.set_message(line);
        bar.inc(1);
    };
    let holdout = (!data.holdout.is_empty()).then_some(&data.holdout);
    let fitted = match &data.matrix {
        TrainMatrix::Explicit(m) => fit_explicit(m, holdout, fit, &mut on_iteration),
        TrainMatrix::ExplicitRows(m) => fit_explicit(m, holdout, fit, &mut on_iteration),
        TrainMatrix::Implicit(m) => fit_implicit(m, holdout, fit, &mut on_iteration),
    };
    bar.finish_and_clear();
    let model = fitted.map_err(|error| {
        anyhow!(error.describe(|side, row| match side {
            Side::User => format!("{} (user_idx {row})", user_ids.display(row as u32)),
            Side::Video => format!("{} (video_idx {row})", video_ids.display(row as u32)),
        }))
    })?;

    // Score and write; the three files are published together, the scores last.
    let (scores, pairs_without_factor) = similarity::scores(
        config.params.similarity,
        &sources,
        &candidates,
        data.matrix.pattern(),
        &model.users,
        &model.videos,
    );
    // Such a pair scores 0, whatever the videos; when that is most pairs, the objective's
    // linear similarity says little and the merge leans on its other terms.
    if pairs_without_factor * 2 > sources.len() {
        let why = match config.params.similarity {
            similarity::Similarity::Audience => {
                "a candidate without a factor, or a source without an audience that has one"
            }
            similarity::Similarity::Cosine => "a video without a factor, or a zero factor",
        };
        tracing::warn!(
            "objective {objective}: {pairs_without_factor} of {} candidate pairs cannot be \
             scored ({why}: no routed training row gave them one), and score 0",
            sources.len()
        );
    }
    let meta = common::stage_meta(
        STAGE,
        env!("CARGO_PKG_VERSION"),
        config.seed,
        effective.clone(),
    );
    let users_path = config.dir.join(format!("als_{objective}_users.parquet"));
    let videos_path = config.dir.join(format!("als_{objective}_videos.parquet"));
    let scores_path = config.dir.join(format!("als_{objective}.parquet"));
    let user_batch = write::factor_batch(USER_IDX, USER_ID, &user_ids, &model.users)?;
    let video_batch = write::factor_batch(VIDEO_IDX, VIDEO_ID, &video_ids, &model.videos)?;
    let score_batch = write::score_batch(&sources, &candidates, &video_ids, scores)?;
    // Encoding and compressing the three files is the slow part and they are independent,
    // so it runs in parallel; publishing (finish = rename) stays in order, scores last.
    let writers = [
        (&users_path, &user_batch),
        (&videos_path, &video_batch),
        (&scores_path, &score_batch),
    ]
    .into_par_iter()
    .map(|(path, batch)| {
        let mut writer = AtomicParquetWriter::create(path, batch.schema(), &meta)?;
        writer.write(batch)?;
        Ok((path, writer))
    })
    .collect::<Result<Vec<_>>>()?;
    let mut summary = Summary::new(STAGE, config.seed, effective);
    summary.input(
        &config.dir.join(files::INTERACTIONS),
        data.interaction_rows as u64,
    );
    summary.input(
        &config.dir.join(files::ROUTING),
        data.interaction_rows as u64,
    );
    summary.input(&config.dir.join(files::CANDIDATES), sources.len() as u64);
    for (path, writer) in writers {
        let rows = writer.finish()?;
        summary.output(path, rows);
    }

    record_metrics(&mut summary, config, &data, &model, pairs_without_factor);
    Ok(summary.finish(started))
}

fn record_metrics(
    summary: &mut Summary,
    config: &Config,
    data: &load::TrainingData,
    model: &AlsModel,
    pairs_without_factor: usize,
) {
    summary.metric("objective", &config.objective.name);
    summary.metric("mode", config.params.mode);
    summary.metric("routed_rows", data.routed_rows);
    summary.metric("train_rows", data.train_rows);
    summary.metric("train_positive_rows", data.train_positive_rows);
    summary.metric("train_negative_rows", data.train_negative_rows);
    summary.metric("train_rows_missing_value", data.train_rows_missing_value);
    summary.metric("train_cells", data.matrix.nnz());
    summary.metric("valid_rows", data.valid_rows);
    summary.metric("users_with_factor", model.users.n_present());
    summary.metric(
        "users_without_factor",
        model.users.len() - model.users.n_present(),
    );
    summary.metric("videos_with_factor", model.videos.n_present());
    summary.metric(
        "videos_without_factor",
        model.videos.len() - model.videos.n_present(),
    );
    summary.metric("candidate_pairs_without_factor", pairs_without_factor);
    summary.metric("iterations_run", model.history.len());
    summary.metric("stopped_early", model.stopped_early);
    if let Some(last) = model.history.last() {
        summary.metric(model.train_metric_name, last.train_metric);
        summary.metric(model.valid_metric_name, last.valid_metric);
        summary.metric("valid_scored", last.n_valid_scored);
    }
    let sweep_seconds: f64 = model.history.iter().map(|s| s.sweep_seconds).sum();
    summary.metric(
        "seconds_per_iteration",
        sweep_seconds / model.history.len().max(1) as f64,
    );
    let history: Vec<_> = model
        .history
        .iter()
        .map(
            |s| json!({"iteration": s.iteration, "train": s.train_metric, "valid": s.valid_metric}),
        )
        .collect();
    summary.metric("history", history);
}
