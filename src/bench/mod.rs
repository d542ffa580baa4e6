//! `conclave bench`: end-to-end figures of a real server, measured over gRPC.
//!
//! The bench starts its own server in-process (on a runtime and threads of its own, listening on
//! `127.0.0.1:0`) over a fresh store — a temporary SQLite directory or a new Postgres database
//! that is dropped afterwards — and drives it with the generated client, like any other client:
//!
//! * **throughput**: `--runs` no-op runs created by `--clients` concurrent clients over a few
//!   HTTP/2 channels and executed by the server's own workers; runs/s from the first create to
//!   the moment every run is finished. The same runs give the create→start latency *under load*.
//! * **latency**: create→start latency when idle: one run at a time, each waited for.
//! * **logs**: one `echo` run writing `--log-lines` lines to `--followers` log followers, all
//!   connected before it starts; delivery rate and latency, once at a steady pace and once at
//!   full speed, checking that every follower got every line exactly once.
//!
//! With `--only models` the bench measures the model layer instead, in-process and over the
//! store alone (no gRPC): the router's own cost per call with the `mock` provider, and the cost
//! of a journaled model call in a run (see `models.rs`). It is not part of the default workloads.
//!
//! With `--processes 1,2,4` the bench measures `conclave serve` itself instead: for each count,
//! that many child processes of this executable, each on a loopback port of its own and with
//! workers of its own, all sharing one fresh Postgres database. The clients spread their calls
//! over the processes, and the throughput and latency workloads run as above (the log fan-out is
//! measured in-process only). The children are killed however the bench ends.
//!
//! Latencies compare server-side timestamps (`start_time − create_time`), or a line's `time`
//! with the moment the client received it, on the same machine clock. Figures are printed with
//! the targets they are held to, never asserted. The CPU time of the server's threads and of the
//! bench's client threads is reported beside each workload, to show where the time went.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use prost_types::value::Kind;
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
    task::JoinSet,
};
use tonic::transport::{Channel, Endpoint};

mod artifacts;
mod models;
mod orchestration;

use crate::{
    artifacts::{Artifacts, ArtifactsConfig},
    domain::{Timestamp, WorkerId},
    engine::{Engine, EngineConfig},
    error::{Error, Result},
    proto::{self, run_service_client::RunServiceClient, RunState},
    server, store, workflows,
};

type Client = RunServiceClient<Channel>;

/// Which store(s) to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreChoice {
    /// Embedded SQLite in a temporary directory.
    Sqlite,
    /// A fresh database on the Postgres server of `--database-url`.
    Postgres,
    /// SQLite, then Postgres.
    Both,
}

/// One of the workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Runs/s end to end, and create→start latency under that load.
    Throughput,
    /// Create→start latency of one run at a time on an idle server.
    Latency,
    /// Create→start latency at a fixed offered rate (`--paced-rate`), below what the servers
    /// can execute: dispatch under load, with the same load offered to both sides of
    /// `scripts/bench-peers`.
    Paced,
    /// Log fan-out: one run's lines delivered to many followers.
    Logs,
    /// The model layer's own cost per call: the router, and journaled calls in a run. Measured
    /// in-process without a server; only with `--only models`.
    Models,
    /// Artifact upload and download throughput (1 MiB and `--large-artifact-mib`) against a
    /// file copy on the same disk, and memory per concurrent transfer; only with
    /// `--only artifacts`.
    Artifacts,
    /// Orchestration overhead of a five-role debate with two mitigation cycles and of a
    /// 50-step mission DAG, with the mock provider answering at once; only with
    /// `--only workflows`.
    Workflows,
}

/// Options of `conclave bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The store(s) to measure.
    #[arg(long, value_enum, default_value_t = StoreChoice::Sqlite)]
    pub store: StoreChoice,
    /// Postgres admin URL (e.g. postgres://postgres@127.0.0.1:5432/postgres); the bench creates
    /// a fresh database there for its run and drops it afterwards.
    #[arg(long, env = "CONCLAVE_BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// No-op runs created by the throughput workload.
    #[arg(long, default_value_t = 20_000)]
    pub runs: usize,
    /// Concurrent clients creating runs in the throughput workload.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// HTTP/2 connections the throughput clients share [default: one per 8 clients, at most 8].
    #[arg(long)]
    pub channels: Option<usize>,
    /// Runs created one at a time by the idle-latency workload.
    #[arg(long, default_value_t = 500)]
    pub idle_runs: usize,
    /// Runs per second the paced workload creates, on a fixed schedule.
    #[arg(long, default_value_t = 500)]
    pub paced_rate: usize,
    /// Runs the paced workload creates.
    #[arg(long, default_value_t = 5_000)]
    pub paced_runs: usize,
    /// Lines written by the log fan-out run.
    #[arg(long, default_value_t = 10_000)]
    pub log_lines: u64,
    /// Followers of the log fan-out run (TailLogs with follow), over at least 16 connections.
    #[arg(long, default_value_t = 1_000)]
    pub followers: usize,
    /// Pause between writes of the paced fan-out run, in ms; a second run at full speed (0) is
    /// always measured too. Timers round a 1 ms pause up to the next millisecond tick, so the
    /// default (2 lines every 1 ms) produces about 1,000 lines/s.
    #[arg(long, default_value_t = 1)]
    pub log_interval_ms: u64,
    /// Lines per write of the fan-out run (a divisor of --log-lines).
    #[arg(long, default_value_t = 2)]
    pub log_burst: u64,
    /// Worker slots of the engine (runs executed at once), per server process with `--processes`.
    #[arg(long, default_value_t = 64)]
    pub workers: usize,
    /// Postgres connection pool size of the server, per server process with `--processes`.
    #[arg(long, default_value_t = 16)]
    pub db_connections: u32,
    /// Run only one workload (`throughput` includes the latency under load). `models`,
    /// `artifacts` and `workflows` are not part of the default set: they run only when named
    /// here.
    #[arg(long, value_enum)]
    pub only: Option<Workload>,
    /// Models workload: calls of `Router::route` (and as many of the mock provider directly)
    /// per pass, one caller at a time and then `--model-callers` at once.
    #[arg(long, default_value_t = 20_000)]
    pub model_calls: usize,
    /// Models workload: concurrent callers of the router's second pass.
    #[arg(long, default_value_t = 8)]
    pub model_callers: usize,
    /// Models workload: model calls made by the run that journals each one as a step.
    #[arg(long, default_value_t = 2_000)]
    pub journaled_calls: usize,
    /// Models workload: runs of the `generate` kind created one at a time (and as many `noop`
    /// runs, for comparison).
    #[arg(long, default_value_t = 200)]
    pub generate_runs: usize,
    /// Workflows workload: debates run one at a time.
    #[arg(long, default_value_t = 20)]
    pub debates: usize,
    /// Workflows workload: 50-step missions run one at a time.
    #[arg(long, default_value_t = 5)]
    pub missions: usize,
    /// Artifacts workload: rounds of the copy baseline and of the large artifact's upload and
    /// download (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub artifact_rounds: usize,
    /// Artifacts workload: distinct 1 MiB artifacts uploaded one at a time, then downloaded
    /// (and as many 1 MiB files copied by the baseline).
    #[arg(long, default_value_t = 64)]
    pub small_artifacts: usize,
    /// Artifacts workload: the size of the large artifact (and of the baseline's large file), in
    /// MiB. The bench keeps what it writes until it ends: about 14 times this much disk with 3
    /// rounds.
    #[arg(long, default_value_t = 256)]
    pub large_artifact_mib: u64,
    /// Artifacts workload: uploads (then downloads) of 64 MiB made at once while the process's
    /// resident memory is sampled.
    #[arg(long, default_value_t = 8)]
    pub concurrent_transfers: usize,
    /// Measure `conclave serve` child processes on one Postgres database instead of an
    /// in-process server: a comma-separated list of process counts, each measured on a fresh
    /// database (e.g. `--store postgres --processes 1,2,4`). Each process has `--workers` slots
    /// and `--db-connections` connections; the throughput and latency workloads are run.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub processes: Vec<usize>,
    /// Also write every figure to this file, one JSON object per line (for scripts).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// The server's message size limit, as `conclave serve` defaults it.
const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// How often the throughput workload checks whether every run has finished.
const FINISH_POLL: Duration = Duration::from_millis(5);
/// Largest `ListRuns` page.
const PAGE_SIZE: i32 = 1000;
/// Connections the log followers share at least.
const FANOUT_CHANNELS: usize = 16;
/// The pause between the last follower connecting and the start of the fan-out run.
const FANOUT_SETTLE: Duration = Duration::from_secs(1);
/// Followers per connection at most (HTTP/2 servers commonly allow 100-200 streams at once).
const FOLLOWERS_PER_CHANNEL: usize = 100;
/// What the echo run writes, a line of a typical length.
const LOG_LINE: &str = "bench: step 42 finished; wrote 3 files, 2 tests passed, 0 failed, next: review";
/// The most `conclave serve` child processes one measurement may start.
const MAX_PROCESSES: usize = 16;
/// How long a child process may take to answer its health check as serving.
const CHILD_READY_LIMIT: Duration = Duration::from_secs(60);
/// How long a child process may take to exit after SIGTERM before it is killed.
const CHILD_EXIT_LIMIT: Duration = Duration::from_secs(20);

