//! The one gate engine, shared by recipe runs (seed `004`) and tasks (seed `003`).
//!
//! A gate ([`GateSpec`]) checks one thing about what a piece of work produced: that some output's
//! name matches a glob (`file_exists`), that a document has its required Markdown sections
//! (`content_check`), that an artifact of a kind and/or with a label exists (`artifact_exists`),
//! that a metric clears a threshold on a stated scale (`metric_threshold`), or that a verify
//! command exits with status 0 within its timeout (`command`).
//!
//! What the gates look at is a [`GateSubject`]: a recipe run supplies its artifacts, a task the
//! files of its working directory ([`DirSubject`]). [`validate_gates`] refuses gates that could
//! never be checked before anything runs; [`evaluate`] checks them in the order given, each
//! result's message saying what was found or what was missing; [`verdict`] says whether every
//! required gate passed.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::Read,
    path::{Component, Path, PathBuf},
    time::Duration,
};

use async_trait::async_trait;
use globset::Glob;
use serde::{Deserialize, Serialize};

use super::{
    shell::{run_command, CommandSpec, Ended},
    task::tree::{relative_path, walker},
};
use crate::{
    domain::{
        ArtifactKind, ArtifactKindName, Comparison, GateCheck, GateResult, GateSpec, LogStream,
        Metric, Scale,
    },
    engine::{RunContext, WorkflowError},
    error::{Error, FieldViolation, Result},
};

/// The longest gate id.
pub const MAX_GATE_ID_CHARS: usize = 64;

/// The longest timeout a command gate may have, in seconds.
pub const MAX_COMMAND_TIMEOUT_SECONDS: u32 = 3600;

/// The timeout of a command gate that gives none (0), in seconds.
pub const DEFAULT_COMMAND_TIMEOUT_SECONDS: u32 = 600;

/// How much of the end of a command's output its gate's message quotes, in characters.
pub const OUTPUT_TAIL_CHARS: usize = 2000;

/// How much of a file [`DirSubject`] reads for a `content_check`, in bytes.
pub const MAX_READ_BYTES: u64 = 4 << 20;

/// The most files [`DirSubject`] lists as outputs.
pub const MAX_DIR_OUTPUTS: usize = 100_000;

/// How many names a message lists before it says how many more there are.
const LISTED_NAMES: usize = 20;

/// What gates are evaluated against: a recipe run's artifacts, or a task's working directory.
#[async_trait]
pub trait GateSubject: Send + Sync {
    /// Names of the outputs produced (artifact names, or file paths relative to the work dir), for file_exists.
    async fn output_names(&self) -> Result<Vec<String>>;
    /// The text of an output (content_check); None if there is no such output.
    async fn read_output(&self, name: &str) -> Result<Option<String>>;
    /// Whether an output of this kind and/or with this label exists (label given as `key` or `key=value`).
    async fn has_artifact(
        &self,
        kind: Option<ArtifactKind>,
        label: Option<(&str, Option<&str>)>,
    ) -> Result<bool>;
    /// A metric by name.
    fn metric(&self, name: &str) -> Option<Metric>;
    /// Where commands run; None refuses command gates with a clear failed result.
    fn workdir(&self) -> Option<&Path>;
}

/// Whether a set of gate results lets the work pass: it does when every required gate passed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    /// The ids of the required gates that failed, in order.
    pub failed_required: Vec<String>,
    /// The ids of the optional gates that failed, in order; they do not stop the work.
    pub failed_optional: Vec<String>,
}

/// The verdict on `results`: passed when every required gate passed.
pub fn verdict(results: &[GateResult]) -> Verdict {
    let failed = |required: bool| -> Vec<String> {
        results
            .iter()
            .filter(|result| !result.passed && result.required == required)
            .map(|result| result.id.clone())
            .collect()
    };
    let failed_required = failed(true);
    Verdict {
        passed: failed_required.is_empty(),
        failed_required,
        failed_optional: failed(false),
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// Refuses gates that could never be checked, naming every bad field by its path
/// (`gates[2].check.pattern`): ids that are empty, repeated or not `[A-Za-z0-9_.-]{1,64}`; globs
/// that do not compile; a `content_check` without a file or a section; an `artifact_exists`
/// with neither a kind nor a label; metric names that are not `[a-z0-9_.]+`; thresholds that are
/// not finite or outside their scale; commands that are empty or whose timeout exceeds
/// [`MAX_COMMAND_TIMEOUT_SECONDS`].
pub fn validate_gates(gates: &[GateSpec]) -> Result<()> {
    let mut violations = Vec::new();
    let mut first_with_id: HashMap<&str, usize> = HashMap::new();
    for (index, gate) in gates.iter().enumerate() {
        let mut refuse = |path: &str, description: String| {
            violations.push(FieldViolation {
                field: format!("gates[{index}].{path}"),
                description,
            });
        };
        match id_problem(&gate.id) {
            Some(problem) => refuse("id", problem),
            None => {
                if let Some(first) = first_with_id.get(gate.id.as_str()) {
                    refuse(
                        "id",
                        format!(
                            "`{}` is also the id of gates[{first}]; each gate needs its own id",
                            gate.id
                        ),
                    );
                } else {
                    first_with_id.insert(&gate.id, index);
                }
            }
        }
        for (path, description) in check_problems(&gate.check) {
            refuse(&path, description);
        }
    }
    if violations.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidArgument(violations))
}

/// What is wrong with a gate id, if anything.
fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("is required: a short name such as `prd-exists`".to_owned());
    }
    if id.chars().count() > MAX_GATE_ID_CHARS {
        return Some(format!("is longer than {MAX_GATE_ID_CHARS} characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Some(format!(
            "`{id}` may use only letters, digits, `_`, `.` and `-`"
        ));
    }
    None
}

