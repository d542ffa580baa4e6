//! Maintenance. Every process heartbeats its own pool's worker record. One process, the leader
//! (see [`Store::try_lead`](crate::store::Store::try_lead)), also sweeps, every interval:
//! rescue runs whose lease lapsed, fail runs past their deadline, mark stale the workers that
//! stopped heartbeating (and rescue what they held), and apply retention. When the leader dies,
//! another process takes over at its next tick. Operators can rescue runs and apply retention
//! on demand.

use std::{sync::Arc, time::Duration};

use super::{lifecycle, Core, Engine};
use crate::{
    domain::{NewWorker, RunId, Timestamp, WorkerId},
    error::{Error, Result},
    store::Pruned,
};

/// How often retention runs on the leader.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

/// Runs a sweep every maintenance interval until shutdown.
pub(super) async fn maintain(core: Arc<Core>) {
    let mut ticks = tokio::time::interval(core.config.maintenance_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    let mut last_retention: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = core.shutdown.cancelled() => break,
        }
        if core.config.worker_slots > 0
            && let Err(err) = core.store.worker_heartbeat(&core.config.worker_id, Timestamp::now()).await
        {
            tracing::warn!(error = %err, "could not record this process's worker heartbeat; will retry");
        }
        let leads = match core.store.try_lead().await {
            Ok(leads) => leads,
            Err(err) => {
                tracing::warn!(error = %err, "could not check leadership; will retry");
                false
            }
        };
        if leads != leading {
            tracing::info!(leads, "maintenance leadership changed");
            leading = leads;
        }
        if !leads {
            continue;
        }
        if let Err(err) = sweep(&core).await {
            tracing::warn!(error = %err, "maintenance sweep failed; will retry");
        }
        if last_retention.is_none_or(|last| last.elapsed() >= RETENTION_INTERVAL) {
            last_retention = Some(tokio::time::Instant::now());
            let retention = core.config.retention;
            match prune(&core, retention.history, retention.runs).await {
                Ok(pruned) if pruned != Pruned::default() => tracing::info!(
                    histories = pruned.histories,
                    runs = pruned.runs,
                    blobs = pruned.blobs,
                    abandoned_uploads = pruned.abandoned_uploads,
                    "retention pruned finished runs and unreferenced artifact content"
                ),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "retention failed; will retry"),
            }
        }
    }
    core.store.resign().await;
}

/// Registers this process's pool as a worker, so `ListWorkers` shows it with its load.
pub(super) async fn register_pool(core: &Core) -> Result<()> {
    let config = &core.config;
    let worker = NewWorker {
        id: config.worker_id.clone(),
        name: format!("conclave serve (pid {})", std::process::id()),
        kinds: core.registry.kinds(),
        providers: Vec::new(),
        labels: Default::default(),
        capacity: u32::try_from(config.worker_slots).unwrap_or(u32::MAX),
        embedded: true,
    };
    core.store.register_worker(&worker, Timestamp::now()).await.map(drop)
}

const SWEEP_BATCH: u32 = 500;

/// One pass: rescue lapsed leases, expire deadlines, and take back what stale workers held.
pub(super) async fn sweep(core: &Core) -> Result<()> {
    let now = Timestamp::now();
    let policy = core.config.retry;
    for id in core.store.expired_leases(now, SWEEP_BATCH).await? {
        if apply(core, id, move |run| lifecycle::rescue(run, &policy, now)).await?.is_some() {
            tracing::info!(run = %id, "rescued a run whose lease expired");
        }
    }
    for id in core.store.overdue_runs(now, SWEEP_BATCH).await? {
        if apply(core, id, move |run| lifecycle::expire_deadline(run, now)).await?.is_some() {
            if let Some(active) = core.active().get(&id) {
                active.force.cancel();
            }
            tracing::info!(run = %id, "failed a run past its deadline");
        }
    }
    let cutoff = Timestamp::from_micros(now.as_micros().saturating_sub(micros(core.config.lease_ttl)));
    for worker in core.store.mark_stale_workers(cutoff, now).await? {
        let rescued = revoke_leases(core, &worker, &format!("worker {worker} stopped heartbeating")).await?;
        tracing::warn!(worker = %worker, runs = rescued.len(), "worker is stale; rescued the runs it held");
    }
    Ok(())
}