/// Runs the benchmarks and prints the figures.
pub async fn run(args: BenchArgs) -> Result<()> {
    init_logging();
    validate(&args)?;
    let setups = setups(&args);
    let stores: Vec<StoreKind> = setups.iter().map(|setup| setup.store).collect();
    let admin_url = postgres_admin_url(&args, &stores)?;
    let mut report = Report::default();
    let mut result = Ok(());
    for setup in setups {
        result = bench_on_fresh_database(setup, admin_url.as_deref(), &args, &mut report).await;
        if result.is_err() {
            break;
        }
    }
    report.print();
    if let Some(path) = &args.json {
        result = result.and(report.write_json(path));
    }
    result
}

/// What to measure, in order: each store in-process, or Postgres behind each process count.
fn setups(args: &BenchArgs) -> Vec<Setup> {
    if !args.processes.is_empty() {
        return args.processes.iter().map(|&count| Setup { store: StoreKind::Postgres, processes: Some(count) }).collect();
    }
    let stores: &[StoreKind] = match args.store {
        StoreChoice::Sqlite => &[StoreKind::Sqlite],
        StoreChoice::Postgres => &[StoreKind::Postgres],
        StoreChoice::Both => &[StoreKind::Sqlite, StoreKind::Postgres],
    };
    stores.iter().map(|&store| Setup { store, processes: None }).collect()
}

/// Creates a database for the setup, measures it, and removes the database.
async fn bench_on_fresh_database(setup: Setup, admin_url: Option<&str>, args: &BenchArgs, report: &mut Report) -> Result<()> {
    let database = BenchDatabase::create(setup.store, admin_url, report).await?;
    // Ctrl-C or SIGTERM stops the measurement (dropping it kills any child servers), but the
    // database is still removed.
    let measured = async {
        match setup.processes {
            None => bench_store(setup, &database.url, args, report).await,
            Some(count) => bench_processes(setup, count, &database.url, args, report).await,
        }
    };
    let result = tokio::select! {
        result = measured => result,
        () = stop_requested() => Err(Error::Internal("interrupted".into())),
    };
    let removed = database.remove().await;
    result.and(removed)
}

/// Resolves when the bench is asked to stop: Ctrl-C (SIGINT) or SIGTERM. A signal that cannot be
/// listened for never resolves.
async fn stop_requested() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// The bench's own diagnostics (and the server's warnings) go to stderr; `CONCLAVE_LOG` overrides.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONCLAVE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn validate(args: &BenchArgs) -> Result<()> {
    let positive = [
        ("runs", args.runs),
        ("clients", args.clients),
        ("idle_runs", args.idle_runs),
        ("paced_rate", args.paced_rate),
        ("paced_runs", args.paced_runs),
        ("followers", args.followers),
        ("workers", args.workers),
        ("channels", args.channels.unwrap_or(1)),
        ("model_calls", args.model_calls),
        ("model_callers", args.model_callers),
        ("journaled_calls", args.journaled_calls),
        ("generate_runs", args.generate_runs),
        ("artifact_rounds", args.artifact_rounds),
        ("debates", args.debates),
        ("missions", args.missions),
        ("small_artifacts", args.small_artifacts),
        ("concurrent_transfers", args.concurrent_transfers),
    ];
    if let Some((field, _)) = positive.iter().find(|(_, value)| *value == 0) {
        return Err(Error::invalid(*field, "must be at least 1"));
    }
    if args.log_lines == 0 || args.log_lines > 10_000_000 {
        return Err(Error::invalid("log_lines", "must be from 1 to 10,000,000 (the echo kind's limit)"));
    }
    if args.log_burst == 0 || !args.log_lines.is_multiple_of(args.log_burst) {
        return Err(Error::invalid("log_burst", "must be at least 1 and divide --log-lines"));
    }
    let max_artifact_mib = ArtifactsConfig::default().max_bytes >> 20;
    if args.large_artifact_mib == 0 || args.large_artifact_mib > max_artifact_mib {
        return Err(Error::invalid("large_artifact_mib", format!("must be from 1 to {max_artifact_mib} (the server's artifact limit)")));
    }
    if args.concurrent_transfers > artifacts::MAX_CONCURRENT_TRANSFERS {
        return Err(Error::invalid("concurrent_transfers", format!("must be at most {}", artifacts::MAX_CONCURRENT_TRANSFERS)));
    }
    if args.log_interval_ms > 60_000 {
        return Err(Error::invalid("log_interval_ms", "must be at most 60,000 (the echo kind's limit)"));
    }
    if !args.processes.is_empty() {
        if args.store != StoreChoice::Postgres {
            return Err(Error::invalid("processes", "SQLite mode is single-node: several processes need --store postgres"));
        }
        if args.processes.iter().any(|&count| count == 0 || count > MAX_PROCESSES) {
            return Err(Error::invalid("processes", format!("each process count must be from 1 to {MAX_PROCESSES}")));
        }
        if args.only == Some(Workload::Logs) {
            return Err(Error::invalid("only", "the log fan-out is measured in-process only, not with --processes"));
        }
        if args.only == Some(Workload::Models) {
            return Err(Error::invalid("only", "the models workload is measured in-process only, not with --processes"));
        }
        if args.only == Some(Workload::Artifacts) {
            return Err(Error::invalid("only", "the artifacts workload is measured in-process only, not with --processes"));
        }
        if args.only == Some(Workload::Workflows) {
            return Err(Error::invalid("only", "the workflows workload is measured in-process only, not with --processes"));
        }
    }
    Ok(())
}

fn postgres_admin_url(args: &BenchArgs, stores: &[StoreKind]) -> Result<Option<String>> {
    if !stores.contains(&StoreKind::Postgres) {
        return Ok(None);
    }
    match args.database_url.as_deref().map(str::trim) {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Ok(Some(url.to_owned())),
        Some("") | None => Err(Error::invalid(
            "database_url",
            "the Postgres bench needs an admin URL: pass --database-url or set CONCLAVE_BENCH_DATABASE_URL",
        )),
        Some(_) => Err(Error::invalid("database_url", "must be a postgres:// URL")),
    }
}

/// Starts a server on the store, runs the chosen workloads against it, and stops it. The models
/// workload needs no server: it drives the model layer and an engine of its own directly.
async fn bench_store(setup: Setup, url: &str, args: &BenchArgs, report: &mut Report) -> Result<()> {
    if args.only == Some(Workload::Models) {
        return models::bench(setup, url, args, report).await;
    }
    // The artifacts workload starts a server of its own, with its blobs next to the store.
    if args.only == Some(Workload::Artifacts) {
        return artifacts::bench(setup, url, args, report).await;
    }
    if args.only == Some(Workload::Workflows) {
        return orchestration::bench(setup, url, args, report).await;
    }
    let engine = EngineConfig {
        worker_id: WorkerId::new(format!("bench-{}", std::process::id())),
        worker_slots: args.workers,
        ..EngineConfig::default()
    };
    let server = BenchServer::start(url.to_owned(), engine, args.db_connections, ArtifactsConfig::default()).await?;
    progress(setup, format_args!("server listening on {}", server.addr));
    let servers = Servers { addrs: vec![server.addr], pids: Vec::new() };
    let result = run_workloads(setup, &servers, args, report).await;
    let stopped = server.shutdown().await;
    result.and(stopped)
}

/// Starts `count` `conclave serve` processes on the database, runs the throughput and latency
/// workloads against them, and stops them.
async fn bench_processes(setup: Setup, count: usize, url: &str, args: &BenchArgs, report: &mut Report) -> Result<()> {
    let mut children = ChildServers::start(count, url, args).await?;
    let servers = children.servers();
    let listening: Vec<String> = servers.addrs.iter().map(ToString::to_string).collect();
    progress(setup, format_args!("{count} server processes listening on {}", listening.join(", ")));
    let result = tokio::select! {
        result = run_workloads(setup, &servers, args, report) => result,
        exited = children.first_exit() => Err(exited),
    };
    let result = result.map_err(|err| children.exited().unwrap_or(err));
    let stopped = children.shutdown().await;
    result.and(stopped)
}

