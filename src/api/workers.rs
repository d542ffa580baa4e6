//! `conclave.v1.WorkerService`: decodes each request, calls the [`Engine`], encodes the answer.

use futures::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{convert, ResponseStream};
use crate::{
    domain::{Lease, RunId, Timestamp, WorkerId},
    engine::{AssignmentMessage, Ending, Engine, RegisterWorkerRequest},
    error::{Error, Result},
    proto::{self, worker_service_server::WorkerService},
};

/// The `WorkerService` adapter.
#[derive(Debug, Clone)]
pub struct WorkerApi {
    engine: Engine,
}

impl WorkerApi {
    /// An adapter over an engine.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

fn worker_id(id: String) -> Result<WorkerId> {
    if id.is_empty() {
        return Err(Error::invalid("worker_id", "is required: the id RegisterWorker returned"));
    }
    Ok(WorkerId::new(id))
}

/// The lease a write names: its run and epoch.
fn lease(run_id: &str, epoch: u64) -> Result<Lease> {
    let run_id = RunId::parse("run_id", run_id)?;
    if epoch == 0 {
        return Err(Error::invalid("epoch", "is required: the lease epoch of the run's assignment"));
    }
    Ok(Lease::fencing(run_id, epoch))
}

fn assignment(message: AssignmentMessage) -> proto::Assignment {
    use proto::assignment::Kind;
    let kind = match message {
        AssignmentMessage::Run { run, journal } => Kind::Run(proto::RunAssignment {
            epoch: run.lease.as_ref().map_or(0, |lease| lease.epoch),
            journal: journal.iter().map(convert::journal_entry).collect(),
            run: Some(convert::run(&run)),
        }),
        AssignmentMessage::Revoked { run_id, epoch, reason } => {
            Kind::Revoked(proto::LeaseRevoked { run_id: run_id.to_string(), epoch, reason })
        }
        AssignmentMessage::Cancel { run_id } => Kind::Cancel(proto::RunCancelRequested { run_id: run_id.to_string() }),
        AssignmentMessage::Drain => Kind::Drain(proto::DrainRequested {}),
        AssignmentMessage::Heartbeat => Kind::Heartbeat(proto::Heartbeat { time: Some(convert::timestamp(Timestamp::now())), last_sequence: 0 }),
    };
    proto::Assignment { kind: Some(kind) }
}

#[tonic::async_trait]
impl WorkerService for WorkerApi {
    async fn register_worker(&self, request: Request<proto::RegisterWorkerRequest>) -> Result<Response<proto::RegisterWorkerResponse>, Status> {
        let request = request.into_inner();
        let registration = self
            .engine
            .register_worker(RegisterWorkerRequest {
                worker_id: request.worker_id,
                name: request.name,
                kinds: request.kinds,
                providers: request.providers,
                labels: request.labels.into_iter().collect(),
                capacity: request.capacity,
            })
            .await?;
        Ok(Response::new(proto::RegisterWorkerResponse {
            worker: Some(convert::worker(&registration.worker)),
            heartbeat_interval: Some(convert::duration(registration.heartbeat_interval)),
            lease_ttl: Some(convert::duration(registration.lease_ttl)),
        }))
    }

    type ReceiveAssignmentsStream = ResponseStream<proto::Assignment>;

    async fn receive_assignments(&self, request: Request<proto::ReceiveAssignmentsRequest>) -> Result<Response<Self::ReceiveAssignmentsStream>, Status> {
        let id = worker_id(request.into_inner().worker_id)?;
        let messages = self.engine.receive_assignments(&id).await?;
        Ok(Response::new(Box::pin(ReceiverStream::new(messages).map(|message| message.map(assignment).map_err(Status::from)))))
    }

    async fn heartbeat(&self, request: Request<proto::HeartbeatRequest>) -> Result<Response<proto::HeartbeatResponse>, Status> {
        let request = request.into_inner();
        let id = worker_id(request.worker_id)?;
        let runs = request
            .runs
            .into_iter()
            .enumerate()
            .map(|(index, held)| Ok((RunId::parse(&format!("runs[{index}].run_id"), &held.run_id)?, held.epoch)))
            .collect::<Result<Vec<_>>>()?;
        let reply = self.engine.worker_heartbeat(&id, runs).await?;
        Ok(Response::new(proto::HeartbeatResponse {
            runs: reply
                .runs
                .into_iter()
                .map(|status| proto::HeldRunStatus { run_id: status.run_id.to_string(), held: status.held, cancel_requested: status.cancel_requested })
                .collect(),
            drain: reply.drain,
        }))
    }

    async fn record_step(&self, request: Request<proto::RecordStepRequest>) -> Result<Response<proto::RecordStepResponse>, Status> {
        let request = request.into_inner();
        let lease = lease(&request.run_id, request.epoch)?;
        let output = request.output.map(|value| convert::value_to_json(value, "output")).transpose()?.unwrap_or_default();
        let duration = request.duration.map(|value| convert::from_duration(value, "duration")).transpose()?.unwrap_or_default();
        self.engine.record_step(&lease, request.key, output, duration).await?;
        Ok(Response::new(proto::RecordStepResponse {}))
    }

    async fn read_reliability(&self, request: Request<proto::ReadReliabilityRequest>) -> Result<Response<proto::ReadReliabilityResponse>, Status> {
        let request = request.into_inner();
        let lease = lease(&request.run_id, request.epoch)?;
        let records = self.engine.read_reliability(&lease, &request.participants).await?;
        Ok(Response::new(proto::ReadReliabilityResponse { records: records.iter().map(convert::participant_record).collect() }))
    }

