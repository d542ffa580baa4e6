//! What both backends share: the SQL text that is the same in both dialects (`$N` placeholders
//! work in SQLite too), and the row types with their conversion into domain values.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use serde_json::{Map, Value};

use super::{json_column, to_json, ClaimRequest, JournalEntry, QueueCounts, Transition, Update, UpdateFn};
use crate::{
    domain::{
        Decision, EventKind, Lease, LogLine, LogStream, NewLogLine, NewRun, Replay, ReplayMode, Run, RunError,
        RunEvent, RunId, RunQuery, RunState, Timestamp, Waiting, WorkerId, WorkspaceId,
    },
    error::{Error, Result},
};

/// The columns of a run row, in [`RunRow`]'s order.
pub const RUN_COLUMNS: &str = "id, workspace_id, kind, state, input, output, error, priority, \
    max_attempts, attempt, attempt_timeout_ms, deadline, concurrency_key, concurrency_limit, \
    labels, request_id, created_at, started_at, finished_at, updated_at, scheduled_at, waiting, \
    decisions, lease_worker, lease_epoch, lease_expires_at, cancel_requested, last_event_seq, \
    last_log_seq, history_pruned_at, replay_of, replay_mode";

/// A `runs` row as both backends return it.
#[derive(Debug, sqlx::FromRow)]
pub struct RunRow {
    pub id: String,
    pub workspace_id: String,
    pub kind: String,
    pub state: String,
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub priority: i64,
    pub max_attempts: i64,
    pub attempt: i64,
    pub attempt_timeout_ms: i64,
    pub deadline: Option<i64>,
    pub concurrency_key: Option<String>,
    pub concurrency_limit: i64,
    pub labels: String,
    pub request_id: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
    pub scheduled_at: i64,
    pub waiting: Option<String>,
    pub decisions: String,
    pub lease_worker: Option<String>,
    pub lease_epoch: i64,
    pub lease_expires_at: Option<i64>,
    pub cancel_requested: bool,
    pub last_event_seq: i64,
    pub last_log_seq: i64,
    pub history_pruned_at: Option<i64>,
    pub replay_of: Option<String>,
    pub replay_mode: Option<String>,
}

impl TryFrom<RunRow> for Run {
    type Error = Error;

    fn try_from(row: RunRow) -> Result<Self> {
        let id = RunId::parse("id", &row.id).map_err(|_| Error::Internal(format!("corrupt run id {}", row.id)))?;
        let state = RunState::from_name(&row.state)
            .ok_or_else(|| Error::Internal(format!("run {id} has unknown state {}", row.state)))?;
        let lease = match (row.lease_worker, row.lease_expires_at) {
            (Some(worker), Some(expires_at)) if state == RunState::Running => Some(Lease {
                run_id: id,
                worker_id: WorkerId::new(worker),
                epoch: to_u64(row.lease_epoch),
                expires_at: Timestamp::from_micros(expires_at),
            }),
            _ => None,
        };
        Ok(Run {
            id,
            workspace: WorkspaceId::new(row.workspace_id),
            kind: row.kind,
            state,
            input: json_column::<Map<String, Value>>("input", &row.input)?,
            output: row.output.as_deref().map(|text| json_column("output", text)).transpose()?,
            error: row.error.as_deref().map(|text| json_column::<RunError>("error", text)).transpose()?,
            priority: i32::try_from(row.priority).unwrap_or_default(),
            max_attempts: to_u32(row.max_attempts),
            attempt: to_u32(row.attempt),
            attempt_timeout: Duration::from_millis(to_u64(row.attempt_timeout_ms)),
            deadline: row.deadline.map(Timestamp::from_micros),
            concurrency: row.concurrency_key.map(|key| (key, to_u32(row.concurrency_limit))),
            labels: json_column::<BTreeMap<String, String>>("labels", &row.labels)?,
            request_id: row.request_id,
            created_at: Timestamp::from_micros(row.created_at),
            started_at: row.started_at.map(Timestamp::from_micros),
            finished_at: row.finished_at.map(Timestamp::from_micros),
            updated_at: Timestamp::from_micros(row.updated_at),
            scheduled_at: Timestamp::from_micros(row.scheduled_at),
            waiting: row.waiting.as_deref().map(|text| json_column::<Waiting>("waiting", text)).transpose()?,
            decisions: json_column::<BTreeMap<String, Decision>>("decisions", &row.decisions)?,
            lease,
            cancel_requested: row.cancel_requested,
            last_event_sequence: to_u64(row.last_event_seq),
            last_log_sequence: to_u64(row.last_log_seq),
            history_pruned_at: row.history_pruned_at.map(Timestamp::from_micros),
            replay: match (row.replay_of, row.replay_mode) {
                (Some(of), Some(mode)) => Some(Replay {
                    of: RunId::parse("replay_of", &of).map_err(|_| Error::Internal(format!("run {id} replays a corrupt run id {of}")))?,
                    mode: ReplayMode::parse(&mode).ok_or_else(|| Error::Internal(format!("run {id} has unknown replay mode {mode}")))?,
                }),
                _ => None,
            },
        })
    }
}

