//! The merge's per-objective scale, recomputed: each model's score mapped to its mid-rank
//! empirical CDF over all candidate pairs, s_k = the larger of the two.
//!
//! Reads score columns; writes nothing. related.parquet only keeps each source's top N, so
//! the merged rankings of every source are rebuilt from the full score files. This is a
//! private copy of `stage-merge/src/scale.rs` (same arithmetic, so `full` reproduces
//! related.parquet bit for bit); it belongs in `common` so that the two cannot drift.

use std::cmp::Ordering;

use rayon::prelude::*;

/// Each value's mid-rank empirical CDF in [0, 1]: (r - 1) / (n - 1) with r the average
/// 1-based rank of its ties; a single value maps to 0.5.
pub fn empirical_cdf(values: &[f32]) -> Vec<f32> {
    let n = values.len();
    if n <= 1 {
        return vec![0.5; n];
    }
    // -0.0 and 0.0 are one value here; `total_cmp` alone would rank them apart.
    let canonical = |v: f32| v + 0.0;
    let mut sorted: Vec<f32> = values.iter().map(|&v| canonical(v)).collect();
    sorted.par_sort_unstable_by(f32::total_cmp);
    let last = (n - 1) as f64;
    values
        .par_iter()
        .map(|&v| {
            let v = canonical(v);
            let below = sorted.partition_point(|x| x.total_cmp(&v) == Ordering::Less);
            let up_to = sorted.partition_point(|x| x.total_cmp(&v) != Ordering::Greater);
            let mid = (below + up_to - 1) as f64 / 2.0;
            (mid / last) as f32
        })
        .collect()
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
    fn ties_share_their_mid_rank() {
        let cdf = empirical_cdf(&[2.0, 5.0, 2.0, 1.0, 2.0]);
        assert_eq!(cdf, vec![0.5, 1.0, 0.5, 0.0, 0.5]);
    }

    #[test]
    fn single_value_maps_to_one_half_and_max_is_taken() {
        assert_eq!(empirical_cdf(&[3.0]), vec![0.5]);
        assert_eq!(combine_max(&[0.1, 0.9], &[0.5, 0.2]), vec![0.5, 0.9]);
    }
}
