//! What a task is asked: the project, the participants, the mode, the sandbox, the rounds and
//! the checks, validated field by field. The spec is the task run's input.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    domain::{GateSpec, Timestamp},
    error::{Error, FieldViolation, Result},
    models::chain_entry_problem,
};

/// The most rounds a task may have.
pub const MAX_ROUNDS: u32 = 20;
/// The most reviewers (and, apart, fallbacks) a task may have.
pub const MAX_PARTICIPANTS: usize = 8;
/// The longest title, in characters.
const MAX_TITLE: usize = 200;
/// The largest description, in bytes.
const MAX_DESCRIPTION_BYTES: usize = 64 << 10;
/// The longest command, in bytes.
const MAX_COMMAND_BYTES: usize = 4096;
/// The longest any timeout may be, in seconds (a week).
const MAX_TIMEOUT_SECONDS: u32 = 7 * 24 * 3600;

/// An agent of a task: `provider#alias`, with the model and the parameters it is asked with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

/// Whether the task stops for the author's decision after the proposal review.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Manual,
    Autonomous,
}

/// How far beyond the task the author may go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evolution {
    #[default]
    FixOnly,
    Guided,
    Proactive,
}

impl Evolution {
    /// What the author is told about it.
    pub fn guidance(self) -> &'static str {
        match self {
            Self::FixOnly => "Fix what the task asks and nothing more.",
            Self::Guided => "Fix what the task asks; small improvements right next to it are welcome.",
            Self::Proactive => "Fix what the task asks, and improve the code around it where you see how.",
        }
    }
}

/// Time limits, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// Each agent turn.
    pub agent_seconds: u32,
    /// The test command and the lint command, each.
    pub command_seconds: u32,
    /// The whole task (the watchdog's limit).
    pub task_seconds: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { agent_seconds: 600, command_seconds: 600, task_seconds: 6 * 3600 }
    }
}

/// A task, as its run's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub project_dir: PathBuf,
    pub author: Participant,
    pub reviewers: Vec<Participant>,
    #[serde(default)]
    pub fallbacks: Vec<Participant>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub sandbox: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_path: Option<PathBuf>,
    #[serde(default)]
    pub auto_merge: bool,
    #[serde(default)]
    pub evolution: Evolution,
    pub max_rounds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evolve_until: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lint_command: Option<String>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Start without waiting for `StartTask`.
    #[serde(default)]
    pub auto_start: bool,
    /// Gates checked after the verify commands, over the files of the working directory
    /// (the shared engine of `workflows::gates`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateSpec>,
}

impl TaskSpec {
    /// The spec stored as a run's input.
    pub fn from_input(input: &Map<String, Value>) -> Result<Self> {
        serde_json::from_value(Value::Object(input.clone())).map_err(|err| Error::invalid("input", format!("is not a task: {err}")))
    }

    /// Checks every field, reporting each bad one, and fills in the defaults.
    pub fn validated(mut self) -> Result<Self> {
        let mut violations = Vec::new();
        let mut violation = |field: &str, description: String| violations.push(FieldViolation { field: field.to_owned(), description });
        if self.title.trim().is_empty() || self.title.chars().count() > MAX_TITLE || self.title.chars().any(char::is_control) {
            violation("title", format!("must be 1 to {MAX_TITLE} characters without control characters"));
        }
        if self.description.len() > MAX_DESCRIPTION_BYTES {
            violation("description", format!("is {} bytes; at most {MAX_DESCRIPTION_BYTES}", self.description.len()));
        }
        if let Some(problem) = directory_problem(&self.project_dir) {
            violation("project_dir", problem);
        }
        check_participant("author", &self.author, &mut violation);
        if self.reviewers.is_empty() || self.reviewers.len() > MAX_PARTICIPANTS {
            violation("reviewers", format!("must name 1 to {MAX_PARTICIPANTS} reviewers"));
        }
        for (index, reviewer) in self.reviewers.iter().enumerate() {
            check_participant(&format!("reviewers[{index}]"), reviewer, &mut violation);
        }
        let mut ids: Vec<&str> = self.reviewers.iter().map(|reviewer| reviewer.id.as_str()).chain([self.author.id.as_str()]).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|pair| pair[0] == pair[1]) {
            violation("reviewers", "each participant must have an id of its own (`provider#alias` tells sessions on one provider apart)".into());
        }
        if self.fallbacks.len() > MAX_PARTICIPANTS {
            violation("fallbacks", format!("at most {MAX_PARTICIPANTS}"));
        }
        for (index, fallback) in self.fallbacks.iter().enumerate() {
            check_participant(&format!("fallbacks[{index}]"), fallback, &mut violation);
        }
        if let Some(path) = &self.sandbox_path {
            if !self.sandbox {
                violation("sandbox_path", "is set, but the sandbox is off; turn it on or leave the path empty".into());
            } else if !path.is_absolute() {
                violation("sandbox_path", format!("must be an absolute path, not {}", path.display()));
            } else if path.starts_with(&self.project_dir) {
                violation("sandbox_path", "must be outside the project (a copy inside would copy itself)".into());
            }
        }
        if self.auto_merge && !self.sandbox {
            violation("auto_merge", "needs the sandbox: without one the task works in the project already".into());
        }
        if self.max_rounds == 0 {
            self.max_rounds = 3;
        }
        if self.max_rounds > MAX_ROUNDS {
            violation("max_rounds", format!("is {}; at most {MAX_ROUNDS}", self.max_rounds));
        }
        for (field, command) in [("test_command", &mut self.test_command), ("lint_command", &mut self.lint_command)] {
            if command.as_deref().is_some_and(|text| text.trim().is_empty()) {
                *command = None;
            }
            if command.as_deref().is_some_and(|text| text.len() > MAX_COMMAND_BYTES || text.contains('\0')) {
                violation(field, format!("must be at most {MAX_COMMAND_BYTES} bytes without NUL characters"));
            }
        }
        if let Err(Error::InvalidArgument(found)) = crate::workflows::gates::validate_gates(&self.gates) {
            for found in found {
                violation(&found.field, found.description);
            }
        }
        let defaults = Timeouts::default();
        for (field, value, default) in [
            ("timeouts.agent_seconds", &mut self.timeouts.agent_seconds, defaults.agent_seconds),
            ("timeouts.command_seconds", &mut self.timeouts.command_seconds, defaults.command_seconds),
            ("timeouts.task_seconds", &mut self.timeouts.task_seconds, defaults.task_seconds),
        ] {
            if *value == 0 {
                *value = default;
            }
            if *value > MAX_TIMEOUT_SECONDS {
                violation(field, format!("is {value} s; at most {MAX_TIMEOUT_SECONDS} (a week)"));
            }
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        Ok(self)
    }

