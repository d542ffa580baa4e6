//! The one implementation of [`Store`] over SQL, generic over the database: SQLite and
//! Postgres share every statement (see `sql.rs`) and differ only in what their [`Dialect`] says:
//! Postgres locks rows it is about to change and lets concurrent claimers skip each other.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{Database, Pool};

use super::{
    sql::{self, Statement},
    ClaimRequest, Created, JournalEntry, LeaseStatus, QueueCounts, Store, Transition, UpdateFn,
};
use crate::{
    domain::{Lease, LogLine, NewLogLine, NewRun, Run, RunEvent, RunId, RunQuery, Timestamp, WorkspaceId},
    error::{Error, Result},
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
}

/// Runs, events, logs and journals in a SQL database. Writes go through `writer`, reads through
/// `reader` (the same pool on Postgres; on SQLite, one writer connection and several readers).
#[derive(Debug, Clone)]
pub struct SqlStore<DB: Database> {
    pub(super) writer: Pool<DB>,
    pub(super) reader: Pool<DB>,
    pub(super) dialect: Dialect,
    /// The notifications of other processes (Postgres).
    pub(super) bus: Option<super::postgres::Bus>,
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
        let rows: Vec<sql::RunRow> = read(&self.reader, sql::list_runs(query)).await?;
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
        for statement in sql::insert_events(&events)? {
            sql::query::<DB>(statement).execute(&mut *tx).await?;
        }
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

    async fn append_logs(&self, lease: &Lease, attempt: u32, lines: &[NewLogLine]) -> Result<Vec<LogLine>> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin().await?;
        let count = lines.len() as u64;
        let reserved = sql::query::<DB>(sql::reserve_log_sequences(lease, count)).fetch_optional(&mut *tx).await?;
        let Some(row) = reserved else {
            return Err(Error::StaleLease { run_id: lease.run_id.to_string(), epoch: lease.epoch });
        };
        let last = <sql::Scalars as sqlx::FromRow<DB::Row>>::from_row(&row)?.int.map_or(0, sql::to_u64);
        let stored = sql::number_log_lines(lease.run_id, last - count, attempt, lines);
        for statement in sql::insert_logs(&stored) {
            sql::query::<DB>(statement).execute(&mut *tx).await?;
        }
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

    async fn notify(&self, messages: &[String]) -> Result<()> {
        if self.bus.is_none() || messages.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer.acquire().await?;
        for statement in sql::notify(messages) {
            sql::query::<DB>(statement).execute(&mut *conn).await?;
        }
        Ok(())
    }

    fn listen(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        self.bus.as_ref().map(super::postgres::Bus::subscribe)
    }
}
