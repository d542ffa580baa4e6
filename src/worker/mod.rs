//! `conclave worker`: the built-in kinds executed in a process of their own, against remote
//! servers over `WorkerService`. It registers, takes assignments from a stream (reconnecting,
//! and failing over between the servers it was given), heartbeats every lease it holds at once,
//! and executes each run with the same executor as a server's pool (see `engine::attempt`).
//! On SIGINT/SIGTERM, or when an operator drains it, it finishes what it holds (releasing what
//! is still running after the grace period) and stops.

mod remote;

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use remote::{RemoteHost, Servers};

use crate::{
    api::convert,
    domain::{ErrorCode, RunError, RunId},
    engine::{self, Attempt, AttemptHost, AttemptSettings, Ending, Registry, Signals},
    error::{Error, Result},
    proto,
    store::LeaseStatus,
    workflows::{self, ShellConfig},
};

/// Options of `conclave worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// A server to work for (`http://host:port`); repeat it to fail over between servers that
    /// share one Postgres.
    #[arg(long = "server", required = true, env = "CONCLAVE_SERVER", value_delimiter = ',')]
    pub servers: Vec<String>,
    /// The worker's id, to keep it across restarts; a new one is given when unset.
    #[arg(long, env = "CONCLAVE_WORKER_ID", default_value = "")]
    pub worker_id: String,
    /// A name for people; defaults to the host name and process id.
    #[arg(long, env = "CONCLAVE_WORKER_NAME")]
    pub name: Option<String>,
    /// How many runs to execute at once.
    #[arg(long, env = "CONCLAVE_WORKER_CAPACITY", default_value_t = 16)]
    pub capacity: u32,
    /// The kinds to execute (default: every built-in kind this worker can run).
    #[arg(long = "kind", value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Also run the `shell` kind (arbitrary commands on this machine).
    #[arg(long, env = "CONCLAVE_ENABLE_SHELL")]
    pub enable_shell: bool,
    /// How long runs may take to finish when the worker stops, before they are released.
    #[arg(long, default_value_t = 10.0)]
    pub shutdown_grace_seconds: f64,
    /// How long a cancelled run may take to stop before it is stopped by force.
    #[arg(long, default_value_t = 10.0)]
    pub cancel_grace_seconds: f64,
}

/// The runs this worker holds, with their lease epochs and signals.
type Held = Arc<Mutex<HashMap<RunId, (u64, Signals)>>>;

fn held(held: &Held) -> std::sync::MutexGuard<'_, HashMap<RunId, (u64, Signals)>> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the worker until `shutdown` resolves or it is drained.
pub async fn run(args: WorkerArgs, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
    let seconds = |field: &str, value: f64| {
        if (0.0..1e6).contains(&value) {
            Ok(Duration::from_secs_f64(value))
        } else {
            Err(Error::invalid(field, format!("must be a number of seconds, not {value}")))
        }
    };
    let shutdown_grace = seconds("shutdown_grace_seconds", args.shutdown_grace_seconds)?;
    let cancel_grace = seconds("cancel_grace_seconds", args.cancel_grace_seconds)?;
    let registry = workflows::builtin_registry(ShellConfig { enabled: args.enable_shell, ..ShellConfig::default() });
    let kinds = if args.kinds.is_empty() { registry.kinds() } else { args.kinds.clone() };
    if let Some(unknown) = kinds.iter().find(|kind| registry.get(kind).is_none()) {
        return Err(Error::invalid("kind", format!("this worker cannot run `{unknown}`; it runs: {}", registry.kinds().join(", "))));
    }
    let servers = Servers::new(&args.servers)?;
    let request = proto::RegisterWorkerRequest {
        worker_id: args.worker_id.clone(),
        name: args.name.clone().unwrap_or_else(|| format!("conclave worker (pid {})", std::process::id())),
        kinds,
        providers: Vec::new(),
        labels: Default::default(),
        capacity: args.capacity,
    };
    let registered = servers
        .call(|mut client| {
            let request = request.clone();
            async move { client.register_worker(request).await }
        })
        .await?;
    let worker = registered.worker.ok_or_else(|| Error::Internal("the server registered no worker".into()))?;
    let heartbeat_interval = registered.heartbeat_interval.map(|d| convert::from_duration(d, "heartbeat_interval")).transpose()?.unwrap_or(Duration::from_secs(5));
    let lease_ttl = registered.lease_ttl.map(|d| convert::from_duration(d, "lease_ttl")).transpose()?.unwrap_or(Duration::from_secs(15));
    tracing::info!(worker = %worker.id, kinds = ?worker.kinds, capacity = worker.capacity, "registered");

    let host = Arc::new(RemoteHost::new(servers.clone(), lease_ttl));
    let settings = AttemptSettings { heartbeat_interval, lease_ttl, cancel_grace, log_buffer: 4096, log_batch: 1000 };
    let worker = Worker { id: worker.id, servers, host, registry, settings, held: Held::default(), tasks: TaskTracker::new(), stop: CancellationToken::new() };
    worker.serve(shutdown, shutdown_grace).await
}