/// Every problem with a check, as (path under the gate, description).
fn check_problems(check: &GateCheck) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut refuse =
        |path: &str, description: String| problems.push((format!("check.{path}"), description));
    match check {
        GateCheck::FileExists { pattern } => {
            if pattern.trim().is_empty() {
                refuse(
                    "pattern",
                    "is required: a glob such as `*.md` or `hypotheses/*`".to_owned(),
                );
            } else if let Err(err) = Glob::new(pattern) {
                refuse("pattern", format!("`{pattern}` is not a valid glob: {err}"));
            }
        }
        GateCheck::ContentCheck {
            file,
            required_sections,
        } => {
            if file.trim().is_empty() {
                refuse(
                    "file",
                    "is required: the output to read, such as `prd.md`".to_owned(),
                );
            } else if escapes_root(file) {
                refuse(
                    "file",
                    format!("`{file}` must be a relative path inside the outputs, without `..`"),
                );
            }
            if required_sections.is_empty() {
                refuse(
                    "required_sections",
                    "needs at least one section: the text of a Markdown heading".to_owned(),
                );
            }
            for (position, section) in required_sections.iter().enumerate() {
                if normalized_section(section).is_empty() {
                    refuse(
                        &format!("required_sections[{position}]"),
                        "is empty: give the text of a Markdown heading".to_owned(),
                    );
                }
            }
        }
        GateCheck::ArtifactExists { kind, label } => match label {
            None if kind.is_none() => {
                problems.push((
                    "check".to_owned(),
                    "an artifact_exists gate needs a kind, a label, or both".to_owned(),
                ));
            }
            Some(label) if parse_label(label).0.is_empty() => {
                refuse(
                    "label",
                    format!("`{label}` must be `key` or `key=value`, with a non-empty key"),
                );
            }
            _ => {}
        },
        GateCheck::MetricThreshold {
            metric,
            threshold,
            scale,
            ..
        } => {
            if metric.is_empty()
                || !metric
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.'))
            {
                refuse("metric", format!("`{metric}` is not a metric name: use lowercase letters, digits, `_` and `.`, such as `jury_score`"));
            }
            if !threshold.is_finite() {
                refuse("threshold", "must be a finite number".to_owned());
            } else if !(0.0..=scale.max()).contains(threshold) {
                refuse(
                    "threshold",
                    format!(
                        "{} is outside the gate's scale {}: give a value from 0 to {}",
                        number(*threshold),
                        scale.as_str(),
                        number(scale.max())
                    ),
                );
            }
        }
        GateCheck::Command {
            command,
            timeout_seconds,
        } => {
            if command.trim().is_empty() {
                refuse(
                    "command",
                    "is required: a shell command that exits with status 0 when the gate passes"
                        .to_owned(),
                );
            }
            if *timeout_seconds > MAX_COMMAND_TIMEOUT_SECONDS {
                refuse(
                    "timeout_seconds",
                    format!(
                        "{timeout_seconds} is more than {MAX_COMMAND_TIMEOUT_SECONDS}; give at most {MAX_COMMAND_TIMEOUT_SECONDS}, \
                         or 0 for the default of {DEFAULT_COMMAND_TIMEOUT_SECONDS}"
                    ),
                );
            }
        }
    }
    problems
}

/// A label as `key` or `key=value`, each side trimmed.
fn parse_label(label: &str) -> (&str, Option<&str>) {
    match label.split_once('=') {
        Some((key, value)) => (key.trim(), Some(value.trim())),
        None => (label.trim(), None),
    }
}

/// Whether a relative name would leave the directory it names something in: empty, absolute,
/// or with a `..` part.
fn escapes_root(name: &str) -> bool {
    name.is_empty()
        || Path::new(name).components().any(|part| {
            matches!(
                part,
                Component::ParentDir | Component::RootDir | Component::Prefix(_)
            )
        })
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// Checks the gates against `subject`, in the order given, running command gates directly in
/// the subject's working directory (their output is not logged anywhere but the message; a
/// dropped future kills them). A storage error from the subject is an `Err`; everything else —
/// a missing output, an unmeasured metric, a command that fails or times out — is a failed
/// result saying so.
pub async fn evaluate(gates: &[GateSpec], subject: &dyn GateSubject) -> Result<Vec<GateResult>> {
    evaluate_with(gates, subject, None)
        .await
        .map_err(|err| match err {
            WorkflowError::Store(err) => err,
            other => Error::Internal(format!("gate evaluation stopped: {other}")),
        })
}

/// [`evaluate`] inside a run: command gates run through the `shell` kind's runner, so their
/// output streams into the run's log and the run's cancellation stops them
/// ([`WorkflowError::Cancelled`]). Call it inside a journaled step so that commands run once.
pub async fn evaluate_in_run(
    ctx: &RunContext,
    gates: &[GateSpec],
    subject: &dyn GateSubject,
) -> Result<Vec<GateResult>, WorkflowError> {
    evaluate_with(gates, subject, Some(ctx))
        .await
        .map_err(|err| match err {
            WorkflowError::Store(err) => WorkflowError::from(err),
            other => other,
        })
}

/// How command gates run: inside a run (logged into it, stopped by its cancellation), or not.
type Runner<'a> = Option<&'a RunContext>;

/// How one check came out, before the gate's failure message is added.
struct Outcome {
    passed: bool,
    detail: String,
}

impl Outcome {
    fn passed(detail: String) -> Self {
        Self {
            passed: true,
            detail,
        }
    }

    fn failed(detail: String) -> Self {
        Self {
            passed: false,
            detail,
        }
    }
}

/// A subject's storage error, kept whole (`evaluate` unwraps it again).
fn stored(err: Error) -> WorkflowError {
    WorkflowError::Store(err)
}

async fn evaluate_with(
    gates: &[GateSpec],
    subject: &dyn GateSubject,
    runner: Runner<'_>,
) -> Result<Vec<GateResult>, WorkflowError> {
    let mut results = Vec::with_capacity(gates.len());
    for gate in gates {
        let outcome = check(gate, subject, runner).await?;
        let message = if outcome.passed {
            outcome.detail
        } else {
            with_failure_message(&gate.failure_message, &outcome.detail)
        };
        results.push(GateResult {
            id: gate.id.clone(),
            name: gate.name.clone(),
            gate_type: gate.check.type_name().to_owned(),
            required: gate.required,
            passed: outcome.passed,
            message,
        });
    }
    Ok(results)
}

/// `detail` after the gate's own failure message, if it has one.
fn with_failure_message(failure_message: &str, detail: &str) -> String {
    let said = failure_message.trim().trim_end_matches(':').trim_end();
    if said.is_empty() {
        return detail.to_owned();
    }
    if said.ends_with(['.', '!', '?']) {
        return format!("{said} {detail}");
    }
    format!("{said}: {detail}")
}

async fn check(
    gate: &GateSpec,
    subject: &dyn GateSubject,
    runner: Runner<'_>,
) -> Result<Outcome, WorkflowError> {
    match &gate.check {
        GateCheck::FileExists { pattern } => file_exists(pattern, subject).await,
        GateCheck::ContentCheck {
            file,
            required_sections,
        } => content_check(file, required_sections, subject).await,
        GateCheck::ArtifactExists { kind, label } => {
            artifact_exists(*kind, label.as_deref(), subject).await
        }
        GateCheck::MetricThreshold {
            metric,
            operator,
            threshold,
            scale,
        } => Ok(metric_threshold(
            metric, *operator, *threshold, *scale, subject,
        )),
        GateCheck::Command {
            command,
            timeout_seconds,
        } => run_gate_command(&gate.id, command, *timeout_seconds, subject, runner).await,
    }
}

async fn file_exists(pattern: &str, subject: &dyn GateSubject) -> Result<Outcome, WorkflowError> {
    let matcher = match Glob::new(pattern) {
        Ok(glob) => glob.compile_matcher(),
        Err(err) => {
            return Ok(Outcome::failed(format!(
                "`{pattern}` is not a valid glob: {err}"
            )))
        }
    };
    let names = subject.output_names().await.map_err(stored)?;
    let matched: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|name| matcher.is_match(name))
        .collect();
    if matched.is_empty() {
        let outputs = if names.is_empty() {
            "there are no outputs".to_owned()
        } else {
            format!("outputs: {}", listed(&names))
        };
        return Ok(Outcome::failed(format!(
            "no output matches `{pattern}` ({outputs})"
        )));
    }
    Ok(Outcome::passed(format!(
        "`{pattern}` matches {}",
        listed(&matched)
    )))
}

