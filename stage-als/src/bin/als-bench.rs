//! `als-bench`: times relvid's ALS on the anchors' own holdout split (shared/bench), for a
//! side-by-side comparison with `implicit` (implicit feedback, conjugate gradient) and
//! Spark MLlib (explicit ratings), and measures the same held-out quality they report.
//!
//! Reads `--input` (the train Parquet: user and video id columns, Int64/Int32/UInt32 or
//! Utf8, plus `--rating-col` in explicit mode) and optionally `--test`; without `--input`
//! it generates a synthetic log (implicit mode only, no quality). Writes nothing; prints
//! one JSON line on stdout (logs on stderr). Implicit confidence: every train row is one
//! event and a (user, video) pair's events add up to n; the confidence is 1 + alpha * n
//! (Hu, Koren and Volinsky; relvid's convention), or alpha * n with `--confidence implicit`
//! (the `implicit` library's convention). Explicit ratings: rows repeating a pair count as
//! one observation of their mean (`--repeated-ratings mean`, the stage's default) or each
//! as an observation (`each`, as Spark MLlib).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use clap::Parser;
use rand::Rng;
use serde_json::{json, Value};

use stage_als::evaluate::{ranking_quality, rmse, test_ranks};
use stage_als::fit::{fit_explicit, fit_implicit, AlsModel, IterationStats};
use stage_als::matrix::{Csr, ExplicitCell, Implicit, ImplicitCsr, RatingRows};
use stage_als::params::{AlsSection, FitParams, Mode, RepeatedRatings, Solver};

/// Time relvid's ALS on a holdout split (or a generated log) and measure its quality
#[derive(Debug, Parser)]
#[command(name = "als-bench", version)]
struct Args {
    /// Train log (.parquet); without it a synthetic log is generated (implicit mode only)
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Test rows (.parquet, same columns): recall/NDCG (implicit) or RMSE (explicit)
    #[arg(long, value_name = "FILE")]
    test: Option<PathBuf>,
    /// User id column
    #[arg(long, default_value = "user_id")]
    user_col: String,
    /// Video id column
    #[arg(long, default_value = "video_id")]
    item_col: String,
    /// Rating column (explicit mode)
    #[arg(long, default_value = "rating")]
    rating_col: String,
    /// "implicit" (confidence-weighted, every cell) or "explicit" (ratings)
    #[arg(long, default_value = "implicit")]
    mode: String,
    /// Latent factors
    #[arg(long, default_value_t = 64)]
    factors: usize,
    /// Alternating iterations (a user and a video half-sweep each)
    #[arg(long, default_value_t = 15)]
    iterations: usize,
    /// L2 weight lambda
    #[arg(long, default_value_t = 0.01)]
    regularization: f64,
    /// "none" (plain lambda, as implicit) or "count" (lambda x row count, as Spark);
    /// default: none in implicit mode, count in explicit mode
    #[arg(long)]
    lambda_scaling: Option<String>,
    /// Implicit confidence scale
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// Implicit confidence of a pair with n events: "relvid" = 1 + alpha n, "implicit" =
    /// alpha n (the implicit library's)
    #[arg(long, default_value = "relvid")]
    confidence: String,
    /// Explicit mode: rows repeating a (user, video) pair count as one observation of their
    /// mean ("mean") or each as one observation ("each", as Spark MLlib), in the loss and
    /// in count-scaled lambda
    #[arg(long, default_value = "mean")]
    repeated_ratings: String,
    /// "auto" (the stage's rule: cg in implicit mode with regularization > 0, else
    /// cholesky), "cg" or "cholesky"
    #[arg(long, default_value = "auto")]
    solver: String,
    /// Conjugate-gradient steps per row and half-sweep (implicit's default is 3)
    #[arg(long, default_value_t = 3)]
    cg_steps: usize,
    /// Standard deviation of the Gaussian initial factors (the stage's `init_std`); Spark
    /// MLlib starts from rows of unit norm, which 1/sqrt(factors) matches in scale
    #[arg(long, default_value_t = 0.1)]
    init_std: f64,
    /// Worker threads (>= 1)
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seed of the initial factors and the generated log
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Cut-off K of recall@K and NDCG@K
    #[arg(long, default_value_t = 20)]
    cutoff: u32,
    /// Generated rows (no --input)
    #[arg(long, default_value_t = 5_000_000)]
    rows: usize,
    /// Generated users (no --input)
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Generated videos (no --input)
    #[arg(long, default_value_t = 20_000)]
    items: usize,
    /// Zipf exponent of generated video popularity
    #[arg(long, default_value_t = 0.9)]
    zipf: f64,
}

