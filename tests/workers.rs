//! External workers over `WorkerService`, spoken to with the generated client as a worker in
//! any language would: register, take assignments from the stream, write under the lease, finish;
//! lose the lease and be told at once; go silent and lose the runs; be drained; be rescued by an
//! operator. On both stores.

mod support;

use std::time::Duration;

use conclave::{
    engine::EngineConfig,
    proto::{
        self, admin_service_client::AdminServiceClient, assignment::Kind, worker_service_client::WorkerServiceClient, RunState,
        WorkerState,
    },
};
use serde_json::json;
use support::*;
use tonic::{transport::Channel, Code, Streaming};

/// A server without a pool of its own: only external workers execute its runs.
async fn server(database: &TestDatabase) -> TestServer {
    let config = EngineConfig { worker_slots: 0, ..fast_config() };
    TestServer::start(&database.url, test_registry(&StepCounter::default()), config).await
}

async fn workers(server: &TestServer) -> WorkerServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap();
    WorkerServiceClient::new(channel)
}

async fn register(client: &mut WorkerServiceClient<Channel>, kinds: &[&str], capacity: u32) -> proto::Worker {
    let request = proto::RegisterWorkerRequest {
        name: "test worker".into(),
        kinds: kinds.iter().map(|kind| (*kind).to_owned()).collect(),
        providers: vec!["mock".into()],
        capacity,
        ..Default::default()
    };
    client.register_worker(request).await.unwrap().into_inner().worker.unwrap()
}

async fn assignments(client: &mut WorkerServiceClient<Channel>, worker: &proto::Worker) -> Streaming<proto::Assignment> {
    client.receive_assignments(proto::ReceiveAssignmentsRequest { worker_id: worker.id.clone() }).await.unwrap().into_inner()
}

/// The next message that is not a heartbeat, within a bound.
async fn next(stream: &mut Streaming<proto::Assignment>) -> Kind {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("an assignment message in time");
        match message.unwrap().and_then(|message| message.kind) {
            Some(Kind::Heartbeat(_)) => continue,
            Some(kind) => return kind,
            None => panic!("the assignment stream ended"),
        }
    }
}

async fn next_run(stream: &mut Streaming<proto::Assignment>) -> proto::RunAssignment {
    match next(stream).await {
        Kind::Run(assignment) => assignment,
        other => panic!("expected a run, got {other:?}"),
    }
}

fn step(run: &str, epoch: u64, key: &str) -> proto::RecordStepRequest {
    proto::RecordStepRequest { run_id: run.into(), epoch, key: key.into(), output: Some(prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(7.0)) }), duration: None }
}

fn lines(run: &str, epoch: u64, first: u64, texts: &[&str]) -> proto::AppendLogsRequest {
    proto::AppendLogsRequest {
        run_id: run.into(),
        epoch,
        first_position: first,
        lines: texts.iter().map(|text| proto::LogLine { text: (*text).into(), ..Default::default() }).collect(),
    }
}

fn output(text: &str) -> proto::finish_run_request::Ending {
    proto::finish_run_request::Ending::Output(prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(text.into())) })
}

async fn an_external_worker_executes_a_run_under_its_lease(database: &TestDatabase) {
    let server = server(database).await;
    let mut client = server.client().await;
    let mut worker = workers(&server).await;
    let me = register(&mut worker, &["noop"], 2).await;
    assert_eq!((me.state, me.capacity, me.embedded), (WorkerState::Active as i32, 2, false));
    let mut stream = assignments(&mut worker, &me).await;

    let run = client.create_run(create("noop", json!({}))).await.unwrap().into_inner();
    let assignment = next_run(&mut stream).await;
    let assigned = assignment.run.unwrap();
    assert_eq!((assigned.id.as_str(), assigned.state), (run.id.as_str(), RunState::Running as i32));
    assert_eq!(assigned.lease.as_ref().unwrap().worker_id, me.id, "the run is leased to the worker");
    let epoch = assignment.epoch;

    worker.record_step(step(&run.id, epoch, "think")).await.unwrap();
    let event = proto::EmitEventRequest { run_id: run.id.clone(), epoch, event_type: "message".into(), data: None };
    worker.emit_event(event).await.unwrap();
    // Two batches, the second sent twice (as after a broken connection): stored once.
    let batches = vec![lines(&run.id, epoch, 0, &["a", "b"]), lines(&run.id, epoch, 2, &["c"]), lines(&run.id, epoch, 2, &["c"])];
    let appended = worker.append_logs(futures::stream::iter(batches)).await.unwrap().into_inner();
    assert_eq!((appended.lines_stored, appended.last_sequence), (3, 3));
    let listed = worker.list_workers(proto::ListWorkersRequest::default()).await.unwrap().into_inner();
    let listed = listed.workers.iter().find(|w| w.id == me.id).expect("the worker is listed");
    assert_eq!(listed.running, 1, "its load shows");
    assert!(listed.last_heartbeat_time.is_some());

    let finish = proto::FinishRunRequest { run_id: run.id.clone(), epoch, ending: Some(output("done")) };
    let finished = worker.finish_run(finish.clone()).await.unwrap().into_inner().run.unwrap();
    assert_eq!(finished.state, RunState::Succeeded as i32);
    let stored = client.get_run(proto::GetRunRequest { id: run.id.clone() }).await.unwrap().into_inner();
    assert_eq!((stored.state, stored.last_log_sequence), (RunState::Succeeded as i32, 3));

    // Every late write under the finished lease is refused.
    let refused = worker.finish_run(finish).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::Aborted, "STALE_LEASE"));
    let refused = worker.record_step(step(&run.id, epoch, "late")).await.unwrap_err();
    assert_eq!(reason(&refused), "STALE_LEASE");
    let refused = worker.append_logs(futures::stream::iter(vec![lines(&run.id, epoch, 3, &["late"])])).await.unwrap_err();
    assert_eq!(reason(&refused), "STALE_LEASE");
}

