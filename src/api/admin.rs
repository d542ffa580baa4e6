//! `conclave.v1.AdminService`: decodes each request, calls the [`Engine`], encodes the answer.

use tonic::{Request, Response, Status};

use super::convert;
use crate::{
    domain::WorkerId,
    engine::Engine,
    proto::{self, admin_service_server::AdminService},
};

/// The `AdminService` adapter.
#[derive(Debug, Clone)]
pub struct AdminApi {
    engine: Engine,
}

impl AdminApi {
    /// An adapter over an engine.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn rescue_runs(&self, request: Request<proto::RescueRunsRequest>) -> Result<Response<proto::RescueRunsResponse>, Status> {
        let worker_id = request.into_inner().worker_id;
        let worker = (!worker_id.is_empty()).then(|| WorkerId::new(worker_id));
        let rescued = self.engine.rescue_runs(worker.as_ref()).await?;
        Ok(Response::new(proto::RescueRunsResponse { run_ids: rescued.iter().map(ToString::to_string).collect() }))
    }

    async fn prune_history(&self, request: Request<proto::PruneHistoryRequest>) -> Result<Response<proto::PruneHistoryResponse>, Status> {
        let request = request.into_inner();
        let history = request.history_older_than.map(|age| convert::from_duration(age, "history_older_than")).transpose()?;
        let runs = request.runs_older_than.map(|age| convert::from_duration(age, "runs_older_than")).transpose()?;
        let pruned = self.engine.prune_history(history, runs).await?;
        Ok(Response::new(proto::PruneHistoryResponse {
            histories_pruned: pruned.histories,
            runs_deleted: pruned.runs,
            blobs_removed: pruned.blobs,
            abandoned_uploads_removed: pruned.abandoned_uploads,
        }))
    }
}
