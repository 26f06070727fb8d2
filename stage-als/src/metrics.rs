//! Per-iteration quality measures: train and validation RMSE (explicit mode), the weighted
//! training loss and a sampled ranking loss on validation positives (implicit mode).
//!
//! Sums run over fixed row chunks whose partial sums are added in order, so a metric does
//! not depend on the thread count.

use rand::Rng;
use rayon::prelude::*;

use crate::matrix::{Cell, Csr, ExplicitCell, Implicit};
use crate::solve::Gram;

/// Rows per partial sum.
const METRIC_CHUNK_ROWS: usize = 1024;

/// At most this many validation pairs enter the implicit ranking loss (evenly spaced).
pub const MAX_RANK_PAIRS: usize = 20_000;

/// Sampled negative videos per validation pair in the implicit ranking loss.
pub const RANK_NEGATIVES: usize = 50;

/// Held-out observations: parallel lists of user, video and value (the explicit target, or
/// 1 for an implicit positive).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Holdout {
    pub users: Vec<u32>,
    pub videos: Vec<u32>,
    pub values: Vec<f32>,
}

impl Holdout {
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Factors of the current iteration, row-major, with their presence masks.
pub struct View<'a> {
    pub k: usize,
    pub users: &'a [f32],
    pub videos: &'a [f32],
    pub users_present: &'a [bool],
    pub videos_present: &'a [bool],
}

impl View<'_> {
    fn user(&self, u: usize) -> &[f32] {
        &self.users[u * self.k..(u + 1) * self.k]
    }

    fn video(&self, i: usize) -> &[f32] {
        &self.videos[i * self.k..(i + 1) * self.k]
    }

    fn score(&self, u: usize, i: usize) -> f64 {
        dot_f32(self.user(u), self.video(i))
    }
}

/// Dot product of two f32 vectors accumulated in f64 (the AVX2 kernel where the CPU has
/// it and the length is a multiple of 4: it was a tenth of an implicit fit's time as
/// plain SSE2 code in the training loss).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if a.len() == b.len() && a.len() % 4 == 0 && crate::kernels::fma_available() {
        // SAFETY: AVX2 and FMA are available; both slices have the checked length.
        return unsafe { crate::avx2::dot_widened(a, b, a.len()) };
    }

    let mut acc = [0.0f64; 4];
    let mut a_chunks = a.chunks_exact(4);
    let mut b_chunks = b.chunks_exact(4);
    for (x, y) in (&mut a_chunks).zip(&mut b_chunks) {
        for lane in 0..4 {
            acc[lane] += x[lane] as f64 * y[lane] as f64;
        }
    }
    let tail: f64 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| *x as f64 * *y as f64)
        .sum();
    (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail
}

/// A validation measure and how many held-out items it covered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub value: f64,
    pub n_scored: usize,
}

/// The loss-specific measures of a cell type.
pub trait Loss: Cell {
    /// Name of the training measure in logs and the summary.
    const TRAIN_METRIC: &'static str;
    /// Name of the validation measure.
    const VALID_METRIC: &'static str;
    /// True when the loss covers every cell (implicit mode): sweeps then need the Gram
    /// matrix of the fixed side, and cells of entities without a factor are dropped.
    const WHOLE_MATRIX: bool;

    /// Selects and prepares the held-out rows the validation measure scores.
    fn prepare_valid(
        holdout: &Holdout,
        users_present: &[bool],
        videos_present: &[bool],
        seed: u64,
    ) -> ValidSet;

    /// The training measure (lower is better). `grams` are X^T X and Y^T Y of the current
    /// user and video factors (implicit mode needs them).
    fn train_metric(train: &Csr<Self>, view: &View, grams: Option<(&Gram, &Gram)>) -> f64;

    /// The validation measure (lower is better); `None` when nothing could be scored.
    fn valid_metric(valid: &ValidSet, view: &View) -> Option<Measured>;
}

/// Held-out pairs ready for scoring; `negatives` holds `RANK_NEGATIVES` sampled videos per
/// pair in implicit mode and is empty in explicit mode.
#[derive(Debug, Clone, Default)]
pub struct ValidSet {
    pub holdout: Holdout,
    pub negatives: Vec<u32>,
}

