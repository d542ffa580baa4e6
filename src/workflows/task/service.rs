//! `TaskService`'s domain: a task is a run of kind `task` whose input is its spec and whose
//! output its report (see `workflows::resource`), created under the cap on running tasks and
//! with the watchdog's deadline; its status is read from the run; stats are counted over the
//! workspace's tasks.

use std::{collections::BTreeMap, path::PathBuf};

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{
    Transcript,
    looping::{LoopReport, LoopSpec, LOOP_LABEL},
    tree::{self, Tree},
    spec::TaskSpec, Reason, Status, TaskReport, AUTHOR_DECISION_KEY, START_KEY};
use crate::{
    domain::{Decision, DecisionOutcome, ErrorCode, EventKind, Page, RunEvent, RunId, RunState, Timestamp},
    engine::{CreateRunRequest, Delivery, Engine, ListRunsRequest},
    error::{Error, Result},
    workflows::resource::{CreateRequest, Resources, RunResource, View},
};

/// The concurrency key every task runs under, so at most the configured number run at once.
const CONCURRENCY_KEY: &str = "conclave:tasks";
/// The most runs `stats` reads through.
const MAX_SCANNED: usize = 10_000;
/// The most entries a workspace tree holds.
const MAX_TREE_ENTRIES: usize = 5000;
/// The depth of a workspace tree when the request gives none.
const DEFAULT_TREE_DEPTH: u32 = 3;

/// Tasks as resources.
#[derive(Debug)]
pub struct TaskResource;

impl RunResource for TaskResource {
    const KIND: &'static str = "task";
    const NOUN: &'static str = "task";
    type Spec = TaskSpec;
    type Report = TaskReport;

    fn spec_from_input(input: &Map<String, Value>) -> Result<TaskSpec> {
        TaskSpec::from_input(input)
    }

    fn validated(spec: TaskSpec) -> Result<TaskSpec> {
        spec.validated()
    }
}

/// A task.
pub type TaskView = View<TaskResource>;

/// Task loops as resources.
#[derive(Debug)]
pub struct LoopResource;

impl RunResource for LoopResource {
    const KIND: &'static str = "task_loop";
    const NOUN: &'static str = "task loop";
    type Spec = LoopSpec;
    type Report = LoopReport;

    fn spec_from_input(input: &Map<String, Value>) -> Result<LoopSpec> {
        LoopSpec::from_input(input)
    }

    fn validated(spec: LoopSpec) -> Result<LoopSpec> {
        spec.validated()
    }
}

/// A task loop and its tasks so far, oldest first.
#[derive(Debug)]
pub struct LoopView {
    pub view: View<LoopResource>,
    pub tasks: Vec<TaskView>,
}

/// A request to start a task loop.
#[derive(Debug, Clone)]
pub struct CreateLoopRequest {
    pub workspace: String,
    pub task: TaskSpec,
    pub until: Timestamp,
    pub max_tasks: u32,
    pub request_id: String,
    pub labels: BTreeMap<String, String>,
}

/// A request to create a task.
#[derive(Debug, Clone)]
pub struct CreateTaskRequest {
    pub workspace: String,
    pub spec: TaskSpec,
    pub request_id: String,
    pub labels: BTreeMap<String, String>,
}

/// Counts and rates over a workspace's tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskStats {
    pub status_counts: BTreeMap<Status, u64>,
    pub reason_counts: BTreeMap<Reason, u64>,
    pub provider_error_counts: BTreeMap<String, u64>,
    /// The terminal tasks the rates are over.
    pub recent: u32,
    pub pass_rate: f64,
    pub failed_gate_rate: f64,
    pub failed_system_rate: f64,
    pub mean_duration_seconds: f64,
}

/// The tasks an engine runs.
#[derive(Debug, Clone)]
pub struct Tasks {
    engine: Engine,
    resources: Resources<TaskResource>,
    loops: Resources<LoopResource>,
    max_running: u32,
}

impl Tasks {
    /// The tasks of this engine, at most `max_running` running at once.
    pub fn new(engine: Engine, max_running: u32) -> Self {
        Self { resources: Resources::new(engine.clone()), loops: Resources::new(engine.clone()), engine, max_running: max_running.max(1) }
    }

