//! Step 2: co-visitation counts and the top-N candidate list of each source video.
//!
//! Reads the capped histories; writes nothing. For a source video `i`, the users holding
//! `i` are found in the inverted index, and for each of them the events within the window
//! of any of the user's `i` events are walked once. A per-thread dense counter over all
//! videos, the list of counters touched, and a per-(source, user) stamp per video (so a
//! user adds at most 1 to a pair) make each source cost O(events walked) with no hashing.

use std::cmp::Ordering;
use std::ops::Range;

use rayon::prelude::*;

use crate::config::{Normalisation, TieBreak};
use crate::history::{Event, Histories};

/// Settings of the counting and ranking step.
#[derive(Debug, Clone, Copy)]
pub struct CountParams<'a> {
    /// Co-visit window in milliseconds; `None` = every pair of events co-visits.
    pub window_ms: Option<i64>,
    pub normalisation: Normalisation,
    pub min_co_count: u32,
    pub top_n: usize,
    pub tie_break: TieBreak,
    /// Rank of each video's original id, for `TieBreak::OriginalId`.
    pub id_rank: Option<&'a [u32]>,
}

/// One kept candidate of a source video.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub idx: u32,
    /// c_ij: distinct users who engaged both videos within the window of each other.
    pub co_count: u32,
    /// The normalised score, in f64 so that ranking matches an f64 reference exactly.
    pub score: f64,
}

/// The ranked list of one source video and what computing it cost.
#[derive(Debug, Clone, Default)]
pub struct SourceList {
    /// Best first.
    pub candidates: Vec<Candidate>,
    /// History events visited while counting (the (source, user, event) triples).
    pub triples: u64,
    /// Videos with a co-count of at least 1, before `min_co_count` and `top_n`.
    pub n_partners: u32,
}

/// A video's counter in the per-thread scratch: the stamp of the last (source, user)
/// group that counted it, and its co-count so far. Side by side, one cache line serves both.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    stamp: u32,
    count: u32,
}

/// Per-thread buffers, sized by the number of videos and reused from source to source.
pub struct Scratch {
    slots: Vec<Slot>,
    touched: Vec<u32>,
    /// Every candidate of the current source before the cut; only the kept ones are copied
    /// out, so a block's lists hold `top_n` entries each, not every partner.
    pool: Vec<Candidate>,
    current: u32,
}

impl Scratch {
    /// Zeroed buffers for `n_videos` videos.
    pub fn new(n_videos: usize) -> Scratch {
        Scratch {
            slots: vec![Slot::default(); n_videos],
            touched: Vec::new(),
            pool: Vec::new(),
            current: 0,
        }
    }

    /// A fresh stamp for the next (source, user) group; clears the stamps when the counter
    /// would wrap, so an old stamp can never be mistaken for the current one.
    fn next_stamp(&mut self) -> u32 {
        if self.current == u32::MAX {
            self.slots.iter_mut().for_each(|slot| slot.stamp = 0);
            self.current = 0;
        }
        self.current += 1;
        self.current
    }
}

/// Counts and ranks the candidates of one source video.
pub fn source_list(
    h: &Histories,
    source: u32,
    params: &CountParams,
    scratch: &mut Scratch,
) -> SourceList {
    let mut triples = 0u64;
    let mut current_user = None;
    let (mut stamp, mut walked_to) = (0, 0);

    for &at in h.postings_of(source) {
        // Postings ascend, so a user's postings are consecutive and their windows move
        // forward together: walking each window only past the end of the previous one
        // visits every event of their union once, and the stamp counts the user once.
        let user = h.events[at].user;
        if current_user != Some(user) {
            current_user = Some(user);
            stamp = scratch.next_stamp();
            walked_to = 0;
        }
        let window = match params.window_ms {
            Some(w) => window_around(&h.events, at, w, walked_to),
            // The whole history: its bounds are one lookup, where a scan would read it twice.
            None => h.user_start[user as usize]..h.user_start[user as usize + 1],
        };
        let walk = window.start.max(walked_to)..window.end;
        walked_to = walked_to.max(window.end);
        triples += walk.len() as u64;
        for event in &h.events[walk] {
            let other = event.video;
            let slot = &mut scratch.slots[other as usize];
            if other == source || slot.stamp == stamp {
                continue;
            }
            slot.stamp = stamp;
            if slot.count == 0 {
                scratch.touched.push(other);
            }
            slot.count += 1;
        }
    }

    // Read and reset the touched counters; the scratch is clean for the next source.
    let count_source = h.video_users[source as usize];
    let n_partners = scratch.touched.len() as u32;
    let mut pool = std::mem::take(&mut scratch.pool);
    pool.clear();
    for &j in &scratch.touched {
        let co_count = std::mem::take(&mut scratch.slots[j as usize].count);
        if co_count >= params.min_co_count {
            let count_candidate = h.video_users[j as usize];
            let score = params
                .normalisation
                .score(co_count, count_source, count_candidate);
            pool.push(Candidate {
                idx: j,
                co_count,
                score,
            });
        }
    }
    scratch.touched.clear();

    keep_best(&mut pool, params);
    let candidates = pool.clone();
    scratch.pool = pool;
    SourceList {
        candidates,
        triples,
        n_partners,
    }
}

