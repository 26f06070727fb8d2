//! Step 3b: L2-regularised logistic regression (Newton's method) and the ROC AUC.
//!
//! Reads standardised feature rows and 0/1 labels; writes nothing. Minimises
//! sum_i [log(1 + e^{z_i}) - y_i z_i] + l2/2 ||beta||^2 with z_i = b0 + x_i . beta; the
//! intercept b0 is not penalised. Newton steps solve the (K+1)x(K+1) system by Cholesky and
//! are halved until the objective decreases. Sums run over fixed chunks of rows in
//! parallel and are added in chunk order, so the fit does not depend on the thread count.

use std::cmp::Ordering;

use anyhow::{bail, Result};
use rayon::prelude::*;

/// Rows per chunk of the parallel sums.
const CHUNK_ROWS: usize = 4096;
/// Newton iterations at most; the problem is smooth and strictly convex, so a handful do.
const MAX_ITERATIONS: usize = 100;

/// A fitted model.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub intercept: f64,
    /// One coefficient per feature, on the scale of the features given.
    pub coefficients: Vec<f64>,
    pub iterations: usize,
    /// Penalised objective at the solution.
    pub objective: f64,
}

impl Fitted {
    /// The linear score z of one row.
    pub fn score(&self, row: &[f64]) -> f64 {
        self.intercept
            + row
                .iter()
                .zip(&self.coefficients)
                .map(|(x, b)| x * b)
                .sum::<f64>()
    }
}

/// log(1 + e^z) without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Penalised objective of parameters `theta` = (b0, beta).
fn objective(x: &[f64], y: &[f64], k: usize, theta: &[f64], l2: f64) -> f64 {
    let partials: Vec<f64> = y
        .par_chunks(CHUNK_ROWS)
        .enumerate()
        .map(|(c, labels)| {
            let base = c * CHUNK_ROWS;
            let mut sum = 0.0;
            for (i, &label) in labels.iter().enumerate() {
                let z = linear(&x[(base + i) * k..(base + i + 1) * k], theta);
                sum += softplus(z) - label * z;
            }
            sum
        })
        .collect();
    partials.iter().sum::<f64>() + 0.5 * l2 * theta[1..].iter().map(|b| b * b).sum::<f64>()
}

fn linear(row: &[f64], theta: &[f64]) -> f64 {
    theta[0] + row.iter().zip(&theta[1..]).map(|(x, b)| x * b).sum::<f64>()
}

/// Gradient and Hessian of the penalised objective at `theta`, row-major (K+1)x(K+1).
fn derivatives(x: &[f64], y: &[f64], k: usize, theta: &[f64], l2: f64) -> (Vec<f64>, Vec<f64>) {
    let d = k + 1;
    let partials: Vec<(Vec<f64>, Vec<f64>)> = y
        .par_chunks(CHUNK_ROWS)
        .enumerate()
        .map(|(c, labels)| {
            let base = c * CHUNK_ROWS;
            let (mut g, mut h) = (vec![0.0; d], vec![0.0; d * d]);
            let mut augmented = vec![1.0; d];
            for (i, &label) in labels.iter().enumerate() {
                augmented[1..].copy_from_slice(&x[(base + i) * k..(base + i + 1) * k]);
                let p = sigmoid(linear(&augmented[1..], theta));
                let w = p * (1.0 - p);
                for a in 0..d {
                    g[a] += (p - label) * augmented[a];
                    for b in 0..=a {
                        h[a * d + b] += w * augmented[a] * augmented[b];
                    }
                }
            }
            (g, h)
        })
        .collect();
    let (mut g, mut h) = (vec![0.0; d], vec![0.0; d * d]);
    for (pg, ph) in &partials {
        g.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
        h.iter_mut().zip(ph).for_each(|(a, b)| *a += b);
    }
    for a in 0..d {
        for b in 0..a {
            h[b * d + a] = h[a * d + b];
        }
    }
    for j in 1..d {
        g[j] += l2 * theta[j];
        h[j * d + j] += l2;
    }
    (g, h)
}

