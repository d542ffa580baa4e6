//! The run state machine, as pure functions: each takes a run as stored and returns the
//! [`Update`] to commit (new row, events, journal writes) or the error that refuses the change.
//! The stores apply these inside a transaction, so both backends follow the same rules.

use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use crate::{
    domain::{Decision, ErrorCode, EventKind, Lease, Run, RunError, RunState, Timestamp, Waiting},
    error::{Error, Result},
    store::{JournalEntry, Update},
};

/// How failed attempts are spaced out.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The delay after the first failed attempt.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl RetryPolicy {
    /// Exponential backoff with "equal jitter": half the exponential delay, plus a random part of
    /// the other half, so retries of many runs failing together spread out.
    pub fn delay(&self, failed_attempt: u32) -> Duration {
        let exponent = failed_attempt.saturating_sub(1).min(30);
        let full = self.base.saturating_mul(1 << exponent).min(self.max);
        let half = full / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }
}

/// Refuses a write whose lease is not the run's current one.
pub fn check_lease(run: &Run, lease: &Lease) -> Result<()> {
    match &run.lease {
        Some(current) if run.state == RunState::Running && current.epoch == lease.epoch => Ok(()),
        _ => Err(Error::StaleLease {
            run_id: run.id.to_string(),
            epoch: lease.epoch,
        }),
    }
}

fn state_changed(from: RunState, run: &Run, reason: impl Into<String>) -> EventKind {
    EventKind::StateChanged {
        from,
        to: run.state,
        attempt: run.attempt,
        reason: reason.into(),
        worker_id: None,
        error: run.error.clone(),
    }
}

/// Moves `run` to a terminal state, releasing whatever it held.
fn finish(run: &mut Run, state: RunState, now: Timestamp) {
    run.state = state;
    run.lease = None;
    run.waiting = None;
    run.finished_at = Some(now);
    run.updated_at = now;
}

fn already_finished(run: &Run, action: &str) -> Error {
    Error::precondition(
        "RUN_ALREADY_FINISHED",
        format!("run {} is already {}; only queued, running or waiting runs can be {action}", run.id, run.state),
    )
}

/// `CancelRun`: queued and waiting runs are cancelled at once; a running run is asked to stop
/// (or stopped at once with `force`).
pub fn cancel(run: &Run, reason: &str, force: bool, now: Timestamp) -> Result<Update> {
    if run.state.is_terminal() {
        return Err(already_finished(run, "cancelled"));
    }
    let reason = if reason.is_empty() { "cancelled by request" } else { reason };
    let requested = EventKind::CancelRequested { reason: reason.to_owned(), force };
    let mut next = run.clone();
    next.error = Some(RunError::new(ErrorCode::Cancelled, reason, false, run.attempt));
    if run.state == RunState::Running && !force {
        if run.cancel_requested {
            return Ok(Update::unchanged(run));
        }
        next.cancel_requested = true;
        next.updated_at = now;
        return Ok(Update::new(next, vec![requested]));
    }
    finish(&mut next, RunState::Cancelled, now);
    let changed = state_changed(run.state, &next, reason);
    Ok(Update::new(next, vec![requested, changed]))
}

/// The holder of a run whose cancellation was requested has stopped.
pub fn cancelled_by_worker(run: &Run, lease: &Lease, now: Timestamp) -> Result<Update> {
    check_lease(run, lease)?;
    let mut next = run.clone();
    if next.error.as_ref().is_none_or(|error| error.code != ErrorCode::Cancelled) {
        next.error = Some(RunError::new(ErrorCode::Cancelled, "cancelled", false, run.attempt));
    }
    finish(&mut next, RunState::Cancelled, now);
    let changed = state_changed(RunState::Running, &next, "stopped after cancellation");
    Ok(Update::new(next, vec![changed]))
}

/// `RetryRun`: a failed or cancelled run is queued again with a fresh attempt budget.
pub fn retry(run: &Run, reset_journal: bool, now: Timestamp) -> Result<Update> {
    if !matches!(run.state, RunState::Failed | RunState::Cancelled) {
        return Err(Error::precondition(
            "RUN_NOT_RETRYABLE",
            format!("run {} is {}; only failed or cancelled runs can be retried", run.id, run.state),
        ));
    }
    let mut next = run.clone();
    next.state = RunState::Queued;
    next.attempt = 0;
    next.error = None;
    next.output = None;
    next.finished_at = None;
    next.cancel_requested = false;
    next.scheduled_at = now;
    next.updated_at = now;
    let reason = if reset_journal { "retried with a fresh journal" } else { "retried" };
    let mut update = Update::new(next.clone(), vec![state_changed(run.state, &next, reason)]);
    update.reset_journal = reset_journal;
    Ok(update)
}

