//! Every bad input gets the precise gRPC code, a `google.rpc.ErrorInfo` reason, the offending
//! field in `google.rpc.BadRequest`, and a message that says what to fix — never INTERNAL, never
//! a panic. Store-independent, so it runs on SQLite.

mod support;

use std::time::Duration;

use conclave::proto::{self, RunState};
use serde_json::json;
use support::*;
use tonic::Code;

async fn server() -> (TestDatabase, TestServer) {
    let database = Backend::Sqlite.database().await.unwrap();
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), fast_config()).await;
    (database, server)
}

/// Asserts an INVALID_ARGUMENT naming exactly `fields`, with a message mentioning each.
#[track_caller]
fn assert_invalid(status: tonic::Status, fields: &[&str]) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "INVALID_ARGUMENT");
    assert_eq!(bad_fields(&status), fields, "{}", status.message());
    for field in fields {
        assert!(status.message().contains(field), "the message names {field}: {}", status.message());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_run_names_every_bad_field() {
    let (_db, server) = server().await;
    let mut client = server.client().await;

    let missing_kind = client.create_run(proto::CreateRunRequest::default()).await.unwrap_err();
    assert_invalid(missing_kind, &["kind"]);
    let unknown_kind = client.create_run(create("teleport", json!({}))).await.unwrap_err();
    assert_invalid(unknown_kind.clone(), &["kind"]);
    assert!(unknown_kind.message().contains("echo"), "the message lists the known kinds");

    let malformed = client.create_run(create("echo", json!({"repeat": "twice"}))).await.unwrap_err();
    assert_invalid(malformed, &["input.repeat"]);
    let typo = client.create_run(create("sleep", json!({"secnds": 1}))).await.unwrap_err();
    assert_invalid(typo, &["input.secnds"]);
    let negative = client.create_run(create("sleep", json!({"seconds": -1}))).await.unwrap_err();
    assert_invalid(negative, &["input.seconds"]);
    let no_program = client.create_run(create("shell", json!({"args": ["x"]}))).await.unwrap_err();
    assert_invalid(no_program, &["input.program"]);

    let nan = proto::CreateRunRequest {
        kind: "echo".into(),
        input: Some(prost_types::Struct {
            fields: [("text".to_owned(), prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)) })].into(),
        }),
        ..Default::default()
    };
    assert_invalid(client.create_run(nan).await.unwrap_err(), &["input.text"]);

    let everything_wrong = proto::CreateRunRequest {
        kind: "noop".into(),
        priority: 5000,
        max_attempts: 1000,
        attempt_timeout: Some(prost_types::Duration { seconds: -1, nanos: 0 }),
        ..Default::default()
    };
    assert_invalid(client.create_run(everything_wrong).await.unwrap_err(), &["attempt_timeout"]);
    let several = proto::CreateRunRequest {
        kind: "noop".into(),
        priority: 5000,
        max_attempts: 1000,
        deadline: Some(prost_types::Timestamp { seconds: 1, nanos: 0 }),
        concurrency_limit: 2,
        labels: [("Not A Key".to_owned(), "v".to_owned())].into(),
        request_id: "x".repeat(200),
        ..Default::default()
    };
    assert_invalid(
        client.create_run(several).await.unwrap_err(),
        &["priority", "max_attempts", "deadline", "concurrency_limit", "labels[Not A Key]", "request_id"],
    );

    let nowhere = proto::CreateRunRequest { workspace: "nowhere".into(), ..create("noop", json!({})) };
    let status = client.create_run(nowhere).await.unwrap_err();
    assert_eq!((status.code(), reason(&status).as_str()), (Code::NotFound, "WORKSPACE_NOT_FOUND"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_tokens_and_page_sizes_are_checked() {
    let (_db, server) = server().await;
    let mut client = server.client().await;
    assert_invalid(client.get_run(proto::GetRunRequest { id: String::new() }).await.unwrap_err(), &["id"]);
    assert_invalid(client.get_run(proto::GetRunRequest { id: "run-1; DROP TABLE runs".into() }).await.unwrap_err(), &["id"]);
    let unknown = client.get_run(proto::GetRunRequest { id: "01a1fd0d-dcd7-70df-86ca-de3fb2ef7b3c".into() }).await.unwrap_err();
    assert_eq!((unknown.code(), reason(&unknown).as_str()), (Code::NotFound, "RUN_NOT_FOUND"));
    for status in [
        client.cancel_run(proto::CancelRunRequest { id: "nope".into(), ..Default::default() }).await.unwrap_err(),
        client.retry_run(proto::RetryRunRequest { id: "nope".into(), ..Default::default() }).await.unwrap_err(),
        client.force_fail_run(proto::ForceFailRunRequest { id: "nope".into(), reason: "x".into() }).await.unwrap_err(),
        client.watch_run(proto::WatchRunRequest { id: "nope".into(), after_sequence: 0 }).await.unwrap_err(),
        client.tail_logs(proto::TailLogsRequest { id: "nope".into(), ..Default::default() }).await.unwrap_err(),
    ] {
        assert_invalid(status, &["id"]);
    }

    let list = |page_size, page_token: &str, state| proto::ListRunsRequest { page_size, page_token: page_token.into(), state, ..Default::default() };
    assert_invalid(client.list_runs(list(-1, "", 0)).await.unwrap_err(), &["page_size"]);
    assert_invalid(client.list_runs(list(10, "not-a-token", 0)).await.unwrap_err(), &["page_token"]);
    assert_invalid(client.list_runs(list(10, "", 99)).await.unwrap_err(), &["state"]);
    let huge = client.list_runs(list(1_000_000, "", 0)).await.expect("a large page size is lowered, not refused");
    assert!(huge.into_inner().runs.is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_that_do_not_fit_the_state_are_refused() {
    let (_db, server) = server().await;
    let mut client = server.client().await;
    let run = client.create_run(create("noop", json!({}))).await.unwrap().into_inner();
    wait_for_state(&mut client, &run.id, &[RunState::Succeeded], Duration::from_secs(10)).await;

    let cancel = client.cancel_run(proto::CancelRunRequest { id: run.id.clone(), ..Default::default() }).await.unwrap_err();
    assert_eq!((cancel.code(), reason(&cancel).as_str()), (Code::FailedPrecondition, "RUN_ALREADY_FINISHED"));
    assert!(cancel.message().contains("succeeded"), "{}", cancel.message());
    let retry = client.retry_run(proto::RetryRunRequest { id: run.id.clone(), ..Default::default() }).await.unwrap_err();
    assert_eq!((retry.code(), reason(&retry).as_str()), (Code::FailedPrecondition, "RUN_NOT_RETRYABLE"));
    let approve = Some(proto::Decision { outcome: Some(proto::decision::Outcome::Approve(true)), note: String::new() });
    let decide = client
        .submit_decision(proto::SubmitDecisionRequest { id: run.id.clone(), key: String::new(), decision: approve })
        .await
        .unwrap_err();
    assert_eq!((decide.code(), reason(&decide).as_str()), (Code::FailedPrecondition, "RUN_NOT_WAITING"));
    let empty = client
        .submit_decision(proto::SubmitDecisionRequest { id: run.id.clone(), key: String::new(), decision: None })
        .await
        .unwrap_err();
    assert_invalid(empty, &["decision"]);
    let false_approve = Some(proto::Decision { outcome: Some(proto::decision::Outcome::Approve(false)), note: String::new() });
    let status = client
        .submit_decision(proto::SubmitDecisionRequest { id: run.id.clone(), key: String::new(), decision: false_approve })
        .await
        .unwrap_err();
    assert_invalid(status, &["decision"]);
    let past = client.watch_run(proto::WatchRunRequest { id: run.id.clone(), after_sequence: 1000 }).await.unwrap_err();
    assert_invalid(past, &["after_sequence"]);
    server.shutdown().await;
}

/// Thousands of arbitrary requests: every one answers with a clear client error or succeeds;
/// none is INTERNAL or UNKNOWN (a panic), and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_requests_never_produce_internal_errors() {
    use rand::{Rng, SeedableRng};
    let (_db, server) = server().await;
    let mut client = server.client().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let pieces = ["", "echo", "noop", "sleep", "approval", "shell", "x", "💥", "\u{0}", "-1", "01a1fd0d-dcd7-70df-86ca-de3fb2ef7b3c", "a/b", "%s"];
    let pick = |rng: &mut rand::rngs::StdRng| pieces[rng.random_range(0..pieces.len())].to_owned();
    for _ in 0..1500 {
        let value = match rng.random_range(0..4) {
            0 => json!(rng.random_range(-1e12..1e12)),
            1 => json!(pick(&mut rng)),
            2 => json!([pick(&mut rng), rng.random::<bool>()]),
            _ => json!({ pick(&mut rng): pick(&mut rng) }),
        };
        let field = ["text", "lines", "repeat", "interval_ms", "seconds", "prompt", "program", "args", "cwd", "env", "timeout_seconds"][rng.random_range(0..11)];
        let request = proto::CreateRunRequest {
            kind: pick(&mut rng),
            input: input(json!({ field: value })),
            priority: rng.random_range(-3000..3000),
            max_attempts: rng.random_range(0..300),
            concurrency_key: pick(&mut rng),
            concurrency_limit: rng.random_range(0..3),
            request_id: pick(&mut rng),
            labels: [(pick(&mut rng), pick(&mut rng))].into(),
            workspace: if rng.random_bool(0.1) { pick(&mut rng) } else { String::new() },
            ..Default::default()
        };
        let results = [
            client.create_run(request).await.map(drop),
            client.get_run(proto::GetRunRequest { id: pick(&mut rng) }).await.map(drop),
            client
                .list_runs(proto::ListRunsRequest {
                    page_size: rng.random_range(-5..2000),
                    page_token: pick(&mut rng),
                    state: rng.random_range(-2..9),
                    kind: pick(&mut rng),
                    ..Default::default()
                })
                .await
                .map(drop),
        ];
        for result in results {
            if let Err(status) = result {
                assert!(
                    !matches!(status.code(), Code::Internal | Code::Unknown | Code::Unavailable),
                    "{:?}: {}",
                    status.code(),
                    status.message()
                );
                assert!(!reason(&status).is_empty(), "every error carries an ErrorInfo reason: {status:?}");
            }
        }
    }
    server.shutdown().await;
}
