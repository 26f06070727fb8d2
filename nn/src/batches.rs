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
    fn batches_cover_a_short_tail() {
        assert_eq!(n_batches(10, 4), 3);
        assert_eq!(n_batches(8, 4), 2);
        assert_eq!(n_batches(0, 4), 0);
    }
}
