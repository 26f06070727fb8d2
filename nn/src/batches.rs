//! Epoch orders: which examples go into which batch, reproducible from the seed.

use rand::seq::SliceRandom;

/// The examples `0..n` in a random order drawn from `(seed, purpose, epoch)`, so each epoch
/// sees a different but reproducible order.
pub fn shuffled(n: usize, seed: u64, purpose: &str, epoch: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = common::rng::rng_for(seed, purpose, epoch as u64);
    order.shuffle(&mut rng);
    order
}

/// At most `k` of the examples `0..n`, drawn without replacement from `(seed, purpose,
/// epoch)` and in random order, so each epoch trains on a fresh sample of a large set.
/// With `k` = 0 or `k` ≥ `n` every example is kept, in the order of [`shuffled`].
pub fn sampled(n: usize, k: usize, seed: u64, purpose: &str, epoch: usize) -> Vec<u32> {
    if k == 0 || k >= n {
        return shuffled(n, seed, purpose, epoch);
    }
    let mut rng = common::rng::rng_for(seed, purpose, epoch as u64);
    // `index::sample` returns its draws fully shuffled, and picks Floyd's, rejection or
    // in-place sampling by the ratio k / n, so a small sample of a huge set stays cheap.
    rand::seq::index::sample(&mut rng, n, k)
        .into_iter()
        .map(|i| i as u32)
        .collect()
}

/// Number of batches of `batch_size` that cover `n` examples (the last may be short).
pub fn n_batches(n: usize, batch_size: usize) -> usize {
    n.div_ceil(batch_size.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_epoch_give_the_same_order() {
        assert_eq!(
            shuffled(100, 7, "shuffle", 3),
            shuffled(100, 7, "shuffle", 3)
        );
    }

    #[test]
    fn epochs_give_different_permutations_of_all_examples() {
        let first = shuffled(100, 7, "shuffle", 0);
        let second = shuffled(100, 7, "shuffle", 1);
        assert_ne!(first, second);
        let mut sorted = second.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<u32>>());
    }

    #[test]
    fn a_sample_is_distinct_reproducible_and_fresh_per_epoch() {
        let first = sampled(1000, 100, 7, "sample", 0);
        assert_eq!(first.len(), 100);
        assert_eq!(first, sampled(1000, 100, 7, "sample", 0));
        assert_ne!(first, sampled(1000, 100, 7, "sample", 1));
        let mut sorted = first.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 100);
        assert!(sorted.iter().all(|&i| i < 1000));
    }

    #[test]
    fn no_cap_or_a_large_cap_keeps_every_example() {
        assert_eq!(sampled(50, 0, 3, "s", 2), shuffled(50, 3, "s", 2));
        assert_eq!(sampled(50, 80, 3, "s", 2), shuffled(50, 3, "s", 2));
    }

    #[test]
    fn batches_cover_a_short_tail() {
        assert_eq!(n_batches(10, 4), 3);
        assert_eq!(n_batches(8, 4), 2);
        assert_eq!(n_batches(0, 4), 0);
    }
}
