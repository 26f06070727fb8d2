//! Runs the `stage-eval` binary on a hand-built dataset folder (a tiny log whose metrics
//! are worked out by hand below) and checks exit codes, stderr, the JSON summary and both
//! outputs. Where `RELVID_SHARED_DATA` is set and the pipeline has been run on KuaiRand
//! (`data/kuairand/` of the workspace), also checks that the recomputed `full` ranking is
//! related.parquet's, source by source.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, UInt32Type, UInt64Type};
use common::columns::{timestamp_ms_array, u32_array};
use common::io::write_batch;
use common::{Expect, ParquetInput};

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;

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

fn ids(n: i64) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(100..100 + n))
}

fn f32s(values: Vec<f32>) -> ArrayRef {
    Arc::new(Float32Array::from(values))
}

/// Six videos, three users.
///
/// Train: user 0 sees 0, 1, 2; user 1 sees 0, 3 (popularity: 0, then 1, 2, 3).
/// Test: user 0 sees 0, 1 an hour later (liked), 4 thirty hours later (outside the window);
/// user 1 sees 0, then 2 two hours later (disliked); user 2 sees 5, then 4 an hour later.
/// Truth: source 0 -> engaged {1, 2}, like {1}, disliked {2}; source 5 -> {4} (5 has no
/// candidate and was never in train: a miss for every candidate ranking).
fn write_log(dir: &Path) {
    write_log_with_split(dir, "test");
}

/// The same log with its later rows in `late_split` ("test", or "valid" for --split valid).
fn write_log_with_split(dir: &Path, late_split: &str) {
    write(
        &dir.join("users.parquet"),
        vec![("user_idx", u32_array(vec![0, 1, 2])), ("user_id", ids(3))],
    );
    write(
        &dir.join("videos.parquet"),
        vec![
            ("video_idx", u32_array((0..6).collect())),
            ("video_id", ids(6)),
        ],
    );
    // (user, video, ts, split, like, dislike), sorted by user and time.
    let t = 10 * DAY;
    let rows: Vec<(u32, u32, i64, &str, bool, bool)> = vec![
        (0, 0, 0, "train", false, false),
        (0, 1, H, "train", false, false),
        (0, 2, 2 * H, "train", false, false),
        (0, 0, t, "test", false, false),
        (0, 1, t + H, "test", true, false),
        (0, 4, t + 31 * H, "test", false, false),
        (1, 0, DAY, "train", false, false),
        (1, 3, DAY + H, "train", false, false),
        (1, 0, t, "test", false, false),
        (1, 2, t + 2 * H, "test", false, true),
        (2, 5, t, "test", false, false),
        (2, 4, t + H, "test", false, false),
    ];
    write(
        &dir.join("interactions.parquet"),
        vec![
            ("user_idx", u32_array(rows.iter().map(|r| r.0).collect())),
            ("video_idx", u32_array(rows.iter().map(|r| r.1).collect())),
            ("ts", timestamp_ms_array(rows.iter().map(|r| r.2).collect())),
            (
                "split",
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| {
                    if r.3 == "test" {
                        late_split
                    } else {
                        r.3
                    }
                }))),
            ),
            (
                "like",
                Arc::new(BooleanArray::from(
                    rows.iter().map(|r| r.4).collect::<Vec<_>>(),
                )),
            ),
            (
                "dislike",
                Arc::new(BooleanArray::from(
                    rows.iter().map(|r| r.5).collect::<Vec<_>>(),
                )),
            ),
        ],
    );
}

