//! The operations behind `WorkerService`: external workers register, receive assignments on a
//! stream, heartbeat, and write what their runs do under the lease of each assignment. Every
//! write goes through the same state machine and fan-out as the server's own pool (see
//! `host.rs`), so watchers cannot tell where a run executes.

use std::{collections::BTreeMap, collections::HashMap, sync::Arc, time::Duration};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    host::{AttemptHost, Ending},
    hub::Signal,
    Core, Engine,
};
use crate::{
    domain::{
        page_limit, validate_labels, Lease, Memory, NewLogLine, NewWorker, Page, PageToken, Reliability, Run, RunId, RunState, Timestamp,
        Worker, WorkerId,
    },
    error::{Error, FieldViolation, Result},
    store::{JournalEntry, LeaseStatus},
};

/// A request to register a worker, as received.
#[derive(Debug, Clone, Default)]
pub struct RegisterWorkerRequest {
    pub worker_id: String,
    pub name: String,
    pub kinds: Vec<String>,
    pub providers: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub capacity: u32,
}

/// A registered worker and the timings it must keep.
#[derive(Debug, Clone)]
pub struct Registration {
    pub worker: Worker,
    /// How often to heartbeat.
    pub heartbeat_interval: Duration,
    /// How long a lease lasts without a heartbeat.
    pub lease_ttl: Duration,
}

/// A message on a worker's assignment stream.
#[derive(Debug, Clone)]
pub enum AssignmentMessage {
    /// A run to execute, with the steps already journaled.
    Run { run: Box<Run>, journal: Vec<JournalEntry> },
    /// A lease the worker held is no longer the run's.
    Revoked { run_id: RunId, epoch: u64, reason: String },
    /// A run the worker holds was asked to cancel.
    Cancel { run_id: RunId },
    /// The worker is asked to drain.
    Drain,
    /// Nothing happened for a while.
    Heartbeat,
}

/// Whether a worker still holds a run it named in a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldStatus {
    pub run_id: RunId,
    pub held: bool,
    pub cancel_requested: bool,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone)]
pub struct HeartbeatReply {
    pub runs: Vec<HeldStatus>,
    pub drain: bool,
}

const MAX_NAME: usize = 128;
const MAX_KINDS: usize = 256;
const MAX_CAPACITY: u32 = 10_000;
const MAX_STEP_KEY: usize = 256;
const MAX_EVENT_TYPE: usize = 128;
const DEFAULT_PAGE_SIZE: u32 = 100;
/// The most participants one request about debate records may name.
const MAX_PARTICIPANTS: usize = 64;
/// The most memories one recall returns.
const MAX_RECALL: u32 = 50;
/// The largest mission request remembered, in bytes.
const MAX_MEMORY_REQUEST_BYTES: usize = 64 << 10;
/// The largest mission summary remembered, in bytes.
const MAX_MEMORY_SUMMARY_BYTES: usize = 1 << 20;
/// The longest outcome remembered, in characters.
const MAX_MEMORY_OUTCOME: usize = 256;

impl Engine {
    /// Registers a worker, or registers a known one again with what it declares now.
    pub async fn register_worker(&self, request: RegisterWorkerRequest) -> Result<Registration> {
        let worker = validate_registration(request)?;
        let worker = self.core.store.register_worker(&worker, Timestamp::now()).await?;
        tracing::info!(worker = %worker.id(), name = %worker.spec.name, kinds = ?worker.spec.kinds, capacity = worker.spec.capacity, "worker registered");
        let config = &self.core.config;
        Ok(Registration { worker, heartbeat_interval: config.heartbeat_interval, lease_ttl: config.lease_ttl })
    }

    /// Records a worker's heartbeat and extends the leases of the runs it names.
    pub async fn worker_heartbeat(&self, id: &WorkerId, runs: Vec<(RunId, u64)>) -> Result<HeartbeatReply> {
        let worker = self.core.store.worker_heartbeat(id, Timestamp::now()).await?.ok_or_else(|| unknown_worker(id))?;
        let mut statuses = Vec::with_capacity(runs.len());
        for (run_id, epoch) in runs {
            let status = self.core.extend_lease(&Lease::fencing(run_id, epoch)).await?;
            statuses.push(match status {
                LeaseStatus::Held { cancel_requested } => HeldStatus { run_id, held: true, cancel_requested },
                LeaseStatus::Lost => HeldStatus { run_id, held: false, cancel_requested: false },
            });
        }
        Ok(HeartbeatReply { runs: statuses, drain: worker.draining })
    }

