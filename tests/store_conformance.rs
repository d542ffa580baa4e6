//! The store conformance suite: every test drives the `Store` trait directly (no server) and runs
//! once on SQLite and once on Postgres through `on_both_stores!`, so both backends are held to
//! the same rules. Transitions are made as the engine makes them: a `lifecycle` function applied
//! inside `Store::update_run`.
//!
//! Covered: creating and reading runs (every field, idempotent request ids, workspaces), listing,
//! updates (event numbering, every mutable column, atomicity, the journal), claims (order, due
//! time, kinds, limit, lease epochs, attempts, concurrency keys, concurrent claimers), leases,
//! logs, the maintenance and statistics queries, and artifact records (versions, conditions,
//! the lease, reads, references), and the stage documents (skills, recipes and cards with
//! their revisions and audit trail, under concurrent changes).

mod support;

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use conclave::{
    domain::{
        AutomationLevel, Card, CardChange, CardEvent, CardEventKind, CardId, CardQuery, NewCardEvent, OnFail, Recipe, Skill,
        SkillDefinition, SkillId, SkillSource, SkillVersion, TrustLevel,
        search_words, ArtifactId, ArtifactKind, ArtifactName, ArtifactQuery, ArtifactUse, Digest, Memory, NewArtifact, Producer,
        WriteCondition,
        Decision, DecisionOutcome, ErrorCode, EventKind, Lease, LogLine, LogStream, NewLogLine, NewRun,
        NewWorker, Replay, ReplayMode, Run, RunError, RunEvent, RunId, RunQuery, RunState, Timestamp, Waiting, WorkerId,
        WorkerState, WorkspaceId, DEFAULT_WORKSPACE,
    },
    engine::lifecycle::{self, RetryPolicy},
    error::{Error, Result},
    store::{ClaimRequest, JournalEntry, LeaseStatus, QueueCounts, SharedStore, Store, Transition, Update},
};
use serde_json::{json, Map, Value};
use support::{open_store, TestDatabase};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The worker most tests claim as.
const WORKER: &str = "worker-1";

/// The lease most tests claim with.
const LEASE_TTL: Duration = Duration::from_secs(30);

/// Failed attempts are retried at once.
const RETRY_NOW: RetryPolicy = RetryPolicy { base: Duration::ZERO, max: Duration::ZERO };

/// Failed attempts are retried one to two hours later.
const RETRY_LATER: RetryPolicy = RetryPolicy { base: Duration::from_secs(7200), max: Duration::from_secs(7200) };

/// A queued run of `kind` in the default workspace, created now, with every option unset.
fn new_run(kind: &str) -> NewRun {
    NewRun {
        id: RunId::new(),
        workspace: WorkspaceId::new(DEFAULT_WORKSPACE),
        kind: kind.to_owned(),
        input: Map::new(),
        priority: 0,
        max_attempts: 3,
        attempt_timeout: Duration::from_secs(60),
        deadline: None,
        concurrency: None,
        labels: BTreeMap::new(),
        request_id: None,
        created_at: Timestamp::now(),
        replay: None,
        journal: Vec::new(),
        decisions: BTreeMap::new(),
    }
}

/// A run of `kind` under a concurrency key.
fn keyed_run(kind: &str, key: &str, limit: u32) -> NewRun {
    NewRun { concurrency: Some((key.to_owned(), limit)), ..new_run(kind) }
}

/// `time` plus whole seconds.
fn secs(time: Timestamp, seconds: u64) -> Timestamp {
    time.plus(Duration::from_secs(seconds))
}

/// Creates a run that must be new.
async fn create(store: &SharedStore, new: NewRun) -> Run {
    let created = store.create_run(new).await.expect("create run");
    assert!(created.created, "a run without a repeated request id is created");
    created.transition.run
}

async fn create_kind(store: &SharedStore, kind: &str) -> Run {
    create(store, new_run(kind)).await
}

async fn claim_with(store: &SharedStore, worker: &str, kinds: &[&str], limit: u32, ttl: Duration, now: Timestamp) -> Vec<Transition> {
    let request = ClaimRequest {
        worker_id: WorkerId::new(worker),
        kinds: kinds.iter().map(|kind| (*kind).to_owned()).collect(),
        limit,
        lease_ttl: ttl,
        now,
    };
    store.claim_runs(&request).await.expect("claim runs")
}

/// Claims as [`WORKER`] with [`LEASE_TTL`].
async fn claim(store: &SharedStore, kinds: &[&str], limit: u32, now: Timestamp) -> Vec<Transition> {
    claim_with(store, WORKER, kinds, limit, LEASE_TTL, now).await
}

/// Claims the one queued run of `kind`, which must be `id`.
async fn claim_only(store: &SharedStore, id: RunId, kind: &str, now: Timestamp) -> Transition {
    let mut claimed = claim(store, &[kind], 1, now).await;
    assert_eq!(ids(&claimed), [id], "the claim takes run {id}");
    claimed.remove(0)
}

/// Creates a run and claims it now; returns the running run and its lease.
async fn start_new(store: &SharedStore, new: NewRun) -> (Run, Lease) {
    let kind = new.kind.clone();
    let run = create(store, new).await;
    let claimed = claim_only(store, run.id, &kind, Timestamp::now()).await;
    let lease = lease_of(&claimed.run);
    (claimed.run, lease)
}

/// Creates a run of a kind of its own and claims it now.
async fn start(store: &SharedStore, kind: &str) -> (Run, Lease) {
    start_new(store, new_run(kind)).await
}

fn lease_of(run: &Run) -> Lease {
    run.lease.clone().expect("a running run holds a lease")
}

/// Applies a state-machine function to a run, as the engine does, expecting it to commit.
async fn update(store: &SharedStore, id: RunId, change: impl Fn(&Run) -> Result<Update> + Send + Sync) -> Transition {
    store.update_run(id, &change).await.expect("update run")
}

async fn get(store: &SharedStore, id: RunId) -> Run {
    store.get_run(id).await.expect("get run").expect("the run exists")
}

async fn events(store: &SharedStore, id: RunId) -> Vec<RunEvent> {
    store.read_events(id, 0, 10_000).await.expect("read events")
}

async fn logs(store: &SharedStore, id: RunId) -> Vec<LogLine> {
    store.read_logs(id, 0, 10_000).await.expect("read logs")
}

async fn journal(store: &SharedStore, id: RunId) -> Vec<JournalEntry> {
    let mut entries = store.read_journal(id).await.expect("read journal");
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    entries
}

fn ids(transitions: &[Transition]) -> Vec<RunId> {
    transitions.iter().map(|transition| transition.run.id).collect()
}

fn event_sequences(events: &[RunEvent]) -> Vec<u64> {
    events.iter().map(|event| event.sequence).collect()
}

fn log_sequences(lines: &[LogLine]) -> Vec<u64> {
    lines.iter().map(|line| line.sequence).collect()
}

/// A listing of the default workspace with room for every run of a test.
fn query() -> RunQuery {
    RunQuery { limit: 100, ..RunQuery::default() }
}

async fn list(store: &SharedStore, query: RunQuery) -> Vec<RunId> {
    store.list_runs(&query).await.expect("list runs").into_iter().map(|run| run.id).collect()
}

/// `count` log lines, cycling through the streams, a microsecond apart.
fn log_lines(prefix: &str, count: usize, time: Timestamp) -> Vec<NewLogLine> {
    const STREAMS: [LogStream; 3] = [LogStream::Stdout, LogStream::Stderr, LogStream::System];
    (0..count)
        .map(|index| NewLogLine {
            time: time.plus(Duration::from_micros(index as u64)),
            stream: STREAMS[index % STREAMS.len()],
            text: format!("{prefix} {index}"),
        })
        .collect()
}

fn workflow_event(name: &str) -> EventKind {
    EventKind::Workflow { event_type: name.to_owned(), data: json!({ "name": name }) }
}

fn retryable(attempt: u32) -> RunError {
    RunError::new(ErrorCode::Failed, "flaky", true, attempt)
}

fn fatal(attempt: u32) -> RunError {
    RunError::new(ErrorCode::Failed, "broken", false, attempt)
}

/// Asserts a claim's one event: `StateChanged` queued → running by `worker`, numbered as the
/// run's last event.
fn assert_claimed_event(transition: &Transition, worker: &str, now: Timestamp) {
    let [event] = transition.events.as_slice() else {
        panic!("a claim appends exactly one event, got {:?}", transition.events);
    };
    assert_eq!(event.run_id, transition.run.id);
    assert_eq!(event.sequence, transition.run.last_event_sequence);
    assert_eq!(event.time, now);
    match &event.kind {
        EventKind::StateChanged { from, to, attempt, worker_id, error, .. } => {
            assert_eq!((*from, *to), (RunState::Queued, RunState::Running));
            assert_eq!(*attempt, transition.run.attempt);
            assert_eq!(worker_id.as_deref(), Some(worker));
            assert_eq!(*error, None);
        }
        other => panic!("a claim appends StateChanged, got {other:?}"),
    }
}

/// Runs one statement on the test database behind the store's back (for what has no API yet,
/// or to plant a conflicting row).
async fn execute_sql(database: &TestDatabase, statement: String) {
    use sqlx::Connection;
    let statement = sqlx::AssertSqlSafe(statement);
    if database.url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&database.url).await.expect("connect to the SQLite test database");
        sqlx::query(statement).execute(&mut conn).await.expect("execute SQL on SQLite");
        conn.close().await.expect("close SQLite connection");
    } else {
        let mut conn = sqlx::PgConnection::connect(&database.url).await.expect("connect to the Postgres test database");
        sqlx::query(statement).execute(&mut conn).await.expect("execute SQL on Postgres");
        conn.close().await.expect("close Postgres connection");
    }
}

/// Adds a workspace (there is no API for workspaces yet).
async fn add_workspace(database: &TestDatabase, name: &str) {
    execute_sql(database, format!("INSERT INTO workspaces (id, created_at) VALUES ('{name}', 0)")).await;
}

/// Store handles for concurrent tasks: on Postgres one store (one pool) each, as separate
/// processes would have; on SQLite the one shared handle, as SQLite admits one writer.
async fn store_handles(database: &TestDatabase, store: &SharedStore, count: usize) -> Vec<SharedStore> {
    let mut stores = Vec::with_capacity(count);
    for _ in 0..count {
        stores.push(if store.backend() == "postgres" { open_store(database).await } else { store.clone() });
    }
    stores
}

// ---------------------------------------------------------------------------------------------
// Creating and reading runs
// ---------------------------------------------------------------------------------------------

async fn create_run_round_trips_every_field(database: &TestDatabase) {
    let store = open_store(database).await;
    // A fixed time with a sub-millisecond part: timestamps are kept to the microsecond.
    let created_at = Timestamp::from_micros(1_750_000_000_123_457);
    let Value::Object(input) = json!({
        "text": "héllo ✓ \"quoted\" 'single'",
        "count": 3,
        "ratio": 2.5,
        "big": 9_007_199_254_740_993_u64,
        "nested": { "list": [1, null, true, "x", { "deep": [] }] },
        "empty": {},
    }) else {
        unreachable!("an object literal")
    };
    let new = NewRun {
        id: RunId::new(),
        workspace: WorkspaceId::new(DEFAULT_WORKSPACE),
        kind: "report".into(),
        input: input.clone(),
        priority: -7,
        max_attempts: 5,
        attempt_timeout: Duration::from_millis(90_500),
        deadline: Some(Timestamp::from_micros(1_750_003_600_000_001)),
        concurrency: Some(("tenant-42".into(), 3)),
        labels: BTreeMap::from([("env".into(), "prod".into()), ("team".into(), "infra ✓".into())]),
        request_id: Some("request-1".into()),
        created_at,
        replay: Some(Replay { of: RunId::new(), mode: ReplayMode::FromStep }),
        journal: vec![JournalEntry {
            key: "plan".into(),
            output: json!({"steps": 3}),
            attempt: 1,
            finished_at: Timestamp::from_micros(1_750_000_000_000_001),
            duration: Duration::from_millis(12),
        }],
        decisions: BTreeMap::new(),
    };
    let created = store.create_run(new.clone()).await.expect("create run");
    assert_eq!(store.read_journal(new.id).await.expect("read journal"), new.journal, "a replay starts with its copied journal");
    assert!(created.created);
    let expected = Run {
        id: new.id,
        workspace: WorkspaceId::new(DEFAULT_WORKSPACE),
        kind: "report".into(),
        state: RunState::Queued,
        input,
        output: None,
        error: None,
        priority: -7,
        max_attempts: 5,
        attempt: 0,
        attempt_timeout: Duration::from_millis(90_500),
        deadline: new.deadline,
        concurrency: Some(("tenant-42".into(), 3)),
        labels: new.labels.clone(),
        request_id: Some("request-1".into()),
        created_at,
        started_at: None,
        finished_at: None,
        updated_at: created_at,
        scheduled_at: created_at,
        waiting: None,
        decisions: BTreeMap::new(),
        lease: None,
        cancel_requested: false,
        last_event_sequence: 1,
        last_log_sequence: 0,
        history_pruned_at: None,
        replay: new.replay,
    };
    assert_eq!(created.transition.run, expected, "create returns the run as stored");
    assert_eq!(get(&store, new.id).await, expected, "get returns every field as created");

    let created_event = RunEvent {
        run_id: new.id,
        sequence: 1,
        time: created_at,
        kind: EventKind::Created { kind: "report".into(), priority: -7 },
    };
    assert_eq!(created.transition.events, std::slice::from_ref(&created_event));
    assert_eq!(events(&store, new.id).await, [created_event], "the Created event is number 1");
    assert!(logs(&store, new.id).await.is_empty());
    assert_eq!(journal(&store, new.id).await, new.journal);

    // A run with every option unset reads back with them unset.
    let bare = new_run("bare");
    let bare_run = create(&store, bare.clone()).await;
    assert_eq!(get(&store, bare.id).await, bare_run);
    assert_eq!(bare_run.input, Map::new());
    assert_eq!(
        (bare_run.deadline, bare_run.concurrency.clone(), bare_run.labels.len(), bare_run.request_id.clone()),
        (None, None, 0, None)
    );
    assert_eq!((bare_run.created_at, bare_run.scheduled_at, bare_run.updated_at), (bare.created_at, bare.created_at, bare.created_at));

    // An unknown run reads as absent, with nothing under it.
    let unknown = RunId::new();
    assert_eq!(store.get_run(unknown).await.expect("get run"), None);
    assert!(events(&store, unknown).await.is_empty());
    assert!(logs(&store, unknown).await.is_empty());
    assert!(journal(&store, unknown).await.is_empty());
}

