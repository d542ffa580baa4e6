//! The lifecycle of every built-in kind, retries, timeouts, deadlines, concurrency keys,
//! idempotent creation, listing and queue statistics, on both stores, through a real server and
//! the generated client.

mod support;

use std::time::Duration;

use conclave::proto::{self, ErrorCode, RunState};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

fn output_json(run: &proto::Run) -> serde_json::Value {
    fn value(v: &prost_types::Value) -> serde_json::Value {
        use prost_types::value::Kind;
        match &v.kind {
            None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
            Some(Kind::BoolValue(b)) => json!(b),
            Some(Kind::NumberValue(n)) if n.fract() == 0.0 => json!(*n as i64),
            Some(Kind::NumberValue(n)) => json!(n),
            Some(Kind::StringValue(s)) => json!(s),
            Some(Kind::ListValue(l)) => serde_json::Value::Array(l.values.iter().map(value).collect()),
            Some(Kind::StructValue(s)) => serde_json::Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), value(v))).collect()),
        }
    }
    run.output.as_ref().map(value).unwrap_or_default()
}

async fn all_events(client: &mut proto::run_service_client::RunServiceClient<tonic::transport::Channel>, id: &str) -> Vec<proto::RunEvent> {
    let mut stream = client.watch_run(proto::WatchRunRequest { id: id.to_owned(), after_sequence: 0 }).await.unwrap().into_inner();
    let mut events = Vec::new();
    while let Some(message) = tokio::time::timeout(WAIT, stream.message()).await.expect("watch ends").unwrap() {
        events.extend(message.events);
    }
    events
}

fn state_changes(events: &[proto::RunEvent]) -> Vec<(i32, i32)> {
    events
        .iter()
        .filter_map(|event| match &event.event {
            Some(proto::run_event::Event::StateChanged(change)) => Some((change.from, change.to)),
            _ => None,
        })
        .collect()
}

async fn start(database: &TestDatabase) -> TestServer {
    TestServer::start(&database.url, test_registry(&StepCounter::default()), fast_config()).await
}

async fn echo_runs_to_success_with_its_logs(database: &TestDatabase) {
    let server = start(database).await;
    let mut client = server.client().await;
    let run = client.create_run(create("echo", json!({"text": "hello\nworld", "repeat": 2}))).await.unwrap().into_inner();
    assert_eq!(run.state, RunState::Queued as i32);
    let done = wait_for_state(&mut client, &run.id, &[RunState::Succeeded], WAIT).await;
    assert_eq!(done.attempt, 1);
    assert_eq!(done.last_log_sequence, 4);
    assert_eq!(output_json(&done), json!({"text": "hello\nworld", "repeat": 2}));
    let mut logs = client.tail_logs(proto::TailLogsRequest { id: run.id.clone(), after_sequence: 0, follow: false }).await.unwrap().into_inner();
    let mut texts = Vec::new();
    while let Some(message) = logs.message().await.unwrap() {
        texts.extend(message.lines.into_iter().map(|line| line.text));
    }
    assert_eq!(texts, ["hello", "world", "hello", "world"]);
    server.shutdown().await;
}

async fn noop_records_every_transition_as_an_event(database: &TestDatabase) {
    let server = start(database).await;
    let mut client = server.client().await;
    let run = client.create_run(create("noop", json!({}))).await.unwrap().into_inner();
    let done = wait_for_state(&mut client, &run.id, &[RunState::Succeeded], WAIT).await;
    assert_eq!(output_json(&done), json!({}));
    assert!(done.start_time.is_some() && done.finish_time.is_some());
    assert!(done.lease.is_none(), "a finished run holds no lease");
    let events = all_events(&mut client, &run.id).await;
    assert!(matches!(events[0].event, Some(proto::run_event::Event::Created(_))));
    assert_eq!(
        state_changes(&events),
        [(RunState::Queued as i32, RunState::Running as i32), (RunState::Running as i32, RunState::Succeeded as i32)]
    );
    let sequences: Vec<u64> = events.iter().map(|event| event.sequence).collect();
    assert_eq!(sequences, (1..=done.last_event_sequence).collect::<Vec<_>>());
    server.shutdown().await;
}

