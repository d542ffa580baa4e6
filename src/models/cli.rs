//! The `cli` provider: a command-line agent (claude, codex, gemini, or any program) used as a
//! model. The prompt goes to the program's standard input or into its arguments; its standard
//! output, streamed line by line as it is printed, is the answer. The program runs in the run's
//! working directory, leading a process group of its own that is killed on timeout, on
//! cancellation, and once the program has exited (so helpers it left behind die with it).
//!
//! A failed run is classified here and only here: usage-limit and login messages, recognised by
//! configurable patterns, become [`FailureClass::RateLimited`] and
//! [`FailureClass::Authentication`]; a program that cannot be started is
//! [`FailureClass::ProgramMissing`]; any other failure is [`FailureClass::ProgramFailed`].

use std::{
    collections::BTreeMap,
    fmt, io,
    os::unix::process::ExitStatusExt,
    path::Path,
    process::{ExitStatus, Stdio},
    time::Duration,
};

use async_trait::async_trait;
use serde::Deserialize;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader},
    process::{ChildStdin, Command},
};

use super::{AppliedParams, CallFailure, Completion, FailureClass, ModelRequest, Provider, ProviderKind, TokenSink, Usage};
use crate::{
    error::{Error, Result},
    process::GroupChild,
};

/// How much of the end of standard error (and of standard output, for classification) is kept.
const KEPT_TAIL_BYTES: usize = 64 * 1024;

/// The most characters of the program's output quoted in a failure's message.
const MESSAGE_TAIL_CHARS: usize = 500;

/// Environment values shorter than this are never masked in messages: they are not keys, and
/// masking them would garble ordinary words.
const SHORTEST_SECRET: usize = 8;

/// The placeholder in `args` replaced by the model.
const MODEL_PLACEHOLDER: &str = "{model}";

/// The placeholder in `args` replaced by the prompt, in [`PromptMode::Argument`].
const PROMPT_PLACEHOLDER: &str = "{prompt}";

/// How the prompt reaches the program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptMode {
    /// Written to the program's standard input, which is then closed.
    #[default]
    Stdin,
    /// Passed as an argument: in place of each `{prompt}` placeholder in `args`, or as the last
    /// argument when no argument has one. Standard input is empty.
    Argument,
}

/// The configuration of a `cli` provider. Everything but `program` has a default.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliConfig {
    /// The program to run: a name looked up on `PATH`, or a path.
    pub program: String,
    /// Its arguments; `{model}` is replaced by the model, and `{prompt}` by the prompt in
    /// [`PromptMode::Argument`]. Default: none.
    #[serde(default)]
    pub args: Vec<String>,
    /// How the prompt reaches the program. Default: [`PromptMode::Stdin`].
    #[serde(default)]
    pub prompt: PromptMode,
    /// The model reported for its answers and put in place of `{model}`. Default: none, which
    /// reports the program's file name.
    #[serde(default)]
    pub model: Option<String>,
    /// Extra environment variables for the program, beside the server's own. Default: none.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Texts that mark a usage or rate limit in the output of a failed run, matched ignoring
    /// case. Default: [`CliConfig::DEFAULT_LIMIT_PATTERNS`].
    #[serde(default = "default_limit_patterns")]
    pub limit_patterns: Vec<String>,
    /// How long to leave the provider alone after it reported a limit, in seconds (reported as
    /// the failure's `retry_after`). Default: 300.
    #[serde(default = "default_limit_cooldown_seconds")]
    pub limit_cooldown_seconds: u64,
    /// Texts that mark missing or rejected credentials in the output of a failed run, matched
    /// ignoring case. Default: [`CliConfig::DEFAULT_AUTH_PATTERNS`].
    #[serde(default = "default_auth_patterns")]
    pub auth_patterns: Vec<String>,
    /// Whether a run that exits with status 0 but prints a limit pattern is a
    /// [`FailureClass::RateLimited`] failure too (some programs exit 0 with "limit reached").
    /// Default: false, as a successful answer may well mention rate limits.
    #[serde(default)]
    pub success_limit_check: bool,
}

impl CliConfig {
    /// The default `limit_patterns`.
    pub const DEFAULT_LIMIT_PATTERNS: [&str; 9] = [
        "usage limit",
        "rate limit",
        "rate-limit",
        "limit reached",
        "quota exceeded",
        "exceeded your current quota",
        "resource_exhausted",
        "too many requests",
        "429",
    ];

