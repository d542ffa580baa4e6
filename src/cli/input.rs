//! Reading what people type: JSON given inline or as `@file`, `k=v` labels, enum names, times
//! and durations.

use std::{collections::HashMap, io::Read, time::SystemTime};

use super::{
    CliError,
    output::{Proto, from_json},
};

/// The text of a JSON argument: inline, `@path` for a file, `@-` for stdin.
pub fn json_text(flag: &str, arg: &str) -> Result<String, CliError> {
    match arg.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|err| CliError::usage(format!("{flag}: reading stdin: {err}")))?;
            Ok(text)
        }
        Some(path) => std::fs::read_to_string(path).map_err(|err| CliError::usage(format!("{flag}: cannot read {path}: {err}"))),
        None => Ok(arg.to_owned()),
    }
}

/// A JSON argument, parsed.
pub fn json_value(flag: &str, arg: &str) -> Result<serde_json::Value, CliError> {
    let text = json_text(flag, arg)?;
    serde_json::from_str(&text).map_err(|err| CliError::usage(format!("{flag}: not valid JSON: {err}")))
}

/// A JSON object argument as a protobuf `Struct`.
pub fn json_struct(flag: &str, arg: &str) -> Result<prost_types::Struct, CliError> {
    match json_value(flag, arg)? {
        serde_json::Value::Object(map) => Ok(to_struct(&map)),
        _ => Err(CliError::usage(format!("{flag}: expected a JSON object"))),
    }
}

/// A request message from a JSON argument (`--request '{...}'` or `--request @file.json`), in the
/// protobuf JSON mapping; without one, the default message.
pub fn request<M: Proto>(arg: Option<&str>) -> Result<M, CliError> {
    match arg {
        None => Ok(M::default()),
        Some(arg) => {
            let text = json_text("--request", arg)?;
            from_json::<M>(&text).map_err(|err| CliError::usage(format!("--request: not a {}: {err}", M::NAME)))
        }
    }
}

fn to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct { fields: map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect() }
}

fn to_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue { values: items.iter().map(to_value).collect() }),
        serde_json::Value::Object(map) => Kind::StructValue(to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A `key=value` label (clap value parser).
pub fn label(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected key=value, got `{arg}`")),
    }
}

/// Labels as a map.
pub fn labels(pairs: &[(String, String)]) -> HashMap<String, String> {
    pairs.iter().cloned().collect()
}

/// A duration such as `30s`, `5m`, `1h30m` (clap value parser).
pub fn duration(arg: &str) -> Result<prost_types::Duration, String> {
    let duration = humantime::parse_duration(arg).map_err(|err| format!("{err} (expected e.g. 30s, 5m, 1h30m)"))?;
    prost_types::Duration::try_from(duration).map_err(|err| err.to_string())
}

/// A point in time: RFC 3339 (`2026-12-01T08:00:00Z`) or a duration from now (`2h`)
/// (clap value parser).
pub fn time(arg: &str) -> Result<prost_types::Timestamp, String> {
    let time = match humantime::parse_duration(arg) {
        Ok(from_now) => SystemTime::now() + from_now,
        Err(_) => humantime::parse_rfc3339_weak(arg)
            .map_err(|_| format!("`{arg}`: expected an RFC 3339 time (2026-12-01T08:00:00Z) or a duration from now (2h)"))?,
    };
    Ok(prost_types::Timestamp::from(time))
}

/// An enum value from a short name (`succeeded`), its full name (`RUN_STATE_SUCCEEDED`), or its
/// number; the error lists the accepted names.
pub fn enum_value<E: Copy>(
    arg: &str,
    prefix: &str,
    from_name: fn(&str) -> Option<E>,
    all: &[E],
    name_of: fn(E) -> &'static str,
) -> Result<E, String> {
    let upper = arg.trim().to_ascii_uppercase().replace('-', "_");
    let found = from_name(&upper).or_else(|| from_name(&format!("{prefix}{upper}")));
    found.ok_or_else(|| {
        let names: Vec<String> = all
            .iter()
            .map(|value| name_of(*value).strip_prefix(prefix).unwrap_or(name_of(*value)).to_ascii_lowercase())
            .filter(|name| name != "unspecified")
            .collect();
        format!("`{arg}` is not one of: {}", names.join(", "))
    })
}

macro_rules! enum_parser {
    ($fn_name:ident, $ty:ident, $prefix:literal, [$($variant:ident),* $(,)?]) => {
        #[doc = concat!("A `", stringify!($ty), "` from its short or full name (clap value parser).")]
        pub fn $fn_name(arg: &str) -> Result<crate::proto::$ty, String> {
            use crate::proto::$ty;
            enum_value(arg, $prefix, $ty::from_str_name, &[$($ty::$variant),*], |value: $ty| value.as_str_name())
        }
    };
}

enum_parser!(run_state, RunState, "RUN_STATE_", [Queued, Running, Waiting, Succeeded, Failed, Cancelled]);
enum_parser!(task_status, TaskStatus, "TASK_STATUS_", [Queued, Running, WaitingManual, Passed, FailedGate, FailedSystem, Canceled]);
enum_parser!(task_mode, TaskMode, "TASK_MODE_", [Manual, Autonomous]);
enum_parser!(evolution_level, EvolutionLevel, "EVOLUTION_LEVEL_", [FixOnly, Guided, Proactive]);
enum_parser!(
    debate_outcome,
    DebateOutcome,
    "DEBATE_OUTCOME_",
    [Approved, ConditionallyApproved, Rejected, Vetoed, QuorumNotReached]
);
enum_parser!(mission_outcome, MissionOutcome, "MISSION_OUTCOME_", [Completed, Rejected, Failed]);
enum_parser!(artifact_kind, ArtifactKind, "ARTIFACT_KIND_", [File, Document, Patch, Report, ToolOutput, ModelOutput, Url]);
