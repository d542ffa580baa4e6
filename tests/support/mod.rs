//! Shared test harness: fresh stores on both backends, a real server on a free port in its own
//! runtime (so a test can crash it by dropping the runtime), and the generated Rust client.
//!
//! Postgres tests use `CONCLAVE_TEST_DATABASE_URL` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5433/postgres`); each test gets a database of its own. When
//! the variable is unset the Postgres half of a test is skipped, except under `CI`, where it fails.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_trait::async_trait;
use conclave::{
    artifacts::{Artifacts, ArtifactsConfig},
    domain::LogStream,
    engine::{Engine, EngineConfig, Registry, RunContext, Workflow, WorkflowError},
    engine::lifecycle::RetryPolicy,
    models::ModelsConfig,
    proto::{self, run_service_client::RunServiceClient},
    store::{self, SharedStore},
    workflows::{self, ShellConfig},
};
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database for one test; dropping it removes the database.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    cleanup: Option<(String, String)>,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.cleanup.take() {
            let _ = std::fs::remove_dir_all(artifacts_dir(&self.url));
            // Best effort, on a thread of its own: the test's runtime may be gone.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                runtime.block_on(async {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.ok()
                })
            })
            .join();
        }
    }
}

/// The Postgres admin URL, if this machine has one; panics under CI when it is missing, so a
/// CI run without Postgres fails instead of skipping half the suite.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("CONCLAVE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but CONCLAVE_TEST_DATABASE_URL is not: the Postgres tests must run in CI (see scripts/test)")
        }
        _ => None,
    }
}

impl Backend {
    /// A fresh, empty database; `None` when Postgres is unavailable outside CI.
    pub async fn database(self) -> Option<TestDatabase> {
        match self {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("conclave.db").display());
                Some(TestDatabase { url, _dir: Some(dir), cleanup: None })
            }
            Backend::Postgres => {
                let admin = postgres_admin_url()?;
                use sqlx::Connection;
                let name = format!("conclave_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the Postgres admin URL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
                let url = format!("{base}/{name}");
                Some(TestDatabase { url, _dir: None, cleanup: Some((admin.clone(), name)) })
            }
        }
    }
}

/// The artifact directory of a test database: beside a SQLite file (removed with it), or a
/// directory named after a Postgres database (removed when the database is dropped). A server
/// restarted on the same database finds the same artifacts.
pub fn artifacts_dir(database_url: &str) -> std::path::PathBuf {
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        return std::path::Path::new(path).parent().map_or_else(|| "artifacts".into(), |dir| dir.join("artifacts"));
    }
    let name = database_url.rsplit('/').next().unwrap_or("database");
    std::env::temp_dir().join("conclave-test-artifacts").join(name)
}

/// Opens a store on a test database.
pub async fn open_store(database: &TestDatabase) -> SharedStore {
    store::open(&database.url, 8).await.expect("open store")
}

/// Engine settings with short intervals, so rescue, retries and heartbeats happen in test time.
pub fn fast_config() -> EngineConfig {
    EngineConfig {
        worker_slots: 16,
        lease_ttl: Duration::from_millis(1500),
        heartbeat_interval: Duration::from_millis(300),
        maintenance_interval: Duration::from_millis(200),
        poll_interval: Duration::from_millis(500),
        retry: RetryPolicy { base: Duration::from_millis(50), max: Duration::from_millis(400) },
        cancel_grace: Duration::from_millis(1000),
        shutdown_grace: Duration::from_millis(1000),
        stream_heartbeat: Duration::from_millis(500),
        ..EngineConfig::default()
    }
}

/// Counts how often each journaled step body really ran, across engines (so across "crashes").
#[derive(Debug, Default, Clone)]
pub struct StepCounter(Arc<Mutex<HashMap<String, usize>>>);

impl StepCounter {
    pub fn bump(&self, key: String) {
        *self.0.lock().unwrap().entry(key).or_default() += 1;
    }

    pub fn get(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }
}