    /// The default `auth_patterns`.
    pub const DEFAULT_AUTH_PATTERNS: [&str; 8] = [
        "not logged in",
        "please log in",
        "please login",
        "login required",
        "invalid api key",
        "api key not found",
        "authentication",
        "unauthorized",
    ];

    /// The default limit cooldown, in seconds.
    pub const DEFAULT_LIMIT_COOLDOWN_SECONDS: u64 = 300;

    /// A configuration running `program` with every other field at its default.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            prompt: PromptMode::default(),
            model: None,
            env: BTreeMap::new(),
            limit_patterns: default_limit_patterns(),
            limit_cooldown_seconds: default_limit_cooldown_seconds(),
            auth_patterns: default_auth_patterns(),
            success_limit_check: false,
        }
    }
}

fn default_limit_patterns() -> Vec<String> {
    CliConfig::DEFAULT_LIMIT_PATTERNS.map(str::to_owned).to_vec()
}

fn default_auth_patterns() -> Vec<String> {
    CliConfig::DEFAULT_AUTH_PATTERNS.map(str::to_owned).to_vec()
}

fn default_limit_cooldown_seconds() -> u64 {
    CliConfig::DEFAULT_LIMIT_COOLDOWN_SECONDS
}

/// By hand, as `env` may hold an API key: only the variables' names are shown.
impl fmt::Debug for CliConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CliConfig")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("prompt", &self.prompt)
            .field("model", &self.model)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("limit_patterns", &self.limit_patterns)
            .field("limit_cooldown_seconds", &self.limit_cooldown_seconds)
            .field("auth_patterns", &self.auth_patterns)
            .field("success_limit_check", &self.success_limit_check)
            .finish()
    }
}

/// The `cli` provider.
#[derive(Debug)]
pub struct CliProvider {
    name: String,
    config: CliConfig,
    /// The configured model, or the program's file name.
    default_model: String,
    /// `limit_patterns`, lowercased.
    limit_patterns: Vec<String>,
    /// `auth_patterns`, lowercased.
    auth_patterns: Vec<String>,
    /// Masks keys the program could echo into a failure's message.
    secrets: Secrets,
}

impl CliProvider {
    /// A `cli` provider named `name`. Refuses an empty program, arguments or environment
    /// variables the system cannot pass, and empty patterns (they would match every output). A
    /// program that is not installed is not refused here but reported by each call, so a
    /// configuration naming one starts on any machine.
    pub fn new(name: &str, config: CliConfig) -> Result<Self> {
        let field = |suffix: &str| format!("providers.{name}.{suffix}");
        if config.program.trim().is_empty() {
            return Err(Error::invalid(field("program"), "is required: the program to run, e.g. \"claude\" or \"/usr/local/bin/codex\""));
        }
        if config.program.contains('\0') {
            return Err(Error::invalid(field("program"), "contains a NUL character, which no program name can"));
        }
        if let Some(index) = config.args.iter().position(|arg| arg.contains('\0')) {
            return Err(Error::invalid(field(&format!("args[{index}]")), "contains a NUL character, which no argument can"));
        }
        for (variable, value) in &config.env {
            if variable.is_empty() || variable.contains(['=', '\0']) || value.contains('\0') {
                return Err(Error::invalid(
                    field("env"),
                    format!("`{variable}` is not a usable environment variable: names must be non-empty without `=`, and neither name nor value may contain NUL"),
                ));
            }
        }
        let lowercased = |patterns: &[String], key: &str| -> Result<Vec<String>> {
            patterns
                .iter()
                .enumerate()
                .map(|(index, pattern)| match pattern.trim() {
                    "" => Err(Error::invalid(field(&format!("{key}[{index}]")), "is empty, so it would match every output; remove it")),
                    _ => Ok(pattern.to_lowercase()),
                })
                .collect()
        };
        let limit_patterns = lowercased(&config.limit_patterns, "limit_patterns")?;
        let auth_patterns = lowercased(&config.auth_patterns, "auth_patterns")?;
        let default_model = config.model.clone().unwrap_or_else(|| {
            Path::new(&config.program)
                .file_name()
                .map_or_else(|| config.program.clone(), |file| file.to_string_lossy().into_owned())
        });
        let secrets = Secrets::of(&config.env);
        Ok(Self { name: name.to_owned(), config, default_model, limit_patterns, auth_patterns, secrets })
    }

