//! The KuaiRand source: interaction logs plus, in a folder, user and video feature files.
//!
//! RAW is a log file or a folder. In a folder every `log*.csv` / `log*.tsv` is a log (the
//! official `log_standard_*` and `log_random_*` files, or the `log.tsv` subset in
//! shared/data), read in name order; `user_features*.csv` and `video_features_basic*.csv`
//! add side features when present. The delimiter is a tab when the header holds one.
//!
//! Log columns (all required): `user_id, video_id, time_ms` (epoch ms), `is_click,
//! long_view, is_comment, is_forward, is_follow` (0/1), `play_time_ms`, `duration_ms`
//! (0 means unknown and becomes null), and either `is_like` + `is_hate` (official logs) or
//! `label` (the shared subset: 1 = liked, 0 = hated, giving like = label, dislike = !label).
//! `rating` is null.
//!
//! Features, best effort (a column a file lacks is skipped): videos get `duration_ms` from
//! `video_duration` (else the median of the log's durations), `category` = the first
//! element of `tag`, `video_type`, `upload_type`; users get `active_degree`
//! (`user_active_degree`), the flags `is_lowactive_period`, `is_live_streamer`,
//! `is_video_author`, the counts `follow_user_num`, `fans_user_num`, `friend_user_num`,
//! `register_days` (Float32), and the anonymised categoricals `onehot_feat0..17` (Utf8).
//! `video_features_statistic_*` files are not read.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::events::{Flags, CLICK, COMMENT, DISLIKE, FOLLOW, FORWARD, LIKE, LONG_VIEW};
use crate::fields::{self, Origin, TsUnit};
use crate::log::{RawLog, RowSignals, TimeWindow};
use crate::side::SideTable;
use crate::source::{self, FeatureKind, FeatureSpec, SourceData};
use crate::text::TextTable;

/// Required log columns, in projection order, with the flag each 0/1 column sets.
const FLAG_COLUMNS: [(&str, usize); 5] = [
    ("is_click", CLICK),
    ("long_view", LONG_VIEW),
    ("is_comment", COMMENT),
    ("is_forward", FORWARD),
    ("is_follow", FOLLOW),
];

/// How the log encodes like and dislike.
enum LikeColumns {
    /// `label`: 1 liked, 0 hated.
    Label(usize),
    /// `is_like` and `is_hate`.
    Separate(usize, usize),
}

/// The log and feature files of a RAW path.
#[derive(Debug, Default, PartialEq)]
pub struct KuaiRandFiles {
    pub logs: Vec<PathBuf>,
    pub user_features: Vec<PathBuf>,
    pub video_features: Vec<PathBuf>,
}

/// Lists the files to read under RAW (a log file, or a folder).
pub fn discover(raw: &Path) -> Result<KuaiRandFiles> {
    if raw.is_file() {
        return Ok(KuaiRandFiles {
            logs: vec![raw.to_path_buf()],
            ..Default::default()
        });
    }
    if !raw.is_dir() {
        bail!(
            "{}: no such file or folder (RAW of the kuairand format)",
            raw.display()
        );
    }
    let logs = source::files_matching(raw, &["log"], &[".csv", ".tsv"])?;
    if logs.is_empty() {
        bail!(
            "{}: no KuaiRand log in this folder (expected log_*.csv files or log.tsv)",
            raw.display()
        );
    }
    Ok(KuaiRandFiles {
        logs,
        user_features: source::files_matching(raw, &["user_features"], &[".csv"])?,
        video_features: source::files_matching(raw, &["video_features_basic"], &[".csv"])?,
    })
}