async fn sleep_journals_its_wake_time(database: &TestDatabase) {
    let server = start(database).await;
    let mut client = server.client().await;
    let started = std::time::Instant::now();
    let run = client.create_run(create("sleep", json!({"seconds": 0.3}))).await.unwrap().into_inner();
    let done = wait_for_state(&mut client, &run.id, &[RunState::Succeeded], WAIT).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(output_json(&done), json!({"slept_seconds": 0.3}));
    let events = all_events(&mut client, &run.id).await;
    assert!(events.iter().any(|event| matches!(&event.event, Some(proto::run_event::Event::StepCompleted(step)) if step.key == "wake_at")));
    server.shutdown().await;
}

async fn approval_waits_without_a_worker_and_resumes_on_decision(database: &TestDatabase) {
    let server = start(database).await;
    let mut client = server.client().await;
    let run = client.create_run(create("approval", json!({"prompt": "Ship it?"}))).await.unwrap().into_inner();
    let waiting = wait_for_state(&mut client, &run.id, &[RunState::Waiting], WAIT).await;
    let wait = waiting.waiting.expect("waiting info");
    assert_eq!((wait.key.as_str(), wait.prompt.as_str()), ("approval", "Ship it?"));
    assert!(waiting.lease.is_none(), "a waiting run holds no lease");
    let stats = client.get_queue_stats(proto::GetQueueStatsRequest::default()).await.unwrap().into_inner();
    assert_eq!((stats.active_leases, stats.busy_worker_slots), (0, 0), "a waiting run holds no worker slot");

    let approve = proto::Decision { outcome: Some(proto::decision::Outcome::Approve(true)), note: "lgtm".into() };
    let decide = |decision: proto::Decision| proto::SubmitDecisionRequest { id: run.id.clone(), key: String::new(), decision: Some(decision) };
    client.submit_decision(decide(approve.clone())).await.expect("decision accepted");
    let done = wait_for_state(&mut client, &run.id, &[RunState::Succeeded], WAIT).await;
    assert_eq!(output_json(&done), json!({"decision": "approve", "input": null, "note": "lgtm"}));

    let again = client.submit_decision(decide(approve)).await.expect("the same decision again is a no-op");
    assert_eq!(again.into_inner().state, RunState::Succeeded as i32);
    let reject = proto::Decision { outcome: Some(proto::decision::Outcome::Reject(true)), note: String::new() };
    let conflict = client
        .submit_decision(proto::SubmitDecisionRequest { id: run.id.clone(), key: "approval".into(), decision: Some(reject.clone()) })
        .await
        .unwrap_err();
    assert_eq!((conflict.code(), reason(&conflict).as_str()), (tonic::Code::AlreadyExists, "DECISION_ALREADY_RECORDED"));
    let not_waiting = client.submit_decision(decide(reject)).await.unwrap_err();
    assert_eq!((not_waiting.code(), reason(&not_waiting).as_str()), (tonic::Code::FailedPrecondition, "RUN_NOT_WAITING"));

    let with_input = client.create_run(create("approval", json!({}))).await.unwrap().into_inner();
    wait_for_state(&mut client, &with_input.id, &[RunState::Waiting], WAIT).await;
    let wrong_key = client
        .submit_decision(proto::SubmitDecisionRequest {
            id: with_input.id.clone(),
            key: "elsewhere".into(),
            decision: Some(proto::Decision { outcome: Some(proto::decision::Outcome::Reject(true)), note: String::new() }),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&wrong_key), "WAIT_KEY_MISMATCH");
    let answer = proto::Decision { outcome: Some(proto::decision::Outcome::Input(input(json!({"budget": 3})).unwrap())), note: String::new() };
    client
        .submit_decision(proto::SubmitDecisionRequest { id: with_input.id.clone(), key: String::new(), decision: Some(answer) })
        .await
        .unwrap();
    let done = wait_for_state(&mut client, &with_input.id, &[RunState::Succeeded], WAIT).await;
    assert_eq!(output_json(&done), json!({"decision": "input", "input": {"budget": 3}, "note": ""}));
    server.shutdown().await;
}

