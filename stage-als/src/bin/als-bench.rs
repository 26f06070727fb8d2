//! `als-bench`: times implicit ALS on a large log, for comparison with the `implicit`
//! library (shared/bench/README.md: 0.76-0.89 s per iteration on 5M rows, 100k users x
//! 20k items, 64 factors, 2 threads, conjugate gradient).
//!
//! Reads nothing by default: it generates a synthetic log (log-normal user activity of at
//! least 3 events, Zipf video popularity) from `--seed`. `--input FILE` reads a log instead
//! (Parquet, or CSV/TSV with or without a header). Every event has value 1, repeated
//! (user, video) events sum their confidence. Prints one JSON line on stdout: seconds per
//! iteration per solver and the GFLOP/s of the normal-equation build; logs go to stderr.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use rand::Rng;
use serde_json::json;

use stage_als::fit::{fit_implicit, initial_factors};
use stage_als::matrix::{Implicit, ImplicitCsr};
use stage_als::params::{FitParams, LambdaScaling, Solver};
use stage_als::solve::{gram, Sweep};

/// Time implicit ALS on a generated or given interaction log
#[derive(Debug, Parser)]
#[command(name = "als-bench", version)]
struct Args {
    /// Read this log (.parquet, .csv, .tsv, or tab/comma text) instead of generating one
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// User column of --input: a name, or a 0-based position for headerless text
    #[arg(long, default_value = "user_id")]
    user_col: String,
    /// Video column of --input: a name, or a 0-based position for headerless text
    #[arg(long, default_value = "video_id")]
    item_col: String,
    /// Generated rows
    #[arg(long, default_value_t = 5_000_000)]
    rows: usize,
    /// Generated users
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Generated videos
    #[arg(long, default_value_t = 20_000)]
    items: usize,
    /// Zipf exponent of video popularity
    #[arg(long, default_value_t = 0.9)]
    zipf: f64,
    /// Latent factors
    #[arg(long, default_value_t = 64)]
    factors: usize,
    /// Worker threads
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed iterations per solver
    #[arg(long, default_value_t = 5)]
    iterations: usize,
    /// Solvers to time: cg, cholesky or both
    #[arg(long, default_value = "both")]
    solver: String,
    /// Conjugate-gradient steps
    #[arg(long, default_value_t = 3)]
    cg_steps: usize,
    /// Regularisation (plain lambda, as `implicit` uses it)
    #[arg(long, default_value_t = 0.01)]
    regularization: f64,
    /// Confidence 1 + alpha * (number of events)
    #[arg(long, default_value_t = 10.0)]
    alpha: f64,
    /// Seed of the generated log and the initial factors
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()?;

    let started = Instant::now();
    let (n_users, n_items, users, items) = match &args.input {
        Some(path) => read_log(path, &args.user_col, &args.item_col)?,
        None => generate(&args),
    };
    let cell = Implicit {
        preference: 1.0,
        confidence: (1.0 + args.alpha) as f32,
    };
    let cells = vec![cell; users.len()];
    let matrix = ImplicitCsr::from_triples(n_users, n_items, &users, &items, &cells)?;
    eprintln!(
        "log: {} rows, {} users x {} videos, {} distinct pairs ({:.1} s to make)",
        users.len(),
        n_users,
        n_items,
        matrix.nnz(),
        started.elapsed().as_secs_f64()
    );

    let solvers = match args.solver.as_str() {
        "cg" => vec![Solver::Cg],
        "cholesky" => vec![Solver::Cholesky],
        "both" => vec![Solver::Cg, Solver::Cholesky],
        other => bail!("--solver {other}: use cg, cholesky or both"),
    };
    let params = |solver| FitParams {
        factors: args.factors,
        regularization: args.regularization,
        lambda_scaling: LambdaScaling::None,
        iterations: args.iterations,
        solver,
        cg_steps: args.cg_steps,
        early_stop_tolerance: 0.0,
        init_std: 0.1,
        seed: args.seed,
    };

