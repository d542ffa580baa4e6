//! The simplest built-in kinds: `noop`, `sleep`, `echo` and `approval`. They exercise every
//! engine path (journaled steps, logs, cancellation, waiting for decisions) with no outside
//! dependency, for demos, tests and benchmarks.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::input;
use crate::{
    domain::{DecisionOutcome, LogStream, Timestamp},
    engine::{RunContext, Workflow, WorkflowError},
    error::Result,
};

/// Parses a kind's input, turning a bad field into an `invalid input` failure at run time
/// (creation already refused it, unless the kind's rules changed since).
fn parse_at_run<T>(parse: fn(&Map<String, Value>) -> Result<T>, ctx: &RunContext) -> Result<T, WorkflowError> {
    parse(ctx.input()).map_err(|err| WorkflowError::invalid_input(err.to_string()))
}

/// `noop`: does nothing and succeeds with `{}`. Input: none.
pub struct Noop;

#[async_trait]
impl Workflow for Noop {
    fn validate(&self, input: &Map<String, Value>) -> Result<()> {
        input::only_fields(input, &[])
    }

    async fn run(&self, _ctx: &RunContext) -> Result<Value, WorkflowError> {
        Ok(json!({}))
    }
}

/// `sleep`: waits `seconds` (0 to a year), durably: the wake-up time is a journaled step, so a
/// run resumed after a crash sleeps only what is left. Cancellable at any moment.
pub struct Sleep;

const MAX_SLEEP_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

fn sleep_seconds(input: &Map<String, Value>) -> Result<f64> {
    input::only_fields(input, &["seconds"])?;
    Ok(input::opt_number(input, "seconds", 0.0, MAX_SLEEP_SECONDS)?.unwrap_or(0.0))
}

#[async_trait]
impl Workflow for Sleep {
    fn validate(&self, input: &Map<String, Value>) -> Result<()> {
        sleep_seconds(input).map(drop)
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let seconds = parse_at_run(sleep_seconds, ctx)?;
        let wake_at: i64 = ctx
            .step("wake_at", || async move { Ok(Timestamp::now().plus(Duration::from_secs_f64(seconds)).as_micros()) })
            .await?;
        let remaining = Timestamp::from_micros(wake_at).since(Timestamp::now());
        tokio::select! {
            () = tokio::time::sleep(remaining) => Ok(json!({ "slept_seconds": seconds })),
            () = ctx.cancelled() => Err(WorkflowError::Cancelled),
        }
    }
}

/// `echo`: writes its input to the log and returns it as output. Input: `text` (split into
/// lines) or `lines` (a list), `repeat` (how many times, default 1) and `interval_ms` (a pause
/// between lines, default 0).
pub struct Echo;

struct EchoParams {
    lines: Vec<String>,
    repeat: u64,
    interval: Duration,
}

fn echo_params(input: &Map<String, Value>) -> Result<EchoParams> {
    input::only_fields(input, &["text", "lines", "repeat", "interval_ms"])?;
    let mut lines: Vec<String> = input::opt_str(input, "text")?.map(|text| text.lines().map(str::to_owned).collect()).unwrap_or_default();
    lines.extend(input::opt_strings(input, "lines")?.unwrap_or_default());
    Ok(EchoParams {
        lines,
        repeat: input::opt_count(input, "repeat", 10_000_000)?.unwrap_or(1),
        interval: Duration::from_millis(input::opt_count(input, "interval_ms", 60_000)?.unwrap_or(0)),
    })
}

#[async_trait]
impl Workflow for Echo {
    fn validate(&self, input: &Map<String, Value>) -> Result<()> {
        echo_params(input).map(drop)
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let params = parse_at_run(echo_params, ctx)?;
        for _ in 0..params.repeat {
            for line in &params.lines {
                if ctx.is_cancelled() {
                    return Err(WorkflowError::Cancelled);
                }
                ctx.log(LogStream::Stdout, line).await;
                if !params.interval.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(params.interval) => {}
                        () = ctx.cancelled() => return Err(WorkflowError::Cancelled),
                    }
                }
            }
        }
        Ok(Value::Object(ctx.input().clone()))
    }
}

/// `approval`: waits (holding no worker) for a decision on `prompt`, then succeeds with it:
/// `{"decision": "approve" | "reject" | "input", "input": {...}, "note": "..."}`.
pub struct Approval;

fn approval_prompt(input: &Map<String, Value>) -> Result<String> {
    input::only_fields(input, &["prompt"])?;
    Ok(input::opt_str(input, "prompt")?.unwrap_or("Approve this run?").to_owned())
}

#[async_trait]
impl Workflow for Approval {
    fn validate(&self, input: &Map<String, Value>) -> Result<()> {
        approval_prompt(input).map(drop)
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let prompt = parse_at_run(approval_prompt, ctx)?;
        let decision = ctx.wait_for_decision("approval", &prompt).await?;
        let (kind, input) = match decision.outcome {
            DecisionOutcome::Approve => ("approve", Value::Null),
            DecisionOutcome::Reject => ("reject", Value::Null),
            DecisionOutcome::Input(input) => ("input", Value::Object(input)),
        };
        ctx.log(LogStream::System, &format!("decision: {kind}")).await;
        Ok(json!({ "decision": kind, "input": input, "note": decision.note }))
    }
}

/// `steps`: a run made of `steps` journaled steps (default 3), each writing `lines` log lines
/// (default 2) and taking `step_ms` (default 0) — a workload for demos, load and crash tests.
/// Each step's lines are stored before the step is journaled, so a resumed run skips finished
/// steps and their lines exactly. Output: `{"steps": n}`.
pub struct Steps;

struct StepsParams {
    steps: u64,
    lines: u64,
    pause: Duration,
}

fn steps_params(input: &Map<String, Value>) -> Result<StepsParams> {
    input::only_fields(input, &["steps", "lines", "step_ms"])?;
    Ok(StepsParams {
        steps: input::opt_count(input, "steps", 10_000)?.unwrap_or(3),
        lines: input::opt_count(input, "lines", 10_000)?.unwrap_or(2),
        pause: Duration::from_millis(input::opt_count(input, "step_ms", 3_600_000)?.unwrap_or(0)),
    })
}

#[async_trait]
impl Workflow for Steps {
    fn validate(&self, input: &Map<String, Value>) -> Result<()> {
        steps_params(input).map(drop)
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let params = parse_at_run(steps_params, ctx)?;
        for step in 0..params.steps {
            ctx.step(&format!("step-{step}"), || async move {
                for line in 0..params.lines {
                    ctx.log(LogStream::Stdout, &format!("step {step} line {line} attempt {}", ctx.attempt())).await;
                }
                if !params.pause.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(params.pause) => {}
                        () = ctx.cancelled() => return Err(WorkflowError::Cancelled),
                    }
                }
                ctx.flush_logs().await;
                Ok(step)
            })
            .await?;
        }
        Ok(json!({ "steps": params.steps }))
    }
}