/// `steps`: a test kind running `count` journaled steps of `step_ms` each, logging a line per
/// step and counting each real execution in a [`StepCounter`]; `fail_attempts` makes the first
/// attempts fail after their steps.
pub struct Steps {
    pub counter: StepCounter,
}

#[async_trait]
impl Workflow for Steps {
    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let count = ctx.input().get("count").and_then(Value::as_u64).unwrap_or(3);
        let step_ms = ctx.input().get("step_ms").and_then(Value::as_u64).unwrap_or(0);
        let fail_attempts = ctx.input().get("fail_attempts").and_then(Value::as_u64).unwrap_or(0);
        let mut total = 0u64;
        for index in 0..count {
            let key = format!("step-{index}");
            let counter = self.counter.clone();
            let counted = format!("{}/{key}", ctx.run_id());
            let value: u64 = ctx
                .step(&key, || async move {
                    tokio::time::sleep(Duration::from_millis(step_ms)).await;
                    counter.bump(counted);
                    Ok(index * 10)
                })
                .await?;
            ctx.log(LogStream::Stdout, &format!("step {index} = {value}")).await;
            total += value;
        }
        if u64::from(ctx.attempt()) <= fail_attempts {
            return Err(WorkflowError::retryable(format!("planned failure of attempt {}", ctx.attempt())));
        }
        Ok(json!({ "total": total }))
    }
}

/// `stubborn`: ignores cancellation and sleeps for `ms`, to exercise forced stops.
pub struct Stubborn;

#[async_trait]
impl Workflow for Stubborn {
    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let ms = ctx.input().get("ms").and_then(Value::as_u64).unwrap_or(60_000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(json!({}))
    }
}

/// The built-in kinds (with `shell` enabled) plus the test kinds.
pub fn test_registry(counter: &StepCounter) -> Registry {
    let mut registry = workflows::builtin_registry(ShellConfig { enabled: true, ..ShellConfig::default() });
    registry.register("steps", Steps { counter: counter.clone() }).register("stubborn", Stubborn);
    registry
}

/// A real server on a free loopback port, running in a runtime of its own on a thread of its
/// own, so that a test can crash it: every task stops where it is.
pub struct TestServer {
    pub addr: SocketAddr,
    pub engine: Engine,
    stop: Option<oneshot::Sender<Stop>>,
    finished: Option<oneshot::Receiver<()>>,
}

enum Stop {
    Graceful,
    Crash,
}

impl TestServer {
    /// Starts a server (with its workers unless `config.worker_slots` is 0) on a database.
    pub async fn start(database_url: &str, registry: Registry, config: EngineConfig) -> TestServer {
        Self::start_with_models(database_url, registry, config, ModelsConfig::default()).await
    }

    /// Starts a server whose model router has these providers and chains.
    pub async fn start_with_models(database_url: &str, registry: Registry, config: EngineConfig, models: ModelsConfig) -> TestServer {
        let artifacts = ArtifactsConfig::in_dir(artifacts_dir(database_url));
        Self::start_full(database_url, registry, config, models, artifacts).await
    }

    /// Starts a server with these models and artifact settings.
    pub async fn start_full(
        database_url: &str,
        registry: Registry,
        config: EngineConfig,
        models: ModelsConfig,
        artifacts: ArtifactsConfig,
    ) -> TestServer {
        Self::start_with_options(database_url, registry, config, models, artifacts, conclave::server::ServeOptions::default()).await
    }

