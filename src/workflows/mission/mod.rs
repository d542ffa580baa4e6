//! `mission`: a request in natural language carried out by agents. Memory (related past
//! missions, found by full-text search) → an analysis agent plans a DAG of steps, checked
//! (known roles, no cycle, a bounded size) → a debate gates the plan (rejected: the mission
//! halts with the debate's reasons; approved with conditions: the conditions join every step's
//! instructions) → the DAG runs: every step whose dependencies are done starts at once, up to
//! the parallelism limit, each by its role's agent, reading its dependencies' outputs and
//! storing its own as the artifact `steps/{id}.md` (so lineage links them) → a validation agent
//! checks the results against the request and may send failed steps (and what depends on them)
//! back, up to `max_revisions` → the mission's memory is stored for later ones.
//!
//! Steps that need approval wait for a decision (`approve/{id}`), the run holding no worker
//! meanwhile. Every model call is a journaled step, so a mission resumes after a crash without
//! repeating finished steps, and replays exactly.

pub mod plan;
mod service;
pub mod spec;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::atomic::{AtomicU32, Ordering},
};

use async_trait::async_trait;
use futures::{
    stream::{FuturesUnordered, StreamExt},
    Stream,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub use service::{CreateMissionRequest, MissionResource, MissionView, Missions};

use self::{
    plan::{Plan, PlanStep},
    spec::MissionSpec,
};
use crate::{
    artifacts::{ArtifactRef, UploadHeader},
    domain::{ArtifactKind, DecisionOutcome, ErrorCode, Timestamp},
    engine::{RunContext, Workflow, WorkflowError},
    error::Result,
    models::{ModelRequest, Origin},
    workflows::{
        debate::{self, aggregate::Outcome},
        structured::{ask, Agent, Answer, Answered},
    },
};

/// The version of the prompts below, journaled with every call.
const PROMPT_VERSION: &str = "mission-v1";
/// The role of the agent that plans.
pub const PLANNER_ROLE: &str = "analyst";
/// The role of the agent that validates.
pub const VALIDATOR_ROLE: &str = "validator";
/// Memories of past missions read before planning.
const MEMORIES: u32 = 5;
/// The most bytes of a dependency's output put in a step's prompt.
const MAX_INPUT_BYTES: usize = 32 << 10;

/// The `mission` kind.
pub struct Mission;

#[async_trait]
impl Workflow for Mission {
    fn validate(&self, input: &Map<String, Value>) -> Result<()> {
        MissionSpec::from_input(input).map(drop)
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let spec = MissionSpec::from_input(ctx.input()).map_err(|err| WorkflowError::invalid_input(err.to_string()))?;
        let report = mission(ctx, &spec).await?;
        serde_json::to_value(&report).map_err(|err| WorkflowError::fatal(format!("the mission's report cannot be written: {err}")))
    }
}

/// How a mission ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissionOutcome {
    /// The validation agent found the results answer the request.
    Completed,
    /// The gating debate rejected the plan.
    Rejected,
    /// No runnable plan, steps that failed, or results the validation did not accept.
    Failed,
}

impl MissionOutcome {
    /// The name in outputs and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// What became of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Its output is stored.
    Done,
    /// Its agent's model call failed.
    Failed,
    /// A person declined to approve it.
    Declined,
    /// A step it depends on did not finish.
    Blocked,
}

impl StepState {
    /// The name in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Declined => "declined",
            Self::Blocked => "blocked",
        }
    }
}

/// One step's record in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub id: String,
    pub role: String,
    pub state: StepState,
    /// Times it was done (more than one when the validation sent it back).
    pub attempts: u32,
    /// The id of its output artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// When its last attempt started and finished (µs since the epoch).
    pub started_at_us: i64,
    pub finished_at_us: i64,
    /// Why it did not finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The gate's decision, as the mission reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub outcome: Outcome,
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vetoed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub veto_reason: Option<String>,
    pub conditions: Vec<String>,
    /// The id of the debate's report artifact (`mission/gate.json`).
    pub report_artifact: String,
}