/// The mutable columns of a run, encoded for [`UPDATE_RUN`] (binds `$2` to `$16`).
pub struct RunUpdateBinds {
    pub state: &'static str,
    pub output: Option<String>,
    pub error: Option<String>,
    pub attempt: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
    pub scheduled_at: i64,
    pub waiting: Option<String>,
    pub decisions: String,
    pub lease_worker: Option<String>,
    pub lease_epoch: i64,
    pub lease_expires_at: Option<i64>,
    pub cancel_requested: bool,
    pub last_event_seq: i64,
}

impl RunUpdateBinds {
    /// Encodes a run whose last event will be `last_event_seq`. A run without a lease keeps its
    /// epoch, so the next claim still gets a higher one.
    pub fn new(run: &Run, previous_epoch: u64, last_event_seq: u64) -> Result<Self> {
        let (lease_worker, lease_epoch, lease_expires_at) = match &run.lease {
            Some(lease) => (Some(lease.worker_id.to_string()), lease.epoch, Some(lease.expires_at.as_micros())),
            None => (None, previous_epoch, None),
        };
        Ok(Self {
            state: run.state.as_str(),
            output: run.output.as_ref().map(to_json).transpose()?,
            error: run.error.as_ref().map(to_json).transpose()?,
            attempt: i64::from(run.attempt),
            started_at: run.started_at.map(Timestamp::as_micros),
            finished_at: run.finished_at.map(Timestamp::as_micros),
            updated_at: run.updated_at.as_micros(),
            scheduled_at: run.scheduled_at.as_micros(),
            waiting: run.waiting.as_ref().map(to_json).transpose()?,
            decisions: to_json(&run.decisions)?,
            lease_worker,
            lease_epoch: to_i64(lease_epoch),
            lease_expires_at,
            cancel_requested: run.cancel_requested,
            last_event_seq: to_i64(last_event_seq),
        })
    }
}

/// A `run_events` row.
#[derive(Debug, sqlx::FromRow)]
pub struct EventRow {
    pub seq: i64,
    pub time: i64,
    pub data: String,
}

impl EventRow {
    pub fn into_event(self, run_id: RunId) -> Result<RunEvent> {
        Ok(RunEvent {
            run_id,
            sequence: to_u64(self.seq),
            time: Timestamp::from_micros(self.time),
            kind: json_column::<EventKind>("event data", &self.data)?,
        })
    }
}

/// A `run_logs` row.
#[derive(Debug, sqlx::FromRow)]
pub struct LogRow {
    pub seq: i64,
    pub time: i64,
    pub attempt: i64,
    pub stream: i64,
    pub text: String,
}

impl LogRow {
    pub fn into_line(self, run_id: RunId) -> LogLine {
        LogLine {
            run_id,
            sequence: to_u64(self.seq),
            time: Timestamp::from_micros(self.time),
            attempt: to_u32(self.attempt),
            stream: LogStream::from_code(i16::try_from(self.stream).unwrap_or_default()),
            text: self.text,
        }
    }
}

/// A `run_journal` row.
#[derive(Debug, sqlx::FromRow)]
pub struct JournalRow {
    pub key: String,
    pub output: String,
    pub attempt: i64,
    pub finished_at: i64,
    pub duration_us: i64,
}

impl TryFrom<JournalRow> for JournalEntry {
    type Error = Error;

    fn try_from(row: JournalRow) -> Result<Self> {
        Ok(Self {
            output: json_column("journal output", &row.output)?,
            key: row.key,
            attempt: to_u32(row.attempt),
            finished_at: Timestamp::from_micros(row.finished_at),
            duration: Duration::from_micros(to_u64(row.duration_us)),
        })
    }
}

/// Numbers the events of an update after `last_sequence`, stamped with `time`.
pub fn number_events(run_id: RunId, last_sequence: u64, time: Timestamp, kinds: Vec<EventKind>) -> Vec<RunEvent> {
    kinds
        .into_iter()
        .zip(last_sequence + 1..)
        .map(|(kind, sequence)| RunEvent { run_id, sequence, time, kind })
        .collect()
}

pub fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

pub fn to_u32(value: i64) -> u32 {
    u32::try_from(value).unwrap_or_default()
}

pub fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The start of the claim `UPDATE`; the backend appends the worker, times and ids.
pub const CLAIM_UPDATE_PREFIX: &str = "UPDATE runs SET state = 'running', \
    attempt = CASE WHEN attempt = 0 THEN 1 ELSE attempt END, lease_epoch = lease_epoch + 1, \
    cancel_requested = FALSE, waiting = NULL, last_event_seq = last_event_seq + 1, log_position = 0, lease_worker = ";

/// Steers the planner, for this transaction only, to the in-order scan of `runs_queue`
/// (Postgres; see `Dialect::claim_preamble`).
pub fn claim_by_queue_index() -> Statement {
    Statement::new("SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)")
}

/// The plan of a statement, as `EXPLAIN` prints it (Postgres).
pub fn explain(statement: Statement) -> Statement {
    Statement { sql: format!("EXPLAIN {}", statement.sql), binds: statement.binds }
}

