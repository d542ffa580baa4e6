//! Several servers on one Postgres database: a run created through one server is started at
//! once by another (woken by NOTIFY, not by its slow poll), and followed live through the first
//! (its events and log lines arrive without gap or duplicate, and the streams end when the run
//! ends), although the process serving the streams never executes the run.

mod support;

use std::time::Duration;

use conclave::proto::{self, RunState};
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_executed_by_one_server_streams_live_through_another() {
    let Some(database) = Backend::Postgres.database().await else {
        eprintln!("skipped: set CONCLAVE_TEST_DATABASE_URL to run the Postgres tests");
        return;
    };
    // Polls and idle checks are far slower than the test's limit: only NOTIFY can make it pass.
    let slow = conclave::engine::EngineConfig {
        poll_interval: Duration::from_secs(60),
        stream_heartbeat: Duration::from_secs(60),
        ..fast_config()
    };
    let api_only = conclave::engine::EngineConfig { worker_slots: 0, ..slow.clone() };
    let worker = TestServer::start(&database.url, test_registry(&StepCounter::default()), slow).await;
    let front = TestServer::start(&database.url, test_registry(&StepCounter::default()), api_only).await;
    let mut client = front.client().await;

    let run = client
        .create_run(create("echo", json!({"lines": ["a", "b", "c"], "repeat": 30, "interval_ms": 5})))
        .await
        .unwrap()
        .into_inner();
    let id = run.id.clone();
    let mut watch_client = client.clone();
    let watch = tokio::spawn(async move {
        let request = proto::WatchRunRequest { id, after_sequence: 0 };
        let mut stream = watch_client.watch_run(request).await.unwrap().into_inner();
        let mut sequences = Vec::new();
        let mut last_state = 0;
        while let Some(message) = stream.message().await.unwrap() {
            for event in message.events {
                if let Some(proto::run_event::Event::StateChanged(change)) = &event.event {
                    last_state = change.to;
                }
                sequences.push(event.sequence);
            }
        }
        (sequences, last_state)
    });
    let id = run.id.clone();
    let mut tail_client = client.clone();
    let tail = tokio::spawn(async move {
        let request = proto::TailLogsRequest { id, after_sequence: 0, follow: true };
        let mut stream = tail_client.tail_logs(request).await.unwrap().into_inner();
        let mut lines = Vec::new();
        while let Some(message) = stream.message().await.unwrap() {
            lines.extend(message.lines.into_iter().map(|line| (line.sequence, line.text)));
        }
        lines
    });

    let limit = Duration::from_secs(15);
    let (sequences, last_state) = tokio::time::timeout(limit, watch).await.expect("the watch ended with the run").unwrap();
    let lines = tokio::time::timeout(limit, tail).await.expect("the tail ended with the run").unwrap();

    let done = client.get_run(proto::GetRunRequest { id: run.id.clone() }).await.unwrap().into_inner();
    assert_eq!(done.state, RunState::Succeeded as i32);
    assert_eq!(done.lease.as_ref().map(|l| l.worker_id.clone()), None);
    assert_eq!(sequences, (1..=done.last_event_sequence).collect::<Vec<_>>(), "every event once, in order");
    assert_eq!(last_state, RunState::Succeeded as i32);
    assert_eq!(lines.len(), 90);
    for (index, (sequence, text)) in lines.iter().enumerate() {
        assert_eq!(*sequence, index as u64 + 1, "line {index} out of place");
        assert_eq!(text, ["a", "b", "c"][index % 3]);
    }
    front.shutdown().await;
    worker.shutdown().await;
}
