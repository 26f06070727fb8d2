//! The fixed part of the synthetic platform: video catalogue (category, quality, duration,
//! Zipf popularity) and user profiles (demographics, interest clusters, habits).
//!
//! Every video and every user is drawn from its own stream `rng_for(seed, purpose, index)`,
//! so the world does not depend on the number of threads.

use rand::seq::SliceRandom;
use rand::Rng;
use rayon::prelude::*;

use super::draw::{cumulative, exponential, normal, pick, AliasTable};
use crate::config::SyntheticConfig;

/// Age buckets of users, with their shares.
pub const AGE_BUCKETS: [&str; 6] = ["<18", "18-24", "25-34", "35-44", "45-54", "55+"];
const AGE_SHARES: [f64; 6] = [0.08, 0.27, 0.30, 0.18, 0.10, 0.07];

/// Fewest users of a generated world.
pub const MIN_USERS: usize = 20;
/// Fewest videos of a generated world.
pub const MIN_VIDEOS: usize = 50;

/// Genders of users.
pub const GENDERS: [&str; 2] = ["F", "M"];

/// Share of videos whose duration the platform does not know (written as null).
const UNKNOWN_DURATION_SHARE: f64 = 0.015;

/// Share of a user's sessions spent outside their interest clusters.
pub const EXPLORATION_SHARE: f64 = 0.15;

/// The videos of one category, for sampling by popularity.
#[derive(Debug, Clone, Default)]
pub struct CategoryVideos {
    /// Video indices in ascending order; neighbours in this list are "related" videos.
    pub videos: Vec<u32>,
    /// Popularity sampler over `videos`.
    pub popularity: AliasTable,
}

/// One video of the catalogue. The fields an event reads sit together, so an event costs
/// one cache miss on the catalogue rather than one per field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Video {
    pub category: u32,
    /// Position in its category's list.
    pub position: u32,
    /// Latent quality, standard deviation 0.5; raises engagement.
    pub quality: f32,
    /// True duration in ms (used for play time even when the platform does not know it).
    pub duration_ms: f32,
    pub duration_known: bool,
}

/// The video catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// Cumulative popularity of categories (category 0 is the most popular).
    pub category_cumulative: Vec<f64>,
    pub videos: Vec<Video>,
    pub by_category: Vec<CategoryVideos>,
    /// Popularity sampler over all videos, for categories without videos.
    pub all_popularity: AliasTable,
}

/// One user's fixed traits.
#[derive(Debug, Clone)]
pub struct UserProfile {
    pub age_bucket: u8,
    pub gender: u8,
    /// Interest categories and their weights (summing to 1).
    pub interests: Vec<(u32, f64)>,
    /// Cumulative interest weights, aligned with `interests`.
    pub interest_cumulative: Vec<f64>,
    /// Tendency to like (added to the like logit).
    pub like_bias: f64,
    /// Tendency to dislike (added to the dislike logit).
    pub dislike_bias: f64,
    /// Mean sessions per active week before the size calibration.
    pub sessions_per_week: f64,
    /// Mean events per session.
    pub session_length: f64,
    /// First week of activity.
    pub join_week: u32,
    /// Hour of day (0..24) around which sessions cluster.
    pub peak_hour: f64,
}

impl UserProfile {
    /// Affinity of the user to a category: its interest weight relative to the user's
    /// strongest interest, 0 outside the interests.
    pub fn affinity(&self, category: u32) -> f64 {
        let top = self.interests.iter().map(|i| i.1).fold(0.0, f64::max);
        self.interests
            .iter()
            .find(|i| i.0 == category)
            .map_or(0.0, |i| i.1 / top)
    }
}

/// Users and videos of the generated platform.
#[derive(Debug, Clone)]
pub struct World {
    pub catalogue: Catalogue,
    pub users: Vec<UserProfile>,
    pub n_categories: u32,
    pub weeks: u32,
}

impl World {
    /// Builds the world of a configuration: users = max(rows / rows_per_user, 20), videos
    /// = max(rows / rows_per_video, 50).
    pub fn build(settings: &SyntheticConfig, seed: u64) -> World {
        let n_users = ((settings.rows / settings.rows_per_user) as usize).max(MIN_USERS);
        let n_videos = ((settings.rows / settings.rows_per_video) as usize).max(MIN_VIDEOS);
        let n_categories = settings.categories;
        let category_weights: Vec<f64> = (0..n_categories)
            .map(|c| 1.0 / (c as f64 + 1.0).powf(0.6))
            .collect();
        let catalogue = Catalogue::build(n_videos, &category_weights, settings.zipf_exponent, seed);
        let users = (0..n_users)
            .into_par_iter()
            .map(|u| UserProfile::draw(u, &catalogue, n_categories, settings.weeks, seed))
            .collect();
        World {
            catalogue,
            users,
            n_categories,
            weeks: settings.weeks,
        }
    }
}