async fn a_repeated_request_id_returns_the_existing_run(database: &TestDatabase) {
    let store = open_store(database).await;
    let first = NewRun { request_id: Some("req-1".into()), ..new_run("job") };
    let first = create(&store, first).await;

    // The same request id again, even with a different body, returns the first run unchanged.
    let again = NewRun { request_id: Some("req-1".into()), priority: 9, ..new_run("other-kind") };
    let repeat = store.create_run(again.clone()).await.expect("repeat create");
    assert!(!repeat.created, "a repeated request id creates nothing");
    assert_eq!(repeat.transition.run, first);
    assert!(repeat.transition.events.is_empty(), "a repeat appends no event");
    assert_eq!(store.get_run(again.id).await.expect("get run"), None, "the repeat's id was not used");
    assert_eq!(events(&store, first.id).await.len(), 1);
    assert_eq!(list(&store, query()).await, [first.id]);

    // After the run moved on, a repeat returns it as it is now.
    let claimed = claim_only(&store, first.id, "job", Timestamp::now()).await;
    let repeat = store.create_run(NewRun { request_id: Some("req-1".into()), ..new_run("job") }).await.expect("repeat create");
    assert!(!repeat.created);
    assert_eq!(repeat.transition.run, claimed.run);
    assert_eq!(events(&store, first.id).await.len(), 2);

    // Runs without a request id never collide.
    let one = create_kind(&store, "job").await;
    let two = create_kind(&store, "job").await;
    assert_ne!(one.id, two.id);

    // The same request id in another workspace is another run.
    let other = WorkspaceId::new("other");
    assert!(store.workspace_exists(&WorkspaceId::new(DEFAULT_WORKSPACE)).await.expect("workspace exists"));
    assert!(!store.workspace_exists(&other).await.expect("workspace exists"));
    add_workspace(database, "other").await;
    assert!(store.workspace_exists(&other).await.expect("workspace exists"));
    let elsewhere = NewRun { workspace: other.clone(), request_id: Some("req-1".into()), ..new_run("job") };
    let elsewhere = create(&store, elsewhere).await;
    assert_ne!(elsewhere.id, first.id);
    assert_eq!(elsewhere.workspace, other);
    let repeat = store
        .create_run(NewRun { workspace: other.clone(), request_id: Some("req-1".into()), ..new_run("job") })
        .await
        .expect("repeat create");
    assert!(!repeat.created);
    assert_eq!(repeat.transition.run.id, elsewhere.id, "a repeat finds the run of its own workspace");
    assert_eq!(list(&store, RunQuery { workspace: Some(other), ..query() }).await, [elsewhere.id]);
    assert!(!list(&store, query()).await.contains(&elsewhere.id), "listings keep to their workspace");
}

async fn concurrent_creates_with_one_request_id_make_one_run(database: &TestDatabase) {
    const CREATORS: usize = 6;
    let store = open_store(database).await;
    let mut tasks = tokio::task::JoinSet::new();
    for handle in store_handles(database, &store, CREATORS).await {
        tasks.spawn(async move {
            let created = handle
                .create_run(NewRun { request_id: Some("together".into()), ..new_run("job") })
                .await
                .expect("create run");
            (created.created, created.transition.run.id)
        });
    }
    let results = tasks.join_all().await;
    assert_eq!(results.iter().filter(|(created, _)| *created).count(), 1, "exactly one create wins: {results:?}");
    let winner = results.iter().find(|(created, _)| *created).map(|(_, id)| *id).expect("a winner");
    assert!(results.iter().all(|(_, id)| *id == winner), "every create returns the one run: {results:?}");
    assert_eq!(list(&store, query()).await, [winner]);
    assert_eq!(events(&store, winner).await.len(), 1);
}

async fn list_runs_filters_and_pages_newest_first(database: &TestDatabase) {
    let store = open_store(database).await;
    let labelled = |kind: &str, labels: &[(&str, &str)]| NewRun {
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..new_run(kind)
    };
    let r1 = create(&store, labelled("a", &[("team", "x"), ("env", "prod")])).await.id;
    let r2 = create(&store, labelled("b", &[("team", "x")])).await.id;
    let r3 = create(&store, labelled("a", &[("team", "y"), ("env", "prod")])).await.id;
    let r4 = create(&store, labelled("a", &[])).await.id;
    let r5 = create(&store, labelled("b", &[("env", "dev")])).await.id;
    claim_only(&store, r2, "b", Timestamp::now()).await;

    assert_eq!(list(&store, query()).await, [r5, r4, r3, r2, r1], "newest first");
    let listed = store.list_runs(&query()).await.expect("list runs");
    for run in &listed {
        assert_eq!(*run, get(&store, run.id).await, "a listing returns runs as stored");
    }

    // By state and kind.
    assert_eq!(list(&store, RunQuery { state: Some(RunState::Running), ..query() }).await, [r2]);
    assert_eq!(list(&store, RunQuery { state: Some(RunState::Queued), ..query() }).await, [r5, r4, r3, r1]);
    assert!(list(&store, RunQuery { state: Some(RunState::Failed), ..query() }).await.is_empty());
    assert_eq!(list(&store, RunQuery { kind: Some("a".into()), ..query() }).await, [r4, r3, r1]);
    assert!(list(&store, RunQuery { kind: Some("c".into()), ..query() }).await.is_empty());

    // By labels: a run must carry every label asked for.
    let with = |labels: &[(&str, &str)]| RunQuery {
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..query()
    };
    assert_eq!(list(&store, with(&[("team", "x")])).await, [r2, r1]);
    assert_eq!(list(&store, with(&[("env", "prod")])).await, [r3, r1]);
    assert_eq!(list(&store, with(&[("team", "x"), ("env", "prod")])).await, [r1]);
    assert!(list(&store, with(&[("team", "y"), ("env", "dev")])).await.is_empty());
    assert!(list(&store, with(&[("team", "z")])).await.is_empty());

    // Filters combine.
    let combined = RunQuery { kind: Some("a".into()), state: Some(RunState::Queued), ..with(&[("env", "prod")]) };
    assert_eq!(list(&store, combined).await, [r3, r1]);

    // Limit and paging with `before`.
    assert_eq!(list(&store, RunQuery { limit: 2, ..query() }).await, [r5, r4]);
    assert_eq!(list(&store, RunQuery { limit: 2, before: Some(r4), ..query() }).await, [r3, r2]);
    assert_eq!(list(&store, RunQuery { before: Some(r2), ..query() }).await, [r1]);
    assert!(list(&store, RunQuery { before: Some(r1), ..query() }).await.is_empty());
    assert_eq!(list(&store, RunQuery { limit: 1, kind: Some("a".into()), before: Some(r4), ..query() }).await, [r3]);
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = list(&store, RunQuery { limit: 2, before, ..query() }).await;
        let Some(last) = page.last().copied() else { break };
        paged.extend(page);
        before = Some(last);
    }
    assert_eq!(paged, [r5, r4, r3, r2, r1], "pages of two walk every run once");
}

// ---------------------------------------------------------------------------------------------
// Updating runs
// ---------------------------------------------------------------------------------------------

async fn update_run_numbers_events_and_rewrites_every_mutable_column(database: &TestDatabase) {
    let store = open_store(database).await;
    let (run, _lease) = start(&store, "job").await;
    assert_eq!(run.last_event_sequence, 2);
    let t = Timestamp::now();

    let Value::Object(answer) = json!({ "answer": 42 }) else { unreachable!("an object literal") };
    let decision = Decision { outcome: DecisionOutcome::Input(answer), note: "looks fine".into() };
    let rewrite = |current: &Run| -> Result<Update> {
        let mut next = current.clone();
        next.output = Some(json!({ "partial": [1, 2], "done": false }));
        next.error = Some(RunError::new(ErrorCode::Timeout, "attempt 3 timed out", true, 3));
        next.attempt = 3;
        next.started_at = Some(secs(t, 1));
        next.finished_at = Some(secs(t, 2));
        next.updated_at = secs(t, 3);
        next.scheduled_at = secs(t, 4);
        next.waiting = Some(Waiting { key: "review".into(), prompt: "ok?".into(), since: secs(t, 5) });
        next.decisions = BTreeMap::from([("earlier".into(), decision.clone())]);
        next.lease = Some(Lease { run_id: current.id, worker_id: WorkerId::new("worker-9"), epoch: 9, expires_at: secs(t, 6) });
        next.cancel_requested = true;
        Ok(Update::new(next, vec![workflow_event("first"), workflow_event("second")]))
    };
    let transition = update(&store, run.id, rewrite).await;
    let mut expected = rewrite(&run).expect("rewrite").run;
    expected.last_event_sequence = 4;
    assert_eq!(transition.run, expected, "the transition carries the run as committed");
    assert_eq!(get(&store, run.id).await, expected, "every mutable column is rewritten");
    assert_eq!(event_sequences(&transition.events), [3, 4], "events are numbered after the last one");
    let stored = events(&store, run.id).await;
    assert_eq!(event_sequences(&stored), [1, 2, 3, 4]);
    assert_eq!(stored[2..], transition.events[..], "the transition's events are the stored ones");
    assert_eq!(stored[2].kind, workflow_event("first"));
    assert_eq!(stored[3].kind, workflow_event("second"));

    // An update without events leaves the numbering alone; the next one continues it.
    let unchanged = update(&store, run.id, |current| Ok(Update::unchanged(current))).await;
    assert!(unchanged.events.is_empty());
    assert_eq!(get(&store, run.id).await, expected);
    let third = update(&store, run.id, |current| Ok(Update::new(current.clone(), vec![workflow_event("third")]))).await;
    assert_eq!(event_sequences(&third.events), [5]);
    assert_eq!(get(&store, run.id).await.last_event_sequence, 5);

    // Reading events with `after` and `limit`.
    let read = |after, limit| {
        let store = store.clone();
        async move { event_sequences(&store.read_events(run.id, after, limit).await.expect("read events")) }
    };
    assert_eq!(read(0, 1).await, [1]);
    assert_eq!(read(2, 2).await, [3, 4]);
    assert_eq!(read(4, 10).await, [5]);
    assert!(read(5, 10).await.is_empty());
    assert!(read(0, 0).await.is_empty());

    // A run written without a lease keeps its epoch, so the next claim gets a higher one; the
    // claim clears the wait and the cancel flag but keeps the attempt and the first start.
    update(&store, run.id, |current| {
        let mut next = current.clone();
        next.state = RunState::Queued;
        next.lease = None;
        next.scheduled_at = t;
        Ok(Update::new(next, Vec::new()))
    })
    .await;
    assert_eq!(get(&store, run.id).await.lease, None);
    let now = Timestamp::now();
    let claimed = claim_only(&store, run.id, "job", now).await;
    assert_eq!(claimed.run.lease.as_ref().map(|lease| lease.epoch), Some(10));
    assert_eq!((claimed.run.attempt, claimed.run.started_at), (3, Some(secs(t, 1))));
    assert_eq!((claimed.run.waiting.clone(), claimed.run.cancel_requested), (None, false));
    assert_eq!(claimed.run.decisions, expected.decisions);
    assert_eq!(get(&store, run.id).await, claimed.run);
    assert_claimed_event(&claimed, WORKER, now);
    assert_eq!(event_sequences(&events(&store, run.id).await), [1, 2, 3, 4, 5, 6]);
}

async fn a_refused_update_writes_nothing(database: &TestDatabase) {
    let store = open_store(database).await;

    // An unknown run: NotFound, without asking the state machine.
    let called = AtomicBool::new(false);
    let missing = RunId::new();
    let err = store
        .update_run(missing, &|run| {
            called.store(true, Ordering::SeqCst);
            Ok(Update::unchanged(run))
        })
        .await
        .expect_err("an unknown run cannot be updated");
    assert!(matches!(err, Error::NotFound { resource: "run", ref id } if *id == missing.to_string()), "{err:?}");
    assert!(!called.load(Ordering::SeqCst), "the change is not called for a missing run");

    let (run, lease) = start(&store, "job").await;
    let before = get(&store, run.id).await;
    let events_before = events(&store, run.id).await;

    // The change's own error is returned as is.
    let err = store
        .update_run(run.id, &|_| Err(Error::precondition("TEST_REFUSED", "refused by the test")))
        .await
        .expect_err("the change refuses");
    assert!(matches!(err, Error::FailedPrecondition { reason: "TEST_REFUSED", .. }), "{err:?}");
    assert_eq!(get(&store, run.id).await, before);
    assert_eq!(events(&store, run.id).await, events_before);

    // A stale lease is refused by the state machine.
    let stale = Lease { epoch: lease.epoch + 1, ..lease.clone() };
    let now = Timestamp::now();
    let err = store
        .update_run(run.id, &|current| lifecycle::succeed(current, &stale, json!({}), now))
        .await
        .expect_err("a stale lease cannot finish the run");
    assert!(matches!(err, Error::StaleLease { epoch, .. } if epoch == stale.epoch), "{err:?}");
    assert_eq!(get(&store, run.id).await, before);
    assert_eq!(events(&store, run.id).await, events_before);

    // A finished run refuses a cancel, and keeps what it had.
    update(&store, run.id, |current| lifecycle::succeed(current, &lease, json!({ "ok": true }), Timestamp::now())).await;
    let finished = get(&store, run.id).await;
    let finished_events = events(&store, run.id).await;
    let err = store
        .update_run(run.id, &|current| lifecycle::cancel(current, "too late", false, Timestamp::now()))
        .await
        .expect_err("a finished run cannot be cancelled");
    assert!(matches!(err, Error::FailedPrecondition { reason: "RUN_ALREADY_FINISHED", .. }), "{err:?}");
    assert_eq!(get(&store, run.id).await, finished);
    assert_eq!(events(&store, run.id).await, finished_events);

    // A write that fails halfway (here, the second event collides with a planted row) is rolled
    // back whole: no first event, no row change.
    let (run, lease) = start(&store, "planted").await;
    let before = get(&store, run.id).await;
    let events_before = events(&store, run.id).await;
    let planted = EventKind::Workflow { event_type: "planted".into(), data: Value::Null };
    let planted_json = serde_json::to_string(&planted).expect("serialize event");
    let planted_seq = before.last_event_sequence + 2;
    execute_sql(
        database,
        format!("INSERT INTO run_events (run_id, seq, time, data) VALUES ('{}', {planted_seq}, 0, '{planted_json}')", run.id),
    )
    .await;
    let result = store
        .update_run(run.id, &|current| {
            let mut next = current.clone();
            next.output = Some(json!("half"));
            next.updated_at = Timestamp::now();
            Ok(Update::new(next, vec![workflow_event("one"), workflow_event("two")]))
        })
        .await;
    assert!(result.is_err(), "the colliding write fails: {result:?}");
    assert_eq!(get(&store, run.id).await, before, "the run row is unchanged");
    let after = events(&store, run.id).await;
    assert_eq!(after.len(), events_before.len() + 1, "only the planted event is there: {after:?}");
    assert_eq!(after[..events_before.len()], events_before[..]);
    assert_eq!(after[events_before.len()].kind, planted);
    // The store is still usable and numbers the next event where the failed one would have been.
    let next = update(&store, run.id, |current| lifecycle::workflow_event(current, &lease, "next", json!(1), Timestamp::now())).await;
    assert_eq!(event_sequences(&next.events), [before.last_event_sequence + 1]);
}

