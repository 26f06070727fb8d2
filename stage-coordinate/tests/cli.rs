//! Runs the `stage-coordinate` binary on tiny generated Parquet inputs in a temp folder and
//! checks exit codes, stderr, the JSON summary and routing.parquet. With RELVID_SHARED_DATA
//! set, also runs it on the KuaiRand slice of the shared data, converted by a small reader
//! below (the same contract stage-ingest writes).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Float32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use common::columns::{f32_array, f32_array_nan_null, i64_array, timestamp_ms_array, u32_array};
use common::io::write_batch;
use common::{Expect, ParquetInput};
use rand::Rng;

const BIN: &str = env!("CARGO_BIN_EXE_stage-coordinate");

// ---------------------------------------------------------------------------------------
// Fixtures

/// One interaction of a generated or converted log.
#[derive(Clone)]
struct Row {
    user: u32,
    video: u32,
    ts: i64,
    split: &'static str,
    click: Option<bool>,
    like: Option<bool>,
    long_view: Option<bool>,
    dislike: Option<bool>,
    /// comment, forward, follow
    social: [Option<bool>; 3],
    play_time_ms: f32,
    duration_ms: f32,
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

fn bools(values: impl Iterator<Item = Option<bool>>) -> ArrayRef {
    Arc::new(values.collect::<BooleanArray>())
}

/// Writes interactions.parquet (rows must be sorted by user, ts, video), users.parquet and
/// videos.parquet; splits are cut by time by the caller.
fn write_dataset(dir: &Path, rows: &[Row], n_users: u32, n_videos: u32, skip_column: Option<&str>) {
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("user_idx", u32_array(rows.iter().map(|r| r.user).collect())),
        (
            "video_idx",
            u32_array(rows.iter().map(|r| r.video).collect()),
        ),
        (
            "ts",
            timestamp_ms_array(rows.iter().map(|r| r.ts).collect()),
        ),
        (
            "split",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.split))),
        ),
        ("click", bools(rows.iter().map(|r| r.click))),
        ("long_view", bools(rows.iter().map(|r| r.long_view))),
        ("like", bools(rows.iter().map(|r| r.like))),
        ("comment", bools(rows.iter().map(|r| r.social[0]))),
        ("forward", bools(rows.iter().map(|r| r.social[1]))),
        ("follow", bools(rows.iter().map(|r| r.social[2]))),
        ("dislike", bools(rows.iter().map(|r| r.dislike))),
        (
            "play_time_ms",
            f32_array(rows.iter().map(|r| r.play_time_ms).collect()),
        ),
        (
            "duration_ms",
            f32_array(rows.iter().map(|r| r.duration_ms).collect()),
        ),
        ("rating", f32_array_nan_null(&vec![f32::NAN; rows.len()])),
    ];
    columns.retain(|(name, _)| Some(*name) != skip_column);
    write_batch(&dir.join("interactions.parquet"), &batch(columns), &meta()).unwrap();

    let train_count = |entity: &dyn Fn(&Row) -> u32, n: u32| -> Vec<f32> {
        let mut counts = vec![0f32; n as usize];
        for row in rows.iter().filter(|r| r.split == "train") {
            counts[entity(row) as usize] += 1.0;
        }
        counts
    };
    let users = batch(vec![
        ("user_idx", u32_array((0..n_users).collect())),
        (
            "user_id",
            i64_array((0..n_users as i64).map(|u| 1000 + u).collect()),
        ),
        (
            "n_train_interactions",
            f32_array(train_count(&|r| r.user, n_users)),
        ),
        (
            "gender",
            Arc::new(StringArray::from_iter_values(
                (0..n_users).map(|u| ["f", "m"][u as usize % 2]),
            )),
        ),
    ]);
    write_batch(&dir.join("users.parquet"), &users, &meta()).unwrap();
    let mut duration = vec![0f32; n_videos as usize];
    for row in rows {
        duration[row.video as usize] = row.duration_ms;
    }
    let videos = batch(vec![
        ("video_idx", u32_array((0..n_videos).collect())),
        (
            "video_id",
            i64_array((0..n_videos as i64).map(|v| 50_000 + v).collect()),
        ),
        ("duration_ms", f32_array(duration)),
        (
            "category",
            Arc::new(StringArray::from_iter_values(
                (0..n_videos).map(|v| ["a", "b", "c"][v as usize % 3]),
            )),
        ),
        (
            "n_train_interactions",
            f32_array(train_count(&|r| r.video, n_videos)),
        ),
        (
            "title",
            Arc::new(StringArray::from_iter_values(
                (0..n_videos).map(|v| format!("video {v}")),
            )),
        ),
    ]);
    write_batch(&dir.join("videos.parquet"), &videos, &meta()).unwrap();
}