/// Reads every log and feature file of RAW.
pub fn read(raw: &Path, limit: Option<u64>, window: TimeWindow) -> Result<SourceData> {
    let files = discover(raw)?;
    let mut log = RawLog::new([true, true, false], window);
    for path in &files.logs {
        let left = limit.map(|limit| limit - log.rows_read);
        if left == Some(0) {
            break;
        }
        let before = log.rows_read;
        read_log(path, left, &mut log)?;
        tracing::info!("{}: {} rows", path.display(), log.rows_read - before);
        source::check_not_empty(path, log.rows_read - before)?;
    }
    source::check_rows_kept(&log)?;

    let mut feature_inputs = Vec::new();
    let mut user_side = SideTable::default();
    let mut filled = Vec::new();
    for path in &files.user_features {
        let specs = user_feature_specs();
        feature_inputs.push(source::read_feature_file(
            path,
            "user_id",
            &mut log.users,
            &specs,
            &mut user_side,
            &mut filled,
        )?);
    }
    let mut video_side = SideTable::default();
    let mut filled = Vec::new();
    for path in &files.video_features {
        let specs = video_feature_specs();
        feature_inputs.push(source::read_feature_file(
            path,
            "video_id",
            &mut log.videos,
            &specs,
            &mut video_side,
            &mut filled,
        )?);
    }
    Ok(SourceData {
        log,
        user_side,
        video_side,
        feature_inputs,
        video_duration: true,
    })
}

fn video_feature_specs() -> Vec<FeatureSpec> {
    vec![
        FeatureSpec::new("video_duration", "duration_ms", FeatureKind::Float),
        FeatureSpec::new("tag", "category", FeatureKind::FirstOfList),
        FeatureSpec::new("video_type", "video_type", FeatureKind::Text),
        FeatureSpec::new("upload_type", "upload_type", FeatureKind::Text),
    ]
}

fn user_feature_specs() -> Vec<FeatureSpec> {
    let mut specs = vec![FeatureSpec::new(
        "user_active_degree",
        "active_degree",
        FeatureKind::Text,
    )];
    for flag in ["is_lowactive_period", "is_live_streamer", "is_video_author"] {
        specs.push(FeatureSpec::new(flag, flag, FeatureKind::Flag));
    }
    for count in [
        "follow_user_num",
        "fans_user_num",
        "friend_user_num",
        "register_days",
    ] {
        specs.push(FeatureSpec::new(count, count, FeatureKind::Float));
    }
    for i in 0..18 {
        let name = format!("onehot_feat{i}");
        specs.push(FeatureSpec::new(&name, &name, FeatureKind::Text));
    }
    specs
}

