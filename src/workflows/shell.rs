//! `shell`: runs a program with arguments in a working directory, with a timeout, streaming its
//! standard output and error as log lines. Refused unless enabled in the configuration, and
//! optionally limited to a list of programs.
//!
//! Input: `program` (required), `args` (list of strings), `cwd` (relative to the configured
//! working directory, or absolute), `env` (object of strings), `timeout_seconds`, and
//! `allow_failure` (succeed with a non-zero exit status instead of failing). Output:
//! `{"exit_code": N}`. The command is one journaled step: once it has finished, a resumed run
//! does not run it again.

use std::{collections::BTreeMap, path::PathBuf, process::Stdio, time::Duration};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::Command,
};

use super::input;
use crate::{
    domain::{ErrorCode, LogStream},
    engine::{RunContext, Workflow, WorkflowError},
    error::{Error, Result},
    process::GroupChild,
};

/// How the `shell` kind may be used on this server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShellConfig {
    /// Whether `shell` runs are accepted at all.
    pub enabled: bool,
    /// The programs allowed; empty allows any.
    pub allowed_programs: Vec<String>,
    /// The directory relative `cwd` values are resolved against; the server's directory if unset.
    pub working_dir: Option<PathBuf>,
}

/// The `shell` kind.
pub struct Shell {
    config: ShellConfig,
}

impl Shell {
    /// The kind, with its configuration.
    pub fn new(config: ShellConfig) -> Self {
        Self { config }
    }

    fn params(&self, input: &Map<String, Value>) -> Result<ShellParams> {
        if !self.config.enabled {
            return Err(Error::precondition(
                "SHELL_DISABLED",
                "the shell kind is disabled on this server; enable it with `enabled = true` under [kinds.shell] in the configuration file, or --enable-shell",
            ));
        }
        input::only_fields(input, &["program", "args", "cwd", "env", "timeout_seconds", "allow_failure"])?;
        let program = input::opt_str(input, "program")?
            .filter(|program| !program.is_empty())
            .ok_or_else(|| Error::invalid("input.program", "is required: the program to run, e.g. \"ls\""))?
            .to_owned();
        if !self.config.allowed_programs.is_empty() && !self.config.allowed_programs.contains(&program) {
            return Err(Error::invalid(
                "input.program",
                format!("`{program}` is not allowed on this server; allowed: {}", self.config.allowed_programs.join(", ")),
            ));
        }
        let env = match input.get("env") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(vars)) => vars
                .iter()
                .map(|(key, value)| value.as_str().map(|value| (key.clone(), value.to_owned())))
                .collect::<Option<_>>()
                .ok_or_else(|| Error::invalid("input.env", "must map names to strings"))?,
            Some(_) => return Err(Error::invalid("input.env", "must map names to strings")),
        };
        let base = self.config.working_dir.clone().unwrap_or_else(|| PathBuf::from("."));
        Ok(ShellParams {
            command: CommandSpec {
                program,
                args: input::opt_strings(input, "args")?.unwrap_or_default(),
                cwd: input::opt_str(input, "cwd")?.map_or(base.clone(), |cwd| base.join(cwd)),
                env,
                timeout: input::opt_number(input, "timeout_seconds", 0.001, 7.0 * 24.0 * 3600.0)?.map(Duration::from_secs_f64),
            },
            allow_failure: input::opt_bool(input, "allow_failure")?.unwrap_or(false),
        })
    }
}

struct ShellParams {
    command: CommandSpec,
    allow_failure: bool,
}

/// A command to run for a workflow.
#[derive(Debug, Clone)]
pub(crate) struct CommandSpec {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// With this exit status (or minus the signal that killed it).
    Exited(i32),
    /// Killed at its timeout.
    TimedOut,
}

/// A finished command: how it ended, and the end of its output (standard output and error, by
/// line, as they came), at most [`KEPT_OUTPUT_BYTES`].
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub ended: Ended,
    pub output: String,
}

/// How much of a command's output [`run_command`] keeps (the start is dropped past it).
pub(crate) const KEPT_OUTPUT_BYTES: usize = 1 << 20;