    /// Commits a finished step of a run held under `lease`.
    pub async fn record_step(&self, lease: &Lease, key: String, output: Value, duration: Duration) -> Result<()> {
        check_text("key", &key, MAX_STEP_KEY)?;
        let entry = JournalEntry { key, output, attempt: 0, finished_at: Timestamp::now(), duration };
        let lease = lease.clone();
        self.core
            .update(lease.run_id, move |run| {
                let entry = JournalEntry { attempt: run.attempt, ..entry.clone() };
                super::lifecycle::record_step(run, &lease, entry)
            })
            .await?;
        Ok(())
    }

    /// Appends a workflow event to a run held under `lease`.
    pub async fn emit_event(&self, lease: &Lease, event_type: &str, data: Value) -> Result<()> {
        check_text("event_type", event_type, MAX_EVENT_TYPE)?;
        self.core.emit(lease, &[(event_type.to_owned(), data)]).await
    }

    /// Puts a run held under `lease` in the waiting state until a decision for `key` arrives.
    pub async fn suspend_run(&self, lease: &Lease, key: &str, prompt: &str) -> Result<()> {
        check_text("key", key, MAX_STEP_KEY)?;
        self.core.suspend(lease, key, prompt).await
    }

    /// The records of debate participants in the workspace of the run held under `lease`.
    pub async fn read_reliability(&self, lease: &Lease, participants: &[String]) -> Result<Vec<Reliability>> {
        check_participants("participants", participants.iter().map(String::as_str))?;
        let run = self.held_run(lease).await?;
        self.core.read_reliability(lease, &run.workspace, participants).await
    }

    /// Records whether each participant's final vote matched the outcome of the debate run held
    /// under `lease`, in its workspace.
    pub async fn record_debate_votes(&self, lease: &Lease, votes: &[(String, bool)]) -> Result<()> {
        check_participants("votes", votes.iter().map(|(participant, _)| participant.as_str()))?;
        let run = self.held_run(lease).await?;
        self.core.record_debate_votes(lease, &run.workspace, votes).await
    }

    /// Memories of past missions in the workspace of the run held under `lease` that share
    /// words with `text`, best first.
    pub async fn recall(&self, lease: &Lease, text: &str, limit: u32) -> Result<Vec<Memory>> {
        if !(1..=MAX_RECALL).contains(&limit) {
            return Err(Error::invalid("limit", format!("is {limit}; ask for 1 to {MAX_RECALL} memories")));
        }
        if text.len() > MAX_MEMORY_REQUEST_BYTES {
            return Err(Error::invalid("text", format!("is {} bytes; at most {MAX_MEMORY_REQUEST_BYTES}", text.len())));
        }
        let run = self.held_run(lease).await?;
        self.core.recall(lease, &run.workspace, text, limit).await
    }