/// The checked settings.
struct Bench {
    mode: Mode,
    repeated_ratings: RepeatedRatings,
    fit: FitParams,
    alpha: f64,
    hkv_confidence: bool,
}

fn validate(args: &Args) -> Result<Bench> {
    let mode_default = |implicit: &str, explicit: &str| {
        if args.mode == "explicit" {
            explicit.to_string()
        } else {
            implicit.to_string()
        }
    };
    let section = AlsSection {
        mode: args.mode.clone(),
        factors: args.factors,
        regularization: args.regularization,
        lambda_scaling: args
            .lambda_scaling
            .clone()
            .unwrap_or_else(|| mode_default("none", "count")),
        repeated_ratings: args.repeated_ratings.clone(),
        iterations: args.iterations,
        alpha: args.alpha,
        solver: args.solver.clone(),
        cg_steps: args.cg_steps,
        init_std: args.init_std,
        ..AlsSection::default()
    };
    let params = section.validate(args.seed)?;
    let hkv_confidence = match args.confidence.as_str() {
        "relvid" => true,
        "implicit" => false,
        other => bail!("--confidence {other:?}: use \"relvid\" or \"implicit\""),
    };
    if args.threads == 0 {
        bail!("--threads 0: give the number of threads (>= 1) so runs compare");
    }
    if args.cutoff == 0 {
        bail!("--cutoff 0: must be >= 1");
    }
    if args.input.is_none() && params.mode == Mode::Explicit {
        bail!("--mode explicit needs --input (the generator makes no ratings)");
    }
    if args.input.is_none() && (args.users == 0 || args.items == 0 || args.rows == 0) {
        bail!("--rows, --users and --items must be >= 1");
    }
    Ok(Bench {
        mode: params.mode,
        repeated_ratings: params.repeated_ratings,
        fit: params.fit,
        alpha: args.alpha,
        hkv_confidence,
    })
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("als-bench: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let bench = validate(&args)?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()?;
    let load1 = load_average();

    // Load (not timed as fit): dense indices in sorted id order.
    let started = Instant::now();
    let log = match &args.input {
        Some(path) => read_log(path, &args, bench.mode)?,
        None => generate(&args),
    };
    let test = match &args.test {
        Some(path) => Some(read_log(path, &args, bench.mode)?),
        None => None,
    };
    let load_s = started.elapsed().as_secs_f64();
    eprintln!(
        "train: {} rows, {} users x {} videos ({load_s:.1} s to read)",
        log.users.len(),
        log.user_ids.len(),
        log.video_ids.len()
    );

    // Fit.
    let k = bench.fit.factors;
    let mut history: Vec<IterationStats> = Vec::new();
    let mut cpu_per_iteration: Vec<f64> = Vec::new();
    let mut cpu_before = process_cpu_seconds();
    let mut on_iteration = |stats: &IterationStats| {
        let cpu_now = process_cpu_seconds();
        let cpu = cpu_now.zip(cpu_before).map(|(now, before)| now - before);
        cpu_before = cpu_now;
        eprintln!(
            "iteration {}: {:.3} s (users {:.3} s), {:.1} GFLOP/s, {} CPU s with the loss, \
             train loss {:.6}",
            stats.iteration,
            stats.sweep_seconds,
            stats.user_sweep_seconds,
            stats.sweep_flops as f64 / stats.sweep_seconds / 1e9,
            cpu.map_or("?".to_string(), |c| format!("{c:.2}")),
            stats.train_metric
        );
        cpu_per_iteration.extend(cpu);
        history.push(stats.clone());
    };
    let started = Instant::now();
    let (model, nnz, quality) = match bench.mode {
        Mode::Implicit => {
            let matrix = implicit_matrix(&log, &bench)?;
            let model = fit_implicit(&matrix, None, &bench.fit, &mut on_iteration)?;
            let fit_s = started.elapsed().as_secs_f64();
            let quality = test
                .as_ref()
                .map(|t| ranking(&matrix, &model, &log, t, k, args.cutoff));
            ((model, fit_s), matrix.nnz(), quality)
        }
        Mode::Explicit => match bench.repeated_ratings {
            RepeatedRatings::Mean => {
                let cells = &log.ratings;
                explicit_fit(
                    &log,
                    cells,
                    test.as_ref(),
                    &bench.fit,
                    started,
                    &mut on_iteration,
                )?
            }
            RepeatedRatings::Each => {
                let cells: Vec<RatingRows> =
                    log.ratings.iter().map(|&r| RatingRows::one(r)).collect();
                explicit_fit(
                    &log,
                    &cells,
                    test.as_ref(),
                    &bench.fit,
                    started,
                    &mut on_iteration,
                )?
            }
        },
    };
    let (model, fit_s) = model;

    // Report.
    let sweeps: Vec<f64> = history.iter().map(|s| s.sweep_seconds).collect();
    let flops: u64 = history.iter().map(|s| s.sweep_flops).sum();
    let sweep_total: f64 = sweeps.iter().sum();
    let gflops = flops as f64 / sweep_total / 1e9;
    let peak = Peak::of_this_machine(args.threads);
    let mut out = json!({
        "tool": "relvid",
        "bench": if bench.mode == Mode::Implicit { "als_implicit" } else { "als_explicit" },
        "input": args.input.as_ref().map(|p| p.display().to_string()),
        "test": args.test.as_ref().map(|p| p.display().to_string()),
        "rows": log.users.len(),
        "users": log.user_ids.len(),
        "items": log.video_ids.len(),
        "nnz": nnz,
        "factors": k,
        "threads": args.threads,
        "iterations": history.len(),
        "regularization": bench.fit.regularization,
        "lambda_scaling": bench.fit.lambda_scaling,
        "solver": bench.fit.solver,
        "cg_steps": (bench.fit.solver == Solver::Cg).then_some(bench.fit.cg_steps),
        "init_std": bench.fit.init_std,
        "s_per_iter": median(&sweeps),
        "s_per_iter_min": sweeps.iter().copied().fold(f64::INFINITY, f64::min),
        "s_per_iter_all": sweeps,
        "fit_s": fit_s,
        "cpu_s_per_iter_with_loss": (!cpu_per_iteration.is_empty())
            .then(|| median(&cpu_per_iteration)),
        "sweeps_s": sweep_total,
        "load_s": load_s,
        "flops_per_iter": flops / history.len().max(1) as u64,
        "gflops": gflops,
        "peak_gflops": peak.gflops,
        "peak_fraction": gflops / peak.gflops,
        "peak_basis": peak.basis,
        "train_loss": model.history.last().map(|s| s.train_metric),
        "load1": load1,
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    });
    if bench.mode == Mode::Explicit {
        out["repeated_ratings"] = json!(bench.repeated_ratings);
    }
    if bench.mode == Mode::Implicit {
        out["alpha"] = json!(bench.alpha);
        out["confidence"] = json!(if bench.hkv_confidence {
            "1 + alpha * n"
        } else {
            "alpha * n"
        });
    }
    if let (Some(fields), Value::Object(map)) = (quality, &mut out) {
        map.extend(fields);
    }
    println!("{out}");
    Ok(())
}

/// Fits explicit ALS on the log's rows as `cells` (one per row, merged per pair by the
/// cell type's rule); returns the model with its fit seconds since `started` (building the
/// cells and the matrix included), the stored cells and the test quality.
#[allow(clippy::type_complexity)]
fn explicit_fit<C: ExplicitCell>(
    log: &Log,
    cells: &[C],
    test: Option<&Log>,
    fit: &FitParams,
    started: Instant,
    on_iteration: &mut dyn FnMut(&IterationStats),
) -> Result<(
    (AlsModel, f64),
    usize,
    Option<serde_json::Map<String, Value>>,
)> {
    let matrix = Csr::from_triples(
        log.user_ids.len(),
        log.video_ids.len(),
        &log.users,
        &log.videos,
        cells,
    )?;
    let model = fit_explicit(&matrix, None, fit, on_iteration)?;
    let fit_s = started.elapsed().as_secs_f64();
    let quality = test.map(|t| explicit_quality(&model, log, t, fit.factors));
    Ok(((model, fit_s), matrix.nnz(), quality))
}

/// A log with dense indices: ids sorted, index = position.
struct Log {
    user_ids: Vec<IdKey>,
    video_ids: Vec<IdKey>,
    users: Vec<u32>,
    videos: Vec<u32>,
    /// Explicit mode: the rating of each row (empty otherwise).
    ratings: Vec<f32>,
}

/// An original id, integer or text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum IdKey {
    Int(i64),
    Text(String),
}