async fn steps_are_journaled_and_reset_journal_empties_it_first(database: &TestDatabase) {
    let store = open_store(database).await;
    let (run, lease) = start(&store, "job").await;
    let t = Timestamp::now();
    let entry = |key: &str, attempt: u32, output: Value, offset: u64| JournalEntry {
        key: key.to_owned(),
        output,
        attempt,
        finished_at: Timestamp::from_micros(t.as_micros() + offset as i64),
        duration: Duration::from_micros(1_234 + offset),
    };
    let a = entry("step-a", 1, json!({ "rows": [1, 2, 3] }), 1);
    let b = entry("step-b", 1, json!("text ✓"), 2);

    let recorded = update(&store, run.id, |current| lifecycle::record_step(current, &lease, a.clone())).await;
    assert_eq!(
        recorded.events.iter().map(|event| event.kind.clone()).collect::<Vec<_>>(),
        [EventKind::StepCompleted { key: "step-a".into(), attempt: 1, duration_micros: 1_235 }]
    );
    update(&store, run.id, |current| lifecycle::record_step(current, &lease, b.clone())).await;
    assert_eq!(journal(&store, run.id).await, [a.clone(), b.clone()], "steps are journaled as recorded");

    // A retried attempt keeps the journal.
    update(&store, run.id, |current| lifecycle::fail_attempt(current, &lease, retryable(1), &RETRY_NOW, Timestamp::now())).await;
    assert_eq!(journal(&store, run.id).await, [a.clone(), b.clone()]);
    let second = claim_only(&store, run.id, "job", Timestamp::now()).await;
    let lease = lease_of(&second.run);

    // `reset_journal` forgets every entry before the update's own steps are written.
    let c = entry("step-c", 2, json!(null), 3);
    update(&store, run.id, |current| {
        let mut update = lifecycle::record_step(current, &lease, c.clone())?;
        update.reset_journal = true;
        Ok(update)
    })
    .await;
    assert_eq!(journal(&store, run.id).await, std::slice::from_ref(&c));

    // As the engine uses it: a retry keeps the journal, or starts afresh when asked.
    update(&store, run.id, |current| lifecycle::fail_attempt(current, &lease, fatal(2), &RETRY_NOW, Timestamp::now())).await;
    assert_eq!(get(&store, run.id).await.state, RunState::Failed);
    update(&store, run.id, |current| lifecycle::retry(current, false, Timestamp::now())).await;
    assert_eq!(journal(&store, run.id).await, [c]);
    let third = claim_only(&store, run.id, "job", Timestamp::now()).await;
    update(&store, run.id, |current| lifecycle::force_fail(current, "operator", Timestamp::now())).await;
    assert_eq!(third.run.attempt, 1, "a retried run starts its attempts again");
    update(&store, run.id, |current| lifecycle::retry(current, true, Timestamp::now())).await;
    assert!(journal(&store, run.id).await.is_empty(), "a retry with a fresh journal forgets every step");
}

// ---------------------------------------------------------------------------------------------
// Claiming runs
// ---------------------------------------------------------------------------------------------

async fn claims_take_priority_then_oldest_within_kinds_and_limit(database: &TestDatabase) {
    let store = open_store(database).await;
    let prioritised = |kind: &str, priority: i32| NewRun { priority, ..new_run(kind) };

    // One claim of many: by priority, then oldest first.
    let mut batch = Vec::new();
    for priority in [0, 5, 0, 5, -1] {
        batch.push(create(&store, prioritised("batch", priority)).await.id);
    }
    let now = Timestamp::now();
    let claimed = claim(&store, &["batch"], 10, now).await;
    assert_eq!(ids(&claimed), [batch[1], batch[3], batch[0], batch[2], batch[4]]);
    for transition in &claimed {
        let run = &transition.run;
        assert_eq!(run.state, RunState::Running);
        assert_eq!(run.attempt, 1, "the first claim makes attempt 1");
        assert_eq!(
            run.lease,
            Some(Lease { run_id: run.id, worker_id: WorkerId::new(WORKER), epoch: 1, expires_at: now.plus(LEASE_TTL) })
        );
        assert_eq!((run.started_at, run.updated_at), (Some(now), now));
        assert_eq!(get(&store, run.id).await, *run, "the claim returns the run as stored");
        assert_claimed_event(transition, WORKER, now);
        assert_eq!(events(&store, run.id).await[1..], transition.events[..], "the claimed event is stored as number 2");
    }

    // One at a time: the same order.
    let mut single = Vec::new();
    for priority in [0, 5, 0, 5, -1] {
        single.push(create(&store, prioritised("single", priority)).await.id);
    }
    let mut order = Vec::new();
    loop {
        let claimed = claim(&store, &["single"], 1, Timestamp::now()).await;
        if claimed.is_empty() {
            break;
        }
        assert_eq!(claimed.len(), 1, "the limit holds");
        order.extend(ids(&claimed));
    }
    assert_eq!(order, [single[1], single[3], single[0], single[2], single[4]]);

    // The limit: the oldest first, a page at a time.
    let mut limited = Vec::new();
    for _ in 0..5 {
        limited.push(create_kind(&store, "limited").await.id);
    }
    assert_eq!(ids(&claim(&store, &["limited"], 2, Timestamp::now()).await), limited[..2]);
    assert_eq!(ids(&claim(&store, &["limited"], 2, Timestamp::now()).await), limited[2..4]);
    assert_eq!(ids(&claim(&store, &["limited"], 2, Timestamp::now()).await), limited[4..]);
    assert!(claim(&store, &["limited"], 2, Timestamp::now()).await.is_empty());

    // Only the kinds asked for.
    let x = create_kind(&store, "x").await.id;
    let y = create_kind(&store, "y").await.id;
    let z = create_kind(&store, "z").await.id;
    assert!(claim(&store, &[], 10, Timestamp::now()).await.is_empty(), "no kinds, no runs");
    assert!(claim(&store, &["unknown"], 10, Timestamp::now()).await.is_empty());
    assert!(claim(&store, &["x", "y", "z"], 0, Timestamp::now()).await.is_empty(), "limit 0, no runs");
    assert_eq!(ids(&claim(&store, &["x", "z"], 10, Timestamp::now()).await), [x, z]);
    assert_eq!(get(&store, y).await.state, RunState::Queued);
    assert_eq!(ids(&claim(&store, &["y"], 10, Timestamp::now()).await), [y]);
}

async fn every_claim_raises_the_lease_epoch(database: &TestDatabase) {
    let store = open_store(database).await;
    let run = create_kind(&store, "job").await;

    // First claim: epoch 1, attempt 1, started now.
    let t1 = Timestamp::now();
    let first = claim_only(&store, run.id, "job", t1).await;
    let expected_lease = Lease { run_id: run.id, worker_id: WorkerId::new(WORKER), epoch: 1, expires_at: t1.plus(LEASE_TTL) };
    assert_eq!(first.run.lease, Some(expected_lease));
    assert_eq!((first.run.attempt, first.run.started_at), (1, Some(t1)));
    assert_claimed_event(&first, WORKER, t1);
    let lease1 = lease_of(&first.run);

    // Released and claimed by another worker: epoch 2, the same attempt, the first start kept.
    let released = update(&store, run.id, |current| lifecycle::release(current, &lease1, Timestamp::now())).await;
    assert_eq!((released.run.state, released.run.lease.clone(), released.run.attempt), (RunState::Queued, None, 1));
    let t2 = Timestamp::now();
    let mut second = claim_with(&store, "worker-2", &["job"], 1, LEASE_TTL, t2).await;
    assert_eq!(ids(&second), [run.id]);
    let second = second.remove(0);
    assert_eq!(second.run.lease.as_ref().map(|lease| (lease.epoch, lease.worker_id.as_str())), Some((2, "worker-2")));
    assert_eq!((second.run.attempt, second.run.started_at), (1, Some(t1)));
    assert_claimed_event(&second, "worker-2", t2);
    let lease2 = lease_of(&second.run);

    // Its lease lapsed and was rescued: the next attempt, epoch 3.
    let t3 = secs(lease2.expires_at, 1);
    let rescued = update(&store, run.id, |current| lifecycle::rescue(current, &RETRY_NOW, t3)).await;
    assert_eq!((rescued.run.state, rescued.run.attempt), (RunState::Queued, 2));
    assert_eq!(get(&store, run.id).await.error.map(|error| error.code), Some(ErrorCode::LeaseExpired));
    let third = claim_only(&store, run.id, "job", t3).await;
    assert_eq!((third.run.lease.as_ref().map(|lease| lease.epoch), third.run.attempt), (Some(3), 2));
    let lease3 = lease_of(&third.run);

    // A failed attempt retried: epoch 4, attempt 3.
    update(&store, run.id, |current| lifecycle::fail_attempt(current, &lease3, retryable(2), &RETRY_NOW, t3)).await;
    let fourth = claim_only(&store, run.id, "job", t3).await;
    assert_eq!((fourth.run.lease.as_ref().map(|lease| lease.epoch), fourth.run.attempt), (Some(4), 3));
    let lease4 = lease_of(&fourth.run);

    // Waiting for a decision holds no lease; once decided it is claimed again: epoch 5.
    update(&store, run.id, |current| lifecycle::suspend(current, &lease4, "approve", "ship it?", t3)).await;
    let waiting = get(&store, run.id).await;
    assert_eq!((waiting.state, waiting.lease.clone()), (RunState::Waiting, None));
    assert_eq!(waiting.waiting, Some(Waiting { key: "approve".into(), prompt: "ship it?".into(), since: t3 }));
    assert!(claim(&store, &["job"], 1, t3).await.is_empty(), "a waiting run is not claimed");
    let approve = Decision { outcome: DecisionOutcome::Approve, note: "go".into() };
    update(&store, run.id, |current| lifecycle::decide(current, None, &approve, t3)).await;
    let decided = get(&store, run.id).await;
    assert_eq!((decided.state, decided.waiting.clone()), (RunState::Queued, None));
    assert_eq!(decided.decisions, BTreeMap::from([("approve".to_owned(), approve.clone())]));
    let fifth = claim_only(&store, run.id, "job", t3).await;
    assert_eq!((fifth.run.lease.as_ref().map(|lease| lease.epoch), fifth.run.attempt), (Some(5), 3));
    assert_eq!(fifth.run.decisions, decided.decisions);

    // Every transition appended its events without gaps.
    let all = events(&store, run.id).await;
    assert_eq!(event_sequences(&all), (1..=all.len() as u64).collect::<Vec<_>>());
    assert_eq!(all.last().map(|event| event.sequence), Some(get(&store, run.id).await.last_event_sequence));
    let claimed_by: Vec<_> = all
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::StateChanged { to: RunState::Running, worker_id, .. } => worker_id.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(claimed_by, [WORKER, "worker-2", WORKER, WORKER, WORKER]);
}

async fn runs_scheduled_later_wait_for_their_time(database: &TestDatabase) {
    let store = open_store(database).await;
    assert_eq!(store.next_scheduled_at(&["x".into()]).await.expect("next scheduled"), None);
    let next = |kinds: &[&str]| {
        let store = store.clone();
        let kinds: Vec<String> = kinds.iter().map(|kind| (*kind).to_owned()).collect();
        async move { store.next_scheduled_at(&kinds).await.expect("next scheduled") }
    };

    let x = create_kind(&store, "x").await;
    let y = create_kind(&store, "y").await;
    assert_eq!(next(&["x"]).await, Some(x.scheduled_at));
    assert_eq!(next(&["y"]).await, Some(y.scheduled_at));
    assert_eq!(next(&["x", "y"]).await, Some(x.scheduled_at), "the earliest of the kinds");
    assert_eq!(next(&["z"]).await, None);
    assert_eq!(next(&[]).await, None);

    // Running runs are not waiting to be scheduled.
    let claimed = claim_only(&store, x.id, "x", Timestamp::now()).await;
    let first_start = claimed.run.started_at;
    assert_eq!(next(&["x"]).await, None);
    assert_eq!(next(&["x", "y"]).await, Some(y.scheduled_at));

    // A failed attempt retried later is not claimed before its time, then keeps its attempt.
    let lease = lease_of(&claimed.run);
    let now = Timestamp::now();
    let retried = update(&store, x.id, |current| lifecycle::fail_attempt(current, &lease, retryable(1), &RETRY_LATER, now)).await;
    let due = retried.run.scheduled_at;
    assert!(due >= secs(now, 3600), "the retry waits at least an hour");
    assert_eq!(get(&store, x.id).await.scheduled_at, due);
    assert_eq!(next(&["x"]).await, Some(due));
    assert!(claim(&store, &["x"], 10, Timestamp::now()).await.is_empty(), "not due yet");
    assert!(claim(&store, &["x"], 10, Timestamp::from_micros(due.as_micros() - 1)).await.is_empty(), "not due a microsecond before");
    let claimed = claim_only(&store, x.id, "x", due).await;
    assert_eq!((claimed.run.attempt, claimed.run.lease.as_ref().map(|lease| lease.epoch)), (2, Some(2)));
    assert_eq!(claimed.run.started_at, first_start, "the first start is kept");
}

