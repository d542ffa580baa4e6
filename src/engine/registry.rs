//! The registry of run kinds: each kind is a [`Workflow`], registered once under its name.
//! Built-in kinds and the later workflows (task, debate, mission, recipe) all plug in here.

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::context::{RunContext, WorkflowError};
use crate::error::{Error, Result};

/// What a run of one kind does, written as ordinary async code against a [`RunContext`].
///
/// A workflow must be deterministic given its journal: when a run resumes (after a crash, a
/// retry or a decision) it is executed again from the top, and every `ctx.step` already in the
/// journal returns its recorded result instead of running again.
#[async_trait]
pub trait Workflow: Send + Sync + 'static {
    /// Checks a run's input when the run is created, so bad input is refused before it queues.
    fn validate(&self, _input: &Map<String, Value>) -> Result<()> {
        Ok(())
    }

    /// Executes the run; the value returned becomes its output.
    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError>;
}

/// The kinds this server can run.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<String, Arc<dyn Workflow>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.kinds.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a kind under `name`, replacing any previous one.
    pub fn register(&mut self, name: impl Into<String>, workflow: impl Workflow) -> &mut Self {
        self.kinds.insert(name.into(), Arc::new(workflow));
        self
    }

    /// The workflow of a kind.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Workflow>> {
        self.kinds.get(kind).cloned()
    }

    /// The registered kind names, sorted.
    pub fn kinds(&self) -> Vec<String> {
        self.kinds.keys().cloned().collect()
    }

    /// The workflow of a kind named in a request, or `INVALID_ARGUMENT` naming the known kinds.
    pub fn resolve(&self, kind: &str) -> Result<Arc<dyn Workflow>> {
        if kind.is_empty() {
            return Err(Error::invalid("kind", format!("is required; one of: {}", self.kinds().join(", "))));
        }
        self.get(kind).ok_or_else(|| {
            Error::invalid("kind", format!("`{kind}` is not a known run kind; use one of: {}", self.kinds().join(", ")))
        })
    }
}