fn implicit_matrix(log: &Log, bench: &Bench) -> Result<ImplicitCsr> {
    // Count each pair's events first, so the confidence is a function of the count.
    let n_videos = log.video_ids.len();
    let mut keys: Vec<u64> = log
        .users
        .iter()
        .zip(&log.videos)
        .map(|(&u, &i)| u as u64 * n_videos as u64 + i as u64)
        .collect();
    keys.sort_unstable();
    let (mut rows, mut cols, mut cells) = (Vec::new(), Vec::new(), Vec::new());
    let mut start = 0;
    while start < keys.len() {
        let end = start + keys[start..].partition_point(|&key| key == keys[start]);
        let n = (end - start) as f64;
        let confidence = if bench.hkv_confidence {
            1.0 + bench.alpha * n
        } else {
            bench.alpha * n
        };
        rows.push((keys[start] / n_videos as u64) as u32);
        cols.push((keys[start] % n_videos as u64) as u32);
        cells.push(Implicit {
            preference: 1.0,
            confidence: confidence as f32,
        });
        start = end;
    }
    Ok(ImplicitCsr::from_triples(
        log.user_ids.len(),
        n_videos,
        &rows,
        &cols,
        &cells,
    )?)
}

/// Recall and NDCG at the cut-off over the test users known in train.
fn ranking(
    matrix: &ImplicitCsr,
    model: &AlsModel,
    train: &Log,
    test: &Log,
    k: usize,
    cutoff: u32,
) -> serde_json::Map<String, Value> {
    let started = Instant::now();
    let (pairs, n_unknown_user, n_cold) = map_test(train, test, &model.users.present);
    let known: Vec<(u32, u32)> = pairs.iter().map(|&(u, i, _)| (u, i.unwrap_or(0))).collect();
    let mut ranks = test_ranks(
        matrix,
        &model.users.values,
        &model.videos.values,
        &model.videos.present,
        k,
        &known,
    );
    for (rank, &(_, item, _)) in ranks.iter_mut().zip(&pairs) {
        if item.is_none() {
            *rank = None;
        }
    }
    let q = ranking_quality(&ranks, n_cold, cutoff);
    let mut out = serde_json::Map::new();
    out.insert(format!("recall_at_{cutoff}"), json!(q.recall));
    out.insert(format!("ndcg_at_{cutoff}"), json!(q.ndcg));
    out.insert("n_test".into(), json!(q.n_test));
    out.insert("n_test_unknown_user".into(), json!(n_unknown_user));
    out.insert("n_test_cold_item".into(), json!(q.n_cold_item));
    out.insert("eval_s".into(), json!(started.elapsed().as_secs_f64()));
    out
}

