//! The one implementation of [`Store`] over SQL, generic over the database: SQLite and
//! Postgres share every statement (see `sql.rs`) and differ only in what their [`Dialect`] says:
//! Postgres locks rows it is about to change and lets concurrent claimers skip each other.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{Database, Pool};

use super::{
    sql::{
        self, artifacts, circuits, knowledge, retention,
        stage::{self, Document, DocumentKey},
        workers, Statement,
    },
    CardFn, CircuitFn, ClaimRequest, Created, JournalEntry, LeaseStatus, QueueCounts, RecipeFn, SkillFn, Store, Transition, UpdateFn,
};
use crate::{
    domain::{
        Artifact, ArtifactId, ArtifactName, ArtifactQuery, ArtifactUse, Card, CardChange, CardEvent, CardId, CardQuery, Digest, Lease,
        LogLine, Memory, NewArtifact, NewCardEvent, NewLogLine, NewRun, NewWorker, Recipe, Reliability, Run, RunEvent, RunId, RunQuery,
        RunState, Skill, SkillId, Timestamp, Worker, WorkerId, WorkspaceId,
    },
    error::{Error, Result},
    models::Circuit,
};

/// What differs between the SQL backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// One process, one writer connection: no row locks needed.
    Sqlite,
    /// Several processes: rows are locked `FOR UPDATE`, claimers `SKIP LOCKED` each other's
    /// candidates, and claims under one concurrency key serialise on an advisory lock.
    Postgres,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    fn locks_rows(self) -> bool {
        self == Self::Postgres
    }

    /// The statement text that differs on this backend.
    pub(super) fn flavor(self) -> sql::Flavor {
        match self {
            Self::Sqlite => sql::Flavor::Sqlite,
            Self::Postgres => sql::Flavor::Postgres,
        }
    }

    /// What a claim transaction runs first. On Postgres, the claim must walk the queue index in
    /// order and stop at its window; with statistics from when the queue was small (a fresh
    /// table, or a burst since the last `ANALYZE`) the planner instead reads every queued row
    /// and sorts them, a cost that grows with the backlog (7.8 ms against 0.3 ms at 13,000).
    pub(super) fn claim_preamble(self) -> Option<Statement> {
        match self {
            Self::Sqlite => None,
            Self::Postgres => Some(sql::claim_by_queue_index()),
        }
    }
}

/// Runs, events, logs and journals in a SQL database. Writes go through `writer`, reads through
/// `reader` (the same pool on Postgres; on SQLite, one writer connection and several readers).
#[derive(Debug, Clone)]
pub struct SqlStore<DB: Database> {
    pub(super) writer: Pool<DB>,
    pub(super) reader: Pool<DB>,
    pub(super) dialect: Dialect,
    /// What the processes sharing the database share (Postgres): notifications and leadership.
    pub(super) cluster: Option<super::postgres::Cluster>,
}

impl<DB> SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    sql::Scalars: for<'r> sqlx::FromRow<'r, DB::Row>,
    Option<String>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Option<i64>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    bool: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    /// The run ids a statement selects (`AS text`), inside a transaction.
    async fn select_ids(&self, tx: &mut DB::Connection, statement: Statement) -> Result<Vec<RunId>> {
        let rows = sql::query::<DB>(statement).fetch_all(&mut *tx).await?;
        let ids = rows
            .iter()
            .map(|row| <sql::Scalars as sqlx::FromRow<DB::Row>>::from_row(row).map(|row| row.text.unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()?;
        sql::parse_ids(ids)
    }
}

/// Reads rows of type `T` through a pool.
async fn read<DB, T>(pool: &Pool<DB>, statement: Statement) -> Result<Vec<T>>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    T: for<'r> sqlx::FromRow<'r, DB::Row>,
    Option<String>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Option<i64>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    bool: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut conn = pool.acquire().await?;
    let rows = sql::query::<DB>(statement).fetch_all(&mut *conn).await?;
    rows.iter().map(|row| T::from_row(row).map_err(Error::from)).collect()
}

