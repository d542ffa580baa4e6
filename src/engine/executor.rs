//! The in-process worker pool: a claim loop that takes due runs as slots free up (woken at once
//! when a run becomes claimable, with a slow poll as a safety net), each executed in a task of
//! its own (see `attempt.rs`).

use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{
    attempt::{self, Attempt, Signals},
    host::{AttemptHost, AttemptSettings, Ending},
    Core, Workflow,
};
use crate::{
    domain::{ErrorCode, Lease, Run, RunError, Timestamp},
    error::Result,
};

/// Claims runs while there are free slots and executes each in its own task.
pub(super) async fn claim_loop(core: Arc<Core>) {
    let slots = Arc::new(Semaphore::new(core.config.worker_slots));
    let kinds = core.registry.kinds();
    let mut wake = core.fanout.wake.subscribe();
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
        let limit = u32::try_from(free).unwrap_or(u32::MAX);
        let idle_wait = match core.claim(&core.config.worker_id, &kinds, limit).await {
            Ok(claimed) => {
                let saturated = claimed.len() == free;
                for run in claimed {
                    start(&core, &slots, run);
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
            _ = wake.changed() => {}
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

async fn execute(core: Arc<Core>, run: Run, _permit: OwnedSemaphorePermit) {
    let Some(lease) = run.lease.clone() else { return };
    let id = run.id;
    core.busy.fetch_add(1, Ordering::Relaxed);
    let signals = Signals { release: core.release.child_token(), ..Signals::default() };
    core.active().insert(id, signals.clone());
    match prepare(&core, run, lease.clone()).await {
        Ok((workflow, attempt)) => {
            let settings = AttemptSettings::from(&core.config);
            attempt::execute(core.clone() as Arc<dyn AttemptHost>, workflow, attempt, signals, settings).await;
        }
        Err(error) => {
            if let Err(err) = core.finish(&lease, Ending::Failed(error)).await {
                tracing::error!(run = %id, error = %err, "could not record the end of an attempt; the run will be rescued");
            }
        }
    }
    core.active().remove(&id);
    core.busy.fetch_sub(1, Ordering::Relaxed);
}

/// The workflow of the run's kind, and the attempt with the journal it resumes from.
async fn prepare(core: &Core, run: Run, lease: Lease) -> Result<(Arc<dyn Workflow>, Attempt), RunError> {
    let Some(workflow) = core.registry.get(&run.kind) else {
        let message = format!("this worker does not run kind `{}`", run.kind);
        return Err(RunError::new(ErrorCode::Unsupported, message, false, run.attempt));
    };
    let journal = read_journal(core, &run).await.map_err(|err| RunError::new(ErrorCode::Internal, err.to_string(), true, run.attempt))?;
    Ok((workflow, Attempt { run, lease, journal }))
}

/// The run's journal by key; the first attempt of a run that is not a replay (the common case)
/// skips the read.
async fn read_journal(core: &Core, run: &Run) -> Result<HashMap<String, Value>> {
    if !run.may_have_journal() {
        return Ok(HashMap::new());
    }
    let entries = core.store.read_journal(run.id).await?;
    Ok(entries.into_iter().map(|entry| (entry.key, entry.output)).collect())
}
