//! Tasks (seed `003`): an author agent and its reviewers work on a project in rounds of
//! discussion, implementation, review and verification, each round ending at a gate, until the
//! gate passes, the rounds or the deadline run out, or a system failure ends it.
//!
//! A task is a run of kind `task` whose input is its [`TaskSpec`] and whose output its
//! [`TaskReport`]. Every agent turn and command is a journaled step, so a task resumes after a
//! restart without repeating a finished phase. A task created without `auto_start` waits at
//! [`START_KEY`] for `StartTask`; in manual mode it waits at [`AUTHOR_DECISION_KEY`] after the
//! proposal review, holding no worker. The transcript is the run's `task.message` and
//! `task.gate` events.

pub mod gate;
pub mod looping;
pub mod sandbox;
mod service;
pub mod spec;
pub mod tree;

use std::{path::Path, time::Duration};

use async_trait::async_trait;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use self::{
    gate::{Check, CheckOutcome, GateResult, Review, Verdict},
    sandbox::{ChangelogEntry, Sandbox},
    spec::{Mode, Participant, TaskSpec},
};
pub use self::{
    looping::TaskLoop,
    service::{task_reason, task_status, CreateLoopRequest, CreateTaskRequest, LoopView, Progress, TaskResource, TaskStats, TaskView, Tasks},
};
use super::{
    gates,
    shell::{run_command, CommandSpec, Ended},
    structured::{ask_with, Answer, Answered},
};
use crate::{
    artifacts::UploadHeader,
    domain::{ArtifactKind, DecisionOutcome, ErrorCode, Timestamp},
    engine::{RunContext, Workflow, WorkflowError},
    error::{Error, Result},
    models::{ModelRequest, Origin},
};

/// The wait a task created without `auto_start` stops at until `StartTask`.
pub const START_KEY: &str = "start";
/// The wait a manual task stops at after the proposal review, until the author decides.
pub const AUTHOR_DECISION_KEY: &str = "author";
/// The version of the prompts, journaled with every call.
const PROMPT_VERSION: &str = "task-v1";
/// The most of a diff shown to reviewers, in bytes.
const MAX_DIFF_BYTES: usize = 256 << 10;
/// The most of the final diff kept as the task's artifact, in bytes.
const MAX_FINAL_DIFF_BYTES: usize = 4 << 20;
/// The most of a command's output the gate's findings quote, in bytes.
const FINDING_TAIL_BYTES: usize = 2000;

/// The `task` kind.
#[derive(Debug, Default)]
pub struct Task;

#[async_trait]
impl Workflow for Task {
    fn validate(&self, input: &Map<String, Value>) -> Result<()> {
        TaskSpec::from_input(input)?.validated().map(drop)
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let spec = TaskSpec::from_input(ctx.input()).map_err(|err| WorkflowError::invalid_input(err.to_string()))?;
        let report = carry_out(ctx, &spec).await?;
        serde_json::to_value(&report).map_err(|err| WorkflowError::fatal(format!("the task's report cannot be written: {err}")))
    }
}

/// Where a task is, as users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    WaitingManual,
    Passed,
    FailedGate,
    FailedSystem,
    Canceled,
}

impl Status {
    pub const ALL: [Self; 7] =
        [Self::Queued, Self::Running, Self::WaitingManual, Self::Passed, Self::FailedGate, Self::FailedSystem, Self::Canceled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::WaitingManual => "waiting_manual",
            Self::Passed => "passed",
            Self::FailedGate => "failed_gate",
            Self::FailedSystem => "failed_system",
            Self::Canceled => "canceled",
        }
    }

    /// Whether the task has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Passed | Self::FailedGate | Self::FailedSystem | Self::Canceled)
    }
}

/// Why a task ended so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Passed,
    /// The gate failed in the last round.
    GateFailed,
    /// `evolve_until` passed before the gate did.
    DeadlineReached,
    /// The author rejected the proposal.
    AuthorRejected,
    /// The task passed, but its changes could not be merged back.
    MergeConflict,
    /// The watchdog stopped it at its time limit.
    WatchdogTimeout,
    /// An operator failed it, for a reason of their own.
    ForceFailed,
    /// A provider failed for system reasons, and no fallback could take over.
    ProviderFailed,
    /// A command could not be run.
    CommandFailed,
    /// Cancelled by a user.
    Canceled,
    /// Any other failure of the system.
    SystemError,
}