/// Keeps out of the claim candidates the runs whose concurrency key is already full, so that a
/// backlog under one full key cannot fill the candidate window and hold back every other run.
/// The exact admission is still [`admit_within_concurrency`] (under the key's lock on Postgres).
pub const CLAIM_KEY_HAS_ROOM: &str = " AND (concurrency_key IS NULL OR (SELECT COUNT(*) FROM runs AS r \
    WHERE r.state = 'running' AND r.concurrency_key = runs.concurrency_key) \
    < CASE WHEN concurrency_limit < 1 THEN 1 ELSE concurrency_limit END)";

/// Picks, in order, the candidates `(id, concurrency key, limit)` whose key still has room, up
/// to `limit` runs.
pub fn admit_within_concurrency(
    candidates: Vec<(String, Option<String>, i64)>,
    mut running_by_key: HashMap<String, i64>,
    limit: u32,
) -> Vec<String> {
    let mut chosen = Vec::new();
    for (id, key, key_limit) in candidates {
        if chosen.len() >= limit as usize {
            break;
        }
        if let Some(key) = key {
            let running = running_by_key.entry(key).or_insert(0);
            if *running >= key_limit.max(1) {
                continue;
            }
            *running += 1;
        }
        chosen.push(id);
    }
    chosen
}

/// The `StateChanged` event of a claimed run (numbered by the claim's `last_event_seq + 1`).
pub fn claimed_event(run: &Run, worker: &WorkerId, now: Timestamp) -> RunEvent {
    RunEvent {
        run_id: run.id,
        sequence: run.last_event_sequence,
        time: now,
        kind: EventKind::StateChanged {
            from: RunState::Queued,
            to: RunState::Running,
            attempt: run.attempt,
            reason: format!("claimed by worker {worker}"),
            worker_id: Some(worker.to_string()),
            error: None,
        },
    }
}

/// Numbers new log lines after `last_sequence`.
pub fn number_log_lines(run_id: RunId, last_sequence: u64, attempt: u32, lines: &[NewLogLine]) -> Vec<LogLine> {
    lines
        .iter()
        .zip(last_sequence + 1..)
        .map(|(line, sequence)| LogLine {
            run_id,
            sequence,
            time: line.time,
            attempt,
            stream: line.stream,
            text: line.text.clone(),
        })
        .collect()
}

/// Parses stored run ids.
pub fn parse_ids(ids: Vec<String>) -> Result<Vec<RunId>> {
    ids.iter()
        .map(|id| RunId::parse("id", id).map_err(|_| Error::Internal(format!("corrupt run id {id}"))))
        .collect()
}

/// Assembles [`QueueCounts`] from the three stats queries.
pub fn queue_counts(counts: Vec<(String, String, i64)>, oldest_queued: Option<i64>, finished: i64) -> QueueCounts {
    let mut result = QueueCounts {
        oldest_queued_since: oldest_queued.map(Timestamp::from_micros),
        finished_since: to_u64(finished),
        ..QueueCounts::default()
    };
    for (kind, state, count) in counts {
        let Some(state) = RunState::from_name(&state) else { continue };
        if state == RunState::Running {
            result.active_leases += to_u64(count);
        }
        result.by_kind_and_state.insert((kind, state), to_u64(count));
    }
    result
}

/// A value bound to a statement: the three column types both backends store.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
}

impl From<String> for Bind {
    fn from(value: String) -> Self {
        Self::Text(Some(value))
    }
}

impl From<Option<String>> for Bind {
    fn from(value: Option<String>) -> Self {
        Self::Text(value)
    }
}

impl From<i64> for Bind {
    fn from(value: i64) -> Self {
        Self::Int(Some(value))
    }
}

impl From<Option<i64>> for Bind {
    fn from(value: Option<i64>) -> Self {
        Self::Int(value)
    }
}

impl From<bool> for Bind {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

/// SQL text valid in both dialects, with its binds in `$N` order.
#[derive(Debug, Clone, Default)]
pub struct Statement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Statement {
    /// A statement of fixed text.
    fn new(sql: impl Into<String>) -> Self {
        Self { sql: sql.into(), binds: Vec::new() }
    }

    /// Appends text.
    fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `value`.
    fn push_bind(&mut self, value: impl Into<Bind>) -> &mut Self {
        self.binds.push(value.into());
        self.sql.push_str(&format!("${}", self.binds.len()));
        self
    }

    /// Appends a `(…)` tuple of fresh placeholders for `values`, separated by a comma from the
    /// previous tuple.
    /// Binds are numbered in order of appearance, which [`positional`] relies on.
    fn push_tuple(&mut self, values: Vec<Bind>) {
        if self.sql.ends_with(')') {
            self.sql.push_str(", ");
        }
        self.sql.push('(');
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.sql.push_str(", ");
            }
            self.binds.push(value);
            self.sql.push_str(&format!("${}", self.binds.len()));
        }
        self.sql.push(')');
    }
}

/// A query for a statement, on either backend.
pub fn query<DB>(statement: Statement) -> sqlx::query::Query<'static, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    Option<String>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Option<i64>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    bool: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let sql = if DB::NAME == "SQLite" { positional(&statement.sql) } else { statement.sql };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in statement.binds {
        query = match bind {
            Bind::Text(value) => query.bind(value),
            Bind::Int(value) => query.bind(value),
            Bind::Bool(value) => query.bind(value),
        };
    }
    query
}

