//! The two towers. Each maps a video (its id embedding, embeddings of its categorical side
//! features and its numeric side features) through a ReLU hidden layer to an L2-normalised
//! vector; the query tower embeds the source video of a pair, the candidate tower the
//! target. The towers share inputs but no weights.

use std::collections::HashMap;

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use common::features::EntityFeatures;
use common::rng::rng_for;
use rand_chacha::ChaCha8Rng;
use relvid_nn::params::normal;
use relvid_nn::sparse::Gathered;
use relvid_nn::{l2_normalise, AdamConfig, Dedup, Mlp, Params, SparseEmbedding};

use crate::config::TwoTowerSection;

/// Added to the squared norm before the square root, so a zero output normalises to zero
/// with a finite gradient instead of NaN.
pub const NORM_EPS: f64 = 1e-8;

/// Standard deviation of the initial video-id embeddings. Small, so a video that no
/// training pair reaches (about half the valid-period videos of the KuaiRand slice are new)
/// is embedded from its side features rather than from random noise.
pub const ID_INIT_STD: f32 = 0.01;

/// One tower's weights.
pub struct Tower {
    id: SparseEmbedding,
    /// One table per categorical side feature, in `EntityFeatures` order.
    categorical: Vec<SparseEmbedding>,
    mlp: Mlp,
    /// One deduplicator per table (id first), to merge the shards' rows before an update.
    merge: Vec<Dedup>,
}

/// Per-shard buffers of a forward pass: one deduplicator per categorical table and tower.
pub struct ModelScratch {
    query: Vec<Dedup>,
    candidate: Vec<Dedup>,
}

/// A tower's output for distinct videos, and the embedding rows it used.
pub struct TowerOutput {
    /// `(videos, output_dim)`, rows of (nearly) unit length.
    pub embeddings: Tensor,
    gathered: Vec<Gathered>,
}

impl Tower {
    fn new(
        prefix: &str,
        features: &EntityFeatures,
        section: &TwoTowerSection,
        params: &mut Params,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tower> {
        let dim = section.embedding_dim;
        // Category rows of norm about 1, as for the numeric inputs after standardisation.
        let std = 1.0 / (dim as f32).sqrt();
        let n_videos = features.n_rows;
        let id = SparseEmbedding::new(
            &format!("{prefix}.embedding.video_id"),
            n_videos,
            dim,
            normal(rng, n_videos * dim, ID_INIT_STD),
        );
        let categorical = features
            .categorical
            .iter()
            .map(|feature| {
                let n = feature.cardinality as usize;
                let name = format!("{prefix}.embedding.{}", feature.name);
                SparseEmbedding::new(&name, n, dim, normal(rng, n * dim, std))
            })
            .collect::<Vec<_>>();
        let n_inputs = dim * (1 + categorical.len()) + features.numeric.len();
        let dims = [n_inputs, section.hidden, section.output_dim];
        let mlp = Mlp::new(params, rng, &format!("{prefix}.mlp"), &dims)?;
        let merge = std::iter::once(&id)
            .chain(&categorical)
            .map(|table| Dedup::new(table.n_rows()))
            .collect();
        Ok(Tower {
            id,
            categorical,
            mlp,
            merge,
        })
    }

    fn scratch(&self) -> Vec<Dedup> {
        self.categorical
            .iter()
            .map(|table| Dedup::new(table.n_rows()))
            .collect()
    }

    /// Embeds distinct `videos`; with `train`, the embedding rows become graph leaves.
    fn forward(
        &self,
        dedups: &mut [Dedup],
        features: &EntityFeatures,
        videos: &[u32],
        train: bool,
        device: &Device,
    ) -> Result<TowerOutput> {
        let n = videos.len();
        let mut gathered = Vec::new();
        let mut parts = Vec::with_capacity(2 + self.categorical.len());
        if train {
            let leaf = self.id.gather_var(videos, device)?;
            parts.push(leaf.var.as_tensor().clone());
            gathered.push(leaf);
        } else {
            parts.push(self.id.gather(videos, device)?);
        }
        for ((table, dedup), feature) in self
            .categorical
            .iter()
            .zip(dedups.iter_mut())
            .zip(&features.categorical)
        {
            dedup.run(videos.iter().map(|&v| feature.codes[v as usize]));
            let rows = if train {
                let leaf = table.gather_var(&dedup.unique, device)?;
                let tensor = leaf.var.as_tensor().clone();
                gathered.push(leaf);
                tensor
            } else {
                table.gather(&dedup.unique, device)?
            };
            let local = Tensor::from_slice(&dedup.local, n, device)?;
            parts.push(rows.index_select(&local, 0)?);
        }
        if !features.numeric.is_empty() {
            let mut numeric = Vec::with_capacity(n * features.numeric.len());
            for &video in videos {
                numeric.extend(features.numeric_row(video as usize));
            }
            parts.push(Tensor::from_vec(
                numeric,
                (n, features.numeric.len()),
                device,
            )?);
        }
        let inputs = Tensor::cat(&parts, 1)?;
        let embeddings = l2_normalise(&self.mlp.forward(&inputs)?, NORM_EPS)?;
        Ok(TowerOutput {
            embeddings,
            gathered,
        })
    }

    fn apply_sparse(
        &mut self,
        shards: &[(&TowerOutput, &GradStore)],
        config: &AdamConfig,
        step: usize,
    ) -> Result<()> {
        let tables = std::iter::once(&mut self.id).chain(self.categorical.iter_mut());
        for (i, (table, merge)) in tables.zip(&mut self.merge).enumerate() {
            let parts: Vec<(&Gathered, &GradStore)> = shards
                .iter()
                .filter_map(|(output, grads)| output.gathered.get(i).map(|leaf| (leaf, *grads)))
                .collect();
            if !parts.is_empty() {
                table.adam_step_shards(&parts, merge, config, step)?;
            }
        }
        Ok(())
    }

    fn tables(&self) -> impl Iterator<Item = &SparseEmbedding> {
        std::iter::once(&self.id).chain(self.categorical.iter())
    }

    fn tables_mut(&mut self) -> impl Iterator<Item = &mut SparseEmbedding> {
        std::iter::once(&mut self.id).chain(self.categorical.iter_mut())
    }
}

/// Which tower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Query,
    Candidate,
}

