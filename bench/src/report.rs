//! Turns a results file into the benchmark report: `bench.md` (Markdown tables and the
//! scaling verdicts), Parquet copies of each table, and two log-log charts.
//!
//! Writes into the output folder: `bench.md`, `scale_runs.parquet` (one row per stage run),
//! `scale_stages.parquet` (per stage and size), `side_by_side.parquet`, `scale_seconds.png`,
//! `scale_memory.png`. A chart that cannot be drawn (no font) is a warning, not an error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::compare;
use crate::record::{read_all, Record};
use crate::scaling::{self, Verdict};

/// What the report found, for the caller's exit code and console output.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub files: Vec<PathBuf>,
    /// Stages whose time grew faster than the limit, as "stage rows1 -> rows2 (exponent)".
    pub too_slow: Vec<String>,
    pub warnings: Vec<String>,
}

/// Reads `results` and writes the report into `out`.
pub fn write(results: &Path, out: &Path, header: &str) -> Result<Outcome> {
    let (records, skipped) = read_all(results)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut outcome = Outcome::default();
    if skipped > 0 {
        outcome.warnings.push(format!(
            "{skipped} lines of {} are not records",
            results.display()
        ));
    }
    let mut md = format!("# relvid benchmark\n\n{header}\n");

    // 1. The pipeline at several sizes.
    let runs = scaling::scale_records(&records);
    if !runs.is_empty() {
        let totals = scaling::totals(&runs);
        let checks = scaling::growth(&totals);
        outcome.too_slow = checks
            .iter()
            .filter(|g| g.verdict == Verdict::TooSlow)
            .map(|g| {
                format!(
                    "{} {} -> {} rows (exponent {:.2})",
                    g.stage, g.rows.0, g.rows.1, g.exponent
                )
            })
            .collect();
        let stages = scaling::totals_table(&totals);
        let per_run = scaling::runs_table(&runs);
        let _ = write!(
            md,
            "\n## Pipeline at each size (`make all ROWS=N`, synthetic log)\n\n\
             Per stage, summed over objectives; `max_rss_mib` is the largest peak of any of its \
             runs, and `total` the whole pipeline.\n\n{}\n\
             ### Growth with rows\n\n\
             exponent = ln(t2/t1) / ln(r2/r1) of the wall time (1 = linear); the limit is {} \
             (doubling the rows may at most multiply the time by {:.2}).\n\n{}\n\
             ### Every stage run\n\n{}",
            stages.to_markdown(),
            scaling::MAX_EXPONENT,
            2f64.powf(scaling::MAX_EXPONENT),
            scaling::growth_markdown(&checks),
            per_run.to_markdown(),
        );
        outcome
            .files
            .push(write_parquet(&per_run, out, "scale_runs")?);
        outcome
            .files
            .push(write_parquet(&stages, out, "scale_stages")?);
        charts(&totals, out, &mut outcome, &mut md);
    }

    // 2. Side by side with the anchors.
    let rows = compare::rows(&records);
    if !rows.is_empty() {
        let table = compare::table(&rows);
        let _ = write!(
            md,
            "\n## Side by side with the anchor tools (same log, same split)\n\n\
             `timed_s` is what each tool reports for the same work (see `timed`); \
             `relvid_speedup` = anchor time / relvid time on the anchor's row.\n\n{}",
            table.to_markdown()
        );
        if let Some(verdict) = compare::cooc_verdict(&records, &rows) {
            let _ = write!(md, "\nCo-visitation:\n{verdict}\n");
        }
        outcome
            .files
            .push(write_parquet(&table, out, "side_by_side")?);
    }
    let other = other_records(&records);
    if !other.is_empty() {
        let _ = write!(md, "\n## Other timed commands\n\n{other}");
    }

    let path = out.join("bench.md");
    common::io::write_atomic(&path, md.as_bytes())?;
    outcome.files.insert(0, path);
    Ok(outcome)
}

fn write_parquet(table: &crate::table::Table, out: &Path, name: &str) -> Result<PathBuf> {
    let path = out.join(format!("{name}.parquet"));
    table.write_parquet(&path, name)?;
    Ok(path)
}

fn charts(totals: &[scaling::StageTotal], out: &Path, outcome: &mut Outcome, md: &mut String) {
    let charts = [
        (
            "scale_seconds.png",
            "Wall time per stage",
            "seconds",
            scaling::series(totals, |t| t.wall_s),
        ),
        (
            "scale_memory.png",
            "Peak resident memory per stage",
            "MiB",
            scaling::series(totals, |t| t.max_rss_mib),
        ),
    ];
    for (file, title, unit, series) in charts {
        let path = out.join(file);
        match relvid_plots::line_chart(
            &path,
            title,
            "rows (log)",
            &format!("{unit} (log)"),
            &series,
            true,
            true,
        ) {
            Ok(()) => {
                let _ = write!(md, "\n![{title}]({file})\n");
                outcome.files.push(path);
            }
            Err(e) => outcome
                .warnings
                .push(format!("chart {file} not drawn: {e:#}")),
        }
    }
}

/// Timed commands that belong to neither table (ingest of the anchor split, list checks).
fn other_records(records: &[Record]) -> String {
    let rows: Vec<&Record> = records
        .iter()
        .filter(|r| {
            r.tag != scaling::TAG && !r.tag.starts_with("anchor:") && !r.tag.starts_with("relvid:")
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            "- `{}` ({}): exit {}, {:.2} s wall, {:.2} s CPU, {:.0} MiB peak",
            r.tag,
            r.program,
            r.status,
            r.wall_s,
            r.cpu_s(),
            r.max_rss_mib
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{append, tests::record};

    #[test]
    fn report_writes_markdown_parquet_and_names_slow_stages() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("r.jsonl");
        for (rows, als, ingest) in [(1_000_000, 3.0, 1.5), (2_000_000, 9.0, 3.0)] {
            append(&results, &record("scale", Some(rows), "stage-als", als)).unwrap();
            append(
                &results,
                &record("scale", Some(rows), "stage-ingest", ingest),
            )
            .unwrap();
        }
        append(&results, &record("check:cooc", None, "relvid-bench", 0.5)).unwrap();
        let out = dir.path().join("out");
        let outcome = write(&results, &out, "header").unwrap();
        assert_eq!(outcome.too_slow.len(), 1, "{:?}", outcome.too_slow);
        assert!(outcome.too_slow[0].starts_with("stage-als 1000000 -> 2000000"));
        let md = std::fs::read_to_string(out.join("bench.md")).unwrap();
        assert!(md.contains("| 2,000,000 | total | 2 | 12.0 |"), "{md}");
        assert!(md.contains("`check:cooc`"), "{md}");
        assert!(out.join("scale_runs.parquet").exists());
        assert!(out.join("scale_stages.parquet").exists());
        assert!(!out.join("side_by_side.parquet").exists());
    }
}
