//! `twotower-bench`: the PyTorch anchor's two-tower protocol (`../shared/bench/
//! anchor_twotower_torch.py`) run through this crate's own model and batch loop, so that the
//! throughput compared with PyTorch is that of the stage.
//!
//! Reads the anchor's holdout split (`train.parquet`, `test.parquet` with integer user, item
//! and time columns); writes nothing but one JSON line on stdout.
//!
//! Protocol, as in the anchor: pairs (previous video -> next video) from each user's train
//! events ordered by (time, row), pairs repeating a video dropped; each tower an id
//! embedding (`--dim`) -> Linear(dim, hidden) -> ReLU -> Linear(hidden, dim) -> L2
//! normalisation, with separate query and candidate tables and no side features; logit =
//! `--logit-scale` x cosine (temperature = 1 / scale); binary log loss over the positive and
//! `--negatives` videos drawn uniformly from the train videos; Adam at `--lr`, no weight
//! decay; `--batch` pairs per step. Timed: each epoch (shuffle, negative sampling, forward,
//! backward, update). AUC: for each test user's (last train video -> test video) pair, the
//! share of `--eval-negatives` uniform draws among the other videos scored below the
//! positive, ties counting one half.
//!
//! Differences that remain, all of the stage's design: the id tables start at N(0, 0.01^2)
//! (PyTorch: N(0, 1)) and get lazy Adam updates (only the rows a batch uses; PyTorch's dense
//! Adam moves every row at every step); the loss is summed over a pair's logits and averaged
//! over pairs (PyTorch averages over all logits: a constant factor that Adam cancels, and
//! `last_loss` is reported per logit as PyTorch does); a sampled negative equal to the
//! pair's own target is masked out (PyTorch keeps it; 1 in 20,000 draws on the synthetic
//! log).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use arrow::array::{Array, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use clap::Parser;
use common::features::EntityFeatures;
use common::{Expect, ParquetInput};
use rand::Rng;
use rayon::prelude::*;
use relvid_nn::batches::shuffled;
use serde_json::json;

use crate::config::TwoTowerSection;
use crate::model::{Side, TwoTowerModel};
use crate::negatives::AliasSampler;
use crate::pairs::Pairs;
use crate::train::{embed_all, Trainer};

