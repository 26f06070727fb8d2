//! Runs the `stage-merge` binary on generated candidates, routing and per-objective score
//! files in temp folders, and checks exit codes, stderr, the JSON summary and both outputs.
//! Where `RELVID_SHARED_DATA` is set, also learns the weights from routing built on the
//! real KuaiRand timestamps (14 days: exactly one labelled week).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch,
    StringArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use common::columns::{f32_values_nan_null, timestamp_ms_array, u32_array};
use common::io::write_batch;
use common::{Expect, ParquetInput};

const DAY: i64 = 86_400_000;
const OBJECTIVES: [(&str, f64); 2] = [("like", 1.0), ("dislike", -1.0)];

fn meta() -> common::StageMeta {
    common::stage_meta("fixture", "0", 0, serde_json::Value::Null)
}

fn write(path: &Path, fields: Vec<(&str, ArrayRef)>) {
    let schema = Schema::new(
        fields
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        fields.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    write_batch(path, &batch, &meta()).unwrap();
}

fn f32s(values: Vec<f32>) -> ArrayRef {
    Arc::new(Float32Array::from(values))
}

/// A deterministic pseudo-random number in [0, 1) from two integers.
fn noise(a: u64, b: u64) -> f64 {
    (common::rng::derive_seed(a, "fixture", b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Candidate pairs: `n_sources` sources with 8 candidates each; ids are 100 + idx.
struct Pairs {
    source: Vec<u32>,
    candidate: Vec<u32>,
}

fn pairs(n_sources: u32) -> Pairs {
    let mut p = Pairs {
        source: Vec::new(),
        candidate: Vec::new(),
    };
    for s in 0..n_sources {
        for c in 0..8u32 {
            p.source.push(s);
            p.candidate.push((s + 1 + c * 3) % 40);
        }
    }
    p
}

fn write_candidates(dir: &Path, p: &Pairs) {
    let ids = |v: &[u32]| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            v.iter().map(|&i| 100 + i as i64),
        ))
    };
    let n = p.source.len();
    write(
        &dir.join("candidates.parquet"),
        vec![
            ("source_idx", u32_array(p.source.clone())),
            ("source_id", ids(&p.source)),
            ("candidate_idx", u32_array(p.candidate.clone())),
            ("candidate_id", ids(&p.candidate)),
            ("co_count", u32_array(vec![2; n])),
            (
                "score",
                f32s((0..n).map(|i| 1.0 / (i % 8 + 1) as f32).collect()),
            ),
            (
                "rank",
                u32_array((0..n as u32).map(|i| i % 8 + 1).collect()),
            ),
        ],
    );
}

/// ALS and two-tower files for one objective; scores are deterministic noise, with
/// many exact ties in the ALS column (cosine 0 for a video without factors).
fn write_scores(dir: &Path, p: &Pairs, objective: &str, salt: u64) {
    let n = p.source.len();
    let linear: Vec<f32> = (0..n)
        .map(|i| {
            if i % 5 == 0 {
                0.0
            } else {
                0.9 + 0.1 * noise(salt, i as u64) as f32
            }
        })
        .collect();
    let nonlinear: Vec<f32> = (0..n)
        .map(|i| (2.0 * noise(salt + 1, i as u64) - 1.0) as f32)
        .collect();
    for (file, column, values) in [
        ("als", "linear_score", linear),
        ("twotower", "nonlinear_score", nonlinear),
    ] {
        write(
            &dir.join(format!("{file}_{objective}.parquet")),
            vec![
                ("source_idx", u32_array(p.source.clone())),
                ("candidate_idx", u32_array(p.candidate.clone())),
                (column, f32s(values)),
            ],
        );
    }
}

/// Routing over `days` days for `n_users` users; users with a high p_like keep coming
/// back, p_dislike is noise.
fn write_routing(dir: &Path, n_users: u32, days: i64) {
    write_routing_with_test(dir, n_users, days, 0);
}

/// `days` of train rows, then `test_days` of test rows whose probabilities contradict the
/// train rows' (loyal users get a low p_like there).
fn write_routing_with_test(dir: &Path, n_users: u32, days: i64, test_days: i64) {
    let (mut user, mut ts, mut split, mut like, mut dislike) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for u in 0..n_users {
        let loyalty = noise(7, u as u64);
        for day in 0..days + test_days {
            // The first and last days always have someone, so the span is exactly `days`.
            let active = u == 0 || noise(u as u64, day as u64) < 0.05 + 0.5 * loyalty;
            if !active {
                continue;
            }
            let test = day >= days;
            user.push(u);
            ts.push(1_650_000_000_000 + day * DAY + (u as i64 % 24) * 3_600_000);
            split.push(if test { "test" } else { "train" });
            let p_like = if test {
                0.9 - 0.7 * loyalty
            } else {
                0.2 + 0.7 * loyalty
            };
            like.push(p_like as f32);
            dislike.push(noise(u as u64 + 1000, day as u64) as f32);
        }
    }
    let n = user.len();
    let routed = |p: &[f32]| -> ArrayRef {
        Arc::new(BooleanArray::from(
            p.iter().map(|&x| x > 0.5).collect::<Vec<_>>(),
        ))
    };
    write(
        &dir.join("routing.parquet"),
        vec![
            ("user_idx", u32_array(user)),
            ("video_idx", u32_array(vec![0; n])),
            ("ts", timestamp_ms_array(ts)),
            ("split", Arc::new(StringArray::from(split))),
            ("routed_like", routed(&like)),
            ("p_like", f32s(like.clone())),
            ("p_dislike", f32s(dislike.clone())),
            ("routed_dislike", routed(&dislike)),
        ],
    );
}

fn write_config(dir: &Path, merge: &str) -> PathBuf {
    let mut text = format!("[dataset]\nname = \"t\"\nformat = \"synthetic\"\n\n[merge]\n{merge}\n");
    for (name, weight) in OBJECTIVES {
        text.push_str(&format!(
            "\n[[objective]]\nname = \"{name}\"\nlabel = \"{name}\"\nweight = {weight:?}\n"
        ));
    }
    let path = dir.join("test.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A complete, valid input folder.
fn fixture(dir: &Path, routing_days: i64) -> Pairs {
    let p = pairs(12);
    write_candidates(dir, &p);
    for (k, (name, _)) in OBJECTIVES.iter().enumerate() {
        write_scores(dir, &p, name, 10 * k as u64);
    }
    write_routing(dir, 150, routing_days);
    p
}

fn run(dir: &Path, config: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stage-merge"))
        .arg("--config")
        .arg(config)
        .arg("--dir")
        .arg(dir)
        .arg("--no-progress")
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn summary(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().expect("a summary line")).unwrap()
}

/// weights.parquet as (objective, manual, learned, coefficient, auc, n, rate, fallback).
#[allow(clippy::type_complexity)]
fn read_weights(
    dir: &Path,
) -> Vec<(
    String,
    f64,
    f64,
    Option<f64>,
    Option<f64>,
    u64,
    Option<f64>,
    bool,
)> {
    let path = dir.join("weights.parquet");
    let input = ParquetInput::open(&path).unwrap();
    let f64t = || Expect::Exactly(DataType::Float64);
    let c = input
        .read_columns(&[
            ("objective", Expect::Exactly(DataType::Utf8)),
            ("manual_weight", f64t()),
            ("learned_weight", f64t()),
            ("coefficient", f64t()),
            ("auc", f64t()),
            ("n_user_weeks", Expect::Exactly(DataType::UInt64)),
            ("retention_rate", f64t()),
            ("fallback", Expect::Exactly(DataType::Boolean)),
        ])
        .unwrap();
    let name = c[0].as_any().downcast_ref::<StringArray>().unwrap();
    let f = |i: usize| {
        c[i].as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .clone()
    };
    let (manual, learned, coef, auc, rate) = (f(1), f(2), f(3), f(4), f(6));
    let n = c[5].as_any().downcast_ref::<UInt64Array>().unwrap();
    let fallback = c[7].as_any().downcast_ref::<BooleanArray>().unwrap();
    let opt = |a: &Float64Array, i: usize| (!a.is_null(i)).then(|| a.value(i));
    (0..name.len())
        .map(|i| {
            (
                name.value(i).to_string(),
                manual.value(i),
                learned.value(i),
                opt(&coef, i),
                opt(&auc, i),
                n.value(i),
                opt(&rate, i),
                fallback.value(i),
            )
        })
        .collect()
}

/// related.parquet as named f32/u32 columns.
fn read_related(dir: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let path = dir.join("related.parquet");
    let input = ParquetInput::open(&path).unwrap();
    assert_eq!(input.key_value("relvid.stage"), Some("stage-merge"));
    let names: Vec<String> = input
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let expects: Vec<(&str, Expect)> = names
        .iter()
        .map(|n| (n.as_str(), Expect::Numeric))
        .collect();
    let columns = input.read_columns(&expects).unwrap();
    let values = columns
        .iter()
        .zip(&names)
        .map(|(a, n)| {
            f32_values_nan_null(a, &path, n)
                .unwrap()
                .iter()
                .map(|&v| v as f64)
                .collect()
        })
        .collect();
    (names, values)
}

#[test]
fn end_to_end_learns_weights_and_writes_ranked_lists() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), 35);
    let out = run(tmp.path(), &write_config(tmp.path(), "top_n = 5"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    let weights = read_weights(tmp.path());
    assert_eq!(weights.len(), 2);
    let (like, dislike) = (&weights[0], &weights[1]);
    assert_eq!(
        (like.0.as_str(), like.1, dislike.0.as_str(), dislike.1),
        ("like", 1.0, "dislike", -1.0)
    );
    assert!(
        !like.7 && !dislike.7,
        "no fallback expected: {}",
        stderr(&out)
    );
    // Retention follows p_like, not p_dislike.
    assert!(like.3.unwrap() > 0.0 && like.2 > dislike.2, "{weights:?}");
    assert!(((like.2 + dislike.2) / 2.0 - 1.0).abs() < 1e-12);
    assert!(like.4.unwrap() > 0.6, "auc {:?}", like.4);
    assert!(like.5 > 300, "user-weeks {}", like.5);

    let (names, cols) = read_related(tmp.path());
    assert_eq!(
        names,
        [
            "source_idx",
            "source_id",
            "rank",
            "candidate_idx",
            "candidate_id",
            "score",
            "s_like",
            "contrib_like",
            "s_dislike",
            "contrib_dislike",
            "s_covisitation",
            "contrib_covisitation"
        ]
    );
    // The co-visitation factor is covisitation_weight (default 1) x the positive a_k w_k.
    let f0 = like.1 * like.2;
    let n = cols[0].len();
    assert_eq!(n, 12 * 5);
    for i in 0..n {
        assert_eq!(cols[1][i], cols[0][i] + 100.0, "source id");
        assert_eq!(cols[4][i], cols[3][i] + 100.0, "candidate id");
        for c in [6, 8, 10] {
            assert!((0.0..=1.0).contains(&cols[c][i]), "column {}", names[c]);
        }
        // like: a w s. dislike (negative, "excess" rule, r = s_like):
        // a w (max(0, s - r) - min(s, r)). Co-visitation: f0 c. score = their sum.
        let (s_like, s_dislike) = (cols[6][i], cols[8][i]);
        let t = (s_dislike - s_like).max(0.0) - s_dislike.min(s_like);
        assert!((cols[7][i] - like.1 * like.2 * s_like).abs() < 1e-6);
        assert!((cols[9][i] - dislike.1 * dislike.2 * t).abs() < 1e-5);
        assert!((cols[11][i] - f0 * cols[10][i]).abs() < 1e-6);
        assert!((cols[5][i] - cols[7][i] - cols[9][i] - cols[11][i]).abs() < 1e-5);
        if i > 0 && cols[0][i] == cols[0][i - 1] {
            assert_eq!(cols[2][i], cols[2][i - 1] + 1.0, "ranks run 1, 2, ...");
            assert!(cols[5][i] <= cols[5][i - 1], "scores descend");
        } else {
            assert_eq!(cols[2][i], 1.0);
            assert!(i == 0 || cols[0][i] > cols[0][i - 1], "sources ascend");
        }
    }

    let s = summary(&out);
    eprintln!("fixture metrics: {}", s["metrics"]);
    assert_eq!(s["stage"], "stage-merge");
    assert_eq!(s["metrics"]["fallback"], false);
    assert_eq!(s["metrics"]["n_sources"], 12);
    assert_eq!(s["outputs"][1]["rows"], 60);
    assert!(!tmp.path().join("related.parquet.tmp").exists());
}

#[test]
fn previous_rule_is_the_max_of_percentiles_with_raw_dislike() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), 35);
    let merge = "combine = \"max\"\ncovisitation_weight = 0.0\nnegative_similarity = \"raw\"";
    let out = run(tmp.path(), &write_config(tmp.path(), merge), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let weights = read_weights(tmp.path());
    let (_, cols) = read_related(tmp.path());
    for i in 0..cols[0].len() {
        // contrib = a_k w_k s_k for both objectives, no co-visitation contribution.
        assert!((cols[9][i] - weights[1].1 * weights[1].2 * cols[8][i]).abs() < 1e-6);
        assert_eq!(cols[11][i], 0.0);
        assert!((cols[5][i] - cols[7][i] - cols[9][i]).abs() < 1e-5);
    }
}

