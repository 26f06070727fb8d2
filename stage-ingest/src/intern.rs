//! Interning of original user and video ids while raw files are read, and the final
//! assignment of dense indices in sorted id order.
//!
//! Ids arrive as text (CSV) or as integers (Parquet). Text that is a canonical 64-bit integer
//! is stored as that integer, so `9007199254740993` and `9007199254740992` stay distinct and
//! never pass through a float. Every file's id column is classified as integer (all values
//! canonical integers) or text; two files that disagree are an error naming both.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use common::ids::canonical_i64;
use common::IdColumn;

/// A multiply-rotate hasher: ids are not attacker-chosen, and SipHash would dominate the
/// time spent on a large log.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_i64(&mut self, value: i64) {
        self.write_u64(value as u64);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    fn write_u8(&mut self, value: u8) {
        self.write_u64(value as u64);
    }
}

/// HashMap with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// One original id as read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    Int(i64),
    Text(Box<str>),
}

impl IdKey {
    fn as_text(&self) -> String {
        match self {
            IdKey::Int(value) => value.to_string(),
            IdKey::Text(text) => text.to_string(),
        }
    }
}

/// How one file wrote an id column.
#[derive(Debug, Clone)]
struct FileIds {
    path: PathBuf,
    /// The first value that is not a canonical integer, if any.
    first_text: Option<String>,
    n_values: u64,
}

/// The ids of one entity (users or videos) seen so far, each with a key number in order of
/// first appearance.
#[derive(Debug, Default)]
pub struct IdInterner {
    column: String,
    ints: FastMap<i64, u32>,
    texts: FastMap<Box<str>, u32>,
    keys: Vec<IdKey>,
    files: Vec<FileIds>,
}

/// The dense indices of one entity: ids in index order and a key → index map.
#[derive(Debug, Clone)]
pub struct DenseIds {
    pub ids: IdColumn,
    /// Dense index of every key, `u32::MAX` for keys that no kept row uses.
    pub key_to_idx: Vec<u32>,
    /// Key of every dense index.
    pub idx_to_key: Vec<u32>,
}

impl IdInterner {
    /// An empty interner; `column` (e.g. `user_id`) names the ids in messages.
    pub fn new(column: &str) -> IdInterner {
        IdInterner {
            column: column.to_string(),
            ..Default::default()
        }
    }

    /// Number of distinct ids interned.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no id was interned.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Starts recording the ids of a new file; later `intern`/`lookup` calls count for it.
    pub fn begin_file(&mut self, path: &Path) {
        self.files.push(FileIds {
            path: path.to_path_buf(),
            first_text: None,
            n_values: 0,
        });
    }

    /// Records one value of the current file; `text` is the value when it is not a
    /// canonical integer.
    fn note(&mut self, text: Option<&str>) {
        let file = self
            .files
            .last_mut()
            .expect("begin_file before reading ids");
        file.n_values += 1;
        if let (None, Some(text)) = (&file.first_text, text) {
            file.first_text = Some(text.to_string());
        }
    }

    fn push_key(&mut self, key: IdKey) -> u32 {
        let next = self.keys.len() as u32;
        match &key {
            IdKey::Int(value) => self.ints.insert(*value, next),
            IdKey::Text(text) => self.texts.insert(text.clone(), next),
        };
        self.keys.push(key);
        next
    }

    /// The key number of an id given as text, adding it when new.
    pub fn intern_text(&mut self, text: &str) -> u32 {
        if let Some(value) = canonical_i64(text) {
            return self.intern_int(value);
        }
        self.note(Some(text));
        match self.texts.get(text) {
            Some(&key) => key,
            None => self.push_key(IdKey::Text(text.into())),
        }
    }

    /// The key number of an integer id (Parquet integer columns), adding it when new.
    pub fn intern_int(&mut self, value: i64) -> u32 {
        self.note(None);
        match self.ints.get(&value) {
            Some(&key) => key,
            None => self.push_key(IdKey::Int(value)),
        }
    }

    /// The key number of an id given as text, if already interned (side-feature files
    /// never add ids).
    pub fn lookup_text(&mut self, text: &str) -> Option<u32> {
        if let Some(value) = canonical_i64(text) {
            return self.lookup_int(value);
        }
        self.note(Some(text));
        self.texts.get(text).copied()
    }

    /// The key number of an integer id, if already interned.
    pub fn lookup_int(&mut self, value: i64) -> Option<u32> {
        self.note(None);
        self.ints.get(&value).copied()
    }

