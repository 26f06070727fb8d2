//! The alternating loop: initial factors, user and video half-sweeps, finite checks,
//! per-iteration metrics and early stopping. The library entry points `fit_explicit` and
//! `fit_implicit` take a user x video matrix and return both factor matrices; they read and
//! write no files, so tests and benchmarks call them directly.

use std::borrow::Cow;
use std::fmt;
use std::time::Instant;

use rayon::prelude::*;

use crate::kernels;
use crate::matrix::{Csr, ExplicitCell, ImplicitCsr};
use crate::metrics::{Holdout, Loss, ValidSet, View};
use crate::pages;
use crate::params::FitParams;
use crate::solve::{gram, Gram, Sweep};

/// Which factor matrix a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    User,
    Video,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::User => "user",
            Side::Video => "video",
        })
    }
}

/// One side's factors: row-major n x k, with `present[i]` false (and a zero row) for an
/// entity that has no factor.
#[derive(Debug, Clone, PartialEq)]
pub struct Factors {
    pub n_factors: usize,
    pub values: Vec<f32>,
    pub present: Vec<bool>,
}

impl Factors {
    pub fn len(&self) -> usize {
        self.present.len()
    }

    pub fn is_empty(&self) -> bool {
        self.present.is_empty()
    }

    /// The factor of entity `i`, or `None` when it has none.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        self.present[i].then(|| &self.values[i * self.n_factors..(i + 1) * self.n_factors])
    }

    /// Number of entities with a factor.
    pub fn n_present(&self) -> usize {
        self.present.iter().filter(|&&p| p).count()
    }
}

/// What one iteration measured.
#[derive(Debug, Clone, PartialEq)]
pub struct IterationStats {
    /// 1-based.
    pub iteration: usize,
    /// RMSE (explicit) or weighted MSE (implicit) on the training cells.
    pub train_metric: f64,
    /// RMSE (explicit) or sampled ranking loss (implicit) on the holdout, when scorable.
    pub valid_metric: Option<f64>,
    /// Held-out rows (explicit) or pairs (implicit) that entered `valid_metric`.
    pub n_valid_scored: usize,
    /// Seconds of the two half-sweeps (Gram matrices included).
    pub sweep_seconds: f64,
    /// Of which the user half-sweep (with the Gram matrix of the new user factors).
    pub user_sweep_seconds: f64,
    /// Floating-point operations of the two half-sweeps: building and solving the normal
    /// equations (counted per row by `Sweep::run`) plus the Gram matrices (k (k + 1) per
    /// factor row, the packed rank-1 update).
    pub sweep_flops: u64,
    /// Seconds spent on the metrics.
    pub metric_seconds: f64,
}

/// A trained model.
#[derive(Debug, Clone)]
pub struct AlsModel {
    pub users: Factors,
    pub videos: Factors,
    pub history: Vec<IterationStats>,
    /// True when `early_stop_tolerance` ended the loop before `iterations`.
    pub stopped_early: bool,
    /// Names of the two measures in `history`.
    pub train_metric_name: &'static str,
    pub valid_metric_name: &'static str,
}

/// Why a fit failed.
#[derive(Debug, Clone, PartialEq)]
pub enum FitError {
    /// A row's normal equations have no unique solution (regularisation 0 with fewer
    /// independent observations than factors).
    Singular {
        side: Side,
        row: usize,
        n_obs: usize,
        n_factors: usize,
        iteration: usize,
    },
    /// A factor became NaN or infinite.
    NonFinite {
        side: Side,
        row: usize,
        iteration: usize,
    },
}

impl FitError {
    /// The message, naming the entity through `name(side, row)` (for example its id).
    pub fn describe(&self, name: impl Fn(Side, usize) -> String) -> String {
        match *self {
            FitError::Singular {
                side,
                row,
                n_obs,
                n_factors,
                iteration,
            } => format!(
                "singular normal equations for {side} {} in iteration {iteration} ({n_obs} \
                 observed cells, {n_factors} factors): the least-squares problem has no unique \
                 solution; set regularization > 0, or rescale the value column if its values \
                 are huge (the system loses its precision in f64)",
                name(side, row)
            ),
            FitError::NonFinite {
                side,
                row,
                iteration,
            } => format!(
                "non-finite value in the {side} factors at row {row} ({side} {}) after \
                 iteration {iteration}: lower alpha (implicit mode), raise regularization or \
                 rescale the value column",
                name(side, row)
            ),
        }
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(|_, row| format!("index {row}")))
    }
}

impl std::error::Error for FitError {}

