//! The one shared execution engine: a priority queue of runs claimed under leases by a pool of
//! in-process workers, journaled steps, retries, timeouts, cancellation, waiting for decisions,
//! rescue of lapsed leases, and the fan-out of every event and log line to whoever watches.
//!
//! The engine knows nothing of what a kind does (see [`Registry`]); a workflow knows nothing of
//! leases (see [`RunContext`]).

mod attempt;
mod commit;
mod context;
mod executor;
mod follow;
mod host;
mod hub;
pub mod lifecycle;
mod maintenance;
mod peers;
mod registry;
mod service;
mod workers;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use tokio::sync::watch;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use attempt::{execute as execute_attempt, Attempt, Signals};
pub use context::{MemoryRecord, RunContext, WorkflowError};
pub use host::{AttemptHost, AttemptSettings, Ending};
pub use follow::Delivery;
pub use registry::{Registry, Workflow};
pub use service::{CreateRunRequest, ListRunsRequest, QueueStats};
pub use crate::store::Pruned;
pub use workers::{AssignmentMessage, HeartbeatReply, HeldStatus, LogAppender, RegisterWorkerRequest, Registration};

use self::{commit::Committer, hub::Hub, lifecycle::RetryPolicy};
use crate::{
    artifacts::Artifacts,
    domain::{Lease, LogLine, Run, RunEvent, RunId, RunState, Timestamp, WorkerId, WorkspaceId},
    error::Result,
    models::Router,
    store::{ClaimRequest, SharedStore, Transition, Update},
};

/// How the engine behaves; every duration and limit is configurable.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This process's worker identity, recorded on the leases it takes.
    pub worker_id: WorkerId,
    /// How many runs this process executes at once.
    pub worker_slots: usize,
    /// How long a lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// How often a running run's lease is extended.
    pub heartbeat_interval: Duration,
    /// How often expired leases and deadlines are checked.
    pub maintenance_interval: Duration,
    /// The safety-net poll of the queue when no wake-up arrives.
    pub poll_interval: Duration,
    /// Attempts of a run created without `max_attempts`.
    pub default_max_attempts: u32,
    /// Time limit of an attempt of a run created without one.
    pub default_attempt_timeout: Duration,
    /// The longest attempt timeout a run may ask for.
    pub max_attempt_timeout: Duration,
    /// Backoff between attempts.
    pub retry: RetryPolicy,
    /// How long a cancelled run may take to stop before it is stopped by force.
    pub cancel_grace: Duration,
    /// How long shutdown waits for running runs before releasing them to the queue.
    pub shutdown_grace: Duration,
    /// How long a watch or tail stream may stay silent before a heartbeat.
    pub stream_heartbeat: Duration,
    /// Batches a subscriber may fall behind before it lags.
    pub hub_capacity: usize,
    /// Log lines a run may buffer before logging waits for the store.
    pub log_buffer: usize,
    /// Log lines written per batch at most.
    pub log_batch: usize,
    /// How long what finished runs leave behind is kept.
    pub retention: Retention,
}

/// How long finished runs are kept; `None` keeps them forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events, logs and journal of finished runs are removed after this age.
    pub history: Option<Duration>,
    /// Finished runs themselves are deleted after this age.
    pub runs: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self { history: Some(Duration::from_secs(7 * DAY)), runs: Some(Duration::from_secs(30 * DAY)) }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            worker_id: WorkerId::new(format!("conclave-{}", std::process::id())),
            worker_slots: 64,
            lease_ttl: Duration::from_secs(15),
            heartbeat_interval: Duration::from_secs(5),
            maintenance_interval: Duration::from_secs(1),
            poll_interval: Duration::from_secs(1),
            default_max_attempts: 3,
            default_attempt_timeout: Duration::from_secs(3600),
            max_attempt_timeout: Duration::from_secs(7 * 24 * 3600),
            retry: RetryPolicy { base: Duration::from_secs(1), max: Duration::from_secs(300) },
            cancel_grace: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            stream_heartbeat: Duration::from_secs(15),
            hub_capacity: 1024,
            log_buffer: 4096,
            log_batch: 1000,
            retention: Retention::default(),
        }
    }
}

