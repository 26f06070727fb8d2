//! Step 3c: learned objective weights w_k from a next-week retention model, and
//! `weights.parquet`.
//!
//! Reads the labelled user-weeks; writes `weights.parquet` (one row per objective:
//! `objective` Utf8, `manual_weight` Float64, `learned_weight` Float64, `coefficient`
//! Float64, `auc` Float64, `n_user_weeks` UInt64, `retention_rate` Float64, `fallback`
//! Boolean, `fallback_reason` Utf8). The features are standardised, so |beta_k| compares
//! how strongly each objective's mean routing probability moves retention; w_k =
//! |beta_k| / mean_j |beta_j| keeps the mean learned weight at 1. The sign of beta is
//! dropped on purpose: an objective's direction is the product decision carried by its
//! manual weight a_k (a disliked video lowers the score however retention correlates).

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use common::rng::derive_seed;
use common::StageMeta;

use crate::config::Config;
use crate::logistic;
use crate::retention::{UserWeeks, WEEK_MS};

/// The outcome of the weight learning, fitted or fallen back.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedWeights {
    /// w_k, one per objective (all 1 on fallback).
    pub weights: Vec<f64>,
    /// beta_k on standardised features; `None` when no model was fitted.
    pub coefficients: Option<Vec<f64>>,
    /// Held-out AUC; `None` without a fit, without a holdout, or with one class held out.
    pub auc: Option<f64>,
    pub n_user_weeks: u64,
    pub n_train: u64,
    pub n_holdout: u64,
    /// Share of labelled user-weeks followed by an active week; `None` without any.
    pub retention_rate: Option<f64>,
    /// Why the weights fell back to 1; `None` when they were learned.
    pub fallback: Option<String>,
    pub iterations: usize,
}

impl LearnedWeights {
    fn fallback(weeks: &UserWeeks, k: usize, reason: String) -> LearnedWeights {
        tracing::warn!("learned weights fall back to 1 for every objective: {reason}");
        LearnedWeights {
            weights: vec![1.0; k],
            coefficients: None,
            auc: None,
            n_user_weeks: weeks.len() as u64,
            n_train: 0,
            n_holdout: 0,
            retention_rate: retention_rate(weeks),
            fallback: Some(reason),
            iterations: 0,
        }
    }
}

fn retention_rate(weeks: &UserWeeks) -> Option<f64> {
    (!weeks.is_empty()).then(|| weeks.label.iter().sum::<f64>() / weeks.len() as f64)
}

/// True when a user's weeks are held out: a hash of (seed, user) below the fraction.
pub fn is_held_out(seed: u64, user: u32, fraction: f64) -> bool {
    let unit = (derive_seed(seed, "merge-holdout", user as u64) >> 11) as f64 / (1u64 << 53) as f64;
    unit < fraction
}