impl ValidSet {
    /// Explicit mode: every held-out row is scored.
    pub fn for_rmse(holdout: &Holdout) -> ValidSet {
        ValidSet {
            holdout: holdout.clone(),
            negatives: Vec::new(),
        }
    }

    /// Implicit mode: up to `MAX_RANK_PAIRS` positive pairs whose user and video have
    /// factors, evenly spaced, each with `RANK_NEGATIVES` videos drawn uniformly from the
    /// videos with factors (other than the positive) by a seeded generator.
    pub fn for_ranking(
        holdout: &Holdout,
        users_present: &[bool],
        videos_present: &[bool],
        rng: &mut impl Rng,
    ) -> ValidSet {
        let candidates: Vec<usize> = (0..holdout.len())
            .filter(|&row| {
                holdout.values[row] > 0.0
                    && users_present[holdout.users[row] as usize]
                    && videos_present[holdout.videos[row] as usize]
            })
            .collect();
        let pool: Vec<u32> = (0..videos_present.len() as u32)
            .filter(|&i| videos_present[i as usize])
            .collect();
        if candidates.is_empty() || pool.len() < 2 {
            return ValidSet::default();
        }
        let stride = candidates.len().div_ceil(MAX_RANK_PAIRS);
        let mut chosen = Holdout::default();
        let mut negatives = Vec::new();
        for &row in candidates.iter().step_by(stride) {
            let positive = holdout.videos[row];
            chosen.users.push(holdout.users[row]);
            chosen.videos.push(positive);
            chosen.values.push(holdout.values[row]);
            for _ in 0..RANK_NEGATIVES {
                let negative = loop {
                    let draw = pool[rng.random_range(0..pool.len())];
                    if draw != positive {
                        break draw;
                    }
                };
                negatives.push(negative);
            }
        }
        ValidSet {
            holdout: chosen,
            negatives,
        }
    }
}

/// Sums `f(row)` over `0..n` in fixed chunks, adding the partial sums in order.
fn chunked_sum(n: usize, f: impl Fn(usize) -> (f64, usize) + Sync) -> (f64, usize) {
    let partials: Vec<(f64, usize)> = (0..n.div_ceil(METRIC_CHUNK_ROWS))
        .into_par_iter()
        .map(|chunk| {
            let start = chunk * METRIC_CHUNK_ROWS;
            let end = (start + METRIC_CHUNK_ROWS).min(n);
            (start..end).fold((0.0, 0), |(sum, count), row| {
                let (s, c) = f(row);
                (sum + s, count + c)
            })
        })
        .collect();
    partials
        .iter()
        .fold((0.0, 0), |(sum, count), (s, c)| (sum + s, count + c))
}

/// Explicit ratings, whichever rule merged repeated rows (`f32`: one observation of their
/// mean; `RatingRows`: every row).
impl<C: ExplicitCell> Loss for C {
    const TRAIN_METRIC: &'static str = "train_rmse";
    const VALID_METRIC: &'static str = "valid_rmse";
    const WHOLE_MATRIX: bool = false;

    fn prepare_valid(holdout: &Holdout, _: &[bool], _: &[bool], _: u64) -> ValidSet {
        ValidSet::for_rmse(holdout)
    }

    /// Root mean squared error over the training cells against their target, each cell
    /// weighted by the rows it stands for. With every row counted this is the loss the fit
    /// minimises, without the spread of a pair's repeated ratings around their mean (a
    /// constant the cell does not keep).
    fn train_metric(train: &Csr<C>, view: &View, _grams: Option<(&Gram, &Gram)>) -> f64 {
        let (sum, count) = chunked_sum(train.n_rows, |u| {
            let (cols, cells) = train.row(u);
            let sum = cols
                .iter()
                .zip(cells)
                .map(|(&i, &c)| {
                    c.row_count() as f64 * (c.target() - view.score(u, i as usize)).powi(2)
                })
                .sum::<f64>();
            (sum, C::observations(cells))
        });
        if count == 0 {
            0.0
        } else {
            (sum / count as f64).sqrt()
        }
    }

    /// Root mean squared error over held-out rows whose user and video both have factors.
    fn valid_metric(valid: &ValidSet, view: &View) -> Option<Measured> {
        let h = &valid.holdout;
        let (sum, count) = chunked_sum(h.len(), |row| {
            let (u, i) = (h.users[row] as usize, h.videos[row] as usize);
            if !(view.users_present[u] && view.videos_present[i]) {
                return (0.0, 0);
            }
            ((h.values[row] as f64 - view.score(u, i)).powi(2), 1)
        });
        (count > 0).then(|| Measured {
            value: (sum / count as f64).sqrt(),
            n_scored: count,
        })
    }
}