#[test]
fn non_finite_covisitation_score_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let p = fixture(tmp.path(), 35);
    let n = p.source.len();
    let mut score = vec![0.5f32; n];
    score[3] = f32::NAN;
    let ids = |v: &[u32]| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            v.iter().map(|&i| 100 + i as i64),
        ))
    };
    write(
        &tmp.path().join("candidates.parquet"),
        vec![
            ("source_idx", u32_array(p.source.clone())),
            ("source_id", ids(&p.source)),
            ("candidate_idx", u32_array(p.candidate.clone())),
            ("candidate_id", ids(&p.candidate)),
            ("score", f32s(score)),
        ],
    );
    let out = run(tmp.path(), &write_config(tmp.path(), ""), &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("candidates.parquet") && err.contains("score") && err.contains("NaN"),
        "{err}"
    );
    assert!(!tmp.path().join("related.parquet").exists());
}

#[test]
fn test_rows_of_the_routing_log_do_not_move_the_learned_weights() {
    let train_only = tempfile::tempdir().unwrap();
    fixture(train_only.path(), 35);
    let with_test = tempfile::tempdir().unwrap();
    fixture(with_test.path(), 35);
    write_routing_with_test(with_test.path(), 150, 35, 21);

    for dir in [train_only.path(), with_test.path()] {
        let out = run(dir, &write_config(dir, ""), &[]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let weights = read_weights(train_only.path());
    assert!(weights.iter().all(|row| !row.7), "{weights:?}");
    assert_eq!(weights, read_weights(with_test.path()));
}

#[test]
fn short_log_falls_back_to_unit_weights() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), 10);
    let out = run(tmp.path(), &write_config(tmp.path(), ""), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("learned weights fall back to 1"),
        "{}",
        stderr(&out)
    );
    for row in read_weights(tmp.path()) {
        assert_eq!(
            (row.2, row.3, row.4, row.7),
            (1.0, None, None, true),
            "{row:?}"
        );
    }
    assert_eq!(summary(&out)["metrics"]["fallback"], true);
    assert!(summary(&out)["metrics"]["fallback_reason"]
        .as_str()
        .unwrap()
        .contains("less than two weeks"));
}