    /// Fails when one file wrote only canonical integers and another wrote text ids.
    pub fn check_files_agree(&self) -> Result<()> {
        let files: Vec<&FileIds> = self.files.iter().filter(|f| f.n_values > 0).collect();
        let integer = files.iter().find(|f| f.first_text.is_none());
        let text = files.iter().find(|f| f.first_text.is_some());
        if let (Some(integer), Some(text)) = (integer, text) {
            bail!(
                "column \"{}\": ids are integers in {} but text in {} (e.g. \"{}\"); the same \
                 entity must be identified the same way in every file",
                self.column,
                integer.path.display(),
                text.path.display(),
                text.first_text.as_deref().unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Assigns dense indices 0..n to the keys marked in `used`, in sorted order of the
    /// original id (numeric for Int64 ids, bytewise for Utf8 ids).
    ///
    /// The id type is Int64 when every used id is a canonical integer, else Utf8.
    pub fn assign(&self, used: &[bool]) -> Result<DenseIds> {
        self.check_files_agree()?;
        debug_assert_eq!(used.len(), self.keys.len());
        let mut order: Vec<u32> = (0..self.keys.len() as u32)
            .filter(|&k| used[k as usize])
            .collect();
        let all_int = order
            .iter()
            .all(|&k| matches!(self.keys[k as usize], IdKey::Int(_)));

        let ids = if all_int {
            let value = |k: u32| match self.keys[k as usize] {
                IdKey::Int(value) => value,
                IdKey::Text(_) => unreachable!("checked all_int"),
            };
            order.sort_unstable_by_key(|&k| value(k));
            IdColumn::Int64(order.iter().map(|&k| value(k)).collect())
        } else {
            // Integer keys are canonical, so their text is exactly what the file held.
            let mut texted: Vec<(String, u32)> = order
                .iter()
                .map(|&k| (self.keys[k as usize].as_text(), k))
                .collect();
            texted.sort_unstable();
            order = texted.iter().map(|(_, k)| *k).collect();
            IdColumn::Utf8(texted.into_iter().map(|(text, _)| text).collect())
        };

        let mut key_to_idx = vec![u32::MAX; self.keys.len()];
        for (idx, &key) in order.iter().enumerate() {
            key_to_idx[key as usize] = idx as u32;
        }
        Ok(DenseIds {
            ids,
            key_to_idx,
            idx_to_key: order,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interner_with(values: &[&str]) -> IdInterner {
        let mut ids = IdInterner::new("user_id");
        ids.begin_file(Path::new("log.csv"));
        for value in values {
            ids.intern_text(value);
        }
        ids
    }

    #[test]
    fn ids_beyond_f64_precision_stay_distinct() {
        let ids = interner_with(&["9007199254740993", "9007199254740992"]);
        let dense = ids.assign(&[true, true]).unwrap();
        assert_eq!(
            dense.ids,
            IdColumn::Int64(vec![9007199254740992, 9007199254740993])
        );
        assert_eq!(dense.key_to_idx, vec![1, 0]);
    }

    #[test]
    fn huge_gaps_give_consecutive_indices() {
        let ids = interner_with(&["5000000000", "1", "1000000"]);
        let dense = ids.assign(&[true, true, true]).unwrap();
        assert_eq!(
            dense.ids,
            IdColumn::Int64(vec![1, 1_000_000, 5_000_000_000])
        );
        assert_eq!(dense.key_to_idx, vec![2, 0, 1]);
        assert_eq!(dense.idx_to_key, vec![1, 2, 0]);
    }

    #[test]
    fn any_text_id_makes_the_column_utf8_sorted_bytewise() {
        let ids = interner_with(&["10", "b", "9", "007"]);
        let dense = ids.assign(&[true; 4]).unwrap();
        let expected = ["007", "10", "9", "b"].map(String::from).to_vec();
        assert_eq!(dense.ids, IdColumn::Utf8(expected));
    }

    #[test]
    fn unused_keys_get_no_index() {
        let ids = interner_with(&["3", "abc", "1"]);
        let dense = ids.assign(&[true, false, true]).unwrap();
        assert_eq!(dense.ids, IdColumn::Int64(vec![1, 3]));
        assert_eq!(dense.key_to_idx, vec![1, u32::MAX, 0]);
    }

    #[test]
    fn repeated_ids_share_a_key() {
        let mut ids = interner_with(&[]);
        assert_eq!(ids.intern_text("x"), 0);
        assert_eq!(ids.intern_text("7"), 1);
        assert_eq!(ids.intern_text("x"), 0);
        assert_eq!(ids.intern_int(7), 1);
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn integer_file_and_text_file_disagree() {
        let mut ids = interner_with(&["1", "2"]);
        ids.begin_file(Path::new("features.csv"));
        ids.lookup_text("u1");
        let message = ids.assign(&[true, true]).unwrap_err().to_string();
        assert!(
            message.contains("log.csv") && message.contains("features.csv"),
            "{message}"
        );
        assert!(message.contains("\"u1\""), "{message}");
    }

    #[test]
    fn lookup_finds_only_known_ids() {
        let mut ids = interner_with(&["1", "2"]);
        ids.begin_file(Path::new("features.csv"));
        assert_eq!(ids.lookup_text("2"), Some(1));
        assert_eq!(ids.lookup_text("3"), None);
    }
}
