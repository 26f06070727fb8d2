//! The pipeline at several sizes: one table row per stage run (per objective where the
//! stage runs per objective), the per-stage totals, the check that time grows about
//! linearly with rows, and the two log-log charts (seconds and peak memory against rows).
//!
//! Reads the records tagged `scale`; writes nothing itself (the report module does).

use std::collections::BTreeMap;

use relvid_plots::Series;

use crate::record::Record;
use crate::table::{format_float, Table, Values};

/// Tag of the records of the scale runs.
pub const TAG: &str = "scale";

/// Largest accepted growth exponent of time in rows, ln(t2/t1) / ln(r2/r1): doubling the
/// rows may multiply the time by at most 2^1.15 = 2.22 ("a little more than doubles").
pub const MAX_EXPONENT: f64 = 1.15;

/// Runs shorter than this at the larger size are not judged: start-up and noise dominate.
pub const MIN_JUDGED_S: f64 = 2.0;

/// Pipeline order of the stages, for sorting rows and series.
const ORDER: [&str; 7] = [
    "stage-ingest",
    "stage-candidates",
    "stage-coordinate",
    "stage-als",
    "stage-twotower",
    "stage-merge",
    "stage-eval",
];

fn stage_order(program: &str) -> usize {
    ORDER
        .iter()
        .position(|s| *s == program)
        .unwrap_or(ORDER.len())
}

/// One stage at one size, summed over its objectives.
#[derive(Debug, Clone, PartialEq)]
pub struct StageTotal {
    pub rows: u64,
    pub stage: String,
    /// Runs summed (objectives).
    pub runs: usize,
    pub wall_s: f64,
    pub cpu_s: f64,
    /// Largest peak of any of its runs.
    pub max_rss_mib: f64,
}

/// The records of the scale runs, in (rows, pipeline order, objective) order.
pub fn scale_records(records: &[Record]) -> Vec<&Record> {
    let mut runs: Vec<&Record> = records
        .iter()
        .filter(|r| r.tag == TAG && r.rows.is_some())
        .collect();
    runs.sort_by(|a, b| {
        (a.rows, stage_order(&a.program), &a.objective).cmp(&(
            b.rows,
            stage_order(&b.program),
            &b.objective,
        ))
    });
    runs
}

/// The per-run table: rows, stage, objective, seconds, CPU, memory, rows in and out.
pub fn runs_table(runs: &[&Record]) -> Table {
    let mut t = Table::default();
    let int = |f: &dyn Fn(&Record) -> Option<u64>| {
        Values::Int(runs.iter().map(|r| f(r).map(|v| v as i64)).collect())
    };
    let float =
        |f: &dyn Fn(&Record) -> f64| Values::Float(runs.iter().map(|r| Some(f(r))).collect());
    t.push("rows_target", int(&|r| r.rows));
    t.push(
        "stage",
        Values::Text(runs.iter().map(|r| Some(r.program.clone())).collect()),
    );
    t.push(
        "objective",
        Values::Text(runs.iter().map(|r| r.objective.clone()).collect()),
    );
    t.push("wall_s", float(&|r| r.wall_s));
    t.push("cpu_s", float(&|r| r.cpu_s()));
    t.push("max_rss_mib", float(&|r| r.max_rss_mib));
    t.push("rows_in", int(&|r| r.rows_in()));
    t.push("rows_out", int(&|r| r.rows_out()));
    t.push(
        "status",
        Values::Int(runs.iter().map(|r| Some(r.status as i64)).collect()),
    );
    t.push("load1", float(&|r| r.load1));
    t
}

/// Sums each stage's runs per size.
pub fn totals(runs: &[&Record]) -> Vec<StageTotal> {
    let mut by_key: BTreeMap<(u64, usize, String), StageTotal> = BTreeMap::new();
    for r in runs {
        let rows = r.rows.expect("scale records carry rows");
        let key = (rows, stage_order(&r.program), r.program.clone());
        let total = by_key.entry(key).or_insert_with(|| StageTotal {
            rows,
            stage: r.program.clone(),
            runs: 0,
            wall_s: 0.0,
            cpu_s: 0.0,
            max_rss_mib: 0.0,
        });
        total.runs += 1;
        total.wall_s += r.wall_s;
        total.cpu_s += r.cpu_s();
        total.max_rss_mib = total.max_rss_mib.max(r.max_rss_mib);
    }
    by_key.into_values().collect()
}

/// The per-stage totals as a table, with a `total` row per size (whole pipeline).
pub fn totals_table(totals: &[StageTotal]) -> Table {
    let mut rows: Vec<StageTotal> = Vec::new();
    let sizes: Vec<u64> = dedup(totals.iter().map(|t| t.rows));
    for size in sizes {
        let of_size: Vec<&StageTotal> = totals.iter().filter(|t| t.rows == size).collect();
        rows.extend(of_size.iter().map(|t| (*t).clone()));
        rows.push(StageTotal {
            rows: size,
            stage: "total".into(),
            runs: of_size.iter().map(|t| t.runs).sum(),
            wall_s: of_size.iter().map(|t| t.wall_s).sum(),
            cpu_s: of_size.iter().map(|t| t.cpu_s).sum(),
            max_rss_mib: of_size.iter().map(|t| t.max_rss_mib).fold(0.0, f64::max),
        });
    }
    let mut t = Table::default();
    t.push(
        "rows_target",
        Values::Int(rows.iter().map(|r| Some(r.rows as i64)).collect()),
    );
    t.push(
        "stage",
        Values::Text(rows.iter().map(|r| Some(r.stage.clone())).collect()),
    );
    t.push(
        "runs",
        Values::Int(rows.iter().map(|r| Some(r.runs as i64)).collect()),
    );
    t.push(
        "wall_s",
        Values::Float(rows.iter().map(|r| Some(r.wall_s)).collect()),
    );
    t.push(
        "cpu_s",
        Values::Float(rows.iter().map(|r| Some(r.cpu_s)).collect()),
    );
    t.push(
        "max_rss_mib",
        Values::Float(rows.iter().map(|r| Some(r.max_rss_mib)).collect()),
    );
    t
}