/// Reads one log file into `log`, at most `limit` rows.
fn read_log(path: &Path, limit: Option<u64>, log: &mut RawLog) -> Result<()> {
    let table = TextTable::open(path, None)?;
    let mut projection = Vec::new();
    for name in [
        "user_id",
        "video_id",
        "time_ms",
        "play_time_ms",
        "duration_ms",
    ] {
        projection.push(table.column(name)?);
    }
    for (name, _) in FLAG_COLUMNS {
        projection.push(table.column(name)?);
    }
    let like = match (
        table.find("label"),
        table.find("is_like"),
        table.find("is_hate"),
    ) {
        (_, Some(like), Some(hate)) => LikeColumns::Separate(like, hate),
        (Some(label), _, _) => LikeColumns::Label(label),
        (None, Some(_), None) => return Err(table.missing("is_hate").into()),
        (None, _, _) => return Err(table.missing("is_like (with is_hate), or label").into()),
    };
    let like_at = projection.len();
    match like {
        LikeColumns::Label(label) => projection.push(label),
        LikeColumns::Separate(like, hate) => projection.extend([like, hate]),
    }
    let names: Vec<String> = projection
        .iter()
        .map(|&at| table.header[at].clone())
        .collect();

    log.begin_file(path);
    let mut first_row = 0u64;
    for batch in table.batches(&projection, limit)? {
        let batch = batch?;
        let origin = |i: usize| Origin {
            path,
            column: &names[i],
            first_row,
        };
        let users = fields::intern_ids(batch.column(0), &mut log.users, origin(0))?;
        let videos = fields::intern_ids(batch.column(1), &mut log.videos, origin(1))?;
        let ts = fields::timestamps_ms(batch.column(2), Some(TsUnit::Millis), origin(2))?;
        let play = fields::numbers(batch.column(3), origin(3))?;
        let duration = fields::numbers(batch.column(4), origin(4))?;
        let flag_columns = (0..FLAG_COLUMNS.len())
            .map(|i| fields::flags(batch.column(5 + i), origin(5 + i)))
            .collect::<Result<Vec<_>>>()?;
        let likes = fields::flags(batch.column(like_at), origin(like_at))?;
        let hates = match like {
            LikeColumns::Label(_) => None,
            LikeColumns::Separate(..) => Some(fields::flags(
                batch.column(like_at + 1),
                origin(like_at + 1),
            )?),
        };

        for row in 0..batch.num_rows() {
            let mut flags = Flags::default();
            for (values, (_, signal)) in flag_columns.iter().zip(FLAG_COLUMNS) {
                flags.set(signal, values[row]);
            }
            let (like, dislike) = match &hates {
                Some(hates) => (likes[row], hates[row]),
                None => (likes[row], likes[row].map(|liked| !liked)),
            };
            flags.set(LIKE, like);
            flags.set(DISLIKE, dislike);
            let signals = RowSignals {
                flags,
                play_time_ms: play[row],
                // KuaiRand writes 0 for an unknown duration.
                duration_ms: duration[row].filter(|&d| d != 0.0),
                rating: None,
            };
            log.push(users[row], videos[row], ts[row], signals);
        }
        first_row += batch.num_rows() as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{DURATION_MS, PLAY_TIME_MS};

    const SUBSET_HEADER: &str = "user_id\tvideo_id\tdate\thourmin\ttime_ms\tis_click\tis_follow\tis_comment\tis_forward\tlong_view\tplay_time_ms\tduration_ms\tcomment_stay_time\tis_profile_enter\tlabel\ttimestamp";
    const OFFICIAL_HEADER: &str = "user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,is_hate,long_view,play_time_ms,duration_ms,profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab";

    fn window() -> TimeWindow {
        TimeWindow::until(1_700_000_000_000)
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn subset_label_gives_like_and_dislike_and_zero_duration_is_null() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!(
            "{SUBSET_HEADER}\n111\t3892024\t20220410\t1700\t1649581149287\t1\t0\t0\t0\t1\t46186\t45916\t7639\t0\t1\tx\n\
             111\t2629583\t20220411\t1600\t1649664552983\t1\t0\t1\t0\t0\t14549\t0\t5045\t0\t0\tx\n"
        );
        let data = read(&write(dir.path(), "log.tsv", &body), None, window()).unwrap();
        let log = &data.log;
        assert_eq!(log.len(), 2);
        assert_eq!(
            (log.flags[0].get(LIKE), log.flags[0].get(DISLIKE)),
            (Some(true), Some(false))
        );
        assert_eq!(
            (log.flags[1].get(LIKE), log.flags[1].get(DISLIKE)),
            (Some(false), Some(true))
        );
        assert_eq!(log.flags[1].get(COMMENT), Some(true));
        assert_eq!(log.flags[0].get(LONG_VIEW), Some(true));
        assert_eq!(log.numeric[PLAY_TIME_MS], vec![46186.0, 14549.0]);
        assert!(log.numeric[DURATION_MS][1].is_nan());
        assert_eq!(log.ts_ms[0], 1649581149287);
    }

    #[test]
    fn official_logs_use_is_like_and_is_hate_and_all_logs_of_a_folder_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let row = |user: &str, like: &str, hate: &str| {
            format!(
                "{user},7,20220410,1700,1649581149287,1,{like},0,0,0,{hate},0,100,2000,0,0,0,0,1\n"
            )
        };
        write(
            dir.path(),
            "log_standard_a.csv",
            &format!("{OFFICIAL_HEADER}\n{}", row("1", "1", "0")),
        );
        write(
            dir.path(),
            "log_random_b.csv",
            &format!("{OFFICIAL_HEADER}\n{}", row("2", "0", "1")),
        );
        write(dir.path(), "notes.csv", "not,a,log\n");
        let data = read(dir.path(), None, window()).unwrap();
        assert_eq!(data.log.len(), 2);
        assert_eq!(data.log.inputs.len(), 2);
        // log_random_b.csv sorts first.
        assert_eq!(data.log.flags[0].get(DISLIKE), Some(true));
        assert_eq!(data.log.flags[1].get(LIKE), Some(true));
    }

    #[test]
    fn missing_log_column_names_file_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let header = SUBSET_HEADER.replace("time_ms\t", "");
        let path = write(dir.path(), "log.tsv", &format!("{header}\n"));
        let message = format!("{:#}", read(&path, None, window()).unwrap_err());
        assert!(
            message.contains("log.tsv") && message.contains("\"time_ms\""),
            "{message}"
        );
    }

    #[test]
    fn log_without_like_columns_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let header = SUBSET_HEADER.replace("\tlabel", "");
        let path = write(dir.path(), "log.tsv", &format!("{header}\n"));
        let message = format!("{:#}", read(&path, None, window()).unwrap_err());
        assert!(message.contains("is_like"), "{message}");
    }

    #[test]
    fn header_only_log_is_an_empty_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "log.tsv", &format!("{SUBSET_HEADER}\n"));
        let message = format!("{:#}", read(&path, None, window()).unwrap_err());
        assert!(
            message.contains("log.tsv") && message.contains("no rows"),
            "{message}"
        );
    }

    #[test]
    fn folder_without_logs_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "user_features.csv", "user_id\n1\n");
        let message = format!("{:#}", read(dir.path(), None, window()).unwrap_err());
        assert!(message.contains("no KuaiRand log"), "{message}");
    }

    #[test]
    fn features_attach_to_log_ids_only() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!(
            "{SUBSET_HEADER}\n5\t9\t0\t0\t1649581149287\t1\t0\t0\t0\t1\t1\t2\t0\t0\t1\tx\n"
        );
        write(dir.path(), "log.tsv", &body);
        write(
            dir.path(),
            "user_features_pure.csv",
            "user_id,user_active_degree,is_live_streamer\n5,high_active,0\n6,low,1\n",
        );
        write(
            dir.path(),
            "video_features_basic_pure.csv",
            "video_id,video_type,tag\n9,NORMAL,\"28,3\"\n",
        );
        let data = read(dir.path(), None, window()).unwrap();
        assert_eq!(data.feature_inputs.len(), 2);
        let names: Vec<&str> = data
            .user_side
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, vec!["active_degree", "is_live_streamer"]);
        let names: Vec<&str> = data
            .video_side
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, vec!["category", "video_type"]);
    }

    #[test]
    fn text_ids_in_features_against_integer_log_ids_fail_at_assignment() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!(
            "{SUBSET_HEADER}\n5\t9\t0\t0\t1649581149287\t1\t0\t0\t0\t1\t1\t2\t0\t0\t1\tx\n"
        );
        write(dir.path(), "log.tsv", &body);
        write(
            dir.path(),
            "user_features_pure.csv",
            "user_id,user_active_degree\nu5,high\n",
        );
        let data = read(dir.path(), None, window()).unwrap();
        let message = data.log.users.check_files_agree().unwrap_err().to_string();
        assert!(message.contains("log.tsv") && message.contains("user_features_pure.csv"));
    }

    #[test]
    fn row_limit_stops_reading() {
        let dir = tempfile::tempdir().unwrap();
        let row = "5\t9\t0\t0\t1649581149287\t1\t0\t0\t0\t1\t1\t2\t0\t0\t1\tx\n";
        let path = write(
            dir.path(),
            "log.tsv",
            &format!("{SUBSET_HEADER}\n{row}{row}{row}"),
        );
        assert_eq!(read(&path, Some(2), window()).unwrap().log.rows_read, 2);
    }
}
