//! The command line for people: `conclave runs|logs|tasks|debates|missions|artifacts|workers|stats|skills|recipes|cards`,
//! clients of a running server built on the generated gRPC clients
//! (`conclave::proto::*_client::*Client`).
//!
//! - **Where.** `--server` or `CONCLAVE_SERVER` (default `http://127.0.0.1:50051`; a bare
//!   `host:port` means `http://`), and `--token` or `CONCLAVE_TOKEN`, sent as
//!   `authorization: Bearer <token>`.
//! - **Output.** Tables and aligned fields for people (times in UTC); with `--json`, one JSON
//!   object per line on stdout, in the protobuf JSON mapping (the field names of `grpcurl`:
//!   `lastEventSequence`, 64-bit integers as strings, enums by name) with zero values printed
//!   (a message field appears once set): the object itself for `get`, `create` and the other single answers, one object per item
//!   for `list`, one per event or log line for `watch` and `logs`. Errors go to stderr, as JSON
//!   with `--json`.
//! - **Streams** (`logs`, `watch`) resume after a broken connection or a server restart from the
//!   last sequence received, so nothing is lost or printed twice; `artifacts get` resumes a broken
//!   download at the byte it reached.
//!
//! # Exit codes
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | the operation failed: a watched run, task or mission ended failed or cancelled |
//! | 2 | bad usage (flags, JSON, files), or the server answered `INVALID_ARGUMENT` |
//! | 3 | `NOT_FOUND` |
//! | 4 | a conflict: `FAILED_PRECONDITION`, `ABORTED` or `ALREADY_EXISTS` |
//! | 5 | the server is unavailable (`UNAVAILABLE`) or cannot be reached |
//! | 6 | anything else |
//!
//! An error prints its message, the gRPC code, the `ErrorInfo` reason and every `BadRequest`
//! field violation.

mod artifacts;
mod cards;
mod client;
mod debates;
mod error;
mod follow;
mod input;
mod missions;
mod output;
mod recipes;
mod runs;
mod skills;
mod tasks;
mod workers;

use std::process::ExitCode;

use clap::{Args, Subcommand};

pub use error::{CliError, exit};

/// The exit codes, as `conclave --help` shows them.
pub const EXIT_CODES_HELP: &str = "\
Exit codes of the client commands (runs, logs, tasks, debates, missions, artifacts, workers, stats,
skills, recipes, cards):
  0  success
  1  the operation failed (a watched run, task or mission ended failed or cancelled)
  2  bad usage, or the server answered INVALID_ARGUMENT
  3  not found (NOT_FOUND)
  4  a conflict: FAILED_PRECONDITION, ABORTED or ALREADY_EXISTS
  5  the server is unavailable or cannot be reached
  6  anything else
Errors print the gRPC code, the ErrorInfo reason and each field violation.";

/// How to reach the server, and how to print. Accepted anywhere after the command's name.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// The server's address [default: http://127.0.0.1:50051].
    #[arg(long, global = true, help_heading = "Server and output", env = "CONCLAVE_SERVER")]
    pub server: Option<String>,
    /// A bearer token, sent as `authorization: Bearer <token>`.
    #[arg(long, global = true, help_heading = "Server and output", env = "CONCLAVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON, one object per line (the protobuf JSON mapping), instead of tables.
    #[arg(long, global = true, help_heading = "Server and output")]
    pub json: bool,
}

/// The server a client command talks to without `--server` or `CONCLAVE_SERVER`.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

impl Options {
    /// The server's address.
    pub fn server(&self) -> &str {
        self.server.as_deref().filter(|server| !server.trim().is_empty()).unwrap_or(DEFAULT_SERVER)
    }
}

/// The client commands, flattened into `conclave`'s own.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, inspect, steer and watch runs.
    Runs(runs::RunsArgs),
    /// Print a run's log lines; with -f, follow them until the run finishes.
    Logs(runs::LogsArgs),
    /// Coding tasks: an author and reviewers working on a project in rounds.
    Tasks(tasks::TasksArgs),
    /// Debates: a panel deciding on a proposal.
    Debates(debates::DebatesArgs),
    /// Missions: a request carried out by planned agents' steps.
    Missions(missions::MissionsArgs),
    /// Upload, download and list the artifacts of runs.
    Artifacts(artifacts::ArtifactsArgs),
    /// List workers, and drain them.
    Workers(workers::WorkersArgs),
    /// Queue statistics: runs by kind and state, the oldest queued run, leases, throughput.
    Stats(runs::StatsArgs),
    /// The catalog of skills: sync a directory, import from the registry, trust and pin.
    Skills(skills::SkillsArgs),
    /// The recipe of each stage: initialize, show, validate and change them.
    Recipes(recipes::RecipesArgs),
    /// Cards moving through the stages, and their audit trail.
    Cards(cards::CardsArgs),
}

/// Runs a client command and says how it went, as an exit code.
pub async fn run(command: Command) -> ExitCode {
    let (json, result) = match command {
        Command::Runs(args) => (args.options.json, runs::runs(args).await),
        Command::Logs(args) => (args.options.json, runs::logs(args).await),
        Command::Tasks(args) => (args.options.json, tasks::run(args).await),
        Command::Debates(args) => (args.options.json, debates::run(args).await),
        Command::Missions(args) => (args.options.json, missions::run(args).await),
        Command::Artifacts(args) => (args.options.json, artifacts::run(args).await),
        Command::Workers(args) => (args.options.json, workers::run(args).await),
        Command::Stats(args) => (args.options.json, runs::stats(args).await),
        Command::Skills(args) => (args.options.json, skills::run(args).await),
        Command::Recipes(args) => (args.options.json, recipes::run(args).await),
        Command::Cards(args) => (args.options.json, cards::run(args).await),
    };
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(exit::FAILED),
        Err(err) => {
            err.print(json);
            ExitCode::from(err.exit)
        }
    }
}

/// How a command that succeeded as a request went: done, or the thing it watched failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Failed,
}

type CliResult<T = Outcome> = Result<T, CliError>;
