//! The operations behind `RunService`: validate a request, apply the state machine through the
//! store, publish what changed. The gRPC adapter in `api/runs.rs` only decodes and encodes.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{
    follow::{Delivery, Follow, IsFinished, ReadAfter},
    hub::Hub,
    lifecycle, Engine,
};
use crate::{
    domain::{
        page_limit, validate_labels, Decision, LogLine, NewRun, Page, PageToken, Replay, ReplayMode, Run, RunEvent, RunId, RunQuery, RunState, Timestamp, WorkspaceId,
        DEFAULT_WORKSPACE,
    },
    error::{Error, FieldViolation, Result},
};

/// A request to create a run, as received; [`Engine::create_run`] validates it.
#[derive(Debug, Clone, Default)]
pub struct CreateRunRequest {
    pub workspace: String,
    pub kind: String,
    pub input: Map<String, Value>,
    pub priority: i32,
    pub max_attempts: u32,
    pub attempt_timeout: Option<Duration>,
    pub deadline: Option<Timestamp>,
    pub concurrency_key: String,
    pub concurrency_limit: u32,
    pub labels: BTreeMap<String, String>,
    pub request_id: String,
}

/// A request to list runs, as received.
#[derive(Debug, Clone, Default)]
pub struct ListRunsRequest {
    pub workspace: String,
    pub state: Option<RunState>,
    pub kind: String,
    pub labels: BTreeMap<String, String>,
    /// Only runs whose output has this top-level text field with this value.
    pub output_field: Option<(String, String)>,
    pub page_size: i32,
    pub page_token: String,
}

/// Queue statistics of a workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    /// Runs by kind and state.
    pub counts: BTreeMap<(String, RunState), u64>,
    /// How long the oldest due queued run has waited.
    pub oldest_queued_age: Duration,
    /// Runs held under a lease.
    pub active_leases: u64,
    /// Runs finished in the last minute.
    pub finished_last_minute: u64,
    /// This server's worker slots.
    pub worker_slots: usize,
    /// Busy worker slots on this server.
    pub busy_worker_slots: usize,
}

const MAX_PRIORITY: i32 = 1000;
const MAX_ATTEMPTS: u32 = 100;
const MAX_CONCURRENCY_LIMIT: u32 = 10_000;
const MAX_REQUEST_ID: usize = 128;
const MAX_KEY_LENGTH: usize = 255;
const MAX_INPUT_BYTES: usize = 1 << 20;
const DEFAULT_PAGE_SIZE: u32 = 50;

impl Engine {
    /// Creates and queues a run. A repeated `request_id` returns the run the first call created;
    /// reusing it for a different kind or input is refused.
    pub async fn create_run(&self, request: CreateRunRequest) -> Result<Run> {
        self.core.create_run(request).await
    }

    /// Returns one run.
    pub async fn get_run(&self, id: RunId) -> Result<Run> {
        self.core.store.get_run(id).await?.ok_or_else(|| Error::not_found("run", id))
    }

