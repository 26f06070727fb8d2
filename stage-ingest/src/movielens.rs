//! The MovieLens source: ratings, plus user and movie descriptions where present.
//!
//! RAW is a folder (or one of the rating files in it) in one of two layouts:
//! - 100K: `u.data` (tab-separated `user item rating unix_seconds`, no header), `u.user`
//!   (`|`: id, age, gender, occupation, zip) and `u.item` (`|`: id, title, release date,
//!   video release date, url, 19 genre flags; Latin-1 titles are decoded);
//! - newer releases: `ratings.csv` (`userId,movieId,rating,timestamp`) and `movies.csv`
//!   (`movieId,title,genres` with genres as "Action|Comedy").
//!
//! The only signal is `rating` (Float32); every other signal is null. Users get `age`
//! (Float32), `gender`, `occupation` (100K only; the zip code is not kept). Videos get
//! `title` (not a feature), `category` (the first genre, "unknown" when none), `genres`
//! ("Action|Comedy", null when none) and `year` (Float32, from the "(1995)" at the end of
//! the title, else from the release date).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use arrow::array::RecordBatch;

use crate::fields::{self, Origin, TsUnit};
use crate::log::{RawLog, RowSignals, TimeWindow};
use crate::side::{SideTable, SideValues};
use crate::source::{self, SourceData};
use crate::text::{PlainBatches, TextTable};

/// The 19 genres of `u.item`, in flag order.
pub const GENRES_100K: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// Which MovieLens release a folder holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// `u.data`, `u.user`, `u.item`.
    Classic(PathBuf),
    /// `ratings.csv`, `movies.csv`.
    Csv(PathBuf),
}

/// Finds the layout of RAW.
pub fn discover(raw: &Path) -> Result<Layout> {
    let folder = if raw.is_file() {
        match raw.file_name().and_then(|n| n.to_str()) {
            Some("u.data" | "ratings.csv") => raw.parent().unwrap_or(Path::new(".")).to_path_buf(),
            _ => bail!(
                "{}: a MovieLens RAW is a folder holding u.data or ratings.csv (or that file)",
                raw.display()
            ),
        }
    } else if raw.is_dir() {
        raw.to_path_buf()
    } else {
        bail!(
            "{}: no such file or folder (RAW of the movielens format)",
            raw.display()
        );
    };
    if folder.join("u.data").is_file() {
        Ok(Layout::Classic(folder))
    } else if folder.join("ratings.csv").is_file() {
        Ok(Layout::Csv(folder))
    } else {
        bail!(
            "{}: no u.data or ratings.csv in this folder",
            folder.display()
        )
    }
}

/// Reads the ratings and the descriptions of RAW.
pub fn read(raw: &Path, limit: Option<u64>, window: TimeWindow) -> Result<SourceData> {
    let mut log = RawLog::new([false, false, true], window);
    let mut data = match discover(raw)? {
        Layout::Classic(folder) => {
            let path = folder.join("u.data");
            let names = ["user_id", "item_id", "rating", "timestamp"];
            log.begin_file(&path);
            read_ratings(
                &path,
                PlainBatches::open(&path, '\t', &names, limit)?,
                &names,
                &mut log,
            )?;
            source::check_not_empty(&path, log.rows_read)?;
            source::check_rows_kept(&log)?;
            let mut data = empty_data(log);
            read_users_100k(&folder.join("u.user"), &mut data)?;
            read_items_100k(&folder.join("u.item"), &mut data)?;
            data
        }
        Layout::Csv(folder) => {
            let path = folder.join("ratings.csv");
            let table = TextTable::open(&path, None)?;
            let names = ["userId", "movieId", "rating", "timestamp"];
            let projection = names
                .iter()
                .map(|n| table.column(n))
                .collect::<Result<Vec<_>, _>>()?;
            log.begin_file(&path);
            read_ratings(&path, table.batches(&projection, limit)?, &names, &mut log)?;
            source::check_not_empty(&path, log.rows_read)?;
            source::check_rows_kept(&log)?;
            let mut data = empty_data(log);
            read_movies_csv(&folder.join("movies.csv"), &mut data)?;
            data
        }
    };
    data.user_side.drop_empty();
    Ok(data)
}

fn empty_data(log: RawLog) -> SourceData {
    SourceData {
        log,
        user_side: SideTable::default(),
        video_side: SideTable::default(),
        feature_inputs: Vec::new(),
        video_duration: false,
    }
}

