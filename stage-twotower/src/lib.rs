//! `stage-twotower`: the non-linear similarity of one objective. A query tower and a
//! candidate tower embed videos so that the cosine of (source, target) is high when users
//! who engaged with the source went on to engage with the target on a row routed to the
//! objective and positive for its label; every candidate pair is then scored with that cosine.
//!
//! Reads (in `--dir`):
//! - `interactions.parquet`: `user_idx`, `video_idx`, `ts`, `split` (sorted by user, time);
//!   `users.parquet` only for its row count (to check `user_idx`).
//! - `routing.parquet`: `user_idx`, `video_idx` (checked against interactions row by row)
//!   and `routed_<objective>` Boolean.
//! - `videos.parquet`: `video_id` and the side features (every column but the index, the id
//!   and `title`; text → embedded category, number → standardised input).
//! - `candidates.parquet`: `source_idx`, `candidate_idx` UInt32.
//!
//! Writes (in `--dir`):
//! - `twotower_<objective>.parquet`: one row per candidates.parquet row, same order:
//!   `source_idx` UInt32, `source_id`, `candidate_idx` UInt32, `candidate_id`,
//!   `nonlinear_score` Float32 = cos(query(source), candidate(candidate)).
//! - `twotower_<objective>_videos.parquet`: `video_idx`, `video_id`, `query_embedding` and
//!   `candidate_embedding` FixedSizeList<Float32, output_dim>, one row per video.
//! - `twotower_<objective>.safetensors`: `query.*` and `candidate.*` weights (embedding
//!   tables, `mlp.<i>.weight` stored `(in, out)`, `mlp.<i>.bias`).
//!
//! Pairs: within one user and one split, video a then video b ≠ a no more than
//! `window_hours` later, the row of b routed to the objective and positive for its label
//! (every row counts as an engagement for a), at most `max_pairs_per_user` per user and
//! split. Train pairs train (each epoch a fresh seeded sample of at most `max_train_pairs`),
//! valid pairs (a fixed seeded sample of at most `max_valid_pairs`) drive early stopping
//! and the reported AUC. Loss: see `train.rs`.
//!
//! Videos that appear in no pair keep their small initial id embedding, so their embeddings
//! rest on the side features alone.
//!
//! Environment: `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS` are set from `--threads` (and
//! to 1) unless already set; see `relvid_nn::device::configure_process`. Outputs are byte-identical for a seed on the CPU whatever
//! `--threads`; `--device cuda` gives no such promise.

pub mod args;
pub mod bench;
pub mod config;
pub mod inputs;
pub mod model;
pub mod negatives;
pub mod output;
pub mod pairs;
pub mod train;

use std::time::Instant;

use anyhow::{Context, Result};
use common::features::EntityFeatures;
use common::schema::{files, NON_FEATURE_COLUMNS, VIDEO_ID, VIDEO_IDX};
use common::{Error, IdColumn, Interactions, ParquetInput, Split, Summary};

use crate::config::Config;
use crate::model::{Side, TwoTowerModel};
use crate::negatives::AliasSampler;
use crate::pairs::build_pairs;
use crate::train::TrainData;

/// Stage name in logs, metadata and the summary.
pub const STAGE: &str = "stage-twotower";

/// Videos per forward pass when embedding the whole catalogue.
pub const EMBED_CHUNK: usize = 8192;

/// File names of one objective's outputs.
pub fn output_files(objective: &str) -> [String; 3] {
    [
        format!("twotower_{objective}.parquet"),
        format!("twotower_{objective}_videos.parquet"),
        format!("twotower_{objective}.safetensors"),
    ]
}

