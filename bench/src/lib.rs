//! `make bench`: measures the pipeline and puts it next to the anchor tools.
//!
//! - [`measure`] and the `relvid-bench-shell` binary time each command (wall, CPU, peak
//!   memory) and keep its JSON summary, as one [`record::Record`] per line of a results file;
//!   make runs every recipe through it with `SHELL=`.
//! - [`scaling`] reads the pipeline runs at several sizes: per-stage table, growth check,
//!   charts. [`compare`] reads the side-by-side runs; [`lists`] checks that relvid's and the
//!   anchor's co-visitation lists are identical.
//! - [`report`] writes `bench.md`, Parquet copies of the tables and the charts.

pub mod compare;
pub mod lists;
pub mod measure;
pub mod record;
pub mod report;
pub mod scaling;
pub mod table;
