//! What a workflow sees of its run: its input, journaled steps, logs, workflow events,
//! decisions and cancellation. Every side effect goes through [`RunContext::step`], whose result
//! is committed to the journal before the workflow sees it.

use std::{collections::HashMap, future::Future, sync::Arc, time::Instant};

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;

use super::{
    attempt::Attempt,
    host::{AttemptHost, AttemptSettings},
    CreateRunRequest,
};
use crate::{
    artifacts::{ArtifactRef, UploadHeader},
    domain::{ArtifactRecord, Decision, Memory, ErrorCode, Lease, LogStream, NewLogLine, Replay, ReplayMode, Run, RunError, RunId, Timestamp},
    error::Error,
    models::{determinism, ModelCall, ModelRequest},
    store::JournalEntry,
};

/// Why a workflow stopped without an output.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The run's work failed.
    #[error("{message}")]
    Failed {
        /// The class of failure.
        code: ErrorCode,
        /// What went wrong.
        message: String,
        /// Whether another attempt may succeed.
        retryable: bool,
    },
    /// The run was cancelled; the workflow must stop.
    #[error("cancelled")]
    Cancelled,
    /// The run now waits for a decision; it resumes from the top when one arrives.
    #[error("waiting for a decision")]
    Suspended,
    /// Another worker owns the run now; nothing more may be written.
    #[error("lease lost")]
    LeaseLost,
    /// The store failed.
    #[error("storage: {0}")]
    Store(Error),
}

impl WorkflowError {
    /// A failure that another attempt may fix.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Failed { code: ErrorCode::Failed, message: message.into(), retryable: true }
    }

    /// A failure that another attempt would repeat.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::Failed { code: ErrorCode::Failed, message: message.into(), retryable: false }
    }

    /// The run's input is unusable.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::Failed { code: ErrorCode::InvalidInput, message: message.into(), retryable: false }
    }

    /// The run error this failure records, for the given attempt.
    pub fn to_run_error(&self, attempt: u32) -> RunError {
        match self {
            Self::Failed { code, message, retryable } => RunError::new(*code, message.clone(), *retryable, attempt),
            Self::Store(err) => RunError::new(ErrorCode::Internal, err.to_string(), true, attempt),
            other => RunError::new(ErrorCode::Internal, other.to_string(), true, attempt),
        }
    }
}

impl From<Error> for WorkflowError {
    fn from(err: Error) -> Self {
        match err {
            Error::StaleLease { .. } => Self::LeaseLost,
            other => Self::Store(other),
        }
    }
}

/// A workflow's artifact operation that failed: a refusal (bad name, missing artifact, stale
/// etag, lost content) fails the run; storage trouble may pass with another attempt.
fn artifact_failure(err: Error) -> WorkflowError {
    match err {
        Error::InvalidArgument(_) | Error::NotFound { .. } | Error::FailedPrecondition { .. } | Error::DataLoss(_) => {
            WorkflowError::fatal(format!("artifact: {err}"))
        }
        Error::Aborted { .. } => WorkflowError::retryable(format!("artifact: {err}")),
        other => WorkflowError::from(other),
    }
}

/// A past mission's memory, as a journaled step records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MemoryRecord {
    /// The mission's run.
    pub run_id: String,
    /// What it was asked.
    pub request: String,
    /// What it found and did.
    pub summary: String,
    /// How it ended.
    pub outcome: String,
}

enum LogCommand {
    Line(NewLogLine),
    Flush(oneshot::Sender<()>),
}

/// The run a workflow executes, as one attempt sees it.
pub struct RunContext {
    host: Arc<dyn AttemptHost>,
    run: Run,
    lease: Lease,
    journal: Mutex<HashMap<String, Value>>,
    cancel: CancellationToken,
    lost: CancellationToken,
    logs: mpsc::Sender<LogCommand>,
}

