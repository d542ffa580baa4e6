//! The operations behind `DebateService`: a debate is a run of kind `debate`, so creating,
//! reading, listing, cancelling and watching one are the run's operations, with the spec read
//! from the run's input and the result from its output.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio::sync::mpsc;

use super::{aggregate::Outcome, spec::DebateSpec, Report};
use crate::{
    domain::{Page, Run, RunEvent, RunId, RunState},
    engine::{CreateRunRequest, Delivery, Engine, ListRunsRequest},
    error::{Error, Result},
};

/// The kind of a debate's run.
pub const KIND: &str = "debate";

/// A request to start a debate, as received.
#[derive(Debug, Clone)]
pub struct CreateDebateRequest {
    pub workspace: String,
    pub spec: DebateSpec,
    pub request_id: String,
    pub labels: BTreeMap<String, String>,
}

/// A debate: its run, what it was asked, and its result once finished.
#[derive(Debug, Clone)]
pub struct DebateView {
    /// The run.
    pub run: Run,
    /// What it was asked, with the defaults filled in.
    pub spec: DebateSpec,
    /// The result, once the run has succeeded.
    pub report: Option<Report>,
    /// The id of the report artifact.
    pub report_artifact: Option<String>,
}

impl DebateView {
    fn of(run: Run) -> Result<Self> {
        if run.kind != KIND {
            return Err(Error::not_found("debate", run.id));
        }
        let spec = DebateSpec::from_input(&run.input)
            .map_err(|err| Error::Internal(format!("debate {} has an input that is not a debate: {err}", run.id)))?;
        let (report, report_artifact) = match (&run.output, run.state) {
            (Some(output), RunState::Succeeded) => {
                let report = serde_json::from_value::<Report>(output.clone())
                    .map_err(|err| Error::Internal(format!("debate {} has an output that is not a report: {err}", run.id)))?;
                (Some(report), output.get("report_artifact").and_then(Value::as_str).map(str::to_owned))
            }
            _ => (None, None),
        };
        Ok(Self { run, spec, report, report_artifact })
    }
}

/// Debates over an engine.
#[derive(Debug, Clone)]
pub struct Debates {
    engine: Engine,
}

impl Debates {
    /// Debates run by this engine.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    /// Validates and starts a debate.
    pub async fn create(&self, request: CreateDebateRequest) -> Result<DebateView> {
        let spec = request.spec.validated()?;
        let Value::Object(input) = serde_json::to_value(&spec).map_err(|err| Error::Internal(format!("a debate spec cannot be stored: {err}")))? else {
            return Err(Error::Internal("a debate spec is not a JSON object".into()));
        };
        let run = self
            .engine
            .create_run(CreateRunRequest {
                workspace: request.workspace,
                kind: KIND.to_owned(),
                input,
                labels: request.labels,
                request_id: request.request_id,
                ..CreateRunRequest::default()
            })
            .await?;
        DebateView::of(run)
    }

    /// One debate.
    pub async fn get(&self, id: RunId) -> Result<DebateView> {
        DebateView::of(self.engine.get_run(id).await?)
    }

    /// Debates of a workspace, newest first, perhaps only those with one outcome.
    pub async fn list(&self, workspace: String, outcome: Option<Outcome>, page_size: i32, page_token: String) -> Result<Page<DebateView>> {
        let page = self
            .engine
            .list_runs(ListRunsRequest {
                workspace,
                kind: KIND.to_owned(),
                output_field: outcome.map(|outcome| ("outcome".to_owned(), outcome.as_str().to_owned())),
                page_size,
                page_token,
                ..ListRunsRequest::default()
            })
            .await?;
        let items = page.items.into_iter().map(DebateView::of).collect::<Result<Vec<_>>>()?;
        Ok(Page { items, next_page_token: page.next_page_token })
    }

    /// Cancels a debate.
    pub async fn cancel(&self, id: RunId, reason: &str) -> Result<DebateView> {
        self.get(id).await?;
        DebateView::of(self.engine.cancel_run(id, reason, false).await?)
    }

    /// The debate's events after `after`, then live ones, until it finishes.
    pub async fn watch(&self, id: RunId, after: u64) -> Result<mpsc::Receiver<Result<Delivery<RunEvent>>>> {
        self.get(id).await?;
        self.engine.watch_run(id, after).await
    }
}
