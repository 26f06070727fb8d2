//! Interaction rows in memory: the Boolean signals packed into [`Flags`] and the numeric
//! signals as f32 with NaN for null, column by column ([`Events`]).
//!
//! Both the file sources (after sorting and merging) and the synthetic generator hand their
//! rows to the writer in this form.

use common::schema::{BOOL_SIGNALS, NUMERIC_SIGNALS};

// Position of each Boolean signal in [`Flags`], in `common::schema::BOOL_SIGNALS` order.
/// Bit of `click`.
pub const CLICK: usize = 0;
/// Bit of `long_view`.
pub const LONG_VIEW: usize = 1;
/// Bit of `like`.
pub const LIKE: usize = 2;
/// Bit of `comment`.
pub const COMMENT: usize = 3;
/// Bit of `forward`.
pub const FORWARD: usize = 4;
/// Bit of `follow`.
pub const FOLLOW: usize = 5;
/// Bit of `dislike`.
pub const DISLIKE: usize = 6;

// Position of each numeric signal in [`Events::numeric`], in `NUMERIC_SIGNALS` order.
/// Slot of `play_time_ms`.
pub const PLAY_TIME_MS: usize = 0;
/// Slot of `duration_ms`.
pub const DURATION_MS: usize = 1;
/// Slot of `rating`.
pub const RATING: usize = 2;

const _: () = assert!(BOOL_SIGNALS.len() == 7 && NUMERIC_SIGNALS.len() == 3);

/// The seven Boolean signals of one row: bit `i` holds the value of signal `i`, bit `8 + i`
/// says whether signal `i` is present (not null).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(u16);

impl Flags {
    /// Sets signal `signal` to a value or to null.
    pub fn set(&mut self, signal: usize, value: Option<bool>) {
        let (value_bit, valid_bit) = (1u16 << signal, 1u16 << (8 + signal));
        self.0 &= !(value_bit | valid_bit);
        if let Some(value) = value {
            self.0 |= valid_bit;
            if value {
                self.0 |= value_bit;
            }
        }
    }

    /// Builder form of [`Flags::set`].
    pub fn with(mut self, signal: usize, value: Option<bool>) -> Flags {
        self.set(signal, value);
        self
    }

    /// The value of signal `signal`, `None` when null.
    pub fn get(self, signal: usize) -> Option<bool> {
        (self.0 & (1 << (8 + signal)) != 0).then_some(self.0 & (1 << signal) != 0)
    }

    /// Logical OR of two rows: a signal is true when either is true, false when one is
    /// false and the other false or null, null when both are null.
    pub fn merge(self, other: Flags) -> Flags {
        // Value bits are only ever set together with their valid bit, so OR is exact.
        Flags(self.0 | other.0)
    }
}

/// Larger of two numeric signals where null (NaN) loses to any value.
pub fn max_nan_null(a: f32, b: f32) -> f32 {
    // f32::max returns the other operand when one is NaN.
    a.max(b)
}

/// Interaction rows, column by column.
#[derive(Debug, Clone, Default)]
pub struct Events {
    pub user_idx: Vec<u32>,
    pub video_idx: Vec<u32>,
    /// Epoch milliseconds.
    pub ts_ms: Vec<i64>,
    pub flags: Vec<Flags>,
    /// `play_time_ms`, `duration_ms`, `rating`; a signal the source lacks has an empty
    /// vector (all null), otherwise one value per row with NaN for null.
    pub numeric: [Vec<f32>; 3],
}

impl Events {
    /// Empty columns with room for `n` rows of the numeric signals the source has.
    pub fn with_capacity(n: usize, has_numeric: [bool; 3]) -> Events {
        let numeric = has_numeric.map(|has| Vec::with_capacity(if has { n } else { 0 }));
        Events {
            user_idx: Vec::with_capacity(n),
            video_idx: Vec::with_capacity(n),
            ts_ms: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            numeric,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.user_idx.len()
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.user_idx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_values_and_nulls() {
        let flags = Flags::default()
            .with(LIKE, Some(true))
            .with(DISLIKE, Some(false));
        assert_eq!(flags.get(LIKE), Some(true));
        assert_eq!(flags.get(DISLIKE), Some(false));
        assert_eq!(flags.get(CLICK), None);
        assert_eq!(flags.with(LIKE, None).get(LIKE), None);
    }

    #[test]
    fn merge_is_or_with_null_as_unknown() {
        let a = Flags::default()
            .with(CLICK, Some(false))
            .with(LIKE, Some(true));
        let b = Flags::default()
            .with(CLICK, Some(true))
            .with(FOLLOW, Some(false));
        let merged = a.merge(b);
        assert_eq!(merged.get(CLICK), Some(true));
        assert_eq!(merged.get(LIKE), Some(true));
        assert_eq!(merged.get(FOLLOW), Some(false));
        assert_eq!(merged.get(COMMENT), None);
    }

    #[test]
    fn numeric_max_ignores_null() {
        assert_eq!(max_nan_null(f32::NAN, 3.0), 3.0);
        assert_eq!(max_nan_null(5.0, 3.0), 5.0);
        assert!(max_nan_null(f32::NAN, f32::NAN).is_nan());
    }
}
