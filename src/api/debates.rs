//! `conclave.v1.DebateService`: decodes each request, calls [`Debates`], encodes the answer.

use tonic::{Request, Response, Status};

use super::{convert, resource_events, ResponseStream};
use crate::{
    domain::RunId,
    engine::Engine,
    proto::{self, debate_service_server::DebateService},
    workflows::debate::Debates,
};

/// The `DebateService` adapter.
#[derive(Debug, Clone)]
pub struct DebateApi {
    debates: Debates,
}

impl DebateApi {
    /// An adapter over the debates an engine runs.
    pub fn new(engine: Engine) -> Self {
        Self { debates: Debates::new(engine) }
    }
}

#[tonic::async_trait]
impl DebateService for DebateApi {
    async fn create_debate(&self, request: Request<proto::CreateDebateRequest>) -> Result<Response<proto::Debate>, Status> {
        let view = self.debates.create(convert::create_debate_request(request.into_inner())?).await?;
        Ok(Response::new(convert::debate(&view)))
    }

    async fn get_debate(&self, request: Request<proto::GetDebateRequest>) -> Result<Response<proto::Debate>, Status> {
        let view = self.debates.get(RunId::parse("id", &request.into_inner().id)?).await?;
        Ok(Response::new(convert::debate(&view)))
    }

    async fn list_debates(&self, request: Request<proto::ListDebatesRequest>) -> Result<Response<proto::ListDebatesResponse>, Status> {
        let request = request.into_inner();
        let outcome = convert::from_outcome(request.outcome, "outcome")?;
        let page = self.debates.list(request.workspace, outcome.map(|outcome| outcome.as_str()), request.page_size, request.page_token).await?;
        Ok(Response::new(proto::ListDebatesResponse {
            debates: page.items.iter().map(convert::debate).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn cancel_debate(&self, request: Request<proto::CancelDebateRequest>) -> Result<Response<proto::Debate>, Status> {
        let request = request.into_inner();
        let reason = if request.reason.is_empty() { "cancelled by a client" } else { request.reason.as_str() };
        let view = self.debates.cancel(RunId::parse("id", &request.id)?, reason).await?;
        Ok(Response::new(convert::debate(&view)))
    }

    type WatchDebateStream = ResponseStream<proto::DebateEvent>;

    async fn watch_debate(&self, request: Request<proto::WatchDebateRequest>) -> Result<Response<Self::WatchDebateStream>, Status> {
        let request = request.into_inner();
        let deliveries = self.debates.watch(RunId::parse("id", &request.id)?, request.after_sequence).await?;
        Ok(Response::new(resource_events(deliveries, convert::debate_event)))
    }
}