/// Executes `statements` in order, on either backend. SQLite receives them as one
/// multi-statement query: its driver runs each connection on a thread of its own, so every
/// query is a round trip between threads, and a transaction's writes then cost one round trip
/// instead of one each. (Anonymous `?` placeholders bind across the statements in order.)
/// Postgres's extended protocol takes one statement per query, so there they go one by one.
pub async fn execute_all<DB>(conn: &mut DB::Connection, statements: impl IntoIterator<Item = Statement>) -> Result<()>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    Option<String>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Option<i64>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    bool: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if DB::NAME != "SQLite" {
        for statement in statements {
            query::<DB>(statement).execute(&mut *conn).await?;
        }
        return Ok(());
    }
    let mut batch = Statement::default();
    for statement in statements {
        if !batch.sql.is_empty() {
            batch.sql.push_str(";\n");
        }
        batch.sql.push_str(&statement.sql);
        batch.binds.extend(statement.binds);
    }
    if !batch.sql.is_empty() {
        query::<DB>(batch).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The statement with SQLite's anonymous `?` placeholders instead of `$N`. Statements number
/// their binds in order of appearance, so the two mean the same; but SQLite looks a named
/// parameter up by a linear scan, which made binding a many-row statement quadratic.
fn positional(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// Rows per multi-row statement: well under both backends' bind limits.
const ROWS_PER_STATEMENT: usize = 100;

/// Multi-row statements over `items`, each starting with `head` and one tuple per item.
fn multi_row<T>(head: &str, tail: &str, items: &[T], tuple: impl Fn(&T) -> Result<Vec<Bind>>) -> Result<Vec<Statement>> {
    items
        .chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let mut statement = Statement { sql: head.to_owned(), binds: Vec::new() };
            for item in chunk {
                statement.push_tuple(tuple(item)?);
            }
            statement.sql.push_str(tail);
            Ok(statement)
        })
        .collect()
}

/// Inserts new queued runs, skipping those whose `(workspace, request_id)` exists, returning
/// the rows inserted.
pub fn insert_runs(runs: &[NewRun]) -> Result<Vec<Statement>> {
    let head = "INSERT INTO runs (id, workspace_id, kind, state, input, priority, max_attempts, \
        attempt_timeout_ms, deadline, concurrency_key, concurrency_limit, labels, request_id, created_at, \
        updated_at, scheduled_at, last_event_seq, decisions, replay_of, replay_mode) VALUES ";
    let tail = format!(" ON CONFLICT DO NOTHING RETURNING {RUN_COLUMNS}");
    multi_row(head, &tail, runs, |run| {
        let (key, limit) = match &run.concurrency {
            Some((key, limit)) => (Some(key.clone()), i64::from(*limit)),
            None => (None, 1),
        };
        let created = run.created_at.as_micros();
        Ok(vec![
            run.id.to_string().into(),
            run.workspace.to_string().into(),
            run.kind.clone().into(),
            RunState::Queued.as_str().to_owned().into(),
            to_json(&run.input)?.into(),
            i64::from(run.priority).into(),
            i64::from(run.max_attempts).into(),
            to_i64(u64::try_from(run.attempt_timeout.as_millis()).unwrap_or(u64::MAX)).into(),
            run.deadline.map(Timestamp::as_micros).into(),
            key.into(),
            limit.into(),
            to_json(&run.labels)?.into(),
            run.request_id.clone().into(),
            created.into(),
            created.into(),
            created.into(),
            1_i64.into(),
            to_json(&run.decisions)?.into(),
            run.replay.map(|replay| replay.of.to_string()).into(),
            run.replay.map(|replay| replay.mode.as_str().to_owned()).into(),
        ])
    })
}

/// Finds the run an idempotent create collided with.
pub fn select_by_request_id(run: &NewRun) -> Statement {
    Statement {
        sql: format!("SELECT {RUN_COLUMNS} FROM runs WHERE workspace_id = $1 AND request_id = $2"),
        binds: vec![run.workspace.to_string().into(), run.request_id.clone().into()],
    }
}

/// The labels of new runs.
pub fn insert_labels(runs: &[&NewRun]) -> Result<Vec<Statement>> {
    let labels: Vec<(String, &String, &String)> = runs
        .iter()
        .flat_map(|run| run.labels.iter().map(|(key, value)| (run.id.to_string(), key, value)))
        .collect();
    multi_row("INSERT INTO run_labels (run_id, key, value) VALUES ", "", &labels, |(id, key, value)| {
        Ok(vec![id.clone().into(), (*key).clone().into(), (*value).clone().into()])
    })
}

/// Appends events (already numbered).
pub fn insert_events(events: &[RunEvent]) -> Result<Vec<Statement>> {
    multi_row("INSERT INTO run_events (run_id, seq, time, data) VALUES ", "", events, |event| {
        Ok(vec![
            event.run_id.to_string().into(),
            to_i64(event.sequence).into(),
            event.time.as_micros().into(),
            to_json(&event.kind)?.into(),
        ])
    })
}

