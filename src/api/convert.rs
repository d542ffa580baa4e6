//! Conversions between protobuf messages and domain types. Decoding validates (and names the
//! field it rejects); encoding cannot fail.

use std::time::Duration;

use prost_types::value::Kind;
use serde_json::{Map, Number, Value};

use crate::{
    domain::{
        Decision, DecisionOutcome, ErrorCode, EventKind, LogLine, LogStream, Run, RunError, RunEvent, RunState,
        Timestamp,
    },
    error::{Error, Result},
    proto,
};

/// A protobuf `Struct` as a JSON object; `field` names it in errors.
pub fn struct_to_json(value: Option<prost_types::Struct>, field: &str) -> Result<Map<String, Value>> {
    let Some(value) = value else { return Ok(Map::new()) };
    value
        .fields
        .into_iter()
        .map(|(key, item)| {
            let path = format!("{field}.{key}");
            value_to_json(item, &path).map(|item| (key, item))
        })
        .collect()
}

fn value_to_json(value: prost_types::Value, field: &str) -> Result<Value> {
    Ok(match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(flag)) => Value::Bool(flag),
        Some(Kind::StringValue(text)) => Value::String(text),
        Some(Kind::NumberValue(number)) => number_to_json(number)
            .ok_or_else(|| Error::invalid(field, "numbers must be finite (no NaN or infinity)"))?,
        Some(Kind::StructValue(object)) => Value::Object(struct_to_json(Some(object), field)?),
        Some(Kind::ListValue(list)) => Value::Array(
            list.values
                .into_iter()
                .enumerate()
                .map(|(index, item)| value_to_json(item, &format!("{field}[{index}]")))
                .collect::<Result<_>>()?,
        ),
    })
}

/// Whole numbers stay integers in JSON (`3`, not `3.0`).
fn number_to_json(number: f64) -> Option<Value> {
    if number.fract() == 0.0 && number.abs() < 9.007_199_254_740_992e15 {
        return Some(Value::Number(Number::from(number as i64)));
    }
    Number::from_f64(number).map(Value::Number)
}

/// A JSON value as a protobuf `Value`.
pub fn json_to_value(value: &Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(flag) => Kind::BoolValue(*flag),
        Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or_default()),
        Value::String(text) => Kind::StringValue(text.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue { values: items.iter().map(json_to_value).collect() }),
        Value::Object(object) => Kind::StructValue(json_to_struct(object)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A JSON object as a protobuf `Struct`.
pub fn json_to_struct(object: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct { fields: object.iter().map(|(key, value)| (key.clone(), json_to_value(value))).collect() }
}

pub fn timestamp(time: Timestamp) -> prost_types::Timestamp {
    let micros = time.as_micros();
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or_default(),
    }
}

pub fn from_timestamp(value: prost_types::Timestamp, field: &str) -> Result<Timestamp> {
    if !(0..1_000_000_000).contains(&value.nanos) {
        return Err(Error::invalid(field, "nanos must be from 0 to 999,999,999"));
    }
    let micros = value
        .seconds
        .checked_mul(1_000_000)
        .and_then(|micros| micros.checked_add(i64::from(value.nanos / 1000)))
        .ok_or_else(|| Error::invalid(field, "is out of range"))?;
    Ok(Timestamp::from_micros(micros))
}

pub fn duration(value: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(value.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(value.subsec_nanos()).unwrap_or_default(),
    }
}

pub fn from_duration(value: prost_types::Duration, field: &str) -> Result<Duration> {
    if value.seconds < 0 || value.nanos < 0 {
        return Err(Error::invalid(field, "must not be negative"));
    }
    if value.nanos >= 1_000_000_000 {
        return Err(Error::invalid(field, "nanos must be from 0 to 999,999,999"));
    }
    Ok(Duration::new(value.seconds.unsigned_abs(), value.nanos.unsigned_abs()))
}

pub fn state(state: RunState) -> proto::RunState {
    match state {
        RunState::Queued => proto::RunState::Queued,
        RunState::Running => proto::RunState::Running,
        RunState::Waiting => proto::RunState::Waiting,
        RunState::Succeeded => proto::RunState::Succeeded,
        RunState::Failed => proto::RunState::Failed,
        RunState::Cancelled => proto::RunState::Cancelled,
    }
}