impl RunContext {
    /// A context for one attempt; returns it with the task that writes its log lines.
    pub(super) fn new(
        host: Arc<dyn AttemptHost>,
        attempt: Attempt,
        cancel: CancellationToken,
        lost: CancellationToken,
        settings: AttemptSettings,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let Attempt { run, lease, journal } = attempt;
        let (logs, commands) = mpsc::channel(settings.log_buffer.max(1));
        let writer = LogWriter { host: host.clone(), lease: lease.clone(), attempt: run.attempt, lost: lost.clone(), settings, position: 0 };
        let writer = tokio::spawn(writer.run(commands));
        let ctx = Self { host, run, lease, journal: Mutex::new(journal), cancel, lost, logs };
        (ctx, writer)
    }

    /// The run's id.
    pub fn run_id(&self) -> RunId {
        self.run.id
    }

    /// The run as it was when this attempt started.
    pub fn run(&self) -> &Run {
        &self.run
    }

    /// The run's input.
    pub fn input(&self) -> &Map<String, Value> {
        &self.run.input
    }

    /// The attempt being executed, from 1.
    pub fn attempt(&self) -> u32 {
        self.run.attempt
    }

    /// Resolves when the run is cancelled; long operations select on it and stop promptly.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether the run was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Executes a journaled step: if the journal has a result for `key`, returns it without
    /// running `f`; otherwise runs `f`, commits its result to the journal under this attempt's
    /// lease, and returns it. Keys must be unique within the run and stable across executions.
    pub async fn step<T, F, Fut>(&self, key: &str, f: F) -> Result<T, WorkflowError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, WorkflowError>>,
    {
        {
            let journal = self.journal.lock().await;
            if let Some(recorded) = journal.get(key) {
                return serde_json::from_value(recorded.clone()).map_err(|err| {
                    WorkflowError::fatal(format!("the journal entry of step `{key}` does not fit the workflow: {err}"))
                });
            }
            if let Some(Replay { of, mode: ReplayMode::Exact }) = self.run.replay {
                let mut recorded: Vec<&str> = journal.keys().map(String::as_str).collect();
                recorded.sort_unstable();
                return Err(WorkflowError::Failed {
                    code: ErrorCode::ReplayDiverged,
                    message: format!(
                        "the replay of run {of} diverged at step `{key}`: the journal of run {of} has no such step (its steps: {}); the workflow or its input changed since it ran",
                        recorded.join(", ")
                    ),
                    retryable: false,
                });
            }
        }
        self.check_running()?;
        let started = Instant::now();
        let result = f().await?;
        let output = serde_json::to_value(&result)
            .map_err(|err| WorkflowError::fatal(format!("the result of step `{key}` cannot be journaled: {err}")))?;
        let entry = JournalEntry {
            key: key.to_owned(),
            output: output.clone(),
            attempt: self.run.attempt,
            finished_at: Timestamp::now(),
            duration: started.elapsed(),
        };
        self.host.record_step(&self.lease, entry).await?;
        self.journal.lock().await.insert(key.to_owned(), output);
        Ok(result)
    }