/// Records finished steps in the journal.
pub fn insert_steps(steps: &[(RunId, JournalEntry)]) -> Result<Vec<Statement>> {
    let head = "INSERT INTO run_journal (run_id, key, output, attempt, finished_at, duration_us) VALUES ";
    multi_row(head, " ON CONFLICT DO NOTHING", steps, |(run, step)| {
        Ok(vec![
            run.to_string().into(),
            step.key.clone().into(),
            to_json(&step.output)?.into(),
            i64::from(step.attempt).into(),
            step.finished_at.as_micros().into(),
            to_i64(u64::try_from(step.duration.as_micros()).unwrap_or(u64::MAX)).into(),
        ])
    })
}

/// Reads runs by id, in id order (the lock order, on Postgres).
pub fn select_runs(ids: &[RunId], lock: bool) -> Statement {
    let mut statement = Statement { sql: format!("SELECT {RUN_COLUMNS} FROM runs WHERE id IN "), binds: Vec::new() };
    statement.push_tuple(ids.iter().map(|id| id.to_string().into()).collect());
    statement.sql.push_str(" ORDER BY id");
    if lock {
        statement.sql.push_str(" FOR UPDATE");
    }
    statement
}

/// Rewrites every mutable column of several runs in one statement per chunk. `VALUES` columns
/// are named `column1`, `column2`, … in both dialects.
pub fn update_runs(runs: &[(Run, u64)]) -> Result<Vec<Statement>> {
    let head = "UPDATE runs SET state = v.column2, output = v.column3, error = v.column4, attempt = v.column5, \
        started_at = v.column6, finished_at = v.column7, updated_at = v.column8, scheduled_at = v.column9, \
        waiting = v.column10, decisions = v.column11, lease_worker = v.column12, lease_epoch = v.column13, \
        lease_expires_at = v.column14, cancel_requested = v.column15, last_event_seq = v.column16 FROM (VALUES ";
    multi_row(head, ") AS v WHERE runs.id = v.column1", runs, |(run, stored_epoch)| {
        let binds = RunUpdateBinds::new(run, *stored_epoch, run.last_event_sequence)?;
        Ok(vec![
            run.id.to_string().into(),
            binds.state.to_owned().into(),
            binds.output.into(),
            binds.error.into(),
            binds.attempt.into(),
            binds.started_at.into(),
            binds.finished_at.into(),
            binds.updated_at.into(),
            binds.scheduled_at.into(),
            binds.waiting.into(),
            binds.decisions.into(),
            binds.lease_worker.into(),
            binds.lease_epoch.into(),
            binds.lease_expires_at.into(),
            binds.cancel_requested.into(),
            binds.last_event_seq.into(),
        ])
    })
}

/// What a batch of updates decided: each change's result, and the statements that write them.
pub struct UpdatePlan {
    pub results: Vec<Result<Transition>>,
    pub writes: Vec<Statement>,
}

/// Applies each change, in order, to the run as the batch left it so far (so two changes of
/// one run compose), and plans the writes of every change that succeeded. A change that fails
/// writes nothing and fails alone.
pub fn plan_updates(rows: Vec<RunRow>, changes: &[(RunId, UpdateFn<'_>)]) -> Result<UpdatePlan> {
    let mut current: HashMap<RunId, (Run, u64)> = HashMap::new();
    for row in rows {
        let epoch = to_u64(row.lease_epoch);
        let run = Run::try_from(row)?;
        current.insert(run.id, (run, epoch));
    }
    let mut touched: Vec<RunId> = Vec::new();
    let mut events = Vec::new();
    let mut steps: Vec<(RunId, JournalEntry)> = Vec::new();
    let mut resets: Vec<RunId> = Vec::new();
    let mut results = Vec::with_capacity(changes.len());
    for (id, change) in changes {
        let Some((before, stored_epoch)) = current.get(id) else {
            results.push(Err(Error::not_found("run", id)));
            continue;
        };
        let update = match change(before) {
            Ok(update) => update,
            Err(err) => {
                results.push(Err(err));
                continue;
            }
        };
        let Update { mut run, events: kinds, steps: new_steps, reset_journal } = update;
        let numbered = number_events(run.id, before.last_event_sequence, run.updated_at, kinds);
        run.last_event_sequence = before.last_event_sequence + numbered.len() as u64;
        run.last_log_sequence = before.last_log_sequence;
        let epoch = run.lease.as_ref().map_or(*stored_epoch, |lease| lease.epoch);
        if reset_journal {
            steps.retain(|(run_id, _)| run_id != id);
            resets.push(*id);
        }
        steps.extend(new_steps.into_iter().map(|step| (*id, step)));
        events.extend(numbered.iter().cloned());
        if !touched.contains(id) {
            touched.push(*id);
        }
        results.push(Ok(Transition { run: run.clone(), events: numbered }));
        current.insert(*id, (run, epoch));
    }
    let runs: Vec<(Run, u64)> = touched.iter().filter_map(|id| current.remove(id)).collect();
    let mut writes = update_runs(&runs)?;
    if !resets.is_empty() {
        let mut delete = Statement { sql: "DELETE FROM run_journal WHERE run_id IN ".to_owned(), binds: Vec::new() };
        delete.push_tuple(resets.iter().map(|id| id.to_string().into()).collect());
        writes.push(delete);
    }
    writes.extend(insert_steps(&steps)?);
    writes.extend(insert_events(&events)?);
    Ok(UpdatePlan { results, writes })
}

/// The `Created` event of a new run.
fn created_event(run: &NewRun) -> RunEvent {
    RunEvent {
        run_id: run.id,
        sequence: 1,
        time: run.created_at,
        kind: EventKind::Created { kind: run.kind.clone(), priority: run.priority },
    }
}

/// [`super::Store::create_runs`] inside the caller's transaction, on either backend.
pub async fn create_runs<DB>(conn: &mut DB::Connection, runs: &[NewRun]) -> Result<Vec<super::Created>>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    RunRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    Option<String>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Option<i64>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    bool: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut inserted = HashMap::new();
    for statement in insert_runs(runs)? {
        for row in query::<DB>(statement).fetch_all(&mut *conn).await? {
            let run = Run::try_from(<RunRow as sqlx::FromRow<DB::Row>>::from_row(&row)?)?;
            inserted.insert(run.id, run);
        }
    }
    let mut results = Vec::with_capacity(runs.len());
    let mut fresh = Vec::new();
    let mut events = Vec::new();
    for new in runs {
        if let Some(run) = inserted.remove(&new.id) {
            let event = created_event(new);
            events.push(event.clone());
            fresh.push(new);
            results.push(super::Created { transition: Transition { run, events: vec![event] }, created: true });
            continue;
        }
        let row = query::<DB>(select_by_request_id(new))
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| Error::Internal(format!("run {} was neither inserted nor found by its request_id", new.id)))?;
        let run = Run::try_from(<RunRow as sqlx::FromRow<DB::Row>>::from_row(&row)?)?;
        results.push(super::Created { transition: Transition { run, events: Vec::new() }, created: false });
    }
    let copied: Vec<(RunId, JournalEntry)> =
        fresh.iter().flat_map(|run| run.journal.iter().map(|entry| (run.id, entry.clone()))).collect();
    execute_all::<DB>(conn, insert_events(&events)?.into_iter().chain(insert_labels(&fresh)?).chain(insert_steps(&copied)?)).await?;
    Ok(results)
}

