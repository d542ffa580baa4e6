//! Group commit. Every run creation and every state change goes through here: requests that
//! arrive while a transaction is being written wait for the next one, so under load one
//! transaction carries many of them (with multi-row statements), and when idle each is written
//! at once. Transitions are published to the fan-out in commit order, before their callers hear
//! back, so watchers always receive a run's events in sequence order.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::Fanout;
use crate::{
    domain::{NewRun, Run, RunId},
    error::{Error, Result},
    store::{Created, SharedStore, Transition, Update, UpdateFn},
};

/// A state-machine function sent to the committer.
pub type Change = Box<dyn Fn(&Run) -> Result<Update> + Send + Sync>;

struct CreateJob {
    run: NewRun,
    reply: oneshot::Sender<Result<Created>>,
}

struct UpdateJob {
    id: RunId,
    change: Change,
    reply: oneshot::Sender<Result<Transition>>,
}

/// The most requests one transaction carries.
const MAX_BATCH: usize = 256;
/// Requests that may wait for a transaction before callers wait to enqueue.
const QUEUE: usize = 4096;

/// The handle through which the engine writes runs.
#[derive(Debug, Clone)]
pub(super) struct Committer {
    creates: mpsc::Sender<CreateJob>,
    updates: mpsc::Sender<UpdateJob>,
}

impl std::fmt::Debug for CreateJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateJob").field("run", &self.run.id).finish()
    }
}

impl std::fmt::Debug for UpdateJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateJob").field("id", &self.id).finish()
    }
}

impl Committer {
    /// Starts `writers` transaction loops of each kind over the store (one suits SQLite, which
    /// has a single writer; Postgres takes several).
    pub(super) fn start(store: SharedStore, fanout: Arc<Fanout>, writers: usize) -> Self {
        let (creates, create_jobs) = mpsc::channel(QUEUE);
        let (updates, update_jobs) = mpsc::channel(QUEUE);
        let create_jobs = Arc::new(Mutex::new(create_jobs));
        let update_jobs = Arc::new(Mutex::new(update_jobs));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_creates(store.clone(), fanout.clone(), create_jobs.clone()));
            tokio::spawn(write_updates(store.clone(), fanout.clone(), update_jobs.clone()));
        }
        Self { creates, updates }
    }

    /// Creates a run (see `Store::create_runs`) and publishes its first event.
    pub(super) async fn create(&self, run: NewRun) -> Result<Created> {
        let (reply, answer) = oneshot::channel();
        self.creates.send(CreateJob { run, reply }).await.map_err(|_| Error::ShuttingDown)?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Applies a state-machine function to a run (see `Store::update_runs`) and publishes what
    /// changed.
    pub(super) async fn update(&self, id: RunId, change: Change) -> Result<Transition> {
        let (reply, answer) = oneshot::channel();
        self.updates.send(UpdateJob { id, change, reply }).await.map_err(|_| Error::ShuttingDown)?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }
}

/// Takes the next batch: waits for one job, then whatever else is already waiting.
async fn next_batch<T>(jobs: &Mutex<mpsc::Receiver<T>>) -> Option<Vec<T>> {
    let mut jobs = jobs.lock().await;
    let first = jobs.recv().await?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}

async fn write_creates(store: SharedStore, fanout: Arc<Fanout>, jobs: Arc<Mutex<mpsc::Receiver<CreateJob>>>) {
    while let Some(batch) = next_batch(&jobs).await {
        let runs = batch.iter().map(|job| job.run.clone()).collect();
        match store.create_runs(runs).await {
            Ok(results) => {
                for (job, created) in batch.into_iter().zip(results) {
                    fanout.publish(&created.transition);
                    let _ = job.reply.send(Ok(created));
                }
            }
            Err(err) => {
                for job in batch {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }
}

async fn write_updates(store: SharedStore, fanout: Arc<Fanout>, jobs: Arc<Mutex<mpsc::Receiver<UpdateJob>>>) {
    while let Some(batch) = next_batch(&jobs).await {
        let changes: Vec<(RunId, UpdateFn<'_>)> = batch.iter().map(|job| (job.id, &*job.change as UpdateFn<'_>)).collect();
        match store.update_runs(&changes).await {
            Ok(results) => {
                drop(changes);
                for (job, result) in batch.into_iter().zip(results) {
                    if let Ok(transition) = &result {
                        fanout.publish(transition);
                    }
                    let _ = job.reply.send(result);
                }
            }
            Err(err) => {
                drop(changes);
                for job in batch {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }
}