impl Reason {
    pub const ALL: [Self; 11] = [
        Self::Passed,
        Self::GateFailed,
        Self::DeadlineReached,
        Self::AuthorRejected,
        Self::MergeConflict,
        Self::WatchdogTimeout,
        Self::ForceFailed,
        Self::ProviderFailed,
        Self::CommandFailed,
        Self::Canceled,
        Self::SystemError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::GateFailed => "gate_failed",
            Self::DeadlineReached => "deadline_reached",
            Self::AuthorRejected => "author_rejected",
            Self::MergeConflict => "merge_conflict",
            Self::WatchdogTimeout => "watchdog_timeout",
            Self::ForceFailed => "force_failed",
            Self::ProviderFailed => "provider_failed",
            Self::CommandFailed => "command_failed",
            Self::Canceled => "canceled",
            Self::SystemError => "system_error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == text)
    }
}

/// One round, as played.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    pub number: u32,
    /// The author's plan.
    pub discussion: String,
    /// The reviewers' review of the proposal (manual mode, first round).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proposal_reviews: Vec<Review>,
    #[serde(default)]
    pub reviews: Vec<Review>,
    pub tests: Check,
    pub lint: Check,
    /// The results of the task's own gates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<crate::domain::GateResult>,
    pub gate: GateResult,
    /// The round's transcript artifact (prompts and answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_artifact_id: Option<String>,
    /// Provider failures the author's calls met (a fallback took over), as `provider:class`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_errors: Vec<String>,
}

/// How a task ended: the run's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub status: Status,
    pub reason: Reason,
    pub rounds: Vec<Round>,
    /// Where the work happened (the sandbox, or the project).
    pub workdir: String,
    pub merged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_artifact_id: Option<String>,
    pub message: String,
}

/// A line of a task's transcript: the data of its `task.message` and `task.gate` events,
/// written by the workflow and read back by `GetTask` and `WatchTask`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Transcript {
    /// Someone spoke in a phase of a round.
    Said { round: u32, phase: String, speaker: String, text: String },
    /// A round's gate.
    Gate { round: u32, result: String, findings: Vec<String> },
}

impl Transcript {
    const SAID: &'static str = "task.message";
    const GATE: &'static str = "task.gate";

    /// The event type and data it is written as.
    fn event(&self) -> (&'static str, Value) {
        let data = match self {
            Self::Said { round, phase, speaker, text } => json!({ "round": round, "phase": phase, "speaker": speaker, "text": text }),
            Self::Gate { round, result, findings } => json!({ "round": round, "result": result, "findings": findings }),
        };
        (if matches!(self, Self::Said { .. }) { Self::SAID } else { Self::GATE }, data)
    }

    /// The transcript line a workflow event is, if it is one.
    pub fn of(event_type: &str, data: &Value) -> Option<Self> {
        #[derive(Deserialize)]
        struct Said {
            round: u32,
            phase: String,
            speaker: String,
            text: String,
        }
        #[derive(Deserialize)]
        struct Gate {
            round: u32,
            result: String,
            findings: Vec<String>,
        }
        match event_type {
            Self::SAID => serde_json::from_value::<Said>(data.clone())
                .ok()
                .map(|said| Self::Said { round: said.round, phase: said.phase, speaker: said.speaker, text: said.text }),
            Self::GATE => serde_json::from_value::<Gate>(data.clone())
                .ok()
                .map(|gate| Self::Gate { round: gate.round, result: gate.result, findings: gate.findings }),
            _ => None,
        }
    }

    /// Appends it to the run's events once, as the journaled step `key`.
    async fn emit_once(&self, ctx: &RunContext, key: &str) -> Result<(), WorkflowError> {
        let (event_type, data) = self.event();
        ctx.emit_once(key, event_type, data).await
    }
}

/// A review, as reviewers answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ReviewAnswer {
    verdict: Verdict,
    #[serde(default)]
    findings: Vec<String>,
}

impl Answer for ReviewAnswer {
    const SHAPE: &'static str =
        r#"{"verdict": "no_blocker" | "blocker" | "unknown", "findings": ["what is wrong or missing, one per item"]}"#;

    fn problem(&self) -> Option<String> {
        (self.verdict == Verdict::Blocker && self.findings.is_empty()).then(|| "a blocker must name its findings".to_owned())
    }
}