async fn a_revoked_lease_is_told_at_once_and_the_worker_may_resume_from_the_journal(database: &TestDatabase) {
    let server = server(database).await;
    let mut client = server.client().await;
    let mut worker = workers(&server).await;
    let me = register(&mut worker, &["steps"], 1).await;
    let mut stream = assignments(&mut worker, &me).await;
    let run = client.create_run(create("steps", json!({}))).await.unwrap().into_inner();
    let first = next_run(&mut stream).await;
    worker.record_step(step(&run.id, first.epoch, "step-0")).await.unwrap();

    // An operator rescues everything the worker holds: the stream says so at once.
    let mut admin = AdminServiceClient::new(Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap());
    let rescued = admin.rescue_runs(proto::RescueRunsRequest { worker_id: me.id.clone() }).await.unwrap().into_inner();
    assert_eq!(rescued.run_ids, std::slice::from_ref(&run.id));
    match next(&mut stream).await {
        Kind::Revoked(revoked) => assert_eq!((revoked.run_id.as_str(), revoked.epoch), (run.id.as_str(), first.epoch)),
        other => panic!("expected a revocation, got {other:?}"),
    }
    let refused = worker.record_step(step(&run.id, first.epoch, "step-1")).await.unwrap_err();
    assert_eq!(reason(&refused), "STALE_LEASE");

    // The run comes back, under a new lease, with the journal of the first attempt.
    let second = next_run(&mut stream).await;
    assert!(second.epoch > first.epoch);
    assert_eq!(second.journal.iter().map(|entry| entry.key.as_str()).collect::<Vec<_>>(), ["step-0"]);

    // Cancellation is told at once too.
    client.cancel_run(proto::CancelRunRequest { id: run.id.clone(), reason: "enough".into(), force: false }).await.unwrap();
    match next(&mut stream).await {
        Kind::Cancel(cancel) => assert_eq!(cancel.run_id, run.id),
        other => panic!("expected a cancellation, got {other:?}"),
    }
    let cancelled = proto::FinishRunRequest { run_id: run.id.clone(), epoch: second.epoch, ending: Some(proto::finish_run_request::Ending::Cancelled(proto::Cancelled {})) };
    assert_eq!(worker.finish_run(cancelled).await.unwrap().into_inner().run.unwrap().state, RunState::Cancelled as i32);
}

async fn a_silent_worker_goes_stale_and_its_runs_are_rescued(database: &TestDatabase) {
    let server = server(database).await;
    let mut client = server.client().await;
    let mut worker = workers(&server).await;
    let me = register(&mut worker, &["noop"], 1).await;
    let mut stream = assignments(&mut worker, &me).await;
    let run = client.create_run(create("noop", json!({}))).await.unwrap().into_inner();
    let assignment = next_run(&mut stream).await;
    drop(stream);

    // No heartbeat: within a lease TTL and a sweep, the worker is stale and the run queued again.
    let requeued = wait_for_state(&mut client, &run.id, &[RunState::Queued], Duration::from_secs(10)).await;
    assert_eq!(requeued.error.unwrap().code, proto::ErrorCode::LeaseExpired as i32);
    // The run's lease and the worker are swept apart: the worker may turn stale a sweep later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let stale = loop {
        let seen = worker.get_worker(proto::GetWorkerRequest { worker_id: me.id.clone() }).await.unwrap().into_inner();
        if seen.state == WorkerState::Stale as i32 || tokio::time::Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stale.state, WorkerState::Stale as i32);
    assert!(stale.stale_time.is_some());
    // Its heartbeat now says the lease is gone.
    let held = proto::HeldRun { run_id: run.id.clone(), epoch: assignment.epoch };
    let reply = worker.heartbeat(proto::HeartbeatRequest { worker_id: me.id.clone(), runs: vec![held] }).await.unwrap().into_inner();
    assert!(!reply.runs[0].held);
    let back = worker.get_worker(proto::GetWorkerRequest { worker_id: me.id.clone() }).await.unwrap().into_inner();
    assert_eq!(back.state, WorkerState::Active as i32, "a worker that heartbeats again is live again");
}

