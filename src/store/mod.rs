//! Persistence: one [`Store`] trait with a SQLite backend (the default, embedded) and a Postgres
//! backend (for several processes sharing the work), chosen by the database URL.
//!
//! The stores are deliberately dumb: the run state machine lives in `engine::lifecycle`, which
//! turns a run into an [`Update`]; a store only reads the row, hands it to that function inside a
//! transaction, and writes the result with its events. So both backends apply the same rules, and
//! the one conformance suite in `tests/store_conformance.rs` checks they persist them alike.

mod postgres;
mod sql;
mod sql_store;
mod sqlite;

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use async_trait::async_trait;

use crate::{
    domain::{
        Artifact, ArtifactId, ArtifactName, ArtifactQuery, ArtifactUse, Card, CardChange, CardEvent, CardId, CardQuery, Digest, EventKind,
        Lease, LogLine, Memory, NewArtifact, NewCardEvent, NewLogLine, NewRun, NewWorker, Recipe, Reliability, Run, RunEvent, RunId,
        RunQuery, RunState, Skill, SkillId, Timestamp, Worker, WorkerId, WorkspaceId,
    },
    error::{Error, Result},
    models::Circuit,
};

pub use crate::domain::JournalEntry;

pub use postgres::PostgresStore;
pub use sql_store::{Dialect, SqlStore};
pub use sqlite::SqliteStore;

/// A shared handle to the store.
pub type SharedStore = Arc<dyn Store>;

/// What a state-machine function decided for a run: the run as it must now be stored, the
/// events that record the change, and any journal writes that go with it, all committed together.
#[derive(Debug, Clone)]
pub struct Update {
    /// The run's new row. Only its mutable fields are written (state, output, error, attempt,
    /// times, waiting, decisions, lease, cancellation); what a run was created with never
    /// changes, and its event and log sequence counters are the store's business.
    pub run: Run,
    /// Events to append, in order; the store numbers them.
    pub events: Vec<EventKind>,
    /// Journal entries to record (a finished step's result).
    pub steps: Vec<JournalEntry>,
    /// Forget every journal entry of the run first.
    pub reset_journal: bool,
}

impl Update {
    /// An update that only rewrites the run and appends events.
    pub fn new(run: Run, events: Vec<EventKind>) -> Self {
        Self {
            run,
            events,
            steps: Vec::new(),
            reset_journal: false,
        }
    }

    /// An update that changes nothing (an idempotent repeat).
    pub fn unchanged(run: &Run) -> Self {
        Self::new(run.clone(), Vec::new())
    }
}

/// A run after a committed change, with the events the change appended (already numbered), for
/// the engine to publish.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The run as committed.
    pub run: Run,
    /// The events appended, in sequence order.
    pub events: Vec<RunEvent>,
}

/// The result of [`Store::create_run`].
#[derive(Debug, Clone)]
pub struct Created {
    /// The new run, or the existing one for a repeated `request_id`.
    pub transition: Transition,
    /// False when an existing run was returned for a repeated `request_id`.
    pub created: bool,
}

/// A worker asking for runs to execute.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Who claims.
    pub worker_id: WorkerId,
    /// The kinds it can run.
    pub kinds: Vec<String>,
    /// How many runs at most.
    pub limit: u32,
    /// How long the lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// The current time.
    pub now: Timestamp,
}

/// The outcome of a lease heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    /// Still held; `cancel_requested` tells the holder to stop at its next step.
    Held { cancel_requested: bool },
    /// No longer held: the run was rescued, cancelled by force, or failed.
    Lost,
}

