//! The synthetic source: a deterministic video-platform log with planted structure,
//! generated and written without holding the log in memory.
//!
//! What is planted (details in [`world`] and [`behaviour`]): users with 1-4 interest
//! categories (half of them tied to age bucket and gender), videos with a category, a
//! latent quality and a Zipf-like popularity, sessions over `weeks` weeks (default 4)
//! that stay mostly in one category and often move to a neighbouring video, every feedback
//! signal at platform-like rates with engagement rising with user-category affinity
//! (dislikes off-interest), play time consistent with duration and long view, 1.5 % of
//! videos with an unknown (null) duration, and week-to-week retention that rises with the
//! week's like and long-view rates and falls with its dislike rate.
//!
//! Size: users = rows / rows_per_user, videos = rows / rows_per_video (minimums 20 and 50);
//! the sessions per week are scaled so that the log has `rows` rows within about 1 %,
//! measured on a pilot of up to 20000 users. Ids are the generator's indices (Int64);
//! users and videos without events are left out.
//!
//! Determinism and memory: user u is generated from `rng_for(seed, "user", u)` alone, so
//! the output is identical whatever the thread count. Users are generated again instead
//! of being stored: pass 1 counts events per minute, marks videos seen and the days each
//! user is active; pass 2 regenerates the users active on the days of the (at most two)
//! minutes that hold a split quantile and collects those minutes' timestamps, so the cuts
//! are exact; pass 3 writes the rows chunk by chunk. Memory is O(users x weeks + videos +
//! one chunk).
//!
//! Tables: users get `age_bucket`, `gender` (Utf8) and `n_train_interactions`; videos
//! `duration_ms`, `category` ("c00", "c01", ...) and `n_train_interactions`. The summary
//! reports the realised signal rates and week-to-week retention.

pub mod behaviour;
pub mod draw;
pub mod world;

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use arrow::array::{ArrayRef, Float32Array, StringArray};
use common::schema::{files, BOOL_SIGNALS, USER_ID, USER_IDX, VIDEO_ID, VIDEO_IDX};
use common::summary::FileRows;
use common::{IdColumn, StageMeta};
use rayon::prelude::*;
use serde_json::json;

use self::behaviour::{simulate, START_MS};
use self::world::{World, AGE_BUCKETS, GENDERS};
use crate::config::{SplitConfig, SyntheticConfig};
use crate::events::{Events, DURATION_MS, PLAY_TIME_MS};
use crate::output::{remove_stale_marker, Written};
use crate::report::Report;
use crate::split::{cut_positions, locate_in_histogram, SplitCuts};
use crate::write::{write_entities, InteractionWriter};

/// Users generated per written chunk in pass 3.
const CHUNK_USERS: usize = 4096;

/// Most users simulated by the size-calibration pilot.
const PILOT_USERS: usize = 20_000;

const MINUTE_MS: i64 = 60_000;

/// What pass 1 learns about the whole log.
struct Census {
    n_events: u64,
    events_per_user: Vec<u32>,
    video_seen: Vec<bool>,
    events_per_minute: Vec<u64>,
    ts_min: i64,
    ts_max: i64,
    weeks_followed: u64,
    weeks_retained: u64,
    /// Days on which each user has events: `day_words` bits-words per user.
    active_days: Vec<u64>,
    day_words: usize,
}

impl Census {
    fn active_on(&self, user: usize, day: usize) -> bool {
        self.active_days[user * self.day_words + day / 64] & (1 << (day % 64)) != 0
    }
}

/// Dense indices of the users and videos that have events: the generator's indices are
/// the ids, so ascending index order is id order.
struct DenseIds {
    user_ids: Vec<i64>,
    video_ids: Vec<i64>,
    /// Dense index of every generated user / video (`u32::MAX` without events).
    user_dense: Vec<u32>,
    video_dense: Vec<u32>,
}

impl DenseIds {
    fn new(census: &Census) -> DenseIds {
        let with_events = |present: Vec<bool>| {
            let ids: Vec<i64> = (0..present.len())
                .filter(|&i| present[i])
                .map(|i| i as i64)
                .collect();
            let mut dense = vec![u32::MAX; present.len()];
            ids.iter()
                .enumerate()
                .for_each(|(idx, &id)| dense[id as usize] = idx as u32);
            (ids, dense)
        };
        let (user_ids, user_dense) =
            with_events(census.events_per_user.iter().map(|&n| n > 0).collect());
        let (video_ids, video_dense) = with_events(census.video_seen.clone());
        DenseIds {
            user_ids,
            video_ids,
            user_dense,
            video_dense,
        }
    }
}

