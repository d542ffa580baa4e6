//! Model calls end to end, through a real server and the generated clients: the `generate`
//! kind journals one call with what produced it; `ReplayRun` re-executes a finished run from its
//! journal with every provider unreachable and gets the same output and workflow events, reports
//! a divergence precisely, and replays from a step onward live; `ModelService` serves as an LLM
//! gateway (providers with their circuits, unary and streamed calls, typed failures, figures);
//! and a remote `conclave worker` makes its runs' model calls through its server.

mod support;

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use conclave::{
    domain::RunId,
    engine::{RunContext, Workflow, WorkflowError},
    models::{determinism, ModelRequest, ModelsConfig, Origin, RouterSettings},
    proto::{self, model_service_client::ModelServiceClient},
};
use serde_json::{json, Value};
use support::{create, fast_config, test_registry, wait_for_state, StepCounter, TestDatabase, TestServer};
use tonic::{transport::Channel, Code};
use tonic_types::StatusExt;

const WAIT: Duration = Duration::from_secs(20);

/// `council`: an author proposes, two reviewers answer, each a model call of its own role; each
/// answer is also a workflow event. The output is every answer and which provider gave it.
struct Council;

#[async_trait]
impl Workflow for Council {
    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let topic = ctx.input().get("topic").and_then(Value::as_str).unwrap_or("the plan").to_owned();
        let mut answers = Vec::new();
        for (key, role) in [("propose", "author"), ("review-1", "reviewer"), ("review-2", "reviewer")] {
            let mut request = ModelRequest::prompt(format!("{role}: say something about {topic}"));
            request.origin = Origin { role: Some(role.to_owned()), ..Origin::default() };
            let call = ctx.generate(key, request, Some("council-v1")).await?;
            ctx.emit("transcript.message", json!({ "role": role, "text": call.text })).await?;
            answers.push(json!({ "key": key, "text": call.text, "provider": call.provider, "seed": call.seed }));
        }
        Ok(json!({ "answers": answers }))
    }
}

/// `versioned`: one model call whose step key carries the workflow's version, to make a
/// replay diverge once the version changes.
struct Versioned(Arc<AtomicUsize>);

#[async_trait]
impl Workflow for Versioned {
    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let first = ctx.generate("intro", ModelRequest::prompt("hello"), None).await?;
        let key = format!("v{}-call", self.0.load(Ordering::SeqCst));
        let second = ctx.generate(&key, ModelRequest::prompt("and then?"), None).await?;
        Ok(json!({ "texts": [first.text, second.text] }))
    }
}

fn registry(version: &Arc<AtomicUsize>) -> conclave::engine::Registry {
    let mut registry = test_registry(&StepCounter::default());
    registry.register("council", Council).register("versioned", Versioned(version.clone()));
    registry
}

/// A router whose every provider is unreachable (nothing listens on port 9).
fn unreachable() -> ModelsConfig {
    let file: toml::Table = toml::from_str(
        "[providers.down]\ntype = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"none\"\n\
         [providers.also-down]\ntype = \"anthropic\"\nbase_url = \"http://127.0.0.1:9\"\nmodel = \"none\"\n",
    )
    .expect("toml");
    models(file, &["down", "also-down"])
}

fn models(file: toml::Table, chain: &[&str]) -> ModelsConfig {
    let providers = file["providers"].clone().try_into().expect("providers");
    ModelsConfig { providers, router: RouterSettings { chain: chain.iter().map(|name| (*name).to_owned()).collect(), ..RouterSettings::default() } }
}

async fn run_to_success(client: &mut proto::run_service_client::RunServiceClient<Channel>, request: proto::CreateRunRequest) -> proto::Run {
    let run = client.create_run(request).await.expect("create").into_inner();
    let run = wait_for_state(client, &run.id, &[proto::RunState::Succeeded, proto::RunState::Failed], WAIT).await;
    assert_eq!(run.state(), proto::RunState::Succeeded, "{:?}", run.error);
    run
}

fn output(run: &proto::Run) -> Value {
    let struct_value = run.output.clone().expect("output");
    serde_json::to_value(conclave_json(&struct_value)).expect("json")
}

fn conclave_json(value: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &value.kind {
        Some(Kind::StringValue(text)) => Value::String(text.clone()),
        Some(Kind::NumberValue(number)) => json!(number),
        Some(Kind::BoolValue(flag)) => json!(flag),
        Some(Kind::StructValue(object)) => Value::Object(object.fields.iter().map(|(k, v)| (k.clone(), conclave_json(v))).collect()),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(conclave_json).collect()),
        Some(Kind::NullValue(_)) | None => Value::Null,
    }
}