/// Candidates: source 0 -> 2 (rank 1), 1, 3; source 1 -> 0, 2. ALS scores put 1 first for
/// source 0; the two-tower cosines are all equal (every CDF value 0.5), so with one
/// objective of weights a = w = 1 and the first merge's rule (`PREVIOUS_RULE`) the full
/// score is max(CDF_linear, 0.5): linear 0.1 0.9 0.5 0.2 0.3 -> CDF 0 1 .75 .25 .5 ->
/// s = .5 1 .75 .5 .5, so related is source 0: 1, 3, 2 and source 1: 0, 2 (a tie, by index).
/// Under the default rule see `RELATED_DEFAULT`.
fn write_pipeline_outputs(dir: &Path, related: &[(u32, u32, u32)]) {
    let source = vec![0u32, 0, 0, 1, 1];
    let candidate = vec![2u32, 1, 3, 0, 2];
    let pair_ids = |v: &[u32]| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            v.iter().map(|&i| 100 + i as i64),
        ))
    };
    write(
        &dir.join("candidates.parquet"),
        vec![
            ("source_idx", u32_array(source.clone())),
            ("source_id", pair_ids(&source)),
            ("candidate_idx", u32_array(candidate.clone())),
            ("candidate_id", pair_ids(&candidate)),
            ("score", f32s(vec![0.9, 0.5, 0.1, 0.7, 0.6])),
            ("rank", u32_array(vec![1, 2, 3, 1, 2])),
        ],
    );
    for (file, column, values) in [
        (
            "als_like.parquet",
            "linear_score",
            vec![0.1, 0.9, 0.5, 0.2, 0.3],
        ),
        ("twotower_like.parquet", "nonlinear_score", vec![0.0; 5]),
    ] {
        write(
            &dir.join(file),
            vec![
                ("source_idx", u32_array(source.clone())),
                ("candidate_idx", u32_array(candidate.clone())),
                (column, f32s(values)),
            ],
        );
    }
    write(
        &dir.join("weights.parquet"),
        vec![
            (
                "objective",
                Arc::new(StringArray::from_iter_values(["like"])),
            ),
            ("manual_weight", Arc::new(Float64Array::from(vec![1.0]))),
            ("learned_weight", Arc::new(Float64Array::from(vec![1.0]))),
        ],
    );
    write(
        &dir.join("related.parquet"),
        vec![
            (
                "source_idx",
                u32_array(related.iter().map(|r| r.0).collect()),
            ),
            ("rank", u32_array(related.iter().map(|r| r.1).collect())),
            (
                "candidate_idx",
                u32_array(related.iter().map(|r| r.2).collect()),
            ),
        ],
    );
}

const RELATED: [(u32, u32, u32); 5] = [(0, 1, 1), (0, 2, 3), (0, 3, 2), (1, 1, 0), (1, 2, 2)];

/// The first merge's rule: max of the percentiles, raw negative similarity, no co-visitation.
const PREVIOUS_RULE: &str =
    "combine = \"max\"\ncovisitation_weight = 0.0\nnegative_similarity = \"raw\"\n";

/// Default rule: s = CDF_nonlinear = 0.5 everywhere; co-visitation scores 0.9 0.5 0.1 0.7 0.6
/// -> percentiles 1 .25 0 .75 .5, factor 1 x (sum of positive a w = 1): score = 0.5 + c, so
/// source 0: 2 (1.5), 1 (.75), 3 (.5); source 1: 0 (1.25), 2 (1.0).
const RELATED_DEFAULT: [(u32, u32, u32); 5] =
    [(0, 1, 2), (0, 2, 1), (0, 3, 3), (1, 1, 0), (1, 2, 2)];

fn write_config(dir: &Path, eval: &str) -> PathBuf {
    write_config_with_merge(dir, PREVIOUS_RULE, eval)
}

