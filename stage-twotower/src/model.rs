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
    categorical: Vec<(SparseEmbedding, Dedup)>,
    mlp: Mlp,
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
                (
                    SparseEmbedding::new(&name, n, dim, normal(rng, n * dim, std)),
                    Dedup::new(n),
                )
            })
            .collect::<Vec<_>>();
        let n_inputs = dim * (1 + categorical.len()) + features.numeric.len();
        let dims = [n_inputs, section.hidden, section.output_dim];
        let mlp = Mlp::new(params, rng, &format!("{prefix}.mlp"), &dims)?;
        Ok(Tower {
            id,
            categorical,
            mlp,
        })
    }

    /// Embeds distinct `videos`; with `train`, the embedding rows become graph leaves.
    fn forward(
        &mut self,
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
        for ((table, dedup), feature) in self.categorical.iter_mut().zip(&features.categorical) {
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
        output: &TowerOutput,
        grads: &GradStore,
        config: &AdamConfig,
        step: usize,
    ) -> Result<()> {
        let mut leaves = output.gathered.iter();
        if let Some(leaf) = leaves.next() {
            self.id.adam_step(leaf, grads, config, step)?;
        }
        for ((table, _), leaf) in self.categorical.iter_mut().zip(leaves) {
            table.adam_step(leaf, grads, config, step)?;
        }
        Ok(())
    }

    fn tables(&self) -> impl Iterator<Item = &SparseEmbedding> {
        std::iter::once(&self.id).chain(self.categorical.iter().map(|(table, _)| table))
    }

    fn tables_mut(&mut self) -> impl Iterator<Item = &mut SparseEmbedding> {
        std::iter::once(&mut self.id).chain(self.categorical.iter_mut().map(|(table, _)| table))
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

    /// Embeds distinct `videos` with one tower.
    pub fn forward(&mut self, side: Side, videos: &[u32], train: bool) -> Result<TowerOutput> {
        let tower = match side {
            Side::Query => &mut self.query,
            Side::Candidate => &mut self.candidate,
        };
        tower.forward(&self.features, videos, train, &self.device)
    }

    /// Adam step `step` on the embedding rows a training forward pass of `side` used.
    pub fn apply_sparse(
        &mut self,
        side: Side,
        output: &TowerOutput,
        grads: &GradStore,
        config: &AdamConfig,
        step: usize,
    ) -> Result<()> {
        match side {
            Side::Query => self.query.apply_sparse(output, grads, config, step),
            Side::Candidate => self.candidate.apply_sparse(output, grads, config, step),
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