async fn concurrency_keys_cap_running_runs(database: &TestDatabase) {
    let store = open_store(database).await;

    // Runs already running count against their key.
    let m1 = create(&store, keyed_run("held", "m", 2)).await.id;
    let m2 = create(&store, keyed_run("held", "m", 2)).await.id;
    let _m3 = create(&store, keyed_run("held", "m", 2)).await.id;
    assert_eq!(ids(&claim(&store, &["held"], 1, Timestamp::now()).await), [m1]);
    assert_eq!(ids(&claim(&store, &["held"], 10, Timestamp::now()).await), [m2], "one more fits under the limit of 2");
    assert!(claim(&store, &["held"], 10, Timestamp::now()).await.is_empty());

    // Several keys and keyless runs in one claim: each key to its limit, the others unaffected.
    let k1 = create(&store, keyed_run("mixed", "k", 2)).await.id;
    let k2 = create(&store, keyed_run("mixed", "k", 2)).await.id;
    let f1 = create_kind(&store, "mixed").await.id;
    let k3 = create(&store, keyed_run("mixed", "k", 2)).await.id;
    let j1 = create(&store, keyed_run("mixed", "j", 1)).await.id;
    let k4 = create(&store, keyed_run("mixed", "k", 2)).await.id;
    let j2 = create(&store, keyed_run("mixed", "j", 1)).await.id;
    let f2 = create_kind(&store, "mixed").await.id;
    let _k5 = create(&store, keyed_run("mixed", "k", 2)).await.id;
    let claimed = claim(&store, &["mixed"], 10, Timestamp::now()).await;
    assert_eq!(ids(&claimed), [k1, k2, f1, j1, f2]);
    assert!(claim(&store, &["mixed"], 10, Timestamp::now()).await.is_empty(), "every key is full");
    let lease = |id: RunId| lease_of(&claimed.iter().find(|t| t.run.id == id).expect("claimed").run);

    // A key is global: a run of another kind under a full key waits too.
    let other_kind = create(&store, keyed_run("other-kind", "k", 2)).await.id;
    assert!(claim(&store, &["other-kind"], 10, Timestamp::now()).await.is_empty());

    // A finished run frees its slot for the oldest waiting run of its key.
    let (k1_lease, j1_lease, k2_lease) = (lease(k1), lease(j1), lease(k2));
    update(&store, k1, |current| lifecycle::succeed(current, &k1_lease, json!({}), Timestamp::now())).await;
    assert_eq!(ids(&claim(&store, &["mixed", "other-kind"], 10, Timestamp::now()).await), [k3]);
    update(&store, j1, |current| lifecycle::fail_attempt(current, &j1_lease, fatal(1), &RETRY_NOW, Timestamp::now())).await;
    assert_eq!(ids(&claim(&store, &["mixed"], 10, Timestamp::now()).await), [j2]);

    // A released run frees its slot and, being older, is claimed again before the later ones.
    update(&store, k2, |current| lifecycle::release(current, &k2_lease, Timestamp::now())).await;
    assert_eq!(ids(&claim(&store, &["mixed", "other-kind"], 10, Timestamp::now()).await), [k2]);
    assert!(claim(&store, &["mixed", "other-kind"], 10, Timestamp::now()).await.is_empty());

    // Never more than the limit running under a key.
    let running_k = store
        .list_runs(&RunQuery { state: Some(RunState::Running), ..query() })
        .await
        .expect("list runs")
        .into_iter()
        .filter(|run| run.concurrency.as_ref().is_some_and(|(key, _)| key == "k"))
        .map(|run| run.id)
        .collect::<HashSet<_>>();
    assert_eq!(running_k, HashSet::from([k2, k3]));
    assert_eq!(get(&store, k4).await.state, RunState::Queued);
    assert_eq!(get(&store, other_kind).await.state, RunState::Queued);
}

async fn a_full_concurrency_key_does_not_hold_back_other_runs(database: &TestDatabase) {
    let store = open_store(database).await;
    // One run holds the key; a long backlog of the same key waits ahead of other runs.
    let (_holder, _lease) = start_new(&store, keyed_run("job", "hot", 1)).await;
    for _ in 0..40 {
        create(&store, keyed_run("job", "hot", 1)).await;
    }
    let free = create_kind(&store, "job").await.id;
    let warm = create(&store, keyed_run("job", "warm", 1)).await.id;
    assert_eq!(ids(&claim(&store, &["job"], 1, Timestamp::now()).await), [free], "a keyless run behind a full key is claimed");
    assert_eq!(ids(&claim(&store, &["job"], 5, Timestamp::now()).await), [warm], "a run of another key behind a full key is claimed");
    assert!(claim(&store, &["job"], 5, Timestamp::now()).await.is_empty());
}