/// Both towers and the video features they read.
pub struct TwoTowerModel {
    params: Params,
    query: Tower,
    candidate: Tower,
    features: EntityFeatures,
    device: Device,
}

/// Weights of the best epoch, kept to restore at the end.
pub struct Snapshot {
    dense: Vec<Tensor>,
    tables: Vec<Vec<f32>>,
}

impl TwoTowerModel {
    /// Fresh towers; every weight comes from `(seed, "twotower-init")`.
    pub fn new(
        features: EntityFeatures,
        section: &TwoTowerSection,
        seed: u64,
        device: &Device,
    ) -> Result<TwoTowerModel> {
        let mut rng = rng_for(seed, "twotower-init", 0);
        let mut params = Params::new(device);
        let query = Tower::new("query", &features, section, &mut params, &mut rng)?;
        let candidate = Tower::new("candidate", &features, section, &mut params, &mut rng)?;
        Ok(TwoTowerModel {
            params,
            query,
            candidate,
            features,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn n_videos(&self) -> usize {
        self.features.n_rows
    }

    /// Buffers for [`Self::forward`]; one per shard, reused across batches.
    pub fn scratch(&self) -> ModelScratch {
        ModelScratch {
            query: self.query.scratch(),
            candidate: self.candidate.scratch(),
        }
    }

    /// Embeds distinct `videos` with one tower.
    pub fn forward(
        &self,
        scratch: &mut ModelScratch,
        side: Side,
        videos: &[u32],
        train: bool,
    ) -> Result<TowerOutput> {
        let (tower, dedups) = match side {
            Side::Query => (&self.query, &mut scratch.query),
            Side::Candidate => (&self.candidate, &mut scratch.candidate),
        };
        tower.forward(dedups, &self.features, videos, train, &self.device)
    }

    /// Adam step `step` on the embedding rows that the shards' training forward passes of
    /// `side` used; `shards` holds each shard's output and gradients, in shard order.
    pub fn apply_sparse(
        &mut self,
        side: Side,
        shards: &[(&TowerOutput, &GradStore)],
        config: &AdamConfig,
        step: usize,
    ) -> Result<()> {
        match side {
            Side::Query => self.query.apply_sparse(shards, config, step),
            Side::Candidate => self.candidate.apply_sparse(shards, config, step),
        }
    }

    /// Fails on the first weight that is NaN or infinite, naming tensor, row and `step`.
    pub fn check_finite(&self, step: &str) -> Result<()> {
        for table in self.query.tables().chain(self.candidate.tables()) {
            table.check_finite(step)?;
        }
        self.params.check_finite(step)
    }

    pub fn snapshot(&self) -> Result<Snapshot> {
        let tables = self
            .query
            .tables()
            .chain(self.candidate.tables())
            .map(|t| t.snapshot())
            .collect();
        Ok(Snapshot {
            dense: self.params.snapshot()?,
            tables,
        })
    }

    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.params.restore(&snapshot.dense)?;
        let tables = self.query.tables_mut().chain(self.candidate.tables_mut());
        for (table, weights) in tables.zip(&snapshot.tables) {
            table.restore(weights);
        }
        Ok(())
    }

    /// Every weight by name, for the safetensors file.
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut tensors = HashMap::new();
        for (name, var) in self.params.named_vars() {
            tensors.insert(name, var.as_tensor().clone());
        }
        for table in self.query.tables().chain(self.candidate.tables()) {
            tensors.insert(table.name().to_string(), table.to_tensor(&self.device)?);
        }
        Ok(tensors)
    }
}
