//! Training of the towers on (source, target) pairs against sampled negatives.
//!
//! Per pair i with query q_i, target c_i and negatives n_ij (all unit vectors):
//! logit(q, c) = cos(q, c) / temperature. The loss is the binary log loss of the positive
//! logit against 1 plus that of each negative logit against 0, where a negative's logit has
//! ln Q(n) subtracted (logQ correction; Q = its sampling probability), summed and divided by
//! the number of pairs. With `in_batch_negatives`, the other pairs' targets in the batch are
//! negatives too, corrected by their share among the targets. A negative equal to the
//! pair's own target is masked out.
//!
//! Each batch embeds its distinct videos once per tower and gathers the rows it needs, so
//! a batch costs two small MLP passes whatever its number of negatives. A batch is cut into
//! `shards` pieces whose passes run in parallel; their gradients are summed in shard order
//! (dense parameters) or merged per embedding row (lazy Adam), so a step does not depend on
//! the thread count. Each epoch trains on a fresh seeded sample of `max_train_pairs` pairs.

use std::ops::Range;
use std::time::Instant;

use anyhow::Result;
use candle_core::{Tensor, D};
use rayon::prelude::*;
use relvid_nn::batches::{n_batches, per_epoch, sampled};
use relvid_nn::optim::Adam;
use relvid_nn::{
    auc, report_epoch, softplus, AdamConfig, Dedup, EarlyStopping, EpochFigures, Verdict,
};
use serde::Serialize;

use crate::config::TwoTowerSection;
use crate::model::{ModelScratch, Side, TowerOutput, TwoTowerModel};
use crate::negatives::{target_log_q, AliasSampler};
use crate::pairs::Pairs;

/// The pairs and the negative sampler the towers learn from.
pub struct TrainData<'a> {
    pub train: &'a Pairs,
    pub valid: &'a Pairs,
    pub sampler: &'a AliasSampler,
}

/// Figures of one epoch.
#[derive(Debug, Clone, Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    /// Train pairs of this epoch's sample.
    pub train_pairs: usize,
    /// Mean loss per train pair.
    pub train_loss: f64,
    /// Mean loss per valid pair (fixed negatives).
    pub valid_loss: f64,
    /// AUC of the cosine of valid pairs against that of their sampled negatives (none
    /// when `negatives = 0`).
    pub valid_auc: Option<f64>,
    pub train_pairs_per_s: f64,
    pub seconds: f64,
}

/// Figures of the whole training.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub epochs: Vec<EpochReport>,
    /// The epoch whose weights were kept (lowest valid loss), 1-based.
    pub best_epoch: usize,
    pub stopped_early: bool,
    /// Train pairs per second of gradient steps, over all epochs.
    pub train_pairs_per_s: f64,
}

/// Reusable buffers of the batch loop (one per shard).
struct Scratch {
    queries: Dedup,
    candidates: Dedup,
    model: ModelScratch,
}

impl Scratch {
    fn new(model: &TwoTowerModel) -> Scratch {
        Scratch {
            queries: Dedup::new(model.n_videos()),
            candidates: Dedup::new(model.n_videos()),
            model: model.scratch(),
        }
    }
}

/// What a batch's forward pass produced.
struct BatchOutput {
    /// Sum of the loss terms (not yet divided by the batch size).
    total: Tensor,
    query: TowerOutput,
    candidate: TowerOutput,
    /// Cosines of the `b` positives, then of the `b·k` sampled negatives (pair-major).
    cos: Tensor,
    /// Per cosine: 1 where it is a real example, 0 for a negative equal to its pair's target.
    mask: Vec<f32>,
}