impl Catalogue {
    fn build(n_videos: usize, category_weights: &[f64], zipf: f64, seed: u64) -> Catalogue {
        let n_categories = category_weights.len();
        let category_cumulative = cumulative(category_weights.iter().copied());

        // Each category's typical duration, from 8 s to 90 s (short-video platform).
        let mut category_rng = common::rng::rng_for(seed, "category", 0);
        let typical_ms: Vec<f64> = (0..n_categories)
            .map(|_| {
                (8_000f64.ln() + category_rng.random::<f64>() * (90_000f64 / 8_000.0).ln()).exp()
            })
            .collect();

        let mut videos: Vec<Video> = (0..n_videos)
            .into_par_iter()
            .map(|v| {
                let mut rng = common::rng::rng_for(seed, "video", v as u64);
                // The first videos cover every category, so none is empty when it can be.
                let category = if v < n_categories {
                    v
                } else {
                    pick(&mut rng, &category_cumulative)
                };
                let duration = typical_ms[category] * (0.5 * normal(&mut rng)).exp();
                Video {
                    category: category as u32,
                    position: 0,
                    quality: (0.5 * normal(&mut rng)) as f32,
                    duration_ms: duration.clamp(2_000.0, 600_000.0).round() as f32,
                    duration_known: rng.random::<f64>() >= UNKNOWN_DURATION_SHARE,
                }
            })
            .collect();

        // Popularity ranks are a random permutation: popularity is independent of the id.
        let mut ranks: Vec<u32> = (0..n_videos as u32).collect();
        ranks.shuffle(&mut common::rng::rng_for(seed, "popularity", 0));
        let weight =
            |v: usize| (ranks[v] as f64 + 1.0).powf(-zipf) * (0.3 * videos[v].quality as f64).exp();

        let mut by_category = vec![CategoryVideos::default(); n_categories];
        let mut positions = vec![0u32; n_videos];
        for (v, video) in videos.iter().enumerate() {
            let list = &mut by_category[video.category as usize];
            positions[v] = list.videos.len() as u32;
            list.videos.push(v as u32);
        }
        for list in &mut by_category {
            let weights: Vec<f64> = list.videos.iter().map(|&v| weight(v as usize)).collect();
            list.popularity = AliasTable::new(&weights);
        }
        let all_popularity = AliasTable::new(&(0..n_videos).map(weight).collect::<Vec<_>>());
        videos
            .iter_mut()
            .zip(positions)
            .for_each(|(video, p)| video.position = p);
        Catalogue {
            category_cumulative,
            videos,
            by_category,
            all_popularity,
        }
    }

    /// Videos generated (some may never be watched).
    pub fn n_videos(&self) -> usize {
        self.videos.len()
    }

    /// A video of `category` by popularity (any video when the category is empty).
    pub fn popular_in(&self, rng: &mut impl Rng, category: u32) -> u32 {
        let list = &self.by_category[category as usize];
        if list.videos.is_empty() {
            return self.all_popularity.sample(rng) as u32;
        }
        list.videos[list.popularity.sample(rng)]
    }

    /// A video next to `video` in its category's list (1 to 3 places away): videos that
    /// are watched together, finer than the category.
    pub fn neighbour_of(&self, rng: &mut impl Rng, video: u32) -> u32 {
        let this = self.videos[video as usize];
        let list = &self.by_category[this.category as usize].videos;
        let n = list.len() as i64;
        if n < 2 {
            return video;
        }
        let step = [1, 1, 1, 2, 2, 3][rng.random_range(0..6)];
        let offset = if rng.random::<bool>() { step } else { -step };
        list[(this.position as i64 + offset).rem_euclid(n) as usize]
    }
}

