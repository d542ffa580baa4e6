//! The remote side of an attempt: [`Servers`], a `WorkerService` client that fails over between
//! the servers it was given, and [`RemoteHost`], which sends an attempt's writes to them. Log
//! lines go on a client stream per run; every batch carries its position, so after a broken
//! stream the unacknowledged batches are sent again (to another server, if need be) and stored
//! once.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use serde_json::Value;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::{
    api::{
        convert,
        status::{error_from_status, model_failure_from_status},
    },
    artifacts::{ArtifactRef, UploadHeader},
    domain::{ArtifactRecord, Digest, Lease, Memory, NewLogLine, Reliability, Run, RunId, WorkspaceId},
    engine::{AttemptHost, CreateRunRequest, Ending},
    error::{Error, Result},
    models::{determinism, CallFailure, FailureClass, ModelRequest, RouteFailure, Routed, TokenSink},
    proto::{
        self, artifact_service_client::ArtifactServiceClient, download_artifact_response, model_service_client::ModelServiceClient,
        run_service_client::RunServiceClient, upload_artifact_request, worker_service_client::WorkerServiceClient,
    },
    store::{JournalEntry, LeaseStatus},
};

/// How many times a call is tried, across the servers, before its error is returned.
const CALL_TRIES: usize = 6;

/// Bytes per message of an artifact upload.
const ARTIFACT_CHUNK_BYTES: usize = 1 << 20;

/// Log lines held for resending before a flush is forced.
const MAX_UNACKNOWLEDGED_LINES: usize = 5000;

/// The servers a worker talks to; calls go to the current one, and move on to the next when it
/// is unreachable.
#[derive(Debug, Clone)]
pub struct Servers {
    channels: Arc<[(String, Channel)]>,
    current: Arc<AtomicUsize>,
}

impl Servers {
    /// Servers at these URLs (`http://host:port`); connections are made when first used.
    pub fn new(urls: &[String]) -> Result<Self> {
        if urls.is_empty() {
            return Err(Error::invalid("server", "give at least one server URL, e.g. --server http://127.0.0.1:50051"));
        }
        let channels = urls
            .iter()
            .map(|url| {
                let endpoint = Endpoint::from_shared(url.clone())
                    .map_err(|err| Error::invalid("server", format!("`{url}` is not a server URL: {err}")))?
                    .connect_timeout(Duration::from_secs(2))
                    .tcp_nodelay(true)
                    .max_frame_size(crate::server::HTTP2_MAX_FRAME_BYTES)
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_timeout(Duration::from_secs(5));
                Ok((url.clone(), endpoint.connect_lazy()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { channels: channels.into(), current: Arc::new(AtomicUsize::new(0)) })
    }

    /// A client of the current server, and its index.
    pub fn client(&self) -> (usize, WorkerServiceClient<Channel>) {
        let (index, channel) = self.channel();
        (index, WorkerServiceClient::new(channel))
    }

    /// The channel of the current server, and its index.
    pub fn channel(&self) -> (usize, Channel) {
        let index = self.current.load(Ordering::Relaxed) % self.channels.len();
        (index, self.channels[index].1.clone())
    }

    /// Moves on from server `failed` to the next one (unless another call already did).
    pub fn fail_over(&self, failed: usize) {
        let next = (failed + 1) % self.channels.len();
        if self.current.compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed).is_ok() && self.channels.len() > 1 {
            tracing::warn!(from = %self.channels[failed].0, to = %self.channels[next].0, "server unreachable; failing over");
        }
    }

    /// Makes a unary `WorkerService` call, trying again on the next server while servers are
    /// unreachable.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(WorkerServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_on(|channel| call(WorkerServiceClient::new(channel))).await
    }

    /// Makes a call of any service over the current server's channel, trying again on the next
    /// server while servers are unreachable.
    pub async fn call_on<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut tries = 0;
        loop {
            let (index, channel) = self.channel();
            let err = match call(channel).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => error_from_status(&status),
            };
            tries += 1;
            if !matches!(err, Error::Unavailable(_)) || tries >= CALL_TRIES {
                return Err(err);
            }
            self.fail_over(index);
            tokio::time::sleep(Duration::from_millis(100 * tries as u64)).await;
        }
    }
}

