//! From probabilities to routing: choose each objective's threshold t_k, route a row to
//! objective k when p_k > t_k, and make sure no objective is left without training rows.
//!
//! Fallback: when an objective has no routed positive in the train split (or no routed row
//! at all in the valid or test split), its top `min_routed_fraction` rows of that split by
//! p_k are routed as well, with a warning. If the train split still has no routed positive
//! the stage fails: the objective cannot be learned downstream.

use anyhow::{bail, Result};
use common::{Objective, Split};
use relvid_nn::auc;
use serde::Serialize;

use crate::config::{CoordinateSection, ThresholdMode};

/// Where an objective's threshold came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdSource {
    /// The objective's own `threshold` in `[[objective]]`.
    Objective,
    /// The section's `threshold`.
    Section,
    /// Chosen on the valid split for `target_recall`.
    Recall,
}

/// Routing and figures of one objective.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectiveRouting {
    pub name: String,
    pub threshold: f64,
    pub threshold_source: ThresholdSource,
    /// Share of all rows routed, then per split.
    pub routed_share: f64,
    pub routed_share_train: f64,
    pub routed_share_valid: f64,
    pub routed_share_test: f64,
    /// Share of labelled train rows with a positive label.
    pub train_positive_rate: f64,
    /// Share of the valid positives that are routed (what `"recall"` mode targets).
    pub valid_recall: Option<f64>,
    pub valid_auc: Option<f64>,
    pub test_auc: Option<f64>,
    /// Splits where the fallback routed extra rows.
    pub fallback: Vec<&'static str>,
    #[serde(skip)]
    pub routed: Vec<bool>,
}

/// Routes every row for every objective. `p[k]` and `labels[k]` are per row.
pub fn route(
    objectives: &[Objective],
    section: &CoordinateSection,
    p: &[Vec<f32>],
    labels: &[Vec<i8>],
    split: &[Split],
) -> Result<Vec<ObjectiveRouting>> {
    let rows_of = |wanted: Split| -> Vec<u32> {
        (0..split.len() as u32)
            .filter(|&row| split[row as usize] == wanted)
            .collect()
    };
    let split_rows: Vec<(Split, Vec<u32>)> = Split::ALL.iter().map(|&s| (s, rows_of(s))).collect();

    let mut result = Vec::with_capacity(objectives.len());
    for (k, objective) in objectives.iter().enumerate() {
        let (p, labels) = (&p[k], &labels[k]);
        let valid_rows = &split_rows[Split::Valid as usize].1;
        let (threshold, threshold_source) =
            choose_threshold(objective, section, p, labels, valid_rows);
        let mut routed: Vec<bool> = p.iter().map(|&value| value as f64 > threshold).collect();

        // Train needs a routed positive, valid and test a routed row; one warning per
        // objective names every split that fell back.
        let mut fallback = Vec::new();
        let mut added = Vec::new();
        for (s, rows) in &split_rows {
            if rows.is_empty() {
                continue;
            }
            let satisfied = match s {
                Split::Train => rows
                    .iter()
                    .any(|&r| routed[r as usize] && labels[r as usize] == 1),
                Split::Valid | Split::Test => rows.iter().any(|&r| routed[r as usize]),
            };
            if !satisfied {
                let n_extra = top_fraction(rows, p, section.min_routed_fraction, &mut routed);
                added.push(format!("{n_extra} {}", s.as_str()));
                fallback.push(s.as_str());
            }
        }
        if !fallback.is_empty() {
            tracing::warn!(
                "objective {}: t = {threshold:.4} leaves a split without a routed row (train: \
                 without a routed positive); also routing the top {:.1}% of that split by p_{} \
                 (min_routed_fraction): {} rows",
                objective.name,
                100.0 * section.min_routed_fraction,
                objective.name,
                added.join(", ")
            );
        }

        let train_rows = &split_rows[Split::Train as usize].1;
        let train_positives = train_rows
            .iter()
            .filter(|&&r| labels[r as usize] == 1)
            .count();
        if !train_rows
            .iter()
            .any(|&r| routed[r as usize] && labels[r as usize] == 1)
        {
            let routed_train = train_rows.iter().filter(|&&r| routed[r as usize]).count();
            bail!(
                "objective {}: none of the {routed_train} train rows routed to it has a positive \
                 label ({train_positives} train positives in all); lower its threshold or raise \
                 [coordinate] min_routed_fraction",
                objective.name
            );
        }

        let share = |rows: &[u32]| -> f64 {
            if rows.is_empty() {
                return 0.0;
            }
            rows.iter().filter(|&&r| routed[r as usize]).count() as f64 / rows.len() as f64
        };
        let labelled_train = train_rows
            .iter()
            .filter(|&&r| labels[r as usize] >= 0)
            .count();
        let split_auc = |rows: &[u32]| -> Option<f64> {
            let labelled: Vec<u32> = rows
                .iter()
                .copied()
                .filter(|&r| labels[r as usize] >= 0)
                .collect();
            let scores: Vec<f32> = labelled.iter().map(|&r| p[r as usize]).collect();
            let truth: Vec<bool> = labelled.iter().map(|&r| labels[r as usize] == 1).collect();
            auc(&scores, &truth)
        };
        let valid_positives: Vec<u32> = valid_rows
            .iter()
            .copied()
            .filter(|&r| labels[r as usize] == 1)
            .collect();
        result.push(ObjectiveRouting {
            name: objective.name.clone(),
            threshold,
            threshold_source,
            routed_share: routed.iter().filter(|&&r| r).count() as f64 / routed.len().max(1) as f64,
            routed_share_train: share(train_rows),
            routed_share_valid: share(valid_rows),
            routed_share_test: share(&split_rows[Split::Test as usize].1),
            train_positive_rate: train_positives as f64 / labelled_train.max(1) as f64,
            valid_recall: (!valid_positives.is_empty()).then(|| share(&valid_positives)),
            valid_auc: split_auc(valid_rows),
            test_auc: split_auc(&split_rows[Split::Test as usize].1),
            fallback,
            routed,
        });
    }
    Ok(result)
}

