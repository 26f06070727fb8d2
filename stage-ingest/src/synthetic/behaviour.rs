//! One user's life on the synthetic platform, week by week: sessions, the videos watched in
//! them, the feedback given, and whether the user comes back the next week.
//!
//! Planted structure:
//! - sessions stay mostly in one category (the user's interests, sometimes exploration),
//!   and a quarter of the videos are neighbours of the previous one in the catalogue, so
//!   co-visitation finds related videos;
//! - engagement z = 1.5 affinity + 0.7 quality - 0.9 + noise drives click, watch ratio,
//!   long view, like, comment, forward and follow; dislikes rise off-interest;
//! - retention: a user active in week w is active in week w+1 with probability
//!   sigmoid(1.0 + 5 (like rate - 0.10) + 2.5 (long-view rate - 0.40) -
//!   15 (dislike rate - 0.02) + 0.3 ln(sessions per week / 2)), the rates taken over
//!   the user's week-w events; an inactive user returns with probability 0.15.

use rand::Rng;

use super::draw::{exponential, geometric, normal, poisson, sigmoid};
use super::world::World;
use crate::events::{Flags, CLICK, COMMENT, DISLIKE, FOLLOW, FORWARD, LIKE, LONG_VIEW};

/// 2024-01-01T00:00:00Z (a Monday): the first instant of the generated log.
pub const START_MS: i64 = 1_704_067_200_000;

/// One day in ms.
pub const DAY_MS: i64 = 86_400_000;
/// One week in ms.
pub const WEEK_MS: i64 = 7 * DAY_MS;

// Coefficients of the planted retention logit (see the module doc).
/// Intercept of the retention logit.
pub const RETENTION_INTERCEPT: f64 = 1.0;
/// Weight of (week like rate - 0.10).
pub const RETENTION_LIKE: f64 = 5.0;
/// Weight of (week long-view rate - 0.40).
pub const RETENTION_LONG_VIEW: f64 = 2.5;
/// Weight of (week dislike rate - 0.02).
pub const RETENTION_DISLIKE: f64 = -15.0;
/// Weight of ln(sessions per week / 2).
pub const RETENTION_ACTIVITY: f64 = 0.3;
/// Probability that a user inactive in week w is active in week w+1.
pub const RETURN_PROBABILITY: f64 = 0.15;

/// Longest session, in events.
const MAX_SESSION: u32 = 200;

/// One generated event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthEvent {
    pub video: u32,
    pub ts_ms: i64,
    pub flags: Flags,
    pub play_time_ms: f32,
    /// NaN when the platform does not know the video's duration.
    pub duration_ms: f32,
}

/// A user's events in time order, with week-to-week retention counts.
#[derive(Debug, Clone, Default)]
pub struct UserLog {
    pub events: Vec<SynthEvent>,
    /// Active weeks followed by another generated week.
    pub weeks_followed: u32,
    /// Of those, weeks after which the user was active again.
    pub weeks_retained: u32,
}

/// Feedback counts of one week.
#[derive(Default)]
struct WeekTally {
    events: u32,
    likes: u32,
    long_views: u32,
    dislikes: u32,
}

impl WeekTally {
    fn retention_probability(&self, sessions_per_week: f64) -> f64 {
        let n = self.events.max(1) as f64;
        let logit = RETENTION_INTERCEPT
            + RETENTION_LIKE * (self.likes as f64 / n - 0.10)
            + RETENTION_LONG_VIEW * (self.long_views as f64 / n - 0.40)
            + RETENTION_DISLIKE * (self.dislikes as f64 / n - 0.02)
            + RETENTION_ACTIVITY * (sessions_per_week / 2.0).ln();
        sigmoid(logit)
    }
}

