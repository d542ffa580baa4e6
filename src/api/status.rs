//! The one mapping from the domain [`Error`] to a gRPC [`Status`]. Every status carries a
//! `google.rpc.ErrorInfo` with a stable reason (domain `conclave.dev`); invalid requests also
//! carry `google.rpc.BadRequest` with one violation per field.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{error::Error, models::FailureClass};

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
            Error::Aborted { reason, .. } => (Code::Aborted, reason, HashMap::new()),
            Error::DataLoss(_) => (Code::DataLoss, "DATA_LOSS", HashMap::new()),
            Error::ShuttingDown => (Code::Unavailable, "SHUTTING_DOWN", HashMap::new()),
            Error::Unavailable(_) => (Code::Unavailable, "STORAGE_UNAVAILABLE", HashMap::new()),
            Error::Upstream { service, .. } => (Code::Unavailable, "UPSTREAM_UNAVAILABLE", HashMap::from([("service".to_owned(), (*service).to_owned())])),
            Error::Internal(_) => (Code::Internal, "INTERNAL", HashMap::new()),
            Error::ModelCall { class, provider, retry_after, .. } => {
                let mut metadata = HashMap::new();
                if let Some(provider) = provider {
                    metadata.insert("provider".to_owned(), provider.clone());
                }
                if let Some(wait) = retry_after {
                    metadata.insert("retry_after_ms".to_owned(), wait.as_millis().to_string());
                }
                (model_failure_code(*class), model_failure_reason(*class), metadata)
            }
        };
        if matches!(code, Code::Internal | Code::DataLoss) {
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

/// The gRPC code of a failed model call: what the caller should do about it.
fn model_failure_code(class: FailureClass) -> Code {
    match class {
        FailureClass::RateLimited | FailureClass::SpendLimit => Code::ResourceExhausted,
        FailureClass::Timeout => Code::DeadlineExceeded,
        FailureClass::ContextTooLong | FailureClass::ContentPolicy | FailureClass::InvalidRequest => Code::InvalidArgument,
        // The server's credentials or programs are wrong: the caller cannot fix it by retrying.
        FailureClass::Authentication | FailureClass::ProgramMissing => Code::FailedPrecondition,
        FailureClass::Overloaded
        | FailureClass::ServerError
        | FailureClass::Transport
        | FailureClass::MalformedResponse
        | FailureClass::ProgramFailed => Code::Unavailable,
    }
}

/// The stable `ErrorInfo.reason` of a failed model call: its class in capitals.
fn model_failure_reason(class: FailureClass) -> &'static str {
    match class {
        FailureClass::RateLimited => "RATE_LIMITED",
        FailureClass::Overloaded => "OVERLOADED",
        FailureClass::ServerError => "SERVER_ERROR",
        FailureClass::SpendLimit => "SPEND_LIMIT",
        FailureClass::Authentication => "AUTHENTICATION",
        FailureClass::ContextTooLong => "CONTEXT_TOO_LONG",
        FailureClass::ContentPolicy => "CONTENT_POLICY",
        FailureClass::InvalidRequest => "INVALID_REQUEST",
        FailureClass::Timeout => "TIMEOUT",
        FailureClass::Transport => "TRANSPORT",
        FailureClass::MalformedResponse => "MALFORMED_RESPONSE",
        FailureClass::ProgramMissing => "PROGRAM_MISSING",
        FailureClass::ProgramFailed => "PROGRAM_FAILED",
    }
}

/// The model failure a status stands for, if it is one (a remote worker's call through
/// `ModelService`).
pub fn model_failure_from_status(status: &Status) -> Option<Error> {
    let info = status.get_error_details().error_info().cloned()?;
    let class = FailureClass::ALL.into_iter().find(|class| model_failure_reason(*class) == info.reason)?;
    Some(Error::ModelCall {
        class,
        provider: info.metadata.get("provider").cloned(),
        message: status.message().to_owned(),
        retry_after: info.metadata.get("retry_after_ms").and_then(|ms| ms.parse().ok()).map(std::time::Duration::from_millis),
    })
}

fn not_found_reason(resource: &str) -> &'static str {
    match resource {
        "run" => "RUN_NOT_FOUND",
        "workspace" => "WORKSPACE_NOT_FOUND",
        "worker" => "WORKER_NOT_FOUND",
        _ => "NOT_FOUND",
    }
}