/// What the worker's heartbeats last said about a run it holds.
#[derive(Debug, Clone, Copy)]
struct HeldView {
    status: LeaseStatus,
    /// When a heartbeat last answered for it.
    confirmed: Instant,
}

/// An open `AppendLogs` stream: where to send batches, the answer to await when it is closed,
/// and the index of its server.
type OpenStream = (mpsc::Sender<proto::AppendLogsRequest>, JoinHandle<Result<proto::AppendLogsResponse, tonic::Status>>, usize);

/// One run's log stream, and the batches it has not acknowledged yet.
#[derive(Default)]
struct LogStream {
    pending: Vec<proto::AppendLogsRequest>,
    pending_lines: usize,
    open: Option<OpenStream>,
}

/// Sends an attempt's writes to the servers.
pub struct RemoteHost {
    servers: Servers,
    /// Leases as the worker's heartbeat loop last saw them.
    held: Mutex<HashMap<RunId, HeldView>>,
    logs: tokio::sync::Mutex<HashMap<RunId, LogStream>>,
    /// A lease whose heartbeat has not been confirmed for this long is reported unreachable.
    lease_ttl: Duration,
}

impl RemoteHost {
    /// A host over `servers`.
    pub fn new(servers: Servers, lease_ttl: Duration) -> Self {
        Self { servers, held: Mutex::new(HashMap::new()), logs: tokio::sync::Mutex::new(HashMap::new()), lease_ttl }
    }

    /// Records what a heartbeat said about a run.
    pub fn confirm(&self, run: RunId, status: LeaseStatus) {
        self.held().insert(run, HeldView { status, confirmed: Instant::now() });
    }

    /// Forgets a run the worker no longer holds.
    pub async fn forget(&self, run: RunId) {
        self.held().remove(&run);
        self.logs.lock().await.remove(&run);
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, HeldView>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a log stream to the current server and sends every unacknowledged batch on it.
    async fn open_stream(&self, stream: &mut LogStream) {
        let (sender, receiver) = mpsc::channel(16);
        let (index, mut client) = self.servers.client();
        let response = tokio::spawn(async move { client.append_logs(ReceiverStream::new(receiver)).await.map(tonic::Response::into_inner) });
        for batch in &stream.pending {
            if sender.send(batch.clone()).await.is_err() {
                break;
            }
        }
        stream.open = Some((sender, response, index));
    }
}

impl RemoteHost {
    /// Downloads a whole version and checks its digest.
    async fn download(&self, reference: proto::ArtifactRef, consumer: Option<proto::ArtifactConsumer>) -> Result<(ArtifactRecord, Vec<u8>)> {
        let request = proto::DownloadArtifactRequest { artifact: Some(reference), offset: 0, length: 0, consumer };
        let mut messages = self
            .servers
            .call_on(|channel| {
                let request = request.clone();
                async move { ArtifactServiceClient::new(channel).download_artifact(request).await }
            })
            .await?;
        let mut record = None;
        let mut content = Vec::new();
        while let Some(message) = messages.message().await.map_err(|status| error_from_status(&status))? {
            match message.part {
                Some(download_artifact_response::Part::Artifact(artifact)) => record = Some(convert::artifact_record(&artifact)),
                Some(download_artifact_response::Part::Chunk(chunk)) => content.extend_from_slice(&chunk),
                None => {}
            }
        }
        let record = record.ok_or_else(|| Error::Internal("the server's download carried no artifact".into()))?;
        let digest = Digest::of(&content);
        if digest.as_str() != record.sha256 {
            return Err(Error::DataLoss(format!("artifact {} arrived with sha256 {digest}, not {}", record.id, record.sha256)));
        }
        Ok((record, content))
    }
}

fn lease_request(lease: &Lease) -> (String, u64) {
    (lease.run_id.to_string(), lease.epoch)
}

#[async_trait]
impl AttemptHost for RemoteHost {
    async fn record_step(&self, lease: &Lease, entry: JournalEntry) -> Result<()> {
        let (run_id, epoch) = lease_request(lease);
        let request = proto::RecordStepRequest {
            run_id,
            epoch,
            key: entry.key,
            output: Some(convert::json_to_value(&entry.output)),
            duration: Some(convert::duration(entry.duration)),
        };
        self.servers.call(|mut client| {
            let request = request.clone();
            async move { client.record_step(request).await }
        })
        .await
        .map(drop)
    }