/// The one fan-out: live events and log lines to whoever watches, and the wake-up of the
/// workers when a run becomes claimable.
#[derive(Debug)]
struct Fanout {
    events: Arc<Hub<RunEvent>>,
    logs: Arc<Hub<LogLine>>,
    /// Wakes every claim loop (the pool's, and each external worker's): something became
    /// claimable. A counter, so no wake-up is lost while a loop is busy.
    wake: watch::Sender<u64>,
    /// Tells the other processes sharing the store (see `peers.rs`), when there are any.
    peers: Option<peers::Outbox>,
}

impl Fanout {
    /// Publishes a committed transition: its events to watchers, the end of the run to every
    /// follower when it finished, and a wake-up to the workers when it made a run claimable (or
    /// freed a place under a concurrency key).
    fn publish(&self, transition: &Transition) {
        if transition.events.is_empty() {
            return;
        }
        let run = &transition.run;
        self.events.publish(run.id, transition.events.clone());
        if run.state.is_terminal() {
            self.events.finish(run.id);
            self.logs.finish(run.id);
        }
        let wakes = run.state == RunState::Queued || (run.concurrency.is_some() && run.state != RunState::Running);
        if wakes {
            self.wake_workers();
        }
        if let Some(peers) = &self.peers {
            peers.events(run.id, run.state, wakes);
        }
    }

    /// Wakes every claim loop of this process.
    fn wake_workers(&self) {
        self.wake.send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Publishes stored log lines of a run.
    fn publish_logs(&self, run: RunId, lines: Vec<LogLine>) {
        self.logs.publish(run, lines);
        if let Some(peers) = &self.peers {
            peers.logs(run);
        }
    }
}

/// Messages a server stream buffers before its producer waits for the client.
const STREAM_BUFFER: usize = 64;

/// The engine's shared state.
#[derive(Debug)]
struct Core {
    store: SharedStore,
    registry: Registry,
    /// Every model call of the runs this process executes, and of `ModelService`.
    router: Arc<Router>,
    /// The artifacts of every run, and of `ArtifactService`.
    artifacts: Arc<Artifacts>,
    config: EngineConfig,
    fanout: Arc<Fanout>,
    committer: Committer,
    /// The signals of the runs this process's pool executes.
    active: Mutex<HashMap<RunId, Signals>>,
    /// Workspaces known to exist (workspaces are never deleted), to spare a query per request.
    workspaces: Mutex<HashSet<WorkspaceId>>,
    /// Stop claiming and end streams.
    shutdown: CancellationToken,
    /// Give runs still executing back to the queue.
    release: CancellationToken,
    tasks: TaskTracker,
    busy: AtomicUsize,
}

impl Core {
    /// Applies a state-machine function to a run, through group commit, and publishes what
    /// changed.
    async fn update(&self, id: RunId, change: impl Fn(&Run) -> Result<Update> + Send + Sync + 'static) -> Result<Transition> {
        self.committer.update(id, Box::new(change)).await
    }

    /// Claims up to `limit` due runs of `kinds` for a worker, and publishes the claims.
    async fn claim(&self, worker: &WorkerId, kinds: &[String], limit: u32) -> Result<Vec<Run>> {
        let request = ClaimRequest {
            worker_id: worker.clone(),
            kinds: kinds.to_vec(),
            limit,
            lease_ttl: self.config.lease_ttl,
            now: Timestamp::now(),
        };
        let claimed = self.store.claim_runs(&request).await?;
        Ok(claimed
            .into_iter()
            .map(|transition| {
                self.fanout.publish(&transition);
                transition.run
            })
            .collect())
    }

