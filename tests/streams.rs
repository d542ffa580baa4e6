//! `WatchRun` and `TailLogs` as users rely on them, through a real server and the generated
//! client, on both stores: resuming mid-run without gap or duplicate, fan-out to many
//! followers, the end of a stream, heartbeats, errors, slow subscribers and graceful shutdown.

mod support;

use std::{
    fmt::Debug,
    time::{Duration, Instant, SystemTime},
};

use conclave::{
    engine::EngineConfig,
    proto::{self, run_event::Event, run_service_client::RunServiceClient, RunState},
};
use serde_json::json;
use support::*;
use tonic::{transport::Channel, Code, Status, Streaming};

/// The bound on anything a test waits for.
const LIMIT: Duration = Duration::from_secs(60);

/// The harness's fast settings (heartbeats every 0.5 s), with a lease long enough that a loaded
/// machine never lets one lapse: these tests produce a lot, and a rescued attempt would log
/// everything again (seen with the 1.5 s lease of `fast_config` at a load average of 13).
fn config() -> EngineConfig {
    EngineConfig { lease_ttl: Duration::from_secs(10), heartbeat_interval: Duration::from_secs(1), ..fast_config() }
}

// ---------------------------------------------------------------------------------------------
// Reading streams
// ---------------------------------------------------------------------------------------------

/// An item with a per-run sequence number.
trait Sequenced {
    fn seq(&self) -> u64;
}

impl Sequenced for proto::RunEvent {
    fn seq(&self) -> u64 {
        self.sequence
    }
}

impl Sequenced for proto::LogLine {
    fn seq(&self) -> u64 {
        self.sequence
    }
}

/// One message of a `WatchRun` or `TailLogs` stream.
trait Frame: Send + 'static {
    type Item: Sequenced + Clone + Debug + PartialEq + Send + 'static;
    fn parts(self) -> (Vec<Self::Item>, Option<proto::Heartbeat>, Option<proto::Lagged>);
    /// Opens the stream after `after` (a tail follows).
    async fn open(client: &mut RunServiceClient<Channel>, id: &str, after: u64) -> Result<Streaming<Self>, Status>
    where
        Self: Sized;
}

impl Frame for proto::WatchRunResponse {
    type Item = proto::RunEvent;

    fn parts(self) -> (Vec<proto::RunEvent>, Option<proto::Heartbeat>, Option<proto::Lagged>) {
        (self.events, self.heartbeat, self.lagged)
    }

    async fn open(client: &mut RunServiceClient<Channel>, id: &str, after: u64) -> Result<Streaming<Self>, Status> {
        Ok(client.watch_run(watch_request(id, after)).await?.into_inner())
    }
}

impl Frame for proto::TailLogsResponse {
    type Item = proto::LogLine;

    fn parts(self) -> (Vec<proto::LogLine>, Option<proto::Heartbeat>, Option<proto::Lagged>) {
        (self.lines, self.heartbeat, self.lagged)
    }

    async fn open(client: &mut RunServiceClient<Channel>, id: &str, after: u64) -> Result<Streaming<Self>, Status> {
        Ok(client.tail_logs(tail_request(id, after, true)).await?.into_inner())
    }
}

fn watch_request(id: &str, after: u64) -> proto::WatchRunRequest {
    proto::WatchRunRequest { id: id.to_owned(), after_sequence: after }
}

fn tail_request(id: &str, after: u64, follow: bool) -> proto::TailLogsRequest {
    proto::TailLogsRequest { id: id.to_owned(), after_sequence: after, follow }
}

/// Everything one stream delivered, checked frame by frame.
struct Reader<F: Frame> {
    stream: Streaming<F>,
    items: Vec<F::Item>,
    heartbeats: Vec<(Instant, proto::Heartbeat)>,
    /// Each lag notice, with the number of items received before it.
    lagged: Vec<(usize, proto::Lagged)>,
}

impl<F: Frame> Reader<F> {
    fn new(stream: Streaming<F>) -> Self {
        Self { stream, items: Vec::new(), heartbeats: Vec::new(), lagged: Vec::new() }
    }

    async fn open(client: &mut RunServiceClient<Channel>, id: &str, after: u64) -> Result<Self, Status> {
        Ok(Self::new(F::open(client, id, after).await?))
    }

    /// Reads one message; `Some(end)` once the stream has ended (`Ok` for status OK).
    async fn step(&mut self) -> Option<Result<(), Status>> {
        match self.stream.message().await {
            Ok(Some(frame)) => {
                let (items, heartbeat, lagged) = frame.parts();
                let kinds = usize::from(!items.is_empty()) + usize::from(heartbeat.is_some()) + usize::from(lagged.is_some());
                assert_eq!(kinds, 1, "a message carries items, a heartbeat or a lag notice: exactly one of them");
                if let Some(heartbeat) = heartbeat {
                    self.heartbeats.push((Instant::now(), heartbeat));
                }
                if let Some(lagged) = lagged {
                    self.lagged.push((self.items.len(), lagged));
                }
                self.items.extend(items);
                None
            }
            Ok(None) => Some(Ok(())),
            Err(status) => Some(Err(status)),
        }
    }

