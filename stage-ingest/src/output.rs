//! Writes the tables of a file source: users.parquet and videos.parquet first, then
//! interactions.parquet renamed into place last, since make takes it as the marker of all
//! three.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use arrow::array::ArrayRef;
use common::schema::{files, USER_ID, USER_IDX, VIDEO_ID, VIDEO_IDX};
use common::summary::FileRows;
use common::StageMeta;

use crate::canonical::{canonicalise, median_duration_per_video, train_counts, Canonical};
use crate::config::SplitConfig;
use crate::report::Report;
use crate::side::{SideTable, SideValues};
use crate::source::SourceData;
use crate::write::{write_entities, InteractionWriter};

/// Files read and written by one run, with their rows.
#[derive(Debug, Default)]
pub struct Written {
    pub inputs: Vec<FileRows>,
    pub outputs: Vec<FileRows>,
}

/// Removes a previous run's interactions.parquet before any new table is renamed into
/// place, so a run that fails half-way never leaves the old marker beside new tables.
pub fn remove_stale_marker(dir: &Path) -> Result<()> {
    let marker = dir.join(files::INTERACTIONS);
    match std::fs::remove_file(&marker) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("removing {}", marker.display())),
    }
}

/// Rows per step of the write progress bar.
const WRITE_STEP: usize = 1 << 20;

/// Canonicalises a file source and writes the three tables into `dir`.
pub fn ingest(
    data: SourceData,
    split: &SplitConfig,
    dir: &Path,
    meta: &StageMeta,
) -> Result<(Report, Written)> {
    let SourceData {
        log,
        user_side,
        video_side,
        feature_inputs,
        video_duration,
    } = data;
    let mut written = Written::default();
    written.inputs.extend(log.inputs.iter().cloned());
    written.inputs.extend(feature_inputs);
    let mut report = Report {
        rows_read: log.rows_read,
        ..Default::default()
    };
    report.set_drops(&log.drops);

    let canonical = canonicalise(log, split)?;
    let Canonical {
        users,
        videos,
        events,
        cuts,
        duplicates_merged,
    } = &canonical;
    report.duplicates_merged = *duplicates_merged;
    report.n_users = users.ids.len() as u64;
    report.n_videos = videos.ids.len() as u64;
    report.user_id_type = users.ids.data_type().to_string();
    report.video_id_type = videos.ids.data_type().to_string();
    let ts_min = events.ts_ms.iter().copied().min().unwrap_or(0);
    let ts_max = events.ts_ms.iter().copied().max().unwrap_or(0);
    report.set_times(ts_min, ts_max, cuts);

    let user_columns = user_columns(&canonical, &user_side);
    let video_columns = video_columns(&canonical, video_side, video_duration);
    report.user_columns = user_columns.iter().map(|(name, _)| name.clone()).collect();
    report.video_columns = video_columns.iter().map(|(name, _)| name.clone()).collect();

    // interactions.parquet is written first under its temporary name, and renamed last.
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut interactions = InteractionWriter::create(dir, meta)?;
    tracing::info!(
        "writing {} rows to {}",
        events.len(),
        interactions.path().display()
    );
    let bar = common::progress::bar(events.len() as u64, "writing");
    for start in (0..events.len()).step_by(WRITE_STEP) {
        let end = (start + WRITE_STEP).min(events.len());
        interactions.write_rows(events, start..end, cuts)?;
        bar.inc((end - start) as u64);
    }
    bar.finish_and_clear();
    let interactions_path: PathBuf = interactions.path().to_path_buf();

    remove_stale_marker(dir)?;
    let users_path = dir.join(files::USERS);
    let rows = write_entities(
        &users_path,
        (USER_IDX, USER_ID),
        &users.ids,
        user_columns,
        meta,
    )?;
    written.outputs.push(FileRows::new(&users_path, rows));
    let videos_path = dir.join(files::VIDEOS);
    let rows = write_entities(
        &videos_path,
        (VIDEO_IDX, VIDEO_ID),
        &videos.ids,
        video_columns,
        meta,
    )?;
    written.outputs.push(FileRows::new(&videos_path, rows));

    [report.rows_train, report.rows_valid, report.rows_test] = interactions.rows_per_split();
    report.rows_written = interactions.finish()?;
    written
        .outputs
        .push(FileRows::new(&interactions_path, report.rows_written));
    if report.rows_train == 0 {
        tracing::warn!("the train split is empty: every event shares the first cut time");
    }
    Ok((report, written))
}

/// Feature columns of users.parquet: the source's features, then the train counts.
fn user_columns(canonical: &Canonical, side: &SideTable) -> Vec<(String, ArrayRef)> {
    let Canonical {
        users,
        events,
        cuts,
        ..
    } = canonical;
    let mut columns = side_columns(side, &users.idx_to_key);
    let counts = train_counts(&events.user_idx, &events.ts_ms, cuts, users.ids.len());
    columns.push(count_column(counts));
    columns
}

/// Feature columns of videos.parquet: the source's features (with `duration_ms` filled
/// from the log when the source has durations), then the train counts.
fn video_columns(
    canonical: &Canonical,
    mut side: SideTable,
    duration_from_log: bool,
) -> Vec<(String, ArrayRef)> {
    let Canonical {
        videos,
        events,
        cuts,
        ..
    } = canonical;
    let n_videos = videos.ids.len();
    if duration_from_log {
        let medians = median_duration_per_video(events, n_videos);
        fill_durations(
            &mut side,
            videos.key_to_idx.len(),
            &videos.idx_to_key,
            &medians,
        );
    }
    let mut columns = side_columns(&side, &videos.idx_to_key);
    columns.push(count_column(train_counts(
        &events.video_idx,
        &events.ts_ms,
        cuts,
        n_videos,
    )));
    columns
}

/// The side features in dense order; features no entity has are left out.
fn side_columns(side: &SideTable, idx_to_key: &[u32]) -> Vec<(String, ArrayRef)> {
    let mut side = side.clone();
    side.drop_empty();
    side.columns
        .iter()
        .map(|c| (c.name.clone(), c.values.gather(idx_to_key)))
        .collect()
}

/// Puts `duration_ms` first among the video features: the feature file's value where it
/// has one, else the median of the log (per dense index in `medians`).
fn fill_durations(side: &mut SideTable, n_keys: usize, idx_to_key: &[u32], medians: &[f32]) {
    let position = side.columns.iter().position(|c| c.name == "duration_ms");
    let mut column = match position {
        Some(at) => side.columns.remove(at),
        None => crate::side::SideColumn {
            name: "duration_ms".to_string(),
            values: SideValues::Float(vec![f32::NAN; n_keys]),
        },
    };
    if let SideValues::Float(values) = &mut column.values {
        for (idx, &key) in idx_to_key.iter().enumerate() {
            let value = &mut values[key as usize];
            if value.is_nan() || *value < 0.0 {
                *value = medians[idx];
            }
        }
    }
    let title_first = side.columns.first().is_some_and(|c| c.name == "title") as usize;
    side.columns.insert(title_first, column);
}

fn count_column(counts: Vec<f32>) -> (String, ArrayRef) {
    (
        "n_train_interactions".to_string(),
        common::columns::f32_array(counts),
    )
}