fn write_config_with_merge(dir: &Path, merge: &str, eval: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "[dataset]\nname = \"fixture\"\nformat = \"synthetic\"\n\n[merge]\ntop_n = 3\n{merge}\n\
         {eval}\n[[objective]]\nname = \"like\"\nlabel = \"like\"\nweight = 1.0\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

const EVAL_SECTION: &str = "[eval]\nk = [1, 2, 50]\nwindow_hours = 24.0\n";

fn fixture(dir: &Path) -> PathBuf {
    write_log(dir);
    write_pipeline_outputs(dir, &RELATED);
    write_config(dir, EVAL_SECTION)
}

fn run(dir: &Path, config: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stage-eval"))
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

/// (ranking, objective, metric, k) -> (value, support, pairs)
type EvalRow = (String, String, String, u32, Option<f64>, u64, u64);

fn read_eval(dir: &Path) -> Vec<EvalRow> {
    let input = ParquetInput::open(&dir.join("eval.parquet")).unwrap();
    assert_eq!(input.key_value("relvid.stage"), Some("stage-eval"));
    let c = input
        .read_columns(&[
            ("ranking", Expect::Exactly(DataType::Utf8)),
            ("objective", Expect::Exactly(DataType::Utf8)),
            ("metric", Expect::Exactly(DataType::Utf8)),
            ("k", Expect::Exactly(DataType::UInt32)),
            ("value", Expect::Exactly(DataType::Float64)),
            ("support", Expect::Exactly(DataType::UInt64)),
            ("pairs", Expect::Exactly(DataType::UInt64)),
        ])
        .unwrap();
    let text = |i: usize, r: usize| c[i].as_string::<i32>().value(r).to_string();
    let value = c[4].as_primitive::<Float64Type>();
    (0..c[0].len())
        .map(|r| {
            (
                text(0, r),
                text(1, r),
                text(2, r),
                c[3].as_primitive::<UInt32Type>().value(r),
                (!value.is_null(r)).then(|| value.value(r)),
                c[5].as_primitive::<UInt64Type>().value(r),
                c[6].as_primitive::<UInt64Type>().value(r),
            )
        })
        .collect()
}

fn get(rows: &[EvalRow], ranking: &str, objective: &str, metric: &str, k: u32) -> EvalRow {
    rows.iter()
        .find(|r| r.0 == ranking && r.1 == objective && r.2 == metric && r.3 == k)
        .unwrap_or_else(|| panic!("no row {ranking} {objective} {metric} {k}"))
        .clone()
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-12)
}

#[test]
fn end_to_end_metrics_match_the_hand_computed_values() {
    let tmp = tempfile::tempdir().unwrap();
    let config = fixture(tmp.path());
    let out = run(tmp.path(), &config, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["metrics"]["n_sources"], 2);
    assert_eq!(s["metrics"]["n_pairs"], 3);
    assert_eq!(s["metrics"]["full_matches_related"], 2);
    assert_eq!(s["metrics"]["related_sources"], 2);

    let rows = read_eval(tmp.path());
    let log3 = 3f64.log2();
    // Covisitation lists source 0: 2, 1, 3; source 5: nothing (a miss, not skipped).
    let ndcg = get(&rows, "covisitation", "all", "ndcg", 2);
    assert!(close(ndcg.4, 0.5), "{ndcg:?}");
    assert_eq!((ndcg.5, ndcg.6), (2, 3));
    assert!(close(
        get(&rows, "covisitation", "all", "hit_rate", 1).4,
        0.5
    ));
    // K = 50 beyond every list: source 0 has both relevant videos, source 5 none.
    assert!(close(
        get(&rows, "covisitation", "all", "recall", 50).4,
        0.5
    ));
    // like truth: source 0 only ({1}, listed second).
    let like = get(&rows, "covisitation", "like", "ndcg", 2);
    assert!(close(like.4, 1.0 / log3), "{like:?}");
    assert_eq!((like.5, like.6), (1, 1));
    assert!(close(get(&rows, "covisitation", "like", "mrr", 3).4, 0.5));
    // ALS puts 1 first: like NDCG@1 = 1.
    assert!(close(get(&rows, "als_like", "like", "ndcg", 1).4, 1.0));
    // Popularity for source 0: 1, 2, 3 (both relevant on top); for 5: 0, 1, 2 (4 unseen).
    assert!(close(get(&rows, "popularity", "all", "ndcg", 2).4, 0.5));
    // Coverage: covisitation lists {1, 2, 3} of 6 videos.
    assert!(close(
        get(&rows, "covisitation", "all", "coverage", 50).4,
        0.5
    ));
    // Dislike share: top 1 of source 0 is 2, engaged and disliked -> 1; top 2 adds 1 -> 1/2.
    assert!(close(
        get(&rows, "covisitation", "all", "dislike_share", 1).4,
        1.0
    ));
    assert!(close(
        get(&rows, "covisitation", "all", "dislike_share", 2).4,
        0.5
    ));
    // The full ranking lists 1, 3, 2 for source 0: share 0 at K = 1.
    assert!(close(get(&rows, "full", "all", "dislike_share", 1).4, 0.0));
    // No value is NaN.
    assert!(rows.iter().all(|r| r.4.is_none_or(|v| v.is_finite())));
    // Every ranking is there.
    let names: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for name in [
        "popularity",
        "covisitation",
        "als_like",
        "twotower_like",
        "als_mean",
        "twotower_mean",
        "merged_equal",
        "merged_manual",
        "full",
        "full_previous",
    ] {
        assert!(names.contains(name), "{name} missing: {names:?}");
    }
    // Under the previous rule, full and full_previous are one ranking.
    assert_eq!(
        get(&rows, "full", "all", "ndcg", 2).4,
        get(&rows, "full_previous", "all", "ndcg", 2).4
    );

    let report = std::fs::read_to_string(tmp.path().join("report.md")).unwrap();
    assert!(report.contains("| covisitation | 0.5000 |"), "{report}");
    assert!(
        report.contains("equals related.parquet on 2 of 2 sources"),
        "{report}"
    );
    assert!(!report.contains("NaN"));
}

#[test]
fn default_rule_adds_the_covisitation_percentile() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path());
    write_pipeline_outputs(tmp.path(), &RELATED_DEFAULT);
    let config = write_config_with_merge(tmp.path(), "", EVAL_SECTION);
    let out = run(tmp.path(), &config, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&out)["metrics"]["full_matches_related"], 2);
    let rows = read_eval(tmp.path());
    // full lists 2 first for source 0 (engaged and disliked): share 1 at K = 1, while the
    // previous rule lists 1 first (share 0).
    assert!(close(get(&rows, "full", "all", "dislike_share", 1).4, 1.0));
    assert!(close(
        get(&rows, "full_previous", "all", "dislike_share", 1).4,
        0.0
    ));
    // full = covisitation order here: NDCG@2 0.5 as computed for covisitation.
    assert!(close(get(&rows, "full", "all", "ndcg", 2).4, 0.5));
    // Without the co-visitation term the one positive objective's max is left: the first
    // rule's order (1 first for source 0).
    assert!(close(
        get(
            &rows,
            "full_without_covisitation",
            "all",
            "dislike_share",
            1
        )
        .4,
        0.0
    ));
    let out_summary = summary(&out);
    let parts = &out_summary["metrics"]["full_without_part"];
    assert_eq!(
        parts["covisitation"]["ranking"],
        "full_without_covisitation"
    );
    assert_eq!(parts["linear"]["ranking"], "full_without_linear");
    // No objective with a negative weight, and a single objective: no such variants.
    assert!(parts.get("negative_objectives").is_none(), "{parts}");
    assert!(parts.get("other_objectives").is_none(), "{parts}");
    let report = std::fs::read_to_string(tmp.path().join("report.md")).unwrap();
    assert!(
        report.contains("`full` against `full_previous`"),
        "{report}"
    );
    // full and co-visitation list the same top video for both sources.
    assert!(
        report.contains("difference +0.0000 ± 0.0000 (standard error, paired over 2 sources): equal on every source"),
        "{report}"
    );
    assert!(
        report.contains("## What each part of `full` adds, K = 1")
            && report.contains("| the co-visitation term | full_without_covisitation |"),
        "{report}"
    );
}