    async fn emit(&self, lease: &Lease, events: &[(String, Value)]) -> Result<()> {
        // `EmitEvent` carries one event; they go one by one, in order.
        for (event_type, data) in events {
            let (run_id, epoch) = lease_request(lease);
            let request = proto::EmitEventRequest { run_id, epoch, event_type: event_type.clone(), data: Some(convert::json_to_value(data)) };
            self.servers
                .call(|mut client| {
                    let request = request.clone();
                    async move { client.emit_event(request).await }
                })
                .await?;
        }
        Ok(())
    }

    async fn suspend(&self, lease: &Lease, key: &str, prompt: &str) -> Result<()> {
        let (run_id, epoch) = lease_request(lease);
        let request = proto::SuspendRunRequest { run_id, epoch, key: key.to_owned(), prompt: prompt.to_owned() };
        self.servers.call(|mut client| {
            let request = request.clone();
            async move { client.suspend_run(request).await }
        })
        .await
        .map(drop)
    }

    async fn append_logs(&self, lease: &Lease, _attempt: u32, first: u64, lines: &[NewLogLine]) -> Result<()> {
        let (run_id, epoch) = lease_request(lease);
        let batch = proto::AppendLogsRequest { run_id, epoch, first_position: first, lines: lines.iter().map(convert::new_log_line).collect() };
        let mut streams = self.logs.lock().await;
        let stream = streams.entry(lease.run_id).or_default();
        stream.pending.push(batch.clone());
        stream.pending_lines += lines.len();
        match &stream.open {
            Some((sender, _, _)) => {
                if sender.send(batch).await.is_err() {
                    // The stream broke; the next flush sends everything again.
                    stream.open = None;
                }
            }
            None => self.open_stream(stream).await,
        }
        let full = stream.pending_lines >= MAX_UNACKNOWLEDGED_LINES;
        drop(streams);
        if full {
            return self.flush_logs(lease).await;
        }
        Ok(())
    }

    async fn flush_logs(&self, lease: &Lease) -> Result<()> {
        let mut streams = self.logs.lock().await;
        let Some(stream) = streams.get_mut(&lease.run_id) else { return Ok(()) };
        if stream.pending.is_empty() {
            return Ok(());
        }
        if stream.open.is_none() {
            self.open_stream(stream).await;
        }
        let Some((sender, response, index)) = stream.open.take() else { return Ok(()) };
        drop(sender);
        let result = match response.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(error_from_status(&status)),
            Err(join) => Err(Error::Internal(format!("log stream task failed: {join}"))),
        };
        match result {
            Ok(()) => {
                stream.pending.clear();
                stream.pending_lines = 0;
                Ok(())
            }
            Err(err @ Error::StaleLease { .. }) => Err(err),
            Err(err) => {
                self.servers.fail_over(index);
                Err(Error::Unavailable(format!("log lines not acknowledged yet, will send them again: {err}")))
            }
        }
    }

