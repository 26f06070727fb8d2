//! Step 4: the outputs, `eval.parquet` (every figure) and `report.md` (the headline tables
//! and a short factual reading).
//!
//! Reads the metric rows; writes `eval.parquet` (`ranking` Utf8, `objective` Utf8 ("all"
//! for the engagement truth), `metric` Utf8, `k` UInt32, `value` Float64 (null when no
//! source supports it), `support` UInt64 (sources behind the figure), `pairs` UInt64) and
//! `report.md`, both through a temporary file and a rename.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{Array, AsArray};
use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, UInt64Type};
use common::StageMeta;

use crate::metrics::MetricRow;
use crate::parts::Part;

/// Writes eval.parquet; returns the number of rows.
pub fn write_parquet(path: &Path, rows: &[MetricRow], meta: &StageMeta) -> Result<u64> {
    let text = |f: fn(&MetricRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let schema = Schema::new(vec![
        Field::new("ranking", DataType::Utf8, false),
        Field::new("objective", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("k", DataType::UInt32, false),
        Field::new("value", DataType::Float64, true),
        Field::new("support", DataType::UInt64, false),
        Field::new("pairs", DataType::UInt64, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        text(|r| &r.ranking),
        text(|r| &r.objective),
        text(|r| &r.metric),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.k))),
        Arc::new(rows.iter().map(|r| r.value).collect::<Float64Array>()),
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|r| r.support),
        )),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.pairs))),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema), columns)?;
    common::io::write_batch(path, &batch, meta)
}

/// Reads back an eval.parquet written by `write_parquet` (the valid-split figures shown in
/// the test report).
pub fn read_parquet(path: &Path) -> Result<Vec<MetricRow>> {
    let input = common::ParquetInput::open(path)?;
    let columns = input.read_columns(&[
        ("ranking", common::Expect::Exactly(DataType::Utf8)),
        ("objective", common::Expect::Exactly(DataType::Utf8)),
        ("metric", common::Expect::Exactly(DataType::Utf8)),
        ("k", common::Expect::Exactly(DataType::UInt32)),
        ("value", common::Expect::Exactly(DataType::Float64)),
        ("support", common::Expect::Exactly(DataType::UInt64)),
        ("pairs", common::Expect::Exactly(DataType::UInt64)),
    ])?;
    let text = |i: usize| common::columns::string_values(&columns[i], path, "text");
    let (ranking, objective, metric) = (text(0)?, text(1)?, text(2)?);
    let k = common::columns::u32_values(&columns[3], path, "k")?;
    let value = columns[4].as_primitive::<Float64Type>();
    let support = columns[5].as_primitive::<UInt64Type>();
    let pairs = columns[6].as_primitive::<UInt64Type>();
    Ok((0..ranking.len())
        .map(|r| MetricRow {
            ranking: ranking[r].clone(),
            objective: objective[r].clone(),
            metric: metric[r].clone(),
            k: k[r],
            value: (!value.is_null(r)).then(|| value.value(r)),
            support: support.value(r),
            pairs: pairs.value(r),
        })
        .collect())
}

/// What the report says besides the metric rows.
#[derive(Debug, Clone)]
pub struct Context {
    pub dataset: String,
    /// The evaluated split ("test", or "valid" when tuning).
    pub split: String,
    pub n_test_rows: usize,
    pub n_sources_with_truth: usize,
    pub n_sources: usize,
    pub n_pairs: u64,
    pub window_hours: f64,
    pub top_n: usize,
    pub ks: Vec<usize>,
    pub objectives: Vec<String>,
    pub rankings: Vec<String>,
    /// (sources compared, sources whose `full` list equals related.parquet's).
    pub related_check: (usize, usize),
    /// `full` against the best single component on NDCG at the headline K.
    pub comparison: Option<Comparison>,
    /// In the test report: `full` against the component that is best on the valid split,
    /// the choice a user makes without looking at the test split.
    pub comparison_valid_choice: Option<Comparison>,
    /// `full` without each part of its formula, against `full` (`parts`).
    pub part_effects: Vec<PartEffect>,
    /// The learned weights only rescale the score (`parts::learned_weights_matter`).
    pub learned_weights_inert: bool,
    /// (disliked rows in the evaluated split, those on videos without any train row).
    pub dislikes: (u64, u64),
    /// Plot files written next to the report, or why none were.
    pub plots: Result<Vec<String>, String>,
    /// In the test report: the valid-split figures of eval_valid.parquet when that file is
    /// newer than related.parquet (the settings were chosen on them), else why not shown.
    pub valid: Option<Result<Vec<MetricRow>, String>>,
}