/// A registered worker at work.
struct Worker {
    id: String,
    servers: Servers,
    host: Arc<RemoteHost>,
    registry: Registry,
    settings: AttemptSettings,
    held: Held,
    tasks: TaskTracker,
    /// Stop taking assignments.
    stop: CancellationToken,
}

impl Worker {
    async fn serve(self, shutdown: impl Future<Output = ()> + Send, grace: Duration) -> Result<()> {
        let worker = Arc::new(self);
        let heartbeats = tokio::spawn(worker.clone().heartbeat_loop());
        tokio::select! {
            () = worker.clone().assignment_loop() => tracing::info!("drained: every run finished"),
            () = shutdown => tracing::info!("stopping: finishing the runs held"),
        }
        worker.stop.cancel();
        worker.tasks.close();
        if tokio::time::timeout(grace, worker.tasks.wait()).await.is_err() {
            tracing::info!(runs = held(&worker.held).len(), "grace period over; releasing the runs still running");
            for (_, signals) in held(&worker.held).values() {
                signals.release.cancel();
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), worker.tasks.wait()).await;
        }
        heartbeats.abort();
        let request = proto::StopWorkerRequest { worker_id: worker.id.clone() };
        worker.servers.call(|mut client| {
            let request = request.clone();
            async move { client.stop_worker(request).await }
        })
        .await
        .map(drop)
    }

    /// Receives assignments until drained (and every run finished) or stopped.
    async fn assignment_loop(self: Arc<Self>) {
        let mut draining = false;
        let mut backoff = Duration::from_millis(100);
        while !self.stop.is_cancelled() {
            let (index, mut client) = self.servers.client();
            let request = proto::ReceiveAssignmentsRequest { worker_id: self.id.clone() };
            let mut stream = match client.receive_assignments(request).await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    tracing::warn!(error = %status.message(), "cannot receive assignments; retrying");
                    self.servers.fail_over(index);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            loop {
                let message = tokio::select! {
                    message = stream.message() => message,
                    () = self.stop.cancelled() => return,
                };
                match message {
                    Ok(Some(proto::Assignment { kind: Some(kind) })) => self.handle(kind, &mut draining),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(status) => {
                        tracing::warn!(error = %status.message(), "assignment stream broke; reconnecting");
                        self.servers.fail_over(index);
                        break;
                    }
                }
                if draining {
                    break;
                }
            }
            if draining {
                self.tasks.close();
                self.tasks.wait().await;
                return;
            }
        }
    }

    fn handle(self: &Arc<Self>, message: proto::assignment::Kind, draining: &mut bool) {
        use proto::assignment::Kind;
        match message {
            Kind::Run(assignment) => self.start(assignment),
            Kind::Revoked(revoked) => {
                let Ok(run) = RunId::parse("run_id", &revoked.run_id) else { return };
                if let Some((epoch, signals)) = held(&self.held).get(&run)
                    && *epoch == revoked.epoch
                {
                    tracing::warn!(run = %run, reason = %revoked.reason, "lease revoked; stopping the run");
                    signals.lost.cancel();
                }
            }
            Kind::Cancel(cancel) => {
                let Ok(run) = RunId::parse("run_id", &cancel.run_id) else { return };
                if let Some((_, signals)) = held(&self.held).get(&run) {
                    signals.cancel.cancel();
                }
            }
            Kind::Drain(_) => {
                tracing::info!("asked to drain: finishing the runs held, taking no new ones");
                *draining = true;
            }
            Kind::Heartbeat(_) => {}
        }
    }

    /// Starts executing an assignment in a task of its own.
    fn start(self: &Arc<Self>, assignment: proto::RunAssignment) {
        let decoded = assignment.run.ok_or_else(|| Error::invalid("run", "missing")).and_then(convert::from_run).and_then(|run| {
            let journal = assignment.journal.into_iter().map(convert::from_journal_entry).collect::<Result<Vec<_>>>()?;
            Ok((run, journal))
        });
        let (run, journal) = match decoded {
            Ok(decoded) => decoded,
            Err(err) => {
                tracing::error!(error = %err, "could not decode an assignment; its lease will lapse and it will be rescued");
                return;
            }
        };
        let Some(lease) = run.lease.clone() else { return };
        let signals = Signals::default();
        {
            let mut held = held(&self.held);
            if held.contains_key(&run.id) {
                return;
            }
            held.insert(run.id, (lease.epoch, signals.clone()));
        }
        self.host.confirm(run.id, LeaseStatus::Held { cancel_requested: run.cancel_requested });
        let worker = self.clone();
        self.tasks.spawn(async move {
            let id = run.id;
            let host: Arc<dyn AttemptHost> = worker.host.clone();
            match worker.registry.get(&run.kind) {
                Some(workflow) => {
                    let journal = journal.into_iter().map(|entry| (entry.key, entry.output)).collect();
                    engine::execute_attempt(host, workflow, Attempt { run, lease, journal }, signals, worker.settings).await;
                }
                None => {
                    let error = RunError::new(ErrorCode::Unsupported, format!("this worker does not run kind `{}`", run.kind), false, run.attempt);
                    if let Err(err) = host.finish(&lease, Ending::Failed(error)).await {
                        tracing::warn!(run = %id, error = %err, "could not report an unsupported kind");
                    }
                }
            }
            held(&worker.held).remove(&id);
            worker.host.forget(id).await;
        });
    }

    /// Heartbeats every interval, naming every run held: the server extends their leases and
    /// says which are lost or asked to cancel.
    async fn heartbeat_loop(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.settings.heartbeat_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let runs: Vec<proto::HeldRun> =
                held(&self.held).iter().map(|(run, (epoch, _))| proto::HeldRun { run_id: run.to_string(), epoch: *epoch }).collect();
            let request = proto::HeartbeatRequest { worker_id: self.id.clone(), runs };
            let reply = self
                .servers
                .call(|mut client| {
                    let request = request.clone();
                    async move { client.heartbeat(request).await }
                })
                .await;
            let reply = match reply {
                Ok(reply) => reply,
                Err(err) => {
                    tracing::warn!(error = %err, "heartbeat failed; retrying");
                    continue;
                }
            };
            for status in reply.runs {
                let Ok(run) = RunId::parse("run_id", &status.run_id) else { continue };
                let lease = if status.held { LeaseStatus::Held { cancel_requested: status.cancel_requested } } else { LeaseStatus::Lost };
                self.host.confirm(run, lease);
                if let Some((_, signals)) = held(&self.held).get(&run) {
                    if !status.held {
                        signals.lost.cancel();
                    } else if status.cancel_requested {
                        signals.cancel.cancel();
                    }
                }
            }
            if reply.drain {
                // The assignment stream says so too; stop taking runs either way.
                tracing::debug!("the server asks this worker to drain");
            }
        }
    }
}