    /// Validates and creates a task; it starts at once with `auto_start`, otherwise on `start`.
    pub async fn create(&self, request: CreateTaskRequest) -> Result<TaskView> {
        let spec = request.spec.validated()?;
        TaskView::of(self.engine.create_run(task_run(request.workspace, &spec, request.request_id, request.labels, self.max_running)?).await?)
    }

    /// Starts a task created without `auto_start`; starting it again changes nothing.
    pub async fn start(&self, id: RunId) -> Result<TaskView> {
        let task = self.get(id).await?;
        if task.spec.auto_start {
            return Ok(task);
        }
        TaskView::of(self.engine.decide_ahead(id, START_KEY, Decision { outcome: DecisionOutcome::Approve, note: String::new() }).await?)
    }

    /// The author's decision on a task waiting for it; the same decision again changes nothing.
    pub async fn decide(&self, id: RunId, approve: bool, note: String) -> Result<TaskView> {
        let task = self.get(id).await?;
        let waiting_here = task.run.waiting.as_ref().is_some_and(|waiting| waiting.key == AUTHOR_DECISION_KEY);
        if !waiting_here && !task.run.decisions.contains_key(AUTHOR_DECISION_KEY) {
            return Err(Error::precondition(
                "TASK_NOT_WAITING_MANUAL",
                format!("task {id} is {}, not waiting for the author's decision", task_status(&task).as_str()),
            ));
        }
        let outcome = if approve { DecisionOutcome::Approve } else { DecisionOutcome::Reject };
        TaskView::of(self.engine.submit_decision(id, AUTHOR_DECISION_KEY, Decision { outcome, note }).await?)
    }

    /// Validates and starts a task loop: one task after another until `until`.
    pub async fn create_loop(&self, request: CreateLoopRequest) -> Result<LoopView> {
        let spec = LoopSpec { task: request.task, until: request.until, max_tasks: request.max_tasks, max_running: self.max_running };
        let view = self.loops.create(CreateRequest { workspace: request.workspace, spec, request_id: request.request_id, labels: request.labels }).await?;
        self.with_tasks(view).await
    }

    /// A task loop and its tasks so far.
    pub async fn get_loop(&self, id: RunId) -> Result<LoopView> {
        let view = self.loops.get(id).await?;
        self.with_tasks(view).await
    }

    /// Stops a task loop: it starts no more tasks, and its running task is cancelled too.
    pub async fn cancel_loop(&self, id: RunId, reason: &str) -> Result<LoopView> {
        let view = self.loops.cancel(id, reason).await?;
        let looped = self.with_tasks(view).await?;
        for task in looped.tasks.iter().filter(|task| !task.run.state.is_terminal()) {
            self.resources.cancel(task.run.id, reason).await?;
        }
        self.get_loop(id).await
    }

    async fn with_tasks(&self, view: View<LoopResource>) -> Result<LoopView> {
        let page = self
            .engine
            .list_runs(ListRunsRequest {
                workspace: view.run.workspace.to_string(),
                kind: TaskResource::KIND.to_owned(),
                labels: BTreeMap::from([(LOOP_LABEL.to_owned(), view.run.id.to_string())]),
                page_size: 1000,
                ..ListRunsRequest::default()
            })
            .await?;
        let mut tasks = page.items.into_iter().map(TaskView::of).collect::<Result<Vec<_>>>()?;
        tasks.reverse();
        Ok(LoopView { view, tasks })
    }

    /// One task.
    pub async fn get(&self, id: RunId) -> Result<TaskView> {
        self.resources.get(id).await
    }

    /// Cancels a task at its next step.
    pub async fn cancel(&self, id: RunId, reason: &str) -> Result<TaskView> {
        self.resources.cancel(id, reason).await
    }

    /// Ends a task now as failed, for `reason`.
    pub async fn force_fail(&self, id: RunId, reason: &str) -> Result<TaskView> {
        self.get(id).await?;
        let reason = if reason.trim().is_empty() { Reason::WatchdogTimeout.as_str() } else { reason };
        TaskView::of(self.engine.force_fail_run(id, reason).await?)
    }

