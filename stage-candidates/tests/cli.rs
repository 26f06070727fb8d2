//! Runs the `stage-candidates` binary on Parquet fixtures written into temp folders and
//! checks exit codes, stderr, the JSON summary and `candidates.parquet`. Where
//! `RELVID_SHARED_DATA` is set, also runs on the shared KuaiRand and MovieLens logs and
//! compares every list with an independent brute-force count.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use common::columns::{f32_values_nan_null, timestamp_ms_array, u32_array, u32_values};
use common::io::write_batch;
use common::{Expect, IdColumn, ParquetInput};

const HOUR: i64 = 3_600_000;

/// One interaction of a fixture.
#[derive(Debug, Clone, Copy)]
struct Row {
    user: u32,
    video: u32,
    ts: i64,
    split: &'static str,
    click: Option<bool>,
}

fn row(user: u32, video: u32, hours: i64, split: &'static str) -> Row {
    Row {
        user,
        video,
        ts: hours * HOUR,
        split,
        click: Some(true),
    }
}

fn meta() -> common::StageMeta {
    common::stage_meta("fixture", "0", 0, serde_json::Value::Null)
}

/// Writes interactions/users/videos.parquet in the layout of the data contract.
fn write_dataset(dir: &Path, rows: &[Row], n_users: u32, video_ids: &IdColumn) {
    let mut rows = rows.to_vec();
    rows.sort_by_key(|r| (r.user, r.ts, r.video));
    let bool_null = |n: usize| -> ArrayRef { Arc::new(BooleanArray::from(vec![None::<bool>; n])) };
    let f32_null = |n: usize| -> ArrayRef { Arc::new(Float32Array::from(vec![None::<f32>; n])) };
    let n = rows.len();
    let mut fields = vec![
        Field::new("user_idx", DataType::UInt32, false),
        Field::new("video_idx", DataType::UInt32, false),
        Field::new("ts", common::columns::timestamp_type(), false),
        Field::new("split", DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        u32_array(rows.iter().map(|r| r.user).collect()),
        u32_array(rows.iter().map(|r| r.video).collect()),
        timestamp_ms_array(rows.iter().map(|r| r.ts).collect()),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.split))),
    ];
    for signal in common::schema::BOOL_SIGNALS {
        fields.push(Field::new(*signal, DataType::Boolean, true));
        columns.push(if *signal == "click" {
            Arc::new(rows.iter().map(|r| r.click).collect::<BooleanArray>())
        } else {
            bool_null(n)
        });
    }
    for signal in common::schema::NUMERIC_SIGNALS {
        fields.push(Field::new(*signal, DataType::Float32, true));
        columns.push(f32_null(n));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    write_batch(&dir.join("interactions.parquet"), &batch, &meta()).unwrap();

    let users = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_idx", DataType::UInt32, false),
            Field::new("user_id", DataType::Int64, false),
        ])),
        vec![
            u32_array((0..n_users).collect()),
            Arc::new(Int64Array::from_iter_values(
                (0..n_users as i64).map(|u| 1000 + u),
            )),
        ],
    )
    .unwrap();
    write_batch(&dir.join("users.parquet"), &users, &meta()).unwrap();

    let videos = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("video_idx", DataType::UInt32, false),
            Field::new("video_id", video_ids.data_type(), false),
        ])),
        vec![
            u32_array((0..video_ids.len() as u32).collect()),
            video_ids.to_array(),
        ],
    )
    .unwrap();
    write_batch(&dir.join("videos.parquet"), &videos, &meta()).unwrap();
}

fn write_config(dir: &Path, candidates: &str) -> PathBuf {
    let path = dir.join("test.toml");
    let text = format!(
        "[dataset]\nname = \"t\"\nformat = \"synthetic\"\n\n[candidates]\n{candidates}\n\n\
         [[objective]]\nname = \"click\"\nlabel = \"click\"\nweight = 1.0\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn run(dir: &Path, config: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stage-candidates"))
        .arg("--config")
        .arg(config)
        .arg("--dir")
        .arg(dir)
        .arg("--no-progress")
        .args(extra)
        .output()
        .unwrap()
}

