//! Following a stream of numbered items (events, log lines) across broken connections: after a
//! transient failure the stream is opened again after the last sequence received, so nothing is
//! lost and nothing is seen twice.

use std::{future::Future, time::Duration};

use tonic::{Status, Streaming};

use super::{CliError, error::is_transient};

/// Reconnection attempts in a row, without an item received in between, before giving up.
const ATTEMPTS: u32 = 12;
/// The first pause before reconnecting; it doubles up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(200);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Opens a stream after a sequence and hands every message to `handle`, which returns the
/// greatest item sequence the message carried (if any). On a transient failure, opens the
/// stream again after the last sequence handled. Returns once the server ends the stream.
pub async fn follow<T, Open, Fut>(
    mut after: u64,
    mut open: Open,
    mut handle: impl FnMut(T) -> Result<Option<u64>, CliError>,
) -> Result<(), CliError>
where
    Open: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<Streaming<T>, Status>>,
{
    let mut failures = 0u32;
    loop {
        let status = match open(after).await {
            Ok(mut stream) => loop {
                match stream.message().await {
                    Ok(Some(message)) => {
                        failures = 0;
                        if let Some(sequence) = handle(message)? {
                            after = after.max(sequence);
                        }
                    }
                    Ok(None) => return Ok(()),
                    Err(status) => break status,
                }
            },
            Err(status) => status,
        };
        if !is_transient(&status) {
            return Err(status.into());
        }
        failures += 1;
        if failures > ATTEMPTS {
            let mut err = CliError::from(status);
            err.message = format!("gave up reconnecting after {ATTEMPTS} attempts: {}", err.message);
            err.exit = super::exit::UNAVAILABLE;
            return Err(err);
        }
        let pause = FIRST_PAUSE.saturating_mul(1 << (failures - 1).min(5)).min(MAX_PAUSE);
        eprintln!(
            "conclave: stream interrupted ({}: {}); resuming after sequence {after} in {}",
            super::error::code_name(status.code()),
            status.message(),
            humantime::format_duration(pause)
        );
        tokio::time::sleep(pause).await;
    }
}
