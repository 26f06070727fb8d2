//! Training of the Coordinating Network: shuffled mini-batches of train interactions, log
//! loss per objective over the rows where that objective has a label, summed over
//! objectives; early stopping on the same loss over (a fixed sample of) the valid split.
//! Each epoch trains on a fresh seeded sample of at most `max_train_rows` train rows; each
//! batch is cut into `shards` pieces whose passes run in parallel and whose gradients are
//! summed in shard order, so results do not depend on the thread count.

use std::time::Instant;

use anyhow::Result;
use candle_core::Tensor;
use common::Interactions;
use rayon::prelude::*;
use relvid_nn::batches::{n_batches, per_epoch, sampled, subset};
use relvid_nn::optim::Adam;
use relvid_nn::{auc, report_epoch, AdamConfig, EarlyStopping, EpochFigures, Verdict};
use serde::Serialize;

use crate::config::CoordinateSection;
use crate::model::{CoordinateModel, Scratch};

/// Rows per forward pass when predicting (no gradient, so larger than a training batch).
pub const PREDICT_CHUNK: usize = 8192;

/// The interactions and labels the network learns from.
pub struct TrainData<'a> {
    pub table: &'a Interactions,
    /// Per objective, per row: 1, 0, or -1 where the label is missing.
    pub labels: &'a [Vec<i8>],
    pub train_rows: &'a [u32],
    pub valid_rows: &'a [u32],
}

/// Figures of one epoch.
#[derive(Debug, Clone, Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    /// Train rows of this epoch's sample.
    pub train_rows: usize,
    /// Train rows per second of this epoch's gradient steps (samples/s).
    pub train_rows_per_s: f64,
    pub train_loss: f64,
    pub valid_loss: f64,
    /// Mean over objectives of the valid AUC of p_k (objectives with both classes only).
    pub valid_auc: Option<f64>,
    pub seconds: f64,
}

/// Figures of the whole training.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub epochs: Vec<EpochReport>,
    /// The epoch whose weights were kept (lowest valid loss), 1-based.
    pub best_epoch: usize,
    pub stopped_early: bool,
    /// Train interactions per second of gradient steps.
    pub train_rows_per_s: f64,
}

/// Per-objective sums of the loss and counts of labelled rows, reduced in a fixed order.
struct LossSums {
    sums: Vec<f64>,
    counts: Vec<u64>,
}

impl LossSums {
    fn new(n: usize) -> LossSums {
        LossSums {
            sums: vec![0.0; n],
            counts: vec![0; n],
        }
    }

    /// Sum over objectives of the mean loss over labelled rows.
    fn total(&self) -> f64 {
        self.sums
            .iter()
            .zip(&self.counts)
            .filter(|(_, &count)| count > 0)
            .map(|(sum, &count)| sum / count as f64)
            .sum()
    }
}

/// Trains `model` in place and leaves it holding the weights of its best epoch.
pub fn train(
    model: &mut CoordinateModel,
    data: &TrainData,
    section: &CoordinateSection,
    seed: u64,
) -> Result<TrainReport> {
    let n_objectives = data.labels.len();
    let adam_config = AdamConfig::new(section.learning_rate, section.weight_decay);
    let mut adam = Adam::new(adam_config, model.params().vars())?;
    let mut scratches: Vec<Scratch> = (0..section.shards).map(|_| model.scratch()).collect();
    let mut stopper = EarlyStopping::new(section.patience);
    let mut best = model.snapshot()?;
    let mut epochs = Vec::new();
    let mut train_seconds = 0.0;
    let mut train_rows_seen = 0usize;

    // Each epoch trains on at most `max_train_rows` rows (a fresh sample per epoch).
    let rows_per_epoch = per_epoch(data.train_rows.len(), section.max_train_rows);
    let batches_per_epoch = n_batches(rows_per_epoch, section.batch_size);
    let bar = common::progress::bar((section.epochs * batches_per_epoch) as u64, "coordinate");
    let mut stopped_early = false;
    for epoch in 1..=section.epochs {
        let started = Instant::now();

        // Gradient steps over a fresh sample (or permutation) of the train rows.
        let order = sampled(
            data.train_rows.len(),
            section.max_train_rows,
            seed,
            "coordinate-shuffle",
            epoch,
        );
        let mut train_sums = LossSums::new(n_objectives);
        for batch in order.chunks(section.batch_size) {
            let rows: Vec<u32> = batch.iter().map(|&i| data.train_rows[i as usize]).collect();
            let step = sharded_step(model, &mut scratches, &mut adam, data, &rows, section)?;
            for k in 0..n_objectives {
                train_sums.sums[k] += step.sums[k];
                train_sums.counts[k] += step.counts[k];
            }
            bar.inc(1);
        }
        let epoch_train_seconds = started.elapsed().as_secs_f64();
        train_seconds += epoch_train_seconds;
        train_rows_seen += order.len();
        model.check_finite(&format!("epoch {epoch}"))?;

        // Valid loss and AUC with the epoch's weights.
        let logits = predict_logits(model, data.table, data.valid_rows)?;
        let (valid_loss, valid_auc) = evaluate(&logits, data.labels, data.valid_rows);
        let train_loss = train_sums.total();
        let report = EpochReport {
            epoch,
            train_rows: order.len(),
            train_rows_per_s: order.len() as f64 / epoch_train_seconds.max(1e-9),
            train_loss,
            valid_loss,
            valid_auc,
            seconds: started.elapsed().as_secs_f64(),
        };
        let figures = EpochFigures {
            epoch,
            n_epochs: section.epochs,
            train_loss,
            valid_loss,
            valid_auc,
            seconds: report.seconds,
        };
        let throughput = format!(", {:.0} rows/s", report.train_rows_per_s);
        report_epoch("coordinate", &figures, &throughput, &bar)?;
        epochs.push(report);

        match stopper.observe(epoch, valid_loss) {
            Verdict::Improved => best = model.snapshot()?,
            Verdict::Wait => {}
            Verdict::Stop => {
                stopped_early = epoch < section.epochs;
                break;
            }
        }
    }
    bar.finish_and_clear();

    let (best_epoch, best_loss) = stopper.best().expect("at least one epoch ran");
    model.restore(&best)?;
    if stopped_early {
        tracing::info!("early stop: keeping epoch {best_epoch} (valid loss {best_loss:.5})");
    }
    Ok(TrainReport {
        epochs,
        best_epoch,
        stopped_early,
        train_rows_per_s: train_rows_seen as f64 / train_seconds.max(1e-9),
    })
}