/// Runs the stage: read, build pairs, train, embed, score, write.
pub fn run(config: &Config) -> Result<Summary> {
    let started = Instant::now();
    let config_json = config.to_json();
    let objective = &config.objective.name;
    tracing::info!("{STAGE}: config {config_json}");
    let device = relvid_nn::select_device(config.device)?;

    // Inputs.
    let label = &config.objective.label;
    let table = Interactions::load(&config.dir, &[label.signal.as_str()])?;
    let interactions_path = config.dir.join(files::INTERACTIONS);
    if table.is_empty() {
        return Err(Error::Empty {
            path: interactions_path,
            what: "no interactions".into(),
        }
        .into());
    }
    inputs::check_sorted(&table)?;
    let routed = inputs::read_routed(&config.dir, objective, &table)?;

    // A target is a row the Coordinating Network routed to the objective AND that carries
    // the objective's positive label: routing alone (chosen for recall) admits many rows of
    // other behaviour, and a tower trained on them would learn plain co-watching for every
    // objective instead of, say, "watched a, then disliked b".
    let targets = target_rows(&routed, &table.labels(label));
    let videos_path = config.dir.join(files::VIDEOS);
    let video_ids = IdColumn::read(&ParquetInput::open(&videos_path)?, VIDEO_IDX, VIDEO_ID)?;
    let mut skip = vec![VIDEO_IDX, VIDEO_ID];
    skip.extend_from_slice(NON_FEATURE_COLUMNS);
    let features = EntityFeatures::read(&videos_path, &skip)
        .with_context(|| format!("reading side features of {}", videos_path.display()))?;
    let candidates = inputs::read_candidates(&config.dir, table.n_videos)?;
    let names = |list: Vec<&str>| {
        if list.is_empty() {
            "none".to_string()
        } else {
            list.join(", ")
        }
    };
    tracing::info!(
        "video features: categorical {}; numeric {}",
        names(
            features
                .categorical
                .iter()
                .map(|f| f.name.as_str())
                .collect()
        ),
        names(features.numeric.iter().map(|f| f.name.as_str()).collect())
    );

    // Pairs, and popularity for the negatives.
    let section = &config.section;
    let window_ms = section.window_ms();
    let pairs_of = |targets: &[bool], split| {
        build_pairs(
            &table,
            targets,
            split,
            window_ms,
            section.max_pairs_per_user,
            config.seed,
        )
    };
    let mut pairs = (
        pairs_of(&targets, Split::Train),
        pairs_of(&targets, Split::Valid),
    );

    // A rare objective may have no positive routed row after another row of the same user
    // in one split (KuaiRand's follow in a small slice). Then the routed rows alone serve as
    // targets, with a warning, rather than leaving the objective without a model.
    let targets_fallback = pairs.0.is_empty() || pairs.1.is_empty();
    if targets_fallback {
        tracing::warn!(
            "objective {objective}: no train or valid pair ends on a routed row positive for              its label; training on every routed row instead"
        );
        pairs = (
            pairs_of(&routed, Split::Train),
            pairs_of(&routed, Split::Valid),
        );
    }
    let (train_pairs, valid_pairs) = pairs;
    for (pairs, split) in [(&train_pairs, Split::Train), (&valid_pairs, Split::Valid)] {
        if pairs.is_empty() {
            let what = format!(
                "objective {objective}: no {} pairs (no row routed to it follows another row of \
                 the same user within window_hours = {}); raise window_hours or check routing",
                split.as_str(),
                section.window_hours
            );
            return Err(Error::Empty {
                path: interactions_path,
                what,
            }
            .into());
        }
    }
    let mut popularity = vec![0u32; table.n_videos as usize];
    for (row, &video) in table.video_idx.iter().enumerate() {
        popularity[video as usize] += (table.split[row] == Split::Train) as u32;
    }
    // Valid targets never seen in train: their embeddings rest on side features alone, and
    // a high share pulls the valid AUC towards 0.5.
    let n_cold = valid_pairs
        .target
        .iter()
        .filter(|&&v| popularity[v as usize] == 0)
        .count();
    let valid_cold_target_share = n_cold as f64 / valid_pairs.len() as f64;
    let n_valid_pairs = valid_pairs.len();
    let valid_pairs = valid_pairs.sample(section.max_valid_pairs, config.seed, "valid-sample");
    let sampler = AliasSampler::from_popularity(&popularity);
    let n_routed_train = (0..table.len())
        .filter(|&r| routed[r] && table.split[r] == Split::Train)
        .count();
    tracing::info!(
        "objective {objective}: {n_routed_train} routed train rows, {} train pairs ({} per epoch), {n_valid_pairs} valid pairs ({} used), {} users capped at {}, {} candidate rows",
        train_pairs.len(),
        relvid_nn::batches::per_epoch(train_pairs.len(), section.max_train_pairs),
        valid_pairs.len(),
        train_pairs.n_capped_users + valid_pairs.n_capped_users,
        section.max_pairs_per_user,
        candidates.source.len()
    );

    // Training, then every video through both towers.
    let mut model = TwoTowerModel::new(features, section, config.seed, &device)?;
    let data = TrainData {
        train: &train_pairs,
        valid: &valid_pairs,
        sampler: &sampler,
    };
    let report = train::train(&mut model, &data, section, config.seed)?;
    let query = train::embed_all(&model, Side::Query, EMBED_CHUNK)?;
    let candidate = train::embed_all(&model, Side::Candidate, EMBED_CHUNK)?;
    let dim = section.output_dim;
    relvid_nn::finite::check_finite("query embeddings", &query, dim, "the final pass")?;
    relvid_nn::finite::check_finite("candidate embeddings", &candidate, dim, "the final pass")?;
    let scores = output::score_candidates(&candidates, &query, &candidate, dim);

    // Outputs.
    let meta = common::stage_meta(
        STAGE,
        env!("CARGO_PKG_VERSION"),
        config.seed,
        config_json.clone(),
    );
    let [scores_name, videos_name, model_name] = output_files(objective);
    let scores_path = config.dir.join(scores_name);
    let videos_out = config.dir.join(videos_name);
    let model_path = config.dir.join(model_name);
    // twotower_<objective>.parquet is make's target, so it is renamed into place last: a run
    // killed before that leaves no target beside a missing or stale embeddings file.
    let n_videos = output::write_videos(&videos_out, &video_ids, &query, &candidate, dim, &meta)?;
    let tensors = model.tensors()?;
    relvid_nn::params::save_safetensors(&model_path, &tensors)
        .with_context(|| format!("saving the model to {}", model_path.display()))?;
    let n_scores = output::write_scores(&scores_path, &candidates, &scores, &video_ids, &meta)?;

    let mut summary = Summary::new(STAGE, config.seed, config_json);
    summary.input(&interactions_path, table.len() as u64);
    summary.input(&config.dir.join(files::ROUTING), routed.len() as u64);
    summary.input(&videos_path, table.n_videos as u64);
    summary.input(
        &config.dir.join(files::CANDIDATES),
        candidates.source.len() as u64,
    );
    summary.output(&scores_path, n_scores);
    summary.output(&videos_out, n_videos);
    summary.output(&model_path, tensors.len() as u64);
    summary.metric("objective", objective);
    summary.metric("routed_train_rows", n_routed_train);
    summary.metric("targets_fallback", targets_fallback);
    summary.metric("train_pairs", train_pairs.len());
    summary.metric("valid_pairs", n_valid_pairs);
    summary.metric("valid_pairs_used", valid_pairs.len());
    summary.metric(
        "capped_users",
        train_pairs.n_capped_users + valid_pairs.n_capped_users,
    );
    summary.metric("epochs", &report.epochs);
    summary.metric("best_epoch", report.best_epoch);
    summary.metric("stopped_early", report.stopped_early);
    summary.metric("train_pairs_per_s", report.train_pairs_per_s.round());
    let best = &report.epochs[report.best_epoch - 1];
    summary.metric("valid_loss", best.valid_loss);
    summary.metric("valid_auc", best.valid_auc);
    summary.metric("valid_cold_target_share", valid_cold_target_share);
    let mean_score = scores.iter().map(|&s| s as f64).sum::<f64>() / scores.len().max(1) as f64;
    summary.metric("mean_nonlinear_score", mean_score);
    Ok(summary.finish(started))
}

/// Rows that may end a training pair: routed to the objective and positive for its label
/// (a missing label, -1, is not positive).
fn target_rows(routed: &[bool], labels: &[i8]) -> Vec<bool> {
    routed
        .iter()
        .zip(labels)
        .map(|(&routed, &label)| routed && label == 1)
        .collect()
}

#[cfg(test)]
mod target_tests {
    use super::target_rows;

    #[test]
    fn targets_need_both_routing_and_a_positive_label() {
        let routed = [true, true, false, true];
        let labels = [1, 0, 1, -1];
        assert_eq!(
            target_rows(&routed, &labels),
            vec![true, false, false, false]
        );
    }
}