async fn content_check(
    file: &str,
    required_sections: &[String],
    subject: &dyn GateSubject,
) -> Result<Outcome, WorkflowError> {
    let Some(text) = subject.read_output(file).await.map_err(stored)? else {
        return Ok(Outcome::failed(format!(
            "`{file}` does not exist, so its required sections ({}) are missing",
            required_sections.join(", ")
        )));
    };
    let headings = markdown_headings(&text);
    let missing: Vec<&str> = required_sections
        .iter()
        .filter(|section| !headings.contains(&normalized_section(section)))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(Outcome::passed(format!(
            "`{file}` has every required section: {}",
            required_sections.join(", ")
        )));
    }
    Ok(Outcome::failed(format!(
        "`{file}` is missing {} of {} required sections: {}",
        missing.len(),
        required_sections.len(),
        missing.join(", ")
    )))
}

async fn artifact_exists(
    kind: Option<ArtifactKindName>,
    label: Option<&str>,
    subject: &dyn GateSubject,
) -> Result<Outcome, WorkflowError> {
    let kind = kind.map(|kind| kind.0);
    let what = match (kind, label) {
        (Some(kind), Some(label)) => {
            format!("artifact of kind `{}` labelled `{label}`", kind.as_str())
        }
        (Some(kind), None) => format!("artifact of kind `{}`", kind.as_str()),
        (None, Some(label)) => format!("artifact labelled `{label}`"),
        (None, None) => "artifact".to_owned(),
    };
    let found = subject
        .has_artifact(kind, label.map(parse_label))
        .await
        .map_err(stored)?;
    if found {
        return Ok(Outcome::passed(format!("found an {what}")));
    }
    Ok(Outcome::failed(format!("there is no {what}")))
}

fn metric_threshold(
    metric: &str,
    operator: Comparison,
    threshold: f64,
    scale: Scale,
    subject: &dyn GateSubject,
) -> Outcome {
    let needs = format!("needs {} {}", operator.as_str(), number(threshold));
    let Some(measured) = subject.metric(metric) else {
        return Outcome::failed(format!(
            "{metric} was never measured; {needs} on {}",
            scale.as_str()
        ));
    };
    if !measured.value.is_finite() {
        return Outcome::failed(format!(
            "{metric} is {}, which is not a number; {needs} on {}",
            measured.value,
            scale.as_str()
        ));
    }
    let (value, measured_text) = if measured.scale == scale {
        (
            measured.value,
            format!("{metric} {} on {}", number(measured.value), scale.as_str()),
        )
    } else {
        // Rounded so that conversion noise (0.57 → 56.99999999999999) never decides a gate.
        let converted = (measured.scale.convert(measured.value, scale) * 1e9).round() / 1e9;
        let text = format!(
            "{metric} {} on {} is {} on {}",
            number(measured.value),
            measured.scale.as_str(),
            number(converted),
            scale.as_str()
        );
        (converted, text)
    };
    let passed = operator.holds(value, threshold);
    let said = if passed { "passed" } else { "failed" };
    Outcome {
        passed,
        detail: format!("{measured_text}; {needs}: {said}"),
    }
}