async fn run_workloads(setup: Setup, servers: &Servers, args: &BenchArgs, report: &mut Report) -> Result<()> {
    let wants = |workload| args.only.is_none_or(|only| only == workload);
    if wants(Workload::Latency) {
        idle_latency(setup, servers, args.idle_runs, report).await?;
    }
    if wants(Workload::Paced) {
        paced(setup, servers, args, report).await?;
    }
    if wants(Workload::Throughput) {
        throughput(setup, servers, args, report).await?;
    }
    // The fan-out follows one run on one server: it is measured in-process only.
    if wants(Workload::Logs) && setup.processes.is_none() {
        let addr = servers.addrs.first().copied().ok_or_else(|| Error::Internal("no server to measure".into()))?;
        let fanout = Fanout { lines: args.log_lines, burst: args.log_burst, followers: args.followers, interval_ms: args.log_interval_ms };
        log_fanout(setup, addr, fanout, report).await?;
        if args.log_interval_ms != 0 {
            log_fanout(setup, addr, Fanout { interval_ms: 0, ..fanout }, report).await?;
        }
    }
    Ok(())
}

fn progress(setup: Setup, message: fmt::Arguments<'_>) {
    eprintln!("[bench {setup}] {message}");
}

// ---------------------------------------------------------------------------------------------
// Workload: create→start latency on an idle server.

/// Creates one run at a time and waits for it to finish before the next. With several server
/// processes, the runs are created on each in turn (and executed by whichever claims them).
async fn idle_latency(setup: Setup, servers: &Servers, runs: usize, report: &mut Report) -> Result<()> {
    progress(setup, format_args!("latency: {runs} runs, one at a time"));
    let mut clients = connect_each(&servers.addrs).await?;
    let mut latencies = Vec::with_capacity(runs);
    // Client-side time of each step of an iteration: CreateRun, watching until finished, GetRun.
    let mut steps = [Duration::ZERO; 3];
    let cpu = CpuSample::take(&servers.pids);
    for index in 0..runs {
        let client = &mut clients[index % servers.addrs.len()];
        let began = Instant::now();
        let run = client.create_run(noop_request()).await.map_err(rpc("CreateRun"))?.into_inner();
        let created = Instant::now();
        wait_until_finished(client, &run.id).await?;
        let finished = Instant::now();
        let run = client.get_run(proto::GetRunRequest { id: run.id }).await.map_err(rpc("GetRun"))?.into_inner();
        steps[0] += created - began;
        steps[1] += finished - created;
        steps[2] += finished.elapsed();
        latencies.push(start_latency(&run)?);
    }
    let summary = Summary::of(latencies);
    let workload = "latency (idle)";
    report.add(workload, setup, "create→start p50", summary.p50_ms(), "ms", None);
    report.add(workload, setup, "create→start p99", summary.p99_ms(), "ms", Some(Target::at_most(10.0)));
    report.add(workload, setup, "create→start max", summary.max_ms(), "ms", None);
    let mean_ms = |step: Duration| step.as_secs_f64() * 1000.0 / runs as f64;
    report.note(format!(
        "{workload} [{setup}]: mean client-side time per run: CreateRun {:.2} ms, WatchRun until its stream ended {:.2} ms, GetRun {:.2} ms",
        mean_ms(steps[0]),
        mean_ms(steps[1]),
        mean_ms(steps[2]),
    ));
    report.cpu_since(workload, setup, cpu);
    Ok(())
}

/// Waits for a run to finish by watching its events: the stream ends once it is finished.
async fn wait_until_finished(client: &mut Client, id: &str) -> Result<()> {
    let watch = async {
        let request = proto::WatchRunRequest { id: id.to_owned(), after_sequence: 0 };
        let mut stream = client.watch_run(request).await.map_err(rpc("WatchRun"))?.into_inner();
        while stream.message().await.map_err(rpc("WatchRun"))?.is_some() {}
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(30), watch)
        .await
        .map_err(|_| Error::Internal(format!("run {id} did not finish within 30 s")))?
}

/// `start_time − create_time` of a run, in microseconds.
fn start_latency(run: &proto::Run) -> Result<u64> {
    let (Some(created), Some(started)) = (micros(run.create_time.as_ref()), micros(run.start_time.as_ref())) else {
        return Err(Error::Internal(format!("run {} has no create or start time", run.id)));
    };
    Ok(u64::try_from(started - created).unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Workload: end-to-end throughput, and create→start latency under that load.

/// Creates `--runs` no-op runs from `--clients` concurrent clients and waits until all have
/// finished. The clients' connections are spread evenly over the server processes.
async fn throughput(setup: Setup, servers: &Servers, args: &BenchArgs, report: &mut Report) -> Result<()> {
    let per_process = args.channels.unwrap_or_else(|| args.clients.div_ceil(8).clamp(1, 8)).div_ceil(servers.addrs.len());
    let channels = per_process * servers.addrs.len();
    progress(setup, format_args!("throughput: {} no-op runs, {} clients over {channels} connections", args.runs, args.clients));
    let clients = connect_many(&servers.addrs, channels).await?;
    let mut control = clients[0].clone();
    let succeeded_before = succeeded_noop_runs(&mut control).await?;

    let cpu = CpuSample::take(&servers.pids);
    let started = Instant::now();
    let ids = create_noop_runs(&clients, args.clients, args.runs).await?;
    let created_in = started.elapsed();
    wait_until_drained(&mut control, args.runs).await?;
    let elapsed = started.elapsed();
    let cpu = cpu.and_then(CpuSample::until_now);

    let succeeded = succeeded_noop_runs(&mut control).await?.saturating_sub(succeeded_before);
    if succeeded != args.runs as u64 {
        loud_warning(format_args!("{setup}: only {succeeded} of {} no-op runs succeeded", args.runs));
    }
    let workload = "throughput";
    let target = (setup.store == StoreKind::Sqlite).then(|| Target::at_least(5_000.0));
    report.add(workload, setup, "runs created and finished", per_second(args.runs as u64, elapsed), "runs/s", target);
    report.add(workload, setup, "runs created (create phase)", per_second(args.runs as u64, created_in), "runs/s", None);
    report.note(format!("{workload} [{setup}]: {} runs in {:.2} s (creates done after {:.2} s)", args.runs, elapsed.as_secs_f64(), created_in.as_secs_f64()));
    report.cpu_split(workload, setup, cpu);

    let latencies = read_back_latencies(&mut control, &ids).await?;
    let summary = Summary::of(latencies);
    let workload = "latency (load)";
    report.add(workload, setup, "create→start p50", summary.p50_ms(), "ms", None);
    report.add(workload, setup, "create→start p99", summary.p99_ms(), "ms", None);
    report.add(workload, setup, "create→start max", summary.max_ms(), "ms", None);
    Ok(())
}

/// Create→start latency at a fixed offered rate: run `i` is created at `i / rate` seconds, from
/// clients spread over the servers, whatever the earlier creates are doing.
async fn paced(setup: Setup, servers: &Servers, args: &BenchArgs, report: &mut Report) -> Result<()> {
    let (rate, runs) = (args.paced_rate, args.paced_runs);
    progress(setup, format_args!("paced: {runs} no-op runs at {rate} runs/s"));
    let clients = connect_many(&servers.addrs, servers.addrs.len() * 2).await?;
    let mut control = clients[0].clone();
    let started = tokio::time::Instant::now();
    let mut creates = JoinSet::new();
    for index in 0..runs {
        tokio::time::sleep_until(started + Duration::from_secs_f64(index as f64 / rate as f64)).await;
        let mut client = clients[index % clients.len()].clone();
        creates.spawn(async move { create(&mut client, noop_request()).await.map(|run| run.id) });
    }
    let mut ids = HashSet::with_capacity(runs);
    while let Some(created) = creates.join_next().await {
        ids.insert(created.map_err(task_failed)??);
    }
    let offered_for = started.elapsed();
    wait_until_drained(&mut control, runs).await?;
    let summary = Summary::of(read_back_latencies(&mut control, &ids).await?);
    let workload = "latency (paced)";
    report.add(workload, setup, "offered rate", per_second(runs as u64, offered_for), "runs/s", None);
    report.add(workload, setup, "create→start p50", summary.p50_ms(), "ms", None);
    report.add(workload, setup, "create→start p99", summary.p99_ms(), "ms", None);
    report.add(workload, setup, "create→start max", summary.max_ms(), "ms", None);
    Ok(())
}

/// Creates `total` no-op runs from `clients` concurrent tasks; returns their ids.
async fn create_noop_runs(channels: &[Client], clients: usize, total: usize) -> Result<HashSet<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for index in 0..clients {
        let mut client = channels[index % channels.len()].clone();
        let next = next.clone();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let run = client.create_run(noop_request()).await.map_err(rpc("CreateRun"))?.into_inner();
                ids.push(run.id);
            }
            Ok::<_, Error>(ids)
        });
    }
    let mut ids = HashSet::with_capacity(total);
    while let Some(joined) = tasks.join_next().await {
        ids.extend(joined.map_err(task_failed)??);
    }
    Ok(ids)
}