async fn a_drained_worker_takes_no_new_runs(database: &TestDatabase) {
    let server = server(database).await;
    let mut client = server.client().await;
    let mut worker = workers(&server).await;
    let me = register(&mut worker, &["noop"], 4).await;
    let mut stream = assignments(&mut worker, &me).await;
    let drained = worker.drain_worker(proto::DrainWorkerRequest { worker_id: me.id.clone(), undrain: false }).await.unwrap().into_inner();
    assert_eq!(drained.state, WorkerState::Draining as i32);
    assert!(matches!(next(&mut stream).await, Kind::Drain(_)), "the stream tells the worker to drain");
    let run = client.create_run(create("noop", json!({}))).await.unwrap().into_inner();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = client.get_run(proto::GetRunRequest { id: run.id.clone() }).await.unwrap().into_inner();
    assert_eq!(still.state, RunState::Queued as i32, "a draining worker is given nothing");
    let stopped = worker.stop_worker(proto::StopWorkerRequest { worker_id: me.id.clone() }).await.unwrap().into_inner();
    assert_eq!(stopped.state, WorkerState::Stopped as i32);
}

async fn bad_worker_requests_say_what_to_fix(database: &TestDatabase) {
    let server = server(database).await;
    let mut worker = workers(&server).await;
    let bad = proto::RegisterWorkerRequest { name: String::new(), kinds: vec![], capacity: 0, ..Default::default() };
    let status = worker.register_worker(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["name", "kinds", "capacity"]);
    let status = worker.receive_assignments(proto::ReceiveAssignmentsRequest { worker_id: "nobody".into() }).await.unwrap_err();
    assert_eq!((status.code(), reason(&status).as_str()), (Code::NotFound, "WORKER_NOT_FOUND"));
    let status = worker.record_step(step("not-a-run", 1, "k")).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["run_id"]);
    let status = worker.finish_run(proto::FinishRunRequest { run_id: uuid(), epoch: 1, ending: None }).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["ending"]);
    let status = worker.list_workers(proto::ListWorkersRequest { page_token: "garbage".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["page_token"]);
}

async fn retention_applies_on_demand(database: &TestDatabase) {
    let config = EngineConfig { worker_slots: 4, ..fast_config() };
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config).await;
    let mut client = server.client().await;
    let run = client.create_run(create("steps", json!({"count": 2}))).await.unwrap().into_inner();
    wait_for_state(&mut client, &run.id, &[RunState::Succeeded], Duration::from_secs(10)).await;
    let mut admin = AdminServiceClient::new(Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap());
    let zero = prost_types::Duration { seconds: 0, nanos: 0 };
    let request = proto::PruneHistoryRequest { history_older_than: Some(zero), runs_older_than: None };
    let pruned = admin.prune_history(request).await.unwrap().into_inner();
    assert_eq!(pruned.histories_pruned, 1);
    let kept = client.get_run(proto::GetRunRequest { id: run.id.clone() }).await.unwrap().into_inner();
    assert!(kept.history_prune_time.is_some(), "the run says its history is gone");
    let tail = proto::TailLogsRequest { id: run.id.clone(), after_sequence: 0, follow: false };
    let mut lines = client.tail_logs(tail).await.unwrap().into_inner();
    let mut count = 0;
    while let Some(message) = lines.message().await.unwrap() {
        count += message.lines.len();
    }
    assert_eq!(count, 0, "its log lines are gone");
    let request = proto::PruneHistoryRequest { history_older_than: None, runs_older_than: Some(zero) };
    assert_eq!(admin.prune_history(request).await.unwrap().into_inner().runs_deleted, 1);
    let gone = client.get_run(proto::GetRunRequest { id: run.id.clone() }).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

fn uuid() -> String {
    conclave::domain::RunId::new().to_string()
}

