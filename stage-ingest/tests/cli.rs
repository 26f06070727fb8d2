//! Runs the `stage-ingest` binary on small fixture logs written into temp folders and
//! checks exit codes, error messages, the JSON summary and the written tables; with
//! `RELVID_SHARED_DATA` set, also on the real KuaiRand subset and MovieLens 100K.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit, UInt32Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_stage-ingest");

const OBJECTIVES: &str = "[[objective]]\nname = \"like\"\nlabel = \"like\"\nweight = 1.0\n";

const HEADER: &str = "user_id\tvideo_id\tdate\thourmin\ttime_ms\tis_click\tis_follow\tis_comment\tis_forward\tlong_view\tplay_time_ms\tduration_ms\tcomment_stay_time\tis_profile_enter\tlabel\ttimestamp";

/// 2022-04-10, inside the plausible window.
const T0: i64 = 1_649_581_149_287;

/// A temp folder with a config, a raw folder and an output folder.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(dataset: &str) -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("raw")).unwrap();
        let config = format!("[dataset]\nname = \"t\"\n{dataset}\n{OBJECTIVES}");
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Case { dir }
    }

    fn kuairand() -> Case {
        Case::new("format = \"kuairand\"")
    }

    fn raw(&self) -> PathBuf {
        self.dir.path().join("raw")
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn write_raw(&self, name: &str, text: &str) -> PathBuf {
        let path = self.raw().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes a KuaiRand subset log with rows (user, video, ts, label, play time).
    fn kuairand_log(&self, rows: &[(&str, &str, i64, u8, &str)]) {
        let mut text = format!("{HEADER}\n");
        for (user, video, ts, label, play) in rows {
            text.push_str(&format!(
                "{user}\t{video}\t0\t0\t{ts}\t1\t0\t0\t0\t1\t{play}\t5000\t0\t0\t{label}\tx\n"
            ));
        }
        self.write_raw("log.tsv", &text);
    }

    fn run(&self, extra: &[&str]) -> Output {
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .arg("--dir")
            .arg(self.out())
            .arg("--no-progress")
            .args(extra);
        command.output().unwrap()
    }

    fn run_raw(&self) -> Output {
        let raw = self.raw();
        self.run(&["--raw", raw.to_str().unwrap()])
    }

    fn table(&self, name: &str) -> RecordBatch {
        read_table(&self.out().join(name))
    }

    fn no_outputs(&self) -> bool {
        !self.out().exists() || std::fs::read_dir(self.out()).unwrap().next().is_none()
    }
}

fn read_table(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// The summary (last stdout line) of a successful run.
fn summary(output: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "failed: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().expect("a summary line")).unwrap()
}

/// The stderr of a failed run (exit code 1).
fn failure(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(stderr.contains("stage-ingest: error:"), "{stderr}");
    stderr
}

fn u32s(batch: &RecordBatch, column: &str) -> Vec<u32> {
    batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<UInt32Type>()
        .values()
        .to_vec()
}

fn i64s(batch: &RecordBatch, column: &str) -> Vec<i64> {
    batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

fn metric(summary: &Value, name: &str) -> u64 {
    summary["metrics"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("metric {name}: {summary}"))
}

#[test]
fn help_states_inputs_and_outputs() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for phrase in [
        "users.parquet",
        "videos.parquet",
        "interactions.parquet",
        "--raw",
        "--rows",
    ] {
        assert!(help.contains(phrase), "{phrase}: {help}");
    }
}

#[test]
fn kuairand_subset_writes_the_contract() {
    let case = Case::kuairand();
    case.kuairand_log(&[
        ("2", "20", T0 + 3, 1, "100"),
        ("1", "10", T0 + 1, 0, "200"),
        ("1", "20", T0 + 2, 1, "300"),
        ("3", "10", T0 + 9, 1, "50"),
        ("2", "10", T0 + 8, 1, "70"),
    ]);
    let summary = summary(&case.run_raw());
    assert_eq!(metric(&summary, "rows_read"), 5);
    assert_eq!(metric(&summary, "rows_written"), 5);
    assert_eq!(
        (metric(&summary, "n_users"), metric(&summary, "n_videos")),
        (3, 2)
    );
    assert_eq!(
        metric(&summary, "rows_train")
            + metric(&summary, "rows_valid")
            + metric(&summary, "rows_test"),
        5
    );

    let interactions = case.table("interactions.parquet");
    let schema = interactions.schema();
    let expected = [
        ("user_idx", DataType::UInt32),
        ("video_idx", DataType::UInt32),
        (
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        ),
        ("split", DataType::Utf8),
        ("click", DataType::Boolean),
        ("long_view", DataType::Boolean),
        ("like", DataType::Boolean),
        ("comment", DataType::Boolean),
        ("forward", DataType::Boolean),
        ("follow", DataType::Boolean),
        ("dislike", DataType::Boolean),
        ("play_time_ms", DataType::Float32),
        ("duration_ms", DataType::Float32),
        ("rating", DataType::Float32),
    ];
    let found: Vec<(&str, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().clone()))
        .collect();
    assert_eq!(found, expected.to_vec());

    // Sorted by (user_idx, ts, video_idx); the label gives like and dislike.
    assert_eq!(u32s(&interactions, "user_idx"), vec![0, 0, 1, 1, 2]);
    assert_eq!(u32s(&interactions, "video_idx"), vec![0, 1, 1, 0, 0]);
    let dislike = interactions.column_by_name("dislike").unwrap().as_boolean();
    assert!(dislike.value(0) && !dislike.value(1));
    assert_eq!(
        interactions.column_by_name("rating").unwrap().null_count(),
        5
    );

    let users = case.table("users.parquet");
    assert_eq!(u32s(&users, "user_idx"), vec![0, 1, 2]);
    assert_eq!(i64s(&users, "user_id"), vec![1, 2, 3]);
    let videos = case.table("videos.parquet");
    assert_eq!(i64s(&videos, "video_id"), vec![10, 20]);
    assert!(videos.column_by_name("duration_ms").is_some());
    assert!(videos.column_by_name("n_train_interactions").is_some());
}

#[test]
fn split_is_ordered_in_time() {
    let case = Case::kuairand();
    let rows: Vec<(String, String, i64)> = (0..50)
        .map(|i| {
            (
                format!("{}", i % 7),
                format!("{}", i % 11),
                T0 + (i * 37 % 50) * 1000,
            )
        })
        .collect();
    let borrowed: Vec<(&str, &str, i64, u8, &str)> = rows
        .iter()
        .map(|(u, v, t)| (u.as_str(), v.as_str(), *t, 1, "10"))
        .collect();
    case.kuairand_log(&borrowed);
    let summary = summary(&case.run_raw());
    assert_eq!(
        (
            metric(&summary, "rows_train"),
            metric(&summary, "rows_valid"),
            metric(&summary, "rows_test")
        ),
        (40, 5, 5)
    );
    let table = case.table("interactions.parquet");
    let ts = table
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
    let split = table.column_by_name("split").unwrap().as_string::<i32>();
    let range = |name: &str| {
        let values: Vec<i64> = (0..table.num_rows())
            .filter(|&r| split.value(r) == name)
            .map(|r| ts.value(r))
            .collect();
        (*values.iter().min().unwrap(), *values.iter().max().unwrap())
    };
    assert!(range("train").1 <= range("valid").0);
    assert!(range("valid").1 <= range("test").0);
}

#[test]
fn ids_beyond_f64_precision_stay_distinct_users() {
    let case = Case::kuairand();
    case.kuairand_log(&[
        ("9007199254740993", "1", T0, 1, "10"),
        ("9007199254740992", "1", T0 + 1, 1, "10"),
    ]);
    let summary = summary(&case.run_raw());
    assert_eq!(metric(&summary, "n_users"), 2);
    assert_eq!(summary["metrics"]["user_id_type"], "Int64");
    let users = case.table("users.parquet");
    assert_eq!(
        i64s(&users, "user_id"),
        vec![9007199254740992, 9007199254740993]
    );
}

#[test]
fn huge_id_gaps_give_dense_indices() {
    let case = Case::kuairand();
    case.kuairand_log(&[
        ("5000000000", "7", T0, 1, "10"),
        ("1", "7", T0, 1, "10"),
        ("1000000", "7", T0, 1, "10"),
    ]);
    summary(&case.run_raw());
    let users = case.table("users.parquet");
    assert_eq!(u32s(&users, "user_idx"), vec![0, 1, 2]);
    assert_eq!(i64s(&users, "user_id"), vec![1, 1_000_000, 5_000_000_000]);
    assert_eq!(
        u32s(&case.table("interactions.parquet"), "user_idx"),
        vec![0, 1, 2]
    );
}

#[test]
fn text_ids_make_a_utf8_id_column() {
    let case = Case::kuairand();
    case.kuairand_log(&[("u7", "007", T0, 1, "10"), ("10", "7", T0, 1, "10")]);
    let summary = summary(&case.run_raw());
    assert_eq!(summary["metrics"]["user_id_type"], "Utf8");
    let videos = case.table("videos.parquet");
    let ids = videos
        .column_by_name("video_id")
        .unwrap()
        .as_string::<i32>();
    assert_eq!((ids.value(0), ids.value(1)), ("007", "7"));
}

#[test]
fn integer_ids_in_log_and_text_ids_in_features_fail_naming_both_files() {
    let case = Case::kuairand();
    case.kuairand_log(&[("5", "9", T0, 1, "10")]);
    case.write_raw(
        "user_features_pure.csv",
        "user_id,user_active_degree\nu5,high_active\n",
    );
    let stderr = failure(&case.run_raw());
    assert!(
        stderr.contains("log.tsv") && stderr.contains("user_features_pure.csv"),
        "{stderr}"
    );
    assert!(case.no_outputs());
}

#[test]
fn nan_play_time_is_dropped_and_counted() {
    let case = Case::kuairand();
    case.kuairand_log(&[
        ("1", "1", T0, 1, "NaN"),
        ("1", "2", T0, 1, "-5"),
        ("2", "1", T0, 1, "10"),
    ]);
    let summary = summary(&case.run_raw());
    assert_eq!(metric(&summary, "rows_read"), 3);
    assert_eq!(metric(&summary, "rows_written"), 1);
    assert_eq!(metric(&summary, "rows_dropped_bad_signal"), 2);
    assert_eq!(
        summary["metrics"]["rows_dropped"]["play_time_nan_or_negative"],
        2
    );
    // User 1 only had dropped rows: it gets no index.
    assert_eq!(i64s(&case.table("users.parquet"), "user_id"), vec![2]);
}

#[test]
fn implausible_timestamps_are_dropped_and_counted() {
    let case = Case::kuairand();
    let future = 4_102_444_800_000; // 2100-01-01
    case.kuairand_log(&[
        ("1", "1", 1000, 1, "10"),
        ("1", "2", future, 1, "10"),
        ("2", "1", T0, 1, "10"),
    ]);
    let summary = summary(&case.run_raw());
    assert_eq!(metric(&summary, "rows_dropped_bad_timestamp"), 2);
    assert_eq!(summary["metrics"]["rows_dropped"]["ts_before_1990"], 1);
    assert_eq!(summary["metrics"]["rows_dropped"]["ts_in_future"], 1);
}

#[test]
fn duplicate_events_are_merged_and_counted() {
    let case = Case::kuairand();
    case.kuairand_log(&[
        ("1", "1", T0, 1, "10"),
        ("1", "1", T0, 0, "30"),
        ("1", "1", T0 + 1, 1, "10"),
    ]);
    let summary = summary(&case.run_raw());
    assert_eq!(metric(&summary, "duplicates_merged"), 1);
    assert_eq!(metric(&summary, "rows_written"), 2);
    let table = case.table("interactions.parquet");
    let like = table.column_by_name("like").unwrap().as_boolean();
    let dislike = table.column_by_name("dislike").unwrap().as_boolean();
    assert!(like.value(0) && dislike.value(0), "merged with OR");
    let play = table
        .column_by_name("play_time_ms")
        .unwrap()
        .as_primitive::<arrow::datatypes::Float32Type>();
    assert_eq!(play.value(0), 30.0, "merged with max");
}

#[test]
fn file_source_output_is_identical_across_thread_counts() {
    let case = Case::kuairand();
    // The (user, video, time) triples repeat every 520 rows, with another label.
    let rows: Vec<(String, String, i64, u8)> = (0..3000)
        .map(|i| {
            (
                format!("{}", i % 13),
                format!("{}", i % 20),
                T0 + (i % 40) * 1000,
                (i / 520 % 2) as u8,
            )
        })
        .collect();
    let borrowed: Vec<(&str, &str, i64, u8, &str)> = rows
        .iter()
        .map(|(u, v, t, label)| (u.as_str(), v.as_str(), *t, *label, "10"))
        .collect();
    case.kuairand_log(&borrowed);
    let raw = case.raw();
    let first = summary(&case.run(&["--raw", raw.to_str().unwrap(), "--threads", "1"]));
    assert!(metric(&first, "duplicates_merged") > 0);
    let one_thread = file_bytes(&case);
    summary(&case.run(&["--raw", raw.to_str().unwrap(), "--threads", "4"]));
    assert!(
        file_bytes(&case) == one_thread,
        "outputs differ between 1 and 4 threads"
    );
}

#[test]
fn empty_log_fails_naming_the_file() {
    let case = Case::kuairand();
    let path = case.write_raw("log.tsv", "");
    let stderr = failure(&case.run(&["--raw", path.to_str().unwrap()]));
    assert!(
        stderr.contains("log.tsv") && stderr.contains("empty"),
        "{stderr}"
    );
    assert!(case.no_outputs());

    case.write_raw("log.tsv", &format!("{HEADER}\n"));
    let stderr = failure(&case.run(&["--raw", path.to_str().unwrap()]));
    assert!(
        stderr.contains("log.tsv") && stderr.contains("no rows"),
        "{stderr}"
    );
}

#[test]
fn missing_column_fails_naming_file_and_column() {
    let case = Case::kuairand();
    let header = HEADER.replace("\tplay_time_ms", "");
    case.write_raw(
        "log.tsv",
        &format!("{header}\n1\t2\t0\t0\t{T0}\t1\t0\t0\t0\t1\t5000\t0\t0\t1\tx\n"),
    );
    let stderr = failure(&case.run_raw());
    assert!(
        stderr.contains("log.tsv") && stderr.contains("missing column \"play_time_ms\""),
        "{stderr}"
    );
    assert!(case.no_outputs());
}

#[test]
fn empty_id_fails_naming_file_column_and_row() {
    let case = Case::kuairand();
    case.kuairand_log(&[("1", "1", T0, 1, "10"), ("", "1", T0, 1, "10")]);
    let stderr = failure(&case.run_raw());
    assert!(
        stderr.contains("log.tsv") && stderr.contains("\"user_id\"") && stderr.contains("row 1"),
        "{stderr}"
    );
    assert!(case.no_outputs());
}

#[test]
fn unparsable_flag_fails_naming_the_value() {
    let case = Case::kuairand();
    case.write_raw(
        "log.tsv",
        &format!("{HEADER}\n1\t2\t0\t0\t{T0}\tyes\t0\t0\t0\t1\t10\t5000\t0\t0\t1\tx\n"),
    );
    let stderr = failure(&case.run_raw());
    assert!(
        stderr.contains("\"is_click\"") && stderr.contains("\"yes\""),
        "{stderr}"
    );
}

#[test]
fn row_limit_reads_the_first_rows_only() {
    let case = Case::kuairand();
    case.kuairand_log(&[
        ("1", "1", T0, 1, "10"),
        ("2", "1", T0, 1, "10"),
        ("3", "1", T0, 1, "10"),
    ]);
    let raw = case.raw();
    let summary = summary(&case.run(&["--raw", raw.to_str().unwrap(), "--rows", "2"]));
    assert_eq!(metric(&summary, "rows_read"), 2);
}

#[test]
fn bad_split_is_refused_before_reading_data() {
    let case =
        Case::new("format = \"kuairand\"\n[split]\nvalid_fraction = 0.6\ntest_fraction = 0.5");
    // The raw path does not exist: the parameter error must come first.
    let stderr = failure(&case.run(&["--raw", "/nonexistent/raw"]));
    assert!(
        stderr.contains("below 1") && !stderr.contains("nonexistent"),
        "{stderr}"
    );
}

#[test]
fn missing_raw_is_refused() {
    let case = Case::kuairand();
    let stderr = failure(&case.run(&[]));
    assert!(stderr.contains("--raw"), "{stderr}");
}

#[test]
fn movielens_folder_is_read() {
    let case = Case::new("format = \"movielens\"");
    case.write_raw(
        "u.data",
        "1\t10\t4\t881250949\n2\t10\t1\t881250950\n1\t11\t5\t881250951\n",
    );
    case.write_raw("u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n");
    let genres = |set: usize| {
        (0..19)
            .map(|g| if g == set { "1" } else { "0" })
            .collect::<Vec<_>>()
            .join("|")
    };
    case.write_raw(
        "u.item",
        &format!(
            "10|Toy Story (1995)|01-Jan-1995|||{}\n11|Heat (1995)|01-Jan-1995|||{}\n",
            genres(3),
            genres(1)
        ),
    );
    let summary = summary(&case.run_raw());
    assert_eq!(metric(&summary, "rows_written"), 3);
    let interactions = case.table("interactions.parquet");
    assert_eq!(
        interactions.column_by_name("rating").unwrap().null_count(),
        0
    );
    assert_eq!(
        interactions.column_by_name("click").unwrap().null_count(),
        3
    );
    let videos = case.table("videos.parquet");
    let category = videos
        .column_by_name("category")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(
        (category.value(0), category.value(1)),
        ("Animation", "Action")
    );
    let title = videos.column_by_name("title").unwrap().as_string::<i32>();
    assert_eq!(title.value(0), "Toy Story (1995)");
    let users = case.table("users.parquet");
    assert_eq!(
        users.column_by_name("age").unwrap().data_type(),
        &DataType::Float32
    );
}

#[test]
fn movielens_nan_rating_is_dropped() {
    let case = Case::new("format = \"movielens\"");
    case.write_raw(
        "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,NaN,964982703\n1,2,3.5,964982704\n",
    );
    let summary = summary(&case.run_raw());
    assert_eq!(summary["metrics"]["rows_dropped"]["rating_nan"], 1);
    assert_eq!(metric(&summary, "rows_written"), 1);
}

const GENERIC: &str = "format = \"generic\"\n[dataset.columns]\nuser = \"uid\"\nvideo = \"item\"\ntimestamp = \"when\"\ntimestamp_unit = \"ms\"\nlike = \"liked\"\nplay_time_ms = \"watched\"";

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
    if !columns[0].1.is_empty() {
        let batch =
            RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect()).unwrap();
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
}

