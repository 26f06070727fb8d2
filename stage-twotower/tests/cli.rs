//! Runs the `stage-twotower` binary on tiny generated Parquet inputs in a temp folder
//! (interactions, videos, routing and candidates written here) and checks exit codes,
//! stderr, the JSON summary and the three outputs. With RELVID_SHARED_DATA set, also runs it
//! on the KuaiRand slice of the shared data, converted by a small reader below.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Int64Array, RecordBatch,
    StringArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use common::columns::{f32_array, i64_array, timestamp_ms_array, u32_array};
use common::io::write_batch;
use common::{Expect, ParquetInput};
use rand::Rng;

const BIN: &str = env!("CARGO_BIN_EXE_stage-twotower");

// ---------------------------------------------------------------------------------------
// Fixtures

/// One interaction: user, video, time, split, liked.
#[derive(Clone)]
struct Row {
    user: u32,
    video: u32,
    ts: i64,
    split: &'static str,
    like: bool,
}

fn meta() -> common::StageMeta {
    common::stage_meta("fixture", "0", 0, serde_json::json!({}))
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

fn video_id(video: u32) -> i64 {
    50_000 + video as i64
}

/// Writes interactions.parquet, users.parquet, videos.parquet and routing.parquet (routed_like = liked,
/// unless `routing_column` names another column).
fn write_inputs(
    dir: &Path,
    rows: &[Row],
    durations: &[f32],
    n_categories: u32,
    routing_column: &str,
) {
    let n_videos = durations.len() as u32;
    let users = u32_array(rows.iter().map(|r| r.user).collect());
    let videos = u32_array(rows.iter().map(|r| r.video).collect());
    let ts = timestamp_ms_array(rows.iter().map(|r| r.ts).collect());
    let split: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.split)));
    let like: ArrayRef = Arc::new(rows.iter().map(|r| Some(r.like)).collect::<BooleanArray>());
    let interactions = batch(vec![
        ("user_idx", users.clone()),
        ("video_idx", videos.clone()),
        ("ts", ts.clone()),
        ("split", split.clone()),
        ("like", like.clone()),
    ]);
    write_batch(&dir.join("interactions.parquet"), &interactions, &meta()).unwrap();

    let routing = batch(vec![
        ("user_idx", users),
        ("video_idx", videos),
        ("ts", ts),
        ("split", split),
        (
            "p_like",
            f32_array(
                rows.iter()
                    .map(|r| if r.like { 0.9 } else { 0.1 })
                    .collect(),
            ),
        ),
        (routing_column, like),
    ]);
    write_batch(&dir.join("routing.parquet"), &routing, &meta()).unwrap();

    let n_users = rows.iter().map(|r| r.user + 1).max().unwrap_or(0);
    let users = batch(vec![
        ("user_idx", u32_array((0..n_users).collect())),
        ("user_id", i64_array((0..n_users as i64).collect())),
    ]);
    write_batch(&dir.join("users.parquet"), &users, &meta()).unwrap();

    let mut counts = vec![0f32; n_videos as usize];
    for row in rows.iter().filter(|r| r.split == "train") {
        counts[row.video as usize] += 1.0;
    }
    let categories = (0..n_videos).map(|v| format!("c{}", v % n_categories));
    let videos = batch(vec![
        ("video_idx", u32_array((0..n_videos).collect())),
        ("video_id", i64_array((0..n_videos).map(video_id).collect())),
        ("duration_ms", f32_array(durations.to_vec())),
        (
            "category",
            Arc::new(StringArray::from_iter_values(categories)),
        ),
        ("n_train_interactions", f32_array(counts)),
        (
            "title",
            Arc::new(StringArray::from_iter_values(
                (0..n_videos).map(|v| format!("v{v}")),
            )),
        ),
    ]);
    write_batch(&dir.join("videos.parquet"), &videos, &meta()).unwrap();
}

