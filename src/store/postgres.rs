//! The Postgres backend, for several processes sharing the work. Runs are locked `FOR UPDATE`
//! while a state-machine function decides their change; claims skip rows another process is
//! claiming (`FOR UPDATE SKIP LOCKED`) and serialise on each concurrency key with a transaction
//! advisory lock, so a key's limit holds across processes.

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
    PgPool, Postgres,
};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::sql_store::{Dialect, SqlStore};
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
            .connect_with(options)
            .await
            .map_err(|err| Error::Unavailable(format!("cannot connect to Postgres at {}: {err}", super::redact(url))))?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let bus = Bus::start(&pool).await?;
        Ok(Self { writer: pool.clone(), reader: pool, dialect: Dialect::Postgres, bus: Some(bus) })
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