    /// Lists runs, newest first.
    pub async fn list_runs(&self, request: ListRunsRequest) -> Result<Page<Run>> {
        let limit = page_limit(request.page_size, DEFAULT_PAGE_SIZE)?;
        let workspace = workspace_or_default(&request.workspace);
        let mut query = RunQuery {
            workspace: Some(workspace.clone()),
            state: request.state,
            kind: (!request.kind.is_empty()).then(|| request.kind.clone()),
            labels: request.labels.clone(),
            output_field: request.output_field.clone(),
            limit: limit + 1,
            before: None,
        };
        let tokens = PageToken::for_filters(&format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}",
            query.workspace, query.state, query.kind, query.labels, query.output_field
        ));
        if !request.page_token.is_empty() {
            query.before = Some(RunId::parse("page_token", &tokens.decode(&request.page_token)?)?);
        }
        self.core.require_workspace(&workspace).await?;
        let runs = self.core.store.list_runs(&query).await?;
        Ok(tokens.page(runs, limit, |run| run.id.to_string()))
    }

    /// Cancels a run: at once if queued or waiting; a running run is asked to stop at its next
    /// step and stopped by force after the grace period, or at once with `force`.
    pub async fn cancel_run(&self, id: RunId, reason: &str, force: bool) -> Result<Run> {
        let now = Timestamp::now();
        let reason = reason.to_owned();
        let transition = self.core.update(id, move |run| lifecycle::cancel(run, &reason, force, now)).await?;
        if let Some(active) = self.core.active().get(&id) {
            active.cancel.cancel();
            if transition.run.state.is_terminal() {
                active.force.cancel();
            }
        }
        Ok(transition.run)
    }

    /// Queues a failed or cancelled run again.
    pub async fn retry_run(&self, id: RunId, reset_journal: bool) -> Result<Run> {
        let now = Timestamp::now();
        Ok(self.core.update(id, move |run| lifecycle::retry(run, reset_journal, now)).await?.run)
    }

    /// Creates a run that re-executes a finished run from its journal: every step (exact), or
    /// the steps journaled before `from_step`, then live. The replay keeps the original's kind,
    /// input, decisions and limits, and starts queued.
    pub async fn replay_run(&self, id: RunId, from_step: Option<&str>, request_id: Option<String>) -> Result<Run> {
        if let Some(request_id) = &request_id {
            let mut violations = Vec::new();
            validate_request_id(request_id, &mut violations);
            if !violations.is_empty() {
                return Err(Error::InvalidArgument(violations));
            }
        }
        let source = self.get_run(id).await?;
        if !source.state.is_terminal() {
            return Err(Error::precondition(
                "RUN_NOT_FINISHED",
                format!("run {id} is {}; only a finished run can be replayed", source.state),
            ));
        }
        if source.history_pruned_at.is_some() {
            return Err(Error::precondition(
                "HISTORY_PRUNED",
                format!("run {id}'s journal was removed by retention; it can no longer be replayed"),
            ));
        }
        let journal = self.core.store.read_journal(id).await?;
        let (journal, mode) = match from_step {
            None => (journal, ReplayMode::Exact),
            Some(step) => {
                let Some(position) = journal.iter().position(|entry| entry.key == step) else {
                    let keys: Vec<&str> = journal.iter().map(|entry| entry.key.as_str()).collect();
                    return Err(Error::invalid(
                        "from_step",
                        format!("run {id}'s journal has no step `{step}`; its steps, in order: {}", keys.join(", ")),
                    ));
                };
                let mut journal = journal;
                journal.truncate(position);
                (journal, ReplayMode::FromStep)
            }
        };
        let now = Timestamp::now();
        let new = NewRun {
            id: RunId::new(),
            workspace: source.workspace.clone(),
            kind: source.kind.clone(),
            input: source.input.clone(),
            priority: source.priority,
            max_attempts: source.max_attempts,
            attempt_timeout: source.attempt_timeout,
            deadline: None,
            concurrency: source.concurrency.clone(),
            labels: source.labels.clone(),
            request_id,
            created_at: now,
            replay: Some(Replay { of: id, mode }),
            journal,
            decisions: source.decisions.clone(),
        };
        self.core.registry.resolve(&new.kind)?;
        let created = self.core.committer.create(new.clone()).await?;
        let run = created.transition.run;
        if !created.created && run.replay != new.replay {
            return Err(Error::AlreadyExists {
                reason: "REQUEST_ID_REUSED",
                message: format!("request_id `{}` was already used for run {}; use a new request_id", new.request_id.unwrap_or_default(), run.id),
            });
        }
        Ok(run)
    }

    /// Fails an unfinished run at once.
    pub async fn force_fail_run(&self, id: RunId, reason: &str) -> Result<Run> {
        if reason.trim().is_empty() {
            return Err(Error::invalid("reason", "is required: say why the run is being failed"));
        }
        let now = Timestamp::now();
        let reason = reason.to_owned();
        let transition = self.core.update(id, move |run| lifecycle::force_fail(run, &reason, now)).await?;
        if let Some(active) = self.core.active().get(&id) {
            active.force.cancel();
        }
        Ok(transition.run)
    }

    /// Records a decision for `key` even if the run has not reached that wait yet (see
    /// [`lifecycle::decide_ahead`]).
    pub async fn decide_ahead(&self, id: RunId, key: &str, decision: Decision) -> Result<Run> {
        let (key, now) = (key.to_owned(), Timestamp::now());
        Ok(self.core.update(id, move |run| lifecycle::decide_ahead(run, &key, &decision, now)).await?.run)
    }

    /// Answers a waiting run; the same decision again is a no-op.
    pub async fn submit_decision(&self, id: RunId, key: &str, decision: Decision) -> Result<Run> {
        let key = (!key.is_empty()).then(|| key.to_owned());
        let now = Timestamp::now();
        Ok(self.core.update(id, move |run| lifecycle::decide(run, key.as_deref(), &decision, now)).await?.run)
    }

    /// Streams a run's events after `after`: stored ones, then live ones until the run finishes.
    pub async fn watch_run(&self, id: RunId, after: u64) -> Result<mpsc::Receiver<Result<Delivery<RunEvent>>>> {
        let store = self.core.store.clone();
        let read: ReadAfter<RunEvent> = Arc::new(move |after, limit| {
            let store = store.clone();
            Box::pin(async move { store.read_events(id, after, limit).await })
        });
        self.follow(id, after, true, self.core.fanout.events.clone(), read, |run| run.last_event_sequence).await
    }

    /// Streams a run's log lines after `after`; with `follow`, live ones until the run finishes.
    pub async fn tail_logs(&self, id: RunId, after: u64, follow: bool) -> Result<mpsc::Receiver<Result<Delivery<LogLine>>>> {
        let store = self.core.store.clone();
        let read: ReadAfter<LogLine> = Arc::new(move |after, limit| {
            let store = store.clone();
            Box::pin(async move { store.read_logs(id, after, limit).await })
        });
        self.follow(id, after, follow, self.core.fanout.logs.clone(), read, |run| run.last_log_sequence).await
    }

    async fn follow<T: super::follow::Sequenced>(
        &self,
        id: RunId,
        after: u64,
        follow: bool,
        hub: Arc<Hub<T>>,
        read: ReadAfter<T>,
        last_sequence: fn(&Run) -> u64,
    ) -> Result<mpsc::Receiver<Result<Delivery<T>>>> {
        if self.core.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let subscription = hub.subscribe(id);
        let run = match self.get_run(id).await {
            Ok(run) => run,
            Err(err) => {
                drop(subscription);
                hub.release(id);
                return Err(err);
            }
        };
        if after > last_sequence(&run) {
            drop(subscription);
            hub.release(id);
            return Err(Error::invalid(
                "after_sequence",
                format!("{after} is past the run's last sequence number {}; resume from a sequence you received", last_sequence(&run)),
            ));
        }
        let (sender, receiver) = mpsc::channel(super::STREAM_BUFFER);
        let store = self.core.store.clone();
        let is_finished: IsFinished = Arc::new(move || {
            let store = store.clone();
            Box::pin(async move { Ok(store.get_run(id).await?.is_none_or(|run| run.state.is_terminal())) })
        });
        let follower = Follow {
            run: id,
            after,
            finished: run.state.is_terminal(),
            follow,
            hub,
            read,
            is_finished,
            heartbeat: self.core.config.stream_heartbeat,
            shutdown: self.core.shutdown.clone(),
        };
        tokio::spawn(follower.run(subscription, sender));
        Ok(receiver)
    }

    /// Queue statistics of a workspace.
    pub async fn queue_stats(&self, workspace: &str) -> Result<QueueStats> {
        let workspace = workspace_or_default(workspace);
        self.core.require_workspace(&workspace).await?;
        let now = Timestamp::now();
        let minute_ago = Timestamp::from_micros(now.as_micros() - 60_000_000);
        let counts = self.core.store.queue_counts(&workspace, now, minute_ago).await?;
        Ok(QueueStats {
            counts: counts.by_kind_and_state,
            oldest_queued_age: counts.oldest_queued_since.map_or(Duration::ZERO, |since| now.since(since)),
            active_leases: counts.active_leases,
            finished_last_minute: counts.finished_since,
            worker_slots: self.core.config.worker_slots,
            busy_worker_slots: self.busy_slots(),
        })
    }

}