/// Marks the earliest 80% of rows train, the next 10% valid, the rest test (ties by
/// timestamp stay together), then sorts by (user, ts, video) as the contract says.
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

/// A small log where liking depends on user gender and video category, so the network has
/// something to learn: 40 users, 30 videos, 30 interactions each.
fn synthetic_rows() -> (Vec<Row>, u32, u32) {
    let (n_users, n_videos) = (40u32, 30u32);
    let mut rng = common::rng::rng_for(5, "fixture", 0);
    let mut rows = Vec::new();
    for user in 0..n_users {
        let mut ts = 1_650_000_000_000i64 + user as i64 * 60_000;
        for _ in 0..30 {
            let video = rng.random_range(0..n_videos);
            ts += rng.random_range(60_000..7_200_000);
            // Main effects of gender and category, which the network sees as features.
            let rate =
                0.1 + 0.35 * (user % 2 == 0) as u8 as f64 + 0.35 * (video % 3 == 0) as u8 as f64;
            let like = rng.random::<f64>() < rate;
            let click = rng.random::<f64>() < 0.7;
            rows.push(Row {
                user,
                video,
                ts,
                split: "train",
                click: Some(click),
                like: Some(like),
                // Missing on every fourth row, so that objective's loss is masked there.
                long_view: (video % 4 != 0).then_some(click && like),
                dislike: Some(!like && rng.random::<f64>() < 0.5),
                social: [None, Some(false), Some(false)],
                play_time_ms: rng.random_range(1000.0..60_000.0),
                duration_ms: 10_000.0 + video as f32 * 1000.0,
            });
        }
    }
    split_by_time(&mut rows);
    (rows, n_users, n_videos)
}

const CONFIG: &str = r#"
[dataset]
name = "fixture"
format = "synthetic"

[coordinate]
hidden = [16, 8]
embedding_dim = 4
epochs = 4
batch_size = 32
learning_rate = 0.03

[[objective]]
name = "like"
label = "like"
weight = 1.0

[[objective]]
name = "long_view"
label = "long_view"
weight = 1.0

[[objective]]
name = "dislike"
label = "dislike"
weight = -1.0
"#;