/// Takes back every run a worker holds.
async fn revoke_leases(core: &Core, worker: &WorkerId, reason: &str) -> Result<Vec<RunId>> {
    let (now, policy) = (Timestamp::now(), core.config.retry);
    let mut rescued = Vec::new();
    for lease in core.store.leases_of(worker).await? {
        let (held, reason) = (lease.clone(), reason.to_owned());
        match core.update(lease.run_id, move |run| lifecycle::revoke(run, &held, &reason, &policy, now)).await {
            Ok(_) => rescued.push(lease.run_id),
            Err(Error::StaleLease { .. } | Error::NotFound { .. }) => {}
            Err(err) => return Err(err),
        }
        if let Some(active) = core.active().get(&lease.run_id) {
            active.lost.cancel();
        }
    }
    Ok(rescued)
}

/// Applies retention: histories older than `history`, runs older than `runs` (`None`: keep),
/// then artifact content nothing references.
async fn prune(core: &Core, history: Option<Duration>, runs: Option<Duration>) -> Result<Pruned> {
    const BATCH: u32 = 1000;
    let now = Timestamp::now();
    let before = |age: Duration| Timestamp::from_micros(now.as_micros().saturating_sub(micros(age)));
    let mut pruned = Pruned::default();
    if let Some(age) = history {
        loop {
            let count = core.store.prune_histories(before(age), BATCH, now).await?;
            pruned.add(Pruned { histories: count, ..Pruned::default() });
            if count < u64::from(BATCH) || core.shutdown.is_cancelled() {
                break;
            }
        }
    }
    if let Some(age) = runs {
        loop {
            let count = core.store.delete_finished_runs(before(age), BATCH).await?;
            pruned.add(Pruned { runs: count, ..Pruned::default() });
            if count < u64::from(BATCH) || core.shutdown.is_cancelled() {
                break;
            }
        }
    }
    // Deleted runs and artifacts leave blobs behind; they go once no version references them.
    let collected = core.artifacts.collect().await?;
    pruned.add(Pruned { blobs: collected.blobs, abandoned_uploads: collected.abandoned_uploads, ..Pruned::default() });
    Ok(pruned)
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Applies a maintenance change; `Some(id)` if it changed the run (a run deleted meanwhile is
/// skipped).
async fn apply(
    core: &Core,
    id: RunId,
    change: impl Fn(&crate::domain::Run) -> Result<crate::store::Update> + Send + Sync + 'static,
) -> Result<Option<RunId>> {
    match core.update(id, change).await {
        Ok(transition) if transition.events.is_empty() => Ok(None),
        Ok(_) => Ok(Some(id)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

impl Engine {
    /// `RescueRuns`: takes back at once every run a worker holds (it is known to be dead), or,
    /// without a worker, every run whose lease has expired.
    pub async fn rescue_runs(&self, worker: Option<&WorkerId>) -> Result<Vec<RunId>> {
        let core = &self.core;
        if let Some(worker) = worker {
            self.get_worker(worker).await?;
            let rescued = revoke_leases(core, worker, &format!("an operator rescued the runs of worker {worker}")).await?;
            tracing::warn!(worker = %worker, runs = rescued.len(), "an operator rescued a worker's runs");
            return Ok(rescued);
        }
        let (now, policy) = (Timestamp::now(), core.config.retry);
        let mut rescued = Vec::new();
        for id in core.store.expired_leases(now, u32::MAX).await? {
            if apply(core, id, move |run| lifecycle::rescue(run, &policy, now)).await?.is_some() {
                rescued.push(id);
            }
        }
        Ok(rescued)
    }

    /// `PruneHistory`: applies retention now, with the given ages or the configured ones.
    pub async fn prune_history(&self, history: Option<Duration>, runs: Option<Duration>) -> Result<Pruned> {
        let retention = self.core.config.retention;
        prune(&self.core, history.or(retention.history), runs.or(retention.runs)).await
    }
}
