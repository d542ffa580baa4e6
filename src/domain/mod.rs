//! The domain's vocabulary: runs, their states, events, log lines, decisions and workers, as plain Rust
//! types shared by the engine, the workflows, the store and the API adapters.

mod event;
mod ids;
mod log;
mod run;
mod time;
mod worker;

pub use event::{EventKind, RunEvent};
pub use ids::{RunId, WorkerId, WorkspaceId};
pub use log::{LogLine, LogStream, NewLogLine};
pub use run::{
    Decision, DecisionOutcome, ErrorCode, JournalEntry, Lease, NewRun, Replay, ReplayMode, Run, RunError, RunQuery, RunState,
    Waiting, DEFAULT_WORKSPACE,
};
pub use time::Timestamp;
pub use worker::{NewWorker, Worker, WorkerState};

/// One page of a listing, with the token of the next page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The token of the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}