#[test]
fn output_is_identical_with_one_and_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), 35);
    let config = write_config(tmp.path(), "");
    let mut files = Vec::new();
    for threads in ["1", "2"] {
        let out = run(tmp.path(), &config, &["--threads", threads]);
        assert!(out.status.success(), "{}", stderr(&out));
        for name in ["related.parquet", "weights.parquet"] {
            files.push(std::fs::read(tmp.path().join(name)).unwrap());
        }
    }
    assert_eq!(files[0], files[2]);
    assert_eq!(files[1], files[3]);
}

// Regression: related.parquet and weights.parquet used to carry the --dir path in their
// `relvid.config` metadata, so the same inputs and seed merged in folders A and B gave
// different bytes (on the KuaiRand copies only "dir":".../A" vs ".../B" differed).
#[test]
fn same_inputs_in_two_folders_give_identical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "");
    let mut files = Vec::new();
    for name in ["a", "b"] {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        fixture(&dir, 35);
        let out = run(&dir, &config, &["--threads", "1"]);
        assert!(out.status.success(), "{}", stderr(&out));
        for file in ["related.parquet", "weights.parquet"] {
            files.push(std::fs::read(dir.join(file)).unwrap());
        }
    }
    assert_eq!(files[0], files[2]);
    assert_eq!(files[1], files[3]);
}