#[test]
fn generic_parquet_is_read_with_its_mapping() {
    let case = Case::new(GENERIC);
    let path = case.raw().join("log.parquet");
    write_parquet(
        &path,
        vec![
            (
                "uid",
                Arc::new(Int64Array::from(vec![1, 1_000_000, 5_000_000_000])),
            ),
            ("item", Arc::new(StringArray::from(vec!["a", "b", "a"]))),
            ("when", Arc::new(Int64Array::from(vec![T0, T0 + 1, T0 + 2]))),
            ("liked", Arc::new(Int64Array::from(vec![1, 0, 1]))),
            (
                "watched",
                Arc::new(Float64Array::from(vec![5.0, f64::NAN, 7.0])),
            ),
        ],
    );
    let summary = summary(&case.run(&["--raw", path.to_str().unwrap()]));
    assert_eq!(metric(&summary, "rows_written"), 2);
    assert_eq!(metric(&summary, "rows_dropped_bad_signal"), 1);
    assert_eq!(summary["metrics"]["video_id_type"], "Utf8");
    let users = case.table("users.parquet");
    assert_eq!(i64s(&users, "user_id"), vec![1, 5_000_000_000]);
    let interactions = case.table("interactions.parquet");
    assert_eq!(
        interactions.column_by_name("click").unwrap().null_count(),
        2
    );
    assert_eq!(interactions.column_by_name("like").unwrap().null_count(), 0);
}

