//! Conversions between protobuf messages and domain types. Decoding validates (and names the
//! field it rejects); encoding cannot fail.

pub mod stages;

use std::time::Duration;

use prost_types::value::Kind;
use serde_json::{Map, Number, Value};

use crate::{
    artifacts::{ArtifactRef, Lineage, ListArtifactsRequest, UploadHeader},
    domain::{
        Artifact, ArtifactKind, ArtifactRecord, Decision, DecisionOutcome, ErrorCode, EventKind, Lease, LogLine, LogStream, Memory, NewLogLine, Reliability, Replay,
        ReplayMode, Run,
        Producer, RunError, RunEvent, RunId, RunState, Timestamp, Worker, WorkerId, WorkerState, WorkspaceId,
    },
    error::{Error, Result},
    workflows::{
        debate::{
            aggregate::Outcome,
            spec::{ContextArtifact, DebateSpec, Participant, Protocol, Severity},
            CreateDebateRequest, DebateView, Report,
        },
        mission::{
            spec::{AgentRole, Gate, Limits, MissionSpec},
            CreateMissionRequest, MissionOutcome, MissionReport, MissionView, StepReport,
        },
        task::{self, CreateLoopRequest, CreateTaskRequest, LoopView, Progress, TaskStats, TaskView},
    },
    models::{
        chain_entry_problem, determinism, AppliedParams, CircuitState, Completion, FailedCall, FailureClass, Message, ModelRequest, Origin,
        ProviderStatus, Role, Routed, RouterStats, Sampling, Usage,
    },
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
        ErrorCode::ModelFailed => proto::ErrorCode::ModelFailed,
        ErrorCode::ReplayDiverged => proto::ErrorCode::ReplayDiverged,
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
        replay_of: run.replay.map(|replay| replay.of.to_string()).unwrap_or_default(),
        replay_mode: match run.replay.map(|replay| replay.mode) {
            None => proto::ReplayMode::Unspecified,
            Some(ReplayMode::Exact) => proto::ReplayMode::Exact,
            Some(ReplayMode::FromStep) => proto::ReplayMode::FromStep,
        } as i32,
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
        replay: match (run.replay_of.as_str(), proto::ReplayMode::try_from(run.replay_mode)) {
            ("", _) | (_, Ok(proto::ReplayMode::Unspecified)) => None,
            (of, Ok(mode)) => Some(Replay {
                of: RunId::parse("run.replay_of", of)?,
                mode: if mode == proto::ReplayMode::Exact { ReplayMode::Exact } else { ReplayMode::FromStep },
            }),
            (_, Err(_)) => return Err(Error::invalid("run.replay_mode", format!("{} is not a ReplayMode", run.replay_mode))),
        },
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
        Ok(proto::ErrorCode::ModelFailed) => ErrorCode::ModelFailed,
        Ok(proto::ErrorCode::ReplayDiverged) => ErrorCode::ReplayDiverged,
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

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/// The longest timeout a `ModelService` call may ask for.
const MAX_MODEL_TIMEOUT: Duration = Duration::from_secs(3600);

/// A `GenerateRequest` as the router takes it: the request, and the one provider it names.
pub fn model_request(request: proto::GenerateRequest) -> Result<(ModelRequest, Option<String>)> {
    let mut violations = Vec::new();
    let mut bad = |field: &str, description: &str| violations.push(crate::error::FieldViolation { field: field.to_owned(), description: description.to_owned() });
    if request.messages.is_empty() {
        bad("messages", "is required: give at least one message");
    }
    if request.messages.iter().all(|message| message.content.trim().is_empty()) && !request.messages.is_empty() {
        bad("messages", "every message is empty; say something");
    }
    if let Some(temperature) = request.temperature
        && !(temperature.is_finite() && (0.0..=2.0).contains(&temperature))
    {
        bad("temperature", "must be from 0 to 2");
    }
    if let Some(top_p) = request.top_p
        && !(top_p.is_finite() && top_p > 0.0 && top_p <= 1.0)
    {
        bad("top_p", "must be above 0 and at most 1");
    }
    if request.max_tokens == Some(0) {
        bad("max_tokens", "must be at least 1, or unset for the provider's default");
    }
    if !request.model.is_empty() && request.provider.is_empty() {
        bad("model", "is only meaningful with `provider`: a chain's providers use their configured models");
    }
    if !request.chain.is_empty() && !request.provider.is_empty() {
        bad("chain", "cannot be combined with `provider`: give one provider, or a chain to try in order");
    }
    if let Some(problem) = request.chain.iter().find_map(|entry| chain_entry_problem(entry)) {
        bad("chain", &problem);
    }
    let timeout = match request.timeout.map(|timeout| from_duration(timeout, "timeout")).transpose() {
        Ok(Some(timeout)) if timeout.is_zero() || timeout > MAX_MODEL_TIMEOUT => {
            bad("timeout", "must be above 0 and at most 1 hour");
            Duration::ZERO
        }
        Ok(timeout) => timeout.unwrap_or(Duration::from_secs(120)),
        Err(Error::InvalidArgument(found)) => {
            violations.extend(found);
            Duration::ZERO
        }
        Err(other) => return Err(other),
    };
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    let messages = request
        .messages
        .into_iter()
        .map(|message| Message {
            role: match proto::ChatRole::try_from(message.role) {
                Ok(proto::ChatRole::System) => Role::System,
                Ok(proto::ChatRole::Assistant) => Role::Assistant,
                _ => Role::User,
            },
            content: message.content,
        })
        .collect();
    let model_request = ModelRequest {
        model: (!request.model.is_empty()).then_some(request.model),
        system: (!request.system.is_empty()).then_some(request.system),
        messages,
        sampling: Sampling { temperature: request.temperature, top_p: request.top_p, seed: request.seed, max_tokens: request.max_tokens },
        stop: request.stop,
        timeout,
        workdir: None,
        origin: Origin { role: (!request.role.is_empty()).then_some(request.role), chain: request.chain, ..Origin::default() },
    };
    Ok((model_request, (!request.provider.is_empty()).then_some(request.provider)))
}

/// A routed answer on the wire.
pub fn generate_response(request: &ModelRequest, routed: Routed) -> proto::GenerateResponse {
    let completion = routed.completion;
    proto::GenerateResponse {
        text: completion.text,
        provider: routed.provider,
        link: u32::try_from(routed.link).unwrap_or(u32::MAX),
        chain: routed.chain,
        model: completion.model,
        params: Some(proto::AppliedParams {
            model: completion.applied.model,
            temperature: completion.applied.temperature,
            top_p: completion.applied.top_p,
            seed: completion.applied.seed,
            max_tokens: completion.applied.max_tokens,
            stream: completion.applied.stream,
        }),
        fingerprint: completion.fingerprint.unwrap_or_default(),
        usage: Some(proto::TokenUsage { input_tokens: completion.usage.input_tokens, output_tokens: completion.usage.output_tokens }),
        latency: Some(duration(routed.latency)),
        finish_reason: completion.finish_reason.unwrap_or_default(),
        failed: routed.failed.into_iter().map(failed_call).collect(),
        prompt_hash: determinism::prompt_hash(request),
    }
}

fn failed_call(call: FailedCall) -> proto::FailedCall {
    proto::FailedCall {
        provider: call.provider,
        failure_class: call.class.as_str().to_owned(),
        message: call.message,
        latency: Some(duration(Duration::from_secs_f64(call.latency_ms.max(0.0) / 1e3))),
    }
}

/// A routed answer from the wire (a remote worker's call through `ModelService`).
pub fn from_generate_response(response: proto::GenerateResponse) -> Routed {
    let params = response.params.unwrap_or_default();
    let usage = response.usage.unwrap_or_default();
    let latency = |value: Option<prost_types::Duration>| value.and_then(|value| from_duration(value, "latency").ok()).unwrap_or_default();
    Routed {
        completion: Completion {
            text: response.text,
            model: response.model,
            fingerprint: (!response.fingerprint.is_empty()).then_some(response.fingerprint),
            usage: Usage { input_tokens: usage.input_tokens, output_tokens: usage.output_tokens },
            finish_reason: (!response.finish_reason.is_empty()).then_some(response.finish_reason),
            applied: AppliedParams {
                model: params.model,
                temperature: params.temperature,
                top_p: params.top_p,
                seed: params.seed,
                max_tokens: params.max_tokens,
                stream: params.stream,
            },
        },
        provider: response.provider,
        link: response.link as usize,
        chain: response.chain,
        latency: latency(response.latency),
        failed: response
            .failed
            .into_iter()
            .map(|call| FailedCall {
                provider: call.provider,
                class: FailureClass::parse(&call.failure_class).unwrap_or(FailureClass::ServerError),
                message: call.message,
                latency_ms: latency(call.latency).as_secs_f64() * 1e3,
            })
            .collect(),
    }
}

/// A request to the router on the wire (a remote worker's call through `ModelService`).
pub fn generate_request(request: &ModelRequest) -> proto::GenerateRequest {
    proto::GenerateRequest {
        role: request.origin.role.clone().unwrap_or_default(),
        provider: String::new(),
        model: String::new(),
        system: request.system.clone().unwrap_or_default(),
        messages: request
            .messages
            .iter()
            .map(|message| proto::ChatMessage {
                role: match message.role {
                    Role::System => proto::ChatRole::System,
                    Role::User => proto::ChatRole::User,
                    Role::Assistant => proto::ChatRole::Assistant,
                } as i32,
                content: message.content.clone(),
            })
            .collect(),
        temperature: request.sampling.temperature,
        top_p: request.sampling.top_p,
        seed: request.sampling.seed,
        max_tokens: request.sampling.max_tokens,
        stop: request.stop.clone(),
        timeout: Some(duration(request.timeout)),
        chain: request.origin.chain.clone(),
    }
}

/// A provider as `ListProviders` shows it.
pub fn provider_info(status: ProviderStatus) -> proto::ProviderInfo {
    proto::ProviderInfo {
        name: status.name,
        r#type: status.kind.as_str().to_owned(),
        model: status.model,
        circuit_state: match status.state {
            CircuitState::Closed => proto::CircuitState::Closed,
            CircuitState::Open => proto::CircuitState::Open,
            CircuitState::HalfOpen => proto::CircuitState::HalfOpen,
        } as i32,
        cooldown_remaining: Some(duration(status.cooldown_left)),
        recent_failures: status.failures,
        last_failure_class: status.last_failure.map(|class| class.as_str().to_owned()).unwrap_or_default(),
    }
}

/// The router's figures on the wire.
pub fn router_stats(stats: RouterStats) -> proto::RouterStats {
    proto::RouterStats {
        requests: stats.requests,
        fallbacks: stats.fallbacks,
        failed: stats.failed,
        waited: stats.waited,
        providers: stats
            .providers
            .into_iter()
            .map(|(provider, figures)| proto::ProviderStats {
                provider,
                calls: figures.calls,
                successes: figures.successes,
                failures: figures.failures.into_iter().map(|(class, count)| (class.as_str().to_owned(), count)).collect(),
                fallbacks: figures.fallbacks,
                p50_latency: Some(duration(figures.p50)),
                p99_latency: Some(duration(figures.p99)),
            })
            .collect(),
    }
}


/// An artifact kind.
pub fn artifact_kind(kind: ArtifactKind) -> proto::ArtifactKind {
    match kind {
        ArtifactKind::File => proto::ArtifactKind::File,
        ArtifactKind::Document => proto::ArtifactKind::Document,
        ArtifactKind::Patch => proto::ArtifactKind::Patch,
        ArtifactKind::Report => proto::ArtifactKind::Report,
        ArtifactKind::ToolOutput => proto::ArtifactKind::ToolOutput,
        ArtifactKind::ModelOutput => proto::ArtifactKind::ModelOutput,
        ArtifactKind::Url => proto::ArtifactKind::Url,
    }
}

/// An artifact kind given in a request; unspecified is `None`.
pub fn from_artifact_kind(value: i32, field: &str) -> Result<Option<ArtifactKind>> {
    match proto::ArtifactKind::try_from(value) {
        Ok(proto::ArtifactKind::Unspecified) => Ok(None),
        Ok(proto::ArtifactKind::File) => Ok(Some(ArtifactKind::File)),
        Ok(proto::ArtifactKind::Document) => Ok(Some(ArtifactKind::Document)),
        Ok(proto::ArtifactKind::Patch) => Ok(Some(ArtifactKind::Patch)),
        Ok(proto::ArtifactKind::Report) => Ok(Some(ArtifactKind::Report)),
        Ok(proto::ArtifactKind::ToolOutput) => Ok(Some(ArtifactKind::ToolOutput)),
        Ok(proto::ArtifactKind::ModelOutput) => Ok(Some(ArtifactKind::ModelOutput)),
        Ok(proto::ArtifactKind::Url) => Ok(Some(ArtifactKind::Url)),
        Err(_) => Err(Error::invalid(field, format!("{value} is not an ArtifactKind"))),
    }
}

/// One version of an artifact.
pub fn artifact(artifact: &Artifact) -> proto::Artifact {
    proto::Artifact {
        id: artifact.id.to_string(),
        workspace: artifact.workspace.to_string(),
        run_id: artifact.run_id.to_string(),
        name: artifact.name.to_string(),
        version: artifact.version,
        etag: artifact.etag(),
        kind: artifact_kind(artifact.kind).into(),
        media_type: artifact.media_type.clone(),
        size: artifact.size,
        sha256: artifact.digest.to_string(),
        labels: artifact.labels.clone().into_iter().collect(),
        producer: Some(proto::ArtifactProducer {
            step: artifact.producer.step.clone().unwrap_or_default(),
            tool: artifact.producer.tool.clone().unwrap_or_default(),
            tool_version: artifact.producer.tool_version.clone().unwrap_or_default(),
            schema: artifact.producer.schema.clone().unwrap_or_default(),
        }),
        created_at: Some(timestamp(artifact.created_at)),
    }
}

/// An upload's header, as received (the artifact service validates it).
pub fn upload_header(header: proto::UploadHeader) -> Result<UploadHeader> {
    let producer = header.producer.unwrap_or_default();
    let optional = |text: String| (!text.is_empty()).then_some(text);
    Ok(UploadHeader {
        kind: from_artifact_kind(header.kind, "header.kind")?.unwrap_or_default(),
        run_id: header.run_id,
        name: header.name,
        media_type: header.media_type,
        labels: header.labels.into_iter().collect(),
        producer: Producer {
            step: optional(producer.step),
            tool: optional(producer.tool),
            tool_version: optional(producer.tool_version),
            schema: optional(producer.schema),
        },
        expected_etag: header.expected_etag,
        if_absent: header.if_absent,
        size: header.size,
        sha256: header.sha256,
        lease_epoch: header.lease_epoch,
    })
}

/// A reference to a version, as received; a missing one names nothing.
pub fn artifact_ref(reference: Option<proto::ArtifactRef>) -> ArtifactRef {
    let reference = reference.unwrap_or_default();
    ArtifactRef { id: reference.id, run_id: reference.run_id, name: reference.name, version: reference.version }
}

/// A listing request, as received.
pub fn list_artifacts_request(request: proto::ListArtifactsRequest) -> Result<ListArtifactsRequest> {
    Ok(ListArtifactsRequest {
        kind: from_artifact_kind(request.kind, "kind")?,
        workspace: request.workspace,
        run_id: request.run_id,
        name_prefix: request.name_prefix,
        labels: request.labels.into_iter().collect(),
        all_versions: request.all_versions,
        page_size: request.page_size,
        page_token: request.page_token,
    })
}

/// An artifact's lineage.
pub fn lineage(lineage: &Lineage) -> proto::ArtifactLineage {
    proto::ArtifactLineage {
        artifact: Some(artifact(&lineage.artifact)),
        upstream: lineage.upstream.iter().map(artifact).collect(),
        downstream: lineage.downstream.iter().map(artifact).collect(),
        uses: lineage
            .uses
            .iter()
            .map(|used| proto::ArtifactUse {
                artifact_id: used.artifact_id.to_string(),
                run_id: used.run_id.to_string(),
                step: used.step.clone(),
                used_at: Some(timestamp(used.used_at)),
            })
            .collect(),
        truncated: lineage.truncated,
    }
}

/// An upload header to send (a remote worker's `ctx.put_artifact`).
pub fn upload_header_message(header: &UploadHeader) -> proto::UploadHeader {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    proto::UploadHeader {
        run_id: header.run_id.clone(),
        name: header.name.clone(),
        kind: artifact_kind(header.kind).into(),
        media_type: header.media_type.clone(),
        labels: header.labels.clone().into_iter().collect(),
        producer: Some(proto::ArtifactProducer {
            step: text(&header.producer.step),
            tool: text(&header.producer.tool),
            tool_version: text(&header.producer.tool_version),
            schema: text(&header.producer.schema),
        }),
        expected_etag: header.expected_etag.clone(),
        if_absent: header.if_absent,
        size: header.size,
        sha256: header.sha256.clone(),
        lease_epoch: header.lease_epoch,
    }
}

/// A reference to send.
pub fn artifact_ref_message(reference: &ArtifactRef) -> proto::ArtifactRef {
    proto::ArtifactRef {
        id: reference.id.clone(),
        run_id: reference.run_id.clone(),
        name: reference.name.clone(),
        version: reference.version,
    }
}

/// What a journaled step records of an artifact a server answered with.
pub fn artifact_record(artifact: &proto::Artifact) -> ArtifactRecord {
    ArtifactRecord {
        id: artifact.id.clone(),
        run_id: artifact.run_id.clone(),
        name: artifact.name.clone(),
        version: artifact.version,
        sha256: artifact.sha256.clone(),
        size: artifact.size,
        media_type: artifact.media_type.clone(),
    }
}

/// A risk severity.
pub fn severity(severity: Severity) -> proto::RiskSeverity {
    match severity {
        Severity::Low => proto::RiskSeverity::Low,
        Severity::Medium => proto::RiskSeverity::Medium,
        Severity::High => proto::RiskSeverity::High,
        Severity::Critical => proto::RiskSeverity::Critical,
    }
}

fn from_severity(value: i32, field: &str) -> Result<Severity> {
    match proto::RiskSeverity::try_from(value) {
        Ok(proto::RiskSeverity::Low) => Ok(Severity::Low),
        Ok(proto::RiskSeverity::Medium) => Ok(Severity::Medium),
        Ok(proto::RiskSeverity::High) => Ok(Severity::High),
        Ok(proto::RiskSeverity::Critical) => Ok(Severity::Critical),
        _ => Err(Error::invalid(field, format!("{value} is not a RiskSeverity (low, medium, high or critical)"))),
    }
}

/// A debate outcome.
pub fn outcome(outcome: Outcome) -> proto::DebateOutcome {
    match outcome {
        Outcome::Approved => proto::DebateOutcome::Approved,
        Outcome::ConditionallyApproved => proto::DebateOutcome::ConditionallyApproved,
        Outcome::Rejected => proto::DebateOutcome::Rejected,
        Outcome::Vetoed => proto::DebateOutcome::Vetoed,
        Outcome::QuorumNotReached => proto::DebateOutcome::QuorumNotReached,
    }
}

/// An outcome filter: unspecified means none.
pub fn from_outcome(value: i32, field: &str) -> Result<Option<Outcome>> {
    match proto::DebateOutcome::try_from(value) {
        Ok(proto::DebateOutcome::Unspecified) => Ok(None),
        Ok(proto::DebateOutcome::Approved) => Ok(Some(Outcome::Approved)),
        Ok(proto::DebateOutcome::ConditionallyApproved) => Ok(Some(Outcome::ConditionallyApproved)),
        Ok(proto::DebateOutcome::Rejected) => Ok(Some(Outcome::Rejected)),
        Ok(proto::DebateOutcome::Vetoed) => Ok(Some(Outcome::Vetoed)),
        Ok(proto::DebateOutcome::QuorumNotReached) => Ok(Some(Outcome::QuorumNotReached)),
        Err(_) => Err(Error::invalid(field, format!("{value} is not a DebateOutcome"))),
    }
}

/// A debate request, decoded (the spec is validated when the debate is created).
pub fn create_debate_request(request: proto::CreateDebateRequest) -> Result<CreateDebateRequest> {
    let spec = DebateSpec {
        proposal: request.proposal,
        context: request.context,
        context_artifacts: request
            .context_artifacts
            .into_iter()
            .map(|artifact| ContextArtifact { run_id: artifact.run_id, name: artifact.name, version: artifact.version })
            .collect(),
        participants: participants(request.participants),
        protocol: debate_protocol(request.protocol, Protocol::default(), "protocol")?,
    };
    Ok(CreateDebateRequest {
        workspace: request.workspace,
        spec,
        request_id: request.request_id,
        labels: request.labels.into_iter().collect(),
    })
}

fn participants(participants: Vec<proto::DebateParticipant>) -> Vec<Participant> {
    participants
        .into_iter()
        .map(|participant| Participant {
            name: participant.name,
            role: participant.role,
            weight: if participant.weight == 0.0 { 1.0 } else { participant.weight },
            veto: participant.veto,
            chain: participant.chain,
        })
        .collect()
}

/// A debate protocol: unset fields take `defaults`; `field` names it in errors.
fn debate_protocol(protocol: Option<proto::DebateProtocol>, defaults: Protocol, field: &str) -> Result<Protocol> {
    let protocol = protocol.unwrap_or_default();
    let mitigation_severities = if protocol.mitigation_severities.is_empty() {
        defaults.mitigation_severities.clone()
    } else {
        protocol
            .mitigation_severities
            .iter()
            .enumerate()
            .map(|(index, value)| from_severity(*value, &format!("{field}.mitigation_severities[{index}]")))
            .collect::<Result<_>>()?
    };
    Ok(Protocol {
        max_cycles: protocol.max_cycles.unwrap_or(defaults.max_cycles),
        approval_threshold: protocol.approval_threshold.unwrap_or(defaults.approval_threshold),
        conditional_threshold: protocol.conditional_threshold.unwrap_or(defaults.conditional_threshold),
        quorum: protocol.quorum.unwrap_or(defaults.quorum),
        mitigation_severities,
        reliability_weights: protocol.reliability_weights,
    })
}

fn debate_protocol_message(protocol: &Protocol) -> proto::DebateProtocol {
    proto::DebateProtocol {
        max_cycles: Some(protocol.max_cycles),
        approval_threshold: Some(protocol.approval_threshold),
        conditional_threshold: Some(protocol.conditional_threshold),
        quorum: Some(protocol.quorum),
        mitigation_severities: protocol.mitigation_severities.iter().map(|value| severity(*value).into()).collect(),
        reliability_weights: protocol.reliability_weights,
    }
}

/// A debate.
pub fn debate(view: &DebateView) -> proto::Debate {
    let spec = &view.spec;
    proto::Debate {
        id: view.run.id.to_string(),
        run: Some(run(&view.run)),
        proposal: spec.proposal.clone(),
        context: spec.context.clone(),
        participants: spec
            .participants
            .iter()
            .map(|participant| proto::DebateParticipant {
                name: participant.name.clone(),
                role: participant.role.clone(),
                weight: participant.weight,
                veto: participant.veto,
                chain: participant.chain.clone(),
            })
            .collect(),
        protocol: Some(debate_protocol_message(&spec.protocol)),
        result: view.report.as_ref().map(debate_result),
    }
}

fn debate_result(report: &Report) -> proto::DebateResult {
    let decision = &report.decision;
    proto::DebateResult {
        outcome: outcome(decision.outcome).into(),
        score: decision.score,
        participation: decision.participation,
        majority: decision.majority.as_str().to_owned(),
        vetoed_by: decision.vetoed_by.clone().unwrap_or_default(),
        veto_reason: decision.veto_reason.clone().unwrap_or_default(),
        conditions: decision.conditions.clone(),
        proposal: report.proposal.clone(),
        original_proposal: report.original_proposal.clone(),
        risks: report
            .risks
            .iter()
            .map(|risk| proto::DebateRisk {
                id: risk.id.clone(),
                raised_by: risk.raised_by.clone(),
                description: risk.description.clone(),
                severity: severity(risk.severity).into(),
                blocking: risk.blocking,
                cycle: risk.cycle,
                resolution: risk.resolution.clone().unwrap_or_default(),
                status: risk.status.as_str().to_owned(),
            })
            .collect(),
        votes: report
            .votes
            .iter()
            .map(|ballot| {
                let vote = ballot.vote.as_ref();
                proto::DebateVote {
                    participant: ballot.participant.clone(),
                    weight: ballot.weight,
                    veto: ballot.veto,
                    counted: vote.is_some(),
                    approve: vote.is_some_and(|vote| vote.approve),
                    confidence: vote.map_or(0.0, |vote| vote.confidence),
                    rationale: vote.map(|vote| vote.rationale.clone()).unwrap_or_default(),
                    conditions: vote.map(|vote| vote.conditions.clone()).unwrap_or_default(),
                    blocking_risk: vote.and_then(|vote| vote.blocking_risk.clone()).unwrap_or_default(),
                    abstained: ballot.abstained.clone().unwrap_or_default(),
                    reliability: ballot.reliability.unwrap_or_default(),
                }
            })
            .collect(),
        rounds: report
            .rounds
            .iter()
            .map(|round| proto::DebateRound { phase: round.phase.clone(), cycle: round.cycle, agreement: round.agreement })
            .collect(),
        mitigation_cycles: report.mitigation_cycles,
        cycle_bound_reached: report.cycle_bound_reached,
        report_artifact_id: report.report_artifact.clone().unwrap_or_default(),
    }
}

/// A debate's view of a run event: its transcript and state changes; `None` for the rest.
pub fn debate_event(event: &RunEvent) -> Option<proto::DebateEvent> {
    use proto::debate_event::Event;
    let text = |data: &Value, field: &str| data.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
    let cycle = |data: &Value| data.get("cycle").and_then(Value::as_u64).and_then(|cycle| u32::try_from(cycle).ok()).unwrap_or_default();
    let payload = match &event.kind {
        EventKind::StateChanged { to, .. } => Event::State(state(*to).into()),
        EventKind::Workflow { event_type, data } if event_type == "debate.phase" => {
            Event::Phase(proto::DebatePhase { phase: text(data, "phase"), cycle: cycle(data) })
        }
        EventKind::Workflow { event_type, data } if event_type == "debate.message" => Event::Message(debate_message(data)),
        EventKind::Workflow { event_type, data } if event_type == "debate.outcome" => {
            let decided = data.get("outcome").and_then(Value::as_str).and_then(Outcome::parse)?;
            Event::Outcome(outcome(decided).into())
        }
        _ => return None,
    };
    Some(proto::DebateEvent { sequence: event.sequence, time: Some(timestamp(event.time)), event: Some(payload) })
}


/// A debate's transcript message from its event's data.
fn debate_message(data: &Value) -> proto::DebateMessage {
    let text = |field: &str| data.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
    proto::DebateMessage {
        phase: text("phase"),
        cycle: data.get("cycle").and_then(Value::as_u64).and_then(|cycle| u32::try_from(cycle).ok()).unwrap_or_default(),
        participant: text("participant"),
        role: text("role"),
        answer: data.get("answer").and_then(Value::as_object).map(json_to_struct),
        abstained: text("abstained"),
    }
}

/// A mission outcome.
pub fn mission_outcome(outcome: MissionOutcome) -> proto::MissionOutcome {
    match outcome {
        MissionOutcome::Completed => proto::MissionOutcome::Completed,
        MissionOutcome::Rejected => proto::MissionOutcome::Rejected,
        MissionOutcome::Failed => proto::MissionOutcome::Failed,
    }
}

/// A mission outcome filter: unspecified means none.
pub fn from_mission_outcome(value: i32, field: &str) -> Result<Option<MissionOutcome>> {
    match proto::MissionOutcome::try_from(value) {
        Ok(proto::MissionOutcome::Unspecified) => Ok(None),
        Ok(proto::MissionOutcome::Completed) => Ok(Some(MissionOutcome::Completed)),
        Ok(proto::MissionOutcome::Rejected) => Ok(Some(MissionOutcome::Rejected)),
        Ok(proto::MissionOutcome::Failed) => Ok(Some(MissionOutcome::Failed)),
        Err(_) => Err(Error::invalid(field, format!("{value} is not a MissionOutcome"))),
    }
}

/// A mission request, decoded (the spec is validated when the mission is created).
pub fn create_mission_request(request: proto::CreateMissionRequest) -> Result<CreateMissionRequest> {
    let defaults = MissionSpec {
        request: String::new(),
        roles: Vec::new(),
        limits: Limits::default(),
        gate: Gate::default(),
        memory: true,
    };
    let limits = request.limits.unwrap_or_default();
    let gate = request.gate.unwrap_or_default();
    let spec = MissionSpec {
        request: request.request,
        roles: request.roles.into_iter().map(|role| AgentRole { name: role.name, description: role.description, chain: role.chain }).collect(),
        limits: Limits {
            parallelism: limits.parallelism.unwrap_or(defaults.limits.parallelism),
            max_model_calls: limits.max_model_calls.unwrap_or(defaults.limits.max_model_calls),
            max_steps: limits.max_steps.unwrap_or(defaults.limits.max_steps),
            max_revisions: limits.max_revisions.unwrap_or(defaults.limits.max_revisions),
        },
        gate: Gate {
            skip: gate.skip,
            participants: participants(gate.participants),
            protocol: debate_protocol(gate.protocol, defaults.gate.protocol, "gate.protocol")?,
        },
        memory: !request.no_memory,
    };
    Ok(CreateMissionRequest { workspace: request.workspace, spec, request_id: request.request_id, labels: request.labels.into_iter().collect() })
}

/// A mission.
pub fn mission(view: &MissionView) -> proto::Mission {
    proto::Mission {
        id: view.run.id.to_string(),
        run: Some(run(&view.run)),
        request: view.spec.request.clone(),
        roles: view
            .spec
            .roles
            .iter()
            .map(|role| proto::AgentRole { name: role.name.clone(), description: role.description.clone(), chain: role.chain.clone() })
            .collect(),
        result: view.report.as_ref().map(mission_result),
    }
}

fn mission_step(step: &StepReport) -> proto::MissionStep {
    let time = |micros: i64| (micros > 0).then(|| timestamp(Timestamp::from_micros(micros)));
    proto::MissionStep {
        id: step.id.clone(),
        role: step.role.clone(),
        state: step.state.as_str().to_owned(),
        attempts: step.attempts,
        artifact_id: step.artifact.clone().unwrap_or_default(),
        start_time: time(step.started_at_us),
        finish_time: time(step.finished_at_us),
        error: step.error.clone().unwrap_or_default(),
    }
}

fn mission_result(report: &MissionReport) -> proto::MissionResult {
    let plan = report.plan.as_ref();
    proto::MissionResult {
        outcome: mission_outcome(report.outcome).into(),
        summary: report.summary.clone(),
        plan_summary: plan.map(|plan| plan.summary.clone()).unwrap_or_default(),
        plan: plan
            .map(|plan| {
                plan.steps
                    .iter()
                    .map(|step| proto::PlannedStep {
                        id: step.id.clone(),
                        role: step.role.clone(),
                        instructions: step.instructions.clone(),
                        depends_on: step.depends_on.clone(),
                        needs_approval: step.needs_approval,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        gate: report.gate.as_ref().map(|gate| proto::MissionGateResult {
            outcome: outcome(gate.outcome).into(),
            score: gate.score,
            vetoed_by: gate.vetoed_by.clone().unwrap_or_default(),
            veto_reason: gate.veto_reason.clone().unwrap_or_default(),
            conditions: gate.conditions.clone(),
            report_artifact_id: gate.report_artifact.clone(),
        }),
        steps: report.steps.iter().map(mission_step).collect(),
        memories: report.memories.clone(),
        validations: report.validations,
        model_calls: report.model_calls,
    }
}

/// A mission's view of a run event: its progress, its gate's transcript, its state changes;
/// `None` for the rest.
pub fn mission_event(event: &RunEvent) -> Option<proto::MissionEvent> {
    use proto::mission_event::Event;
    let payload = match &event.kind {
        EventKind::StateChanged { to, .. } => Event::State(state(*to).into()),
        EventKind::Workflow { event_type, data } => match event_type.as_str() {
            "mission.phase" => Event::Phase(data.get("phase").and_then(Value::as_str).unwrap_or_default().to_owned()),
            "mission.step" => {
                let id = data.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                let state = data.get("state").and_then(Value::as_str).unwrap_or_default().to_owned();
                Event::Step(proto::MissionStep { id, state, ..proto::MissionStep::default() })
            }
            "mission.outcome" => {
                let ended = data.get("outcome").cloned().and_then(|value| serde_json::from_value::<MissionOutcome>(value).ok())?;
                Event::Outcome(mission_outcome(ended).into())
            }
            "debate.message" => Event::Debate(debate_message(data)),
            _ => return None,
        },
        _ => return None,
    };
    Some(proto::MissionEvent { sequence: event.sequence, time: Some(timestamp(event.time)), event: Some(payload) })
}



/// A request to create a run, on the wire (a remote worker's workflow creating one).
pub fn create_run_message(request: &crate::engine::CreateRunRequest) -> proto::CreateRunRequest {
    proto::CreateRunRequest {
        workspace: request.workspace.clone(),
        kind: request.kind.clone(),
        input: Some(json_to_struct(&request.input)),
        priority: request.priority,
        max_attempts: request.max_attempts,
        attempt_timeout: request.attempt_timeout.map(duration),
        deadline: request.deadline.map(timestamp),
        concurrency_key: request.concurrency_key.clone(),
        concurrency_limit: request.concurrency_limit,
        labels: request.labels.clone().into_iter().collect(),
        request_id: request.request_id.clone(),
    }
}

/// A participant's debate record on the wire.
pub fn participant_record(record: &Reliability) -> proto::ParticipantRecord {
    proto::ParticipantRecord { participant: record.participant.clone(), debates: record.debates, agreed: record.agreed }
}

/// A participant's debate record from the wire.
pub fn from_participant_record(record: proto::ParticipantRecord) -> Reliability {
    Reliability { participant: record.participant, debates: record.debates, agreed: record.agreed }
}

/// A mission memory on the wire (its workspace is the asking run's).
pub fn mission_memory(memory: &Memory) -> proto::MissionMemory {
    proto::MissionMemory {
        run_id: memory.run_id.to_string(),
        request: memory.request.clone(),
        summary: memory.summary.clone(),
        outcome: memory.outcome.clone(),
        created_at: Some(timestamp(memory.created_at)),
    }
}

/// A mission memory from the wire, in `workspace`.
pub fn from_mission_memory(memory: proto::MissionMemory, workspace: &WorkspaceId, field: &str) -> Result<Memory> {
    Ok(Memory {
        run_id: RunId::parse(&format!("{field}.run_id"), &memory.run_id)?,
        workspace: workspace.clone(),
        request: memory.request,
        summary: memory.summary,
        outcome: memory.outcome,
        created_at: memory.created_at.map(|value| from_timestamp(value, &format!("{field}.created_at"))).transpose()?.unwrap_or_else(Timestamp::now),
    })
}

/// A task request, decoded (the spec is validated when the task is created).
pub fn create_task_request(request: proto::CreateTaskRequest) -> Result<CreateTaskRequest> {
    let mode = match proto::TaskMode::try_from(request.mode) {
        Ok(proto::TaskMode::Manual) => task::spec::Mode::Manual,
        Ok(proto::TaskMode::Autonomous) => task::spec::Mode::Autonomous,
        Err(_) => return Err(Error::invalid("mode", format!("{} is not a TaskMode", request.mode))),
    };
    let evolution = match proto::EvolutionLevel::try_from(request.evolution_level) {
        Ok(proto::EvolutionLevel::FixOnly) => task::spec::Evolution::FixOnly,
        Ok(proto::EvolutionLevel::Guided) => task::spec::Evolution::Guided,
        Ok(proto::EvolutionLevel::Proactive) => task::spec::Evolution::Proactive,
        Err(_) => return Err(Error::invalid("evolution_level", format!("{} is not an EvolutionLevel", request.evolution_level))),
    };
    let participant = |participant: proto::TaskParticipant| task::spec::Participant {
        id: participant.id,
        model: (!participant.model.is_empty()).then_some(participant.model),
        temperature: participant.temperature,
        max_tokens: participant.max_tokens,
    };
    let timeouts = request.timeouts.unwrap_or_default();
    let text = |text: String| (!text.is_empty()).then_some(text);
    let spec = task::spec::TaskSpec {
        title: request.title,
        description: request.description,
        project_dir: request.project_dir.into(),
        author: participant(request.author.unwrap_or_default()),
        reviewers: request.reviewers.into_iter().map(participant).collect(),
        fallbacks: request.fallbacks.into_iter().map(participant).collect(),
        mode,
        sandbox: request.sandbox,
        sandbox_path: text(request.sandbox_path).map(Into::into),
        auto_merge: request.auto_merge,
        evolution,
        max_rounds: request.max_rounds,
        evolve_until: request.evolve_until.map(|time| from_timestamp(time, "evolve_until")).transpose()?,
        test_command: text(request.test_command),
        lint_command: text(request.lint_command),
        timeouts: task::spec::Timeouts {
            agent_seconds: timeouts.agent_seconds,
            command_seconds: timeouts.command_seconds,
            task_seconds: timeouts.task_seconds,
        },
        auto_start: request.auto_start,
        gates: request.gates.into_iter().enumerate().map(|(index, gate)| stages::from_gate(gate, &format!("gates[{index}]"))).collect::<Result<_>>()?,
    };
    Ok(CreateTaskRequest { workspace: request.workspace, spec, request_id: request.request_id, labels: request.labels.into_iter().collect() })
}

/// A task loop request, decoded (the spec is validated when the loop is created).
pub fn create_task_loop_request(request: proto::CreateTaskLoopRequest) -> Result<CreateLoopRequest> {
    let task = create_task_request(request.task.ok_or_else(|| Error::invalid("task", "is required: the task each round of the loop runs"))?)?;
    let until = request.until.ok_or_else(|| Error::invalid("until", "is required: the time after which no task starts"))?;
    Ok(CreateLoopRequest {
        workspace: task.workspace,
        task: task.spec,
        until: from_timestamp(until, "until")?,
        max_tasks: request.max_tasks,
        request_id: request.request_id,
        labels: request.labels.into_iter().collect(),
    })
}

/// A task loop on the wire.
pub fn task_loop(looped: &LoopView) -> proto::TaskLoop {
    let view = &looped.view;
    proto::TaskLoop {
        id: view.run.id.to_string(),
        run: Some(run(&view.run)),
        until: Some(timestamp(view.spec.until)),
        max_tasks: view.spec.max_tasks,
        tasks: looped.tasks.iter().map(|task| self::task(task, None)).collect(),
        stopped: view.report.as_ref().map(|report| report.stopped.as_str().to_owned()).unwrap_or_default(),
    }
}

/// A task status on the wire.
pub fn task_status(status: task::Status) -> proto::TaskStatus {
    match status {
        task::Status::Queued => proto::TaskStatus::Queued,
        task::Status::Running => proto::TaskStatus::Running,
        task::Status::WaitingManual => proto::TaskStatus::WaitingManual,
        task::Status::Passed => proto::TaskStatus::Passed,
        task::Status::FailedGate => proto::TaskStatus::FailedGate,
        task::Status::FailedSystem => proto::TaskStatus::FailedSystem,
        task::Status::Canceled => proto::TaskStatus::Canceled,
    }
}

/// A status filter from the wire: unspecified is none.
pub fn from_task_status(value: i32, field: &str) -> Result<Option<task::Status>> {
    let status = proto::TaskStatus::try_from(value).map_err(|_| Error::invalid(field, format!("{value} is not a TaskStatus")))?;
    Ok(task::Status::ALL.into_iter().find(|candidate| task_status(*candidate) == status))
}

fn task_check(check: &task::gate::Check) -> proto::TaskCheck {
    proto::TaskCheck {
        command: check.command.clone(),
        outcome: check.outcome.as_str().to_owned(),
        exit_code: check.exit_code,
        log_artifact_id: check.log_artifact_id.clone().unwrap_or_default(),
    }
}

fn task_review(review: &task::gate::Review) -> proto::TaskReview {
    proto::TaskReview { reviewer: review.reviewer.clone(), verdict: review.verdict.as_str().to_owned(), findings: review.findings.clone() }
}

/// A task on the wire, with its progress while it runs.
pub fn task(view: &TaskView, progress: Option<&Progress>) -> proto::Task {
    let report = view.report.as_ref();
    let passed_gates = progress.map(|progress| {
        progress
            .gates
            .iter()
            .map(|(number, gate, findings)| proto::TaskRound { number: *number, gate: gate.clone(), findings: findings.clone(), ..proto::TaskRound::default() })
            .collect()
    });
    proto::Task {
        round: progress.map(|progress| progress.round).unwrap_or_default(),
        phase: progress.map(|progress| progress.phase.clone()).unwrap_or_default(),
        id: view.run.id.to_string(),
        run: Some(run(&view.run)),
        title: view.spec.title.clone(),
        description: view.spec.description.clone(),
        project_dir: view.spec.project_dir.display().to_string(),
        status: task_status(task::task_status(view)).into(),
        reason: task::task_reason(view).map(|reason| reason.as_str().to_owned()).unwrap_or_default(),
        rounds: report
            .map(|report| {
                report
                    .rounds
                    .iter()
                    .map(|round| proto::TaskRound {
                        number: round.number,
                        discussion: round.discussion.clone(),
                        reviews: round.proposal_reviews.iter().chain(&round.reviews).map(task_review).collect(),
                        tests: Some(task_check(&round.tests)),
                        lint: Some(task_check(&round.lint)),
                        gate: round.gate.as_str().to_owned(),
                        findings: round.gate.findings.clone(),
                        checks: round.checks.iter().map(stages::gate_result).collect(),
                    })
                    .collect()
            })
            .or(passed_gates)
            .unwrap_or_default(),
        workdir: report.map(|report| report.workdir.clone()).unwrap_or_default(),
        merged: report.is_some_and(|report| report.merged),
        diff_artifact_id: report.and_then(|report| report.diff_artifact_id.clone()).unwrap_or_default(),
        message: report.map(|report| report.message.clone()).or_else(|| view.run.error.as_ref().map(|error| error.message.clone())).unwrap_or_default(),
    }
}

/// A task's view of a run event: the dialogue, gate results, status changes; `None` for the
/// rest.
pub fn task_event(event: &RunEvent) -> Option<proto::TaskEvent> {
    use proto::task_event::Event;
    let payload = match &event.kind {
        EventKind::StateChanged { to, .. } => Event::Status(
            match to {
                RunState::Queued | RunState::Waiting => proto::TaskStatus::Queued,
                RunState::Running => proto::TaskStatus::Running,
                RunState::Succeeded | RunState::Failed | RunState::Cancelled => return None,
            }
            .into(),
        ),
        EventKind::Workflow { event_type, data } => match task::Transcript::of(event_type, data)? {
            task::Transcript::Said { round, phase, speaker, text } => Event::Message(proto::TaskMessage { round, phase, speaker, text }),
            task::Transcript::Gate { round, result, findings } => Event::Gate(proto::TaskGate { round, result, findings }),
        },
        _ => return None,
    };
    Some(proto::TaskEvent { sequence: event.sequence, time: Some(timestamp(event.time)), event: Some(payload) })
}

/// Task stats on the wire.
pub fn task_stats(stats: &TaskStats) -> proto::TaskStats {
    proto::TaskStats {
        status_counts: stats.status_counts.iter().map(|(status, count)| (status.as_str().to_owned(), *count)).collect(),
        reason_counts: stats.reason_counts.iter().map(|(reason, count)| (reason.as_str().to_owned(), *count)).collect(),
        provider_error_counts: stats.provider_error_counts.clone().into_iter().collect(),
        recent: stats.recent,
        pass_rate: stats.pass_rate,
        failed_gate_rate: stats.failed_gate_rate,
        failed_system_rate: stats.failed_system_rate,
        mean_duration_seconds: stats.mean_duration_seconds,
    }
}

/// A workspace tree on the wire.
pub fn workspace_tree(tree: &task::tree::Tree) -> proto::WorkspaceTree {
    proto::WorkspaceTree {
        entries: tree
            .entries
            .iter()
            .map(|entry| proto::WorkspaceEntry { path: entry.path.clone(), is_dir: entry.is_dir, size: entry.size, depth: entry.depth })
            .collect(),
        truncated: tree.truncated,
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