#[test]
fn valid_split_writes_its_own_files_and_leaves_the_test_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let config = fixture(tmp.path());
    // The test-split log has no valid rows: nothing to evaluate, nothing written.
    let out = run(tmp.path(), &config, &["--split", "valid"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no valid-split engagement"),
        "{}",
        stderr(&out)
    );
    assert!(!tmp.path().join("eval_valid.parquet").exists());

    write_log_with_split(tmp.path(), "valid");
    let out = run(tmp.path(), &config, &["--split", "valid"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&out)["config"]["split"], "valid");
    assert!(!tmp.path().join("eval.parquet").exists());
    assert!(!tmp.path().join("report.md").exists());
    let report = std::fs::read_to_string(tmp.path().join("report_valid.md")).unwrap();
    assert!(report.contains("(valid split)"), "{report}");
    assert!(report.contains("| covisitation | 0.5000 |"), "{report}");
    // With valid rows to calibrate on, `full` is compared with the two other combine rules.
    let alternatives = |out: &Output| -> Vec<String> {
        let ndcg = summary(out)["metrics"]["ndcg"].clone();
        ["full_max", "full_calibrated_max", "full_blend"]
            .iter()
            .filter(|n| ndcg.get(**n).is_some())
            .map(|n| n.to_string())
            .collect()
    };
    assert_eq!(alternatives(&out).len(), 2, "{:?}", alternatives(&out));
}

