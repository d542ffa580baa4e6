//! Maintenance: every interval, rescue runs whose lease lapsed (their worker died or hung) and
//! fail runs past their deadline, wherever they are held.

use std::sync::Arc;

use super::{lifecycle, Core};
use crate::{
    domain::{RunId, Timestamp},
    error::{Error, Result},
};

/// Runs a sweep every maintenance interval until shutdown.
pub(super) async fn maintain(core: Arc<Core>) {
    let mut ticks = tokio::time::interval(core.config.maintenance_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = core.shutdown.cancelled() => return,
        }
        if let Err(err) = sweep(&core).await {
            tracing::warn!(error = %err, "maintenance sweep failed; will retry");
        }
    }
}

const SWEEP_BATCH: u32 = 500;

/// One pass: rescue lapsed leases, then expire deadlines.
pub(super) async fn sweep(core: &Core) -> Result<()> {
    let now = Timestamp::now();
    let policy = core.config.retry;
    for id in core.store.expired_leases(now, SWEEP_BATCH).await? {
        let transition = apply(core, id, move |run| lifecycle::rescue(run, &policy, now)).await?;
        if let Some(run) = transition {
            tracing::info!(run = %run, "rescued a run whose lease expired");
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
    Ok(())
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
