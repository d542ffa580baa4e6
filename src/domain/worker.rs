//! Workers: whoever executes runs. Each `conclave serve` process registers its built-in pool,
//! and external workers (any language, over `WorkerService`) register themselves. A worker
//! heartbeats; one that stops is marked stale, and the runs it held are rescued.

use std::collections::BTreeMap;

use super::{Timestamp, WorkerId};

/// Where a worker is in its life, as `ListWorkers` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerState {
    /// Heartbeating and taking runs.
    Active,
    /// Heartbeating, finishing the runs it holds, taking no new ones.
    Draining,
    /// Missed its heartbeats: presumed dead; its runs were rescued.
    Stale,
    /// Stopped cleanly.
    Stopped,
}

/// What a worker declares when it registers.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorker {
    /// Its id: generated for an external worker, the process's for a built-in pool.
    pub id: WorkerId,
    /// A name for people (a host, a role); not unique.
    pub name: String,
    /// The run kinds it executes.
    pub kinds: Vec<String>,
    /// The model providers it can call (for routing model work to it).
    pub providers: Vec<String>,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
    /// How many runs it executes at once.
    pub capacity: u32,
    /// Whether it is the built-in pool of a server process.
    pub embedded: bool,
}

/// A registered worker, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Worker {
    /// What it declared.
    pub spec: NewWorker,
    /// Whether it was asked to drain.
    pub draining: bool,
    /// When it registered.
    pub registered_at: Timestamp,
    /// Its last heartbeat.
    pub last_heartbeat_at: Timestamp,
    /// When maintenance found it had stopped heartbeating.
    pub stale_since: Option<Timestamp>,
    /// When it stopped cleanly.
    pub stopped_at: Option<Timestamp>,
    /// Runs it holds under a lease right now.
    pub running: u32,
}

impl Worker {
    /// Its id.
    pub fn id(&self) -> &WorkerId {
        &self.spec.id
    }

    /// Its state, derived from what is stored.
    pub fn state(&self) -> WorkerState {
        if self.stopped_at.is_some() {
            WorkerState::Stopped
        } else if self.stale_since.is_some() {
            WorkerState::Stale
        } else if self.draining {
            WorkerState::Draining
        } else {
            WorkerState::Active
        }
    }
}