/// Reads rating rows (user, item, rating, unix seconds) from either layout.
fn read_ratings(
    path: &Path,
    batches: impl Iterator<Item = Result<RecordBatch>>,
    names: &[&str; 4],
    log: &mut RawLog,
) -> Result<()> {
    let mut first_row = 0u64;
    for batch in batches {
        let batch = batch?;
        let origin = |i: usize| Origin {
            path,
            column: names[i],
            first_row,
        };
        let users = fields::intern_ids(batch.column(0), &mut log.users, origin(0))?;
        let videos = fields::intern_ids(batch.column(1), &mut log.videos, origin(1))?;
        let ratings = fields::numbers(batch.column(2), origin(2))?;
        let ts = fields::timestamps_ms(batch.column(3), Some(TsUnit::Seconds), origin(3))?;
        for row in 0..batch.num_rows() {
            let signals = RowSignals {
                rating: ratings[row],
                ..Default::default()
            };
            log.push(users[row], videos[row], ts[row], signals);
        }
        first_row += batch.num_rows() as u64;
    }
    Ok(())
}

/// Keys of a side file's ids, `None` for ids not in the log or already described.
fn targets(keys: Vec<Option<u32>>, filled: &mut [bool]) -> Vec<Option<usize>> {
    keys.into_iter()
        .map(|key| {
            let key = key? as usize;
            (!std::mem::replace(&mut filled[key], true)).then_some(key)
        })
        .collect()
}

fn read_users_100k(path: &Path, data: &mut SourceData) -> Result<()> {
    if !path.is_file() {
        tracing::warn!(
            "{}: absent, users get no age/gender/occupation",
            path.display()
        );
        return Ok(());
    }
    let names = ["user_id", "age", "gender", "occupation", "zip_code"];
    let n_keys = data.log.users.len();
    let (mut age, mut gender, mut occupation) = (
        vec![f32::NAN; n_keys],
        vec![None; n_keys],
        vec![None; n_keys],
    );
    let mut filled = vec![false; n_keys];
    let mut rows = 0u64;
    data.log.users.begin_file(path);
    for batch in PlainBatches::open(path, '|', &names, None)? {
        let batch = batch?;
        let origin = |i: usize| Origin {
            path,
            column: names[i],
            first_row: rows,
        };
        let keys = fields::lookup_ids(batch.column(0), &mut data.log.users, origin(0))?;
        let ages = fields::numbers(batch.column(1), origin(1))?;
        let genders = fields::texts(batch.column(2), origin(2))?;
        let occupations = fields::texts(batch.column(3), origin(3))?;
        for (row, key) in targets(keys, &mut filled).into_iter().enumerate() {
            if let Some(key) = key {
                age[key] = ages[row].unwrap_or(f32::NAN);
                gender[key] = genders[row].clone();
                occupation[key] = occupations[row].clone();
            }
        }
        rows += batch.num_rows() as u64;
    }
    data.user_side.push("age", SideValues::Float(age));
    data.user_side.push("gender", SideValues::Text(gender));
    data.user_side
        .push("occupation", SideValues::Text(occupation));
    data.feature_inputs
        .push(common::summary::FileRows::new(path, rows));
    Ok(())
}

/// Video descriptions being collected, per video key.
struct Movies {
    title: Vec<Option<String>>,
    category: Vec<Option<String>>,
    genres: Vec<Option<String>>,
    year: Vec<f32>,
    filled: Vec<bool>,
}

impl Movies {
    fn new(n_keys: usize) -> Movies {
        Movies {
            title: vec![None; n_keys],
            category: vec![None; n_keys],
            genres: vec![None; n_keys],
            year: vec![f32::NAN; n_keys],
            filled: vec![false; n_keys],
        }
    }

    fn set(&mut self, key: usize, title: Option<String>, genres: &[&str], release: Option<&str>) {
        self.year[key] = title
            .as_deref()
            .and_then(year_of_title)
            .or_else(|| release.and_then(year_of_release))
            .unwrap_or(f32::NAN);
        self.title[key] = title;
        self.category[key] = Some(genres.first().copied().unwrap_or("unknown").to_string());
        self.genres[key] = (!genres.is_empty()).then(|| genres.join("|"));
    }

