//! `stage-merge`: one ranked related-video list per video from the per-objective models.
//!
//! Reads, in the dataset folder:
//! - `candidates.parquet`: `source_idx` UInt32, `source_id`, `candidate_idx` UInt32,
//!   `candidate_id` (Int64 or Utf8), `score` Float32 (co-visitation), sorted by source;
//! - `routing.parquet`: `user_idx` UInt32, `ts` Timestamp(ms), `split` Utf8 (test rows are
//!   skipped), `p_<obj>` Float32 per objective;
//! - per objective, `als_<obj>.parquet` (`linear_score` Float32) and
//!   `twotower_<obj>.parquet` (`nonlinear_score` Float32), each with `source_idx` and
//!   `candidate_idx` equal to candidates.parquet's, row by row;
//! - under `combine = "calibrated_max"` only: `interactions.parquet`, whose valid-split rows
//!   give the labels the calibration is fitted to (`truth::read_rows`; never the test rows).
//!
//! Writes `weights.parquet` (see `weights`), then `related.parquet` (see `rank`), each
//! through a temporary file; related.parquet is renamed into place last, so its presence
//! means both are complete.
//!
//! The score of a pair is sum_k a_k w_k t_k + f_0 c (`score`), where
//! - s_k is the max of the ALS and two-tower scores (`combine = "max"`, default), each
//!   first replaced by its mid-rank percentile among all candidate pairs (`scale`), since
//!   the two models' scores are not on one scale; `calibrated_max` maps each instead to
//!   its calibrated probability that the candidate is engaged with the objective's label
//!   after the source (fitted on the valid split, `calibrate`); `blend` mixes the two
//!   percentiles; t_k = s_k, except that a negative objective's
//!   similarity counts as relatedness up to the positive objectives' mean and is penalised
//!   only above it;
//! - c is the percentile of the co-visitation score (its calibrated probability of
//!   "engaged after" under `calibrated_max`), with f_0 = covisitation_weight x the
//!   sum of the positive a_k w_k;
//! - a_k is the manual weight of the objective (its sign is the objective's direction);
//! - w_k = |beta_k| / mean_j |beta_j| from a logistic regression of "the user is active next
//!   week" on the user's weekly mean routing probabilities p_k (`retention`, `logistic`,
//!   `weights`); w_k = 1 for all k when no honest fit exists (log under two weeks, fewer
//!   than `min_user_weeks` labelled user-weeks, one label only), flagged in weights.parquet.
//!
//! Not done here: the learned weights say how strongly each objective's engagement goes
//! with retention across users; they are not causal effects, and they do not depend on the
//! source video.

pub mod args;
pub mod calibrate;
pub mod config;
pub mod inputs;
pub mod logistic;
pub mod rank;
pub mod retention;
pub mod score;
pub mod truth;
pub mod weights;

use common::scale;

use std::time::Instant;

use anyhow::Result;
use common::schema::files;
use common::{AtomicParquetWriter, Summary};

pub use config::Config;

/// Stage name in logs, summaries and file metadata.
pub const STAGE: &str = "stage-merge";