#[test]
fn generic_csv_is_read_with_its_mapping() {
    let case = Case::new(GENERIC);
    let path = case.write_raw(
        "log.csv",
        &format!("uid,item,when,liked,watched\n7,x,{T0},true,1.5\n"),
    );
    let summary = summary(&case.run(&["--raw", path.to_str().unwrap()]));
    assert_eq!(metric(&summary, "rows_written"), 1);
    let videos = case.table("videos.parquet");
    assert!(
        videos.column_by_name("duration_ms").is_none(),
        "duration is not mapped"
    );
}

// Regression: the header was split on every comma, so a quoted extra column `"a,b"`
// counted as two names and every run failed with "incorrect number of fields for line 1,
// expected 7 got 6", although the rows were well-formed CSV.
#[test]
fn generic_csv_header_may_quote_a_name_holding_the_delimiter() {
    let case = Case::new(GENERIC);
    let path = case.write_raw(
        "log.csv",
        &format!("uid,item,\"a,b\",when,liked,watched\n7,x,\"p,q\",{T0},true,1.5\n"),
    );
    let summary = summary(&case.run(&["--raw", path.to_str().unwrap()]));
    assert_eq!(metric(&summary, "rows_written"), 1);
}

// Regression: a header naming a mapped column twice (`uid,item,when,liked,watched,uid`)
// used to be read silently from the first of the two, with exit 0.
#[test]
fn generic_csv_header_naming_a_mapped_column_twice_fails() {
    let case = Case::new(GENERIC);
    let path = case.write_raw(
        "log.csv",
        &format!("uid,item,when,liked,watched,uid\n7,x,{T0},true,1.5,8\n"),
    );
    let stderr = failure(&case.run(&["--raw", path.to_str().unwrap()]));
    assert!(
        stderr.contains("log.csv: column \"uid\", row 0: value header fields 1 and 6: the header names this column twice"),
        "{stderr}"
    );
    assert!(case.no_outputs());
}