/// The mission's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissionReport {
    pub outcome: MissionOutcome,
    /// What was done, or why not.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateReport>,
    pub steps: Vec<StepReport>,
    /// The past missions whose memory was read.
    pub memories: Vec<String>,
    /// Validations made (1 plus the revisions).
    pub validations: u32,
    /// Model calls made by the steps and the validations.
    pub model_calls: u32,
}

/// The validation agent's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Validation {
    passed: bool,
    #[serde(default)]
    failed_steps: Vec<StepProblem>,
    summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepProblem {
    id: String,
    problem: String,
}

impl Answer for Validation {
    const SHAPE: &'static str = r#"{"passed": true|false, "failed_steps": [{"id": "<step id>", "problem": "<what is wrong>"}], "summary": "<what was achieved>"}"#;

    fn problem(&self) -> Option<String> {
        self.summary.trim().is_empty().then(|| "`summary` is empty".to_owned())
    }
}

/// The model calls the steps and the validations may still make.
struct Budget {
    used: AtomicU32,
    max: u32,
}

impl Budget {
    fn take(&self, calls: u32) -> Result<(), WorkflowError> {
        let used = self.used.fetch_add(calls, Ordering::Relaxed) + calls;
        if used > self.max {
            return Err(WorkflowError::Failed {
                code: ErrorCode::Failed,
                message: format!("the mission's budget of {} model calls is spent", self.max),
                retryable: false,
            });
        }
        Ok(())
    }
}

