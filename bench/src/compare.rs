//! relvid next to the anchor tools of `shared/bench`, on the same log and the same split:
//! one table row per tool and task, with the time each tool reports for the same work, its
//! quality figures and relvid's speed-up over it.
//!
//! Reads the records tagged `anchor:<task>`, `relvid:<task>` and `check:<task>`.

use crate::record::Record;
use crate::table::{format_float, Table, Values};

/// Speed-up over the faster anchor that the co-visitation stage must reach.
pub const COOC_TARGET: f64 = 3.0;

/// One tool on one task.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub task: String,
    pub tool: String,
    /// The compared time, seconds (see `timed`).
    pub timed_s: Option<f64>,
    /// What `timed_s` covers.
    pub timed: String,
    /// Wall time of the whole process (start-up, reading, evaluation included).
    pub process_wall_s: Option<f64>,
    pub max_rss_mib: Option<f64>,
    /// On anchor rows: anchor time / relvid time (> 1: relvid is faster).
    pub relvid_speedup: Option<f64>,
    pub quality: String,
    pub detail: String,
    pub status: String,
}

/// Whether a record only says that a tool was skipped.
fn skipped(r: &Record) -> bool {
    r.output.as_ref().and_then(|o| o.get("missing")).is_some()
}

/// The last record of a tag (a rerun replaces an earlier one).
fn find<'a>(records: &'a [Record], tag: &str) -> Option<&'a Record> {
    records.iter().rev().find(|r| r.tag == tag)
}

/// "ok", or why the record has no figure.
fn status(r: Option<&Record>, timed: Option<f64>) -> String {
    match r {
        None => "not run".into(),
        Some(r) => match r.output.as_ref().and_then(|o| o.get("missing")) {
            Some(why) => format!("skipped: {}", why.as_str().unwrap_or("tool missing")),
            None if r.status != 0 => format!("failed (exit {})", r.status),
            None if timed.is_none() => "no time in its output".into(),
            None => "ok".into(),
        },
    }
}