/// Generates the log of `settings` and writes the three tables into `dir`.
pub fn generate(
    settings: &SyntheticConfig,
    split: &SplitConfig,
    seed: u64,
    dir: &Path,
    meta: &StageMeta,
) -> Result<(Report, Written)> {
    let started = Instant::now();
    let seconds = || started.elapsed().as_secs_f64();
    let mut world = World::build(settings, seed);
    let target = settings.rows as f64 / world.users.len() as f64;
    let (scale, per_user) = calibrate(&world, seed, target);
    // At least one session per active week puts a floor under a user's log: with many
    // weeks and few rows per user, fewer users keep the log near the requested size.
    if per_user > 1.05 * target {
        let n_users = ((settings.rows as f64 / per_user).round() as usize).max(world::MIN_USERS);
        tracing::warn!(
            "{} weeks give each user about {per_user:.0} events (rows_per_user asks {target:.0}): \
             generating {n_users} users instead of {}",
            world.weeks,
            world.users.len()
        );
        world.users.truncate(n_users);
    }
    let n_users = world.users.len();
    tracing::info!(
        "synthetic world: {n_users} users, {} videos, {} categories, {} weeks; \
         session scale {scale:.4} ({:.1} s)",
        world.catalogue.n_videos(),
        world.n_categories,
        world.weeks,
        seconds()
    );

    let census = count_events(&world, scale, seed);
    tracing::info!("pass 1: {} events ({:.1} s)", census.n_events, seconds());
    let cuts = exact_cuts(&world, scale, seed, &census, split);
    tracing::info!("pass 2: split cuts {cuts:?} ({:.1} s)", seconds());
    let dense = DenseIds::new(&census);

    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut interactions = InteractionWriter::create(dir, meta)?;
    let totals = write_events(&world, scale, seed, &cuts, &dense, &mut interactions)?;
    tracing::info!("pass 3: rows written ({:.1} s)", seconds());

    // The entity tables first; interactions.parquet is renamed into place last.
    let mut written = Written::default();
    remove_stale_marker(dir)?;
    let user_columns = user_features(&world, &dense.user_ids, &totals.user_train);
    let video_columns = video_features(&world, &dense.video_ids, &totals.video_train);
    let mut report = Report {
        user_columns: user_columns.iter().map(|c| c.0.clone()).collect(),
        video_columns: video_columns.iter().map(|c| c.0.clone()).collect(),
        n_users: dense.user_ids.len() as u64,
        n_videos: dense.video_ids.len() as u64,
        ..Default::default()
    };
    let tables = [
        (
            files::USERS,
            (USER_IDX, USER_ID),
            dense.user_ids,
            user_columns,
        ),
        (
            files::VIDEOS,
            (VIDEO_IDX, VIDEO_ID),
            dense.video_ids,
            video_columns,
        ),
    ];
    for (name, columns, ids, features) in tables {
        let path = dir.join(name);
        let rows = write_entities(&path, columns, &IdColumn::Int64(ids), features, meta)?;
        written.outputs.push(FileRows::new(&path, rows));
    }
    let [train, valid, test] = interactions.rows_per_split();
    let interactions_path = interactions.path().to_path_buf();
    report.rows_written = interactions.finish()?;
    written
        .outputs
        .push(FileRows::new(&interactions_path, report.rows_written));

    report.rows_read = census.n_events;
    (report.rows_train, report.rows_valid, report.rows_test) = (train, valid, test);
    report.user_id_type = "Int64".to_string();
    report.video_id_type = "Int64".to_string();
    report.set_times(census.ts_min, census.ts_max, &cuts);
    report.synthetic = Some(generator_facts(&world, scale, &census, &totals));
    Ok((report, written))
}