/// `ForceFailRun`: fails an unfinished run at once.
pub fn force_fail(run: &Run, reason: &str, now: Timestamp) -> Result<Update> {
    if run.state.is_terminal() {
        return Err(already_finished(run, "failed"));
    }
    let mut next = run.clone();
    next.error = Some(RunError::new(ErrorCode::ForceFailed, reason, false, run.attempt));
    finish(&mut next, RunState::Failed, now);
    let changed = state_changed(run.state, &next, format!("force-failed: {reason}"));
    Ok(Update::new(next, vec![changed]))
}

/// `SubmitDecision`: records the decision for the wait point and queues the run to resume.
/// Submitting the same decision again changes nothing; a different one is refused.
pub fn decide(run: &Run, key: Option<&str>, decision: &Decision, now: Timestamp) -> Result<Update> {
    let recorded = match key {
        Some(key) => run.decisions.get(key).map(|existing| (key, existing)),
        None if run.state != RunState::Waiting => run.decisions.iter().find(|(_, d)| *d == decision).map(|(k, d)| (k.as_str(), d)),
        None => None,
    };
    if let Some((key, existing)) = recorded {
        if existing == decision {
            return Ok(Update::unchanged(run));
        }
        return Err(Error::AlreadyExists {
            reason: "DECISION_ALREADY_RECORDED",
            message: format!("run {} already has a different decision for `{key}`; decisions cannot be changed", run.id),
        });
    }
    let Some(waiting) = run.waiting.as_ref().filter(|_| run.state == RunState::Waiting) else {
        return Err(Error::precondition(
            "RUN_NOT_WAITING",
            format!("run {} is {}, not waiting for a decision", run.id, run.state),
        ));
    };
    if let Some(key) = key.filter(|key| *key != waiting.key) {
        return Err(Error::precondition(
            "WAIT_KEY_MISMATCH",
            format!("run {} is waiting at `{}`, not `{key}`; leave key empty to answer the current wait", run.id, waiting.key),
        ));
    }
    let key = waiting.key.clone();
    let mut next = run.clone();
    next.decisions.insert(key.clone(), decision.clone());
    next.state = RunState::Queued;
    next.waiting = None;
    next.scheduled_at = now;
    next.updated_at = now;
    let changed = state_changed(RunState::Waiting, &next, format!("decision recorded for `{key}`"));
    Ok(Update::new(
        next,
        vec![EventKind::DecisionRecorded { key, decision: decision.clone() }, changed],
    ))
}

/// The workflow finished with an output.
pub fn succeed(run: &Run, lease: &Lease, output: Value, now: Timestamp) -> Result<Update> {
    check_lease(run, lease)?;
    let mut next = run.clone();
    next.output = Some(output);
    next.error = None;
    finish(&mut next, RunState::Succeeded, now);
    let changed = state_changed(RunState::Running, &next, "finished");
    Ok(Update::new(next, vec![changed]))
}

/// An attempt failed: queue another after a backoff if the error allows it and attempts and the
/// deadline remain, otherwise fail the run.
pub fn fail_attempt(run: &Run, lease: &Lease, error: RunError, policy: &RetryPolicy, now: Timestamp) -> Result<Update> {
    check_lease(run, lease)?;
    Ok(requeue_or_fail(run, error, policy, now))
}

fn requeue_or_fail(run: &Run, error: RunError, policy: &RetryPolicy, now: Timestamp) -> Update {
    let mut next = run.clone();
    let from = run.state;
    let retry_at = now.plus(policy.delay(run.attempt));
    let deadline_allows = run.deadline.is_none_or(|deadline| retry_at < deadline);
    if error.retryable && run.attempt < run.max_attempts && deadline_allows {
        let reason = format!(
            "attempt {} failed ({}); retrying in {:.1}s",
            run.attempt,
            error.message,
            retry_at.since(now).as_secs_f64()
        );
        next.state = RunState::Queued;
        next.attempt = run.attempt + 1;
        next.lease = None;
        next.error = Some(error);
        next.cancel_requested = false;
        next.scheduled_at = retry_at;
        next.updated_at = now;
        let changed = state_changed(from, &next, reason);
        return Update::new(next, vec![changed]);
    }
    let reason = if !error.retryable {
        format!("attempt {} failed: {}", run.attempt, error.message)
    } else if run.attempt >= run.max_attempts {
        format!("attempt {} of {} failed: {}", run.attempt, run.max_attempts, error.message)
    } else {
        format!("attempt {} failed and the deadline leaves no time to retry: {}", run.attempt, error.message)
    };
    next.error = Some(error);
    finish(&mut next, RunState::Failed, now);
    let changed = state_changed(from, &next, reason);
    Update::new(next, vec![changed])
}

