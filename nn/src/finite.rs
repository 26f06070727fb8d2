//! Checks that trained weights hold no NaN or infinity, naming the tensor and the first bad
//! row, so a diverged run stops at the epoch where it diverged instead of writing garbage.

use common::Error;

/// The first row (of `row_len` values) holding a NaN or infinite value.
pub fn first_non_finite_row(values: &[f32], row_len: usize) -> Option<usize> {
    values
        .iter()
        .position(|v| !v.is_finite())
        .map(|i| i / row_len.max(1))
}

/// Fails with `Error::NonFinite` naming `what`, the first bad row and `step`
/// (for example "epoch 3").
pub fn check_finite(what: &str, values: &[f32], row_len: usize, step: &str) -> Result<(), Error> {
    match first_non_finite_row(values, row_len) {
        None => Ok(()),
        Some(row) => Err(Error::NonFinite {
            what: what.to_string(),
            row: row as u64,
            step: step.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_row_of_the_first_bad_value() {
        let values = [0.0, 1.0, 2.0, 3.0, f32::NAN, 5.0, f32::INFINITY, 0.0];
        assert_eq!(first_non_finite_row(&values, 2), Some(2));
        assert_eq!(first_non_finite_row(&values[..4], 2), None);
    }

    #[test]
    fn error_names_tensor_row_and_epoch() {
        let message = check_finite("video_embedding", &[1.0, f32::NEG_INFINITY], 1, "epoch 4")
            .unwrap_err()
            .to_string();
        assert!(message.contains("video_embedding"), "{message}");
        assert!(message.contains("row 1"), "{message}");
        assert!(message.contains("epoch 4"), "{message}");
    }
}
