//! Assembles the gRPC server: the Conclave services, `grpc.health.v1`, server reflection v1 and
//! v1alpha (grpcurl 1.8 speaks only v1alpha), grpc-web beside native gRPC on the same port (for
//! browsers, with CORS), and graceful shutdown: health goes NOT_SERVING, streams end, in-flight
//! requests finish, running runs finish or are released to the queue.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::{
    codegen::http::{HeaderName, Method},
    transport::{server::TcpIncoming, Server},
};
use tonic_web::GrpcWebLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    api::{AdminApi, ArtifactApi, CardApi, DebateApi, MissionApi, ModelApi, RecipeApi, RunApi, SkillApi, TaskApi, WorkerApi},
    artifacts::Artifacts,
    config::ServerConfig,
    engine::Engine,
    error::{Error, Result},
    proto::{
        self, admin_service_server::AdminServiceServer, artifact_service_server::ArtifactServiceServer,
        debate_service_server::DebateServiceServer, mission_service_server::MissionServiceServer, task_service_server::TaskServiceServer,
        model_service_server::ModelServiceServer, run_service_server::RunServiceServer,
        worker_service_server::WorkerServiceServer, card_service_server::CardServiceServer, recipe_service_server::RecipeServiceServer,
        skill_service_server::SkillServiceServer,
    },
    store, workflows,
};

/// The largest HTTP/2 frame Conclave's server and its own clients accept (HTTP/2's default is
/// 16 KiB). Artifact content moves in 1 MiB messages: in 16 KiB frames each takes 64 of them,
/// and every frame is framed, copied and accounted for on its own. Each side advertises what it
/// accepts, so uploads take the server's setting and downloads the client's: on the machine of
/// `BENCHMARKS.md`, 256 MiB downloads ran at 730–770 MiB/s to a client with 16 KiB frames and
/// 930–955 to one with these.
pub const HTTP2_MAX_FRAME_BYTES: u32 = 256 << 10;

/// How much longer than the engine's shutdown grace connections may take to drain.
const DRAIN_MARGIN: Duration = Duration::from_secs(2);

/// Request headers a grpc-web client (a browser page on another origin) may send.
const GRPC_WEB_ALLOW_HEADERS: [&str; 6] =
    ["content-type", "x-grpc-web", "x-user-agent", "authorization", "grpc-timeout", "grpc-accept-encoding"];

/// Response headers a grpc-web client may read: a browser hides any other from a page on
/// another origin, and the status travels in headers when a call fails before any message.
const GRPC_WEB_EXPOSE_HEADERS: [&str; 4] =
    ["grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-encoding"];

/// CORS for grpc-web calls from browser pages on any origin: preflights are answered here, and
/// answers carry the headers a page needs to read the gRPC status. Credentials (cookies) are not
/// allowed; a bearer token travels in `authorization`, which is an allowed request header.
fn grpc_web_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::POST])
        .allow_headers(GRPC_WEB_ALLOW_HEADERS.map(HeaderName::from_static))
        .expose_headers(GRPC_WEB_EXPOSE_HEADERS.map(HeaderName::from_static))
        .max_age(Duration::from_secs(24 * 60 * 60))
}

/// Held for as long as a `conclave serve` process owns its SQLite database: SQLite mode is
/// single-node, and a second process on the same file would break the one-writer design.
#[derive(Debug)]
pub struct SqliteOwnership {
    _file: std::fs::File,
}