#[test]
fn generic_parquet_without_row_groups_fails_naming_the_file() {
    let case = Case::new(GENERIC);
    let path = case.raw().join("empty.parquet");
    write_parquet(
        &path,
        vec![("uid", Arc::new(Int64Array::from(Vec::<i64>::new())))],
    );
    let stderr = failure(&case.run(&["--raw", path.to_str().unwrap()]));
    assert!(
        stderr.contains("empty.parquet") && stderr.contains("zero row groups"),
        "{stderr}"
    );
    assert!(case.no_outputs());
}

#[test]
fn generic_parquet_missing_mapped_column_fails() {
    let case = Case::new(GENERIC);
    let path = case.raw().join("log.parquet");
    write_parquet(&path, vec![("uid", Arc::new(Int64Array::from(vec![1])))]);
    let stderr = failure(&case.run(&["--raw", path.to_str().unwrap()]));
    assert!(
        stderr.contains("log.parquet") && stderr.contains("missing column \"item\""),
        "{stderr}"
    );
}

fn synthetic_case(rows: u64) -> Case {
    Case::new(&format!(
        "format = \"synthetic\"\n[dataset.synthetic]\nrows = {rows}"
    ))
}

fn file_bytes(case: &Case) -> Vec<Vec<u8>> {
    ["users.parquet", "videos.parquet", "interactions.parquet"]
        .iter()
        .map(|name| std::fs::read(case.out().join(name)).unwrap())
        .collect()
}