/// Generates user `u`'s log from its own stream `rng_for(seed, "user", u)`; `scale`
/// multiplies the sessions per week (the size calibration).
pub fn simulate(world: &World, u: usize, scale: f64, seed: u64) -> UserLog {
    let mut rng = common::rng::rng_for(seed, "user", u as u64);
    let user = &world.users[u];
    let end_ms = START_MS + world.weeks as i64 * WEEK_MS;
    let mut log = UserLog::default();
    let mut cursor = START_MS;
    // The feedback of the previous week when the user was active in it.
    let mut last_week: Option<WeekTally> = None;

    for week in user.join_week..world.weeks {
        if week > user.join_week {
            let p = match &last_week {
                Some(tally) => tally.retention_probability(user.sessions_per_week),
                None => RETURN_PROBABILITY,
            };
            let active = rng.random::<f64>() < p;
            if last_week.is_some() {
                log.weeks_followed += 1;
                log.weeks_retained += active as u32;
            }
            if !active {
                last_week = None;
                continue;
            }
        }

        let week_start = START_MS + week as i64 * WEEK_MS;
        let n_sessions = poisson(&mut rng, user.sessions_per_week * scale).max(1);
        let mut starts: Vec<i64> = (0..n_sessions)
            .map(|_| {
                let day = rng.random_range(0..7) as i64;
                let hour = if rng.random::<f64>() < 0.7 {
                    (user.peak_hour + 2.0 * normal(&mut rng)).rem_euclid(24.0)
                } else {
                    24.0 * rng.random::<f64>()
                };
                week_start + day * DAY_MS + (hour * 3_600_000.0) as i64
            })
            .collect();
        starts.sort_unstable();

        let mut tally = WeekTally::default();
        for start in starts {
            // Sessions never overlap: one planned too early starts ten minutes after the
            // previous one ended, so a user's timestamps strictly increase.
            let mut t = start.max(cursor);
            let category = user.session_category(&mut rng, &world.catalogue);
            let length = geometric(&mut rng, user.session_length).min(MAX_SESSION);
            let mut previous: Option<u32> = None;
            for _ in 0..length {
                if t >= end_ms {
                    break;
                }
                let video = choose_video(world, category, previous, &mut rng);
                let event = watch(world, u, video, t, &mut rng);
                tally.add(event.flags);
                log.events.push(event);
                previous = Some(video);
                t += event.play_time_ms as i64 + 500 + exponential(&mut rng, 3_000.0) as i64;
            }
            cursor = t + 600_000;
        }
        last_week = Some(tally);
    }
    log
}

impl WeekTally {
    fn add(&mut self, flags: Flags) {
        self.events += 1;
        self.likes += (flags.get(LIKE) == Some(true)) as u32;
        self.long_views += (flags.get(LONG_VIEW) == Some(true)) as u32;
        self.dislikes += (flags.get(DISLIKE) == Some(true)) as u32;
    }
}

/// The next video of a session: a neighbour of the previous video (25 %), a popular video
/// of the session's category (60 %), or one of another interest or exploration (15 %).
fn choose_video(world: &World, category: u32, previous: Option<u32>, rng: &mut impl Rng) -> u32 {
    let catalogue = &world.catalogue;
    let r = rng.random::<f64>();
    let video = match previous {
        Some(previous) if r < 0.25 => catalogue.neighbour_of(rng, previous),
        _ if r < 0.85 => catalogue.popular_in(rng, category),
        _ => {
            let other = pick_any_category(world, rng);
            catalogue.popular_in(rng, other)
        }
    };
    // Replaying the video just watched is rare on a feed: draw once more.
    if Some(video) == previous {
        return catalogue.popular_in(rng, category);
    }
    video
}

fn pick_any_category(world: &World, rng: &mut impl Rng) -> u32 {
    super::draw::pick(rng, &world.catalogue.category_cumulative) as u32
}

/// True with probability sigmoid(logit).
fn bernoulli(rng: &mut impl Rng, logit: f64) -> bool {
    rng.random::<f64>() < sigmoid(logit)
}