/// Per-objective loss sums and labelled counts of one batch.
struct StepSums {
    sums: Vec<f64>,
    counts: Vec<u64>,
}

/// One gradient step on the batch `rows`, cut into `section.shards` shards whose forward
/// and backward passes run in parallel. The batch loss is, per objective, the summed log
/// loss over its labelled rows divided by the batch's labelled count, summed over
/// objectives; each shard's part uses the batch-wide counts, so the shards' gradients add
/// up to the batch gradient, and they are added in shard order whatever the thread count.
fn sharded_step(
    model: &mut CoordinateModel,
    scratches: &mut [Scratch],
    adam: &mut Adam,
    data: &TrainData,
    rows: &[u32],
    section: &CoordinateSection,
) -> Result<StepSums> {
    let n_objectives = data.labels.len();
    let device = model.params().device().clone();
    let mut counts = vec![0u64; n_objectives];
    for &row in rows {
        for (k, labels) in data.labels.iter().enumerate() {
            counts[k] += (labels[row as usize] >= 0) as u64;
        }
    }
    // An objective without labels in the batch divides 0 by 1, so a rare label weighs as
    // much as a dense one.
    let denominators: Vec<f32> = counts.iter().map(|&c| c.max(1) as f32).collect();
    let denominators = Tensor::from_vec(denominators, n_objectives, &device)?;

    let shards = relvid_nn::shards::ranges(rows.len(), section.shards);
    let frozen: &CoordinateModel = model;
    let shard_pass = |(scratch, range): (&mut Scratch, std::ops::Range<usize>)| {
        let rows = &rows[range];
        let (targets, mask, _) = batch_labels(data.labels, rows, &device)?;
        let forward = frozen.forward(scratch, data.table, rows)?;
        let per_row = relvid_nn::log_loss_with_logits(&forward.logits, &targets)?.mul(&mask)?;
        let per_objective = per_row.sum(0)?;
        let grads = per_objective.div(&denominators)?.sum_all()?.backward()?;
        Ok((forward, grads, per_objective.to_vec1::<f32>()?))
    };
    // CPU shards run on the rayon pool; a GPU runs its kernels on one stream, so there the
    // shards go one after the other (same sums, same order).
    let outputs = if device.is_cpu() {
        scratches
            .par_iter_mut()
            .zip(shards)
            .map(shard_pass)
            .collect::<Result<Vec<_>>>()?
    } else {
        scratches
            .iter_mut()
            .zip(shards)
            .map(shard_pass)
            .collect::<Result<Vec<_>>>()?
    };

    let mut forwards = Vec::with_capacity(outputs.len());
    let mut stores = Vec::with_capacity(outputs.len());
    let mut sums = vec![0.0f64; n_objectives];
    for (forward, grads, per_objective) in outputs {
        for (sum, value) in sums.iter_mut().zip(per_objective) {
            *sum += value as f64;
        }
        forwards.push(forward);
        stores.push(grads);
    }
    relvid_nn::shards::sum_dense_into_first(&mut stores, &model.params().vars())?;
    let step = adam.step(&stores[0])?;
    let parts: Vec<_> = forwards.iter().zip(&stores).collect();
    model.apply_sparse(&parts, adam.config(), step)?;
    Ok(StepSums { sums, counts })
}