async fn carry_out(ctx: &RunContext, spec: &TaskSpec) -> Result<TaskReport, WorkflowError> {
    if !spec.auto_start {
        let decision = ctx.wait_for_decision(START_KEY, &format!("Start the task \"{}\"", spec.title)).await?;
        if decision.outcome == DecisionOutcome::Reject {
            return Ok(TaskReport {
                status: Status::Canceled,
                reason: Reason::Canceled,
                rounds: Vec::new(),
                workdir: String::new(),
                merged: false,
                diff_artifact_id: None,
                message: "not started".into(),
            });
        }
    }
    let run_id = ctx.run().id.to_string();
    let place: Sandbox = ctx
        .step("workdir", || async {
            let spec = spec.clone();
            Ok(blocking(move || prepare(&spec, &run_id)).await?)
        })
        .await?;
    let mut rounds: Vec<Round> = Vec::new();
    let mut findings: Vec<String> = Vec::new();
    for number in 1..=spec.max_rounds {
        if let Some(until) = spec.evolve_until {
            let now: Timestamp = ctx.step(&format!("round/{number}/clock"), || async { Ok(Timestamp::now()) }).await?;
            if now >= until {
                let message = format!("the deadline passed before round {number}");
                return finish(ctx, spec, &place, rounds, Status::FailedGate, Reason::DeadlineReached, message).await;
            }
        }
        let (round, approved) = play_round(ctx, spec, &place, number, &findings).await?;
        let passed = round.gate.passed();
        findings.clone_from(&round.gate.findings);
        rounds.push(round);
        if !approved {
            return finish(ctx, spec, &place, rounds, Status::Canceled, Reason::AuthorRejected, "the author rejected the proposal".into()).await;
        }
        if passed {
            return finish(ctx, spec, &place, rounds, Status::Passed, Reason::Passed, format!("passed in round {number}")).await;
        }
    }
    let message = match spec.max_rounds {
        1 => "the gate failed in the task's one round".to_owned(),
        rounds => format!("the gate failed in all {rounds} rounds"),
    };
    finish(ctx, spec, &place, rounds, Status::FailedGate, Reason::GateFailed, message).await
}

/// The sandbox (a copy of the project) or, without one, the project itself with its state now.
fn prepare(spec: &TaskSpec, run_id: &str) -> Result<Sandbox> {
    if !spec.sandbox {
        return sandbox::in_place(&spec.project_dir);
    }
    let path = match &spec.sandbox_path {
        Some(path) => path.clone(),
        None => sandbox::default_path(&spec.project_dir, &Timestamp::now().to_compact(), run_id)?,
    };
    sandbox::create(&spec.project_dir, &path)
}