    /// The task's run events after `after`, then live ones, until it finishes.
    pub async fn watch(&self, id: RunId, after: u64) -> Result<mpsc::Receiver<Result<Delivery<RunEvent>>>> {
        self.resources.watch(id, after).await
    }

    /// A project's files and directories to `depth` levels (0: the default), without what
    /// `.gitignore` ignores.
    pub async fn workspace_tree(&self, project_dir: &str, depth: u32) -> Result<Tree> {
        let dir = PathBuf::from(project_dir);
        if !dir.is_absolute() {
            return Err(Error::invalid("project_dir", "must be an absolute path on the server's machine"));
        }
        let depth = if depth == 0 { DEFAULT_TREE_DEPTH } else { depth };
        tokio::task::spawn_blocking(move || tree::workspace_tree(&dir, depth, MAX_TREE_ENTRIES))
            .await
            .map_err(|err| Error::Internal(format!("the workspace tree task failed: {err}")))?
    }

    /// A workspace's tasks, newest first, perhaps only those with `status`. A page may hold
    /// fewer than `page_size` tasks when filtering by status.
    pub async fn list(&self, workspace: String, status: Option<Status>, page_size: i32, page_token: String) -> Result<Page<TaskView>> {
        let page = self.resources.list(workspace, None, page_size, page_token).await?;
        let items = page.items.into_iter().filter(|task| status.is_none_or(|status| task_status(task) == status)).collect();
        Ok(Page { items, next_page_token: page.next_page_token })
    }

    /// Counts over a workspace's tasks (the newest [`MAX_SCANNED`]), and rates and the mean
    /// duration over its last `recent` terminal ones.
    pub async fn stats(&self, workspace: String, recent: u32) -> Result<TaskStats> {
        let recent = if recent == 0 { 50 } else { recent };
        if recent > 1000 {
            return Err(Error::invalid("recent", format!("is {recent}; at most 1000")));
        }
        let mut tasks = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .engine
                .list_runs(ListRunsRequest {
                    workspace: workspace.clone(),
                    kind: TaskResource::KIND.to_owned(),
                    page_size: 1000,
                    page_token,
                    ..ListRunsRequest::default()
                })
                .await?;
            tasks.extend(page.items.into_iter().map(TaskView::of).collect::<Result<Vec<_>>>()?);
            match page.next_page_token {
                Some(next) if tasks.len() < MAX_SCANNED => page_token = next,
                _ => break,
            }
        }
        Ok(count(&tasks, recent as usize))
    }
}

/// Where a running task is, from its transcript: the round and phase of its last message, and
/// the gates passed through so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub round: u32,
    pub phase: String,
    /// Each finished round's gate: its number, result and findings.
    pub gates: Vec<(u32, String, Vec<String>)>,
}

/// The most transcript events [`Tasks::progress`] reads.
const MAX_PROGRESS_EVENTS: u32 = 10_000;

impl Tasks {
    /// A running task's progress; `None` once it has ended (its report says it all).
    pub async fn progress(&self, task: &TaskView) -> Result<Option<Progress>> {
        if task.run.state.is_terminal() {
            return Ok(None);
        }
        let events = self.engine.store().read_events(task.run.id, 0, MAX_PROGRESS_EVENTS).await?;
        let mut progress = Progress::default();
        for event in events {
            let EventKind::Workflow { event_type, data } = event.kind else { continue };
            match Transcript::of(&event_type, &data) {
                Some(Transcript::Said { round, phase, .. }) => {
                    progress.round = progress.round.max(round);
                    progress.phase = phase;
                }
                Some(Transcript::Gate { round, result, findings }) => progress.gates.push((round, result, findings)),
                None => {}
            }
        }
        Ok(Some(progress))
    }
}

