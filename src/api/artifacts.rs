//! `conclave.v1.ArtifactService`: decodes each request, calls [`Artifacts`], encodes the answer.
//! Uploads are read message by message into the artifact's blob, and downloads are read from
//! the blob as the client takes them, so a transfer holds a few chunks in memory whatever the
//! artifact's size.

use std::sync::Arc;

use futures::{stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::{convert, ResponseStream};
use crate::{
    artifacts::Artifacts,
    domain::{RunId, MAX_PRODUCER_FIELD_BYTES},
    error::Error,
    proto::{self, artifact_service_server::ArtifactService, download_artifact_response, upload_artifact_request::Part},
};

/// The `ArtifactService` adapter.
#[derive(Debug, Clone)]
pub struct ArtifactApi {
    artifacts: Arc<Artifacts>,
}

impl ArtifactApi {
    /// An adapter over the artifacts.
    pub fn new(artifacts: Arc<Artifacts>) -> Self {
        Self { artifacts }
    }
}

#[tonic::async_trait]
impl ArtifactService for ArtifactApi {
    async fn upload_artifact(&self, request: Request<Streaming<proto::UploadArtifactRequest>>) -> Result<Response<proto::Artifact>, Status> {
        let mut messages = request.into_inner();
        let header = match messages.message().await?.and_then(|message| message.part) {
            Some(Part::Header(header)) => header,
            _ => return Err(Error::invalid("header", "the first message of an upload must be its header").into()),
        };
        let mut upload = self.artifacts.begin_upload(convert::upload_header(header)?)?;
        let mut trailer: Option<String> = None;
        // A stream that breaks returns here with its error, and the dropped upload removes
        // what it wrote; so does an upload the store refuses, as soon as it does.
        loop {
            let message = tokio::select! {
                biased;
                refused = upload.refused() => return Err(refused.into()),
                message = messages.message() => message?,
            };
            let Some(message) = message else { break };
            if trailer.is_some() {
                return Err(Error::invalid("finish", "must be the last message of an upload").into());
            }
            match message.part {
                Some(Part::Chunk(chunk)) => upload.write(&chunk).await?,
                Some(Part::Finish(finish)) if !finish.sha256.is_empty() => trailer = Some(finish.sha256),
                Some(Part::Finish(_)) => return Err(Error::invalid("finish.sha256", "is required in a finish message").into()),
                Some(Part::Header(_)) => return Err(Error::invalid("header", "was sent twice; send it once, first").into()),
                None => return Err(Error::invalid("part", "an upload message must carry a header, a chunk or a finish").into()),
            }
        }
        let artifact = upload.finish(trailer.as_deref().unwrap_or_default()).await?;
        Ok(Response::new(convert::artifact(&artifact)))
    }

    type DownloadArtifactStream = ResponseStream<proto::DownloadArtifactResponse>;

    async fn download_artifact(&self, request: Request<proto::DownloadArtifactRequest>) -> Result<Response<Self::DownloadArtifactStream>, Status> {
        let request = request.into_inner();
        let download = self.artifacts.download(&convert::artifact_ref(request.artifact), request.offset, request.length).await?;
        if let Some(consumer) = request.consumer {
            let run_id = RunId::parse("consumer.run_id", &consumer.run_id)?;
            if consumer.step.is_empty() || consumer.step.len() > MAX_PRODUCER_FIELD_BYTES {
                return Err(Error::invalid("consumer.step", format!("must be the key of the reading step, 1 to {MAX_PRODUCER_FIELD_BYTES} bytes")).into());
            }
            self.artifacts.record_use(download.artifact.id, run_id, &consumer.step).await?;
        }
        let head = proto::DownloadArtifactResponse { part: Some(download_artifact_response::Part::Artifact(convert::artifact(&download.artifact))) };
        let chunks = download.chunks.map(|chunk| {
            chunk
                .map(|chunk| proto::DownloadArtifactResponse { part: Some(download_artifact_response::Part::Chunk(chunk)) })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream::once(async { Ok(head) }).chain(chunks))))
    }

    async fn get_artifact(&self, request: Request<proto::GetArtifactRequest>) -> Result<Response<proto::Artifact>, Status> {
        let artifact = self.artifacts.get(&convert::artifact_ref(request.into_inner().artifact)).await?;
        Ok(Response::new(convert::artifact(&artifact)))
    }

    async fn list_artifacts(&self, request: Request<proto::ListArtifactsRequest>) -> Result<Response<proto::ListArtifactsResponse>, Status> {
        let page = self.artifacts.list(convert::list_artifacts_request(request.into_inner())?).await?;
        Ok(Response::new(proto::ListArtifactsResponse {
            artifacts: page.items.iter().map(convert::artifact).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn delete_artifact(&self, request: Request<proto::DeleteArtifactRequest>) -> Result<Response<proto::DeleteArtifactResponse>, Status> {
        let deleted = self.artifacts.delete(&convert::artifact_ref(request.into_inner().artifact)).await?;
        Ok(Response::new(proto::DeleteArtifactResponse { deleted: u32::try_from(deleted).unwrap_or(u32::MAX) }))
    }

    async fn get_artifact_lineage(&self, request: Request<proto::GetArtifactLineageRequest>) -> Result<Response<proto::ArtifactLineage>, Status> {
        let request = request.into_inner();
        let lineage = self.artifacts.lineage(&convert::artifact_ref(request.artifact), request.depth).await?;
        Ok(Response::new(convert::lineage(&lineage)))
    }
}