/// The feedback of user `u` on `video` at `ts_ms`.
fn watch(world: &World, u: usize, video: u32, ts_ms: i64, rng: &mut impl Rng) -> SynthEvent {
    let user = &world.users[u];
    let catalogue = &world.catalogue;
    let info = catalogue.videos[video as usize];
    let affinity = user.affinity(info.category);
    let z = 1.5 * affinity + 0.7 * info.quality as f64 - 0.9 + 0.7 * normal(rng);

    let click = bernoulli(rng, 0.9 * z);
    let duration = info.duration_ms as f64;
    let mut ratio = sigmoid(1.1 * z + 0.8 * click as u8 as f64 - 0.6 + 0.6 * normal(rng));
    if rng.random::<f64>() < 0.08 * sigmoid(z) {
        ratio += 0.3 + 0.7 * rng.random::<f64>();
    }
    let play = (ratio * duration).max(300.0).round();
    let long_view = play >= duration.min(18_000.0);
    let like = bernoulli(
        rng,
        -3.5 + 1.2 * z + 0.9 * long_view as u8 as f64 + user.like_bias,
    );
    let off_interest = (affinity == 0.0) as u8 as f64;
    let dislike = !like && bernoulli(rng, -4.8 - 0.9 * z + 1.0 * off_interest + user.dislike_bias);
    let liked = like as u8 as f64;

    let flags = Flags::default()
        .with(CLICK, Some(click))
        .with(LONG_VIEW, Some(long_view))
        .with(LIKE, Some(like))
        .with(DISLIKE, Some(dislike))
        .with(COMMENT, Some(bernoulli(rng, -4.3 + 0.7 * z + 1.0 * liked)))
        .with(FORWARD, Some(bernoulli(rng, -4.7 + 0.6 * z + 0.8 * liked)))
        .with(FOLLOW, Some(bernoulli(rng, -5.0 + 0.6 * z + 1.0 * liked)));
    SynthEvent {
        video,
        ts_ms,
        flags,
        play_time_ms: play as f32,
        duration_ms: if info.duration_known {
            duration as f32
        } else {
            f32::NAN
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SyntheticConfig;

    fn world() -> World {
        World::build(
            &SyntheticConfig {
                rows: 20_000,
                ..Default::default()
            },
            3,
        )
    }

    #[test]
    fn timestamps_strictly_increase_within_the_period() {
        let w = world();
        for u in 0..w.users.len() {
            let log = simulate(&w, u, 1.0, 3);
            assert!(!log.events.is_empty(), "user {u} has no event");
            for pair in log.events.windows(2) {
                assert!(pair[0].ts_ms < pair[1].ts_ms);
            }
            let last = log.events.last().unwrap().ts_ms;
            assert!(log.events[0].ts_ms >= START_MS && last < START_MS + 4 * WEEK_MS);
        }
    }

    #[test]
    fn simulation_is_deterministic_per_user() {
        let w = world();
        assert_eq!(
            simulate(&w, 5, 1.0, 3).events,
            simulate(&w, 5, 1.0, 3).events
        );
        assert_ne!(
            simulate(&w, 5, 1.0, 3).events,
            simulate(&w, 6, 1.0, 3).events
        );
    }

    #[test]
    fn play_time_is_consistent_with_duration_and_long_view() {
        let w = world();
        for u in 0..50 {
            for event in simulate(&w, u, 1.0, 3).events {
                let duration = w.catalogue.videos[event.video as usize].duration_ms;
                assert!(event.play_time_ms >= 300.0 && event.play_time_ms <= 2.0 * duration + 1.0);
                let long = event.play_time_ms >= duration.min(18_000.0);
                assert_eq!(event.flags.get(LONG_VIEW), Some(long));
                assert!(
                    !(event.flags.get(LIKE) == Some(true)
                        && event.flags.get(DISLIKE) == Some(true))
                );
            }
        }
    }

    #[test]
    fn dislikes_are_more_frequent_off_interest() {
        let w = world();
        let (mut on, mut off) = ((0u32, 0u32), (0u32, 0u32));
        for u in 0..w.users.len() {
            for event in simulate(&w, u, 1.0, 3).events {
                let category = w.catalogue.videos[event.video as usize].category;
                let slot = if w.users[u].affinity(category) > 0.0 {
                    &mut on
                } else {
                    &mut off
                };
                slot.0 += (event.flags.get(DISLIKE) == Some(true)) as u32;
                slot.1 += 1;
            }
        }
        let rate = |(d, n): (u32, u32)| d as f64 / n as f64;
        assert!(rate(off) > 2.0 * rate(on), "on {:?} off {:?}", on, off);
    }
}
