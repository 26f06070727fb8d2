//! Embedding tables that train row by row: a batch gathers only the rows it uses into a
//! small candle variable, and after the backward pass only those rows get an Adam update
//! ("lazy" Adam: a row's moments only decay on steps that touch it).
//!
//! Why not a dense candle `Embedding`: its gradient is a zero tensor of the whole table plus
//! an `index_add`, and AdamW then rewrites every row on every step. For a catalogue of
//! millions of videos that costs far more than the batch itself.

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};

use crate::optim::AdamConfig;

/// Distinct ids of a batch in first-seen order, and each id's position among them.
///
/// Keeps one slot per possible id, reset after each call, so deduplication is O(batch)
/// without hashing.
pub struct Dedup {
    slot: Vec<u32>,
    /// Distinct ids, in order of first appearance (so the result is deterministic).
    pub unique: Vec<u32>,
    /// For every input id, its index in `unique`.
    pub local: Vec<u32>,
}

impl Dedup {
    /// A deduplicator for ids in `0..n_ids`.
    pub fn new(n_ids: usize) -> Dedup {
        Dedup {
            slot: vec![u32::MAX; n_ids],
            unique: Vec::new(),
            local: Vec::new(),
        }
    }

    /// Fills `unique` and `local` for `ids`.
    pub fn run(&mut self, ids: impl IntoIterator<Item = u32>) {
        for &id in &self.unique {
            self.slot[id as usize] = u32::MAX;
        }
        self.unique.clear();
        self.local.clear();
        for id in ids {
            let slot = &mut self.slot[id as usize];
            if *slot == u32::MAX {
                *slot = self.unique.len() as u32;
                self.unique.push(id);
            }
            self.local.push(*slot);
        }
    }
}

/// The rows of a table that one batch uses, as a trainable variable.
pub struct Gathered {
    /// Table rows in the variable, in order.
    pub rows: Vec<u32>,
    /// `(rows.len(), dim)`, a fresh leaf of the graph.
    pub var: Var,
}

/// One embedding table with its Adam moments.
pub struct SparseEmbedding {
    name: String,
    n_rows: usize,
    dim: usize,
    weights: Vec<f32>,
    first_moment: Vec<f32>,
    second_moment: Vec<f32>,
}

impl SparseEmbedding {
    /// A table of `n_rows` × `dim` initial values (row-major).
    pub fn new(name: &str, n_rows: usize, dim: usize, weights: Vec<f32>) -> SparseEmbedding {
        assert_eq!(
            weights.len(),
            n_rows * dim,
            "{name}: {n_rows} rows of {dim}"
        );
        SparseEmbedding {
            name: name.to_string(),
            n_rows,
            dim,
            first_moment: vec![0.0; weights.len()],
            second_moment: vec![0.0; weights.len()],
            weights,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The whole table, row-major.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The given rows as a `(rows.len(), dim)` tensor, outside any graph.
    pub fn gather(&self, rows: &[u32], device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.gather_values(rows),
            (rows.len(), self.dim),
            device,
        )?)
    }

    /// The given (distinct) rows as a trainable leaf; pass the result to [`Self::adam_step`]
    /// after the backward pass.
    pub fn gather_var(&self, rows: &[u32], device: &Device) -> Result<Gathered> {
        let var = Var::from_vec(self.gather_values(rows), (rows.len(), self.dim), device)?;
        Ok(Gathered {
            rows: rows.to_vec(),
            var,
        })
    }

    fn gather_values(&self, rows: &[u32]) -> Vec<f32> {
        let mut values = Vec::with_capacity(rows.len() * self.dim);
        for &row in rows {
            let start = row as usize * self.dim;
            values.extend_from_slice(&self.weights[start..start + self.dim]);
        }
        values
    }

    /// Applies one AdamW step (number `step`, 1-based, shared with the dense optimiser) to
    /// the rows of `gathered`, from their gradient in `grads`. Rows without a gradient (not
    /// reached by the loss) are left alone.
    pub fn adam_step(
        &mut self,
        gathered: &Gathered,
        grads: &GradStore,
        config: &AdamConfig,
        step: usize,
    ) -> Result<()> {
        let Some(grad) = self.read_grad(gathered, grads)? else {
            return Ok(());
        };
        self.adam_rows(&gathered.rows, &grad, config, step);
        Ok(())
    }