/// Takes ownership of the configured SQLite database for this process (released when the
/// process ends, however it ends); `None` for Postgres, which many processes share.
pub fn own_sqlite_database(config: &ServerConfig) -> Result<Option<SqliteOwnership>> {
    if !config.database_url.starts_with("sqlite:") {
        return Ok(None);
    }
    let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&config.database_url)
        .map_err(|err| Error::invalid("database_url", format!("`{}` is not a valid SQLite URL: {err}", config.database_url)))?;
    let database = options.get_filename().to_path_buf();
    if let Some(parent) = database.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|err| Error::invalid("data_dir", format!("cannot create {}: {err}", parent.display())))?;
    }
    let lock_path = database.with_extension("db.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| Error::invalid("data_dir", format!("cannot open {}: {err}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(SqliteOwnership { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::precondition(
            "DATABASE_IN_USE",
            format!(
                "another conclave process is using the SQLite database {}; SQLite mode is single-node: stop the other process, give this one another --data-dir, or use Postgres (--database-url postgres://...) to run several processes",
                database.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(err)) => Err(Error::Unavailable(format!("cannot lock {}: {err}", lock_path.display()))),
    }
}

/// Opens the configured store and builds an engine with the built-in kinds.
pub async fn build_engine(config: &ServerConfig) -> Result<Engine> {
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).map_err(|err| {
            Error::invalid("data_dir", format!("cannot create {}: {err}", config.data_dir.display()))
        })?;
    }
    let store = store::open(&config.database_url, config.db_max_connections).await?;
    let registry = workflows::builtin_registry(config.shell.clone());
    let router = Arc::new(config.models.build(store.clone())?);
    let artifacts = Arc::new(Artifacts::open(store.clone(), config.artifacts.clone())?);
    Ok(Engine::new(store, registry, router, artifacts, config.engine.clone()))
}

/// What the gRPC services take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Largest gRPC message accepted or sent (an artifact chunk, never an artifact).
    pub max_message_bytes: usize,
    /// Tasks running at once at most.
    pub max_running_tasks: u32,
    /// The remote skills registry `ImportSkill` reads, if one is configured.
    pub skills_registry: Option<workflows::stage::RegistrySettings>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { max_message_bytes: 16 << 20, max_running_tasks: 4, skills_registry: None }
    }
}

/// The server's HTTP/2 settings, before its layers and services.
pub(crate) fn http2_server() -> Server {
    Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        // Room for a few 1 MiB upload messages in flight per stream, so a client streaming an
        // artifact is not held up waiting for window updates after every message.
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .max_frame_size(HTTP2_MAX_FRAME_BYTES)
}