/// Writes candidates.parquet from (source, candidate) pairs sorted by source.
fn write_candidates(dir: &Path, pairs: &[(u32, u32)]) {
    let mut rank = Vec::new();
    for (i, pair) in pairs.iter().enumerate() {
        let first = i == 0 || pairs[i - 1].0 != pair.0;
        rank.push(if first { 1 } else { rank[i - 1] + 1 });
    }
    let candidates = batch(vec![
        ("source_idx", u32_array(pairs.iter().map(|p| p.0).collect())),
        (
            "source_id",
            i64_array(pairs.iter().map(|p| video_id(p.0)).collect()),
        ),
        (
            "candidate_idx",
            u32_array(pairs.iter().map(|p| p.1).collect()),
        ),
        (
            "candidate_id",
            i64_array(pairs.iter().map(|p| video_id(p.1)).collect()),
        ),
        ("co_count", u32_array(vec![1; pairs.len()])),
        ("score", f32_array(vec![0.5; pairs.len()])),
        ("rank", u32_array(rank)),
    ]);
    write_batch(&dir.join("candidates.parquet"), &candidates, &meta()).unwrap();
}

/// Marks the earliest 80% of rows train, the next 10% valid, the rest test, then sorts by
/// (user, ts, video) as the contract says.
fn split_by_time(rows: &mut [Row]) {
    let mut times: Vec<i64> = rows.iter().map(|r| r.ts).collect();
    times.sort_unstable();
    let cut = |share: f64| times[((times.len() as f64 * share) as usize).min(times.len() - 1)];
    let (valid_from, test_from) = (cut(0.8), cut(0.9));
    for row in rows.iter_mut() {
        row.split = if row.ts < valid_from {
            "train"
        } else if row.ts < test_from {
            "valid"
        } else {
            "test"
        };
    }
    rows.sort_by_key(|r| (r.user, r.ts, r.video));
}

const N_VIDEOS: u32 = 60;
const N_CLUSTERS: u32 = 6;

/// Users who mostly stay within one cluster of videos (video % 6): pairs inside a cluster
/// are what the towers should learn. 60 users, 40 interactions each, minutes apart.
fn synthetic_rows() -> Vec<Row> {
    let mut rng = common::rng::rng_for(11, "fixture", 0);
    let mut rows = Vec::new();
    for user in 0..60u32 {
        let cluster = user % N_CLUSTERS;
        let mut ts = 1_650_000_000_000i64 + user as i64 * 1000;
        for _ in 0..40 {
            ts += rng.random_range(60_000..1_800_000);
            let video = if rng.random::<f64>() < 0.85 {
                cluster + N_CLUSTERS * rng.random_range(0..N_VIDEOS / N_CLUSTERS)
            } else {
                rng.random_range(0..N_VIDEOS)
            };
            rows.push(Row {
                user,
                video,
                ts,
                split: "train",
                like: rng.random::<f64>() < 0.7,
            });
        }
    }
    split_by_time(&mut rows);
    rows
}

fn synthetic_durations() -> Vec<f32> {
    (0..N_VIDEOS)
        .map(|v| 5000.0 + 700.0 * (v % 7) as f32)
        .collect()
}

/// For every video, 4 candidates from its own cluster and 2 from the next one.
fn synthetic_candidates() -> Vec<(u32, u32)> {
    let mut pairs = Vec::new();
    for source in 0..N_VIDEOS {
        for step in 1..=4 {
            pairs.push((source, (source + step * N_CLUSTERS) % N_VIDEOS));
        }
        for step in [1, 7] {
            pairs.push((source, (source + step) % N_VIDEOS));
        }
    }
    pairs
}

const CONFIG: &str = r#"
[dataset]
name = "fixture"
format = "synthetic"

[twotower]
embedding_dim = 8
hidden = 16
output_dim = 8
epochs = 4
batch_size = 128
learning_rate = 0.01

[[objective]]
name = "like"
label = "like"
weight = 1.0

[[objective]]
name = "click"
label = "click"
weight = 0.5
"#;

fn setup(config: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(
        dir.path(),
        &synthetic_rows(),
        &synthetic_durations(),
        N_CLUSTERS,
        "routed_like",
    );
    write_candidates(dir.path(), &synthetic_candidates());
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config).unwrap();
    (dir, config_path)
}

fn run(dir: &Path, config: &Path, extra: &[&str], threads: usize) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("--dir")
        .arg(dir)
        .args([
            "--objective",
            "like",
            "--threads",
            &threads.to_string(),
            "--no-progress",
        ])
        .args(extra)
        // The stage derives candle's thread settings from --threads when these are unset.
        .env_remove("RAYON_NUM_THREADS")
        .env_remove("CANDLE_NUM_THREADS")
        .output()
        .unwrap()
}