/// The events of the same user within `w` ms of `events[at]`, found by scanning outward
/// from `at`. Events below `floor` were walked already, so neither end is searched there:
/// the end of a window is at least the end of an earlier one of the same user, and events
/// before it are within reach. A scan touches the cache lines the walk reads next and
/// costs no more than the walk, where a binary search would probe lines all over a long
/// history for a window of a few events.
fn window_around(events: &[Event], at: usize, w: i64, floor: usize) -> Range<usize> {
    let Event { ts_ms: t, user, .. } = events[at];
    let (earliest, latest) = (t.saturating_sub(w), t.saturating_add(w));
    let mut lo = at;
    while lo > floor && events[lo - 1].user == user && events[lo - 1].ts_ms >= earliest {
        lo -= 1;
    }
    let mut hi = (at + 1).max(floor);
    while hi < events.len() && events[hi].user == user && events[hi].ts_ms <= latest {
        hi += 1;
    }
    lo..hi
}

/// Keeps the `top_n` best candidates, best first, in a total order.
fn keep_best(candidates: &mut Vec<Candidate>, params: &CountParams) {
    let order = |a: &Candidate, b: &Candidate| -> Ordering {
        b.score
            .total_cmp(&a.score)
            .then_with(|| match (params.tie_break, params.id_rank) {
                (TieBreak::OriginalId, Some(rank)) => {
                    rank[a.idx as usize].cmp(&rank[b.idx as usize])
                }
                _ => b.co_count.cmp(&a.co_count).then(a.idx.cmp(&b.idx)),
            })
    };
    if candidates.len() > params.top_n {
        candidates.select_nth_unstable_by(params.top_n - 1, order);
        candidates.truncate(params.top_n);
    }
    candidates.sort_unstable_by(order);
}

/// The lists of a block of source videos, in source order, computed in parallel.
///
/// Every source is an independent task that writes its own slot, so the result does not
/// depend on the number of threads.
pub fn block_lists(h: &Histories, sources: Range<u32>, params: &CountParams) -> Vec<SourceList> {
    let n_videos = h.n_videos();
    sources
        .into_par_iter()
        // Large enough that a scratch (a slot per video) serves many sources.
        .with_min_len(64)
        .map_init(
            || Scratch::new(n_videos),
            |scratch, source| source_list(h, source, params, scratch),
        )
        .collect()
}