    fn read_grad(&self, gathered: &Gathered, grads: &GradStore) -> Result<Option<Vec<f32>>> {
        let Some(grad) = grads.get(gathered.var.as_tensor()) else {
            return Ok(None);
        };
        let grad = grad
            .flatten_all()?
            .to_vec1::<f32>()
            .with_context(|| format!("reading the gradient of {}", self.name))?;
        Ok(Some(grad))
    }

    /// One AdamW step for a batch cut into shards: `parts` holds each shard's gathered rows
    /// and gradients, in shard order. A row that several shards used gets the sum of their
    /// gradients, added in shard order, so the update does not depend on which thread ran
    /// which shard. With one shard this is [`Self::adam_step`].
    pub fn adam_step_shards(
        &mut self,
        parts: &[(&Gathered, &GradStore)],
        merge: &mut Dedup,
        config: &AdamConfig,
        step: usize,
    ) -> Result<()> {
        if let [(gathered, grads)] = parts {
            return self.adam_step(gathered, grads, config, step);
        }
        let mut shard_grads = Vec::with_capacity(parts.len());
        for (gathered, grads) in parts {
            shard_grads.push(self.read_grad(gathered, grads)?);
        }
        let touched = parts
            .iter()
            .zip(&shard_grads)
            .filter(|(_, grad)| grad.is_some())
            .flat_map(|((gathered, _), _)| gathered.rows.iter().copied());
        merge.run(touched);
        let dim = self.dim;
        let mut summed = vec![0.0f32; merge.unique.len() * dim];
        let mut local = merge.local.iter();
        for grad in shard_grads.iter().flatten() {
            for row_grad in grad.chunks_exact(dim) {
                let slot = *local.next().expect("one slot per touched row") as usize;
                for (acc, g) in summed[slot * dim..(slot + 1) * dim]
                    .iter_mut()
                    .zip(row_grad)
                {
                    *acc += g;
                }
            }
        }
        let rows = merge.unique.clone();
        self.adam_rows(&rows, &summed, config, step);
        Ok(())
    }

