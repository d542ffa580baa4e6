//! The execution of one attempt of a run under its lease, wherever it runs (a server's pool or a
//! remote worker): the workflow against its [`RunContext`], heartbeats that keep the lease,
//! the attempt's time budget, cancellation (cooperative, then forced after a grace period),
//! and the report of how it ended.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{
    context::{RunContext, WorkflowError},
    host::{AttemptHost, AttemptSettings, Ending},
    Workflow,
};
use crate::{
    domain::{ErrorCode, Lease, Run, RunError, Timestamp},
    error::Error,
    store::LeaseStatus,
};

/// The signals of a run being executed.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Asks the workflow to stop at its next step.
    pub cancel: CancellationToken,
    /// Stops the workflow at once (the run was failed or cancelled by force).
    pub force: CancellationToken,
    /// Gives the run back to the queue (the process is shutting down).
    pub release: CancellationToken,
    /// The lease was lost: someone else owns the run now.
    pub lost: CancellationToken,
}

/// One attempt to execute: the run as claimed, its lease, and the journal it resumes from.
pub struct Attempt {
    /// The run as it was claimed.
    pub run: Run,
    /// The lease it is held under.
    pub lease: Lease,
    /// The steps already journaled, by key.
    pub journal: HashMap<String, Value>,
}

/// How an attempt ended, as far as the executor is concerned.
enum Outcome {
    /// The workflow returned.
    Returned(Result<Value, WorkflowError>),
    /// The attempt ran out of time (`Timeout` or `DeadlineExceeded`).
    OutOfTime(ErrorCode),
    /// Stopped by force (cancelled or failed from outside); the store already says so.
    Stopped,
    /// The lease was lost; someone else owns the run now.
    LeaseLost,
    /// The process is shutting down; give the run back.
    Released,
}

/// Executes an attempt to its end and reports the end to the host.
pub async fn execute(host: Arc<dyn AttemptHost>, workflow: Arc<dyn Workflow>, attempt: Attempt, signals: Signals, settings: AttemptSettings) {
    let (run, lease) = (attempt.run.clone(), attempt.lease.clone());
    let outcome = run_workflow(&host, workflow, attempt, &signals, settings).await;
    let Some(ending) = ending(&run, outcome) else { return };
    match host.finish(&lease, ending).await {
        // Someone else already decided the run's fate (a forced cancel, a rescue): fine.
        Ok(()) | Err(Error::StaleLease { .. }) => {}
        Err(err) => tracing::error!(run = %run.id, error = %err, "could not record the end of an attempt; the run will be rescued"),
    }
}

async fn run_workflow(host: &Arc<dyn AttemptHost>, workflow: Arc<dyn Workflow>, attempt: Attempt, signals: &Signals, settings: AttemptSettings) -> Outcome {
    let (budget, out_of_time) = time_budget(&attempt.run);
    let lease = attempt.lease.clone();
    let (ctx, log_writer) = RunContext::new(host.clone(), attempt, signals.cancel.clone(), signals.lost.clone(), settings);
    let outcome = tokio::select! {
        result = workflow.run(&ctx) => Outcome::Returned(result),
        () = tokio::time::sleep(budget) => Outcome::OutOfTime(out_of_time),
        () = signals.force.cancelled() => Outcome::Stopped,
        () = signals.lost.cancelled() => Outcome::LeaseLost,
        () = grace_after(&signals.cancel, settings.cancel_grace) => Outcome::Returned(Err(WorkflowError::Cancelled)),
        () = signals.release.cancelled() => Outcome::Released,
        () = keep_lease(host.as_ref(), &lease, &signals.cancel, settings) => Outcome::LeaseLost,
    };
    // Closing the context ends its log channel; wait for the last lines to be stored, so the
    // log of a finished attempt is complete before its end is recorded.
    drop(ctx);
    let _ = log_writer.await;
    match outcome {
        Outcome::Returned(Err(WorkflowError::LeaseLost)) => Outcome::LeaseLost,
        _ if signals.lost.is_cancelled() => Outcome::LeaseLost,
        other => other,
    }
}

/// What to report for an outcome; `None` when there is nothing to report (the run already moved
/// on, or it suspended itself).
fn ending(run: &Run, outcome: Outcome) -> Option<Ending> {
    match outcome {
        Outcome::Returned(Ok(output)) => Some(Ending::Succeeded(output)),
        Outcome::Returned(Err(WorkflowError::Cancelled)) => Some(Ending::Cancelled),
        Outcome::Returned(Err(WorkflowError::Suspended | WorkflowError::LeaseLost)) | Outcome::Stopped | Outcome::LeaseLost => None,
        Outcome::Returned(Err(err)) => Some(Ending::Failed(err.to_run_error(run.attempt))),
        Outcome::OutOfTime(code) => {
            let (message, retryable) = match code {
                ErrorCode::DeadlineExceeded => ("the run's deadline passed".to_owned(), false),
                _ => (format!("attempt {} ran past its timeout of {:?}", run.attempt, run.attempt_timeout), true),
            };
            Some(Ending::Failed(RunError::new(code, message, retryable, run.attempt)))
        }
        Outcome::Released => Some(Ending::Released),
    }
}

/// The time this attempt may take, and the error class when it runs out.
fn time_budget(run: &Run) -> (Duration, ErrorCode) {
    let now = Timestamp::now();
    match run.deadline {
        Some(deadline) if deadline.since(now) < run.attempt_timeout => (deadline.since(now), ErrorCode::DeadlineExceeded),
        _ => (run.attempt_timeout, ErrorCode::Timeout),
    }
}

/// Resolves `grace` after the run was asked to stop: a workflow that ignores cancellation is
/// stopped by force.
async fn grace_after(cancel: &CancellationToken, grace: Duration) {
    cancel.cancelled().await;
    tokio::time::sleep(grace).await;
}

/// Extends the lease every heartbeat interval; relays a cancellation request to the workflow;
/// resolves only when the lease is lost.
async fn keep_lease(host: &dyn AttemptHost, lease: &Lease, cancel: &CancellationToken, settings: AttemptSettings) {
    let mut held_until = lease.expires_at;
    loop {
        tokio::time::sleep(settings.heartbeat_interval).await;
        let now = Timestamp::now();
        match host.extend_lease(lease).await {
            Ok(LeaseStatus::Held { cancel_requested }) => {
                held_until = now.plus(settings.lease_ttl);
                if cancel_requested {
                    cancel.cancel();
                }
            }
            Ok(LeaseStatus::Lost) => return,
            Err(err) if Timestamp::now() < held_until => {
                tracing::warn!(run = %lease.run_id, error = %err, "could not extend lease; retrying");
            }
            Err(err) => {
                tracing::error!(run = %lease.run_id, error = %err, "lease lapsed while the store was unreachable");
                return;
            }
        }
    }
}
