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
mod stage;
mod time;
mod worker;

pub use artifact::{
    Artifact, ArtifactKind, ArtifactRecord, ArtifactName, ArtifactQuery, ArtifactUse, Digest, NewArtifact, Producer, WriteCondition,
    MAX_MEDIA_TYPE_BYTES, MAX_NAME_BYTES, MAX_PRODUCER_FIELD_BYTES,
};
pub use event::{EventKind, RunEvent};
pub use ids::{ArtifactId, CardId, RunId, SkillId, WorkerId, WorkspaceId};
pub use knowledge::{search_words, Memory, Reliability};
pub use labels::{validate_labels, MAX_LABELS};
pub use log::{LogLine, LogStream, NewLogLine};
pub use page::{page_limit, Page, PageToken, MAX_PAGE_SIZE};
pub use run::{
    Decision, DecisionOutcome, ErrorCode, JournalEntry, Lease, NewRun, Replay, ReplayMode, Run, RunError, RunQuery, RunState,
    Waiting, DEFAULT_WORKSPACE,
};
pub use stage::{
    ArtifactKindName, AutomationLevel, Card, CardChange, CardRun, CardEvent, CardEventKind, CardQuery, Comparison, GateCheck, GateResult, GateSpec, Metric,
    NewCardEvent, OnFail, Recipe, RecipeOutcome, RecipeStep, Scale, Skill, SkillDefinition, SkillField, SkillKind, SkillSource, SkillVersion, TrustLevel,
};
pub use time::Timestamp;
pub use worker::{NewWorker, Worker, WorkerState};