    /// Reads until `done` holds (`None`) or the stream ends (`Some(end)`); panics after `limit`.
    async fn read_until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> Option<Result<(), Status>> {
        let read = async {
            loop {
                if done(&*self) {
                    return None;
                }
                if let Some(end) = self.step().await {
                    return Some(end);
                }
            }
        };
        tokio::time::timeout(limit, read).await.unwrap_or_else(|_| panic!("the stream stalled for {limit:?}"))
    }

    /// Reads to the end of the stream; panics after `limit`.
    async fn read_to_end(&mut self, limit: Duration) -> Result<(), Status> {
        self.read_until(limit, |_| false).await.expect("only the end stops the read")
    }

    fn sequences(&self) -> Vec<u64> {
        self.items.iter().map(Sequenced::seq).collect()
    }

    fn last(&self) -> u64 {
        self.items.last().map_or(0, Sequenced::seq)
    }
}

/// Asserts that `seqs` is exactly `first..=last`: in order, no gap, no duplicate.
fn assert_exactly(seqs: &[u64], first: u64, last: u64, what: &str) {
    let mut expected = first;
    for (index, &seq) in seqs.iter().enumerate() {
        assert_eq!(seq, expected, "{what}: item {index} has sequence {seq}, expected {expected} (a gap, duplicate or reorder)");
        expected += 1;
    }
    assert_eq!(expected, last + 1, "{what}: got sequences {first}..={}, expected {first}..={last}", expected - 1);
}

fn assert_ended_ok(end: Result<(), Status>, what: &str) {
    if let Err(status) = end {
        panic!("{what}: the stream ended with {:?} ({}) instead of OK", status.code(), status.message());
    }
}

fn assert_status(end: Result<(), Status>, code: Code, reason_wanted: &str, what: &str) -> Status {
    let status = end.err().unwrap_or_else(|| panic!("{what}: the stream ended OK, expected {code:?}"));
    assert_eq!(status.code(), code, "{what}: {}", status.message());
    assert_eq!(reason(&status), reason_wanted, "{what}: {}", status.message());
    status
}

async fn get_run(client: &mut RunServiceClient<Channel>, id: &str) -> proto::Run {
    client.get_run(proto::GetRunRequest { id: id.to_owned() }).await.expect("get run").into_inner()
}

fn state_of(run: &proto::Run) -> RunState {
    RunState::try_from(run.state).expect("a known state")
}

/// The state a run entered with this event, if it is a state change.
fn entered(event: &proto::RunEvent) -> Option<RunState> {
    match &event.event {
        Some(Event::StateChanged(change)) => RunState::try_from(change.to).ok(),
        _ => None,
    }
}

fn system_time(timestamp: &prost_types::Timestamp) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(timestamp.seconds as u64, timestamp.nanos as u32)
}

/// The echo lines the log tests write; line `n` (from 1) is `ECHO[(n - 1) % 3]`.
const ECHO: [&str; 3] = ["alpha", "beta", "gamma"];

fn assert_echo_lines(lines: &[proto::LogLine], what: &str) {
    for line in lines {
        let expected = ECHO[((line.sequence - 1) % 3) as usize];
        assert_eq!(line.text, expected, "{what}: line {} has the wrong text", line.sequence);
        assert_eq!(line.stream, proto::LogStream::Stdout as i32, "{what}: line {} has the wrong stream", line.sequence);
    }
}

/// A `sleep` run holding concurrency key `gate`, so runs created behind it on the same key stay
/// queued until it is cancelled; returns its id once it is running.
async fn hold_gate(client: &mut RunServiceClient<Channel>) -> String {
    let mut blocker = create("sleep", json!({"seconds": 300}));
    blocker.concurrency_key = "gate".into();
    blocker.concurrency_limit = 1;
    let blocker = client.create_run(blocker).await.unwrap().into_inner();
    wait_for_state(client, &blocker.id, &[RunState::Running], Duration::from_secs(20)).await;
    blocker.id
}

fn behind_gate(mut request: proto::CreateRunRequest) -> proto::CreateRunRequest {
    request.concurrency_key = "gate".into();
    request.concurrency_limit = 1;
    request
}

async fn open_gate(client: &mut RunServiceClient<Channel>, blocker: &str) {
    client
        .cancel_run(proto::CancelRunRequest { id: blocker.to_owned(), reason: "open the gate".into(), force: true })
        .await
        .expect("cancel the blocker");
}

// ---------------------------------------------------------------------------------------------
// 1. Resuming mid-run
// ---------------------------------------------------------------------------------------------

