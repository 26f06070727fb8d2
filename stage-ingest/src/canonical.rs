//! From a raw log to canonical rows: dense indices in sorted id order, rows sorted by
//! (user_idx, ts, video_idx), duplicate events merged, and the split cut times.
//!
//! Rows with the same (user, video, ts) are one event seen twice: they are merged (Boolean
//! signals OR, numeric signals max, nulls ignored) and counted. The same (user, video) at
//! different times stays as separate events.

use anyhow::{bail, Result};
use rayon::prelude::*;

use crate::config::SplitConfig;
use crate::events::{max_nan_null, Events};
use crate::intern::DenseIds;
use crate::log::RawLog;
use crate::split::SplitCuts;

/// Canonical rows with their entities.
#[derive(Debug)]
pub struct Canonical {
    pub users: DenseIds,
    pub videos: DenseIds,
    /// Sorted by (user_idx, ts, video_idx), without duplicate events.
    pub events: Events,
    pub cuts: SplitCuts,
    /// Rows folded into an earlier row with the same (user, video, ts).
    pub duplicates_merged: u64,
}

/// Assigns dense indices, sorts, merges duplicates and cuts the split.
pub fn canonicalise(log: RawLog, split: &SplitConfig) -> Result<Canonical> {
    let n = log.len();
    if n > u32::MAX as usize {
        bail!(
            "{n} rows: logs of more than {} rows are not supported",
            u32::MAX
        );
    }

    // Only ids with a kept row get an index.
    let mut used_users = vec![false; log.users.len()];
    log.user_key
        .iter()
        .for_each(|&k| used_users[k as usize] = true);
    let mut used_videos = vec![false; log.videos.len()];
    log.video_key
        .iter()
        .for_each(|&k| used_videos[k as usize] = true);
    let users = log.users.assign(&used_users)?;
    let videos = log.videos.assign(&used_videos)?;

    let RawLog {
        mut user_key,
        mut video_key,
        ts_ms,
        flags,
        numeric,
        has_numeric,
        ..
    } = log;
    user_key
        .par_iter_mut()
        .for_each(|k| *k = users.key_to_idx[*k as usize]);
    video_key
        .par_iter_mut()
        .for_each(|k| *k = videos.key_to_idx[*k as usize]);
    let (user_idx, video_idx) = (user_key, video_key);

    tracing::info!("sorting {n} rows by (user, time, video)");
    let mut order: Vec<u32> = (0..n as u32).collect();
    let key = |i: u32| {
        (
            user_idx[i as usize],
            ts_ms[i as usize],
            video_idx[i as usize],
        )
    };
    // Rows with equal keys are merged by commutative operations, so the unstable order
    // among them cannot change the output.
    order.par_sort_unstable_by_key(|&i| key(i));

    let mut events = Events::with_capacity(n, has_numeric);
    let mut duplicates_merged = 0u64;
    let mut last = None;
    for &i in &order {
        let row = i as usize;
        if last == Some(key(i)) {
            let at = events.len() - 1;
            events.flags[at] = events.flags[at].merge(flags[row]);
            for (signal, values) in numeric.iter().enumerate() {
                if !values.is_empty() {
                    let merged = &mut events.numeric[signal][at];
                    *merged = max_nan_null(*merged, values[row]);
                }
            }
            duplicates_merged += 1;
            continue;
        }
        last = Some(key(i));
        events.user_idx.push(user_idx[row]);
        events.video_idx.push(video_idx[row]);
        events.ts_ms.push(ts_ms[row]);
        events.flags.push(flags[row]);
        for (signal, values) in numeric.iter().enumerate() {
            if !values.is_empty() {
                events.numeric[signal].push(values[row]);
            }
        }
    }
    drop(order);

    let mut sorted_ts = events.ts_ms.clone();
    sorted_ts.par_sort_unstable();
    let cuts = SplitCuts::from_sorted(&sorted_ts, split);

    Ok(Canonical {
        users,
        videos,
        events,
        cuts,
        duplicates_merged,
    })
}

/// Median of the non-null `duration_ms` values of each video (NaN where it has none); the
/// mean of the two middle values for an even count.
pub fn median_duration_per_video(events: &Events, n_videos: usize) -> Vec<f32> {
    let mut medians = vec![f32::NAN; n_videos];
    let durations = &events.numeric[crate::events::DURATION_MS];
    if durations.is_empty() {
        return medians;
    }
    let mut pairs: Vec<(u32, f32)> = events
        .video_idx
        .iter()
        .zip(durations)
        .filter(|(_, d)| !d.is_nan())
        .map(|(&v, &d)| (v, d))
        .collect();
    pairs.par_sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    for group in pairs.chunk_by(|a, b| a.0 == b.0) {
        let mid = group.len() / 2;
        let median = if group.len() % 2 == 1 {
            group[mid].1
        } else {
            ((group[mid - 1].1 as f64 + group[mid].1 as f64) / 2.0) as f32
        };
        medians[group[0].0 as usize] = median;
    }
    medians
}