/// RMSE over test rows whose user and video have factors, and of the train mean there.
fn explicit_quality(
    model: &AlsModel,
    train: &Log,
    test: &Log,
    k: usize,
) -> serde_json::Map<String, Value> {
    let (pairs, n_unknown_user, n_cold) = map_test(train, test, &model.users.present);
    let scored: Vec<(u32, u32, f32)> = pairs
        .iter()
        .filter_map(|&(u, i, r)| {
            i.filter(|&i| model.videos.present[i as usize])
                .map(|i| (u, i, r))
        })
        .collect();
    let mean = train.ratings.iter().map(|&r| r as f64).sum::<f64>() / train.ratings.len() as f64;
    let mean_rmse = (scored
        .iter()
        .map(|&(_, _, r)| (r as f64 - mean).powi(2))
        .sum::<f64>()
        / scored.len().max(1) as f64)
        .sqrt();
    let mut out = serde_json::Map::new();
    out.insert(
        "rmse".into(),
        json!(rmse(&model.users.values, &model.videos.values, k, &scored)),
    );
    out.insert("rmse_train_mean".into(), json!(mean_rmse));
    out.insert("n_test_scored".into(), json!(scored.len()));
    out.insert(
        "n_test_dropped".into(),
        json!(test.users.len() - scored.len()),
    );
    out.insert("n_test_unknown_user".into(), json!(n_unknown_user));
    out.insert("n_test_cold_item".into(), json!(n_cold));
    out
}