    /// Moves the collected columns into the data, title first.
    fn finish(self, data: &mut SourceData) {
        debug_assert_eq!(self.title.len(), data.log.videos.len());
        data.video_side.push("title", SideValues::Text(self.title));
        data.video_side
            .push("category", SideValues::Text(self.category));
        data.video_side
            .push("genres", SideValues::Text(self.genres));
        data.video_side.push("year", SideValues::Float(self.year));
    }
}

fn read_items_100k(path: &Path, data: &mut SourceData) -> Result<()> {
    if !path.is_file() {
        tracing::warn!("{}: absent, videos get no title or genres", path.display());
        return Ok(());
    }
    let mut names = vec![
        "item_id",
        "title",
        "release_date",
        "video_release_date",
        "url",
    ];
    let genre_columns: Vec<String> = GENRES_100K.iter().map(|g| format!("genre {g}")).collect();
    names.extend(genre_columns.iter().map(String::as_str));
    let mut movies = Movies::new(data.log.videos.len());
    let mut rows = 0u64;
    data.log.videos.begin_file(path);
    for batch in PlainBatches::open(path, '|', &names, None)? {
        let batch = batch?;
        let origin = |i: usize| Origin {
            path,
            column: names[i],
            first_row: rows,
        };
        let keys = fields::lookup_ids(batch.column(0), &mut data.log.videos, origin(0))?;
        let titles = fields::texts(batch.column(1), origin(1))?;
        let releases = fields::texts(batch.column(2), origin(2))?;
        let flags = (0..GENRES_100K.len())
            .map(|g| fields::flags(batch.column(5 + g), origin(5 + g)))
            .collect::<Result<Vec<_>>>()?;
        for (row, key) in targets(keys, &mut movies.filled).into_iter().enumerate() {
            if let Some(key) = key {
                let genres: Vec<&str> = GENRES_100K
                    .iter()
                    .zip(&flags)
                    .filter(|(_, set)| set[row] == Some(true))
                    .map(|(genre, _)| *genre)
                    .collect();
                movies.set(key, titles[row].clone(), &genres, releases[row].as_deref());
            }
        }
        rows += batch.num_rows() as u64;
    }
    movies.finish(data);
    data.feature_inputs
        .push(common::summary::FileRows::new(path, rows));
    Ok(())
}

fn read_movies_csv(path: &Path, data: &mut SourceData) -> Result<()> {
    if !path.is_file() {
        tracing::warn!("{}: absent, videos get no title or genres", path.display());
        return Ok(());
    }
    let table = TextTable::open(path, None)?;
    let names = ["movieId", "title", "genres"];
    let projection = names
        .iter()
        .map(|n| table.column(n))
        .collect::<Result<Vec<_>, _>>()?;
    let mut movies = Movies::new(data.log.videos.len());
    let mut rows = 0u64;
    data.log.videos.begin_file(path);
    for batch in table.batches(&projection, None)? {
        let batch = batch?;
        let origin = |i: usize| Origin {
            path,
            column: names[i],
            first_row: rows,
        };
        let keys = fields::lookup_ids(batch.column(0), &mut data.log.videos, origin(0))?;
        let titles = fields::texts(batch.column(1), origin(1))?;
        let genres = fields::texts(batch.column(2), origin(2))?;
        for (row, key) in targets(keys, &mut movies.filled).into_iter().enumerate() {
            if let Some(key) = key {
                let listed: Vec<&str> = genres[row]
                    .as_deref()
                    .unwrap_or_default()
                    .split('|')
                    .filter(|g| !g.is_empty() && *g != "(no genres listed)")
                    .collect();
                movies.set(key, titles[row].clone(), &listed, None);
            }
        }
        rows += batch.num_rows() as u64;
    }
    movies.finish(data);
    data.feature_inputs
        .push(common::summary::FileRows::new(path, rows));
    Ok(())
}

/// The year of a title ending in "(1995)".
fn year_of_title(title: &str) -> Option<f32> {
    let inner = title.trim_end().strip_suffix(')')?;
    let year = inner.get(inner.len().checked_sub(4)?..)?;
    let open = inner.get(..inner.len() - 4)?.ends_with('(');
    (open && year.bytes().all(|b| b.is_ascii_digit())).then(|| year.parse().ok())?
}

