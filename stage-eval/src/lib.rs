//! `stage-eval`: offline evaluation of every related-video ranking the pipeline can produce,
//! against what users watched next in the test split.
//!
//! Reads, in the dataset folder: `interactions.parquet` (test rows for the ground truth,
//! train rows for the popularity baseline), the row counts of `users.parquet` and
//! `videos.parquet`, `candidates.parquet`, per objective `als_<obj>.parquet` and
//! `twotower_<obj>.parquet`, `weights.parquet` and `related.parquet`. Nothing is retrained:
//! every ranking is rebuilt from those files.
//!
//! Writes `eval.parquet` (one row per ranking × objective × metric × K) and `report.md`.
//!
//! Steps: `truth` (ground truth per source), `rankings` (one list per source and ranking),
//! `metrics` (per-list figures and their means), `report` (outputs). `inputs` reads the
//! files; `common::scale` is the percentile scale the merge uses, recomputed here.

pub mod args;
pub mod config;
pub mod inputs;
pub mod metrics;
pub mod rankings;
pub mod report;
use common::scale;
pub mod truth;

use std::time::Instant;

use anyhow::Result;
use common::Summary;

pub use config::Config;
use metrics::MetricRow;
use rankings::Ranking;

/// Stage name in logs, summaries and file metadata.
pub const STAGE: &str = "stage-eval";
/// Output file names inside the dataset folder.
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
        "test split: {} rows, {} sources with a ground truth, {} evaluated, {} pairs",
        log.test.user.len(),
        full_truth.sources.len(),
        sources.len(),
        n_pairs
    );
    if sources.is_empty() {
        anyhow::bail!(
            "{}: no test-split engagement is followed by another within {} h: nothing to \
             evaluate (try a larger [eval] window_hours, or 0 for no window)",
            log.path.display(),
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
    let mut linear_all = Vec::with_capacity(n_objectives);
    let mut nonlinear_all = Vec::with_capacity(n_objectives);
    let mut scaled = Vec::with_capacity(n_objectives);
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
        scaled.push(scale::combine_max(
            &scale::empirical_cdf(&linear),
            &scale::empirical_cdf(&nonlinear),
        ));
        linear_all.push(linear);
        nonlinear_all.push(nonlinear);
        tracing::info!("objective {name}: scores read");
        bar.inc(1);
    }
    bar.finish_and_clear();
    for (name, columns) in [("als_mean", &linear_all), ("twotower_mean", &nonlinear_all)] {
        let score = rankings::mean(columns);
        ranked.push(Ranking {
            name: name.into(),
            lists: rankings::by_score(&candidates, &score, sources, top_n),
        });
    }
    drop((linear_all, nonlinear_all));

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
    let mut full_score = Vec::new();
    for (name, factors) in [
        ("merged_equal", vec![1.0; n_objectives]),
        ("merged_manual", manual.clone()),
        ("full", full_factors),
    ] {
        let score = rankings::weighted_sum(&scaled, &factors);
        ranked.push(Ranking {
            name: name.into(),
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
    let mut rows: Vec<MetricRow> = Vec::new();
    for ranking in &ranked {
        rows.extend(metrics::relevance_rows(
            &ranking.name,
            "all",
            &ranking.lists,
            &truth.engaged,
            ks,
            top_n,
        ));
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
    }

    // 5. Outputs. The folder is left out of the file metadata, as in every stage.
    let mut in_files = config.to_json();
    if let Some(map) = in_files.as_object_mut() {
        map.remove("dir");
    }
    let meta = common::stage_meta(STAGE, env!("CARGO_PKG_VERSION"), config.seed, in_files);
    // report.md first: eval.parquet is what make waits for, so it is renamed in last.
    let context = report::Context {
        dataset: dir.display().to_string(),
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
    };
    let report_path = dir.join(REPORT_FILE);
    let markdown = report::markdown(&rows, &context);
    common::io::write_atomic(&report_path, markdown.as_bytes())?;
    summary.output(&report_path, markdown.lines().count() as u64);
    let eval_path = dir.join(EVAL_FILE);
    let n_rows = report::write_parquet(&eval_path, &rows, &meta)?;
    summary.output(&eval_path, n_rows);

    // 6. Summary: the headline figure of every ranking.
    let k = report::headline_k(ks);
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
    summary.metric("full_matches_related", equal);
    Ok(summary.finish(started))
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}
