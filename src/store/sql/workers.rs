//! The statements of the worker registry.

use std::collections::BTreeMap;

use super::{to_u32, Statement, RUN_COLUMNS};
use crate::{
    domain::{NewWorker, Timestamp, Worker, WorkerId},
    error::Result,
    store::{json_column, to_json},
};

/// A worker's columns, with how many runs it holds (`running`), for [`WorkerRow`].
const WORKER_SELECT: &str = "SELECT w.id, w.name, w.kinds, w.providers, w.labels, w.capacity, w.embedded, w.draining, \
    w.registered_at, w.last_heartbeat_at, w.stale_since, w.stopped_at, \
    (SELECT COUNT(*) FROM runs AS r WHERE r.state = 'running' AND r.lease_worker = w.id) AS running FROM workers AS w";

/// A `workers` row as both backends return it.
#[derive(Debug, sqlx::FromRow)]
pub struct WorkerRow {
    pub id: String,
    pub name: String,
    pub kinds: String,
    pub providers: String,
    pub labels: String,
    pub capacity: i64,
    pub embedded: bool,
    pub draining: bool,
    pub registered_at: i64,
    pub last_heartbeat_at: i64,
    pub stale_since: Option<i64>,
    pub stopped_at: Option<i64>,
    pub running: i64,
}

impl TryFrom<WorkerRow> for Worker {
    type Error = crate::error::Error;

    fn try_from(row: WorkerRow) -> Result<Self> {
        Ok(Worker {
            spec: NewWorker {
                id: WorkerId::new(row.id),
                name: row.name,
                kinds: json_column::<Vec<String>>("kinds", &row.kinds)?,
                providers: json_column::<Vec<String>>("providers", &row.providers)?,
                labels: json_column::<BTreeMap<String, String>>("labels", &row.labels)?,
                capacity: to_u32(row.capacity),
                embedded: row.embedded,
            },
            draining: row.draining,
            registered_at: Timestamp::from_micros(row.registered_at),
            last_heartbeat_at: Timestamp::from_micros(row.last_heartbeat_at),
            stale_since: row.stale_since.map(Timestamp::from_micros),
            stopped_at: row.stopped_at.map(Timestamp::from_micros),
            running: to_u32(row.running),
        })
    }
}

/// Inserts a worker, or brings a known one back to life with what it declares now.
pub fn register(worker: &NewWorker, now: Timestamp) -> Result<Statement> {
    let mut statement = Statement::new(
        "INSERT INTO workers (id, name, kinds, providers, labels, capacity, embedded, registered_at, last_heartbeat_at) VALUES ",
    );
    statement.push_tuple(vec![
        worker.id.to_string().into(),
        worker.name.clone().into(),
        to_json(&worker.kinds)?.into(),
        to_json(&worker.providers)?.into(),
        to_json(&worker.labels)?.into(),
        i64::from(worker.capacity).into(),
        worker.embedded.into(),
        now.as_micros().into(),
        now.as_micros().into(),
    ]);
    statement.push(
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, kinds = excluded.kinds, providers = excluded.providers, \
         labels = excluded.labels, capacity = excluded.capacity, embedded = excluded.embedded, draining = FALSE, \
         last_heartbeat_at = excluded.last_heartbeat_at, stale_since = NULL, stopped_at = NULL",
    );
    Ok(statement)
}

/// Records a heartbeat.
pub fn heartbeat(id: &WorkerId, now: Timestamp) -> Statement {
    let mut statement = Statement::new("UPDATE workers SET stale_since = NULL, stopped_at = NULL, last_heartbeat_at = ");
    statement.push_bind(now.as_micros()).push(" WHERE id = ").push_bind(id.to_string()).push(" RETURNING id AS text");
    statement
}

/// Reads one worker.
pub fn select(id: &WorkerId) -> Statement {
    let mut statement = Statement::new(format!("{WORKER_SELECT} WHERE w.id = "));
    statement.push_bind(id.to_string());
    statement
}

/// Lists workers by id.
pub fn list(after: Option<&WorkerId>, limit: u32) -> Statement {
    let mut statement = Statement::new(WORKER_SELECT);
    if let Some(after) = after {
        statement.push(" WHERE w.id > ").push_bind(after.to_string());
    }
    statement.push(" ORDER BY w.id LIMIT ").push_bind(i64::from(limit));
    statement
}

/// Sets or clears a worker's drain request.
pub fn set_draining(id: &WorkerId, draining: bool) -> Statement {
    let mut statement = Statement::new("UPDATE workers SET draining = ");
    statement.push_bind(draining).push(" WHERE id = ").push_bind(id.to_string()).push(" RETURNING id AS text");
    statement
}

/// Records a clean stop.
pub fn stop(id: &WorkerId, now: Timestamp) -> Statement {
    let mut statement = Statement::new("UPDATE workers SET stopped_at = ");
    statement.push_bind(now.as_micros()).push(" WHERE id = ").push_bind(id.to_string());
    statement
}

/// Marks stale the live workers silent since before `cutoff`.
pub fn mark_stale(cutoff: Timestamp, now: Timestamp) -> Statement {
    let mut statement = Statement::new("UPDATE workers SET stale_since = ");
    statement.push_bind(now.as_micros());
    statement.push(" WHERE stale_since IS NULL AND stopped_at IS NULL AND last_heartbeat_at < ").push_bind(cutoff.as_micros());
    statement.push(" RETURNING id AS text");
    statement
}

/// The running runs a worker holds.
pub fn leased_runs(id: &WorkerId) -> Statement {
    let mut statement = Statement::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE state = 'running' AND lease_worker = "));
    statement.push_bind(id.to_string()).push(" ORDER BY id");
    statement
}