/// Polls (cheaply: one-row listings) until no run is queued or running any more.
async fn wait_until_drained(client: &mut Client, runs: usize) -> Result<()> {
    let limit = Duration::from_secs(120) + Duration::from_millis(10).saturating_mul(u32::try_from(runs).unwrap_or(u32::MAX));
    let deadline = Instant::now() + limit;
    loop {
        if !has_runs_in(client, RunState::Queued).await? && !has_runs_in(client, RunState::Running).await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Internal(format!("the runs did not finish within {} s", limit.as_secs())));
        }
        tokio::time::sleep(FINISH_POLL).await;
    }
}

async fn has_runs_in(client: &mut Client, state: RunState) -> Result<bool> {
    let request = proto::ListRunsRequest { state: state.into(), page_size: 1, ..Default::default() };
    let page = client.list_runs(request).await.map_err(rpc("ListRuns"))?.into_inner();
    Ok(!page.runs.is_empty())
}

async fn succeeded_noop_runs(client: &mut Client) -> Result<u64> {
    let stats = client.get_queue_stats(proto::GetQueueStatsRequest::default()).await.map_err(rpc("GetQueueStats"))?.into_inner();
    Ok(stats
        .counts
        .iter()
        .filter(|count| count.kind == "noop" && count.state == RunState::Succeeded as i32)
        .map(|count| count.count)
        .sum())
}