/// One batch through both towers.
///
/// Every (query, candidate) product of the batch is one row of two gathered `(b·(1+k), d)`
/// matrices, so the positives and the sampled negatives share one element-wise product and
/// one row sum, with no broadcast whose backward pass would reduce over a middle dimension.
#[allow(clippy::too_many_arguments)]
fn batch_forward(
    model: &TwoTowerModel,
    scratch: &mut Scratch,
    sources: &[u32],
    targets: &[u32],
    negatives: &[u32],
    sampler: &AliasSampler,
    in_batch_log_q: Option<&[f32]>,
    section: &TwoTowerSection,
    train: bool,
) -> Result<BatchOutput> {
    let device = model.device().clone();
    let (b, k) = (sources.len(), section.negatives);
    let n = b * (1 + k);
    let inverse_temperature = (1.0 / section.temperature) as f32;

    // Each distinct video through its tower once.
    scratch.queries.run(sources.iter().copied());
    scratch
        .candidates
        .run(targets.iter().chain(negatives).copied());
    let query = model.forward(
        &mut scratch.model,
        Side::Query,
        &scratch.queries.unique,
        train,
    )?;
    let candidate = model.forward(
        &mut scratch.model,
        Side::Candidate,
        &scratch.candidates.unique,
        train,
    )?;

    // Row r pairs query row q_rows[r] with candidate row c_rows[r]. Its logit enters the
    // loss as softplus(sign·(cos/T - ln Q)): sign -1 for a positive, +1 for a negative, and
    // ln Q = 0 for a positive.
    let mut q_rows = Vec::with_capacity(n);
    q_rows.extend_from_slice(&scratch.queries.local);
    for &row in &scratch.queries.local {
        q_rows.extend(std::iter::repeat_n(row, k));
    }
    let mut scale = vec![-inverse_temperature; b];
    let mut shift = vec![0.0f32; b];
    let mut mask = vec![1.0f32; b];
    if k > 0 {
        for (pair, row) in negatives.chunks(k).enumerate() {
            for &video in row {
                scale.push(inverse_temperature);
                shift.push(if section.logq_correction {
                    sampler.log_q(video)
                } else {
                    0.0
                });
                mask.push(if video == targets[pair] { 0.0 } else { 1.0 });
            }
        }
    }
    let q_rows = Tensor::from_vec(q_rows, n, &device)?;
    let c_rows = Tensor::from_slice(&scratch.candidates.local, n, &device)?;
    let q = query.embeddings.index_select(&q_rows, 0)?;
    let c = candidate.embeddings.index_select(&c_rows, 0)?;
    let cos = q.mul(&c)?.sum(D::Minus1)?;
    let z = cos
        .mul(&Tensor::from_vec(scale, n, &device)?)?
        .sub(&Tensor::from_vec(shift, n, &device)?)?;
    let mask_tensor = Tensor::from_slice(&mask, n, &device)?;
    let mut total = softplus(&z)?.mul(&mask_tensor)?.sum_all()?;

    // The other pairs' targets as negatives: a (b, b) product of the positive rows.
    if let Some(target_log_q) = in_batch_log_q {
        let (q_positive, c_positive) = (q.narrow(0, 0, b)?, c.narrow(0, 0, b)?);
        let cos_all = q_positive.matmul(&c_positive.t()?)?;
        let mut shift = Vec::with_capacity(b * b);
        let mut in_batch_mask = Vec::with_capacity(b * b);
        for i in 0..b {
            for j in 0..b {
                shift.push(if section.logq_correction {
                    target_log_q[targets[j] as usize]
                } else {
                    0.0
                });
                let real = i != j && targets[i] != targets[j];
                in_batch_mask.push(if real { 1.0f32 } else { 0.0 });
            }
        }
        let logits = cos_all
            .affine(inverse_temperature as f64, 0.0)?
            .sub(&Tensor::from_vec(shift, (b, b), &device)?)?;
        let in_batch_mask = Tensor::from_vec(in_batch_mask, (b, b), &device)?;
        total = total.add(&softplus(&logits)?.mul(&in_batch_mask)?.sum_all()?)?;
    }

    Ok(BatchOutput {
        total,
        query,
        candidate,
        cos,
        mask,
    })
}

/// `k` popularity-sampled negatives per pair, row-major.
fn sample_negatives(
    sampler: &AliasSampler,
    n_pairs: usize,
    k: usize,
    rng: &mut impl rand::Rng,
) -> Vec<u32> {
    (0..n_pairs * k).map(|_| sampler.sample(rng)).collect()
}

/// The optimiser state and buffers of one training run: runs epochs of gradient steps.
/// [`train`] drives it with early stopping; the `twotower-bench` binary drives it alone.
pub struct Trainer {
    adam: Adam,
    /// One per shard.
    scratches: Vec<Scratch>,
    section: TwoTowerSection,
    /// ln of each video's share among the train targets, for in-batch negatives.
    train_log_q: Option<Vec<f32>>,
}

