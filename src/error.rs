//! The one domain error type. Every fallible operation below `api/` returns [`Error`];
//! `api/status.rs` maps it to a gRPC status in one place.

use std::{fmt, time::Duration};

use crate::models::{FailureClass, RouteFailure};

/// A result with the domain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A field of a request that was rejected, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's name, as in the API (`input`, `labels`, `page_token`).
    pub field: String,
    /// What is wrong and how to fix it, as a sentence a person can act on.
    pub description: String,
}

/// Why an operation could not be carried out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request is malformed; each violation names the field and what to fix.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),

    /// A resource the request names does not exist.
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },

    /// A resource with the same identity exists and differs from the request.
    #[error("{message}")]
    AlreadyExists { reason: &'static str, message: String },

    /// The resource is not in a state that allows the operation.
    #[error("{message}")]
    FailedPrecondition { reason: &'static str, message: String },

    /// A write carried a lease epoch that is no longer current: another worker owns the run.
    #[error("stale lease on run {run_id}: epoch {epoch} is no longer current")]
    StaleLease { run_id: String, epoch: u64 },

    /// A conditional write lost a race: what it was conditioned on changed (a stale etag).
    /// Read again and retry.
    #[error("{message}")]
    Aborted { reason: &'static str, message: String },

    /// Stored data is corrupt: content whose digest does not match the one recorded.
    #[error("data loss: {0}")]
    DataLoss(String),

    /// The server is shutting down and takes no new work on this path.
    #[error("the server is shutting down")]
    ShuttingDown,

    /// The store could not be reached or failed; the operation may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),

    /// A service Conclave depends on (a skills registry) could not be reached or failed; the
    /// operation may be retried.
    #[error("{message}")]
    Upstream { service: &'static str, message: String },

    /// A bug or an inconsistency inside Conclave.
    #[error("internal error: {0}")]
    Internal(String),

    /// A model call got no answer after the router's retries and fallbacks.
    #[error("model call failed ({class}): {message}")]
    ModelCall {
        /// The class of the failure that ended the call.
        class: FailureClass,
        /// The provider that failed last, if one was called.
        provider: Option<String>,
        /// What went wrong.
        message: String,
        /// How long the provider (or the cooling chain) asked to wait.
        retry_after: Option<Duration>,
    },
}

impl From<RouteFailure> for Error {
    fn from(failure: RouteFailure) -> Self {
        Self::ModelCall {
            class: failure.failure.class,
            provider: failure.provider,
            message: failure.failure.message,
            retry_after: failure.failure.retry_after,
        }
    }
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// A single-field `InvalidArgument`.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    /// A `NotFound` for the resource type and id.
    pub fn not_found(resource: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound {
            resource,
            id: id.to_string(),
        }
    }

    /// A `FailedPrecondition` with a stable reason.
    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err.to_string()),
            other => Self::Internal(format!("database: {other}")),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Self::Internal(format!("migration: {err}"))
    }
}
