//! One timed command of a benchmark run, as a line of the results file (`results.jsonl`),
//! and the reading of that file back. Written by `relvid-bench-shell`, read by the report.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// A timed command: what ran, how long, how much CPU and memory, and its JSON summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// What the run is part of (`RELVID_BENCH_TAG`): `scale` for the pipeline at several
    /// sizes, `anchor:<task>` and `relvid:<task>` for the side-by-side runs.
    pub tag: String,
    /// Target rows of the synthetic log (`RELVID_BENCH_ROWS`), for the scale runs.
    pub rows: Option<u64>,
    /// Base name of the program that ran (`stage-als`, `python`...).
    pub program: String,
    /// The value of `--objective` on the command line, for per-objective stages.
    pub objective: Option<String>,
    /// The command line as the shell received it.
    pub command: String,
    /// Exit code; 128 + signal number when killed by a signal.
    pub status: i32,
    /// Wall-clock seconds from start to exit.
    pub wall_s: f64,
    /// CPU seconds in user mode of the command and every process it waited for.
    pub user_s: f64,
    /// CPU seconds in kernel mode, likewise.
    pub sys_s: f64,
    /// Peak resident memory of the largest process of the command, MiB.
    pub max_rss_mib: f64,
    /// 1-minute load average when the command started.
    pub load1: f64,
    /// Unix time when the command started, seconds.
    pub started_unix_s: u64,
    /// The last line the command printed on stdout, when it is JSON (a stage's summary, an
    /// anchor's result); `None` otherwise.
    pub output: Option<serde_json::Value>,
}

impl Record {
    /// user + sys seconds.
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }

    /// Rows of the largest input file named in a stage summary (`inputs[].rows`).
    pub fn rows_in(&self) -> Option<u64> {
        self.summary_rows("inputs")
    }

    /// Rows of the largest output file named in a stage summary (`outputs[].rows`).
    pub fn rows_out(&self) -> Option<u64> {
        self.summary_rows("outputs")
    }

    fn summary_rows(&self, key: &str) -> Option<u64> {
        let files = self.output.as_ref()?.get(key)?.as_array()?;
        files.iter().filter_map(|f| f.get("rows")?.as_u64()).max()
    }

    /// A number from the JSON output, by key (`fit_s_median`, `recall@20`...), at the top
    /// level or, for a stage summary, in its `metrics`.
    pub fn number(&self, key: &str) -> Option<f64> {
        let output = self.output.as_ref()?;
        output
            .get(key)
            .and_then(|v| v.as_f64())
            .or_else(|| self.metric(key))
    }

    /// A number from the `metrics` object of a stage summary.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.output.as_ref()?.get("metrics")?.get(key)?.as_f64()
    }
}

/// Appends one record as a JSON line, in a single write so that commands run in parallel
/// (`make -j`) do not interleave their lines.
pub fn append(path: &Path, record: &Record) -> Result<()> {
    let mut line = serde_json::to_string(record).expect("record is plain data");
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.write_all(line.as_bytes())
        .with_context(|| format!("appending to {}", path.display()))
}

/// Reads every record of a results file; lines that are not records (an anchor's bare
/// output, a note) are skipped and counted.
pub fn read_all(path: &Path) -> Result<(Vec<Record>, usize)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (mut records, mut skipped) = (Vec::new(), 0);
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {} line {}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(&line) {
            Ok(record) => records.push(record),
            Err(_) => skipped += 1,
        }
    }
    Ok((records, skipped))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record of `program` with a stage-style summary, for the tests of every module.
    pub(crate) fn record(tag: &str, rows: Option<u64>, program: &str, wall_s: f64) -> Record {
        Record {
            tag: tag.into(),
            rows,
            program: program.into(),
            objective: None,
            command: format!("target/release/{program} --dir d"),
            status: 0,
            wall_s,
            user_s: wall_s * 1.5,
            sys_s: 0.1,
            max_rss_mib: 100.0,
            load1: 1.0,
            started_unix_s: 0,
            output: Some(serde_json::json!({
                "inputs": [{"path": "a", "rows": 10}, {"path": "b", "rows": 1000}],
                "outputs": [{"path": "c", "rows": 500}],
                "metrics": {"count_s": 0.5},
            })),
        }
    }

    #[test]
    fn rows_in_and_out_are_the_largest_files() {
        let r = record("scale", Some(1000), "stage-x", 1.0);
        assert_eq!((r.rows_in(), r.rows_out()), (Some(1000), Some(500)));
        assert_eq!(r.metric("count_s"), Some(0.5));
        assert!((r.cpu_s() - 1.6).abs() < 1e-12);
    }

    #[test]
    fn records_round_trip_and_foreign_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let a = record("scale", Some(5), "stage-a", 2.0);
        append(&path, &a).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"script\": \"anchor\"}\n\nnot json\n")
            .unwrap();
        append(&path, &a).unwrap();
        let (records, skipped) = read_all(&path).unwrap();
        assert_eq!(records, vec![a.clone(), a]);
        assert_eq!(skipped, 2);
    }
}