impl Engine {
    /// The workspace a request names (the default one when it names none), refused with
    /// `NotFound` if it does not exist.
    pub async fn workspace(&self, name: &str) -> Result<WorkspaceId> {
        let workspace = workspace_or_default(name);
        self.core.require_workspace(&workspace).await?;
        Ok(workspace)
    }
}

fn workspace_or_default(workspace: &str) -> WorkspaceId {
    WorkspaceId::new(if workspace.is_empty() { DEFAULT_WORKSPACE } else { workspace })
}

fn violation(violations: &mut Vec<FieldViolation>, field: impl Into<String>, description: impl Into<String>) {
    violations.push(FieldViolation { field: field.into(), description: description.into() });
}

/// An idempotency key is at most 128 bytes without control characters.
fn validate_request_id(request_id: &str, violations: &mut Vec<FieldViolation>) {
    if request_id.len() > MAX_REQUEST_ID || request_id.chars().any(char::is_control) {
        violation(violations, "request_id", format!("must be at most {MAX_REQUEST_ID} bytes without control characters"));
    }
}

/// Checks every field of a create request, collecting all violations at once.
fn validate_create(request: CreateRunRequest, config: &super::EngineConfig, violations: &mut Vec<FieldViolation>) -> NewRun {
    let now = Timestamp::now();
    if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&request.priority) {
        violation(violations, "priority", format!("must be between -{MAX_PRIORITY} and {MAX_PRIORITY}, not {}", request.priority));
    }
    let max_attempts = match request.max_attempts {
        0 => config.default_max_attempts,
        n if n > MAX_ATTEMPTS => {
            violation(violations, "max_attempts", format!("must be at most {MAX_ATTEMPTS}, not {n}"));
            n
        }
        n => n,
    };
    let attempt_timeout = match request.attempt_timeout {
        None => config.default_attempt_timeout,
        Some(timeout) if timeout.is_zero() => {
            violation(violations, "attempt_timeout", "must be positive; leave it unset for the server default");
            timeout
        }
        Some(timeout) if timeout > config.max_attempt_timeout => {
            violation(violations, "attempt_timeout", format!("must be at most {}s", config.max_attempt_timeout.as_secs()));
            timeout
        }
        Some(timeout) => timeout,
    };
    if request.deadline.is_some_and(|deadline| deadline <= now) {
        violation(violations, "deadline", "is in the past; give a future time or leave it unset");
    }
    let concurrency = match (request.concurrency_key.as_str(), request.concurrency_limit) {
        ("", 0) => None,
        ("", _) => {
            violation(violations, "concurrency_limit", "needs a concurrency_key to limit");
            None
        }
        (key, limit) => {
            if key.len() > MAX_KEY_LENGTH || key.chars().any(char::is_control) {
                violation(violations, "concurrency_key", format!("must be at most {MAX_KEY_LENGTH} bytes without control characters"));
            }
            if limit > MAX_CONCURRENCY_LIMIT {
                violation(violations, "concurrency_limit", format!("must be at most {MAX_CONCURRENCY_LIMIT}, not {limit}"));
            }
            Some((key.to_owned(), limit.max(1)))
        }
    };
    validate_labels(&request.labels, "labels", violations);
    validate_request_id(&request.request_id, violations);
    if serde_json::to_vec(&request.input).map_or(0, |bytes| bytes.len()) > MAX_INPUT_BYTES {
        violation(violations, "input", "is larger than 1 MiB; store large inputs as artifacts and pass their names");
    }
    NewRun {
        id: RunId::new(),
        workspace: workspace_or_default(&request.workspace),
        kind: request.kind,
        input: request.input,
        priority: request.priority,
        max_attempts,
        attempt_timeout,
        deadline: request.deadline,
        concurrency,
        labels: request.labels,
        request_id: (!request.request_id.is_empty()).then_some(request.request_id),
        created_at: now,
        replay: None,
        journal: Vec::new(),
        decisions: BTreeMap::new(),
    }
}