/// Follows a run in sessions of about `per_session` items: each session disconnects (dropping
/// its connection) and the next resumes with `after_sequence` = the last item received, until
/// a session ends with OK. Returns every item received and how many resumes happened while the
/// run was still running.
async fn follow_in_sessions<F: Frame>(server: &TestServer, id: &str, per_session: usize) -> (Vec<F::Item>, usize, usize) {
    let mut control = server.client().await;
    let mut received: Vec<F::Item> = Vec::new();
    let mut resumed_while_running = 0;
    let mut sessions = 0;
    let followed = async {
        loop {
            let after = received.last().map_or(0, Sequenced::seq);
            let mut client = connect(server.addr).await;
            if after > 0 && state_of(&get_run(&mut control, id).await) == RunState::Running {
                resumed_while_running += 1;
            }
            let mut reader = Reader::<F>::open(&mut client, id, after).await.expect("open the stream");
            sessions += 1;
            let end = reader.read_until(LIMIT, |reader| reader.items.len() >= per_session).await;
            let what = format!("session {sessions} (after {after})");
            assert_exactly(&reader.sequences(), after + 1, after + reader.items.len() as u64, &what);
            received.append(&mut reader.items);
            if let Some(end) = end {
                assert_ended_ok(end, &what);
                return;
            }
            // Disconnect, let the run produce some more, then resume.
            drop(reader);
            drop(client);
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    };
    tokio::time::timeout(LIMIT, followed).await.expect("the sessions did not reach the end of the run");
    (received, resumed_while_running, sessions)
}

async fn watch_resumed_mid_run_misses_nothing(database: &TestDatabase) {
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config()).await;
    let mut client = server.client().await;
    let steps = 300;
    let run = client.create_run(create("steps", json!({"count": steps, "step_ms": 3}))).await.unwrap().into_inner();

    let started = Instant::now();
    let (events, resumed_while_running, sessions) = follow_in_sessions::<proto::WatchRunResponse>(&server, &run.id, 40).await;
    let done = get_run(&mut client, &run.id).await;
    eprintln!("watch: {} events in {sessions} sessions ({resumed_while_running} resumed while running) in {:?}", events.len(), started.elapsed());

    assert_eq!(state_of(&done), RunState::Succeeded);
    let seqs: Vec<u64> = events.iter().map(|event| event.sequence).collect();
    assert_exactly(&seqs, 1, done.last_event_sequence, "the union of the sessions");
    assert!(resumed_while_running >= 2, "only {resumed_while_running} resumes happened while the run was producing");
    let completed = events.iter().filter(|event| matches!(event.event, Some(Event::StepCompleted(_)))).count();
    assert_eq!(completed, steps);
    assert_eq!(events.last().and_then(entered), Some(RunState::Succeeded), "the last event is the run's end");
    assert!(events.iter().all(|event| event.run_id == run.id));
    server.shutdown().await;
}

async fn tail_resumed_mid_run_misses_nothing(database: &TestDatabase) {
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config()).await;
    let mut client = server.client().await;
    let repeat = 1000;
    let run = client
        .create_run(create("echo", json!({"lines": ECHO, "repeat": repeat, "interval_ms": 1})))
        .await
        .unwrap()
        .into_inner();

    let started = Instant::now();
    let (lines, resumed_while_running, sessions) = follow_in_sessions::<proto::TailLogsResponse>(&server, &run.id, 300).await;
    let done = get_run(&mut client, &run.id).await;
    eprintln!("tail: {} lines in {sessions} sessions ({resumed_while_running} resumed while running) in {:?}", lines.len(), started.elapsed());

    assert_eq!(state_of(&done), RunState::Succeeded);
    assert_eq!(done.last_log_sequence, 3 * repeat);
    let seqs: Vec<u64> = lines.iter().map(|line| line.sequence).collect();
    assert_exactly(&seqs, 1, done.last_log_sequence, "the union of the sessions");
    assert_echo_lines(&lines, "resumed tail");
    assert!(resumed_while_running >= 2, "only {resumed_while_running} resumes happened while the run was producing");
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Many followers
// ---------------------------------------------------------------------------------------------

type WatchReader = Reader<proto::WatchRunResponse>;
type TailReader = Reader<proto::TailLogsResponse>;

/// Spawns `count` watchers of `id` from sequence 0, spread over `clients`; each reports on
/// `subscribed` once the server has subscribed it, then reads to the end.
fn spawn_watchers(
    clients: &[RunServiceClient<Channel>],
    id: &str,
    count: usize,
    subscribed: &tokio::sync::mpsc::Sender<()>,
) -> Vec<tokio::task::JoinHandle<(WatchReader, Result<(), Status>)>> {
    (0..count)
        .map(|index| {
            let mut client = clients[index % clients.len()].clone();
            let id = id.to_owned();
            let subscribed = subscribed.clone();
            tokio::spawn(async move {
                let stream = client.watch_run(watch_request(&id, 0)).await.expect("watch").into_inner();
                let _ = subscribed.send(()).await;
                let mut reader = Reader::new(stream);
                let end = reader.read_to_end(LIMIT * 2).await;
                (reader, end)
            })
        })
        .collect()
}