/// Gaussian initial factors (mean 0, sd `init_std`) from `rng_for(seed, "als-init", 0)`:
/// all user factors, then all video factors.
pub fn initial_factors(
    n_users: usize,
    n_videos: usize,
    params: &FitParams,
) -> (Vec<f32>, Vec<f32>) {
    use rand::Rng;
    let mut rng = common::rng::rng_for(params.seed, "als-init", 0);
    let k = params.factors;
    let mut draw = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
                let u1 = 1.0 - rng.random::<f64>();
                let u2 = rng.random::<f64>();
                let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (normal * params.init_std) as f32
            })
            .collect()
    };
    let users = draw(n_users * k);
    let videos = draw(n_videos * k);
    (users, videos)
}

/// Explicit ALS: minimises sum over observed (u, i) of w_ui (r_ui - x_u·y_i)^2 plus
/// lambda (n_u |x_u|^2 + n_i |y_i|^2) (count scaling) or lambda (|x_u|^2 + |y_i|^2).
/// `train` is user x video: a `RatingsCsr` (r_ui the mean of the pair's ratings, w_ui = 1,
/// n_u = the user's cells) or a `RatingRowsCsr` (w_ui = the pair's rows, n_u = the user's
/// rows, as Spark MLlib); `holdout` gives the validation RMSE.
pub fn fit_explicit<C: ExplicitCell>(
    train: &Csr<C>,
    holdout: Option<&Holdout>,
    params: &FitParams,
    on_iteration: &mut dyn FnMut(&IterationStats),
) -> Result<AlsModel, FitError> {
    let (users, videos) = initial_factors(train.n_rows, train.n_cols, params);
    fit_from(train, holdout, params, users, videos, on_iteration)
}

/// Implicit ALS (Hu, Koren, Volinsky 2008): minimises sum over all (u, i) of
/// c_ui (p_ui - x_u·y_i)^2 plus the same regularisation, with unobserved cells at
/// p = 0, c = 1. `holdout` holds validation positives for the sampled ranking loss.
pub fn fit_implicit(
    train: &ImplicitCsr,
    holdout: Option<&Holdout>,
    params: &FitParams,
    on_iteration: &mut dyn FnMut(&IterationStats),
) -> Result<AlsModel, FitError> {
    let (users, videos) = initial_factors(train.n_rows, train.n_cols, params);
    fit_from(train, holdout, params, users, videos, on_iteration)
}

