//! `stage-eval`: offline evaluation of every related-video ranking the pipeline can produce,
//! against what users watched next in the test split (or, with `--split valid`, in the
//! valid split that settings are tuned on).
//!
//! Reads, in the dataset folder: `interactions.parquet` (test rows for the ground truth,
//! train rows for the popularity baseline, valid rows for the calibration of
//! `calibrated_max`, fitted as stage-merge fits it), the row counts of `users.parquet` and
//! `videos.parquet`, `candidates.parquet`, per objective `als_<obj>.parquet` and
//! `twotower_<obj>.parquet`, `weights.parquet` and `related.parquet`. Nothing is retrained:
//! every ranking is rebuilt from those files.
//!
//! Writes `eval.parquet` (one row per ranking × objective × metric × K), `report.md` and
//! three PNG charts (`plots`; skipped with a warning when no font is found); with
//! `--split valid` the same files with a `_valid` suffix.
//!
//! Steps: `truth` (ground truth per source, stage-merge's module, shared with its
//! calibration), `rankings` (one list per source and ranking),
//! `metrics` (per-list figures and their means), `plots` (charts), `report` (outputs). `inputs` reads the
//! files; `common::scale` (the percentile scale) and `stage_merge::score` (the merge's
//! formula) are the merge's own code, so the merged rankings are recomputed exactly.

pub mod args;
pub mod config;
pub mod inputs;
pub mod metrics;
pub mod parts;
pub mod plots;
pub mod rankings;
pub mod report;
use common::scale;
pub use stage_merge::truth;

use std::time::Instant;

use anyhow::Result;
use common::Summary;
use stage_merge::calibrate;
use stage_merge::score::{Combine, ScoreSettings};

pub use config::Config;
use metrics::MetricRow;
use parts::{MergeInputs, Models, Part};
use rankings::Ranking;

/// Stage name in logs, summaries and file metadata.
pub const STAGE: &str = "stage-eval";
/// Output file names inside the dataset folder (test split; see `Config::output_name`).
pub const EVAL_FILE: &str = "eval.parquet";
pub const REPORT_FILE: &str = "report.md";

