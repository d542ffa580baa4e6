//! The one mapping from the domain [`Error`] to a gRPC [`Status`]. Every status carries a
//! `google.rpc.ErrorInfo` with a stable reason (domain `conclave.dev`); invalid requests also
//! carry `google.rpc.BadRequest` with one violation per field.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;

/// The `ErrorInfo.domain` of every Conclave error.
pub const ERROR_DOMAIN: &str = "conclave.dev";

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        let (code, reason, metadata): (Code, &str, HashMap<String, String>) = match &err {
            Error::InvalidArgument(_) => (Code::InvalidArgument, "INVALID_ARGUMENT", HashMap::new()),
            Error::NotFound { resource, id } => (
                Code::NotFound,
                not_found_reason(resource),
                HashMap::from([("resource".to_owned(), (*resource).to_owned()), ("id".to_owned(), id.clone())]),
            ),
            Error::AlreadyExists { reason, .. } => (Code::AlreadyExists, reason, HashMap::new()),
            Error::FailedPrecondition { reason, .. } => (Code::FailedPrecondition, reason, HashMap::new()),
            Error::StaleLease { run_id, epoch } => (
                Code::Aborted,
                "STALE_LEASE",
                HashMap::from([("run_id".to_owned(), run_id.clone()), ("epoch".to_owned(), epoch.to_string())]),
            ),
            Error::ShuttingDown => (Code::Unavailable, "SHUTTING_DOWN", HashMap::new()),
            Error::Unavailable(_) => (Code::Unavailable, "STORAGE_UNAVAILABLE", HashMap::new()),
            Error::Internal(_) => (Code::Internal, "INTERNAL", HashMap::new()),
        };
        if code == Code::Internal {
            tracing::error!(error = %message, "internal error");
        }
        let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
        if let Error::InvalidArgument(violations) = &err {
            for violation in violations {
                details.add_bad_request_violation(&violation.field, &violation.description);
            }
        }
        Status::with_error_details(code, message, details)
    }
}

/// The domain error a server's status stands for, as a client of Conclave (a remote worker)
/// acts on it: a stale lease, a server or store that may come back, or a refusal.
pub fn error_from_status(status: &Status) -> Error {
    let info = status.get_error_details().error_info().cloned();
    let reason = info.as_ref().map(|info| info.reason.as_str());
    match (status.code(), reason) {
        (Code::Aborted, Some("STALE_LEASE")) => {
            let metadata = info.as_ref().map(|info| &info.metadata);
            let run_id = metadata.and_then(|m| m.get("run_id")).cloned().unwrap_or_default();
            let epoch = metadata.and_then(|m| m.get("epoch")).and_then(|epoch| epoch.parse().ok()).unwrap_or(0);
            Error::StaleLease { run_id, epoch }
        }
        (Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded | Code::ResourceExhausted, _) => {
            Error::Unavailable(format!("server: {}", status.message()))
        }
        (Code::NotFound, _) => Error::NotFound { resource: "resource", id: status.message().to_owned() },
        (Code::InvalidArgument, _) => Error::invalid("request", status.message()),
        (code, _) => Error::Internal(format!("server answered {code:?}: {}", status.message())),
    }
}

fn not_found_reason(resource: &str) -> &'static str {
    match resource {
        "run" => "RUN_NOT_FOUND",
        "workspace" => "WORKSPACE_NOT_FOUND",
        "worker" => "WORKER_NOT_FOUND",
        _ => "NOT_FOUND",
    }
}