/// Train events per dense index, as Float32 features.
pub fn train_counts(indices: &[u32], ts_ms: &[i64], cuts: &SplitCuts, n: usize) -> Vec<f32> {
    let mut counts = vec![0u32; n];
    for (&idx, &ts) in indices.iter().zip(ts_ms) {
        if ts < cuts.valid_from_ms {
            counts[idx as usize] += 1;
        }
    }
    counts.into_iter().map(|c| c as f32).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use common::IdColumn;

    use super::*;
    use crate::events::{Flags, CLICK, DURATION_MS, LIKE, PLAY_TIME_MS};
    use crate::log::{RowSignals, TimeWindow};

    const T0: i64 = 1_650_000_000_000;

    /// (user, video, ts, click, play time).
    type Row<'a> = (&'a str, &'a str, i64, Option<bool>, Option<f32>);

    fn log_of(rows: &[Row]) -> RawLog {
        let mut log = RawLog::new([true, false, false], TimeWindow::until(T0 * 2));
        log.begin_file(Path::new("log.csv"));
        for &(user, video, ts, click, play) in rows {
            let u = log.users.intern_text(user);
            let v = log.videos.intern_text(video);
            let flags = Flags::default().with(CLICK, click);
            log.push(
                u,
                v,
                ts,
                RowSignals {
                    flags,
                    play_time_ms: play,
                    ..Default::default()
                },
            );
        }
        log
    }

    #[test]
    fn rows_sort_by_user_time_video_with_sorted_id_indices() {
        let log = log_of(&[
            ("5000000000", "b", T0 + 5, None, None),
            ("1", "a", T0 + 9, None, None),
            ("1", "c", T0 + 1, None, None),
            ("1000000", "a", T0, None, None),
            ("1", "b", T0 + 1, None, None),
        ]);
        let out = canonicalise(log, &SplitConfig::default()).unwrap();
        assert_eq!(
            out.users.ids,
            IdColumn::Int64(vec![1, 1_000_000, 5_000_000_000])
        );
        assert_eq!(out.events.user_idx, vec![0, 0, 0, 1, 2]);
        assert_eq!(out.events.ts_ms, vec![T0 + 1, T0 + 1, T0 + 9, T0, T0 + 5]);
        assert_eq!(out.events.video_idx, vec![1, 2, 0, 0, 1]);
    }

    #[test]
    fn same_user_video_time_merges_with_or_and_max() {
        let log = log_of(&[
            ("1", "a", T0, Some(false), Some(10.0)),
            ("1", "a", T0, Some(true), None),
            ("1", "a", T0, None, Some(30.0)),
            ("1", "a", T0 + 1, Some(false), Some(5.0)),
        ]);
        let out = canonicalise(log, &SplitConfig::default()).unwrap();
        assert_eq!(out.duplicates_merged, 2);
        assert_eq!(out.events.len(), 2);
        assert_eq!(out.events.flags[0].get(CLICK), Some(true));
        assert_eq!(out.events.flags[0].get(LIKE), None);
        assert_eq!(out.events.numeric[PLAY_TIME_MS], vec![30.0, 5.0]);
    }

    #[test]
    fn ids_of_dropped_rows_get_no_index() {
        let log = log_of(&[("1", "a", T0, None, Some(-1.0)), ("2", "b", T0, None, None)]);
        let out = canonicalise(log, &SplitConfig::default()).unwrap();
        assert_eq!(out.users.ids, IdColumn::Int64(vec![2]));
        assert_eq!(out.videos.ids, IdColumn::Utf8(vec!["b".into()]));
    }

    #[test]
    fn median_duration_ignores_nulls_and_averages_even_counts() {
        let mut events = Events::with_capacity(4, [false, true, false]);
        events.video_idx = vec![0, 0, 1, 1, 1];
        events.numeric[DURATION_MS] = vec![10.0, 20.0, f32::NAN, 7.0, 9.0];
        events.numeric[DURATION_MS].truncate(5);
        let medians = median_duration_per_video(&events, 3);
        assert_eq!(medians[0], 15.0);
        assert_eq!(medians[1], 8.0);
        assert!(medians[2].is_nan());
    }

    #[test]
    fn train_counts_count_only_rows_before_the_valid_cut() {
        let cuts = SplitCuts {
            valid_from_ms: 10,
            test_from_ms: 20,
        };
        let counts = train_counts(&[0, 0, 1, 1], &[1, 15, 2, 25], &cuts, 3);
        assert_eq!(counts, vec![1.0, 1.0, 0.0]);
    }
}