    let build = time_build(&matrix, &params(Solver::Cholesky));
    eprintln!(
        "normal-equation build: users {:.2} s ({:.1} GFLOP/s), videos {:.2} s ({:.1} GFLOP/s)",
        build.user_seconds,
        build.user_flops / build.user_seconds / 1e9,
        build.video_seconds,
        build.video_flops / build.video_seconds / 1e9
    );

    let mut results = serde_json::Map::new();
    for solver in solvers {
        let p = params(solver);
        let mut seconds = Vec::new();
        let mut cpu_seconds = Vec::new();
        let mut cpu_before = process_cpu_seconds();
        let fitted = fit_implicit(&matrix, None, &p, &mut |stats| {
            let cpu_now = process_cpu_seconds();
            let cpu = cpu_now.zip(cpu_before).map(|(now, before)| now - before);
            cpu_before = cpu_now;
            eprintln!(
                "{solver:?} iteration {}: {:.3} s sweeps (wall), {} CPU s with the loss, weighted \
                 loss {:.6}",
                stats.iteration,
                stats.sweep_seconds,
                cpu.map_or("?".to_string(), |c| format!("{c:.2}")),
                stats.train_metric
            );
            seconds.push(stats.sweep_seconds);
            cpu_seconds.extend(cpu);
        })?;
        results.insert(
            format!("{solver:?}").to_lowercase(),
            json!({
                "s_per_iter": seconds,
                "median_s_per_iter": median(&seconds),
                "cpu_s_per_iter_with_loss": cpu_seconds,
                "median_cpu_s_per_iter_with_loss": (!cpu_seconds.is_empty()).then(|| median(&cpu_seconds)),
                "final_weighted_loss": fitted.history.last().map(|s| s.train_metric),
            }),
        );
    }