#[test]
fn mismatched_rows_name_both_files_and_the_row() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = fixture(tmp.path(), 35);
    p.candidate.swap(3, 4);
    write_scores(tmp.path(), &p, "dislike", 10);
    let out = run(tmp.path(), &write_config(tmp.path(), ""), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("row 3:")
            && err.contains("als_dislike.parquet")
            && err.contains("candidates.parquet"),
        "{err}"
    );
    assert!(
        !tmp.path().join("related.parquet").exists()
            && !tmp.path().join("weights.parquet").exists()
    );
    assert!(!tmp.path().join("related.parquet.tmp").exists());
}

#[test]
fn row_count_mismatch_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut p = fixture(tmp.path(), 35);
    p.source.pop();
    p.candidate.pop();
    write_scores(tmp.path(), &p, "like", 0);
    let out = run(tmp.path(), &write_config(tmp.path(), ""), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("als_like.parquet has 95 rows but"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_score_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), 35);
    std::fs::remove_file(tmp.path().join("twotower_dislike.parquet")).unwrap();
    let out = run(tmp.path(), &write_config(tmp.path(), ""), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("twotower_dislike.parquet"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn non_finite_score_names_file_column_and_row() {
    let tmp = tempfile::tempdir().unwrap();
    let p = fixture(tmp.path(), 35);
    let mut values = vec![0.5f32; p.source.len()];
    values[7] = f32::NAN;
    write(
        &tmp.path().join("twotower_like.parquet"),
        vec![
            ("source_idx", u32_array(p.source.clone())),
            ("candidate_idx", u32_array(p.candidate.clone())),
            ("nonlinear_score", f32s(values)),
        ],
    );
    let out = run(tmp.path(), &write_config(tmp.path(), ""), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("twotower_like.parquet: column \"nonlinear_score\", row 7: value NaN"),
        "{err}"
    );
}

#[test]
fn probability_outside_zero_one_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), 35);
    let ts = vec![0i64, DAY];
    write(
        &tmp.path().join("routing.parquet"),
        vec![
            ("user_idx", u32_array(vec![0, 1])),
            ("ts", timestamp_ms_array(ts)),
            ("split", Arc::new(StringArray::from(vec!["train"; 2]))),
            ("p_like", f32s(vec![0.5, 1.5])),
            ("p_dislike", f32s(vec![0.5, 0.5])),
        ],
    );
    let out = run(tmp.path(), &write_config(tmp.path(), ""), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("routing.parquet: column \"p_like\", row 1: value 1.5"),
        "{err}"
    );
}