/// What the summary tells about the generator: sizes, realised rates, planted model.
fn generator_facts(
    world: &World,
    scale: f64,
    census: &Census,
    totals: &Totals,
) -> serde_json::Value {
    let round = |x: f64| (x * 1e4).round() / 1e4;
    let n = census.n_events.max(1) as f64;
    let rates: serde_json::Map<String, serde_json::Value> = BOOL_SIGNALS
        .iter()
        .zip(totals.signal_true)
        .map(|(name, count)| (name.to_string(), json!(round(count as f64 / n))))
        .collect();
    let retention = census.weeks_retained as f64 / census.weeks_followed.max(1) as f64;
    json!({
        "users_generated": world.users.len(),
        "videos_generated": world.catalogue.n_videos(),
        "session_scale": round(scale),
        "signal_rates": rates,
        "weekly_retention": round(retention),
        "retention_logit": {
            "intercept": behaviour::RETENTION_INTERCEPT,
            "like_rate": behaviour::RETENTION_LIKE,
            "long_view_rate": behaviour::RETENTION_LONG_VIEW,
            "dislike_rate": behaviour::RETENTION_DISLIKE,
            "ln_sessions_per_week": behaviour::RETENTION_ACTIVITY,
        },
    })
}

/// The factor on sessions per week that makes the expected log size `target_per_user`
/// events per user, and the events per user it gives, from a pilot of the first users.
/// Two rounds of correction, because at least one session per active week makes the size
/// non-linear in the factor; the last round only measures.
fn calibrate(world: &World, seed: u64, target_per_user: f64) -> (f64, f64) {
    let pilot = world.users.len().min(PILOT_USERS);
    let mean_at = |scale: f64| {
        let total: u64 = (0..pilot)
            .into_par_iter()
            .map(|u| simulate(world, u, scale, seed).events.len() as u64)
            .sum();
        total as f64 / pilot as f64
    };
    let mut scale = 1.0;
    for _ in 0..2 {
        scale = (scale * target_per_user / mean_at(scale).max(1e-9)).clamp(1e-4, 1e4);
    }
    (scale, mean_at(scale))
}

/// Pass 1: events per user and per minute, videos seen, time span, retention counts.
fn count_events(world: &World, scale: f64, seed: u64) -> Census {
    let n_minutes = world.weeks as usize * 7 * 1440;
    let n_users = world.users.len();
    let n_videos = world.catalogue.n_videos();
    let bar = common::progress::bar(n_users as u64, "pass 1/3");

    // Each chunk of users counts into its own tables (shared atomic counters bounce cache
    // lines between cores on popular videos); the integer sums are order-independent.
    let day_words = (world.weeks as usize * 7).div_ceil(64);
    struct Partial {
        per_user: Vec<(u32, u32, u32)>,
        active_days: Vec<u64>,
        per_minute: Vec<u64>,
        /// Bit set of the videos seen.
        seen: Vec<u64>,
        ts_min: i64,
        ts_max: i64,
    }
    let partials: Vec<Partial> = (0..n_users)
        .step_by(CHUNK_USERS)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|start| {
            let mut partial = Partial {
                per_user: Vec::with_capacity(CHUNK_USERS),
                active_days: Vec::with_capacity(CHUNK_USERS * day_words),
                per_minute: vec![0; n_minutes],
                seen: vec![0; n_videos.div_ceil(64)],
                ts_min: i64::MAX,
                ts_max: i64::MIN,
            };
            for u in start..(start + CHUNK_USERS).min(n_users) {
                let log = simulate(world, u, scale, seed);
                let mut days = vec![0u64; day_words];
                for event in &log.events {
                    let minute = ((event.ts_ms - START_MS) / MINUTE_MS) as usize;
                    partial.per_minute[minute] += 1;
                    partial.seen[event.video as usize / 64] |= 1 << (event.video % 64);
                    days[minute / 1440 / 64] |= 1 << (minute / 1440 % 64);
                }
                partial.active_days.extend(days);
                if let (Some(first), Some(last)) = (log.events.first(), log.events.last()) {
                    partial.ts_min = partial.ts_min.min(first.ts_ms);
                    partial.ts_max = partial.ts_max.max(last.ts_ms);
                }
                partial.per_user.push((
                    log.events.len() as u32,
                    log.weeks_followed,
                    log.weeks_retained,
                ));
            }
            bar.inc(partial.per_user.len() as u64);
            partial
        })
        .collect();
    bar.finish_and_clear();

    let mut census = Census {
        n_events: 0,
        events_per_user: Vec::with_capacity(n_users),
        video_seen: vec![false; world.catalogue.n_videos()],
        events_per_minute: vec![0; n_minutes],
        ts_min: i64::MAX,
        ts_max: i64::MIN,
        weeks_followed: 0,
        weeks_retained: 0,
        active_days: Vec::with_capacity(n_users * day_words),
        day_words,
    };
    for partial in partials {
        for (events, followed, retained) in partial.per_user {
            census.n_events += events as u64;
            census.events_per_user.push(events);
            census.weeks_followed += followed as u64;
            census.weeks_retained += retained as u64;
        }
        for (total, count) in census.events_per_minute.iter_mut().zip(partial.per_minute) {
            *total += count;
        }
        for (v, seen) in census.video_seen.iter_mut().enumerate() {
            *seen |= partial.seen[v / 64] & (1 << (v % 64)) != 0;
        }
        census.active_days.extend(partial.active_days);
        census.ts_min = census.ts_min.min(partial.ts_min);
        census.ts_max = census.ts_max.max(partial.ts_max);
    }
    census
}