    let total_flops = build.user_flops + build.video_flops;
    let total_seconds = build.user_seconds + build.video_seconds;
    println!(
        "{}",
        json!({
            "bench": "als-implicit",
            "rows": users.len(),
            "users": n_users,
            "items": n_items,
            "nnz": matrix.nnz(),
            "factors": args.factors,
            "threads": args.threads,
            "cg_steps": args.cg_steps,
            "fma": stage_als::kernels::fma_available(),
            "solvers": results,
            "build_gflops": total_flops / total_seconds / 1e9,
            "build_seconds_per_iter": total_seconds,
        })
    );
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, 100 ticks
/// per second): unlike wall time, it does not grow when other processes share the cores.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

struct BuildTiming {
    user_seconds: f64,
    user_flops: f64,
    video_seconds: f64,
    video_flops: f64,
}

/// Builds (without solving) every user's and every video's normal equations from random
/// factors, as one Cholesky iteration does; the best of three runs per side.
fn time_build(matrix: &ImplicitCsr, params: &FitParams) -> BuildTiming {
    let k = params.factors;
    let (users, videos) = initial_factors(matrix.n_rows, matrix.n_cols, params);
    let item_users = matrix.transpose();
    let user_present = vec![true; matrix.n_rows];
    let video_present = vec![true; matrix.n_cols];

    let time_side = |m: &ImplicitCsr, fixed: &[f32], present: &[bool]| -> (f64, f64) {
        let g = gram(fixed, k);
        let sweep = Sweep {
            matrix: m,
            fixed,
            gram: Some(&g),
            k,
            regularization: params.regularization,
            lambda_scaling: params.lambda_scaling,
            solver: Solver::Cholesky,
            cg_steps: params.cg_steps,
        };
        let mut best = f64::INFINITY;
        let mut flops = 0;
        for _ in 0..3 {
            let started = Instant::now();
            flops = sweep.build_only(present);
            best = best.min(started.elapsed().as_secs_f64());
        }
        (best, flops as f64)
    };
    let (user_seconds, user_flops) = time_side(matrix, &videos, &user_present);
    let (video_seconds, video_flops) = time_side(&item_users, &users, &video_present);
    BuildTiming {
        user_seconds,
        user_flops,
        video_seconds,
        video_flops,
    }
}

/// A synthetic log: user activity log-normal (sigma 1.2) with at least 3 events, videos
/// drawn from a Zipf law. Returns (n_users, n_items, user list, video list).
fn generate(args: &Args) -> (usize, usize, Vec<u32>, Vec<u32>) {
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
    let mut counts: Vec<usize> = weights
        .iter()
        .map(|w| min_events + (spare as f64 * w / total) as usize)
        .collect();
    let mut assigned: usize = counts.iter().sum();
    let mut u = 0;
    while assigned < args.rows {
        counts[u % args.users] += 1;
        assigned += 1;
        u += 1;
    }

    let mut cumulative = Vec::with_capacity(args.items);
    let mut acc = 0.0;
    for i in 0..args.items {
        acc += 1.0 / ((i + 1) as f64).powf(args.zipf);
        cumulative.push(acc);
    }
    let mut users = Vec::with_capacity(assigned);
    let mut items = Vec::with_capacity(assigned);
    for (user, &count) in counts.iter().enumerate() {
        for _ in 0..count {
            let draw = rng.random::<f64>() * acc;
            let item = cumulative
                .partition_point(|&c| c < draw)
                .min(args.items - 1);
            users.push(user as u32);
            items.push(item as u32);
        }
    }
    (args.users, args.items, users, items)
}

/// Reads a log's user and video columns and maps their values to dense indices in order
/// of first appearance.
fn read_log(
    path: &Path,
    user_col: &str,
    item_col: &str,
) -> Result<(usize, usize, Vec<u32>, Vec<u32>)> {
    let (raw_users, raw_items): (Vec<String>, Vec<String>) =
        if path.extension().is_some_and(|e| e == "parquet") {
            read_parquet(path, user_col, item_col)?
        } else {
            read_text(path, user_col, item_col)?
        };
    let (n_users, users) = densify(&raw_users);
    let (n_items, items) = densify(&raw_items);
    Ok((n_users, n_items, users, items))
}

fn densify(values: &[String]) -> (usize, Vec<u32>) {
    let mut index: HashMap<&str, u32> = HashMap::new();
    let dense = values
        .iter()
        .map(|v| {
            let next = index.len() as u32;
            *index.entry(v.as_str()).or_insert(next)
        })
        .collect();
    (index.len(), dense)
}

fn read_parquet(path: &Path, user_col: &str, item_col: &str) -> Result<(Vec<String>, Vec<String>)> {
    use common::io::{Expect, ParquetInput};
    let input = ParquetInput::open(path)?;
    let any = Expect::AnyOf(vec![
        arrow::datatypes::DataType::Int64,
        arrow::datatypes::DataType::Int32,
        arrow::datatypes::DataType::UInt32,
        arrow::datatypes::DataType::Utf8,
    ]);
    let columns = input.read_columns(&[(user_col, any.clone()), (item_col, any)])?;
    let text = |i: usize, name: &str| common::columns::string_values(&columns[i], path, name);
    Ok((text(0, user_col)?, text(1, item_col)?))
}

fn read_text(path: &Path, user_col: &str, item_col: &str) -> Result<(Vec<String>, Vec<String>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().peekable();
    let first = lines.peek().context("empty log")?.to_string();
    let sep = if first.contains('\t') { '\t' } else { ',' };
    let header: Vec<&str> = first.split(sep).collect();
    let has_header = header.iter().any(|f| f.parse::<f64>().is_err());
    let position = |col: &str| -> Result<usize> {
        if let Ok(p) = col.parse::<usize>() {
            return Ok(p);
        }
        if !has_header {
            bail!(
                "{}: no header, so --user-col/--item-col must be positions",
                path.display()
            );
        }
        header.iter().position(|h| *h == col).with_context(|| {
            format!(
                "{}: no column {col} in header {}",
                path.display(),
                header.join(",")
            )
        })
    };
    let (pu, pi) = (position(user_col)?, position(item_col)?);
    if has_header {
        lines.next();
    }
    let (mut users, mut items) = (Vec::new(), Vec::new());
    for (n, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(sep).collect();
        let (Some(u), Some(i)) = (fields.get(pu), fields.get(pi)) else {
            bail!(
                "{}: line {} has too few fields",
                path.display(),
                n + 1 + has_header as usize
            );
        };
        users.push(u.to_string());
        items.push(i.to_string());
    }
    Ok((users, items))
}