fn spawn_tails(
    clients: &[RunServiceClient<Channel>],
    id: &str,
    count: usize,
    subscribed: &tokio::sync::mpsc::Sender<()>,
) -> Vec<tokio::task::JoinHandle<(TailReader, Result<(), Status>)>> {
    (0..count)
        .map(|index| {
            let mut client = clients[index % clients.len()].clone();
            let id = id.to_owned();
            let subscribed = subscribed.clone();
            tokio::spawn(async move {
                let stream = client.tail_logs(tail_request(&id, 0, true)).await.expect("tail").into_inner();
                let _ = subscribed.send(()).await;
                let mut reader = Reader::new(stream);
                let end = reader.read_to_end(LIMIT * 2).await;
                (reader, end)
            })
        })
        .collect()
}

async fn await_signals(signals: &mut tokio::sync::mpsc::Receiver<()>, count: usize, what: &str) {
    let wait = async {
        for _ in 0..count {
            signals.recv().await.expect("subscription signal");
        }
    };
    tokio::time::timeout(LIMIT, wait).await.unwrap_or_else(|_| panic!("{what}: not every follower subscribed in time"));
}

async fn clients(server: &TestServer, count: usize) -> Vec<RunServiceClient<Channel>> {
    let mut clients = Vec::new();
    for _ in 0..count {
        clients.push(connect(server.addr).await);
    }
    clients
}

async fn a_thousand_watchers_each_see_every_event_once(database: &TestDatabase) {
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config()).await;
    let mut client = server.client().await;
    let channels = clients(&server, 10).await;
    let blocker = hold_gate(&mut client).await;
    let run = client.create_run(behind_gate(create("steps", json!({"count": 60, "step_ms": 40})))).await.unwrap().into_inner();
    let started = Instant::now();

    // Half subscribe while the run is still queued...
    let (subscribed, mut signals) = tokio::sync::mpsc::channel(2000);
    let mut watchers = spawn_watchers(&channels, &run.id, 500, &subscribed);
    await_signals(&mut signals, 500, "before the run").await;
    assert_eq!(state_of(&get_run(&mut client, &run.id).await), RunState::Queued, "the first watchers subscribed before the run started");
    let before = started.elapsed();

    // ...and half while it runs.
    open_gate(&mut client, &blocker).await;
    wait_for_state(&mut client, &run.id, &[RunState::Running], Duration::from_secs(20)).await;
    watchers.extend(spawn_watchers(&channels, &run.id, 500, &subscribed));
    await_signals(&mut signals, 500, "during the run").await;
    let still_running = state_of(&get_run(&mut client, &run.id).await) == RunState::Running;
    let subscribed_at = started.elapsed();

    let mut results = Vec::new();
    for watcher in watchers {
        results.push(tokio::time::timeout(LIMIT * 2, watcher).await.expect("a watcher never finished").expect("watcher task"));
    }
    let finished_at = started.elapsed();
    let done = get_run(&mut client, &run.id).await;
    assert_eq!(state_of(&done), RunState::Succeeded);

    let mut reference = WatchReader::open(&mut client, &run.id, 0).await.unwrap();
    assert_ended_ok(reference.read_to_end(LIMIT).await, "the reference replay");
    assert_exactly(&reference.sequences(), 1, done.last_event_sequence, "the reference replay");

    let mut lagged = 0;
    for (index, (reader, end)) in results.into_iter().enumerate() {
        let what = format!("watcher {index}");
        assert_ended_ok(end, &what);
        assert_exactly(&reader.sequences(), 1, done.last_event_sequence, &what);
        assert!(reader.items == reference.items, "{what}: the events differ from the stored ones");
        lagged += usize::from(!reader.lagged.is_empty());
    }
    eprintln!(
        "1000 watchers of {} events: 500 subscribed in {before:?}, all by {subscribed_at:?} (run still running: {still_running}), all done by {finished_at:?}; {lagged} lagged",
        done.last_event_sequence
    );
    server.shutdown().await;
}

