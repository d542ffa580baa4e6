//! `conclave.v1.RunService`: decodes each request, calls the [`Engine`], encodes the answer.

use futures::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{convert, ResponseStream};
use crate::{
    domain::{RunId, Timestamp},
    engine::{CreateRunRequest, Delivery, Engine, ListRunsRequest},
    error::Result,
    proto::{self, run_service_server::RunService},
};

/// The `RunService` adapter.
#[derive(Debug, Clone)]
pub struct RunApi {
    engine: Engine,
}

impl RunApi {
    /// An adapter over an engine.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

/// Turns a follower's deliveries into a gRPC response stream.
fn stream<T, M>(deliveries: tokio::sync::mpsc::Receiver<Result<Delivery<T>>>, encode: fn(Delivery<T>) -> M) -> ResponseStream<M>
where
    T: Send + 'static,
    M: Send + 'static,
{
    Box::pin(ReceiverStream::new(deliveries).map(move |delivery| delivery.map(encode).map_err(Status::from)))
}

fn heartbeat(last_sequence: u64) -> proto::Heartbeat {
    proto::Heartbeat { time: Some(convert::timestamp(Timestamp::now())), last_sequence }
}

fn lagged(skipped: u64, last_sequence: u64) -> proto::Lagged {
    proto::Lagged { skipped, last_sequence }
}

#[tonic::async_trait]
impl RunService for RunApi {
    async fn create_run(&self, request: Request<proto::CreateRunRequest>) -> Result<Response<proto::Run>, Status> {
        let request = request.into_inner();
        let create = CreateRunRequest {
            workspace: request.workspace,
            kind: request.kind,
            input: convert::struct_to_json(request.input, "input")?,
            priority: request.priority,
            max_attempts: request.max_attempts,
            attempt_timeout: request.attempt_timeout.map(|d| convert::from_duration(d, "attempt_timeout")).transpose()?,
            deadline: request.deadline.map(|t| convert::from_timestamp(t, "deadline")).transpose()?,
            concurrency_key: request.concurrency_key,
            concurrency_limit: request.concurrency_limit,
            labels: request.labels.into_iter().collect(),
            request_id: request.request_id,
        };
        let run = self.engine.create_run(create).await?;
        Ok(Response::new(convert::run(&run)))
    }

    async fn get_run(&self, request: Request<proto::GetRunRequest>) -> Result<Response<proto::Run>, Status> {
        let id = RunId::parse("id", &request.into_inner().id)?;
        Ok(Response::new(convert::run(&self.engine.get_run(id).await?)))
    }