impl super::Core {
    /// Creates and queues a run. A repeated `request_id` returns the run the first call created;
    /// reusing it for a different kind or input is refused.
    pub(super) async fn create_run(&self, request: CreateRunRequest) -> Result<Run> {
        let core = self;
        let workflow = core.registry.resolve(&request.kind);
        let mut violations = Vec::new();
        let new = validate_create(request, &core.config, &mut violations);
        if let Err(Error::InvalidArgument(found)) = &workflow {
            violations.extend(found.iter().cloned());
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let workflow = workflow?;
        workflow.validate(&new.input)?;
        self.require_workspace(&new.workspace).await?;
        let created = core.committer.create(new.clone()).await?;
        let run = created.transition.run.clone();
        if !created.created && (run.kind != new.kind || run.input != new.input) {
            return Err(Error::AlreadyExists {
                reason: "REQUEST_ID_REUSED",
                message: format!(
                    "request_id `{}` was already used for run {} with a different kind or input; use a new request_id",
                    new.request_id.unwrap_or_default(),
                    run.id
                ),
            });
        }
        Ok(run)
    }

    /// Refuses a workspace that does not exist; known ones are remembered.
    async fn require_workspace(&self, workspace: &WorkspaceId) -> Result<()> {
        let known = |core: &super::Core| core.workspaces.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(workspace);
        if known(self) {
            return Ok(());
        }
        if !self.store.workspace_exists(workspace).await? {
            return Err(Error::not_found("workspace", workspace));
        }
        self.workspaces.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(workspace.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_validation_reports_every_bad_field() {
        let mut labels = BTreeMap::new();
        labels.insert("Bad Key".to_owned(), "v".to_owned());
        let request = CreateRunRequest {
            kind: "noop".into(),
            priority: 5000,
            max_attempts: 1000,
            attempt_timeout: Some(Duration::ZERO),
            deadline: Some(Timestamp::from_micros(1)),
            concurrency_limit: 3,
            labels,
            ..CreateRunRequest::default()
        };
        let mut violations = Vec::new();
        validate_create(request, &super::super::EngineConfig::default(), &mut violations);
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["priority", "max_attempts", "attempt_timeout", "deadline", "concurrency_limit", "labels[Bad Key]"]);
    }
}