/// t_k: the objective's own threshold; else in recall mode the one chosen on the valid split;
/// else the section's.
fn choose_threshold(
    objective: &Objective,
    section: &CoordinateSection,
    p: &[f32],
    labels: &[i8],
    valid_rows: &[u32],
) -> (f64, ThresholdSource) {
    if let Some(threshold) = objective.threshold {
        return (threshold, ThresholdSource::Objective);
    }
    if section.threshold_mode == ThresholdMode::Recall {
        let positives: Vec<f32> = valid_rows
            .iter()
            .filter(|&&r| labels[r as usize] == 1)
            .map(|&r| p[r as usize])
            .collect();
        match recall_threshold(positives, section.target_recall) {
            Some(threshold) => return (threshold, ThresholdSource::Recall),
            None => tracing::warn!(
                "objective {}: no positive label in the valid split, so no threshold for \
                 target_recall = {}; using threshold = {}",
                objective.name,
                section.target_recall,
                section.threshold
            ),
        }
    }
    (section.threshold, ThresholdSource::Section)
}

/// The largest threshold t such that at least `target_recall` of `positives` have p > t:
/// just below the p of the ceil(target·n)-th highest positive. `None` without positives.
pub fn recall_threshold(mut positives: Vec<f32>, target_recall: f64) -> Option<f64> {
    if positives.is_empty() {
        return None;
    }
    positives.sort_unstable_by(|a, b| b.total_cmp(a));
    let needed =
        ((target_recall * positives.len() as f64).ceil() as usize).clamp(1, positives.len());
    let cutoff = positives[needed - 1];
    // The next f32 below the cutoff: every p >= cutoff passes `p > t`, and p is stored as f32.
    let below = if cutoff > 0.0 {
        f32::from_bits(cutoff.to_bits() - 1)
    } else {
        0.0
    };
    Some(below as f64)
}