/// The year of a release date written "01-Jan-1995".
fn year_of_release(date: &str) -> Option<f32> {
    let year = date.rsplit('-').next()?;
    (year.len() == 4).then(|| year.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RATING;

    fn window() -> TimeWindow {
        TimeWindow::until(1_700_000_000_000)
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    fn item_line(id: u32, title: &[u8], flags: &[usize]) -> Vec<u8> {
        let mut line = format!("{id}|").into_bytes();
        line.extend_from_slice(title);
        line.extend_from_slice(b"|01-Jan-1995|||");
        let bits: Vec<&str> = (0..19)
            .map(|g| if flags.contains(&g) { "1" } else { "0" })
            .collect();
        line.extend_from_slice(bits.join("|").as_bytes());
        line.push(b'\n');
        line
    }

    #[test]
    fn classic_layout_reads_ratings_users_and_items() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "u.data",
            b"196\t242\t3\t881250949\n186\t302\t5\t891717742\n",
        );
        write(
            dir.path(),
            "u.user",
            b"196|49|M|writer|55105\n186|39|F|executive|00000\n7|1|M|x|1\n",
        );
        let mut items = item_line(242, b"Kolya (1996)", &[5]);
        items.extend(item_line(302, b"L.A. Confidential (1997) \xe9", &[6, 16]));
        write(dir.path(), "u.item", &items);
        let data = read(dir.path(), None, window()).unwrap();
        assert_eq!(data.log.len(), 2);
        assert_eq!(data.log.numeric[RATING], vec![3.0, 5.0]);
        assert_eq!(data.log.ts_ms[0], 881_250_949_000);
        let names: Vec<&str> = data
            .video_side
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, vec!["title", "category", "genres", "year"]);
        let SideValues::Text(genres) = &data.video_side.get("genres").unwrap().values else {
            panic!()
        };
        assert_eq!(
            genres,
            &vec![
                Some("Comedy".to_string()),
                Some("Crime|Thriller".to_string())
            ]
        );
        let SideValues::Float(year) = &data.video_side.get("year").unwrap().values else {
            panic!()
        };
        // The second title does not end in "(year)": the release date gives it.
        assert_eq!(year, &vec![1996.0, 1995.0]);
        let SideValues::Float(age) = &data.user_side.get("age").unwrap().values else {
            panic!()
        };
        assert_eq!(age, &vec![49.0, 39.0]);
    }

    #[test]
    fn csv_layout_reads_ratings_and_movies() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "ratings.csv",
            b"userId,movieId,rating,timestamp\n1,10,4.5,964982703\n",
        );
        write(
            dir.path(),
            "movies.csv",
            b"movieId,title,genres\n10,\"Heat, The (1995)\",(no genres listed)\n",
        );
        let data = read(dir.path(), None, window()).unwrap();
        assert_eq!(data.log.numeric[RATING], vec![4.5]);
        let SideValues::Text(category) = &data.video_side.get("category").unwrap().values else {
            panic!()
        };
        assert_eq!(category, &vec![Some("unknown".to_string())]);
    }

    #[test]
    fn nan_rating_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "ratings.csv",
            b"userId,movieId,rating,timestamp\n1,10,NaN,964982703\n1,11,3,964982703\n",
        );
        let data = read(dir.path(), None, window()).unwrap();
        assert_eq!((data.log.rows_read, data.log.len()), (2, 1));
        assert_eq!(data.log.drops.bad_signal(), 1);
    }

    #[test]
    fn ratings_csv_without_rating_column_names_it() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "ratings.csv",
            b"userId,movieId,timestamp\n1,10,964982703\n",
        );
        let message = format!("{:#}", read(dir.path(), None, window()).unwrap_err());
        assert!(
            message.contains("ratings.csv") && message.contains("\"rating\""),
            "{message}"
        );
    }

    #[test]
    fn empty_u_data_is_an_empty_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "u.data", b"");
        let message = format!("{:#}", read(dir.path(), None, window()).unwrap_err());
        assert!(
            message.contains("u.data") && message.contains("no rows"),
            "{message}"
        );
    }

    #[test]
    fn folder_without_ratings_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let message = format!("{:#}", read(dir.path(), None, window()).unwrap_err());
        assert!(message.contains("no u.data or ratings.csv"), "{message}");
    }

    #[test]
    fn years_come_from_titles_or_release_dates() {
        assert_eq!(year_of_title("Toy Story (1995)"), Some(1995.0));
        assert_eq!(year_of_title("Toy Story (1995) "), Some(1995.0));
        assert_eq!(year_of_title("Toy Story"), None);
        assert_eq!(year_of_title("(12345)"), None);
        assert_eq!(year_of_release("01-Jan-1995"), Some(1995.0));
        assert_eq!(year_of_release(""), None);
    }
}