/// The workflow stopped to wait for a decision; the run holds no worker while it waits.
pub fn suspend(run: &Run, lease: &Lease, key: &str, prompt: &str, now: Timestamp) -> Result<Update> {
    check_lease(run, lease)?;
    if run.cancel_requested {
        // Cancelled while on its way to the wait: it stops here instead of waiting.
        return cancelled_by_worker(run, lease, now);
    }
    let mut next = run.clone();
    if run.decisions.contains_key(key) {
        // The decision came (ahead of the wait) after this attempt began: the run is queued
        // again at once and finds it.
        next.state = RunState::Queued;
        next.lease = None;
        next.scheduled_at = now;
        next.updated_at = now;
        let changed = state_changed(RunState::Running, &next, format!("the decision for `{key}` was already recorded"));
        return Ok(Update::new(next, vec![changed]));
    }
    next.state = RunState::Waiting;
    next.lease = None;
    next.waiting = Some(Waiting { key: key.to_owned(), prompt: prompt.to_owned(), since: now });
    next.updated_at = now;
    let changed = state_changed(RunState::Running, &next, format!("waiting for a decision at `{key}`"));
    Ok(Update::new(next, vec![changed]))
}

/// A decision for `key` given before the run waits there (a task started before its worker
/// reached the start): recorded now, and the wait finds it when it comes. At the wait, or for a
/// key decided already, the same as [`decide`].
pub fn decide_ahead(run: &Run, key: &str, decision: &Decision, now: Timestamp) -> Result<Update> {
    let waiting_here = run.state == RunState::Waiting && run.waiting.as_ref().is_some_and(|waiting| waiting.key == key);
    if waiting_here || run.decisions.contains_key(key) {
        return decide(run, Some(key), decision, now);
    }
    if run.state.is_terminal() {
        return Err(Error::precondition("RUN_FINISHED", format!("run {} is {}; it takes no more decisions", run.id, run.state)));
    }
    let mut next = run.clone();
    next.decisions.insert(key.to_owned(), decision.clone());
    next.updated_at = now;
    Ok(Update::new(next, vec![EventKind::DecisionRecorded { key: key.to_owned(), decision: decision.clone() }]))
}

/// The worker gives the run back (it is shutting down): queued again, with the same attempt.
pub fn release(run: &Run, lease: &Lease, now: Timestamp) -> Result<Update> {
    check_lease(run, lease)?;
    let mut next = run.clone();
    next.state = RunState::Queued;
    next.lease = None;
    next.scheduled_at = now;
    next.updated_at = now;
    let holder = run.lease.as_ref().map_or_else(String::new, |current| current.worker_id.to_string());
    let changed = state_changed(RunState::Running, &next, format!("released by worker {holder}"));
    Ok(Update::new(next, vec![changed]))
}

/// A journaled step finished: record its result.
pub fn record_step(run: &Run, lease: &Lease, entry: JournalEntry) -> Result<Update> {
    check_lease(run, lease)?;
    let event = EventKind::StepCompleted {
        key: entry.key.clone(),
        attempt: entry.attempt,
        duration_micros: i64::try_from(entry.duration.as_micros()).unwrap_or(i64::MAX),
    };
    let mut next = run.clone();
    next.updated_at = entry.finished_at;
    let mut update = Update::new(next, vec![event]);
    update.steps.push(entry);
    Ok(update)
}

/// A workflow event, written under the lease.
pub fn workflow_event(run: &Run, lease: &Lease, event_type: &str, data: Value, now: Timestamp) -> Result<Update> {
    workflow_events(run, lease, &[(event_type.to_owned(), data)], now)
}

/// [`workflow_event`] for several events, appended in order in one change.
pub fn workflow_events(run: &Run, lease: &Lease, events: &[(String, Value)], now: Timestamp) -> Result<Update> {
    check_lease(run, lease)?;
    let mut next = run.clone();
    next.updated_at = now;
    let events = events.iter().map(|(event_type, data)| EventKind::Workflow { event_type: event_type.clone(), data: data.clone() }).collect();
    Ok(Update::new(next, events))
}