/// Pass 2: the exact cut times, from the timestamps of the minutes that hold the
/// quantile events; only users with events on those minutes' days are generated again.
fn exact_cuts(
    world: &World,
    scale: f64,
    seed: u64,
    census: &Census,
    split: &SplitConfig,
) -> SplitCuts {
    let (valid_at, test_at) = cut_positions(census.n_events, split);
    let located: Vec<Option<(usize, u64)>> = [valid_at, test_at]
        .iter()
        .map(|&position| locate_in_histogram(&census.events_per_minute, position))
        .collect();
    let minutes: Vec<usize> = located.iter().flatten().map(|l| l.0).collect();
    if minutes.is_empty() {
        return SplitCuts {
            valid_from_ms: i64::MAX,
            test_from_ms: i64::MAX,
        };
    }

    let days: Vec<usize> = minutes.iter().map(|m| m / 1440).collect();
    let users: Vec<usize> = (0..world.users.len())
        .filter(|&u| days.iter().any(|&day| census.active_on(u, day)))
        .collect();
    let bar = common::progress::bar(users.len() as u64, "pass 2/3");
    let mut in_minutes: Vec<(usize, i64)> = users
        .into_par_iter()
        .flat_map_iter(|u| {
            bar.inc(1);
            simulate(world, u, scale, seed)
                .events
                .into_iter()
                .map(|e| (((e.ts_ms - START_MS) / MINUTE_MS) as usize, e.ts_ms))
                .filter(|(minute, _)| minutes.contains(minute))
        })
        .collect();
    bar.finish_and_clear();
    in_minutes.sort_unstable();

    let cut = |located: Option<(usize, u64)>| match located {
        None => i64::MAX,
        Some((minute, rank)) => {
            let start = in_minutes.partition_point(|e| e.0 < minute);
            in_minutes[start + rank as usize].1
        }
    };
    SplitCuts {
        valid_from_ms: cut(located[0]),
        test_from_ms: cut(located[1]),
    }
}

/// What pass 3 counts while writing.
struct Totals {
    user_train: Vec<u32>,
    video_train: Vec<u32>,
    signal_true: [u64; 7],
}

/// One chunk of generated rows with its counts.
struct Chunk {
    users: Range<usize>,
    events: Events,
    /// Train events of each user of the chunk.
    user_train: Vec<u32>,
    signal_true: [u64; 7],
}