/// Runs the mission.
async fn mission(ctx: &RunContext, spec: &MissionSpec) -> Result<MissionReport, WorkflowError> {
    let mut report = MissionReport {
        outcome: MissionOutcome::Failed,
        summary: String::new(),
        plan: None,
        gate: None,
        steps: Vec::new(),
        memories: Vec::new(),
        validations: 0,
        model_calls: 0,
    };

    phase(ctx, "memory").await?;
    let memories = if spec.memory { ctx.recall("memory", &spec.request, MEMORIES).await? } else { Vec::new() };
    report.memories = memories.iter().map(|memory| memory.run_id.clone()).collect();
    let mut memory_text = String::new();
    if !memories.is_empty() {
        memory_text.push_str("What related past missions found:\n");
        for memory in &memories {
            memory_text.push_str(&format!("- asked \"{}\": {} ({})\n", memory.request, memory.summary, memory.outcome));
        }
        memory_text.push('\n');
    }

    phase(ctx, "plan").await?;
    let plan = match plan(ctx, spec, &memory_text).await? {
        Ok(plan) => plan,
        Err(reason) => return finish(ctx, spec, report, MissionOutcome::Failed, reason).await,
    };
    ctx.emit("mission.plan", serde_json::to_value(&plan).unwrap_or_default()).await?;
    report.plan = Some(plan.clone());

    let mut conditions = Vec::new();
    if !spec.gate.skip {
        phase(ctx, "gate").await?;
        let gate_spec = spec.gate_spec(plan.describe()).map_err(|err| WorkflowError::invalid_input(err.to_string()))?;
        let debated = debate::deliberate(ctx, &gate_spec, Some(plan.describe())).await?;
        let bytes = serde_json::to_vec_pretty(&debated).map_err(|err| WorkflowError::fatal(format!("the gate's report cannot be written: {err}")))?;
        let header = UploadHeader { name: "mission/gate.json".into(), kind: ArtifactKind::Report, media_type: "application/json".into(), ..UploadHeader::default() };
        let stored = ctx.put_artifact("gate/report", header, &bytes).await?;
        let decision = debated.decision;
        report.gate = Some(GateReport {
            outcome: decision.outcome,
            score: decision.score,
            vetoed_by: decision.vetoed_by.clone(),
            veto_reason: decision.veto_reason.clone(),
            conditions: decision.conditions.clone(),
            report_artifact: stored.id,
        });
        match decision.outcome {
            Outcome::Approved => {}
            Outcome::ConditionallyApproved => conditions = decision.conditions,
            other => {
                let why = match (&decision.vetoed_by, &decision.veto_reason) {
                    (Some(by), Some(reason)) => format!("vetoed by {by}: {reason}"),
                    _ => format!("{} with a score of {:.2}", other.as_str(), decision.score),
                };
                return finish(ctx, spec, report, MissionOutcome::Rejected, format!("the plan was not approved: {why}")).await;
            }
        }
    }

    phase(ctx, "execute").await?;
    let budget = Budget { used: AtomicU32::new(0), max: spec.limits.max_model_calls };
    let mut states: BTreeMap<String, StepReport> = BTreeMap::new();
    let mut problems: BTreeMap<String, String> = BTreeMap::new();
    let mut pending: BTreeSet<String> = plan.steps.iter().map(|step| step.id.clone()).collect();
    let mut revision = 0;
    let (outcome, summary) = loop {
        let runner = Runner { ctx, spec, plan: &plan, conditions: &conditions, budget: &budget, revision, problems: &problems };
        runner.run(&pending, &mut states).await?;
        let unfinished: Vec<&StepReport> = states.values().filter(|step| step.state != StepState::Done).collect();
        if !unfinished.is_empty() {
            let list: Vec<String> = unfinished.iter().map(|step| format!("{} ({})", step.id, step.state.as_str())).collect();
            break (MissionOutcome::Failed, format!("steps did not finish: {}", list.join(", ")));
        }

        phase(ctx, "validate").await?;
        budget.take(1)?;
        report.validations += 1;
        let validation = validate(ctx, spec, &plan, revision).await?;
        let validation = match validation {
            Answered::Given(validation) => validation,
            Answered::Abstained(reason) => break (MissionOutcome::Failed, format!("the validation gave no usable answer: {reason}")),
        };
        if validation.passed {
            break (MissionOutcome::Completed, validation.summary);
        }
        problems = validation
            .failed_steps
            .into_iter()
            .filter(|problem| states.contains_key(&problem.id))
            .map(|problem| (problem.id, problem.problem))
            .collect();
        if revision >= spec.limits.max_revisions || problems.is_empty() {
            break (MissionOutcome::Failed, format!("the validation did not accept the results: {}", validation.summary));
        }
        revision += 1;
        pending = dependents(&plan, problems.keys().cloned().collect());
    };
    report.steps = plan.steps.iter().filter_map(|step| states.get(&step.id).cloned()).collect();
    report.model_calls = budget.used.load(Ordering::Relaxed).min(budget.max);
    finish(ctx, spec, report, outcome, summary).await
}

/// Asks for a plan, and once more with what was wrong if it cannot run; the error is the
/// reason a mission without a runnable plan fails.
async fn plan(ctx: &RunContext, spec: &MissionSpec, memory: &str) -> Result<Result<Plan, String>, WorkflowError> {
    let roles: BTreeSet<String> = spec.roles.iter().map(|role| role.name.clone()).collect();
    let role_list: Vec<String> = spec.roles.iter().map(|role| format!("- {}: {}", role.name, role.description)).collect();
    let prompt = format!(
        "{memory}Plan how to achieve this request as steps for agents, each done by one of the roles below. Steps that do not depend on each other run at the same time. At most {} steps.\n\nRequest:\n{}\n\nRoles:\n{}",
        spec.limits.max_steps,
        spec.request,
        role_list.join("\n")
    );
    let planner = || Agent {
        role: PLANNER_ROLE,
        chain: &[],
        instructions: "You are the analysis agent: you turn a request into a plan of steps. Answer in JSON only.".to_owned(),
    };
    let problem = match ask::<Plan>(ctx, "plan", planner(), &prompt, PROMPT_VERSION).await? {
        Answered::Given(plan) => match plan.check(&roles, spec.limits.max_steps as usize) {
            None => return Ok(Ok(plan)),
            Some(problem) => problem,
        },
        Answered::Abstained(reason) => return Ok(Err(format!("the planner gave no usable plan: {reason}"))),
    };
    let prompt = format!("{prompt}\n\nYour previous plan could not be run: {problem}. Plan again.");
    Ok(match ask::<Plan>(ctx, "plan/again", planner(), &prompt, PROMPT_VERSION).await? {
        Answered::Given(plan) => match plan.check(&roles, spec.limits.max_steps as usize) {
            None => Ok(plan),
            Some(problem) => Err(format!("the planner's plan cannot run: {problem}")),
        },
        Answered::Abstained(reason) => Err(format!("the planner gave no usable plan: {reason}")),
    })
}