/// Learns w_k from the user-weeks, or falls back to 1 with the reason.
pub fn learn(weeks: &UserWeeks, config: &Config) -> Result<LearnedWeights> {
    let k = weeks.n_features;

    // Cases where no honest model exists.
    if weeks.span_ms < 2 * WEEK_MS - 1 {
        let days = weeks.span_ms as f64 / (24.0 * 3_600_000.0);
        return Ok(LearnedWeights::fallback(
            weeks,
            k,
            format!("the train and valid rows span {days:.1} days, less than two weeks"),
        ));
    }
    if (weeks.len() as u64) < config.min_user_weeks {
        let reason = format!(
            "{} labelled user-weeks, fewer than min_user_weeks = {}",
            weeks.len(),
            config.min_user_weeks
        );
        return Ok(LearnedWeights::fallback(weeks, k, reason));
    }
    let n_retained = weeks.label.iter().filter(|&&y| y == 1.0).count();
    if n_retained == 0 || n_retained == weeks.len() {
        let value = if n_retained == 0 { 0 } else { 1 };
        let reason = format!(
            "every one of the {} user-weeks has label {value}",
            weeks.len()
        );
        return Ok(LearnedWeights::fallback(weeks, k, reason));
    }
    let (n_rarer, rarer) = if n_retained * 2 < weeks.len() {
        (n_retained, 1)
    } else {
        (weeks.len() - n_retained, 0)
    };
    if (n_rarer as u64) < config.min_class_weeks {
        let reason = format!(
            "only {n_rarer} of {} user-weeks have label {rarer}, fewer than min_class_weeks = {}",
            weeks.len(),
            config.min_class_weeks
        );
        return Ok(LearnedWeights::fallback(weeks, k, reason));
    }

    // Split by user, standardise with the training rows' statistics.
    let held: Vec<bool> = weeks
        .user
        .iter()
        .map(|&u| is_held_out(config.seed, u, config.holdout_fraction))
        .collect();
    let train_rows: Vec<usize> = (0..weeks.len()).filter(|&i| !held[i]).collect();
    let holdout_rows: Vec<usize> = (0..weeks.len()).filter(|&i| held[i]).collect();
    let train_retained = train_rows
        .iter()
        .filter(|&&i| weeks.label[i] == 1.0)
        .count();
    if train_retained == 0 || train_retained == train_rows.len() {
        let reason = format!(
            "the {} training user-weeks (outside the holdout) all have one label",
            train_rows.len()
        );
        return Ok(LearnedWeights::fallback(weeks, k, reason));
    }
    let (mean, scale) = standardisation(weeks, &train_rows);
    let standardised = |rows: &[usize]| -> (Vec<f64>, Vec<f64>) {
        let mut x = Vec::with_capacity(rows.len() * k);
        for &i in rows {
            x.extend(weeks.row(i).iter().enumerate().map(|(c, v)| {
                if scale[c] > 0.0 {
                    (v - mean[c]) / scale[c]
                } else {
                    0.0
                }
            }));
        }
        (x, rows.iter().map(|&i| weeks.label[i]).collect())
    };

    // Fit, then measure on the held-out users.
    let (x_train, y_train) = standardised(&train_rows);
    let model = logistic::fit(&x_train, &y_train, k, config.l2, "retention model")?;
    let (x_hold, y_hold) = standardised(&holdout_rows);
    let scores: Vec<f64> = (0..y_hold.len())
        .map(|i| model.score(&x_hold[i * k..(i + 1) * k]))
        .collect();
    let auc = logistic::auc(&scores, &y_hold);
    tracing::info!(
        "retention model: {} training and {} held-out user-weeks, AUC {}",
        train_rows.len(),
        holdout_rows.len(),
        auc.map_or("undefined".to_string(), |a| format!("{a:.4}"))
    );

    let mean_abs = model.coefficients.iter().map(|b| b.abs()).sum::<f64>() / k as f64;
    let mut learned = LearnedWeights {
        weights: model
            .coefficients
            .iter()
            .map(|b| b.abs() / mean_abs)
            .collect(),
        coefficients: Some(model.coefficients.clone()),
        auc,
        n_user_weeks: weeks.len() as u64,
        n_train: train_rows.len() as u64,
        n_holdout: holdout_rows.len() as u64,
        retention_rate: retention_rate(weeks),
        fallback: None,
        iterations: model.iterations,
    };
    // A fitted model may still be noise: then its coefficient ratios are too.
    let untrusted = if !(mean_abs > 0.0 && mean_abs.is_finite()) {
        Some("every coefficient is 0: the mean routing probabilities do not vary".to_string())
    } else if let Some(auc) = auc {
        let bar = chance_bar(&y_hold).max(config.min_auc);
        (auc < bar).then(|| {
            format!(
                "held-out AUC {auc:.4} is below {bar:.4} (min_auc = {}, or chance plus two \
                 standard errors): the weekly routing probabilities do not predict retention",
                config.min_auc
            )
        })
    } else {
        if config.holdout_fraction > 0.0 {
            tracing::warn!(
                "the held-out users have one label only: the learned weights are not validated"
            );
        }
        None
    };
    if let Some(reason) = untrusted {
        tracing::warn!("learned weights fall back to 1 for every objective: {reason}");
        learned.weights = vec![1.0; k];
        learned.fallback = Some(reason);
    }
    Ok(learned)
}

/// The AUC a model must beat to be told apart from chance: 0.5 plus two standard errors of
/// the AUC of a random score (Mann-Whitney null variance (n1 + n0 + 1) / (12 n1 n0)).
fn chance_bar(labels: &[f64]) -> f64 {
    let n1 = labels.iter().filter(|&&y| y == 1.0).count() as f64;
    let n0 = labels.len() as f64 - n1;
    0.5 + 2.0 * ((n1 + n0 + 1.0) / (12.0 * n1 * n0)).sqrt()
}