fn summary(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().expect("a summary line");
    serde_json::from_str(last).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// One output row: (source, candidate, co_count, score, rank) plus the two ids as text.
#[derive(Debug, Clone, PartialEq)]
struct OutRow {
    source: u32,
    candidate: u32,
    co_count: u32,
    score: f32,
    rank: u32,
    source_id: String,
    candidate_id: String,
}

fn read_candidates(dir: &Path) -> Vec<OutRow> {
    let path = dir.join("candidates.parquet");
    let input = ParquetInput::open(&path).unwrap();
    assert_eq!(input.key_value("relvid.stage"), Some("stage-candidates"));
    let u32t = || Expect::Exactly(DataType::UInt32);
    let ids = || Expect::AnyOf(vec![DataType::Int64, DataType::Utf8]);
    let c = input
        .read_columns(&[
            ("source_idx", u32t()),
            ("source_id", ids()),
            ("candidate_idx", u32t()),
            ("candidate_id", ids()),
            ("co_count", u32t()),
            ("score", Expect::Exactly(DataType::Float32)),
            ("rank", u32t()),
        ])
        .unwrap();
    let text = |a: &ArrayRef| -> Vec<String> {
        let cast = arrow::compute::cast(a, &DataType::Utf8).unwrap();
        cast.as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect()
    };
    let (source, source_id) = (u32_values(&c[0], &path, "").unwrap(), text(&c[1]));
    let (candidate, candidate_id) = (u32_values(&c[2], &path, "").unwrap(), text(&c[3]));
    let co_count = u32_values(&c[4], &path, "").unwrap();
    let score = f32_values_nan_null(&c[5], &path, "").unwrap();
    let rank = u32_values(&c[6], &path, "").unwrap();
    (0..source.len())
        .map(|i| OutRow {
            source: source[i],
            candidate: candidate[i],
            co_count: co_count[i],
            score: score[i],
            rank: rank[i],
            source_id: source_id[i].clone(),
            candidate_id: candidate_id[i].clone(),
        })
        .collect()
}

/// A small log with known counts. Users 0-2 watch 0 then 1 within an hour; users 0-1 also
/// watch 2 two days later (outside a 24 h window of 0 and 1); user 3 watches 3 and 0 in
/// valid (ignored); user 4 watches 1 and 2 together.
fn small_log() -> Vec<Row> {
    vec![
        row(0, 0, 0, "train"),
        row(0, 1, 1, "train"),
        row(0, 2, 49, "train"),
        row(1, 0, 10, "train"),
        row(1, 1, 10, "train"),
        row(1, 2, 60, "train"),
        row(2, 1, 20, "train"),
        row(2, 0, 21, "train"),
        row(3, 3, 100, "valid"),
        row(3, 0, 100, "valid"),
        row(4, 1, 30, "train"),
        row(4, 2, 31, "train"),
    ]
}

#[test]
fn writes_known_lists_and_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = IdColumn::Int64(vec![70, 71, 72, 73]);
    write_dataset(tmp.path(), &small_log(), 5, &ids);
    let config = write_config(tmp.path(), "min_co_count = 1");
    let out = run(tmp.path(), &config, &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // c_0 = 3, c_1 = 4, c_2 = 3; c_01 = 3, c_12 = 1 (user 4 only), c_02 = 0.
    let rows = read_candidates(tmp.path());
    let got: Vec<(u32, u32, u32, u32)> = rows
        .iter()
        .map(|r| (r.source, r.rank, r.candidate, r.co_count))
        .collect();
    assert_eq!(
        got,
        vec![(0, 1, 1, 3), (1, 1, 0, 3), (1, 2, 2, 1), (2, 1, 1, 1)]
    );
    assert_eq!(rows[0].score, (3.0 / (12.0f64).sqrt()) as f32);
    assert_eq!(rows[2].score, (1.0 / (12.0f64).sqrt()) as f32);
    assert_eq!(
        (rows[0].source_id.as_str(), rows[0].candidate_id.as_str()),
        ("70", "71")
    );

    let s = summary(&out);
    assert_eq!(s["stage"], "stage-candidates");
    assert_eq!(s["metrics"]["pairs_written"], 4);
    assert_eq!(s["metrics"]["sources_with_candidates"], 3);
    assert_eq!(s["metrics"]["n_selected_rows"], 10);
    assert_eq!(s["outputs"][0]["rows"], 4);
    assert_eq!(s["config"]["window_hours"], 24.0);
}

#[test]
fn min_co_count_and_top_n_cut_the_lists() {
    let tmp = tempfile::tempdir().unwrap();
    write_dataset(
        tmp.path(),
        &small_log(),
        5,
        &IdColumn::Int64(vec![70, 71, 72, 73]),
    );
    let config = write_config(tmp.path(), "");
    let out = run(tmp.path(), &config, &["--top-n", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Vec<(u32, u32)> = read_candidates(tmp.path())
        .iter()
        .map(|r| (r.source, r.candidate))
        .collect();
    assert_eq!(got, vec![(0, 1), (1, 0)]);
    assert_eq!(summary(&out)["metrics"]["sources_below_min_co_count"], 1);
}

#[test]
fn engaged_rule_drops_unengaged_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rows = small_log();
    // Users 0 and 1 did not click video 1: only user 2 still pairs 0 with 1.
    for r in rows.iter_mut().filter(|r| r.video == 1 && r.user < 2) {
        r.click = Some(false);
    }
    rows[0].click = None;
    write_dataset(tmp.path(), &rows, 5, &IdColumn::Int64(vec![70, 71, 72, 73]));
    let config = write_config(tmp.path(), "min_co_count = 1\nengaged = \"click\"");
    let out = run(tmp.path(), &config, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Vec<(u32, u32, u32)> = read_candidates(tmp.path())
        .iter()
        .map(|r| (r.source, r.candidate, r.co_count))
        .collect();
    assert_eq!(got, vec![(0, 1, 1), (1, 0, 1), (1, 2, 1), (2, 1, 1)]);
}

#[test]
fn anchor_compat_breaks_ties_by_original_id() {
    let tmp = tempfile::tempdir().unwrap();
    // Video 0 co-occurs once with each of 1, 2, 3, all with c_j = 1: a three-way tie. The
    // original ids order them 3 < 1 < 2 as text ("a" < "b" < "c"), not by index.
    let rows = vec![
        row(0, 0, 0, "train"),
        row(0, 1, 100, "train"),
        row(1, 0, 0, "train"),
        row(1, 2, 200, "train"),
        row(2, 0, 0, "train"),
        row(2, 3, 300, "train"),
    ];
    let ids = IdColumn::Utf8(vec!["z".into(), "b".into(), "c".into(), "a".into()]);
    write_dataset(tmp.path(), &rows, 3, &ids);
    let config = write_config(tmp.path(), "top_n = 10");
    let out = run(tmp.path(), &config, &["--anchor-compat"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = read_candidates(tmp.path());
    let list: Vec<(u32, String)> = rows
        .iter()
        .filter(|r| r.source == 0)
        .map(|r| (r.candidate, r.candidate_id.clone()))
        .collect();
    assert_eq!(
        list,
        vec![
            (3, "a".to_string()),
            (1, "b".to_string()),
            (2, "c".to_string())
        ]
    );
    assert!(stderr(&out).contains("anchor-compat mode ignores [candidates] top_n = 10"));
    assert_eq!(summary(&out)["config"]["top_n"], 50);
}

#[test]
fn output_is_identical_with_one_and_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for user in 0..60u32 {
        for k in 0..25u32 {
            let video = (user * 7 + k * k) % 40;
            rows.push(row(
                user,
                video,
                (k as i64) * 5 + (user as i64 % 3),
                "train",
            ));
        }
    }
    write_dataset(
        tmp.path(),
        &rows,
        60,
        &IdColumn::Int64((0..40).map(|v| v * 11).collect()),
    );
    let config = write_config(tmp.path(), "min_co_count = 1\ntop_n = 7");
    let mut files = Vec::new();
    for threads in ["1", "2"] {
        let out = run(tmp.path(), &config, &["--threads", threads]);
        assert!(out.status.success(), "{}", stderr(&out));
        files.push(std::fs::read(tmp.path().join("candidates.parquet")).unwrap());
    }
    assert!(files[0].len() > 1000);
    assert_eq!(files[0], files[1]);
}

// Regression: candidates.parquet used to carry the --dir path in its `relvid.config`
// metadata, so two runs with the same seed on copies of one dataset in folders A and B
// wrote different bytes (the KuaiRand copies differed only in "dir":".../A" vs ".../B").
#[test]
fn same_inputs_in_two_folders_give_identical_bytes() {
    let rows = small_log();
    let ids = IdColumn::Int64(vec![70, 71, 72, 73]);
    let mut files = Vec::new();
    for name in ["a", "b"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        write_dataset(&dir, &rows, 5, &ids);
        let config = write_config(tmp.path(), "min_co_count = 1");
        let out = run(&dir, &config, &["--threads", "1"]);
        assert!(out.status.success(), "{}", stderr(&out));
        files.push(std::fs::read(dir.join("candidates.parquet")).unwrap());
    }
    assert_eq!(files[0], files[1]);
}

#[test]
fn bad_parameters_fail_before_any_data_is_read() {
    // No data files at all: each error must be about the parameter, not a missing file.
    for (section, phrase) in [
        ("top_n = 0", "invalid parameter top_n = 0"),
        ("window_hours = -2.0", "invalid parameter window_hours = -2"),
        ("min_co_count = 0", "invalid parameter min_co_count = 0"),
        ("max_history = 0", "invalid parameter max_history = 0"),
        (
            "normalisation = \"dot\"",
            "invalid parameter normalisation = \"dot\"",
        ),
        ("splits = [\"tran\"]", "unknown split \"tran\""),
        ("top_k = 5", "unknown field `top_k`"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let config = write_config(tmp.path(), section);
        let out = run(tmp.path(), &config, &[]);
        assert_eq!(out.status.code(), Some(1), "{section}");
        let err = stderr(&out);
        assert!(
            err.contains("stage-candidates: error:") && err.contains(phrase),
            "{section}: {err}"
        );
    }
}

#[test]
fn missing_column_names_the_file_and_leaves_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    write_dataset(
        tmp.path(),
        &small_log(),
        5,
        &IdColumn::Int64(vec![70, 71, 72, 73]),
    );
    // Rewrite interactions without `split`.
    let path = tmp.path().join("interactions.parquet");
    let input = ParquetInput::open(&path).unwrap();
    let cols = input
        .read_columns(&[
            ("user_idx", Expect::Numeric),
            ("video_idx", Expect::Numeric),
            ("ts", Expect::Exactly(common::columns::timestamp_type())),
        ])
        .unwrap();
    let schema = Schema::new(vec![
        Field::new("user_idx", DataType::UInt32, false),
        Field::new("video_idx", DataType::UInt32, false),
        Field::new("ts", common::columns::timestamp_type(), false),
    ]);
    write_batch(
        &path,
        &RecordBatch::try_new(Arc::new(schema), cols).unwrap(),
        &meta(),
    )
    .unwrap();

    let out = run(tmp.path(), &write_config(tmp.path(), ""), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("interactions.parquet: missing column \"split\""),
        "{err}"
    );
    assert!(!tmp.path().join("candidates.parquet").exists());
    assert!(!tmp.path().join("candidates.parquet.tmp").exists());
}

#[test]
fn unknown_video_index_is_an_error_with_its_row() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rows = small_log();
    rows.push(row(4, 9, 40, "train"));
    write_dataset(tmp.path(), &rows, 5, &IdColumn::Int64(vec![70, 71, 72, 73]));
    let out = run(tmp.path(), &write_config(tmp.path(), ""), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("column \"video_idx\"")
            && err.contains("value 9")
            && err.contains("unknown index"),
        "{err}"
    );
    assert!(!tmp.path().join("candidates.parquet").exists());
}

#[test]
fn no_selected_rows_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let rows: Vec<Row> = small_log()
        .into_iter()
        .map(|r| Row { split: "test", ..r })
        .collect();
    write_dataset(tmp.path(), &rows, 5, &IdColumn::Int64(vec![70, 71, 72, 73]));
    let out = run(
        tmp.path(),
        &write_config(tmp.path(), "engaged = \"click\""),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no rows of splits [\"train\"] are engaged (click > 0)"),
        "{err}"
    );

    write_dataset(tmp.path(), &[], 5, &IdColumn::Int64(vec![70, 71, 72, 73]));
    let out = run(tmp.path(), &write_config(tmp.path(), ""), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no interactions"), "{}", stderr(&out));
}

// ---- Real data ---------------------------------------------------------------------------

/// Events of a real log: (user id, video id, ms).
type Events = Vec<(i64, i64, i64)>;

fn read_kuairand(path: &Path) -> Events {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (u, v, t) = (col("user_id"), col("video_id"), col("time_ms"));
    lines
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            (
                f[u].parse().unwrap(),
                f[v].parse().unwrap(),
                f[t].parse().unwrap(),
            )
        })
        .collect()
}

fn read_movielens(path: &Path) -> Events {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<i64> = line.split('\t').map(|x| x.parse().unwrap()).collect();
            (f[0], f[1], f[3] * 1000)
        })
        .collect()
}