/// Pass 3: generates users chunk by chunk and writes their rows; the next chunk is
/// generated while the current one is written.
fn write_events(
    world: &World,
    scale: f64,
    seed: u64,
    cuts: &SplitCuts,
    dense: &DenseIds,
    writer: &mut InteractionWriter,
) -> Result<Totals> {
    let (user_dense, video_dense) = (&dense.user_dense, &dense.video_dense);
    let n_users = world.users.len();
    let video_train: Vec<AtomicU32> = (0..dense.video_ids.len())
        .map(|_| AtomicU32::new(0))
        .collect();
    let mut user_train = vec![0u32; n_users];
    let mut signal_true = [0u64; 7];
    let bar = common::progress::bar(n_users as u64, "pass 3/3");

    let generate_chunk = |range: Range<usize>| -> Chunk {
        let logs: Vec<Vec<behaviour::SynthEvent>> = range
            .clone()
            .into_par_iter()
            .map(|u| simulate(world, u, scale, seed).events)
            .collect();
        let n: usize = logs.iter().map(Vec::len).sum();
        let mut events = Events::with_capacity(n, [true, true, false]);
        let mut counts = [0u64; 7];
        let mut train = Vec::with_capacity(range.len());
        for (u, log) in range.clone().zip(&logs) {
            let mut user_train = 0;
            for event in log {
                let is_train = event.ts_ms < cuts.valid_from_ms;
                user_train += is_train as u32;
                if is_train {
                    video_train[video_dense[event.video as usize] as usize]
                        .fetch_add(1, Ordering::Relaxed);
                }
                for (signal, count) in counts.iter_mut().enumerate() {
                    *count += (event.flags.get(signal) == Some(true)) as u64;
                }
                events.user_idx.push(user_dense[u]);
                events.video_idx.push(video_dense[event.video as usize]);
                events.ts_ms.push(event.ts_ms);
                events.flags.push(event.flags);
                events.numeric[PLAY_TIME_MS].push(event.play_time_ms);
                events.numeric[DURATION_MS].push(event.duration_ms);
            }
            train.push(user_train);
        }
        bar.inc(logs.len() as u64);
        Chunk {
            users: range,
            events,
            user_train: train,
            signal_true: counts,
        }
    };

    let ranges: Vec<Range<usize>> = (0..n_users)
        .step_by(CHUNK_USERS)
        .map(|s| s..(s + CHUNK_USERS).min(n_users))
        .collect();
    let mut pending = Some(generate_chunk(ranges[0].clone()));
    let mut next_ranges = ranges.into_iter().skip(1);
    while let Some(chunk) = pending {
        let next = next_ranges.next();
        let (done, upcoming) = rayon::join(
            || writer.write(&chunk.events, cuts),
            || next.map(&generate_chunk),
        );
        done?;
        user_train[chunk.users.clone()].copy_from_slice(&chunk.user_train);
        for (total, count) in signal_true.iter_mut().zip(chunk.signal_true) {
            *total += count;
        }
        pending = upcoming;
    }
    bar.finish_and_clear();

    Ok(Totals {
        user_train,
        video_train: video_train.into_iter().map(AtomicU32::into_inner).collect(),
        signal_true,
    })
}

fn user_features(world: &World, user_ids: &[i64], user_train: &[u32]) -> Vec<(String, ArrayRef)> {
    let profile = |u: &i64| &world.users[*u as usize];
    let age: StringArray = user_ids
        .iter()
        .map(|u| Some(AGE_BUCKETS[profile(u).age_bucket as usize]))
        .collect();
    let gender: StringArray = user_ids
        .iter()
        .map(|u| Some(GENDERS[profile(u).gender as usize]))
        .collect();
    let train: Float32Array = user_ids
        .iter()
        .map(|&u| Some(user_train[u as usize] as f32))
        .collect();
    vec![
        ("age_bucket".to_string(), Arc::new(age) as ArrayRef),
        ("gender".to_string(), Arc::new(gender)),
        ("n_train_interactions".to_string(), Arc::new(train)),
    ]
}

fn video_features(
    world: &World,
    video_ids: &[i64],
    video_train: &[u32],
) -> Vec<(String, ArrayRef)> {
    let catalogue = &world.catalogue;
    let duration: Float32Array = video_ids
        .iter()
        .map(|&v| {
            let video = catalogue.videos[v as usize];
            video.duration_known.then_some(video.duration_ms)
        })
        .collect();
    let category: StringArray = video_ids
        .iter()
        .map(|&v| Some(format!("c{:02}", catalogue.videos[v as usize].category)))
        .collect();
    // Train counts are indexed by dense index, which is the position in `video_ids`.
    let train: Float32Array = video_train.iter().map(|&c| Some(c as f32)).collect();
    vec![
        ("duration_ms".to_string(), Arc::new(duration) as ArrayRef),
        ("category".to_string(), Arc::new(category)),
        ("n_train_interactions".to_string(), Arc::new(train)),
    ]
}