/// Reads documents (skills, recipes, cards) through a pool.
async fn read_documents<DB, T>(pool: &Pool<DB>, statement: Statement) -> Result<Vec<T>>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    stage::DocumentRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    T: Document,
    Option<String>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Option<i64>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    bool: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let rows: Vec<stage::DocumentRow> = read(pool, statement).await?;
    rows.into_iter().map(stage::DocumentRow::into_document).collect()
}

/// Creates or changes the document at `key` inside the caller's transaction: reads it (locked
/// with `lock`, on Postgres), asks `change` for the document to store from the one stored
/// (`None` if there is none) together with whatever else the caller keeps for itself, and
/// writes it with its revision one higher (1 for a new one). An error from `change` is returned
/// as it is, having written nothing. When a concurrent transaction creates the missing
/// document first, it is read again and `change` decides anew from it.
async fn change_document<DB, T, R>(
    conn: &mut DB::Connection,
    key: &DocumentKey,
    lock: bool,
    change: impl Fn(Option<&T>) -> Result<(T, R)>,
) -> Result<(T, R)>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    stage::DocumentRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    T: Document,
    Option<String>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Option<i64>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    bool: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    // The second pass finds the row a concurrent creator inserted (rows are never deleted).
    for _ in 0..2 {
        let row = sql::query::<DB>(stage::select(key, lock)).fetch_optional(&mut *conn).await?;
        let stored: Option<T> = match row {
            Some(row) => Some(<stage::DocumentRow as sqlx::FromRow<DB::Row>>::from_row(&row)?.into_document()?),
            None => None,
        };
        let (mut document, extra) = change(stored.as_ref())?;
        let previous = stored.as_ref().map_or(0, Document::revision);
        document.set_revision(previous + 1);
        let write = match &stored {
            Some(_) => stage::update(key, &document, previous)?,
            None => stage::insert(key, &document)?,
        };
        if sql::query::<DB>(write).fetch_optional(&mut *conn).await?.is_some() {
            return Ok((document, extra));
        }
        if stored.is_some() {
            // The row is locked (Postgres) or the only writer is this one (SQLite).
            return Err(Error::Internal(format!("{key} changed under its lock")));
        }
    }
    Err(Error::Aborted { reason: "CONCURRENT_CREATE", message: format!("{key} kept being created concurrently; try again") })
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    sql::RunRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    sql::EventRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    sql::LogRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    sql::JournalRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    sql::Scalars: for<'r> sqlx::FromRow<'r, DB::Row>,
    workers::WorkerRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    circuits::CircuitRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    artifacts::ArtifactRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    artifacts::UseRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    knowledge::ReliabilityRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    knowledge::MemoryRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    stage::DocumentRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    stage::CardEventRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    Option<String>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Option<i64>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    bool: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    fn backend(&self) -> &'static str {
        self.dialect.name()
    }

    async fn workspace_exists(&self, workspace: &WorkspaceId) -> Result<bool> {
        let rows: Vec<sql::Scalars> = read(&self.reader, sql::count_workspace(workspace)).await?;
        Ok(rows.first().and_then(|row| row.int).unwrap_or(0) > 0)
    }

    async fn create_runs(&self, runs: Vec<NewRun>) -> Result<Vec<Created>> {
        let mut tx = self.writer.begin().await?;
        let created = sql::create_runs::<DB>(&mut tx, &runs).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        let rows: Vec<sql::RunRow> = read(&self.reader, sql::select_runs(&[id], false)).await?;
        rows.into_iter().next().map(Run::try_from).transpose()
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>> {
        let rows: Vec<sql::RunRow> = read(&self.reader, sql::list_runs(query, self.dialect.flavor())).await?;
        rows.into_iter().map(Run::try_from).collect()
    }

    async fn update_runs(&self, changes: &[(RunId, UpdateFn<'_>)]) -> Result<Vec<Result<Transition>>> {
        let mut tx = self.writer.begin().await?;
        let results = sql::update_runs_in::<DB>(&mut tx, changes, self.dialect.locks_rows()).await?;
        tx.commit().await?;
        Ok(results)
    }

    async fn claim_runs(&self, claim: &ClaimRequest) -> Result<Vec<Transition>> {
        if claim.limit == 0 || claim.kinds.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin().await?;
        if let Some(preamble) = self.dialect.claim_preamble() {
            sql::query::<DB>(preamble).execute(&mut *tx).await?;
        }
        let candidates = sql::query::<DB>(sql::claim_candidates(claim, self.dialect.locks_rows())).fetch_all(&mut *tx).await?;
        let candidates = candidates
            .iter()
            .map(|row| <sql::Scalars as sqlx::FromRow<DB::Row>>::from_row(row).map(sql::Scalars::candidate))
            .collect::<Result<Vec<_>, _>>()?;
        let mut keys: Vec<&str> = candidates.iter().filter_map(|(_, key, _)| key.as_deref()).collect();
        let running_by_key: HashMap<String, i64> = if keys.is_empty() {
            HashMap::new()
        } else {
            if self.dialect.locks_rows() {
                // Serialise claims per key across processes before counting what runs under it.
                keys.sort_unstable();
                keys.dedup();
                for key in keys {
                    sql::query::<DB>(sql::lock_concurrency_key(key)).execute(&mut *tx).await?;
                }
            }
            let rows = sql::query::<DB>(sql::running_by_key()).fetch_all(&mut *tx).await?;
            rows.iter()
                .map(|row| <sql::Scalars as sqlx::FromRow<DB::Row>>::from_row(row).map(sql::Scalars::key_count))
                .collect::<Result<_, _>>()?
        };
        let chosen = sql::admit_within_concurrency(candidates, running_by_key, claim.limit);
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sql::query::<DB>(sql::claim_update(claim, &chosen)).fetch_all(&mut *tx).await?;
        let runs = rows
            .iter()
            .map(|row| Run::try_from(<sql::RunRow as sqlx::FromRow<DB::Row>>::from_row(row)?))
            .collect::<Result<Vec<_>>>()?;
        let events = sql::claimed_events(&runs, &claim.worker_id, claim.now);
        sql::execute_all::<DB>(&mut tx, sql::insert_events(&events)?).await?;
        tx.commit().await?;
        let mut transitions: Vec<Transition> =
            runs.into_iter().zip(events).map(|(run, event)| Transition { run, events: vec![event] }).collect();
        transitions.sort_by(|a, b| b.run.priority.cmp(&a.run.priority).then(a.run.id.cmp(&b.run.id)));
        Ok(transitions)
    }

    async fn extend_lease(&self, lease: &Lease, until: Timestamp) -> Result<LeaseStatus> {
        let mut conn = self.writer.acquire().await?;
        let row = sql::query::<DB>(sql::extend_lease(lease, until)).fetch_optional(&mut *conn).await?;
        Ok(match row {
            Some(row) => LeaseStatus::Held { cancel_requested: <sql::Scalars as sqlx::FromRow<DB::Row>>::from_row(&row)?.flag.unwrap_or(false) },
            None => LeaseStatus::Lost,
        })
    }

    async fn append_logs(&self, lease: &Lease, attempt: u32, first: u64, lines: &[NewLogLine]) -> Result<Vec<LogLine>> {
        let (mut first, mut lines) = (first, lines);
        let mut tx = self.writer.begin().await?;
        let last = loop {
            if lines.is_empty() {
                return Ok(Vec::new());
            }
            let count = lines.len() as u64;
            let reserved = sql::query::<DB>(sql::reserve_log_sequences(lease, first, count)).fetch_optional(&mut *tx).await?;
            if let Some(row) = reserved {
                break <sql::Scalars as sqlx::FromRow<DB::Row>>::from_row(&row)?.int.map_or(0, sql::to_u64);
            }
            // Either the lease is gone, or the batch overlaps lines already stored (sent again
            // after an ambiguous failure): skip what is stored and try again.
            let position = sql::query::<DB>(sql::log_position(lease)).fetch_optional(&mut *tx).await?;
            let Some(row) = position else {
                return Err(Error::StaleLease { run_id: lease.run_id.to_string(), epoch: lease.epoch });
            };
            let stored = <sql::Scalars as sqlx::FromRow<DB::Row>>::from_row(&row)?.int.map_or(0, sql::to_u64);
            if stored < first {
                return Err(Error::precondition(
                    "LOG_LINES_MISSING",
                    format!("run {}: log lines {stored}..{first} of this lease were never stored; send them first", lease.run_id),
                ));
            }
            let skip = usize::try_from(stored - first).unwrap_or(usize::MAX).min(lines.len());
            lines = &lines[skip..];
            first = stored;
        };
        let count = lines.len() as u64;
        let stored = sql::number_log_lines(lease.run_id, last - count, attempt, lines);
        sql::execute_all::<DB>(&mut tx, sql::insert_logs(&stored)).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn read_events(&self, run: RunId, after: u64, limit: u32) -> Result<Vec<RunEvent>> {
        let rows: Vec<sql::EventRow> = read(&self.reader, sql::select_events(run, after, limit)).await?;
        rows.into_iter().map(|row| row.into_event(run)).collect()
    }

    async fn read_logs(&self, run: RunId, after: u64, limit: u32) -> Result<Vec<LogLine>> {
        let rows: Vec<sql::LogRow> = read(&self.reader, sql::select_logs(run, after, limit)).await?;
        Ok(rows.into_iter().map(|row| row.into_line(run)).collect())
    }

    async fn read_journal(&self, run: RunId) -> Result<Vec<JournalEntry>> {
        let rows: Vec<sql::JournalRow> = read(&self.reader, sql::select_journal(run)).await?;
        rows.into_iter().map(JournalEntry::try_from).collect()
    }

    async fn expired_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<RunId>> {
        let rows: Vec<sql::Scalars> = read(&self.reader, sql::expired_leases(now, limit)).await?;
        sql::parse_ids(rows.into_iter().filter_map(|row| row.text).collect())
    }

    async fn overdue_runs(&self, now: Timestamp, limit: u32) -> Result<Vec<RunId>> {
        let rows: Vec<sql::Scalars> = read(&self.reader, sql::overdue_runs(now, limit)).await?;
        sql::parse_ids(rows.into_iter().filter_map(|row| row.text).collect())
    }

    async fn next_scheduled_at(&self, kinds: &[String]) -> Result<Option<Timestamp>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let rows: Vec<sql::Scalars> = read(&self.reader, sql::next_scheduled(kinds)).await?;
        Ok(rows.first().and_then(|row| row.int).map(Timestamp::from_micros))
    }

    async fn queue_counts(&self, workspace: &WorkspaceId, now: Timestamp, finished_since: Timestamp) -> Result<QueueCounts> {
        let counts: Vec<sql::Scalars> = read(&self.reader, sql::count_by_kind_and_state(workspace)).await?;
        let oldest: Vec<sql::Scalars> = read(&self.reader, sql::oldest_queued(workspace, now)).await?;
        let finished: Vec<sql::Scalars> = read(&self.reader, sql::finished_since(workspace, finished_since)).await?;
        Ok(sql::queue_counts(
            counts.into_iter().map(sql::Scalars::kind_state_count).collect(),
            oldest.first().and_then(|row| row.int),
            finished.first().and_then(|row| row.int).unwrap_or(0),
        ))
    }

    async fn register_worker(&self, worker: &NewWorker, now: Timestamp) -> Result<Worker> {
        let mut conn = self.writer.acquire().await?;
        sql::query::<DB>(workers::register(worker, now)?).execute(&mut *conn).await?;
        drop(conn);
        self.get_worker(&worker.id).await?.ok_or_else(|| Error::Internal(format!("worker {} vanished as it registered", worker.id)))
    }

    async fn worker_heartbeat(&self, id: &WorkerId, now: Timestamp) -> Result<Option<Worker>> {
        let mut conn = self.writer.acquire().await?;
        let updated = sql::query::<DB>(workers::heartbeat(id, now)).fetch_optional(&mut *conn).await?;
        drop(conn);
        if updated.is_none() {
            return Ok(None);
        }
        self.get_worker(id).await
    }

    async fn get_worker(&self, id: &WorkerId) -> Result<Option<Worker>> {
        let rows: Vec<workers::WorkerRow> = read(&self.reader, workers::select(id)).await?;
        rows.into_iter().next().map(Worker::try_from).transpose()
    }

    async fn list_workers(&self, after: Option<&WorkerId>, limit: u32) -> Result<Vec<Worker>> {
        let rows: Vec<workers::WorkerRow> = read(&self.reader, workers::list(after, limit)).await?;
        rows.into_iter().map(Worker::try_from).collect()
    }

    async fn set_worker_draining(&self, id: &WorkerId, draining: bool) -> Result<Option<Worker>> {
        let mut conn = self.writer.acquire().await?;
        let updated = sql::query::<DB>(workers::set_draining(id, draining)).fetch_optional(&mut *conn).await?;
        drop(conn);
        if updated.is_none() {
            return Ok(None);
        }
        self.get_worker(id).await
    }

    async fn stop_worker(&self, id: &WorkerId, now: Timestamp) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        sql::query::<DB>(workers::stop(id, now)).execute(&mut *conn).await?;
        Ok(())
    }

    async fn mark_stale_workers(&self, cutoff: Timestamp, now: Timestamp) -> Result<Vec<WorkerId>> {
        let mut conn = self.writer.acquire().await?;
        let rows = sql::query::<DB>(workers::mark_stale(cutoff, now)).fetch_all(&mut *conn).await?;
        rows.iter()
            .map(|row| Ok(WorkerId::new(<sql::Scalars as sqlx::FromRow<DB::Row>>::from_row(row)?.text.unwrap_or_default())))
            .collect()
    }

    async fn leases_of(&self, worker: &WorkerId) -> Result<Vec<Lease>> {
        let rows: Vec<sql::RunRow> = read(&self.reader, workers::leased_runs(worker)).await?;
        let runs = rows.into_iter().map(Run::try_from).collect::<Result<Vec<_>>>()?;
        Ok(runs.into_iter().filter_map(|run| run.lease).collect())
    }

    async fn prune_histories(&self, before: Timestamp, limit: u32, now: Timestamp) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        let ids = self.select_ids(&mut tx, retention::histories_to_prune(before, limit, self.dialect.locks_rows())).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        for (table, column) in retention::HISTORY_TABLES {
            sql::query::<DB>(retention::delete_of_runs(table, column, &ids)).execute(&mut *tx).await?;
        }
        sql::query::<DB>(retention::mark_pruned(&ids, now)).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    async fn read_circuits(&self, providers: &[String]) -> Result<Vec<Circuit>> {
        if providers.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<circuits::CircuitRow> = read(&self.reader, circuits::select(providers)).await?;
        rows.into_iter().map(Circuit::try_from).collect()
    }

    async fn update_circuit(&self, provider: &str, change: CircuitFn<'_>, now: Timestamp) -> Result<Circuit> {
        let mut tx = self.writer.begin().await?;
        sql::query::<DB>(circuits::ensure(provider, now)).execute(&mut *tx).await?;
        let row = sql::query::<DB>(circuits::select_one(provider, self.dialect.locks_rows())).fetch_one(&mut *tx).await?;
        let stored = Circuit::try_from(<circuits::CircuitRow as sqlx::FromRow<DB::Row>>::from_row(&row)?)?;
        let changed = change(&stored);
        sql::query::<DB>(circuits::write(&changed, now)).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(changed)
    }

    async fn delete_finished_runs(&self, before: Timestamp, limit: u32) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        let ids = self.select_ids(&mut tx, retention::runs_to_delete(before, limit, self.dialect.locks_rows())).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        for (table, column) in retention::HISTORY_TABLES.into_iter().chain(retention::OWNED_TABLES) {
            sql::query::<DB>(retention::delete_of_runs(table, column, &ids)).execute(&mut *tx).await?;
        }
        sql::query::<DB>(retention::delete_of_runs("runs", "id", &ids)).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    async fn insert_artifact(&self, artifact: &NewArtifact, lease_epoch: Option<u64>) -> Result<Artifact> {
        if !self.dialect.locks_rows() {
            // One writer connection: a single statement checks and inserts atomically, in one
            // round trip to the database's thread rather than five (four more with labels). If
            // a check failed, the transaction below finds which (or writes, if the run changed
            // in between).
            let insert = sql::query::<DB>(artifacts::insert_next_version(artifact, lease_epoch)?);
            let inserted = if artifact.labels.is_empty() {
                insert.fetch_optional(&mut *self.writer.acquire().await?).await?
            } else {
                let mut tx = self.writer.begin().await?;
                let inserted = insert.fetch_optional(&mut *tx).await?;
                if inserted.is_some() {
                    sql::execute_all::<DB>(&mut tx, artifacts::insert_labels(artifact.id, artifact.run_id, &artifact.labels)?).await?;
                    tx.commit().await?;
                }
                inserted
            };
            if let Some(row) = inserted {
                let row = <sql::Scalars as sqlx::FromRow<DB::Row>>::from_row(&row)?;
                let version = row.int.map_or(1, sql::to_u32);
                return Ok(artifacts::numbered(artifact, WorkspaceId::new(row.text.unwrap_or_default()), version));
            }
        }
        let mut tx = self.writer.begin().await?;
        let run = sql::query::<DB>(artifacts::run_for_write(artifact.run_id, self.dialect.locks_rows())).fetch_optional(&mut *tx).await?;
        let Some(run) = run else {
            return Err(Error::not_found("run", artifact.run_id));
        };
        let run = <sql::Scalars as sqlx::FromRow<DB::Row>>::from_row(&run)?;
        if let Some(epoch) = lease_epoch {
            let current = run.int.map(sql::to_u64);
            if run.text2.as_deref() != Some(RunState::Running.as_str()) || current != Some(epoch) {
                return Err(Error::StaleLease { run_id: artifact.run_id.to_string(), epoch });
            }
        }
        let latest = sql::query::<DB>(artifacts::latest_version(artifact.run_id, &artifact.name)).fetch_optional(&mut *tx).await?;
        let latest = latest.map(|row| <sql::Scalars as sqlx::FromRow<DB::Row>>::from_row(&row)).transpose()?;
        let latest_id = latest.as_ref().and_then(|row| row.text.as_deref()).map(|id| ArtifactId::parse("id", id)).transpose()?;
        artifact.condition.check(&artifact.name, latest_id)?;
        let version = latest.and_then(|row| row.int).map_or(1, |version| sql::to_u32(version).saturating_add(1));
        let stored = artifacts::numbered(artifact, WorkspaceId::new(run.text.unwrap_or_default()), version);
        sql::execute_all::<DB>(&mut tx, artifacts::insert(&stored)?).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn get_artifacts(&self, ids: &[ArtifactId]) -> Result<Vec<Artifact>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<artifacts::ArtifactRow> = read(&self.reader, artifacts::select_by_ids(ids)).await?;
        rows.into_iter().map(Artifact::try_from).collect()
    }

    async fn find_artifact(&self, run: RunId, name: &ArtifactName, version: Option<u32>) -> Result<Option<Artifact>> {
        let rows: Vec<artifacts::ArtifactRow> = read(&self.reader, artifacts::select_by_name(run, name, version)).await?;
        rows.into_iter().next().map(Artifact::try_from).transpose()
    }

    async fn list_artifacts(&self, query: &ArtifactQuery) -> Result<Vec<Artifact>> {
        let rows: Vec<artifacts::ArtifactRow> = read(&self.reader, artifacts::list(query)).await?;
        rows.into_iter().map(Artifact::try_from).collect()
    }

    async fn artifacts_of_runs(&self, runs: &[RunId]) -> Result<Vec<Artifact>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<artifacts::ArtifactRow> = read(&self.reader, artifacts::select_of_runs(runs)).await?;
        rows.into_iter().map(Artifact::try_from).collect()
    }

    async fn delete_artifacts(&self, ids: &[ArtifactId]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.writer.begin().await?;
        let existing = sql::query::<DB>(artifacts::select_by_ids(ids)).fetch_all(&mut *tx).await?.len();
        sql::execute_all::<DB>(&mut tx, artifacts::delete(ids)).await?;
        tx.commit().await?;
        Ok(existing as u64)
    }

    async fn record_artifact_use(&self, used: &ArtifactUse) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        sql::query::<DB>(artifacts::insert_use(used)).execute(&mut *conn).await?;
        Ok(())
    }

    async fn artifact_uses(&self, of: &[ArtifactId], by: &[RunId]) -> Result<Vec<ArtifactUse>> {
        if of.is_empty() && by.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<artifacts::UseRow> = read(&self.reader, artifacts::select_uses(of, by)).await?;
        rows.into_iter().map(ArtifactUse::try_from).collect()
    }

    async fn referenced_digests(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let mut referenced = Vec::new();
        for chunk in digests.chunks(500) {
            let rows: Vec<sql::Scalars> = read(&self.reader, artifacts::referenced(chunk)).await?;
            for row in rows {
                referenced.push(Digest::parse("sha256", row.text.as_deref().unwrap_or_default())?);
            }
        }
        Ok(referenced)
    }

    async fn record_debate_votes(&self, run: RunId, workspace: &WorkspaceId, votes: &[(String, bool)], now: Timestamp) -> Result<()> {
        if votes.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer.acquire().await?;
        sql::query::<DB>(knowledge::insert_votes(run, workspace, votes, now)).execute(&mut *conn).await?;
        Ok(())
    }

    async fn read_reliability(&self, workspace: &WorkspaceId, participants: &[String]) -> Result<Vec<Reliability>> {
        if participants.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<knowledge::ReliabilityRow> = read(&self.reader, knowledge::reliability(workspace, participants)).await?;
        Ok(rows
            .into_iter()
            .map(|row| Reliability { participant: row.participant, debates: sql::to_u64(row.debates), agreed: sql::to_u64(row.agreed) })
            .collect())
    }

    async fn remember(&self, memory: &Memory) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sql::execute_all::<DB>(&mut tx, knowledge::remember(memory)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn recall(&self, workspace: &WorkspaceId, words: &[String], limit: u32) -> Result<Vec<Memory>> {
        if words.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<knowledge::MemoryRow> = read(&self.reader, knowledge::recall(self.dialect.flavor(), workspace, words, limit)).await?;
        rows.into_iter()
            .map(|row| {
                Ok(Memory {
                    run_id: RunId::parse("run_id", &row.run_id).map_err(|err| Error::Internal(format!("corrupt mission memory: {err}")))?,
                    workspace: WorkspaceId::new(row.workspace_id),
                    request: row.request,
                    summary: row.summary,
                    outcome: row.outcome,
                    created_at: Timestamp::from_micros(row.created_at),
                })
            })
            .collect()
    }

    async fn get_skill(&self, workspace: &WorkspaceId, id: &SkillId) -> Result<Option<Skill>> {
        Ok(read_documents(&self.reader, stage::select(&DocumentKey::skill(workspace, id), false)).await?.pop())
    }

    async fn list_skills(&self, workspace: &WorkspaceId) -> Result<Vec<Skill>> {
        read_documents(&self.reader, stage::list_skills(workspace)).await
    }

    async fn update_skill(&self, workspace: &WorkspaceId, id: &SkillId, change: SkillFn<'_>) -> Result<Skill> {
        let mut tx = self.writer.begin().await?;
        let key = DocumentKey::skill(workspace, id);
        let (skill, ()) = change_document::<DB, Skill, ()>(&mut tx, &key, self.dialect.locks_rows(), |stored| {
            let skill = change(stored)?;
            Ok((Skill { workspace: workspace.clone(), id: id.clone(), ..skill }, ()))
        })
        .await?;
        tx.commit().await?;
        Ok(skill)
    }

    async fn get_recipe(&self, workspace: &WorkspaceId, stage: &str) -> Result<Option<Recipe>> {
        Ok(read_documents(&self.reader, stage::select(&DocumentKey::recipe(workspace, stage), false)).await?.pop())
    }

    async fn list_recipes(&self, workspace: &WorkspaceId) -> Result<Vec<Recipe>> {
        read_documents(&self.reader, stage::list_recipes(workspace)).await
    }

    async fn update_recipe(&self, workspace: &WorkspaceId, stage: &str, change: RecipeFn<'_>) -> Result<Recipe> {
        let mut tx = self.writer.begin().await?;
        let key = DocumentKey::recipe(workspace, stage);
        let (recipe, ()) = change_document::<DB, Recipe, ()>(&mut tx, &key, self.dialect.locks_rows(), |stored| {
            let recipe = change(stored)?;
            Ok((Recipe { workspace: workspace.clone(), stage: stage.to_owned(), ..recipe }, ()))
        })
        .await?;
        tx.commit().await?;
        Ok(recipe)
    }

    async fn create_card(&self, card: &Card, events: &[NewCardEvent]) -> Result<(Card, Vec<CardEvent>)> {
        let card = Card { revision: 1, ..card.clone() };
        let mut tx = self.writer.begin().await?;
        let inserted = sql::query::<DB>(stage::insert(&DocumentKey::card(card.id), &card)?).fetch_optional(&mut *tx).await?;
        if inserted.is_none() {
            return Err(Error::AlreadyExists { reason: "CARD_EXISTS", message: format!("card {} already exists", card.id) });
        }
        let events = stage::number_card_events(card.id, 0, events.to_vec());
        sql::execute_all::<DB>(&mut tx, stage::insert_card_events(&events)?).await?;
        tx.commit().await?;
        Ok((card, events))
    }

    async fn get_card(&self, id: CardId) -> Result<Option<Card>> {
        Ok(read_documents(&self.reader, stage::select(&DocumentKey::card(id), false)).await?.pop())
    }

    async fn list_cards(&self, query: &CardQuery) -> Result<Vec<Card>> {
        read_documents(&self.reader, stage::list_cards(query)).await
    }

    async fn update_card(&self, id: CardId, change: CardFn<'_>) -> Result<(Card, Vec<CardEvent>)> {
        let mut tx = self.writer.begin().await?;
        let key = DocumentKey::card(id);
        let (card, events) = change_document::<DB, Card, Vec<NewCardEvent>>(&mut tx, &key, self.dialect.locks_rows(), |stored| {
            let stored = stored.ok_or_else(|| Error::not_found("card", id))?;
            let CardChange { card, events } = change(stored)?;
            Ok((Card { id, workspace: stored.workspace.clone(), ..card }, events))
        })
        .await?;
        let last = sql::query::<DB>(stage::last_card_event(id)).fetch_one(&mut *tx).await?;
        let last = <sql::Scalars as sqlx::FromRow<DB::Row>>::from_row(&last)?.int.map_or(0, sql::to_u64);
        let events = stage::number_card_events(id, last, events);
        sql::execute_all::<DB>(&mut tx, stage::insert_card_events(&events)?).await?;
        tx.commit().await?;
        Ok((card, events))
    }

    async fn cards_with_ended_runs(&self, after: Option<CardId>, limit: u32) -> Result<Vec<Card>> {
        read_documents(&self.reader, stage::cards_with_ended_runs(after, limit)).await
    }

    async fn read_card_events(&self, id: CardId, after: u64, limit: u32) -> Result<Vec<CardEvent>> {
        let rows: Vec<stage::CardEventRow> = read(&self.reader, stage::select_card_events(id, after, limit)).await?;
        rows.into_iter().map(|row| row.into_event(id)).collect()
    }

    async fn try_lead(&self) -> Result<bool> {
        match &self.cluster {
            Some(cluster) => cluster.leadership.try_lead().await,
            None => Ok(true),
        }
    }

    async fn resign(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.leadership.resign().await;
        }
    }

    async fn notify(&self, messages: &[String]) -> Result<()> {
        if self.cluster.is_none() || messages.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer.acquire().await?;
        for statement in sql::notify(messages) {
            sql::query::<DB>(statement).execute(&mut *conn).await?;
        }
        Ok(())
    }

    fn listen(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        self.cluster.as_ref().map(|cluster| cluster.bus.subscribe())
    }
}