async fn shell_streams_output_and_reports_exit_status(database: &TestDatabase) {
    let server = start(database).await;
    let mut client = server.client().await;
    let script = "echo out; echo err >&2; printf 'no newline'";
    let run = client.create_run(create("shell", json!({"program": "sh", "args": ["-c", script]}))).await.unwrap().into_inner();
    let done = wait_for_state(&mut client, &run.id, &[RunState::Succeeded], WAIT).await;
    assert_eq!(output_json(&done), json!({"exit_code": 0}));
    let mut logs = client.tail_logs(proto::TailLogsRequest { id: run.id.clone(), after_sequence: 0, follow: false }).await.unwrap().into_inner();
    let mut lines = Vec::new();
    while let Some(message) = logs.message().await.unwrap() {
        lines.extend(message.lines.into_iter().map(|line| (line.stream, line.text)));
    }
    lines.sort();
    assert_eq!(
        lines,
        [
            (proto::LogStream::Stdout as i32, "no newline".to_owned()),
            (proto::LogStream::Stdout as i32, "out".to_owned()),
            (proto::LogStream::Stderr as i32, "err".to_owned()),
        ]
    );

    let failing = client.create_run(create("shell", json!({"program": "sh", "args": ["-c", "exit 3"]}))).await.unwrap().into_inner();
    let failed = wait_for_state(&mut client, &failing.id, &[RunState::Failed], WAIT).await;
    let error = failed.error.expect("error");
    assert_eq!(error.code, ErrorCode::Failed as i32);
    assert!(error.message.contains("status 3"), "{}", error.message);
    assert_eq!(failed.attempt, 1, "a non-zero exit is not retried");

    let tolerated = client
        .create_run(create("shell", json!({"program": "sh", "args": ["-c", "exit 3"], "allow_failure": true})))
        .await
        .unwrap()
        .into_inner();
    let done = wait_for_state(&mut client, &tolerated.id, &[RunState::Succeeded], WAIT).await;
    assert_eq!(output_json(&done), json!({"exit_code": 3}));

    let mut slow = create("shell", json!({"program": "sh", "args": ["-c", "sleep 30"], "timeout_seconds": 0.3}));
    slow.max_attempts = 1;
    let slow = client.create_run(slow).await.unwrap().into_inner();
    let started = std::time::Instant::now();
    let timed_out = wait_for_state(&mut client, &slow.id, &[RunState::Failed], WAIT).await;
    assert_eq!(timed_out.error.unwrap().code, ErrorCode::Timeout as i32);
    assert!(started.elapsed() < Duration::from_secs(10), "the command (and its child) were killed at the timeout");

    let missing = client.create_run(create("shell", json!({"program": "definitely-not-a-program"}))).await.unwrap().into_inner();
    let failed = wait_for_state(&mut client, &missing.id, &[RunState::Failed], WAIT).await;
    let error = failed.error.unwrap();
    assert_eq!(error.code, ErrorCode::InvalidInput as i32);
    assert!(error.message.contains("not found"), "{}", error.message);
    server.shutdown().await;
}

async fn shell_is_refused_unless_enabled(database: &TestDatabase) {
    let registry = conclave::workflows::builtin_registry(conclave::workflows::ShellConfig::default());
    let server = TestServer::start(&database.url, registry, fast_config()).await;
    let mut client = server.client().await;
    let refused = client.create_run(create("shell", json!({"program": "ls"}))).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (tonic::Code::FailedPrecondition, "SHELL_DISABLED"));
    assert!(refused.message().contains("enable"), "the message says how to enable it: {}", refused.message());
    server.shutdown().await;
}