    async fn record_debate_votes(&self, request: Request<proto::RecordDebateVotesRequest>) -> Result<Response<proto::RecordDebateVotesResponse>, Status> {
        let request = request.into_inner();
        let lease = lease(&request.run_id, request.epoch)?;
        let votes: Vec<(String, bool)> = request.votes.into_iter().map(|vote| (vote.participant, vote.agreed)).collect();
        self.engine.record_debate_votes(&lease, &votes).await?;
        Ok(Response::new(proto::RecordDebateVotesResponse {}))
    }

    async fn recall_memories(&self, request: Request<proto::RecallMemoriesRequest>) -> Result<Response<proto::RecallMemoriesResponse>, Status> {
        let request = request.into_inner();
        let lease = lease(&request.run_id, request.epoch)?;
        let memories = self.engine.recall(&lease, &request.text, request.limit).await?;
        Ok(Response::new(proto::RecallMemoriesResponse { memories: memories.iter().map(convert::mission_memory).collect() }))
    }

    async fn remember_mission(&self, request: Request<proto::RememberMissionRequest>) -> Result<Response<proto::RememberMissionResponse>, Status> {
        let request = request.into_inner();
        let lease = lease(&request.run_id, request.epoch)?;
        self.engine.remember(&lease, &request.request, &request.summary, &request.outcome).await?;
        Ok(Response::new(proto::RememberMissionResponse {}))
    }

    async fn emit_event(&self, request: Request<proto::EmitEventRequest>) -> Result<Response<proto::EmitEventResponse>, Status> {
        let request = request.into_inner();
        let lease = lease(&request.run_id, request.epoch)?;
        let data = request.data.map(|value| convert::value_to_json(value, "data")).transpose()?.unwrap_or_default();
        self.engine.emit_event(&lease, &request.event_type, data).await?;
        Ok(Response::new(proto::EmitEventResponse {}))
    }

    async fn append_logs(&self, request: Request<Streaming<proto::AppendLogsRequest>>) -> Result<Response<proto::AppendLogsResponse>, Status> {
        let mut batches = request.into_inner();
        let mut appender = self.engine.log_appender();
        while let Some(batch) = batches.message().await? {
            let lease = lease(&batch.run_id, batch.epoch)?;
            let lines = batch
                .lines
                .into_iter()
                .enumerate()
                .map(|(index, line)| convert::from_log_line(line, &format!("lines[{index}]")))
                .collect::<Result<Vec<_>>>()?;
            appender.append(&lease, batch.first_position, &lines).await?;
        }
        let (lines_stored, last_sequence) = appender.summary();
        Ok(Response::new(proto::AppendLogsResponse { lines_stored, last_sequence }))
    }

    async fn suspend_run(&self, request: Request<proto::SuspendRunRequest>) -> Result<Response<proto::SuspendRunResponse>, Status> {
        let request = request.into_inner();
        let lease = lease(&request.run_id, request.epoch)?;
        self.engine.suspend_run(&lease, &request.key, &request.prompt).await?;
        Ok(Response::new(proto::SuspendRunResponse {}))
    }

    async fn finish_run(&self, request: Request<proto::FinishRunRequest>) -> Result<Response<proto::FinishRunResponse>, Status> {
        use proto::finish_run_request::Ending as Wire;
        let request = request.into_inner();
        let lease = lease(&request.run_id, request.epoch)?;
        let ending = match request.ending {
            Some(Wire::Output(output)) => Ending::Succeeded(convert::value_to_json(output, "output")?),
            Some(Wire::Error(error)) => Ending::Failed(convert::from_run_error(error)?),
            Some(Wire::Cancelled(_)) => Ending::Cancelled,
            Some(Wire::Released(_)) => Ending::Released,
            None => return Err(Error::invalid("ending", "is required: set one of output, error, cancelled or released").into()),
        };
        let run = self.engine.finish_run(&lease, ending).await?;
        Ok(Response::new(proto::FinishRunResponse { run: Some(convert::run(&run)) }))
    }

    async fn get_worker(&self, request: Request<proto::GetWorkerRequest>) -> Result<Response<proto::Worker>, Status> {
        let id = worker_id(request.into_inner().worker_id)?;
        Ok(Response::new(convert::worker(&self.engine.get_worker(&id).await?)))
    }

    async fn list_workers(&self, request: Request<proto::ListWorkersRequest>) -> Result<Response<proto::ListWorkersResponse>, Status> {
        let request = request.into_inner();
        let page = self.engine.list_workers(request.page_size, &request.page_token).await?;
        Ok(Response::new(proto::ListWorkersResponse {
            workers: page.items.iter().map(convert::worker).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn drain_worker(&self, request: Request<proto::DrainWorkerRequest>) -> Result<Response<proto::Worker>, Status> {
        let request = request.into_inner();
        let id = worker_id(request.worker_id)?;
        Ok(Response::new(convert::worker(&self.engine.drain_worker(&id, !request.undrain).await?)))
    }

    async fn stop_worker(&self, request: Request<proto::StopWorkerRequest>) -> Result<Response<proto::Worker>, Status> {
        let id = worker_id(request.into_inner().worker_id)?;
        Ok(Response::new(convert::worker(&self.engine.stop_worker(&id).await?)))
    }
}
