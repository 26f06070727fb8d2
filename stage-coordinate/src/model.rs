//! The Coordinating Network: embeddings of the user id, the video id and every categorical
//! side feature, concatenated with the numeric side features and the time context, through
//! an MLP with ReLU hidden layers to one logit per objective (sigmoid gives p_k).

use std::collections::HashMap;

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use common::rng::rng_for;
use common::Interactions;
use relvid_nn::params::normal;
use relvid_nn::sparse::Gathered;
use relvid_nn::{AdamConfig, Dedup, Mlp, Params, SparseEmbedding};

use crate::config::CoordinateSection;
use crate::features::SideFeatures;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entity {
    User,
    Video,
}

/// One embedded input: a table indexed by the entity itself (ids) or by a feature code.
struct EmbeddingField {
    entity: Entity,
    /// Code per entity; `None` for an id embedding, indexed by the dense index.
    codes: Option<Vec<u32>>,
    table: SparseEmbedding,
    dedup: Dedup,
}

/// The network and its side-feature lookup.
pub struct CoordinateModel {
    params: Params,
    fields: Vec<EmbeddingField>,
    mlp: Mlp,
    side: SideFeatures,
    device: Device,
}

/// What a forward pass returns: the `(batch, objectives)` logits and, when training, the
/// embedding rows it used (to update after the backward pass).
pub struct Forward {
    pub logits: Tensor,
    gathered: Vec<Gathered>,
}

/// Weights of the best epoch, kept to restore at the end.
pub struct Snapshot {
    dense: Vec<Tensor>,
    tables: Vec<Vec<f32>>,
}

impl CoordinateModel {
    /// A freshly initialised network; every weight comes from `(seed, "coordinate-init")`.
    pub fn new(
        side: SideFeatures,
        section: &CoordinateSection,
        n_objectives: usize,
        seed: u64,
        device: &Device,
    ) -> Result<CoordinateModel> {
        let mut rng = rng_for(seed, "coordinate-init", 0);
        let dim = section.embedding_dim;
        // Rows of norm about 1, so no input group dominates the first layer at the start.
        let std = 1.0 / (dim as f32).sqrt();
        let mut table = |name: &str, n_rows: usize| {
            SparseEmbedding::new(name, n_rows, dim, normal(&mut rng, n_rows * dim, std))
        };

        let mut fields = vec![
            EmbeddingField {
                entity: Entity::User,
                codes: None,
                table: table("embedding.user_id", side.users.n_rows),
                dedup: Dedup::new(side.users.n_rows),
            },
            EmbeddingField {
                entity: Entity::Video,
                codes: None,
                table: table("embedding.video_id", side.videos.n_rows),
                dedup: Dedup::new(side.videos.n_rows),
            },
        ];
        for (entity, features, prefix) in [
            (Entity::User, &side.users, "user"),
            (Entity::Video, &side.videos, "video"),
        ] {
            for feature in &features.categorical {
                let n_codes = feature.cardinality as usize;
                fields.push(EmbeddingField {
                    entity,
                    codes: Some(feature.codes.clone()),
                    table: table(&format!("embedding.{prefix}.{}", feature.name), n_codes),
                    dedup: Dedup::new(n_codes),
                });
            }
        }

        let n_inputs = fields.len() * dim + side.n_dense();
        let mut dims = vec![n_inputs];
        dims.extend_from_slice(&section.hidden);
        dims.push(n_objectives);
        let mut params = Params::new(device);
        let mlp = Mlp::new(&mut params, &mut rng, "mlp", &dims)?;
        Ok(CoordinateModel {
            params,
            fields,
            mlp,
            side,
            device: device.clone(),
        })
    }

    /// Width of the MLP input.
    pub fn n_inputs(&self) -> usize {
        self.fields.iter().map(|f| f.table.dim()).sum::<usize>() + self.side.n_dense()
    }

    /// Logits of the interactions `rows` of `table`. With `train`, the embedding rows become
    /// graph leaves so that [`Self::apply_sparse`] can update them.
    pub fn forward(&mut self, table: &Interactions, rows: &[u32], train: bool) -> Result<Forward> {
        let n = rows.len();
        let mut parts = Vec::with_capacity(self.fields.len() + 1);
        let mut gathered = Vec::new();
        for field in &mut self.fields {
            let entities = match field.entity {
                Entity::User => &table.user_idx,
                Entity::Video => &table.video_idx,
            };
            let codes = rows.iter().map(|&row| {
                let entity = entities[row as usize];
                field
                    .codes
                    .as_ref()
                    .map_or(entity, |codes| codes[entity as usize])
            });
            field.dedup.run(codes);
            let local = Tensor::from_slice(&field.dedup.local, n, &self.device)?;
            let rows_used = if train {
                let leaf = field.table.gather_var(&field.dedup.unique, &self.device)?;
                let tensor = leaf.var.as_tensor().clone();
                gathered.push(leaf);
                tensor
            } else {
                field.table.gather(&field.dedup.unique, &self.device)?
            };
            parts.push(rows_used.index_select(&local, 0)?);
        }

        let n_dense = self.side.n_dense();
        let mut dense = Vec::with_capacity(n * n_dense);
        for &row in rows {
            let row = row as usize;
            self.side.push_dense(
                table.user_idx[row],
                table.video_idx[row],
                table.ts_ms[row],
                &mut dense,
            );
        }
        parts.push(Tensor::from_vec(dense, (n, n_dense), &self.device)?);

        let inputs = Tensor::cat(&parts, 1)?;
        Ok(Forward {
            logits: self.mlp.forward(&inputs)?,
            gathered,
        })
    }

    /// Adam step `step` on the embedding rows a training forward pass used.
    pub fn apply_sparse(
        &mut self,
        forward: &Forward,
        grads: &GradStore,
        config: &AdamConfig,
        step: usize,
    ) -> Result<()> {
        for (field, leaf) in self.fields.iter_mut().zip(&forward.gathered) {
            field.table.adam_step(leaf, grads, config, step)?;
        }
        Ok(())
    }

    /// The dense parameters (for the optimiser).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Fails on the first weight that is NaN or infinite, naming tensor, row and `step`.
    pub fn check_finite(&self, step: &str) -> Result<()> {
        for field in &self.fields {
            field.table.check_finite(step)?;
        }
        self.params.check_finite(step)
    }

    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot {
            dense: self.params.snapshot()?,
            tables: self.fields.iter().map(|f| f.table.snapshot()).collect(),
        })
    }

    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.params.restore(&snapshot.dense)?;
        for (field, weights) in self.fields.iter_mut().zip(&snapshot.tables) {
            field.table.restore(weights);
        }
        Ok(())
    }

    /// Every weight by name, for the safetensors file.
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut tensors = HashMap::new();
        for (name, var) in self.params.named_vars() {
            tensors.insert(name, var.as_tensor().clone());
        }
        for field in &self.fields {
            tensors.insert(
                field.table.name().to_string(),
                field.table.to_tensor(&self.device)?,
            );
        }
        Ok(tensors)
    }
}
