//! Runs: the one unit of durable work, and their lifecycle
//! `queued → running → (waiting ↔ running)* → succeeded | failed | cancelled`.

use std::{collections::BTreeMap, fmt, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{RunId, Timestamp, WorkerId, WorkspaceId};

/// The workspace that exists in every installation.
pub const DEFAULT_WORKSPACE: &str = "default";

/// Where a run is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for a worker.
    Queued,
    /// Held by a worker under a lease.
    Running,
    /// Waiting for a decision; holds no worker.
    Waiting,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Finished because it was cancelled.
    Cancelled,
}

impl RunState {
    /// Every state, in lifecycle order.
    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::Running,
        Self::Waiting,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Whether the run is finished.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// The state's name as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state of a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of a run failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The run's own work failed.
    Failed,
    /// An attempt ran past its timeout.
    Timeout,
    /// The run was not finished by its deadline.
    DeadlineExceeded,
    /// The worker's lease lapsed.
    LeaseExpired,
    /// An operator failed the run.
    ForceFailed,
    /// The run was cancelled.
    Cancelled,
    /// The kind rejected the run's input.
    InvalidInput,
    /// No worker can run this kind.
    Unsupported,
    /// A failure of Conclave itself.
    Internal,
    /// A model call got no answer after the router's retries and fallbacks.
    ModelFailed,
    /// A replay asked for a step its journal does not have.
    ReplayDiverged,
}

/// Why a run or one of its attempts failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// The class of failure.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// The attempt that failed.
    pub attempt: u32,
}

impl RunError {
    /// An error of the given class for an attempt.
    pub fn new(code: ErrorCode, message: impl Into<String>, retryable: bool, attempt: u32) -> Self {
        Self {
            code,
            message: message.into(),
            retryable,
            attempt,
        }
    }
}

/// A worker's hold on a running run. The epoch is a fencing token: it grows on every claim, and
/// the store refuses any write that carries an epoch which is no longer the run's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The run held.
    pub run_id: RunId,
    /// The worker holding it.
    pub worker_id: WorkerId,
    /// The fencing token.
    pub epoch: u64,
    /// When the lease lapses unless extended.
    pub expires_at: Timestamp,
}

impl Lease {
    /// A lease as a remote worker names it, by its fencing token alone: enough for every check,
    /// which compares epochs.
    pub fn fencing(run_id: RunId, epoch: u64) -> Self {
        Self { run_id, worker_id: WorkerId::new(String::new()), epoch, expires_at: Timestamp::from_micros(0) }
    }
}

/// What a waiting run waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// The wait point; decisions answer this key.
    pub key: String,
    /// The question asked.
    pub prompt: String,
    /// Since when.
    pub since: Timestamp,
}

/// What was decided for a waiting run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionOutcome {
    /// Go ahead.
    Approve,
    /// Do not go ahead.
    Reject,
    /// Structured input.
    Input(Map<String, Value>),
}

/// A decision with its optional note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// What was decided.
    pub outcome: DecisionOutcome,
    /// An optional note from whoever decided.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// A validated request to create a run.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// The id the run gets.
    pub id: RunId,
    /// The workspace it belongs to.
    pub workspace: WorkspaceId,
    /// Its kind.
    pub kind: String,
    /// Its input.
    pub input: Map<String, Value>,
    /// Higher first.
    pub priority: i32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Time limit of one attempt.
    pub attempt_timeout: Duration,
    /// Overall deadline.
    pub deadline: Option<Timestamp>,
    /// Concurrency key and its limit.
    pub concurrency: Option<(String, u32)>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Idempotency key.
    pub request_id: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// The run this one replays, if it is a replay.
    pub replay: Option<Replay>,
    /// Journal entries it starts with (a replay's copy of the replayed run's).
    pub journal: Vec<JournalEntry>,
    /// Decisions it starts with (a replay's copy of the replayed run's).
    pub decisions: BTreeMap<String, Decision>,
}

/// A journaled step's recorded result.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// The step's key, unique within the run.
    pub key: String,
    /// The step's result.
    pub output: Value,
    /// The attempt that executed it.
    pub attempt: u32,
    /// When it finished.
    pub finished_at: Timestamp,
    /// How long it took.
    pub duration: Duration,
}

/// How a replay re-executes the run it copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayMode {
    /// Every step from the copied journal; a step the journal lacks is a divergence, so no
    /// provider or tool is called.
    Exact,
    /// The journal up to a step; that step and the ones after it execute live.
    FromStep,
}

impl ReplayMode {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::FromStep => "from_step",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Exact, Self::FromStep].into_iter().find(|mode| mode.as_str() == name)
    }
}

/// What a replay run replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// The run it re-executes.
    pub of: RunId,
    /// How.
    pub mode: ReplayMode,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// Its workspace.
    pub workspace: WorkspaceId,
    /// Its kind.
    pub kind: String,
    /// Its state.
    pub state: RunState,
    /// Its input.
    pub input: Map<String, Value>,
    /// Its output, once succeeded.
    pub output: Option<Value>,
    /// The failure or cancellation cause, or the last failed attempt's error.
    pub error: Option<RunError>,
    /// Higher first.
    pub priority: i32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The current or last attempt (0 before the first start).
    pub attempt: u32,
    /// Time limit of one attempt.
    pub attempt_timeout: Duration,
    /// Overall deadline.
    pub deadline: Option<Timestamp>,
    /// Concurrency key and its limit.
    pub concurrency: Option<(String, u32)>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Idempotency key.
    pub request_id: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// First start.
    pub started_at: Option<Timestamp>,
    /// Finish time.
    pub finished_at: Option<Timestamp>,
    /// Last change.
    pub updated_at: Timestamp,
    /// Not started before this time.
    pub scheduled_at: Timestamp,
    /// What a waiting run waits for.
    pub waiting: Option<Waiting>,
    /// Decisions received, by wait key.
    pub decisions: BTreeMap<String, Decision>,
    /// The lease, while running.
    pub lease: Option<Lease>,
    /// Whether cancellation was requested.
    pub cancel_requested: bool,
    /// Sequence of the last event.
    pub last_event_sequence: u64,
    /// Sequence of the last log line.
    pub last_log_sequence: u64,
    /// When retention removed the run's events, logs and journal (the run itself remains).
    pub history_pruned_at: Option<Timestamp>,
    /// The run this one replays, if it is a replay.
    pub replay: Option<Replay>,
}

impl Run {
    /// Whether the run may have journaled steps when it is claimed: it has events beyond its
    /// creation and this claim, or it started with a copied journal (a replay).
    pub fn may_have_journal(&self) -> bool {
        self.last_event_sequence > 2 || self.replay.is_some()
    }
}

/// Filters and paging of a run listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunQuery {
    /// The workspace to list.
    pub workspace: Option<WorkspaceId>,
    /// Only this state.
    pub state: Option<RunState>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only runs with all these labels.
    pub labels: BTreeMap<String, String>,
    /// Only runs whose output has this top-level text field with this value (a debate's
    /// `outcome`).
    pub output_field: Option<(String, String)>,
    /// Page size (already validated).
    pub limit: u32,
    /// Only runs with an id below this one (from the page token).
    pub before: Option<RunId>,
}