/// Rank of each video's original id (0 = smallest); the anchor's tie order.
pub fn id_ranks(ids: &common::IdColumn) -> Vec<u32> {
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    match ids {
        common::IdColumn::Int64(values) => order.sort_by_key(|&i| values[i as usize]),
        common::IdColumn::Utf8(values) => order.sort_by(|&a, &b| {
            values[a as usize]
                .as_bytes()
                .cmp(values[b as usize].as_bytes())
        }),
    }
    let mut rank = vec![0u32; ids.len()];
    for (position, &video) in order.iter().enumerate() {
        rank[video as usize] = position as u32;
    }
    rank
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use common::Split;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::history::{build, EventLog};

    /// A random log: users with bursts of events, a skewed video popularity, three splits
    /// and a sparse engagement label.
    struct RandomLog {
        user: Vec<u32>,
        video: Vec<u32>,
        ts: Vec<i64>,
        split: Vec<Split>,
        engaged: Vec<i8>,
        n_users: usize,
        n_videos: usize,
    }

    fn random_log(seed: u64, n_users: usize, n_videos: usize, n_rows: usize) -> RandomLog {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rows: Vec<(u32, i64, u32)> = (0..n_rows)
            .map(|_| {
                let user = rng.random_range(0..n_users as u32);
                // Squaring a uniform draw makes low indices popular, so pairs repeat.
                let u: f64 = rng.random();
                let video = ((u * u) * n_videos as f64) as u32;
                // Coarse times give exact ties and window-edge cases.
                let ts = rng.random_range(0..200i64) * 1_800_000;
                (user, ts, video)
            })
            .collect();
        rows.sort();
        let split = rows
            .iter()
            .map(|&(_, ts, _)| match ts {
                t if t < 160 * 1_800_000 => Split::Train,
                t if t < 180 * 1_800_000 => Split::Valid,
                _ => Split::Test,
            })
            .collect();
        let engaged = (0..n_rows)
            .map(|_| match rng.random_range(0..10) {
                0 => -1,
                1..=3 => 0,
                _ => 1,
            })
            .collect();
        RandomLog {
            user: rows.iter().map(|r| r.0).collect(),
            ts: rows.iter().map(|r| r.1).collect(),
            video: rows.iter().map(|r| r.2).collect(),
            split,
            engaged,
            n_users,
            n_videos,
        }
    }

    fn event_log<'a>(log: &'a RandomLog, use_engaged: bool) -> EventLog<'a> {
        EventLog {
            user_idx: &log.user,
            video_idx: &log.video,
            ts_ms: &log.ts,
            split: &log.split,
            engaged: use_engaged.then_some(log.engaged.as_slice()),
            n_users: log.n_users,
            n_videos: log.n_videos,
        }
    }

    /// The definition, counted naively: for every user, every ordered pair of capped
    /// events of two different videos within the window adds the user to the pair's set.
    fn brute_force(
        log: &RandomLog,
        use_engaged: bool,
        splits: &[Split],
        max_history: usize,
        params: &CountParams,
    ) -> Vec<Vec<Candidate>> {
        let mut per_user: BTreeMap<u32, Vec<(i64, usize, u32)>> = BTreeMap::new();
        for r in 0..log.user.len() {
            if splits.contains(&log.split[r]) && (!use_engaged || log.engaged[r] == 1) {
                per_user
                    .entry(log.user[r])
                    .or_default()
                    .push((log.ts[r], r, log.video[r]));
            }
        }
        let mut pair_users: BTreeMap<(u32, u32), BTreeSet<u32>> = BTreeMap::new();
        let mut video_users: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        for (&user, events) in per_user.iter_mut() {
            events.sort();
            let recent = &events[events.len().saturating_sub(max_history)..];
            for &(ta, _, a) in recent {
                video_users.entry(a).or_default().insert(user);
                for &(tb, _, b) in recent {
                    let near = params.window_ms.is_none_or(|w| (ta - tb).abs() <= w);
                    if a != b && near {
                        pair_users.entry((a, b)).or_default().insert(user);
                    }
                }
            }
        }
        let c = |v: u32| video_users.get(&v).map_or(0, |s| s.len() as u32);
        let mut lists = vec![Vec::new(); log.n_videos];
        for (&(a, b), users) in &pair_users {
            let co_count = users.len() as u32;
            if co_count >= params.min_co_count {
                let score = params.normalisation.score(co_count, c(a), c(b));
                lists[a as usize].push(Candidate {
                    idx: b,
                    co_count,
                    score,
                });
            }
        }
        for list in &mut lists {
            list.sort_by(|x, y| {
                y.score
                    .partial_cmp(&x.score)
                    .unwrap()
                    .then_with(|| match params.tie_break {
                        TieBreak::OriginalId => {
                            let rank = params.id_rank.unwrap();
                            rank[x.idx as usize].cmp(&rank[y.idx as usize])
                        }
                        TieBreak::CoCountThenIndex => {
                            y.co_count.cmp(&x.co_count).then(x.idx.cmp(&y.idx))
                        }
                    })
            });
            list.truncate(params.top_n);
        }
        lists
    }

    fn all_lists(h: &Histories, params: &CountParams) -> Vec<Vec<Candidate>> {
        block_lists(h, 0..h.n_videos() as u32, params)
            .into_iter()
            .map(|l| l.candidates)
            .collect()
    }

    fn params(
        window_ms: Option<i64>,
        normalisation: Normalisation,
        min_co_count: u32,
        top_n: usize,
    ) -> CountParams<'static> {
        CountParams {
            window_ms,
            normalisation,
            min_co_count,
            top_n,
            tie_break: TieBreak::CoCountThenIndex,
            id_rank: None,
        }
    }

    #[test]
    fn matches_brute_force_with_window_and_cap() {
        let log = random_log(1, 40, 30, 1500);
        let p = params(Some(3 * 3_600_000), Normalisation::Cosine, 2, 7);
        let h = build(&event_log(&log, false), &[Split::Train], 25);
        let expected = brute_force(&log, false, &[Split::Train], 25, &p);
        assert!(
            expected.iter().filter(|l| !l.is_empty()).count() > 10,
            "fixture too sparse"
        );
        assert_eq!(all_lists(&h, &p), expected);
    }

    #[test]
    fn matches_brute_force_without_window_product_and_engaged() {
        let log = random_log(2, 30, 25, 1200);
        let p = params(None, Normalisation::Product, 1, 5);
        let splits = [Split::Train, Split::Valid];
        let h = build(&event_log(&log, true), &splits, 12);
        let expected = brute_force(&log, true, &splits, 12, &p);
        assert!(
            expected.iter().filter(|l| !l.is_empty()).count() > 10,
            "fixture too sparse"
        );
        assert_eq!(all_lists(&h, &p), expected);
    }

    #[test]
    fn matches_brute_force_with_repeated_videos_in_wide_windows() {
        // 6 videos among ~80 events per user: each source occurs many times per history,
        // so overlapping windows and the walked-so-far floor are exercised heavily.
        let log = random_log(6, 10, 6, 800);
        let p = params(Some(20 * 3_600_000), Normalisation::Cosine, 1, 10);
        let h = build(&event_log(&log, false), &[Split::Train], 60);
        let expected = brute_force(&log, false, &[Split::Train], 60, &p);
        assert_eq!(all_lists(&h, &p), expected);
        // With 10 users, a count of every user on some pair shows overlaps are not recounted.
        assert!(expected.iter().flatten().all(|c| c.co_count <= 10));
    }

    #[test]
    fn popular_video_and_heavy_user_stay_exact_and_bounded_by_the_cap() {
        // Video 0 is in every user's history many times, and user 0 has 20 times the cap:
        // the counts must stay exact (brute force) and the work within users x cap^2.
        let mut log = random_log(7, 30, 40, 3000);
        for r in (0..log.video.len()).step_by(3) {
            log.video[r] = 0;
        }
        // 2000 older events of user 0 in front of the (user, time)-sorted rows.
        let n_extra = 2000;
        let extra = |k: usize| (0u32, -((n_extra - k) as i64) * 60_000, (k % 40) as u32);
        let rows: Vec<(u32, i64, u32)> = (0..n_extra).map(extra).collect();
        log.user.splice(0..0, rows.iter().map(|r| r.0));
        log.ts.splice(0..0, rows.iter().map(|r| r.1));
        log.video.splice(0..0, rows.iter().map(|r| r.2));
        log.split.splice(0..0, rows.iter().map(|_| Split::Train));
        log.engaged.splice(0..0, rows.iter().map(|_| 1));
        let cap = 100;
        let p = params(None, Normalisation::Cosine, 1, 15);
        let h = build(&event_log(&log, false), &[Split::Train], cap);
        assert_eq!(h.events_of(0).len(), cap, "the heavy user is capped");
        assert_eq!(
            h.video_users[0] as usize,
            h.n_active_users(),
            "video 0 is in every history"
        );
        let lists = block_lists(&h, 0..h.n_videos() as u32, &p);
        let triples: u64 = lists.iter().map(|l| l.triples).sum();
        let bound: u64 = (0..h.n_users() as u32)
            .map(|u| (h.events_of(u).len() as u64).pow(2))
            .sum();
        assert!(
            triples <= bound,
            "{triples} triples > sum of capped history sizes squared {bound}"
        );
        let got: Vec<Vec<Candidate>> = lists.into_iter().map(|l| l.candidates).collect();
        assert_eq!(got, brute_force(&log, false, &[Split::Train], cap, &p));
    }

    #[test]
    fn window_edges_are_inclusive() {
        // A 30-minute window equals the time grid step: events exactly one step apart pair.
        let log = random_log(3, 25, 20, 1500);
        let p = params(Some(1_800_000), Normalisation::Cosine, 1, 100);
        let h = build(&event_log(&log, false), &[Split::Train], 1000);
        assert_eq!(
            all_lists(&h, &p),
            brute_force(&log, false, &[Split::Train], 1000, &p)
        );
    }

    #[test]
    fn original_id_tie_break_matches_brute_force() {
        let log = random_log(4, 30, 25, 900);
        // Reverse ranks, so the id order differs from the index order.
        let rank: Vec<u32> = (0..25u32).rev().collect();
        let p = CountParams {
            tie_break: TieBreak::OriginalId,
            id_rank: Some(&rank),
            ..params(None, Normalisation::Cosine, 1, 6)
        };
        let h = build(&event_log(&log, false), &[Split::Train], 200);
        assert_eq!(
            all_lists(&h, &p),
            brute_force(&log, false, &[Split::Train], 200, &p)
        );
    }

    #[test]
    fn same_lists_with_one_and_four_threads() {
        let log = random_log(5, 50, 40, 3000);
        let p = params(Some(6 * 3_600_000), Normalisation::Cosine, 1, 10);
        let h = build(&event_log(&log, false), &[Split::Train], 50);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| all_lists(&h, &p))
        };
        assert_eq!(run(1), run(4));
    }

    #[test]
    fn a_user_counts_once_per_pair() {
        // One user sees 0, 1, 0, 1: the pair (0, 1) has co-count 1, not 4.
        let user = [0u32; 4];
        let video = [0u32, 1, 0, 1];
        let ts = [0i64, 1, 2, 3];
        let split = [Split::Train; 4];
        let log = EventLog {
            user_idx: &user,
            video_idx: &video,
            ts_ms: &ts,
            split: &split,
            engaged: None,
            n_users: 1,
            n_videos: 2,
        };
        let h = build(&log, &[Split::Train], 10);
        let lists = all_lists(&h, &params(None, Normalisation::Cosine, 1, 5));
        assert_eq!(
            lists[0],
            vec![Candidate {
                idx: 1,
                co_count: 1,
                score: 1.0
            }]
        );
    }

    #[test]
    fn window_scan_stops_at_the_window_the_floor_and_the_user() {
        // User 0 at times 0..30, then user 1 at 30 and 31.
        let events: Vec<Event> = [
            (0, 0),
            (5, 0),
            (10, 0),
            (10, 0),
            (20, 0),
            (30, 0),
            (30, 1),
            (31, 1),
        ]
        .iter()
        .map(|&(ts_ms, user)| Event {
            ts_ms,
            video: 0,
            user,
        })
        .collect();
        assert_eq!(window_around(&events, 2, 5, 0), 1..4);
        assert_eq!(window_around(&events, 3, 10, 0), 0..5);
        assert_eq!(window_around(&events, 3, 10, 2), 2..5);
        assert_eq!(window_around(&events, 5, 0, 0), 5..6);
        assert_eq!(window_around(&events, 5, i64::MAX, 0), 0..6);
        assert_eq!(window_around(&events, 6, i64::MAX, 0), 6..8);
        // Walked up to 4 already: the end is searched from there on.
        assert_eq!(window_around(&events, 1, 100, 4), 1..6);
    }

    #[test]
    fn ties_break_by_co_count_then_index() {
        let mut c = vec![
            Candidate {
                idx: 5,
                co_count: 2,
                score: 0.5,
            },
            Candidate {
                idx: 3,
                co_count: 2,
                score: 0.5,
            },
            Candidate {
                idx: 9,
                co_count: 4,
                score: 0.5,
            },
            Candidate {
                idx: 1,
                co_count: 1,
                score: 0.25,
            },
        ];
        keep_best(&mut c, &params(None, Normalisation::Cosine, 1, 3));
        let order: Vec<u32> = c.iter().map(|c| c.idx).collect();
        assert_eq!(order, vec![9, 3, 5]);
    }

    #[test]
    fn id_ranks_sort_strings_bytewise_and_integers_numerically() {
        let text = common::IdColumn::Utf8(vec!["b".into(), "a10".into(), "a9".into()]);
        assert_eq!(id_ranks(&text), vec![2, 0, 1]);
        let ints = common::IdColumn::Int64(vec![10, -3, 9]);
        assert_eq!(id_ranks(&ints), vec![2, 0, 1]);
    }
}