fn setup(config: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (rows, n_users, n_videos) = synthetic_rows();
    write_dataset(dir.path(), &rows, n_users, n_videos, None);
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
        .args(["--threads", &threads.to_string(), "--no-progress"])
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

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn routes_every_interaction_and_reports_per_objective() {
    let (dir, config) = setup(CONFIG);
    let output = run(dir.path(), &config, &[], 2);
    assert!(output.status.success(), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("epoch 1/4: train loss"), "{log}");
    assert!(log.contains("valid AUC"), "{log}");

    let summary = summary(&output);
    assert_eq!(summary["stage"], "stage-coordinate");
    assert_eq!(summary["outputs"][0]["rows"], 1200);
    let epochs = summary["metrics"]["epochs"].as_array().unwrap();
    assert!(!epochs.is_empty() && epochs[0]["train_loss"].as_f64().unwrap() > 0.0);
    let like = &summary["metrics"]["objectives"][0];
    assert_eq!(like["name"], "like");
    // Liking follows gender x category, which the network can see.
    assert!(like["valid_auc"].as_f64().unwrap() > 0.7, "{like}");
    assert!(like["routed_share"].as_f64().unwrap() > 0.0);

    // Same rows in the same order as interactions.parquet, plus the objective columns.
    let routing = dir.path().join("routing.parquet");
    let interactions = dir.path().join("interactions.parquet");
    for name in ["user_idx", "video_idx"] {
        let want = column(&interactions, name, Expect::Exactly(DataType::UInt32));
        assert_eq!(
            &column(&routing, name, Expect::Exactly(DataType::UInt32)),
            &want
        );
    }
    let p = column(&routing, "p_long_view", Expect::Exactly(DataType::Float32));
    let p = p.as_any().downcast_ref::<Float32Array>().unwrap();
    assert!(p.values().iter().all(|v| (0.0..=1.0).contains(v)));
    let routed = column(
        &routing,
        "routed_long_view",
        Expect::Exactly(DataType::Boolean),
    );
    let routed = routed.as_any().downcast_ref::<BooleanArray>().unwrap();
    let threshold = summary["metrics"]["objectives"][1]["threshold"]
        .as_f64()
        .unwrap();
    let above = (0..p.len())
        .filter(|&i| p.value(i) as f64 > threshold)
        .count();
    assert!(routed.true_count() >= above);
    let input = ParquetInput::open(&routing).unwrap();
    assert_eq!(input.key_value("relvid.stage"), Some("stage-coordinate"));
    assert!(dir.path().join("coordinate.safetensors").exists());
}

#[test]
fn same_seed_gives_identical_bytes_whatever_the_thread_count() {
    let (one, config_one) = setup(CONFIG);
    let (two, config_two) = setup(CONFIG);
    assert!(run(one.path(), &config_one, &[], 1).status.success());
    assert!(run(two.path(), &config_two, &[], 3).status.success());
    for file in ["routing.parquet", "coordinate.safetensors"] {
        let a = std::fs::read(one.path().join(file)).unwrap();
        let b = std::fs::read(two.path().join(file)).unwrap();
        assert!(a == b, "{file} differs between 1 and 3 threads");
    }

    // A different seed gives other weights (the check above is not vacuous).
    assert!(run(two.path(), &config_two, &["--seed", "7"], 1)
        .status
        .success());
    let a = std::fs::read(one.path().join("coordinate.safetensors")).unwrap();
    let b = std::fs::read(two.path().join("coordinate.safetensors")).unwrap();
    assert_ne!(a, b);
}

#[test]
fn recall_mode_routes_the_target_share_of_valid_positives() {
    let config = CONFIG.replace(
        "learning_rate = 0.03",
        "learning_rate = 0.03\nthreshold_mode = \"recall\"\ntarget_recall = 0.8",
    );
    let (dir, config) = setup(&config);
    let output = run(dir.path(), &config, &[], 2);
    assert!(output.status.success(), "{}", stderr(&output));
    for objective in summary(&output)["metrics"]["objectives"]
        .as_array()
        .unwrap()
    {
        assert_eq!(objective["threshold_source"], "recall", "{objective}");
        assert!(
            objective["valid_recall"].as_f64().unwrap() >= 0.8,
            "{objective}"
        );
    }
}

#[test]
fn missing_label_column_fails_naming_file_and_column_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, n_users, n_videos) = synthetic_rows();
    write_dataset(dir.path(), &rows, n_users, n_videos, Some("like"));
    let config = dir.path().join("config.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let output = run(dir.path(), &config, &[], 1);
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(log.contains("stage-coordinate: error:"), "{log}");
    assert!(
        log.contains("interactions.parquet") && log.contains("\"like\""),
        "{log}"
    );
    assert!(!dir.path().join("routing.parquet").exists());
    assert!(!dir.path().join("routing.parquet.tmp").exists());
}

#[test]
fn invalid_parameter_fails_before_reading_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        CONFIG.replace("epochs = 4", "epochs = 4\nthreshold = 1.5"),
    )
    .unwrap();
    // The data folder does not even exist: the parameter must be reported first.
    let output = run(&dir.path().join("absent"), &config, &[], 1);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("invalid parameter threshold = 1.5"),
        "{}",
        stderr(&output)
    );
}