/// Solves `h s = g` for a symmetric positive definite `h` (row-major, d x d) by Cholesky.
fn cholesky_solve(h: &[f64], g: &[f64]) -> Option<Vec<f64>> {
    let d = g.len();
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut sum = h[i * d + j];
            for p in 0..j {
                sum -= l[i * d + p] * l[j * d + p];
            }
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return None;
                }
                l[i * d + i] = sum.sqrt();
            } else {
                l[i * d + j] = sum / l[j * d + j];
            }
        }
    }
    let mut z = vec![0.0; d];
    for i in 0..d {
        let sum: f64 = (0..i).map(|p| l[i * d + p] * z[p]).sum();
        z[i] = (g[i] - sum) / l[i * d + i];
    }
    let mut s = vec![0.0; d];
    for i in (0..d).rev() {
        let sum: f64 = (i + 1..d).map(|p| l[p * d + i] * s[p]).sum();
        s[i] = (z[i] - sum) / l[i * d + i];
    }
    Some(s)
}

/// Fits the model to row-major features `x` (n rows of `k`) and labels `y` in {0, 1}.
///
/// Both classes must be present: with one class the unpenalised intercept has no finite
/// optimum, which the caller treats as a fallback case before calling.
/// `what` names the model in the log lines.
pub fn fit(x: &[f64], y: &[f64], k: usize, l2: f64, what: &str) -> Result<Fitted> {
    let n_positive = y.iter().filter(|&&v| v == 1.0).count();
    if n_positive == 0 || n_positive == y.len() {
        bail!(
            "logistic regression needs both labels among its {} rows",
            y.len()
        );
    }
    // Starting from the base rate makes the first step small.
    let rate = n_positive as f64 / y.len() as f64;
    let mut theta = vec![0.0; k + 1];
    theta[0] = (rate / (1.0 - rate)).ln();
    let mut current = objective(x, y, k, &theta, l2);

    for iteration in 1..=MAX_ITERATIONS {
        let (g, h) = derivatives(x, y, k, &theta, l2);
        let Some(step) = cholesky_solve(&h, &g) else {
            bail!("the Hessian of the {what} is not positive definite (iteration {iteration})");
        };
        // Halve the Newton step until the objective does not increase.
        let mut scale = 1.0;
        let (mut candidate, mut value);
        loop {
            candidate = theta
                .iter()
                .zip(&step)
                .map(|(t, s)| t - scale * s)
                .collect::<Vec<f64>>();
            value = objective(x, y, k, &candidate, l2);
            if value <= current || scale < 1e-10 {
                break;
            }
            scale *= 0.5;
        }
        let moved = step.iter().map(|s| (scale * s).abs()).fold(0.0, f64::max);
        let improvement = current - value;
        theta = candidate;
        current = value;
        tracing::info!("{what}: iteration {iteration}, objective {current:.6}, step {moved:.2e}");
        if moved < 1e-9 || improvement.abs() <= 1e-13 * (1.0 + current.abs()) {
            return Ok(Fitted {
                intercept: theta[0],
                coefficients: theta[1..].to_vec(),
                iterations: iteration,
                objective: current,
            });
        }
    }
    Ok(Fitted {
        intercept: theta[0],
        coefficients: theta[1..].to_vec(),
        iterations: MAX_ITERATIONS,
        objective: current,
    })
}