/// The alternating loop from given initial factors (row-major, n x k each). Each
/// iteration solves every user against the fixed videos, then every video against the
/// new users.
pub fn fit_from<C: Loss>(
    train: &Csr<C>,
    holdout: Option<&Holdout>,
    params: &FitParams,
    mut users: Vec<f32>,
    mut videos: Vec<f32>,
    on_iteration: &mut dyn FnMut(&IterationStats),
) -> Result<AlsModel, FitError> {
    let k = params.factors;
    assert_eq!(
        users.len(),
        train.n_rows * k,
        "initial user factors must be n_users x k"
    );
    assert_eq!(
        videos.len(),
        train.n_cols * k,
        "initial video factors must be n_videos x k"
    );

    // Entities without a positive cell get no factor. Their cells carry no information
    // for the other side (a zero factor adds nothing) and would only inflate count-scaled
    // regularisation, so they are dropped.
    let users_present = train.positive_rows();
    let transposed = train.transpose();
    let videos_present = transposed.positive_rows();
    let (user_items, item_users): (Cow<Csr<C>>, Csr<C>) = if C::WHOLE_MATRIX {
        let kept = train.retain(&users_present, &videos_present);
        let kept_transposed = kept.transpose();
        (Cow::Owned(kept), kept_transposed)
    } else {
        (Cow::Borrowed(train), transposed)
    };
    zero_absent(&mut users, &users_present, k);
    zero_absent(&mut videos, &videos_present, k);
    // Each sweep gathers scattered rows of the other side's factors.
    let mut users = pages::on_huge_pages(users);
    let mut videos = pages::on_huge_pages(videos);

    let valid: Option<ValidSet> =
        holdout.map(|h| C::prepare_valid(h, &users_present, &videos_present, params.seed));
    let mut video_gram: Option<Gram> = C::WHOLE_MATRIX.then(|| gram(&videos, k));

    let mut history: Vec<IterationStats> = Vec::with_capacity(params.iterations);
    let mut stopped_early = false;
    for iteration in 1..=params.iterations {
        let started = Instant::now();
        let gram_flops = if C::WHOLE_MATRIX {
            kernels::rank1_flops(k) * (train.n_rows + train.n_cols) as u64
        } else {
            0
        };
        let user_sweep = sweep(params, &user_items, &videos, video_gram.as_ref());
        let user_flops =
            user_sweep
                .run(&users_present, &mut users)
                .map_err(|s| FitError::Singular {
                    side: Side::User,
                    row: s.row,
                    n_obs: s.n_obs,
                    n_factors: k,
                    iteration,
                })?;
        check_finite(&users, k, Side::User, iteration)?;
        let user_gram = C::WHOLE_MATRIX.then(|| gram(&users, k));
        let user_sweep_seconds = started.elapsed().as_secs_f64();

        let video_sweep = sweep(params, &item_users, &users, user_gram.as_ref());
        let video_flops =
            video_sweep
                .run(&videos_present, &mut videos)
                .map_err(|s| FitError::Singular {
                    side: Side::Video,
                    row: s.row,
                    n_obs: s.n_obs,
                    n_factors: k,
                    iteration,
                })?;
        check_finite(&videos, k, Side::Video, iteration)?;
        video_gram = C::WHOLE_MATRIX.then(|| gram(&videos, k));
        let sweep_seconds = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let view = View {
            k,
            users: &users,
            videos: &videos,
            users_present: &users_present,
            videos_present: &videos_present,
        };
        let train_metric = C::train_metric(
            &user_items,
            &view,
            user_gram.as_ref().zip(video_gram.as_ref()),
        );
        let measured = valid.as_ref().and_then(|v| C::valid_metric(v, &view));
        let stats = IterationStats {
            iteration,
            train_metric,
            valid_metric: measured.map(|m| m.value),
            n_valid_scored: measured.map_or(0, |m| m.n_scored),
            sweep_seconds,
            user_sweep_seconds,
            sweep_flops: user_flops + video_flops + gram_flops,
            metric_seconds: started.elapsed().as_secs_f64(),
        };
        on_iteration(&stats);
        history.push(stats);

        if params.early_stop_tolerance > 0.0 && history.len() >= 2 {
            let [previous, current] = [&history[history.len() - 2], &history[history.len() - 1]];
            let improvement = match (previous.valid_metric, current.valid_metric) {
                (Some(before), Some(now)) => before - now,
                _ => previous.train_metric - current.train_metric,
            };
            if improvement < params.early_stop_tolerance {
                stopped_early = iteration < params.iterations;
                break;
            }
        }
    }

    Ok(AlsModel {
        users: Factors {
            n_factors: k,
            values: users,
            present: users_present,
        },
        videos: Factors {
            n_factors: k,
            values: videos,
            present: videos_present,
        },
        history,
        stopped_early,
        train_metric_name: C::TRAIN_METRIC,
        valid_metric_name: C::VALID_METRIC,
    })
}

fn sweep<'a, C>(
    params: &FitParams,
    matrix: &'a Csr<C>,
    fixed: &'a [f32],
    gram: Option<&'a Gram>,
) -> Sweep<'a, C> {
    Sweep {
        matrix,
        fixed,
        gram,
        k: params.factors,
        regularization: params.regularization,
        lambda_scaling: params.lambda_scaling,
        solver: params.solver,
        cg_steps: params.cg_steps,
    }
}

fn zero_absent(values: &mut [f32], present: &[bool], k: usize) {
    for (row, &p) in values.chunks_exact_mut(k).zip(present) {
        if !p {
            row.fill(0.0);
        }
    }
}

