//! The in-process worker pool: a claim loop that takes due runs as slots free up (woken at once
//! when a run becomes claimable, with a slow poll as a safety net), and the execution of one
//! attempt under its lease — heartbeats, timeouts, cancellation and the recording of its end.

use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{
    context::{RunContext, WorkflowError},
    lifecycle, ActiveRun, Core,
};
use crate::{
    domain::{ErrorCode, Lease, Run, RunError, Timestamp},
    error::Error,
    store::{ClaimRequest, LeaseStatus},
};

/// Claims runs while there are free slots and executes each in its own task.
pub(super) async fn claim_loop(core: Arc<Core>) {
    let slots = Arc::new(Semaphore::new(core.config.worker_slots));
    let kinds = core.registry.kinds();
    while !core.shutdown.is_cancelled() {
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                permit = slots.clone().acquire_owned() => drop(permit),
                () = core.shutdown.cancelled() => break,
            }
            continue;
        }
        let now = Timestamp::now();
        let request = ClaimRequest {
            worker_id: core.config.worker_id.clone(),
            kinds: kinds.clone(),
            limit: u32::try_from(free).unwrap_or(u32::MAX),
            lease_ttl: core.config.lease_ttl,
            now,
        };
        let idle_wait = match core.store.claim_runs(&request).await {
            Ok(claimed) => {
                let saturated = claimed.len() == free;
                for transition in claimed {
                    core.fanout.publish(&transition);
                    start(&core, &slots, transition.run);
                }
                if saturated { Duration::ZERO } else { next_due(&core, &kinds, now).await }
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not claim runs; retrying");
                core.config.poll_interval
            }
        };
        if idle_wait.is_zero() {
            continue;
        }
        tokio::select! {
            () = core.fanout.wake.notified() => {}
            () = tokio::time::sleep(idle_wait) => {}
            () = core.shutdown.cancelled() => break,
        }
    }
}

/// How long the claim loop may sleep: until the next queued run is due, at most a poll interval.
async fn next_due(core: &Core, kinds: &[String], now: Timestamp) -> Duration {
    match core.store.next_scheduled_at(kinds).await {
        Ok(Some(next)) if next > now => next.since(now).min(core.config.poll_interval),
        _ => core.config.poll_interval,
    }
}

fn start(core: &Arc<Core>, slots: &Arc<Semaphore>, run: Run) {
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        tracing::error!(run = %run.id, "claimed a run without a free slot; its lease will lapse and it will be rescued");
        return;
    };
    core.tasks.spawn(execute(core.clone(), run, permit));
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
    /// The server is shutting down; give the run back.
    Released,
}

async fn execute(core: Arc<Core>, run: Run, _permit: OwnedSemaphorePermit) {
    let Some(lease) = run.lease.clone() else { return };
    core.busy.fetch_add(1, Ordering::Relaxed);
    let signals = ActiveRun { cancel: CancellationToken::new(), force: CancellationToken::new() };
    core.active().insert(run.id, signals.clone());
    let outcome = attempt(&core, &run, &lease, &signals).await;
    core.active().remove(&run.id);
    record_end(&core, &run, &lease, outcome).await;
    core.busy.fetch_sub(1, Ordering::Relaxed);
    if run.concurrency.is_some() {
        // A slot under this run's concurrency key is free: runs waiting on it may start.
        core.fanout.wake.notify_one();
    }
}