#[test]
fn synthetic_log_has_about_the_requested_size_and_sane_rates() {
    let case = synthetic_case(30_000);
    let summary = summary(&case.run(&[]));
    let rows = metric(&summary, "rows_written") as f64;
    assert!((rows - 30_000.0).abs() < 0.05 * 30_000.0, "{rows}");
    let rates = &summary["metrics"]["synthetic"]["signal_rates"];
    let rate = |name: &str| rates[name].as_f64().unwrap();
    assert!((0.35..0.65).contains(&rate("click")), "{rates}");
    assert!((0.05..0.15).contains(&rate("like")), "{rates}");
    assert!((0.005..0.05).contains(&rate("dislike")), "{rates}");
    let users = case.table("users.parquet");
    assert!(
        users.column_by_name("age_bucket").is_some() && users.column_by_name("gender").is_some()
    );
    let videos = case.table("videos.parquet");
    assert!(videos.column_by_name("category").is_some());
    assert_eq!(metric(&summary, "n_videos") as usize, videos.num_rows());
}

#[test]
fn synthetic_output_is_identical_across_runs_and_thread_counts() {
    let case = synthetic_case(20_000);
    summary(&case.run(&["--threads", "1", "--seed", "5"]));
    let one_thread = file_bytes(&case);
    summary(&case.run(&["--threads", "3", "--seed", "5"]));
    assert!(
        file_bytes(&case) == one_thread,
        "outputs differ between 1 and 3 threads"
    );
    // Another output folder writes the same bytes too.
    let elsewhere = synthetic_case(20_000);
    summary(&elsewhere.run(&["--seed", "5"]));
    assert!(
        file_bytes(&elsewhere) == one_thread,
        "outputs depend on the folder"
    );
    summary(&case.run(&["--seed", "6"]));
    assert!(
        file_bytes(&case)[2] != one_thread[2],
        "another seed gives the same log"
    );
}

