//! Run events: each run has one ordered stream of them, numbered from 1 without gaps. Every
//! state transition appends one in the same transaction as the transition itself.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Decision, RunError, RunId, RunState, Timestamp};

/// What happened to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The run was created.
    Created { kind: String, priority: i32 },
    /// The run changed state.
    StateChanged {
        from: RunState,
        to: RunState,
        attempt: u32,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<RunError>,
    },
    /// A journaled step finished and its result was recorded.
    StepCompleted {
        key: String,
        attempt: u32,
        duration_micros: i64,
    },
    /// A decision was recorded for a waiting run.
    DecisionRecorded { key: String, decision: Decision },
    /// Cancellation was requested.
    CancelRequested { reason: String, force: bool },
    /// An event of the run's own workflow.
    Workflow { event_type: String, data: Value },
}

impl EventKind {
    /// Whether this event moves the run into a terminal state.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::StateChanged { to, .. } if to.is_terminal())
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    /// The run it belongs to.
    pub run_id: RunId,
    /// Its position in the run's event stream.
    pub sequence: u64,
    /// When it happened.
    pub time: Timestamp,
    /// What happened.
    pub kind: EventKind,
}
