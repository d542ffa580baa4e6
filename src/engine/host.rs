//! Where an attempt's writes go. In a server process, the attempt writes to the store through
//! the engine; in a remote worker (`conclave worker`), it writes to a server over
//! `WorkerService`. The executor and [`RunContext`](super::RunContext) are written once against
//! [`AttemptHost`], so a built-in kind behaves the same wherever it runs.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{lifecycle, Core, CreateRunRequest, EngineConfig};
use crate::{
    artifacts::{ArtifactRef, UploadHeader},
    domain::{search_words, ArtifactRecord, Digest, Lease, Memory, NewLogLine, Reliability, Run, RunError, RunId, Timestamp, WorkspaceId},
    error::{Error, Result},
    models::{ModelRequest, RouteFailure, Routed, TokenSink},
    store::{JournalEntry, LeaseStatus},
};

/// How an attempt ended, as the one who executed it reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// The workflow returned an output.
    Succeeded(Value),
    /// The attempt failed; the run is retried if the error and its attempts allow.
    Failed(RunError),
    /// The workflow stopped because the run was cancelled.
    Cancelled,
    /// The worker gives the run back unfinished (it is shutting down); its journal stays.
    Released,
}

/// The timings an attempt keeps to.
#[derive(Debug, Clone, Copy)]
pub struct AttemptSettings {
    /// How often the lease is extended.
    pub heartbeat_interval: Duration,
    /// How long a lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// How long a cancelled run may take to stop before it is stopped by force.
    pub cancel_grace: Duration,
    /// Log lines an attempt may buffer before logging waits.
    pub log_buffer: usize,
    /// Log lines written per batch at most.
    pub log_batch: usize,
}

impl From<&EngineConfig> for AttemptSettings {
    fn from(config: &EngineConfig) -> Self {
        Self {
            heartbeat_interval: config.heartbeat_interval,
            lease_ttl: config.lease_ttl,
            cancel_grace: config.cancel_grace,
            log_buffer: config.log_buffer,
            log_batch: config.log_batch,
        }
    }
}

/// The writes of an attempt, each under its lease: a write whose lease is no longer the run's
/// current one fails with `StaleLease`.
#[async_trait]
pub trait AttemptHost: Send + Sync + 'static {
    /// Commits a finished step's result to the run's journal.
    async fn record_step(&self, lease: &Lease, entry: JournalEntry) -> Result<()>;

    /// Appends workflow events (type and data) to the run's event stream, in order.
    async fn emit(&self, lease: &Lease, events: &[(String, Value)]) -> Result<()>;

    /// Puts the run in the waiting state until a decision for `key` arrives.
    async fn suspend(&self, lease: &Lease, key: &str, prompt: &str) -> Result<()>;

    /// Appends log lines; `first` is the position of the first among all the lines of this
    /// lease (from 0), so a batch sent again is stored once.
    async fn append_logs(&self, lease: &Lease, attempt: u32, first: u64, lines: &[NewLogLine]) -> Result<()>;

    /// Waits until every line appended so far is stored.
    async fn flush_logs(&self, lease: &Lease) -> Result<()>;

    /// Extends the lease by its time to live; says whether cancellation was requested.
    async fn extend_lease(&self, lease: &Lease) -> Result<LeaseStatus>;

    /// Records how the attempt ended.
    async fn finish(&self, lease: &Lease, ending: Ending) -> Result<()>;

    /// Calls a model through the router (the server's: a remote worker asks its server), for
    /// the run under `lease`. With `tokens`, the answer is streamed there as it is generated.
    async fn generate(&self, lease: &Lease, request: &ModelRequest, tokens: Option<&TokenSink>) -> Result<Routed, RouteFailure>;

    /// Stores an artifact in the run under `lease` (the header's run and lease are set by the
    /// caller); refused once the lease is no longer current.
    async fn put_artifact(&self, lease: &Lease, header: UploadHeader, content: &[u8]) -> Result<ArtifactRecord>;

    /// Reads a version for the run's step `step`, recording the read for lineage.
    async fn get_artifact(&self, lease: &Lease, reference: &ArtifactRef, step: &str) -> Result<(ArtifactRecord, Vec<u8>)>;

    /// Reads the content a journaled step read or wrote before.
    async fn read_artifact(&self, record: &ArtifactRecord) -> Result<Vec<u8>>;

    /// The records of debate participants in the workspace of the run under `lease`.
    async fn read_reliability(&self, lease: &Lease, workspace: &WorkspaceId, participants: &[String]) -> Result<Vec<Reliability>>;

    /// Records, once per debate (the run under `lease`), whether each vote matched the outcome.
    async fn record_debate_votes(&self, lease: &Lease, workspace: &WorkspaceId, votes: &[(String, bool)]) -> Result<()>;

    /// Memories of past missions in the workspace of the run under `lease` matching the words
    /// of `text`, best first.
    async fn recall(&self, lease: &Lease, workspace: &WorkspaceId, text: &str, limit: u32) -> Result<Vec<Memory>>;

    /// Stores what the mission under `lease` learned.
    async fn remember(&self, lease: &Lease, memory: Memory) -> Result<()>;

    /// Creates a run for the run under `lease` (a task loop's next task); a repeated
    /// `request_id` gives the run the first call created.
    async fn create_run(&self, lease: &Lease, request: CreateRunRequest) -> Result<Run>;

    /// Reads a run.
    async fn get_run(&self, id: RunId) -> Result<Run>;
}

