//! `stage-coordinate`: the Coordinating Network. It predicts, for every interaction, the
//! probability p_k that each objective's label is positive, from who watched what and when
//! (never from the signals themselves), and routes the interaction to the objectives whose
//! p_k exceeds their threshold t_k. Downstream, each objective's ALS and two-tower models
//! train on the rows routed to it.
//!
//! Reads (in `--dir`):
//! - `interactions.parquet`: `user_idx` UInt32, `video_idx` UInt32, `ts` Timestamp(ms),
//!   `split` Utf8, and the signals named by the objectives' labels (only as labels).
//! - `users.parquet`, `videos.parquet`: every column but the index, the id and `title` is a
//!   side feature (text → embedded category, number → standardised input).
//!
//! Writes (in `--dir`):
//! - `routing.parquet`: the rows of interactions.parquet in the same order with `user_idx`,
//!   `video_idx`, `ts`, `split`, then per objective `p_<name>` Float32 and `routed_<name>`
//!   Boolean (p_k > t_k, plus the fallback below).
//! - `coordinate.safetensors`: embedding tables (`embedding.*`), MLP layers (`mlp.<i>.weight`
//!   stored `(in, out)`, `mlp.<i>.bias`) and `routing.thresholds` (F64, objective order).
//!
//! Model: user-id, video-id and categorical-feature embeddings, numeric side features and
//! the hour of day and day of week (UTC, sin/cos), through ReLU hidden layers to one logit
//! per objective. Loss: per objective, the mean log loss over the rows where its label is
//! present (rows with a missing signal are masked out), summed over objectives. Training
//! stops early on the same loss over the valid split (a fixed sample of `max_valid_rows`)
//! and keeps the best epoch's weights. Each epoch sees a fresh sample of `max_train_rows`
//! train rows, so an epoch costs the same on a 20M-row log as on a 5M-row one; the final
//! pass over every row runs in parallel chunks.
//!
//! Routing never leaves an objective without training data: if no train row with a positive
//! label is routed to it (or no valid/test row at all), its top `min_routed_fraction` rows
//! of that split by p_k are routed too, with a warning; the stage fails if the train split
//! still has no routed positive.
//!
//! Environment: `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS` are set from `--threads` (and
//! to 1) unless already set; see `relvid_nn::device::configure_process`.
//!
//! Not done here: no calibration of p_k, no per-user thresholds. Outputs are byte-identical
//! for a seed on the CPU whatever `--threads`; `--device cuda` gives no such promise.

pub mod args;
pub mod config;
pub mod features;
pub mod model;
pub mod output;
pub mod routing;
pub mod train;

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use common::schema::files;
use common::{Error, Interactions, Split, Summary};

use crate::config::Config;
use crate::features::SideFeatures;
use crate::model::CoordinateModel;
use crate::train::TrainData;

/// Stage name in logs, metadata and the summary.
pub const STAGE: &str = "stage-coordinate";

/// A routing valid AUC below this gets a warning: the routing is close to random.
const NEAR_CHANCE_AUC: f64 = 0.55;

/// The model file written next to routing.parquet.
pub const MODEL_FILE: &str = "coordinate.safetensors";