/// Asks the validation agent about the results.
async fn validate(ctx: &RunContext, spec: &MissionSpec, plan: &Plan, revision: u32) -> Result<Answered<Validation>, WorkflowError> {
    let mut outputs = String::new();
    for step in &plan.steps {
        let content = read_output(ctx, &format!("validate/{revision}/input/{}", step.id), &step.id).await?;
        outputs.push_str(&format!("Step {} ({}): {}\n{content}\n\n", step.id, step.role, step.instructions));
    }
    let prompt = format!("Check whether these results achieve the request. Name each step whose output is wrong or missing.\n\nRequest:\n{}\n\nResults:\n{outputs}", spec.request);
    let validator = Agent {
        role: VALIDATOR_ROLE,
        chain: &[],
        instructions: "You are the validation agent: you check results against the request. Answer in JSON only.".to_owned(),
    };
    ask::<Validation>(ctx, &format!("validate/{revision}"), validator, &prompt, PROMPT_VERSION).await
}

/// Reads a step's output artifact as a journaled step (recording the read for lineage).
async fn read_output(ctx: &RunContext, key: &str, step: &str) -> Result<String, WorkflowError> {
    let reference = ArtifactRef { run_id: ctx.run_id().to_string(), name: output_name(step), ..ArtifactRef::default() };
    let (_, content) = ctx.get_artifact(key, reference).await?;
    Ok(String::from_utf8_lossy(&content[..content.len().min(MAX_INPUT_BYTES)]).into_owned())
}

fn output_name(step: &str) -> String {
    format!("steps/{step}.md")
}

/// The steps to do again: those named, and every step that depends on them, transitively.
fn dependents(plan: &Plan, mut ids: BTreeSet<String>) -> BTreeSet<String> {
    loop {
        let more: Vec<String> = plan
            .steps
            .iter()
            .filter(|step| !ids.contains(&step.id) && step.depends_on.iter().any(|dependency| ids.contains(dependency)))
            .map(|step| step.id.clone())
            .collect();
        if more.is_empty() {
            return ids;
        }
        ids.extend(more);
    }
}

/// Runs the pending steps of one revision of the DAG.
struct Runner<'a> {
    ctx: &'a RunContext,
    spec: &'a MissionSpec,
    plan: &'a Plan,
    conditions: &'a [String],
    budget: &'a Budget,
    revision: u32,
    problems: &'a BTreeMap<String, String>,
}

/// Awaits `work` while the steps in `running` go on (those that finish wait in `finished`): a
/// step holding the store's only writer connection mid-transaction must not wait for a poll
/// that would come only after `work`. A step's error is returned at once.
async fn while_running<S, T>(running: &mut S, finished: &mut Vec<StepReport>, work: impl Future<Output = T>) -> Result<T, WorkflowError>
where
    S: Stream<Item = Result<StepReport, WorkflowError>> + Unpin,
{
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return Ok(out),
            Some(done) = running.next() => finished.push(done?),
        }
    }
}

