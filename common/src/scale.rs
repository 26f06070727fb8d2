//! Puts each model's scores on one scale, their empirical CDF over all candidate pairs.
//!
//! Used by stage-merge and stage-eval, so both rank with the same numbers. The ALS score and
//! the two-tower cosine of an objective are different quantities: the first is a predicted
//! preference (or a cosine of factors) fitted to a weighted co-occurrence matrix, whose
//! scale follows the factors' lengths, the second a cosine of embeddings trained with a
//! softmax temperature, whose spread depends on training. Taking the larger raw score would
//! let whichever model is more spread out decide almost every pair. Mapped to its percentile among all candidate
//! pairs, each model's score becomes uniform on [0, 1], so "max" means "the pair is high
//! in either model's ranking", and the objectives can be weighted against each other.

use std::cmp::Ordering;

use rayon::prelude::*;

/// Each value's mid-rank empirical CDF in [0, 1]: (r - 1) / (n - 1) with r the average
/// 1-based rank of the value's ties, so the lowest distinct value maps to 0 when alone, the
/// highest to 1, and equal values share one number. A single value maps to 0.5.
pub fn empirical_cdf(values: &[f32]) -> Vec<f32> {
    let n = values.len();
    if n <= 1 {
        return vec![0.5; n];
    }
    // -0.0 and 0.0 are one value here; `total_cmp` alone would rank them apart.
    let canonical = |v: f32| v + 0.0;
    assert!(
        n <= u32::MAX as usize,
        "empirical_cdf: {n} values exceed the u32 positions"
    );

    // Sort (value, position) once and walk the tie groups: one binary search per value
    // would jump across the sorted array and miss the cache at every step, which made
    // this the slowest part of the merge on millions of candidate pairs.
    let mut order: Vec<(f32, u32)> = values
        .iter()
        .enumerate()
        .map(|(position, &v)| (canonical(v), position as u32))
        .collect();
    order.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0));

    let last = (n - 1) as f64;
    let mut cdf = vec![0.0f32; n];
    let mut start = 0;
    while start < n {
        let value = order[start].0;
        let mut end = start + 1;
        while end < n && order[end].0.total_cmp(&value) == Ordering::Equal {
            end += 1;
        }
        // 0-based mid-rank of the tie group [start, end).
        let mid = ((start + end - 1) as f64 / 2.0 / last) as f32;
        for &(_, position) in &order[start..end] {
            cdf[position as usize] = mid;
        }
        start = end;
    }
    cdf
}

/// s_k of every pair: the larger of the two models' CDF values.
pub fn combine_max(linear_cdf: &[f32], nonlinear_cdf: &[f32]) -> Vec<f32> {
    linear_cdf
        .iter()
        .zip(nonlinear_cdf)
        .map(|(a, b)| a.max(*b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_values_map_to_evenly_spaced_ranks() {
        assert_eq!(empirical_cdf(&[0.3, -1.0, 2.0]), vec![0.5, 0.0, 1.0]);
    }

    #[test]
    fn ties_share_their_mid_rank() {
        // Sorted: 1, 2, 2, 2, 5 -> ranks 0, 1..3 (mid 2), 4, over n - 1 = 4.
        let cdf = empirical_cdf(&[2.0, 5.0, 2.0, 1.0, 2.0]);
        assert_eq!(cdf, vec![0.5, 1.0, 0.5, 0.0, 0.5]);
    }

    #[test]
    fn negative_zero_ties_with_zero() {
        let cdf = empirical_cdf(&[0.0, -0.0, 1.0]);
        assert_eq!(cdf[0], cdf[1]);
        assert_eq!(cdf[0], 0.25);
    }

    #[test]
    fn all_equal_and_single_values_map_to_one_half() {
        assert_eq!(empirical_cdf(&[0.7; 4]), vec![0.5; 4]);
        assert_eq!(empirical_cdf(&[3.0]), vec![0.5]);
        assert!(empirical_cdf(&[]).is_empty());
    }

    #[test]
    fn cdf_is_invariant_to_monotone_rescaling() {
        let raw = [0.91f32, 0.95, 0.99, 0.93, 0.97];
        let squashed: Vec<f32> = raw.iter().map(|x| (x - 0.9) * 0.01).collect();
        assert_eq!(empirical_cdf(&raw), empirical_cdf(&squashed));
    }

    #[test]
    fn combine_takes_the_larger_percentile() {
        assert_eq!(combine_max(&[0.1, 0.9], &[0.5, 0.2]), vec![0.5, 0.9]);
    }
}