/// "name value, name value" for the keys present.
fn figures(r: Option<&Record>, keys: &[(&str, &str)]) -> String {
    let Some(r) = r else { return String::new() };
    keys.iter()
        .filter_map(|(label, key)| {
            r.number(key)
                .map(|v| format!("{label} {}", format_value(v)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn format_value(v: f64) -> String {
    if v != 0.0 && v.abs() < 1.0 {
        format!("{v:.4}")
    } else {
        format_float(v)
    }
}

/// How one task is read from its anchor and relvid records.
struct Task {
    name: &'static str,
    tag: &'static str,
    /// Anchor tools in the record: (tool, time from the record, what the time covers).
    anchors: Vec<(&'static str, fn(&Record) -> Option<f64>, &'static str)>,
    anchor_quality: &'static [(&'static str, &'static str)],
    anchor_detail: &'static [(&'static str, &'static str)],
    relvid_time: fn(&Record) -> Option<f64>,
    relvid_timed: &'static str,
    relvid_quality: &'static [(&'static str, &'static str)],
    relvid_detail: &'static [(&'static str, &'static str)],
}

fn tasks() -> Vec<Task> {
    vec![
        Task {
            name: "co-visitation top-50",
            tag: "cooc",
            anchors: vec![
                (
                    "scipy",
                    |r| Some(r.number("prep_s")? + r.number("scipy_s_median")?),
                    "baskets + counting + top-N (split already loaded)",
                ),
                (
                    "polars",
                    |r| Some(r.number("prep_s")? + r.number("polars_s_median")?),
                    "baskets + counting + top-N (split already loaded)",
                ),
            ],
            anchor_quality: &[("hit@50", "hit@50")],
            anchor_detail: &[("pairs", "neighbour_rows"), ("triples", "triples")],
            relvid_time: |r| Some(r.wall_s),
            relvid_timed:
                "whole stage-candidates process: read Parquet, histories, counting, top-N, write",
            relvid_quality: &[],
            relvid_detail: &[("pairs", "pairs_written")],
        },
        Task {
            name: "implicit ALS, alpha 1",
            tag: "als-implicit",
            anchors: vec![("implicit", |r| r.number("fit_s_median"), "fit")],
            anchor_quality: &[("recall@20", "recall@20"), ("ndcg@20", "ndcg@20")],
            anchor_detail: &[("s/iter", "iter_s_median")],
            relvid_time: |r| r.number("fit_s"),
            relvid_timed: "fit",
            relvid_quality: &[("recall@20", "recall_at_20"), ("ndcg@20", "ndcg_at_20")],
            relvid_detail: &[
                ("s/iter", "s_per_iter"),
                ("GFLOP/s", "gflops"),
                ("of peak", "peak_fraction"),
            ],
        },
        Task {
            name: "implicit ALS, alpha 10",
            tag: "als-implicit-a10",
            anchors: vec![("implicit", |r| r.number("fit_s_median"), "fit")],
            anchor_quality: &[("recall@20", "recall@20"), ("ndcg@20", "ndcg@20")],
            anchor_detail: &[("s/iter", "iter_s_median")],
            relvid_time: |r| r.number("fit_s"),
            relvid_timed: "fit",
            relvid_quality: &[("recall@20", "recall_at_20"), ("ndcg@20", "ndcg_at_20")],
            relvid_detail: &[
                ("s/iter", "s_per_iter"),
                ("GFLOP/s", "gflops"),
                ("of peak", "peak_fraction"),
            ],
        },
        Task {
            name: "explicit ALS, rank 10",
            tag: "als-explicit",
            anchors: vec![(
                "Spark MLlib",
                |r| r.number("fit_s_median"),
                "fit (JVM start and loading excluded)",
            )],
            anchor_quality: &[("RMSE", "rmse"), ("train-mean RMSE", "mean_rmse")],
            anchor_detail: &[("JVM s", "jvm_s"), ("load s", "load_s")],
            relvid_time: |r| r.number("fit_s"),
            relvid_timed: "fit",
            relvid_quality: &[("RMSE", "rmse")],
            relvid_detail: &[("s/iter", "s_per_iter"), ("GFLOP/s", "gflops")],
        },
        Task {
            name: "two-tower, 3 epochs",
            tag: "twotower",
            anchors: vec![(
                "PyTorch",
                |r| r.number("epoch_s_median"),
                "one epoch (median)",
            )],
            anchor_quality: &[("AUC", "auc")],
            anchor_detail: &[("samples/s", "samples_per_s_median")],
            relvid_time: |r| r.number("s_per_epoch"),
            relvid_timed: "one epoch",
            relvid_quality: &[("AUC", "auc"), ("last loss", "last_loss")],
            relvid_detail: &[("samples/s", "samples_per_s")],
        },
    ]
}

/// The side-by-side rows of every task that has at least one record.
pub fn rows(records: &[Record]) -> Vec<Row> {
    let mut out = Vec::new();
    for task in tasks() {
        let anchor = find(records, &format!("anchor:{}", task.tag));
        let relvid = find(records, &format!("relvid:{}", task.tag));
        if anchor.is_none() && relvid.is_none() {
            continue;
        }
        let relvid_s = relvid.filter(|r| r.status == 0).and_then(task.relvid_time);
        for (tool, time, timed) in &task.anchors {
            let timed_s = anchor.filter(|r| r.status == 0).and_then(time);
            out.push(Row {
                task: task.name.into(),
                tool: tool.to_string(),
                timed_s,
                timed: timed.to_string(),
                process_wall_s: anchor.filter(|r| !skipped(r)).map(|r| r.wall_s),
                max_rss_mib: anchor.filter(|r| !skipped(r)).map(|r| r.max_rss_mib),
                relvid_speedup: timed_s.zip(relvid_s).map(|(a, b)| a / b),
                quality: figures(anchor, task.anchor_quality),
                detail: figures(anchor, task.anchor_detail),
                status: status(anchor, timed_s),
            });
        }
        out.push(Row {
            task: task.name.into(),
            tool: "relvid".into(),
            timed_s: relvid_s,
            timed: task.relvid_timed.into(),
            process_wall_s: relvid.filter(|r| !skipped(r)).map(|r| r.wall_s),
            max_rss_mib: relvid.filter(|r| !skipped(r)).map(|r| r.max_rss_mib),
            relvid_speedup: None,
            quality: figures(relvid, task.relvid_quality),
            detail: figures(relvid, task.relvid_detail),
            status: status(relvid, relvid_s),
        });
    }
    out
}

/// The rows as a table (one column per `Row` field).
pub fn table(rows: &[Row]) -> Table {
    let text = |f: &dyn Fn(&Row) -> &str| {
        Values::Text(rows.iter().map(|r| Some(f(r).to_string())).collect())
    };
    let float = |f: &dyn Fn(&Row) -> Option<f64>| Values::Float(rows.iter().map(f).collect());
    let mut t = Table::default();
    t.push("task", text(&|r| &r.task));
    t.push("tool", text(&|r| &r.tool));
    t.push("timed_s", float(&|r| r.timed_s));
    t.push("relvid_speedup", float(&|r| r.relvid_speedup));
    t.push("process_wall_s", float(&|r| r.process_wall_s));
    t.push("max_rss_mib", float(&|r| r.max_rss_mib));
    t.push("quality", text(&|r| &r.quality));
    t.push("detail", text(&|r| &r.detail));
    t.push("timed", text(&|r| &r.timed));
    t.push("status", text(&|r| &r.status));
    t
}

/// The verdicts of the co-visitation comparison: identical lists and the speed-up over the
/// faster anchor against `COOC_TARGET`.
pub fn cooc_verdict(records: &[Record], rows: &[Row]) -> Option<String> {
    let cooc: Vec<&Row> = rows
        .iter()
        .filter(|r| r.task.starts_with("co-visitation"))
        .collect();
    if cooc.is_empty() {
        return None;
    }
    let mut lines = Vec::new();
    match find(records, "check:cooc").and_then(|r| r.output.as_ref()) {
        Some(out) => {
            let identical = out.get("identical").and_then(|v| v.as_bool()) == Some(true);
            let detail = out.get("detail").and_then(|v| v.as_str()).unwrap_or("");
            let count = |key: &str| out.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
            let detail = format!(
                "{} of {} sources differ; {detail}",
                count("sources_differing"),
                count("sources")
            );
            lines.push(format!(
                "- lists: {} ({detail})",
                if identical {
                    "identical row for row"
                } else {
                    "**differ**"
                }
            ));
        }
        None => lines.push("- lists: not compared".into()),
    }
    let fastest = cooc
        .iter()
        .filter(|r| r.tool != "relvid")
        .filter_map(|r| Some((r.tool.as_str(), r.relvid_speedup?)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    match fastest {
        Some((tool, speedup)) => {
            lines.push(format!(
            "- speed-up over the faster anchor ({tool}): {speedup:.1}x, target {COOC_TARGET}x: {}",
            if speedup >= COOC_TARGET { "met" } else { "**not met**" }
        ))
        }
        None => lines.push("- speed-up: no time from both sides".into()),
    }
    Some(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::record;

    fn with_output(mut r: Record, output: serde_json::Value) -> Record {
        r.output = Some(output);
        r
    }

    #[test]
    fn cooc_rows_compare_relvid_with_each_anchor() {
        let records = vec![
            with_output(
                record("anchor:cooc", None, "python", 200.0),
                serde_json::json!({"prep_s": 2.0, "scipy_s_median": 58.0, "polars_s_median": 48.0, "hit@50": 0.24}),
            ),
            with_output(
                record("relvid:cooc", None, "stage-candidates", 2.5),
                serde_json::json!({}),
            ),
            with_output(
                record("check:cooc", None, "relvid-bench", 1.0),
                serde_json::json!({"identical": true, "detail": "10 rows"}),
            ),
        ];
        let rows = rows(&records);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].relvid_speedup, Some(24.0));
        assert_eq!(rows[1].relvid_speedup, Some(20.0));
        assert_eq!(rows[0].quality, "hit@50 0.2400");
        let verdict = cooc_verdict(&records, &rows).unwrap();
        assert!(verdict.contains("identical row for row"), "{verdict}");
        assert!(
            verdict.contains("(polars): 20.0x, target 3x: met"),
            "{verdict}"
        );
    }

    #[test]
    fn missing_and_failed_tools_are_said_so() {
        let records = vec![
            with_output(
                record("anchor:twotower", None, "missing", 0.0),
                serde_json::json!({"missing": "no torch in /tmp/benchvenv"}),
            ),
            {
                let mut r = record("relvid:twotower", None, "twotower-bench", 1.0);
                r.status = 2;
                r
            },
        ];
        let rows = rows(&records);
        assert_eq!(rows[0].status, "skipped: no torch in /tmp/benchvenv");
        assert_eq!(rows[1].status, "failed (exit 2)");
        assert_eq!(rows[0].relvid_speedup, None);
        assert_eq!((rows[0].process_wall_s, rows[0].max_rss_mib), (None, None));
        assert_eq!(table(&rows).n_rows(), 2);
    }

    #[test]
    fn tasks_without_records_are_left_out() {
        assert!(rows(&[]).is_empty());
    }
}