/// Two-tower throughput and sampled AUC on a holdout split, in the PyTorch anchor's protocol.
///
/// Reads TRAIN and TEST Parquet files (the anchor's `$BENCH_WORK/splits/<name>/train.parquet`
/// and `test.parquet`) and prints one JSON line: videos, train_pairs, epochs, samples_per_s
/// (median over epochs of positive pairs per second), s_per_epoch (median), epoch_s,
/// losses, last_loss (per logit), auc, test_pairs, threads and load1 (1-minute load average
/// at the start of each epoch and at the end).
#[derive(Debug, Parser)]
#[command(name = "twotower-bench", version, about, long_about)]
pub struct BenchArgs {
    /// Train split (Parquet)
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Test split (Parquet): one row per held-out user
    #[arg(long, value_name = "FILE")]
    pub test: PathBuf,
    /// User column (integer)
    #[arg(long, default_value = "user_id")]
    pub user_col: String,
    /// Item column (integer)
    #[arg(long, default_value = "video_id")]
    pub item_col: String,
    /// Time column (integer or timestamp)
    #[arg(long, default_value = "ts")]
    pub ts_col: String,
    /// Passes over the train pairs, ≥ 1
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Pairs per gradient step, ≥ 1
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Uniform negatives per pair, ≥ 1
    #[arg(long, default_value_t = 4)]
    pub negatives: usize,
    /// Width of the id embedding and of the tower output, ≥ 1
    #[arg(long, default_value_t = 32)]
    pub dim: usize,
    /// Width of the hidden layer, ≥ 1
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// Logit = scale x cosine, > 0
    #[arg(long, default_value_t = 10.0)]
    pub logit_scale: f64,
    /// Adam step size, > 0
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Uniform negatives per test pair for the AUC, ≥ 1
    #[arg(long, default_value_t = 100)]
    pub eval_negatives: usize,
    /// Shards per batch, computed in parallel (the stage's `[twotower] shards`), 1 to batch
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// Worker threads (0 = one per core)
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Seed of the initial weights, the shuffles and every sampled negative
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl BenchArgs {
    /// Checks every value before any data is read; one error per rule.
    pub fn validate(&self) -> Result<(), common::Error> {
        use common::error::param_error;
        let at_least_one = [
            ("epochs", self.epochs),
            ("batch", self.batch),
            ("negatives", self.negatives),
            ("dim", self.dim),
            ("hidden", self.hidden),
            ("eval-negatives", self.eval_negatives),
        ];
        for (name, value) in at_least_one {
            if value == 0 {
                return Err(param_error(name, 0, "must be at least 1"));
            }
        }
        if !(self.logit_scale.is_finite() && self.logit_scale > 0.0) {
            return Err(param_error(
                "logit-scale",
                self.logit_scale,
                "must be finite and > 0",
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(param_error("lr", self.lr, "must be finite and > 0"));
        }
        Ok(())
    }

    /// The stage's `[twotower]` settings that reproduce the anchor's model and optimiser.
    pub fn section(&self) -> TwoTowerSection {
        TwoTowerSection {
            embedding_dim: self.dim,
            hidden: self.hidden,
            output_dim: self.dim,
            epochs: self.epochs,
            patience: self.epochs,
            batch_size: self.batch,
            shards: self.shards,
            learning_rate: self.lr,
            negatives: self.negatives,
            temperature: 1.0 / self.logit_scale,
            max_train_pairs: 0,
            max_valid_pairs: 0,
            in_batch_negatives: false,
            logq_correction: false,
            ..TwoTowerSection::default()
        }
    }
}

/// One split's events as dense integer columns.
struct Events {
    user: Vec<i64>,
    item: Vec<i64>,
    ts: Vec<i64>,
}

/// Reads the three columns of `path` as Int64 (any integer or timestamp type; no nulls).
fn read_events(path: &Path, args: &BenchArgs) -> Result<Events> {
    let input = ParquetInput::open(path)?;
    let integers = Expect::AnyOf(vec![
        DataType::Int64,
        DataType::Int32,
        DataType::Int16,
        DataType::UInt64,
        DataType::UInt32,
        DataType::UInt16,
    ]);
    let mut times = Expect::AnyOf(vec![common::columns::timestamp_type()]);
    if let (Expect::AnyOf(all), Expect::AnyOf(ints)) = (&mut times, &integers) {
        all.extend(ints.iter().cloned());
    }
    let columns = input.read_columns(&[
        (args.user_col.as_str(), integers.clone()),
        (args.item_col.as_str(), integers),
        (args.ts_col.as_str(), times),
    ])?;
    let names = [&args.user_col, &args.item_col, &args.ts_col];
    let mut values = Vec::with_capacity(3);
    for (array, name) in columns.iter().zip(names) {
        if array.null_count() > 0 {
            bail!("{}: column {name} has null values", path.display());
        }
        let as_i64 = cast(array, &DataType::Int64)
            .with_context(|| format!("{}: column {name} as Int64", path.display()))?;
        let as_i64 = as_i64
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("cast to Int64");
        values.push(as_i64.values().to_vec());
    }
    let ts = values.pop().expect("three columns");
    let item = values.pop().expect("three columns");
    let user = values.pop().expect("three columns");
    Ok(Events { user, item, ts })
}

/// Train pairs over dense item indices, the test pairs, and the catalogue.
struct BenchData {
    n_items: usize,
    train: Pairs,
    test_query: Vec<u32>,
    test_target: Vec<u32>,
    /// Test rows without a pair: a user or video absent from train.
    test_skipped: usize,
}

/// The anchor's pairs: per user, train events in (time, row) order, consecutive events with
/// different videos; and per test user (last train video -> test video).
fn build_data(train: &Events, test: &Events) -> BenchData {
    // Dense item indices in sorted id order, as the anchor's `dense_index`.
    let mut items: Vec<i64> = train.item.clone();
    items.sort_unstable();
    items.dedup();
    let index_of = |id: i64| items.binary_search(&id).ok().map(|i| i as u32);

    let mut order: Vec<u32> = (0..train.user.len() as u32).collect();
    order.sort_by_key(|&r| (train.user[r as usize], train.ts[r as usize], r));
    let mut pairs = Pairs::default();
    let mut last_of_user: Vec<(i64, u32)> = Vec::new();
    for (k, &row) in order.iter().enumerate() {
        let row = row as usize;
        let item = index_of(train.item[row]).expect("train item is indexed");
        if k > 0 {
            let previous = order[k - 1] as usize;
            if train.user[previous] == train.user[row] {
                let prev_item = index_of(train.item[previous]).expect("indexed");
                if prev_item != item {
                    pairs.source.push(prev_item);
                    pairs.target.push(item);
                }
            }
        }
        let user_ends =
            k + 1 == order.len() || train.user[order[k + 1] as usize] != train.user[row];
        if user_ends {
            last_of_user.push((train.user[row], item));
        }
    }

    // last_of_user is sorted by user (the rows were).
    let (mut test_query, mut test_target, mut test_skipped) = (Vec::new(), Vec::new(), 0);
    for (&user, &item) in test.user.iter().zip(&test.item) {
        let last = last_of_user
            .binary_search_by_key(&user, |&(u, _)| u)
            .ok()
            .map(|i| last_of_user[i].1);
        match (last, index_of(item)) {
            (Some(query), Some(target)) => {
                test_query.push(query);
                test_target.push(target);
            }
            _ => test_skipped += 1,
        }
    }
    BenchData {
        n_items: items.len(),
        train: pairs,
        test_query,
        test_target,
        test_skipped,
    }
}

/// The anchor's sampled AUC: per test pair, `n_negatives` uniform draws among the other
/// videos, the share scored below the positive (ties one half), averaged over pairs.
pub fn sampled_auc(
    query: &[f32],
    candidate: &[f32],
    dim: usize,
    pairs: (&[u32], &[u32]),
    n_items: usize,
    n_negatives: usize,
    seed: u64,
) -> f64 {
    let (queries, targets) = pairs;
    if queries.is_empty() || n_items < 2 {
        return f64::NAN;
    }
    // Draws come from one stream in pair order, then pairs are scored in parallel.
    let mut rng = common::rng::rng_for(seed, "bench-auc", 0);
    let draws: Vec<u32> = targets
        .iter()
        .flat_map(|&t| {
            (0..n_negatives)
                .map(|_| {
                    let d = rng.random_range(0..n_items as u32 - 1);
                    d + (d >= t) as u32
                })
                .collect::<Vec<u32>>()
        })
        .collect();
    let dot = |q: u32, c: u32| -> f32 {
        let (q, c) = (q as usize * dim, c as usize * dim);
        query[q..q + dim]
            .iter()
            .zip(&candidate[c..c + dim])
            .map(|(a, b)| a * b)
            .sum()
    };
    let total: f64 = (0..queries.len())
        .into_par_iter()
        .map(|i| {
            let positive = dot(queries[i], targets[i]);
            let negatives = &draws[i * n_negatives..(i + 1) * n_negatives];
            let below: f64 = negatives
                .iter()
                .map(|&n| {
                    let s = dot(queries[i], n);
                    if s < positive {
                        1.0
                    } else if s == positive {
                        0.5
                    } else {
                        0.0
                    }
                })
                .sum();
            below / n_negatives as f64
        })
        .collect::<Vec<f64>>()
        .iter()
        .sum();
    total / queries.len() as f64
}

fn load1() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Runs the benchmark; returns the JSON line.
pub fn run(args: &BenchArgs) -> Result<serde_json::Value> {
    args.validate()?;
    let section = args.section();
    section.validate()?;

    let train_events = read_events(&args.input, args)?;
    let test_events = read_events(&args.test, args)?;
    if train_events.user.is_empty() {
        bail!("{}: no rows", args.input.display());
    }
    let started = Instant::now();
    let data = build_data(&train_events, &test_events);
    let pairs_s = started.elapsed().as_secs_f64();
    if data.train.is_empty() {
        bail!("{}: no (previous, next) pair", args.input.display());
    }
    tracing::info!(
        "{} videos, {} train pairs, {} test pairs ({} skipped)",
        data.n_items,
        data.train.len(),
        data.test_query.len(),
        data.test_skipped
    );

    // The stage's model without side features, and uniform negatives over train videos.
    let features = EntityFeatures {
        n_rows: data.n_items,
        ..Default::default()
    };
    let device = candle_core::Device::Cpu;
    let mut model = TwoTowerModel::new(features, &section, args.seed, &device)?;
    let sampler = AliasSampler::new(&vec![1.0; data.n_items]);
    let mut trainer = Trainer::new(&model, &section, &data.train)?;
    let bar = common::progress::bar(args.epochs as u64, "twotower-bench");
    let (mut epoch_s, mut losses, mut loads) = (Vec::new(), Vec::new(), Vec::new());
    for epoch in 1..=args.epochs {
        loads.push(load1());
        let started = Instant::now();
        let order = shuffled(data.train.len(), args.seed, "twotower-shuffle", epoch);
        let mut rng = common::rng::rng_for(args.seed, "negatives", epoch as u64);
        let hidden = indicatif::ProgressBar::hidden();
        let loss_sum =
            trainer.epoch(&mut model, &data.train, &order, &sampler, &mut rng, &hidden)?;
        let seconds = started.elapsed().as_secs_f64();
        let per_logit = loss_sum / (data.train.len() * (1 + args.negatives)) as f64;
        tracing::info!(
            "epoch {epoch}/{}: loss {per_logit:.4} per logit ({seconds:.2} s, {:.0} pairs/s)",
            args.epochs,
            data.train.len() as f64 / seconds
        );
        model.check_finite(&format!("epoch {epoch}"))?;
        epoch_s.push(seconds);
        losses.push(per_logit);
        bar.inc(1);
    }
    loads.push(load1());
    bar.finish_and_clear();

    let started = Instant::now();
    let query = embed_all(&model, Side::Query, crate::EMBED_CHUNK)?;
    let candidate = embed_all(&model, Side::Candidate, crate::EMBED_CHUNK)?;
    let auc = sampled_auc(
        &query,
        &candidate,
        args.dim,
        (&data.test_query, &data.test_target),
        data.n_items,
        args.eval_negatives,
        args.seed,
    );
    let eval_s = started.elapsed().as_secs_f64();

    let rates: Vec<f64> = epoch_s
        .iter()
        .map(|s| data.train.len() as f64 / s)
        .collect();
    let round = |x: f64, digits: i32| (x * 10f64.powi(digits)).round() / 10f64.powi(digits);
    Ok(json!({
        "tool": "relvid",
        "bench": "twotower",
        "version": env!("CARGO_PKG_VERSION"),
        "input": args.input,
        "test": args.test,
        "rows": train_events.user.len(),
        "videos": data.n_items,
        "train_pairs": data.train.len(),
        "epochs": args.epochs,
        "batch": args.batch,
        "negatives": args.negatives,
        "dim": args.dim,
        "hidden": args.hidden,
        "logit_scale": args.logit_scale,
        "lr": args.lr,
        "threads": args.threads,
        "shards": args.shards,
        "seed": args.seed,
        "pairs_s": round(pairs_s, 3),
        "epoch_s": epoch_s.iter().map(|&s| round(s, 3)).collect::<Vec<_>>(),
        "s_per_epoch": round(median(&epoch_s), 3),
        "samples_per_s": median(&rates).round(),
        "samples_per_s_all": rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
        "losses": losses.iter().map(|&l| round(l, 4)).collect::<Vec<_>>(),
        "last_loss": round(*losses.last().expect("at least one epoch"), 4),
        "auc": round(auc, 4),
        "eval_negatives": args.eval_negatives,
        "eval_s": round(eval_s, 3),
        "test_pairs": data.test_query.len(),
        "test_skipped": data.test_skipped,
        "load1": loads,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(rows: &[(i64, i64, i64)]) -> Events {
        Events {
            user: rows.iter().map(|r| r.0).collect(),
            item: rows.iter().map(|r| r.1).collect(),
            ts: rows.iter().map(|r| r.2).collect(),
        }
    }

    #[test]
    fn pairs_follow_time_then_row_order_and_skip_repeats() {
        // User 1: items 50 (t=2), 70 (t=1), 70 (t=3), 60 (t=3, later row); user 2: 60, 50.
        let train = events(&[
            (1, 50, 2),
            (1, 70, 1),
            (2, 60, 5),
            (1, 70, 3),
            (1, 60, 3),
            (2, 50, 6),
        ]);
        let test = events(&[(1, 50, 9), (2, 99, 9), (3, 50, 9)]);
        let data = build_data(&train, &test);
        // Dense ids: 50 -> 0, 60 -> 1, 70 -> 2. User 1: 70, 50, 70, 60; user 2: 60, 50.
        assert_eq!(data.n_items, 3);
        assert_eq!(data.train.source, vec![2, 0, 2, 1]);
        assert_eq!(data.train.target, vec![0, 2, 1, 0]);
        // User 1's last train video is 60; user 2's test video is unknown; user 3 has none.
        assert_eq!((data.test_query, data.test_target), (vec![1], vec![0]));
        assert_eq!(data.test_skipped, 2);
    }

    #[test]
    fn auc_counts_ties_as_half_and_never_draws_the_positive() {
        // Query 0 is (1, 0); candidates: 0 = (1, 0) positive, 1 = (0, 1), 2 = (1, 0) tie.
        let query = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let candidate = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0];
        let auc = sampled_auc(&query, &candidate, 2, (&[0], &[0]), 3, 4000, 1);
        // Half the draws hit video 1 (below: 1) and half video 2 (tie: 0.5).
        assert!((auc - 0.75).abs() < 0.02, "{auc}");
    }

    #[test]
    fn rejects_zero_negatives_and_bad_scale() {
        let mut args = BenchArgs::try_parse_from([
            "twotower-bench",
            "--input",
            "a",
            "--test",
            "b",
            "--negatives",
            "0",
        ])
        .unwrap();
        let message = args.validate().unwrap_err().to_string();
        assert!(message.contains("negatives"), "{message}");
        args.negatives = 4;
        args.logit_scale = 0.0;
        let message = args.validate().unwrap_err().to_string();
        assert!(message.contains("logit-scale"), "{message}");
        args.logit_scale = 10.0;
        args.lr = f64::NAN;
        assert!(args.validate().unwrap_err().to_string().contains("lr"));
    }

    #[test]
    fn section_reproduces_the_anchor_model() {
        let args =
            BenchArgs::try_parse_from(["twotower-bench", "--input", "a", "--test", "b"]).unwrap();
        let section = args.section();
        assert_eq!(
            (section.embedding_dim, section.hidden, section.output_dim),
            (32, 64, 32)
        );
        assert!((section.temperature - 0.1).abs() < 1e-12);
        assert_eq!((section.negatives, section.batch_size), (4, 1024));
        assert_eq!(section.max_train_pairs, 0);
        section.validate().unwrap();
    }
}
