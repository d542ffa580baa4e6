//! Why a model call failed, as a closed set of classes. The adapters classify (each knows its
//! provider's status codes, error bodies and exit statuses); the router and everything above
//! decide on the class alone, never on a message's text.

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

/// The class of a failed model call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Too many requests (HTTP 429, a CLI's "limit reached"); `retry_after` says when to return.
    RateLimited,
    /// The provider is overloaded or unavailable (HTTP 503, 529).
    Overloaded,
    /// The provider answered with a server error (HTTP 500, 502, 504).
    ServerError,
    /// The account's spending limit or quota is exhausted; retrying will not help.
    SpendLimit,
    /// The credentials are missing, wrong or not allowed (HTTP 401, 403).
    Authentication,
    /// The prompt and the requested output do not fit the model's context window.
    ContextTooLong,
    /// The provider refused the content.
    ContentPolicy,
    /// The provider rejected the request as malformed (HTTP 400 otherwise unclassified, 404
    /// for an unknown model); retrying the same request will not help.
    InvalidRequest,
    /// The call took longer than its timeout.
    Timeout,
    /// The connection failed or broke (refused, reset, a stream cut short).
    Transport,
    /// The provider answered something that is not its documented wire format.
    MalformedResponse,
    /// The program of a `cli` provider is not installed or not executable.
    ProgramMissing,
    /// The program of a `cli` provider exited with a failure status not otherwise classified.
    ProgramFailed,
}

impl FailureClass {
    /// Every class, in declaration order.
    pub const ALL: [FailureClass; 13] = [
        Self::RateLimited,
        Self::Overloaded,
        Self::ServerError,
        Self::SpendLimit,
        Self::Authentication,
        Self::ContextTooLong,
        Self::ContentPolicy,
        Self::InvalidRequest,
        Self::Timeout,
        Self::Transport,
        Self::MalformedResponse,
        Self::ProgramMissing,
        Self::ProgramFailed,
    ];

    /// The stable name of the class (`rate_limited`), as journaled and reported.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::ServerError => "server_error",
            Self::SpendLimit => "spend_limit",
            Self::Authentication => "authentication",
            Self::ContextTooLong => "context_too_long",
            Self::ContentPolicy => "content_policy",
            Self::InvalidRequest => "invalid_request",
            Self::Timeout => "timeout",
            Self::Transport => "transport",
            Self::MalformedResponse => "malformed_response",
            Self::ProgramMissing => "program_missing",
            Self::ProgramFailed => "program_failed",
        }
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.as_str() == name)
    }

    /// Whether the same call may succeed later on the same provider.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::RateLimited | Self::Overloaded | Self::ServerError | Self::Timeout | Self::Transport | Self::MalformedResponse)
    }

    /// Whether another provider of the chain may succeed where this one failed. A spend limit,
    /// bad credentials or a missing program are the provider's own trouble, so the chain moves
    /// on; a prompt too long, refused content or a malformed request would fail anywhere.
    pub fn may_fail_over(self) -> bool {
        !matches!(self, Self::ContextTooLong | Self::ContentPolicy | Self::InvalidRequest)
    }

    /// Whether the failure counts against the provider's circuit breaker.
    pub fn trips_circuit(self) -> bool {
        !matches!(self, Self::ContextTooLong | Self::ContentPolicy | Self::InvalidRequest)
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed model call: its class, what the provider said, and when it may be tried again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{class}: {message}")]
pub struct CallFailure {
    /// The class of failure.
    pub class: FailureClass,
    /// What went wrong, for people; never contains credentials.
    pub message: String,
    /// How long the provider asked to wait (`Retry-After`), if it did.
    #[serde(default, with = "optional_millis")]
    pub retry_after: Option<Duration>,
    /// The HTTP status or exit code the provider answered with, if any.
    #[serde(default)]
    pub status: Option<i32>,
}

impl CallFailure {
    /// A failure of a class with a message.
    pub fn new(class: FailureClass, message: impl Into<String>) -> Self {
        Self { class, message: message.into(), retry_after: None, status: None }
    }

    /// The same failure with the provider's `Retry-After`.
    pub fn retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// The same failure with the HTTP status or exit code.
    pub fn status(mut self, status: i32) -> Self {
        self.status = Some(status);
        self
    }
}

mod optional_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_some(&(duration.as_millis() as u64)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip() {
        for class in FailureClass::ALL {
            assert_eq!(FailureClass::parse(class.as_str()), Some(class));
        }
        assert_eq!(FailureClass::parse("nonsense"), None);
    }
}
