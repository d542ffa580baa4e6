//! `conclave.v1.ModelService`: decodes each request, calls the model [`Router`], encodes the
//! answer. Failures are typed ([`Error::ModelCall`]) and mapped in `status.rs`.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{convert, ResponseStream};
use crate::{
    error::{Error, Result},
    models::Router,
    proto::{self, model_service_server::ModelService, stream_generate_response::Item},
};

/// The `ModelService` adapter.
#[derive(Debug, Clone)]
pub struct ModelApi {
    router: Arc<Router>,
}

impl ModelApi {
    /// An adapter over a router.
    pub fn new(router: Arc<Router>) -> Self {
        Self { router }
    }

    fn decode(&self, request: proto::GenerateRequest) -> Result<(crate::models::ModelRequest, Option<String>)> {
        let (request, provider) = convert::model_request(request)?;
        if let Some(name) = &provider
            && !self.router.has_provider(name)
        {
            return Err(Error::invalid("provider", format!("`{name}` is not a configured provider; ListProviders shows them")));
        }
        Ok((request, provider))
    }
}

#[tonic::async_trait]
impl ModelService for ModelApi {
    async fn list_providers(&self, _request: Request<proto::ListProvidersRequest>) -> Result<Response<proto::ListProvidersResponse>, Status> {
        let providers = self.router.providers().await?;
        let chains = self.router.chains();
        Ok(Response::new(proto::ListProvidersResponse {
            providers: providers.into_iter().map(convert::provider_info).collect(),
            default_chain: chains.default.clone(),
            role_chains: chains
                .roles
                .iter()
                .map(|(role, chain)| (role.clone(), proto::Chain { providers: chain.clone() }))
                .collect(),
        }))
    }

    async fn generate(&self, request: Request<proto::GenerateRequest>) -> Result<Response<proto::GenerateResponse>, Status> {
        let (request, provider) = self.decode(request.into_inner())?;
        let routed = self.router.route(&request, provider.as_deref(), None).await.map_err(Error::from)?;
        Ok(Response::new(convert::generate_response(&request, routed)))
    }

    type StreamGenerateStream = ResponseStream<proto::StreamGenerateResponse>;

    async fn stream_generate(&self, request: Request<proto::GenerateRequest>) -> Result<Response<Self::StreamGenerateStream>, Status> {
        let (request, provider) = self.decode(request.into_inner())?;
        let (sender, receiver) = mpsc::channel(64);
        let router = self.router.clone();
        tokio::spawn(async move {
            let (tokens, mut pieces) = mpsc::channel::<String>(64);
            let call = async {
                let result = router.route(&request, provider.as_deref(), Some(&tokens)).await;
                drop(tokens);
                result
            };
            let forward = async {
                while let Some(piece) = pieces.recv().await {
                    // A client that left stops receiving; the call still finishes and is counted.
                    let _ = sender.send(Ok(proto::StreamGenerateResponse { item: Some(Item::Delta(piece)) })).await;
                }
            };
            let (result, ()) = tokio::join!(call, forward);
            let last = match result {
                Ok(routed) => Ok(proto::StreamGenerateResponse { item: Some(Item::Done(convert::generate_response(&request, routed))) }),
                Err(failure) => Err(Status::from(Error::from(failure))),
            };
            let _ = sender.send(last).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn get_router_stats(&self, _request: Request<proto::GetRouterStatsRequest>) -> Result<Response<proto::RouterStats>, Status> {
        Ok(Response::new(convert::router_stats(self.router.stats())))
    }
}