/// Mean and standard deviation of each feature over the given rows (0 when constant).
fn standardisation(weeks: &UserWeeks, rows: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let k = weeks.n_features;
    let n = rows.len() as f64;
    let mut mean = vec![0.0; k];
    for &i in rows {
        mean.iter_mut()
            .zip(weeks.row(i))
            .for_each(|(m, v)| *m += v / n);
    }
    let mut var = vec![0.0; k];
    for &i in rows {
        var.iter_mut()
            .zip(weeks.row(i))
            .zip(&mean)
            .for_each(|((s, v), m)| *s += (v - m) * (v - m) / n);
    }
    // A feature that barely varies would be blown up to noise; treat it as constant.
    let scale = var
        .iter()
        .map(|v| if *v > 1e-24 { v.sqrt() } else { 0.0 })
        .collect();
    (mean, scale)
}

/// Writes `weights.parquet`, one row per objective in configuration order.
pub fn write(
    path: &Path,
    config: &Config,
    learned: &LearnedWeights,
    meta: &StageMeta,
) -> Result<u64> {
    let k = config.objectives.len();
    let schema = Schema::new(vec![
        Field::new("objective", DataType::Utf8, false),
        Field::new("manual_weight", DataType::Float64, false),
        Field::new("learned_weight", DataType::Float64, false),
        Field::new("coefficient", DataType::Float64, true),
        Field::new("auc", DataType::Float64, true),
        Field::new("n_user_weeks", DataType::UInt64, false),
        Field::new("retention_rate", DataType::Float64, true),
        Field::new("fallback", DataType::Boolean, false),
        Field::new("fallback_reason", DataType::Utf8, true),
    ]);
    let coefficient: Float64Array = match &learned.coefficients {
        Some(betas) => betas.iter().map(|&b| Some(b)).collect(),
        None => vec![None; k].into_iter().collect(),
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            config.objectives.iter().map(|o| o.name.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(
            config.objectives.iter().map(|o| o.weight),
        )),
        Arc::new(Float64Array::from(learned.weights.clone())),
        Arc::new(coefficient),
        Arc::new(Float64Array::from(vec![learned.auc; k])),
        Arc::new(UInt64Array::from(vec![learned.n_user_weeks; k])),
        Arc::new(Float64Array::from(vec![learned.retention_rate; k])),
        Arc::new(BooleanArray::from(vec![learned.fallback.is_some(); k])),
        Arc::new(StringArray::from(vec![learned.fallback.as_deref(); k])),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema), columns)?;
    common::io::write_batch(path, &batch, meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MergeObjective;

    fn config(objectives: usize) -> Config {
        Config {
            dir: "d".into(),
            seed: 3,
            top_n: 5,
            l2: 1.0,
            holdout_fraction: 0.2,
            min_user_weeks: 20,
            min_class_weeks: 10,
            min_auc: 0.55,
            score: crate::config::MergeSection::default()
                .score_settings()
                .unwrap(),
            objectives: (0..objectives)
                .map(|k| MergeObjective {
                    name: format!("o{k}"),
                    weight: 1.0,
                    label: common::LabelRule::parse("like").unwrap(),
                })
                .collect(),
        }
    }

    /// `n` user-weeks over three weeks of log whose labels follow `label(features)`.
    fn weeks(n: usize, label: impl Fn(&[f64]) -> f64) -> UserWeeks {
        let mut w = UserWeeks {
            n_features: 2,
            span_ms: 3 * WEEK_MS,
            ..Default::default()
        };
        for i in 0..n {
            let row = [
                ((i * 37) % 101) as f64 / 101.0,
                ((i * 53) % 97) as f64 / 97.0,
            ];
            w.user.push(i as u32);
            w.week.push(0);
            w.label.push(label(&row));
            w.features.extend(row);
        }
        w
    }

    #[test]
    fn all_retained_labels_fall_back_to_unit_weights() {
        let learned = learn(&weeks(100, |_| 1.0), &config(2)).unwrap();
        assert_eq!(learned.weights, vec![1.0, 1.0]);
        assert!(learned.fallback.unwrap().contains("label 1"));
        assert_eq!(learned.retention_rate, Some(1.0));
        assert_eq!(learned.coefficients, None);
    }

    #[test]
    fn no_retained_label_falls_back_to_unit_weights() {
        let learned = learn(&weeks(100, |_| 0.0), &config(2)).unwrap();
        assert_eq!(learned.weights, vec![1.0, 1.0]);
        let reason = learned.fallback.unwrap();
        assert!(reason.contains("label 0"), "{reason}");
        assert_eq!(learned.retention_rate, Some(0.0));
        assert_eq!(learned.coefficients, None);
    }

    #[test]
    fn short_log_falls_back() {
        let mut w = weeks(100, |r| (r[0] > 0.5) as u8 as f64);
        w.span_ms = 13 * 24 * 3_600_000;
        let learned = learn(&w, &config(2)).unwrap();
        assert!(learned
            .fallback
            .unwrap()
            .contains("13.0 days, less than two weeks"));
    }

    #[test]
    fn too_few_user_weeks_fall_back() {
        let learned = learn(&weeks(19, |r| (r[0] > 0.5) as u8 as f64), &config(2)).unwrap();
        assert!(learned.fallback.unwrap().contains("19 labelled user-weeks"));
    }

    #[test]
    fn the_predictive_objective_gets_the_larger_weight() {
        // Retention follows feature 0 (with label noise from feature 1's hash pattern).
        let learned = learn(
            &weeks(2_000, |r| (r[0] + 0.2 * r[1] > 0.6) as u8 as f64),
            &config(2),
        )
        .unwrap();
        assert!(learned.fallback.is_none());
        let b = learned.coefficients.unwrap();
        assert!(b[0] > 0.0 && b[1] > 0.0 && b[0] > 3.0 * b[1], "{b:?}");
        assert!((learned.weights.iter().sum::<f64>() / 2.0 - 1.0).abs() < 1e-12);
        assert!(learned.weights[0] > learned.weights[1]);
        assert!(learned.auc.unwrap() > 0.9);
        assert_eq!(learned.n_train + learned.n_holdout, 2_000);
    }

    #[test]
    fn a_rare_label_falls_back() {
        // 5 lost weeks out of 200: too few to weigh the objectives.
        let learned = learn(&weeks(200, |r| (r[0] > 0.03) as u8 as f64), &config(2)).unwrap();
        let reason = learned.fallback.unwrap();
        assert!(
            reason.contains("have label 0, fewer than min_class_weeks = 10"),
            "{reason}"
        );
    }

    #[test]
    fn features_unrelated_to_retention_fall_back() {
        // Labels from a hash of the user, unrelated to either feature.
        let learned = learn(
            &weeks(3_000, |r| {
                (((r[0] * 101.0) as u64 * 7 + (r[1] * 97.0) as u64 * 13) % 2) as f64
            }),
            &config(2),
        )
        .unwrap();
        let reason = learned.fallback.unwrap();
        assert!(reason.contains("held-out AUC"), "{reason}");
        assert_eq!(learned.weights, vec![1.0, 1.0]);
        assert!(learned.coefficients.is_some() && learned.auc.is_some());
    }

    #[test]
    fn chance_bar_shrinks_with_more_held_out_weeks() {
        let small: Vec<f64> = (0..40).map(|i| (i % 2) as f64).collect();
        let large: Vec<f64> = (0..4_000).map(|i| (i % 2) as f64).collect();
        assert!(chance_bar(&small) > 0.6 && chance_bar(&large) < 0.52);
    }

    #[test]
    fn constant_features_fall_back() {
        let mut w = weeks(200, |_| 0.0);
        w.features.iter_mut().for_each(|v| *v = 0.5);
        for i in (0..200).step_by(3) {
            w.label[i] = 1.0;
        }
        let learned = learn(&w, &config(2)).unwrap();
        assert!(learned.fallback.unwrap().contains("every coefficient is 0"));
        assert_eq!(learned.weights, vec![1.0, 1.0]);
    }

    #[test]
    fn holdout_takes_about_the_asked_share_of_users() {
        let held = (0..10_000u32).filter(|&u| is_held_out(42, u, 0.2)).count();
        assert!((1_800..2_200).contains(&held), "{held}");
        assert_eq!((0..1000u32).filter(|&u| is_held_out(42, u, 0.0)).count(), 0);
    }
}
