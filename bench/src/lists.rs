//! Row-for-row comparison of the anchor's co-visitation lists (`anchor_cooc.py --out`:
//! `video_id`, `neighbour_id`, `rank` from 0, `score` Float64) with relvid's
//! `candidates.parquet` (`source_id`, `candidate_id`, `rank` from 1, `score` Float32).
//! Ids are compared as text, so Int64 and Utf8 ids both work.

use std::path::Path;

use anyhow::{Context, Result};
use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use common::{Expect, ParquetInput};
use serde::Serialize;

/// The outcome, printed as one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListComparison {
    pub identical: bool,
    pub anchor_rows: usize,
    pub relvid_rows: usize,
    /// Largest |anchor score - relvid score| over rows with the same pair (f64).
    pub max_score_diff: f64,
    /// Sources (union of both files) whose list differs in any pair, rank or score.
    pub sources_differing: usize,
    /// Sources in either file.
    pub sources: usize,
    /// The first difference, or a summary when there is none.
    pub detail: String,
}

struct Lists {
    source: Vec<String>,
    candidate: Vec<String>,
    /// From 1.
    rank: Vec<i64>,
    score: Vec<f64>,
}

fn read(path: &Path, cols: [&str; 4], rank_base: i64) -> Result<Lists> {
    let input = ParquetInput::open(path)?;
    let ids = Expect::AnyOf(vec![DataType::Int64, DataType::Utf8, DataType::UInt32]);
    let arrays = input.read_columns(&[
        (cols[0], ids.clone()),
        (cols[1], ids),
        (cols[2], Expect::Numeric),
        (cols[3], Expect::Numeric),
    ])?;
    let text = |a: &dyn Array| -> Result<Vec<String>> {
        let a = cast(a, &DataType::Utf8)?;
        Ok(a.as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or("").to_string())
            .collect())
    };
    let rank = cast(&arrays[2], &DataType::Int64)?;
    let score = cast(&arrays[3], &DataType::Float64)?;
    Ok(Lists {
        source: text(&arrays[0])?,
        candidate: text(&arrays[1])?,
        rank: rank
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|r| r - rank_base + 1)
            .collect(),
        score: score.as_primitive::<Float64Type>().values().to_vec(),
    })
}

/// Compares the two files row for row; scores are equal when the anchor's f64 rounds to
/// relvid's f32.
pub fn compare(anchor: &Path, relvid: &Path) -> Result<ListComparison> {
    let a = read(anchor, ["video_id", "neighbour_id", "rank", "score"], 0)
        .with_context(|| format!("reading the anchor's lists {}", anchor.display()))?;
    let b = read(relvid, ["source_id", "candidate_id", "rank", "score"], 1)
        .with_context(|| format!("reading relvid's lists {}", relvid.display()))?;

    let n = a.source.len().min(b.source.len());
    let mut first = None;
    let mut max_score_diff = 0.0f64;
    for i in 0..n {
        let same_pair = a.source[i] == b.source[i] && a.candidate[i] == b.candidate[i];
        if same_pair {
            max_score_diff = max_score_diff.max((a.score[i] - b.score[i]).abs());
        }
        let same =
            same_pair && a.rank[i] == b.rank[i] && (a.score[i] as f32) == (b.score[i] as f32);
        if !same && first.is_none() {
            first = Some(format!(
                "row {i}: anchor {} -> {} rank {} score {}, relvid {} -> {} rank {} score {}",
                a.source[i],
                a.candidate[i],
                a.rank[i],
                a.score[i],
                b.source[i],
                b.candidate[i],
                b.rank[i],
                b.score[i]
            ));
        }
    }
    let identical = first.is_none() && a.source.len() == b.source.len();
    let (sources, sources_differing) = differing_sources(&a, &b);
    let detail = match first {
        Some(d) => d,
        None if !identical => format!(
            "the first {n} rows agree; anchor has {} rows, relvid {}",
            a.source.len(),
            b.source.len()
        ),
        None => format!("{n} rows, same pairs, ranks and f32 scores"),
    };
    Ok(ListComparison {
        identical,
        anchor_rows: a.source.len(),
        relvid_rows: b.source.len(),
        max_score_diff,
        sources_differing,
        sources,
        detail,
    })
}

type PerSource<'a> = std::collections::HashMap<&'a str, Vec<(&'a str, i64, u32)>>;

/// Each source's list as (candidate, rank, f32 score bits) rows.
fn per_source(l: &Lists) -> PerSource<'_> {
    let mut map = PerSource::new();
    for i in 0..l.source.len() {
        let row = (
            l.candidate[i].as_str(),
            l.rank[i],
            (l.score[i] as f32).to_bits(),
        );
        map.entry(l.source[i].as_str()).or_default().push(row);
    }
    map
}

/// (sources in either file, sources whose lists differ), compared source by source so
/// that one shifted row does not make every later row a difference.
fn differing_sources(a: &Lists, b: &Lists) -> (usize, usize) {
    let (ga, gb) = (per_source(a), per_source(b));
    let mut keys: Vec<&str> = ga.keys().chain(gb.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let differing = keys.iter().filter(|k| ga.get(*k) != gb.get(*k)).count();
    (keys.len(), differing)
}
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, UInt32Array};
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;

    fn write(path: &Path, names: [&str; 4], cols: Vec<ArrayRef>) {
        let fields: Vec<Field> = names
            .iter()
            .zip(&cols)
            .map(|(n, c)| Field::new(*n, c.data_type().clone(), false))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        let meta = common::stage_meta("test", "0", 0, serde_json::json!({}));
        common::io::write_batch(path, &batch, &meta).unwrap();
    }

    fn anchor(path: &Path, candidates: Vec<i64>) {
        write(
            path,
            ["video_id", "neighbour_id", "rank", "score"],
            vec![
                Arc::new(Int64Array::from(vec![7, 7, 9])),
                Arc::new(Int64Array::from(candidates)),
                Arc::new(Int32Array::from(vec![0, 1, 0])),
                Arc::new(Float64Array::from(vec![0.5, 1.0 / 3.0, 0.25])),
            ],
        );
    }

    fn relvid(path: &Path) {
        write(
            path,
            ["source_id", "candidate_id", "rank", "score"],
            vec![
                Arc::new(Int64Array::from(vec![7, 7, 9])),
                Arc::new(Int64Array::from(vec![9, 11, 7])),
                Arc::new(UInt32Array::from(vec![1, 2, 1])),
                Arc::new(Float32Array::from(vec![0.5, 1.0 / 3.0, 0.25])),
            ],
        );
    }

    #[test]
    fn equal_lists_are_identical() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        anchor(&a, vec![9, 11, 7]);
        relvid(&b);
        let c = compare(&a, &b).unwrap();
        assert!(c.identical, "{c:?}");
        assert!(c.max_score_diff < 1e-7);
        assert_eq!((c.sources, c.sources_differing), (2, 0));
    }

    #[test]
    fn a_swapped_candidate_is_the_first_difference() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        anchor(&a, vec![11, 9, 7]);
        relvid(&b);
        let c = compare(&a, &b).unwrap();
        assert!(!c.identical);
        assert!(
            c.detail.starts_with("row 0: anchor 7 -> 11"),
            "{}",
            c.detail
        );
    }
}
