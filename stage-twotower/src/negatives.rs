//! Negative sampling: videos drawn in proportion to popularity^0.75 (popularity = train
//! interactions), with the log of each video's sampling probability kept for the logQ
//! correction, which removes the popularity bias that the sampling adds to the logits.

use rand::Rng;

/// Exponent applied to popularity (word2vec's smoothing: popular videos are drawn less than
/// in proportion, rare ones more).
pub const POPULARITY_EXPONENT: f64 = 0.75;

/// Walker/Vose alias table: O(1) draws from a fixed discrete distribution.
#[derive(Debug, Clone)]
pub struct AliasSampler {
    /// Probability of keeping the drawn column, per column.
    keep: Vec<f64>,
    /// The other outcome of each column.
    alias: Vec<u32>,
    /// ln q_v per video (negative infinity for a video that is never drawn).
    log_q: Vec<f32>,
}

impl AliasSampler {
    /// A sampler over videos `0..weights.len()` with probabilities proportional to
    /// `weights` (non-negative, at least one positive).
    pub fn new(weights: &[f64]) -> AliasSampler {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        assert!(total > 0.0, "at least one positive weight");
        let log_q = weights
            .iter()
            .map(|&w| {
                if w > 0.0 {
                    (w / total).ln() as f32
                } else {
                    f32::NEG_INFINITY
                }
            })
            .collect();

        // Vose's construction: scale to mean 1, then pair each small column with a large one.
        let mut scaled: Vec<f64> = weights.iter().map(|&w| w * n as f64 / total).collect();
        let mut keep = vec![1.0; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<u32>, Vec<u32>) =
            (0..n as u32).partition(|&i| scaled[i as usize] < 1.0);
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            keep[s as usize] = scaled[s as usize];
            alias[s as usize] = l;
            scaled[l as usize] -= 1.0 - scaled[s as usize];
            if scaled[l as usize] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Leftovers are 1 up to rounding.
        for i in small.into_iter().chain(large) {
            keep[i as usize] = 1.0;
        }
        AliasSampler { keep, alias, log_q }
    }

    /// The sampler of popularity^0.75 over train interaction counts.
    pub fn from_popularity(counts: &[u32]) -> AliasSampler {
        let weights: Vec<f64> = counts
            .iter()
            .map(|&c| (c as f64).powf(POPULARITY_EXPONENT))
            .collect();
        AliasSampler::new(&weights)
    }

    /// One draw.
    pub fn sample(&self, rng: &mut impl Rng) -> u32 {
        let column = rng.random_range(0..self.keep.len());
        if rng.random::<f64>() < self.keep[column] {
            column as u32
        } else {
            self.alias[column]
        }
    }

    /// ln of the probability of drawing `video`.
    pub fn log_q(&self, video: u32) -> f32 {
        self.log_q[video as usize]
    }
}

/// ln of each video's share among the pair targets: the sampling probability of an
/// in-batch negative, whose distribution is that of the targets.
pub fn target_log_q(targets: &[u32], n_videos: usize) -> Vec<f32> {
    let mut counts = vec![0u64; n_videos];
    for &t in targets {
        counts[t as usize] += 1;
    }
    let total = targets.len().max(1) as f64;
    counts
        .into_iter()
        .map(|c| {
            if c > 0 {
                (c as f64 / total).ln() as f32
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_weights() {
        let sampler = AliasSampler::new(&[1.0, 0.0, 3.0, 6.0]);
        let mut rng = common::rng::rng_for(1, "test", 0);
        let mut counts = [0u32; 4];
        let n = 200_000;
        for _ in 0..n {
            counts[sampler.sample(&mut rng) as usize] += 1;
        }
        assert_eq!(counts[1], 0);
        for (i, want) in [(0, 0.1), (2, 0.3), (3, 0.6)] {
            let got = counts[i] as f64 / n as f64;
            assert!((got - want).abs() < 0.005, "video {i}: {got} vs {want}");
        }
        assert!((sampler.log_q(3) - 0.6f32.ln()).abs() < 1e-6);
        assert_eq!(sampler.log_q(1), f32::NEG_INFINITY);
    }

    #[test]
    fn popularity_is_smoothed_by_the_exponent() {
        let sampler = AliasSampler::from_popularity(&[16, 1]);
        // 16^0.75 = 8, so q = 8/9 and 1/9.
        assert!((sampler.log_q(0) - (8.0f32 / 9.0).ln()).abs() < 1e-6);
        assert!((sampler.log_q(1) - (1.0f32 / 9.0).ln()).abs() < 1e-6);
    }

    #[test]
    fn target_shares_are_counted() {
        let log_q = target_log_q(&[2, 2, 0, 2], 3);
        assert!((log_q[2] - 0.75f32.ln()).abs() < 1e-6);
        assert!((log_q[0] - 0.25f32.ln()).abs() < 1e-6);
        assert_eq!(log_q[1], f32::NEG_INFINITY);
    }
}
