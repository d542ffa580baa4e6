//! The domain's vocabulary: runs, their states, events, log lines, decisions, workers and
//! artifacts, as plain Rust types shared by the engine, the workflows, the store and the API
//! adapters.

mod artifact;
mod event;
mod ids;
mod knowledge;
mod labels;
mod log;
mod page;
mod run;
mod time;
mod worker;

pub use artifact::{
    Artifact, ArtifactKind, ArtifactRecord, ArtifactName, ArtifactQuery, ArtifactUse, Digest, NewArtifact, Producer, WriteCondition,
    MAX_MEDIA_TYPE_BYTES, MAX_NAME_BYTES, MAX_PRODUCER_FIELD_BYTES,
};
pub use event::{EventKind, RunEvent};
pub use ids::{ArtifactId, RunId, WorkerId, WorkspaceId};
pub use knowledge::{search_words, Memory, Reliability};
pub use labels::{validate_labels, MAX_LABELS};
pub use log::{LogLine, LogStream, NewLogLine};
pub use page::{page_limit, Page, PageToken, MAX_PAGE_SIZE};
pub use run::{
    Decision, DecisionOutcome, ErrorCode, JournalEntry, Lease, NewRun, Replay, ReplayMode, Run, RunError, RunQuery, RunState,
    Waiting, DEFAULT_WORKSPACE,
};
pub use time::Timestamp;
pub use worker::{NewWorker, Worker, WorkerState};