/// The run that carries out a task: under the cap on running tasks, with the watchdog's
/// deadline.
pub(super) fn task_run(
    workspace: String,
    spec: &TaskSpec,
    request_id: String,
    labels: BTreeMap<String, String>,
    max_running: u32,
) -> Result<CreateRunRequest> {
    let deadline = Timestamp::now().plus(std::time::Duration::from_secs(u64::from(spec.timeouts.task_seconds)));
    let Value::Object(input) = serde_json::to_value(spec).map_err(|err| Error::Internal(format!("a task cannot be stored: {err}")))? else {
        return Err(Error::Internal("a task spec is not a JSON object".into()));
    };
    Ok(CreateRunRequest {
        workspace,
        kind: TaskResource::KIND.to_owned(),
        input,
        labels,
        request_id,
        deadline: Some(deadline),
        concurrency_key: CONCURRENCY_KEY.to_owned(),
        concurrency_limit: max_running,
        ..CreateRunRequest::default()
    })
}

/// Counts over `tasks` (newest first), rates over the first `recent` terminal ones.
fn count(tasks: &[TaskView], recent: usize) -> TaskStats {
    let mut stats = TaskStats::default();
    for task in tasks {
        *stats.status_counts.entry(task_status(task)).or_default() += 1;
        if let Some(reason) = task_reason(task) {
            *stats.reason_counts.entry(reason).or_default() += 1;
        }
        for round in task.report.iter().flat_map(|report| &report.rounds) {
            for error in &round.provider_errors {
                *stats.provider_error_counts.entry(error.clone()).or_default() += 1;
            }
        }
    }
    let terminal: Vec<(Status, f64)> = tasks
        .iter()
        .filter_map(|task| {
            let status = task_status(task);
            let run = &task.run;
            let duration = run.finished_at.zip(run.started_at.or(Some(run.created_at))).map(|(end, start)| end.since(start).as_secs_f64());
            status.is_terminal().then_some((status, duration.unwrap_or(0.0)))
        })
        .take(recent)
        .collect();
    stats.recent = terminal.len() as u32;
    if !terminal.is_empty() {
        let share = |wanted: Status| terminal.iter().filter(|(status, _)| *status == wanted).count() as f64 / terminal.len() as f64;
        stats.pass_rate = share(Status::Passed);
        stats.failed_gate_rate = share(Status::FailedGate);
        stats.failed_system_rate = share(Status::FailedSystem);
        stats.mean_duration_seconds = terminal.iter().map(|(_, seconds)| seconds).sum::<f64>() / terminal.len() as f64;
    }
    stats
}

/// A task's status, from its run: a finished run's report says how it ended; a failed run is
/// a system failure; a waiting run is queued (at the start) or waiting for the author.
pub fn task_status(task: &TaskView) -> Status {
    let run = &task.run;
    match run.state {
        RunState::Succeeded => task.report.as_ref().map_or(Status::FailedSystem, |report| report.status),
        RunState::Failed => Status::FailedSystem,
        RunState::Cancelled => Status::Canceled,
        RunState::Running => Status::Running,
        RunState::Queued => Status::Queued,
        RunState::Waiting if run.waiting.as_ref().is_some_and(|waiting| waiting.key == AUTHOR_DECISION_KEY) => Status::WaitingManual,
        RunState::Waiting => Status::Queued,
    }
}

/// Why a finished task ended so; `None` while it runs.
pub fn task_reason(task: &TaskView) -> Option<Reason> {
    let run = &task.run;
    match run.state {
        RunState::Succeeded => task.report.as_ref().map(|report| report.reason),
        RunState::Cancelled => Some(Reason::Canceled),
        RunState::Failed => Some(match run.error.as_ref().map(|error| error.code) {
            Some(ErrorCode::DeadlineExceeded) => Reason::WatchdogTimeout,
            Some(ErrorCode::ForceFailed) => {
                run.error.as_ref().and_then(|error| Reason::parse(error.message.trim())).unwrap_or(Reason::ForceFailed)
            }
            Some(ErrorCode::ModelFailed) => Reason::ProviderFailed,
            Some(ErrorCode::Timeout) => Reason::CommandFailed,
            _ => Reason::SystemError,
        }),
        RunState::Queued | RunState::Running | RunState::Waiting => None,
    }
}
