//! The `conclave` command: `serve` runs the service, `worker` executes runs for remote servers,
//! `bench` measures it, and the client commands (`runs`, `logs`, `tasks`, `debates`, `missions`,
//! `artifacts`, `workers`, `stats`; see [`conclave::cli`]) talk to a running server.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use conclave::{
    config::{LogFormat, Settings},
    server,
};
use tracing_subscriber::EnvFilter;

/// Conclave: a durable control plane for multi-agent LLM work, served over gRPC.
#[derive(Debug, Parser)]
#[command(version, about, after_help = conclave::cli::EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (embedded SQLite in ./conclave-data and the built-in kinds by default).
    Serve {
        /// A TOML configuration file; flags and environment variables override it.
        #[arg(long, env = "CONCLAVE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Execute the built-in kinds for remote servers, over WorkerService.
    Worker(conclave::worker::WorkerArgs),
    /// Measure throughput, dispatch latency and log fan-out, and print the figures.
    Bench(conclave::bench::BenchArgs),
    #[command(flatten)]
    Client(conclave::cli::Command),
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("CONCLAVE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

async fn serve(config: Option<PathBuf>, settings: Settings) -> conclave::Result<()> {
    let settings = match config {
        Some(path) => settings.over(Settings::from_file(&path)?),
        None => settings,
    };
    let config = settings.resolve()?;
    init_logging(config.log_format);
    let _ownership = server::own_sqlite_database(&config)?;
    let engine = server::build_engine(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|err| {
        conclave::Error::invalid("listen", format!("cannot listen on {}: {err}", config.listen))
    })?;
    tracing::info!(
        address = %config.listen,
        store = engine.store().backend(),
        workers = config.engine.worker_slots,
        kinds = ?engine.registry().kinds(),
        "conclave is serving"
    );
    engine.start();
    server::serve(engine, listener, config.serve, shutdown_signal()).await
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, settings } => serve(config, settings).await,
        Command::Worker(args) => {
            init_logging(LogFormat::Text);
            conclave::worker::run(args, shutdown_signal()).await
        }
        Command::Bench(args) => conclave::bench::run(args).await,
        Command::Client(command) => return conclave::cli::run(command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("conclave: {err}");
            ExitCode::FAILURE
        }
    }
}