    async fn extend_lease(&self, lease: &Lease) -> Result<LeaseStatus> {
        // The worker's heartbeat loop extends every lease it holds at once; this reports what
        // it last heard.
        match self.held().get(&lease.run_id) {
            Some(view) if view.confirmed.elapsed() < self.lease_ttl => Ok(view.status),
            Some(_) => Err(Error::Unavailable("no heartbeat reached a server lately".into())),
            None => Ok(LeaseStatus::Held { cancel_requested: false }),
        }
    }

    async fn finish(&self, lease: &Lease, ending: Ending) -> Result<()> {
        use proto::finish_run_request::Ending as Wire;
        let (run_id, epoch) = lease_request(lease);
        let ending = match ending {
            Ending::Succeeded(output) => Wire::Output(convert::json_to_value(&output)),
            Ending::Failed(error) => Wire::Error(convert::run_error(&error)),
            Ending::Cancelled => Wire::Cancelled(proto::Cancelled {}),
            Ending::Released => Wire::Released(proto::Released {}),
        };
        let request = proto::FinishRunRequest { run_id, epoch, ending: Some(ending) };
        self.servers.call(|mut client| {
            let request = request.clone();
            async move { client.finish_run(request).await }
        })
        .await
        .map(drop)
    }

    /// Uploads the content through `ArtifactService`, the header carrying the lease's epoch.
    async fn put_artifact(&self, _lease: &Lease, header: UploadHeader, content: &[u8]) -> Result<ArtifactRecord> {
        let head = convert::upload_header_message(&header);
        let artifact = self
            .servers
            .call_on(|channel| {
                let mut messages = vec![proto::UploadArtifactRequest { part: Some(upload_artifact_request::Part::Header(head.clone())) }];
                messages.extend(content.chunks(ARTIFACT_CHUNK_BYTES).map(|chunk| proto::UploadArtifactRequest {
                    part: Some(upload_artifact_request::Part::Chunk(bytes::Bytes::copy_from_slice(chunk))),
                }));
                async move { ArtifactServiceClient::new(channel).upload_artifact(tokio_stream::iter(messages)).await }
            })
            .await?;
        Ok(convert::artifact_record(&artifact))
    }

    async fn get_artifact(&self, lease: &Lease, reference: &ArtifactRef, step: &str) -> Result<(ArtifactRecord, Vec<u8>)> {
        let consumer = proto::ArtifactConsumer { run_id: lease.run_id.to_string(), step: step.to_owned() };
        self.download(convert::artifact_ref_message(reference), Some(consumer)).await
    }

    async fn read_artifact(&self, record: &ArtifactRecord) -> Result<Vec<u8>> {
        let reference = proto::ArtifactRef { id: record.id.clone(), ..proto::ArtifactRef::default() };
        let (read, content) = self.download(reference, None).await?;
        if read.sha256 != record.sha256 {
            return Err(Error::DataLoss(format!("artifact {} now has sha256 {}, not {} as recorded", record.id, read.sha256, record.sha256)));
        }
        Ok(content)
    }

    async fn read_reliability(&self, lease: &Lease, _workspace: &WorkspaceId, participants: &[String]) -> Result<Vec<Reliability>> {
        let (run_id, epoch) = lease_request(lease);
        let request = proto::ReadReliabilityRequest { run_id, epoch, participants: participants.to_vec() };
        let response = self
            .servers
            .call(|mut client| {
                let request = request.clone();
                async move { client.read_reliability(request).await }
            })
            .await?;
        Ok(response.records.into_iter().map(convert::from_participant_record).collect())
    }

    async fn record_debate_votes(&self, lease: &Lease, _workspace: &WorkspaceId, votes: &[(String, bool)]) -> Result<()> {
        let (run_id, epoch) = lease_request(lease);
        let votes = votes.iter().map(|(participant, agreed)| proto::ParticipantVote { participant: participant.clone(), agreed: *agreed }).collect();
        let request = proto::RecordDebateVotesRequest { run_id, epoch, votes };
        self.servers
            .call(|mut client| {
                let request = request.clone();
                async move { client.record_debate_votes(request).await }
            })
            .await
            .map(drop)
    }