/// A state filter: unspecified means none.
pub fn from_state(value: i32, field: &str) -> Result<Option<RunState>> {
    match proto::RunState::try_from(value) {
        Ok(proto::RunState::Unspecified) => Ok(None),
        Ok(proto::RunState::Queued) => Ok(Some(RunState::Queued)),
        Ok(proto::RunState::Running) => Ok(Some(RunState::Running)),
        Ok(proto::RunState::Waiting) => Ok(Some(RunState::Waiting)),
        Ok(proto::RunState::Succeeded) => Ok(Some(RunState::Succeeded)),
        Ok(proto::RunState::Failed) => Ok(Some(RunState::Failed)),
        Ok(proto::RunState::Cancelled) => Ok(Some(RunState::Cancelled)),
        Err(_) => Err(Error::invalid(field, format!("{value} is not a RunState"))),
    }
}

fn error_code(code: ErrorCode) -> proto::ErrorCode {
    match code {
        ErrorCode::Failed => proto::ErrorCode::Failed,
        ErrorCode::Timeout => proto::ErrorCode::Timeout,
        ErrorCode::DeadlineExceeded => proto::ErrorCode::DeadlineExceeded,
        ErrorCode::LeaseExpired => proto::ErrorCode::LeaseExpired,
        ErrorCode::ForceFailed => proto::ErrorCode::ForceFailed,
        ErrorCode::Cancelled => proto::ErrorCode::Cancelled,
        ErrorCode::InvalidInput => proto::ErrorCode::InvalidInput,
        ErrorCode::Unsupported => proto::ErrorCode::Unsupported,
        ErrorCode::Internal => proto::ErrorCode::Internal,
    }
}

fn run_error(error: &RunError) -> proto::RunError {
    proto::RunError {
        code: error_code(error.code).into(),
        message: error.message.clone(),
        retryable: error.retryable,
        attempt: error.attempt,
    }
}

pub fn run(run: &Run) -> proto::Run {
    proto::Run {
        id: run.id.to_string(),
        workspace: run.workspace.to_string(),
        kind: run.kind.clone(),
        state: state(run.state).into(),
        input: Some(json_to_struct(&run.input)),
        output: run.output.as_ref().map(json_to_value),
        error: run.error.as_ref().map(run_error),
        priority: run.priority,
        max_attempts: run.max_attempts,
        attempt: run.attempt,
        attempt_timeout: Some(duration(run.attempt_timeout)),
        deadline: run.deadline.map(timestamp),
        concurrency_key: run.concurrency.as_ref().map(|(key, _)| key.clone()).unwrap_or_default(),
        concurrency_limit: run.concurrency.as_ref().map_or(0, |(_, limit)| *limit),
        labels: run.labels.clone().into_iter().collect(),
        request_id: run.request_id.clone().unwrap_or_default(),
        create_time: Some(timestamp(run.created_at)),
        start_time: run.started_at.map(timestamp),
        finish_time: run.finished_at.map(timestamp),
        update_time: Some(timestamp(run.updated_at)),
        scheduled_time: Some(timestamp(run.scheduled_at)),
        waiting: run.waiting.as_ref().map(|waiting| proto::Waiting {
            key: waiting.key.clone(),
            prompt: waiting.prompt.clone(),
            since: Some(timestamp(waiting.since)),
        }),
        lease: run.lease.as_ref().map(|lease| proto::Lease {
            worker_id: lease.worker_id.to_string(),
            epoch: lease.epoch,
            expire_time: Some(timestamp(lease.expires_at)),
        }),
        cancel_requested: run.cancel_requested,
        last_event_sequence: run.last_event_sequence,
        last_log_sequence: run.last_log_sequence,
    }
}

pub fn decision(decision: &Decision) -> proto::Decision {
    let outcome = match &decision.outcome {
        DecisionOutcome::Approve => proto::decision::Outcome::Approve(true),
        DecisionOutcome::Reject => proto::decision::Outcome::Reject(true),
        DecisionOutcome::Input(input) => proto::decision::Outcome::Input(json_to_struct(input)),
    };
    proto::Decision { outcome: Some(outcome), note: decision.note.clone() }
}

