//! Several processes on one Postgres: what one commits, the others hear of at once. Each
//! transition and log append is announced (`NOTIFY`) as `origin|run|flags` (`e` events, `l` log lines, `f` finished, `w` wake
//! the workers); every process turns
//! the announcements of the others into pokes of its own fan-out: followers read the new items
//! from the store, finished runs end their streams, claimable runs wake the workers. A missed
//! announcement only delays: followers check the store when idle, workers poll the queue.

use std::sync::{Arc, Weak};

use tokio::sync::{broadcast, mpsc};

use super::Fanout;
use crate::{
    domain::{RunId, RunState},
    store::SharedStore,
};

/// Announcements sent per `NOTIFY` statement batch at most.
const BATCH: usize = 256;

/// Sends this process's announcements, batched, without ever blocking the caller.
#[derive(Debug)]
pub(super) struct Outbox {
    origin: String,
    messages: mpsc::UnboundedSender<String>,
}

impl Outbox {
    /// Starts the task that sends announcements through the store.
    pub(super) fn start(store: SharedStore) -> Self {
        let (messages, mut pending) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(first) = pending.recv().await {
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match pending.try_recv() {
                        Ok(message) => batch.push(message),
                        Err(_) => break,
                    }
                }
                if let Err(err) = store.notify(&batch).await {
                    tracing::warn!(error = %err, "could not notify the other processes; they will catch up by polling");
                }
            }
        });
        Self { origin: uuid::Uuid::now_v7().simple().to_string(), messages }
    }

    /// Announces new events of a run in a state; `wakes` when workers should look for runs.
    pub(super) fn events(&self, run: RunId, state: RunState, wakes: bool) {
        let mut flags = String::from("e");
        if state.is_terminal() {
            flags.push('f');
        }
        if wakes {
            flags.push('w');
        }
        self.send(run, &flags);
    }

    /// Announces new log lines of a run.
    pub(super) fn logs(&self, run: RunId) {
        self.send(run, "l");
    }

    fn send(&self, run: RunId, flags: &str) {
        let _ = self.messages.send(format!("{}|{run}|{flags}", self.origin));
    }
}

/// Applies the other processes' announcements to this process's fan-out, until it is gone.
pub(super) fn listen(mut inbox: broadcast::Receiver<String>, fanout: Weak<Fanout>) {
    tokio::spawn(async move {
        loop {
            let message = match inbox.recv().await {
                Ok(message) => message,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "missed notifications from other processes; followers will catch up by polling");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(fanout) = fanout.upgrade() else { return };
            apply(&fanout, &message);
        }
    });
}

fn apply(fanout: &Arc<Fanout>, message: &str) {
    let mut parts = message.split('|');
    let (Some(origin), Some(run), Some(flags)) = (parts.next(), parts.next(), parts.next()) else { return };
    let own = fanout.peers.as_ref().is_some_and(|peers| peers.origin == origin);
    let Ok(run) = RunId::parse("run", run) else { return };
    if own {
        return;
    }
    if flags.contains('e') {
        fanout.events.poke(run);
    }
    if flags.contains('l') {
        fanout.logs.poke(run);
    }
    if flags.contains('f') {
        fanout.events.finish(run);
        fanout.logs.finish(run);
    }
    if flags.contains('w') {
        fanout.wake_workers();
    }
}