    /// Calls a model as a journaled step under `key`. The request's `origin.role` picks the
    /// router's chain; temperature 0 and the step's seed apply unless the request sets them.
    /// Cancelling the run abandons a call in flight.
    /// The answer is journaled with what produced it ([`ModelCall`]), and its text is written to
    /// the run's log as it streams in. A resumed or replayed run gets the journaled answer
    /// without calling any provider.
    pub async fn generate(&self, key: &str, mut request: ModelRequest, prompt_version: Option<&str>) -> Result<ModelCall, WorkflowError> {
        request.origin.run_id = Some(self.run.id);
        request.origin.step = Some(key.to_owned());
        let request = &request;
        self.step(key, || async move {
            let seed = determinism::deterministic(request).seed;
            let (tokens, pieces) = mpsc::channel(64);
            let call = async move {
                let result = self.host.generate(&self.lease, request, Some(&tokens)).await;
                drop(tokens);
                result
            };
            // A cancelled run, or one whose lease is lost, stops waiting for the model: the call
            // is dropped (an HTTP request aborted, a program killed) instead of running on.
            let result = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(WorkflowError::Cancelled),
                () = self.lost.cancelled() => return Err(WorkflowError::LeaseLost),
                (result, ()) = async { tokio::join!(call, self.log_pieces(pieces)) } => result,
            };
            match result {
                Ok(routed) => Ok(ModelCall::new(request, routed, seed, prompt_version.map(str::to_owned))),
                Err(failure) => Err(WorkflowError::Failed {
                    code: ErrorCode::ModelFailed,
                    message: format!("model call `{key}` failed: {failure}"),
                    retryable: failure.failure.class.is_transient(),
                }),
            }
        })
        .await
    }

    /// Stores an artifact in this run as a journaled step under `key`: a new version of
    /// `header.name`, produced by this step (the header's run, lease and producer step are set
    /// here). A resumed or replayed run gets the recorded version without writing again.
    pub async fn put_artifact(&self, key: &str, mut header: UploadHeader, content: &[u8]) -> Result<ArtifactRecord, WorkflowError> {
        header.run_id = self.run.id.to_string();
        header.lease_epoch = Some(self.lease.epoch);
        header.producer.step = Some(key.to_owned());
        self.step(key, || async move { self.host.put_artifact(&self.lease, header, content).await.map_err(artifact_failure) }).await
    }

    /// Reads an artifact (of this run or any other) as a journaled step under `key`, and
    /// records the read for lineage. The step records which version was read, so a resumed or
    /// replayed run reads exactly the same content, even if the name has newer versions since.
    pub async fn get_artifact(&self, key: &str, reference: ArtifactRef) -> Result<(ArtifactRecord, Vec<u8>), WorkflowError> {
        let mut live = None;
        let read = &mut live;
        let reference = &reference;
        let record = self
            .step(key, || async move {
                let (record, content) = self.host.get_artifact(&self.lease, reference, key).await.map_err(artifact_failure)?;
                *read = Some(content);
                Ok(record)
            })
            .await?;
        match live {
            Some(content) => Ok((record, content)),
            None => {
                let content = self.host.read_artifact(&record).await.map_err(artifact_failure)?;
                Ok((record, content))
            }
        }
    }

    /// The records of debate participants in this run's workspace, as a journaled step under
    /// `key`: a resumed or replayed debate weighs its votes as it did the first time.
    pub async fn reliability(&self, key: &str, participants: &[String]) -> Result<Vec<(String, u64, u64)>, WorkflowError> {
        let workspace = &self.run.workspace;
        self.step(key, || async move {
            let records = self.host.read_reliability(&self.lease, workspace, participants).await?;
            Ok(records.into_iter().map(|record| (record.participant, record.debates, record.agreed)).collect())
        })
        .await
    }

    /// Records whether each participant's vote matched this debate's outcome, as a journaled
    /// step under `key`.
    pub async fn record_debate_votes(&self, key: &str, votes: &[(String, bool)]) -> Result<(), WorkflowError> {
        let workspace = &self.run.workspace;
        self.step(key, || async move { Ok(self.host.record_debate_votes(&self.lease, workspace, votes).await?) }).await
    }

    /// Memories of past missions in this run's workspace matching `text`, as a journaled step
    /// under `key`: a resumed or replayed mission sees the memories it saw the first time.
    pub async fn recall(&self, key: &str, text: &str, limit: u32) -> Result<Vec<MemoryRecord>, WorkflowError> {
        let workspace = &self.run.workspace;
        self.step(key, || async move {
            let memories = self.host.recall(&self.lease, workspace, text, limit).await?;
            Ok(memories
                .into_iter()
                .map(|memory| MemoryRecord { run_id: memory.run_id.to_string(), request: memory.request, summary: memory.summary, outcome: memory.outcome })
                .collect())
        })
        .await
    }

    /// Stores what this mission learned, as a journaled step under `key`.
    pub async fn remember(&self, key: &str, request: &str, summary: &str, outcome: &str) -> Result<(), WorkflowError> {
        let memory = Memory {
            run_id: self.run.id,
            workspace: self.run.workspace.clone(),
            request: request.to_owned(),
            summary: summary.to_owned(),
            outcome: outcome.to_owned(),
            created_at: Timestamp::now(),
        };
        self.step(key, || async move { Ok(self.host.remember(&self.lease, memory).await?) }).await
    }

    /// Writes streamed text to the log a line at a time.
    async fn log_pieces(&self, mut pieces: mpsc::Receiver<String>) {
        let mut pending = String::new();
        while let Some(piece) = pieces.recv().await {
            pending.push_str(&piece);
            if let Some(end) = pending.rfind('\n') {
                let rest = pending.split_off(end + 1);
                self.log(LogStream::Stdout, pending.trim_end_matches('\n')).await;
                pending = rest;
            }
        }
        if !pending.is_empty() {
            self.log(LogStream::Stdout, &pending).await;
        }
    }

    /// Appends a line (or several, split at newlines) to the run's log. Lines are written in
    /// batches by a background task; under back-pressure this waits rather than dropping lines.
    pub async fn log(&self, stream: LogStream, text: &str) {
        let time = Timestamp::now();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let command = LogCommand::Line(NewLogLine { time, stream, text: line.to_owned() });
            if self.logs.send(command).await.is_err() {
                return;
            }
        }
    }

    /// Waits until every line logged so far is stored.
    pub async fn flush_logs(&self) {
        let (done, flushed) = oneshot::channel();
        if self.logs.send(LogCommand::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }

    /// Appends a workflow event (a transcript message, a vote, a gate result) to the run's
    /// event stream.
    pub async fn emit(&self, event_type: &str, data: Value) -> Result<(), WorkflowError> {
        self.emit_all(vec![(event_type.to_owned(), data)]).await
    }

    /// Appends several workflow events in order, in one write (a round's messages).
    pub async fn emit_all(&self, events: Vec<(String, Value)>) -> Result<(), WorkflowError> {
        if events.is_empty() {
            return Ok(());
        }
        self.check_running()?;
        self.host.emit(&self.lease, &events).await?;
        Ok(())
    }

    /// Creates a run, as the journaled step `key` (a task loop's next task): a resumed run gets
    /// the id it created the first time. Give `request_id` so that a creation whose step was
    /// not journaled (a crash in between) is not repeated either.
    pub async fn create_run(&self, key: &str, request: CreateRunRequest) -> Result<RunId, WorkflowError> {
        let id: String = self.step(key, || async { Ok(self.host.create_run(&self.lease, request.clone()).await?.id.to_string()) }).await?;
        RunId::parse("run_id", &id).map_err(|err| WorkflowError::fatal(format!("step `{key}` recorded a run id that is not one: {err}")))
    }

    /// Reads a run as it is now (not journaled: a replay reads it again).
    pub async fn read_run(&self, id: RunId) -> Result<Run, WorkflowError> {
        Ok(self.host.get_run(id).await?)
    }

    /// Appends a workflow event once, as the journaled step `key`: a run that resumes from the
    /// top (after a decision, a restart) does not append it again, where [`emit`](Self::emit)
    /// would.
    pub async fn emit_once(&self, key: &str, event_type: &str, data: Value) -> Result<(), WorkflowError> {
        self.step(key, || async { self.emit(event_type, data).await }).await
    }

    /// Returns the decision recorded for wait point `key`; if there is none yet, puts the run in
    /// the waiting state (releasing its worker) and returns [`WorkflowError::Suspended`], which
    /// the workflow must propagate. The run resumes from the top once the decision arrives.
    pub async fn wait_for_decision(&self, key: &str, prompt: &str) -> Result<Decision, WorkflowError> {
        if let Some(decision) = self.run.decisions.get(key) {
            return Ok(decision.clone());
        }
        self.check_running()?;
        self.flush_logs().await;
        self.host.suspend(&self.lease, key, prompt).await?;
        Err(WorkflowError::Suspended)
    }

    fn check_running(&self) -> Result<(), WorkflowError> {
        if self.lost.is_cancelled() {
            return Err(WorkflowError::LeaseLost);
        }
        if self.cancel.is_cancelled() {
            return Err(WorkflowError::Cancelled);
        }
        Ok(())
    }
}