pub fn from_decision(value: Option<proto::Decision>) -> Result<Decision> {
    let missing = || Error::invalid("decision", "is required: set one of approve, reject or input");
    let value = value.ok_or_else(missing)?;
    let outcome = match value.outcome.ok_or_else(missing)? {
        proto::decision::Outcome::Approve(true) => DecisionOutcome::Approve,
        proto::decision::Outcome::Reject(true) => DecisionOutcome::Reject,
        proto::decision::Outcome::Approve(false) | proto::decision::Outcome::Reject(false) => {
            return Err(Error::invalid("decision", "approve and reject must be true when set; to refuse, set reject"));
        }
        proto::decision::Outcome::Input(input) => DecisionOutcome::Input(struct_to_json(Some(input), "decision.input")?),
    };
    Ok(Decision { outcome, note: value.note })
}

pub fn event(event: &RunEvent) -> proto::RunEvent {
    use proto::run_event::Event;
    let payload = match &event.kind {
        EventKind::Created { kind, priority } => Event::Created(proto::RunCreated { kind: kind.clone(), priority: *priority }),
        EventKind::StateChanged { from, to, attempt, reason, worker_id, error } => Event::StateChanged(proto::StateChanged {
            from: state(*from).into(),
            to: state(*to).into(),
            attempt: *attempt,
            reason: reason.clone(),
            worker_id: worker_id.clone().unwrap_or_default(),
            error: error.as_ref().map(run_error),
        }),
        EventKind::StepCompleted { key, attempt, duration_micros } => Event::StepCompleted(proto::StepCompleted {
            key: key.clone(),
            attempt: *attempt,
            duration: Some(duration(Duration::from_micros(u64::try_from(*duration_micros).unwrap_or_default()))),
        }),
        EventKind::DecisionRecorded { key, decision: recorded } => {
            Event::DecisionRecorded(proto::DecisionRecorded { key: key.clone(), decision: Some(decision(recorded)) })
        }
        EventKind::CancelRequested { reason, force } => {
            Event::CancelRequested(proto::CancelRequested { reason: reason.clone(), force: *force })
        }
        EventKind::Workflow { event_type, data } => Event::Workflow(proto::WorkflowEvent {
            r#type: event_type.clone(),
            data: match data {
                Value::Object(object) => Some(json_to_struct(object)),
                other => Some(json_to_struct(&Map::from_iter([("value".to_owned(), other.clone())]))),
            },
        }),
    };
    proto::RunEvent {
        run_id: event.run_id.to_string(),
        sequence: event.sequence,
        time: Some(timestamp(event.time)),
        event: Some(payload),
    }
}

pub fn log_line(line: &LogLine) -> proto::LogLine {
    let stream = match line.stream {
        LogStream::Stdout => proto::LogStream::Stdout,
        LogStream::Stderr => proto::LogStream::Stderr,
        LogStream::System => proto::LogStream::System,
    };
    proto::LogLine {
        run_id: line.run_id.to_string(),
        sequence: line.sequence,
        time: Some(timestamp(line.time)),
        attempt: line.attempt,
        stream: stream.into(),
        text: line.text.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_struct_keeping_integers() {
        let input: Map<String, Value> = serde_json::from_str(r#"{"a": 3, "b": 2.5, "c": [true, null, "x"], "d": {"e": -7}}"#).unwrap();
        let back = struct_to_json(Some(json_to_struct(&input)), "input").unwrap();
        assert_eq!(Value::Object(back), Value::Object(input));
    }

    #[test]
    fn non_finite_numbers_are_refused_with_their_path() {
        let bad = prost_types::Struct {
            fields: [("x".to_owned(), prost_types::Value { kind: Some(Kind::NumberValue(f64::NAN)) })].into(),
        };
        let err = struct_to_json(Some(bad), "input").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(v) if v[0].field == "input.x"));
    }

    #[test]
    fn timestamps_round_trip() {
        let now = Timestamp::now();
        assert_eq!(from_timestamp(timestamp(now), "t").unwrap(), now);
    }
}