/// Runs the stage: read, train, route, write.
pub fn run(config: &Config) -> Result<Summary> {
    let started = Instant::now();
    let config_json = config.to_json();
    tracing::info!("{STAGE}: config {config_json}");
    let device = relvid_nn::select_device(config.device)?;

    // Inputs: the signals are loaded only to derive the labels.
    let signals: BTreeSet<&str> = config
        .objectives
        .iter()
        .map(|o| o.label.signal.as_str())
        .collect();
    let signals: Vec<&str> = signals.into_iter().collect();
    let table = Interactions::load(&config.dir, &signals)?;
    let side = SideFeatures::read(&config.dir)?;
    let interactions_path = config.dir.join(files::INTERACTIONS);
    if table.is_empty() {
        return Err(Error::Empty {
            path: interactions_path,
            what: "no interactions".into(),
        }
        .into());
    }
    let rows_of = |wanted: Split| -> Vec<u32> {
        (0..table.len() as u32)
            .filter(|&r| table.split[r as usize] == wanted)
            .collect()
    };
    let (train_rows, valid_rows) = (rows_of(Split::Train), rows_of(Split::Valid));
    if train_rows.is_empty() || valid_rows.is_empty() {
        let what = format!(
            "{} train and {} valid rows: the network needs both (valid drives early stopping); \
             set [split] valid_fraction > 0",
            train_rows.len(),
            valid_rows.len()
        );
        return Err(Error::Empty {
            path: interactions_path,
            what,
        }
        .into());
    }

    // Labels, and a first check that every objective can be learned at all.
    let labels: Vec<Vec<i8>> = config
        .objectives
        .iter()
        .map(|o| table.labels(&o.label))
        .collect();
    for (objective, objective_labels) in config.objectives.iter().zip(&labels) {
        if !train_rows
            .iter()
            .any(|&r| objective_labels[r as usize] == 1)
        {
            bail!(
                "objective {}: no positive label ({}) in the train split of {}",
                objective.name,
                objective.label.signal,
                interactions_path.display()
            );
        }
    }
    tracing::info!(
        "{} interactions ({} train, {} valid), {} users, {} videos; inputs: {}",
        table.len(),
        train_rows.len(),
        valid_rows.len(),
        table.n_users,
        table.n_videos,
        side.describe()
    );

    // Training.
    let mut model = CoordinateModel::new(
        side,
        &config.section,
        config.objectives.len(),
        config.seed,
        &device,
    )?;
    // Early stopping watches a fixed sample of the valid rows; thresholds use them all.
    let valid_sample = train::sample_rows(&valid_rows, config.section.max_valid_rows, config.seed);
    let data = TrainData {
        table: &table,
        labels: &labels,
        train_rows: &train_rows,
        valid_rows: &valid_sample,
    };
    let report = train::train(&mut model, &data, &config.section, config.seed)?;

    // Probabilities of every row, then routing.
    let all_rows: Vec<u32> = (0..table.len() as u32).collect();
    let logits = train::predict_logits(&model, &table, &all_rows)?;
    let n_objectives = config.objectives.len();
    let p: Vec<Vec<f32>> = (0..n_objectives)
        .map(|k| {
            let column = logits.iter().skip(k).step_by(n_objectives);
            column
                .map(|&x| (1.0 / (1.0 + (-(x as f64)).exp())) as f32)
                .collect()
        })
        .collect();
    let routing = routing::route(
        &config.objectives,
        &config.section,
        &p,
        &labels,
        &table.split,
    )?;
    for objective in &routing {
        tracing::info!(
            "objective {}: t = {:.4} ({:?}), routed {:.1}% of rows ({:.1}% of train), valid AUC {}, test AUC {}",
            objective.name,
            objective.threshold,
            objective.threshold_source,
            100.0 * objective.routed_share,
            100.0 * objective.routed_share_train,
            objective.valid_auc.map_or("n/a".into(), |a| format!("{a:.4}")),
            objective.test_auc.map_or("n/a".into(), |a| format!("{a:.4}")),
        );
        // Routing by a probability that does not rank the objective's labels is close to
        // routing at random: the objective's models then learn from an arbitrary subset.
        if let Some(auc) = objective.valid_auc.filter(|&a| a < NEAR_CHANCE_AUC) {
            tracing::warn!(
                "objective {}: the Coordinating Network's valid AUC is {auc:.3}, near or below \
                 chance, so its routing ({:.1}% of rows) hardly depends on the label (too few \
                 or too noisy positives in this log, or a wrong label rule)",
                objective.name,
                100.0 * objective.routed_share
            );
        }
    }

    // Outputs.
    let meta = common::stage_meta(
        STAGE,
        env!("CARGO_PKG_VERSION"),
        config.seed,
        config_json.clone(),
    );
    // routing.parquet is make's target, so the model is saved first and routing.parquet
    // renamed into place last: a run killed in between leaves no target beside a missing or
    // stale coordinate.safetensors.
    let routing_path = config.dir.join(files::ROUTING);
    let model_path = config.dir.join(MODEL_FILE);
    let mut tensors = model.tensors()?;
    let thresholds: Vec<f64> = routing.iter().map(|o| o.threshold).collect();
    tensors.insert(
        "routing.thresholds".into(),
        Tensor::from_vec(thresholds, n_objectives, &device)?,
    );
    relvid_nn::params::save_safetensors(&model_path, &tensors)
        .with_context(|| format!("saving the model to {}", model_path.display()))?;
    let rows_written = output::write_routing(&routing_path, &table, &p, &routing, &meta)?;

    let mut summary = Summary::new(STAGE, config.seed, config_json);
    summary.input(&interactions_path, table.len() as u64);
    summary.input(&config.dir.join(files::USERS), table.n_users as u64);
    summary.input(&config.dir.join(files::VIDEOS), table.n_videos as u64);
    summary.output(&routing_path, rows_written);
    summary.output(&model_path, tensors.len() as u64);
    summary.metric("train_rows", train_rows.len());
    summary.metric("valid_rows", valid_rows.len());
    summary.metric("valid_rows_for_early_stopping", valid_sample.len());
    summary.metric("train_rows_per_epoch", report.epochs[0].train_rows);
    summary.metric("inputs", model.n_inputs());
    summary.metric("epochs", &report.epochs);
    summary.metric("best_epoch", report.best_epoch);
    summary.metric("stopped_early", report.stopped_early);
    summary.metric("train_rows_per_s", report.train_rows_per_s.round());
    let best = &report.epochs[report.best_epoch - 1];
    summary.metric("valid_loss", best.valid_loss);
    summary.metric("valid_auc", best.valid_auc);
    summary.metric("objectives", &routing);
    Ok(summary.finish(started))
}