/// The verdict on one stage between two sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    pub stage: String,
    pub rows: (u64, u64),
    pub seconds: (f64, f64),
    /// ln(t2/t1) / ln(r2/r1); 1 = linear.
    pub exponent: f64,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    TooSlow,
    /// The larger run took under `MIN_JUDGED_S`.
    TooShort,
}

/// Growth of each stage's wall time between consecutive sizes.
pub fn growth(totals: &[StageTotal]) -> Vec<Growth> {
    let mut out = Vec::new();
    for stage in dedup(totals.iter().map(|t| t.stage.clone())) {
        let series: Vec<&StageTotal> = totals.iter().filter(|t| t.stage == stage).collect();
        for pair in series.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let exponent = if a.wall_s > 0.0 && b.rows > a.rows {
                (b.wall_s / a.wall_s).ln() / (b.rows as f64 / a.rows as f64).ln()
            } else {
                f64::NAN
            };
            let verdict = if b.wall_s < MIN_JUDGED_S || !exponent.is_finite() {
                Verdict::TooShort
            } else if exponent > MAX_EXPONENT {
                Verdict::TooSlow
            } else {
                Verdict::Ok
            };
            out.push(Growth {
                stage: stage.clone(),
                rows: (a.rows, b.rows),
                seconds: (a.wall_s, b.wall_s),
                exponent,
                verdict,
            });
        }
    }
    out
}

/// The growth checks as Markdown lines.
pub fn growth_markdown(checks: &[Growth]) -> String {
    let mut out =
        String::from("| stage | rows | seconds | exponent | verdict |\n|---|---|---|---:|---|\n");
    for g in checks {
        let verdict = match g.verdict {
            Verdict::Ok => "ok".to_string(),
            Verdict::TooSlow => format!("**slower than linear** (limit {MAX_EXPONENT})"),
            Verdict::TooShort => format!("not judged (under {MIN_JUDGED_S} s)"),
        };
        out.push_str(&format!(
            "| {} | {} -> {} | {} -> {} | {:.2} | {verdict} |\n",
            g.stage,
            crate::table::group_thousands(g.rows.0 as i64),
            crate::table::group_thousands(g.rows.1 as i64),
            format_float(g.seconds.0),
            format_float(g.seconds.1),
            g.exponent,
        ));
    }
    out
}

/// Chart series of one quantity per stage (x = rows); zero values are left out, since the
/// charts have log axes.
pub fn series(totals: &[StageTotal], value: impl Fn(&StageTotal) -> f64) -> Vec<Series> {
    dedup(totals.iter().map(|t| t.stage.clone()))
        .into_iter()
        .map(|stage| Series {
            points: totals
                .iter()
                .filter(|t| t.stage == stage && value(t) > 0.0)
                .map(|t| (t.rows as f64, value(t)))
                .collect(),
            name: stage,
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

/// Distinct values in first-seen order.
fn dedup<T: PartialEq>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::record;

    fn run(rows: u64, program: &str, objective: Option<&str>, wall_s: f64) -> Record {
        let mut r = record(TAG, Some(rows), program, wall_s);
        r.objective = objective.map(str::to_string);
        r
    }

    #[test]
    fn per_objective_runs_are_summed_per_stage_and_size() {
        let records = vec![
            run(2000, "stage-als", Some("like"), 3.0),
            run(1000, "stage-als", Some("click"), 1.0),
            run(1000, "stage-als", Some("like"), 2.0),
            run(1000, "stage-ingest", None, 5.0),
            record("anchor:cooc", None, "python", 9.0),
        ];
        let runs = scale_records(&records);
        assert_eq!(runs.len(), 4);
        assert_eq!(runs[0].program, "stage-ingest");
        let t = totals(&runs);
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[1].stage.as_str(), t[1].runs, t[1].wall_s),
            ("stage-als", 2, 3.0)
        );
        let table = totals_table(&t);
        assert_eq!(table.n_rows(), 5);
        assert!(table.to_markdown().contains("| 1,000 | total | 3 | 8.00 |"));
    }

    #[test]
    fn growth_flags_superlinear_stages_and_skips_short_ones() {
        let records = vec![
            run(1_000_000, "stage-ingest", None, 4.0),
            run(2_000_000, "stage-ingest", None, 8.4),
            run(1_000_000, "stage-als", None, 4.0),
            run(2_000_000, "stage-als", None, 10.0),
            run(1_000_000, "stage-merge", None, 0.1),
            run(2_000_000, "stage-merge", None, 1.0),
        ];
        let checks = growth(&totals(&scale_records(&records)));
        let verdict = |stage: &str| checks.iter().find(|g| g.stage == stage).unwrap().verdict;
        assert_eq!(verdict("stage-ingest"), Verdict::Ok);
        assert_eq!(verdict("stage-als"), Verdict::TooSlow);
        assert_eq!(verdict("stage-merge"), Verdict::TooShort);
        assert!(growth_markdown(&checks).contains("**slower than linear**"));
    }

    #[test]
    fn series_leave_out_zero_values() {
        let records = vec![
            run(1000, "stage-ingest", None, 0.0),
            run(2000, "stage-ingest", None, 1.0),
        ];
        let s = series(&totals(&scale_records(&records)), |t| t.wall_s);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].points, vec![(2000.0, 1.0)]);
    }
}