/// The connections accepted on `listener`, with TCP_NODELAY: a stream's last event or a small
/// answer must not wait ~40 ms for Nagle.
pub(crate) fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Serves the API on `listener` until `shutdown` resolves, then shuts down gracefully. The
/// engine must have been started (or not, for an API-only server) by the caller.
pub async fn serve(engine: Engine, listener: TcpListener, options: ServeOptions, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
    let max_message_bytes = options.max_message_bytes;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<RunServiceServer<RunApi>>().await;
    health.set_serving::<WorkerServiceServer<WorkerApi>>().await;
    health.set_serving::<AdminServiceServer<AdminApi>>().await;
    health.set_serving::<ModelServiceServer<ModelApi>>().await;
    health.set_serving::<ArtifactServiceServer<ArtifactApi>>().await;
    health.set_serving::<DebateServiceServer<DebateApi>>().await;
    health.set_serving::<MissionServiceServer<MissionApi>>().await;
    health.set_serving::<TaskServiceServer<TaskApi>>().await;
    health.set_serving::<SkillServiceServer<SkillApi>>().await;
    health.set_serving::<RecipeServiceServer<RecipeApi>>().await;
    health.set_serving::<CardServiceServer<CardApi>>().await;
    health.set_service_status("", tonic_health::ServingStatus::Serving).await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // So clients (grpcurl among them) can decode the ErrorInfo and BadRequest details.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(|err| Error::Internal(format!("reflection v1: {err}")))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|err| Error::Internal(format!("reflection v1alpha: {err}")))?;

    let runs = RunServiceServer::new(RunApi::new(engine.clone()))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let workers = WorkerServiceServer::new(WorkerApi::new(engine.clone()))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let admin = AdminServiceServer::new(AdminApi::new(engine.clone()));
    let models = ModelServiceServer::new(ModelApi::new(engine.router().clone()))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    // Content is chunked, so the message limit bounds a chunk, never an artifact.
    let artifacts = ArtifactServiceServer::new(ArtifactApi::new(engine.artifacts().clone()))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let debates = DebateServiceServer::new(DebateApi::new(engine.clone()))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let missions = MissionServiceServer::new(MissionApi::new(engine.clone()))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let tasks = TaskServiceServer::new(TaskApi::new(engine.clone(), options.max_running_tasks))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let skills = SkillServiceServer::new(SkillApi::new(engine.clone(), options.skills_registry.clone()))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let recipes = RecipeServiceServer::new(RecipeApi::new(engine.clone()))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    let cards = CardServiceServer::new(CardApi::new(engine.clone()))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes);
    // Cards whose run ended are settled (unlocked, advanced) by a sweep in every server.
    tokio::spawn(workflows::stage::Cards::new(engine.clone()).sweep_until(engine.shutdown_token()));

    let stopping = engine.shutdown_token();
    let on_shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, ending streams");
        health.set_not_serving::<RunServiceServer<RunApi>>().await;
        health.set_not_serving::<WorkerServiceServer<WorkerApi>>().await;
        health.set_not_serving::<AdminServiceServer<AdminApi>>().await;
        health.set_not_serving::<ModelServiceServer<ModelApi>>().await;
        health.set_not_serving::<ArtifactServiceServer<ArtifactApi>>().await;
        health.set_not_serving::<DebateServiceServer<DebateApi>>().await;
        health.set_not_serving::<MissionServiceServer<MissionApi>>().await;
        health.set_not_serving::<TaskServiceServer<TaskApi>>().await;
        health.set_not_serving::<SkillServiceServer<SkillApi>>().await;
        health.set_not_serving::<RecipeServiceServer<RecipeApi>>().await;
        health.set_not_serving::<CardServiceServer<CardApi>>().await;
        health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        stopping.cancel();
    };

    let server = http2_server()
        // grpc-web beside native gRPC on the same port: browsers speak grpc-web over HTTP/1.1 (or
        // HTTP/2 behind TLS). CORS answers preflights before the grpc-web layer sees them. Native
        // gRPC over HTTP/2 passes through both layers untouched (its body is not re-wrapped or
        // buffered), and grpc-web bodies are translated frame by frame as they stream.
        .accept_http1(true)
        .layer(grpc_web_cors())
        .layer(GrpcWebLayer::new())
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(runs)
        .add_service(workers)
        .add_service(admin)
        .add_service(models)
        .add_service(artifacts)
        .add_service(debates)
        .add_service(missions)
        .add_service(tasks)
        .add_service(skills)
        .add_service(recipes)
        .add_service(cards)
        .serve_with_incoming_shutdown(incoming(listener), on_shutdown);
    tokio::pin!(server);
    let stopping = engine.shutdown_token();
    let served = tokio::select! {
        // The server ended by itself (a listener failure): stop the engine too.
        result = &mut server => result,
        // Shutdown began: drain connections and stop the engine side by side. The drain is
        // bounded, because a client that stopped reading (its data stuck in flow control) or an
        // open health watch would otherwise hold the process up forever.
        () = stopping.cancelled() => {
            let drain_limit = engine.config().shutdown_grace + DRAIN_MARGIN;
            let drain = async {
                match tokio::time::timeout(drain_limit, &mut server).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(?drain_limit, "connections still open after the drain limit; closing them");
                        Ok(())
                    }
                }
            };
            let (served, ()) = tokio::join!(drain, engine.shutdown());
            return served.map_err(|err| Error::Internal(format!("gRPC server: {err}")));
        }
    };
    engine.shutdown().await;
    served.map_err(|err| Error::Internal(format!("gRPC server: {err}")))
}
