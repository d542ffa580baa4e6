//! The Postgres backend, for several processes sharing the work. Runs are locked `FOR UPDATE`
//! while a state-machine function decides their change; claims skip rows another process is
//! claiming (`FOR UPDATE SKIP LOCKED`) and serialise on each concurrency key with a transaction
//! advisory lock, so a key's limit holds across processes. One of the processes leads (a session
//! advisory lock held on a connection of its own) and runs maintenance; when it dies, its
//! connection closes, the lock is free, and another process takes over.

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
    Connection, PgConnection, PgPool, Postgres, Row,
};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{
    sql,
    sql_store::{Dialect, SqlStore},
    ClaimRequest,
};
use crate::error::{Error, Result};

/// Runs, events, logs and journals in a Postgres database.
pub type PostgresStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects to and migrates the database at a `postgres://` URL.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|err| Error::invalid("database_url", format!("`{}` is not a valid Postgres URL: {err}", super::redact(url))))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(|err| Error::Unavailable(format!("cannot connect to Postgres at {}: {err}", super::redact(url))))?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let cluster = Cluster { bus: Bus::start(&pool).await?, leadership: Arc::new(Leadership::new(options)) };
        Ok(Self { writer: pool.clone(), reader: pool, dialect: Dialect::Postgres, cluster: Some(cluster) })
    }

    /// The plan Postgres picks for a claim's candidate query, as `EXPLAIN` prints it: for an
    /// operator who sees slow claims, and for the test that keeps claims on the queue index.
    pub async fn explain_claim(&self, claim: &ClaimRequest) -> Result<String> {
        let mut tx = self.writer.begin().await?;
        if let Some(preamble) = self.dialect.claim_preamble() {
            sql::query::<Postgres>(preamble).execute(&mut *tx).await?;
        }
        let lines: Vec<String> = sql::query::<Postgres>(sql::explain(sql::claim_candidates(claim, true)))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        tx.rollback().await?;
        Ok(lines.join("\n"))
    }
}

/// What the processes sharing one database share.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Their announcements to each other.
    pub bus: Bus,
    /// Which of them runs maintenance.
    pub leadership: Arc<Leadership>,
}

/// The advisory lock that makes one process the leader: `pg_try_advisory_lock` on a connection
/// outside the pool, held for as long as the connection lives.
#[derive(Debug)]
pub struct Leadership {
    options: PgConnectOptions,
    /// The connection that holds (or tries for) the lock, and whether it holds it.
    session: tokio::sync::Mutex<Option<(PgConnection, bool)>>,
}

/// The lock's key: an arbitrary constant (`conclave` in ASCII) in the two-key space, which the
/// per-concurrency-key locks (one-key space) never use.
const LEADER_LOCK: (i32, i32) = (0x636f_6e63, 0x6c61_7665);

impl Leadership {
    fn new(options: PgConnectOptions) -> Self {
        Self { options, session: tokio::sync::Mutex::new(None) }
    }

    /// Whether this process leads: it takes the lock if it is free, and checks that the
    /// connection holding it is still alive if it already holds it.
    pub async fn try_lead(&self) -> Result<bool> {
        let mut session = self.session.lock().await;
        if session.is_none() {
            let connection = PgConnection::connect_with(&self.options).await?;
            *session = Some((connection, false));
        }
        let Some((connection, held)) = session.as_mut() else { return Ok(false) };
        let result = if *held {
            sqlx::query("SELECT 1").execute(&mut *connection).await.map(|_| true)
        } else {
            sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1, $2)")
                .bind(LEADER_LOCK.0)
                .bind(LEADER_LOCK.1)
                .fetch_one(&mut *connection)
                .await
        };
        match result {
            Ok(leads) => {
                *held = leads;
                Ok(leads)
            }
            Err(err) => {
                // The connection is broken: whatever it held is released with it.
                *session = None;
                Err(err.into())
            }
        }
    }

    /// Gives the lock up: unlocks it (so another process can take it as soon as this returns;
    /// a closed connection's locks are released only when its server process has exited), then
    /// closes its connection.
    pub async fn resign(&self) {
        if let Some((mut connection, held)) = self.session.lock().await.take() {
            if held {
                let _ = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                    .bind(LEADER_LOCK.0)
                    .bind(LEADER_LOCK.1)
                    .execute(&mut connection)
                    .await;
            }
            let _ = connection.close().await;
        }
    }
}

/// The notifications processes sharing the database send each other, received on one
/// `LISTEN` connection and fanned out to this process's subscribers. The listener reconnects by
/// itself; what is sent while it is away is lost, which followers' periodic store checks cover.
#[derive(Debug, Clone)]
pub struct Bus {
    messages: broadcast::Sender<String>,
    /// Stops the listener when the last handle goes.
    _stop: Arc<DropGuard>,
}

impl Bus {
    async fn start(pool: &PgPool) -> Result<Self> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(super::sql::NOTIFY_CHANNEL).await?;
        let (messages, _) = broadcast::channel(4096);
        let sender = messages.clone();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    received = listener.recv() => received,
                    () = stopped.cancelled() => return,
                };
                match received {
                    Ok(notification) => {
                        let _ = sender.send(notification.payload().to_owned());
                    }
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(err) => {
                        tracing::warn!(error = %err, "lost the notification connection; reconnecting");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Ok(Self { messages, _stop: Arc::new(stop.drop_guard()) })
    }

    /// A receiver of every notification from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.messages.subscribe()
    }
}