async fn failed_attempts_are_retried_without_repeating_finished_steps(database: &TestDatabase) {
    let counter = StepCounter::default();
    let server = TestServer::start(&database.url, test_registry(&counter), fast_config()).await;
    let mut client = server.client().await;
    let mut request = create("steps", json!({"count": 3, "fail_attempts": 2}));
    request.max_attempts = 3;
    let run = client.create_run(request).await.unwrap().into_inner();
    let done = wait_for_state(&mut client, &run.id, &[RunState::Succeeded], WAIT).await;
    assert_eq!(done.attempt, 3);
    assert_eq!(output_json(&done), json!({"total": 30}));
    for step in 0..3 {
        assert_eq!(counter.get(&format!("{}/step-{step}", run.id)), 1, "step {step} ran once across three attempts");
    }
    let events = all_events(&mut client, &run.id).await;
    let retries = state_changes(&events).iter().filter(|(from, to)| (*from, *to) == (RunState::Running as i32, RunState::Queued as i32)).count();
    assert_eq!(retries, 2);

    let mut hopeless = create("steps", json!({"count": 1, "fail_attempts": 9}));
    hopeless.max_attempts = 2;
    let hopeless = client.create_run(hopeless).await.unwrap().into_inner();
    let failed = wait_for_state(&mut client, &hopeless.id, &[RunState::Failed], WAIT).await;
    assert_eq!(failed.attempt, 2);
    let error = failed.error.unwrap();
    assert_eq!((error.code, error.attempt), (ErrorCode::Failed as i32, 2));

    // RetryRun: a fresh attempt budget, the journal kept (or reset on request).
    let retried = client.retry_run(proto::RetryRunRequest { id: hopeless.id.clone(), reset_journal: false }).await.unwrap().into_inner();
    assert_eq!(retried.state, RunState::Queued as i32);
    wait_for_state(&mut client, &hopeless.id, &[RunState::Failed], WAIT).await;
    assert_eq!(counter.get(&format!("{}/step-0", hopeless.id)), 1, "the retry reused the journal");
    client.retry_run(proto::RetryRunRequest { id: hopeless.id.clone(), reset_journal: true }).await.unwrap();
    wait_for_state(&mut client, &hopeless.id, &[RunState::Failed], WAIT).await;
    assert_eq!(counter.get(&format!("{}/step-0", hopeless.id)), 2, "reset_journal executes the step again");
    let not_retryable = client.retry_run(proto::RetryRunRequest { id: run.id.clone(), reset_journal: false }).await.unwrap_err();
    assert_eq!((not_retryable.code(), reason(&not_retryable).as_str()), (tonic::Code::FailedPrecondition, "RUN_NOT_RETRYABLE"));
    server.shutdown().await;
}

async fn attempt_timeouts_and_deadlines_fail_runs(database: &TestDatabase) {
    let server = start(database).await;
    let mut client = server.client().await;
    let mut stubborn = create("stubborn", json!({"ms": 30_000}));
    stubborn.attempt_timeout = Some(prost_types::Duration { seconds: 0, nanos: 200_000_000 });
    stubborn.max_attempts = 2;
    let stubborn = client.create_run(stubborn).await.unwrap().into_inner();
    let failed = wait_for_state(&mut client, &stubborn.id, &[RunState::Failed], WAIT).await;
    let error = failed.error.unwrap();
    assert_eq!((error.code, failed.attempt), (ErrorCode::Timeout as i32, 2), "a timeout is retried, then fails");

    let mut late = create("sleep", json!({"seconds": 30}));
    let deadline = std::time::SystemTime::now() + Duration::from_millis(500);
    let since_epoch = deadline.duration_since(std::time::UNIX_EPOCH).unwrap();
    late.deadline = Some(prost_types::Timestamp { seconds: since_epoch.as_secs() as i64, nanos: since_epoch.subsec_nanos() as i32 });
    let late = client.create_run(late).await.unwrap().into_inner();
    let failed = wait_for_state(&mut client, &late.id, &[RunState::Failed], WAIT).await;
    assert_eq!(failed.error.unwrap().code, ErrorCode::DeadlineExceeded as i32);
    server.shutdown().await;
}

