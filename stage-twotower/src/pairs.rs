//! Training pairs: (a, b) where one user engaged with video a and then, within
//! `window_hours`, with video b ≠ a on a row routed to the objective. Both rows come from
//! the same split. Every interaction row counts as an engagement.
//!
//! A user with more than `max_pairs_per_user` pairs in a split keeps a uniform sample of
//! that many (reservoir sampling seeded per user), so heavy users do not dominate.

use common::{Interactions, Split};
use rand::Rng;
use rayon::prelude::*;

/// Pairs as parallel vectors of video indices, ordered by user, then a's row, then b's row.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pairs {
    /// Video a (the query side).
    pub source: Vec<u32>,
    /// Video b (the candidate side).
    pub target: Vec<u32>,
    /// Users whose pairs were capped.
    pub n_capped_users: usize,
}

impl Pairs {
    pub fn len(&self) -> usize {
        self.source.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// A seeded uniform sample of at most `max` pairs (all when `max` is 0 or not below the
    /// count), in the original order. `n_capped_users` is kept.
    pub fn sample(self, max: usize, seed: u64, purpose: &str) -> Pairs {
        let Some(kept) = relvid_nn::batches::subset(self.len(), max, seed, purpose) else {
            return self;
        };
        Pairs {
            source: kept.iter().map(|&i| self.source[i]).collect(),
            target: kept.iter().map(|&i| self.target[i]).collect(),
            n_capped_users: self.n_capped_users,
        }
    }
}

/// Builds the pairs of `split`. `table` must be sorted by user then time.
pub fn build_pairs(
    table: &Interactions,
    routed: &[bool],
    split: Split,
    window_ms: i64,
    max_per_user: usize,
    seed: u64,
) -> Pairs {
    // Row ranges of the users, in file order.
    let mut ranges = Vec::new();
    let mut start = 0;
    for row in 1..=table.len() {
        if row == table.len() || table.user_idx[row] != table.user_idx[start] {
            ranges.push(start..row);
            start = row;
        }
    }

    let purpose = format!("pairs-{}", split.as_str());
    let per_user: Vec<(Vec<(u32, u32)>, bool)> = ranges
        .par_iter()
        .map(|range| {
            let rows: Vec<usize> = range.clone().filter(|&r| table.split[r] == split).collect();
            let user = table.user_idx[range.start] as u64;
            let mut rng = common::rng::rng_for(seed, &purpose, user);
            let mut kept: Vec<(usize, usize)> = Vec::new();
            let mut seen = 0usize;
            for (i, &a) in rows.iter().enumerate() {
                for &b in &rows[i + 1..] {
                    if table.ts_ms[b] - table.ts_ms[a] > window_ms {
                        break;
                    }
                    if !routed[b] || table.video_idx[b] == table.video_idx[a] {
                        continue;
                    }
                    // Reservoir sampling: after `seen` pairs, each is kept with equal chance.
                    if kept.len() < max_per_user {
                        kept.push((a, b));
                    } else {
                        let slot = rng.random_range(0..=seen);
                        if slot < max_per_user {
                            kept[slot] = (a, b);
                        }
                    }
                    seen += 1;
                }
            }
            let capped = seen > max_per_user;
            kept.sort_unstable();
            let videos = kept
                .into_iter()
                .map(|(a, b)| (table.video_idx[a], table.video_idx[b]));
            (videos.collect(), capped)
        })
        .collect();

    let mut pairs = Pairs::default();
    for (user_pairs, capped) in per_user {
        pairs.n_capped_users += capped as usize;
        for (a, b) in user_pairs {
            pairs.source.push(a);
            pairs.target.push(b);
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    /// One user: videos 1, 2, 1, 3 at hours 0, 1, 2, 30; all train.
    fn table() -> Interactions {
        Interactions {
            user_idx: vec![0, 0, 0, 0, 1, 1],
            video_idx: vec![1, 2, 1, 3, 4, 5],
            ts_ms: vec![0, HOUR, 2 * HOUR, 30 * HOUR, 0, HOUR],
            split: vec![Split::Train; 6],
            n_users: 2,
            n_videos: 6,
            ..Default::default()
        }
    }

    #[test]
    fn pairs_follow_within_the_window_and_skip_the_same_video() {
        let pairs = build_pairs(&table(), &[true; 6], Split::Train, 24 * HOUR, 100, 0);
        // (1,2), (2,1) within 24 h; (1,1) is the same video; 3 is 28 h after the last 1.
        assert_eq!(pairs.source, vec![1, 2, 4]);
        assert_eq!(pairs.target, vec![2, 1, 5]);
    }

    #[test]
    fn only_routed_rows_are_targets() {
        let routed = [true, false, true, true, true, true];
        let pairs = build_pairs(&table(), &routed, Split::Train, 24 * HOUR, 100, 0);
        // (1,2) dropped: row 1 is not routed. (2,1) kept: the source need not be routed.
        assert_eq!(pairs.source, vec![2, 4]);
        assert_eq!(pairs.target, vec![1, 5]);
    }

    #[test]
    fn pairs_stay_within_one_split() {
        let mut t = table();
        t.split[2] = Split::Valid;
        t.split[3] = Split::Valid;
        let train = build_pairs(&t, &[true; 6], Split::Train, 100 * HOUR, 100, 0);
        assert_eq!((train.source, train.target), (vec![1, 4], vec![2, 5]));
        let valid = build_pairs(&t, &[true; 6], Split::Valid, 100 * HOUR, 100, 0);
        assert_eq!((valid.source, valid.target), (vec![1], vec![3]));
    }

    #[test]
    fn sample_keeps_a_seeded_ordered_subset() {
        let pairs = Pairs {
            source: (0..100).collect(),
            target: (100..200).collect(),
            n_capped_users: 3,
        };
        let small = pairs.clone().sample(10, 5, "valid");
        assert_eq!(small.len(), 10);
        assert_eq!(small.n_capped_users, 3);
        assert!(small.source.windows(2).all(|w| w[0] < w[1]));
        for (a, b) in small.source.iter().zip(&small.target) {
            assert_eq!(*b, a + 100);
        }
        assert_eq!(small, pairs.clone().sample(10, 5, "valid"));
        assert_eq!(pairs.clone().sample(0, 5, "valid"), pairs);
        assert_eq!(pairs.clone().sample(500, 5, "valid"), pairs);
    }

    #[test]
    fn cap_keeps_a_seeded_sample_per_user() {
        let t = table();
        let wide = 100 * HOUR;
        // User 0 has 5 pairs in a 100 h window: (1,2) (1,3) (2,1) (2,3) (1,3).
        let all = build_pairs(&t, &[true; 6], Split::Train, wide, 100, 0);
        assert_eq!(all.len(), 6);
        let capped = build_pairs(&t, &[true; 6], Split::Train, wide, 2, 9);
        assert_eq!(capped.len(), 3);
        assert_eq!(capped.n_capped_users, 1);
        assert_eq!(
            capped,
            build_pairs(&t, &[true; 6], Split::Train, wide, 2, 9)
        );
        // Every kept pair is one of the real ones.
        for (a, b) in capped.source.iter().zip(&capped.target) {
            assert!(all
                .source
                .iter()
                .zip(&all.target)
                .any(|(x, y)| (x, y) == (a, b)));
        }
    }
}
