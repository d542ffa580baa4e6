//! The Postgres backend, for several processes sharing the work. Runs are locked `FOR UPDATE`
//! while a state-machine function decides their change; claims skip rows another process is
//! claiming (`FOR UPDATE SKIP LOCKED`) and serialise on each concurrency key with a transaction
//! advisory lock, so a key's limit holds across processes.

use std::{collections::HashMap, str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgConnection, PgPool, Postgres, QueryBuilder,
};

use super::{
    sql::{self, EventRow, JournalRow, LogRow, RunRow},
    ClaimRequest, Created, JournalEntry, LeaseStatus, QueueCounts, Store, Transition, UpdateFn,
};
use crate::{
    domain::{
        Lease, LogLine, NewLogLine, NewRun, Run, RunEvent, RunId, RunQuery,
        Timestamp, WorkspaceId,
    },
    error::{Error, Result},
};

/// Runs, events, logs and journals in a Postgres database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to and migrates the database at a `postgres://` URL.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|err| Error::invalid("database_url", format!("`{}` is not a valid Postgres URL: {err}", super::redact(url))))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|err| Error::Unavailable(format!("cannot connect to Postgres at {}: {err}", super::redact(url))))?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    async fn fetch_run(conn: &mut PgConnection, id: RunId, lock: bool) -> Result<Option<RunRow>> {
        let lock = if lock { " FOR UPDATE" } else { "" };
        let sql = format!("SELECT {} FROM runs WHERE id = $1{lock}", sql::RUN_COLUMNS);
        Ok(sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(conn)
            .await?)
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn workspace_exists(&self, workspace: &WorkspaceId) -> Result<bool> {
        let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workspaces WHERE id = $1")
            .bind(workspace.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(found > 0)
    }

    async fn create_runs(&self, runs: Vec<NewRun>) -> Result<Vec<Created>> {
        let mut tx = self.pool.begin().await?;
        let created = sql::create_runs::<Postgres>(&mut tx, &runs).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn get_run(&self, id: RunId) -> Result<Option<Run>> {
        let mut conn = self.pool.acquire().await?;
        Self::fetch_run(&mut conn, id, false).await?.map(Run::try_from).transpose()
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<Run>> {
        let mut builder = QueryBuilder::<Postgres>::new(format!("SELECT {} FROM runs", sql::RUN_COLUMNS));
        sql::push_run_filters(&mut builder, query);
        let rows = builder.build_query_as::<RunRow>().fetch_all(&self.pool).await?;
        rows.into_iter().map(Run::try_from).collect()
    }

    async fn update_runs(&self, changes: &[(RunId, UpdateFn<'_>)]) -> Result<Vec<Result<Transition>>> {
        let mut tx = self.pool.begin().await?;
        let results = sql::update_runs_in::<Postgres>(&mut tx, changes, true).await?;
        tx.commit().await?;
        Ok(results)
    }

    async fn claim_runs(&self, claim: &ClaimRequest) -> Result<Vec<Transition>> {
        if claim.limit == 0 || claim.kinds.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let mut candidates = QueryBuilder::<Postgres>::new(
            "SELECT id, concurrency_key, concurrency_limit FROM runs WHERE state = 'queued' AND scheduled_at <= ",
        );
        candidates.push_bind(claim.now.as_micros()).push(" AND kind IN (");
        let mut kinds = candidates.separated(", ");
        for kind in &claim.kinds {
            kinds.push_bind(kind.as_str());
        }
        candidates
            .push(")")
            .push(sql::CLAIM_KEY_HAS_ROOM)
            .push(" ORDER BY priority DESC, id LIMIT ")
            .push_bind(i64::from(claim.limit) * 4 + 16)
            .push(" FOR UPDATE SKIP LOCKED");
        let candidates: Vec<(String, Option<String>, i64)> = candidates.build_query_as().fetch_all(&mut *tx).await?;
        let running_by_key: HashMap<String, i64> = if candidates.iter().any(|(_, key, _)| key.is_some()) {
            // Serialise claims per key across processes before counting what runs under it.
            let mut keys: Vec<&str> = candidates.iter().filter_map(|(_, key, _)| key.as_deref()).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(key).execute(&mut *tx).await?;
            }
            sqlx::query_as(sql::RUNNING_BY_KEY).fetch_all(&mut *tx).await?.into_iter().collect()
        } else {
            HashMap::new()
        };
        let chosen = sql::admit_within_concurrency(candidates, running_by_key, claim.limit);
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let expires_at = claim.now.plus(claim.lease_ttl).as_micros();
        let mut update = QueryBuilder::<Postgres>::new(sql::CLAIM_UPDATE_PREFIX);
        update
            .push_bind(claim.worker_id.as_str())
            .push(", lease_expires_at = ")
            .push_bind(expires_at)
            .push(", started_at = COALESCE(started_at, ")
            .push_bind(claim.now.as_micros())
            .push("), updated_at = ")
            .push_bind(claim.now.as_micros())
            .push(" WHERE id IN (");
        let mut ids = update.separated(", ");
        for id in &chosen {
            ids.push_bind(id.as_str());
        }
        update.push(format!(") RETURNING {}", sql::RUN_COLUMNS));
        let rows: Vec<RunRow> = update.build_query_as().fetch_all(&mut *tx).await?;
        let runs = rows.into_iter().map(Run::try_from).collect::<Result<Vec<_>>>()?;
        let events = sql::claimed_events(&runs, &claim.worker_id, claim.now);
        for statement in sql::insert_events(&events)? {
            sql::query::<Postgres>(statement).execute(&mut *tx).await?;
        }
        let mut transitions: Vec<Transition> =
            runs.into_iter().zip(events).map(|(run, event)| Transition { run, events: vec![event] }).collect();
        tx.commit().await?;
        transitions.sort_by(|a, b| b.run.priority.cmp(&a.run.priority).then(a.run.id.cmp(&b.run.id)));
        Ok(transitions)
    }

    async fn extend_lease(&self, lease: &Lease, until: Timestamp) -> Result<LeaseStatus> {
        let cancel_requested: Option<bool> = sqlx::query_scalar(sql::EXTEND_LEASE)
            .bind(lease.run_id.to_string())
            .bind(sql::to_i64(lease.epoch))
            .bind(until.as_micros())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match cancel_requested {
            Some(cancel_requested) => LeaseStatus::Held { cancel_requested },
            None => LeaseStatus::Lost,
        })
    }

    async fn append_logs(&self, lease: &Lease, attempt: u32, lines: &[NewLogLine]) -> Result<Vec<LogLine>> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let count = lines.len() as u64;
        let last: Option<i64> = sqlx::query_scalar(sql::RESERVE_LOG_SEQ)
            .bind(lease.run_id.to_string())
            .bind(sql::to_i64(lease.epoch))
            .bind(sql::to_i64(count))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(last) = last else {
            return Err(Error::StaleLease { run_id: lease.run_id.to_string(), epoch: lease.epoch });
        };
        let stored = sql::number_log_lines(lease.run_id, sql::to_u64(last) - count, attempt, lines);
        let run_id = lease.run_id.to_string();
        for chunk in stored.chunks(sql::LOG_INSERT_CHUNK) {
            let mut insert = QueryBuilder::<Postgres>::new("INSERT INTO run_logs (run_id, seq, time, attempt, stream, text) ");
            insert.push_values(chunk, |mut row, line| {
                row.push_bind(run_id.as_str())
                    .push_bind(sql::to_i64(line.sequence))
                    .push_bind(line.time.as_micros())
                    .push_bind(i64::from(line.attempt))
                    .push_bind(i64::from(line.stream.code()))
                    .push_bind(line.text.as_str());
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn read_events(&self, run: RunId, after: u64, limit: u32) -> Result<Vec<RunEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(sql::SELECT_EVENTS)
            .bind(run.to_string())
            .bind(sql::to_i64(after))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(|row| row.into_event(run)).collect()
    }

    async fn read_logs(&self, run: RunId, after: u64, limit: u32) -> Result<Vec<LogLine>> {
        let rows: Vec<LogRow> = sqlx::query_as(sql::SELECT_LOGS)
            .bind(run.to_string())
            .bind(sql::to_i64(after))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|row| row.into_line(run)).collect())
    }

    async fn read_journal(&self, run: RunId) -> Result<Vec<JournalEntry>> {
        let rows: Vec<JournalRow> = sqlx::query_as(sql::SELECT_JOURNAL)
            .bind(run.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(JournalEntry::try_from).collect()
    }

    async fn expired_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<RunId>> {
        let ids: Vec<String> = sqlx::query_scalar(sql::EXPIRED_LEASES)
            .bind(now.as_micros())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        sql::parse_ids(ids)
    }

    async fn overdue_runs(&self, now: Timestamp, limit: u32) -> Result<Vec<RunId>> {
        let ids: Vec<String> = sqlx::query_scalar(sql::OVERDUE_RUNS)
            .bind(now.as_micros())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        sql::parse_ids(ids)
    }

    async fn next_scheduled_at(&self, kinds: &[String]) -> Result<Option<Timestamp>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let mut query = QueryBuilder::<Postgres>::new("SELECT MIN(scheduled_at) FROM runs WHERE state = 'queued' AND kind IN (");
        let mut separated = query.separated(", ");
        for kind in kinds {
            separated.push_bind(kind.as_str());
        }
        query.push(")");
        let next: Option<i64> = query.build_query_scalar().fetch_one(&self.pool).await?;
        Ok(next.map(Timestamp::from_micros))
    }

    async fn queue_counts(&self, workspace: &WorkspaceId, now: Timestamp, finished_since: Timestamp) -> Result<QueueCounts> {
        let counts: Vec<(String, String, i64)> = sqlx::query_as(sql::COUNT_BY_KIND_AND_STATE)
            .bind(workspace.as_str())
            .fetch_all(&self.pool)
            .await?;
        let oldest: Option<i64> = sqlx::query_scalar(sql::OLDEST_QUEUED)
            .bind(workspace.as_str())
            .bind(now.as_micros())
            .fetch_one(&self.pool)
            .await?;
        let finished: i64 = sqlx::query_scalar(sql::FINISHED_SINCE)
            .bind(workspace.as_str())
            .bind(finished_since.as_micros())
            .fetch_one(&self.pool)
            .await?;
        Ok(sql::queue_counts(counts, oldest, finished))
    }
}