    /// The AdamW update of `rows` from their gradients `grad` (row-major, one row each).
    fn adam_rows(&mut self, rows: &[u32], grad: &[f32], config: &AdamConfig, step: usize) {
        // candle's AdamW update, θ ← θ(1 - lr·λ) - lr·m̂/(√v̂ + ε), rewritten with the bias
        // corrections folded into two scalars (computed in f64) so that the per-element work
        // is f32 multiply-adds and one square root:
        // lr·m̂/(√v̂ + ε) = step_size·m/(√v + ε') with step_size = lr·√c2/c1, ε' = ε·√c2,
        // c1 = 1 - β1^t, c2 = 1 - β2^t.
        let (beta1, beta2) = (config.beta1, config.beta2);
        let c1 = 1.0 - beta1.powi(step as i32);
        let c2 = 1.0 - beta2.powi(step as i32);
        let step_size = (config.learning_rate * c2.sqrt() / c1) as f32;
        let eps = (config.eps * c2.sqrt()) as f32;
        let decay = (1.0 - config.learning_rate * config.weight_decay) as f32;
        let (b1, b2) = (beta1 as f32, beta2 as f32);
        let dim = self.dim;
        for (g, &row) in grad.chunks_exact(dim).zip(rows) {
            let start = row as usize * dim;
            let w = &mut self.weights[start..start + dim];
            let m = &mut self.first_moment[start..start + dim];
            let v = &mut self.second_moment[start..start + dim];
            // Zipped slices of one length let the compiler drop bounds checks and vectorise.
            for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *w = *w * decay - step_size * *m / (v.sqrt() + eps);
            }
        }
    }

    /// Fails on the first row holding NaN or infinity, naming the table and `step`.
    pub fn check_finite(&self, step: &str) -> Result<(), common::Error> {
        crate::finite::check_finite(&self.name, &self.weights, self.dim, step)
    }

    /// A copy of the weights, to restore the best epoch later.
    pub fn snapshot(&self) -> Vec<f32> {
        self.weights.clone()
    }

    /// Puts back weights taken by [`Self::snapshot`].
    pub fn restore(&mut self, snapshot: &[f32]) {
        self.weights.copy_from_slice(snapshot);
    }

    /// The whole table as a tensor (for saving).
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.weights,
            (self.n_rows, self.dim),
            device,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn dedup_keeps_first_seen_order_and_resets() {
        let mut dedup = Dedup::new(10);
        dedup.run([7, 3, 7, 1, 3]);
        assert_eq!(dedup.unique, vec![7, 3, 1]);
        assert_eq!(dedup.local, vec![0, 1, 0, 2, 1]);
        dedup.run([1, 9]);
        assert_eq!(dedup.unique, vec![1, 9]);
        assert_eq!(dedup.local, vec![0, 1]);
    }

    #[test]
    fn lazy_adam_matches_candle_adamw_on_the_touched_rows() {
        use candle_nn::Optimizer;
        let device = Device::Cpu;
        let initial: Vec<f32> = (0..12).map(|i| i as f32 * 0.1 - 0.5).collect();
        let config = AdamConfig::new(0.05, 0.01);

        // Ours: rows 2 and 0 of a 4x3 table, two steps.
        let mut table = SparseEmbedding::new("t", 4, 3, initial.clone());
        // Reference: candle's AdamW on a dense variable of the same two rows.
        let rows_init: Vec<f32> = [2usize, 0]
            .iter()
            .flat_map(|&r| initial[r * 3..r * 3 + 3].to_vec())
            .collect();
        let dense = Var::from_vec(rows_init, (2, 3), &device).unwrap();
        let mut reference = candle_nn::AdamW::new(
            vec![dense.clone()],
            candle_nn::ParamsAdamW {
                lr: 0.05,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
            },
        )
        .unwrap();
        let target = Tensor::new(&[[1.0f32, -1.0, 0.5], [0.0, 2.0, -2.0]], &device).unwrap();
        for step in 1..=2 {
            let gathered = table.gather_var(&[2, 0], &device).unwrap();
            let loss = gathered
                .var
                .as_tensor()
                .sub(&target)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            table
                .adam_step(&gathered, &loss.backward().unwrap(), &config, step)
                .unwrap();
            let loss = dense
                .as_tensor()
                .sub(&target)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            reference.backward_step(&loss).unwrap();
        }
        let want = dense.as_tensor().to_vec2::<f32>().unwrap();
        let got = table.weights();
        for (k, &row) in [2usize, 0].iter().enumerate() {
            for j in 0..3 {
                assert!(
                    (got[row * 3 + j] - want[k][j]).abs() < 1e-6,
                    "{got:?} vs {want:?}"
                );
            }
        }
        // Untouched rows keep their values.
        assert_eq!(&got[3..6], &initial[3..6]);
        assert_eq!(&got[9..12], &initial[9..12]);
    }

    #[test]
    fn shards_sum_the_gradients_of_shared_rows() {
        let device = Device::Cpu;
        let initial: Vec<f32> = (0..8).map(|i| i as f32 * 0.25).collect();
        let config = AdamConfig::new(0.1, 0.0);
        let loss_of = |gathered: &Gathered, scale: f64| {
            gathered
                .var
                .as_tensor()
                .sqr()
                .unwrap()
                .affine(scale, 0.0)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };

        // Whole batch: rows 1 and 3 with the gradient of (1 + 2)·|row|² on row 1.
        let mut whole = SparseEmbedding::new("t", 4, 2, initial.clone());
        let all = whole.gather_var(&[1, 3], &device).unwrap();
        let grads = {
            let x = all.var.as_tensor();
            let weights = Tensor::new(&[[3.0f32, 3.0], [2.0, 2.0]], &device).unwrap();
            x.sqr()
                .unwrap()
                .mul(&weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        whole.adam_step(&all, &grads, &config, 1).unwrap();

        // Shards: the first uses row 1 (weight 1), the second rows 3 and 1 (weight 2).
        let mut sharded = SparseEmbedding::new("t", 4, 2, initial.clone());
        let first = sharded.gather_var(&[1], &device).unwrap();
        let second = sharded.gather_var(&[3, 1], &device).unwrap();
        let (g1, g2) = (loss_of(&first, 1.0), loss_of(&second, 2.0));
        let mut merge = Dedup::new(4);
        sharded
            .adam_step_shards(&[(&first, &g1), (&second, &g2)], &mut merge, &config, 1)
            .unwrap();
        for (a, b) in whole.weights().iter().zip(sharded.weights()) {
            assert!(
                (a - b).abs() < 1e-6,
                "{:?} vs {:?}",
                whole.weights(),
                sharded.weights()
            );
        }
        assert_eq!(&sharded.weights()[0..2], &initial[0..2]);
    }

    #[test]
    fn non_finite_row_is_reported() {
        let mut values = vec![0.0; 6];
        values[4] = f32::NAN;
        let table = SparseEmbedding::new("video_embedding", 3, 2, values);
        let message = table.check_finite("epoch 1").unwrap_err().to_string();
        assert!(
            message.contains("video_embedding") && message.contains("row 2"),
            "{message}"
        );
    }
}