impl Trainer {
    /// A fresh Adam over `model`'s dense parameters (no weight decay) for pairs `train`.
    pub fn new(model: &TwoTowerModel, section: &TwoTowerSection, train: &Pairs) -> Result<Trainer> {
        let adam_config = AdamConfig::new(section.learning_rate, 0.0);
        Ok(Trainer {
            adam: Adam::new(adam_config, model.params().vars())?,
            scratches: (0..section.shards).map(|_| Scratch::new(model)).collect(),
            section: section.clone(),
            train_log_q: section
                .in_batch_negatives
                .then(|| target_log_q(&train.target, model.n_videos())),
        })
    }

    /// Gradient steps over the pairs `order` (indices into `pairs`) in batches of
    /// `batch_size`, with `negatives` per pair drawn from `sampler` with `rng`. Returns the
    /// summed loss (the sum over pairs of each pair's loss terms); ticks `bar` per batch.
    pub fn epoch(
        &mut self,
        model: &mut TwoTowerModel,
        pairs: &Pairs,
        order: &[u32],
        sampler: &AliasSampler,
        rng: &mut impl rand::Rng,
        bar: &indicatif::ProgressBar,
    ) -> Result<f64> {
        let section = &self.section;
        let k = section.negatives;
        let device = model.device().clone();
        let mut loss_sum = 0.0f64;
        for batch in order.chunks(section.batch_size) {
            let sources: Vec<u32> = batch.iter().map(|&i| pairs.source[i as usize]).collect();
            let targets: Vec<u32> = batch.iter().map(|&i| pairs.target[i as usize]).collect();
            // One stream of negatives for the whole batch, whatever the shard count.
            let negatives = sample_negatives(sampler, batch.len(), k, rng);

            // Each shard's loss is its share of the batch mean, so the shards' gradients add
            // up to the batch gradient, added in shard order. (With in-batch negatives a
            // pair's in-batch negatives are its own shard's targets: see `shards`.)
            let scale = 1.0 / batch.len() as f64;
            let frozen: &TwoTowerModel = model;
            let log_q = self.train_log_q.as_deref();
            let pass = |(scratch, range): (&mut Scratch, Range<usize>)| {
                let out = batch_forward(
                    frozen,
                    scratch,
                    &sources[range.clone()],
                    &targets[range.clone()],
                    &negatives[range.start * k..range.end * k],
                    sampler,
                    log_q,
                    section,
                    true,
                )?;
                let grads = out.total.affine(scale, 0.0)?.backward()?;
                let total = out.total.to_scalar::<f32>()? as f64;
                Ok((out, grads, total))
            };
            let shards = relvid_nn::shards::ranges(batch.len(), section.shards);
            // CPU shards run on the rayon pool; a GPU runs its kernels on one stream, so
            // there the shards go one after the other (same sums, same order).
            let outputs = if device.is_cpu() {
                self.scratches
                    .par_iter_mut()
                    .zip(shards)
                    .map(pass)
                    .collect::<Result<Vec<_>>>()?
            } else {
                self.scratches
                    .iter_mut()
                    .zip(shards)
                    .map(pass)
                    .collect::<Result<Vec<_>>>()?
            };

            let mut outs = Vec::with_capacity(outputs.len());
            let mut stores = Vec::with_capacity(outputs.len());
            for (out, grads, total) in outputs {
                loss_sum += total;
                outs.push(out);
                stores.push(grads);
            }
            relvid_nn::shards::sum_dense_into_first(&mut stores, &model.params().vars())?;
            let step = self.adam.step(&stores[0])?;
            let config = *self.adam.config();
            let query: Vec<_> = outs.iter().map(|o| &o.query).zip(&stores).collect();
            let candidate: Vec<_> = outs.iter().map(|o| &o.candidate).zip(&stores).collect();
            model.apply_sparse(Side::Query, &query, &config, step)?;
            model.apply_sparse(Side::Candidate, &candidate, &config, step)?;
            bar.inc(1);
        }
        Ok(loss_sum)
    }
}

