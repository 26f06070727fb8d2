//! relvid's shared library: the data contract between stages (column names, file names,
//! dense indices and original ids), Parquet I/O that checks schemas and writes atomically,
//! the per-dataset configuration, side features, seeds, progress bars and the JSON summary.
//!
//! Environment variables: `RELVID_THREADS` (worker threads, 0 = all cores) is read by every
//! stage; `POLARS_MAX_THREADS` is not used here but set by the Makefile for users' scripts.

pub mod aligned;
pub mod cli;
pub mod columns;
pub mod config;
pub mod error;
pub mod features;
pub mod ids;
pub mod interactions;
pub mod io;
pub mod progress;
pub mod rng;
pub mod scale;
pub mod schema;
pub mod summary;

pub use config::{LabelRule, Objective, PipelineConfig, SourceFormat};
pub use error::Error;
pub use ids::IdColumn;
pub use interactions::Interactions;
pub use io::{AtomicParquetWriter, Expect, ParquetInput, StageMeta};
pub use schema::Split;
pub use summary::Summary;

/// Builds the metadata a stage writes into its Parquet outputs.
pub fn stage_meta(stage: &str, version: &str, seed: u64, config: serde_json::Value) -> StageMeta {
    StageMeta {
        stage: stage.to_string(),
        version: version.to_string(),
        seed,
        config,
    }
}