/// The paired comparison of `full` with the best single component.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The component with the highest NDCG at the headline K.
    pub best: String,
    /// Mean per-source NDCG of `full` minus the component's, its standard error, sources.
    pub difference: f64,
    pub standard_error: f64,
    pub n_sources: u64,
}

/// `full` with one part of its formula left out, against `full` itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PartEffect {
    pub part: Part,
    /// Mean per-source NDCG of the variant minus `full`'s, its standard error, sources.
    pub difference: f64,
    pub standard_error: f64,
    pub n_sources: u64,
}

/// Rankings that are one signal or one model family alone: every ranking except the
/// popularity baseline and the merges.
pub fn is_component(ranking: &str) -> bool {
    !matches!(
        ranking,
        "popularity" | "merged_equal" | "merged_manual" | "full" | "full_previous"
    ) && !ranking.starts_with("full_")
}

/// The component with the highest NDCG at `k` on the engagement truth.
pub fn best_component(rows: &[MetricRow], rankings: &[String], k: usize) -> Option<String> {
    let components: Vec<String> = rankings
        .iter()
        .filter(|r| is_component(r))
        .cloned()
        .collect();
    ordered(rows, &components, "all", "ndcg", k, true)
        .first()
        .map(|(name, _)| name.to_string())
}

/// Rejects valid-split figures that cannot stand next to this run's: a value outside
/// [0, 1] (every metric is a share or a mean of shares), or a ranking of this run without
/// an NDCG at the headline K (the valid run had other `k` or other objectives).
pub fn check_valid_figures(
    path: &std::path::Path,
    rows: Vec<MetricRow>,
    rankings: &[String],
    k: usize,
) -> Result<Vec<MetricRow>, String> {
    if let Some(row) = rows
        .iter()
        .find(|r| r.value.is_some_and(|v| !(0.0..=1.0).contains(&v)))
    {
        return Err(format!(
            "{}: {} of `{}` ({}, K = {}) is {}, outside [0, 1]",
            path.display(),
            row.metric,
            row.ranking,
            row.objective,
            row.k,
            row.value.unwrap_or(f64::NAN)
        ));
    }
    let has_ndcg = |name: &str| {
        rows.iter().any(|r| {
            r.ranking == name && r.objective == "all" && r.metric == "ndcg" && r.k as usize == k
        })
    };
    if let Some(missing) = rankings.iter().find(|name| !has_ndcg(name)) {
        return Err(format!(
            "{} has no NDCG@{k} of `{missing}` (re-run stage-eval --split valid with the \
             current settings)",
            path.display()
        ));
    }
    Ok(rows)
}

fn find<'a>(
    rows: &'a [MetricRow],
    ranking: &str,
    objective: &str,
    metric: &str,
    k: usize,
) -> Option<&'a MetricRow> {
    rows.iter().find(|r| {
        r.ranking == ranking && r.objective == objective && r.metric == metric && r.k as usize == k
    })
}

fn cell(row: Option<&MetricRow>) -> String {
    match row.and_then(|r| r.value) {
        Some(v) => format!("{v:.4}"),
        None => "–".to_string(),
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map_or(String::new(), |c| c.to_uppercase().chain(chars).collect())
}

/// The K of the headline tables: 20 when evaluated, else the smallest K.
pub fn headline_k(ks: &[usize]) -> usize {
    if ks.contains(&20) {
        20
    } else {
        ks[0]
    }
}

/// Rankings sorted by a metric, best first (`higher`: larger is better); unsupported last.
fn ordered<'a>(
    rows: &'a [MetricRow],
    rankings: &[String],
    objective: &str,
    metric: &str,
    k: usize,
    higher: bool,
) -> Vec<(&'a str, f64)> {
    let mut out: Vec<(&str, f64)> = rankings
        .iter()
        .filter_map(|name| {
            let row = find(rows, name, objective, metric, k)?;
            Some((row.ranking.as_str(), row.value?))
        })
        .collect();
    out.sort_by(|a, b| {
        let order = a.1.total_cmp(&b.1);
        if higher {
            order.reverse()
        } else {
            order
        }
    });
    out
}

