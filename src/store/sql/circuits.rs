//! The statements of the providers' circuit breakers.

use std::time::Duration;

use super::{to_i64, to_u32, Statement};
use crate::{
    domain::Timestamp,
    error::{Error, Result},
    models::{Circuit, CircuitState, FailureClass},
};

const CIRCUIT_COLUMNS: &str =
    "provider, state, failures, window_started_at, open_until, last_cooldown_ms, last_failure, last_failure_at";

/// A `provider_circuits` row as both backends return it.
#[derive(Debug, sqlx::FromRow)]
pub struct CircuitRow {
    pub provider: String,
    pub state: String,
    pub failures: i64,
    pub window_started_at: i64,
    pub open_until: Option<i64>,
    pub last_cooldown_ms: i64,
    pub last_failure: Option<String>,
    pub last_failure_at: Option<i64>,
}

impl TryFrom<CircuitRow> for Circuit {
    type Error = Error;

    fn try_from(row: CircuitRow) -> Result<Self> {
        let state = CircuitState::parse(&row.state)
            .ok_or_else(|| Error::Internal(format!("provider {} has an unknown circuit state `{}`", row.provider, row.state)))?;
        Ok(Circuit {
            state,
            failures: to_u32(row.failures),
            window_started_at: Timestamp::from_micros(row.window_started_at),
            open_until: row.open_until.map(Timestamp::from_micros),
            last_cooldown: Duration::from_millis(u64::try_from(row.last_cooldown_ms).unwrap_or(0)),
            last_failure: row.last_failure.as_deref().and_then(FailureClass::parse),
            last_failure_at: row.last_failure_at.map(Timestamp::from_micros),
            provider: row.provider,
        })
    }
}

/// The circuits of some providers.
pub fn select(providers: &[String]) -> Statement {
    let mut statement = Statement::new(format!("SELECT {CIRCUIT_COLUMNS} FROM provider_circuits WHERE provider IN "));
    statement.push_tuple(providers.iter().map(|provider| provider.clone().into()).collect());
    statement.push(" ORDER BY provider");
    statement
}

/// One provider's circuit; with `lock`, locked until the transaction ends.
pub fn select_one(provider: &str, lock: bool) -> Statement {
    let mut statement = Statement::new(format!("SELECT {CIRCUIT_COLUMNS} FROM provider_circuits WHERE provider = "));
    statement.push_bind(provider.to_owned());
    if lock {
        statement.push(" FOR UPDATE");
    }
    statement
}

/// Makes sure a provider has a circuit row (closed), so that concurrent updates lock one row.
pub fn ensure(provider: &str, now: Timestamp) -> Statement {
    let mut statement = Statement::new(
        "INSERT INTO provider_circuits (provider, state, failures, window_started_at, last_cooldown_ms, updated_at) VALUES (",
    );
    statement.push_bind(provider.to_owned()).push(", 'closed', 0, ").push_bind(now.as_micros()).push(", 0, ");
    statement.push_bind(now.as_micros()).push(") ON CONFLICT (provider) DO NOTHING");
    statement
}

/// Writes a circuit.
pub fn write(circuit: &Circuit, now: Timestamp) -> Statement {
    let mut statement = Statement::new("UPDATE provider_circuits SET state = ");
    statement.push_bind(circuit.state.as_str().to_owned());
    statement.push(", failures = ").push_bind(i64::from(circuit.failures));
    statement.push(", window_started_at = ").push_bind(circuit.window_started_at.as_micros());
    statement.push(", open_until = ").push_bind(circuit.open_until.map(Timestamp::as_micros));
    statement.push(", last_cooldown_ms = ").push_bind(to_i64(circuit.last_cooldown.as_millis() as u64));
    statement.push(", last_failure = ").push_bind(circuit.last_failure.map(|class| class.as_str().to_owned()));
    statement.push(", last_failure_at = ").push_bind(circuit.last_failure_at.map(Timestamp::as_micros));
    statement.push(", updated_at = ").push_bind(now.as_micros());
    statement.push(" WHERE provider = ").push_bind(circuit.provider.clone());
    statement
}
