//! Reading typed fields out of a run's JSON input, with errors that name the field.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// An optional string field.
pub fn opt_str<'a>(input: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(Error::invalid(format!("input.{field}"), "must be a string")),
    }
}

/// An optional number field within a range.
pub fn opt_number(input: &Map<String, Value>, field: &str, min: f64, max: f64) -> Result<Option<f64>> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => match number.as_f64() {
            Some(value) if (min..=max).contains(&value) => Ok(Some(value)),
            _ => Err(Error::invalid(format!("input.{field}"), format!("must be a number from {min} to {max}"))),
        },
        Some(_) => Err(Error::invalid(format!("input.{field}"), format!("must be a number from {min} to {max}"))),
    }
}

/// An optional whole-number field within a range.
pub fn opt_count(input: &Map<String, Value>, field: &str, max: u64) -> Result<Option<u64>> {
    match opt_number(input, field, 0.0, max as f64)? {
        Some(value) if value.fract() == 0.0 => Ok(Some(value as u64)),
        Some(_) => Err(Error::invalid(format!("input.{field}"), format!("must be a whole number from 0 to {max}"))),
        None => Ok(None),
    }
}

/// An optional list of strings.
pub fn opt_strings(input: &Map<String, Value>, field: &str) -> Result<Option<Vec<String>>> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("input.{field}"), "must be a list of strings")),
        Some(_) => Err(Error::invalid(format!("input.{field}"), "must be a list of strings")),
    }
}

/// An optional boolean.
pub fn opt_bool(input: &Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(_) => Err(Error::invalid(format!("input.{field}"), "must be true or false")),
    }
}

/// Refuses fields the kind does not know, so a typo is not silently ignored.
pub fn only_fields(input: &Map<String, Value>, known: &[&str]) -> Result<()> {
    match input.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => Err(Error::invalid(
            format!("input.{unknown}"),
            format!("is not a field of this kind; known fields: {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}
