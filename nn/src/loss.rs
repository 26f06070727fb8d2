//! Losses and normalisations written so that neither the value nor the gradient can become
//! NaN or infinite, whatever the magnitude of the input.

use candle_core::{Result, Tensor, D};

/// Element-wise binary log loss of `logits` against 0/1 `targets` (same shape):
/// `max(x, 0) - x*y + log(1 + exp(-|x|))`.
///
/// Equal to `-y log σ(x) - (1-y) log(1-σ(x))`, but `exp` only ever sees a non-positive
/// argument, so a logit of ±1000 gives a finite loss and gradient. `log(1 + e)` loses the
/// last bits that `log1p` would keep when `e` is below 1e-7 (candle has no `log1p`); that
/// error is below f32 resolution of the loss.
pub fn log_loss_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let tail = log1p_exp_neg_abs(logits)?;
    logits.relu()?.sub(&logits.mul(targets)?)?.add(&tail)
}

/// Element-wise `log(1 + exp(x))`, the log loss of a logit whose target is 0 (use `-x` for a
/// target of 1); finite for any finite `x`, with the same form as [`log_loss_with_logits`].
pub fn softplus(logits: &Tensor) -> Result<Tensor> {
    logits.relu()?.add(&log1p_exp_neg_abs(logits)?)
}

fn log1p_exp_neg_abs(x: &Tensor) -> Result<Tensor> {
    x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()
}

/// Rows of `x` (shape `(n, d)`) divided by `sqrt(|row|² + eps)`.
///
/// The `eps` keeps a zero row finite in both directions: it maps to zero, and the gradient
/// of the square root is taken at `sqrt(eps) > 0` instead of at 0. So the cosine of a zero
/// vector with anything is 0.
pub fn l2_normalise(x: &Tensor, eps: f64) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.affine(1.0, eps)?.sqrt()?;
    x.broadcast_div(&norm)
}

/// Row-wise cosine of two `(n, d)` tensors, with the zero-vector guard of [`l2_normalise`].
pub fn cosine(a: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    l2_normalise(a, eps)?
        .mul(&l2_normalise(b, eps)?)?
        .sum(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn finite(values: &[f32]) -> bool {
        values.iter().all(|v| v.is_finite())
    }

    #[test]
    fn log_loss_matches_the_textbook_form() {
        // Reference: -y ln σ(x) - (1-y) ln(1-σ(x)) in f64, fine for moderate logits.
        let xs = [-3.0f32, -0.5, 0.0, 0.7, 4.0];
        let ys = [1.0f32, 0.0, 1.0, 1.0, 0.0];
        let logits = Tensor::new(&xs, &Device::Cpu).unwrap();
        let targets = Tensor::new(&ys, &Device::Cpu).unwrap();
        let loss = log_loss_with_logits(&logits, &targets)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for ((&x, &y), &got) in xs.iter().zip(&ys).zip(&loss) {
            let sigma = 1.0 / (1.0 + (-(x as f64)).exp());
            let want = -(y as f64) * sigma.ln() - (1.0 - y as f64) * (1.0 - sigma).ln();
            assert!(
                (got as f64 - want).abs() < 1e-6,
                "x={x} y={y}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn log_loss_and_gradient_are_finite_for_huge_logits() {
        let xs = [-1000.0f32, -100.0, 100.0, 1000.0, 100.0, -100.0];
        let ys = [1.0f32, 1.0, 1.0, 1.0, 0.0, 0.0];
        let logits = Var::new(&xs, &Device::Cpu).unwrap();
        let targets = Tensor::new(&ys, &Device::Cpu).unwrap();
        let loss = log_loss_with_logits(logits.as_tensor(), &targets).unwrap();
        let values = loss.to_vec1::<f32>().unwrap();
        assert!(finite(&values), "{values:?}");
        // A confident wrong answer costs |x|; a confident right one costs ~0.
        assert!((values[0] - 1000.0).abs() < 1e-3 && (values[1] - 100.0).abs() < 1e-3);
        assert!(values[2].abs() < 1e-6 && values[3].abs() < 1e-6);
        assert!((values[4] - 100.0).abs() < 1e-3 && values[5].abs() < 1e-6);

        let grads = loss.sum_all().unwrap().backward().unwrap();
        let grad = grads
            .get(logits.as_tensor())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(finite(&grad), "{grad:?}");
        // d/dx = σ(x) - y.
        let want = [-1.0f32, -1.0, 0.0, 0.0, 1.0, 0.0];
        for (g, w) in grad.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{grad:?}");
        }
    }

    #[test]
    fn log_loss_gradient_at_zero_is_one_half_minus_target() {
        let logits = Var::new(&[0.0f32, 0.0], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[1.0f32, 0.0], &Device::Cpu).unwrap();
        let loss = log_loss_with_logits(logits.as_tensor(), &targets).unwrap();
        let grads = loss.sum_all().unwrap().backward().unwrap();
        let grad = grads
            .get(logits.as_tensor())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(grad, vec![-0.5, 0.5]);
    }

    #[test]
    fn softplus_is_the_loss_of_target_zero() {
        let xs = [-200.0f32, -1.0, 0.0, 2.0, 200.0];
        let logits = Tensor::new(&xs, &Device::Cpu).unwrap();
        let zeros = logits.zeros_like().unwrap();
        let a = softplus(&logits).unwrap().to_vec1::<f32>().unwrap();
        let b = log_loss_with_logits(&logits, &zeros)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b);
        assert!(finite(&a));
    }

    #[test]
    fn cosine_of_a_zero_vector_is_zero_with_finite_gradient() {
        let a = Var::new(&[[0.0f32, 0.0, 0.0], [1.0, 2.0, 2.0]], &Device::Cpu).unwrap();
        let b = Var::new(&[[1.0f32, 0.0, 0.0], [2.0, 4.0, 4.0]], &Device::Cpu).unwrap();
        let cos = cosine(a.as_tensor(), b.as_tensor(), 1e-12).unwrap();
        let values = cos.to_vec1::<f32>().unwrap();
        assert_eq!(values[0], 0.0);
        assert!((values[1] - 1.0).abs() < 1e-6);

        let grads = cos.sum_all().unwrap().backward().unwrap();
        for var in [&a, &b] {
            let grad = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap();
            let grad = grad.to_vec1::<f32>().unwrap();
            assert!(finite(&grad), "{grad:?}");
        }
    }

    #[test]
    fn normalised_rows_have_unit_length() {
        let x = Tensor::new(&[[3.0f32, 4.0], [0.0, 0.0]], &Device::Cpu).unwrap();
        let rows = l2_normalise(&x, 1e-12).unwrap().to_vec2::<f32>().unwrap();
        assert!((rows[0][0] - 0.6).abs() < 1e-6 && (rows[0][1] - 0.8).abs() < 1e-6);
        assert_eq!(rows[1], vec![0.0, 0.0]);
    }
}