/// A minimal stand-in for stage-ingest: dense indices by sorted id, the earliest 80 % of
/// rows (by time) in train, then 10 % valid and 10 % test.
fn ingest(dir: &Path, events: &Events) -> (Vec<Row>, usize) {
    let mut users: Vec<i64> = events.iter().map(|e| e.0).collect();
    let mut videos: Vec<i64> = events.iter().map(|e| e.1).collect();
    users.sort();
    users.dedup();
    videos.sort();
    videos.dedup();
    let mut times: Vec<i64> = events.iter().map(|e| e.2).collect();
    times.sort();
    let (cut_valid, cut_test) = (times[times.len() * 8 / 10], times[times.len() * 9 / 10]);
    let rows: Vec<Row> = events
        .iter()
        .map(|&(u, v, t)| Row {
            user: users.binary_search(&u).unwrap() as u32,
            video: videos.binary_search(&v).unwrap() as u32,
            ts: t,
            split: if t < cut_valid {
                "train"
            } else if t < cut_test {
                "valid"
            } else {
                "test"
            },
            click: Some(true),
        })
        .collect();
    write_dataset(
        dir,
        &rows,
        users.len() as u32,
        &IdColumn::Int64(videos.clone()),
    );
    (rows, videos.len())
}

/// The definition counted with hash sets, independently of the crate: for each user's
/// 200 most recent train events, every pair of distinct videos within the window.
fn brute_force_lists(
    rows: &[Row],
    window_ms: Option<i64>,
    min_co: u32,
    top_n: usize,
) -> BTreeMap<u32, Vec<(u32, u32, f32)>> {
    let mut sorted = rows.to_vec();
    sorted.sort_by_key(|r| (r.user, r.ts, r.video));
    let mut per_user: BTreeMap<u32, Vec<Row>> = BTreeMap::new();
    for r in sorted.into_iter().filter(|r| r.split == "train") {
        per_user.entry(r.user).or_default().push(r);
    }
    let mut c: HashMap<u32, u32> = HashMap::new();
    let mut cij: HashMap<(u32, u32), u32> = HashMap::new();
    for events in per_user.values() {
        let recent = &events[events.len().saturating_sub(200)..];
        let mut pairs = HashSet::new();
        let mut seen = HashSet::new();
        for a in recent {
            seen.insert(a.video);
            for b in recent {
                if a.video != b.video && window_ms.is_none_or(|w| (a.ts - b.ts).abs() <= w) {
                    pairs.insert((a.video, b.video));
                }
            }
        }
        for v in seen {
            *c.entry(v).or_default() += 1;
        }
        for p in pairs {
            *cij.entry(p).or_default() += 1;
        }
    }
    let mut lists: BTreeMap<u32, Vec<(u32, u32, f64)>> = BTreeMap::new();
    for (&(a, b), &n) in &cij {
        if n >= min_co {
            let score = n as f64 / (c[&a] as f64 * c[&b] as f64).sqrt();
            lists.entry(a).or_default().push((b, n, score));
        }
    }
    lists
        .into_iter()
        .map(|(a, mut list)| {
            list.sort_by(|x, y| {
                y.2.partial_cmp(&x.2)
                    .unwrap()
                    .then(y.1.cmp(&x.1))
                    .then(x.0.cmp(&y.0))
            });
            list.truncate(top_n);
            (
                a,
                list.into_iter().map(|(b, n, s)| (b, n, s as f32)).collect(),
            )
        })
        .collect()
}