fn summary(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("summary {last:?}: {e}"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn column(path: &Path, name: &str, expect: Expect) -> ArrayRef {
    ParquetInput::open(path)
        .unwrap()
        .read_columns(&[(name, expect)])
        .unwrap()
        .remove(0)
}

fn list_type(dim: i32) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        dim,
    )
}

const OUTPUTS: [&str; 3] = [
    "twotower_like.parquet",
    "twotower_like_videos.parquet",
    "twotower_like.safetensors",
];

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn scores_every_candidate_and_embeds_every_video() {
    let (dir, config) = setup(CONFIG);
    let output = run(dir.path(), &config, &[], 2);
    assert!(output.status.success(), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains("epoch 1/4: train loss") && log.contains("pairs/s"),
        "{log}"
    );

    let summary = summary(&output);
    assert_eq!(summary["stage"], "stage-twotower");
    let metrics = &summary["metrics"];
    assert!(metrics["train_pairs"].as_u64().unwrap() > 1000, "{metrics}");
    assert!(metrics["valid_pairs"].as_u64().unwrap() > 0);
    assert!(metrics["train_pairs_per_s"].as_f64().unwrap() > 0.0);
    // Pairs stay inside clusters, which the category feature and the ids reveal.
    assert!(metrics["valid_auc"].as_f64().unwrap() > 0.6, "{metrics}");

    // One score per candidate row, same order, original ids alongside.
    let scores_path = dir.path().join("twotower_like.parquet");
    let candidates = synthetic_candidates();
    let source = column(
        &scores_path,
        "source_idx",
        Expect::Exactly(DataType::UInt32),
    );
    let source = source.as_any().downcast_ref::<UInt32Array>().unwrap();
    let candidate = column(
        &scores_path,
        "candidate_id",
        Expect::Exactly(DataType::Int64),
    );
    let candidate = candidate.as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(source.len(), candidates.len());
    for (row, &(s, c)) in candidates.iter().enumerate() {
        assert_eq!((source.value(row), candidate.value(row)), (s, video_id(c)));
    }
    let scores = column(
        &scores_path,
        "nonlinear_score",
        Expect::Exactly(DataType::Float32),
    );
    let scores = scores.as_any().downcast_ref::<Float32Array>().unwrap();
    assert!(scores
        .values()
        .iter()
        .all(|s| (-1.0001..=1.0001).contains(s)));
    // Same-cluster candidates (the first 4 of each source) score higher on average.
    let mean = |same: bool| {
        let picked: Vec<f32> = (0..scores.len())
            .filter(|r| (r % 6 < 4) == same)
            .map(|r| scores.value(r))
            .collect();
        picked.iter().sum::<f32>() / picked.len() as f32
    };
    assert!(
        mean(true) > mean(false),
        "same cluster {} vs other {}",
        mean(true),
        mean(false)
    );

    // Embeddings: one row per video, unit vectors of output_dim.
    let videos_path = dir.path().join("twotower_like_videos.parquet");
    let query = column(
        &videos_path,
        "query_embedding",
        Expect::Exactly(list_type(8)),
    );
    let query = query.as_any().downcast_ref::<FixedSizeListArray>().unwrap();
    assert_eq!((query.len(), query.value_length()), (N_VIDEOS as usize, 8));
    let first = query.value(0);
    let first = first.as_any().downcast_ref::<Float32Array>().unwrap();
    let norm: f32 = first.values().iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    assert!(dir.path().join("twotower_like.safetensors").exists());
    let input = ParquetInput::open(&scores_path).unwrap();
    assert_eq!(input.key_value("relvid.stage"), Some("stage-twotower"));
}

