//! The connection to the server: its address, the bearer token on every call, and a client per
//! service.

use std::time::Duration;

use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

use super::{CliError, Options, error::chain};
use crate::proto::{
    artifact_service_client::ArtifactServiceClient, card_service_client::CardServiceClient,
    debate_service_client::DebateServiceClient, mission_service_client::MissionServiceClient,
    recipe_service_client::RecipeServiceClient, run_service_client::RunServiceClient,
    skill_service_client::SkillServiceClient, task_service_client::TaskServiceClient,
    worker_service_client::WorkerServiceClient,
};

/// Messages up to this size are accepted from the server (a large task or mission).
const MAX_MESSAGE: usize = 64 << 20;

/// Adds `authorization: Bearer <token>` to every call, when a token is given.
#[derive(Debug, Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The channel every client of a command shares.
pub type Transport = InterceptedService<Channel, Bearer>;

/// A connection to the server.
#[derive(Debug, Clone)]
pub struct Conn {
    channel: Transport,
}

macro_rules! client {
    ($name:ident, $client:ident) => {
        #[doc = concat!("A `", stringify!($client), "` on this connection.")]
        pub fn $name(&self) -> $client<Transport> {
            $client::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE)
        }
    };
}

impl Conn {
    client!(runs, RunServiceClient);
    client!(tasks, TaskServiceClient);
    client!(debates, DebateServiceClient);
    client!(missions, MissionServiceClient);
    client!(artifacts, ArtifactServiceClient);
    client!(workers, WorkerServiceClient);
    client!(skills, SkillServiceClient);
    client!(recipes, RecipeServiceClient);
    client!(cards, CardServiceClient);
}

/// The server's URL: `host:port` means `http://host:port`.
fn url(server: &str) -> Result<String, CliError> {
    let server = server.trim();
    if server.is_empty() {
        return Err(CliError::usage("--server is empty"));
    }
    if server.starts_with("https://") {
        return Err(CliError::usage(format!("{server}: this build speaks plaintext HTTP/2 only; use http://")));
    }
    if server.starts_with("http://") {
        Ok(server.to_owned())
    } else if server.contains("://") {
        Err(CliError::usage(format!("{server}: expected http://host:port or host:port")))
    } else {
        Ok(format!("http://{server}"))
    }
}

/// Connects to the server named by the options (exit code 5 when it cannot be reached).
pub async fn connect(options: &Options) -> Result<Conn, CliError> {
    let url = url(options.server())?;
    let token = match options.token.as_deref().map(str::trim).filter(|token| !token.is_empty()) {
        Some(token) => Some(
            format!("Bearer {token}")
                .parse::<MetadataValue<Ascii>>()
                .map_err(|_| CliError::usage("--token: a token is printable ASCII"))?,
        ),
        None => None,
    };
    let endpoint = Endpoint::from_shared(url.clone())
        .map_err(|err| CliError::usage(format!("--server {url}: {}", chain(&err))))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .max_frame_size(crate::server::HTTP2_MAX_FRAME_BYTES)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20));
    let channel = endpoint
        .connect()
        .await
        .map_err(|err| CliError::unreachable(format!("cannot reach the server at {url}: {}", chain(&err))))?;
    Ok(Conn { channel: InterceptedService::new(channel, Bearer(token)) })
}