/// Counts behind `GetQueueStats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueCounts {
    /// Runs by kind and state.
    pub by_kind_and_state: BTreeMap<(String, RunState), u64>,
    /// Creation or schedule time of the oldest queued run that is due.
    pub oldest_queued_since: Option<Timestamp>,
    /// Runs held under a lease.
    pub active_leases: u64,
    /// Runs finished since the given time.
    pub finished_since: u64,
}

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Finished runs whose events, logs and journal were removed (the runs remain).
    pub histories: u64,
    /// Finished runs removed entirely.
    pub runs: u64,
    /// Artifact blobs no version referenced any more.
    pub blobs: u64,
    /// Temporary files of artifact uploads that died with their process.
    pub abandoned_uploads: u64,
}

impl Pruned {
    /// Adds another pass's counts.
    pub fn add(&mut self, other: Pruned) {
        self.histories += other.histories;
        self.runs += other.runs;
        self.blobs += other.blobs;
        self.abandoned_uploads += other.abandoned_uploads;
    }
}

/// The state-machine function handed to [`Store::update_run`].
pub type UpdateFn<'a> = &'a (dyn Fn(&Run) -> Result<Update> + Send + Sync);

/// A change to a skill, decided from the skill as stored (`None` if there is none).
pub type SkillFn<'a> = &'a (dyn Fn(Option<&Skill>) -> Result<Skill> + Send + Sync);

/// A change to a recipe, decided from the recipe as stored (`None` if there is none).
pub type RecipeFn<'a> = &'a (dyn Fn(Option<&Recipe>) -> Result<Recipe> + Send + Sync);

/// A change to a card, decided from the card as stored.
pub type CardFn<'a> = &'a (dyn Fn(&Card) -> Result<CardChange> + Send + Sync);

/// A change to a provider's circuit, decided from the circuit as stored (a provider never
/// tripped gets a closed one).
pub type CircuitFn<'a> = &'a (dyn Fn(&Circuit) -> Circuit + Send + Sync);