#[test]
fn synthetic_rows_flag_overrides_the_config() {
    let case = synthetic_case(200_000);
    let summary = summary(&case.run(&["--rows", "5000"]));
    let rows = metric(&summary, "rows_written");
    assert!(rows < 10_000, "{rows}");
}

#[test]
fn synthetic_with_many_weeks_keeps_the_requested_size_with_fewer_users() {
    let case = Case::new("format = \"synthetic\"\n[dataset.synthetic]\nrows = 20000\nweeks = 52");
    let output = case.run(&[]);
    let summary = summary(&output);
    let rows = metric(&summary, "rows_written") as f64;
    assert!((rows - 20_000.0).abs() < 0.05 * 20_000.0, "{rows}");
    assert!(metric(&summary, "n_users") < 500);
    assert!(String::from_utf8_lossy(&output.stderr).contains("users instead of 500"));
}

#[test]
fn synthetic_refuses_raw() {
    let case = synthetic_case(1000);
    let stderr = failure(&case.run(&["--raw", "x"]));
    assert!(stderr.contains("reads no file"), "{stderr}");
}

/// The shared real data, when `RELVID_SHARED_DATA` points at it.
fn shared_data() -> Option<PathBuf> {
    match std::env::var_os("RELVID_SHARED_DATA") {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            eprintln!("RELVID_SHARED_DATA is not set: skipping the real-data test");
            None
        }
    }
}