/// Targets (0/1), mask (1 where labelled) and labelled counts per objective of a batch.
fn batch_labels(
    labels: &[Vec<i8>],
    rows: &[u32],
    device: &candle_core::Device,
) -> Result<(Tensor, Tensor, Vec<u64>)> {
    let n_objectives = labels.len();
    let mut targets = Vec::with_capacity(rows.len() * n_objectives);
    let mut mask = Vec::with_capacity(rows.len() * n_objectives);
    let mut counts = vec![0u64; n_objectives];
    for &row in rows {
        for (k, objective_labels) in labels.iter().enumerate() {
            let label = objective_labels[row as usize];
            targets.push(if label == 1 { 1.0f32 } else { 0.0 });
            mask.push(if label >= 0 { 1.0f32 } else { 0.0 });
            counts[k] += (label >= 0) as u64;
        }
    }
    let shape = (rows.len(), n_objectives);
    Ok((
        Tensor::from_vec(targets, shape, device)?,
        Tensor::from_vec(mask, shape, device)?,
        counts,
    ))
}

/// Logits of `rows`, row-major `(rows, objectives)`, without gradients. Chunks run in
/// parallel; each computes its own rows, so the result does not depend on the thread count.
pub fn predict_logits(
    model: &CoordinateModel,
    table: &Interactions,
    rows: &[u32],
) -> Result<Vec<f32>> {
    let n_objectives = model.n_objectives();
    let mut logits = vec![0.0f32; rows.len() * n_objectives];
    logits
        .par_chunks_mut(PREDICT_CHUNK * n_objectives)
        .zip(rows.par_chunks(PREDICT_CHUNK))
        .try_for_each(|(out, chunk)| -> Result<()> {
            let values = model
                .predict(table, chunk)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            out.copy_from_slice(&values);
            Ok(())
        })?;
    Ok(logits)
}

/// A seeded uniform sample of at most `max` of `rows` (all when `max` is 0 or not below
/// their count), in their original order.
pub fn sample_rows(rows: &[u32], max: usize, seed: u64) -> Vec<u32> {
    match subset(rows.len(), max, seed, "coordinate-valid-sample") {
        Some(kept) => kept.into_iter().map(|i| rows[i]).collect(),
        None => rows.to_vec(),
    }
}

/// Loss of one logit against a 0/1 label, in the overflow-free form of the training loss.
pub fn log_loss(logit: f32, positive: bool) -> f64 {
    let x = logit as f64;
    let y = if positive { 1.0 } else { 0.0 };
    x.max(0.0) - x * y + (-x.abs()).exp().ln_1p()
}

/// Summed per-objective mean loss, and mean per-objective AUC, of row-major logits of `rows`.
fn evaluate(logits: &[f32], labels: &[Vec<i8>], rows: &[u32]) -> (f64, Option<f64>) {
    let n_objectives = labels.len();
    let mut sums = LossSums::new(n_objectives);
    let mut aucs = Vec::new();
    for (k, objective_labels) in labels.iter().enumerate() {
        let mut scores = Vec::new();
        let mut positives = Vec::new();
        for (i, &row) in rows.iter().enumerate() {
            let label = objective_labels[row as usize];
            if label < 0 {
                continue;
            }
            let logit = logits[i * n_objectives + k];
            sums.sums[k] += log_loss(logit, label == 1);
            sums.counts[k] += 1;
            scores.push(logit);
            positives.push(label == 1);
        }
        aucs.extend(auc(&scores, &positives));
    }
    let mean_auc = (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64);
    (sums.total(), mean_auc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_sample_is_an_ordered_seeded_subset() {
        let rows: Vec<u32> = (0..1000).map(|r| r * 3).collect();
        let sample = sample_rows(&rows, 50, 4);
        assert_eq!(sample.len(), 50);
        assert!(sample.windows(2).all(|w| w[0] < w[1]));
        assert!(sample.iter().all(|r| r % 3 == 0));
        assert_eq!(sample, sample_rows(&rows, 50, 4));
        assert_eq!(sample_rows(&rows, 0, 4), rows);
        assert_eq!(sample_rows(&rows, 5000, 4), rows);
    }

    #[test]
    fn log_loss_is_finite_for_huge_logits() {
        assert!((log_loss(-1000.0, true) - 1000.0).abs() < 1e-9);
        assert!(log_loss(1000.0, true).abs() < 1e-12);
        assert!((log_loss(0.0, false) - std::f64::consts::LN_2).abs() < 1e-12);
    }

    #[test]
    fn evaluation_skips_missing_labels_and_averages_objectives() {
        // Two objectives; the second has a missing label on row 1.
        let labels = vec![vec![1, 0], vec![0, -1]];
        let logits = [2.0f32, -1.0, -2.0, 5.0];
        let (loss, auc) = evaluate(&logits, &labels, &[0, 1]);
        let want = (log_loss(2.0, true) + log_loss(-2.0, false)) / 2.0 + log_loss(-1.0, false);
        assert!((loss - want).abs() < 1e-12);
        // Only the first objective has both classes.
        assert_eq!(auc, Some(1.0));
    }
}
