//! `conclave bench`: throughput, dispatch latency and log fan-out figures.

/// Options of `conclave bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {}

/// Runs the benchmarks and prints the figures.
pub async fn run(_args: BenchArgs) -> crate::Result<()> {
    Err(crate::Error::Internal("not yet".into()))
}
