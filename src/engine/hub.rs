//! The one fan-out of live events and log lines. A topic per run is created when someone
//! subscribes and dropped when the last subscriber leaves; publishing to a run nobody watches
//! costs a map lookup. Each subscriber reads from a bounded broadcast ring, so a slow one never
//! blocks the run: it falls behind, is told how far, and catches up from the store.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::broadcast;

use crate::domain::RunId;

/// What a topic carries.
#[derive(Debug, Clone)]
pub enum Signal<T> {
    /// Newly committed items, in sequence order.
    Items(Arc<[T]>),
    /// New items are in the store (committed by another process): read them from there.
    Poke,
    /// The run finished: nothing more will be published for it.
    Finished,
}

/// Live fan-out of one kind of item (events or log lines), keyed by run.
#[derive(Debug)]
pub struct Hub<T> {
    topics: Mutex<HashMap<RunId, broadcast::Sender<Signal<T>>>>,
    capacity: usize,
}

impl<T: Clone + Send + Sync + 'static> Hub<T> {
    /// A hub whose subscribers may fall `capacity` batches behind before they lag.
    pub fn new(capacity: usize) -> Self {
        Self {
            topics: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, broadcast::Sender<Signal<T>>>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribes to a run's live items. Subscribe before reading the store, so nothing committed
    /// in between is missed.
    pub fn subscribe(&self, run: RunId) -> broadcast::Receiver<Signal<T>> {
        self.topics()
            .entry(run)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// Drops the run's topic if nobody listens any more (called when a subscriber leaves).
    pub fn release(&self, run: RunId) {
        let mut topics = self.topics();
        if topics.get(&run).is_some_and(|sender| sender.receiver_count() == 0) {
            topics.remove(&run);
        }
    }

    /// Publishes committed items of a run to its subscribers, if any.
    pub fn publish(&self, run: RunId, items: Vec<T>) {
        if items.is_empty() {
            return;
        }
        let mut topics = self.topics();
        let Some(sender) = topics.get(&run) else { return };
        if sender.send(Signal::Items(items.into())).is_err() {
            topics.remove(&run);
        }
    }

    /// Tells the run's subscribers, if any, that new items are in the store.
    pub fn poke(&self, run: RunId) {
        if let Some(sender) = self.topics().get(&run) {
            let _ = sender.send(Signal::Poke);
        }
    }

    /// Tells the run's subscribers it finished, and drops its topic.
    pub fn finish(&self, run: RunId) {
        if let Some(sender) = self.topics().remove(&run) {
            let _ = sender.send(Signal::Finished);
        }
    }
}