#[test]
fn real_kuairand_subset() {
    let Some(shared) = shared_data() else { return };
    let case = Case::kuairand();
    let raw = shared.join("kuairand-lh15");
    let summary = summary(&case.run(&["--raw", raw.to_str().unwrap()]));
    assert_eq!(metric(&summary, "rows_read"), 41_828);
    assert_eq!(metric(&summary, "n_users"), 664);
    assert_eq!(metric(&summary, "n_videos"), 9_359);
    // The subset repeats 124 rows with the same (user, video, time_ms).
    assert_eq!(
        metric(&summary, "rows_written") + metric(&summary, "duplicates_merged"),
        41_828
    );
    assert_eq!(
        metric(&summary, "rows_dropped_bad_signal")
            + metric(&summary, "rows_dropped_bad_timestamp"),
        0
    );
    assert_eq!(summary["metrics"]["user_id_type"], "Int64");
    let loaded =
        common::Interactions::load(&case.out(), &["click", "dislike", "duration_ms"]).unwrap();
    assert_eq!(loaded.len(), 41_704);
    let (ids_users, ids_videos) = common::ids::read_entity_ids(&case.out()).unwrap();
    assert_eq!((ids_users.len(), ids_videos.len()), (664, 9_359));
}

#[test]
fn real_movielens_100k() {
    let Some(shared) = shared_data() else { return };
    let case = Case::new("format = \"movielens\"");
    let raw = shared.join("ml-100k");
    let summary = summary(&case.run(&["--raw", raw.to_str().unwrap()]));
    assert_eq!(metric(&summary, "rows_read"), 100_000);
    assert_eq!(metric(&summary, "rows_written"), 100_000);
    assert_eq!(metric(&summary, "n_users"), 943);
    assert_eq!(metric(&summary, "n_videos"), 1_682);
    // What the later stages read: the common loaders accept the tables.
    let loaded = common::Interactions::load(&case.out(), &["rating", "like"]).unwrap();
    assert_eq!(
        (loaded.len(), loaded.n_users, loaded.n_videos),
        (100_000, 943, 1_682)
    );
    assert!(loaded.signal("like").iter().all(|v| v.is_nan()));
    let skip = ["video_idx", "video_id", "title"];
    let features =
        common::features::EntityFeatures::read(&case.out().join("videos.parquet"), &skip).unwrap();
    let names: Vec<&str> = features
        .categorical
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, vec!["category", "genres"]);
    let videos = case.table("videos.parquet");
    let titles = videos.column_by_name("title").unwrap().as_string::<i32>();
    // u.item is Latin-1: accented titles must decode.
    assert!((0..titles.len()).any(|r| titles.value(r).contains('é')));
}

// ---------------------------------------------------------------------------------------
// Bad-input issue: cases 4, 8 and 10

/// Case 4: the same (user, video) three times with different timestamps is three events,
/// not a duplicate.
#[test]
fn same_pair_at_three_times_is_kept_as_three_events() {
    let case = Case::kuairand();
    case.kuairand_log(&[
        ("1", "1", T0, 1, "10"),
        ("1", "1", T0 + 60_000, 0, "20"),
        ("1", "1", T0 + 120_000, 1, "30"),
    ]);
    let summary = summary(&case.run_raw());
    assert_eq!(metric(&summary, "rows_read"), 3);
    assert_eq!(metric(&summary, "rows_written"), 3);
    assert_eq!(metric(&summary, "duplicates_merged"), 0);
    let table = case.table("interactions.parquet");
    assert_eq!(u32s(&table, "user_idx"), vec![0, 0, 0]);
    assert_eq!(u32s(&table, "video_idx"), vec![0, 0, 0]);
    let ts = table
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
        .values()
        .to_vec();
    assert_eq!(ts, vec![T0, T0 + 60_000, T0 + 120_000]);
}