/// The markdown report.
pub fn markdown(rows: &[MetricRow], c: &Context) -> String {
    let k = headline_k(&c.ks);
    let mrr_k = c.top_n;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Offline evaluation of the related-video rankings: {} ({} split)\n",
        c.dataset, c.split
    );
    let _ = writeln!(
        md,
        "{} split: {} rows. Ground truth of a source video: the videos that a user who \
         engaged it in the {} split engaged strictly after it and at most {} h later. \
         {} sources have a non-empty ground truth; {} evaluated, with {} (source, relevant \
         video) pairs. Every ranking lists at most {} videos per source ([merge] top_n); a \
         source without a list counts as a miss.\n",
        capitalised(&c.split),
        c.n_test_rows,
        c.split,
        c.window_hours,
        c.n_sources_with_truth,
        c.n_sources,
        c.n_pairs,
        c.top_n
    );

    let _ = writeln!(md, "## Engagement ground truth, K = {k}\n");
    let _ = writeln!(
        md,
        "| ranking | NDCG@{k} | recall@{k} | hit rate@{k} | MRR | coverage@{k} | dislike share@{k} |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    for name in &c.rankings {
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            cell(find(rows, name, "all", "ndcg", k)),
            cell(find(rows, name, "all", "recall", k)),
            cell(find(rows, name, "all", "hit_rate", k)),
            cell(find(rows, name, "all", "mrr", mrr_k)),
            cell(find(rows, name, "all", "coverage", k)),
            cell(find(rows, name, "all", "dislike_share", k)),
        );
    }
    let share_pairs = find(rows, "full", "all", "dislike_share", k).map_or(0, |r| r.pairs);
    let _ = writeln!(
        md,
        "\nDislike share: among the top-{k} videos that a user who engaged the source engaged \
         later, the share disliked later (pooled over sources; lower is better; {share_pairs} \
         such listed videos for `full`). Coverage: distinct listed videos / catalogue size.\n"
    );

    let _ = writeln!(md, "## NDCG@{k} per objective\n");
    let mut header = "| ranking | all |".to_string();
    let mut rule = "|---|---:|".to_string();
    for o in &c.objectives {
        let _ = write!(header, " {o} |");
        rule.push_str("---:|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for name in &c.rankings {
        let mut line = format!("| {name} | {} |", cell(find(rows, name, "all", "ndcg", k)));
        for o in &c.objectives {
            let _ = write!(line, " {} |", cell(find(rows, name, o, "ndcg", k)));
        }
        let _ = writeln!(md, "{line}");
    }
    let mut support = "| sources / pairs |".to_string();
    for o in std::iter::once("all").chain(c.objectives.iter().map(String::as_str)) {
        let (s, p) = find(rows, "full", o, "ndcg", k).map_or((0, 0), |r| (r.support, r.pairs));
        let _ = write!(support, " {s} / {p} |");
    }
    let _ = writeln!(md, "{support}\n");
    let _ = writeln!(
        md,
        "For an objective with a negative manual weight (dislike), a high NDCG means the \
         ranking puts videos that were later disliked on top: lower is better there.\n"
    );

    let _ = writeln!(md, "## Reading\n");
    let by_ndcg = ordered(rows, &c.rankings, "all", "ndcg", k, true);
    if let [first, second, ..] = by_ndcg.as_slice() {
        let _ = writeln!(
            md,
            "- Highest NDCG@{k} on the engagement truth: `{}` ({:.4}), then `{}` ({:.4}).",
            first.0, first.1, second.0, second.1
        );
    }
    if let Some(position) = by_ndcg.iter().position(|(n, _)| *n == "full") {
        let covis = by_ndcg.iter().find(|(n, _)| *n == "covisitation");
        let _ = writeln!(
            md,
            "- `full` (the shipped ranking) is number {} of {} on that figure ({:.4}){}.",
            position + 1,
            by_ndcg.len(),
            by_ndcg[position].1,
            covis.map_or(String::new(), |(_, v)| format!(
                "; co-visitation alone scores {v:.4}"
            ))
        );
    }
    let value =
        |ranking: &str, metric: &str| find(rows, ranking, "all", metric, k).and_then(|r| r.value);
    let paired = |cmp: &Comparison| {
        let verdict = if cmp.difference == 0.0 && cmp.standard_error == 0.0 {
            "equal on every source"
        } else if cmp.difference > 2.0 * cmp.standard_error {
            "above it by more than two standard errors"
        } else if cmp.difference > 0.0 {
            "above it, but by less than two standard errors"
        } else if cmp.difference > -2.0 * cmp.standard_error {
            "below it, by less than two standard errors"
        } else {
            "below it by more than two standard errors"
        };
        format!(
            "per-source NDCG@{k} difference {:+.4} ± {:.4} (standard error, paired over {} \
             sources): {verdict}",
            cmp.difference, cmp.standard_error, cmp.n_sources
        )
    };
    if let Some(cmp) = &c.comparison {
        let _ = writeln!(
            md,
            "- `full` against the best single component, `{}` (highest NDCG@{k} among \
             co-visitation, ALS alone and two-tower alone): {}.",
            cmp.best,
            paired(cmp)
        );
    }
    if let Some(cmp) = &c.comparison_valid_choice {
        let _ = writeln!(
            md,
            "- `full` against the component with the highest NDCG@{k} on the valid split, \
             `{}` (the pick made without the test split; the line above picks on the test \
             split itself, which favours the component): {}.",
            cmp.best,
            paired(cmp)
        );
    }
    if let (Some(full), Some(covis)) = (
        value("full", "dislike_share"),
        value("covisitation", "dislike_share"),
    ) {
        let counted = |ranking: &str| {
            find(rows, ranking, "all", "dislike_share", k).map_or(String::new(), |r| {
                let bad = (r.value.unwrap_or(0.0) * r.pairs as f64).round();
                format!(" ({bad} of {} listed engaged videos)", r.pairs)
            })
        };
        let _ = writeln!(
            md,
            "- Dislike share@{k}: `full` {full:.4}{}, co-visitation alone {covis:.4}{} ({}).",
            counted("full"),
            counted("covisitation"),
            if full < covis {
                "lower with the full pipeline"
            } else if full == covis {
                "equal"
            } else {
                "higher with the full pipeline"
            }
        );
    }
    if let (Some(now), Some(before)) = (value("full", "ndcg"), value("full_previous", "ndcg")) {
        let shares = match (
            value("full", "dislike_share"),
            value("full_previous", "dislike_share"),
        ) {
            (Some(a), Some(b)) => format!(", dislike share@{k} {a:.4} against {b:.4}"),
            _ => String::new(),
        };
        let _ = writeln!(
            md,
            "- `full` against `full_previous` (the same weights under the first merge's rule: \
             max of the two percentiles, the whole dislike similarity subtracted, no \
             co-visitation term): NDCG@{k} {now:.4} against {before:.4}{shares}."
        );
    }
    let (disliked, unseen) = c.dislikes;
    if disliked > 0 {
        let _ = writeln!(
            md,
            "- {disliked} rows of the {} split are dislikes; {unseen} of them ({:.1} %) are on \
             videos with no train row, which no candidate list can contain, so the dislike \
             share can only be measured on the others.",
            c.split,
            100.0 * unseen as f64 / disliked as f64
        );
    }
    for o in &c.objectives {
        let negative = o == "dislike";
        let order = ordered(rows, &c.rankings, o, "ndcg", k, !negative);
        if let Some(best) = order.first() {
            let _ = writeln!(
                md,
                "- `{o}`: {} NDCG@{k} is `{}` ({:.4}).",
                if negative { "lowest" } else { "highest" },
                best.0,
                best.1
            );
        }
    }
    let shares = ordered(rows, &c.rankings, "all", "dislike_share", k, false);
    if let (Some(low), Some(high)) = (shares.first(), shares.last()) {
        let _ = writeln!(
            md,
            "- Dislike share@{k} ranges from {:.4} (`{}`) to {:.4} (`{}`).",
            low.1, low.0, high.1, high.0
        );
    }
    let (compared, equal) = c.related_check;
    let _ = writeln!(
        md,
        "- The recomputed `full` ranking equals related.parquet on {equal} of {compared} sources."
    );
    part_section(&mut md, rows, c, k);
    match &c.valid {
        Some(Ok(valid)) => {
            let _ = writeln!(
                md,
                "\n## Valid split against test split, K = {k}\n\n\
                 The merge settings were chosen on the valid split (eval_valid.parquet, \
                 `stage-eval --split valid`); the test split was not used to choose anything.\n"
            );
            let _ = writeln!(
                md,
                "| ranking | valid NDCG@{k} | test NDCG@{k} | valid dislike share@{k} | test dislike share@{k} |"
            );
            let _ = writeln!(md, "|---|---:|---:|---:|---:|");
            let mut shown: Vec<String> = vec!["covisitation".into()];
            for split_rows in [valid.as_slice(), rows] {
                if let Some(best) = best_component(split_rows, &c.rankings, k) {
                    if !shown.contains(&best) {
                        shown.push(best);
                    }
                }
            }
            shown.extend(["full_previous".to_string(), "full".to_string()]);
            for name in &shown {
                let _ = writeln!(
                    md,
                    "| {name} | {} | {} | {} | {} |",
                    cell(find(valid, name, "all", "ndcg", k)),
                    cell(find(rows, name, "all", "ndcg", k)),
                    cell(find(valid, name, "all", "dislike_share", k)),
                    cell(find(rows, name, "all", "dislike_share", k)),
                );
            }
        }
        Some(Err(reason)) => {
            let _ = writeln!(md, "\nValid-split figures not shown: {reason}.");
        }
        None => {}
    }
    match &c.plots {
        Ok(files) if !files.is_empty() => {
            let _ = writeln!(md, "\n## Plots\n");
            for file in files {
                let _ = writeln!(md, "![{file}]({file})");
            }
        }
        Ok(_) => {}
        Err(reason) => {
            let _ = writeln!(md, "\nNo plots were drawn: {reason}.");
        }
    }
    let _ = writeln!(
        md,
        "\nThese figures rank lists against what users did next in the {} period; they are \
         offline proxies, not the effect of showing the lists (users saw neither ranking).",
        c.split
    );
    md
}

