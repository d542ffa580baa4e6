//! The lifecycle of every built-in kind, on both stores, through a real server and the
//! generated client.

mod support;

use std::time::Duration;

use conclave::proto::{self, RunState};
use serde_json::json;
use support::*;

async fn echo_runs_to_success_with_its_logs(database: &TestDatabase) {
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), fast_config()).await;
    let mut client = server.client().await;
    let run = client.create_run(create("echo", json!({"text": "hello\nworld", "repeat": 2}))).await.unwrap().into_inner();
    assert_eq!(run.state, RunState::Queued as i32);
    let done = wait_for_state(&mut client, &run.id, &[RunState::Succeeded], Duration::from_secs(10)).await;
    assert_eq!(done.attempt, 1);
    assert_eq!(done.last_log_sequence, 4);
    let mut logs = client.tail_logs(proto::TailLogsRequest { id: run.id.clone(), after_sequence: 0, follow: false }).await.unwrap().into_inner();
    let mut texts = Vec::new();
    while let Some(message) = logs.message().await.unwrap() {
        texts.extend(message.lines.into_iter().map(|line| line.text));
    }
    assert_eq!(texts, ["hello", "world", "hello", "world"]);
    server.shutdown().await;
}

on_both_stores!(echo_runs_to_success_with_its_logs);
