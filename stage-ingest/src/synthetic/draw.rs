//! The random draws of the generator, written here because only `rand` (no `rand_distr`)
//! is a workspace dependency: normal, exponential, Poisson and geometric variates, a
//! logistic function, and sampling from cumulative weights.

use rand::Rng;

/// Logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A uniform draw in (0, 1], safe for `ln`.
fn open_unit(rng: &mut impl Rng) -> f64 {
    1.0 - rng.random::<f64>()
}

/// Standard normal variate (Box-Muller; the second variate is discarded).
pub fn normal(rng: &mut impl Rng) -> f64 {
    let radius = (-2.0 * open_unit(rng).ln()).sqrt();
    radius * (std::f64::consts::TAU * rng.random::<f64>()).cos()
}

/// Exponential variate with the given mean.
pub fn exponential(rng: &mut impl Rng, mean: f64) -> f64 {
    -mean * open_unit(rng).ln()
}

/// Poisson variate: Knuth's product method for small means, a rounded normal above 30
/// (the generator only needs the right mean and a plausible spread).
pub fn poisson(rng: &mut impl Rng, mean: f64) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        return (mean + mean.sqrt() * normal(rng)).round().max(0.0) as u32;
    }
    let limit = (-mean).exp();
    let mut product = rng.random::<f64>();
    let mut count = 0;
    while product > limit {
        product *= rng.random::<f64>();
        count += 1;
    }
    count
}

/// Number of trials up to and including the first success, with the given mean (>= 1).
pub fn geometric(rng: &mut impl Rng, mean: f64) -> u32 {
    if mean <= 1.0 {
        return 1;
    }
    let p = 1.0 / mean;
    1 + (open_unit(rng).ln() / (1.0 - p).ln()).floor() as u32
}

/// Cumulative sums of weights, for [`pick`].
pub fn cumulative(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut total = 0.0;
    weights
        .into_iter()
        .map(|w| {
            total += w;
            total
        })
        .collect()
}

/// An index drawn with probability proportional to its weight, given cumulative weights.
pub fn pick(rng: &mut impl Rng, cumulative: &[f64]) -> usize {
    let total = *cumulative.last().expect("at least one weight");
    let target = rng.random::<f64>() * total;
    cumulative
        .partition_point(|&c| c <= target)
        .min(cumulative.len() - 1)
}

/// Walker's alias table: draws an index with probability proportional to its weight in
/// constant time (a binary search over 10^4 cumulative weights per event was the
/// generator's hottest spot).
#[derive(Debug, Clone, Default)]
pub struct AliasTable {
    /// Per slot: the probability of keeping the slot rather than taking its alias, and the
    /// alias (side by side: one cache miss per draw).
    slots: Vec<(f32, u32)>,
}

impl AliasTable {
    /// Builds the table of non-negative weights with a positive sum (Vose's method).
    pub fn new(weights: &[f64]) -> AliasTable {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut keep: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| keep[i] < 1.0);
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            alias[s] = l as u32;
            keep[l] -= 1.0 - keep[s];
            if keep[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Left-overs are 1 up to rounding.
        for i in small.into_iter().chain(large) {
            keep[i] = 1.0;
        }
        AliasTable {
            slots: keep.into_iter().map(|k| k as f32).zip(alias).collect(),
        }
    }

    /// True for a table of no weights.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// An index drawn with probability proportional to its weight.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let slot = rng.random_range(0..self.slots.len());
        let (keep, alias) = self.slots[slot];
        if rng.random::<f32>() < keep {
            slot
        } else {
            alias as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> rand_chacha::ChaCha8Rng {
        common::rng::rng_for(1, "test", 0)
    }

    fn mean_of(n: usize, mut f: impl FnMut() -> f64) -> f64 {
        (0..n).map(|_| f()).sum::<f64>() / n as f64
    }

    #[test]
    fn normal_has_zero_mean_unit_variance() {
        let mut r = rng();
        let draws: Vec<f64> = (0..50_000).map(|_| normal(&mut r)).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 1.0).abs() < 0.03, "{var}");
    }

    #[test]
    fn poisson_geometric_and_exponential_have_their_means() {
        let mut r = rng();
        for mean in [0.5, 4.0, 50.0] {
            let got = mean_of(40_000, || poisson(&mut r, mean) as f64);
            assert!(
                (got - mean).abs() < 0.03 * mean + 0.02,
                "poisson {mean}: {got}"
            );
        }
        let got = mean_of(40_000, || geometric(&mut r, 5.0) as f64);
        assert!((got - 5.0).abs() < 0.1, "geometric: {got}");
        let got = mean_of(40_000, || exponential(&mut r, 3.0));
        assert!((got - 3.0).abs() < 0.06, "exponential: {got}");
    }

    #[test]
    fn pick_follows_weights_and_skips_zero_weights() {
        let mut r = rng();
        let cum = cumulative([1.0, 0.0, 3.0]);
        let mut counts = [0usize; 3];
        for _ in 0..40_000 {
            counts[pick(&mut r, &cum)] += 1;
        }
        assert_eq!(counts[1], 0);
        let share = counts[2] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.01, "{share}");
    }

    #[test]
    fn alias_table_follows_weights() {
        let mut r = rng();
        let weights = [1.0, 0.0, 3.0, 6.0];
        let table = AliasTable::new(&weights);
        let mut counts = [0usize; 4];
        for _ in 0..100_000 {
            counts[table.sample(&mut r)] += 1;
        }
        assert_eq!(counts[1], 0);
        for (count, weight) in counts.iter().zip(weights) {
            let share = *count as f64 / 100_000.0;
            assert!((share - weight / 10.0).abs() < 0.01, "{counts:?}");
        }
    }

    #[test]
    fn sigmoid_is_symmetric() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!((sigmoid(2.0) + sigmoid(-2.0) - 1.0).abs() < 1e-12);
    }
}
