//! Task loops (seed `003`'s overnight loop): one task after another, each started when the one
//! before has ended, until a deadline or a number of tasks. A loop is a run of kind `task_loop`
//! whose input is its [`LoopSpec`]; each task is a run of its own, labelled with the loop's id
//! ([`LOOP_LABEL`]) and created as a journaled step with a request id of its own, so a loop
//! resumed after a restart neither repeats nor skips a task. The loop's log is the artifact
//! `loop.md`, a new version after each task.

use std::{collections::BTreeMap, time::Duration};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{
    service::{task_reason, task_run, task_status, TaskView},
    spec::TaskSpec,
    Reason, Status,
};
use crate::{
    artifacts::UploadHeader,
    domain::{ArtifactKind, Timestamp},
    engine::{RunContext, Workflow, WorkflowError},
    error::{Error, Result},
};

/// The label each task of a loop carries, with the loop's id.
pub const LOOP_LABEL: &str = "conclave.task_loop";
/// The most tasks one loop may start.
pub const MAX_LOOP_TASKS: u32 = 1000;
/// How often the loop looks whether its task has ended.
const POLL: Duration = Duration::from_millis(250);

/// A loop, as its run's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopSpec {
    /// Every task of the loop is this one (started at once).
    pub task: TaskSpec,
    /// No task starts after this time.
    pub until: Timestamp,
    /// Tasks at most.
    pub max_tasks: u32,
    /// The cap on running tasks its tasks run under.
    pub max_running: u32,
}

impl LoopSpec {
    /// The spec stored as a run's input.
    pub fn from_input(input: &Map<String, Value>) -> Result<Self> {
        serde_json::from_value(Value::Object(input.clone())).map_err(|err| Error::invalid("input", format!("is not a task loop: {err}")))
    }

    /// Checks the task and the bounds, filling in the defaults.
    pub fn validated(mut self) -> Result<Self> {
        self.task.auto_start = true;
        self.task = self.task.validated()?;
        if self.max_tasks == 0 {
            self.max_tasks = 100;
        }
        if self.max_tasks > MAX_LOOP_TASKS {
            return Err(Error::invalid("max_tasks", format!("is {}; at most {MAX_LOOP_TASKS}", self.max_tasks)));
        }
        if self.until <= Timestamp::now() {
            return Err(Error::invalid("until", "must be in the future: no task would start"));
        }
        Ok(self)
    }
}

/// Why a loop stopped starting tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// Its deadline passed.
    Deadline,
    /// It started as many tasks as it may.
    MaxTasks,
}

impl Stopped {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::MaxTasks => "max_tasks",
        }
    }
}

/// A task of a loop, once ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopedTask {
    pub id: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

/// How a loop ended: its run's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopReport {
    pub tasks: Vec<LoopedTask>,
    pub stopped: Stopped,
}

/// The `task_loop` kind.
#[derive(Debug, Default)]
pub struct TaskLoop;

#[async_trait]
impl Workflow for TaskLoop {
    fn validate(&self, input: &Map<String, Value>) -> Result<()> {
        LoopSpec::from_input(input)?.validated().map(drop)
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let spec = LoopSpec::from_input(ctx.input()).map_err(|err| WorkflowError::invalid_input(err.to_string()))?;
        let report = carry_out(ctx, &spec).await?;
        serde_json::to_value(&report).map_err(|err| WorkflowError::fatal(format!("the loop's report cannot be written: {err}")))
    }
}

async fn carry_out(ctx: &RunContext, spec: &LoopSpec) -> Result<LoopReport, WorkflowError> {
    let loop_id = ctx.run().id.to_string();
    let mut tasks = Vec::new();
    let mut log = format!("# Task loop {loop_id}: {}\n\n", spec.task.title);
    for number in 1..=spec.max_tasks {
        let now: Timestamp = ctx.step(&format!("task/{number}/clock"), || async { Ok(Timestamp::now()) }).await?;
        if now >= spec.until {
            return Ok(LoopReport { tasks, stopped: Stopped::Deadline });
        }
        let labels = BTreeMap::from([(LOOP_LABEL.to_owned(), loop_id.clone())]);
        let request = task_run(ctx.run().workspace.to_string(), &spec.task, format!("{loop_id}/task/{number}"), labels, spec.max_running)?;
        let id = ctx.create_run(&format!("task/{number}/create"), request).await?;
        ctx.emit_once(&format!("task/{number}/started"), "task_loop.task", json!({ "number": number, "id": id.to_string(), "status": "started" }))
            .await?;
        let ended: LoopedTask = ctx
            .step(&format!("task/{number}/ended"), || async {
                loop {
                    let run = ctx.read_run(id).await?;
                    if run.state.is_terminal() {
                        let task = TaskView::of(run)?;
                        return Ok(LoopedTask { id: id.to_string(), status: task_status(&task), reason: task_reason(&task) });
                    }
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        () = ctx.cancelled() => return Err(WorkflowError::Cancelled),
                    }
                }
            })
            .await?;
        let said = json!({ "number": number, "id": ended.id, "status": ended.status, "reason": ended.reason });
        ctx.emit_once(&format!("task/{number}/ended/said"), "task_loop.task", said).await?;
        log.push_str(&format!(
            "- task {number} ({}): {}{}\n",
            ended.id,
            ended.status.as_str(),
            ended.reason.map(|reason| format!(", {}", reason.as_str())).unwrap_or_default()
        ));
        let header = UploadHeader { name: "loop.md".into(), kind: ArtifactKind::Document, media_type: "text/markdown".into(), ..UploadHeader::default() };
        ctx.put_artifact(&format!("task/{number}/log"), header, log.as_bytes()).await?;
        tasks.push(ended);
    }
    Ok(LoopReport { tasks, stopped: Stopped::MaxTasks })
}