impl Loss for Implicit {
    const TRAIN_METRIC: &'static str = "train_weighted_mse";
    const VALID_METRIC: &'static str = "valid_rank_loss";
    const WHOLE_MATRIX: bool = true;

    /// Negatives come from `rng_for(seed, "als-valid-negatives", 0)`.
    fn prepare_valid(
        holdout: &Holdout,
        users_present: &[bool],
        videos_present: &[bool],
        seed: u64,
    ) -> ValidSet {
        let mut rng = common::rng::rng_for(seed, "als-valid-negatives", 0);
        ValidSet::for_ranking(holdout, users_present, videos_present, &mut rng)
    }

    /// Hu/Koren/Volinsky's data term sum_{u,i} c_ui (p_ui - x_u·y_i)^2 over every cell of
    /// users and videos with factors, divided by the sum of the confidences. The unobserved
    /// cells (c = 1, p = 0) contribute sum_u x_u^T (Y^T Y) x_u = <X^T X, Y^T Y> (the
    /// Frobenius product of the two Gram matrices, O(k^2) instead of O(n k^2)) minus the
    /// observed cells' share.
    fn train_metric(train: &Csr<Implicit>, view: &View, grams: Option<(&Gram, &Gram)>) -> f64 {
        let (user_gram, video_gram) = grams.expect("implicit metrics need both Gram matrices");
        let every_cell: f64 = user_gram
            .full
            .iter()
            .zip(&video_gram.full)
            .map(|(a, b)| a * b)
            .sum();
        let (observed, _) = chunked_sum(train.n_rows, |u| {
            if !view.users_present[u] {
                return (0.0, 0);
            }
            let mut loss = 0.0;
            let (cols, cells) = train.row(u);
            for (&i, cell) in cols.iter().zip(cells) {
                let s = view.score(u, i as usize);
                let (c, p) = (cell.confidence as f64, cell.preference as f64);
                loss += c * (p - s).powi(2) - s * s;
            }
            (loss, 0)
        });
        let loss = every_cell + observed;
        let n_users = view.users_present.iter().filter(|&&p| p).count() as f64;
        let n_videos = view.videos_present.iter().filter(|&&p| p).count() as f64;
        let extra: f64 = train.cells.iter().map(|c| c.confidence as f64 - 1.0).sum();
        let total_confidence = n_users * n_videos + extra;
        if total_confidence > 0.0 {
            loss / total_confidence
        } else {
            0.0
        }
    }

