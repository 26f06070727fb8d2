//! The one-line JSON summary that is the last line a stage prints on stdout.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

/// A file a stage read or wrote, with its row count.
#[derive(Debug, Clone, Serialize)]
pub struct FileRows {
    pub path: String,
    pub rows: u64,
}

impl FileRows {
    pub fn new(path: &Path, rows: u64) -> FileRows {
        FileRows {
            path: path.display().to_string(),
            rows,
        }
    }
}

/// The summary record; metrics are free-form per stage.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub stage: String,
    pub status: String,
    pub seed: u64,
    pub threads: usize,
    pub inputs: Vec<FileRows>,
    pub outputs: Vec<FileRows>,
    pub metrics: serde_json::Map<String, serde_json::Value>,
    pub config: serde_json::Value,
    pub elapsed_s: f64,
}

impl Summary {
    /// An empty summary for `stage`; the clock is the caller's start instant.
    pub fn new(stage: &str, seed: u64, config: serde_json::Value) -> Summary {
        Summary {
            stage: stage.to_string(),
            status: "ok".to_string(),
            seed,
            threads: rayon::current_num_threads(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            metrics: serde_json::Map::new(),
            config,
            elapsed_s: 0.0,
        }
    }

    pub fn input(&mut self, path: &Path, rows: u64) {
        self.inputs.push(FileRows::new(path, rows));
    }

    pub fn output(&mut self, path: &Path, rows: u64) {
        self.outputs.push(FileRows::new(path, rows));
    }

    /// Records a metric; anything serde can write is accepted.
    pub fn metric(&mut self, name: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.metrics.insert(name.to_string(), value);
    }

    /// Stops the clock.
    pub fn finish(mut self, started: Instant) -> Summary {
        self.elapsed_s = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        self
    }

    /// The single JSON line.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("summary is plain data")
    }
}