#[test]
fn same_seed_gives_identical_bytes_whatever_the_thread_count() {
    let (one, config_one) = setup(CONFIG);
    let (two, config_two) = setup(CONFIG);
    assert!(run(one.path(), &config_one, &[], 1).status.success());
    assert!(run(two.path(), &config_two, &[], 3).status.success());
    for file in OUTPUTS {
        let a = std::fs::read(one.path().join(file)).unwrap();
        let b = std::fs::read(two.path().join(file)).unwrap();
        assert!(a == b, "{file} differs between 1 and 3 threads");
    }
    assert!(run(two.path(), &config_two, &["--seed", "9"], 1)
        .status
        .success());
    let a = std::fs::read(one.path().join(OUTPUTS[0])).unwrap();
    let b = std::fs::read(two.path().join(OUTPUTS[0])).unwrap();
    assert_ne!(a, b, "another seed should give other scores");
}

// Regression: twotower_like.parquet (make's target) used to be renamed into place first,
// before twotower_like_videos.parquet and the model. A run that died after it (kill -9, or
// here a directory squatting on twotower_like.safetensors so the save fails) left the
// target behind, and make took the objective as done with the model missing or stale.
#[test]
fn failed_model_save_leaves_no_score_file() {
    let (dir, config) = setup(CONFIG);
    std::fs::create_dir(dir.path().join("twotower_like.safetensors")).unwrap();
    let output = run(dir.path(), &config, &[], 1);
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(
        log.contains("stage-twotower: error: saving the model to")
            && log.contains("twotower_like.safetensors"),
        "{log}"
    );
    assert!(!dir.path().join("twotower_like.parquet").exists());
    assert!(!dir.path().join("twotower_like.parquet.tmp").exists());
}

#[test]
fn in_batch_negatives_and_logq_correction_also_train() {
    let config = CONFIG.replace(
        "learning_rate = 0.01",
        "learning_rate = 0.01\nin_batch_negatives = true\nlogq_correction = true",
    );
    let (dir, config) = setup(&config);
    let output = run(dir.path(), &config, &[], 2);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = summary(&output);
    assert_eq!(summary["config"]["twotower"]["in_batch_negatives"], true);
    assert!(
        summary["metrics"]["valid_auc"].as_f64().unwrap() > 0.6,
        "{}",
        summary["metrics"]
    );
}

#[test]
fn objective_overrides_apply() {
    let config = CONFIG.replace(
        "label = \"like\"\nweight = 1.0",
        "label = \"like\"\nweight = 1.0\ntwotower = { output_dim = 4 }",
    );
    let (dir, config) = setup(&config);
    let output = run(dir.path(), &config, &["--epochs", "1"], 1);
    assert!(output.status.success(), "{}", stderr(&output));
    let videos_path = dir.path().join("twotower_like_videos.parquet");
    let query = column(
        &videos_path,
        "candidate_embedding",
        Expect::Exactly(list_type(4)),
    );
    assert_eq!(
        query
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .unwrap()
            .value_length(),
        4
    );
}

#[test]
fn missing_routing_column_fails_naming_file_and_column_and_leaves_no_output() {
    let (dir, config) = setup(CONFIG);
    write_inputs(
        dir.path(),
        &synthetic_rows(),
        &synthetic_durations(),
        N_CLUSTERS,
        "routed_other",
    );
    let output = run(dir.path(), &config, &[], 1);
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(log.contains("stage-twotower: error:"), "{log}");
    assert!(
        log.contains("routing.parquet") && log.contains("routed_like"),
        "{log}"
    );
    for file in OUTPUTS {
        assert!(!dir.path().join(file).exists(), "{file} left behind");
    }
}