/// Routes the top `fraction` of `rows` by p (at least one row; ties by row index); returns
/// how many rows that is.
fn top_fraction(rows: &[u32], p: &[f32], fraction: f64, routed: &mut [bool]) -> usize {
    let n = ((fraction * rows.len() as f64).ceil() as usize).clamp(1, rows.len());
    let mut order = rows.to_vec();
    order.sort_unstable_by(|&a, &b| p[b as usize].total_cmp(&p[a as usize]).then(a.cmp(&b)));
    for &row in &order[..n] {
        routed[row as usize] = true;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::LabelRule;

    fn objective(threshold: Option<f64>) -> Objective {
        Objective {
            name: "like".into(),
            label: LabelRule::parse("like").unwrap(),
            weight: 1.0,
            threshold,
        }
    }

    const SPLITS: [Split; 6] = [
        Split::Train,
        Split::Train,
        Split::Train,
        Split::Train,
        Split::Valid,
        Split::Valid,
    ];

    #[test]
    fn rows_above_the_threshold_are_routed() {
        let p = vec![vec![0.9, 0.2, 0.6, 0.5, 0.7, 0.1]];
        let labels = vec![vec![1, 0, 1, 0, 1, 0]];
        let section = CoordinateSection::default();
        let out = route(&[objective(None)], &section, &p, &labels, &SPLITS).unwrap();
        // 0.5 is not above 0.5.
        assert_eq!(out[0].routed, vec![true, false, true, false, true, false]);
        assert_eq!(out[0].threshold_source, ThresholdSource::Section);
        assert!(out[0].fallback.is_empty());
        assert_eq!(out[0].routed_share_train, 0.5);
        assert_eq!(out[0].valid_auc, Some(1.0));
    }

    #[test]
    fn an_objective_threshold_beats_the_section() {
        let p = vec![vec![0.9, 0.2, 0.6, 0.5, 0.7, 0.1]];
        let labels = vec![vec![1, 0, 1, 0, 1, 0]];
        let out = route(
            &[objective(Some(0.65))],
            &CoordinateSection::default(),
            &p,
            &labels,
            &SPLITS,
        )
        .unwrap();
        assert_eq!(out[0].threshold, 0.65);
        assert_eq!(out[0].routed, vec![true, false, false, false, true, false]);
    }

    #[test]
    fn recall_threshold_routes_the_target_share_of_positives() {
        let positives = vec![0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05];
        let t = recall_threshold(positives.clone(), 0.9).unwrap();
        let routed = positives.iter().filter(|&&p| p as f64 > t).count();
        assert_eq!(routed, 9);
        assert!(t < 0.1 && t > 0.05);
        assert_eq!(recall_threshold(vec![], 0.9), None);
        // Full recall keeps even the lowest positive.
        let t = recall_threshold(positives.clone(), 1.0).unwrap();
        assert!(positives.iter().all(|&p| p as f64 > t));
    }

    #[test]
    fn recall_mode_picks_the_threshold_on_valid() {
        let p = vec![vec![0.9, 0.2, 0.6, 0.5, 0.3, 0.1]];
        let labels = vec![vec![1, 0, 1, 0, 1, 0]];
        let section = CoordinateSection {
            threshold_mode: ThresholdMode::Recall,
            target_recall: 1.0,
            ..Default::default()
        };
        let out = route(&[objective(None)], &section, &p, &labels, &SPLITS).unwrap();
        assert_eq!(out[0].threshold_source, ThresholdSource::Recall);
        assert!(out[0].threshold < 0.3 && out[0].threshold > 0.29);
        assert_eq!(out[0].valid_recall, Some(1.0));
    }

    #[test]
    fn fallback_routes_top_rows_when_train_has_no_routed_positive() {
        let p = vec![vec![0.3, 0.2, 0.4, 0.1, 0.7, 0.1]];
        let labels = vec![vec![1, 0, 0, 0, 1, 0]];
        let section = CoordinateSection {
            min_routed_fraction: 0.5,
            ..Default::default()
        };
        let out = route(&[objective(None)], &section, &p, &labels, &SPLITS).unwrap();
        // Top half of the 4 train rows by p: rows 2 (0.4) and 0 (0.3).
        assert_eq!(&out[0].routed[..4], &[true, false, true, false]);
        assert_eq!(out[0].fallback, vec!["train"]);
    }

    #[test]
    fn fallback_routes_a_valid_row_when_valid_has_none() {
        let p = vec![vec![0.9, 0.2, 0.6, 0.5, 0.3, 0.1]];
        let labels = vec![vec![1, 0, 1, 0, 1, 0]];
        let out = route(
            &[objective(None)],
            &CoordinateSection::default(),
            &p,
            &labels,
            &SPLITS,
        )
        .unwrap();
        assert_eq!(&out[0].routed[4..], &[true, false]);
        assert_eq!(out[0].fallback, vec!["valid"]);
    }

    #[test]
    fn error_when_the_fallback_still_finds_no_positive() {
        let p = vec![vec![0.3, 0.2, 0.4, 0.1, 0.7, 0.1]];
        // The only train positive has the lowest p; 25% of 4 rows is one row.
        let labels = vec![vec![0, 0, 0, 1, 1, 0]];
        let section = CoordinateSection {
            min_routed_fraction: 0.25,
            ..Default::default()
        };
        let message = route(&[objective(None)], &section, &p, &labels, &SPLITS)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("objective like") && message.contains("positive"),
            "{message}"
        );
    }

    #[test]
    fn ties_in_the_fallback_break_by_row() {
        let mut routed = vec![false; 4];
        assert_eq!(
            top_fraction(&[0, 1, 2, 3], &[0.5, 0.5, 0.5, 0.5], 0.5, &mut routed),
            2
        );
        assert_eq!(routed, vec![true, true, false, false]);
    }
}
