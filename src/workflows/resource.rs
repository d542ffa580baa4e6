//! Workflows whose runs are resources of their own (a debate, a mission): the resource's spec
//! is its run's input and its report the run's output, so creating, reading, listing,
//! cancelling and watching one are its run's operations. One implementation serves every such
//! service.

use std::{collections::BTreeMap, marker::PhantomData};

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::{
    domain::{Page, Run, RunEvent, RunId, RunState},
    engine::{CreateRunRequest, Delivery, Engine, ListRunsRequest},
    error::{Error, Result},
};

/// A kind whose runs are resources.
pub trait RunResource: Send + Sync + 'static {
    /// The run kind.
    const KIND: &'static str;
    /// What errors call it (`debate`).
    const NOUN: &'static str;
    /// What it is asked.
    type Spec: Serialize + Clone + Send + Sync;
    /// What it reports once finished.
    type Report: DeserializeOwned + Clone + Send + Sync;

    /// Reads and validates a spec from a run's input, filling in the defaults.
    fn spec_from_input(input: &Map<String, Value>) -> Result<Self::Spec>;

    /// Validates a spec given in a request, filling in the defaults.
    fn validated(spec: Self::Spec) -> Result<Self::Spec>;
}

/// A resource: its run, what it was asked, and its report once the run has succeeded.
#[derive(Debug, Clone)]
pub struct View<R: RunResource> {
    pub run: Run,
    pub spec: R::Spec,
    pub report: Option<R::Report>,
}

impl<R: RunResource> View<R> {
    /// The resource a run is, if it is one of this kind.
    pub fn of(run: Run) -> Result<Self> {
        if run.kind != R::KIND {
            return Err(Error::not_found(R::NOUN, run.id));
        }
        let spec = R::spec_from_input(&run.input)
            .map_err(|err| Error::Internal(format!("{} {} has an input that is not one: {err}", R::NOUN, run.id)))?;
        let report = match (&run.output, run.state) {
            (Some(output), RunState::Succeeded) => Some(
                serde_json::from_value::<R::Report>(output.clone())
                    .map_err(|err| Error::Internal(format!("{} {} has an output that is not its report: {err}", R::NOUN, run.id)))?,
            ),
            _ => None,
        };
        Ok(Self { run, spec, report })
    }
}

/// A request to start a resource, as received.
#[derive(Debug, Clone)]
pub struct CreateRequest<S> {
    pub workspace: String,
    pub spec: S,
    pub request_id: String,
    pub labels: BTreeMap<String, String>,
}

/// The resources of one kind, over an engine.
#[derive(Debug)]
pub struct Resources<R> {
    engine: Engine,
    kind: PhantomData<fn() -> R>,
}

impl<R> Clone for Resources<R> {
    fn clone(&self) -> Self {
        Self { engine: self.engine.clone(), kind: PhantomData }
    }
}

impl<R: RunResource> Resources<R> {
    /// The resources this engine runs.
    pub fn new(engine: Engine) -> Self {
        Self { engine, kind: PhantomData }
    }

    /// Validates and starts one.
    pub async fn create(&self, request: CreateRequest<R::Spec>) -> Result<View<R>> {
        let spec = R::validated(request.spec)?;
        let Value::Object(input) = serde_json::to_value(&spec).map_err(|err| Error::Internal(format!("a {} cannot be stored: {err}", R::NOUN)))? else {
            return Err(Error::Internal(format!("a {} spec is not a JSON object", R::NOUN)));
        };
        let run = self
            .engine
            .create_run(CreateRunRequest {
                workspace: request.workspace,
                kind: R::KIND.to_owned(),
                input,
                labels: request.labels,
                request_id: request.request_id,
                ..CreateRunRequest::default()
            })
            .await?;
        View::of(run)
    }

    /// One of them.
    pub async fn get(&self, id: RunId) -> Result<View<R>> {
        View::of(self.engine.get_run(id).await?)
    }

    /// Those of a workspace, newest first, perhaps only those whose report has this `outcome`.
    pub async fn list(&self, workspace: String, outcome: Option<&str>, page_size: i32, page_token: String) -> Result<Page<View<R>>> {
        let page = self
            .engine
            .list_runs(ListRunsRequest {
                workspace,
                kind: R::KIND.to_owned(),
                output_field: outcome.map(|outcome| ("outcome".to_owned(), outcome.to_owned())),
                page_size,
                page_token,
                ..ListRunsRequest::default()
            })
            .await?;
        let items = page.items.into_iter().map(View::of).collect::<Result<Vec<_>>>()?;
        Ok(Page { items, next_page_token: page.next_page_token })
    }

    /// Cancels one: its run stops at its next step.
    pub async fn cancel(&self, id: RunId, reason: &str) -> Result<View<R>> {
        self.get(id).await?;
        View::of(self.engine.cancel_run(id, reason, false).await?)
    }

    /// Its run's events after `after`, then live ones, until it finishes.
    pub async fn watch(&self, id: RunId, after: u64) -> Result<mpsc::Receiver<Result<Delivery<RunEvent>>>> {
        self.get(id).await?;
        self.engine.watch_run(id, after).await
    }
}
