//! End to end on a slice of the real KuaiRand log: every stage binary in the order the
//! Makefile runs them, then the checks a user would make on `related.parquet`, then a second
//! run that must reproduce every output byte for byte.
//!
//! Needs `RELVID_SHARED_DATA` (set by `make test`) pointing at the folder that holds
//! `kuairand-lh15/log.tsv`; without it the test says so and passes without running.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::{Array, Float32Array, Int64Array, StringArray, UInt32Array};
use arrow::datatypes::DataType;
use common::{Expect, ParquetInput};

/// The stage binaries sit next to the test's own `deps/` folder.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

fn shared_data() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("RELVID_SHARED_DATA")?);
    dir.join("kuairand-lh15/log.tsv").exists().then_some(dir)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs one stage and returns its JSON summary (the last stdout line).
fn run_stage(stage: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new(bin_dir().join(stage))
        .args(args)
        .args(["--no-progress", "--threads", "2"])
        .output()
        .unwrap_or_else(|e| panic!("cannot start {stage}: {e} (is it built?)"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{stage} {args:?} failed:\n{stderr}"
    );
    let last = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("{stage} printed no summary"));
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{stage} summary is not JSON ({e}): {last}"))
}

/// Keeps the header and the rows of every fourth user (by id) of the shared log.
fn write_slice(log: &Path, out: &Path) -> usize {
    let text = std::fs::read_to_string(log).expect("read shared KuaiRand log");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let user_column = header
        .split('\t')
        .position(|c| c == "user_id")
        .expect("user_id column");
    let mut kept = vec![header.to_string()];
    for line in lines {
        let user: u64 = line
            .split('\t')
            .nth(user_column)
            .and_then(|v| v.parse().ok())
            .expect("user id");
        if user % 4 == 0 {
            kept.push(line.to_string());
        }
    }
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(out, kept.join("\n") + "\n").unwrap();
    kept.len() - 1
}

fn run_pipeline(config: &Path, dir: &Path, raw: &Path, objectives: &[String]) {
    let config = config.to_str().unwrap();
    let dir_text = dir.to_str().unwrap();
    let base = ["--config", config, "--dir", dir_text];
    let ingest = run_stage(
        "stage-ingest",
        &[&base[..], &["--raw", raw.to_str().unwrap()]].concat(),
    );
    assert!(
        ingest["outputs"].as_array().is_some_and(|o| !o.is_empty()),
        "{ingest}"
    );
    run_stage("stage-candidates", &base);
    run_stage("stage-coordinate", &base);
    for objective in objectives {
        let per_objective = [&base[..], &["--objective", objective.as_str()]].concat();
        run_stage("stage-als", &per_objective);
        run_stage("stage-twotower", &per_objective);
    }
    run_stage("stage-merge", &base);
}

fn objectives_of(config: &Path) -> Vec<String> {
    common::PipelineConfig::load(config)
        .expect("config parses")
        .objective_names()
        .into_iter()
        .map(String::from)
        .collect()
}

fn parquet_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect()
}

