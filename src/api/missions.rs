//! `conclave.v1.MissionService`: decodes each request, calls [`Missions`], encodes the answer.

use tonic::{Request, Response, Status};

use super::{convert, resource_events, ResponseStream};
use crate::{
    domain::RunId,
    engine::Engine,
    proto::{self, mission_service_server::MissionService},
    workflows::mission::Missions,
};

/// The `MissionService` adapter.
#[derive(Debug, Clone)]
pub struct MissionApi {
    missions: Missions,
}

impl MissionApi {
    /// An adapter over the missions an engine runs.
    pub fn new(engine: Engine) -> Self {
        Self { missions: Missions::new(engine) }
    }
}

#[tonic::async_trait]
impl MissionService for MissionApi {
    async fn create_mission(&self, request: Request<proto::CreateMissionRequest>) -> Result<Response<proto::Mission>, Status> {
        let view = self.missions.create(convert::create_mission_request(request.into_inner())?).await?;
        Ok(Response::new(convert::mission(&view)))
    }

    async fn get_mission(&self, request: Request<proto::GetMissionRequest>) -> Result<Response<proto::Mission>, Status> {
        let view = self.missions.get(RunId::parse("id", &request.into_inner().id)?).await?;
        Ok(Response::new(convert::mission(&view)))
    }

    async fn list_missions(&self, request: Request<proto::ListMissionsRequest>) -> Result<Response<proto::ListMissionsResponse>, Status> {
        let request = request.into_inner();
        let outcome = convert::from_mission_outcome(request.outcome, "outcome")?;
        let page = self.missions.list(request.workspace, outcome.map(|outcome| outcome.as_str()), request.page_size, request.page_token).await?;
        Ok(Response::new(proto::ListMissionsResponse {
            missions: page.items.iter().map(convert::mission).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn cancel_mission(&self, request: Request<proto::CancelMissionRequest>) -> Result<Response<proto::Mission>, Status> {
        let request = request.into_inner();
        let reason = if request.reason.is_empty() { "cancelled by a client" } else { request.reason.as_str() };
        let view = self.missions.cancel(RunId::parse("id", &request.id)?, reason).await?;
        Ok(Response::new(convert::mission(&view)))
    }

    type WatchMissionStream = ResponseStream<proto::MissionEvent>;

    async fn watch_mission(&self, request: Request<proto::WatchMissionRequest>) -> Result<Response<Self::WatchMissionStream>, Status> {
        let request = request.into_inner();
        let deliveries = self.missions.watch(RunId::parse("id", &request.id)?, request.after_sequence).await?;
        Ok(Response::new(resource_events(deliveries, convert::mission_event)))
    }
}