#[test]
fn without_valid_rows_the_calibrated_ranking_is_left_out_and_said_so() {
    let tmp = tempfile::tempdir().unwrap();
    let config = fixture(tmp.path());
    let out = run(tmp.path(), &config, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no calibrated_max ranking"),
        "{}",
        stderr(&out)
    );
    let ndcg = summary(&out)["metrics"]["ndcg"].clone();
    assert!(ndcg.get("full_calibrated_max").is_none(), "{ndcg}");
    assert!(ndcg.get("full").is_some(), "{ndcg}");
}

#[test]
fn missing_font_skips_the_plots_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let config = fixture(tmp.path());
    let out = Command::new(env!("CARGO_BIN_EXE_stage-eval"))
        .arg("--config")
        .arg(&config)
        .arg("--dir")
        .arg(tmp.path())
        .arg("--no-progress")
        .env("RELVID_FONT", tmp.path().join("no-such-font.ttf"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("no plots drawn"), "{}", stderr(&out));
    let report = std::fs::read_to_string(tmp.path().join("report.md")).unwrap();
    assert!(report.contains("No plots were drawn"), "{report}");
    assert!(!tmp.path().join("eval_ndcg.png").exists());
    assert!(tmp.path().join("eval.parquet").exists());
}

#[test]
fn plots_are_written_and_linked_when_a_font_exists() {
    if relvid_plots::font::find_font().is_err() {
        eprintln!("no TrueType font on this machine: skipping the plot check");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = fixture(tmp.path());
    let out = run(tmp.path(), &config, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = std::fs::read_to_string(tmp.path().join("report.md")).unwrap();
    for name in ["eval_ndcg.png", "eval_objectives.png", "eval_weights.png"] {
        let bytes = std::fs::read(tmp.path().join(name)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{name}");
        assert!(report.contains(&format!("]({name})")), "{report}");
        assert!(!tmp.path().join(format!("{name}.tmp.png")).exists());
    }
}

#[test]
fn a_stale_related_file_is_reported_not_hidden() {
    let tmp = tempfile::tempdir().unwrap();
    let config = fixture(tmp.path());
    let mut swapped = RELATED;
    swapped[0].2 = 3;
    swapped[1].2 = 1;
    write_pipeline_outputs(tmp.path(), &swapped);
    let out = run(tmp.path(), &config, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&out)["metrics"]["full_matches_related"], 1);
    assert!(stderr(&out).contains("differs from"), "{}", stderr(&out));
}

#[test]
fn output_is_identical_with_one_and_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let config = fixture(tmp.path());
    assert!(run(tmp.path(), &config, &["--threads", "1"])
        .status
        .success());
    let one = std::fs::read(tmp.path().join("eval.parquet")).unwrap();
    assert!(run(tmp.path(), &config, &["--threads", "2"])
        .status
        .success());
    assert_eq!(one, std::fs::read(tmp.path().join("eval.parquet")).unwrap());
}

#[test]
fn bad_parameters_fail_before_any_data_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    // No data in the folder: a parameter error must come first.
    let config = write_config(tmp.path(), "");
    for (flags, phrase) in [
        (vec!["--k", "10,0"], "invalid parameter k = 0"),
        (vec!["--k", "10,10"], "cut-offs must be distinct"),
        (
            vec!["--window-hours", "-1"],
            "invalid parameter window_hours = -1",
        ),
        (
            vec!["--max-sources", "-2"],
            "invalid parameter max_sources = -2",
        ),
        (vec!["--split", "train"], "invalid parameter split = train"),
        (vec!["--split", "tset"], "invalid parameter split = tset"),
    ] {
        let out = run(tmp.path(), &config, &flags);
        assert!(!out.status.success(), "{flags:?}");
        assert!(stderr(&out).contains(phrase), "{flags:?}: {}", stderr(&out));
        assert!(!tmp.path().join("eval.parquet").exists());
    }
    let bad = write_config(tmp.path(), "[eval]\nk = [0]\n");
    let out = run(tmp.path(), &bad, &[]);
    assert!(
        stderr(&out).contains("invalid parameter k = 0"),
        "{}",
        stderr(&out)
    );
    let share = write_config_with_merge(tmp.path(), "nonlinear_share = 1.5\n", "");
    let out = run(tmp.path(), &share, &[]);
    assert!(
        stderr(&out).contains("invalid parameter nonlinear_share = 1.5"),
        "{}",
        stderr(&out)
    );
    let typo = write_config(tmp.path(), "[eval]\nwindow = 3\n");
    let out = run(tmp.path(), &typo, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("window"), "{}", stderr(&out));
}