    /// The program's arguments for one call: placeholders filled in, and in argument mode the
    /// prompt appended when no argument had a `{prompt}` placeholder.
    fn arguments(&self, model: &str, prompt: &str) -> Vec<String> {
        let prompt_argument = match self.config.prompt {
            PromptMode::Stdin => None,
            PromptMode::Argument => Some(prompt),
        };
        let mut prompt_placed = false;
        let mut arguments: Vec<String> = self
            .config
            .args
            .iter()
            .map(|template| {
                let (argument, placed) = fill_placeholders(template, model, prompt_argument);
                prompt_placed |= placed;
                argument
            })
            .collect();
        if let Some(prompt) = prompt_argument
            && !prompt_placed
        {
            arguments.push(prompt.to_owned());
        }
        arguments
    }

    /// Classifies a program that could not be started.
    fn start_failure(&self, err: &io::Error) -> CallFailure {
        let program = &self.config.program;
        let failure = match err.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => CallFailure::new(
                FailureClass::ProgramMissing,
                format!(
                    "cannot run `{program}` ({err}): it must be installed, executable and on PATH, or providers.{}.program must give its full path",
                    self.name
                ),
            ),
            _ if err.raw_os_error() == Some(libc::E2BIG) && self.config.prompt == PromptMode::Argument => CallFailure::new(
                FailureClass::ProgramFailed,
                format!("cannot run `{program}`: the prompt is too long to pass as an argument ({err}); set providers.{}.prompt = \"stdin\" if the program reads it there", self.name),
            ),
            _ => CallFailure::new(FailureClass::ProgramFailed, format!("cannot run `{program}`: {err}")),
        };
        self.masked(failure)
    }

    /// The answer, or the failure, a finished run amounts to.
    fn outcome(&self, run: FinishedRun, model: &str, streamed: bool) -> Result<Completion, CallFailure> {
        let program = &self.config.program;
        let status = exit_code(run.status);
        let stderr_tail = String::from_utf8_lossy(&run.stderr_tail);
        let stdout_tail = tail(&run.stdout, KEPT_TAIL_BYTES);
        let succeeded = run.status.success();
        if !succeeded || self.config.success_limit_check {
            let said = format!("{stderr_tail}\n{stdout_tail}").to_lowercase();
            if let Some(pattern) = self.limit_patterns.iter().find(|pattern| said.contains(pattern.as_str())) {
                let failure = CallFailure::new(
                    FailureClass::RateLimited,
                    format!("`{program}` reported a usage limit (exit status {status}, output matched \"{pattern}\"): {}", quoted_tail(&stderr_tail, stdout_tail)),
                )
                .retry_after(Some(Duration::from_secs(self.config.limit_cooldown_seconds)))
                .status(status);
                return Err(self.masked(failure));
            }
            if !succeeded {
                let failure = match self.auth_patterns.iter().find(|pattern| said.contains(pattern.as_str())) {
                    Some(pattern) => CallFailure::new(
                        FailureClass::Authentication,
                        format!(
                            "`{program}` is not signed in or its credentials were refused (exit status {status}, output matched \"{pattern}\"); log it in or set its API key: {}",
                            quoted_tail(&stderr_tail, stdout_tail)
                        ),
                    ),
                    None => CallFailure::new(
                        FailureClass::ProgramFailed,
                        format!("`{program}` {}: {}", describe_exit(run.status), quoted_tail(&stderr_tail, stdout_tail)),
                    ),
                };
                return Err(self.masked(failure.status(status)));
            }
        }
        Ok(Completion {
            text: run.stdout,
            model: model.to_owned(),
            fingerprint: None,
            usage: Usage::default(),
            finish_reason: Some("exit 0".to_owned()),
            applied: AppliedParams { model: model.to_owned(), stream: streamed, ..AppliedParams::default() },
        })
    }

    /// The failure with any key the program may have echoed masked from its message.
    fn masked(&self, mut failure: CallFailure) -> CallFailure {
        failure.message = self.secrets.mask(&failure.message);
        failure
    }
}

