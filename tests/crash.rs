//! Crash tests with real processes. A workload of `steps` runs (journaled steps that write log
//! lines) runs while processes are killed with SIGKILL at random points and restarted:
//! * on Postgres, two `conclave serve` processes (one API-only front, one with a pool) and two
//!   `conclave worker` processes that fail over between the servers — any of them is killed;
//! * on SQLite, one `conclave serve`, killed and restarted.
//!
//! Afterwards, from the store: every run reached exactly one terminal state (succeeded); every
//! step is journaled once; no step ran in two attempts at once (each attempt's log lines are
//! before the next attempt's); no log line was lost or stored twice (each step's lines are in
//! the log once, from the attempt that journaled it); and every run a killed process held was
//! taken back within two heartbeat intervals of the kill.

mod support;

use std::{
    collections::{BTreeMap, HashMap},
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use conclave::{
    domain::{ErrorCode, EventKind, RunId, RunState, Timestamp},
    proto::run_service_client::RunServiceClient,
    store::SharedStore,
};
use rand::Rng;
use serde_json::json;
use support::*;
use tonic::transport::Channel;

const HEARTBEAT: Duration = Duration::from_secs(1);
const STEPS: u64 = 4;
const LINES: u64 = 3;

/// One process of the system under test, restartable.
struct Process {
    name: String,
    command: Vec<String>,
    child: Option<Child>,
    /// The worker id of its current incarnation (its leases carry it).
    worker_id: String,
    incarnation: usize,
}

impl Process {
    fn start(&mut self) {
        self.incarnation += 1;
        let mut args = self.command.clone();
        if args[0] == "worker" {
            self.worker_id = format!("{}-{}", self.name, self.incarnation);
            args.extend(["--worker-id".into(), self.worker_id.clone()]);
        }
        let child = Command::new(env!("CARGO_BIN_EXE_conclave"))
            .args(&args)
            .env("NO_COLOR", "1")
            .env("CONCLAVE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a process");
        if args[0] == "serve" {
            self.worker_id = format!("{}-{}", hostname(), child.id());
        }
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").ok().map(|name| name.trim().to_owned()).filter(|name| !name.is_empty()).unwrap_or_else(|| "conclave".into())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The server flags of both scenarios: one-second heartbeats, leases of 1.5 heartbeats.
fn serve_args(port: u16, database: &[&str], workers: usize) -> Vec<String> {
    let mut args: Vec<String> = vec!["serve".into(), "--listen".into(), format!("127.0.0.1:{port}")];
    args.extend(database.iter().map(|arg| (*arg).to_owned()));
    for (flag, value) in [
        ("--workers", workers.to_string()),
        ("--heartbeat-seconds", HEARTBEAT.as_secs_f64().to_string()),
        ("--lease-ttl-seconds", (HEARTBEAT.as_secs_f64() * 1.5).to_string()),
        ("--maintenance-seconds", "0.1".into()),
        ("--poll-seconds", "0.5".into()),
        ("--retry-base-seconds", "0.05".into()),
        ("--retry-max-seconds", "0.2".into()),
        ("--shutdown-grace-seconds", "1".into()),
    ] {
        args.extend([flag.to_owned(), value]);
    }
    args
}

/// A client of whichever of the servers answers.
async fn client(ports: &[u16]) -> RunServiceClient<Channel> {
    let started = Instant::now();
    loop {
        for port in ports {
            if let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await {
                return RunServiceClient::new(channel);
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no server came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates the workload (runs of `STEPS` steps of `step_ms`), retrying through whichever
/// server is up.
async fn create_runs(ports: &[u16], count: usize, step_ms: u64) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < count {
        let mut client = client(ports).await;
        let mut request = create("steps", json!({"steps": STEPS, "lines": LINES, "step_ms": step_ms}));
        request.max_attempts = 100;
        request.request_id = format!("crash-{}", ids.len());
        match client.create_run(request).await {
            Ok(run) => ids.push(run.into_inner().id),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    ids
}

/// Kills a random process every 1 to 2 s for `duration`, restarting each after a moment;
/// returns when each kill happened and the worker id the victim's leases carried.
async fn kill_randomly(processes: &mut [Process], duration: Duration) -> Vec<(Timestamp, String)> {
    let mut kills = Vec::new();
    let started = Instant::now();
    while started.elapsed() < duration {
        let pause = rand::rng().random_range(1000..2000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let victim = rand::rng().random_range(0..processes.len());
        let process = &mut processes[victim];
        let worker_id = process.worker_id.clone();
        process.kill();
        kills.push((Timestamp::now(), worker_id));
        tokio::time::sleep(Duration::from_millis(200)).await;
        process.start();
    }
    kills
}

async fn wait_until_all_finished(store: &SharedStore, ids: &[RunId], limit: Duration) {
    let started = Instant::now();
    loop {
        let mut unfinished = 0;
        for id in ids {
            let run = store.get_run(*id).await.unwrap().expect("the run exists");
            if !run.state.is_terminal() {
                unfinished += 1;
            }
        }
        if unfinished == 0 {
            return;
        }
        assert!(started.elapsed() < limit, "{unfinished} runs still unfinished after {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Checks every guarantee on every run; returns how many runs a killed process held.
async fn check_runs(store: &SharedStore, ids: &[RunId], kills: &[(Timestamp, String)]) -> usize {
    let mut worst = Duration::ZERO;
    let (mut taken_back_after_kill, mut rescues) = (0, 0);
    for id in ids {
        let run = store.get_run(*id).await.unwrap().unwrap();
        assert_eq!(run.state, RunState::Succeeded, "run {id} ended {:?}: {:?}", run.state, run.error);
        let events = store.read_events(*id, 0, 100_000).await.unwrap();
        let terminal = events.iter().filter(|event| event.kind.is_terminal()).count();
        assert_eq!(terminal, 1, "run {id} reached exactly one terminal state");

        // Every step journaled once; its lines in the log once, from the attempt that journaled it.
        let journal = store.read_journal(*id).await.unwrap();
        let steps: BTreeMap<String, u32> = journal.iter().map(|entry| (entry.key.clone(), entry.attempt)).collect();
        assert_eq!(steps.len() as u64, STEPS, "run {id}: every step journaled once: {steps:?}");
        let logs = store.read_logs(*id, 0, 100_000).await.unwrap();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for line in &logs {
            *seen.entry(line.text.as_str()).or_default() += 1;
        }
        if let Some((text, count)) = seen.iter().find(|(_, count)| **count > 1) {
            panic!("run {id}: line `{text}` stored {count} times");
        }
        for step in 0..STEPS {
            let attempt = steps[&format!("step-{step}")];
            for line in 0..LINES {
                let text = format!("step {step} line {line} attempt {attempt}");
                assert_eq!(seen.get(text.as_str()), Some(&1), "run {id}: `{text}` of a journaled step is in the log once");
            }
        }

        // No two attempts ran at once: each attempt's lines come before the next attempt's.
        let mut spans: BTreeMap<u32, (Timestamp, Timestamp)> = BTreeMap::new();
        for line in &logs {
            let span = spans.entry(line.attempt).or_insert((line.time, line.time));
            span.0 = span.0.min(line.time);
            span.1 = span.1.max(line.time);
        }
        let spans: Vec<_> = spans.into_iter().collect();
        for pair in spans.windows(2) {
            let ((earlier, (_, end)), (later, (start, _))) = (pair[0], pair[1]);
            assert!(end <= start, "run {id}: attempt {earlier} wrote until {end:?}, after attempt {later} began at {start:?}");
        }

        // Every run a killed process held was taken back within two heartbeats of the kill.
        let mut holder: Option<(String, Timestamp)> = None;
        let transitions: Vec<_> = events
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::StateChanged { to, worker_id, error, .. } => Some((event.time, *to, worker_id.clone(), error.clone())),
                _ => None,
            })
            .collect();
        for (index, (time, to, worker_id, _)) in transitions.iter().enumerate() {
            if *to == RunState::Running {
                holder = worker_id.clone().map(|worker| (worker, *time));
            }
            let Some((worker, since)) = &holder else { continue };
            let next = transitions.get(index + 1).map(|transition| transition.0);
            for (killed_at, victim) in kills {
                let held_at_kill = worker == victim && since <= killed_at && next.is_none_or(|next| next > *killed_at);
                if !held_at_kill || *to != RunState::Running {
                    continue;
                }
                let taken_back = transitions[index + 1..].first().expect("a run held by a killed process moves on");
                let delay = taken_back.0.since(*killed_at);
                if taken_back.3.as_ref().is_some_and(|error| error.code == ErrorCode::LeaseExpired) {
                    rescues += 1;
                }
                worst = worst.max(delay);
                taken_back_after_kill += 1;
                assert!(delay <= HEARTBEAT * 2, "run {id} held by killed {victim} was taken back {delay:?} after the kill");
            }
        }
    }
    eprintln!(
        "{} runs checked, {} kills, {taken_back_after_kill} runs held by a killed process ({rescues} rescued, the rest finished as it died), worst delay {worst:?}",
        ids.len(),
        kills.len()
    );
    taken_back_after_kill
}

fn parse_ids(ids: &[String]) -> Vec<RunId> {
    ids.iter().map(|id| RunId::parse("id", id).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_servers_and_two_workers_survive_random_kills() {
    let Some(database) = Backend::Postgres.database().await else {
        eprintln!("skipped: set CONCLAVE_TEST_DATABASE_URL to run the Postgres tests");
        return;
    };
    let (front, back) = (free_port(), free_port());
    let url = database.url.clone();
    let servers = [format!("http://127.0.0.1:{front}"), format!("http://127.0.0.1:{back}")];
    let worker = |name: &str| Process {
        name: name.into(),
        command: vec!["worker".into(), "--server".into(), servers.join(","), "--capacity".into(), "8".into(), "--kind".into(), "steps".into()],
        child: None,
        worker_id: String::new(),
        incarnation: 0,
    };
    let server = |name: &str, port: u16, workers: usize| Process {
        name: name.into(),
        command: serve_args(port, &["--database-url", &url], workers),
        child: None,
        worker_id: String::new(),
        incarnation: 0,
    };
    let mut processes = vec![server("front", front, 0), server("back", back, 8), worker("worker-a"), worker("worker-b")];
    processes[0].start();
    processes[1].start();
    let ports = [front, back];
    client(&ports).await;
    processes[2].start();
    processes[3].start();

    // About 480 run-seconds of work for 24 slots: the kills land while runs execute.
    let ids = create_runs(&ports, 300, 400).await;
    let kills = kill_randomly(&mut processes, Duration::from_secs(20)).await;
    let store = open_store(&database).await;
    let ids = parse_ids(&ids);
    wait_until_all_finished(&store, &ids, Duration::from_secs(120)).await;
    let held_by_killed = check_runs(&store, &ids, &kills).await;
    assert!(kills.len() >= 8 && held_by_killed > 0, "the kills hit processes that held runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_single_server_survives_random_kills() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let dir = data.path().to_str().unwrap().to_owned();
    let mut processes = vec![Process {
        name: "server".into(),
        command: serve_args(port, &["--data-dir", &dir], 16),
        child: None,
        worker_id: String::new(),
        incarnation: 0,
    }];
    processes[0].start();
    client(&[port]).await;
    // About 240 run-seconds of work for 16 slots.
    let ids = create_runs(&[port], 200, 300).await;
    let kills = kill_randomly(&mut processes, Duration::from_secs(12)).await;
    // The store of the server's database, opened read-only-ish alongside the running server.
    let url = format!("sqlite://{}", Path::new(&dir).join("conclave.db").display());
    let store = conclave::store::open(&url, 2).await.unwrap();
    let ids = parse_ids(&ids);
    wait_until_all_finished(&store, &ids, Duration::from_secs(120)).await;
    let held_by_killed = check_runs(&store, &ids, &kills).await;
    assert!(kills.len() >= 5 && held_by_killed > 0, "the kills hit a server that held runs");
}