/// The create→start latencies of the given runs, read back a page at a time.
async fn read_back_latencies(client: &mut Client, ids: &HashSet<String>) -> Result<Vec<u64>> {
    let mut latencies = Vec::with_capacity(ids.len());
    let mut page_token = String::new();
    loop {
        let request = proto::ListRunsRequest {
            kind: "noop".into(),
            state: RunState::Succeeded.into(),
            page_size: PAGE_SIZE,
            page_token,
            ..Default::default()
        };
        let page = client.list_runs(request).await.map_err(rpc("ListRuns"))?.into_inner();
        for run in page.runs.iter().filter(|run| ids.contains(&run.id)) {
            latencies.push(start_latency(run)?);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if latencies.len() != ids.len() {
        loud_warning(format_args!("read back {} of {} runs for the latency under load", latencies.len(), ids.len()));
    }
    Ok(latencies)
}

// ---------------------------------------------------------------------------------------------
// Workload: log fan-out.

/// The shape of one fan-out measurement.
#[derive(Debug, Clone, Copy)]
struct Fanout {
    lines: u64,
    burst: u64,
    followers: usize,
    interval_ms: u64,
}

impl Fanout {
    fn name(&self) -> String {
        match self.interval_ms {
            0 => "log fan-out (full speed)".to_owned(),
            ms => format!("log fan-out ({} lines/{ms} ms)", self.burst),
        }
    }
}

/// What one follower saw.
#[derive(Debug, Default)]
struct Followed {
    /// Lines received, duplicates included.
    received: u64,
    /// Lines received again (a sequence at or below the last one).
    duplicates: u64,
    /// Lines skipped (a jump in the sequence).
    missing: u64,
    /// The last sequence received.
    last: u64,
    /// `Lagged` notices received.
    lagged: u64,
    /// Stream messages received.
    messages: u64,
    /// Receive time minus line time, per line, in microseconds.
    latencies: Vec<u32>,
    /// The `time` of line 1 and of the last line.
    first_line_time: Option<i64>,
    last_line_time: Option<i64>,
    /// When the last line arrived.
    last_receive: i64,
}

impl Followed {
    fn complete(&self, lines: u64) -> bool {
        self.received == lines && self.duplicates == 0 && self.missing == 0 && self.last == lines
    }

    fn take(&mut self, lines: &[proto::LogLine]) {
        let now = Timestamp::now().as_micros();
        for line in lines {
            if line.sequence <= self.last {
                self.duplicates += 1;
                continue;
            }
            self.missing += line.sequence - self.last - 1;
            self.last = line.sequence;
            self.received += 1;
            let time = micros(line.time.as_ref()).unwrap_or(now);
            if line.sequence == 1 {
                self.first_line_time = Some(time);
            }
            self.last_line_time = Some(time);
            self.latencies.push(u32::try_from(now - time).unwrap_or(if now < time { 0 } else { u32::MAX }));
        }
        if !lines.is_empty() {
            self.last_receive = now;
        }
    }
}

async fn log_fanout(setup: Setup, addr: SocketAddr, fanout: Fanout, report: &mut Report) -> Result<()> {
    let workload = fanout.name();
    progress(setup, format_args!("{workload}: {} lines to {} followers", fanout.lines, fanout.followers));
    let mut control = connect(addr).await?;
    let key = format!("bench-fanout-{}", uuid::Uuid::now_v7().simple());
    // A sleeping run holds the concurrency key, so the echo run stays queued until every
    // follower is connected; cancelling the sleeper lets it start.
    let blocker = create(&mut control, sleep_request(&key)).await?;
    wait_until_running(&mut control, &blocker.id).await?;
    let echo = create(&mut control, echo_request(&key, fanout)).await?;

    let channels = connect_many(&[addr], FANOUT_CHANNELS.max(fanout.followers.div_ceil(FOLLOWERS_PER_CHANNEL))).await?;
    let (connected_tx, mut connected) = mpsc::channel(fanout.followers);
    let mut followers = JoinSet::new();
    for index in 0..fanout.followers {
        let client = channels[index % channels.len()].clone();
        followers.spawn(follow(client, echo.id.clone(), connected_tx.clone()));
    }
    drop(connected_tx);
    let ready = wait_connected(&mut connected, fanout.followers).await;
    // A follower's stream is open once the server has subscribed it; give the server a moment
    // to finish each follower's (empty) replay from the store, so the run is followed live.
    tokio::time::sleep(FANOUT_SETTLE).await;
    let cpu = CpuSample::take(&[]);
    let release = control.cancel_run(proto::CancelRunRequest { id: blocker.id, reason: "bench: followers connected".into(), force: true });
    if let Err(err) = ready.and(release.await.map(drop).map_err(rpc("CancelRun"))) {
        let _ = control.cancel_run(proto::CancelRunRequest { id: echo.id, reason: "bench aborted".into(), force: true }).await;
        return Err(err);
    }

    let limit = Duration::from_secs(120) + Duration::from_millis((fanout.interval_ms + 1) * fanout.lines * 4);
    let mut results = Vec::with_capacity(fanout.followers);
    let all = async {
        while let Some(joined) = followers.join_next().await {
            results.push(joined.map_err(task_failed)??);
        }
        Ok::<_, Error>(())
    };
    tokio::time::timeout(limit, all)
        .await
        .map_err(|_| Error::Internal(format!("{workload}: the followers did not finish within {} s", limit.as_secs())))??;
    let cpu = cpu.and_then(CpuSample::until_now);

    let finished = control.get_run(proto::GetRunRequest { id: echo.id }).await.map_err(rpc("GetRun"))?.into_inner();
    if finished.state != RunState::Succeeded as i32 || finished.last_log_sequence != fanout.lines {
        loud_warning(format_args!(
            "{setup}: the echo run ended {:?} with {} lines, expected succeeded with {}",
            RunState::try_from(finished.state).unwrap_or(RunState::Unspecified),
            finished.last_log_sequence,
            fanout.lines
        ));
    }
    report_fanout(&workload, setup, fanout, results, report);
    report.cpu_split(&workload, setup, cpu);
    Ok(())
}

/// Follows a run's log until it ends, after telling `connected` the stream is open.
async fn follow(mut client: Client, id: String, connected: mpsc::Sender<Result<()>>) -> Result<Followed> {
    let request = proto::TailLogsRequest { id, after_sequence: 0, follow: true };
    let mut stream = match client.tail_logs(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            let err = rpc("TailLogs")(status);
            let _ = connected.send(Err(Error::Internal(err.to_string()))).await;
            return Err(err);
        }
    };
    let _ = connected.send(Ok(())).await;
    drop(connected);
    let mut followed = Followed::default();
    while let Some(message) = stream.message().await.map_err(rpc("TailLogs"))? {
        followed.messages += 1;
        followed.take(&message.lines);
        if message.lagged.is_some() {
            followed.lagged += 1;
        }
    }
    Ok(followed)
}

async fn wait_connected(connected: &mut mpsc::Receiver<Result<()>>, followers: usize) -> Result<()> {
    let all = async {
        for _ in 0..followers {
            match connected.recv().await {
                Some(result) => result?,
                None => return Err(Error::Internal("a follower stopped before connecting".into())),
            }
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .map_err(|_| Error::Internal("the followers did not all connect within 120 s".into()))?
}

async fn wait_until_running(client: &mut Client, id: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = client.get_run(proto::GetRunRequest { id: id.to_owned() }).await.map_err(rpc("GetRun"))?.into_inner();
        if run.state == RunState::Running as i32 {
            return Ok(());
        }
        if run.state != RunState::Queued as i32 || Instant::now() > deadline {
            return Err(Error::Internal(format!("the fan-out's blocking run {id} did not start running")));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn report_fanout(workload: &str, setup: Setup, fanout: Fanout, results: Vec<Followed>, report: &mut Report) {
    let complete = results.iter().filter(|followed| followed.complete(fanout.lines)).count();
    let delivered: u64 = results.iter().map(|followed| followed.received).sum();
    let lagged: u64 = results.iter().map(|followed| followed.lagged).sum();
    let messages: u64 = results.iter().map(|followed| followed.messages).sum();
    let first_line = results.iter().filter_map(|followed| followed.first_line_time).min();
    let last_line = results.iter().filter_map(|followed| followed.last_line_time).max();
    let last_receive = results.iter().map(|followed| followed.last_receive).max();
    if complete != fanout.followers {
        let duplicates: u64 = results.iter().map(|followed| followed.duplicates).sum();
        let missing: u64 = results.iter().map(|followed| followed.missing).sum();
        loud_warning(format_args!(
            "{setup} {workload}: only {complete} of {} followers got every line exactly once \
             ({delivered} lines delivered of {}, {duplicates} duplicates, {missing} missing)",
            fanout.followers,
            u64::try_from(fanout.followers).unwrap_or(u64::MAX) * fanout.lines,
        ));
    }
    if let (Some(first), Some(last)) = (first_line, last_line)
        && last > first
    {
        let rate = (fanout.lines.saturating_sub(1)) as f64 / ((last - first) as f64 / 1e6);
        report.add(workload, setup, "lines produced by the run", rate, "lines/s", None);
    }
    if let (Some(first), Some(last)) = (first_line, last_receive) {
        let window = Duration::from_micros(u64::try_from(last - first).unwrap_or(0));
        report.add(workload, setup, "lines delivered (all followers)", per_second(delivered, window), "lines/s", None);
    }
    let summary = Summary::of(results.into_iter().flat_map(|followed| followed.latencies).collect());
    let paced = fanout.interval_ms > 0;
    report.add(workload, setup, "delivery p50", summary.p50_ms(), "ms", None);
    report.add(workload, setup, "delivery p99", summary.p99_ms(), "ms", paced.then(|| Target::at_most(100.0)));
    report.add(workload, setup, "delivery max", summary.max_ms(), "ms", None);
    let followers = fanout.followers as f64;
    report.add(workload, setup, "followers with every line once", complete as f64, "followers", Some(Target::at_least(followers)));
    report.note(format!(
        "{workload} [{setup}]: {messages} stream messages ({:.1} lines each on average); {lagged} lagged notices \
         (a follower fell behind the live ring and caught up from the store)",
        delivered as f64 / messages.max(1) as f64
    ));
}

// ---------------------------------------------------------------------------------------------
// Requests and client helpers.

fn noop_request() -> proto::CreateRunRequest {
    proto::CreateRunRequest { kind: "noop".into(), ..Default::default() }
}

fn sleep_request(key: &str) -> proto::CreateRunRequest {
    proto::CreateRunRequest {
        kind: "sleep".into(),
        input: Some(fields([("seconds", Kind::NumberValue(3600.0))])),
        concurrency_key: key.to_owned(),
        concurrency_limit: 1,
        ..Default::default()
    }
}

/// An echo run writing `fanout.burst` lines per write: its one entry of `lines` holds that many
/// lines (echo pauses after each entry; the log splits an entry at its newlines).
fn echo_request(key: &str, fanout: Fanout) -> proto::CreateRunRequest {
    let burst = usize::try_from(fanout.burst).unwrap_or(1);
    let entry = prost_types::Value { kind: Some(Kind::StringValue(vec![LOG_LINE; burst].join("\n"))) };
    proto::CreateRunRequest {
        kind: "echo".into(),
        input: Some(fields([
            ("lines", Kind::ListValue(prost_types::ListValue { values: vec![entry] })),
            ("repeat", Kind::NumberValue((fanout.lines / fanout.burst) as f64)),
            ("interval_ms", Kind::NumberValue(fanout.interval_ms as f64)),
        ])),
        concurrency_key: key.to_owned(),
        concurrency_limit: 1,
        ..Default::default()
    }
}

fn fields<const N: usize>(entries: [(&str, Kind); N]) -> prost_types::Struct {
    prost_types::Struct {
        fields: entries.into_iter().map(|(name, kind)| (name.to_owned(), prost_types::Value { kind: Some(kind) })).collect(),
    }
}

async fn create(client: &mut Client, request: proto::CreateRunRequest) -> Result<proto::Run> {
    Ok(client.create_run(request).await.map_err(rpc("CreateRun"))?.into_inner())
}

async fn connect(addr: SocketAddr) -> Result<Client> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|err| Error::Internal(format!("bad server address {addr}: {err}")))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|err| Error::Internal(format!("cannot connect to the bench server at {addr}: {err}")))?;
    Ok(RunServiceClient::new(channel).max_decoding_message_size(64 << 20))
}

/// `count` clients, each on an HTTP/2 connection of its own, to the servers in turn.
async fn connect_many(addrs: &[SocketAddr], count: usize) -> Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(count);
    for &addr in addrs.iter().cycle().take(count) {
        clients.push(connect(addr).await?);
    }
    Ok(clients)
}

/// One client per server, in the servers' order.
async fn connect_each(addrs: &[SocketAddr]) -> Result<Vec<Client>> {
    connect_many(addrs, addrs.len()).await
}

fn rpc(call: &'static str) -> impl Fn(tonic::Status) -> Error {
    move |status| Error::Internal(format!("{call} failed: {:?}: {}", status.code(), status.message()))
}

fn task_failed(err: tokio::task::JoinError) -> Error {
    Error::Internal(format!("a bench task failed: {err}"))
}

/// Microseconds since the epoch of a protobuf timestamp.
fn micros(time: Option<&prost_types::Timestamp>) -> Option<i64> {
    time.map(|time| time.seconds.saturating_mul(1_000_000).saturating_add(i64::from(time.nanos) / 1000))
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() { 0.0 } else { count as f64 / elapsed.as_secs_f64() }
}

fn loud_warning(message: fmt::Arguments<'_>) {
    eprintln!("\n!!!!!!!! WARNING: {message} !!!!!!!!\n");
}

// ---------------------------------------------------------------------------------------------
// Percentiles.

/// Percentiles of a set of latencies in microseconds, computed by sorting.
struct Summary {
    sorted: Vec<u64>,
}

impl Summary {
    fn of<T: Into<u64>>(values: Vec<T>) -> Self {
        let mut sorted: Vec<u64> = values.into_iter().map(Into::into).collect();
        sorted.sort_unstable();
        Self { sorted }
    }

    /// The nearest-rank percentile: the smallest value with at least `pct`% of values at or below it.
    fn percentile(&self, pct: f64) -> u64 {
        let len = self.sorted.len();
        if len == 0 {
            return 0;
        }
        let rank = ((pct / 100.0) * len as f64).ceil() as usize;
        self.sorted[rank.clamp(1, len) - 1]
    }

    fn p50_ms(&self) -> f64 {
        self.percentile(50.0) as f64 / 1000.0
    }

    fn p99_ms(&self) -> f64 {
        self.percentile(99.0) as f64 / 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.sorted.last().copied().unwrap_or(0) as f64 / 1000.0
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

/// A bound a figure is held to.
#[derive(Debug, Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn at_least(bound: f64) -> Self {
        Self::AtLeast(bound)
    }

    fn at_most(bound: f64) -> Self {
        Self::AtMost(bound)
    }

    fn met(self, value: f64) -> bool {
        match self {
            Self::AtLeast(bound) => value >= bound,
            Self::AtMost(bound) => value <= bound,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AtLeast(bound) => write!(f, ">= {}", number(*bound)),
            Self::AtMost(bound) => write!(f, "<= {}", number(*bound)),
        }
    }
}

fn number(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 || v.fract() == 0.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

/// One figure of the report.
struct Row {
    workload: String,
    setup: Setup,
    figure: &'static str,
    value: f64,
    unit: &'static str,
    target: Option<Target>,
}

/// The figures and notes gathered during a bench, printed at the end.
#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    fn add(&mut self, workload: &str, setup: Setup, figure: &'static str, value: f64, unit: &'static str, target: Option<Target>) {
        progress(setup, format_args!("{workload}: {figure} = {} {unit}", number(value)));
        self.rows.push(Row { workload: workload.to_owned(), setup, figure, value, unit, target });
    }

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Takes in the figures and notes of a report gathered elsewhere (on another thread).
    fn absorb(&mut self, other: Report) {
        self.rows.extend(other.rows);
        self.notes.extend(other.notes);
    }

    fn cpu_since(&mut self, workload: &str, setup: Setup, before: Option<CpuSample>) {
        self.cpu_split(workload, setup, before.and_then(CpuSample::until_now));
    }

    fn cpu_split(&mut self, workload: &str, setup: Setup, split: Option<CpuSplit>) {
        if let Some(split) = split {
            self.note(format!("{workload} [{setup}]: CPU {split}"));
        }
    }

    /// Writes every figure as one JSON object per line: `workload`, `store`, `processes` (null
    /// for the in-process server), `figure`, `value` and `unit`.
    fn write_json(&self, path: &std::path::Path) -> Result<()> {
        let lines: Vec<String> = self
            .rows
            .iter()
            .map(|row| {
                serde_json::json!({
                    "workload": row.workload,
                    "store": row.setup.store.to_string(),
                    "processes": row.setup.processes,
                    "figure": row.figure,
                    "value": row.value,
                    "unit": row.unit,
                })
                .to_string()
            })
            .collect();
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(path, text).map_err(|err| Error::invalid("json", format!("cannot write {}: {err}", path.display())))
    }

    fn print(&self) {
        if self.rows.is_empty() {
            return;
        }
        let header = ["workload", "store", "figure", "value", "unit", "target", "result"];
        let lines: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|row| {
                let (target, result) = match row.target {
                    Some(target) => (target.to_string(), if target.met(row.value) { "met" } else { "NOT MET" }),
                    None => ("-".to_owned(), "-"),
                };
                [row.workload.clone(), row.setup.to_string(), row.figure.to_owned(), number(row.value), row.unit.to_owned(), target, result.to_owned()]
            })
            .collect();
        let mut widths = header.map(str::len);
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let print_line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(column, (cell, width))| {
                    let pad = width - cell.chars().count();
                    if column == 3 { format!("{}{cell}", " ".repeat(pad)) } else { format!("{cell}{}", " ".repeat(pad)) }
                })
                .collect();
            println!("| {} |", padded.join(" | "));
        };
        println!();
        print_line(&header.map(str::to_owned));
        println!("|{}|", widths.map(|width| "-".repeat(width + 2)).join("|"));
        for line in &lines {
            print_line(line);
        }
        if !self.notes.is_empty() {
            println!();
            for note in &self.notes {
                println!("- {note}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting: where the time went, by thread group, from /proc (Linux only).

/// CPU ticks of this process's threads, of the server child processes, of the machine's
/// Postgres processes, and of the machine.
struct CpuSample {
    at: Instant,
    /// Per thread id: its name, whether it is the main thread, its ticks.
    threads: HashMap<String, (String, bool, u64)>,
    process: u64,
    /// The pids of the `conclave serve` child processes, and their ticks (all threads).
    children: Vec<u32>,
    children_ticks: u64,
    postgres: u64,
    machine_busy: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ThreadGroup {
    /// The server's tokio runtime (gRPC, engine, workers).
    Server,
    /// SQLite's connection threads.
    Sqlite,
    /// The bench's own clients.
    Client,
    Other,
}

/// CPU seconds spent during a workload, by whom.
struct CpuSplit {
    wall: f64,
    cores: usize,
    groups: HashMap<ThreadGroup, f64>,
    /// The rest of this process (threads not named above, or gone since).
    rest: f64,
    /// The busiest thread of this process: its name and seconds.
    busiest: (String, f64),
    /// The `conclave serve` child processes, when the bench started any: how many, and seconds.
    server_processes: Option<(usize, f64)>,
    /// Every process named `postgres` on the machine.
    postgres: f64,
    /// Everything else the machine did (other processes, the kernel on their behalf).
    elsewhere: f64,
}

impl fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = |group| self.groups.get(&group).copied().unwrap_or(0.0);
        let busiest = if self.wall > 0.0 { self.busiest.1 / self.wall * 100.0 } else { 0.0 };
        write!(f, "{:.2} s wall x {} cores: ", self.wall, self.cores)?;
        match self.server_processes {
            // The servers are child processes: this process holds only the clients.
            Some((count, seconds)) => write!(
                f,
                "bench clients {:.2} s, rest of the bench process {:.2} s; {count} server {} {seconds:.2} s; ",
                group(ThreadGroup::Client),
                self.rest + group(ThreadGroup::Other),
                if count == 1 { "process" } else { "processes" },
            )?,
            None => write!(
                f,
                "server runtime {:.2} s, SQLite threads {:.2} s, bench clients {:.2} s, rest of the process {:.2} s; \
                 busiest thread {} {:.2} s ({busiest:.0}% of wall); ",
                group(ThreadGroup::Server),
                group(ThreadGroup::Sqlite),
                group(ThreadGroup::Client),
                self.rest,
                self.busiest.0,
                self.busiest.1,
            )?,
        }
        write!(f, "postgres processes {:.2} s; other processes {:.2} s", self.postgres, self.elsewhere)?;
        let capacity = self.wall * self.cores as f64;
        if capacity > 0.0 && self.elsewhere / capacity > DISTURBED {
            write!(f, " -- DISTURBED: other processes took {:.0}% of the machine", self.elsewhere / capacity * 100.0)?;
        }
        Ok(())
    }
}

/// The share of the machine other processes may take before a workload's figures are flagged.
const DISTURBED: f64 = 0.10;

impl CpuSample {
    /// Samples now; `children` are the pids of the server child processes (if any).
    fn take(children: &[u32]) -> Option<Self> {
        let machine_busy = machine_busy_ticks()?;
        let process = stat_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?.1;
        let own_pid = std::process::id().to_string();
        let mut threads = HashMap::new();
        for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let Some((comm, ticks)) = read_stat(&entry.path()) else { continue };
            let tid = entry.file_name().to_string_lossy().into_owned();
            let is_main = tid == own_pid;
            threads.insert(tid, (comm, is_main, ticks));
        }
        let children_ticks = children.iter().filter_map(|pid| read_stat(&PathBuf::from(format!("/proc/{pid}")))).map(|(_, ticks)| ticks).sum();
        Some(Self {
            at: Instant::now(),
            threads,
            process,
            children: children.to_vec(),
            children_ticks,
            postgres: postgres_ticks(),
            machine_busy,
        })
    }

    fn until_now(self) -> Option<CpuSplit> {
        let wall = self.at.elapsed().as_secs_f64();
        let now = Self::take(&self.children)?;
        let tick = clock_tick();
        let mut groups = HashMap::new();
        let mut busiest = (String::new(), 0);
        let mut named = 0;
        for (tid, (comm, is_main, ticks)) in &now.threads {
            let before = self.threads.get(tid).map_or(0, |(_, _, ticks)| *ticks);
            let spent = ticks.saturating_sub(before);
            named += spent;
            *groups.entry(ThreadGroup::of(comm, *is_main)).or_insert(0.0) += spent as f64 * tick;
            if spent > busiest.1 {
                busiest = (comm.clone(), spent);
            }
        }
        let process = now.process.saturating_sub(self.process);
        let children = now.children_ticks.saturating_sub(self.children_ticks);
        let postgres = now.postgres.saturating_sub(self.postgres);
        let machine = now.machine_busy.saturating_sub(self.machine_busy);
        Some(CpuSplit {
            wall,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            groups,
            rest: process.saturating_sub(named) as f64 * tick,
            busiest: (busiest.0, busiest.1 as f64 * tick),
            server_processes: (!self.children.is_empty()).then_some((self.children.len(), children as f64 * tick)),
            postgres: postgres as f64 * tick,
            elsewhere: machine.saturating_sub(process + children + postgres) as f64 * tick,
        })
    }
}

impl ThreadGroup {
    fn of(comm: &str, is_main: bool) -> Self {
        if comm.starts_with(SERVER_THREAD) {
            Self::Server
        } else if comm.starts_with("sqlx-sqlite") {
            Self::Sqlite
        } else if is_main || comm.starts_with("tokio-r") {
            Self::Client
        } else {
            Self::Other
        }
    }
}

fn read_stat(dir: &std::path::Path) -> Option<(String, u64)> {
    stat_ticks(&std::fs::read_to_string(dir.join("stat")).ok()?)
}

/// Ticks of every process named `postgres` (the Postgres server and its backends).
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_str().is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|entry| read_stat(&entry.path()))
        .filter(|(comm, _)| comm == "postgres")
        .map(|(_, ticks)| ticks)
        .sum()
}

