//! The Postgres backend, for several processes sharing the work. Runs are locked `FOR UPDATE`
//! while a state-machine function decides their change; claims skip rows another process is
//! claiming (`FOR UPDATE SKIP LOCKED`) and serialise on each concurrency key with a transaction
//! advisory lock, so a key's limit holds across processes.

use std::{str::FromStr, time::Duration};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    Postgres,
};

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
        Ok(Self { writer: pool.clone(), reader: pool, dialect: Dialect::Postgres })
    }
}