async fn run_gate_command(
    gate_id: &str,
    command: &str,
    timeout_seconds: u32,
    subject: &dyn GateSubject,
    runner: Runner<'_>,
) -> Result<Outcome, WorkflowError> {
    let Some(workdir) = subject.workdir() else {
        return Ok(Outcome::failed(format!(
            "`{command}` was not run: there is no working directory to run it in"
        )));
    };
    let seconds = if timeout_seconds == 0 {
        DEFAULT_COMMAND_TIMEOUT_SECONDS
    } else {
        timeout_seconds
    };
    let spec = CommandSpec {
        program: "sh".into(),
        args: vec!["-c".into(), command.to_owned()],
        cwd: workdir.to_path_buf(),
        env: BTreeMap::new(),
        timeout: Some(Duration::from_secs(u64::from(seconds))),
    };
    if let Some(ctx) = runner {
        ctx.log(LogStream::Stdout, &format!("gate `{gate_id}`: running `{command}`")).await;
    }
    let finished = match run_command(runner, &spec).await {
        Ok(finished) => finished,
        Err(WorkflowError::Failed { message, .. }) => return Ok(Outcome::failed(format!("`{command}` could not be run: {message}"))),
        Err(other) => return Err(other),
    };
    let how = match finished.ended {
        Ended::Exited(code) if code < 0 => format!("was killed by signal {}", -code),
        Ended::Exited(code) => format!("exited with status {code}"),
        Ended::TimedOut => format!("ran past its timeout of {seconds}s and was killed"),
    };
    let mut detail = format!("`{command}` {how}");
    let tail = output_tail(&finished.output, OUTPUT_TAIL_CHARS);
    if tail.is_empty() {
        detail.push_str(", with no output");
    } else {
        detail.push_str("; its output ended with:\n");
        detail.push_str(tail);
    }
    Ok(Outcome {
        passed: finished.ended == Ended::Exited(0),
        detail,
    })
}

/// The end of `text`, at most `max_chars` characters, starting at a line when it was cut.
fn output_tail(text: &str, max_chars: usize) -> &str {
    let text = text.trim_end();
    let count = text.chars().count();
    if count <= max_chars {
        return text;
    }
    let start = text
        .char_indices()
        .nth(count - max_chars)
        .map_or(0, |(index, _)| index);
    let cut = &text[start..];
    match cut.find('\n') {
        Some(newline) if newline + 1 < cut.len() => &cut[newline + 1..],
        _ => cut,
    }
}

/// The text of every ATX heading (`#` to `######`) outside fenced code blocks, trimmed,
/// without a closing sequence of `#`, lowercased.
fn markdown_headings(text: &str) -> HashSet<String> {
    let mut headings = HashSet::new();
    let mut fence: Option<(char, usize)> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if indent > 3 {
            continue;
        }
        let line = line.trim_start_matches(' ');
        if let Some((marker, length)) = fence_marker(line) {
            match fence {
                None => fence = Some((marker, length)),
                Some((open, open_length))
                    if open == marker
                        && length >= open_length
                        && line.trim_end().chars().all(|c| c == marker) =>
                {
                    fence = None;
                }
                Some(_) => {}
            }
            continue;
        }
        if fence.is_some() {
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&level) {
            continue;
        }
        let rest = &line[level..];
        if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
            continue;
        }
        headings.insert(heading_text(rest).to_lowercase());
    }
    headings
}

/// A code fence's marker (`` ` `` or `~`) and length, if the line opens or closes one.
fn fence_marker(line: &str) -> Option<(char, usize)> {
    let marker = line.chars().next().filter(|&c| c == '`' || c == '~')?;
    let length = line.chars().take_while(|&c| c == marker).count();
    (length >= 3).then_some((marker, length))
}

/// A heading's text without its closing `#`s (only when a space sets them apart).
fn heading_text(rest: &str) -> &str {
    let text = rest.trim();
    let without_closing = text.trim_end_matches('#');
    if without_closing.is_empty() {
        return "";
    }
    if without_closing.ends_with([' ', '\t']) {
        return without_closing.trim_end();
    }
    text
}

/// A required section as headings are compared: trimmed, any leading `#`s dropped, lowercased.
fn normalized_section(section: &str) -> String {
    section.trim().trim_start_matches('#').trim().to_lowercase()
}

/// Names joined with commas, at most [`LISTED_NAMES`], then how many more there are.
fn listed<S: AsRef<str>>(names: &[S]) -> String {
    let shown: Vec<&str> = names.iter().take(LISTED_NAMES).map(AsRef::as_ref).collect();
    let mut text = shown.join(", ");
    if names.len() > LISTED_NAMES {
        text.push_str(&format!(" and {} more", names.len() - LISTED_NAMES));
    }
    text
}

/// A number as people write it: at most six decimals, no trailing zeros (`72`, `0.82`).
fn number(value: f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        return "0".to_owned();
    }
    text.to_owned()
}

// ---------------------------------------------------------------------------------------------
// A working directory as a subject
// ---------------------------------------------------------------------------------------------

/// The files of a working directory as a [`GateSubject`], for tasks: the outputs are the files
/// git would track (the `.git` directory and what `.gitignore` files and `.git/info/exclude`
/// ignore are skipped, symbolic links are listed and never followed), named by their path
/// relative to the root with `/` between parts; commands run in the root. A directory has no
/// artifact kinds or labels, so `artifact_exists` never passes on it.
#[derive(Debug, Clone)]
pub struct DirSubject {
    root: PathBuf,
    metrics: BTreeMap<String, Metric>,
}

impl DirSubject {
    /// The files under `root`, with no metrics.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            metrics: BTreeMap::new(),
        }
    }

    /// The same, with these metrics for `metric_threshold` gates.
    pub fn with_metrics(mut self, metrics: BTreeMap<String, Metric>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The working directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[async_trait]
impl GateSubject for DirSubject {
    async fn output_names(&self) -> Result<Vec<String>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || list_files(&root))
            .await
            .map_err(|err| {
                Error::Internal(format!("listing the working directory stopped: {err}"))
            })?
    }

    async fn read_output(&self, name: &str) -> Result<Option<String>> {
        let root = self.root.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || read_file(&root, &name))
            .await
            .map_err(|err| {
                Error::Internal(format!("reading from the working directory stopped: {err}"))
            })?
    }

    async fn has_artifact(
        &self,
        _kind: Option<ArtifactKind>,
        _label: Option<(&str, Option<&str>)>,
    ) -> Result<bool> {
        Ok(false)
    }

    fn metric(&self, name: &str) -> Option<Metric> {
        self.metrics.get(name).copied()
    }

    fn workdir(&self) -> Option<&Path> {
        Some(&self.root)
    }
}