async fn attempt(core: &Arc<Core>, run: &Run, lease: &Lease, signals: &ActiveRun) -> Outcome {
    let Some(workflow) = core.registry.get(&run.kind) else {
        let message = format!("this worker does not run kind `{}`", run.kind);
        return Outcome::Returned(Err(WorkflowError::Failed { code: ErrorCode::Unsupported, message, retryable: false }));
    };
    let journal: HashMap<String, Value> = if may_have_journal(run) {
        match core.store.read_journal(run.id).await {
            Ok(entries) => entries.into_iter().map(|entry| (entry.key, entry.output)).collect(),
            Err(err) => return Outcome::Returned(Err(WorkflowError::Store(err))),
        }
    } else {
        HashMap::new()
    };
    let (budget, out_of_time) = time_budget(run);
    let lost = CancellationToken::new();
    let (ctx, log_writer) = RunContext::new(core.clone(), run.clone(), lease.clone(), journal, signals.cancel.clone(), lost.clone());
    let outcome = tokio::select! {
        result = workflow.run(&ctx) => Outcome::Returned(result),
        () = tokio::time::sleep(budget) => Outcome::OutOfTime(out_of_time),
        () = signals.force.cancelled() => Outcome::Stopped,
        () = lost.cancelled() => Outcome::LeaseLost,
        () = grace_after(&signals.cancel, core.config.cancel_grace) => Outcome::Returned(Err(WorkflowError::Cancelled)),
        () = core.release.cancelled() => Outcome::Released,
        () = keep_lease(core, lease, &signals.cancel) => Outcome::LeaseLost,
    };
    // Closing the context ends its log channel; wait for the last lines to be stored, so the
    // log of a finished attempt is complete before its end is recorded.
    drop(ctx);
    let _ = log_writer.await;
    match outcome {
        Outcome::Returned(Err(WorkflowError::LeaseLost)) => Outcome::LeaseLost,
        _ if lost.is_cancelled() => Outcome::LeaseLost,
        other => other,
    }
}

/// Whether the run can have journaled steps: a run whose only events are its creation and this
/// claim has never executed a step, so its first attempt (the common case) skips the read.
fn may_have_journal(run: &Run) -> bool {
    run.last_event_sequence > 2
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
async fn keep_lease(core: &Core, lease: &Lease, cancel: &CancellationToken) {
    let mut held_until = lease.expires_at;
    loop {
        tokio::time::sleep(core.config.heartbeat_interval).await;
        let now = Timestamp::now();
        let until = now.plus(core.config.lease_ttl);
        match core.store.extend_lease(lease, until).await {
            Ok(LeaseStatus::Held { cancel_requested }) => {
                held_until = until;
                if cancel_requested {
                    cancel.cancel();
                }
            }
            Ok(LeaseStatus::Lost) => return,
            Err(err) if now < held_until => {
                tracing::warn!(run = %lease.run_id, error = %err, "could not extend lease; retrying");
            }
            Err(err) => {
                tracing::error!(run = %lease.run_id, error = %err, "lease lapsed while the store was unreachable");
                return;
            }
        }
    }
}

/// Commits how the attempt ended. A stale lease means someone else already decided the run's
/// fate (a forced cancel, a rescue), which is fine.
async fn record_end(core: &Core, run: &Run, lease: &Lease, outcome: Outcome) {
    let now = Timestamp::now();
    let policy = core.config.retry;
    let lease = lease.clone();
    let result = match outcome {
        Outcome::Returned(Ok(output)) => core.update(run.id, move |r| lifecycle::succeed(r, &lease, output.clone(), now)).await,
        Outcome::Returned(Err(WorkflowError::Cancelled)) => core.update(run.id, move |r| lifecycle::cancelled_by_worker(r, &lease, now)).await,
        Outcome::Returned(Err(WorkflowError::Suspended | WorkflowError::LeaseLost)) | Outcome::Stopped | Outcome::LeaseLost => {
            return;
        }
        Outcome::Returned(Err(err)) => {
            let error = err.to_run_error(run.attempt);
            core.update(run.id, move |r| lifecycle::fail_attempt(r, &lease, error.clone(), &policy, now)).await
        }
        Outcome::OutOfTime(code) => {
            let (message, retryable) = match code {
                ErrorCode::DeadlineExceeded => ("the run's deadline passed".to_owned(), false),
                _ => (format!("attempt {} ran past its timeout of {:?}", run.attempt, run.attempt_timeout), true),
            };
            let error = RunError::new(code, message, retryable, run.attempt);
            core.update(run.id, move |r| lifecycle::fail_attempt(r, &lease, error.clone(), &policy, now)).await
        }
        Outcome::Released => core.update(run.id, move |r| lifecycle::release(r, &lease, now)).await,
    };
    match result {
        Ok(_) | Err(Error::StaleLease { .. }) => {}
        Err(err) => tracing::error!(run = %run.id, error = %err, "could not record the end of an attempt; the run will be rescued"),
    }
}
