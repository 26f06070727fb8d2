//! Step 5: the report's charts, PNG files next to report.md.
//!
//! Reads the metric rows and the objectives' weights; writes, in the dataset folder (names
//! from `Config::output_name`, so a valid-split run gets `_valid` names):
//! - `eval_ndcg.png`: NDCG@K against K for the baselines and the merged rankings;
//! - `eval_objectives.png`: NDCG at the headline K per objective's ground truth, for
//!   co-visitation, each model family alone, and the full ranking before and after the
//!   current merge rule;
//! - `eval_weights.png`: the manual weight a_k, the learned weight w_k and a_k w_k.
//!
//! Charts are optional: without a TrueType font (`relvid_plots::font`) none is drawn, the
//! caller warns and report.md says why, and the evaluation still succeeds.

use std::path::Path;

use anyhow::Result;
use relvid_plots::{bar_chart, line_chart, Series};

use crate::config::Config;
use crate::metrics::MetricRow;

/// Rankings drawn in the charts: the baselines, one line per model family and the merges
/// (per-objective rankings would make the charts unreadable; eval.parquet has them).
const DRAWN: &[&str] = &[
    "popularity",
    "covisitation",
    "als_mean",
    "twotower_mean",
    "merged_equal",
    "merged_manual",
    "full",
    "full_previous",
];

/// Rankings of the per-objective chart.
const PER_OBJECTIVE: &[&str] = &[
    "covisitation",
    "als_mean",
    "twotower_mean",
    "full_previous",
    "full",
];

fn value(
    rows: &[MetricRow],
    ranking: &str,
    objective: &str,
    metric: &str,
    k: usize,
) -> Option<f64> {
    rows.iter()
        .find(|r| {
            r.ranking == ranking
                && r.objective == objective
                && r.metric == metric
                && r.k as usize == k
        })
        .and_then(|r| r.value)
}

/// Draws the three charts into `dir`; returns the file names written, or the first error
/// (typically: no font), in which case no further chart is attempted.
pub fn draw(
    dir: &Path,
    config: &Config,
    rows: &[MetricRow],
    headline_k: usize,
    learned: &[f64],
) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let split = config.split.as_str();

    // NDCG@K against K.
    let series: Vec<Series> = DRAWN
        .iter()
        .map(|&name| Series {
            name: name.to_string(),
            points: config
                .ks
                .iter()
                .filter_map(|&k| value(rows, name, "all", "ndcg", k).map(|v| (k as f64, v)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if !series.is_empty() {
        let name = config.output_name("eval_ndcg", "png");
        line_chart(
            &dir.join(&name),
            &format!("NDCG@K on the engagement ground truth ({split} split)"),
            "K",
            "NDCG@K",
            &series,
            true,
            false,
        )?;
        written.push(name);
    }

    // NDCG per objective at the headline K; a figure without support is drawn as 0.
    let mut categories = vec!["all".to_string()];
    categories.extend(config.objectives.iter().map(|o| o.name.clone()));
    let bars: Vec<(String, Vec<f64>)> = PER_OBJECTIVE
        .iter()
        .map(|&name| {
            let values = categories
                .iter()
                .map(|o| value(rows, name, o, "ndcg", headline_k).unwrap_or(0.0))
                .collect();
            (name.to_string(), values)
        })
        .collect();
    let name = config.output_name("eval_objectives", "png");
    bar_chart(
        &dir.join(&name),
        &format!(
            "NDCG@{headline_k} per objective's ground truth ({split} split; dislike: lower is better)"
        ),
        &categories,
        &format!("NDCG@{headline_k}"),
        &bars,
    )?;
    written.push(name);

    // The weights of the merge.
    let objectives: Vec<String> = config.objectives.iter().map(|o| o.name.clone()).collect();
    let manual: Vec<f64> = config.objectives.iter().map(|o| o.weight).collect();
    let product: Vec<f64> = manual.iter().zip(learned).map(|(a, w)| a * w).collect();
    let name = config.output_name("eval_weights", "png");
    bar_chart(
        &dir.join(&name),
        "Objective weights of the merge",
        &objectives,
        "weight",
        &[
            ("manual a_k".to_string(), manual),
            ("learned w_k".to_string(), learned.to_vec()),
            ("a_k w_k".to_string(), product),
        ],
    )?;
    written.push(name);
    Ok(written)
}