fn check_real(name: &str, events: Events) {
    let tmp = tempfile::tempdir().unwrap();
    let (rows, _) = ingest(tmp.path(), &events);
    let config = write_config(tmp.path(), "");
    let out = run(tmp.path(), &config, &[]);
    assert!(out.status.success(), "{name}: {}", stderr(&out));
    eprintln!("{name}: {}", String::from_utf8_lossy(&out.stdout).trim());

    let expected = brute_force_lists(&rows, Some(24 * HOUR), 2, 200);
    let mut got: BTreeMap<u32, Vec<(u32, u32, f32)>> = BTreeMap::new();
    for r in read_candidates(tmp.path()) {
        let list = got.entry(r.source).or_default();
        assert_eq!(
            r.rank as usize,
            list.len() + 1,
            "{name}: ranks run 1, 2, ..."
        );
        list.push((r.candidate, r.co_count, r.score));
    }
    assert!(got.len() > 100, "{name}: only {} lists", got.len());
    assert_eq!(
        got, expected,
        "{name}: lists differ from the brute-force count"
    );
}

#[test]
fn real_logs_match_a_brute_force_count() {
    let Some(shared) = std::env::var_os("RELVID_SHARED_DATA") else {
        eprintln!("skipped: RELVID_SHARED_DATA is not set");
        return;
    };
    let shared = PathBuf::from(shared);
    check_real(
        "kuairand-lh15",
        read_kuairand(&shared.join("kuairand-lh15/log.tsv")),
    );
    check_real("ml-100k", read_movielens(&shared.join("ml-100k/u.data")));
}