/// ROC AUC of scores against 0/1 labels (Mann-Whitney, tied scores count one half);
/// `None` when either class is absent.
pub fn auc(scores: &[f64], labels: &[f64]) -> Option<f64> {
    let n_pos = labels.iter().filter(|&&y| y == 1.0).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    // Sum of the positives' 1-based mid-ranks.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len()
            && scores[order[end]].total_cmp(&scores[order[start]]) == Ordering::Equal
        {
            end += 1;
        }
        let mid = (start + end + 1) as f64 / 2.0;
        rank_sum += order[start..end]
            .iter()
            .filter(|&&i| labels[i] == 1.0)
            .count() as f64
            * mid;
        start = end;
    }
    let n_pos = n_pos as f64;
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg as f64))
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Rows with three standard-normal-ish features and labels drawn from a planted model
    /// z = -0.3 + 1.5 x0 - 0.6 x1 + 0 x2.
    fn planted(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Vec::with_capacity(n * 3);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            // Sum of uniforms: roughly normal, mean 0, variance 1.
            let row: Vec<f64> = (0..3)
                .map(|_| (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0)
                .collect();
            let z = -0.3 + 1.5 * row[0] - 0.6 * row[1];
            y.push(if rng.random::<f64>() < sigmoid(z) {
                1.0
            } else {
                0.0
            });
            x.extend(row);
        }
        (x, y)
    }

    #[test]
    fn recovers_planted_coefficient_signs_and_order() {
        let (x, y) = planted(20_000, 7);
        let model = fit(&x, &y, 3, 1.0, "t").unwrap();
        let b = &model.coefficients;
        assert!(b[0] > 1.3 && b[0] < 1.7, "{b:?}");
        assert!(b[1] < -0.45 && b[1] > -0.75, "{b:?}");
        assert!(b[2].abs() < 0.1, "{b:?}");
        assert!((model.intercept + 0.3).abs() < 0.1, "{}", model.intercept);
        let (xt, yt) = planted(5_000, 8);
        let scores: Vec<f64> = (0..yt.len())
            .map(|i| model.score(&xt[i * 3..i * 3 + 3]))
            .collect();
        assert!(auc(&scores, &yt).unwrap() > 0.8);
    }

    #[test]
    fn gradient_vanishes_at_the_solution() {
        let (x, y) = planted(3_000, 9);
        let model = fit(&x, &y, 3, 2.5, "t").unwrap();
        let mut theta = vec![model.intercept];
        theta.extend(&model.coefficients);
        let (g, _) = derivatives(&x, &y, 3, &theta, 2.5);
        assert!(g.iter().all(|v| v.abs() < 1e-6), "{g:?}");
    }

    #[test]
    fn stronger_penalty_shrinks_coefficients() {
        let (x, y) = planted(500, 10);
        let loose = fit(&x, &y, 3, 0.1, "t").unwrap();
        let tight = fit(&x, &y, 3, 500.0, "t").unwrap();
        assert!(tight.coefficients[0].abs() < 0.5 * loose.coefficients[0].abs());
    }

    #[test]
    fn separable_data_stays_finite() {
        let x = vec![-2.0, -1.0, 1.0, 2.0];
        let y = vec![0.0, 0.0, 1.0, 1.0];
        let model = fit(&x, &y, 1, 1.0, "t").unwrap();
        assert!(model.coefficients[0].is_finite() && model.coefficients[0] > 0.0);
    }

    #[test]
    fn one_class_is_refused() {
        let err = fit(&[0.1, 0.2], &[1.0, 1.0], 1, 1.0, "t").unwrap_err();
        assert!(err.to_string().contains("both labels"));
    }

    #[test]
    fn same_fit_with_one_and_four_threads() {
        let (x, y) = planted(50_000, 11);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| fit(&x, &y, 3, 1.0, "t").unwrap())
        };
        assert_eq!(run(1), run(4));
    }

    #[test]
    fn auc_counts_ties_as_one_half() {
        // Positives at 0.9 and 0.5, negatives at 0.5 and 0.1: pairs (0.9>0.5, 0.9>0.1,
        // 0.5=0.5 -> 1/2, 0.5>0.1) -> 3.5 / 4.
        let auc = auc(&[0.9, 0.5, 0.5, 0.1], &[1.0, 1.0, 0.0, 0.0]).unwrap();
        assert!((auc - 0.875).abs() < 1e-12, "{auc}");
        assert_eq!(super::auc(&[0.1, 0.2], &[1.0, 1.0]), None);
    }

    #[test]
    fn cholesky_solves_a_small_system() {
        // [[4, 2], [2, 3]] s = [2, 1] -> s = [0.5, 0].
        let s = cholesky_solve(&[4.0, 2.0, 2.0, 3.0], &[2.0, 1.0]).unwrap();
        assert!((s[0] - 0.5).abs() < 1e-12 && s[1].abs() < 1e-12, "{s:?}");
        assert!(cholesky_solve(&[0.0, 0.0, 0.0, 1.0], &[1.0, 1.0]).is_none());
    }
}