#[test]
fn check_config_validates_the_settings_without_reading_or_writing_data() {
    // An empty folder: the check must not look for any input.
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        tmp.path(),
        &write_config(tmp.path(), "top_n = 10"),
        &["--check-config"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "stage-merge: settings ok"
    );
    let bad = run(
        tmp.path(),
        &write_config(tmp.path(), "combin = \"max\""),
        &["--check-config"],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("unknown field `combin`"),
        "{}",
        stderr(&bad)
    );
    let files: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, vec![std::ffi::OsString::from("test.toml")]);
}

#[test]
fn a_timestamp_beyond_the_week_calendar_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), 35);
    write(
        &tmp.path().join("routing.parquet"),
        vec![
            ("user_idx", u32_array(vec![0, 1])),
            ("ts", timestamp_ms_array(vec![0, i64::MAX / 2])),
            ("split", Arc::new(StringArray::from(vec!["train"; 2]))),
            ("p_like", f32s(vec![0.5, 0.5])),
            ("p_dislike", f32s(vec![0.5, 0.5])),
        ],
    );
    let out = run(tmp.path(), &write_config(tmp.path(), ""), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("routing.parquet: column \"ts\", row 1") && err.contains("2^32 weeks"),
        "{err}"
    );
    assert!(!tmp.path().join("weights.parquet").exists());
}

#[test]
fn missing_probability_column_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), 35);
    write(
        &tmp.path().join("routing.parquet"),
        vec![
            ("user_idx", u32_array(vec![0])),
            ("ts", timestamp_ms_array(vec![0])),
            ("split", Arc::new(StringArray::from(vec!["train"]))),
            ("p_like", f32s(vec![0.5])),
        ],
    );
    let out = run(tmp.path(), &write_config(tmp.path(), ""), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("routing.parquet: missing column \"p_dislike\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_parameters_fail_before_any_data_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    for (merge, phrase) in [
        (
            "nonlinear_share = -0.1",
            "invalid parameter nonlinear_share = -0.1",
        ),
        (
            "covisitation_weight = -1.0",
            "invalid parameter covisitation_weight = -1",
        ),
        ("combine = \"sum\"", "combine"),
        ("negative_similarity = \"clip\"", "negative_similarity"),
    ] {
        let out = run(tmp.path(), &write_config(tmp.path(), merge), &[]);
        assert!(!out.status.success(), "{merge}");
        assert!(stderr(&out).contains(phrase), "{merge}: {}", stderr(&out));
    }
    bad_parameters_of_the_first_merge_fail_before_any_data_is_read();
}