/// Test rows in train indices: (user, video or None when unseen in train, rating), for
/// users with a factor; also the counts of skipped users and of unseen videos.
#[allow(clippy::type_complexity)]
fn map_test(
    train: &Log,
    test: &Log,
    users_present: &[bool],
) -> (Vec<(u32, Option<u32>, f32)>, usize, usize) {
    let user_index = index_of(&train.user_ids);
    let video_index = index_of(&train.video_ids);
    let mut pairs = Vec::new();
    let (mut unknown_user, mut cold) = (0, 0);
    for row in 0..test.users.len() {
        let user = user_index
            .get(&test.user_ids[test.users[row] as usize])
            .filter(|&&u| users_present[u as usize]);
        let Some(&user) = user else {
            unknown_user += 1;
            continue;
        };
        let video = video_index
            .get(&test.video_ids[test.videos[row] as usize])
            .copied();
        cold += video.is_none() as usize;
        let rating = test.ratings.get(row).copied().unwrap_or(1.0);
        pairs.push((user, video, rating));
    }
    (pairs, unknown_user, cold)
}

fn index_of(ids: &[IdKey]) -> HashMap<&IdKey, u32> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| (id, i as u32))
        .collect()
}

/// Reads the id columns (and the rating in explicit mode) of a Parquet log.
fn read_log(path: &Path, args: &Args, mode: Mode) -> Result<Log> {
    use common::io::{Expect, ParquetInput};
    let input = ParquetInput::open(path)?;
    let id_types = Expect::AnyOf(vec![
        DataType::Int64,
        DataType::Int32,
        DataType::UInt32,
        DataType::Utf8,
    ]);
    let mut wanted = vec![
        (args.user_col.as_str(), id_types.clone()),
        (args.item_col.as_str(), id_types),
    ];
    if mode == Mode::Explicit {
        wanted.push((args.rating_col.as_str(), Expect::Numeric));
    }
    let columns = input.read_columns(&wanted)?;
    let (user_ids, users) = densify(&columns[0], path, &args.user_col)?;
    let (video_ids, videos) = densify(&columns[1], path, &args.item_col)?;
    let ratings = if mode == Mode::Explicit {
        let values = common::columns::f32_values_nan_null(&columns[2], path, &args.rating_col)?;
        if let Some(row) = values.iter().position(|v| !v.is_finite()) {
            bail!(
                "{}: column {:?} row {row}: null or non-finite rating",
                path.display(),
                args.rating_col
            );
        }
        values
    } else {
        Vec::new()
    };
    Ok(Log {
        user_ids,
        video_ids,
        users,
        videos,
        ratings,
    })
}

/// Sorted distinct ids of a column and each row's index among them.
fn densify(array: &ArrayRef, path: &Path, column: &str) -> Result<(Vec<IdKey>, Vec<u32>)> {
    if array.null_count() > 0 {
        bail!("{}: column {column:?} has null ids", path.display());
    }
    let keys: Vec<IdKey> = match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            common::columns::string_values(array, path, column)?
                .into_iter()
                .map(IdKey::Text)
                .collect()
        }
        _ => {
            let ints = arrow::compute::cast(array, &DataType::Int64)
                .with_context(|| format!("{}: column {column:?}", path.display()))?;
            ints.as_primitive::<Int64Type>()
                .values()
                .iter()
                .map(|&v| IdKey::Int(v))
                .collect()
        }
    };
    let mut ids = keys.clone();
    ids.sort_unstable();
    ids.dedup();
    let index = index_of(&ids);
    let dense = keys.iter().map(|key| index[key]).collect();
    Ok((ids, dense))
}