    /// Stores what the mission run held under `lease` learned, in its workspace.
    pub async fn remember(&self, lease: &Lease, request: &str, summary: &str, outcome: &str) -> Result<()> {
        let mut violations = Vec::new();
        if request.is_empty() || request.len() > MAX_MEMORY_REQUEST_BYTES {
            violations.push(FieldViolation { field: "request".into(), description: format!("must be 1 to {MAX_MEMORY_REQUEST_BYTES} bytes") });
        }
        if summary.len() > MAX_MEMORY_SUMMARY_BYTES {
            violations.push(FieldViolation { field: "summary".into(), description: format!("must be at most {MAX_MEMORY_SUMMARY_BYTES} bytes") });
        }
        if outcome.chars().count() > MAX_MEMORY_OUTCOME || outcome.chars().any(char::is_control) {
            violations.push(FieldViolation { field: "outcome".into(), description: format!("must be at most {MAX_MEMORY_OUTCOME} characters without control characters") });
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let run = self.held_run(lease).await?;
        let memory = Memory {
            run_id: run.id,
            workspace: run.workspace,
            request: request.to_owned(),
            summary: summary.to_owned(),
            outcome: outcome.to_owned(),
            created_at: Timestamp::now(),
        };
        self.core.remember(lease, memory).await
    }

    /// The run, if `lease` is its current one: `StaleLease` otherwise.
    async fn held_run(&self, lease: &Lease) -> Result<Run> {
        let run = self.core.store.get_run(lease.run_id).await?.ok_or_else(|| Error::not_found("run", lease.run_id))?;
        super::lifecycle::check_lease(&run, lease)?;
        Ok(run)
    }

    /// Records how an attempt of a run held under `lease` ended.
    pub async fn finish_run(&self, lease: &Lease, ending: Ending) -> Result<Run> {
        Ok(self.core.end_attempt(lease, ending).await?.run)
    }

    /// A writer of log lines for the runs one `AppendLogs` stream names.
    pub fn log_appender(&self) -> LogAppender {
        LogAppender { core: self.core.clone(), attempts: HashMap::new(), stored: 0, last_sequence: 0 }
    }

    /// Reads one worker.
    pub async fn get_worker(&self, id: &WorkerId) -> Result<Worker> {
        self.core.store.get_worker(id).await?.ok_or_else(|| unknown_worker(id))
    }

    /// Lists workers by id, one page at a time.
    pub async fn list_workers(&self, page_size: i32, page_token: &str) -> Result<Page<Worker>> {
        let limit = page_limit(page_size, DEFAULT_PAGE_SIZE)?;
        let tokens = PageToken::for_filters("workers");
        let after = if page_token.is_empty() { None } else { Some(WorkerId::new(tokens.decode(page_token)?)) };
        let items = self.core.store.list_workers(after.as_ref(), limit + 1).await?;
        Ok(tokens.page(items, limit, |worker| worker.id().to_string()))
    }

    /// Asks a worker to drain (or takes the request back).
    pub async fn drain_worker(&self, id: &WorkerId, draining: bool) -> Result<Worker> {
        let worker = self.core.store.set_worker_draining(id, draining).await?.ok_or_else(|| unknown_worker(id))?;
        tracing::info!(worker = %id, draining, "worker drain requested");
        Ok(worker)
    }

    /// Records that a worker stopped cleanly.
    pub async fn stop_worker(&self, id: &WorkerId) -> Result<Worker> {
        self.get_worker(id).await?;
        self.core.store.stop_worker(id, Timestamp::now()).await?;
        self.get_worker(id).await
    }

    /// Streams assignments to a registered worker until it goes away or the server shuts down.
    pub async fn receive_assignments(&self, id: &WorkerId) -> Result<mpsc::Receiver<Result<AssignmentMessage>>> {
        if self.core.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let worker = self.get_worker(id).await?;
        let (sender, receiver) = mpsc::channel(super::STREAM_BUFFER);
        let dispatcher = Dispatcher { core: self.core.clone(), worker, sender, held: HashMap::new(), stop: CancellationToken::new() };
        self.core.tasks.spawn(dispatcher.run());
        Ok(receiver)
    }
}

/// Writes the log lines of one `AppendLogs` stream, remembering each run's attempt.
pub struct LogAppender {
    core: Arc<Core>,
    attempts: HashMap<(RunId, u64), u32>,
    stored: u64,
    last_sequence: u64,
}

impl LogAppender {
    /// Appends one batch under `lease`, its first line at `first` among the lease's lines.
    pub async fn append(&mut self, lease: &Lease, first: u64, lines: &[NewLogLine]) -> Result<()> {
        let key = (lease.run_id, lease.epoch);
        let attempt = match self.attempts.get(&key) {
            Some(attempt) => *attempt,
            None => {
                let run = self.core.store.get_run(lease.run_id).await?.ok_or_else(|| Error::not_found("run", lease.run_id))?;
                super::lifecycle::check_lease(&run, lease)?;
                self.attempts.insert(key, run.attempt);
                run.attempt
            }
        };
        let stored = self.core.store.append_logs(lease, attempt, first, lines).await?;
        self.stored += stored.len() as u64;
        if let Some(last) = stored.last() {
            self.last_sequence = last.sequence;
        }
        self.core.fanout.publish_logs(lease.run_id, stored);
        Ok(())
    }