fn check_finite(values: &[f32], k: usize, side: Side, iteration: usize) -> Result<(), FitError> {
    match values
        .par_chunks(k)
        .position_first(|row| row.iter().any(|v| !v.is_finite()))
    {
        Some(row) => Err(FitError::NonFinite {
            side,
            row,
            iteration,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{Implicit, RatingRows, RatingRowsCsr, RatingsCsr};
    use crate::params::{LambdaScaling, RepeatedRatings, Solver};

    fn params(k: usize, lambda: f64, scaling: LambdaScaling, iterations: usize) -> FitParams {
        FitParams {
            factors: k,
            regularization: lambda,
            lambda_scaling: scaling,
            iterations,
            ..FitParams::defaults(3)
        }
    }

    /// Rank 1, users {0, 1} x videos {0, 1}: r00 = 4, r01 = 2, r10 = 3 (r11 unobserved).
    /// From y = (1, 2) the alternating updates are scalar least squares:
    ///   x_u = sum_i r_ui y_i / (sum_i y_i^2 + l_u),  y_i = sum_u r_ui x_u / (sum_u x_u^2 + l_i)
    /// with l = lambda * (number of the row's ratings) under count scaling, lambda without.
    /// Factors are stored as f32 after each half-sweep, so the reference rounds there too.
    fn hand_solved(scaling: LambdaScaling) -> (Vec<f64>, Vec<f64>) {
        let lambda = 0.1;
        let l = |n: f64| match scaling {
            LambdaScaling::Count => lambda * n,
            LambdaScaling::None => lambda,
        };
        let round = |v: f64| v as f32 as f64;
        let (mut y0, mut y1) = (1.0f64, 2.0f64);
        let (mut x0, mut x1) = (0.0, 0.0);
        for _ in 0..2 {
            x0 = round((4.0 * y0 + 2.0 * y1) / (y0 * y0 + y1 * y1 + l(2.0)));
            x1 = round(3.0 * y0 / (y0 * y0 + l(1.0)));
            y0 = round((4.0 * x0 + 3.0 * x1) / (x0 * x0 + x1 * x1 + l(2.0)));
            y1 = round(2.0 * x0 / (x0 * x0 + l(1.0)));
        }
        (vec![x0, x1], vec![y0, y1])
    }

    fn tiny_ratings() -> RatingsCsr {
        RatingsCsr::from_triples(2, 2, &[0, 0, 1], &[0, 1, 0], &[4.0, 2.0, 3.0]).unwrap()
    }

    #[test]
    fn rank_one_updates_match_hand_solution_with_count_scaling() {
        let p = params(1, 0.1, LambdaScaling::Count, 2);
        let model = fit_from(
            &tiny_ratings(),
            None,
            &p,
            vec![0.0, 0.0],
            vec![1.0, 2.0],
            &mut |_| {},
        )
        .unwrap();
        let (x, y) = hand_solved(LambdaScaling::Count);
        // First user update by hand: (4*1 + 2*2) / (1 + 4 + 0.2) = 8 / 5.2.
        assert!((8.0f64 / 5.2 - 1.538_461_5).abs() < 1e-6);
        for (got, want) in model
            .users
            .values
            .iter()
            .zip(&x)
            .chain(model.videos.values.iter().zip(&y))
        {
            assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn rank_one_updates_match_hand_solution_without_scaling() {
        let p = params(1, 0.1, LambdaScaling::None, 2);
        let model = fit_from(
            &tiny_ratings(),
            None,
            &p,
            vec![0.0, 0.0],
            vec![1.0, 2.0],
            &mut |_| {},
        )
        .unwrap();
        let (x, y) = hand_solved(LambdaScaling::None);
        for (got, want) in model
            .users
            .values
            .iter()
            .zip(&x)
            .chain(model.videos.values.iter().zip(&y))
        {
            assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        }
        // The two conventions really differ on this data.
        let (x_count, _) = hand_solved(LambdaScaling::Count);
        assert!((x[0] - x_count[0]).abs() > 1e-3);
    }

    #[test]
    fn first_iteration_matches_literal_numbers() {
        // One iteration from y = (1, 2), by hand:
        //   count: x0 = 8 / (5 + 0.2) = 1.538461538   x1 = 3 / (1 + 0.1) = 2.727272727
        //          y0 = (4 x0 + 3 x1) / (x0^2 + x1^2 + 0.2) = 1.432867121
        //          y1 = 2 x0 / (x0^2 + 0.1) = 1.247301491
        //   none:  x0 = 8 / (5 + 0.1) = 1.568627451   x1 = 2.727272727
        //          y0 = (4 x0 + 3 x1) / (x0^2 + x1^2 + 0.1) = 1.445833959
        //          y1 = 2 x0 / (x0^2 + 0.1) = 1.225206810
        for (scaling, expected) in [
            (
                LambdaScaling::Count,
                [1.538_461_538, 2.727_272_727, 1.432_867_121, 1.247_301_491],
            ),
            (
                LambdaScaling::None,
                [1.568_627_451, 2.727_272_727, 1.445_833_959, 1.225_206_810],
            ),
        ] {
            let p = params(1, 0.1, scaling, 1);
            let model = fit_from(
                &tiny_ratings(),
                None,
                &p,
                vec![0.0, 0.0],
                vec![1.0, 2.0],
                &mut |_| {},
            )
            .unwrap();
            let got = [
                model.users.values[0],
                model.users.values[1],
                model.videos.values[0],
                model.videos.values[1],
            ];
            for (g, e) in got.iter().zip(expected) {
                assert!(
                    (*g as f64 - e).abs() < 1e-6,
                    "{scaling:?}: {got:?} vs {expected:?}"
                );
            }
        }
    }

    /// The tiny ratings with user 0 rating video 0 a second time: rows (0,0,4), (0,1,2),
    /// (1,0,3), (0,0,2); the pair (0, 0) has two rows of mean 3.
    const REPEATED: ([u32; 4], [u32; 4], [f32; 4]) =
        ([0, 0, 1, 0], [0, 1, 0, 0], [4.0, 2.0, 3.0, 2.0]);

    /// Fits the REPEATED rows under one rule from y = (1, 2) (x is solved first).
    fn fit_repeated(rule: RepeatedRatings, p: &FitParams) -> AlsModel {
        let (rows, cols, ratings) = REPEATED;
        let (users, videos) = (vec![0.0, 0.0], vec![1.0, 2.0]);
        match rule {
            RepeatedRatings::Mean => {
                let m = RatingsCsr::from_triples(2, 2, &rows, &cols, &ratings).unwrap();
                fit_from(&m, None, p, users, videos, &mut |_| {})
            }
            RepeatedRatings::Each => {
                let cells = ratings.map(RatingRows::one);
                let m = RatingRowsCsr::from_triples(2, 2, &rows, &cols, &cells).unwrap();
                fit_from(&m, None, p, users, videos, &mut |_| {})
            }
        }
        .unwrap()
    }

    /// Rank 1, two iterations from y = (1, 2), by the scalar updates
    ///   x_u = sum_i h_ui y_i / (sum_i g_ui y_i^2 + l_u),  y_i = sum_u h_ui x_u / (...)
    /// where every cell has g = 1, h = r except the repeated (0, 0): g = 1, h = 3 (the
    /// mean) and one observation in n under "mean"; g = 2, h = 4 + 2 = 6 and two
    /// observations under "each". So n for user 0 and video 0 is 2 or 3, and 1 for the
    /// others; l = lambda n (count) or lambda (none). Rounded to f32 as the fit stores.
    fn hand_solved_repeated(rule: RepeatedRatings, scaling: LambdaScaling) -> [f64; 4] {
        let (g, h, n) = match rule {
            RepeatedRatings::Mean => (1.0, 3.0, 2.0),
            RepeatedRatings::Each => (2.0, 6.0, 3.0),
        };
        let l = |count: f64| match scaling {
            LambdaScaling::Count => 0.1 * count,
            LambdaScaling::None => 0.1,
        };
        let round = |v: f64| v as f32 as f64;
        let (mut y0, mut y1) = (1.0f64, 2.0f64);
        let (mut x0, mut x1) = (0.0, 0.0);
        for _ in 0..2 {
            x0 = round((h * y0 + 2.0 * y1) / (g * y0 * y0 + y1 * y1 + l(n)));
            x1 = round(3.0 * y0 / (y0 * y0 + l(1.0)));
            y0 = round((h * x0 + 3.0 * x1) / (g * x0 * x0 + x1 * x1 + l(n)));
            y1 = round(2.0 * x0 / (x0 * x0 + l(1.0)));
        }
        [x0, x1, y0, y1]
    }

    #[test]
    fn repeated_pair_matches_hand_solution_under_both_rules_and_scalings() {
        for rule in [RepeatedRatings::Mean, RepeatedRatings::Each] {
            for scaling in [LambdaScaling::Count, LambdaScaling::None] {
                let model = fit_repeated(rule, &params(1, 0.1, scaling, 2));
                let got = [
                    model.users.values[0],
                    model.users.values[1],
                    model.videos.values[0],
                    model.videos.values[1],
                ];
                let want = hand_solved_repeated(rule, scaling);
                for (g, w) in got.iter().zip(want) {
                    assert!(
                        (*g as f64 - w).abs() < 1e-6,
                        "{rule:?} {scaling:?}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn repeated_pair_first_user_update_matches_literal_numbers() {
        // From y = (1, 2), user 0's first update (h y0 + 2 y1) / (g y0^2 + y1^2 + l):
        //   mean, count: (3 + 4) / (1 + 4 + 0.2) = 1.346153846
        //   each, count: (6 + 4) / (2 + 4 + 0.3) = 1.587301587
        //   mean, none:  7 / (5 + 0.1) = 1.372549020
        //   each, none:  10 / (6 + 0.1) = 1.639344262
        // and user 1: 3 / (1 + 0.1) = 2.727272727 in every case.
        for (rule, scaling, x0) in [
            (RepeatedRatings::Mean, LambdaScaling::Count, 1.346_153_846),
            (RepeatedRatings::Each, LambdaScaling::Count, 1.587_301_587),
            (RepeatedRatings::Mean, LambdaScaling::None, 1.372_549_020),
            (RepeatedRatings::Each, LambdaScaling::None, 1.639_344_262),
        ] {
            let model = fit_repeated(rule, &params(1, 0.1, scaling, 1));
            let users = &model.users.values;
            assert!(
                (users[0] as f64 - x0).abs() < 1e-6,
                "{rule:?} {scaling:?}: {users:?}"
            );
            assert!((users[1] as f64 - 2.727_272_727).abs() < 1e-6, "{users:?}");
        }
    }

    /// Spark MLlib's explicit ALS, written the plain way: every rating row adds y y^T and
    /// r y to its user's (or video's) normal equations, with no merging, and count-scaled
    /// lambda counts rows; each system is solved densely and stored as f32. Entities
    /// without rows keep a zero factor, as `fit_from` gives them.
    fn row_by_row_reference(
        triples: &[(u32, u32, f32)],
        (n_users, n_videos): (usize, usize),
        p: &FitParams,
        mut users: Vec<f32>,
        mut videos: Vec<f32>,
    ) -> (Vec<f32>, Vec<f32>) {
        use nalgebra::{DMatrix, DVector};
        let k = p.factors;
        let half_sweep = |solved: &mut Vec<f32>, n: usize, fixed: &[f32], by_user: bool| {
            for e in 0..n {
                let mut a = DMatrix::<f64>::zeros(k, k);
                let mut b = DVector::<f64>::zeros(k);
                let mut n_rows = 0;
                for &(u, i, r) in triples {
                    let (me, other) = if by_user { (u, i) } else { (i, u) };
                    if me as usize != e {
                        continue;
                    }
                    n_rows += 1;
                    let y = &fixed[other as usize * k..(other as usize + 1) * k];
                    for row in 0..k {
                        b[row] += r as f64 * y[row] as f64;
                        for col in 0..k {
                            a[(row, col)] += y[row] as f64 * y[col] as f64;
                        }
                    }
                }
                let target = &mut solved[e * k..(e + 1) * k];
                if n_rows == 0 {
                    target.fill(0.0);
                    continue;
                }
                let lambda = match p.lambda_scaling {
                    LambdaScaling::Count => p.regularization * n_rows as f64,
                    LambdaScaling::None => p.regularization,
                };
                for j in 0..k {
                    a[(j, j)] += lambda;
                }
                let x = a.lu().solve(&b).unwrap();
                for (t, v) in target.iter_mut().zip(x.iter()) {
                    *t = *v as f32;
                }
            }
        };
        for _ in 0..p.iterations {
            half_sweep(&mut users, n_users, &videos, true);
            half_sweep(&mut videos, n_videos, &users, false);
        }
        (users, videos)
    }

    /// 600 rating rows over 30 users x 20 videos drawn from 150 pairs, so most pairs
    /// repeat (some with different ratings): "each" must give the factors of the
    /// row-by-row reference, "mean" must not.
    #[test]
    fn each_rule_equals_adding_every_row_separately() {
        use rand::Rng;
        let (n_users, n_videos) = (30usize, 20usize);
        let mut rng = common::rng::rng_for(7, "repeated-rows", 0);
        let pairs: Vec<(u32, u32)> = (0..150)
            .map(|_| {
                (
                    rng.random_range(0..n_users as u32),
                    rng.random_range(0..n_videos as u32),
                )
            })
            .collect();
        let triples: Vec<(u32, u32, f32)> = (0..600)
            .map(|_| {
                let (u, i) = pairs[rng.random_range(0..pairs.len())];
                (u, i, rng.random_range(1..=5) as f32)
            })
            .collect();
        let rows: Vec<u32> = triples.iter().map(|t| t.0).collect();
        let cols: Vec<u32> = triples.iter().map(|t| t.1).collect();
        let cells: Vec<RatingRows> = triples.iter().map(|t| RatingRows::one(t.2)).collect();
        let each = RatingRowsCsr::from_triples(n_users, n_videos, &rows, &cols, &cells).unwrap();
        assert!(each.nnz() < 150, "most pairs repeat: {} cells", each.nnz());
        let ratings: Vec<f32> = triples.iter().map(|t| t.2).collect();
        let mean = RatingsCsr::from_triples(n_users, n_videos, &rows, &cols, &ratings).unwrap();

        for scaling in [LambdaScaling::Count, LambdaScaling::None] {
            let p = FitParams {
                init_std: 0.5,
                ..params(3, 0.1, scaling, 4)
            };
            let (users, videos) = initial_factors(n_users, n_videos, &p);
            let (want_users, want_videos) = row_by_row_reference(
                &triples,
                (n_users, n_videos),
                &p,
                users.clone(),
                videos.clone(),
            );
            let fitted =
                fit_from(&each, None, &p, users.clone(), videos.clone(), &mut |_| {}).unwrap();
            let largest_gap = |got: &[f32], want: &[f32]| {
                got.iter()
                    .zip(want)
                    .map(|(g, w)| (*g as f64 - *w as f64).abs())
                    .fold(0.0, f64::max)
            };
            let gap = largest_gap(&fitted.users.values, &want_users)
                .max(largest_gap(&fitted.videos.values, &want_videos));
            assert!(
                gap < 1e-5,
                "{scaling:?}: each differs from row by row by {gap}"
            );

            let merged = fit_from(&mean, None, &p, users, videos, &mut |_| {}).unwrap();
            let gap = largest_gap(&merged.users.values, &want_users);
            assert!(gap > 1e-2, "{scaling:?}: mean should differ, gap {gap}");
        }
    }

    #[test]
    fn each_and_mean_rules_agree_bit_for_bit_without_repeated_pairs() {
        let (rows, cols, ratings) = ([0, 0, 1], [0, 1, 0], [4.0f32, 2.0, 3.0]);
        let cells = ratings.map(RatingRows::one);
        let each = RatingRowsCsr::from_triples(2, 2, &rows, &cols, &cells).unwrap();
        let p = params(4, 0.1, LambdaScaling::Count, 3);
        let a = fit_explicit(&tiny_ratings(), None, &p, &mut |_| {}).unwrap();
        let b = fit_explicit(&each, None, &p, &mut |_| {}).unwrap();
        let bits = |f: &Factors| f.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.users), bits(&b.users));
        assert_eq!(bits(&a.videos), bits(&b.videos));
        let train = |m: &AlsModel| m.history.iter().map(|s| s.train_metric).collect::<Vec<_>>();
        assert_eq!(train(&a), train(&b));
    }

    /// A planted rank-3 matrix observed at 40 % of cells with Gaussian noise of sd 0.1:
    /// ALS at the true rank must fit the training cells and predict held-out cells to about
    /// the noise level (an unfitted model would be off by the signal's sd, about 1).
    #[test]
    fn planted_low_rank_matrix_is_recovered_to_noise_level() {
        use rand::Rng;
        let (n_users, n_videos, rank, noise) = (300usize, 200usize, 3usize, 0.1f64);
        let mut rng = common::rng::rng_for(11, "planted", 0);
        let mut normal = move || {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            (
                (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos(),
                rng.random::<f64>(),
            )
        };
        let user_true: Vec<f64> = (0..n_users * rank)
            .map(|_| normal().0 / (rank as f64).sqrt().sqrt())
            .collect();
        let video_true: Vec<f64> = (0..n_videos * rank)
            .map(|_| normal().0 / (rank as f64).sqrt().sqrt())
            .collect();
        let (mut rows, mut cols, mut values) = (vec![], vec![], vec![]);
        let mut holdout = Holdout::default();
        for u in 0..n_users {
            for i in 0..n_videos {
                let truth: f64 = (0..rank)
                    .map(|f| user_true[u * rank + f] * video_true[i * rank + f])
                    .sum();
                let (e, coin) = normal();
                let observed = (truth + noise * e) as f32;
                if coin < 0.4 {
                    rows.push(u as u32);
                    cols.push(i as u32);
                    values.push(observed);
                } else if coin < 0.5 {
                    holdout.users.push(u as u32);
                    holdout.videos.push(i as u32);
                    holdout.values.push(truth as f32);
                }
            }
        }
        let train = RatingsCsr::from_triples(n_users, n_videos, &rows, &cols, &values).unwrap();
        let p = params(rank, 0.01, LambdaScaling::Count, 15);
        let model = fit_explicit(&train, Some(&holdout), &p, &mut |_| {}).unwrap();
        let last = model.history.last().unwrap();
        // Train RMSE sits just under the noise (the fit absorbs a little of it)...
        assert!(
            last.train_metric > 0.07 && last.train_metric < 0.11,
            "{last:?}"
        );
        // ...and the error against the noiseless truth on unseen cells is well below it.
        assert!(last.valid_metric.unwrap() < 0.08, "{last:?}");
        assert_eq!(last.n_valid_scored, holdout.len());
    }

    fn diagonal_clicks() -> ImplicitCsr {
        let cell = Implicit {
            preference: 1.0,
            confidence: 11.0,
        };
        Csr::from_triples(3, 3, &[0, 1, 2], &[0, 1, 2], &[cell; 3]).unwrap()
    }

    #[test]
    fn implicit_diagonal_clicks_score_one_on_and_zero_off_diagonal() {
        let p = FitParams {
            factors: 8,
            iterations: 30,
            ..FitParams::defaults(5)
        };
        let model = fit_implicit(&diagonal_clicks(), None, &p, &mut |_| {}).unwrap();
        for u in 0..3 {
            let x = model.users.row(u).unwrap();
            for i in 0..3 {
                let y = model.videos.row(i).unwrap();
                let s: f64 = x.iter().zip(y).map(|(a, b)| *a as f64 * *b as f64).sum();
                let want = if u == i { 1.0 } else { 0.0 };
                assert!((s - want).abs() < 0.05, "score({u},{i}) = {s}");
            }
        }
        assert!(model
            .users
            .values
            .iter()
            .chain(&model.videos.values)
            .all(|v| v.is_finite()));
    }

    #[test]
    fn implicit_without_regularization_reports_the_first_singular_user() {
        let p = FitParams {
            factors: 8,
            regularization: 0.0,
            ..FitParams::defaults(5)
        };
        let err = fit_implicit(&diagonal_clicks(), None, &p, &mut |_| {}).unwrap_err();
        assert!(
            matches!(
                err,
                FitError::Singular {
                    side: Side::User,
                    row: 0,
                    n_obs: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("set regularization > 0"));
    }

    #[test]
    fn users_without_positive_cells_get_no_factor_in_implicit_mode() {
        let pos = Implicit {
            preference: 1.0,
            confidence: 2.0,
        };
        let neg = Implicit {
            preference: 0.0,
            confidence: 2.0,
        };
        let train = Csr::from_triples(3, 2, &[0, 1, 0], &[0, 1, 1], &[pos, neg, neg]).unwrap();
        let p = FitParams {
            factors: 2,
            iterations: 2,
            ..FitParams::defaults(1)
        };
        let model = fit_implicit(&train, None, &p, &mut |_| {}).unwrap();
        assert_eq!(model.users.present, vec![true, false, false]);
        assert_eq!(model.videos.present, vec![true, false]);
        assert!(model.users.row(1).is_none());
        assert!(model.users.values[2..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let cell = |u: u32, i: u32| Implicit {
            preference: 1.0,
            confidence: 1.0 + ((u * 7 + i) % 5) as f32,
        };
        let (mut rows, mut cols, mut cells) = (vec![], vec![], vec![]);
        for u in 0..400u32 {
            for i in (0..150u32).filter(|i| (u * 31 + i * 17) % 7 < 2) {
                rows.push(u);
                cols.push(i);
                cells.push(cell(u, i));
            }
        }
        let train = Csr::from_triples(400, 150, &rows, &cols, &cells).unwrap();
        let holdout = Holdout {
            users: vec![1, 2, 3],
            videos: vec![4, 5, 6],
            values: vec![1.0; 3],
        };
        // k = 16 runs the AVX2 kernels where the CPU has them, k = 6 the portable ones.
        for (solver, factors) in [(Solver::Cholesky, 16), (Solver::Cg, 16), (Solver::Cg, 6)] {
            let p = FitParams {
                factors,
                iterations: 3,
                solver,
                ..FitParams::defaults(9)
            };
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| fit_implicit(&train, Some(&holdout), &p, &mut |_| {}).unwrap())
            };
            let (one, two) = (run(1), run(2));
            let bits = |f: &Factors| f.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&one.users), bits(&two.users));
            assert_eq!(bits(&one.videos), bits(&two.videos));
            assert_eq!(
                one.history.last().unwrap().train_metric,
                two.history.last().unwrap().train_metric
            );
        }
    }

    #[test]
    fn early_stopping_ends_the_loop_when_improvement_is_small() {
        let p = FitParams {
            factors: 1,
            iterations: 50,
            early_stop_tolerance: 1e-3,
            ..FitParams::defaults(1)
        };
        let model = fit_explicit(&tiny_ratings(), None, &p, &mut |_| {}).unwrap();
        assert!(model.stopped_early);
        assert!(model.history.len() < 50);
    }

    #[test]
    fn finite_check_names_the_matrix_and_first_bad_row() {
        let values = [0.5, 1.0, f32::INFINITY, 0.0, f32::NAN, 1.0];
        let err = check_finite(&values, 2, Side::Video, 4).unwrap_err();
        assert_eq!(
            err,
            FitError::NonFinite {
                side: Side::Video,
                row: 1,
                iteration: 4
            }
        );
        assert!(err
            .to_string()
            .contains("non-finite value in the video factors at row 1"));
        assert!(check_finite(&[0.0, 1.0], 2, Side::User, 1).is_ok());
    }

    #[test]
    fn same_seed_gives_the_same_initial_factors() {
        let p = FitParams::defaults(4);
        assert_eq!(initial_factors(3, 2, &p), initial_factors(3, 2, &p));
        let other = FitParams::defaults(5);
        assert_ne!(initial_factors(3, 2, &p), initial_factors(3, 2, &other));
        let (users, _) = initial_factors(2000, 0, &FitParams { factors: 10, ..p });
        let sd =
            (users.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / users.len() as f64).sqrt();
        assert!((sd - 0.1).abs() < 0.005, "{sd}");
    }
}
