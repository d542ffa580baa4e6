//! The SQLite backend: the embedded default. One writer connection (SQLite admits one writer at a
//! time, so queuing in the pool beats retrying on `SQLITE_BUSY`) and a small pool of readers, in
//! WAL mode so readers never block the writer. Neither pool pings a connection before lending it
//! (sqlx's default, meant for connections across a network): an embedded database's connection
//! cannot drop, and the ping was a round trip to the connection's thread before every statement
//! (a point read went from about 350 to 160 µs without it on the machine of `BENCHMARKS.md`).

use std::{str::FromStr, time::Duration};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    Sqlite,
};

use super::sql_store::{Dialect, SqlStore};
use crate::error::{Error, Result};

/// Runs, events, logs and journals in one SQLite database file.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) and migrates the database at a `sqlite://PATH` URL.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| Error::invalid("database_url", format!("`{url}` is not a valid SQLite URL: {err}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-65536");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, reader, dialect: Dialect::Sqlite, cluster: None })
    }
}