#[async_trait]
impl Provider for CliProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Cli
    }

    fn default_model(&self) -> &str {
        &self.default_model
    }

    async fn generate(&self, request: &ModelRequest, tokens: Option<&TokenSink>) -> Result<Completion, CallFailure> {
        if let Some(workdir) = &request.workdir
            && !workdir.is_dir()
        {
            return Err(CallFailure::new(
                FailureClass::InvalidRequest,
                format!("the working directory {} does not exist (or is not a directory)", workdir.display()),
            ));
        }
        let model = request.model.as_deref().unwrap_or(&self.default_model);
        let prompt = request.flattened();
        let mut command = Command::new(&self.config.program);
        command
            .args(self.arguments(model, &prompt))
            .envs(&self.config.env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(match self.config.prompt {
                PromptMode::Stdin => Stdio::piped(),
                PromptMode::Argument => Stdio::null(),
            });
        if let Some(workdir) = &request.workdir {
            command.current_dir(workdir);
        }
        // Dropped on every return, and with this future when the call is cancelled: the
        // program's whole process group is killed then.
        let mut child = GroupChild::spawn(&mut command).map_err(|err| self.start_failure(&err))?;
        let stdin_prompt = (self.config.prompt == PromptMode::Stdin).then_some(prompt);
        let run = match tokio::time::timeout(request.timeout, run_to_end(&mut child, stdin_prompt, tokens)).await {
            Ok(Ok(run)) => run,
            Ok(Err(err)) => {
                let failure = CallFailure::new(FailureClass::ProgramFailed, format!("lost track of `{}`: {err}", self.config.program));
                return Err(self.masked(failure));
            }
            Err(_elapsed) => {
                return Err(CallFailure::new(
                    FailureClass::Timeout,
                    format!("`{}` ran past the call's timeout of {:?} and was killed", self.config.program, request.timeout),
                ));
            }
        };
        self.outcome(run, model, tokens.is_some())
    }
}

/// What a program that ran to its end left.
struct FinishedRun {
    status: ExitStatus,
    /// All of standard output.
    stdout: String,
    /// The last [`KEPT_TAIL_BYTES`] of standard error.
    stderr_tail: Vec<u8>,
}

/// Feeds the prompt (if any) to the program, streams its output, and waits for it to exit;
/// then kills whatever it left in its group, which ends the output of helpers that still held
/// its pipes.
async fn run_to_end(child: &mut GroupChild, stdin_prompt: Option<String>, tokens: Option<&TokenSink>) -> io::Result<FinishedRun> {
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let exited = async {
        let status = child.wait().await;
        child.kill_group();
        status
    };
    let (status, (), stdout, stderr_tail) = tokio::join!(exited, feed(stdin, stdin_prompt), read_lines(stdout, tokens), read_tail(stderr));
    Ok(FinishedRun { status: status?, stdout: stdout?, stderr_tail: stderr_tail? })
}

/// Writes the prompt to the program's standard input and closes it.
async fn feed(stdin: Option<ChildStdin>, prompt: Option<String>) {
    let (Some(mut stdin), Some(prompt)) = (stdin, prompt) else { return };
    // A program may exit without reading its input (a broken pipe here); its exit status and
    // output say how the call went, so a failed write is not a failure of its own.
    if stdin.write_all(prompt.as_bytes()).await.is_ok() {
        let _ = stdin.shutdown().await;
    }
}

/// Reads standard output line by line, sending each line (with its `\n`) to the sink as soon as
/// it is complete; returns all of it (invalid UTF-8 replaced).
async fn read_lines(stdout: Option<impl AsyncRead + Unpin>, tokens: Option<&TokenSink>) -> io::Result<String> {
    let Some(stdout) = stdout else { return Ok(String::new()) };
    let mut reader = BufReader::new(stdout);
    let mut text = String::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(text);
        }
        let line = String::from_utf8_lossy(&line);
        text.push_str(&line);
        if let Some(tokens) = tokens {
            // A closed sink means the caller stopped listening; the whole text is still returned.
            let _ = tokens.send(line.into_owned()).await;
        }
    }
}

/// Reads standard error to its end, keeping the last [`KEPT_TAIL_BYTES`].
async fn read_tail(stderr: Option<impl AsyncRead + Unpin>) -> io::Result<Vec<u8>> {
    let Some(mut stderr) = stderr else { return Ok(Vec::new()) };
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let read = stderr.read(&mut chunk).await?;
        if read == 0 {
            return Ok(kept);
        }
        kept.extend_from_slice(&chunk[..read]);
        if kept.len() > KEPT_TAIL_BYTES {
            kept.drain(..kept.len() - KEPT_TAIL_BYTES);
        }
    }
}