/// [`super::Store::update_runs`] inside the caller's transaction, on either backend; `lock`
/// takes the rows `FOR UPDATE` (Postgres).
pub async fn update_runs_in<DB>(conn: &mut DB::Connection, changes: &[(RunId, UpdateFn<'_>)], lock: bool) -> Result<Vec<Result<Transition>>>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    RunRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    Option<String>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Option<i64>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    bool: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<RunId> = changes.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_PER_STATEMENT * 10) {
        for row in query::<DB>(select_runs(chunk, lock)).fetch_all(&mut *conn).await? {
            rows.push(<RunRow as sqlx::FromRow<DB::Row>>::from_row(&row)?);
        }
    }
    let plan = plan_updates(rows, changes)?;
    execute_all::<DB>(conn, plan.writes).await?;
    Ok(plan.results)
}

/// Appends the claim events of claimed runs.
pub fn claimed_events(runs: &[Run], worker: &WorkerId, now: Timestamp) -> Vec<RunEvent> {
    runs.iter().map(|run| claimed_event(run, worker, now)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_placeholders_become_positional_for_sqlite() {
        assert_eq!(positional("a = $1 AND b IN ($2, $13) AND c = 'x'"), "a = ? AND b IN (?, ?) AND c = 'x'");
    }

    #[test]
    fn multi_row_statements_number_binds_in_order() {
        let statement = select_runs(&[RunId::new(), RunId::new()], true);
        assert!(statement.sql.ends_with("IN ($1, $2) ORDER BY id FOR UPDATE"), "{}", statement.sql);
        assert_eq!(statement.binds.len(), 2);
    }
}

/// The small results of the one- and few-value queries, by column alias (`AS text`, `AS text2`,
/// `AS int`, `AS flag`); a column a query does not return reads as `None`.
#[derive(Debug, Default, sqlx::FromRow)]
pub struct Scalars {
    #[sqlx(default)]
    pub text: Option<String>,
    #[sqlx(default)]
    pub text2: Option<String>,
    #[sqlx(default)]
    pub int: Option<i64>,
    #[sqlx(default)]
    pub flag: Option<bool>,
}

impl Scalars {
    /// A claim candidate: id, concurrency key, limit.
    pub fn candidate(self) -> (String, Option<String>, i64) {
        (self.text.unwrap_or_default(), self.text2, self.int.unwrap_or(1))
    }

    /// A concurrency key and how many runs run under it.
    pub fn key_count(self) -> (String, i64) {
        (self.text.unwrap_or_default(), self.int.unwrap_or(0))
    }

    /// A kind, a state and a count.
    pub fn kind_state_count(self) -> (String, String, i64) {
        (self.text.unwrap_or_default(), self.text2.unwrap_or_default(), self.int.unwrap_or(0))
    }
}

pub fn count_workspace(workspace: &WorkspaceId) -> Statement {
    let mut statement = Statement::new("SELECT COUNT(*) AS int FROM workspaces WHERE id = ");
    statement.push_bind(workspace.to_string());
    statement
}

/// The statement text that differs between the backends: reading a field of a JSON column, and
/// full-text search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// SQLite: `json_extract`, FTS5.
    Sqlite,
    /// Postgres: `jsonb`, `tsvector`.
    Postgres,
}

impl Flavor {
    /// Appends `column`'s top-level text field `field` (bound, never interpolated).
    fn push_json_text(self, statement: &mut Statement, column: &str, field: &str) {
        match self {
            Self::Sqlite => {
                statement.push(&format!("json_extract({column}, ")).push_bind(format!("$.\"{field}\"")).push(")");
            }
            Self::Postgres => {
                statement.push(&format!("({column}::jsonb ->> ")).push_bind(field.to_owned()).push(")");
            }
        }
    }
}

/// A run listing: filters, newest first, `limit` rows.
pub fn list_runs(query: &RunQuery, flavor: Flavor) -> Statement {
    let workspace = query.workspace.as_ref().map_or(crate::domain::DEFAULT_WORKSPACE, WorkspaceId::as_str);
    let mut statement = Statement::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE workspace_id = "));
    statement.push_bind(workspace.to_owned());
    if let Some(state) = query.state {
        statement.push(" AND state = ").push_bind(state.as_str().to_owned());
    }
    if let Some(kind) = &query.kind {
        statement.push(" AND kind = ").push_bind(kind.clone());
    }
    if let Some(before) = query.before {
        statement.push(" AND id < ").push_bind(before.to_string());
    }
    for (key, value) in &query.labels {
        statement.push(" AND EXISTS (SELECT 1 FROM run_labels l WHERE l.run_id = runs.id AND l.key = ");
        statement.push_bind(key.clone()).push(" AND l.value = ").push_bind(value.clone()).push(")");
    }
    if let Some((field, value)) = &query.output_field {
        statement.push(" AND ");
        flavor.push_json_text(&mut statement, "output", field);
        statement.push(" = ").push_bind(value.clone());
    }
    statement.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(query.limit));
    statement
}