    async fn recall(&self, lease: &Lease, workspace: &WorkspaceId, text: &str, limit: u32) -> Result<Vec<Memory>> {
        let (run_id, epoch) = lease_request(lease);
        let request = proto::RecallMemoriesRequest { run_id, epoch, text: text.to_owned(), limit };
        let response = self
            .servers
            .call(|mut client| {
                let request = request.clone();
                async move { client.recall_memories(request).await }
            })
            .await?;
        response
            .memories
            .into_iter()
            .enumerate()
            .map(|(index, memory)| convert::from_mission_memory(memory, workspace, &format!("memories[{index}]")))
            .collect()
    }

    async fn remember(&self, lease: &Lease, memory: Memory) -> Result<()> {
        let (run_id, epoch) = lease_request(lease);
        let request = proto::RememberMissionRequest { run_id, epoch, request: memory.request, summary: memory.summary, outcome: memory.outcome };
        self.servers
            .call(|mut client| {
                let request = request.clone();
                async move { client.remember_mission(request).await }
            })
            .await
            .map(drop)
    }

    async fn create_run(&self, _lease: &Lease, request: CreateRunRequest) -> Result<Run> {
        let request = convert::create_run_message(&request);
        let run = self
            .servers
            .call_on(|channel| {
                let request = request.clone();
                async move { RunServiceClient::new(channel).create_run(request).await }
            })
            .await?;
        convert::from_run(run)
    }

    async fn get_run(&self, id: RunId) -> Result<Run> {
        let request = proto::GetRunRequest { id: id.to_string() };
        let run = self
            .servers
            .call_on(|channel| {
                let request = request.clone();
                async move { RunServiceClient::new(channel).get_run(request).await }
            })
            .await?;
        convert::from_run(run)
    }

    /// Asks the server's router (`ModelService.StreamGenerate`), with the determinism defaults
    /// applied here, where the run and the step are known.
    async fn generate(&self, _lease: &Lease, request: &ModelRequest, tokens: Option<&TokenSink>) -> Result<Routed, RouteFailure> {
        let mut request = request.clone();
        request.sampling = determinism::deterministic(&request);
        let (_, channel) = self.servers.channel();
        let mut client = ModelServiceClient::new(channel);
        let mut delivered = false;
        let failed = |status: tonic::Status, delivered: bool| {
            let failure = match model_failure_from_status(&status) {
                Some(Error::ModelCall { class, provider, message, retry_after }) => {
                    let failure = CallFailure::new(class, message).retry_after(retry_after);
                    return RouteFailure { failure, provider, failed: Vec::new(), after_first_token: delivered };
                }
                _ => CallFailure::new(FailureClass::Transport, format!("the server's ModelService failed: {}", status.message())),
            };
            RouteFailure { failure, provider: None, failed: Vec::new(), after_first_token: delivered }
        };
        let mut stream = match client.stream_generate(convert::generate_request(&request)).await {
            Ok(response) => response.into_inner(),
            Err(status) => return Err(failed(status, false)),
        };
        loop {
            let item = match stream.message().await {
                Ok(Some(message)) => message.item,
                Ok(None) => {
                    let failure = CallFailure::new(FailureClass::Transport, "the server's answer ended before the model's");
                    return Err(RouteFailure { failure, provider: None, failed: Vec::new(), after_first_token: delivered });
                }
                Err(status) => return Err(failed(status, delivered)),
            };
            match item {
                Some(proto::stream_generate_response::Item::Delta(piece)) => {
                    delivered = true;
                    if let Some(tokens) = tokens {
                        let _ = tokens.send(piece).await;
                    }
                }
                Some(proto::stream_generate_response::Item::Done(done)) => return Ok(convert::from_generate_response(done)),
                None => {}
            }
        }
    }
}