async fn a_hundred_tails_each_get_every_line(database: &TestDatabase) {
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config()).await;
    let mut client = server.client().await;
    let channels = clients(&server, 4).await;
    let blocker = hold_gate(&mut client).await;
    let repeat = 700;
    let run = client
        .create_run(behind_gate(create("echo", json!({"lines": ECHO, "repeat": repeat, "interval_ms": 1}))))
        .await
        .unwrap()
        .into_inner();
    let started = Instant::now();

    let (subscribed, mut signals) = tokio::sync::mpsc::channel(200);
    let mut tails = spawn_tails(&channels, &run.id, 60, &subscribed);
    await_signals(&mut signals, 60, "before the run").await;
    assert_eq!(state_of(&get_run(&mut client, &run.id).await), RunState::Queued);
    open_gate(&mut client, &blocker).await;
    wait_for_state(&mut client, &run.id, &[RunState::Running], Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    tails.extend(spawn_tails(&channels, &run.id, 60, &subscribed));
    await_signals(&mut signals, 60, "during the run").await;
    let still_running = state_of(&get_run(&mut client, &run.id).await) == RunState::Running;

    let mut results = Vec::new();
    for tail in tails {
        results.push(tokio::time::timeout(LIMIT * 2, tail).await.expect("a tail never finished").expect("tail task"));
    }
    let done = get_run(&mut client, &run.id).await;
    assert_eq!(state_of(&done), RunState::Succeeded);
    assert_eq!(done.last_log_sequence, 3 * repeat);
    let mut lagged = 0;
    for (index, (reader, end)) in results.into_iter().enumerate() {
        let what = format!("tail {index}");
        assert_ended_ok(end, &what);
        assert_exactly(&reader.sequences(), 1, done.last_log_sequence, &what);
        assert_echo_lines(&reader.items, &what);
        lagged += usize::from(!reader.lagged.is_empty());
    }
    eprintln!("120 tails of {} lines done in {:?} (second half subscribed while running: {still_running}); {lagged} lagged", done.last_log_sequence, started.elapsed());
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 3. The end of a tail
// ---------------------------------------------------------------------------------------------

async fn tail_without_follow_ends_after_the_stored_lines(database: &TestDatabase) {
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config()).await;
    let mut client = server.client().await;
    let run = client
        .create_run(create("echo", json!({"lines": ECHO, "repeat": 1_000_000, "interval_ms": 2})))
        .await
        .unwrap()
        .into_inner();
    let deadline = Instant::now() + LIMIT;
    let stored = loop {
        let current = get_run(&mut client, &run.id).await;
        if current.last_log_sequence >= 50 {
            assert_eq!(state_of(&current), RunState::Running);
            break current.last_log_sequence;
        }
        assert!(Instant::now() < deadline, "the run logged nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Without follow: the stored lines, then the end, though the run goes on.
    let stream = client.tail_logs(tail_request(&run.id, 0, false)).await.unwrap().into_inner();
    let mut snapshot = TailReader::new(stream);
    assert_ended_ok(snapshot.read_to_end(Duration::from_secs(10)).await, "tail without follow");
    assert!(snapshot.last() >= stored, "tail without follow sent {} lines, {stored} were stored", snapshot.last());
    assert_exactly(&snapshot.sequences(), 1, snapshot.last(), "tail without follow");
    assert_echo_lines(&snapshot.items, "tail without follow");
    assert!(snapshot.heartbeats.is_empty());
    let later = get_run(&mut client, &run.id).await;
    assert_eq!(state_of(&later), RunState::Running, "the run is still running");

    // From the middle, without follow.
    let middle = snapshot.last() / 2;
    let stream = client.tail_logs(tail_request(&run.id, middle, false)).await.unwrap().into_inner();
    let mut rest = TailReader::new(stream);
    assert_ended_ok(rest.read_to_end(Duration::from_secs(10)).await, "tail from the middle without follow");
    assert!(rest.last() >= snapshot.last());
    assert_exactly(&rest.sequences(), middle + 1, rest.last(), "tail from the middle without follow");

    client
        .cancel_run(proto::CancelRunRequest { id: run.id.clone(), reason: "enough".into(), force: false })
        .await
        .unwrap();
    let done = wait_for_state(&mut client, &run.id, &[RunState::Cancelled], Duration::from_secs(20)).await;
    assert!(done.last_log_sequence > stored);

    // With follow on a finished run: the whole log, then the end (no waiting for live lines).
    let started = Instant::now();
    let mut replay = TailReader::open(&mut client, &run.id, 0).await.unwrap();
    assert_ended_ok(replay.read_to_end(Duration::from_secs(10)).await, "follow of a finished run");
    assert_exactly(&replay.sequences(), 1, done.last_log_sequence, "follow of a finished run");
    assert_echo_lines(&replay.items, "follow of a finished run");
    assert!(replay.heartbeats.is_empty(), "a finished run's replay ends without idling");
    let mut tail_end = TailReader::open(&mut client, &run.id, done.last_log_sequence - 5).await.unwrap();
    assert_ended_ok(tail_end.read_to_end(Duration::from_secs(10)).await, "follow of a finished run from near its end");
    assert_exactly(&tail_end.sequences(), done.last_log_sequence - 4, done.last_log_sequence, "follow from near the end");
    let mut nothing = TailReader::open(&mut client, &run.id, done.last_log_sequence).await.unwrap();
    assert_ended_ok(nothing.read_to_end(Duration::from_secs(10)).await, "follow of a finished run from its last line");
    assert!(nothing.items.is_empty());
    // A watch of the finished run ends the same way.
    let mut events = WatchReader::open(&mut client, &run.id, 0).await.unwrap();
    assert_ended_ok(events.read_to_end(Duration::from_secs(10)).await, "watch of a finished run");
    assert_exactly(&events.sequences(), 1, done.last_event_sequence, "watch of a finished run");
    assert_eq!(events.items.last().and_then(entered), Some(RunState::Cancelled));
    assert!(started.elapsed() < Duration::from_secs(5), "replays of a finished run took {:?}", started.elapsed());
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Heartbeats
// ---------------------------------------------------------------------------------------------

async fn an_idle_watch_heartbeats_then_delivers_the_rest(database: &TestDatabase) {
    let config = config();
    let interval = config.stream_heartbeat;
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config).await;
    let mut client = server.client().await;
    let run = client.create_run(create("approval", json!({"prompt": "ship it?"}))).await.unwrap().into_inner();
    let waiting = wait_for_state(&mut client, &run.id, &[RunState::Waiting], Duration::from_secs(20)).await;
    let so_far = waiting.last_event_sequence;

    let mut watch = WatchReader::open(&mut client, &run.id, 0).await.unwrap();
    let mut tail = TailReader::open(&mut client, &run.id, 0).await.unwrap();
    let opened = Instant::now();
    let end = watch.read_until(Duration::from_secs(10), |reader| reader.heartbeats.len() >= 3).await;
    assert!(end.is_none(), "the watch of a waiting run ended: {end:?}");
    let idle = opened.elapsed();
    assert_exactly(&watch.sequences(), 1, so_far, "events before the heartbeats");
    assert_eq!(watch.items.last().and_then(entered), Some(RunState::Waiting));
    for (_, heartbeat) in &watch.heartbeats {
        assert_eq!(heartbeat.last_sequence, so_far, "a heartbeat carries the last sequence sent");
        assert!(heartbeat.time.is_some(), "a heartbeat carries the server's time");
    }
    // Three heartbeats take about three intervals: not a flood, not a trickle.
    assert!(idle >= interval * 2, "3 heartbeats came within {idle:?}");
    assert!(idle <= interval * 3 + Duration::from_secs(3), "3 heartbeats took {idle:?}");
    let end = tail.read_until(Duration::from_secs(10), |reader| !reader.heartbeats.is_empty()).await;
    assert!(end.is_none(), "the tail of a waiting run ended: {end:?}");
    assert!(tail.items.is_empty());
    assert_eq!(tail.heartbeats[0].1.last_sequence, 0);

    let decision = proto::Decision { outcome: Some(proto::decision::Outcome::Approve(true)), note: "go".into() };
    client
        .submit_decision(proto::SubmitDecisionRequest { id: run.id.clone(), key: String::new(), decision: Some(decision) })
        .await
        .unwrap();
    assert_ended_ok(watch.read_to_end(LIMIT).await, "the watch after the decision");
    assert_ended_ok(tail.read_to_end(LIMIT).await, "the tail after the decision");
    let done = get_run(&mut client, &run.id).await;
    assert_eq!(state_of(&done), RunState::Succeeded);
    assert_exactly(&watch.sequences(), 1, done.last_event_sequence, "the whole watch");
    let rest = &watch.items[so_far as usize..];
    assert!(rest.iter().any(|event| matches!(event.event, Some(Event::DecisionRecorded(_)))), "the decision is among the events: {rest:?}");
    assert_eq!(rest.last().and_then(entered), Some(RunState::Succeeded));
    assert_exactly(&tail.sequences(), 1, done.last_log_sequence, "the whole tail");
    assert!(tail.items.iter().any(|line| line.text == "decision: approve"));
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Errors
// ---------------------------------------------------------------------------------------------

async fn stream_errors_name_the_problem(database: &TestDatabase) {
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config()).await;
    let mut client = server.client().await;

    // An unknown run.
    let unknown = uuid::Uuid::now_v7().to_string();
    let status = client.watch_run(watch_request(&unknown, 0)).await.expect_err("watch of an unknown run");
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());
    assert_eq!(reason(&status), "RUN_NOT_FOUND");
    for follow in [false, true] {
        let status = client.tail_logs(tail_request(&unknown, 0, follow)).await.expect_err("tail of an unknown run");
        assert_eq!(status.code(), Code::NotFound, "{}", status.message());
        assert_eq!(reason(&status), "RUN_NOT_FOUND");
    }

    // A malformed id.
    for bad in ["not-a-run-id", "", "0190c9a8-zzzz-7000-8000-000000000000"] {
        let status = client.watch_run(watch_request(bad, 0)).await.expect_err("watch with a malformed id");
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {}", status.message());
        assert_eq!(bad_fields(&status), ["id"], "{bad:?}");
        let status = client.tail_logs(tail_request(bad, 0, true)).await.expect_err("tail with a malformed id");
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {}", status.message());
        assert_eq!(bad_fields(&status), ["id"], "{bad:?}");
    }

    // Past the end of a finished run...
    let run = client.create_run(create("echo", json!({"text": "one\ntwo\nthree"}))).await.unwrap().into_inner();
    let done = wait_for_state(&mut client, &run.id, &[RunState::Succeeded], Duration::from_secs(20)).await;
    assert_eq!(done.last_log_sequence, 3);
    let status = client.watch_run(watch_request(&run.id, done.last_event_sequence + 1)).await.expect_err("watch past the end");
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert_eq!(bad_fields(&status), ["after_sequence"]);
    for follow in [false, true] {
        let status = client.tail_logs(tail_request(&run.id, 4, follow)).await.expect_err("tail past the end");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert_eq!(bad_fields(&status), ["after_sequence"]);
        let status = client.tail_logs(tail_request(&run.id, u64::MAX, follow)).await.expect_err("tail far past the end");
        assert_eq!(bad_fields(&status), ["after_sequence"]);
    }
    // ...while exactly the end is fine, and empty.
    let mut at_end = WatchReader::open(&mut client, &run.id, done.last_event_sequence).await.unwrap();
    assert_ended_ok(at_end.read_to_end(Duration::from_secs(10)).await, "watch from the last event");
    assert!(at_end.items.is_empty());

    // Past the end of a run that is still going (a waiting one: its sequence cannot move).
    let waiting = client.create_run(create("approval", json!({}))).await.unwrap().into_inner();
    let waiting = wait_for_state(&mut client, &waiting.id, &[RunState::Waiting], Duration::from_secs(20)).await;
    let status = client.watch_run(watch_request(&waiting.id, waiting.last_event_sequence + 1)).await.expect_err("watch past the end");
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert_eq!(bad_fields(&status), ["after_sequence"]);
    let status = client.tail_logs(tail_request(&waiting.id, 1, true)).await.expect_err("tail past the end");
    assert_eq!(bad_fields(&status), ["after_sequence"]);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 6. A slow subscriber
// ---------------------------------------------------------------------------------------------

fn run_duration(run: &proto::Run) -> Duration {
    let start = system_time(run.start_time.as_ref().expect("start time"));
    let finish = system_time(run.finish_time.as_ref().expect("finish time"));
    finish.duration_since(start).unwrap_or_default()
}

async fn a_paused_follower_lags_then_catches_up(database: &TestDatabase) {
    // A ring of two batches, and many small batches: a follower that stops reading falls behind.
    let config = EngineConfig { hub_capacity: 2, log_batch: 20, ..config() };
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config).await;
    let mut client = server.client().await;
    let long_line = "x".repeat(400);
    let repeat = 20_000u64;
    let echo = || create("echo", json!({"lines": [long_line], "repeat": repeat}));

    // The same run with nobody following, for comparison.
    let baseline = client.create_run(echo()).await.unwrap().into_inner();
    let baseline = wait_for_state(&mut client, &baseline.id, &[RunState::Succeeded], LIMIT).await;
    assert_eq!(baseline.last_log_sequence, repeat, "the run took {} attempts: {:?}", baseline.attempt, baseline.error);
    let unobserved = run_duration(&baseline);

    let run = client.create_run(echo()).await.unwrap().into_inner();
    let mut follower = TailReader::open(&mut client, &run.id, 0).await.unwrap();
    // The follower stops reading; the run goes on without it.
    let done = wait_for_state(&mut client, &run.id, &[RunState::Succeeded], LIMIT).await;
    let observed = run_duration(&done);
    eprintln!("{repeat} lines: {unobserved:?} unobserved, {observed:?} with a paused follower");
    assert!(
        observed <= unobserved * 4 + Duration::from_secs(5),
        "the paused follower slowed the run: {observed:?}, against {unobserved:?} unobserved"
    );

    let resumed = Instant::now();
    assert_ended_ok(follower.read_to_end(LIMIT).await, "the paused follower");
    eprintln!("the follower caught up in {:?}; lag notices: {:?}", resumed.elapsed(), follower.lagged);
    assert_eq!(done.last_log_sequence, repeat, "the run took {} attempts: {:?}", done.attempt, done.error);
    assert_exactly(&follower.sequences(), 1, repeat, "the paused follower");
    assert!(follower.items.iter().all(|line| line.text == long_line));
    assert!(!follower.lagged.is_empty(), "the follower fell far behind a ring of 2 batches but was never told");
    for (received_before, lagged) in &follower.lagged {
        assert!(lagged.skipped > 0);
        let last_before = if *received_before == 0 { 0 } else { follower.items[received_before - 1].sequence };
        assert_eq!(lagged.last_sequence, last_before, "a lag notice carries the last sequence sent before it");
    }
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 7. Graceful shutdown
// ---------------------------------------------------------------------------------------------

async fn shutdown_ends_streams_and_the_run_resumes_after_restart(database: &TestDatabase) {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};

    let seconds = 8.0;
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config()).await;
    let mut client = server.client().await;
    let run = client.create_run(create("sleep", json!({"seconds": seconds}))).await.unwrap().into_inner();
    let running = wait_for_state(&mut client, &run.id, &[RunState::Running], Duration::from_secs(20)).await;
    let began = Instant::now();

    let mut watch = WatchReader::open(&mut client, &run.id, 0).await.unwrap();
    let mut tail = TailReader::open(&mut client, &run.id, 0).await.unwrap();
    assert!(watch.read_until(Duration::from_secs(10), |reader| reader.last() >= running.last_event_sequence).await.is_none());
    assert!(tail.read_until(Duration::from_secs(10), |reader| !reader.heartbeats.is_empty()).await.is_none());
    let health_channel = Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(health_channel)
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .expect("health watch")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), health.message()).await.expect("health status").unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    // Sleep a while first, so that a resumed run sleeping again from the start would show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopping = Instant::now();
    let shutdown = tokio::spawn(server.shutdown());
    let watch_end = watch.read_to_end(Duration::from_secs(10)).await;
    let watch_ended = stopping.elapsed();
    let tail_end = tail.read_to_end(Duration::from_secs(10)).await;
    let tail_ended = stopping.elapsed();
    assert_status(watch_end, Code::Unavailable, "SHUTTING_DOWN", "the watch at shutdown");
    assert_status(tail_end, Code::Unavailable, "SHUTTING_DOWN", "the tail at shutdown");
    assert!(tail_ended < Duration::from_secs(3), "the streams took {watch_ended:?} and {tail_ended:?} to end");
    let mut statuses = Vec::new();
    let observe = async {
        while let Ok(Some(message)) = health.message().await {
            statuses.push(message.status);
            if message.status == ServingStatus::NotServing as i32 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), observe).await;
    drop(health);
    assert_eq!(statuses.last(), Some(&(ServingStatus::NotServing as i32)), "health during shutdown: {statuses:?}");
    tokio::time::timeout(Duration::from_secs(30), shutdown).await.expect("the server did not stop").unwrap();
    let stopped = stopping.elapsed();
    let watched = watch.last();

    // A new server on the same database resumes the run; it sleeps only what is left.
    let slept_before = began.elapsed();
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config()).await;
    let mut client = server.client().await;
    let mut rest = WatchReader::open(&mut client, &run.id, watched).await.unwrap();
    assert_ended_ok(rest.read_to_end(LIMIT).await, "the watch resumed on the new server");
    let done = get_run(&mut client, &run.id).await;
    assert_eq!(state_of(&done), RunState::Succeeded);
    assert_exactly(&rest.sequences(), watched + 1, done.last_event_sequence, "the watch resumed on the new server");
    let started = system_time(running.start_time.as_ref().unwrap());
    let finished = system_time(done.finish_time.as_ref().unwrap());
    let total = finished.duration_since(started).unwrap_or_default();
    eprintln!(
        "streams ended {watch_ended:?}/{tail_ended:?} after shutdown began; stopped in {stopped:?}; restarted {slept_before:?} into the sleep; finished {total:?} after the first start"
    );
    assert!(slept_before >= Duration::from_secs(2));
    assert!(total >= Duration::from_secs_f64(seconds), "the run slept only {total:?}");
    assert!(
        total < Duration::from_secs_f64(seconds) + Duration::from_millis(1500),
        "the resumed run slept again from the start: it took {total:?}, restarted {slept_before:?} in"
    );

    let mut all = WatchReader::open(&mut client, &run.id, 0).await.unwrap();
    assert_ended_ok(all.read_to_end(LIMIT).await, "the full watch");
    let wake_steps = all
        .items
        .iter()
        .filter(|event| matches!(&event.event, Some(Event::StepCompleted(step)) if step.key == "wake_at"))
        .count();
    assert_eq!(wake_steps, 1, "the wake-up time was journaled once and reused");
    let released = all.items.iter().any(|event| match &event.event {
        Some(Event::StateChanged(change)) => change.from == RunState::Running as i32 && change.to == RunState::Queued as i32,
        _ => false,
    });
    assert!(released, "the shut-down server gave the run back to the queue");
    server.shutdown().await;
}