/// Bad-input case 4: the same (user, video) three times at different times is three events
/// in the log, but co-visitation counts (and scores) equal those of the log with the repeats
/// removed (first occurrence kept).
#[test]
fn repeated_views_count_like_the_deduplicated_log() {
    let repeated = vec![
        row(0, 0, 0, "train"),
        row(0, 0, 1, "train"),
        row(0, 1, 2, "train"),
        row(0, 0, 3, "train"),
        row(0, 2, 4, "train"),
        row(1, 0, 10, "train"),
        row(1, 1, 11, "train"),
        row(1, 1, 12, "train"),
        row(1, 1, 13, "train"),
        row(2, 2, 20, "train"),
        row(2, 1, 21, "train"),
    ];
    let mut seen = HashSet::new();
    let deduplicated: Vec<Row> = repeated
        .iter()
        .copied()
        .filter(|r| seen.insert((r.user, r.video)))
        .collect();
    assert_eq!(deduplicated.len(), 7);
    let ids = IdColumn::Int64(vec![70, 71, 72]);
    let mut lists = Vec::new();
    for rows in [&repeated, &deduplicated] {
        let tmp = tempfile::tempdir().unwrap();
        write_dataset(tmp.path(), rows, 3, &ids);
        let config = write_config(tmp.path(), "min_co_count = 1");
        let out = run(tmp.path(), &config, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        lists.push(read_candidates(tmp.path()));
    }
    // c_0 = 2, c_1 = 3, c_2 = 2; c_01 = 2 (users 0, 1), c_02 = 1, c_12 = 2 (users 0, 2).
    let got: Vec<(u32, u32, u32)> = lists[0]
        .iter()
        .map(|r| (r.source, r.candidate, r.co_count))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 1, 2),
            (0, 2, 1),
            (1, 0, 2),
            (1, 2, 2),
            (2, 1, 2),
            (2, 0, 1)
        ]
    );
    assert_eq!(lists[0], lists[1]);
}
