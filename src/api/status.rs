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

fn not_found_reason(resource: &str) -> &'static str {
    match resource {
        "run" => "RUN_NOT_FOUND",
        "workspace" => "WORKSPACE_NOT_FOUND",
        _ => "NOT_FOUND",
    }
}