/// A synthetic log: user activity log-normal (sigma 1.2) with at least 3 events, videos
/// drawn from a Zipf law.
fn generate(args: &Args) -> Log {
    let mut rng = common::rng::rng_for(args.seed, "als-bench-log", 0);
    let min_events = 3usize;
    let spare = args.rows.saturating_sub(min_events * args.users);
    let weights: Vec<f64> = (0..args.users)
        .map(|_| {
            let u1 = 1.0 - rng.random::<f64>();
            let u2 = rng.random::<f64>();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (1.2 * z).exp()
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let counts: Vec<usize> = weights
        .iter()
        .map(|w| min_events + (spare as f64 * w / total) as usize)
        .collect();
    let mut cumulative = Vec::with_capacity(args.items);
    let mut acc = 0.0;
    for i in 0..args.items {
        acc += 1.0 / ((i + 1) as f64).powf(args.zipf);
        cumulative.push(acc);
    }
    let (mut users, mut videos) = (Vec::new(), Vec::new());
    for (user, &count) in counts.iter().enumerate() {
        for _ in 0..count {
            let draw = rng.random::<f64>() * acc;
            let item = cumulative
                .partition_point(|&c| c < draw)
                .min(args.items - 1);
            users.push(user as u32);
            videos.push(item as u32);
        }
    }
    Log {
        user_ids: (0..args.users as i64).map(IdKey::Int).collect(),
        video_ids: (0..args.items as i64).map(IdKey::Int).collect(),
        users,
        videos,
        ratings: Vec::new(),
    }
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, in clock
/// ticks of 1/100 s): unlike wall time, it does not grow while other processes hold the
/// cores, so it tells kernel changes apart on a busy machine.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// 1-minute load average from /proc/loadavg (Linux), null elsewhere.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Nominal peak f64 rate of the cores the run uses.
struct Peak {
    gflops: f64,
    basis: String,
}

impl Peak {
    /// cores x clock x f64 FLOPs per cycle. Cores: min(threads, available parallelism).
    /// Clock: the first "cpu MHz" of /proc/cpuinfo, which is nominal (in a VM, the
    /// host's base or TSC clock; turbo can exceed it, so the fraction can be overstated
    /// or understated). FLOPs per cycle for the instruction set the kernels use, detected
    /// at run time: AVX2 + FMA = 2 FMA pipes x 4 f64 lanes x 2 = 16 (the kernels do not
    /// use AVX-512); otherwise SSE2 = 2 pipes x 2 lanes = 4 (no fused multiply-add).
    fn of_this_machine(threads: usize) -> Peak {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(threads);
        let mhz = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("cpu MHz"))
                    .and_then(|l| l.split(':').nth(1))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(f64::NAN);
        let (isa, per_cycle) = if stage_als::kernels::fma_available() {
            ("avx2+fma", 16.0)
        } else {
            ("sse2", 4.0)
        };
        Peak {
            gflops: cores as f64 * mhz / 1e3 * per_cycle,
            basis: format!(
                "{cores} cores x {mhz:.0} MHz (/proc/cpuinfo, nominal) x {per_cycle} f64 \
                 FLOP/cycle ({isa})"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validated(extra: &[&str]) -> Result<Bench> {
        let argv = ["als-bench", "--input", "train.parquet"]
            .iter()
            .chain(extra);
        validate(&Args::parse_from(argv))
    }

    fn error_of(extra: &[&str]) -> String {
        match validated(extra) {
            Ok(_) => panic!("{extra:?} was accepted"),
            Err(error) => format!("{error:#}"),
        }
    }

    #[test]
    fn repeated_ratings_default_to_the_mean_and_take_each() {
        let rule = |extra: &[&str]| validated(extra).unwrap().repeated_ratings;
        assert_eq!(rule(&["--mode", "explicit"]), RepeatedRatings::Mean);
        assert_eq!(
            rule(&["--mode", "explicit", "--repeated-ratings", "each"]),
            RepeatedRatings::Each
        );
    }

    #[test]
    fn rejects_unknown_repeated_ratings() {
        let message = error_of(&["--mode", "explicit", "--repeated-ratings", "sum"]);
        assert!(message.contains("repeated_ratings = \"sum\""), "{message}");
    }

    #[test]
    fn rejects_each_repeated_rating_in_implicit_mode() {
        let message = error_of(&["--repeated-ratings", "each"]);
        assert!(
            message.contains("applies to mode \"explicit\" only"),
            "{message}"
        );
    }
}
