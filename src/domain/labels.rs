//! Labels: the key/value pairs runs, workers and artifacts carry to be found by.

use std::collections::BTreeMap;

use crate::error::FieldViolation;

/// The most labels one resource carries.
pub const MAX_LABELS: usize = 64;
/// The longest label value, in bytes.
pub const MAX_LABEL_VALUE_BYTES: usize = 255;

/// Label keys are 1–63 characters of `[a-z0-9_.-]`; values are at most 255 bytes without
/// control characters; at most [`MAX_LABELS`] labels. Each problem is added to `violations`
/// under `field[key]`.
pub fn validate_labels(labels: &BTreeMap<String, String>, field: &str, violations: &mut Vec<FieldViolation>) {
    let mut violation = |field: String, description: String| violations.push(FieldViolation { field, description });
    if labels.len() > MAX_LABELS {
        violation(field.to_owned(), format!("has {} labels; at most {MAX_LABELS} are allowed", labels.len()));
    }
    for (key, value) in labels {
        let key_ok = (1..=63).contains(&key.len())
            && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
        if !key_ok {
            violation(format!("{field}[{key}]"), "label keys are 1-63 characters of a-z, 0-9, `_`, `.` and `-`".to_owned());
        }
        if value.len() > MAX_LABEL_VALUE_BYTES || value.chars().any(char::is_control) {
            violation(
                format!("{field}[{key}]"),
                format!("label values are at most {MAX_LABEL_VALUE_BYTES} bytes without control characters"),
            );
        }
    }
}