/// One round: discussion, (the proposal review and the author's decision), implementation,
/// review, verify, gate. `false` if the author rejected the proposal.
async fn play_round(ctx: &RunContext, spec: &TaskSpec, place: &Sandbox, number: u32, findings: &[String]) -> Result<(Round, bool), WorkflowError> {
    let workdir = place.path.as_path();
    let mut transcript = String::new();
    let key = |phase: &str| format!("round/{number}/{phase}");
    let mut ask = format!("Task: {}\n\n{}\n\n{}\n", spec.title, spec.description, spec.evolution.guidance());
    if !findings.is_empty() {
        ask.push_str(&format!("\nThe last round did not pass the gate. Fix these findings:\n- {}\n", findings.join("\n- ")));
    }
    let discussion_prompt = format!("{ask}\nPropose how you will do it. Do not change any file yet.");
    let mut provider_errors = Vec::new();
    let discussion = author_turn(ctx, spec, workdir, &key("discussion"), &discussion_prompt, &mut provider_errors).await?;
    say(ctx, &key("discussion/said"), number, "discussion", &spec.author.id, &discussion).await?;
    note(&mut transcript, "discussion", &spec.author.id, &discussion_prompt, &discussion);

    let mut proposal_reviews = Vec::new();
    if spec.mode == Mode::Manual && number == 1 {
        let prompt = format!("{ask}\nThe author proposes:\n{discussion}\n\nReview the proposal before anything is changed.");
        proposal_reviews = reviews(ctx, spec, workdir, &key("proposal"), &prompt).await?;
        for (index, review) in proposal_reviews.iter().enumerate() {
            say(ctx, &key(&format!("proposal/{index}/said")), number, "proposal_review", &review.reviewer, &review_text(review)).await?;
        }
        let decision = ctx.wait_for_decision(AUTHOR_DECISION_KEY, &format!("Approve the proposal for \"{}\"?", spec.title)).await?;
        if decision.outcome == DecisionOutcome::Reject {
            let round = Round {
                number,
                discussion,
                proposal_reviews,
                reviews: Vec::new(),
                tests: Check::skipped(),
                lint: Check::skipped(),
                checks: Vec::new(),
                gate: GateResult { failure: None, findings: Vec::new() },
                transcript_artifact_id: None,
                provider_errors,
            };
            return Ok((round, false));
        }
    }

    let implementation_prompt = format!(
        "{ask}\nYour plan:\n{discussion}\n\nImplement it now: change the files in your working directory ({}).",
        workdir.display()
    );
    let implementation = author_turn(ctx, spec, workdir, &key("implementation"), &implementation_prompt, &mut provider_errors).await?;
    say(ctx, &key("implementation/said"), number, "implementation", &spec.author.id, &implementation).await?;
    note(&mut transcript, "implementation", &spec.author.id, &implementation_prompt, &implementation);

    let diff: String = ctx
        .step(&key("diff"), || async {
            let place = place.clone();
            Ok(blocking(move || bounded_diff(&place, MAX_DIFF_BYTES)).await?)
        })
        .await?;
    let diff = if diff.is_empty() { "(no file changed)".to_owned() } else { diff };
    let review_prompt = format!(
        "{ask}\nThe author's plan:\n{discussion}\n\nThe author's changes in the working directory ({}):\n{diff}\n\nReview them. Say `blocker` if something must change before this can pass.",
        workdir.display()
    );
    let reviews = reviews(ctx, spec, workdir, &key("review"), &review_prompt).await?;
    for (index, review) in reviews.iter().enumerate() {
        say(ctx, &key(&format!("review/{index}/said")), number, "review", &review.reviewer, &review_text(review)).await?;
        note(&mut transcript, "review", &review.reviewer, &review_prompt, &review_text(review));
    }

    let tests = verify(ctx, spec, workdir, number, "tests", spec.test_command.as_deref()).await?;
    let lint = verify(ctx, spec, workdir, number, "lint", spec.lint_command.as_deref()).await?;
    let checks = check_gates(ctx, spec, workdir, &key("gates")).await?;
    let reviewers: Vec<String> = spec.reviewers.iter().map(|reviewer| reviewer.id.clone()).collect();
    let gate = gate::evaluate(&tests, &lint, &checks, &reviewers, &reviews);
    Transcript::Gate { round: number, result: gate.as_str().to_owned(), findings: gate.findings.clone() }.emit_once(ctx, &key("gate")).await?;
    note(&mut transcript, "gate", "system", "", &format!("{}\n{}", gate.as_str(), gate.findings.join("\n")));

    let transcript_artifact = put(ctx, &key("transcript"), &format!("rounds/{number}/transcript.md"), "text/markdown", transcript.into_bytes()).await?;
    let reviews_json = serde_json::to_vec_pretty(&reviews).map_err(|err| WorkflowError::fatal(format!("reviews cannot be written: {err}")))?;
    put(ctx, &key("reviews"), &format!("rounds/{number}/reviews.json"), "application/json", reviews_json).await?;
    let round = Round {
        number,
        discussion,
        proposal_reviews,
        reviews,
        tests,
        lint,
        checks,
        gate,
        transcript_artifact_id: Some(transcript_artifact),
        provider_errors,
    };
    Ok((round, true))
}

/// The task's own gates over the files of its working directory, as the journaled step `key`
/// (a command gate runs once, its output in the run's log).
async fn check_gates(ctx: &RunContext, spec: &TaskSpec, workdir: &Path, key: &str) -> Result<Vec<crate::domain::GateResult>, WorkflowError> {
    if spec.gates.is_empty() {
        return Ok(Vec::new());
    }
    ctx.step(key, || async {
        let subject = gates::DirSubject::new(workdir.to_path_buf());
        gates::evaluate_in_run(ctx, &spec.gates, &subject).await
    })
    .await
}

/// One turn of the author in the working directory, as the journaled model call `key`; the
/// provider failures it met on the way (before a fallback answered) are added to `errors`.
async fn author_turn(ctx: &RunContext, spec: &TaskSpec, workdir: &Path, key: &str, prompt: &str, errors: &mut Vec<String>) -> Result<String, WorkflowError> {
    let call = ctx.generate(key, request(spec, &spec.author, "author", workdir, prompt), Some(PROMPT_VERSION)).await?;
    errors.extend(call.failed.iter().map(|failed| format!("{}:{}", failed.provider, failed.class.as_str())));
    Ok(call.text)
}