/// Evaluates every ranking and writes `eval.parquet` and `report.md`.
pub fn run(config: &Config) -> Result<Summary> {
    let started = Instant::now();
    let dir = &config.dir;
    tracing::info!("{STAGE}: settings {}", config.to_json());
    let mut summary = Summary::new(STAGE, config.seed, config.to_json());

    // 1. Ground truth from the test split, optionally a seeded sample of its sources.
    let log = inputs::read_log(config)?;
    summary.input(&log.path, log.n_rows as u64);
    let n_objectives = config.objectives.len();
    let full_truth = truth::build(&log.test, n_objectives, config.window_ms);
    let truth = if config.max_sources > 0 && full_truth.sources.len() > config.max_sources {
        let mut positions: Vec<usize> = (0..full_truth.sources.len()).collect();
        positions.sort_by_key(|&p| {
            common::rng::derive_seed(config.seed, "eval-sources", full_truth.sources[p] as u64)
        });
        positions.truncate(config.max_sources);
        positions.sort_unstable();
        full_truth.select(&positions)
    } else {
        full_truth.clone()
    };
    let sources = &truth.sources;
    let n_pairs = truth::Truth::n_pairs(&truth.engaged);
    tracing::info!(
        "{} split: {} rows, {} sources with a ground truth, {} evaluated, {} pairs",
        config.split.as_str(),
        log.test.user.len(),
        full_truth.sources.len(),
        sources.len(),
        n_pairs
    );
    if sources.is_empty() {
        anyhow::bail!(
            "{}: no {}-split engagement is followed by another within {} h: nothing to \
             evaluate (try a larger [eval] window_hours, or 0 for no window)",
            log.path.display(),
            config.split.as_str(),
            config.window_hours
        );
    }

    // 2. Rankings. Scores are read one file at a time; the CDFs of each objective are kept
    //    for the merged rankings.
    let candidates = inputs::read_candidates(dir, log.n_videos)?;
    summary.input(&candidates.path, candidates.len() as u64);
    let top_n = config.top_n;
    let mut ranked: Vec<Ranking> = vec![
        Ranking {
            name: "popularity".into(),
            lists: rankings::popularity(&log.train_counts, sources, top_n),
        },
        Ranking {
            name: "covisitation".into(),
            lists: rankings::by_file_rank(&candidates, sources, top_n),
        },
    ];
    // The calibrated_max maps, fitted on the valid split exactly as stage-merge fits them;
    // without a valid-split truth only the percentile rules are compared (unless the
    // configured rule needs them, which is then an error, as in stage-merge).
    let labels: Vec<common::LabelRule> =
        config.objectives.iter().map(|o| o.label.clone()).collect();
    let calibration = match calibrate::valid_labels(
        dir,
        &labels,
        config.score.calibration_window_ms,
        &candidates.source_idx,
        &candidates.candidate_idx,
    ) {
        Ok(labels) => Some(labels),
        Err(e) if !config.score.calibrated() => {
            tracing::warn!("no calibrated_max ranking: {e:#}");
            None
        }
        Err(e) => return Err(e),
    };
    // The two means are summed as the files are read, so the raw columns are dropped at once.
    let mut linear_sum = rankings::ColumnSum::new(candidates.len());
    let mut nonlinear_sum = rankings::ColumnSum::new(candidates.len());
    let per_objective = 1.0 / n_objectives as f64;
    let mut linear_cdf = Vec::with_capacity(n_objectives);
    let mut nonlinear_cdf = Vec::with_capacity(n_objectives);
    let mut linear_prob = Vec::with_capacity(n_objectives);
    let mut nonlinear_prob = Vec::with_capacity(n_objectives);
    let bar = common::progress::bar(n_objectives as u64, "objectives");
    for objective in &config.objectives {
        let name = &objective.name;
        let als_path = dir.join(format!("als_{name}.parquet"));
        let twotower_path = dir.join(format!("twotower_{name}.parquet"));
        let linear = common::aligned::read_aligned_scores(
            &als_path,
            inputs::LINEAR_SCORE,
            &candidates.pairs(),
        )?;
        let nonlinear = common::aligned::read_aligned_scores(
            &twotower_path,
            inputs::NONLINEAR_SCORE,
            &candidates.pairs(),
        )?;
        summary.input(&als_path, candidates.len() as u64);
        summary.input(&twotower_path, candidates.len() as u64);
        ranked.push(Ranking {
            name: format!("als_{name}"),
            lists: rankings::by_score(&candidates, &linear, sources, top_n),
        });
        ranked.push(Ranking {
            name: format!("twotower_{name}"),
            lists: rankings::by_score(&candidates, &nonlinear, sources, top_n),
        });
        linear_cdf.push(scale::empirical_cdf(&linear));
        nonlinear_cdf.push(scale::empirical_cdf(&nonlinear));
        if let Some((per_objective, _)) = &calibration {
            let k = linear_cdf.len() - 1;
            let l = &per_objective[k];
            linear_prob.push(calibrate::calibrate(&linear, l, &format!("als_{name}"))?);
            nonlinear_prob.push(calibrate::calibrate(
                &nonlinear,
                l,
                &format!("twotower_{name}"),
            )?);
        }
        // ALS scores of different objectives are not on one scale (the audience score keeps
        // the factors' lengths), so ALS is averaged over its percentiles; the two-tower
        // cosines share one scale and are averaged as they are.
        linear_sum.add(linear_cdf.last().expect("pushed above"), per_objective);
        nonlinear_sum.add(&nonlinear, per_objective);
        tracing::info!("objective {name}: scores read");
        bar.inc(1);
    }
    bar.finish_and_clear();
    for (name, sum) in [("als_mean", linear_sum), ("twotower_mean", nonlinear_sum)] {
        let score = sum.finish();
        ranked.push(Ranking {
            name: name.into(),
            lists: rankings::by_score(&candidates, &score, sources, top_n),
        });
    }

    let manual: Vec<f64> = config.objectives.iter().map(|o| o.weight).collect();
    let named: Vec<(String, f64)> = config
        .objectives
        .iter()
        .map(|o| (o.name.clone(), o.weight))
        .collect();
    let weights_path = dir.join(common::schema::files::WEIGHTS);
    let learned = inputs::read_learned_weights(dir, &named)?;
    summary.input(&weights_path, n_objectives as u64);
    let full_factors: Vec<f64> = manual.iter().zip(&learned).map(|(a, w)| a * w).collect();
    let covisitation_cdf = scale::empirical_cdf(&candidates.score);
    let covisitation_prob = match &calibration {
        Some((_, engaged)) => calibrate::calibrate(&candidates.score, engaged, "co-visitation")?,
        None => Vec::new(),
    };
    let previous = ScoreSettings::PREVIOUS;
    let both = |factors: &[f64], settings: ScoreSettings| MergeInputs {
        models: Models::Both,
        factors: factors.to_vec(),
        settings,
    };
    let mut merges = vec![
        (
            "merged_equal".to_string(),
            both(&vec![1.0; n_objectives], config.score),
        ),
        ("merged_manual".to_string(), both(&manual, config.score)),
        ("full".to_string(), both(&full_factors, config.score)),
        ("full_previous".to_string(), both(&full_factors, previous)),
    ];
    // `full` under the other combine rules, all else equal, for the before/after figures.
    for (combine, label) in [
        (Combine::CalibratedMax, "calibrated_max"),
        (Combine::Max, "max"),
        (Combine::Blend, "blend"),
    ] {
        if combine != config.score.combine
            && (calibration.is_some() || combine != Combine::CalibratedMax)
        {
            let settings = ScoreSettings {
                combine,
                ..config.score
            };
            merges.push((format!("full_{label}"), both(&full_factors, settings)));
        }
    }
    // `full` without each part of its formula (merged_manual is the one without w_k).
    let mut parts: Vec<Part> = Vec::new();
    for part in Part::ALL {
        if let Some(inputs) = part.inputs(&manual, &full_factors, &config.score) {
            if !merges.iter().any(|(name, _)| *name == part.ranking()) {
                merges.push((part.ranking(), inputs));
            }
            parts.push(part);
        }
    }
    let merged = |inputs: &MergeInputs| {
        let (linear, nonlinear, covisitation) = if inputs.settings.calibrated() {
            (&linear_prob, &nonlinear_prob, &covisitation_prob)
        } else {
            (&linear_cdf, &nonlinear_cdf, &covisitation_cdf)
        };
        let (linear, nonlinear) = match inputs.models {
            Models::Both => (linear, nonlinear),
            Models::NonlinearOnly => (nonlinear, nonlinear),
            Models::LinearOnly => (linear, linear),
        };
        rankings::merged_score(
            linear,
            nonlinear,
            covisitation,
            &inputs.factors,
            &inputs.settings,
        )
    };
    let mut full_score = Vec::new();
    for (name, inputs) in merges {
        let score = merged(&inputs);
        ranked.push(Ranking {
            name: name.clone(),
            lists: rankings::by_score(&candidates, &score, sources, top_n),
        });
        if name == "full" {
            full_score = score;
        }
    }

    // 3. The recomputed `full` order must be related.parquet's; a difference means the
    //    inputs changed after the merge ran.
    let related = inputs::read_related(dir)?;
    let related_path = dir.join(common::schema::files::RELATED);
    summary.input(
        &related_path,
        related.iter().map(|(_, l)| l.len() as u64).sum(),
    );
    let related_sources: Vec<u32> = related.iter().map(|(s, _)| *s).collect();
    let recomputed = rankings::by_score(&candidates, &full_score, &related_sources, top_n);
    let equal = related
        .iter()
        .zip(&recomputed)
        .filter(|((_, a), b)| a == *b)
        .count();
    if equal != related.len() {
        tracing::warn!(
            "the recomputed full ranking differs from {} on {} of {} sources: re-run \
             stage-merge on the current inputs",
            related_path.display(),
            related.len() - equal,
            related.len()
        );
    }

    // 4. Metrics.
    let ks = &config.ks;
    let metric_rows = |ranking: &Ranking| {
        let mut rows = metrics::relevance_rows(
            &ranking.name,
            "all",
            &ranking.lists,
            &truth.engaged,
            ks,
            top_n,
        );
        for (objective, lists) in config.objectives.iter().zip(&truth.objectives) {
            rows.extend(metrics::relevance_rows(
                &ranking.name,
                &objective.name,
                &ranking.lists,
                lists,
                ks,
                top_n,
            ));
        }
        rows.extend(metrics::list_rows(
            &ranking.name,
            &ranking.lists,
            &truth.engaged,
            &truth.disliked,
            ks,
            log.n_videos,
        ));
        rows
    };
    let mut rows: Vec<MetricRow> = ranked.iter().flat_map(metric_rows).collect();

    // The full pipeline against the best single component, source by source. When that
    // component is one objective's model, `full` with that objective alone tells how much
    // of the gap is the mix of objectives (added after `names`: the valid split may have
    // picked another component, so the ranking is not required in eval_valid.parquet).
    let k = report::headline_k(ks);
    let names: Vec<String> = ranked.iter().map(|r| r.name.clone()).collect();
    let objective_names: Vec<String> = config.objectives.iter().map(|o| o.name.clone()).collect();
    let best = report::best_component(&rows, &names, k);
    if let Some(part) = best
        .as_deref()
        .and_then(|best| Part::other_objectives_of(best, &objective_names, &full_factors))
    {
        if let Some(inputs) = part.inputs(&manual, &full_factors, &config.score) {
            let ranking = Ranking {
                name: part.ranking(),
                lists: rankings::by_score(&candidates, &merged(&inputs), sources, top_n),
            };
            rows.extend(metric_rows(&ranking));
            ranked.push(ranking);
            parts.push(part);
        }
    }
    let lists_of = |name: &str| ranked.iter().find(|r| r.name == name).map(|r| &r.lists);
    let compare_with = |best: String| {
        let (difference, standard_error, n_sources) = metrics::paired_ndcg_difference(
            lists_of("full")?,
            lists_of(&best)?,
            &truth.engaged,
            k,
        )?;
        Some(report::Comparison {
            best,
            difference,
            standard_error,
            n_sources,
        })
    };
    let comparison = best.and_then(compare_with);
    // What each part adds: `full` without it against `full`, source by source.
    let part_effects: Vec<report::PartEffect> = parts
        .iter()
        .filter_map(|part| {
            let (difference, standard_error, n_sources) = metrics::paired_ndcg_difference(
                lists_of(&part.ranking())?,
                lists_of("full")?,
                &truth.engaged,
                k,
            )?;
            Some(report::PartEffect {
                part: part.clone(),
                difference,
                standard_error,
                n_sources,
            })
        })
        .collect();
    // The component a user would have picked without the test split: the best on valid.
    let valid = valid_figures(config, &names, k);
    let comparison_valid_choice = match &valid {
        Some(Ok(valid_rows)) => {
            report::best_component(valid_rows, &names, k).and_then(compare_with)
        }
        _ => None,
    };
    let dislike_bit = 1u64 << n_objectives;
    let disliked: Vec<usize> = (0..log.test.flags.len())
        .filter(|&r| log.test.flags[r] & dislike_bit != 0)
        .collect();
    let unseen = disliked
        .iter()
        .filter(|&&r| log.train_counts[log.test.video[r] as usize] == 0)
        .count();

    // 5. Outputs. The folder is left out of the file metadata, as in every stage.
    let mut in_files = config.to_json();
    if let Some(map) = in_files.as_object_mut() {
        map.remove("dir");
    }
    let meta = common::stage_meta(STAGE, env!("CARGO_PKG_VERSION"), config.seed, in_files);
    // Charts and report.md first: eval.parquet is what make waits for, so it is renamed in
    // last.
    let context = report::Context {
        dataset: dir.display().to_string(),
        split: config.split.as_str().to_string(),
        n_test_rows: log.test.user.len(),
        n_sources_with_truth: full_truth.sources.len(),
        n_sources: sources.len(),
        n_pairs,
        window_hours: config.window_hours,
        top_n,
        ks: ks.clone(),
        objectives: config.objectives.iter().map(|o| o.name.clone()).collect(),
        rankings: ranked.iter().map(|r| r.name.clone()).collect(),
        related_check: (related.len(), equal),
        comparison,
        comparison_valid_choice,
        part_effects,
        learned_weights_inert: !parts::learned_weights_matter(&manual, &full_factors),
        dislikes: (disliked.len() as u64, unseen as u64),
        valid,
        plots: match plots::draw(dir, config, &rows, k, &learned) {
            Ok(files) => Ok(files),
            Err(e) => {
                tracing::warn!("no plots drawn: {e:#}");
                Err(format!("{e:#}"))
            }
        },
    };
    let comparison_json = |comparison: &Option<report::Comparison>| {
        comparison.as_ref().map(|c| {
            serde_json::json!({
                "best_component": c.best,
                "ndcg_difference": round4(c.difference),
                "standard_error": round4(c.standard_error),
                "n_sources": c.n_sources,
            })
        })
    };
    let plots_json = match &context.plots {
        Ok(files) => serde_json::json!(files),
        Err(reason) => serde_json::json!({ "skipped": reason }),
    };
    let report_path = dir.join(config.output_name("report", "md"));
    let markdown = report::markdown(&rows, &context);
    common::io::write_atomic(&report_path, markdown.as_bytes())?;
    summary.output(&report_path, markdown.lines().count() as u64);
    let eval_path = dir.join(config.output_name("eval", "parquet"));
    let n_rows = report::write_parquet(&eval_path, &rows, &meta)?;
    summary.output(&eval_path, n_rows);

    // 6. Summary: the headline figure of every ranking.
    let headline = |metric: &str| -> serde_json::Map<String, serde_json::Value> {
        ranked
            .iter()
            .filter_map(|r| {
                rows.iter()
                    .find(|m| {
                        m.ranking == r.name
                            && m.objective == "all"
                            && m.metric == metric
                            && m.k as usize == k
                    })
                    .map(|m| (r.name.clone(), m.value.map(round4).into()))
            })
            .collect()
    };
    summary.metric("n_test_rows", log.test.user.len());
    summary.metric("n_sources_with_truth", full_truth.sources.len());
    summary.metric("n_sources", sources.len());
    summary.metric("n_pairs", n_pairs);
    summary.metric("n_rankings", ranked.len());
    summary.metric("headline_k", k);
    summary.metric("ndcg", headline("ndcg"));
    summary.metric("dislike_share", headline("dislike_share"));
    summary.metric("related_sources", related.len());
    summary.metric(
        "full_vs_best_component",
        comparison_json(&context.comparison),
    );
    summary.metric(
        "full_vs_valid_best_component",
        comparison_json(&context.comparison_valid_choice),
    );
    let parts_json: serde_json::Map<String, serde_json::Value> = context
        .part_effects
        .iter()
        .map(|effect| {
            let figures = serde_json::json!({
                "ranking": effect.part.ranking(),
                "ndcg_difference": round4(effect.difference),
                "standard_error": round4(effect.standard_error),
            });
            (effect.part.key().to_string(), figures)
        })
        .collect();
    summary.metric("full_without_part", parts_json);
    summary.metric("plots", plots_json);
    summary.metric("full_matches_related", equal);
    Ok(summary.finish(started))
}

/// The valid-split figures for the test report: eval_valid.parquet when it was written after
/// related.parquet (so it measured the current merge) and holds a sound NDCG at the
/// headline `k` for every ranking of this run; None on a valid-split run.
fn valid_figures(
    config: &Config,
    rankings: &[String],
    k: usize,
) -> Option<Result<Vec<MetricRow>, String>> {
    if config.split != common::Split::Test {
        return None;
    }
    let dir = &config.dir;
    let valid = dir.join("eval_valid.parquet");
    let related = dir.join(common::schema::files::RELATED);
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some(match (modified(&valid), modified(&related)) {
        (None, _) => Err(format!(
            "{} does not exist (run stage-eval --split valid)",
            valid.display()
        )),
        (Some(v), Some(r)) if v < r => Err(format!(
            "{} is older than {} (re-run stage-eval --split valid)",
            valid.display(),
            related.display()
        )),
        _ => report::read_parquet(&valid)
            .map_err(|e| format!("{e:#}"))
            .and_then(|rows| report::check_valid_figures(&valid, rows, rankings, k)),
    })
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}
