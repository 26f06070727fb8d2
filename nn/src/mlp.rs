//! A multi-layer perceptron: affine layers with ReLU between them and none after the last.

use anyhow::Result;
use candle_core::{Tensor, Var};
use rand_chacha::ChaCha8Rng;

use crate::params::{uniform, Params};

/// Affine layers `x W + b` with ReLU on every layer but the last.
///
/// Weights are stored `(in, out)` so the product needs no transpose; they start uniform in
/// `±1/sqrt(in)` as PyTorch's `nn.Linear` does, biases likewise.
pub struct Mlp {
    layers: Vec<(Var, Var)>,
}

impl Mlp {
    /// Builds layers of widths `dims = [input, hidden..., output]`, named `<prefix>.<i>.weight`
    /// and `<prefix>.<i>.bias`.
    pub fn new(
        params: &mut Params,
        rng: &mut ChaCha8Rng,
        prefix: &str,
        dims: &[usize],
    ) -> Result<Mlp> {
        anyhow::ensure!(dims.len() >= 2, "an MLP needs an input and an output width");
        let mut layers = Vec::with_capacity(dims.len() - 1);
        for (i, pair) in dims.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
            let weight = params.add(
                &format!("{prefix}.{i}.weight"),
                uniform(rng, fan_in * fan_out, bound),
                &[fan_in, fan_out],
            )?;
            let bias = params.add(
                &format!("{prefix}.{i}.bias"),
                uniform(rng, fan_out, bound),
                &[fan_out],
            )?;
            layers.push((weight, bias));
        }
        Ok(Mlp { layers })
    }

    /// Applies the layers to `x` of shape `(n, input)`; returns `(n, output)`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // The bias enters as ones(n, 1) · b(1, out) rather than a broadcast add: the backward
        // pass of a broadcast sums over rows, which candle's CPU backend does with two integer
        // divisions per element (it dominated the step time); gemm does that sum fast.
        let ones = Tensor::ones((x.dim(0)?, 1), x.dtype(), x.device())?;
        let mut h = x.clone();
        for (i, (weight, bias)) in self.layers.iter().enumerate() {
            let bias_rows = ones.matmul(&bias.as_tensor().unsqueeze(0)?)?;
            h = h.matmul(weight.as_tensor())?.add(&bias_rows)?;
            if i + 1 < self.layers.len() {
                h = h.relu()?;
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use common::rng::rng_for;

    #[test]
    fn output_has_the_last_width_and_hidden_layers_use_relu() {
        let mut params = Params::new(&Device::Cpu);
        let mlp = Mlp::new(&mut params, &mut rng_for(0, "init", 0), "m", &[3, 4, 2]).unwrap();
        assert_eq!(params.named_vars().len(), 4);
        let x = Tensor::new(&[[1.0f32, -2.0, 0.5], [0.0, 0.0, 0.0]], &Device::Cpu).unwrap();
        let y = mlp.forward(&x).unwrap();
        assert_eq!(y.dims(), &[2, 2]);

        // Recompute by hand from the stored weights.
        let vars = params.vars();
        let w0 = vars[0].as_tensor().to_vec2::<f32>().unwrap();
        let b0 = vars[1].as_tensor().to_vec1::<f32>().unwrap();
        let w1 = vars[2].as_tensor().to_vec2::<f32>().unwrap();
        let b1 = vars[3].as_tensor().to_vec1::<f32>().unwrap();
        let input = [1.0f32, -2.0, 0.5];
        let hidden: Vec<f32> = (0..4)
            .map(|j| (b0[j] + (0..3).map(|i| input[i] * w0[i][j]).sum::<f32>()).max(0.0))
            .collect();
        let out: Vec<f32> = (0..2)
            .map(|k| b1[k] + (0..4).map(|j| hidden[j] * w1[j][k]).sum::<f32>())
            .collect();
        let got = y.to_vec2::<f32>().unwrap();
        for k in 0..2 {
            assert!((got[0][k] - out[k]).abs() < 1e-5, "{got:?} vs {out:?}");
        }
    }
}