    /// Records how an attempt ended, wherever it ran.
    async fn end_attempt(&self, lease: &Lease, ending: Ending) -> Result<Transition> {
        let (lease, now, policy) = (lease.clone(), Timestamp::now(), self.config.retry);
        let id = lease.run_id;
        match ending {
            Ending::Succeeded(output) => self.update(id, move |run| lifecycle::succeed(run, &lease, output.clone(), now)).await,
            Ending::Failed(error) => self.update(id, move |run| lifecycle::fail_attempt(run, &lease, error.clone(), &policy, now)).await,
            Ending::Cancelled => self.update(id, move |run| lifecycle::cancelled_by_worker(run, &lease, now)).await,
            Ending::Released => self.update(id, move |run| lifecycle::release(run, &lease, now)).await,
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Signals>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The engine: the domain service behind `RunService`, and the workers that execute runs.
#[derive(Debug, Clone)]
pub struct Engine {
    core: Arc<Core>,
}

impl Engine {
    /// An engine over a store, running the kinds of a registry. Call [`Engine::start`] to begin
    /// executing runs. Must be called inside a Tokio runtime: it starts the group-commit writers
    /// (and, on Postgres, the announcements to and from the other processes).
    pub fn new(store: SharedStore, registry: Registry, router: Arc<Router>, artifacts: Arc<Artifacts>, config: EngineConfig) -> Self {
        let inbox = store.listen();
        let fanout = Arc::new(Fanout {
            events: Arc::new(Hub::new(config.hub_capacity)),
            logs: Arc::new(Hub::new(config.hub_capacity)),
            wake: watch::channel(0).0,
            peers: inbox.is_some().then(|| peers::Outbox::start(store.clone())),
        });
        if let Some(inbox) = inbox {
            peers::listen(inbox, Arc::downgrade(&fanout));
        }
        // SQLite admits one writer at a time; Postgres gains from a few transactions in flight.
        let writers = if store.backend() == "postgres" { 4 } else { 1 };
        let committer = Committer::start(store.clone(), fanout.clone(), writers);
        let core = Core {
            store,
            registry,
            router,
            artifacts,
            config,
            fanout,
            committer,
            active: Mutex::new(HashMap::new()),
            workspaces: Mutex::new(HashSet::new()),
            shutdown: CancellationToken::new(),
            release: CancellationToken::new(),
            tasks: TaskTracker::new(),
            busy: AtomicUsize::new(0),
        };
        Self { core: Arc::new(core) }
    }

    /// Starts the worker pool (registered as a worker, so `ListWorkers` shows it) and the
    /// maintenance loop.
    pub fn start(&self) {
        let core = self.core.clone();
        if core.config.worker_slots > 0 {
            self.core.tasks.spawn(async move {
                if let Err(err) = maintenance::register_pool(&core).await {
                    tracing::warn!(error = %err, "could not register this process's worker pool; it runs anyway");
                }
                executor::claim_loop(core).await;
            });
        }
        self.core.tasks.spawn(maintenance::maintain(self.core.clone()));
    }

    /// The store the engine runs on.
    pub fn store(&self) -> &SharedStore {
        &self.core.store
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.core.config
    }

    /// The kinds this engine runs.
    pub fn registry(&self) -> &Registry {
        &self.core.registry
    }

    /// The model router.
    pub fn router(&self) -> &Arc<Router> {
        &self.core.router
    }

    /// The artifacts.
    pub fn artifacts(&self) -> &Arc<Artifacts> {
        &self.core.artifacts
    }

    /// Runs being executed by this process right now.
    pub fn busy_slots(&self) -> usize {
        self.core.busy.load(Ordering::Relaxed)
    }

    /// A token that fires when shutdown begins.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.core.shutdown.clone()
    }

    /// Stops gracefully: takes no new runs, ends every stream, lets running runs finish within
    /// the grace period, then gives the rest back to the queue with their journals intact, so a
    /// restarted (or another) server resumes them without repeating finished steps.
    pub async fn shutdown(&self) {
        let core = &self.core;
        core.shutdown.cancel();
        core.tasks.close();
        if tokio::time::timeout(core.config.shutdown_grace, core.tasks.wait()).await.is_ok() {
            self.stop_pool().await;
            return;
        }
        let unfinished = core.active().len();
        tracing::info!(runs = unfinished, "shutdown grace elapsed; releasing unfinished runs to the queue");
        core.release.cancel();
        if tokio::time::timeout(Duration::from_secs(10), core.tasks.wait()).await.is_err() {
            tracing::warn!("some runs did not stop; their leases will expire and they will be rescued");
        }
        self.stop_pool().await;
    }

    /// Records that this process's pool stopped cleanly.
    async fn stop_pool(&self) {
        let core = &self.core;
        if core.config.worker_slots == 0 {
            return;
        }
        if let Err(err) = core.store.stop_worker(&core.config.worker_id, Timestamp::now()).await {
            tracing::warn!(error = %err, "could not record that this process's worker pool stopped");
        }
    }
}