/// Replaces `{model}`, and `{prompt}` when a prompt is given, in one pass (so a prompt that
/// contains a placeholder is passed as written); says whether a prompt was placed.
fn fill_placeholders(template: &str, model: &str, prompt: Option<&str>) -> (String, bool) {
    let mut filled = String::with_capacity(template.len());
    let mut prompt_placed = false;
    let mut rest = template;
    while let Some(brace) = rest.find('{') {
        filled.push_str(&rest[..brace]);
        let from_brace = &rest[brace..];
        if let Some(after) = from_brace.strip_prefix(MODEL_PLACEHOLDER) {
            filled.push_str(model);
            rest = after;
        } else if let (Some(prompt), Some(after)) = (prompt, from_brace.strip_prefix(PROMPT_PLACEHOLDER)) {
            filled.push_str(prompt);
            prompt_placed = true;
            rest = after;
        } else {
            filled.push('{');
            rest = &from_brace[1..];
        }
    }
    filled.push_str(rest);
    (filled, prompt_placed)
}

/// The exit code, or the negated signal that ended the program.
fn exit_code(status: ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|signal| -signal)).unwrap_or(-1)
}

/// "exited with status 3" or "was killed by signal 9".
fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended without an exit status".to_owned(),
    }
}

/// At most the last `max_bytes` of `text`, cut at a character boundary.
fn tail(text: &str, max_bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(max_bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The end of what the program said, for a message: standard error, or standard output when
/// it printed nothing there; at most [`MESSAGE_TAIL_CHARS`] characters.
fn quoted_tail(stderr: &str, stdout: &str) -> String {
    let said = match stderr.trim() {
        "" => stdout.trim(),
        stderr => stderr,
    };
    if said.is_empty() {
        return "(no output)".to_owned();
    }
    let chars = said.chars().count();
    if chars <= MESSAGE_TAIL_CHARS {
        return said.to_owned();
    }
    let kept: String = said.chars().skip(chars - MESSAGE_TAIL_CHARS + 1).collect();
    format!("…{kept}")
}

/// Values that must not appear in a failure's message: those of the configured `env`, and
/// those of the server's environment variables whose names say they hold a secret (the program
/// inherits them, and may echo one in an error).
struct Secrets(Vec<String>);

impl Secrets {
    fn of(configured: &BTreeMap<String, String>) -> Self {
        let looks_secret = |name: &str| {
            let name = name.to_uppercase();
            ["KEY", "TOKEN", "SECRET", "PASSWORD"].iter().any(|word| name.contains(word))
        };
        let inherited = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .filter(|(name, _)| looks_secret(name))
            .map(|(_, value)| value);
        let mut secrets: Vec<String> = configured
            .values()
            .cloned()
            .chain(inherited)
            .filter(|value| value.len() >= SHORTEST_SECRET)
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        Self(secrets)
    }

    fn mask(&self, message: &str) -> String {
        self.0.iter().fold(message.to_owned(), |message, secret| message.replace(secret.as_str(), "[redacted]"))
    }
}

/// By hand: the values are secrets.
impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} masked)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_once_and_a_prompt_is_passed_as_written() {
        assert_eq!(fill_placeholders("--model={model}", "opus", None), ("--model=opus".to_owned(), false));
        assert_eq!(fill_placeholders("{prompt}", "m", None), ("{prompt}".to_owned(), false));
        assert_eq!(fill_placeholders("say: {prompt}", "m", Some("use {model} {x}")), ("say: use {model} {x}".to_owned(), true));
        assert_eq!(fill_placeholders("{{model}}", "m", None), ("{m}".to_owned(), false));
    }

    #[test]
    fn the_tail_is_cut_at_a_character_boundary() {
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail("abc", 10), "abc");
        let long = "é".repeat(600);
        let quoted = quoted_tail(&long, "");
        assert_eq!(quoted.chars().count(), MESSAGE_TAIL_CHARS);
        assert_eq!(quoted_tail("  ", " from stdout \n"), "from stdout");
    }

    #[test]
    fn debug_output_hides_environment_values() {
        let mut config = CliConfig::new("agent");
        config.env.insert("AGENT_API_KEY".to_owned(), "sk-very-secret-value".to_owned());
        let provider = CliProvider::new("agent", config).unwrap();
        let debug = format!("{provider:?}");
        assert!(debug.contains("AGENT_API_KEY"), "{debug}");
        assert!(!debug.contains("sk-very-secret-value"), "{debug}");
    }
}