/// A thread's (or process's) name and user + system ticks from its `stat` file.
fn stat_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let mut fields = stat.get(close + 2..)?.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Busy ticks of all CPUs (everything but idle and I/O wait), from `/proc/stat`.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|value| value.parse().ok()).collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some(total.saturating_sub(idle))
}

/// Seconds per clock tick.
fn clock_tick() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { 1.0 / ticks as f64 } else { 0.01 }
}

// ---------------------------------------------------------------------------------------------
// The server under test and its store.

/// The store behind a bench server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    Sqlite,
    Postgres,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// What one measurement is of: a store, served in-process or by `processes` child processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Setup {
    store: StoreKind,
    processes: Option<usize>,
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.processes {
            None => write!(f, "{}", self.store),
            Some(1) => write!(f, "{}, 1 process", self.store),
            Some(count) => write!(f, "{}, {count} processes", self.store),
        }
    }
}

/// The server(s) a workload drives: where they listen, and the pids of the child processes
/// (none for the in-process server, whose threads are accounted for by name).
struct Servers {
    addrs: Vec<SocketAddr>,
    pids: Vec<u32>,
}

/// A fresh database for one bench run, removed by [`BenchDatabase::remove`].
struct BenchDatabase {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Directory(PathBuf),
    PostgresDatabase { admin: String, name: String },
}