impl UserProfile {
    fn draw(
        u: usize,
        catalogue: &Catalogue,
        n_categories: u32,
        weeks: u32,
        seed: u64,
    ) -> UserProfile {
        let mut rng = common::rng::rng_for(seed, "user-profile", u as u64);
        let age_bucket = pick(&mut rng, &cumulative(AGE_SHARES)) as u8;
        let gender = (rng.random::<f64>() < 0.51) as u8;

        // Half the interests follow demographics (a few categories per age and gender
        // group), half follow category popularity: features carry some signal.
        let n_interests = 1 + pick(&mut rng, &cumulative([0.35, 0.35, 0.2, 0.1])) as u32;
        let mut interests: Vec<(u32, f64)> = Vec::new();
        for _ in 0..8 {
            if interests.len() as u32 == n_interests.min(n_categories) {
                break;
            }
            let category = if rng.random::<bool>() {
                let j = rng.random_range(0..3u32);
                (age_bucket as u32 * 3 + gender as u32 * 7 + j * 5) % n_categories
            } else {
                pick(&mut rng, &catalogue.category_cumulative) as u32
            };
            if interests.iter().all(|i| i.0 != category) {
                interests.push((category, exponential(&mut rng, 1.0) + 0.2));
            }
        }
        let total: f64 = interests.iter().map(|i| i.1).sum();
        interests.iter_mut().for_each(|i| i.1 /= total);
        let interest_cumulative = cumulative(interests.iter().map(|i| i.1));

        let join_week = if rng.random::<f64>() < 0.6 {
            0
        } else {
            rng.random_range(1..weeks)
        };
        UserProfile {
            age_bucket,
            gender,
            interest_cumulative,
            interests,
            like_bias: 0.4 * normal(&mut rng),
            dislike_bias: 0.4 * normal(&mut rng),
            sessions_per_week: 2.0 * (0.7 * normal(&mut rng)).exp(),
            session_length: 1.0 + 4.0 * (0.4 * normal(&mut rng)).exp(),
            join_week,
            peak_hour: (20.0 + 2.5 * normal(&mut rng)).rem_euclid(24.0),
        }
    }

    /// The category of a new session: an interest (by weight), or any category by
    /// popularity with probability [`EXPLORATION_SHARE`].
    pub fn session_category(&self, rng: &mut impl Rng, catalogue: &Catalogue) -> u32 {
        if rng.random::<f64>() < EXPLORATION_SHARE {
            return pick(rng, &catalogue.category_cumulative) as u32;
        }
        self.interests[pick(rng, &self.interest_cumulative)].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(rows: u64) -> World {
        World::build(
            &SyntheticConfig {
                rows,
                ..Default::default()
            },
            7,
        )
    }

    #[test]
    fn sizes_scale_with_rows_and_have_minimums() {
        let small = world(100);
        assert_eq!((small.users.len(), small.catalogue.n_videos()), (20, 50));
        let large = world(400_000);
        assert_eq!(
            (large.users.len(), large.catalogue.n_videos()),
            (10_000, 4_000)
        );
    }

    #[test]
    fn every_category_has_videos_and_lists_are_consistent() {
        let w = world(10_000);
        for (c, list) in w.catalogue.by_category.iter().enumerate() {
            assert!(!list.videos.is_empty(), "category {c}");
            for (p, &v) in list.videos.iter().enumerate() {
                assert_eq!(w.catalogue.videos[v as usize].category as usize, c);
                assert_eq!(w.catalogue.videos[v as usize].position as usize, p);
            }
        }
    }

    #[test]
    fn popularity_is_heavy_tailed() {
        let w = world(100_000);
        let mut rng = common::rng::rng_for(1, "t", 0);
        let mut counts = vec![0u32; w.catalogue.n_videos()];
        for _ in 0..100_000 {
            counts[w.catalogue.all_popularity.sample(&mut rng)] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top_share = counts[..counts.len() / 100].iter().sum::<u32>() as f64 / 100_000.0;
        // With s = 1 the top 1 % of 1000 videos hold far more than 1 % of the views.
        assert!(top_share > 0.2, "{top_share}");
    }

    #[test]
    fn affinity_is_one_for_the_top_interest_and_zero_outside() {
        let w = world(1000);
        let user = &w.users[0];
        let top = user
            .interests
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
            .0;
        assert_eq!(user.affinity(top), 1.0);
        let outside = (0..w.n_categories).find(|c| user.interests.iter().all(|i| i.0 != *c));
        assert_eq!(user.affinity(outside.unwrap()), 0.0);
    }

    #[test]
    fn world_is_identical_across_builds() {
        let (a, b) = (world(5000), world(5000));
        assert_eq!(a.catalogue.videos, b.catalogue.videos);
        assert_eq!(a.users[3].interests, b.users[3].interests);
    }
}
