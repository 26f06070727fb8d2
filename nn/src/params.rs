//! Trainable dense parameters, initialised from our own seeded RNG and kept in a candle
//! `VarMap` (what candle's optimisers and safetensors saving expect).
//!
//! Writes `<model>.safetensors` through a temporary file and a rename.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// `n` values drawn uniformly from `[-bound, bound)`.
pub fn uniform(rng: &mut ChaCha8Rng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

/// `n` values from a normal distribution with mean 0 and standard deviation `std`
/// (Box-Muller on our RNG, because `rand_distr` is not a dependency of the workspace).
pub fn normal(rng: &mut ChaCha8Rng, n: usize, std: f32) -> Vec<f32> {
    let mut values = Vec::with_capacity(n + 1);
    while values.len() < n {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        values.push((radius * angle.cos()) as f32 * std);
        values.push((radius * angle.sin()) as f32 * std);
    }
    values.truncate(n);
    values
}

/// Named dense parameters in creation order.
pub struct Params {
    varmap: VarMap,
    names: Vec<String>,
    device: Device,
}

impl Params {
    /// An empty set of parameters living on `device`.
    pub fn new(device: &Device) -> Params {
        Params {
            varmap: VarMap::new(),
            names: Vec::new(),
            device: device.clone(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Adds a parameter of `shape` holding `values` (row-major).
    pub fn add(&mut self, name: &str, values: Vec<f32>, shape: &[usize]) -> Result<Var> {
        anyhow::ensure!(
            !self.names.iter().any(|n| n == name),
            "parameter {name} added twice"
        );
        let tensor = Tensor::from_vec(values, shape, &self.device)
            .with_context(|| format!("creating parameter {name}"))?;
        let var = Var::from_tensor(&tensor)?;
        self.varmap
            .data()
            .lock()
            .expect("var map lock")
            .insert(name.to_string(), var.clone());
        self.names.push(name.to_string());
        Ok(var)
    }

    /// The underlying `VarMap`.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Every parameter with its name, in creation order.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().expect("var map lock");
        self.names
            .iter()
            .map(|name| (name.clone(), data[name].clone()))
            .collect()
    }

    /// Every parameter, in creation order (what the optimiser takes).
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, var)| var).collect()
    }

    /// Deep copies of the current values, to restore the best epoch later.
    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        self.named_vars()
            .iter()
            .map(|(_, var)| Ok(var.as_tensor().copy()?))
            .collect()
    }

    /// Puts back values taken by [`Params::snapshot`].
    pub fn restore(&self, snapshot: &[Tensor]) -> Result<()> {
        for ((name, var), value) in self.named_vars().iter().zip(snapshot) {
            var.set(value)
                .with_context(|| format!("restoring parameter {name}"))?;
        }
        Ok(())
    }

    /// Fails on the first parameter holding NaN or infinity, naming it and its first bad row
    /// (a row being the last dimension's values).
    pub fn check_finite(&self, step: &str) -> Result<()> {
        for (name, var) in self.named_vars() {
            let tensor = var.as_tensor();
            let row_len = tensor.dims().last().copied().unwrap_or(1);
            let values = tensor.flatten_all()?.to_vec1::<f32>()?;
            crate::finite::check_finite(&name, &values, row_len, step)?;
        }
        Ok(())
    }
}

/// Writes named tensors as safetensors through `<path>.tmp` and a rename, like every
/// Parquet output, so an interrupted run leaves neither a truncated model nor a stray
/// temporary file that a rerun would not overwrite. Equal tensors give equal bytes: entries
/// are ordered by dtype and name.
pub fn save_safetensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let bytes = safetensors::tensor::serialize(tensors.iter(), None)
        .with_context(|| format!("serialising the model for {}", path.display()))?;
    common::io::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::rng::rng_for;

    #[test]
    fn same_seed_gives_the_same_weights() {
        let a = uniform(&mut rng_for(1, "init", 0), 10, 0.5);
        let b = uniform(&mut rng_for(1, "init", 0), 10, 0.5);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (-0.5..0.5).contains(v)));
        assert_ne!(a, uniform(&mut rng_for(2, "init", 0), 10, 0.5));
    }

    #[test]
    fn normal_draws_have_the_requested_spread() {
        let values = normal(&mut rng_for(3, "init", 0), 20_001, 2.0);
        assert_eq!(values.len(), 20_001);
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "{}", var.sqrt());
    }

    #[test]
    fn snapshot_and_restore_round_trip() {
        let mut params = Params::new(&Device::Cpu);
        let var = params.add("w", vec![1.0, 2.0], &[2]).unwrap();
        let saved = params.snapshot().unwrap();
        var.set(&Tensor::new(&[5.0f32, 6.0], &Device::Cpu).unwrap())
            .unwrap();
        params.restore(&saved).unwrap();
        assert_eq!(var.as_tensor().to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
    }

    #[test]
    fn non_finite_parameter_is_named() {
        let mut params = Params::new(&Device::Cpu);
        params
            .add("layer0.weight", vec![0.0, 1.0, 2.0, f32::NAN], &[2, 2])
            .unwrap();
        let message = format!("{:#}", params.check_finite("epoch 2").unwrap_err());
        assert!(
            message.contains("layer0.weight") && message.contains("row 1"),
            "{message}"
        );
        assert!(message.contains("epoch 2"), "{message}");
    }

    #[test]
    fn saving_twice_gives_identical_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut tensors = HashMap::new();
        for name in ["b", "a", "c"] {
            tensors.insert(
                name.to_string(),
                Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap(),
            );
        }
        let (first, second) = (
            dir.path().join("1.safetensors"),
            dir.path().join("2.safetensors"),
        );
        save_safetensors(&first, &tensors).unwrap();
        save_safetensors(&second, &tensors).unwrap();
        assert_eq!(
            std::fs::read(first).unwrap(),
            std::fs::read(second).unwrap()
        );
    }
}