// Graceful shutdown must not wait forever for HTTP/2 streams that cannot end (a client that
// stopped reading, an open health watch): the drain is bounded. Store-independent.

/// A follower whose client stopped reading cannot be ended (its messages sit in flow-control
/// buffers), so the server never finishes shutting down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_a_client_that_stops_reading() {
    let database = Backend::Sqlite.database().await.unwrap();
    let config = EngineConfig { log_batch: 20, ..config() };
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config).await;
    let mut client = server.client().await;
    let run = client.create_run(create("echo", json!({"lines": ["x".repeat(400)], "repeat": 20_000}))).await.unwrap().into_inner();
    let _paused = client.tail_logs(tail_request(&run.id, 0, true)).await.unwrap().into_inner();
    wait_for_state(&mut client, &run.id, &[RunState::Succeeded], LIMIT).await;
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), server.shutdown())
        .await
        .unwrap_or_else(|_| panic!("graceful shutdown still waits for a client that stopped reading after {:?}", stopping.elapsed()));
}

/// A `grpc.health.v1.Health/Watch` stream (as gRPC client-side health checking opens) never ends
/// by itself, so the server never finishes shutting down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_a_health_watch() {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};
    let database = Backend::Sqlite.database().await.unwrap();
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), config()).await;
    let channel = Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel).watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    let first = health.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let watcher = tokio::spawn(async move { while let Ok(Some(_)) = health.message().await {} });
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), server.shutdown())
        .await
        .unwrap_or_else(|_| panic!("graceful shutdown still waits for a health watch after {:?}", stopping.elapsed()));
    tokio::time::timeout(Duration::from_secs(5), watcher).await.expect("the health watch ended").unwrap();
}

on_both_stores!(
    watch_resumed_mid_run_misses_nothing,
    tail_resumed_mid_run_misses_nothing,
    a_thousand_watchers_each_see_every_event_once,
    a_hundred_tails_each_get_every_line,
    tail_without_follow_ends_after_the_stored_lines,
    an_idle_watch_heartbeats_then_delivers_the_rest,
    stream_errors_name_the_problem,
    a_paused_follower_lags_then_catches_up,
    shutdown_ends_streams_and_the_run_resumes_after_restart,
);
