//! Conversions between protobuf messages and domain types. Decoding validates (and names the
//! field it rejects); encoding cannot fail.

use std::time::Duration;

use prost_types::value::Kind;
use serde_json::{Map, Number, Value};

use crate::{
    domain::{
        Decision, DecisionOutcome, ErrorCode, EventKind, Lease, LogLine, LogStream, NewLogLine, Run, RunError, RunEvent,
        RunId, RunState, Timestamp, Worker, WorkerId, WorkerState, WorkspaceId,
    },
    error::{Error, Result},
    proto,
    store::JournalEntry,
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

pub fn value_to_json(value: prost_types::Value, field: &str) -> Result<Value> {
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

pub fn run_error(error: &RunError) -> proto::RunError {
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
        history_prune_time: run.history_pruned_at.map(timestamp),
        decisions: run.decisions.iter().map(|(key, value)| (key.clone(), decision(value))).collect(),
    }
}

/// A run as a server sent it (to a remote worker), back in domain form.
pub fn from_run(run: proto::Run) -> Result<Run> {
    let id = RunId::parse("run.id", &run.id)?;
    let time = |value: Option<prost_types::Timestamp>, field: &str| value.map(|value| from_timestamp(value, field)).transpose();
    let required = |value: Option<prost_types::Timestamp>, field: &str| {
        time(value, field)?.ok_or_else(|| Error::invalid(field, "is required"))
    };
    let decisions = run
        .decisions
        .into_iter()
        .map(|(key, value)| Ok((key, from_decision(Some(value))?)))
        .collect::<Result<_>>()?;
    let lease = match run.lease {
        Some(lease) => Some(Lease {
            run_id: id,
            worker_id: WorkerId::new(lease.worker_id),
            epoch: lease.epoch,
            expires_at: required(lease.expire_time, "run.lease.expire_time")?,
        }),
        None => None,
    };
    Ok(Run {
        id,
        workspace: WorkspaceId::new(run.workspace),
        kind: run.kind,
        state: from_state(run.state, "run.state")?.ok_or_else(|| Error::invalid("run.state", "is required"))?,
        input: struct_to_json(run.input, "run.input")?,
        output: run.output.map(|value| value_to_json(value, "run.output")).transpose()?,
        error: run.error.map(from_run_error).transpose()?,
        priority: run.priority,
        max_attempts: run.max_attempts,
        attempt: run.attempt,
        attempt_timeout: run.attempt_timeout.map(|value| from_duration(value, "run.attempt_timeout")).transpose()?.unwrap_or_default(),
        deadline: time(run.deadline, "run.deadline")?,
        concurrency: (!run.concurrency_key.is_empty()).then_some((run.concurrency_key, run.concurrency_limit)),
        labels: run.labels.into_iter().collect(),
        request_id: (!run.request_id.is_empty()).then_some(run.request_id),
        created_at: required(run.create_time, "run.create_time")?,
        started_at: time(run.start_time, "run.start_time")?,
        finished_at: time(run.finish_time, "run.finish_time")?,
        updated_at: required(run.update_time, "run.update_time")?,
        scheduled_at: required(run.scheduled_time, "run.scheduled_time")?,
        waiting: None,
        decisions,
        lease,
        cancel_requested: run.cancel_requested,
        last_event_sequence: run.last_event_sequence,
        last_log_sequence: run.last_log_sequence,
        history_pruned_at: time(run.history_prune_time, "run.history_prune_time")?,
    })
}

/// A run error as a worker reports it; the class defaults to `FAILED`.
pub fn from_run_error(error: proto::RunError) -> Result<RunError> {
    let code = match proto::ErrorCode::try_from(error.code) {
        Ok(proto::ErrorCode::Unspecified | proto::ErrorCode::Failed) => ErrorCode::Failed,
        Ok(proto::ErrorCode::Timeout) => ErrorCode::Timeout,
        Ok(proto::ErrorCode::DeadlineExceeded) => ErrorCode::DeadlineExceeded,
        Ok(proto::ErrorCode::LeaseExpired) => ErrorCode::LeaseExpired,
        Ok(proto::ErrorCode::ForceFailed) => ErrorCode::ForceFailed,
        Ok(proto::ErrorCode::Cancelled) => ErrorCode::Cancelled,
        Ok(proto::ErrorCode::InvalidInput) => ErrorCode::InvalidInput,
        Ok(proto::ErrorCode::Unsupported) => ErrorCode::Unsupported,
        Ok(proto::ErrorCode::Internal) => ErrorCode::Internal,
        Err(_) => return Err(Error::invalid("error.code", format!("{} is not an ErrorCode", error.code))),
    };
    if error.message.is_empty() {
        return Err(Error::invalid("error.message", "is required: say what went wrong"));
    }
    Ok(RunError::new(code, error.message, error.retryable, error.attempt))
}

/// A worker for the wire.
pub fn worker(worker: &Worker) -> proto::Worker {
    let state = match worker.state() {
        WorkerState::Active => proto::WorkerState::Active,
        WorkerState::Draining => proto::WorkerState::Draining,
        WorkerState::Stale => proto::WorkerState::Stale,
        WorkerState::Stopped => proto::WorkerState::Stopped,
    };
    proto::Worker {
        id: worker.id().to_string(),
        name: worker.spec.name.clone(),
        kinds: worker.spec.kinds.clone(),
        providers: worker.spec.providers.clone(),
        labels: worker.spec.labels.clone().into_iter().collect(),
        capacity: worker.spec.capacity,
        embedded: worker.spec.embedded,
        state: state.into(),
        running: worker.running,
        register_time: Some(timestamp(worker.registered_at)),
        last_heartbeat_time: Some(timestamp(worker.last_heartbeat_at)),
        stale_time: worker.stale_since.map(timestamp),
        stop_time: worker.stopped_at.map(timestamp),
    }
}

/// A journal entry for the wire.
pub fn journal_entry(entry: &JournalEntry) -> proto::JournalEntry {
    proto::JournalEntry {
        key: entry.key.clone(),
        output: Some(json_to_value(&entry.output)),
        attempt: entry.attempt,
        finish_time: Some(timestamp(entry.finished_at)),
        duration: Some(duration(entry.duration)),
    }
}

/// A journal entry as a server sent it.
pub fn from_journal_entry(entry: proto::JournalEntry) -> Result<JournalEntry> {
    Ok(JournalEntry {
        output: entry.output.map(|value| value_to_json(value, "journal.output")).transpose()?.unwrap_or(Value::Null),
        attempt: entry.attempt,
        finished_at: entry.finish_time.map(|value| from_timestamp(value, "journal.finish_time")).transpose()?.unwrap_or_else(Timestamp::now),
        duration: entry.duration.map(|value| from_duration(value, "journal.duration")).transpose()?.unwrap_or_default(),
        key: entry.key,
    })
}

/// A log line a worker sends; its run, sequence and attempt are the server's to assign.
pub fn from_log_line(line: proto::LogLine, field: &str) -> Result<NewLogLine> {
    let stream = match proto::LogStream::try_from(line.stream) {
        Ok(proto::LogStream::Unspecified | proto::LogStream::Stdout) => LogStream::Stdout,
        Ok(proto::LogStream::Stderr) => LogStream::Stderr,
        Ok(proto::LogStream::System) => LogStream::System,
        Err(_) => return Err(Error::invalid(format!("{field}.stream"), format!("{} is not a LogStream", line.stream))),
    };
    let time = match line.time {
        Some(time) => from_timestamp(time, &format!("{field}.time"))?,
        None => Timestamp::now(),
    };
    Ok(NewLogLine { time, stream, text: line.text })
}

/// A log line to send, before the server numbers it.
pub fn new_log_line(line: &NewLogLine) -> proto::LogLine {
    proto::LogLine {
        time: Some(timestamp(line.time)),
        stream: log_stream(line.stream).into(),
        text: line.text.clone(),
        ..proto::LogLine::default()
    }
}

fn log_stream(stream: LogStream) -> proto::LogStream {
    match stream {
        LogStream::Stdout => proto::LogStream::Stdout,
        LogStream::Stderr => proto::LogStream::Stderr,
        LogStream::System => proto::LogStream::System,
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
    proto::LogLine {
        run_id: line.run_id.to_string(),
        sequence: line.sequence,
        time: Some(timestamp(line.time)),
        attempt: line.attempt,
        stream: log_stream(line.stream).into(),
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