    /// The providers a participant's calls try, in order: itself, then the fallbacks.
    pub fn chain_of(&self, participant: &Participant) -> Vec<String> {
        let mut chain = vec![participant.id.clone()];
        chain.extend(self.fallbacks.iter().map(|fallback| fallback.id.clone()).filter(|id| *id != participant.id));
        chain
    }
}

/// What is wrong with the project directory, if anything.
fn directory_problem(dir: &Path) -> Option<String> {
    if dir.as_os_str().is_empty() {
        return Some("is required: the project's directory on the server's machine".into());
    }
    if !dir.is_absolute() {
        return Some(format!("must be an absolute path, not {}", dir.display()));
    }
    (!dir.is_dir()).then(|| format!("{} is not a directory on the server's machine", dir.display()))
}

fn check_participant(field: &str, participant: &Participant, violation: &mut impl FnMut(&str, String)) {
    if participant.id.is_empty() {
        violation(&format!("{field}.id"), "is required: `provider#alias`, e.g. `claude#author-A`".into());
    } else if let Some(problem) = chain_entry_problem(&participant.id) {
        violation(&format!("{field}.id"), problem);
    }
    if participant.temperature.is_some_and(|temperature| !(0.0..=2.0).contains(&temperature)) {
        violation(&format!("{field}.temperature"), "must be between 0 and 2".into());
    }
    if participant.model.as_deref().is_some_and(|model| model.is_empty() || model.len() > 200) {
        violation(&format!("{field}.model"), "must be 1 to 200 characters, or unset".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn participant(id: &str) -> Participant {
        Participant { id: id.into(), model: None, temperature: None, max_tokens: None }
    }

    fn spec(dir: &Path) -> TaskSpec {
        TaskSpec {
            title: "Fix the parser".into(),
            description: String::new(),
            project_dir: dir.to_path_buf(),
            author: participant("cli#author"),
            reviewers: vec![participant("mock#review-a")],
            fallbacks: Vec::new(),
            mode: Mode::Autonomous,
            sandbox: false,
            sandbox_path: None,
            auto_merge: false,
            evolution: Evolution::FixOnly,
            max_rounds: 0,
            evolve_until: None,
            test_command: Some("  ".into()),
            lint_command: None,
            timeouts: Timeouts { agent_seconds: 0, command_seconds: 5, task_seconds: 0 },
            auto_start: true,
            gates: Vec::new(),
        }
    }

    #[test]
    fn defaults_are_filled_in() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path()).validated().unwrap();
        assert_eq!(spec.max_rounds, 3);
        assert_eq!(spec.test_command, None, "a blank command is no command");
        assert_eq!(spec.timeouts, Timeouts { agent_seconds: 600, command_seconds: 5, task_seconds: 6 * 3600 });
        assert_eq!(spec.chain_of(&spec.author), ["cli#author"]);
    }

    #[test]
    fn every_bad_field_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut bad = spec(dir.path());
        bad.title = String::new();
        bad.project_dir = PathBuf::from("relative/dir");
        bad.author = participant("Not A Provider");
        bad.reviewers = vec![participant("mock#a"), participant("mock#a")];
        bad.auto_merge = true;
        bad.max_rounds = 21;
        bad.timeouts.command_seconds = MAX_TIMEOUT_SECONDS + 1;
        let Err(Error::InvalidArgument(violations)) = bad.validated() else { panic!("refused") };
        let fields: Vec<&str> = violations.iter().map(|violation| violation.field.as_str()).collect();
        assert_eq!(fields, ["title", "project_dir", "author.id", "reviewers", "auto_merge", "max_rounds", "timeouts.command_seconds"]);
    }

    #[test]
    fn a_sandbox_path_must_be_outside_the_project() {
        let dir = tempfile::tempdir().unwrap();
        let mut inside = spec(dir.path());
        inside.sandbox = true;
        inside.sandbox_path = Some(dir.path().join("lab"));
        let Err(Error::InvalidArgument(violations)) = inside.validated() else { panic!("refused") };
        assert_eq!(violations[0].field, "sandbox_path");
    }
}