/// Due queued runs of the claim's kinds whose concurrency key has room, best first; a window
/// larger than the claim, since the exact admission happens afterwards. With `lock`, rows
/// another claimer holds are skipped and the rest locked.
pub fn claim_candidates(claim: &ClaimRequest, lock: bool) -> Statement {
    let mut statement = Statement::new(
        "SELECT id AS text, concurrency_key AS text2, concurrency_limit AS int FROM runs \
         WHERE state = 'queued' AND scheduled_at <= ",
    );
    statement.push_bind(claim.now.as_micros()).push(" AND kind IN ");
    statement.push_tuple(claim.kinds.iter().map(|kind| kind.clone().into()).collect());
    statement.push(CLAIM_KEY_HAS_ROOM).push(" ORDER BY priority DESC, id LIMIT ");
    statement.push_bind(i64::from(claim.limit) * 4 + 16);
    if lock {
        statement.push(" FOR UPDATE SKIP LOCKED");
    }
    statement
}

/// Takes a transaction-scoped advisory lock on a concurrency key (Postgres only).
pub fn lock_concurrency_key(key: &str) -> Statement {
    let mut statement = Statement::new("SELECT pg_advisory_xact_lock(hashtextextended(");
    statement.push_bind(key.to_owned()).push(", 0))");
    statement
}

pub fn running_by_key() -> Statement {
    Statement::new(
        "SELECT concurrency_key AS text, COUNT(*) AS int FROM runs \
         WHERE state = 'running' AND concurrency_key IS NOT NULL GROUP BY concurrency_key",
    )
}

/// Puts the chosen runs under a new lease, returning their rows.
pub fn claim_update(claim: &ClaimRequest, chosen: &[String]) -> Statement {
    let mut statement = Statement::new(CLAIM_UPDATE_PREFIX);
    statement.push_bind(claim.worker_id.to_string());
    statement.push(", lease_expires_at = ").push_bind(claim.now.plus(claim.lease_ttl).as_micros());
    statement.push(", started_at = COALESCE(started_at, ").push_bind(claim.now.as_micros());
    statement.push("), updated_at = ").push_bind(claim.now.as_micros());
    statement.push(" WHERE id IN ");
    statement.push_tuple(chosen.iter().map(|id| id.clone().into()).collect());
    statement.push(&format!(" RETURNING {RUN_COLUMNS}"));
    statement
}

pub fn extend_lease(lease: &Lease, until: Timestamp) -> Statement {
    let mut statement = Statement::new("UPDATE runs SET lease_expires_at = ");
    statement.push_bind(until.as_micros()).push(" WHERE id = ").push_bind(lease.run_id.to_string());
    statement.push(" AND lease_epoch = ").push_bind(to_i64(lease.epoch));
    statement.push(" AND state = 'running' RETURNING cancel_requested AS flag");
    statement
}