/// The table of `full` without each part of its formula, and which part holds it back.
fn part_section(md: &mut String, rows: &[MetricRow], c: &Context, k: usize) {
    if c.part_effects.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## What each part of `full` adds, K = {k}\n\n\
         Each row scores `full` with one part of its formula left out, on the same candidates \
         and split (no model is retrained). The change is the variant's per-source NDCG@{k} \
         minus `full`'s, paired over the evaluated sources, ± one standard error: a positive \
         change means `full` does better without the part on this split. Read it on the \
         valid split (report_valid.md) before changing a setting.\n"
    );
    let _ = writeln!(
        md,
        "| part left out | ranking | NDCG@{k} | change against `full` |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|");
    for effect in &c.part_effects {
        let ranking = effect.part.ranking();
        let ranking = ranking.as_str();
        let _ = writeln!(
            md,
            "| {} | {ranking} | {} | {:+.4} ± {:.4} |",
            effect.part.description(),
            cell(find(rows, ranking, "all", "ndcg", k)),
            effect.difference,
            effect.standard_error
        );
    }
    let costly = c
        .part_effects
        .iter()
        .filter(|e| e.difference > 2.0 * e.standard_error)
        .max_by(|a, b| a.difference.total_cmp(&b.difference));
    let line = match costly {
        Some(effect) => {
            let ndcg = |ranking: &str| find(rows, ranking, "all", "ndcg", k).and_then(|r| r.value);
            let gap = c
                .comparison
                .as_ref()
                .filter(|cmp| cmp.difference < 0.0)
                .and_then(|cmp| {
                    let variant = effect.part.ranking();
                    let variant = variant.as_str();
                    Some(format!(
                        " `full` trails `{}` by {:.4}; `{variant}` scores {:.4} against \
                         `{}`'s {:.4}.",
                        cmp.best,
                        -cmp.difference,
                        ndcg(variant)?,
                        cmp.best,
                        ndcg(&cmp.best)?
                    ))
                })
                .unwrap_or_default();
            format!(
                "Leaving out {} raises NDCG@{k} the most ({:+.4} ± {:.4}): on this split it is \
                 the part that holds `full` back.{gap}",
                effect.part.description(),
                effect.difference,
                effect.standard_error
            )
        }
        None => format!(
            "No part's removal raises NDCG@{k} by more than two standard errors: on this split \
             every part adds to `full` or leaves it unchanged."
        ),
    };
    let _ = writeln!(md, "\n{line}");
    if c.learned_weights_inert {
        let _ = writeln!(
            md,
            "\nThe learned weights cannot change the ranking here: they are equal on every \
             objective with a non-zero manual weight, so they only rescale the score (all 1 \
             when the retention regression fell back; weights.parquet says whether it did)."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ranking: &str, metric: &str, k: u32, value: f64) -> MetricRow {
        MetricRow {
            ranking: ranking.into(),
            objective: "all".into(),
            metric: metric.into(),
            k,
            value: Some(value),
            support: 3,
            pairs: 4,
        }
    }

    #[test]
    fn report_names_the_winner_and_the_related_check() {
        let rows = vec![
            row("covisitation", "ndcg", 20, 0.1),
            row("full", "ndcg", 20, 0.3),
            row("full", "dislike_share", 20, 0.05),
            row("covisitation", "dislike_share", 20, 0.2),
        ];
        let c = Context {
            split: "test".into(),
            ks: vec![10, 20],
            rankings: vec!["covisitation".into(), "full".into()],
            comparison: Some(Comparison {
                best: "covisitation".into(),
                difference: 0.2,
                standard_error: 0.05,
                n_sources: 3,
            }),
            comparison_valid_choice: Some(Comparison {
                best: "twotower_like".into(),
                difference: -0.01,
                standard_error: 0.02,
                n_sources: 3,
            }),
            dislikes: (4, 1),
            plots: Err("no TrueType font found".into()),
            valid: Some(Ok(vec![row("full", "ndcg", 20, 0.25)])),
            ..context_with_parts(vec![], 0.0)
        };
        let md = markdown(&rows, &c);
        assert!(!md.contains("What each part"), "no variants, no section");
        assert!(md.contains("| full | 0.3000 |"), "{md}");
        assert!(
            md.contains("`full` (0.3000), then `covisitation` (0.1000)"),
            "{md}"
        );
        assert!(
            md.contains("from 0.0500 (`full`) to 0.2000 (`covisitation`)"),
            "{md}"
        );
        assert!(
            md.contains("equals related.parquet on 3 of 3 sources"),
            "{md}"
        );
        assert!(md.contains("+0.2000 ± 0.0500") && md.contains("more than two standard errors"));
        assert!(
            md.contains("on the valid split, `twotower_like`")
                && md.contains("-0.0100 ± 0.0200")
                && md.contains("below it, by less than two standard errors"),
            "{md}"
        );
        assert!(
            md.contains("`full` 0.0500 (0 of 4 listed engaged videos), co-visitation alone 0.2000"),
            "{md}"
        );
        assert!(md.contains("1 of them (25.0 %)"), "{md}");
        assert!(
            md.contains("No plots were drawn: no TrueType font found."),
            "{md}"
        );
        assert!(
            md.contains("| full | 0.2500 | 0.3000 | – | 0.0500 |"),
            "{md}"
        );
        // MRR was not given: shown as a dash, never NaN.
        assert!(!md.contains("NaN"));
    }

    #[test]
    fn valid_figures_out_of_range_or_without_a_current_ranking_are_refused() {
        let path = std::path::Path::new("eval_valid.parquet");
        let names = vec!["covisitation".to_string(), "full".to_string()];
        let sound = vec![
            row("covisitation", "ndcg", 20, 0.4),
            row("full", "ndcg", 20, 0.5),
        ];
        assert!(check_valid_figures(path, sound.clone(), &names, 20).is_ok());

        for bad in [f64::NAN, -0.1, 1.5] {
            let mut rows = sound.clone();
            rows[0].value = Some(bad);
            let reason = check_valid_figures(path, rows, &names, 20).unwrap_err();
            assert!(
                reason.contains("ndcg of `covisitation`") && reason.contains("outside [0, 1]"),
                "{reason}"
            );
        }
        let reason = check_valid_figures(path, sound.clone(), &names, 10).unwrap_err();
        assert!(reason.contains("no NDCG@10 of `covisitation`"), "{reason}");
        let reason = check_valid_figures(path, sound[..1].to_vec(), &names, 20).unwrap_err();
        assert!(reason.contains("no NDCG@20 of `full`"), "{reason}");
    }

    /// A valid-split report context whose best component, `twotower_mean`, leads `full` by
    /// `-gap`.
    fn context_with_parts(part_effects: Vec<PartEffect>, gap: f64) -> Context {
        Context {
            dataset: "d".into(),
            split: "valid".into(),
            n_test_rows: 10,
            n_sources_with_truth: 3,
            n_sources: 3,
            n_pairs: 4,
            window_hours: 24.0,
            top_n: 50,
            ks: vec![20],
            objectives: vec![],
            rankings: vec!["twotower_mean".into(), "full".into()],
            related_check: (3, 3),
            comparison: Some(Comparison {
                best: "twotower_mean".into(),
                difference: gap,
                standard_error: 0.003,
                n_sources: 3,
            }),
            comparison_valid_choice: None,
            part_effects,
            learned_weights_inert: false,
            dislikes: (0, 0),
            plots: Ok(vec![]),
            valid: None,
        }
    }

    fn effect(part: Part, difference: f64, standard_error: f64) -> PartEffect {
        PartEffect {
            part,
            difference,
            standard_error,
            n_sources: 3,
        }
    }

    #[test]
    fn part_section_names_the_part_that_costs_most() {
        let rows = vec![
            row("full", "ndcg", 20, 0.50),
            row("full_without_linear", "ndcg", 20, 0.51),
            row("full_without_covisitation", "ndcg", 20, 0.515),
            row("merged_manual", "ndcg", 20, 0.50),
            row("twotower_mean", "ndcg", 20, 0.517),
        ];
        let c = context_with_parts(
            vec![
                effect(Part::Linear, 0.010, 0.002),
                // Larger, but within two standard errors: not named.
                effect(Part::Covisitation, 0.015, 0.010),
            ],
            -0.017,
        );
        let c = Context {
            learned_weights_inert: true,
            ..c
        };
        let md = markdown(&rows, &c);
        assert!(
            md.contains("| the linear model (ALS) in each objective's similarity s_k | full_without_linear | 0.5100 | +0.0100 ± 0.0020 |"),
            "{md}"
        );
        assert!(
            md.contains("Leaving out the linear model (ALS) in each objective's similarity s_k raises NDCG@20 the most (+0.0100 ± 0.0020)")
                && md.contains("`full` trails `twotower_mean` by 0.0170; `full_without_linear` scores 0.5100 against `twotower_mean`'s 0.5170."),
            "{md}"
        );
        assert!(md.contains("cannot change the ranking here"), "{md}");
    }

    #[test]
    fn part_section_says_when_no_part_holds_full_back() {
        let rows = vec![row("full", "ndcg", 20, 0.5)];
        let c = context_with_parts(
            vec![
                effect(Part::Linear, -0.02, 0.002),
                effect(Part::Covisitation, 0.001, 0.002),
            ],
            0.01,
        );
        let md = markdown(&rows, &c);
        assert!(md.contains("No part's removal raises NDCG@20"), "{md}");
        assert!(!md.contains("trails"), "{md}");
        assert!(!md.contains("cannot change the ranking here"), "{md}");
    }

    #[test]
    fn best_component_leaves_out_popularity_and_the_merges() {
        let rows = vec![
            row("popularity", "ndcg", 20, 0.9),
            row("full", "ndcg", 20, 0.8),
            row("twotower_mean", "ndcg", 20, 0.3),
            row("covisitation", "ndcg", 20, 0.2),
            row("full_max", "ndcg", 20, 0.7),
        ];
        let names: Vec<String> = [
            "popularity",
            "full",
            "twotower_mean",
            "covisitation",
            "full_max",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            best_component(&rows, &names, 20).as_deref(),
            Some("twotower_mean")
        );
    }

    #[test]
    fn headline_k_prefers_20() {
        assert_eq!(headline_k(&[10, 20, 50]), 20);
        assert_eq!(headline_k(&[5, 50]), 5);
    }
}
