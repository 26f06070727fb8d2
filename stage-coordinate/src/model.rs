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
}

/// Per-shard buffers of a training forward pass: one deduplicator per embedding field.
pub struct Scratch {
    dedups: Vec<Dedup>,
}

/// The network and its side-feature lookup.
pub struct CoordinateModel {
    params: Params,
    fields: Vec<EmbeddingField>,
    /// One deduplicator per field, to merge the shards' rows before an update.
    merge: Vec<Dedup>,
    mlp: Mlp,
    n_objectives: usize,
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
            },
            EmbeddingField {
                entity: Entity::Video,
                codes: None,
                table: table("embedding.video_id", side.videos.n_rows),
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
                });
            }
        }

        let n_inputs = fields.len() * dim + side.n_dense();
        let mut dims = vec![n_inputs];
        dims.extend_from_slice(&section.hidden);
        dims.push(n_objectives);
        let mut params = Params::new(device);
        let mlp = Mlp::new(&mut params, &mut rng, "mlp", &dims)?;
        let merge = fields
            .iter()
            .map(|f| Dedup::new(f.table.n_rows()))
            .collect();
        Ok(CoordinateModel {
            params,
            fields,
            merge,
            mlp,
            n_objectives,
            side,
            device: device.clone(),
        })
    }

    /// Number of outputs (one logit per objective).
    pub fn n_objectives(&self) -> usize {
        self.n_objectives
    }

    /// Width of the MLP input.
    pub fn n_inputs(&self) -> usize {
        self.fields.iter().map(|f| f.table.dim()).sum::<usize>() + self.side.n_dense()
    }

    /// Buffers for [`Self::forward`]; one per shard, reused across batches.
    pub fn scratch(&self) -> Scratch {
        Scratch {
            dedups: self
                .fields
                .iter()
                .map(|f| Dedup::new(f.table.n_rows()))
                .collect(),
        }
    }

    /// Logits of the interactions `rows` of `table` for a training step: the embedding rows
    /// become graph leaves so that [`Self::apply_sparse`] can update them.
    pub fn forward(
        &self,
        scratch: &mut Scratch,
        table: &Interactions,
        rows: &[u32],
    ) -> Result<Forward> {
        let n = rows.len();
        let mut parts = Vec::with_capacity(self.fields.len() + 1);
        let mut gathered = Vec::new();
        for (field, dedup) in self.fields.iter().zip(&mut scratch.dedups) {
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
            dedup.run(codes);
            let local = Tensor::from_slice(&dedup.local, n, &self.device)?;
            let leaf = field.table.gather_var(&dedup.unique, &self.device)?;
            parts.push(leaf.var.as_tensor().index_select(&local, 0)?);
            gathered.push(leaf);
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

    /// Logits `(rows, objectives)` of the interactions `rows` of `table`, without gradients
    /// and without touching the model, so that chunks of rows can run in parallel. The
    /// input row is assembled in [`Self::forward`]'s column order, so both give the same
    /// logits.
    pub fn predict(&self, table: &Interactions, rows: &[u32]) -> Result<Tensor> {
        let width = self.n_inputs();
        let mut inputs = Vec::with_capacity(rows.len() * width);
        for &row in rows {
            let row = row as usize;
            let (user, video) = (table.user_idx[row], table.video_idx[row]);
            for field in &self.fields {
                let entity = match field.entity {
                    Entity::User => user,
                    Entity::Video => video,
                };
                let index = field
                    .codes
                    .as_ref()
                    .map_or(entity, |codes| codes[entity as usize])
                    as usize;
                let dim = field.table.dim();
                inputs.extend_from_slice(&field.table.weights()[index * dim..(index + 1) * dim]);
            }
            self.side
                .push_dense(user, video, table.ts_ms[row], &mut inputs);
        }
        let inputs = Tensor::from_vec(inputs, (rows.len(), width), &self.device)?;
        Ok(self.mlp.forward(&inputs)?)
    }

    /// Adam step `step` on the embedding rows that the shards' forward passes used;
    /// `shards` holds each shard's pass and gradients, in shard order.
    pub fn apply_sparse(
        &mut self,
        shards: &[(&Forward, &GradStore)],
        config: &AdamConfig,
        step: usize,
    ) -> Result<()> {
        for (i, (field, merge)) in self.fields.iter_mut().zip(&mut self.merge).enumerate() {
            let parts: Vec<(&Gathered, &GradStore)> = shards
                .iter()
                .map(|(forward, grads)| (&forward.gathered[i], *grads))
                .collect();
            field.table.adam_step_shards(&parts, merge, config, step)?;
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