/// Durable storage of runs, their events, logs and journals.
///
/// Every method is atomic. Methods that change a run return the [`Transition`] with the events
/// they appended, numbered from the run's last sequence without gaps.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The backend's name, `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Whether the workspace exists.
    async fn workspace_exists(&self, workspace: &WorkspaceId) -> Result<bool>;

    /// Inserts queued runs and their `Created` events, all in one transaction. A run whose
    /// `request_id` was already used in its workspace (or earlier in the same batch) is not
    /// inserted: its result is the existing run with `created == false`. Results are in order.
    async fn create_runs(&self, runs: Vec<NewRun>) -> Result<Vec<Created>>;

    /// [`Store::create_runs`] for one run.
    async fn create_run(&self, run: NewRun) -> Result<Created> {
        self.create_runs(vec![run]).await?.pop().ok_or_else(|| Error::Internal("create_runs returned nothing".into()))
    }

    /// Reads one run.
    async fn get_run(&self, id: RunId) -> Result<Option<Run>>;

    /// Lists runs matching the query, by id descending (newest first), at most `query.limit`.
    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>>;

    /// Reads each run, applies its change and commits the results, all in one transaction that
    /// excludes concurrent updates of the same runs. Changes apply in order, each to the run as
    /// the previous changes left it. A change that fails (its own error, or `NotFound` for an
    /// unknown run) writes nothing and fails alone; a storage failure fails the whole batch.
    async fn update_runs(&self, changes: &[(RunId, UpdateFn<'_>)]) -> Result<Vec<Result<Transition>>>;

    /// [`Store::update_runs`] for one change.
    async fn update_run(&self, id: RunId, change: UpdateFn<'_>) -> Result<Transition> {
        self.update_runs(&[(id, change)]).await?.pop().unwrap_or_else(|| Err(Error::Internal("update_runs returned nothing".into())))
    }

    /// Claims up to `limit` due queued runs of the given kinds, highest priority first then
    /// oldest, never exceeding a concurrency key's limit: each becomes running under a new lease
    /// (its epoch one higher than before), its attempt becomes at least 1, and a `StateChanged`
    /// event is appended.
    async fn claim_runs(&self, claim: &ClaimRequest) -> Result<Vec<Transition>>;

    /// Extends a lease to `until` if it is still the run's current one.
    async fn extend_lease(&self, lease: &Lease, until: Timestamp) -> Result<LeaseStatus>;

    /// Appends log lines under a lease, numbering them after the run's last line, and returns
    /// the lines stored. `first` is the position of the first line among all the lines written
    /// under this lease (from 0): lines at positions already stored are skipped, so a batch sent
    /// again after an ambiguous failure is stored once. `StaleLease` if the lease is not the
    /// run's current one; `FailedPrecondition` if lines before `first` were never stored.
    async fn append_logs(&self, lease: &Lease, attempt: u32, first: u64, lines: &[NewLogLine]) -> Result<Vec<LogLine>>;

    /// Reads up to `limit` events with a sequence greater than `after`, in order.
    async fn read_events(&self, run: RunId, after: u64, limit: u32) -> Result<Vec<RunEvent>>;

    /// Reads up to `limit` log lines with a sequence greater than `after`, in order.
    async fn read_logs(&self, run: RunId, after: u64, limit: u32) -> Result<Vec<LogLine>>;

    /// Reads the run's journal: every recorded step result.
    async fn read_journal(&self, run: RunId) -> Result<Vec<JournalEntry>>;

    /// Ids of running runs whose lease expired before `now`.
    async fn expired_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<RunId>>;

    /// Ids of unfinished runs whose deadline passed before `now`.
    async fn overdue_runs(&self, now: Timestamp, limit: u32) -> Result<Vec<RunId>>;

    /// The earliest `scheduled_at` of a queued run of the given kinds.
    async fn next_scheduled_at(&self, kinds: &[String]) -> Result<Option<Timestamp>>;

    /// Counts for `GetQueueStats`; `finished_since` counts runs finished after that time.
    async fn queue_counts(&self, workspace: &WorkspaceId, now: Timestamp, finished_since: Timestamp) -> Result<QueueCounts>;

    /// Registers a worker (again, after a restart): it is live, not draining, heartbeating now.
    async fn register_worker(&self, worker: &NewWorker, now: Timestamp) -> Result<Worker>;

    /// Records a worker's heartbeat (a stale worker that heartbeats again is live again);
    /// `None` for an unknown worker.
    async fn worker_heartbeat(&self, id: &WorkerId, now: Timestamp) -> Result<Option<Worker>>;

    /// Reads one worker.
    async fn get_worker(&self, id: &WorkerId) -> Result<Option<Worker>>;

    /// Lists workers by id, after `after`, at most `limit`.
    async fn list_workers(&self, after: Option<&WorkerId>, limit: u32) -> Result<Vec<Worker>>;

    /// Asks a worker to drain (or takes the request back); `None` for an unknown worker.
    async fn set_worker_draining(&self, id: &WorkerId, draining: bool) -> Result<Option<Worker>>;

    /// Records that a worker stopped cleanly.
    async fn stop_worker(&self, id: &WorkerId, now: Timestamp) -> Result<()>;

    /// Marks stale every live worker whose last heartbeat is older than `cutoff`; returns them.
    async fn mark_stale_workers(&self, cutoff: Timestamp, now: Timestamp) -> Result<Vec<WorkerId>>;

    /// The leases of the running runs a worker holds.
    async fn leases_of(&self, worker: &WorkerId) -> Result<Vec<Lease>>;

    /// Removes the events, logs and journal of up to `limit` runs finished before `before`,
    /// recording when on each run.
    async fn prune_histories(&self, before: Timestamp, limit: u32, now: Timestamp) -> Result<u64>;

    /// Deletes up to `limit` runs finished before `before`, with everything they own.
    async fn delete_finished_runs(&self, before: Timestamp, limit: u32) -> Result<u64>;

    /// The stored circuits of these providers; a provider that never failed has none.
    async fn read_circuits(&self, providers: &[String]) -> Result<Vec<Circuit>>;

    /// Changes one provider's circuit atomically, even with several processes failing calls
    /// to it at once, and returns the circuit as stored.
    async fn update_circuit(&self, provider: &str, change: CircuitFn<'_>, now: Timestamp) -> Result<Circuit>;

    /// Records a new version of an artifact whose blob is already stored, numbered one above
    /// the name's latest version. In the same transaction it checks that the run exists
    /// (`NotFound`), that `lease_epoch`, when given, is the lease of the running run
    /// (`StaleLease`), and the write's condition (`Aborted` with reason `ETAG_MISMATCH` or
    /// `ARTIFACT_EXISTS`). Writes into one run are serialised, so concurrent writes of one name
    /// each get their own version.
    async fn insert_artifact(&self, artifact: &NewArtifact, lease_epoch: Option<u64>) -> Result<Artifact>;

    /// Reads versions by id (those that exist), by id.
    async fn get_artifacts(&self, ids: &[ArtifactId]) -> Result<Vec<Artifact>>;

    /// Reads one version of a name: `version`, or the latest.
    async fn find_artifact(&self, run: RunId, name: &ArtifactName, version: Option<u32>) -> Result<Option<Artifact>>;

    /// Lists artifacts matching the query, by id ascending, at most `query.limit`.
    async fn list_artifacts(&self, query: &ArtifactQuery) -> Result<Vec<Artifact>>;

    /// Every version written into these runs, by id.
    async fn artifacts_of_runs(&self, runs: &[RunId]) -> Result<Vec<Artifact>>;

    /// Deletes versions with their labels and reads; returns how many existed.
    async fn delete_artifacts(&self, ids: &[ArtifactId]) -> Result<u64>;

    /// Records that a step read a version (once per step; a repeat is ignored).
    async fn record_artifact_use(&self, used: &ArtifactUse) -> Result<()>;

    /// The reads of the versions `of`, and the reads made by the runs `by`, in time order.
    async fn artifact_uses(&self, of: &[ArtifactId], by: &[RunId]) -> Result<Vec<ArtifactUse>>;

    /// Which of these blob digests some version still references.
    async fn referenced_digests(&self, digests: &[Digest]) -> Result<Vec<Digest>>;

    /// Records, once per debate, whether each participant's final vote matched the outcome.
    async fn record_debate_votes(&self, run: RunId, workspace: &WorkspaceId, votes: &[(String, bool)], now: Timestamp) -> Result<()>;

    /// The records of these participants in a workspace (those that have one).
    async fn read_reliability(&self, workspace: &WorkspaceId, participants: &[String]) -> Result<Vec<Reliability>>;

    /// Stores what a mission learned, replacing what the same run stored before.
    async fn remember(&self, memory: &Memory) -> Result<()>;

    /// The memories of a workspace matching any of `words` (see `domain::search_words`), best
    /// first, at most `limit`.
    async fn recall(&self, workspace: &WorkspaceId, words: &[String], limit: u32) -> Result<Vec<Memory>>;

    /// Reads a skill of a workspace's catalog.
    async fn get_skill(&self, workspace: &WorkspaceId, id: &SkillId) -> Result<Option<Skill>>;

    /// Every skill of a workspace's catalog, by id.
    async fn list_skills(&self, workspace: &WorkspaceId) -> Result<Vec<Skill>>;

    /// Creates or changes a skill atomically: `change` gets the skill as stored (`None` if it
    /// does not exist) and returns it as it must be stored, or an error that writes nothing.
    /// The store sets `revision` to one more than before (1 for a new skill).
    async fn update_skill(&self, workspace: &WorkspaceId, id: &SkillId, change: SkillFn<'_>) -> Result<Skill>;

    /// Reads a stage's recipe in a workspace.
    async fn get_recipe(&self, workspace: &WorkspaceId, stage: &str) -> Result<Option<Recipe>>;

    /// Every recipe of a workspace, by position then stage.
    async fn list_recipes(&self, workspace: &WorkspaceId) -> Result<Vec<Recipe>>;

    /// Creates or changes a recipe atomically, as [`Store::update_skill`] does a skill.
    async fn update_recipe(&self, workspace: &WorkspaceId, stage: &str, change: RecipeFn<'_>) -> Result<Recipe>;

    /// Inserts a card (revision 1) with the first entries of its audit trail.
    async fn create_card(&self, card: &Card, events: &[NewCardEvent]) -> Result<(Card, Vec<CardEvent>)>;

    /// Reads a card.
    async fn get_card(&self, id: CardId) -> Result<Option<Card>>;

    /// Lists cards matching the query, by id ascending, at most `query.limit`.
    async fn list_cards(&self, query: &CardQuery) -> Result<Vec<Card>>;

    /// Changes a card atomically, excluding concurrent changes of it: `change` gets the card
    /// as stored and returns the card to store with the audit entries that record the change
    /// (numbered after the card's last), or an error that writes nothing (`NotFound` for an
    /// unknown card). The store sets `revision` to one more than before.
    async fn update_card(&self, id: CardId, change: CardFn<'_>) -> Result<(Card, Vec<CardEvent>)>;

    /// Cards (of every workspace) whose active run has ended or no longer exists, by id, after
    /// `after`, at most `limit`: the cards to settle.
    async fn cards_with_ended_runs(&self, after: Option<CardId>, limit: u32) -> Result<Vec<Card>>;

    /// A card's audit trail after sequence `after`, in order, at most `limit`.
    async fn read_card_events(&self, id: CardId, after: u64, limit: u32) -> Result<Vec<CardEvent>>;

    /// Tries to become (or checks that this process still is) the one leader among the
    /// processes sharing the database, which runs maintenance. Where one process owns the
    /// database, it always leads. Leadership ends with the process or with [`Store::resign`].
    async fn try_lead(&self) -> Result<bool> {
        Ok(true)
    }

    /// Gives up leadership, so another process takes over at once.
    async fn resign(&self) {}

    /// Tells every other process sharing the database about changes (Postgres `NOTIFY`);
    /// nothing where one process owns the database.
    async fn notify(&self, _messages: &[String]) -> Result<()> {
        Ok(())
    }

    /// The messages processes sharing the database `notify` (its own included), where the
    /// backend carries them; `None` where one process owns the database.
    fn listen(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }
}

/// Opens the store a database URL names: `sqlite://…` or `postgres://…`, migrated to the latest
/// schema.
pub async fn open(url: &str, max_connections: u32) -> Result<SharedStore> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteStore::open(url).await?));
    }
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return Ok(Arc::new(PostgresStore::open(url, max_connections).await?));
    }
    Err(Error::invalid(
        "database_url",
        format!("`{}` is not a supported database URL: use sqlite://PATH or postgres://USER@HOST/DB", redact(url)),
    ))
}

/// A database URL fit for messages and logs: any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((credentials, host)) = rest.rsplit_once('@') else { return url.to_owned() };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}


/// Parses a JSON column.
fn json_column<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|err| Error::Internal(format!("corrupt {column} column: {err}")))
}

/// Serializes a value for a JSON column.
fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|err| Error::Internal(format!("cannot serialize: {err}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_in_json_columns_read_back_exactly() {
        // A remote worker's output arrives as protobuf numbers (f64); a seed of 2^61 or so must
        // read back as the same f64 it was written as.
        let mut value: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            value = value.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let number = (value >> 1) as f64;
            let text = super::to_json(&serde_json::json!({ "seed": number })).unwrap();
            let back: serde_json::Value = super::json_column("output", &text).unwrap();
            assert_eq!(back["seed"].as_f64(), Some(number), "{text}");
        }
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(super::redact("postgres://bob:hunter2@db:5432/x"), "postgres://bob:***@db:5432/x");
        assert_eq!(super::redact("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(super::redact("sqlite://data/c.db"), "sqlite://data/c.db");
    }
}
