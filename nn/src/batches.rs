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

/// Examples one epoch trains on when each epoch takes at most `max` of `n` (0 = all).
pub fn per_epoch(n: usize, max: usize) -> usize {
    match max {
        0 => n,
        cap => cap.min(n),
    }
}

/// A fixed seeded subset of at most `max` of the positions `0..n`, ascending, drawn from
/// `(seed, purpose)`: the valid sample that early stopping reads every epoch. `None` when
/// every position is kept (`max` = 0 or `max` ≥ `n`).
pub fn subset(n: usize, max: usize, seed: u64, purpose: &str) -> Option<Vec<usize>> {
    if max == 0 || n <= max {
        return None;
    }
    let mut rng = common::rng::rng_for(seed, purpose, 0);
    let mut kept = rand::seq::index::sample(&mut rng, n, max).into_vec();
    kept.sort_unstable();
    Some(kept)
}

/// Number of batches of `batch_size` that cover `n` examples (the last may be short).
pub fn n_batches(n: usize, batch_size: usize) -> usize {
    n.div_ceil(batch_size.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_epoch_caps_only_when_a_cap_is_set() {
        assert_eq!(per_epoch(10, 0), 10);
        assert_eq!(per_epoch(10, 4), 4);
        assert_eq!(per_epoch(10, 40), 10);
    }

    #[test]
    fn subset_is_sorted_seeded_and_none_when_all_are_kept() {
        let kept = subset(1000, 50, 3, "valid").expect("a proper subset");
        assert_eq!(kept.len(), 50);
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(subset(1000, 50, 3, "valid"), Some(kept));
        assert_eq!(subset(1000, 0, 3, "valid"), None);
        assert_eq!(subset(1000, 1000, 3, "valid"), None);
    }

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