#[test]
fn stale_routing_file_is_rejected() {
    let (dir, config) = setup(CONFIG);
    let mut rows = synthetic_rows();
    rows.pop();
    write_inputs(
        dir.path(),
        &rows,
        &synthetic_durations(),
        N_CLUSTERS,
        "routed_like",
    );
    // interactions.parquet back to the full log: routing.parquet is now one row short.
    let full = tempfile::tempdir().unwrap();
    write_inputs(
        full.path(),
        &synthetic_rows(),
        &synthetic_durations(),
        N_CLUSTERS,
        "routed_like",
    );
    std::fs::copy(
        full.path().join("interactions.parquet"),
        dir.path().join("interactions.parquet"),
    )
    .unwrap();
    let output = run(dir.path(), &config, &[], 1);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("re-run stage-coordinate"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn unknown_candidate_video_is_reported_with_its_row() {
    let (dir, config) = setup(CONFIG);
    let mut pairs = synthetic_candidates();
    pairs[3].1 = N_VIDEOS + 5;
    write_candidates(dir.path(), &pairs);
    let output = run(dir.path(), &config, &[], 1);
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(
        log.contains("candidates.parquet")
            && log.contains("candidate_idx")
            && log.contains("row 3"),
        "{log}"
    );
}

#[test]
fn unknown_objective_fails_listing_the_configured_ones() {
    let (dir, config) = setup(CONFIG);
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--dir")
        .arg(dir.path())
        .args(["--objective", "share"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(
        log.contains("unknown objective \"share\"") && log.contains("like, click"),
        "{log}"
    );
}

#[test]
fn invalid_parameter_fails_before_reading_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        CONFIG.replace("epochs = 4", "epochs = 4\ntemperature = 0"),
    )
    .unwrap();
    let output = run(&dir.path().join("absent"), &config, &[], 1);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("invalid parameter temperature = 0"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn divergence_stops_naming_epoch_tensor_and_row() {
    let (dir, config) = setup(CONFIG);
    let output = run(dir.path(), &config, &["--learning-rate", "1e38"], 1);
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(
        log.contains("non-finite value in") && log.contains("at row"),
        "{log}"
    );
    assert!(log.contains("after epoch 1"), "{log}");
    assert!(!dir.path().join(OUTPUTS[0]).exists());
}

#[test]
fn cuda_device_without_the_feature_fails_clearly() {
    let (dir, config) = setup(CONFIG);
    let output = run(dir.path(), &config, &["--device", "cuda"], 1);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("built without CUDA support"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_names_inputs_and_outputs() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for name in [
        "interactions.parquet",
        "routing.parquet",
        "videos.parquet",
        "candidates.parquet",
        "twotower_<objective>.parquet",
        "twotower_<objective>_videos.parquet",
        "twotower_<objective>.safetensors",
    ] {
        assert!(help.contains(name), "{name} missing from --help");
    }
}

// ---------------------------------------------------------------------------------------
// Real data

/// Converts the KuaiRand slice (log.tsv): `label` 1 is a like; splits cut by time 80/10/10.
/// Returns the rows and each video's duration (the log's largest value for it).
fn kuairand_rows(log: &Path) -> (Vec<Row>, Vec<f32>) {
    let text = std::fs::read_to_string(log).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (u, v, t, label) = (at("user_id"), at("video_id"), at("time_ms"), at("label"));
    let duration = at("duration_ms");
    let raw: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    let index = |col: usize| -> std::collections::BTreeMap<i64, u32> {
        let mut ids: Vec<i64> = raw.iter().map(|f| f[col].parse().unwrap()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .enumerate()
            .map(|(i, id)| (id, i as u32))
            .collect()
    };
    let (users, videos) = (index(u), index(v));
    let mut rows: Vec<Row> = raw
        .iter()
        .map(|f| Row {
            user: users[&f[u].parse::<i64>().unwrap()],
            video: videos[&f[v].parse::<i64>().unwrap()],
            ts: f[t].parse().unwrap(),
            split: "train",
            like: f[label] == "1",
        })
        .collect();
    let mut durations = vec![0f32; videos.len()];
    for f in &raw {
        let video = videos[&f[v].parse::<i64>().unwrap()] as usize;
        durations[video] = durations[video].max(f[duration].parse().unwrap());
    }
    split_by_time(&mut rows);
    (rows, durations)
}

/// A stand-in for stage-candidates: each video's next 10 distinct videos in users'
/// train histories.
fn follow_candidates(rows: &[Row]) -> Vec<(u32, u32)> {
    let mut next: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.user == b.user && a.split == "train" && b.split == "train" && a.video != b.video {
            let list = next.entry(a.video).or_default();
            if list.len() < 10 && !list.contains(&b.video) {
                list.push(b.video);
            }
        }
    }
    next.into_iter()
        .flat_map(|(s, list)| list.into_iter().map(move |c| (s, c)))
        .collect()
}

#[test]
fn runs_on_the_real_kuairand_slice() {
    let Ok(shared) = std::env::var("RELVID_SHARED_DATA") else {
        eprintln!("skipped: set RELVID_SHARED_DATA to run on the real data");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (rows, durations) = kuairand_rows(&Path::new(&shared).join("kuairand-lh15/log.tsv"));
    write_inputs(dir.path(), &rows, &durations, 1, "routed_like");
    let candidates = follow_candidates(&rows);
    write_candidates(dir.path(), &candidates);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        CONFIG.split("[twotower]").next().unwrap().to_string()
            + &CONFIG[CONFIG.find("[[objective]]").unwrap()..],
    )
    .unwrap();
    let output = run(dir.path(), &config, &["--epochs", "2"], 2);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = summary(&output);
    assert_eq!(summary["outputs"][0]["rows"], candidates.len());
    assert_eq!(summary["outputs"][1]["rows"], durations.len());
    let metrics = &summary["metrics"];
    assert!(
        metrics["train_pairs"].as_u64().unwrap() > 100_000,
        "{metrics}"
    );
    // About half the valid targets are videos first seen in the valid period, so the AUC
    // against popularity-sampled negatives sits near 0.5 on this slice; it must exist.
    let auc = metrics["valid_auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auc), "{metrics}");
    assert!(
        metrics["valid_cold_target_share"].as_f64().unwrap() > 0.2,
        "{metrics}"
    );
    for epoch in metrics["epochs"].as_array().unwrap() {
        assert!(epoch["train_loss"].as_f64().unwrap().is_finite(), "{epoch}");
    }
}

// ---------------------------------------------------------------------------------------
// twotower-bench

/// Writes an anchor-style split: `user_id`, `video_id`, `ts` Int64 in train and test.
fn write_bench_split(dir: &Path) -> (PathBuf, PathBuf) {
    let mut rng = common::rng::rng_for(3, "bench-fixture", 0);
    let (mut users, mut videos, mut times) = (Vec::new(), Vec::new(), Vec::new());
    let (mut test_users, mut test_videos) = (Vec::new(), Vec::new());
    for user in 0..60i64 {
        // Two tastes: even users walk videos 0..10, odd users 10..20.
        let base = if user % 2 == 0 { 0 } else { 10 };
        for step in 0..12i64 {
            users.push(1000 + user);
            videos.push(base + rng.random_range(0..10i64));
            times.push(step * 60);
        }
        test_users.push(1000 + user);
        test_videos.push(base + rng.random_range(0..10i64));
    }
    let write = |name: &str, u: Vec<i64>, v: Vec<i64>, t: Vec<i64>| {
        let path = dir.join(name);
        let columns = vec![
            ("user_id", i64_array(u)),
            ("video_id", i64_array(v)),
            ("ts", i64_array(t)),
        ];
        write_batch(&path, &batch(columns), &meta()).unwrap();
        path
    };
    let test_times = vec![10_000; test_users.len()];
    (
        write("train.parquet", users, videos, times),
        write("test.parquet", test_users, test_videos, test_times),
    )
}

#[test]
fn bench_prints_one_json_line_with_the_harness_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = write_bench_split(dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_twotower-bench"))
        .args(["--input", train.to_str().unwrap()])
        .args(["--test", test.to_str().unwrap()])
        .args([
            "--epochs",
            "40",
            "--batch",
            "64",
            "--lr",
            "0.01",
            "--threads",
            "2",
            "--seed",
            "0",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for key in [
        "tool",
        "bench",
        "input",
        "videos",
        "train_pairs",
        "epochs",
        "samples_per_s",
        "s_per_epoch",
        "last_loss",
        "auc",
        "test_pairs",
        "threads",
        "load1",
    ] {
        assert!(line.get(key).is_some(), "missing {key}: {line}");
    }
    assert_eq!(line["tool"], "relvid");
    assert_eq!(line["bench"], "twotower");
    assert_eq!(line["videos"], 20);
    assert_eq!(line["test_pairs"], 60);
    assert!(line["samples_per_s"].as_f64().unwrap() > 0.0);
    // Two well-separated tastes: the towers rank the held-out video above most others.
    assert!(line["auc"].as_f64().unwrap() > 0.6, "{line}");
}

#[test]
fn bench_rejects_a_missing_column_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = write_bench_split(dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_twotower-bench"))
        .args(["--input", train.to_str().unwrap()])
        .args(["--test", test.to_str().unwrap()])
        .args(["--item-col", "item_id"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("item_id"), "{}", stderr(&output));
}