impl BenchDatabase {
    async fn create(store: StoreKind, admin: Option<&str>, report: &mut Report) -> Result<Self> {
        let unique = uuid::Uuid::now_v7().simple().to_string();
        match (store, admin) {
            (StoreKind::Sqlite, _) => {
                let dir = std::env::temp_dir().join(format!("conclave-bench-{unique}"));
                std::fs::create_dir_all(&dir).map_err(|err| Error::Internal(format!("cannot create {}: {err}", dir.display())))?;
                let url = format!("sqlite://{}", dir.join("conclave.db").display());
                Ok(Self { url, cleanup: Cleanup::Directory(dir) })
            }
            (StoreKind::Postgres, Some(admin)) => {
                let name = format!("conclave_bench_{unique}");
                let settings = postgres_admin(admin, &format!("CREATE DATABASE {name}")).await?;
                report.note(format!("postgres server settings: {settings}"));
                let url = database_url(admin, &name)?;
                Ok(Self { url, cleanup: Cleanup::PostgresDatabase { admin: admin.to_owned(), name } })
            }
            (StoreKind::Postgres, None) => Err(Error::invalid("database_url", "the Postgres bench needs an admin URL")),
        }
    }

    async fn remove(self) -> Result<()> {
        match self.cleanup {
            Cleanup::Directory(dir) => std::fs::remove_dir_all(&dir)
                .map_err(|err| Error::Internal(format!("cannot remove the bench directory {}: {err}", dir.display()))),
            Cleanup::PostgresDatabase { admin, name } => {
                postgres_admin(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.map(drop)
            }
        }
    }
}

/// Runs one statement on the admin database; returns the server's durability settings.
async fn postgres_admin(admin: &str, statement: &str) -> Result<String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .map_err(|err| Error::invalid("database_url", format!("cannot connect to the Postgres admin URL: {err}")))?;
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(&mut conn).await?;
    let mut settings = Vec::new();
    for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
        let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {setting}"))).fetch_one(&mut conn).await?;
        settings.push(format!("{setting}={value}"));
    }
    let _ = conn.close().await;
    Ok(settings.join(", "))
}

/// The admin URL with its database replaced by `name` (query parameters kept).
fn database_url(admin: &str, name: &str) -> Result<String> {
    let (base, query) = admin.split_once('?').map_or((admin, None), |(base, query)| (base, Some(query)));
    let authority = base.find("://").map(|at| at + 3).ok_or_else(|| Error::invalid("database_url", "must be a postgres:// URL"))?;
    let root = base[authority..].find('/').map_or(base, |slash| &base[..authority + slash]);
    Ok(match query {
        Some(query) => format!("{root}/{name}?{query}"),
        None => format!("{root}/{name}"),
    })
}

/// The name of the server runtime's threads (at most 15 bytes: Linux truncates thread names).
const SERVER_THREAD: &str = "conclave-server";

/// A server on its own runtime and threads, as a separate process would be, but observable.
struct BenchServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

/// What a [`BenchServer`] serves.
#[expect(clippy::large_enum_variant, reason = "one value, moved once into the server's thread")]
enum Served {
    /// Conclave, over the store at `url`.
    Conclave { url: String, config: EngineConfig, db_connections: u32, artifacts: ArtifactsConfig },
    /// The artifact transport alone: uploads that store nothing (see [`artifacts::serve_transport_only`]).
    ArtifactTransport,
}

impl BenchServer {
    async fn start(url: String, config: EngineConfig, db_connections: u32, artifacts: ArtifactsConfig) -> Result<Self> {
        Self::spawn(Served::Conclave { url, config, db_connections, artifacts }).await
    }

    /// A server whose uploads store nothing, on a runtime like Conclave's.
    async fn start_artifact_transport() -> Result<Self> {
        Self::spawn(Served::ArtifactTransport).await
    }

    async fn spawn(served: Served) -> Result<Self> {
        let (ready_tx, ready) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(SERVER_THREAD.into())
            .spawn(move || serve_on_own_runtime(served, ready_tx, stop_rx))
            .map_err(|err| Error::Internal(format!("cannot start the server thread: {err}")))?;
        match ready.await {
            Ok(Ok(addr)) => Ok(Self { addr, stop: Some(stop), thread: Some(thread) }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(join(thread).await.err().unwrap_or_else(|| Error::Internal("the server stopped while starting".into()))),
        }
    }

    /// Graceful shutdown, as on SIGTERM.
    async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => join(thread).await,
            None => Ok(()),
        }
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn join(thread: std::thread::JoinHandle<Result<()>>) -> Result<()> {
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(task_failed)?
        .map_err(|_| Error::Internal("the server thread panicked".into()))?
}

fn serve_on_own_runtime(served: Served, ready: oneshot::Sender<Result<SocketAddr>>, stop: oneshot::Receiver<()>) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()
        .map_err(|err| Error::Internal(format!("cannot build the server runtime: {err}")))?;
    runtime.block_on(async move {
        let stopped = async {
            let _ = stop.await;
        };
        // The engine, for Conclave; none for the transport alone.
        let opened = match served {
            Served::Conclave { url, config, db_connections, artifacts } => open_server(&url, config, db_connections, artifacts)
                .await
                .map(|(engine, listener, addr)| (Some(engine), listener, addr)),
            Served::ArtifactTransport => listen().await.map(|(listener, addr)| (None, listener, addr)),
        };
        let (engine, listener, addr) = match opened {
            Ok(opened) => opened,
            Err(err) => {
                let _ = ready.send(Err(err));
                return Ok(());
            }
        };
        let _ = ready.send(Ok(addr));
        match engine {
            Some(engine) => {
                engine.start();
                let options = server::ServeOptions { max_message_bytes: MAX_MESSAGE_BYTES, ..server::ServeOptions::default() };
                server::serve(engine, listener, options, stopped).await
            }
            None => artifacts::serve_transport_only(listener, stopped).await,
        }
    })
}

async fn open_server(url: &str, config: EngineConfig, db_connections: u32, artifacts: ArtifactsConfig) -> Result<(Engine, TcpListener, SocketAddr)> {
    let store = store::open(url, db_connections).await?;
    let router = Arc::new(crate::models::ModelsConfig::default().build(store.clone())?);
    let artifacts = Arc::new(Artifacts::open(store.clone(), artifacts)?);
    let engine = Engine::new(store, workflows::builtin_registry(Default::default()), router, artifacts, config);
    let (listener, addr) = listen().await?;
    Ok((engine, listener, addr))
}

/// A listener on a free loopback port, and its address.
async fn listen() -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|err| Error::Internal(format!("cannot listen on 127.0.0.1: {err}")))?;
    let addr = listener.local_addr().map_err(|err| Error::Internal(format!("no local address: {err}")))?;
    Ok((listener, addr))
}

// ---------------------------------------------------------------------------------------------
// `conclave serve` child processes.

/// `conclave serve` child processes of this executable sharing one database. They are killed if
/// this is dropped before [`ChildServers::shutdown`] (on an error or an interrupt), and they get
/// SIGTERM if the bench itself dies.
struct ChildServers {
    children: Vec<ChildServer>,
}

/// One `conclave serve` child process and the address it listens on.
struct ChildServer {
    addr: SocketAddr,
    child: tokio::process::Child,
}

impl ChildServers {
    /// Starts `count` processes, each once the one before answers its health check as serving
    /// (so the first alone applies the migrations).
    async fn start(count: usize, url: &str, args: &BenchArgs) -> Result<Self> {
        let exe = std::env::current_exe().map_err(|err| Error::Internal(format!("cannot find the conclave executable: {err}")))?;
        let mut servers = Self { children: Vec::with_capacity(count) };
        for number in 1..=count {
            // Kept before it is ready, so that a failure kills it along with the others.
            servers.children.push(ChildServer::spawn(&exe, url, args)?);
            if let Some(server) = servers.children.last_mut() {
                server.wait_until_serving(number, count).await?;
            }
        }
        Ok(servers)
    }

    fn servers(&self) -> Servers {
        Servers {
            addrs: self.children.iter().map(|server| server.addr).collect(),
            pids: self.children.iter().filter_map(|server| server.child.id()).collect(),
        }
    }