#[async_trait]
impl Workflow for Shell {
    fn validate(&self, input: &Map<String, Value>) -> Result<()> {
        self.params(input).map(drop)
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let params = self.params(ctx.input()).map_err(|err| WorkflowError::invalid_input(err.to_string()))?;
        let command = &params.command;
        let exit_code: i32 = ctx
            .step("command", || async {
                match run_command(Some(ctx), command).await?.ended {
                    Ended::Exited(code) => Ok(code),
                    Ended::TimedOut => Err(WorkflowError::Failed {
                        code: ErrorCode::Timeout,
                        message: format!("`{}` ran past its timeout of {:?} and was killed", command.program, command.timeout.unwrap_or_default()),
                        retryable: true,
                    }),
                }
            })
            .await?;
        if exit_code != 0 && !params.allow_failure {
            return Err(WorkflowError::fatal(format!("`{}` exited with status {exit_code}", command.program)));
        }
        Ok(json!({ "exit_code": exit_code }))
    }
}

/// Runs the command to its end or its timeout, keeping the end of its output. Inside a run
/// (`ctx`), the output streams into the run's log and the run's cancellation stops it.
pub(crate) async fn run_command(ctx: Option<&RunContext>, params: &CommandSpec) -> Result<Finished, WorkflowError> {
    let mut command = Command::new(&params.program);
    command
        .args(&params.args)
        .current_dir(&params.cwd)
        .envs(&params.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Leads its own process group, killed whole when the command ends early (timeout,
    // cancellation, a dropped attempt), so no grandchild outlives it holding its output open.
    let mut child = GroupChild::spawn(&mut command).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound if !params.cwd.is_dir() => {
            WorkflowError::invalid_input(format!("working directory {} does not exist", params.cwd.display()))
        }
        std::io::ErrorKind::NotFound => WorkflowError::invalid_input(format!("program `{}` was not found", params.program)),
        _ => WorkflowError::fatal(format!("cannot start `{}`: {err}", params.program)),
    })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let kept = std::sync::Mutex::new(KeptOutput::default());
    let finished = async {
        tokio::join!(pump(ctx, stdout, LogStream::Stdout, &kept), pump(ctx, stderr, LogStream::Stderr, &kept));
        child.wait().await
    };
    let timeout = params.timeout.unwrap_or(Duration::MAX);
    let ended = tokio::select! {
        status = finished => {
            let status = status.map_err(|err| WorkflowError::fatal(format!("lost track of `{}`: {err}", params.program)))?;
            use std::os::unix::process::ExitStatusExt;
            Ended::Exited(status.code().or_else(|| status.signal().map(|signal| -signal)).unwrap_or(-1))
        }
        () = tokio::time::sleep(timeout) => Ended::TimedOut,
        () = cancelled(ctx) => return Err(WorkflowError::Cancelled),
    };
    let output = kept.into_inner().map(KeptOutput::into_text).unwrap_or_default();
    Ok(Finished { ended, output })
}

/// Resolves when the run is cancelled; never outside a run.
async fn cancelled(ctx: Option<&RunContext>) {
    match ctx {
        Some(ctx) => ctx.cancelled().await,
        None => std::future::pending().await,
    }
}

/// The end of a command's output, at most [`KEPT_OUTPUT_BYTES`], whole lines.
#[derive(Default)]
struct KeptOutput {
    lines: std::collections::VecDeque<String>,
    bytes: usize,
}

impl KeptOutput {
    fn push(&mut self, line: &str) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line.to_owned());
        while self.bytes > KEPT_OUTPUT_BYTES {
            let Some(dropped) = self.lines.pop_front() else { break };
            self.bytes -= dropped.len() + 1;
        }
    }

    fn into_text(self) -> String {
        let mut text = String::with_capacity(self.bytes);
        for line in self.lines {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }
}

/// Streams a child's output into the run's log (if any), line by line (invalid UTF-8
/// replaced), and keeps its end.
async fn pump(ctx: Option<&RunContext>, output: Option<impl AsyncRead + Unpin>, stream: LogStream, kept: &std::sync::Mutex<KeptOutput>) {
    let Some(output) = output else { return };
    let mut reader = BufReader::new(output);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line));
                if let Ok(mut kept) = kept.lock() {
                    kept.push(&text);
                }
                if let Some(ctx) = ctx {
                    ctx.log(stream, &text).await;
                }
            }
        }
    }
}