/// Maintenance: a running run whose lease lapsed is queued again (or failed when its attempts
/// are used up). A run whose lease was extended meanwhile is left alone.
pub fn rescue(run: &Run, policy: &RetryPolicy, now: Timestamp) -> Result<Update> {
    let Some(lease) = run.lease.as_ref().filter(|lease| run.state == RunState::Running && lease.expires_at < now) else {
        return Ok(Update::unchanged(run));
    };
    let message = format!("worker {} stopped heartbeating; its lease expired", lease.worker_id);
    let error = RunError::new(ErrorCode::LeaseExpired, message, true, run.attempt);
    Ok(requeue_or_fail(run, error, policy, now))
}

/// An operator (`RescueRuns`) or maintenance (the holder's worker went stale) takes a running run
/// back from the holder of `lease` at once, whatever its expiry: queued again (or failed when its
/// attempts are used up). `StaleLease` if the run has moved on since.
pub fn revoke(run: &Run, lease: &Lease, reason: &str, policy: &RetryPolicy, now: Timestamp) -> Result<Update> {
    check_lease(run, lease)?;
    let error = RunError::new(ErrorCode::LeaseExpired, reason, true, run.attempt);
    Ok(requeue_or_fail(run, error, policy, now))
}

/// Maintenance: an unfinished run past its deadline fails.
pub fn expire_deadline(run: &Run, now: Timestamp) -> Result<Update> {
    let overdue = run.deadline.is_some_and(|deadline| deadline < now);
    if run.state.is_terminal() || !overdue {
        return Ok(Update::unchanged(run));
    }
    let mut next = run.clone();
    next.error = Some(RunError::new(ErrorCode::DeadlineExceeded, "the run's deadline passed", false, run.attempt));
    finish(&mut next, RunState::Failed, now);
    let changed = state_changed(run.state, &next, "deadline exceeded");
    Ok(Update::new(next, vec![changed]))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Map;

    use super::*;
    use crate::domain::{DecisionOutcome, RunId, WorkerId, WorkspaceId};

    fn run(state: RunState) -> Run {
        let id = RunId::new();
        let now = Timestamp::now();
        Run {
            id,
            workspace: WorkspaceId::new("default"),
            kind: "noop".into(),
            state,
            input: Map::new(),
            output: None,
            error: None,
            priority: 0,
            max_attempts: 3,
            attempt: 1,
            attempt_timeout: Duration::from_secs(60),
            deadline: None,
            concurrency: None,
            labels: BTreeMap::new(),
            request_id: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
            scheduled_at: now,
            waiting: None,
            decisions: BTreeMap::new(),
            lease: (state == RunState::Running).then(|| Lease {
                run_id: id,
                worker_id: WorkerId::new("w1"),
                epoch: 4,
                expires_at: now.plus(Duration::from_secs(10)),
            }),
            cancel_requested: false,
            last_event_sequence: 2,
            last_log_sequence: 0,
            history_pruned_at: None,
            replay: None,
        }
    }

    const POLICY: RetryPolicy = RetryPolicy { base: Duration::from_millis(100), max: Duration::from_secs(1) };

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..10 {
            let full = POLICY.base.saturating_mul(1 << (attempt - 1)).min(POLICY.max);
            let delay = POLICY.delay(attempt);
            assert!(delay >= full / 2 && delay <= full, "attempt {attempt}: {delay:?} outside [{:?}, {full:?}]", full / 2);
        }
    }

    #[test]
    fn stale_epoch_is_refused() {
        let running = run(RunState::Running);
        let mut stale = running.lease.clone().unwrap();
        stale.epoch = 3;
        let err = succeed(&running, &stale, Value::Null, Timestamp::now()).unwrap_err();
        assert!(matches!(err, Error::StaleLease { epoch: 3, .. }));
    }

    #[test]
    fn retryable_failure_requeues_until_attempts_run_out() {
        let mut running = run(RunState::Running);
        let lease = running.lease.clone().unwrap();
        let error = RunError::new(ErrorCode::Failed, "boom", true, 1);
        let update = fail_attempt(&running, &lease, error.clone(), &POLICY, Timestamp::now()).unwrap();
        assert_eq!(update.run.state, RunState::Queued);
        assert_eq!(update.run.attempt, 2);
        running.attempt = 3;
        let update = fail_attempt(&running, &lease, error, &POLICY, Timestamp::now()).unwrap();
        assert_eq!(update.run.state, RunState::Failed);
    }

    #[test]
    fn non_retryable_failure_fails_at_once() {
        let running = run(RunState::Running);
        let lease = running.lease.clone().unwrap();
        let error = RunError::new(ErrorCode::InvalidInput, "bad", false, 1);
        let update = fail_attempt(&running, &lease, error, &POLICY, Timestamp::now()).unwrap();
        assert_eq!(update.run.state, RunState::Failed);
    }

    #[test]
    fn cooperative_cancel_keeps_running_and_is_idempotent() {
        let running = run(RunState::Running);
        let update = cancel(&running, "stop", false, Timestamp::now()).unwrap();
        assert_eq!(update.run.state, RunState::Running);
        assert!(update.run.cancel_requested);
        let again = cancel(&update.run, "stop", false, Timestamp::now()).unwrap();
        assert!(again.events.is_empty());
    }

    #[test]
    fn finished_runs_cannot_be_cancelled() {
        let err = cancel(&run(RunState::Succeeded), "", false, Timestamp::now()).unwrap_err();
        assert!(matches!(err, Error::FailedPrecondition { reason: "RUN_ALREADY_FINISHED", .. }));
    }

    #[test]
    fn decisions_are_idempotent_and_immutable() {
        let mut waiting = run(RunState::Waiting);
        waiting.waiting = Some(Waiting { key: "approve".into(), prompt: "ok?".into(), since: Timestamp::now() });
        let approve = Decision { outcome: DecisionOutcome::Approve, note: String::new() };
        let update = decide(&waiting, None, &approve, Timestamp::now()).unwrap();
        assert_eq!(update.run.state, RunState::Queued);
        let repeat = decide(&update.run, None, &approve, Timestamp::now()).unwrap();
        assert!(repeat.events.is_empty());
        let reject = Decision { outcome: DecisionOutcome::Reject, note: String::new() };
        assert!(decide(&update.run, Some("approve"), &reject, Timestamp::now()).is_err());
        assert!(matches!(
            decide(&update.run, None, &reject, Timestamp::now()).unwrap_err(),
            Error::FailedPrecondition { reason: "RUN_NOT_WAITING", .. }
        ));
    }

    #[test]
    fn a_decision_given_ahead_is_found_at_the_wait() {
        let approve = Decision { outcome: DecisionOutcome::Approve, note: String::new() };
        // Given while the run is queued: recorded, the run left as it is.
        let queued = run(RunState::Queued);
        let ahead = decide_ahead(&queued, "start", &approve, Timestamp::now()).unwrap();
        assert_eq!((ahead.run.state, ahead.run.decisions.get("start")), (RunState::Queued, Some(&approve)));
        assert!(decide_ahead(&ahead.run, "start", &approve, Timestamp::now()).unwrap().events.is_empty(), "the same again is a no-op");
        let reject = Decision { outcome: DecisionOutcome::Reject, note: String::new() };
        assert!(matches!(decide_ahead(&ahead.run, "start", &reject, Timestamp::now()).unwrap_err(), Error::AlreadyExists { .. }));
        // An attempt that began before it and reaches the wait is queued again at once, not parked.
        let mut running = run(RunState::Running);
        running.decisions.clone_from(&ahead.run.decisions);
        let lease = running.lease.clone().unwrap();
        let suspended = suspend(&running, &lease, "start", "Start?", Timestamp::now()).unwrap();
        assert_eq!((suspended.run.state, suspended.run.waiting.is_none()), (RunState::Queued, true));
        // At the wait itself, it answers it like any decision; a finished run takes none.
        let mut waiting = run(RunState::Waiting);
        waiting.waiting = Some(Waiting { key: "start".into(), prompt: "Start?".into(), since: Timestamp::now() });
        assert_eq!(decide_ahead(&waiting, "start", &approve, Timestamp::now()).unwrap().run.state, RunState::Queued);
        assert!(matches!(
            decide_ahead(&run(RunState::Succeeded), "start", &approve, Timestamp::now()).unwrap_err(),
            Error::FailedPrecondition { reason: "RUN_FINISHED", .. }
        ));
    }

    #[test]
    fn a_run_cancelled_on_its_way_to_a_wait_stops_there() {
        let running = run(RunState::Running);
        let lease = running.lease.clone().unwrap();
        let requested = cancel(&running, "not needed", false, Timestamp::now()).unwrap().run;
        let stopped = suspend(&requested, &lease, "approve", "ok?", Timestamp::now()).unwrap();
        assert_eq!((stopped.run.state, stopped.run.waiting.is_none()), (RunState::Cancelled, true));
    }

    #[test]
    fn rescue_leaves_live_leases_alone() {
        let running = run(RunState::Running);
        assert!(rescue(&running, &POLICY, Timestamp::now()).unwrap().events.is_empty());
        let later = Timestamp::now().plus(Duration::from_secs(11));
        let update = rescue(&running, &POLICY, later).unwrap();
        assert_eq!(update.run.state, RunState::Queued);
        assert_eq!(update.run.error.unwrap().code, ErrorCode::LeaseExpired);
    }
}