fn bad_parameters_of_the_first_merge_fail_before_any_data_is_read() {
    for (section, phrase) in [
        ("top_n = 0", "invalid parameter top_n = 0"),
        ("l2 = -1.0", "invalid parameter l2 = -1"),
        (
            "holdout_fraction = 1.5",
            "invalid parameter holdout_fraction = 1.5",
        ),
        ("min_user_weeks = 0", "invalid parameter min_user_weeks = 0"),
        ("topn = 3", "unknown field `topn`"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = run(tmp.path(), &write_config(tmp.path(), section), &[]);
        assert_eq!(out.status.code(), Some(1), "{section}");
        let err = stderr(&out);
        assert!(
            err.contains("stage-merge: error:") && err.contains(phrase),
            "{section}: {err}"
        );
    }
}

// ---- Real data ---------------------------------------------------------------------------

/// Runs the merge with routing on real users and times: rows of (user id, ms, p_like,
/// p_dislike), where the probabilities are stand-ins built from the log's own signals
/// (stage-coordinate is not needed).
fn run_on_real_timeline(mut rows: Vec<(i64, i64, f32, f32)>) -> Output {
    rows.sort_by_key(|r| (r.0, r.1));
    let mut users: Vec<i64> = rows.iter().map(|r| r.0).collect();
    users.dedup();
    let tmp = tempfile::tempdir().unwrap();
    let p = pairs(12);
    write_candidates(tmp.path(), &p);
    for (k, (name, _)) in OBJECTIVES.iter().enumerate() {
        write_scores(tmp.path(), &p, name, 10 * k as u64);
    }
    write(
        &tmp.path().join("routing.parquet"),
        vec![
            (
                "user_idx",
                u32_array(
                    rows.iter()
                        .map(|r| users.binary_search(&r.0).unwrap() as u32)
                        .collect(),
                ),
            ),
            ("ts", timestamp_ms_array(rows.iter().map(|r| r.1).collect())),
            (
                "split",
                Arc::new(StringArray::from(vec!["train"; rows.len()])),
            ),
            ("p_like", f32s(rows.iter().map(|r| r.2).collect())),
            ("p_dislike", f32s(rows.iter().map(|r| r.3).collect())),
        ],
    );
    let out = run(tmp.path(), &write_config(tmp.path(), ""), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

#[test]
fn real_timelines_learn_or_fall_back_honestly() {
    let Some(shared) = std::env::var_os("RELVID_SHARED_DATA") else {
        eprintln!("skipped: RELVID_SHARED_DATA is not set");
        return;
    };
    let shared = PathBuf::from(shared);

    // KuaiRand (14 days, one labelled week): the subset keeps only users active in both
    // weeks, so almost every user-week is retained and the weights must fall back.
    let text = std::fs::read_to_string(shared.join("kuairand-lh15/log.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (cu, ct, cl, cc) = (
        col("user_id"),
        col("time_ms"),
        col("label"),
        col("is_click"),
    );
    let rows = lines
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let (like, click): (f32, f32) = (f[cl].parse().unwrap(), f[cc].parse().unwrap());
            (
                f[cu].parse().unwrap(),
                f[ct].parse().unwrap(),
                0.1 + 0.8 * like,
                0.1 + 0.8 * click,
            )
        })
        .collect();
    let s = summary(&run_on_real_timeline(rows));
    eprintln!("kuairand timeline: {}", s["metrics"]);
    assert_eq!(s["metrics"]["fallback"], true);
    assert!(s["metrics"]["fallback_reason"]
        .as_str()
        .unwrap()
        .contains("have label 0"));

    // MovieLens (30 weeks): both labels are common. p_like stands for something that does
    // predict a return (the user's overall activity), p_dislike for something that does not
    // (the share of low ratings), so a trusted model must rank them in that order.
    let ratings: Vec<Vec<i64>> = std::fs::read_to_string(shared.join("ml-100k/u.data"))
        .unwrap()
        .lines()
        .map(|line| line.split('\t').map(|x| x.parse().unwrap()).collect())
        .collect();
    let mut per_user = std::collections::HashMap::new();
    for r in &ratings {
        *per_user.entry(r[0]).or_insert(0f32) += 1.0;
    }
    let most = per_user.values().cloned().fold(1.0, f32::max);
    let rows = ratings
        .iter()
        .map(|r| {
            let activity = (1.0 + per_user[&r[0]]).ln() / (1.0 + most).ln();
            (
                r[0],
                r[3] * 1000,
                activity,
                if r[2] <= 2 { 0.8 } else { 0.2 },
            )
        })
        .collect();
    let s = summary(&run_on_real_timeline(rows));
    eprintln!("ml-100k timeline: {}", s["metrics"]);
    assert_eq!(s["metrics"]["fallback"], false, "{}", s["metrics"]);
    assert!(s["metrics"]["auc"].as_f64().unwrap() > 0.6);
    let w = &s["metrics"]["learned_weights"];
    assert!(
        w["like"].as_f64().unwrap() > w["dislike"].as_f64().unwrap(),
        "{w}"
    );
    assert!(s["metrics"]["n_user_weeks"].as_u64().unwrap() > 1000);
}

/// users.parquet, videos.parquet and an interaction log whose `split_name` rows follow each
/// source with its candidates one hour later: liked exactly where the two-tower score of
/// the like objective (salt 0 in `fixture`) is positive, so only that model has signal.
fn write_log(dir: &Path, p: &Pairs, split_name: &str) {
    write(
        &dir.join("users.parquet"),
        vec![("user_idx", u32_array((0..12).collect()))],
    );
    write(
        &dir.join("videos.parquet"),
        vec![("video_idx", u32_array((0..40).collect()))],
    );
    let (mut user, mut video, mut ts, mut like) = (vec![], vec![], vec![], vec![]);
    let t0 = 1_650_000_000_000;
    for s in 0..12u32 {
        user.push(s);
        video.push(s);
        ts.push(t0);
        like.push(false);
        for (i, _) in p.source.iter().enumerate().filter(|(_, &x)| x == s) {
            user.push(s);
            video.push(p.candidate[i]);
            ts.push(t0 + 3_600_000);
            like.push(2.0 * noise(1, i as u64) - 1.0 > 0.0);
        }
    }
    let n = user.len();
    write(
        &dir.join("interactions.parquet"),
        vec![
            ("user_idx", u32_array(user)),
            ("video_idx", u32_array(video)),
            ("ts", timestamp_ms_array(ts)),
            ("split", Arc::new(StringArray::from(vec![split_name; n]))),
            ("like", Arc::new(BooleanArray::from(like))),
            ("dislike", Arc::new(BooleanArray::from(vec![false; n]))),
        ],
    );
}

#[test]
fn calibrated_max_uses_probabilities_and_drops_an_objective_without_valid_positives() {
    let tmp = tempfile::tempdir().unwrap();
    let p = fixture(tmp.path(), 35);
    write_log(tmp.path(), &p, "valid");
    let config = write_config(tmp.path(), "combine = \"calibrated_max\"");
    let out = run(tmp.path(), &config, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("calibration of twotower_like"), "{err}");
    assert!(
        err.contains("calibration of als_dislike") && err.contains("drops out of the score"),
        "{err}"
    );
    let (_, cols) = read_related(tmp.path());
    for i in 0..cols[0].len() {
        assert!((0.0..=1.0).contains(&cols[6][i]), "s_like {}", cols[6][i]);
        // No valid dislike: s_dislike and its contribution are 0.
        assert_eq!((cols[8][i], cols[9][i]), (0.0, 0.0));
        assert!((0.0..=1.0).contains(&cols[10][i]), "s_covisitation");
    }
    assert_eq!(
        summary(&out)["config"]["score"]["combine"],
        "calibrated_max"
    );
}

#[test]
fn calibrated_max_without_a_valid_split_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let p = fixture(tmp.path(), 35);
    write_log(tmp.path(), &p, "train");
    let config = write_config(tmp.path(), "combine = \"calibrated_max\"");
    let out = run(tmp.path(), &config, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("interactions.parquet") && err.contains("calibrated_max"),
        "{err}"
    );
    assert!(!tmp.path().join("related.parquet").exists());
}