/// Reserves `count` log sequence numbers under a lease for the lines at positions `first…`,
/// if exactly the lines before `first` are stored; returns the last sequence reserved.
pub fn reserve_log_sequences(lease: &Lease, first: u64, count: u64) -> Statement {
    let mut statement = Statement::new("UPDATE runs SET last_log_seq = last_log_seq + ");
    statement.push_bind(to_i64(count)).push(", log_position = ").push_bind(to_i64(first + count));
    statement.push(" WHERE id = ").push_bind(lease.run_id.to_string());
    statement.push(" AND lease_epoch = ").push_bind(to_i64(lease.epoch));
    statement.push(" AND state = 'running' AND log_position = ").push_bind(to_i64(first));
    statement.push(" RETURNING last_log_seq AS int");
    statement
}

/// How many lines are stored under a lease, if it is the run's current one.
pub fn log_position(lease: &Lease) -> Statement {
    let mut statement = Statement::new("SELECT log_position AS int FROM runs WHERE id = ");
    statement.push_bind(lease.run_id.to_string()).push(" AND lease_epoch = ").push_bind(to_i64(lease.epoch));
    statement.push(" AND state = 'running'");
    statement
}

pub fn insert_logs(lines: &[LogLine]) -> Vec<Statement> {
    let head = "INSERT INTO run_logs (run_id, seq, time, attempt, stream, text) VALUES ";
    multi_row(head, "", lines, |line| {
        Ok(vec![
            line.run_id.to_string().into(),
            to_i64(line.sequence).into(),
            line.time.as_micros().into(),
            i64::from(line.attempt).into(),
            i64::from(line.stream.code()).into(),
            line.text.clone().into(),
        ])
    })
    .unwrap_or_default()
}

fn after_in_run(head: &str, run: RunId, after: u64, limit: u32) -> Statement {
    let mut statement = Statement::new(head);
    statement.push_bind(run.to_string()).push(" AND seq > ").push_bind(to_i64(after));
    statement.push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
    statement
}

pub fn select_events(run: RunId, after: u64, limit: u32) -> Statement {
    after_in_run("SELECT seq, time, data FROM run_events WHERE run_id = ", run, after, limit)
}

pub fn select_logs(run: RunId, after: u64, limit: u32) -> Statement {
    after_in_run("SELECT seq, time, attempt, stream, text FROM run_logs WHERE run_id = ", run, after, limit)
}

pub fn select_journal(run: RunId) -> Statement {
    let mut statement = Statement::new("SELECT key, output, attempt, finished_at, duration_us FROM run_journal WHERE run_id = ");
    statement.push_bind(run.to_string()).push(" ORDER BY finished_at, key");
    statement
}

pub fn expired_leases(now: Timestamp, limit: u32) -> Statement {
    let mut statement = Statement::new("SELECT id AS text FROM runs WHERE state = 'running' AND lease_expires_at < ");
    statement.push_bind(now.as_micros()).push(" ORDER BY lease_expires_at LIMIT ").push_bind(i64::from(limit));
    statement
}

pub fn overdue_runs(now: Timestamp, limit: u32) -> Statement {
    let mut statement = Statement::new("SELECT id AS text FROM runs WHERE deadline IS NOT NULL AND deadline < ");
    statement.push_bind(now.as_micros());
    statement.push(" AND state IN ('queued', 'running', 'waiting') ORDER BY deadline LIMIT ").push_bind(i64::from(limit));
    statement
}

pub fn next_scheduled(kinds: &[String]) -> Statement {
    let mut statement = Statement::new("SELECT MIN(scheduled_at) AS int FROM runs WHERE state = 'queued' AND kind IN ");
    statement.push_tuple(kinds.iter().map(|kind| kind.clone().into()).collect());
    statement
}

pub fn count_by_kind_and_state(workspace: &WorkspaceId) -> Statement {
    let mut statement = Statement::new("SELECT kind AS text, state AS text2, COUNT(*) AS int FROM runs WHERE workspace_id = ");
    statement.push_bind(workspace.to_string()).push(" GROUP BY kind, state");
    statement
}

pub fn oldest_queued(workspace: &WorkspaceId, now: Timestamp) -> Statement {
    let mut statement = Statement::new("SELECT MIN(scheduled_at) AS int FROM runs WHERE workspace_id = ");
    statement.push_bind(workspace.to_string()).push(" AND state = 'queued' AND scheduled_at <= ").push_bind(now.as_micros());
    statement
}

pub fn finished_since(workspace: &WorkspaceId, since: Timestamp) -> Statement {
    let mut statement = Statement::new("SELECT COUNT(*) AS int FROM runs WHERE workspace_id = ");
    statement.push_bind(workspace.to_string()).push(" AND finished_at IS NOT NULL AND finished_at > ").push_bind(since.as_micros());
    statement
}

/// The channel processes sharing a Postgres database notify each other on.
pub mod artifacts;
pub mod circuits;
pub mod knowledge;
pub mod retention;
pub mod stage;
pub mod workers;

pub const NOTIFY_CHANNEL: &str = "conclave_events";

/// Sends messages on [`NOTIFY_CHANNEL`] (Postgres only), one statement per chunk.
pub fn notify(messages: &[String]) -> Vec<Statement> {
    let head = format!("SELECT pg_notify('{NOTIFY_CHANNEL}', v.column1) FROM (VALUES ");
    multi_row(&head, ") AS v", messages, |message| Ok(vec![message.clone().into()])).unwrap_or_default()
}
