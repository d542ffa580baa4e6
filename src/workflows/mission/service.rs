//! `MissionService`'s resource: a mission is a run of kind `mission` whose input is its spec and
//! whose output is its report (see `workflows::resource`).

use serde_json::{Map, Value};

use super::{spec::MissionSpec, MissionReport};
use crate::{
    error::Result,
    workflows::resource::{CreateRequest, Resources, RunResource, View},
};

/// Missions as resources.
#[derive(Debug)]
pub struct MissionResource;

impl RunResource for MissionResource {
    const KIND: &'static str = "mission";
    const NOUN: &'static str = "mission";
    type Spec = MissionSpec;
    type Report = MissionReport;

    fn spec_from_input(input: &Map<String, Value>) -> Result<MissionSpec> {
        MissionSpec::from_input(input)
    }

    fn validated(spec: MissionSpec) -> Result<MissionSpec> {
        spec.validated()
    }
}

/// The missions an engine runs.
pub type Missions = Resources<MissionResource>;
/// A mission.
pub type MissionView = View<MissionResource>;
/// A request to start a mission.
pub type CreateMissionRequest = CreateRequest<MissionSpec>;