/// Case 10: a negative duration drops the row and is counted under its reason.
#[test]
fn negative_duration_is_dropped_and_counted() {
    let case = Case::kuairand();
    let line = |user: &str, duration: &str| {
        format!("{user}\t1\t0\t0\t{T0}\t1\t0\t0\t0\t1\t10\t{duration}\t0\t0\t1\tx\n")
    };
    case.write_raw(
        "log.tsv",
        &format!("{HEADER}\n{}{}", line("1", "-5000"), line("2", "5000")),
    );
    let summary = summary(&case.run_raw());
    assert_eq!(metric(&summary, "rows_read"), 2);
    assert_eq!(metric(&summary, "rows_written"), 1);
    assert_eq!(metric(&summary, "rows_dropped_bad_signal"), 1);
    assert_eq!(
        summary["metrics"]["rows_dropped"]["duration_nan_or_negative"],
        1
    );
    assert_eq!(i64s(&case.table("users.parquet"), "user_id"), vec![2]);
}

/// Case 8: an id column that is entirely null fails naming file, column, row and value,
/// exit 1, and nothing is written.
#[test]
fn generic_parquet_with_an_all_null_id_column_fails_naming_it() {
    let case = Case::new(GENERIC);
    let path = case.raw().join("log.parquet");
    write_parquet(
        &path,
        vec![
            ("uid", Arc::new(Int64Array::from(vec![None::<i64>, None]))),
            ("item", Arc::new(StringArray::from(vec!["a", "b"]))),
            ("when", Arc::new(Int64Array::from(vec![T0, T0 + 1]))),
            ("liked", Arc::new(Int64Array::from(vec![1, 0]))),
            ("watched", Arc::new(Float64Array::from(vec![5.0, 7.0]))),
        ],
    );
    let stderr = failure(&case.run(&["--raw", path.to_str().unwrap()]));
    assert!(
        stderr.contains("log.parquet")
            && stderr.contains("column \"uid\", row 0")
            && stderr.contains("null"),
        "{stderr}"
    );
    assert!(case.no_outputs());
}

#[test]
fn generic_parquet_in_many_row_groups_is_read_whole_and_can_be_all_train() {
    // What `make bench` does with the anchors' train split: a Parquet log in many row
    // groups, with columns the mapping does not name, ingested with every row in train.
    let case = Case::new(
        "format = \"generic\"\n[dataset.columns]\nuser = \"uid\"\nvideo = \"item\"\n\
         timestamp = \"when\"\ntimestamp_unit = \"ms\"\n\
         [split]\nvalid_fraction = 0.0\ntest_fraction = 0.0",
    );
    let path = case.raw().join("log.parquet");
    let n = 5_000i64;
    let fields = vec![
        Field::new("uid", DataType::Int64, false),
        Field::new("item", DataType::Int64, false),
        Field::new("when", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, false),
    ];
    let schema = Arc::new(Schema::new(fields));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values((0..n).map(|r| r % 97))),
        Arc::new(Int64Array::from_iter_values((0..n).map(|r| (r * 31) % 211))),
        Arc::new(Int64Array::from_iter_values((0..n).map(|r| T0 + r * 1000))),
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|r| format!("unmapped {r}")),
        )),
    ];
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(300))
        .build();
    let file = std::fs::File::create(&path).unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
    writer
        .write(&RecordBatch::try_new(schema, columns).unwrap())
        .unwrap();
    let metadata = writer.close().unwrap();
    assert!(
        metadata.num_row_groups() > 10,
        "fixture has too few row groups"
    );

    let summary = summary(&case.run(&["--raw", path.to_str().unwrap()]));
    assert_eq!(metric(&summary, "rows_written"), n as u64);
    let interactions = case.table("interactions.parquet");
    let split = interactions
        .column_by_name("split")
        .unwrap()
        .as_string::<i32>();
    assert!(
        split.iter().all(|s| s == Some("train")),
        "every row is train"
    );
}

#[test]
fn large_output_is_written_in_bounded_row_groups() {
    // Above common's row-group bound (2^20 rows), the table must span several row groups
    // so that readers stream it one group at a time.
    let case = synthetic_case(1_150_000);
    let summary = summary(&case.run(&[]));
    let rows = metric(&summary, "rows_written");
    assert!(rows > 1 << 20, "{rows} rows do not exceed one row group");
    let file = std::fs::File::open(case.out().join("interactions.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let groups = reader.metadata().row_groups();
    assert!(groups.len() >= 2, "{} row group(s)", groups.len());
    assert!(groups.iter().all(|g| g.num_rows() <= 1 << 20));
    assert_eq!(
        groups.iter().map(|g| g.num_rows() as u64).sum::<u64>(),
        rows
    );
}