    /// Lines stored so far, and the sequence of the last one.
    pub fn summary(&self) -> (u64, u64) {
        (self.stored, self.last_sequence)
    }
}

/// Feeds one worker's assignment stream: claims runs of its kinds while it has room, watches
/// the leases it holds, and tells it at once when one is revoked or asked to cancel.
struct Dispatcher {
    core: Arc<Core>,
    worker: Worker,
    sender: mpsc::Sender<Result<AssignmentMessage>>,
    /// The runs the worker holds, by id, with their lease epochs.
    held: HashMap<RunId, u64>,
    /// Stops the lease watchers when the stream ends.
    stop: CancellationToken,
}

impl Dispatcher {
    async fn run(mut self) {
        let (ended_sender, mut ended) = mpsc::unbounded_channel();
        // A worker that reconnects keeps the runs it holds.
        match self.core.store.leases_of(self.worker.id()).await {
            Ok(leases) => {
                for lease in leases {
                    self.hold(lease.run_id, lease.epoch, &ended_sender);
                }
            }
            Err(err) => {
                let _ = self.sender.send(Err(err)).await;
                return;
            }
        }
        let mut wake = self.core.fanout.wake.subscribe();
        let mut draining = self.worker.draining;
        if draining && self.sender.send(Ok(AssignmentMessage::Drain)).await.is_err() {
            return;
        }
        let config = self.core.config.clone();
        let mut tick = tokio::time::interval(config.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut idle_since = tokio::time::Instant::now();
        loop {
            let room = (self.worker.spec.capacity as usize).saturating_sub(self.held.len());
            let mut idle_wait = config.poll_interval;
            if room > 0 && !draining {
                match self.assign(room, &ended_sender).await {
                    Ok(assigned) if assigned == room => idle_wait = Duration::ZERO,
                    Ok(0) => {}
                    Ok(_) => idle_since = tokio::time::Instant::now(),
                    Err(Stop) => break,
                }
            }
            if idle_wait.is_zero() {
                idle_since = tokio::time::Instant::now();
                continue;
            }
            tokio::select! {
                _ = wake.changed() => {}
                Some(id) = ended.recv() => {
                    self.held.remove(&id);
                }
                _ = tick.tick() => {
                    match self.core.store.get_worker(self.worker.id()).await {
                        Ok(Some(worker)) => {
                            if worker.draining && !draining && self.sender.send(Ok(AssignmentMessage::Drain)).await.is_err() {
                                break;
                            }
                            draining = worker.draining;
                        }
                        Ok(None) => break,
                        Err(err) => tracing::warn!(worker = %self.worker.id(), error = %err, "could not read the worker; retrying"),
                    }
                    if idle_since.elapsed() >= config.stream_heartbeat {
                        if self.sender.send(Ok(AssignmentMessage::Heartbeat)).await.is_err() {
                            break;
                        }
                        idle_since = tokio::time::Instant::now();
                    }
                }
                () = tokio::time::sleep(idle_wait) => {}
                () = self.sender.closed() => break,
                () = self.core.shutdown.cancelled() => {
                    let _ = self.sender.send(Err(Error::ShuttingDown)).await;
                    break;
                }
            }
        }
        self.stop.cancel();
    }

    /// Claims up to `room` runs for the worker and sends them; how many were assigned.
    async fn assign(&mut self, room: usize, ended: &mpsc::UnboundedSender<RunId>) -> Result<usize, Stop> {
        let limit = u32::try_from(room).unwrap_or(u32::MAX);
        let claimed = match self.core.claim(self.worker.id(), &self.worker.spec.kinds, limit).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(worker = %self.worker.id(), error = %err, "could not claim runs for a worker; retrying");
                return Ok(0);
            }
        };
        let count = claimed.len();
        let mut claimed = claimed.into_iter();
        while let Some(run) = claimed.next() {
            let Some(epoch) = run.lease.as_ref().map(|lease| lease.epoch) else { continue };
            let journal = if run.may_have_journal() { self.core.store.read_journal(run.id).await } else { Ok(Vec::new()) };
            let message = journal.map(|journal| AssignmentMessage::Run { run: Box::new(run.clone()), journal });
            self.hold(run.id, epoch, ended);
            if self.sender.send(message).await.is_err() {
                // The worker went away before it got these runs: give them back at once.
                for run in std::iter::once(run).chain(claimed) {
                    if let Some(lease) = run.lease {
                        let _ = self.core.end_attempt(&lease, Ending::Released).await;
                    }
                }
                return Err(Stop);
            }
        }
        Ok(count)
    }

    /// Starts watching a lease the worker holds.
    fn hold(&mut self, run_id: RunId, epoch: u64, ended: &mpsc::UnboundedSender<RunId>) {
        self.held.insert(run_id, epoch);
        let watch = LeaseWatch { core: self.core.clone(), run_id, epoch, sender: self.sender.clone(), ended: ended.clone() };
        tokio::spawn(watch.run(self.stop.clone()));
    }
}

/// The worker went away.
struct Stop;

/// Watches one lease a worker holds, on the run's event fan-out (which carries the other
/// processes' changes too), and tells the worker when it is revoked or the run is asked to
/// cancel. Ends when the worker no longer holds the run.
struct LeaseWatch {
    core: Arc<Core>,
    run_id: RunId,
    epoch: u64,
    sender: mpsc::Sender<Result<AssignmentMessage>>,
    ended: mpsc::UnboundedSender<RunId>,
}

