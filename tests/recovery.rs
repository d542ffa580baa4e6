//! Durability on both stores: a crashed server's runs are rescued and resumed by the next one
//! without repeating finished steps; a lease that lapsed is rescued within seconds and its old
//! holder's writes are refused; a graceful shutdown gives unfinished runs back to the queue.

mod support;

use std::time::{Duration, Instant};

use conclave::{
    domain::{LogStream, NewLogLine, RunId, Timestamp},
    engine::lifecycle,
    error::Error,
    proto::{self, ErrorCode, RunState},
};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

/// Keys of the steps the run has journaled so far.
async fn journaled(database: &TestDatabase, id: &str) -> Vec<String> {
    let store = open_store(database).await;
    let id = RunId::parse("id", id).unwrap();
    let mut keys: Vec<String> = store.read_journal(id).await.unwrap().into_iter().map(|entry| entry.key).collect();
    keys.sort();
    keys
}

async fn a_crashed_run_resumes_without_repeating_finished_steps(database: &TestDatabase) {
    let counter = StepCounter::default();
    let first = TestServer::start(&database.url, test_registry(&counter), fast_config()).await;
    let mut client = first.client().await;
    let run = client.create_run(create("steps", json!({"count": 6, "step_ms": 150}))).await.unwrap().into_inner();
    let deadline = Instant::now() + WAIT;
    while journaled(database, &run.id).await.len() < 2 {
        assert!(Instant::now() < deadline, "the run never journaled two steps");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.crash().await;
    let finished_before_crash = journaled(database, &run.id).await;
    assert!(finished_before_crash.len() < 6, "the crash came mid-run");

    let second = TestServer::start(&database.url, test_registry(&counter), fast_config()).await;
    let mut client = second.client().await;
    let done = wait_for_state(&mut client, &run.id, &[RunState::Succeeded], WAIT).await;
    assert_eq!(done.attempt, 2, "the rescue made a second attempt");
    let output = done.output.and_then(|v| v.kind);
    assert!(matches!(output, Some(prost_types::value::Kind::StructValue(ref s)) if s.fields.contains_key("total")));
    for key in &finished_before_crash {
        assert_eq!(counter.get(&format!("{}/{key}", run.id)), 1, "{key} finished before the crash and ran again");
    }
    assert!(counter.total() <= 7, "at most the step in flight at the crash ran twice: {}", counter.total());
    second.shutdown().await;
}

async fn a_lapsed_lease_is_rescued_quickly_and_its_holder_is_fenced_off(database: &TestDatabase) {
    let counter = StepCounter::default();
    let first = TestServer::start(&database.url, test_registry(&counter), fast_config()).await;
    let mut client = first.client().await;
    let run = client.create_run(create("stubborn", json!({"ms": 60_000}))).await.unwrap().into_inner();
    let running = wait_for_state(&mut client, &run.id, &[RunState::Running], WAIT).await;
    let old = running.lease.expect("a running run has a lease");
    first.crash().await;
    let crashed_at = Instant::now();

    let config = fast_config();
    let ttl = config.lease_ttl;
    let second = TestServer::start(&database.url, test_registry(&counter), config).await;
    let mut client = second.client().await;
    let mut rescued = None;
    while crashed_at.elapsed() < WAIT {
        let current = client.get_run(proto::GetRunRequest { id: run.id.clone() }).await.unwrap().into_inner();
        if current.lease.as_ref().is_some_and(|lease| lease.epoch > old.epoch) {
            rescued = Some(current);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rescued = rescued.expect("the run was rescued and claimed again");
    let took = crashed_at.elapsed();
    assert!(took < ttl * 2 + Duration::from_secs(1), "rescue took {took:?} with a {ttl:?} lease");
    assert_eq!(rescued.attempt, 2);
    assert_eq!(rescued.error.map(|e| e.code), Some(ErrorCode::LeaseExpired as i32), "the lapsed attempt is recorded");

    // The crashed worker's lease (old epoch) can no longer write anything into the run.
    let store = open_store(database).await;
    let id = RunId::parse("id", &run.id).unwrap();
    let stale = conclave::domain::Lease {
        run_id: id,
        worker_id: conclave::domain::WorkerId::new(old.worker_id.clone()),
        epoch: old.epoch,
        expires_at: Timestamp::now(),
    };
    let line = NewLogLine { time: Timestamp::now(), stream: LogStream::Stdout, text: "late".into() };
    assert!(matches!(store.append_logs(&stale, 1, 0, &[line]).await, Err(Error::StaleLease { .. })));
    let completion = store.update_run(id, &|r| lifecycle::succeed(r, &stale, json!("late"), Timestamp::now())).await;
    assert!(matches!(completion, Err(Error::StaleLease { .. })));
    let still = client.get_run(proto::GetRunRequest { id: run.id.clone() }).await.unwrap().into_inner();
    assert_eq!(still.state, RunState::Running as i32, "the stale completion changed nothing");
    assert_eq!(still.last_log_sequence, 0, "the stale log line was not stored");
    second.shutdown().await;
}

async fn a_rescue_after_the_last_attempt_fails_the_run(database: &TestDatabase) {
    let counter = StepCounter::default();
    let first = TestServer::start(&database.url, test_registry(&counter), fast_config()).await;
    let mut client = first.client().await;
    let mut request = create("stubborn", json!({"ms": 60_000}));
    request.max_attempts = 1;
    let run = client.create_run(request).await.unwrap().into_inner();
    wait_for_state(&mut client, &run.id, &[RunState::Running], WAIT).await;
    first.crash().await;
    let mut config = fast_config();
    config.worker_slots = 0;
    let second = TestServer::start(&database.url, test_registry(&counter), config).await;
    let mut client = second.client().await;
    let failed = wait_for_state(&mut client, &run.id, &[RunState::Failed], WAIT).await;
    assert_eq!(failed.error.map(|e| e.code), Some(ErrorCode::LeaseExpired as i32));
    second.shutdown().await;
}

async fn graceful_shutdown_releases_unfinished_runs_to_the_queue(database: &TestDatabase) {
    let counter = StepCounter::default();
    let first = TestServer::start(&database.url, test_registry(&counter), fast_config()).await;
    let mut client = first.client().await;
    let quick = client.create_run(create("sleep", json!({"seconds": 0.2}))).await.unwrap().into_inner();
    let stubborn = client.create_run(create("stubborn", json!({"ms": 60_000}))).await.unwrap().into_inner();
    wait_for_state(&mut client, &stubborn.id, &[RunState::Running], WAIT).await;
    let started = Instant::now();
    first.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown is bounded by its grace period");

    let mut config = fast_config();
    config.worker_slots = 0;
    let second = TestServer::start(&database.url, test_registry(&counter), config).await;
    let mut client = second.client().await;
    let quick = client.get_run(proto::GetRunRequest { id: quick.id.clone() }).await.unwrap().into_inner();
    assert_eq!(quick.state, RunState::Succeeded as i32, "a run that finished within the grace period is finished");
    let released = client.get_run(proto::GetRunRequest { id: stubborn.id.clone() }).await.unwrap().into_inner();
    assert_eq!(released.state, RunState::Queued as i32, "an unfinished run went back to the queue");
    assert_eq!(released.attempt, 1, "a release does not use up an attempt");
    assert!(released.lease.is_none());
    second.shutdown().await;
}

on_both_stores!(
    a_crashed_run_resumes_without_repeating_finished_steps,
    a_lapsed_lease_is_rescued_quickly_and_its_holder_is_fenced_off,
    a_rescue_after_the_last_attempt_fails_the_run,
    graceful_shutdown_releases_unfinished_runs_to_the_queue,
);