// Regression: users.parquet whose user_idx ran 1, 2, 3, ... (not 0..n) used to be
// accepted: features were looked up by row, so every interaction silently got the next
// user's features and the run exited 0. Now the table is refused, naming file, column,
// row and value, and nothing is written.
#[test]
fn users_index_not_running_from_zero_fails_naming_file_column_and_value() {
    let (dir, config) = setup(CONFIG);
    let users = dir.path().join("users.parquet");
    let n_users = ParquetInput::open(&users).unwrap().n_rows() as u32;
    let shifted = batch(vec![
        ("user_idx", u32_array((1..=n_users).collect())),
        (
            "user_id",
            i64_array((0..n_users as i64).map(|u| 1000 + u).collect()),
        ),
    ]);
    write_batch(&users, &shifted, &meta()).unwrap();
    let output = run(dir.path(), &config, &[], 1);
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(
        log.contains(
            "users.parquet: column \"user_idx\", row 0: value 1: indices must run 0, 1, 2"
        ),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert!(!dir.path().join("routing.parquet").exists());
    assert!(!dir.path().join("routing.parquet.tmp").exists());
    assert!(!dir.path().join("coordinate.safetensors").exists());
}

// Regression: routing.parquet (make's target) used to be renamed into place before
// coordinate.safetensors was saved. A run that died in between (kill -9, or here a
// directory squatting on coordinate.safetensors so the save fails) left routing.parquet
// behind, and make took the stage as done with the model missing or stale.
#[test]
fn failed_model_save_leaves_no_routing_file() {
    let (dir, config) = setup(CONFIG);
    std::fs::create_dir(dir.path().join("coordinate.safetensors")).unwrap();
    let output = run(dir.path(), &config, &[], 1);
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(
        log.contains("stage-coordinate: error: saving the model to")
            && log.contains("coordinate.safetensors"),
        "{log}"
    );
    assert!(!dir.path().join("routing.parquet").exists());
    assert!(!dir.path().join("routing.parquet.tmp").exists());
}

#[test]
fn divergence_stops_naming_epoch_tensor_and_row() {
    let (dir, config) = setup(CONFIG);
    let output = run(dir.path(), &config, &["--learning-rate", "1e38"], 1);
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(log.contains("non-finite value in"), "{log}");
    assert!(
        log.contains("at row") && log.contains("after epoch 1"),
        "{log}"
    );
    assert!(!dir.path().join("routing.parquet").exists());
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
        "users.parquet",
        "videos.parquet",
        "routing.parquet",
        "coordinate.safetensors",
    ] {
        assert!(help.contains(name), "{name} missing from --help");
    }
}

// ---------------------------------------------------------------------------------------
// Real data

/// Converts the KuaiRand slice (log.tsv) into the contract's three tables: `label` 1 is a
/// like and 0 a dislike; splits are cut by time 80/10/10.
fn kuairand_rows(log: &Path) -> (Vec<Row>, u32, u32) {
    let text = std::fs::read_to_string(log).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (u, v, t) = (at("user_id"), at("video_id"), at("time_ms"));
    let (click, long_view, label) = (at("is_click"), at("long_view"), at("label"));
    let (play, duration) = (at("play_time_ms"), at("duration_ms"));
    let social = [at("is_comment"), at("is_forward"), at("is_follow")];
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
        .map(|f| {
            let liked = f[label] == "1";
            Row {
                user: users[&f[u].parse::<i64>().unwrap()],
                video: videos[&f[v].parse::<i64>().unwrap()],
                ts: f[t].parse().unwrap(),
                split: "train",
                click: Some(f[click] == "1"),
                like: Some(liked),
                long_view: Some(f[long_view] == "1"),
                dislike: Some(!liked),
                social: social.map(|c| Some(f[c] == "1")),
                play_time_ms: f[play].parse().unwrap(),
                duration_ms: f[duration].parse().unwrap(),
            }
        })
        .collect();
    split_by_time(&mut rows);
    (rows, users.len() as u32, videos.len() as u32)
}

#[test]
fn runs_on_the_real_kuairand_slice() {
    let Ok(shared) = std::env::var("RELVID_SHARED_DATA") else {
        eprintln!("skipped: set RELVID_SHARED_DATA to run on the real data");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (rows, n_users, n_videos) =
        kuairand_rows(&Path::new(&shared).join("kuairand-lh15/log.tsv"));
    write_dataset(dir.path(), &rows, n_users, n_videos, None);
    let config = dir.path().join("config.toml");
    let text = CONFIG.split("[coordinate]").next().unwrap().to_string()
        + "[[objective]]\nname = \"like\"\nlabel = \"like\"\nweight = 1.0\n\
           [[objective]]\nname = \"long_view\"\nlabel = \"long_view\"\nweight = 1.0\n";
    std::fs::write(&config, text).unwrap();
    let output = run(dir.path(), &config, &[], 2);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = summary(&output);
    assert_eq!(summary["outputs"][0]["rows"], rows.len());
    for objective in summary["metrics"]["objectives"].as_array().unwrap() {
        assert!(
            objective["valid_auc"].as_f64().unwrap() > 0.55,
            "{objective}"
        );
    }
}