async fn a_concurrency_key_limits_runs_running_at_once(database: &TestDatabase) {
    let server = start(database).await;
    let mut client = server.client().await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let mut request = create("sleep", json!({"seconds": 0.2}));
        request.concurrency_key = "deploy".into();
        request.concurrency_limit = 1;
        ids.push(client.create_run(request).await.unwrap().into_inner().id);
    }
    let mut spans = Vec::new();
    for id in &ids {
        let run = wait_for_state(&mut client, id, &[RunState::Succeeded], WAIT).await;
        let micros = |t: Option<prost_types::Timestamp>| t.map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000).unwrap();
        spans.push((micros(run.start_time), micros(run.finish_time)));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "runs sharing key `deploy` overlapped: {spans:?}");
    }
    server.shutdown().await;
}

async fn create_is_idempotent_with_a_request_id(database: &TestDatabase) {
    let server = start(database).await;
    let mut client = server.client().await;
    let mut request = create("noop", json!({}));
    request.request_id = "order-42".into();
    let first = client.create_run(request.clone()).await.unwrap().into_inner();
    let second = client.create_run(request.clone()).await.unwrap().into_inner();
    assert_eq!(first.id, second.id);
    let page = client.list_runs(proto::ListRunsRequest::default()).await.unwrap().into_inner();
    assert_eq!(page.runs.len(), 1, "the retried create made no second run");
    request.input = input(json!({"text": "different"}));
    request.kind = "echo".into();
    let reused = client.create_run(request).await.unwrap_err();
    assert_eq!((reused.code(), reason(&reused).as_str()), (tonic::Code::AlreadyExists, "REQUEST_ID_REUSED"));
    server.shutdown().await;
}

async fn list_filters_and_pages_without_overlap(database: &TestDatabase) {
    let mut config = fast_config();
    config.worker_slots = 0;
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config).await;
    let mut client = server.client().await;
    let mut created = Vec::new();
    for index in 0..7 {
        let mut request = create(if index % 2 == 0 { "noop" } else { "sleep" }, json!({}));
        request.labels = [("team".to_owned(), if index < 4 { "red" } else { "blue" }.to_owned())].into();
        created.push(client.create_run(request).await.unwrap().into_inner().id);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_runs(proto::ListRunsRequest { page_size: 3, page_token: token.clone(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert!(page.runs.len() <= 3);
        seen.extend(page.runs.into_iter().map(|run| run.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    created.reverse();
    assert_eq!(seen, created, "pages cover every run once, newest first");

    let red = client
        .list_runs(proto::ListRunsRequest { labels: [("team".into(), "red".into())].into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(red.runs.len(), 4);
    let sleeps = client.list_runs(proto::ListRunsRequest { kind: "sleep".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(sleeps.runs.len(), 3);
    let queued = client
        .list_runs(proto::ListRunsRequest { state: RunState::Queued as i32, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queued.runs.len(), 7);
    let first = client.list_runs(proto::ListRunsRequest { page_size: 2, ..Default::default() }).await.unwrap().into_inner();
    let mismatched = client
        .list_runs(proto::ListRunsRequest { page_size: 2, kind: "noop".into(), page_token: first.next_page_token, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&mismatched), ["page_token"]);

    let stats = client.get_queue_stats(proto::GetQueueStatsRequest::default()).await.unwrap().into_inner();
    let queued_noops = stats.counts.iter().find(|c| c.kind == "noop" && c.state == RunState::Queued as i32).map(|c| c.count);
    assert_eq!(queued_noops, Some(4));
    assert_eq!(stats.worker_slots, 0);
    assert!(stats.oldest_queued_age.is_some());
    server.shutdown().await;
}

on_both_stores!(
    echo_runs_to_success_with_its_logs,
    noop_records_every_transition_as_an_event,
    sleep_journals_its_wake_time,
    approval_waits_without_a_worker_and_resumes_on_decision,
    shell_streams_output_and_reports_exit_status,
    shell_is_refused_unless_enabled,
    failed_attempts_are_retried_without_repeating_finished_steps,
    attempt_timeouts_and_deadlines_fail_runs,
    a_concurrency_key_limits_runs_running_at_once,
    create_is_idempotent_with_a_request_id,
    list_filters_and_pages_without_overlap,
);