/// The workflow events of a run, as (type, data).
async fn workflow_events(client: &mut proto::run_service_client::RunServiceClient<Channel>, id: &str) -> Vec<(String, Value)> {
    let mut stream = client.watch_run(proto::WatchRunRequest { id: id.to_owned(), after_sequence: 0 }).await.expect("watch").into_inner();
    let mut events = Vec::new();
    while let Some(message) = stream.message().await.expect("event stream") {
        for event in message.events {
            if let Some(proto::run_event::Event::Workflow(workflow)) = event.event {
                let data = workflow.data.map(|data| conclave_json(&prost_types::Value { kind: Some(prost_types::value::Kind::StructValue(data)) }));
                events.push((workflow.r#type, data.unwrap_or(Value::Null)));
            }
        }
    }
    events
}

async fn log_text(client: &mut proto::run_service_client::RunServiceClient<Channel>, id: &str) -> String {
    let mut stream = client.tail_logs(proto::TailLogsRequest { id: id.to_owned(), after_sequence: 0, follow: false }).await.expect("tail").into_inner();
    let mut text = Vec::new();
    while let Some(message) = stream.message().await.expect("log stream") {
        text.extend(message.lines.into_iter().map(|line| line.text));
    }
    text.join("\n")
}

async fn the_generate_kind_journals_one_call_with_what_produced_it(database: &TestDatabase) {
    let server = TestServer::start(&database.url, registry(&Arc::default()), fast_config()).await;
    let mut client = server.client().await;
    let run = run_to_success(&mut client, create("generate", json!({ "prompt": "Summarise the plan in one line", "role": "author", "prompt_version": "v7" }))).await;
    let call = output(&run);
    let id: RunId = run.id.parse().expect("run id");
    assert_eq!(call["provider"], "mock");
    assert_eq!(call["link"], 0.0);
    assert!(call["text"].as_str().is_some_and(|text| text.contains("Summarise the plan")), "{call}");
    assert_eq!(call["seed"], json!(determinism::seed_for(id, "generate") as f64), "the seed is derived from run and step");
    assert_eq!(call["params"]["temperature"], 0.0);
    assert_eq!(call["prompt_version"], "v7");
    assert_eq!(call["prompt_hash"].as_str().map(str::len), Some(64));
    assert!(call["fingerprint"].as_str().is_some_and(|f| f.starts_with("mock-")));
    assert!(call["usage"]["output_tokens"].as_f64().is_some_and(|tokens| tokens > 0.0));
    let logs = log_text(&mut client, &run.id).await;
    assert!(logs.contains(call["text"].as_str().unwrap_or_default()), "the streamed answer is in the log: {logs}");

    let refused = client.create_run(create("generate", json!({ "prompt": "" }))).await.expect_err("an empty prompt");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(support::bad_fields(&refused).contains(&"input.prompt".to_owned()), "{refused:?}");
    server.shutdown().await;
}

async fn a_replay_gives_the_same_output_and_events_with_every_provider_unreachable(database: &TestDatabase) {
    let version = Arc::default();
    let first = TestServer::start(&database.url, registry(&version), fast_config()).await;
    let mut client = first.client().await;
    let original = run_to_success(&mut client, create("council", json!({ "topic": "the migration" }))).await;
    let original_events = workflow_events(&mut client, &original.id).await;
    assert_eq!(original_events.len(), 3);
    first.shutdown().await;

    let second = TestServer::start_with_models(&database.url, registry(&version), fast_config(), unreachable()).await;
    let mut client = second.client().await;
    let request = proto::ReplayRunRequest { id: original.id.clone(), from_step: String::new(), request_id: "replay-1".into() };
    let replay = client.replay_run(request.clone()).await.expect("replay").into_inner();
    assert_eq!((replay.replay_of.as_str(), replay.replay_mode()), (original.id.as_str(), proto::ReplayMode::Exact));
    let again = client.replay_run(request).await.expect("the same request_id").into_inner();
    assert_eq!(again.id, replay.id, "a repeated request_id returns the same replay");
    let replayed = wait_for_state(&mut client, &replay.id, &[proto::RunState::Succeeded, proto::RunState::Failed], WAIT).await;
    assert_eq!(replayed.state(), proto::RunState::Succeeded, "{:?}", replayed.error);
    assert_eq!(output(&replayed), output(&original), "the replay's output is the original's");
    assert_eq!(workflow_events(&mut client, &replay.id).await, original_events, "and so are its workflow events");
    assert_eq!(second.engine.router().stats().requests, 0, "no provider was asked");

    // The same run, executed live on this router, cannot reach a provider: proof the replay did not try.
    let live = client.create_run(create("council", json!({ "topic": "the migration" }))).await.expect("create").into_inner();
    let live = wait_for_state(&mut client, &live.id, &[proto::RunState::Succeeded, proto::RunState::Failed, proto::RunState::Queued], WAIT).await;
    let live = if live.state() == proto::RunState::Queued {
        client.force_fail_run(proto::ForceFailRunRequest { id: live.id, reason: "unreachable providers keep retrying".into() }).await.expect("force").into_inner()
    } else {
        live
    };
    assert_ne!(live.state(), proto::RunState::Succeeded);
    second.shutdown().await;
}

async fn a_replay_that_asks_for_an_unjournaled_step_reports_the_divergence(database: &TestDatabase) {
    let version = Arc::new(AtomicUsize::new(1));
    let server = TestServer::start(&database.url, registry(&version), fast_config()).await;
    let mut client = server.client().await;
    let original = run_to_success(&mut client, create("versioned", json!({}))).await;
    version.store(2, Ordering::SeqCst);
    let replay = client
        .replay_run(proto::ReplayRunRequest { id: original.id.clone(), ..Default::default() })
        .await
        .expect("replay")
        .into_inner();
    let replayed = wait_for_state(&mut client, &replay.id, &[proto::RunState::Succeeded, proto::RunState::Failed], WAIT).await;
    assert_eq!(replayed.state(), proto::RunState::Failed);
    let error = replayed.error.expect("error");
    assert_eq!(error.code(), proto::ErrorCode::ReplayDiverged);
    assert!(!error.retryable);
    for expected in ["`v2-call`", &original.id, "intro", "v1-call"] {
        assert!(error.message.contains(expected), "the message names {expected}: {}", error.message);
    }
    server.shutdown().await;
}

async fn a_replay_from_a_step_keeps_the_steps_before_it_and_runs_the_rest_live(database: &TestDatabase) {
    let server = TestServer::start(&database.url, registry(&Arc::default()), fast_config()).await;
    let mut client = server.client().await;
    let original = run_to_success(&mut client, create("council", json!({ "topic": "caching" }))).await;
    let replay = client
        .replay_run(proto::ReplayRunRequest { id: original.id.clone(), from_step: "review-1".into(), request_id: String::new() })
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(replay.replay_mode(), proto::ReplayMode::FromStep);
    let replayed = wait_for_state(&mut client, &replay.id, &[proto::RunState::Succeeded, proto::RunState::Failed], WAIT).await;
    assert_eq!(replayed.state(), proto::RunState::Succeeded, "{:?}", replayed.error);
    let (before, after) = (output(&original), output(&replayed));
    assert_eq!(before["answers"][0], after["answers"][0], "the step before `review-1` comes from the journal");
    for index in [1, 2] {
        assert_ne!(before["answers"][index]["seed"], after["answers"][index]["seed"], "step {index} ran live, seeded for the new run");
        assert_ne!(before["answers"][index]["text"], after["answers"][index]["text"]);
    }

    let unknown = client
        .replay_run(proto::ReplayRunRequest { id: original.id.clone(), from_step: "review-9".into(), request_id: String::new() })
        .await
        .expect_err("no such step");
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(unknown.message().contains("propose, review-1, review-2"), "it lists the steps: {}", unknown.message());
    let waiting = client.create_run(create("approval", json!({}))).await.expect("create").into_inner();
    let unfinished = client.replay_run(proto::ReplayRunRequest { id: waiting.id, ..Default::default() }).await.expect_err("unfinished");
    assert_eq!(unfinished.code(), Code::FailedPrecondition);
    server.shutdown().await;
}

async fn model_service_is_a_gateway_with_typed_failures(database: &TestDatabase) {
    let file: toml::Table = toml::from_str(
        "[providers.mock]\ntype = \"mock\"\n\
         [providers.limited]\ntype = \"mock\"\n[[providers.limited.script]]\nfail = \"rate_limited\"\nretry_after_ms = 90000\n",
    )
    .expect("toml");
    let mut config = models(file, &["mock"]);
    config.router.roles = BTreeMap::from([("grumpy".to_owned(), vec!["limited".to_owned()])]);
    config.router.max_wait_seconds = Some(0.0);
    let server = TestServer::start_with_models(&database.url, registry(&Arc::default()), fast_config(), config).await;
    let channel = Channel::from_shared(format!("http://{}", server.addr)).expect("uri").connect().await.expect("connect");
    let mut models = ModelServiceClient::new(channel);
    let ask = |role: &str, text: &str| proto::GenerateRequest {
        role: role.to_owned(),
        messages: vec![proto::ChatMessage { role: proto::ChatRole::User as i32, content: text.to_owned() }],
        ..Default::default()
    };

    let answer = models.generate(ask("", "What is a circuit breaker?")).await.expect("generate").into_inner();
    assert_eq!((answer.provider.as_str(), answer.link), ("mock", 0));
    assert!(answer.text.contains("circuit breaker"), "{}", answer.text);
    assert_eq!(answer.params.as_ref().and_then(|params| params.temperature), Some(0.0));

    let mut stream = models.stream_generate(ask("", "Stream this answer please")).await.expect("stream").into_inner();
    let (mut pieces, mut done) = (String::new(), None);
    while let Some(message) = stream.message().await.expect("stream item") {
        match message.item {
            Some(proto::stream_generate_response::Item::Delta(piece)) => pieces.push_str(&piece),
            Some(proto::stream_generate_response::Item::Done(answer)) => done = Some(answer),
            None => {}
        }
    }
    let done = done.expect("the stream ends with the answer");
    assert!(!pieces.is_empty());
    assert_eq!(pieces, done.text, "the pieces make the answer");

    let limited = models.generate(ask("grumpy", "hello")).await.expect_err("rate limited");
    assert_eq!(limited.code(), Code::ResourceExhausted);
    let info = limited.get_error_details().error_info().cloned().expect("ErrorInfo");
    assert_eq!(info.reason, "RATE_LIMITED");
    assert_eq!(info.metadata.get("provider").map(String::as_str), Some("limited"));
    assert!(info.metadata.contains_key("retry_after_ms"), "{:?}", info.metadata);

    let providers = models.list_providers(proto::ListProvidersRequest {}).await.expect("list").into_inner();
    let limited = providers.providers.iter().find(|provider| provider.name == "limited").expect("listed");
    assert_eq!(limited.r#type, "mock");
    assert_eq!(limited.circuit_state(), proto::CircuitState::Open, "a 90 s Retry-After opened its circuit");
    assert!(limited.cooldown_remaining.as_ref().is_some_and(|left| left.seconds > 60));
    assert_eq!(providers.default_chain, ["mock"]);
    assert_eq!(providers.role_chains["grumpy"].providers, ["limited"]);

    let stats = models.get_router_stats(proto::GetRouterStatsRequest {}).await.expect("stats").into_inner();
    assert_eq!((stats.requests, stats.failed), (3, 1));
    let mock = stats.providers.iter().find(|provider| provider.provider == "mock").expect("mock figures");
    assert_eq!((mock.calls, mock.successes), (2, 2));
    let limited = stats.providers.iter().find(|provider| provider.provider == "limited").expect("limited figures");
    assert_eq!(limited.failures.get("rate_limited"), Some(&1));

    for (request, field) in [
        (proto::GenerateRequest::default(), "messages"),
        (proto::GenerateRequest { temperature: Some(3.0), ..ask("", "x") }, "temperature"),
        (proto::GenerateRequest { provider: "nobody".into(), ..ask("", "x") }, "provider"),
        (proto::GenerateRequest { model: "gpt".into(), ..ask("", "x") }, "model"),
    ] {
        let refused = models.generate(request).await.expect_err("bad request");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(support::bad_fields(&refused).contains(&field.to_owned()), "{field}: {refused:?}");
    }
    server.shutdown().await;
}

on_both_stores!(
    the_generate_kind_journals_one_call_with_what_produced_it,
    a_replay_gives_the_same_output_and_events_with_every_provider_unreachable,
    a_replay_that_asks_for_an_unjournaled_step_reports_the_divergence,
    a_replay_from_a_step_keeps_the_steps_before_it_and_runs_the_rest_live,
    model_service_is_a_gateway_with_typed_failures,
);

/// A remote `conclave worker` runs a `generate` run: its model call goes through the server's
/// `ModelService`, and is journaled like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_worker_calls_models_through_its_server() {
    let database = support::Backend::Sqlite.database().await.expect("database");
    let server = TestServer::start(&database.url, registry(&Arc::default()), conclave::engine::EngineConfig { worker_slots: 0, ..fast_config() }).await;
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(["worker", "--server", &format!("http://{}", server.addr), "--kind", "generate"])
        .env("CONCLAVE_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the worker");
    let mut client = server.client().await;
    let run = run_to_success(&mut client, create("generate", json!({ "prompt": "From afar" }))).await;
    let call = output(&run);
    assert_eq!(call["provider"], "mock");
    let id: RunId = run.id.parse().expect("run id");
    assert_eq!(call["seed"], json!(determinism::seed_for(id, "generate") as f64), "the worker derived the step's seed");
    assert_eq!(server.engine.router().stats().requests, 1, "the server's router answered");
    let _ = worker.kill();
    let _ = worker.wait();
    server.shutdown().await;
}