#[test]
fn missing_score_file_is_named_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let config = fixture(tmp.path());
    std::fs::remove_file(tmp.path().join("twotower_like.parquet")).unwrap();
    let out = run(tmp.path(), &config, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("twotower_like.parquet"),
        "{}",
        stderr(&out)
    );
    assert!(!tmp.path().join("eval.parquet").exists());
}

#[test]
fn max_sources_evaluates_a_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let config = fixture(tmp.path());
    let out = run(tmp.path(), &config, &["--max-sources", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["metrics"]["n_sources"], 1);
    assert_eq!(s["metrics"]["n_sources_with_truth"], 2);
}

/// The pipeline's own KuaiRand outputs, when present: every file the evaluation reads is
/// copied into a temp folder so the workspace's data folder is not written to.
#[test]
fn full_ranking_reproduces_related_on_kuairand() {
    if std::env::var_os("RELVID_SHARED_DATA").is_none() {
        eprintln!("RELVID_SHARED_DATA not set: skipping the real-data check");
        return;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let data = workspace.join("data/kuairand");
    if !data.join("related.parquet").exists() {
        eprintln!("{} has no pipeline outputs: skipping", data.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let model_scores = (name.starts_with("als_") || name.starts_with("twotower_"))
            && !name.contains("_users")
            && !name.contains("_videos")
            && name.ends_with(".parquet");
        let table = [
            "interactions.parquet",
            "users.parquet",
            "videos.parquet",
            "candidates.parquet",
            "weights.parquet",
            "related.parquet",
        ]
        .contains(&name.as_str());
        if model_scores || table {
            std::fs::copy(data.join(&name), tmp.path().join(&name)).unwrap();
        }
    }
    let config = workspace.join("data/kuairand.toml");
    let out = run(tmp.path(), &config, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = &summary(&out)["metrics"];
    let related = m["related_sources"].as_u64().unwrap();
    assert!(related > 1000, "{m}");
    assert_eq!(m["full_matches_related"].as_u64().unwrap(), related, "{m}");
    assert!(m["n_sources"].as_u64().unwrap() > 0);
}