    async fn list_runs(&self, request: Request<proto::ListRunsRequest>) -> Result<Response<proto::ListRunsResponse>, Status> {
        let request = request.into_inner();
        let list = ListRunsRequest {
            workspace: request.workspace,
            state: convert::from_state(request.state, "state")?,
            kind: request.kind,
            labels: request.labels.into_iter().collect(),
            output_field: None,
            page_size: request.page_size,
            page_token: request.page_token,
        };
        let page = self.engine.list_runs(list).await?;
        Ok(Response::new(proto::ListRunsResponse {
            runs: page.items.iter().map(convert::run).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn cancel_run(&self, request: Request<proto::CancelRunRequest>) -> Result<Response<proto::Run>, Status> {
        let request = request.into_inner();
        let id = RunId::parse("id", &request.id)?;
        let run = self.engine.cancel_run(id, &request.reason, request.force).await?;
        Ok(Response::new(convert::run(&run)))
    }

    async fn retry_run(&self, request: Request<proto::RetryRunRequest>) -> Result<Response<proto::Run>, Status> {
        let request = request.into_inner();
        let id = RunId::parse("id", &request.id)?;
        Ok(Response::new(convert::run(&self.engine.retry_run(id, request.reset_journal).await?)))
    }

    async fn replay_run(&self, request: Request<proto::ReplayRunRequest>) -> Result<Response<proto::Run>, Status> {
        let request = request.into_inner();
        let id = RunId::parse("id", &request.id)?;
        let from_step = (!request.from_step.is_empty()).then_some(request.from_step.as_str());
        let request_id = (!request.request_id.is_empty()).then_some(request.request_id.clone());
        Ok(Response::new(convert::run(&self.engine.replay_run(id, from_step, request_id).await?)))
    }

    async fn force_fail_run(&self, request: Request<proto::ForceFailRunRequest>) -> Result<Response<proto::Run>, Status> {
        let request = request.into_inner();
        let id = RunId::parse("id", &request.id)?;
        Ok(Response::new(convert::run(&self.engine.force_fail_run(id, &request.reason).await?)))
    }

    async fn submit_decision(&self, request: Request<proto::SubmitDecisionRequest>) -> Result<Response<proto::Run>, Status> {
        let request = request.into_inner();
        let id = RunId::parse("id", &request.id)?;
        let decision = convert::from_decision(request.decision)?;
        Ok(Response::new(convert::run(&self.engine.submit_decision(id, &request.key, decision).await?)))
    }

    type WatchRunStream = ResponseStream<proto::WatchRunResponse>;

    async fn watch_run(&self, request: Request<proto::WatchRunRequest>) -> Result<Response<Self::WatchRunStream>, Status> {
        let request = request.into_inner();
        let id = RunId::parse("id", &request.id)?;
        let deliveries = self.engine.watch_run(id, request.after_sequence).await?;
        Ok(Response::new(stream(deliveries, |delivery| match delivery {
            Delivery::Items(events) => proto::WatchRunResponse { events: events.iter().map(convert::event).collect(), ..Default::default() },
            Delivery::Heartbeat { last_sequence } => proto::WatchRunResponse { heartbeat: Some(heartbeat(last_sequence)), ..Default::default() },
            Delivery::Lagged { skipped, last_sequence } => {
                proto::WatchRunResponse { lagged: Some(lagged(skipped, last_sequence)), ..Default::default() }
            }
        })))
    }

    type TailLogsStream = ResponseStream<proto::TailLogsResponse>;

    async fn tail_logs(&self, request: Request<proto::TailLogsRequest>) -> Result<Response<Self::TailLogsStream>, Status> {
        let request = request.into_inner();
        let id = RunId::parse("id", &request.id)?;
        let deliveries = self.engine.tail_logs(id, request.after_sequence, request.follow).await?;
        Ok(Response::new(stream(deliveries, |delivery| match delivery {
            Delivery::Items(lines) => proto::TailLogsResponse { lines: lines.iter().map(convert::log_line).collect(), ..Default::default() },
            Delivery::Heartbeat { last_sequence } => proto::TailLogsResponse { heartbeat: Some(heartbeat(last_sequence)), ..Default::default() },
            Delivery::Lagged { skipped, last_sequence } => {
                proto::TailLogsResponse { lagged: Some(lagged(skipped, last_sequence)), ..Default::default() }
            }
        })))
    }

    async fn get_queue_stats(&self, request: Request<proto::GetQueueStatsRequest>) -> Result<Response<proto::QueueStats>, Status> {
        let stats = self.engine.queue_stats(&request.into_inner().workspace).await?;
        Ok(Response::new(proto::QueueStats {
            counts: stats
                .counts
                .iter()
                .map(|((kind, state), count)| proto::StateCount { kind: kind.clone(), state: convert::state(*state).into(), count: *count })
                .collect(),
            oldest_queued_age: Some(convert::duration(stats.oldest_queued_age)),
            active_leases: stats.active_leases,
            finished_last_minute: stats.finished_last_minute,
            throughput_per_second: stats.finished_last_minute as f64 / 60.0,
            worker_slots: u32::try_from(stats.worker_slots).unwrap_or(u32::MAX),
            busy_worker_slots: u32::try_from(stats.busy_worker_slots).unwrap_or(u32::MAX),
        }))
    }
}
