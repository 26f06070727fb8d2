//! The `[coordinate]` section of the dataset configuration and the checked `Config` the
//! stage runs on. Every value is checked here, before any data is read.

use std::path::PathBuf;

use common::error::param_error;
use common::{Error, Objective};
use relvid_nn::DeviceKind;
use serde::{Deserialize, Serialize};

/// How each objective's routing threshold t_k is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdMode {
    /// t_k is the objective's `threshold`, else the section's `threshold`.
    Fixed,
    /// t_k is chosen on the valid split so that `target_recall` of the objective's valid
    /// positives are routed to it; an objective's own `threshold` still wins.
    Recall,
}

/// Settings of the Coordinating Network (`[coordinate]` in the TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinateSection {
    /// Widths of the hidden ReLU layers, input side first. At least one layer, each ≥ 1.
    /// Default `[64, 32]`.
    pub hidden: Vec<usize>,
    /// Width of every embedding (user id, video id, each categorical side feature), ≥ 1.
    /// Default 16.
    pub embedding_dim: usize,
    /// Maximum passes over the train split, ≥ 1. Default 10.
    pub epochs: usize,
    /// Epochs without a lower valid loss before training stops, ≥ 1. Default 2.
    pub patience: usize,
    /// Interactions per gradient step, ≥ 1. Default 1024.
    pub batch_size: usize,
    /// Shards a batch is cut into: their forward and backward passes run in parallel and
    /// their gradients are summed in shard order, so results depend on this number but not
    /// on `--threads`. 1 to `batch_size`. Default 2 (one per core of a two-core machine).
    pub shards: usize,
    /// Train interactions per epoch: each epoch trains on a fresh seeded sample (without
    /// replacement) of at most this many train rows; 0 = every row every epoch. Default
    /// 4,000,000, which bounds an epoch on large logs. Smaller samples cost a little
    /// accuracy: on the 5M-row synthetic log (4.0M train rows) the mean valid AUC was
    /// 0.652 with every row, 0.647 with 2M and 0.648 with 1M rows per epoch.
    pub max_train_rows: usize,
    /// Valid interactions that drive early stopping and the per-epoch AUC: a seeded sample
    /// of at most this many, drawn once; 0 = all. Default 500,000. Thresholds and the
    /// reported routing figures always use every valid row.
    pub max_valid_rows: usize,
    /// Adam step size, > 0. Default 1e-3.
    pub learning_rate: f64,
    /// Decoupled (AdamW) weight decay, ≥ 0. Default 0.
    pub weight_decay: f64,
    /// Routing threshold t_k of objectives without their own `threshold`, in [0, 1]: a row
    /// goes to objective k when p_k > t_k. Default 0.5.
    pub threshold: f64,
    /// `"fixed"` (default) or `"recall"` (see [`ThresholdMode`]).
    pub threshold_mode: ThresholdMode,
    /// Share of the valid positives to route in `"recall"` mode, in (0, 1]. Default 0.9.
    pub target_recall: f64,
    /// Fallback: when an objective would get no routed row in a split (or, in train, no
    /// routed positive), its top `min_routed_fraction` rows of that split by p_k are routed
    /// too. In (0, 1]. Default 0.05.
    pub min_routed_fraction: f64,
}

impl Default for CoordinateSection {
    fn default() -> Self {
        CoordinateSection {
            hidden: vec![64, 32],
            embedding_dim: 16,
            epochs: 10,
            patience: 2,
            batch_size: 1024,
            shards: 2,
            max_train_rows: 4_000_000,
            max_valid_rows: 500_000,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            threshold: 0.5,
            threshold_mode: ThresholdMode::Fixed,
            target_recall: 0.9,
            min_routed_fraction: 0.05,
        }
    }
}