/// Merges the per-objective scores and writes `weights.parquet` and `related.parquet`.
pub fn run(config: &Config) -> Result<Summary> {
    let started = Instant::now();
    let dir = &config.dir;
    tracing::info!("{STAGE}: settings {}", config.to_json());
    let mut summary = Summary::new(STAGE, config.seed, config.to_json());

    // 1. Candidate pairs, then each objective's two aligned score columns, scaled as read
    //    so that only one raw column is held at a time.
    let candidates = inputs::read_candidates(dir)?;
    summary.input(&candidates.path, candidates.len() as u64);
    let calibrated = config.score.calibrated();
    let (objective_labels, engaged_labels) = if calibrated {
        let labels: Vec<common::LabelRule> =
            config.objectives.iter().map(|o| o.label.clone()).collect();
        calibrate::valid_labels(
            dir,
            &labels,
            config.score.calibration_window_ms,
            &candidates.source_idx,
            &candidates.candidate_idx,
        )?
    } else {
        (Vec::new(), Vec::new())
    };
    // Under calibrated_max each column becomes a probability, otherwise a percentile.
    let to_scale = |score: &[f32], k: Option<usize>, what: &str| -> Result<Vec<f32>> {
        if !calibrated {
            return Ok(scale::empirical_cdf(score));
        }
        let labels = k.map_or(&engaged_labels, |k| &objective_labels[k]);
        calibrate::calibrate(score, labels, what)
    };
    let bar = common::progress::bar(config.objectives.len() as u64, "objectives");
    let mut similarity: Vec<Vec<f32>> = Vec::with_capacity(config.objectives.len());
    for (k, objective) in config.objectives.iter().enumerate() {
        let (als_path, twotower_path) = inputs::score_files(dir, &objective.name);
        let linear = common::aligned::read_aligned_scores(
            &als_path,
            inputs::LINEAR_SCORE,
            &candidates.pairs(),
        )?;
        let linear_cdf = to_scale(&linear, Some(k), &format!("als_{}", objective.name))?;
        drop(linear);
        let nonlinear = common::aligned::read_aligned_scores(
            &twotower_path,
            inputs::NONLINEAR_SCORE,
            &candidates.pairs(),
        )?;
        let nonlinear_cdf = to_scale(&nonlinear, Some(k), &format!("twotower_{}", objective.name))?;
        drop(nonlinear);
        let s = config.score.similarity(&linear_cdf, &nonlinear_cdf);
        let from_linear = linear_cdf
            .iter()
            .zip(&nonlinear_cdf)
            .filter(|(a, b)| a >= b)
            .count();
        tracing::info!(
            "objective {}: the ALS {} is the larger on {:.1} % of pairs",
            objective.name,
            if calibrated {
                "probability"
            } else {
                "percentile"
            },
            100.0 * from_linear as f64 / candidates.len() as f64
        );
        summary.input(&als_path, candidates.len() as u64);
        summary.input(&twotower_path, candidates.len() as u64);
        similarity.push(s);
        bar.inc(1);
    }
    bar.finish_and_clear();

    // 2. Learned weights from next-week retention.
    let names: Vec<&str> = config.objectives.iter().map(|o| o.name.as_str()).collect();
    let weeks = retention::read_user_weeks(dir, &names)?;
    summary.input(&dir.join(files::ROUTING), weeks.n_rows);
    tracing::info!(
        "routing: {} rows, {} active user-weeks, {} labelled, span {:.1} days",
        weeks.n_rows,
        weeks.n_active_user_weeks,
        weeks.len(),
        weeks.span_ms as f64 / 86_400_000.0
    );
    let learned = weights::learn(&weeks, config)?;
    for (objective, beta) in config
        .objectives
        .iter()
        .zip(learned.coefficients.iter().flatten())
    {
        // |beta| sets the weight and a_k the direction by design; a disagreement is worth
        // a look, since it boosts an objective whose engagement goes with users leaving.
        if learned.fallback.is_none() && beta * objective.weight < 0.0 {
            tracing::warn!(
                "objective {}: retention coefficient {beta:.4} has the opposite sign of its \
                 manual weight {}; the learned weight uses |coefficient|",
                objective.name,
                objective.weight
            );
        }
    }
    let factors: Vec<f64> = config
        .objectives
        .iter()
        .zip(&learned.weights)
        .map(|(o, w)| o.weight * w)
        .collect();
    for ((objective, w), factor) in config.objectives.iter().zip(&learned.weights).zip(&factors) {
        tracing::info!(
            "objective {}: a = {}, w = {w:.4}, a*w = {factor:.4}",
            objective.name,
            objective.weight
        );
    }

    // 3. Score terms, rank and write: weights first, related last.
    let covisitation_cdf = to_scale(&candidates.score, None, "co-visitation")?;
    let negative = config.score.negative_terms(&similarity, &factors);
    let terms = score::terms(
        &similarity,
        &negative,
        &covisitation_cdf,
        &factors,
        &config.score,
    );
    tracing::info!(
        "co-visitation term: factor {:.4}",
        terms.factors.last().copied().unwrap_or(0.0)
    );
    let ranked = rank::rank(&candidates, &terms, config.top_n);
    // The output folder is left out of the files' metadata (the summary still has it), so
    // the same inputs and seed give the same bytes wherever the dataset folder lies, as
    // every other stage's outputs do.
    let mut in_files = config.to_json();
    if let Some(map) = in_files.as_object_mut() {
        map.remove("dir");
    }
    let meta = common::stage_meta(STAGE, env!("CARGO_PKG_VERSION"), config.seed, in_files);
    let weights_path = dir.join(files::WEIGHTS);
    let related_path = dir.join(files::RELATED);
    let object_names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let schema = rank::schema(candidates.source_id.data_type(), &object_names);
    let mut writer = AtomicParquetWriter::create(&related_path, schema, &meta)?;
    rank::write(&mut writer, &candidates, &ranked, &similarity, &terms)?;
    let weight_rows = weights::write(&weights_path, config, &learned, &meta)?;
    let related_rows = writer.finish()?;
    summary.output(&weights_path, weight_rows);
    summary.output(&related_path, related_rows);

    // 4. Summary.
    let n_sources = ranked.rank.iter().filter(|&&r| r == 1).count();
    summary.metric("n_sources", n_sources);
    summary.metric(
        "mean_list_length",
        round3(related_rows as f64 / n_sources.max(1) as f64),
    );
    summary.metric("fallback", learned.fallback.is_some());
    summary.metric("fallback_reason", &learned.fallback);
    summary.metric("auc", learned.auc.map(round4));
    summary.metric("n_user_weeks", learned.n_user_weeks);
    summary.metric("n_train_user_weeks", learned.n_train);
    summary.metric("n_holdout_user_weeks", learned.n_holdout);
    summary.metric("retention_rate", learned.retention_rate.map(round4));
    summary.metric("newton_iterations", learned.iterations);
    let learned_map: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(&learned.weights)
        .map(|(n, w)| (n.to_string(), round4(*w).into()))
        .collect();
    summary.metric("learned_weights", learned_map);
    summary.metric(
        "covisitation_factor",
        round4(terms.factors.last().copied().unwrap_or(0.0)),
    );
    Ok(summary.finish(started))
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}