#[test]
fn kuairand_slice_gives_related_lists_and_reproduces_them() {
    let Some(shared) = shared_data() else {
        eprintln!(
            "skipped: set RELVID_SHARED_DATA to the folder holding kuairand-lh15/ (make test does)"
        );
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let raw = work.path().join("raw/log.tsv");
    let n_rows = write_slice(&shared.join("kuairand-lh15/log.tsv"), &raw);
    assert!(n_rows > 5_000, "slice too small: {n_rows} rows");

    let config = repo_root().join("data/kuairand.toml");
    let objectives = objectives_of(&config);
    let dir = work.path().join("out");
    run_pipeline(&config, &dir, &raw, &objectives);

    check_related(&dir, &raw, &objectives);
    check_weights(&dir, &objectives);

    // Same seed, same input, same folder: every Parquet output must come back byte for byte.
    let first = parquet_files(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    run_pipeline(&config, &dir, &raw, &objectives);
    let second = parquet_files(&dir);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &first {
        assert!(
            bytes == &second[name],
            "{name} differs between two runs with the same seed"
        );
    }
}

fn check_related(dir: &Path, raw: &Path, objectives: &[String]) {
    let related = ParquetInput::open(&dir.join("related.parquet")).unwrap();
    let mut columns: Vec<(String, Expect)> = vec![
        ("source_id".into(), Expect::Exactly(DataType::Int64)),
        ("rank".into(), Expect::Exactly(DataType::UInt32)),
        ("candidate_id".into(), Expect::Exactly(DataType::Int64)),
        ("score".into(), Expect::Exactly(DataType::Float32)),
    ];
    for objective in objectives {
        columns.push((format!("s_{objective}"), Expect::Exactly(DataType::Float32)));
        columns.push((
            format!("contrib_{objective}"),
            Expect::Exactly(DataType::Float32),
        ));
    }
    let refs: Vec<(&str, Expect)> = columns
        .iter()
        .map(|(n, e)| (n.as_str(), e.clone()))
        .collect();
    let arrays = related.read_columns(&refs).unwrap();
    let sources = arrays[0].as_any().downcast_ref::<Int64Array>().unwrap();
    let ranks = arrays[1].as_any().downcast_ref::<UInt32Array>().unwrap();
    let candidates = arrays[2].as_any().downcast_ref::<Int64Array>().unwrap();
    let scores = arrays[3].as_any().downcast_ref::<Float32Array>().unwrap();
    assert!(!sources.is_empty(), "related.parquet is empty");

    // Ids are the log's own video ids.
    let text = std::fs::read_to_string(raw).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split('\t').collect();
    let video_column = header.iter().position(|c| *c == "video_id").unwrap();
    let log_videos: HashSet<i64> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(video_column).unwrap().parse().unwrap())
        .collect();

    let mut previous: Option<(i64, u32, f32)> = None;
    for row in 0..sources.len() {
        let (source, rank, candidate, score) = (
            sources.value(row),
            ranks.value(row),
            candidates.value(row),
            scores.value(row),
        );
        assert!(
            log_videos.contains(&source) && log_videos.contains(&candidate),
            "row {row}: unknown id"
        );
        assert_ne!(
            source, candidate,
            "row {row}: a video is its own related video"
        );
        assert!(score.is_finite(), "row {row}: score {score}");
        match previous {
            Some((prev_source, prev_rank, prev_score)) if prev_source == source => {
                assert_eq!(rank, prev_rank + 1, "row {row}: ranks must count up");
                assert!(score <= prev_score, "row {row}: scores must fall with rank");
            }
            _ => assert_eq!(rank, 1, "row {row}: a list starts at rank 1"),
        }
        for array in &arrays[4..] {
            let values = array.as_any().downcast_ref::<Float32Array>().unwrap();
            assert!(
                values.is_valid(row) && values.value(row).is_finite(),
                "row {row}: NaN part"
            );
        }
        previous = Some((source, rank, score));
    }

    // Every source with at least 5 co-visitations among its candidates has a related list.
    let candidates_file = ParquetInput::open(&dir.join("candidates.parquet")).unwrap();
    let cand = candidates_file
        .read_columns(&[
            ("source_id", Expect::Exactly(DataType::Int64)),
            ("co_count", Expect::Exactly(DataType::UInt32)),
        ])
        .unwrap();
    let cand_sources = cand[0].as_any().downcast_ref::<Int64Array>().unwrap();
    let co_counts = cand[1].as_any().downcast_ref::<UInt32Array>().unwrap();
    let mut co_visits: BTreeMap<i64, u64> = BTreeMap::new();
    for row in 0..cand_sources.len() {
        *co_visits.entry(cand_sources.value(row)).or_default() += co_counts.value(row) as u64;
    }
    let with_lists: BTreeSet<i64> = sources.iter().flatten().collect();
    let missing: Vec<i64> = co_visits
        .iter()
        .filter(|(id, n)| **n >= 5 && !with_lists.contains(id))
        .map(|(id, _)| *id)
        .collect();
    assert!(
        missing.is_empty(),
        "videos with >= 5 co-visitations but no list: {missing:?}"
    );
}

fn check_weights(dir: &Path, objectives: &[String]) {
    let weights = ParquetInput::open(&dir.join("weights.parquet")).unwrap();
    let arrays = weights
        .read_columns(&[
            ("objective", Expect::Exactly(DataType::Utf8)),
            ("manual_weight", Expect::Exactly(DataType::Float64)),
            ("learned_weight", Expect::Exactly(DataType::Float64)),
        ])
        .unwrap();
    let names = arrays[0].as_any().downcast_ref::<StringArray>().unwrap();
    let names: Vec<&str> = names.iter().flatten().collect();
    assert_eq!(
        names,
        objectives.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let manual = arrays[1]
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap();
    let dislike = names
        .iter()
        .position(|n| *n == "dislike")
        .expect("dislike objective");
    assert!(
        manual.value(dislike) < 0.0,
        "dislike must carry a negative manual weight"
    );
    let learned = arrays[2]
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap();
    assert!(learned.iter().flatten().all(|w| w.is_finite() && w >= 0.0));
}
