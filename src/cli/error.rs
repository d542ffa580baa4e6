//! What went wrong, and the exit code that says so.

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The exit codes of the client commands (see the module documentation).
pub mod exit {
    /// The request succeeded and so did what it watched.
    pub const SUCCESS: u8 = 0;
    /// The operation failed: a watched run, task or mission ended failed or cancelled.
    pub const FAILED: u8 = 1;
    /// Bad usage, or `INVALID_ARGUMENT`.
    pub const USAGE: u8 = 2;
    /// `NOT_FOUND`.
    pub const NOT_FOUND: u8 = 3;
    /// `FAILED_PRECONDITION`, `ABORTED` or `ALREADY_EXISTS`.
    pub const CONFLICT: u8 = 4;
    /// The server is unavailable or cannot be reached.
    pub const UNAVAILABLE: u8 = 5;
    /// Anything else.
    pub const OTHER: u8 = 6;
}

/// An error of a client command: its message, the exit code, and what the server said.
#[derive(Debug, Clone)]
pub struct CliError {
    /// The process's exit code.
    pub exit: u8,
    /// What went wrong, for people.
    pub message: String,
    /// The gRPC code, when the server (or the transport) answered.
    pub code: Option<Code>,
    /// The `ErrorInfo` reason, if the status carried one.
    pub reason: Option<String>,
    /// The `ErrorInfo` metadata, sorted by key.
    pub metadata: Vec<(String, String)>,
    /// The `BadRequest` field violations: field and description.
    pub violations: Vec<(String, String)>,
}

impl CliError {
    fn local(exit: u8, message: impl Into<String>) -> Self {
        Self { exit, message: message.into(), code: None, reason: None, metadata: Vec::new(), violations: Vec::new() }
    }

    /// Bad usage: a flag, a JSON argument or a file the command cannot use (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::local(exit::USAGE, message)
    }

    /// The server cannot be reached (exit 5).
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::local(exit::UNAVAILABLE, message)
    }

    /// Anything else that went wrong on this side (exit 6).
    pub fn other(message: impl Into<String>) -> Self {
        Self::local(exit::OTHER, message)
    }

    /// Prints the error on stderr: as text, or as one JSON object.
    pub fn print(&self, json: bool) {
        if json {
            let object = serde_json::json!({
                "error": {
                    "exitCode": self.exit,
                    "code": self.code.map(code_name),
                    "reason": self.reason,
                    "message": self.message,
                    "metadata": self.metadata.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect::<serde_json::Map<String, serde_json::Value>>(),
                    "fieldViolations": self.violations.iter()
                        .map(|(field, description)| serde_json::json!({"field": field, "description": description}))
                        .collect::<Vec<_>>(),
                }
            });
            eprintln!("{object}");
            return;
        }
        eprintln!("conclave: {}", self.message);
        if let Some(code) = self.code {
            match &self.reason {
                Some(reason) => eprintln!("  status: {} (reason {reason})", code_name(code)),
                None => eprintln!("  status: {}", code_name(code)),
            }
        }
        if !self.metadata.is_empty() {
            let pairs: Vec<String> = self.metadata.iter().map(|(key, value)| format!("{key}={value}")).collect();
            eprintln!("  metadata: {}", pairs.join(", "));
        }
        for (field, description) in &self.violations {
            eprintln!("  field {field}: {description}");
        }
    }
}

impl From<Status> for CliError {
    fn from(status: Status) -> Self {
        let details = status.get_error_details();
        let info = details.error_info();
        let mut metadata: Vec<(String, String)> =
            info.map(|info| info.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        metadata.sort();
        let violations = details
            .bad_request()
            .map(|bad| bad.field_violations.iter().map(|v| (v.field.clone(), v.description.clone())).collect())
            .unwrap_or_default();
        let message = if status.message().is_empty() { code_name(status.code()).to_owned() } else { status.message().to_owned() };
        Self {
            exit: exit_code(status.code()),
            message,
            code: Some(status.code()),
            reason: info.map(|info| info.reason.clone()),
            metadata,
            violations,
        }
    }
}

/// The exit code of a gRPC status code.
pub fn exit_code(code: Code) -> u8 {
    match code {
        Code::Ok => exit::SUCCESS,
        Code::InvalidArgument | Code::OutOfRange => exit::USAGE,
        Code::NotFound => exit::NOT_FOUND,
        Code::FailedPrecondition | Code::Aborted | Code::AlreadyExists => exit::CONFLICT,
        Code::Unavailable => exit::UNAVAILABLE,
        _ => exit::OTHER,
    }
}

/// The canonical name of a gRPC code (`NOT_FOUND`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Whether a status may come from a broken connection or a server going away rather than from
/// the server's answer: worth reconnecting and resuming a stream. `UNAVAILABLE` always is (a
/// server shutting down says so); an error without Conclave's `ErrorInfo` of the codes the
/// transport produces is too.
pub fn is_transient(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Cancelled | Code::Internal | Code::DeadlineExceeded => {
            status.get_error_details().error_info().is_none()
        }
        _ => false,
    }
}

/// An error and its causes, one after the other.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