#[async_trait]
impl AttemptHost for Core {
    async fn record_step(&self, lease: &Lease, entry: JournalEntry) -> Result<()> {
        let lease = lease.clone();
        self.update(lease.run_id, move |run| lifecycle::record_step(run, &lease, entry.clone())).await?;
        Ok(())
    }

    async fn emit(&self, lease: &Lease, events: &[(String, Value)]) -> Result<()> {
        let (lease, events, now) = (lease.clone(), events.to_vec(), Timestamp::now());
        self.update(lease.run_id, move |run| lifecycle::workflow_events(run, &lease, &events, now)).await?;
        Ok(())
    }

    async fn suspend(&self, lease: &Lease, key: &str, prompt: &str) -> Result<()> {
        let (lease, key, prompt, now) = (lease.clone(), key.to_owned(), prompt.to_owned(), Timestamp::now());
        self.update(lease.run_id, move |run| lifecycle::suspend(run, &lease, &key, &prompt, now)).await?;
        Ok(())
    }

    async fn append_logs(&self, lease: &Lease, attempt: u32, first: u64, lines: &[NewLogLine]) -> Result<()> {
        let stored = self.store.append_logs(lease, attempt, first, lines).await?;
        self.fanout.publish_logs(lease.run_id, stored);
        Ok(())
    }

    async fn flush_logs(&self, _lease: &Lease) -> Result<()> {
        // Every append above is stored before it returns.
        Ok(())
    }

    async fn extend_lease(&self, lease: &Lease) -> Result<LeaseStatus> {
        self.store.extend_lease(lease, Timestamp::now().plus(self.config.lease_ttl)).await
    }

    async fn finish(&self, lease: &Lease, ending: Ending) -> Result<()> {
        self.end_attempt(lease, ending).await.map(drop)
    }

    async fn generate(&self, _lease: &Lease, request: &ModelRequest, tokens: Option<&TokenSink>) -> Result<Routed, RouteFailure> {
        self.router.route(request, None, tokens).await
    }

    async fn put_artifact(&self, _lease: &Lease, header: UploadHeader, content: &[u8]) -> Result<ArtifactRecord> {
        let artifact = self.artifacts.put(header, content).await?;
        Ok(ArtifactRecord::from(&artifact))
    }

    async fn get_artifact(&self, lease: &Lease, reference: &ArtifactRef, step: &str) -> Result<(ArtifactRecord, Vec<u8>)> {
        let artifact = self.artifacts.get(reference).await?;
        let content = self.artifacts.read(&artifact).await?;
        self.artifacts.record_use(artifact.id, lease.run_id, step).await?;
        Ok((ArtifactRecord::from(&artifact), content))
    }

    async fn read_artifact(&self, record: &ArtifactRecord) -> Result<Vec<u8>> {
        let digest = Digest::parse("sha256", &record.sha256)?;
        self.artifacts.read_digest(&digest, &record.name).await
    }

    async fn read_reliability(&self, _lease: &Lease, workspace: &WorkspaceId, participants: &[String]) -> Result<Vec<Reliability>> {
        self.store.read_reliability(workspace, participants).await
    }

    async fn record_debate_votes(&self, lease: &Lease, workspace: &WorkspaceId, votes: &[(String, bool)]) -> Result<()> {
        self.store.record_debate_votes(lease.run_id, workspace, votes, Timestamp::now()).await
    }

    async fn recall(&self, _lease: &Lease, workspace: &WorkspaceId, text: &str, limit: u32) -> Result<Vec<Memory>> {
        self.store.recall(workspace, &search_words(text, MAX_SEARCH_WORDS), limit).await
    }

    async fn remember(&self, _lease: &Lease, memory: Memory) -> Result<()> {
        self.store.remember(&memory).await
    }

    async fn create_run(&self, _lease: &Lease, request: CreateRunRequest) -> Result<Run> {
        Core::create_run(self, request).await
    }

    async fn get_run(&self, id: RunId) -> Result<Run> {
        self.store.get_run(id).await?.ok_or_else(|| Error::not_found("run", id))
    }
}

/// The most words of a text a memory search looks for.
const MAX_SEARCH_WORDS: usize = 32;
