//! Adam settings shared by the dense parameters (candle's `AdamW`) and the sparse embedding
//! tables (our lazy Adam in `sparse.rs`), so both follow the same update rule.

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::Var;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

/// Adam with decoupled weight decay (AdamW).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub learning_rate: f64,
    /// Decoupled weight decay λ: each step multiplies the weights by `1 - lr·λ`.
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl AdamConfig {
    /// The usual betas (0.9, 0.999) and eps (1e-8) with the given rate and decay.
    pub fn new(learning_rate: f64, weight_decay: f64) -> AdamConfig {
        AdamConfig {
            learning_rate,
            weight_decay,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// The optimiser of a model's dense parameters, counting the steps the sparse tables share.
pub struct Adam {
    config: AdamConfig,
    dense: AdamW,
    step: usize,
}

impl Adam {
    pub fn new(config: AdamConfig, vars: Vec<Var>) -> Result<Adam> {
        let params = ParamsAdamW {
            lr: config.learning_rate,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
            weight_decay: config.weight_decay,
        };
        Ok(Adam {
            config,
            dense: AdamW::new(vars, params)?,
            step: 0,
        })
    }

    /// Updates the dense parameters from `grads`; returns the 1-based step number to pass to
    /// the sparse tables' updates of the same batch.
    pub fn step(&mut self, grads: &GradStore) -> Result<usize> {
        self.dense.step(grads)?;
        self.step += 1;
        Ok(self.step)
    }

    pub fn config(&self) -> &AdamConfig {
        &self.config
    }
}