/// What debates and missions keep in the store across runs (participants' records, mission
/// memory) is reachable from an external worker under its lease, through the generated client
/// and through the worker's own host, in the run's workspace; a stale lease and bad requests are
/// refused.
async fn debate_records_and_mission_memory_are_reachable_under_the_lease(database: &TestDatabase) {
    use conclave::{
        domain::{Lease, Memory, RunId, Timestamp, WorkerId, WorkspaceId},
        engine::AttemptHost,
        worker::{RemoteHost, Servers},
    };
    let server = server(database).await;
    let mut client = server.client().await;
    let mut worker = workers(&server).await;
    let me = register(&mut worker, &["noop"], 1).await;
    let mut stream = assignments(&mut worker, &me).await;
    let run = client.create_run(create("noop", json!({}))).await.unwrap().into_inner();
    let epoch = next_run(&mut stream).await.epoch;

    let vote = |participant: &str, agreed: bool| proto::ParticipantVote { participant: participant.into(), agreed };
    let votes = proto::RecordDebateVotesRequest { run_id: run.id.clone(), epoch, votes: vec![vote("critic", true), vote("security", false)] };
    worker.record_debate_votes(votes.clone()).await.unwrap();
    worker.record_debate_votes(votes).await.expect("recording the same run's votes again is harmless");
    let asked = proto::ReadReliabilityRequest { run_id: run.id.clone(), epoch, participants: vec!["critic".into(), "security".into(), "nobody".into()] };
    let records = worker.read_reliability(asked).await.unwrap().into_inner().records;
    let records: Vec<_> = records.iter().map(|record| (record.participant.as_str(), record.debates, record.agreed)).collect();
    assert_eq!(records, [("critic", 1, 1), ("security", 1, 0)]);

    let remember = proto::RememberMissionRequest {
        run_id: run.id.clone(),
        epoch,
        request: "Migrate the billing service to Postgres".into(),
        summary: "Moved the ledger tables; kept the old reader for a week".into(),
        outcome: "completed".into(),
    };
    worker.remember_mission(remember).await.unwrap();
    let recall = proto::RecallMemoriesRequest { run_id: run.id.clone(), epoch, text: "postgres billing".into(), limit: 5 };
    let memories = worker.recall_memories(recall.clone()).await.unwrap().into_inner().memories;
    assert_eq!(memories.len(), 1, "{memories:?}");
    assert_eq!((memories[0].run_id.as_str(), memories[0].outcome.as_str()), (run.id.as_str(), "completed"));

    // The worker's own host speaks the same RPCs.
    let lease = Lease { run_id: run.id.parse::<RunId>().unwrap(), worker_id: WorkerId::new(me.id.clone()), epoch, expires_at: Timestamp::now() };
    let host = RemoteHost::new(Servers::new(&[format!("http://{}", server.addr)]).unwrap(), Duration::from_secs(15));
    let workspace = WorkspaceId::new(run.workspace.clone());
    let recalled = host.recall(&lease, &workspace, "ledger", 3).await.unwrap();
    assert_eq!(recalled.iter().map(|memory| memory.summary.as_str()).collect::<Vec<_>>(), ["Moved the ledger tables; kept the old reader for a week"]);
    let read = host.read_reliability(&lease, &workspace, &["critic".to_owned()]).await.unwrap();
    assert_eq!((read[0].debates, read[0].agreed), (1, 1));
    let memory = Memory { run_id: lease.run_id, workspace: workspace.clone(), request: "Rotate the keys".into(), summary: String::new(), outcome: "halted".into(), created_at: Timestamp::now() };
    host.remember(&lease, memory).await.unwrap();
    assert_eq!(host.recall(&lease, &workspace, "rotate keys", 3).await.unwrap().len(), 1);

    let bad = proto::RecallMemoriesRequest { limit: 0, ..recall.clone() };
    let refused = worker.recall_memories(bad).await.unwrap_err();
    assert_eq!((refused.code(), bad_fields(&refused)), (Code::InvalidArgument, vec!["limit".to_owned()]));
    let too_many = proto::ReadReliabilityRequest { run_id: run.id.clone(), epoch, participants: vec!["p".into(); 65] };
    let refused = worker.read_reliability(too_many).await.unwrap_err();
    assert_eq!((refused.code(), bad_fields(&refused)), (Code::InvalidArgument, vec!["participants".to_owned()]));

    let finish = proto::FinishRunRequest { run_id: run.id.clone(), epoch, ending: Some(output("done")) };
    worker.finish_run(finish).await.unwrap();
    let refused = worker.recall_memories(recall).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::Aborted, "STALE_LEASE"));
}

on_both_stores!(
    debate_records_and_mission_memory_are_reachable_under_the_lease,
    an_external_worker_executes_a_run_under_its_lease,
    a_revoked_lease_is_told_at_once_and_the_worker_may_resume_from_the_journal,
    a_silent_worker_goes_stale_and_its_runs_are_rescued,
    a_drained_worker_takes_no_new_runs,
    bad_worker_requests_say_what_to_fix,
    retention_applies_on_demand,
);