    /// Starts a server with these models, artifact settings and serving options.
    pub async fn start_with_options(
        database_url: &str,
        registry: Registry,
        config: EngineConfig,
        models: ModelsConfig,
        artifacts: ArtifactsConfig,
        options: conclave::server::ServeOptions,
    ) -> TestServer {
        let url = database_url.to_owned();
        let (ready_tx, ready) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel::<Stop>();
        let (finished_tx, finished) = oneshot::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let store = store::open(&url, 8).await.expect("open store");
                let router = Arc::new(models.build(store.clone()).expect("the models configuration"));
                let artifacts = Arc::new(Artifacts::open(store.clone(), artifacts).expect("the artifact directory"));
                let engine = Engine::new(store, registry, router, artifacts, config);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let addr = listener.local_addr().expect("local addr");
                let _ = ready_tx.send((engine.clone(), addr));
                engine.start();
                let (graceful_tx, graceful) = oneshot::channel::<()>();
                let serve = conclave::server::serve(engine, listener, options, async {
                    let _ = graceful.await;
                });
                tokio::pin!(serve);
                tokio::select! {
                    _ = &mut serve => {}
                    stop = stop_rx => match stop {
                        Ok(Stop::Graceful) | Err(_) => {
                            let _ = graceful_tx.send(());
                            let _ = serve.await;
                        }
                        Ok(Stop::Crash) => {}
                    },
                }
            });
            // Whatever is still running (after a crash) is dropped where it stands.
            runtime.shutdown_background();
            let _ = finished_tx.send(());
        });
        let (engine, addr) = ready.await.expect("server started");
        TestServer { addr, engine, stop: Some(stop), finished: Some(finished) }
    }

    /// A client connected to this server.
    pub async fn client(&self) -> RunServiceClient<Channel> {
        connect(self.addr).await
    }

    /// Graceful shutdown (as on SIGTERM); returns once the server has stopped.
    pub async fn shutdown(mut self) {
        self.stop_with(Stop::Graceful).await;
    }

    /// A crash: every task of the server stops where it is, nothing is flushed or released.
    pub async fn crash(mut self) {
        self.stop_with(Stop::Crash).await;
    }

    async fn stop_with(&mut self, how: Stop) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(how);
        }
        if let Some(finished) = self.finished.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), finished).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Stop::Crash);
        }
    }
}

/// A client of a server address.
pub async fn connect(addr: SocketAddr) -> RunServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect");
    RunServiceClient::new(channel).max_decoding_message_size(64 << 20)
}

/// A protobuf `Struct` from a JSON object literal.
pub fn input(value: Value) -> Option<prost_types::Struct> {
    let Value::Object(map) = value else { panic!("input must be a JSON object") };
    Some(to_struct(&map))
}

/// JSON from a protobuf `Value` (numbers are `f64`).
pub fn from_value(value: prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(list)) => Value::Array(list.values.into_iter().map(from_value).collect()),
        Some(Kind::StructValue(object)) => Value::Object(object.fields.into_iter().map(|(key, value)| (key, from_value(value))).collect()),
    }
}

fn to_struct(map: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct { fields: map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect() }
}

fn to_value(value: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue { values: items.iter().map(to_value).collect() }),
        Value::Object(map) => Kind::StructValue(to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A create request for a kind and input.
pub fn create(kind: &str, input_json: Value) -> proto::CreateRunRequest {
    proto::CreateRunRequest { kind: kind.to_owned(), input: input(input_json), ..Default::default() }
}

/// Polls until the run is in one of `states`, or panics after `timeout`.
pub async fn wait_for_state(client: &mut RunServiceClient<Channel>, id: &str, states: &[proto::RunState], timeout: Duration) -> proto::Run {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let run = client.get_run(proto::GetRunRequest { id: id.to_owned() }).await.expect("get run").into_inner();
        if states.iter().any(|state| run.state == *state as i32) {
            return run;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("run {id} stayed {:?}, expected one of {states:?}", proto::RunState::try_from(run.state));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `ErrorInfo.reason` of a status.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status.get_details_error_info().map(|info| info.reason).unwrap_or_default()
}

/// The fields named by a status's `BadRequest` violations.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Runs a test body once per backend (Postgres skipped outside CI when unavailable).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let database = $crate::support::Backend::Sqlite.database().await.unwrap();
                    super::$name(&database).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(database) = $crate::support::Backend::Postgres.database().await else {
                        eprintln!("skipped: set CONCLAVE_TEST_DATABASE_URL to run the Postgres half");
                        return;
                    };
                    super::$name(&database).await;
                }
            }
        )*
    };
}

/// A process-unique counter, for names.
pub fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