impl LeaseWatch {
    async fn run(self, stop: CancellationToken) {
        let hub = self.core.fanout.events.clone();
        let mut signals = hub.subscribe(self.run_id);
        let mut cancel_told = false;
        loop {
            match self.core.store.get_run(self.run_id).await {
                Ok(Some(run)) if run.state == RunState::Running && run.lease.as_ref().is_some_and(|lease| lease.epoch == self.epoch) => {
                    if run.cancel_requested && !cancel_told {
                        cancel_told = true;
                        let _ = self.sender.send(Ok(AssignmentMessage::Cancel { run_id: self.run_id })).await;
                    }
                }
                Ok(run) => {
                    let reason = match run {
                        Some(run) => format!("the run is {} now", describe(&run)),
                        None => "the run no longer exists".to_owned(),
                    };
                    let revoked = AssignmentMessage::Revoked { run_id: self.run_id, epoch: self.epoch, reason };
                    let _ = self.sender.send(Ok(revoked)).await;
                    break;
                }
                Err(err) => tracing::warn!(run = %self.run_id, error = %err, "could not check a worker's lease; retrying"),
            }
            tokio::select! {
                signal = signals.recv() => {
                    if matches!(signal, Ok(Signal::Finished) | Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        signals = hub.subscribe(self.run_id);
                    }
                }
                () = tokio::time::sleep(self.core.config.heartbeat_interval) => {}
                () = stop.cancelled() => break,
            }
        }
        drop(signals);
        hub.release(self.run_id);
        let _ = self.ended.send(self.run_id);
    }
}

/// Where a run that left a worker is, for the worker's log.
fn describe(run: &Run) -> String {
    match &run.lease {
        Some(lease) if run.state == RunState::Running => format!("running under lease epoch {} of worker {}", lease.epoch, lease.worker_id),
        _ => run.state.to_string(),
    }
}

fn unknown_worker(id: &WorkerId) -> Error {
    Error::NotFound { resource: "worker", id: format!("{id} (register it again with RegisterWorker)") }
}

/// At most [`MAX_PARTICIPANTS`] names, each a valid name.
fn check_participants<'a>(field: &str, names: impl ExactSizeIterator<Item = &'a str>) -> Result<()> {
    if names.len() > MAX_PARTICIPANTS {
        return Err(Error::invalid(field, format!("names {} participants; at most {MAX_PARTICIPANTS}", names.len())));
    }
    for (index, name) in names.enumerate() {
        check_text(&format!("{field}[{index}]"), name, MAX_NAME)?;
    }
    Ok(())
}

fn check_text(field: &str, text: &str, max: usize) -> Result<()> {
    if text.is_empty() || text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(Error::invalid(field, format!("must be 1 to {max} characters without control characters")));
    }
    Ok(())
}

fn validate_registration(request: RegisterWorkerRequest) -> Result<NewWorker> {
    let mut violations = Vec::new();
    let mut violation = |field: &str, description: String| violations.push(FieldViolation { field: field.to_owned(), description });
    let id = if request.worker_id.is_empty() {
        WorkerId::new(format!("wkr-{}", uuid::Uuid::now_v7().simple()))
    } else {
        if request.worker_id.len() > MAX_NAME || !request.worker_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) {
            violation("worker_id", format!("must be 1 to {MAX_NAME} letters, digits, `-`, `_`, `.` or `:`; or empty to be given one"));
        }
        WorkerId::new(request.worker_id)
    };
    if request.name.is_empty() || request.name.chars().count() > MAX_NAME || request.name.chars().any(char::is_control) {
        violation("name", format!("is required: 1 to {MAX_NAME} characters naming the worker for people, e.g. its host"));
    }
    if request.kinds.is_empty() || request.kinds.len() > MAX_KINDS {
        violation("kinds", format!("must name 1 to {MAX_KINDS} run kinds the worker executes"));
    }
    for (index, kind) in request.kinds.iter().enumerate() {
        if kind.is_empty() || kind.len() > MAX_NAME || kind.chars().any(char::is_whitespace) {
            violation(&format!("kinds[{index}]"), format!("must be a kind name of 1 to {MAX_NAME} characters without spaces"));
        }
    }
    for (index, provider) in request.providers.iter().enumerate() {
        if provider.is_empty() || provider.len() > MAX_NAME || provider.chars().any(char::is_whitespace) {
            violation(&format!("providers[{index}]"), format!("must be a provider name of 1 to {MAX_NAME} characters without spaces"));
        }
    }
    if request.capacity == 0 || request.capacity > MAX_CAPACITY {
        violation("capacity", format!("must be 1 to {MAX_CAPACITY} runs at once, not {}", request.capacity));
    }
    validate_labels(&request.labels, "labels", &mut violations);
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    let mut kinds = request.kinds;
    kinds.sort();
    kinds.dedup();
    Ok(NewWorker {
        id,
        name: request.name,
        kinds,
        providers: request.providers,
        labels: request.labels,
        capacity: request.capacity,
        embedded: false,
    })
}
