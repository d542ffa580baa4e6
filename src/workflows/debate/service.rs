//! `DebateService`'s resource: a debate is a run of kind `debate` whose input is its spec and
//! whose output is its report (see `workflows::resource`).

use serde_json::{Map, Value};

use super::{spec::DebateSpec, Report};
use crate::{
    error::Result,
    workflows::resource::{CreateRequest, Resources, RunResource, View},
};

/// Debates as resources.
#[derive(Debug)]
pub struct DebateResource;

impl RunResource for DebateResource {
    const KIND: &'static str = "debate";
    const NOUN: &'static str = "debate";
    type Spec = DebateSpec;
    type Report = Report;

    fn spec_from_input(input: &Map<String, Value>) -> Result<DebateSpec> {
        DebateSpec::from_input(input)
    }

    fn validated(spec: DebateSpec) -> Result<DebateSpec> {
        spec.validated()
    }
}

/// The debates an engine runs.
pub type Debates = Resources<DebateResource>;
/// A debate.
pub type DebateView = View<DebateResource>;
/// A request to start a debate.
pub type CreateDebateRequest = CreateRequest<DebateSpec>;