/// The files under `root` (not directories), sorted, at most [`MAX_DIR_OUTPUTS`].
fn list_files(root: &Path) -> Result<Vec<String>> {
    match std::fs::metadata(root) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => {
            return Err(Error::precondition(
                "WORKDIR_UNREADABLE",
                format!(
                    "the working directory {} is not a directory",
                    root.display()
                ),
            ))
        }
        Err(err) => {
            return Err(Error::precondition(
                "WORKDIR_UNREADABLE",
                format!(
                    "the working directory {} cannot be read: {err}",
                    root.display()
                ),
            ));
        }
    }
    let mut names = Vec::new();
    for entry in walker(root).build() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                tracing::debug!(root = %root.display(), error = %err, "gates: skipping an unreadable entry");
                continue;
            }
        };
        if entry.depth() == 0 || entry.file_type().is_some_and(|kind| kind.is_dir()) {
            continue;
        }
        names.push(relative_path(root, entry.path()));
        if names.len() == MAX_DIR_OUTPUTS {
            break;
        }
    }
    names.sort();
    Ok(names)
}

/// The text of the file `name` under `root`: at most [`MAX_READ_BYTES`] of it (invalid UTF-8
/// replaced); `None` when there is no such file, or when the name or a symbolic link on the way
/// leads outside `root`.
fn read_file(root: &Path, name: &str) -> Result<Option<String>> {
    if escapes_root(name) {
        return Ok(None);
    }
    let (Ok(real_root), Ok(real_path)) = (root.canonicalize(), root.join(name).canonicalize())
    else {
        return Ok(None);
    };
    if !real_path.starts_with(&real_root) || !real_path.is_file() {
        return Ok(None);
    }
    let unreadable = |err: std::io::Error| {
        Error::precondition(
            "WORKDIR_UNREADABLE",
            format!("`{name}` in {} cannot be read: {err}", root.display()),
        )
    };
    let file = match std::fs::File::open(&real_path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(unreadable(err)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_READ_BYTES)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A subject with outputs, artifacts and metrics held in memory.
    #[derive(Default)]
    struct Fake {
        outputs: BTreeMap<String, String>,
        artifacts: Vec<(ArtifactKind, BTreeMap<String, String>)>,
        metrics: BTreeMap<String, Metric>,
        workdir: Option<PathBuf>,
        broken: bool,
    }

    impl Fake {
        fn output(mut self, name: &str, text: &str) -> Self {
            self.outputs.insert(name.to_owned(), text.to_owned());
            self
        }

        fn artifact(mut self, kind: ArtifactKind, labels: &[(&str, &str)]) -> Self {
            self.artifacts.push((
                kind,
                labels
                    .iter()
                    .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                    .collect(),
            ));
            self
        }

        fn metric(mut self, name: &str, value: f64, scale: Scale) -> Self {
            self.metrics
                .insert(name.to_owned(), Metric { value, scale });
            self
        }

        fn storage(&self) -> Result<()> {
            if self.broken {
                return Err(Error::Unavailable("the store is down".into()));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl GateSubject for Fake {
        async fn output_names(&self) -> Result<Vec<String>> {
            self.storage()?;
            Ok(self.outputs.keys().cloned().collect())
        }

        async fn read_output(&self, name: &str) -> Result<Option<String>> {
            self.storage()?;
            Ok(self.outputs.get(name).cloned())
        }

        async fn has_artifact(
            &self,
            kind: Option<ArtifactKind>,
            label: Option<(&str, Option<&str>)>,
        ) -> Result<bool> {
            self.storage()?;
            Ok(self.artifacts.iter().any(|(found, labels)| {
                kind.is_none_or(|kind| kind == *found)
                    && label.is_none_or(|(key, value)| {
                        labels
                            .get(key)
                            .is_some_and(|have| value.is_none_or(|value| have == value))
                    })
            }))
        }

        fn metric(&self, name: &str) -> Option<Metric> {
            self.metrics.get(name).copied()
        }

        fn workdir(&self) -> Option<&Path> {
            self.workdir.as_deref()
        }
    }

    fn gate(id: &str, required: bool, check: GateCheck) -> GateSpec {
        GateSpec {
            id: id.to_owned(),
            name: format!("the {id} gate"),
            check,
            required,
            failure_message: String::new(),
        }
    }

    fn file_exists(pattern: &str) -> GateCheck {
        GateCheck::FileExists {
            pattern: pattern.to_owned(),
        }
    }

    fn sections(file: &str, required: &[&str]) -> GateCheck {
        GateCheck::ContentCheck {
            file: file.to_owned(),
            required_sections: required
                .iter()
                .map(|section| (*section).to_owned())
                .collect(),
        }
    }

    fn artifact(kind: Option<ArtifactKind>, label: Option<&str>) -> GateCheck {
        GateCheck::ArtifactExists {
            kind: kind.map(ArtifactKindName),
            label: label.map(str::to_owned),
        }
    }

    fn threshold(metric: &str, operator: Comparison, threshold: f64, scale: Scale) -> GateCheck {
        GateCheck::MetricThreshold {
            metric: metric.to_owned(),
            operator,
            threshold,
            scale,
        }
    }

    fn command(command: &str, timeout_seconds: u32) -> GateCheck {
        GateCheck::Command {
            command: command.to_owned(),
            timeout_seconds,
        }
    }

    async fn one(check: GateCheck, subject: &dyn GateSubject) -> GateResult {
        let mut results = evaluate(&[gate("g", true, check)], subject).await.unwrap();
        assert_eq!(results.len(), 1);
        results.remove(0)
    }

    fn write(root: &Path, path: &str, content: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn fields(result: Result<()>) -> Vec<String> {
        match result {
            Err(Error::InvalidArgument(violations)) => violations
                .into_iter()
                .map(|violation| violation.field)
                .collect(),
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn file_exists_passes_on_a_match_and_lists_the_outputs_when_none_matches() {
        let subject = Fake::default()
            .output("a.txt", "")
            .output("b.json", "")
            .output("docs/prd.md", "");
        let found = one(file_exists("*.md"), &subject).await;
        assert!(found.passed, "{found:?}");
        assert_eq!(found.message, "`*.md` matches docs/prd.md");
        assert_eq!(
            (found.gate_type.as_str(), found.name.as_str()),
            ("file_exists", "the g gate")
        );

        let subject = Fake::default().output("a.txt", "").output("b.json", "");
        let missing = one(file_exists("*.md"), &subject).await;
        assert!(!missing.passed);
        assert_eq!(
            missing.message,
            "no output matches `*.md` (outputs: a.txt, b.json)"
        );

        let empty = one(file_exists("hypotheses/*"), &Fake::default()).await;
        assert_eq!(
            empty.message,
            "no output matches `hypotheses/*` (there are no outputs)"
        );
    }

    #[tokio::test]
    async fn content_check_names_only_the_missing_sections() {
        let prd = "# PRD\n\n## Summary ##\nText.\n\n### problem statement\n```md\n## Rollout\n```\n    # Metrics\n";
        let subject = Fake::default().output("prd.md", prd);
        let passed = one(
            sections("prd.md", &["Summary", "Problem Statement", "## PRD"]),
            &subject,
        )
        .await;
        assert!(passed.passed, "{passed:?}");
        assert_eq!(
            passed.message,
            "`prd.md` has every required section: Summary, Problem Statement, ## PRD"
        );

        let failed = one(
            sections("prd.md", &["Summary", "Rollout", "Metrics"]),
            &subject,
        )
        .await;
        assert!(!failed.passed);
        assert_eq!(
            failed.message, "`prd.md` is missing 2 of 3 required sections: Rollout, Metrics",
            "fenced and indented headings do not count"
        );

        let absent = one(sections("spec.md", &["Summary"]), &subject).await;
        assert!(!absent.passed);
        assert_eq!(
            absent.message,
            "`spec.md` does not exist, so its required sections (Summary) are missing"
        );
    }

    #[tokio::test]
    async fn artifact_exists_by_kind_and_or_label() {
        let subject = Fake::default()
            .artifact(ArtifactKind::Url, &[("chromatic", "https://example.test")])
            .artifact(ArtifactKind::Document, &[]);
        let by_kind = one(artifact(Some(ArtifactKind::Url), None), &subject).await;
        assert!(by_kind.passed);
        assert_eq!(by_kind.message, "found an artifact of kind `url`");
        assert!(
            one(
                artifact(Some(ArtifactKind::Url), Some("chromatic")),
                &subject
            )
            .await
            .passed
        );
        assert!(
            one(
                artifact(None, Some("chromatic=https://example.test")),
                &subject
            )
            .await
            .passed
        );

        let wrong_value = one(artifact(None, Some("chromatic=elsewhere")), &subject).await;
        assert!(!wrong_value.passed);
        assert_eq!(
            wrong_value.message,
            "there is no artifact labelled `chromatic=elsewhere`"
        );
        let wrong_kind = one(
            artifact(Some(ArtifactKind::Patch), Some("chromatic")),
            &subject,
        )
        .await;
        assert_eq!(
            wrong_kind.message,
            "there is no artifact of kind `patch` labelled `chromatic`"
        );
        assert!(!wrong_kind.passed);
    }

    #[tokio::test]
    async fn metric_threshold_on_the_same_scale() {
        let subject = Fake::default().metric("jury_score", 72.0, Scale::Percent);
        let passed = one(
            threshold("jury_score", Comparison::AtLeast, 70.0, Scale::Percent),
            &subject,
        )
        .await;
        assert!(passed.passed);
        assert_eq!(
            passed.message,
            "jury_score 72 on 0-100; needs >= 70: passed"
        );
        let failed = one(
            threshold("jury_score", Comparison::Above, 72.0, Scale::Percent),
            &subject,
        )
        .await;
        assert!(!failed.passed);
        assert_eq!(failed.message, "jury_score 72 on 0-100; needs > 72: failed");

        let never = one(
            threshold("coverage", Comparison::AtLeast, 0.8, Scale::Unit),
            &subject,
        )
        .await;
        assert!(!never.passed);
        assert_eq!(
            never.message,
            "coverage was never measured; needs >= 0.8 on 0-1"
        );
    }

    #[tokio::test]
    async fn metric_threshold_converts_between_scales_and_says_so() {
        let unit = Fake::default().metric("jury_score", 0.72, Scale::Unit);
        let up = one(
            threshold("jury_score", Comparison::AtLeast, 70.0, Scale::Percent),
            &unit,
        )
        .await;
        assert!(up.passed);
        assert_eq!(
            up.message,
            "jury_score 0.72 on 0-1 is 72 on 0-100; needs >= 70: passed"
        );
        let up_failed = one(
            threshold("jury_score", Comparison::AtLeast, 75.0, Scale::Percent),
            &unit,
        )
        .await;
        assert!(!up_failed.passed);
        assert_eq!(
            up_failed.message,
            "jury_score 0.72 on 0-1 is 72 on 0-100; needs >= 75: failed"
        );

        let percent = Fake::default().metric("jury_score", 82.0, Scale::Percent);
        let down = one(
            threshold("jury_score", Comparison::AtLeast, 0.7, Scale::Unit),
            &percent,
        )
        .await;
        assert!(down.passed);
        assert_eq!(
            down.message,
            "jury_score 82 on 0-100 is 0.82 on 0-1; needs >= 0.7: passed"
        );
        let down_failed = one(
            threshold("jury_score", Comparison::Below, 0.8, Scale::Unit),
            &percent,
        )
        .await;
        assert!(!down_failed.passed);

        // 0.57 × 100 is 56.99999999999999 in floating point; the gate must still see 57.
        let noisy = Fake::default().metric("jury_score", 0.57, Scale::Unit);
        assert!(
            one(
                threshold("jury_score", Comparison::AtLeast, 57.0, Scale::Percent),
                &noisy
            )
            .await
            .passed
        );
        assert!(
            one(
                threshold("jury_score", Comparison::Equal, 57.0, Scale::Percent),
                &noisy
            )
            .await
            .passed
        );
    }

    #[tokio::test]
    async fn command_gates_pass_on_status_zero_and_quote_the_output() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "prd.md", "# PRD\n");
        let subject = Fake {
            workdir: Some(dir.path().to_path_buf()),
            ..Fake::default()
        };

        let passed = one(command("test -f prd.md && echo found it", 0), &subject).await;
        assert!(passed.passed, "{passed:?}");
        assert_eq!(passed.gate_type, "command");
        assert_eq!(passed.message, "`test -f prd.md && echo found it` exited with status 0; its output ended with:\nfound it");

        let failed = one(
            command("echo checking; echo broken >&2; exit 3", 10),
            &subject,
        )
        .await;
        assert!(!failed.passed);
        assert!(failed.message.starts_with("`echo checking; echo broken >&2; exit 3` exited with status 3; its output ended with:\n"), "{}", failed.message);
        assert!(
            failed.message.contains("checking") && failed.message.contains("broken"),
            "{}",
            failed.message
        );

        let quiet = one(command("false", 10), &subject).await;
        assert_eq!(
            quiet.message,
            "`false` exited with status 1, with no output"
        );

        let chatty = one(command("i=0; while [ $i -lt 500 ]; do echo line $i of the output; i=$((i+1)); done; exit 1", 10), &subject).await;
        let tail = chatty.message.split_once('\n').unwrap().1;
        assert!(
            tail.chars().count() <= OUTPUT_TAIL_CHARS,
            "{} characters",
            tail.chars().count()
        );
        assert!(
            tail.starts_with("line ") && tail.ends_with("line 499 of the output"),
            "the tail starts at a line: {tail:?}"
        );
    }

    #[tokio::test]
    async fn a_command_gate_that_runs_past_its_timeout_fails() {
        let dir = tempfile::tempdir().unwrap();
        let subject = Fake {
            workdir: Some(dir.path().to_path_buf()),
            ..Fake::default()
        };
        let started = Instant::now();
        let timed_out = one(command("echo waiting; sleep 5", 1), &subject).await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "killed at its timeout, took {:?}",
            started.elapsed()
        );
        assert!(!timed_out.passed);
        assert_eq!(timed_out.message, "`echo waiting; sleep 5` ran past its timeout of 1s and was killed; its output ended with:\nwaiting");
    }

    #[tokio::test]
    async fn a_command_gate_without_a_working_directory_fails_clearly() {
        let result = one(command("true", 0), &Fake::default()).await;
        assert!(!result.passed);
        assert_eq!(
            result.message,
            "`true` was not run: there is no working directory to run it in"
        );

        let gone = Fake {
            workdir: Some(PathBuf::from("/nonexistent/conclave-gates")),
            ..Fake::default()
        };
        let result = one(command("true", 0), &gone).await;
        assert!(!result.passed);
        assert!(
            result.message.contains("does not exist"),
            "{}",
            result.message
        );
    }

    #[tokio::test]
    async fn the_failure_message_leads_a_failed_result_only() {
        let subject = Fake::default().output("a.txt", "");
        let mut spec = gate("prd", true, file_exists("*.md"));
        spec.failure_message = "A PRD is required.".into();
        let mut plain = gate("plain", true, file_exists("*.md"));
        plain.failure_message = "Write the PRD".into();
        let mut fine = gate("fine", true, file_exists("*.txt"));
        fine.failure_message = "Never said.".into();
        let results = evaluate(&[spec, plain, fine], &subject).await.unwrap();
        assert_eq!(
            results[0].message,
            "A PRD is required. no output matches `*.md` (outputs: a.txt)"
        );
        assert_eq!(
            results[1].message,
            "Write the PRD: no output matches `*.md` (outputs: a.txt)"
        );
        assert_eq!(results[2].message, "`*.txt` matches a.txt");
    }

    #[tokio::test]
    async fn results_keep_the_order_and_the_verdict_needs_every_required_gate() {
        let subject = Fake::default().output("prd.md", "# Summary\n").metric(
            "jury_score",
            40.0,
            Scale::Percent,
        );
        let gates = [
            gate("exists", true, file_exists("*.md")),
            gate(
                "score",
                false,
                threshold("jury_score", Comparison::AtLeast, 70.0, Scale::Percent),
            ),
            gate("summary", true, sections("prd.md", &["Summary"])),
        ];
        let results = evaluate(&gates, &subject).await.unwrap();
        let ids: Vec<&str> = results.iter().map(|result| result.id.as_str()).collect();
        assert_eq!(ids, ["exists", "score", "summary"]);
        assert_eq!(
            verdict(&results),
            Verdict {
                passed: true,
                failed_required: vec![],
                failed_optional: vec!["score".into()]
            }
        );

        let mut strict = gates.clone();
        strict[1].required = true;
        strict[2] = gate("rollout", true, sections("prd.md", &["Rollout"]));
        let results = evaluate(&strict, &subject).await.unwrap();
        assert_eq!(
            verdict(&results),
            Verdict {
                passed: false,
                failed_required: vec!["score".into(), "rollout".into()],
                failed_optional: vec![]
            }
        );
        assert!(verdict(&[]).passed, "no gates, nothing failed");
    }

    #[tokio::test]
    async fn a_storage_error_from_the_subject_is_an_error() {
        let subject = Fake {
            broken: true,
            ..Fake::default()
        };
        for check in [
            file_exists("*.md"),
            sections("prd.md", &["Summary"]),
            artifact(Some(ArtifactKind::Url), None),
        ] {
            let err = evaluate(&[gate("g", true, check)], &subject)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
        }
    }

    #[test]
    fn validation_names_each_bad_field() {
        let good = [
            gate("prd.exists_1-a", true, file_exists("**/*.md")),
            gate("sections", true, sections("docs/prd.md", &["Summary"])),
            gate("url", false, artifact(Some(ArtifactKind::Url), None)),
            gate("label", false, artifact(None, Some("chromatic=yes"))),
            gate(
                "score",
                true,
                threshold("jury.score_2", Comparison::AtLeast, 100.0, Scale::Percent),
            ),
            gate(
                "unit",
                true,
                threshold("jury_score", Comparison::AtLeast, 0.0, Scale::Unit),
            ),
            gate(
                "tests",
                true,
                command("cargo test", MAX_COMMAND_TIMEOUT_SECONDS),
            ),
        ];
        validate_gates(&good).unwrap();
        validate_gates(&[]).unwrap();

        let bad = [
            gate("", true, file_exists("*.md")),
            gate("has space", true, file_exists("[unclosed")),
            gate(&"x".repeat(65), true, file_exists(" ")),
            gate("dup", true, sections("", &[])),
            gate("dup", true, sections("../secret.md", &["Summary", "  "])),
            gate("absolute", true, sections("/etc/passwd", &["Summary"])),
            gate("nothing", true, artifact(None, None)),
            gate("no-key", true, artifact(None, Some("=value"))),
            gate(
                "metric",
                true,
                threshold("Jury Score", Comparison::AtLeast, 0.7, Scale::Unit),
            ),
            gate(
                "nan",
                true,
                threshold("jury_score", Comparison::AtLeast, f64::NAN, Scale::Percent),
            ),
            gate(
                "negative",
                true,
                threshold("jury_score", Comparison::AtLeast, -1.0, Scale::Percent),
            ),
            gate("empty-command", true, command("  ", 0)),
            gate(
                "slow",
                true,
                command("sleep 1", MAX_COMMAND_TIMEOUT_SECONDS + 1),
            ),
        ];
        assert_eq!(
            fields(validate_gates(&bad)),
            [
                "gates[0].id",
                "gates[1].id",
                "gates[1].check.pattern",
                "gates[2].id",
                "gates[2].check.pattern",
                "gates[3].check.file",
                "gates[3].check.required_sections",
                "gates[4].id",
                "gates[4].check.file",
                "gates[4].check.required_sections[1]",
                "gates[5].check.file",
                "gates[6].check",
                "gates[7].check.label",
                "gates[8].check.metric",
                "gates[9].check.threshold",
                "gates[10].check.threshold",
                "gates[11].check.command",
                "gates[12].check.timeout_seconds",
            ]
        );
        match validate_gates(&[
            gate("a", true, file_exists("*")),
            gate("a", true, file_exists("*")),
        ]) {
            Err(Error::InvalidArgument(violations)) => assert!(
                violations[0].description.contains("gates[0]"),
                "{violations:?}"
            ),
            other => panic!("{other:?}"),
        }
        match validate_gates(&[gate(
            "a",
            true,
            threshold("jury_score", Comparison::AtLeast, 70.0, Scale::Unit),
        )]) {
            Err(Error::InvalidArgument(violations)) => assert_eq!(
                violations[0].description,
                "70 is outside the gate's scale 0-1: give a value from 0 to 1"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_directory_subject_lists_tracked_files_and_reads_inside_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("work");
        write(&root, ".gitignore", "target/\n*.log\n");
        write(&root, "target/debug/app", "binary");
        write(&root, "run.log", "log");
        write(&root, ".git/HEAD", "ref: refs/heads/main");
        write(&root, "docs/prd.md", "# Summary\n\n## Rollout\n");
        write(&root, "src/main.rs", "fn main() {}");
        write(dir.path(), "outside.md", "# Secret\n");
        std::os::unix::fs::symlink(dir.path().join("outside.md"), root.join("link.md")).unwrap();

        let subject = DirSubject::new(&root).with_metrics(BTreeMap::from([(
            "coverage".to_owned(),
            Metric {
                value: 0.9,
                scale: Scale::Unit,
            },
        )]));
        assert_eq!(subject.root(), root);
        assert_eq!(
            subject.output_names().await.unwrap(),
            [".gitignore", "docs/prd.md", "link.md", "src/main.rs"]
        );
        assert_eq!(
            subject.read_output("docs/prd.md").await.unwrap().as_deref(),
            Some("# Summary\n\n## Rollout\n")
        );
        assert_eq!(subject.read_output("missing.md").await.unwrap(), None);
        assert_eq!(
            subject.read_output("docs").await.unwrap(),
            None,
            "a directory is not an output"
        );
        assert_eq!(subject.read_output("../outside.md").await.unwrap(), None);
        assert_eq!(
            subject
                .read_output(&dir.path().join("outside.md").to_string_lossy())
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            subject.read_output("link.md").await.unwrap(),
            None,
            "a link out of the root is refused"
        );
        assert!(!subject
            .has_artifact(Some(ArtifactKind::File), None)
            .await
            .unwrap());
        assert_eq!(subject.workdir(), Some(root.as_path()));

        let gates = [
            gate("prd", true, file_exists("docs/*.md")),
            gate(
                "sections",
                true,
                sections("docs/prd.md", &["summary", "ROLLOUT"]),
            ),
            gate(
                "coverage",
                true,
                threshold("coverage", Comparison::AtLeast, 80.0, Scale::Percent),
            ),
            gate("built", true, command("test -f src/main.rs", 5)),
            gate("logs", false, file_exists("*.log")),
        ];
        let results = evaluate(&gates, &subject).await.unwrap();
        let passed: Vec<bool> = results.iter().map(|result| result.passed).collect();
        assert_eq!(passed, [true, true, true, true, false], "{results:#?}");
        assert_eq!(
            results[2].message,
            "coverage 0.9 on 0-1 is 90 on 0-100; needs >= 80: passed"
        );
        assert!(verdict(&results).passed);

        let missing = DirSubject::new(dir.path().join("missing"));
        assert!(matches!(
            missing.output_names().await,
            Err(Error::FailedPrecondition { .. })
        ));
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(number(72.0), "72");
        assert_eq!(number(72.00000000000001), "72");
        assert_eq!(number(0.82), "0.82");
        assert_eq!(number(-0.0000001), "0");
        assert_eq!(number(100.0), "100");
    }
}