/// Trains `model` in place and leaves it holding the weights of its best epoch.
pub fn train(
    model: &mut TwoTowerModel,
    data: &TrainData,
    section: &TwoTowerSection,
    seed: u64,
) -> Result<TrainReport> {
    let mut trainer = Trainer::new(model, section, data.train)?;
    let mut scratch = Scratch::new(model);
    let n_videos = model.n_videos();
    let valid_log_q = section
        .in_batch_negatives
        .then(|| target_log_q(&data.valid.target, n_videos));

    // Valid negatives are drawn once, so valid losses of different epochs compare.
    let mut valid_rng = common::rng::rng_for(seed, "valid-negatives", 0);
    let valid_negatives = sample_negatives(
        data.sampler,
        data.valid.len(),
        section.negatives,
        &mut valid_rng,
    );

    let mut stopper = EarlyStopping::new(section.patience);
    let mut best = model.snapshot()?;
    let mut epochs = Vec::new();
    let (mut train_seconds, mut train_pairs_seen) = (0.0, 0usize);
    // Each epoch trains on at most `max_train_pairs` pairs (a fresh sample per epoch).
    let pairs_per_epoch = per_epoch(data.train.len(), section.max_train_pairs);
    let batches_per_epoch = n_batches(pairs_per_epoch, section.batch_size);
    let bar = common::progress::bar((section.epochs * batches_per_epoch) as u64, "two-tower");
    let mut stopped_early = false;
    for epoch in 1..=section.epochs {
        let started = Instant::now();

        // Gradient steps over a fresh sample (or permutation) of the train pairs.
        let order = sampled(
            data.train.len(),
            section.max_train_pairs,
            seed,
            "twotower-shuffle",
            epoch,
        );
        let mut negative_rng = common::rng::rng_for(seed, "negatives", epoch as u64);
        let loss_sum = trainer.epoch(
            model,
            data.train,
            &order,
            data.sampler,
            &mut negative_rng,
            &bar,
        )?;
        let epoch_train_seconds = started.elapsed().as_secs_f64();
        train_seconds += epoch_train_seconds;
        train_pairs_seen += order.len();
        model.check_finite(&format!("epoch {epoch}"))?;

        // Valid loss and AUC with the epoch's weights.
        let (valid_loss, valid_auc) = evaluate(
            model,
            &mut scratch,
            data,
            &valid_negatives,
            valid_log_q.as_deref(),
            section,
        )?;
        let train_loss = loss_sum / order.len() as f64;
        let report = EpochReport {
            epoch,
            train_pairs: order.len(),
            train_loss,
            valid_loss,
            valid_auc,
            train_pairs_per_s: order.len() as f64 / epoch_train_seconds.max(1e-9),
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
        let throughput = format!(", {:.0} pairs/s", report.train_pairs_per_s);
        report_epoch("twotower", &figures, &throughput, &bar)?;
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
        train_pairs_per_s: train_pairs_seen as f64 / train_seconds.max(1e-9),
    })
}

/// Mean loss per valid pair, and the AUC of positive against negative cosines.
fn evaluate(
    model: &TwoTowerModel,
    scratch: &mut Scratch,
    data: &TrainData,
    negatives: &[u32],
    log_q: Option<&[f32]>,
    section: &TwoTowerSection,
) -> Result<(f64, Option<f64>)> {
    let k = section.negatives;
    let (mut loss_sum, mut scores, mut labels) = (0.0f64, Vec::new(), Vec::new());
    let n = data.valid.len();
    let mut start = 0;
    while start < n {
        let end = (start + section.batch_size).min(n);
        let out = batch_forward(
            model,
            scratch,
            &data.valid.source[start..end],
            &data.valid.target[start..end],
            &negatives[start * k..end * k],
            data.sampler,
            log_q,
            section,
            false,
        )?;
        loss_sum += out.total.to_scalar::<f32>()? as f64;
        let b = end - start;
        for (r, (cos, keep)) in out
            .cos
            .to_vec1::<f32>()?
            .into_iter()
            .zip(&out.mask)
            .enumerate()
        {
            if *keep > 0.0 {
                scores.push(cos);
                labels.push(r < b);
            }
        }
        start = end;
    }
    Ok((loss_sum / n.max(1) as f64, auc(&scores, &labels)))
}

/// Embeddings of every video by one tower, row-major `(n_videos, output_dim)`.
pub fn embed_all(model: &TwoTowerModel, side: Side, chunk: usize) -> Result<Vec<f32>> {
    let videos: Vec<u32> = (0..model.n_videos() as u32).collect();
    let mut scratch = model.scratch();
    let mut values = Vec::new();
    for part in videos.chunks(chunk) {
        let out = model.forward(&mut scratch, side, part, false)?;
        values.extend(out.embeddings.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(values)
}