/// How long a batch smaller than a full one waits for more lines before it is written.
const LOG_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// Writes an attempt's log lines in batches: it takes whatever has accumulated since its last
/// write (up to a batch), so a trickle is written line by line at once and a flood in large
/// batches. Each batch carries its position, so a batch sent again after an ambiguous failure
/// is stored once.
struct LogWriter {
    host: Arc<dyn AttemptHost>,
    lease: Lease,
    attempt: u32,
    lost: CancellationToken,
    settings: AttemptSettings,
    /// Lines handed to the host so far.
    position: u64,
}

impl LogWriter {
    async fn run(mut self, mut commands: mpsc::Receiver<LogCommand>) {
        let mut batch = Vec::new();
        let mut waiters = Vec::new();
        while let Some(command) = commands.recv().await {
            let mut next = Some(command);
            while let Some(command) = next.take() {
                match command {
                    LogCommand::Line(line) => batch.push(line),
                    LogCommand::Flush(done) => waiters.push(done),
                }
                if batch.len() < self.settings.log_batch {
                    next = commands.try_recv().ok();
                }
            }
            // A trickle waits a moment for more lines, so that lines logged between steps share
            // one write instead of each taking the store's writer from the next step's commit.
            let linger = tokio::time::Instant::now() + LOG_LINGER;
            while !batch.is_empty() && waiters.is_empty() && batch.len() < self.settings.log_batch {
                match tokio::time::timeout_at(linger, commands.recv()).await {
                    Ok(Some(LogCommand::Line(line))) => batch.push(line),
                    Ok(Some(LogCommand::Flush(done))) => waiters.push(done),
                    Ok(None) | Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.store(&batch).await;
                batch.clear();
            }
            if !waiters.is_empty() {
                self.flush().await;
                for done in waiters.drain(..) {
                    let _ = done.send(());
                }
            }
        }
        self.flush().await;
    }

    /// Hands one batch to the host, retrying while it is unavailable (for as long as the lease
    /// could still be alive); a stale lease marks the attempt lost.
    async fn store(&mut self, batch: &[NewLogLine]) {
        let give_up = Instant::now() + self.settings.lease_ttl;
        while !self.lost.is_cancelled() {
            match self.host.append_logs(&self.lease, self.attempt, self.position, batch).await {
                Ok(()) => {
                    self.position += batch.len() as u64;
                    return;
                }
                Err(err) => self.retry_or_give_up(err, give_up, batch.len()).await,
            }
        }
    }

    /// Waits until the host stored every line handed to it.
    async fn flush(&self) {
        let give_up = Instant::now() + self.settings.lease_ttl;
        while !self.lost.is_cancelled() {
            match self.host.flush_logs(&self.lease).await {
                Ok(()) => return,
                Err(err) => self.retry_or_give_up(err, give_up, 0).await,
            }
        }
    }

    async fn retry_or_give_up(&self, err: Error, give_up: Instant, lines: usize) {
        let run = self.lease.run_id;
        match err {
            Error::StaleLease { .. } => self.lost.cancel(),
            err if Instant::now() < give_up => {
                tracing::warn!(run = %run, error = %err, lines, "could not store log lines; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            err => {
                tracing::error!(run = %run, error = %err, lines, "giving up storing log lines");
                self.lost.cancel();
            }
        }
    }
}
