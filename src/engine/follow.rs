//! Replay-then-follow: the one way a client reads a run's events or log lines. Subscribe to the
//! hub first, replay what the store holds after the client's sequence, then follow live items,
//! filling any gap from the store and dropping duplicates, so the client sees every sequence
//! number exactly once, in order.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_util::sync::CancellationToken;

use super::hub::{Hub, Signal};
use crate::{
    domain::{LogLine, RunEvent, RunId},
    error::{Error, Result},
};

/// Items with a per-run sequence number.
pub trait Sequenced: Clone + Send + Sync + 'static {
    /// The item's position in its run's stream.
    fn sequence(&self) -> u64;
}

impl Sequenced for RunEvent {
    fn sequence(&self) -> u64 {
        self.sequence
    }
}

impl Sequenced for LogLine {
    fn sequence(&self) -> u64 {
        self.sequence
    }
}

/// What a follower sends to its client.
#[derive(Debug, Clone)]
pub enum Delivery<T> {
    /// Items in sequence order, continuing the previous delivery without a gap.
    Items(Vec<T>),
    /// Nothing happened for a while.
    Heartbeat { last_sequence: u64 },
    /// The client fell behind the live stream; the missed items follow, read from the store.
    Lagged { skipped: u64, last_sequence: u64 },
}

/// Reads up to `limit` stored items after a sequence number.
pub type ReadAfter<T> = Arc<dyn Fn(u64, u32) -> Pin<Box<dyn Future<Output = Result<Vec<T>>> + Send>> + Send + Sync>;

/// Reads whether the run is finished.
pub type IsFinished = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<bool>> + Send>> + Send + Sync>;

/// Everything a follower needs.
pub struct Follow<T> {
    /// The run followed.
    pub run: RunId,
    /// The client's last sequence.
    pub after: u64,
    /// Whether the run is finished (read after subscribing).
    pub finished: bool,
    /// Keep following live items (otherwise stop after the replay).
    pub follow: bool,
    /// The live side.
    pub hub: Arc<Hub<T>>,
    /// The stored side.
    pub read: ReadAfter<T>,
    /// Whether the run has finished, as stored (the safety net when no live signal arrives,
    /// e.g. for a run another process executes).
    pub is_finished: IsFinished,
    /// How long a stream may stay silent before a heartbeat.
    pub heartbeat: Duration,
    /// Fired when the server shuts down.
    pub shutdown: CancellationToken,
}

const REPLAY_BATCH: u32 = 1000;

impl<T: Sequenced> Follow<T> {
    /// Streams into `out` until the run finishes (or, without `follow`, until the replay ends),
    /// the client goes away, or the server shuts down. `subscription` must have been taken from
    /// the hub before `finished` was read.
    pub async fn run(self, mut subscription: tokio::sync::broadcast::Receiver<Signal<T>>, out: mpsc::Sender<Result<Delivery<T>>>) {
        let run = self.run;
        let hub = self.hub.clone();
        let result = self.stream(&mut subscription, &out).await;
        drop(subscription);
        hub.release(run);
        if let Err(err) = result {
            let _ = out.send(Err(err)).await;
        }
    }

    async fn stream(&self, live: &mut tokio::sync::broadcast::Receiver<Signal<T>>, out: &mpsc::Sender<Result<Delivery<T>>>) -> Result<()> {
        let mut last = self.after;
        if !self.catch_up(&mut last, u64::MAX, out).await? || self.finished || !self.follow {
            return Ok(());
        }
        loop {
            let signal = tokio::select! {
                signal = live.recv() => signal,
                () = tokio::time::sleep(self.heartbeat) => {
                    // Idle: check the store in case a live signal was missed, then heartbeat.
                    let before = last;
                    if !self.catch_up(&mut last, u64::MAX, out).await? {
                        return Ok(());
                    }
                    if (self.is_finished)().await? {
                        self.catch_up(&mut last, u64::MAX, out).await?;
                        return Ok(());
                    }
                    if last == before && !send(out, Delivery::Heartbeat { last_sequence: last }).await {
                        return Ok(());
                    }
                    continue;
                }
                () = self.shutdown.cancelled() => return Err(Error::ShuttingDown),
                () = out.closed() => return Ok(()),
            };
            match signal {
                Ok(Signal::Items(items)) => {
                    let Some(first) = items.iter().find(|item| item.sequence() > last) else { continue };
                    if first.sequence() > last + 1 && !self.catch_up(&mut last, first.sequence() - 1, out).await? {
                        return Ok(());
                    }
                    let fresh: Vec<T> = items.iter().filter(|item| item.sequence() > last).cloned().collect();
                    if let Some(newest) = fresh.last() {
                        last = newest.sequence();
                        if !send(out, Delivery::Items(fresh)).await {
                            return Ok(());
                        }
                    }
                }
                Ok(Signal::Poke) => {
                    if !self.catch_up(&mut last, u64::MAX, out).await? {
                        return Ok(());
                    }
                }
                Ok(Signal::Finished) | Err(RecvError::Closed) => {
                    self.catch_up(&mut last, u64::MAX, out).await?;
                    return Ok(());
                }
                Err(RecvError::Lagged(skipped)) => {
                    if !send(out, Delivery::Lagged { skipped, last_sequence: last }).await
                        || !self.catch_up(&mut last, u64::MAX, out).await?
                    {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Sends stored items after `last` up to `until`; false if the client went away.
    async fn catch_up(&self, last: &mut u64, until: u64, out: &mpsc::Sender<Result<Delivery<T>>>) -> Result<bool> {
        while *last < until {
            let mut batch = (self.read)(*last, REPLAY_BATCH).await?;
            batch.retain(|item| item.sequence() <= until);
            let Some(newest) = batch.last() else { break };
            *last = newest.sequence();
            let full = batch.len() as u32 >= REPLAY_BATCH;
            if !send(out, Delivery::Items(batch)).await {
                return Ok(false);
            }
            if !full {
                break;
            }
        }
        Ok(true)
    }
}

async fn send<T>(out: &mpsc::Sender<Result<Delivery<T>>>, delivery: Delivery<T>) -> bool {
    out.send(Ok(delivery)).await.is_ok()
}