async fn concurrent_claimers_never_claim_a_run_twice(database: &TestDatabase) {
    const RUNS: usize = 60;
    const CLAIMERS: usize = 4;
    let store = open_store(database).await;
    let mut created = HashSet::new();
    for _ in 0..RUNS {
        created.insert(create_kind(&store, "job").await.id);
    }

    let claimed = Arc::new(Mutex::new(Vec::<(RunId, String)>::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, handle) in store_handles(database, &store, CLAIMERS).await.into_iter().enumerate() {
        let claimed = claimed.clone();
        tasks.spawn(async move {
            let worker = format!("claimer-{index}");
            while claimed.lock().expect("lock").len() < RUNS {
                let got = claim_with(&handle, &worker, &["job"], 3, LEASE_TTL, Timestamp::now()).await;
                if got.is_empty() {
                    // Others may hold the rest of the queue locked for a moment.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                claimed.lock().expect("lock").extend(got.into_iter().map(|t| (t.run.id, worker.clone())));
            }
        });
    }
    tokio::time::timeout(Duration::from_secs(120), tasks.join_all()).await.expect("the claimers drain the queue");

    let claimed = claimed.lock().expect("lock").clone();
    let distinct: HashSet<RunId> = claimed.iter().map(|(id, _)| *id).collect();
    assert_eq!(claimed.len(), RUNS, "each run is claimed once");
    assert_eq!(distinct, created, "every run is claimed");
    for (id, worker) in &claimed {
        let run = get(&store, *id).await;
        assert_eq!(run.state, RunState::Running);
        let lease = lease_of(&run);
        assert_eq!((lease.epoch, lease.worker_id.as_str()), (1, worker.as_str()), "run {id} was claimed by one worker, once");
        assert_eq!(event_sequences(&events(&store, *id).await), [1, 2]);
    }
}

async fn a_concurrency_limit_holds_under_concurrent_claims(database: &TestDatabase) {
    // Far more runs than one claim's candidate window (4 × limit + 16), so that concurrent
    // claimers hold different candidates of the one key at the same time.
    const KEYED: usize = 120;
    const FREE: usize = 30;
    const LIMIT: u32 = 2;
    const CLAIMERS: usize = 4;
    let store = open_store(database).await;
    for index in 0..KEYED + FREE {
        if index % 5 == 4 {
            create_kind(&store, "job").await;
        } else {
            create(&store, keyed_run("job", "shared", LIMIT)).await;
        }
    }

    // `in_flight` counts keyed runs from after their claim committed until before their finish
    // commits, so it never exceeds what the store really has running under the key.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let claimed = Arc::new(Mutex::new(Vec::<RunId>::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, handle) in store_handles(database, &store, CLAIMERS).await.into_iter().enumerate() {
        let (in_flight, peak, finished, claimed) = (in_flight.clone(), peak.clone(), finished.clone(), claimed.clone());
        tasks.spawn(async move {
            let worker = format!("claimer-{index}");
            while finished.load(Ordering::SeqCst) < KEYED + FREE {
                let got = claim_with(&handle, &worker, &["job"], 2, LEASE_TTL, Timestamp::now()).await;
                if got.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                for transition in &got {
                    claimed.lock().expect("lock").push(transition.run.id);
                    if transition.run.concurrency.is_some() {
                        let running = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(running, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                for transition in got {
                    if transition.run.concurrency.is_some() {
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                    }
                    let lease = lease_of(&transition.run);
                    let succeed = |current: &Run| lifecycle::succeed(current, &lease, json!({}), Timestamp::now());
                    update(&handle, transition.run.id, succeed).await;
                    finished.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    tokio::time::timeout(Duration::from_secs(120), tasks.join_all()).await.expect("the claimers finish every run");

    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= LIMIT as usize, "{peak} runs of the key ran at once; the limit is {LIMIT}");
    assert!(peak >= 1);
    let claimed = claimed.lock().expect("lock").clone();
    assert_eq!(claimed.len(), KEYED + FREE, "each run is claimed once");
    assert_eq!(claimed.iter().collect::<HashSet<_>>().len(), KEYED + FREE);
    for run in store.list_runs(&query()).await.expect("list runs") {
        assert_eq!(run.state, RunState::Succeeded);
        assert_eq!(event_sequences(&events(&store, run.id).await), [1, 2, 3], "created, claimed once, finished");
    }
}

// ---------------------------------------------------------------------------------------------
// Leases and logs
// ---------------------------------------------------------------------------------------------

async fn extend_lease_holds_only_while_the_lease_is_current(database: &TestDatabase) {
    let store = open_store(database).await;
    let held = LeaseStatus::Held { cancel_requested: false };

    // Current: extended, and the new expiry is stored.
    let (run, lease) = start(&store, "job").await;
    let until = secs(lease.expires_at, 60);
    assert_eq!(store.extend_lease(&lease, until).await.expect("extend"), held);
    assert_eq!(get(&store, run.id).await.lease.map(|lease| lease.expires_at), Some(until));

    // A stale epoch or an unknown run: lost, and nothing changes.
    for epoch in [lease.epoch - 1, lease.epoch + 1] {
        let stale = Lease { epoch, ..lease.clone() };
        assert_eq!(store.extend_lease(&stale, secs(until, 60)).await.expect("extend"), LeaseStatus::Lost);
    }
    let unknown = Lease { run_id: RunId::new(), ..lease.clone() };
    assert_eq!(store.extend_lease(&unknown, until).await.expect("extend"), LeaseStatus::Lost);
    assert_eq!(get(&store, run.id).await.lease.map(|lease| lease.expires_at), Some(until));

    // A cooperative cancel is reported to the holder, who still holds the run.
    update(&store, run.id, |current| lifecycle::cancel(current, "stop please", false, Timestamp::now())).await;
    assert_eq!(store.extend_lease(&lease, until).await.expect("extend"), LeaseStatus::Held { cancel_requested: true });
    // The holder stops: the lease is gone.
    update(&store, run.id, |current| lifecycle::cancelled_by_worker(current, &lease, Timestamp::now())).await;
    assert_eq!(get(&store, run.id).await.state, RunState::Cancelled);
    assert_eq!(store.extend_lease(&lease, until).await.expect("extend"), LeaseStatus::Lost);

    // Rescued after it lapsed: lost; the next claim's lease is held, the old one stays lost.
    let (run, lease) = start(&store, "rescued").await;
    let later = secs(lease.expires_at, 1);
    update(&store, run.id, |current| lifecycle::rescue(current, &RETRY_NOW, later)).await;
    assert_eq!(store.extend_lease(&lease, secs(later, 30)).await.expect("extend"), LeaseStatus::Lost);
    let reclaimed = claim_only(&store, run.id, "rescued", later).await;
    let new_lease = lease_of(&reclaimed.run);
    assert_eq!(new_lease.epoch, lease.epoch + 1);
    assert_eq!(store.extend_lease(&lease, secs(later, 30)).await.expect("extend"), LeaseStatus::Lost);
    assert_eq!(store.extend_lease(&new_lease, secs(later, 30)).await.expect("extend"), held);
    // Finished: lost.
    update(&store, run.id, |current| lifecycle::succeed(current, &new_lease, json!({}), later)).await;
    assert_eq!(store.extend_lease(&new_lease, secs(later, 60)).await.expect("extend"), LeaseStatus::Lost);

    // Every other way out of running loses the lease too.
    type Leave = fn(&Run, &Lease) -> Result<Update>;
    let leaves: [(&str, Leave); 5] = [
        ("released", |run, lease| lifecycle::release(run, lease, Timestamp::now())),
        ("suspended", |run, lease| lifecycle::suspend(run, lease, "key", "prompt", Timestamp::now())),
        ("force-cancelled", |run, _| lifecycle::cancel(run, "now", true, Timestamp::now())),
        ("force-failed", |run, _| lifecycle::force_fail(run, "operator", Timestamp::now())),
        ("failed", |run, lease| lifecycle::fail_attempt(run, lease, fatal(1), &RETRY_NOW, Timestamp::now())),
    ];
    for (kind, leave) in leaves {
        let (run, lease) = start(&store, kind).await;
        assert_eq!(store.extend_lease(&lease, secs(lease.expires_at, 10)).await.expect("extend"), held);
        update(&store, run.id, |current| leave(current, &lease)).await;
        assert_eq!(store.extend_lease(&lease, secs(lease.expires_at, 20)).await.expect("extend"), LeaseStatus::Lost, "{kind}");
    }
}

async fn append_logs_numbers_lines_without_gaps(database: &TestDatabase) {
    let store = open_store(database).await;
    let (run, lease) = start(&store, "job").await;
    let t = Timestamp::now();

    assert!(store.append_logs(&lease, 1, 0, &[]).await.expect("append nothing").is_empty());
    let first_lines = log_lines("first", 3, t);
    let first = store.append_logs(&lease, 1, 0, &first_lines).await.expect("append logs");
    assert_eq!(log_sequences(&first), [1, 2, 3], "lines are numbered from 1");
    for (stored, line) in first.iter().zip(&first_lines) {
        assert_eq!(
            (stored.run_id, stored.attempt, stored.time, stored.stream, stored.text.as_str()),
            (run.id, 1, line.time, line.stream, line.text.as_str())
        );
    }
    let second = store.append_logs(&lease, 1, 3, &log_lines("second", 2, t)).await.expect("append logs");
    assert_eq!(log_sequences(&second), [4, 5], "a later call continues the numbering");

    // Odd text round-trips as written.
    let odd = [
        NewLogLine { time: t, stream: LogStream::Stderr, text: "ünïcödé ✓ \t 'quoted' \"double\" \\ back".into() },
        NewLogLine { time: t, stream: LogStream::System, text: String::new() },
    ];
    let third = store.append_logs(&lease, 1, 5, &odd).await.expect("append logs");
    assert_eq!(log_sequences(&third), [6, 7]);

    let all: Vec<LogLine> = first.into_iter().chain(second).chain(third).collect();
    assert_eq!(logs(&store, run.id).await, all, "read_logs returns the lines as appended");
    assert_eq!(get(&store, run.id).await.last_log_sequence, 7);

    // Reading with `after` and `limit`.
    let read = |after, limit| {
        let store = store.clone();
        async move { store.read_logs(run.id, after, limit).await.expect("read logs") }
    };
    assert_eq!(read(0, 1).await, all[..1]);
    assert_eq!(read(2, 2).await, all[2..4]);
    assert_eq!(read(5, 100).await, all[5..]);
    assert!(read(7, 100).await.is_empty());
    assert!(read(0, 0).await.is_empty());

    // Updates of the run leave the log numbering alone, and events are numbered apart.
    let progress = |current: &Run| lifecycle::workflow_event(current, &lease, "progress", json!(50), Timestamp::now());
    let changed = update(&store, run.id, progress).await;
    assert_eq!(changed.run.last_log_sequence, 7);
    assert_eq!(get(&store, run.id).await.last_log_sequence, 7);
    assert_eq!(event_sequences(&changed.events), [3]);
    let fourth = store.append_logs(&lease, 1, 7, &log_lines("fourth", 1, t)).await.expect("append logs");
    assert_eq!(log_sequences(&fourth), [8]);
}

async fn large_log_batches_keep_their_order(database: &TestDatabase) {
    let store = open_store(database).await;
    let (run, lease) = start(&store, "job").await;
    let t = Timestamp::now();

    // More than two insert chunks of 500 lines, then exactly one chunk, then one line.
    let big = log_lines("big", 1203, t);
    let stored = store.append_logs(&lease, 1, 0, &big).await.expect("append a large batch");
    assert_eq!(log_sequences(&stored), (1..=1203).collect::<Vec<_>>());
    let as_written = |stored: &LogLine, line: &NewLogLine| (stored.time, stored.stream, &stored.text) == (line.time, line.stream, &line.text);
    assert!(stored.iter().zip(&big).all(|(stored, line)| as_written(stored, line)));
    let chunk = store.append_logs(&lease, 1, 1203, &log_lines("chunk", 500, t)).await.expect("append one chunk");
    assert_eq!(log_sequences(&chunk), (1204..=1703).collect::<Vec<_>>());
    let one = store.append_logs(&lease, 1, 1703, &log_lines("one", 1, t)).await.expect("append a line");
    assert_eq!(log_sequences(&one), [1704]);

    let expected: Vec<LogLine> = stored.into_iter().chain(chunk).chain(one).collect();
    assert_eq!(logs(&store, run.id).await, expected, "every line is stored, in order");
    assert_eq!(store.read_logs(run.id, 500, 500).await.expect("read logs"), expected[500..1000]);
    assert_eq!(get(&store, run.id).await.last_log_sequence, 1704);
}

async fn resent_log_batches_are_stored_once(database: &TestDatabase) {
    let store = open_store(database).await;
    let (run, lease) = start(&store, "job").await;
    let t = Timestamp::now();
    let lines = log_lines("line", 5, t);
    store.append_logs(&lease, 1, 0, &lines[..3]).await.expect("append lines 0..3");

    // The same batch again (its answer was lost): nothing new is stored.
    assert!(store.append_logs(&lease, 1, 0, &lines[..3]).await.expect("resend").is_empty());
    // A batch overlapping what is stored: only its new lines are stored.
    let overlap = store.append_logs(&lease, 1, 2, &lines[2..]).await.expect("overlapping batch");
    assert_eq!(log_sequences(&overlap), [4, 5]);
    let texts: Vec<String> = logs(&store, run.id).await.into_iter().map(|line| line.text).collect();
    let expected: Vec<String> = lines.iter().map(|line| line.text.clone()).collect();
    assert_eq!(texts, expected, "each line once, in order");

    // A batch after a gap is refused: the lines before it were never stored.
    let gap = store.append_logs(&lease, 1, 7, &log_lines("late", 1, t)).await;
    assert!(matches!(gap, Err(Error::FailedPrecondition { reason: "LOG_LINES_MISSING", .. })), "{gap:?}");

    // A new lease counts its lines from 0 again.
    let later = secs(lease.expires_at, 1);
    update(&store, run.id, |current| lifecycle::rescue(current, &RETRY_NOW, later)).await;
    let reclaimed = claim_only(&store, run.id, "job", later).await;
    let appended = store.append_logs(&lease_of(&reclaimed.run), 2, 0, &log_lines("again", 2, t)).await.expect("new lease");
    assert_eq!(log_sequences(&appended), [6, 7]);
}

async fn append_logs_refuses_stale_leases(database: &TestDatabase) {
    let store = open_store(database).await;
    let (run, lease) = start(&store, "job").await;
    let t = Timestamp::now();
    store.append_logs(&lease, 1, 0, &log_lines("ok", 2, t)).await.expect("append logs");

    let assert_refused = |result: Result<Vec<LogLine>>, epoch: u64| match result {
        Err(Error::StaleLease { epoch: refused, run_id }) => {
            assert_eq!(refused, epoch);
            assert_eq!(run_id, run.id.to_string());
        }
        other => panic!("expected StaleLease for epoch {epoch}, got {other:?}"),
    };

    // A stale epoch writes nothing.
    for epoch in [lease.epoch - 1, lease.epoch + 1] {
        let stale = Lease { epoch, ..lease.clone() };
        assert_refused(store.append_logs(&stale, 1, 2, &log_lines("stale", 3, t)).await, epoch);
    }
    assert_eq!(log_sequences(&logs(&store, run.id).await), [1, 2]);
    assert_eq!(get(&store, run.id).await.last_log_sequence, 2);

    // After a rescue and a new claim, the old holder is refused and the new one continues.
    let later = secs(lease.expires_at, 1);
    update(&store, run.id, |current| lifecycle::rescue(current, &RETRY_NOW, later)).await;
    assert_refused(store.append_logs(&lease, 1, 2, &log_lines("queued", 1, t)).await, lease.epoch);
    let reclaimed = claim_only(&store, run.id, "job", later).await;
    let new_lease = lease_of(&reclaimed.run);
    assert_refused(store.append_logs(&lease, 1, 2, &log_lines("old", 1, t)).await, lease.epoch);
    let appended = store.append_logs(&new_lease, 2, 0, &log_lines("new", 1, t)).await.expect("append logs");
    assert_eq!((log_sequences(&appended), appended[0].attempt), (vec![3], 2));

    // A run that is no longer running takes no lines, even under its last lease.
    update(&store, run.id, |current| lifecycle::succeed(current, &new_lease, json!({}), later)).await;
    assert_refused(store.append_logs(&new_lease, 2, 1, &log_lines("finished", 2, t)).await, new_lease.epoch);
    let (waiting, waiting_lease) = start(&store, "waits").await;
    update(&store, waiting.id, |current| lifecycle::suspend(current, &waiting_lease, "key", "prompt", Timestamp::now())).await;
    let refused = store.append_logs(&waiting_lease, 1, 0, &log_lines("waiting", 1, t)).await;
    assert!(matches!(refused, Err(Error::StaleLease { .. })), "{refused:?}");
    let unknown = Lease { run_id: RunId::new(), ..new_lease.clone() };
    assert!(matches!(store.append_logs(&unknown, 1, 0, &log_lines("x", 1, t)).await, Err(Error::StaleLease { .. })));

    assert_eq!(log_sequences(&logs(&store, run.id).await), [1, 2, 3], "refused appends wrote nothing");
    assert_eq!(get(&store, run.id).await.last_log_sequence, 3);
    assert!(logs(&store, waiting.id).await.is_empty());
    assert_eq!(get(&store, waiting.id).await.last_log_sequence, 0);
}

// ---------------------------------------------------------------------------------------------
// Maintenance and statistics
// ---------------------------------------------------------------------------------------------

async fn expired_leases_lists_lapsed_leases_in_expiry_order(database: &TestDatabase) {
    let store = open_store(database).await;
    let a = create_kind(&store, "job").await.id;
    let b = create_kind(&store, "job").await.id;
    let c = create_kind(&store, "job").await.id;
    let queued = create_kind(&store, "idle").await.id;
    let t = Timestamp::now();
    // Claimed with leases of 30, 10 and 20 seconds: expiry order b, c, a.
    let mut leases = BTreeMap::new();
    for (id, ttl) in [(a, 30), (b, 10), (c, 20)] {
        let claimed = claim_with(&store, WORKER, &["job"], 1, Duration::from_secs(ttl), t).await;
        assert_eq!(ids(&claimed), [id]);
        leases.insert(id, lease_of(&claimed[0].run));
    }
    let expired = |now: Timestamp, limit: u32| {
        let store = store.clone();
        async move { store.expired_leases(now, limit).await.expect("expired leases") }
    };

    assert!(expired(secs(t, 5), 10).await.is_empty());
    assert!(expired(secs(t, 10), 10).await.is_empty(), "a lease expiring exactly now has not lapsed");
    assert_eq!(expired(secs(t, 11), 10).await, [b]);
    assert_eq!(expired(secs(t, 25), 10).await, [b, c]);
    assert_eq!(expired(secs(t, 35), 10).await, [b, c, a], "oldest expiry first");
    assert_eq!(expired(secs(t, 35), 2).await, [b, c], "at most `limit`");

    // An extended lease is not lapsed; rescued and finished runs hold none.
    store.extend_lease(&leases[&b], secs(t, 100)).await.expect("extend");
    assert_eq!(expired(secs(t, 35), 10).await, [c, a]);
    update(&store, c, |current| lifecycle::rescue(current, &RETRY_NOW, secs(t, 35))).await;
    let a_lease = leases[&a].clone();
    update(&store, a, |current| lifecycle::succeed(current, &a_lease, json!({}), secs(t, 35))).await;
    assert!(expired(secs(t, 35), 10).await.is_empty());
    assert_eq!(expired(secs(t, 101), 10).await, [b]);
    assert!(!expired(secs(t, 1000), 10).await.contains(&queued), "a queued run holds no lease");
}

async fn overdue_runs_lists_unfinished_runs_past_their_deadline(database: &TestDatabase) {
    let store = open_store(database).await;
    let t = Timestamp::now();
    let due = |kind: &str, seconds: u64| NewRun { deadline: Some(secs(t, seconds)), ..new_run(kind) };
    let queued = create(&store, due("queued", 10)).await.id;
    let (running, _) = start_new(&store, due("running", 20)).await;
    let (waiting, waiting_lease) = start_new(&store, due("waiting", 30)).await;
    update(&store, waiting.id, |current| lifecycle::suspend(current, &waiting_lease, "key", "prompt", Timestamp::now())).await;
    let (done, done_lease) = start_new(&store, due("done", 5)).await;
    update(&store, done.id, |current| lifecycle::succeed(current, &done_lease, json!({}), Timestamp::now())).await;
    create_kind(&store, "no-deadline").await;

    let overdue = |now: Timestamp, limit: u32| {
        let store = store.clone();
        async move { store.overdue_runs(now, limit).await.expect("overdue runs") }
    };
    assert!(overdue(secs(t, 1), 10).await.is_empty());
    assert!(overdue(secs(t, 10), 10).await.is_empty(), "a deadline of exactly now has not passed");
    assert_eq!(overdue(secs(t, 11), 10).await, [queued]);
    let all_overdue = [queued, running.id, waiting.id];
    assert_eq!(overdue(secs(t, 100), 10).await, all_overdue, "earliest deadline first; finished runs are not overdue");
    assert_eq!(overdue(secs(t, 100), 2).await, [queued, running.id], "at most `limit`");

    // Expired by maintenance, they fail and are no longer overdue.
    for id in [queued, running.id, waiting.id] {
        update(&store, id, |current| lifecycle::expire_deadline(current, secs(t, 100))).await;
        let failed = get(&store, id).await;
        assert_eq!((failed.state, failed.error.map(|error| error.code)), (RunState::Failed, Some(ErrorCode::DeadlineExceeded)));
    }
    assert!(overdue(secs(t, 100), 10).await.is_empty());
}

async fn queue_counts_summarise_one_workspace(database: &TestDatabase) {
    let store = open_store(database).await;
    let default = WorkspaceId::new(DEFAULT_WORKSPACE);
    let other = WorkspaceId::new("other");
    add_workspace(database, "other").await;
    let t0 = Timestamp::now();
    assert_eq!(store.queue_counts(&default, t0, t0).await.expect("queue counts"), QueueCounts::default(), "an empty workspace");

    // The oldest run of all lives in another workspace, and must not count here.
    let elsewhere = create(&store, NewRun { workspace: other.clone(), ..new_run("gamma") }).await;

    // beta: one succeeded, one failed, one retried later, one cancelled while queued.
    let succeeded = create_kind(&store, "beta").await.id;
    let failed = create_kind(&store, "beta").await.id;
    let later = create_kind(&store, "beta").await.id;
    let claimed = claim(&store, &["beta"], 3, Timestamp::now()).await;
    assert_eq!(ids(&claimed), [succeeded, failed, later]);
    let finish = Timestamp::now();
    let leases: Vec<Lease> = claimed.iter().map(|t| lease_of(&t.run)).collect();
    update(&store, succeeded, |current| lifecycle::succeed(current, &leases[0], json!({}), secs(finish, 1))).await;
    update(&store, failed, |current| lifecycle::fail_attempt(current, &leases[1], fatal(1), &RETRY_NOW, secs(finish, 2))).await;
    update(&store, later, |current| lifecycle::fail_attempt(current, &leases[2], retryable(1), &RETRY_LATER, Timestamp::now())).await;
    let cancelled = create_kind(&store, "beta").await.id;
    update(&store, cancelled, |current| lifecycle::cancel(current, "", false, secs(finish, 3))).await;

    // alpha: one running, one waiting, two queued.
    let running = create_kind(&store, "alpha").await.id;
    let waiting = create_kind(&store, "alpha").await.id;
    let claimed = claim(&store, &["alpha"], 2, Timestamp::now()).await;
    assert_eq!(ids(&claimed), [running, waiting]);
    let waiting_lease = lease_of(&claimed[1].run);
    update(&store, waiting, |current| lifecycle::suspend(current, &waiting_lease, "key", "prompt", Timestamp::now())).await;
    let queued1 = create_kind(&store, "alpha").await;
    create_kind(&store, "alpha").await;

    let now = Timestamp::now();
    let expected = QueueCounts {
        by_kind_and_state: BTreeMap::from([
            (("alpha".to_owned(), RunState::Queued), 2),
            (("alpha".to_owned(), RunState::Running), 1),
            (("alpha".to_owned(), RunState::Waiting), 1),
            (("beta".to_owned(), RunState::Queued), 1),
            (("beta".to_owned(), RunState::Succeeded), 1),
            (("beta".to_owned(), RunState::Failed), 1),
            (("beta".to_owned(), RunState::Cancelled), 1),
        ]),
        oldest_queued_since: Some(queued1.scheduled_at),
        active_leases: 1,
        finished_since: 3,
    };
    assert_eq!(store.queue_counts(&default, now, t0).await.expect("queue counts"), expected);

    // Only due runs count as waiting in the queue; finished counts runs finished after `since`.
    let counts = store.queue_counts(&default, t0, secs(finish, 1)).await.expect("queue counts");
    assert_eq!(counts.oldest_queued_since, None, "nothing was due yet at t0");
    assert_eq!(counts.finished_since, 2, "finished strictly after the time given");
    assert_eq!(store.queue_counts(&default, now, secs(finish, 3)).await.expect("queue counts").finished_since, 0);

    // The other workspace sees only its own run.
    let expected_other = QueueCounts {
        by_kind_and_state: BTreeMap::from([(("gamma".to_owned(), RunState::Queued), 1)]),
        oldest_queued_since: Some(elsewhere.scheduled_at),
        active_leases: 0,
        finished_since: 0,
    };
    assert_eq!(store.queue_counts(&other, now, t0).await.expect("queue counts"), expected_other);
}

fn new_worker(id: &str, kinds: &[&str]) -> NewWorker {
    NewWorker {
        id: WorkerId::new(id),
        name: format!("{id} on host-a"),
        kinds: kinds.iter().map(|kind| (*kind).to_owned()).collect(),
        providers: vec!["mock".to_owned(), "cli#claude".to_owned()],
        labels: BTreeMap::from([("zone".to_owned(), "eu-1".to_owned())]),
        capacity: 8,
        embedded: false,
    }
}

async fn worker(store: &SharedStore, id: &str) -> conclave::domain::Worker {
    store.get_worker(&WorkerId::new(id)).await.expect("get worker").expect("the worker exists")
}

async fn workers_register_heartbeat_drain_and_go_stale(database: &TestDatabase) {
    let store = open_store(database).await;
    let t0 = Timestamp::from_micros(Timestamp::now().as_micros() / 1_000_000 * 1_000_000);
    let w1 = new_worker("w-1", &["job"]);
    let registered = store.register_worker(&w1, t0).await.expect("register");
    assert_eq!(registered.spec, w1, "what the worker declared round-trips");
    assert_eq!((registered.state(), registered.running, registered.registered_at, registered.last_heartbeat_at), (WorkerState::Active, 0, t0, t0));
    store.register_worker(&new_worker("w-2", &["job", "other"]), t0).await.expect("register");

    let listed: Vec<String> = store.list_workers(None, 10).await.expect("list").iter().map(|w| w.id().to_string()).collect();
    assert_eq!(listed, ["w-1", "w-2"], "listed by id");
    let after: Vec<String> = store.list_workers(Some(&WorkerId::new("w-1")), 10).await.expect("list").iter().map(|w| w.id().to_string()).collect();
    assert_eq!(after, ["w-2"], "paged after an id");
    assert_eq!(store.list_workers(None, 1).await.expect("list").len(), 1, "at most the limit");
    assert!(store.worker_heartbeat(&WorkerId::new("nobody"), t0).await.expect("heartbeat").is_none());

    // w-2 heartbeats later; only w-1 is silent past the cutoff.
    let beat = store.worker_heartbeat(&WorkerId::new("w-2"), secs(t0, 5)).await.expect("heartbeat").expect("known");
    assert_eq!(beat.last_heartbeat_at, secs(t0, 5));
    let stale = store.mark_stale_workers(secs(t0, 3), secs(t0, 6)).await.expect("mark stale");
    assert_eq!(stale, [WorkerId::new("w-1")]);
    let w = worker(&store, "w-1").await;
    assert_eq!((w.state(), w.stale_since), (WorkerState::Stale, Some(secs(t0, 6))));
    assert!(store.mark_stale_workers(secs(t0, 3), secs(t0, 7)).await.expect("mark stale").is_empty(), "marked once");
    // A stale worker that heartbeats again is live again.
    store.worker_heartbeat(&WorkerId::new("w-1"), secs(t0, 8)).await.expect("heartbeat");
    assert_eq!(worker(&store, "w-1").await.state(), WorkerState::Active);

    // Drain, and registering again takes the drain back.
    let draining = store.set_worker_draining(&WorkerId::new("w-1"), true).await.expect("drain").expect("known");
    assert_eq!(draining.state(), WorkerState::Draining);
    assert!(store.set_worker_draining(&WorkerId::new("nobody"), true).await.expect("drain").is_none());
    store.register_worker(&w1, secs(t0, 9)).await.expect("register again");
    let again = worker(&store, "w-1").await;
    assert_eq!((again.state(), again.registered_at, again.last_heartbeat_at), (WorkerState::Active, t0, secs(t0, 9)));

    // A worker that stopped cleanly is never marked stale.
    store.stop_worker(&WorkerId::new("w-2"), secs(t0, 10)).await.expect("stop");
    assert_eq!(worker(&store, "w-2").await.state(), WorkerState::Stopped);
    assert!(store.mark_stale_workers(secs(t0, 100), secs(t0, 100)).await.expect("mark stale") == [WorkerId::new("w-1")]);

    // Load: the runs a worker holds, and their leases.
    let run = create_kind(&store, "job").await;
    let claimed = claim_with(&store, "w-1", &["job"], 1, LEASE_TTL, Timestamp::now()).await;
    assert_eq!(ids(&claimed), [run.id]);
    assert_eq!(worker(&store, "w-1").await.running, 1);
    assert_eq!(store.leases_of(&WorkerId::new("w-1")).await.expect("leases"), [lease_of(&claimed[0].run)]);
    assert!(store.leases_of(&WorkerId::new("w-2")).await.expect("leases").is_empty());
}

async fn retention_prunes_histories_then_deletes_old_runs(database: &TestDatabase) {
    let store = open_store(database).await;
    let t = Timestamp::now();
    let mut finished = Vec::new();
    for (index, finish) in [secs(t, 10), secs(t, 20)].into_iter().enumerate() {
        let (run, lease) = start_new(&store, NewRun { labels: BTreeMap::from([("n".to_owned(), index.to_string())]), ..new_run("job") }).await;
        store.append_logs(&lease, 1, 0, &log_lines("line", 3, t)).await.expect("append logs");
        let entry = JournalEntry { key: "s".into(), output: json!(1), attempt: 1, finished_at: t, duration: Duration::ZERO };
        update(&store, run.id, |current| lifecycle::record_step(current, &lease, entry.clone())).await;
        update(&store, run.id, |current| lifecycle::succeed(current, &lease, json!({}), finish)).await;
        finished.push(run.id);
    }
    let queued = create_kind(&store, "job").await;
    let (old, recent) = (finished[0], finished[1]);

    // Histories of runs finished before the cutoff go; the runs stay, marked.
    let pruned_at = secs(t, 30);
    assert_eq!(store.prune_histories(secs(t, 15), 100, pruned_at).await.expect("prune"), 1);
    assert!(events(&store, old).await.is_empty() && logs(&store, old).await.is_empty());
    assert!(store.read_journal(old).await.expect("journal").is_empty());
    let kept = get(&store, old).await;
    assert_eq!((kept.state, kept.history_pruned_at), (RunState::Succeeded, Some(pruned_at)));
    assert_eq!(logs(&store, recent).await.len(), 3, "a run finished after the cutoff keeps its history");
    assert!(!events(&store, recent).await.is_empty());
    assert_eq!(store.prune_histories(secs(t, 15), 100, pruned_at).await.expect("prune again"), 0, "pruned once");

    // Passes are bounded by their limit.
    assert_eq!(store.prune_histories(secs(t, 25), 0, pruned_at).await.expect("prune none"), 0);

    // Runs finished before the cutoff go entirely; unfinished runs never do.
    assert_eq!(store.delete_finished_runs(secs(t, 15), 100).await.expect("delete"), 1);
    assert!(store.get_run(old).await.expect("get").is_none());
    assert_eq!(get(&store, recent).await.state, RunState::Succeeded);
    assert_eq!(store.delete_finished_runs(secs(t, 1000), 100).await.expect("delete"), 1);
    assert!(store.get_run(recent).await.expect("get").is_none());
    assert!(logs(&store, recent).await.is_empty(), "its history went with it");
    assert_eq!(get(&store, queued.id).await.state, RunState::Queued);
    let listed = store.list_runs(&RunQuery { workspace: Some(WorkspaceId::new(DEFAULT_WORKSPACE)), limit: 10, ..RunQuery::default() }).await.expect("list");
    assert_eq!(listed.iter().map(|run| run.id).collect::<Vec<_>>(), [queued.id]);
}

fn new_artifact(run: RunId, name: &str, content: &[u8], condition: WriteCondition) -> NewArtifact {
    NewArtifact {
        id: ArtifactId::new(),
        run_id: run,
        name: ArtifactName::parse("name", name).expect("a valid name"),
        kind: ArtifactKind::Report,
        media_type: "text/plain".into(),
        size: content.len() as u64,
        digest: Digest::of(content),
        labels: BTreeMap::from([("stage".to_owned(), "review".to_owned())]),
        producer: Producer { step: Some("write".into()), tool: Some("tool".into()), tool_version: Some("1".into()), schema: None },
        condition,
        created_at: Timestamp::now(),
    }
}

async fn artifacts_are_versioned_conditioned_fenced_and_traced(database: &TestDatabase) {
    let store = open_store(database).await;
    let (run, lease) = start(&store, "job").await;

    // Versions number up; every field round-trips; the run's workspace is recorded.
    let first = store.insert_artifact(&new_artifact(run.id, "out/a.md", b"one", WriteCondition::Absent), Some(lease.epoch)).await.expect("v1");
    assert_eq!((first.version, first.workspace.as_str(), first.size), (1, DEFAULT_WORKSPACE, 3));
    let read = store.get_artifacts(&[first.id]).await.expect("read");
    assert_eq!(read, std::slice::from_ref(&first));
    let second = store.insert_artifact(&new_artifact(run.id, "out/a.md", b"two", WriteCondition::Etag(first.id)), None).await.expect("v2");
    assert_eq!(second.version, 2);

    // Conditions are checked against the latest version, atomically with the write.
    let stale = store.insert_artifact(&new_artifact(run.id, "out/a.md", b"x", WriteCondition::Etag(first.id)), None).await;
    assert!(matches!(stale, Err(Error::Aborted { reason: "ETAG_MISMATCH", .. })), "{stale:?}");
    let exists = store.insert_artifact(&new_artifact(run.id, "out/a.md", b"x", WriteCondition::Absent), None).await;
    assert!(matches!(exists, Err(Error::Aborted { reason: "ARTIFACT_EXISTS", .. })), "{exists:?}");
    // The lease: a former epoch, or a run that is not running, is refused.
    let fenced = store.insert_artifact(&new_artifact(run.id, "out/b.md", b"x", WriteCondition::Always), Some(lease.epoch - 1)).await;
    assert!(matches!(fenced, Err(Error::StaleLease { .. })), "{fenced:?}");
    let unknown = store.insert_artifact(&new_artifact(RunId::new(), "out/b.md", b"x", WriteCondition::Always), None).await;
    assert!(matches!(unknown, Err(Error::NotFound { .. })), "{unknown:?}");

    // The same without labels (SQLite writes those in a single statement).
    let (bare_run, bare_lease) = start(&store, "job").await;
    let bare = |name: &str, condition| NewArtifact { labels: BTreeMap::new(), ..new_artifact(bare_run.id, name, b"bare", condition) };
    let bare_first = store.insert_artifact(&bare("c.md", WriteCondition::Absent), Some(bare_lease.epoch)).await.expect("bare v1");
    assert_eq!((bare_first.version, bare_first.workspace.as_str()), (1, DEFAULT_WORKSPACE));
    assert_eq!(store.get_artifacts(&[bare_first.id]).await.expect("read"), std::slice::from_ref(&bare_first));
    let bare_second = store.insert_artifact(&bare("c.md", WriteCondition::Etag(bare_first.id)), Some(bare_lease.epoch)).await.expect("bare v2");
    let bare_third = store.insert_artifact(&bare("c.md", WriteCondition::Always), None).await.expect("bare v3");
    assert_eq!((bare_second.version, bare_third.version), (2, 3));
    let refused = [
        store.insert_artifact(&bare("c.md", WriteCondition::Etag(bare_second.id)), None).await,
        store.insert_artifact(&bare("c.md", WriteCondition::Absent), None).await,
        store.insert_artifact(&bare("d.md", WriteCondition::Always), Some(bare_lease.epoch + 1)).await,
        store.insert_artifact(&NewArtifact { labels: BTreeMap::new(), ..new_artifact(RunId::new(), "d.md", b"x", WriteCondition::Always) }, None).await,
    ];
    assert!(matches!(refused[0], Err(Error::Aborted { reason: "ETAG_MISMATCH", .. })), "{refused:?}");
    assert!(matches!(refused[1], Err(Error::Aborted { reason: "ARTIFACT_EXISTS", .. })), "{refused:?}");
    assert!(matches!(refused[2], Err(Error::StaleLease { .. })) && matches!(refused[3], Err(Error::NotFound { .. })), "{refused:?}");
    let bare_query = ArtifactQuery { workspace: Some(WorkspaceId::new(DEFAULT_WORKSPACE)), run_id: Some(bare_run.id), limit: 10, all_versions: true, ..ArtifactQuery::default() };
    assert_eq!(store.list_artifacts(&bare_query).await.expect("list").len(), 3, "refused writes left nothing");

    let name = ArtifactName::parse("name", "out/a.md").expect("name");
    assert_eq!(store.find_artifact(run.id, &name, None).await.expect("latest").map(|a| a.id), Some(second.id));
    assert_eq!(store.find_artifact(run.id, &name, Some(1)).await.expect("v1").map(|a| a.id), Some(first.id));
    let query = ArtifactQuery { workspace: Some(WorkspaceId::new(DEFAULT_WORKSPACE)), run_id: Some(run.id), limit: 10, ..ArtifactQuery::default() };
    let latest: Vec<ArtifactId> = store.list_artifacts(&query).await.expect("list").into_iter().map(|a| a.id).collect();
    assert_eq!(latest, [second.id]);
    let every = store.list_artifacts(&ArtifactQuery { all_versions: true, ..query.clone() }).await.expect("list all");
    assert_eq!(every.len(), 2);
    let labelled = ArtifactQuery { labels: BTreeMap::from([("stage".to_owned(), "other".to_owned())]), ..query.clone() };
    assert!(store.list_artifacts(&labelled).await.expect("by label").is_empty());
    let labelled = ArtifactQuery { labels: BTreeMap::from([("stage".to_owned(), "review".to_owned())]), ..query.clone() };
    let found: Vec<ArtifactId> = store.list_artifacts(&labelled).await.expect("by label").into_iter().map(|a| a.id).collect();
    assert_eq!(found, [second.id], "labels are written with the version");

    // Reads are recorded once per step, and found from either side.
    let (reader, _) = start(&store, "job").await;
    let used = ArtifactUse { artifact_id: second.id, run_id: reader.id, step: "read".into(), used_at: Timestamp::now() };
    store.record_artifact_use(&used).await.expect("use");
    store.record_artifact_use(&used).await.expect("the same use again");
    assert_eq!(store.artifact_uses(&[second.id], &[]).await.expect("uses of"), std::slice::from_ref(&used));
    assert_eq!(store.artifact_uses(&[], &[reader.id]).await.expect("uses by"), [used]);

    // Digests stay referenced until their last version goes.
    let digests = [Digest::of(b"one"), Digest::of(b"two"), Digest::of(b"never")];
    let mut referenced = store.referenced_digests(&digests).await.expect("referenced");
    referenced.sort();
    let mut expected = vec![Digest::of(b"one"), Digest::of(b"two")];
    expected.sort();
    assert_eq!(referenced, expected);
    assert_eq!(store.delete_artifacts(&[first.id]).await.expect("delete"), 1);
    assert_eq!(store.delete_artifacts(&[first.id]).await.expect("delete again"), 0);
    assert_eq!(store.referenced_digests(&digests).await.expect("referenced"), [Digest::of(b"two")]);
    assert!(store.artifact_uses(&[first.id], &[]).await.expect("uses").is_empty());

    // A deleted run takes its artifacts along.
    update(&store, run.id, |current| lifecycle::succeed(current, &lease, json!({}), Timestamp::now())).await;
    assert_eq!(store.delete_finished_runs(secs(Timestamp::now(), 60), 10).await.expect("delete runs"), 1);
    assert!(store.get_artifacts(&[second.id]).await.expect("read").is_empty());
    assert!(store.referenced_digests(&digests).await.expect("referenced").is_empty());
}

async fn debate_votes_and_mission_memory_are_kept_and_searched(database: &TestDatabase) {
    let store = open_store(database).await;
    let workspace = WorkspaceId::new(DEFAULT_WORKSPACE);
    let (debate, other) = (RunId::new(), RunId::new());
    let votes = [("critic".to_owned(), false), ("analyst".to_owned(), true)];
    store.record_debate_votes(debate, &workspace, &votes, Timestamp::now()).await.expect("votes");
    store.record_debate_votes(debate, &workspace, &votes, Timestamp::now()).await.expect("the same debate again");
    store.record_debate_votes(other, &workspace, &[("critic".to_owned(), true)], Timestamp::now()).await.expect("votes");
    let records = store.read_reliability(&workspace, &["analyst".into(), "critic".into(), "nobody".into()]).await.expect("read");
    let records: Vec<(String, u64, u64)> = records.into_iter().map(|r| (r.participant, r.debates, r.agreed)).collect();
    assert_eq!(records, [("analyst".to_owned(), 1, 1), ("critic".to_owned(), 2, 1)], "once per debate");
    assert!(store.read_reliability(&WorkspaceId::new("elsewhere"), &["critic".into()]).await.expect("read").is_empty());

    let memory = |run: RunId, request: &str, summary: &str| Memory {
        run_id: run,
        workspace: workspace.clone(),
        request: request.to_owned(),
        summary: summary.to_owned(),
        outcome: "completed".to_owned(),
        created_at: Timestamp::now(),
    };
    let (queue, billing) = (RunId::new(), RunId::new());
    store.remember(&memory(queue, "Move the job queue to Postgres", "migrated the queue tables")).await.expect("remember");
    store.remember(&memory(billing, "Fix the billing export", "exports now run nightly")).await.expect("remember");
    store.remember(&memory(queue, "Move the job queue to Postgres", "migrated the queue tables, twice")).await.expect("replace");
    let found = store.recall(&workspace, &search_words("what did we do about the queue?", 8), 5).await.expect("recall");
    assert_eq!(found.iter().map(|m| (m.run_id, m.summary.as_str())).collect::<Vec<_>>(), [(queue, "migrated the queue tables, twice")]);
    let found = store.recall(&workspace, &search_words("billing exports", 8), 5).await.expect("recall");
    assert_eq!(found.iter().map(|m| m.run_id).collect::<Vec<_>>(), [billing]);
    assert!(store.recall(&workspace, &search_words("kubernetes", 8), 5).await.expect("recall").is_empty());
    assert!(store.recall(&WorkspaceId::new("elsewhere"), &search_words("queue", 8), 5).await.expect("recall").is_empty());
}

async fn one_process_leads_and_another_takes_over(database: &TestDatabase) {
    let first = open_store(database).await;
    let second = open_store(database).await;
    assert!(first.try_lead().await.expect("lead"), "the first to try leads");
    assert!(first.try_lead().await.expect("lead"), "and keeps leading");
    if first.backend() == "sqlite" {
        // One process owns a SQLite database: it always leads.
        return;
    }
    assert!(!second.try_lead().await.expect("lead"), "only one leads");
    first.resign().await;
    assert!(second.try_lead().await.expect("lead"), "another takes over once the leader resigns");
    assert!(!first.try_lead().await.expect("lead"), "the old leader does not lead again while the new one lives");
    drop(second);
}

// ---------------------------------------------------------------------------------------------
// Skills, recipes and cards
// ---------------------------------------------------------------------------------------------

/// A version of a skill, `version` its declared version.
fn skill_version(version: &str) -> SkillVersion {
    SkillVersion {
        version: version.to_owned(),
        digest: format!("digest-of-{version}"),
        definition: SkillDefinition { name: "Summarize".to_owned(), prompt_template: "Summarize {{input}}".to_owned(), ..SkillDefinition::default() },
        added_at: Timestamp::now(),
    }
}

/// A new local skill with one version; the store is expected to set its key and revision.
fn new_skill(workspace: &str, id: &str) -> Skill {
    let now = Timestamp::now();
    Skill {
        workspace: WorkspaceId::new(workspace),
        id: SkillId::new(id),
        source: SkillSource::Local { path: format!("skills/{id}") },
        trust: TrustLevel::Experimental,
        pinned_version: None,
        versions: vec![skill_version("1.0.0")],
        revision: 0,
        created_at: now,
        updated_at: now,
    }
}

/// Creates a skill (or replaces it) as [`new_skill`] makes it.
async fn put_skill(store: &SharedStore, workspace: &str, id: &str) -> Skill {
    let change = |_: Option<&Skill>| Ok(new_skill(workspace, id));
    store.update_skill(&WorkspaceId::new(workspace), &SkillId::new(id), &change).await.expect("update skill")
}

/// A manual recipe with no steps at `position`.
fn new_recipe(workspace: &str, stage: &str, position: u32) -> Recipe {
    Recipe {
        workspace: WorkspaceId::new(workspace),
        stage: stage.to_owned(),
        position,
        automation: AutomationLevel::Manual,
        steps: Vec::new(),
        gates: Vec::new(),
        on_fail: OnFail::Stay,
        provider: String::new(),
        enabled: true,
        revision: 0,
        updated_at: Timestamp::now(),
    }
}

async fn put_recipe(store: &SharedStore, workspace: &str, stage: &str, position: u32) -> Recipe {
    let change = |_: Option<&Recipe>| Ok(new_recipe(workspace, stage, position));
    store.update_recipe(&WorkspaceId::new(workspace), stage, &change).await.expect("update recipe")
}

/// A new card in `stage`.
fn new_card(workspace: &str, stage: &str) -> Card {
    let now = Timestamp::now();
    Card {
        id: CardId::new(),
        workspace: WorkspaceId::new(workspace),
        title: "Interview findings".to_owned(),
        description: "What five customers said".to_owned(),
        inputs: BTreeMap::from([("transcript".to_owned(), "…".to_owned())]),
        stage: stage.to_owned(),
        previous_stage: None,
        active_run: None,
        documents: BTreeMap::new(),
        questions: Vec::new(),
        review_required: false,
        labels: BTreeMap::new(),
        last_run: None,
        revision: 0,
        created_at: now,
        updated_at: now,
    }
}

/// An audit entry of `kind` saying `message`.
fn card_event(kind: CardEventKind, message: &str) -> NewCardEvent {
    NewCardEvent { kind, from_stage: None, to_stage: None, run: None, actor: "user:ada".to_owned(), message: message.to_owned(), at: Timestamp::now() }
}

/// Creates a card with its `Created` entry.
async fn create_card(store: &SharedStore, workspace: &str, stage: &str) -> Card {
    let (card, events) = store.create_card(&new_card(workspace, stage), &[card_event(CardEventKind::Created, "created")]).await.expect("create card");
    assert_eq!(events.len(), 1);
    card
}

async fn card_events(store: &SharedStore, id: CardId) -> Vec<CardEvent> {
    store.read_card_events(id, 0, 10_000).await.expect("read card events")
}

fn card_sequences(events: &[CardEvent]) -> Vec<u64> {
    events.iter().map(|event| event.sequence).collect()
}

fn card_ids(cards: &[Card]) -> Vec<CardId> {
    cards.iter().map(|card| card.id).collect()
}

fn card_query(workspace: &str) -> CardQuery {
    CardQuery { workspace: WorkspaceId::new(workspace), stage: None, after: None, limit: 100 }
}

async fn skills_count_revisions_and_list_by_id_per_workspace(database: &TestDatabase) {
    let store = open_store(database).await;
    let (workspace, id) = (WorkspaceId::new(DEFAULT_WORKSPACE), SkillId::new("summarize"));
    assert_eq!(store.get_skill(&workspace, &id).await.expect("get skill"), None);

    let seen = Mutex::new(Vec::new());
    let create = |stored: Option<&Skill>| {
        seen.lock().expect("lock").push(stored.map(|skill| skill.revision));
        // The store files it under the key it was given, whatever the change says.
        Ok(Skill { workspace: WorkspaceId::new("elsewhere"), id: SkillId::new("other"), revision: 42, ..new_skill(DEFAULT_WORKSPACE, "summarize") })
    };
    let created = store.update_skill(&workspace, &id, &create).await.expect("create skill");
    assert_eq!((created.workspace.as_str(), created.id.as_str(), created.revision), (DEFAULT_WORKSPACE, "summarize", 1));
    assert_eq!(store.get_skill(&workspace, &id).await.expect("get skill"), Some(created.clone()), "the skill reads back whole");
    assert_eq!(store.get_skill(&WorkspaceId::new("elsewhere"), &SkillId::new("other")).await.expect("get skill"), None);

    let add_version = |stored: Option<&Skill>| {
        seen.lock().expect("lock").push(stored.map(|skill| skill.revision));
        let mut skill = stored.cloned().expect("the skill exists");
        skill.versions.push(skill_version("1.1.0"));
        skill.trust = TrustLevel::Vetted;
        Ok(skill)
    };
    let changed = store.update_skill(&workspace, &id, &add_version).await.expect("change skill");
    assert_eq!(changed.revision, 2);
    assert_eq!(*seen.lock().expect("lock"), [None, Some(1)], "each change sees the skill as stored");
    let stored = store.get_skill(&workspace, &id).await.expect("get skill").expect("the skill exists");
    assert_eq!(stored, changed);
    assert_eq!(stored.versions.iter().map(|version| version.version.as_str()).collect::<Vec<_>>(), ["1.0.0", "1.1.0"]);
    assert_eq!(stored.trust, TrustLevel::Vetted);

    // A change that fails writes nothing, and its error comes back as it was.
    let refuse = |_: Option<&Skill>| -> Result<Skill> { Err(Error::precondition("SKILL_REFUSED", "no")) };
    let err = store.update_skill(&workspace, &id, &refuse).await.expect_err("the change fails");
    assert!(matches!(err, Error::FailedPrecondition { reason: "SKILL_REFUSED", .. }), "{err:?}");
    assert_eq!(store.get_skill(&workspace, &id).await.expect("get skill"), Some(changed));
    let err = store.update_skill(&workspace, &SkillId::new("never"), &refuse).await.expect_err("the change fails");
    assert!(matches!(err, Error::FailedPrecondition { reason: "SKILL_REFUSED", .. }), "{err:?}");
    assert_eq!(store.get_skill(&workspace, &SkillId::new("never")).await.expect("get skill"), None, "a refused creation creates nothing");

    put_skill(&store, DEFAULT_WORKSPACE, "translate").await;
    put_skill(&store, DEFAULT_WORKSPACE, "analyze-transcript").await;
    put_skill(&store, "elsewhere", "jury").await;
    let listed = store.list_skills(&workspace).await.expect("list skills");
    assert_eq!(listed.iter().map(|skill| skill.id.as_str()).collect::<Vec<_>>(), ["analyze-transcript", "summarize", "translate"]);
    assert_eq!(listed[1].revision, 2);
    let elsewhere = store.list_skills(&WorkspaceId::new("elsewhere")).await.expect("list skills");
    assert_eq!(elsewhere.iter().map(|skill| skill.id.as_str()).collect::<Vec<_>>(), ["jury"]);
    assert!(store.list_skills(&WorkspaceId::new("empty")).await.expect("list skills").is_empty());
}

async fn concurrent_skill_changes_all_apply(database: &TestDatabase) {
    const WRITERS: usize = 8;
    let store = open_store(database).await;
    let mut tasks = tokio::task::JoinSet::new();
    for (index, handle) in store_handles(database, &store, WRITERS).await.into_iter().enumerate() {
        tasks.spawn(async move {
            // Every writer may find the skill missing: one creates it, the others change it.
            let change = move |stored: Option<&Skill>| {
                let mut skill = stored.cloned().unwrap_or_else(|| Skill { versions: Vec::new(), ..new_skill(DEFAULT_WORKSPACE, "shared") });
                skill.versions.push(skill_version(&format!("{index}.0.0")));
                Ok(skill)
            };
            handle.update_skill(&WorkspaceId::new(DEFAULT_WORKSPACE), &SkillId::new("shared"), &change).await.expect("update skill").revision
        });
    }
    let mut revisions = tasks.join_all().await;
    revisions.sort_unstable();
    assert_eq!(revisions, (1..=WRITERS as u64).collect::<Vec<_>>(), "each change gets its own revision");
    let skill = store.get_skill(&WorkspaceId::new(DEFAULT_WORKSPACE), &SkillId::new("shared")).await.expect("get").expect("exists");
    assert_eq!(skill.revision, WRITERS as u64);
    assert_eq!(skill.versions.len(), WRITERS, "no change is lost");
}

async fn recipes_count_revisions_and_list_by_position_then_stage(database: &TestDatabase) {
    let store = open_store(database).await;
    let workspace = WorkspaceId::new(DEFAULT_WORKSPACE);
    assert_eq!(store.get_recipe(&workspace, "build").await.expect("get recipe"), None);
    for (stage, position) in [("review", 2), ("build", 1), ("alpha", 2), ("discovery", 0)] {
        let recipe = put_recipe(&store, DEFAULT_WORKSPACE, stage, position).await;
        assert_eq!((recipe.stage.as_str(), recipe.revision), (stage, 1));
    }
    put_recipe(&store, "elsewhere", "build", 0).await;
    let listed = store.list_recipes(&workspace).await.expect("list recipes");
    assert_eq!(listed.iter().map(|recipe| recipe.stage.as_str()).collect::<Vec<_>>(), ["discovery", "build", "alpha", "review"]);

    let automate = |stored: Option<&Recipe>| {
        let mut recipe = stored.cloned().expect("the recipe exists");
        recipe.automation = AutomationLevel::FullyAuto;
        recipe.position = 5;
        // The store files it under the key it was given.
        recipe.stage = "renamed".to_owned();
        Ok(recipe)
    };
    let changed = store.update_recipe(&workspace, "build", &automate).await.expect("change recipe");
    assert_eq!((changed.stage.as_str(), changed.revision, changed.automation), ("build", 2, AutomationLevel::FullyAuto));
    assert_eq!(store.get_recipe(&workspace, "build").await.expect("get recipe"), Some(changed.clone()));
    assert_eq!(store.get_recipe(&workspace, "renamed").await.expect("get recipe"), None);
    let listed = store.list_recipes(&workspace).await.expect("list recipes");
    assert_eq!(listed.iter().map(|recipe| recipe.stage.as_str()).collect::<Vec<_>>(), ["discovery", "alpha", "review", "build"], "a new position reorders");

    let refuse = |_: Option<&Recipe>| -> Result<Recipe> { Err(Error::invalid("gates", "bad gate")) };
    let err = store.update_recipe(&workspace, "build", &refuse).await.expect_err("the change fails");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert_eq!(store.get_recipe(&workspace, "build").await.expect("get recipe"), Some(changed));
    assert!(store.update_recipe(&workspace, "nowhere", &refuse).await.is_err());
    assert_eq!(store.get_recipe(&workspace, "nowhere").await.expect("get recipe"), None);
    let elsewhere = store.list_recipes(&WorkspaceId::new("elsewhere")).await.expect("list recipes");
    assert_eq!(elsewhere.iter().map(|recipe| (recipe.stage.as_str(), recipe.revision)).collect::<Vec<_>>(), [("build", 1)]);
}

async fn cards_change_with_an_audit_trail_numbered_without_gaps(database: &TestDatabase) {
    let store = open_store(database).await;
    let new = new_card(DEFAULT_WORKSPACE, "discovery");
    let (created, events) = store
        .create_card(&new, &[card_event(CardEventKind::Created, "created"), card_event(CardEventKind::Moved, "moved in")])
        .await
        .expect("create card");
    assert_eq!(created, Card { revision: 1, ..new.clone() });
    assert_eq!(card_sequences(&events), [1, 2]);
    assert!(events.iter().all(|event| event.card == new.id));
    assert_eq!(store.get_card(new.id).await.expect("get card"), Some(created.clone()), "the card reads back whole");
    let err = store.create_card(&new, &[]).await.expect_err("a second card with the same id");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert_eq!(card_sequences(&card_events(&store, new.id).await), [1, 2], "a refused create adds no entries");

    let run = RunId::new();
    let start = move |stored: &Card| {
        let mut card = stored.clone();
        card.active_run = Some(run);
        card.stage = "build".to_owned();
        card.previous_stage = Some(stored.stage.clone());
        // The store keeps the card's identity, whatever the change says.
        card.id = CardId::new();
        card.workspace = WorkspaceId::new("elsewhere");
        Ok(CardChange {
            card,
            events: vec![
                NewCardEvent { to_stage: Some("build".to_owned()), ..card_event(CardEventKind::Moved, "moved to build") },
                NewCardEvent { run: Some(run), ..card_event(CardEventKind::RunCreated, "run created") },
            ],
        })
    };
    let (changed, events) = store.update_card(new.id, &start).await.expect("update card");
    assert_eq!((changed.id, changed.workspace.as_str(), changed.revision), (new.id, DEFAULT_WORKSPACE, 2));
    assert_eq!((changed.stage.as_str(), changed.active_run, changed.previous_stage.as_deref()), ("build", Some(run), Some("discovery")));
    assert_eq!(card_sequences(&events), [3, 4]);
    assert_eq!(events[1].event.run, Some(run));
    assert_eq!(store.get_card(new.id).await.expect("get card"), Some(changed.clone()));

    let touch = |stored: &Card| Ok(CardChange { card: Card { questions: vec!["why?".to_owned()], ..stored.clone() }, events: Vec::new() });
    let (touched, events) = store.update_card(new.id, &touch).await.expect("update card");
    assert_eq!((touched.revision, events.len()), (3, 0), "a change without entries still counts");
    let end = |stored: &Card| {
        Ok(CardChange { card: Card { active_run: None, ..stored.clone() }, events: vec![card_event(CardEventKind::RunEnded, "run ended")] })
    };
    let (ended, events) = store.update_card(new.id, &end).await.expect("update card");
    assert_eq!((ended.revision, ended.active_run, card_sequences(&events)), (4, None, vec![5]));

    // A change that fails writes nothing, and its error comes back as it was.
    let refuse = |stored: &Card| -> Result<CardChange> {
        Err(Error::Aborted { reason: "CARD_CHANGED", message: format!("card {} changed", stored.id) })
    };
    let err = store.update_card(new.id, &refuse).await.expect_err("the change fails");
    assert!(matches!(err, Error::Aborted { reason: "CARD_CHANGED", .. }), "{err:?}");
    assert_eq!(store.get_card(new.id).await.expect("get card"), Some(ended.clone()));

    let trail = card_events(&store, new.id).await;
    assert_eq!(card_sequences(&trail), [1, 2, 3, 4, 5]);
    assert_eq!(
        trail.iter().map(|event| event.event.kind).collect::<Vec<_>>(),
        [CardEventKind::Created, CardEventKind::Moved, CardEventKind::Moved, CardEventKind::RunCreated, CardEventKind::RunEnded]
    );
    assert_eq!(trail[2].event.to_stage.as_deref(), Some("build"));
    assert_eq!(trail[4].event.message, "run ended");
    assert_eq!(card_sequences(&store.read_card_events(new.id, 2, 2).await.expect("read")), [3, 4], "after and limit page the trail");
    assert!(store.read_card_events(new.id, 5, 10).await.expect("read").is_empty());

    let unknown = CardId::new();
    let err = store.update_card(unknown, &touch).await.expect_err("an unknown card");
    assert!(matches!(err, Error::NotFound { resource: "card", .. }), "{err:?}");
    assert_eq!(store.get_card(unknown).await.expect("get card"), None);
    assert!(card_events(&store, unknown).await.is_empty());
}

async fn cards_list_by_stage_and_page_by_id(database: &TestDatabase) {
    let store = open_store(database).await;
    let mut cards = Vec::new();
    for stage in ["discovery", "build", "discovery", "build", "discovery"] {
        cards.push(create_card(&store, DEFAULT_WORKSPACE, stage).await.id);
    }
    let elsewhere = create_card(&store, "elsewhere", "discovery").await;
    cards.sort_unstable();

    let all = store.list_cards(&card_query(DEFAULT_WORKSPACE)).await.expect("list cards");
    assert_eq!(card_ids(&all), cards, "every card of the workspace, by id");
    let discovery = CardQuery { stage: Some("discovery".to_owned()), ..card_query(DEFAULT_WORKSPACE) };
    let listed = store.list_cards(&discovery).await.expect("list cards");
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|card| card.stage == "discovery"));
    assert_eq!(card_ids(&listed), {
        let mut ids: Vec<CardId> = all.iter().filter(|card| card.stage == "discovery").map(|card| card.id).collect();
        ids.sort_unstable();
        ids
    });

    let first = store.list_cards(&CardQuery { limit: 2, ..card_query(DEFAULT_WORKSPACE) }).await.expect("list cards");
    assert_eq!(card_ids(&first), cards[..2]);
    let rest = store.list_cards(&CardQuery { after: Some(cards[1]), ..card_query(DEFAULT_WORKSPACE) }).await.expect("list cards");
    assert_eq!(card_ids(&rest), cards[2..], "`after` continues where a page ended");
    let paged = CardQuery { after: Some(listed[0].id), limit: 1, ..discovery.clone() };
    assert_eq!(card_ids(&store.list_cards(&paged).await.expect("list cards")), [listed[1].id]);
    assert!(store.list_cards(&CardQuery { stage: Some("nowhere".to_owned()), ..card_query(DEFAULT_WORKSPACE) }).await.expect("list").is_empty());
    assert_eq!(card_ids(&store.list_cards(&card_query("elsewhere")).await.expect("list cards")), [elsewhere.id]);
}

async fn cards_with_ended_runs_span_workspaces(database: &TestDatabase) {
    let store = open_store(database).await;
    let with_run = |run: RunId| move |stored: &Card| Ok(CardChange { card: Card { active_run: Some(run), ..stored.clone() }, events: Vec::new() });
    // A card whose run goes on, one whose run ended, one whose run no longer exists (in
    // another workspace), and one without a run.
    let going = create_kind(&store, "noop").await;
    let ended = create_kind(&store, "noop").await;
    store.update_run(ended.id, &|current| lifecycle::cancel(current, "not needed", false, Timestamp::now())).await.expect("cancel");
    let mut cards = Vec::new();
    for (workspace, run) in [(DEFAULT_WORKSPACE, going.id), (DEFAULT_WORKSPACE, ended.id), ("elsewhere", RunId::new())] {
        let card = create_card(&store, workspace, "build").await;
        store.update_card(card.id, &with_run(run)).await.expect("start a run");
        cards.push(card.id);
    }
    create_card(&store, DEFAULT_WORKSPACE, "build").await;

    let found = store.cards_with_ended_runs(None, 100).await.expect("cards with ended runs");
    assert_eq!(card_ids(&found), cards[1..], "the ended run's and the missing run's, by id, across workspaces");
    assert_eq!(card_ids(&store.cards_with_ended_runs(None, 1).await.expect("page")), cards[1..2]);
    assert_eq!(card_ids(&store.cards_with_ended_runs(Some(cards[1]), 1).await.expect("page")), cards[2..]);

    let settle = |stored: &Card| Ok(CardChange { card: Card { active_run: None, ..stored.clone() }, events: Vec::new() });
    store.update_card(cards[1], &settle).await.expect("settle");
    assert_eq!(card_ids(&store.cards_with_ended_runs(None, 100).await.expect("cards with ended runs")), cards[2..]);
}

async fn concurrent_card_changes_all_apply_without_gaps(database: &TestDatabase) {
    const WRITERS: usize = 8;
    let store = open_store(database).await;
    let card = create_card(&store, DEFAULT_WORKSPACE, "build").await;
    let mut tasks = tokio::task::JoinSet::new();
    for (index, handle) in store_handles(database, &store, WRITERS).await.into_iter().enumerate() {
        tasks.spawn(async move {
            let change = move |stored: &Card| {
                let mut card = stored.clone();
                card.labels.insert(format!("writer-{index}"), "yes".to_owned());
                Ok(CardChange { card, events: vec![card_event(CardEventKind::Notified, &format!("writer {index}"))] })
            };
            let (card, events) = handle.update_card(card.id, &change).await.expect("update card");
            (card.revision, card_sequences(&events))
        });
    }
    let results = tasks.join_all().await;
    let mut revisions: Vec<u64> = results.iter().map(|(revision, _)| *revision).collect();
    revisions.sort_unstable();
    assert_eq!(revisions, (2..=WRITERS as u64 + 1).collect::<Vec<_>>(), "each change gets its own revision");
    let mut sequences: Vec<u64> = results.iter().flat_map(|(_, sequences)| sequences.clone()).collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (2..=WRITERS as u64 + 1).collect::<Vec<_>>(), "each change gets its own entry");

    let stored = store.get_card(card.id).await.expect("get card").expect("the card exists");
    assert_eq!(stored.revision, WRITERS as u64 + 1);
    assert_eq!(stored.labels.len(), WRITERS, "no change is lost");
    let trail = card_events(&store, card.id).await;
    assert_eq!(card_sequences(&trail), (1..=WRITERS as u64 + 1).collect::<Vec<_>>());
}

on_both_stores!(
    create_run_round_trips_every_field,
    a_repeated_request_id_returns_the_existing_run,
    concurrent_creates_with_one_request_id_make_one_run,
    list_runs_filters_and_pages_newest_first,
    update_run_numbers_events_and_rewrites_every_mutable_column,
    a_refused_update_writes_nothing,
    steps_are_journaled_and_reset_journal_empties_it_first,
    claims_take_priority_then_oldest_within_kinds_and_limit,
    every_claim_raises_the_lease_epoch,
    runs_scheduled_later_wait_for_their_time,
    concurrency_keys_cap_running_runs,
    a_full_concurrency_key_does_not_hold_back_other_runs,
    concurrent_claimers_never_claim_a_run_twice,
    a_concurrency_limit_holds_under_concurrent_claims,
    extend_lease_holds_only_while_the_lease_is_current,
    append_logs_numbers_lines_without_gaps,
    large_log_batches_keep_their_order,
    append_logs_refuses_stale_leases,
    resent_log_batches_are_stored_once,
    workers_register_heartbeat_drain_and_go_stale,
    retention_prunes_histories_then_deletes_old_runs,
    one_process_leads_and_another_takes_over,
    expired_leases_lists_lapsed_leases_in_expiry_order,
    overdue_runs_lists_unfinished_runs_past_their_deadline,
    queue_counts_summarise_one_workspace,
    artifacts_are_versioned_conditioned_fenced_and_traced,
    debate_votes_and_mission_memory_are_kept_and_searched,
    skills_count_revisions_and_list_by_id_per_workspace,
    concurrent_skill_changes_all_apply,
    recipes_count_revisions_and_list_by_position_then_stage,
    cards_change_with_an_audit_trail_numbered_without_gaps,
    cards_list_by_stage_and_page_by_id,
    cards_with_ended_runs_span_workspaces,
    concurrent_card_changes_all_apply_without_gaps,
);

/// A claim reads the queue index in order and stops at its window, however many runs are
/// queued and however stale the planner's statistics: on a fresh table with a backlog (no
/// `ANALYZE` yet) Postgres would otherwise read and sort the whole backlog at every claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_walk_the_queue_index_in_order() {
    let Some(database) = support::Backend::Postgres.database().await else {
        eprintln!("skipped: set CONCLAVE_TEST_DATABASE_URL to run the Postgres tests");
        return;
    };
    let store = conclave::store::PostgresStore::open(&database.url, 4).await.expect("open store");
    let backlog: Vec<NewRun> = (0..5_000).map(|_| new_run("noop")).collect();
    store.create_runs(backlog).await.expect("create the backlog");
    let claim = ClaimRequest {
        worker_id: WorkerId::new(WORKER),
        kinds: vec!["noop".to_owned(), "sleep".to_owned()],
        limit: 64,
        lease_ttl: LEASE_TTL,
        now: Timestamp::now(),
    };
    let plan = store.explain_claim(&claim).await.expect("explain the claim");
    assert!(plan.contains("Index Scan using runs_queue"), "the claim does not walk the queue index:\n{plan}");
    assert!(!plan.contains("Sort"), "the claim sorts the backlog:\n{plan}");
}