    /// One minus the sampled AUC: the share of (positive, sampled video) comparisons in
    /// which the sampled video scores at least as high (ties count one half).
    fn valid_metric(valid: &ValidSet, view: &View) -> Option<Measured> {
        let h = &valid.holdout;
        if h.is_empty() {
            return None;
        }
        let (misordered, _) = chunked_sum(h.len(), |row| {
            let u = h.users[row] as usize;
            let positive = view.score(u, h.videos[row] as usize);
            let negatives = &valid.negatives[row * RANK_NEGATIVES..(row + 1) * RANK_NEGATIVES];
            let sum = negatives
                .iter()
                .map(|&j| {
                    let s = view.score(u, j as usize);
                    if s > positive {
                        1.0
                    } else if s == positive {
                        0.5
                    } else {
                        0.0
                    }
                })
                .sum::<f64>();
            (sum, 0)
        });
        Some(Measured {
            value: misordered / (h.len() * RANK_NEGATIVES) as f64,
            n_scored: h.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{RatingRows, RatingsCsr};
    use crate::solve::gram;

    #[test]
    fn explicit_rmse_over_cells_and_holdout() {
        let train =
            RatingsCsr::from_triples(2, 2, &[0, 0, 1], &[0, 1, 1], &[1.0, 2.0, 4.0]).unwrap();
        let users = [1.0f32, 2.0];
        let videos = [1.0f32, 1.0];
        let view = View {
            k: 1,
            users: &users,
            videos: &videos,
            users_present: &[true, true],
            videos_present: &[true, true],
        };
        // Errors 0, 1, 2 -> sqrt(5 / 3).
        assert!((f32::train_metric(&train, &view, None) - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        // Held out: (1, 0) scores 2 against 5, (0, 1) scores 1 against 1 -> sqrt(9 / 2).
        let holdout = Holdout {
            users: vec![1, 0],
            videos: vec![0, 1],
            values: vec![5.0, 1.0],
        };
        let measured = f32::valid_metric(&ValidSet::for_rmse(&holdout), &view).unwrap();
        assert!((measured.value - 4.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(measured.n_scored, 2);
    }

    #[test]
    fn each_rule_train_rmse_weighs_a_cell_by_its_rows() {
        // User 0 rated video 0 twice (4 and 2, mean 3), video 1 once (2); user 1 rated
        // video 0 once (3). Scores x_u y_i: (0,0) 1.5, (0,1) 1, (1,0) 3.
        let (rows, cols) = ([0, 0, 0, 1], [0, 0, 1, 0]);
        let cells = [4.0, 2.0, 2.0, 3.0].map(RatingRows::one);
        let each = Csr::from_triples(2, 2, &rows, &cols, &cells).unwrap();
        let mean = RatingsCsr::from_triples(2, 2, &rows, &cols, &[4.0, 2.0, 2.0, 3.0]).unwrap();
        let (users, videos) = ([1.0f32, 2.0], [1.5f32, 1.0]);
        let view = View {
            k: 1,
            users: &users,
            videos: &videos,
            users_present: &[true, true],
            videos_present: &[true, true],
        };
        // Each: (2 * 1.5^2 + 1^2 + 0) / 4 rows; mean: (1.5^2 + 1^2 + 0) / 3 cells.
        let got = RatingRows::train_metric(&each, &view, None);
        assert!((got - (5.5f64 / 4.0).sqrt()).abs() < 1e-12, "{got}");
        let got = f32::train_metric(&mean, &view, None);
        assert!((got - (3.25f64 / 3.0).sqrt()).abs() < 1e-12, "{got}");
    }

    #[test]
    fn implicit_weighted_loss_counts_every_cell() {
        // 2 users x 2 videos, k = 1, one observed cell (0, 0) with p = 1, c = 3.
        let cell = Implicit {
            preference: 1.0,
            confidence: 3.0,
        };
        let train = Csr::from_triples(2, 2, &[0], &[0], &[cell]).unwrap();
        let users = [0.5f32, 1.0];
        let videos = [2.0f32, -1.0];
        let view = View {
            k: 1,
            users: &users,
            videos: &videos,
            users_present: &[true, true],
            videos_present: &[true, true],
        };
        let (gu, gv) = (gram(&users, 1), gram(&videos, 1));
        // Scores: (0,0)=1 (0,1)=-0.5 (1,0)=2 (1,1)=-1.
        // Loss: 3*(1-1)^2 + 0.25 + 4 + 1 = 5.25; confidences 4 cells + 2 extra = 6.
        let loss = Implicit::train_metric(&train, &view, Some((&gu, &gv)));
        assert!((loss - 5.25 / 6.0).abs() < 1e-12, "{loss}");
    }

    #[test]
    fn ranking_loss_is_zero_when_positives_outscore_every_sample() {
        let users = [1.0f32];
        let videos = [5.0f32, 1.0, 2.0, 0.5];
        let view = View {
            k: 1,
            users: &users,
            videos: &videos,
            users_present: &[true],
            videos_present: &[true; 4],
        };
        let holdout = Holdout {
            users: vec![0],
            videos: vec![0],
            values: vec![1.0],
        };
        let mut rng = common::rng::rng_for(1, "test", 0);
        let valid = ValidSet::for_ranking(&holdout, &[true], &[true; 4], &mut rng);
        assert_eq!(valid.negatives.len(), RANK_NEGATIVES);
        assert!(valid.negatives.iter().all(|&j| j != 0));
        assert_eq!(Implicit::valid_metric(&valid, &view).unwrap().value, 0.0);

        let worst = Holdout {
            users: vec![0],
            videos: vec![3],
            values: vec![1.0],
        };
        let valid = ValidSet::for_ranking(&worst, &[true], &[true; 4], &mut rng);
        assert_eq!(Implicit::valid_metric(&valid, &view).unwrap().value, 1.0);
    }
}
