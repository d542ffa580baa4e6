//! Cancelling and force-failing runs in every unfinished state, on both stores: queued and
//! waiting runs stop at once; a running run stops at its next step, or by force after the grace
//! period or when asked; finished runs refuse.

mod support;

use std::time::{Duration, Instant};

use conclave::proto::{self, ErrorCode, RunState};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

fn cancel(id: &str, force: bool) -> proto::CancelRunRequest {
    proto::CancelRunRequest { id: id.to_owned(), reason: "changed my mind".into(), force }
}

async fn queued_and_waiting_runs_are_cancelled_at_once(database: &TestDatabase) {
    let mut config = fast_config();
    config.worker_slots = 0;
    let idle = TestServer::start(&database.url, test_registry(&StepCounter::default()), config).await;
    let mut client = idle.client().await;
    let queued = client.create_run(create("noop", json!({}))).await.unwrap().into_inner();
    let cancelled = client.cancel_run(cancel(&queued.id, false)).await.unwrap().into_inner();
    assert_eq!(cancelled.state, RunState::Cancelled as i32);
    let error = cancelled.error.expect("the reason is recorded");
    assert_eq!((error.code, error.message.as_str()), (ErrorCode::Cancelled as i32, "changed my mind"));
    let again = client.cancel_run(cancel(&queued.id, false)).await.unwrap_err();
    assert_eq!((again.code(), reason(&again).as_str()), (tonic::Code::FailedPrecondition, "RUN_ALREADY_FINISHED"));
    idle.shutdown().await;

    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), fast_config()).await;
    let mut client = server.client().await;
    let waiting = client.create_run(create("approval", json!({}))).await.unwrap().into_inner();
    wait_for_state(&mut client, &waiting.id, &[RunState::Waiting], WAIT).await;
    let cancelled = client.cancel_run(cancel(&waiting.id, false)).await.unwrap().into_inner();
    assert_eq!(cancelled.state, RunState::Cancelled as i32);
    assert!(cancelled.waiting.is_none());
    server.shutdown().await;
}

async fn a_running_run_stops_at_its_next_step(database: &TestDatabase) {
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), fast_config()).await;
    let mut client = server.client().await;
    let sleeping = client.create_run(create("sleep", json!({"seconds": 60}))).await.unwrap().into_inner();
    wait_for_state(&mut client, &sleeping.id, &[RunState::Running], WAIT).await;
    let asked = Instant::now();
    client.cancel_run(cancel(&sleeping.id, false)).await.unwrap();
    let done = wait_for_state(&mut client, &sleeping.id, &[RunState::Cancelled], WAIT).await;
    assert!(asked.elapsed() < Duration::from_millis(900), "a cooperative run stops before the grace period");
    assert_eq!(done.error.map(|e| e.code), Some(ErrorCode::Cancelled as i32));

    let shell = client
        .create_run(create("shell", json!({"program": "sh", "args": ["-c", "echo started; sleep 60"]})))
        .await
        .unwrap()
        .into_inner();
    wait_for_state(&mut client, &shell.id, &[RunState::Running], WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.cancel_run(cancel(&shell.id, false)).await.unwrap();
    wait_for_state(&mut client, &shell.id, &[RunState::Cancelled], Duration::from_secs(5)).await;
    server.shutdown().await;
}

async fn a_run_that_ignores_cancellation_is_stopped_by_force(database: &TestDatabase) {
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), fast_config()).await;
    let mut client = server.client().await;
    let stubborn = client.create_run(create("stubborn", json!({"ms": 60_000}))).await.unwrap().into_inner();
    wait_for_state(&mut client, &stubborn.id, &[RunState::Running], WAIT).await;
    let asked = Instant::now();
    let requested = client.cancel_run(cancel(&stubborn.id, false)).await.unwrap().into_inner();
    assert_eq!(requested.state, RunState::Running as i32, "a cooperative cancel waits for the run");
    assert!(requested.cancel_requested);
    wait_for_state(&mut client, &stubborn.id, &[RunState::Cancelled], WAIT).await;
    let took = asked.elapsed();
    assert!(took >= Duration::from_millis(900), "stopped by force only after the 1 s grace period ({took:?})");

    let forced = client.create_run(create("stubborn", json!({"ms": 60_000}))).await.unwrap().into_inner();
    wait_for_state(&mut client, &forced.id, &[RunState::Running], WAIT).await;
    let now = client.cancel_run(cancel(&forced.id, true)).await.unwrap().into_inner();
    assert_eq!(now.state, RunState::Cancelled as i32, "force cancels at once");
    assert!(now.lease.is_none());
    let stats = tokio::time::timeout(WAIT, async {
        loop {
            let stats = client.get_queue_stats(proto::GetQueueStatsRequest::default()).await.unwrap().into_inner();
            if stats.busy_worker_slots == 0 {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the forced run's worker slot is freed");
    assert_eq!(stats.active_leases, 0);
    server.shutdown().await;
}

async fn force_fail_ends_any_unfinished_run_with_its_reason(database: &TestDatabase) {
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), fast_config()).await;
    let mut client = server.client().await;
    let running = client.create_run(create("stubborn", json!({"ms": 60_000}))).await.unwrap().into_inner();
    wait_for_state(&mut client, &running.id, &[RunState::Running], WAIT).await;
    let failed = client
        .force_fail_run(proto::ForceFailRunRequest { id: running.id.clone(), reason: "watchdog".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(failed.state, RunState::Failed as i32);
    let error = failed.error.unwrap();
    assert_eq!((error.code, error.message.as_str()), (ErrorCode::ForceFailed as i32, "watchdog"));
    let again = client
        .force_fail_run(proto::ForceFailRunRequest { id: running.id.clone(), reason: "again".into() })
        .await
        .unwrap_err();
    assert_eq!(reason(&again), "RUN_ALREADY_FINISHED");
    let no_reason = client
        .force_fail_run(proto::ForceFailRunRequest { id: running.id.clone(), reason: " ".into() })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&no_reason), ["reason"]);
    server.shutdown().await;
}

on_both_stores!(
    queued_and_waiting_runs_are_cancelled_at_once,
    a_running_run_stops_at_its_next_step,
    a_run_that_ignores_cancellation_is_stopped_by_force,
    force_fail_ends_any_unfinished_run_with_its_reason,
);
