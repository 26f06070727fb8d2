//! The error type of relvid's shared library: every variant names the file, column, row or
//! parameter that a user has to look at, because Parquet and Arrow errors name none of them.

use std::path::PathBuf;

/// A failure that points at data or at a parameter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A column the stage needs is absent from a file.
    #[error("{path}: missing column \"{column}\" (found: {available})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: String,
    },

    /// A column exists with another type than the contract says.
    #[error("{path}: column \"{column}\": expected {expected}, found {found}")]
    ColumnType {
        path: PathBuf,
        column: String,
        expected: String,
        found: String,
    },

    /// A value breaks a rule of the data contract.
    #[error("{path}: column \"{column}\", row {row}: value {value}: {reason}")]
    BadValue {
        path: PathBuf,
        column: String,
        row: u64,
        value: String,
        reason: String,
    },

    /// A file holds no usable rows where the stage cannot give an honest empty answer.
    #[error("{path}: {what}")]
    Empty { path: PathBuf, what: String },

    /// A hyperparameter or configuration value breaks one of its rules.
    #[error("invalid parameter {name} = {value}: {rule}")]
    Param {
        name: String,
        value: String,
        rule: String,
    },

    /// A trained matrix holds NaN or infinity.
    #[error("non-finite value in {what} at row {row} (after {step})")]
    NonFinite {
        what: String,
        row: u64,
        step: String,
    },
}

/// Shorthand for an `Error::Param` with formatted fields.
pub fn param_error(name: &str, value: impl std::fmt::Display, rule: &str) -> Error {
    Error::Param {
        name: name.to_string(),
        value: value.to_string(),
        rule: rule.to_string(),
    }
}