impl CoordinateSection {
    /// Checks every value; the error names the first key that breaks its rule.
    pub fn validate(&self) -> Result<(), Error> {
        if self.hidden.is_empty() {
            return Err(param_error(
                "hidden",
                "[]",
                "list at least one hidden layer width",
            ));
        }
        if let Some(width) = self.hidden.iter().find(|&&w| w == 0) {
            return Err(param_error(
                "hidden",
                width,
                "every hidden width must be at least 1",
            ));
        }
        if self.embedding_dim == 0 {
            return Err(param_error("embedding_dim", 0, "must be at least 1"));
        }
        if self.epochs == 0 {
            return Err(param_error("epochs", 0, "must be at least 1"));
        }
        if self.patience == 0 {
            return Err(param_error("patience", 0, "must be at least 1 epoch"));
        }
        if self.batch_size == 0 {
            return Err(param_error("batch_size", 0, "must be at least 1"));
        }
        if self.shards == 0 || self.shards > self.batch_size {
            return Err(param_error(
                "shards",
                self.shards,
                "must lie in 1..=batch_size",
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(param_error(
                "learning_rate",
                self.learning_rate,
                "must be finite and > 0",
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(param_error(
                "weight_decay",
                self.weight_decay,
                "must be finite and >= 0",
            ));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(param_error(
                "threshold",
                self.threshold,
                "must lie in [0, 1]",
            ));
        }
        if !(self.target_recall > 0.0 && self.target_recall <= 1.0) {
            return Err(param_error(
                "target_recall",
                self.target_recall,
                "must lie in (0, 1]",
            ));
        }
        if !(self.min_routed_fraction > 0.0 && self.min_routed_fraction <= 1.0) {
            return Err(param_error(
                "min_routed_fraction",
                self.min_routed_fraction,
                "must lie in (0, 1]",
            ));
        }
        Ok(())
    }
}

/// Everything a run needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Dataset folder holding the inputs and receiving the outputs.
    pub dir: PathBuf,
    pub device: DeviceKind,
    pub seed: u64,
    pub section: CoordinateSection,
    /// Objectives in configuration order (the order of the output columns).
    pub objectives: Vec<Objective>,
}

impl Config {
    /// The configuration as JSON, for the log, the summary and the output metadata.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "coordinate": self.section,
            "objectives": self.objectives,
            "device": self.device,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejects(change: impl FnOnce(&mut CoordinateSection), key: &str) {
        let mut section = CoordinateSection::default();
        change(&mut section);
        let message = section.validate().unwrap_err().to_string();
        assert!(
            message.contains(&format!("invalid parameter {key} ")),
            "{message}"
        );
    }

    #[test]
    fn defaults_are_valid() {
        CoordinateSection::default().validate().unwrap();
    }

    #[test]
    fn rejects_empty_hidden() {
        rejects(|s| s.hidden.clear(), "hidden");
    }

    #[test]
    fn rejects_zero_hidden_width() {
        rejects(|s| s.hidden = vec![64, 0], "hidden");
    }

    #[test]
    fn rejects_zero_embedding_dim() {
        rejects(|s| s.embedding_dim = 0, "embedding_dim");
    }

    #[test]
    fn rejects_zero_epochs() {
        rejects(|s| s.epochs = 0, "epochs");
    }

    #[test]
    fn rejects_zero_patience() {
        rejects(|s| s.patience = 0, "patience");
    }

    #[test]
    fn rejects_zero_batch_size() {
        rejects(|s| s.batch_size = 0, "batch_size");
    }

    #[test]
    fn rejects_shards_outside_one_to_batch_size() {
        rejects(|s| s.shards = 0, "shards");
        rejects(
            |s| {
                s.batch_size = 4;
                s.shards = 5;
            },
            "shards",
        );
    }

    #[test]
    fn rejects_non_positive_learning_rate() {
        rejects(|s| s.learning_rate = 0.0, "learning_rate");
        rejects(|s| s.learning_rate = f64::NAN, "learning_rate");
    }

    #[test]
    fn rejects_negative_weight_decay() {
        rejects(|s| s.weight_decay = -0.1, "weight_decay");
    }

    #[test]
    fn rejects_threshold_outside_unit_interval() {
        rejects(|s| s.threshold = 1.5, "threshold");
        rejects(|s| s.threshold = -0.1, "threshold");
    }

    #[test]
    fn rejects_target_recall_outside_half_open_interval() {
        rejects(|s| s.target_recall = 0.0, "target_recall");
        rejects(|s| s.target_recall = 1.01, "target_recall");
    }

    #[test]
    fn rejects_min_routed_fraction_outside_half_open_interval() {
        rejects(|s| s.min_routed_fraction = 0.0, "min_routed_fraction");
        rejects(|s| s.min_routed_fraction = 2.0, "min_routed_fraction");
    }

    fn parse(section: &str) -> anyhow::Result<CoordinateSection> {
        let text = format!(
            "[dataset]\nname = \"t\"\nformat = \"synthetic\"\n[coordinate]\n{section}\n\
             [[objective]]\nname = \"like\"\nlabel = \"like\"\nweight = 1.0\n"
        );
        common::PipelineConfig::parse(&text, std::path::Path::new("t.toml"))?.section("coordinate")
    }

    #[test]
    fn unknown_keys_and_modes_do_not_parse() {
        assert!(format!("{:#}", parse("hiden = [8]").unwrap_err()).contains("hiden"));
        let mode = format!("{:#}", parse("threshold_mode = \"precision\"").unwrap_err());
        assert!(mode.contains("precision"), "{mode}");
        let recall = parse("threshold_mode = \"recall\"").unwrap();
        assert_eq!(recall.threshold_mode, ThresholdMode::Recall);
        assert_eq!(recall.hidden, vec![64, 32]);
    }
}