    /// Resolves when one of the processes exits (none should before the shutdown), saying which.
    async fn first_exit(&mut self) -> Error {
        let count = self.children.len();
        let waits = self.children.iter_mut().enumerate().map(|(index, server)| {
            Box::pin(async move {
                let status = server.child.wait().await;
                (index, server.addr, status)
            })
        });
        let ((index, addr, status), _, _) = futures::future::select_all(waits).await;
        exited_early(index, count, addr, status)
    }

    /// The first process that has already exited, if any: it explains a failed call better
    /// than the call's own error (a transport error, typically).
    fn exited(&mut self) -> Option<Error> {
        let count = self.children.len();
        self.children.iter_mut().enumerate().find_map(|(index, server)| match server.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(exited_early(index, count, server.addr, Ok(status))),
            Err(err) => Some(exited_early(index, count, server.addr, Err(err))),
        })
    }

    /// Sends every process SIGTERM (a graceful shutdown), kills those that have not exited
    /// within [`CHILD_EXIT_LIMIT`], and fails if any did not exit successfully.
    async fn shutdown(mut self) -> Result<()> {
        for server in &self.children {
            server.terminate();
        }
        let count = self.children.len();
        let mut failures = Vec::new();
        for (index, server) in self.children.iter_mut().enumerate() {
            let name = format!("process {} of {count} ({})", index + 1, server.addr);
            match tokio::time::timeout(CHILD_EXIT_LIMIT, server.child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => failures.push(format!("{name} exited with {status}")),
                Ok(Err(err)) => failures.push(format!("{name} could not be waited for: {err}")),
                Err(_) => {
                    let _ = server.child.kill().await;
                    failures.push(format!("{name} had not exited {} s after SIGTERM and was killed", CHILD_EXIT_LIMIT.as_secs()));
                }
            }
        }
        if failures.is_empty() { Ok(()) } else { Err(Error::Internal(format!("conclave serve: {}", failures.join("; ")))) }
    }
}

impl ChildServer {
    /// Starts `conclave serve` on a free loopback port, configured by flags alone: the bench's
    /// own `CONCLAVE_*` variables (but `CONCLAVE_LOG`) are not passed on.
    fn spawn(exe: &std::path::Path, url: &str, args: &BenchArgs) -> Result<Self> {
        let addr = free_loopback_addr()?;
        let mut command = tokio::process::Command::new(exe);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(|name| name.starts_with("CONCLAVE_") && name != "CONCLAVE_LOG") {
                command.env_remove(name);
            }
        }
        if std::env::var_os("CONCLAVE_LOG").is_none() {
            command.env("CONCLAVE_LOG", "warn");
        }
        command
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--workers")
            .arg(args.workers.to_string())
            .arg("--db-max-connections")
            .arg(args.db_connections.to_string())
            // In the environment rather than the arguments, where any user could read a password.
            .env("CONCLAVE_DATABASE_URL", url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        // SAFETY: the closure runs in the child between fork and exec, and calls only prctl,
        // which is async-signal-safe. It asks for SIGTERM when the thread that forked the child
        // ends: that is the bench's main thread, so when the bench dies, even by SIGKILL.
        unsafe {
            command.pre_exec(|| match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            });
        }
        let child = command.spawn().map_err(|err| Error::Internal(format!("cannot start {} serve: {err}", exe.display())))?;
        Ok(Self { addr, child })
    }

    /// Waits until the process answers its health check as serving; fails if it exits first or
    /// takes longer than [`CHILD_READY_LIMIT`].
    async fn wait_until_serving(&mut self, number: usize, count: usize) -> Result<()> {
        let name = format!("conclave serve (process {number} of {count}, {})", self.addr);
        let deadline = Instant::now() + CHILD_READY_LIMIT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Err(Error::Internal(format!("{name} exited with {status} before serving; its log is above"))),
                Ok(None) => {}
                Err(err) => return Err(Error::Internal(format!("{name} could not be waited for: {err}"))),
            }
            if self.serving().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Internal(format!("{name} was not serving within {} s", CHILD_READY_LIMIT.as_secs())));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the server answers `grpc.health.v1.Health/Check` with SERVING.
    async fn serving(&self) -> bool {
        use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};
        let Ok(endpoint) = Endpoint::from_shared(format!("http://{}", self.addr)) else { return false };
        let check = async {
            let mut health = HealthClient::new(endpoint.connect().await.ok()?);
            health.check(HealthCheckRequest { service: String::new() }).await.ok()
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), check).await,
            Ok(Some(response)) if response.get_ref().status == ServingStatus::Serving as i32
        )
    }

    /// Asks the process to shut down gracefully, as on SIGTERM.
    fn terminate(&self) {
        // `id` is `None` once the process has been reaped, so the pid cannot have been reused.
        if let Some(pid) = self.child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
}

/// The error for a child process that exited (or could not be waited for) before its shutdown.
fn exited_early(index: usize, count: usize, addr: SocketAddr, status: std::io::Result<std::process::ExitStatus>) -> Error {
    let how = match status {
        Ok(status) => format!("exited with {status}"),
        Err(err) => format!("could not be waited for: {err}"),
    };
    Error::Internal(format!("conclave serve (process {} of {count}, {addr}) {how} during the measurement", index + 1))
}

/// A loopback address whose port was free a moment ago (the child binds it itself).
fn free_loopback_addr() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|err| Error::Internal(format!("cannot listen on 127.0.0.1: {err}")))?;
    listener.local_addr().map_err(|err| Error::Internal(format!("no local address: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let summary = Summary::of((1..=100u64).rev().collect());
        assert_eq!(summary.percentile(50.0), 50);
        assert_eq!(summary.percentile(99.0), 99);
        assert_eq!(summary.percentile(100.0), 100);
        assert_eq!(Summary::of(Vec::<u64>::new()).percentile(99.0), 0);
    }

    #[test]
    fn the_bench_database_replaces_the_admin_database() {
        assert_eq!(database_url("postgres://u@h:5/postgres", "b").unwrap(), "postgres://u@h:5/b");
        assert_eq!(database_url("postgres://u@h:5/postgres?sslmode=disable", "b").unwrap(), "postgres://u@h:5/b?sslmode=disable");
        assert_eq!(database_url("postgres://u@h:5", "b").unwrap(), "postgres://u@h:5/b");
    }

    #[test]
    fn followers_count_duplicates_and_gaps() {
        let line = |sequence| proto::LogLine { sequence, time: Some(prost_types::Timestamp::default()), ..Default::default() };
        let mut followed = Followed::default();
        followed.take(&[line(1), line(2), line(2), line(4)]);
        assert_eq!((followed.received, followed.duplicates, followed.missing, followed.last), (3, 1, 1, 4));
        assert!(!followed.complete(4));
    }

    #[test]
    fn process_counts_need_postgres_and_name_the_setups() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: BenchArgs,
        }
        let parse = |line: &[&str]| <Cli as clap::Parser>::try_parse_from(line).unwrap().args;

        let args = parse(&["bench", "--store", "postgres", "--processes", "1,2,4"]);
        assert!(validate(&args).is_ok());
        let names: Vec<String> = setups(&args).iter().map(ToString::to_string).collect();
        assert_eq!(names, ["postgres, 1 process", "postgres, 2 processes", "postgres, 4 processes"]);

        assert!(validate(&parse(&["bench", "--processes", "2"])).is_err(), "SQLite is single-node");
        assert!(validate(&parse(&["bench", "--store", "postgres", "--processes", "0"])).is_err());
        assert!(validate(&parse(&["bench", "--store", "postgres", "--processes", "2", "--only", "logs"])).is_err());
        assert!(validate(&parse(&["bench", "--store", "postgres", "--processes", "2", "--only", "models"])).is_err());
        let names: Vec<String> = setups(&parse(&["bench", "--store", "both"])).iter().map(ToString::to_string).collect();
        assert_eq!(names, ["sqlite", "postgres"]);
    }

    #[test]
    fn the_models_workload_is_named_alone_and_takes_positive_counts() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: BenchArgs,
        }
        let parse = |line: &[&str]| <Cli as clap::Parser>::try_parse_from(line).unwrap().args;

        assert_eq!(parse(&["bench"]).only, None, "the default workloads stay the server's");
        let args = parse(&["bench", "--only", "models", "--model-calls", "100", "--model-callers", "4", "--journaled-calls", "50"]);
        assert_eq!(args.only, Some(Workload::Models));
        assert_eq!((args.model_calls, args.model_callers, args.journaled_calls, args.generate_runs), (100, 4, 50, 200));
        assert!(validate(&args).is_ok());
        for zero in ["--model-calls", "--model-callers", "--journaled-calls", "--generate-runs"] {
            assert!(validate(&parse(&["bench", "--only", "models", zero, "0"])).is_err(), "{zero} 0");
        }
    }

    #[test]
    fn thread_stat_lines_parse() {
        let stat = "42 (conclave-server) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 4 0 100 0 0";
        assert_eq!(stat_ticks(stat), Some(("conclave-server".to_owned(), 10)));
    }
}