/// A request to `who` in the role `role`, with its model, parameters and fallbacks, run in
/// the working directory.
fn request(spec: &TaskSpec, who: &Participant, role: &str, workdir: &Path, prompt: &str) -> ModelRequest {
    let mut request = ModelRequest::prompt(prompt);
    request.system = Some(match role {
        "author" => "You are the author of a coding task. You work in the task's working directory.".to_owned(),
        _ => "You review a coding task's changes. Be specific: name files and lines.".to_owned(),
    });
    request.model.clone_from(&who.model);
    request.sampling.temperature = who.temperature;
    request.sampling.max_tokens = who.max_tokens;
    request.timeout = Duration::from_secs(u64::from(spec.timeouts.agent_seconds));
    request.workdir = Some(workdir.to_path_buf());
    request.origin = Origin { role: Some(role.to_owned()), chain: spec.chain_of(who), ..Origin::default() };
    request
}

/// Every reviewer's review, asked at once; a reviewer whose provider fails gives none (the gate
/// counts it missing), one with no usable answer gives `unknown`.
async fn reviews(ctx: &RunContext, spec: &TaskSpec, workdir: &Path, key: &str, prompt: &str) -> Result<Vec<Review>, WorkflowError> {
    let asked = spec.reviewers.iter().enumerate().map(|(index, reviewer)| async move {
        let request = request(spec, reviewer, "reviewer", workdir, prompt);
        let answer = ask_with::<ReviewAnswer>(ctx, &format!("{key}/{index}"), request, PROMPT_VERSION).await;
        (reviewer, answer)
    });
    let mut reviews = Vec::new();
    for (reviewer, answer) in join_all(asked).await {
        match answer {
            Ok(Answered::Given(answer)) => reviews.push(Review { reviewer: reviewer.id.clone(), verdict: answer.verdict, findings: answer.findings }),
            Ok(Answered::Abstained(why)) => reviews.push(Review { reviewer: reviewer.id.clone(), verdict: Verdict::Unknown, findings: vec![why] }),
            Err(WorkflowError::Failed { code: ErrorCode::ModelFailed, .. }) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(reviews)
}

/// Runs a verify command (`sh -c`) in the working directory as a journaled step, its output
/// streamed to the run's log and stored as the artifact `rounds/{n}/{name}.log`.
async fn verify(ctx: &RunContext, spec: &TaskSpec, workdir: &Path, number: u32, name: &str, command: Option<&str>) -> Result<Check, WorkflowError> {
    let Some(command) = command else { return Ok(Check::skipped()) };
    let key = format!("round/{number}/{name}");
    let spec_command = CommandSpec {
        program: "sh".into(),
        args: vec!["-c".into(), command.to_owned()],
        cwd: workdir.to_path_buf(),
        env: Default::default(),
        timeout: Some(Duration::from_secs(u64::from(spec.timeouts.command_seconds))),
    };
    let (mut check, output): (Check, String) = ctx
        .step(&key, || async {
            let finished = run_command(Some(ctx), &spec_command).await?;
            let (outcome, exit_code) = match finished.ended {
                Ended::Exited(0) => (CheckOutcome::Passed, 0),
                Ended::Exited(code) => (CheckOutcome::Failed, code),
                Ended::TimedOut => (CheckOutcome::TimedOut, -1),
            };
            let tail = tail(&finished.output, FINDING_TAIL_BYTES).to_owned();
            Ok((Check { command: command.to_owned(), outcome, exit_code, tail, log_artifact_id: None }, finished.output))
        })
        .await?;
    say(ctx, &format!("{key}/said"), number, "verify", "system", &format!("`{command}`: {}", check.outcome.as_str())).await?;
    check.log_artifact_id = Some(put(ctx, &format!("{key}/log"), &format!("rounds/{number}/{name}.log"), "text/plain", output.into_bytes()).await?);
    Ok(check)
}

/// Ends the task: the final diff as an artifact, the merge back when it passed with auto-merge,
/// and the report.
async fn finish(
    ctx: &RunContext,
    spec: &TaskSpec,
    place: &Sandbox,
    rounds: Vec<Round>,
    status: Status,
    mut reason: Reason,
    mut message: String,
) -> Result<TaskReport, WorkflowError> {
    let diff: String = ctx
        .step("final/diff", || async {
            let place = place.clone();
            Ok(blocking(move || bounded_diff(&place, MAX_FINAL_DIFF_BYTES)).await?)
        })
        .await?;
    let diff_artifact_id = if diff.is_empty() { None } else { Some(put(ctx, "final/diff/artifact", "diff.patch", "text/x-diff", diff.into_bytes()).await?) };
    let mut merged = false;
    if status == Status::Passed && spec.sandbox && spec.auto_merge {
        let entry = ChangelogEntry {
            task_id: ctx.run().id.to_string(),
            title: spec.title.clone(),
            summary: rounds.last().map(|round| round.discussion.clone()).unwrap_or_default(),
            time: ctx.run().created_at.to_rfc3339(),
        };
        let outcome: std::result::Result<(), String> = ctx
            .step("final/merge", || async {
                let place = place.clone();
                let merged = blocking(move || {
                    let changes = sandbox::changes(&place)?;
                    sandbox::merge(&place, &changes, &entry)
                })
                .await;
                match merged {
                    Ok(()) => Ok(Ok(())),
                    Err(Error::FailedPrecondition { reason: "MERGE_CONFLICT", message }) => Ok(Err(message)),
                    Err(err) => Err(WorkflowError::from(err)),
                }
            })
            .await?;
        match outcome {
            Ok(()) => {
                merged = true;
                say(ctx, "final/merge/said", 0, "merge", "system", "merged into the project; changelog entry written").await?;
                ctx.step("final/cleanup", || async {
                    let place = place.clone();
                    Ok(blocking(move || sandbox::remove(&place)).await?)
                })
                .await?;
            }
            Err(conflict) => {
                reason = Reason::MergeConflict;
                message = format!("passed, but not merged: {conflict}");
                say(ctx, "final/merge/said", 0, "merge", "system", &message).await?;
            }
        }
    }
    Ok(TaskReport { status, reason, rounds, workdir: place.path.display().to_string(), merged, diff_artifact_id, message })
}

/// The working directory's changes since the task began, as a diff cut at `max` bytes (it is
/// journaled: a replay reads it, not the files); empty if nothing changed.
fn bounded_diff(place: &Sandbox, max: usize) -> Result<String> {
    let changes = sandbox::changes(place)?;
    if changes.is_empty() {
        return Ok(String::new());
    }
    let mut diff = sandbox::diff(place, &changes)?;
    if diff.len() > max {
        let mut cut = max;
        while !diff.is_char_boundary(cut) {
            cut -= 1;
        }
        diff.truncate(cut);
        diff.push_str("\n[the diff goes on; it was cut here]\n");
    }
    Ok(diff)
}

/// Stores `content` as the artifact `name` of the task's run; its id.
async fn put(ctx: &RunContext, key: &str, name: &str, media_type: &str, content: Vec<u8>) -> Result<String, WorkflowError> {
    let header = UploadHeader { name: name.to_owned(), kind: ArtifactKind::Document, media_type: media_type.to_owned(), ..UploadHeader::default() };
    Ok(ctx.put_artifact(key, header, &content).await?.id)
}

/// A transcript message, once (as the journaled step `key`).
async fn say(ctx: &RunContext, key: &str, round: u32, phase: &str, speaker: &str, text: &str) -> Result<(), WorkflowError> {
    Transcript::Said { round, phase: phase.to_owned(), speaker: speaker.to_owned(), text: text.to_owned() }.emit_once(ctx, key).await
}

fn note(transcript: &mut String, phase: &str, speaker: &str, prompt: &str, answer: &str) {
    transcript.push_str(&format!("## {phase} — {speaker}\n\n"));
    if !prompt.is_empty() {
        transcript.push_str(&format!("### Prompt\n\n{prompt}\n\n### Answer\n\n"));
    }
    transcript.push_str(answer);
    transcript.push_str("\n\n");
}

fn review_text(review: &Review) -> String {
    let mut text = review.verdict.as_str().to_owned();
    for finding in &review.findings {
        text.push_str(&format!("\n- {finding}"));
    }
    text
}

/// The last `max` bytes of `text`, from a character boundary.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs filesystem work on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|err| Error::Internal(format!("a task's file work failed: {err}")))?
}