impl Runner<'_> {
    /// Starts every pending step whose dependencies are done, up to the parallelism, as others
    /// finish. A step needing an approval not given yet starts only when nothing else runs, so
    /// the mission suspends with no work in flight.
    ///
    /// Steps finish in whatever order their agents answer, but the runner takes them in the
    /// order its journal gives: the first to finish is journaled as the next, so a resumed or
    /// replayed mission reports its steps (and decides what starts after each) in the same
    /// order as the first time. Steps that finished but are not yet taken still count as
    /// running, so what starts depends only on that order.
    async fn run(&self, pending: &BTreeSet<String>, states: &mut BTreeMap<String, StepReport>) -> Result<(), WorkflowError> {
        let mut waiting: Vec<&PlanStep> = self.plan.steps.iter().filter(|step| pending.contains(&step.id)).collect();
        let mut running = FuturesUnordered::new();
        let mut finished = Vec::new();
        let mut finished_here: BTreeSet<String> = BTreeSet::new();
        for taken in 0.. {
            let mut index = 0;
            while index < waiting.len() && running.len() + finished.len() < self.spec.limits.parallelism as usize {
                let step = waiting[index];
                let dependencies_done = step.depends_on.iter().all(|dependency| {
                    !pending.contains(dependency) || finished_here.contains(dependency)
                });
                let dependency_failed = step.depends_on.iter().any(|dependency| states.get(dependency).is_some_and(|state| state.state != StepState::Done));
                if dependency_failed {
                    states.insert(step.id.clone(), StepReport {
                        id: step.id.clone(),
                        role: step.role.clone(),
                        state: StepState::Blocked,
                        attempts: 0,
                        artifact: None,
                        started_at_us: 0,
                        finished_at_us: 0,
                        error: Some("a step it depends on did not finish".into()),
                    });
                    finished_here.insert(step.id.clone());
                    waiting.remove(index);
                    continue;
                }
                let awaits_approval = step.needs_approval && !self.ctx.run().decisions.contains_key(&approval_key(&step.id));
                if !dependencies_done || (awaits_approval && !running.is_empty()) {
                    index += 1;
                    continue;
                }
                running.push(self.do_step(step));
                waiting.remove(index);
            }
            let Some(done) = self.take_next(&mut running, &mut finished, taken).await? else { break };
            finished_here.insert(done.id.clone());
            states.insert(done.id.clone(), done);
        }
        Ok(())
    }

    /// The `taken`-th step to finish, as the journal says (or the first to finish, journaled so),
    /// reported in the transcript; `None` once nothing runs.
    async fn take_next<S>(&self, running: &mut S, finished: &mut Vec<StepReport>, taken: u32) -> Result<Option<StepReport>, WorkflowError>
    where
        S: Stream<Item = Result<StepReport, WorkflowError>> + Unpin,
    {
        if finished.is_empty() {
            match running.next().await {
                Some(done) => finished.push(done?),
                None => return Ok(None),
            }
        }
        let first = finished[0].id.clone();
        let key = format!("dag/r{}/finished/{taken}", self.revision);
        let id: String = while_running(running, finished, self.ctx.step(&key, || async { Ok(first) })).await??;
        let report = loop {
            if let Some(at) = finished.iter().position(|report| report.id == id) {
                break finished.remove(at);
            }
            match running.next().await {
                Some(done) => finished.push(done?),
                None => return Err(WorkflowError::fatal(format!("the journal says step {id} finished as number {taken}, but it is not running"))),
            }
        };
        let event = json!({ "id": report.id, "state": report.state, "revision": self.revision });
        while_running(running, finished, self.ctx.emit("mission.step", event)).await??;
        Ok(Some(report))
    }

    /// Does one step: its approval, its inputs, its agent's call, its output.
    async fn do_step(&self, step: &PlanStep) -> Result<StepReport, WorkflowError> {
        let ctx = self.ctx;
        let key = format!("step/{}/r{}", step.id, self.revision);
        let mut report = StepReport {
            id: step.id.clone(),
            role: step.role.clone(),
            state: StepState::Done,
            attempts: self.revision + 1,
            artifact: None,
            started_at_us: 0,
            finished_at_us: 0,
            error: None,
        };
        if step.needs_approval {
            let prompt = format!("Approve step {} ({}): {}", step.id, step.role, step.instructions);
            let decision = ctx.wait_for_decision(&approval_key(&step.id), &prompt).await?;
            if decision.outcome == DecisionOutcome::Reject {
                report.state = StepState::Declined;
                report.error = Some(format!("not approved{}", if decision.note.is_empty() { String::new() } else { format!(": {}", decision.note) }));
                return Ok(report);
            }
        }
        report.started_at_us = ctx.step(&format!("{key}/started"), || async { Ok(Timestamp::now().as_micros()) }).await?;
        let mut inputs = String::new();
        for dependency in &step.depends_on {
            let content = read_output(ctx, &format!("{key}/input/{dependency}"), dependency).await?;
            inputs.push_str(&format!("Output of step {dependency}:\n{content}\n\n"));
        }
        let mut prompt = format!("The mission's request:\n{}\n\nYour step ({}): {}\n", self.spec.request, step.id, step.instructions);
        if !self.conditions.is_empty() {
            prompt.push_str(&format!("\nThe plan was approved on these conditions; keep to them:\n- {}\n", self.conditions.join("\n- ")));
        }
        if let Some(problem) = self.problems.get(&step.id) {
            prompt.push_str(&format!("\nYour previous output for this step was found wrong: {problem}\nDo it again, better.\n"));
        }
        if !inputs.is_empty() {
            prompt.push_str(&format!("\n{inputs}"));
        }
        self.budget.take(1)?;
        let mut request = ModelRequest::prompt(prompt);
        request.system = Some(format!("You are the {} agent of a mission. Do your step and answer with its result.", step.role));
        let chain = self.spec.roles.iter().find(|role| role.name == step.role).map(|role| role.chain.clone()).unwrap_or_default();
        request.origin = Origin { role: Some(step.role.clone()), chain, ..Origin::default() };
        let call = match ctx.generate(&key, request, Some(PROMPT_VERSION)).await {
            Ok(call) => call,
            Err(WorkflowError::Failed { code: ErrorCode::ModelFailed, message, .. }) => {
                report.state = StepState::Failed;
                report.error = Some(message);
                return Ok(report);
            }
            Err(other) => return Err(other),
        };
        let mut header = UploadHeader { name: output_name(&step.id), kind: ArtifactKind::Document, media_type: "text/markdown".into(), ..UploadHeader::default() };
        header.producer.tool = Some(format!("{}/{}", call.provider, call.model));
        let stored = ctx.put_artifact(&format!("{key}/output"), header, call.text.as_bytes()).await?;
        report.artifact = Some(stored.id);
        report.finished_at_us = ctx.step(&format!("{key}/finished"), || async { Ok(Timestamp::now().as_micros()) }).await?;
        Ok(report)
    }
}

fn approval_key(step: &str) -> String {
    format!("approve/{step}")
}

/// Stores the mission's memory and returns its report.
async fn finish(
    ctx: &RunContext,
    spec: &MissionSpec,
    mut report: MissionReport,
    outcome: MissionOutcome,
    summary: String,
) -> Result<MissionReport, WorkflowError> {
    report.outcome = outcome;
    report.summary = summary;
    if spec.memory {
        ctx.remember("remember", &spec.request, &report.summary, outcome.as_str()).await?;
    }
    ctx.emit("mission.outcome", json!({ "outcome": outcome, "summary": report.summary })).await?;
    Ok(report)
}

/// Records the start of a phase.
async fn phase(ctx: &RunContext, phase: &str) -> Result<(), WorkflowError> {
    ctx.emit("mission.phase", json!({ "phase": phase })).await
}
