//! The `openai` and `anthropic` adapters against local servers that speak each provider's wire
//! format and record what they received: the exact bodies and headers sent, whole and streamed
//! answers, and how every kind of failure is classified (statuses, error bodies, timeouts,
//! truncated streams, malformed answers, refused connections).

use std::{
    convert::Infallible,
    future::Future,
    sync::{Arc, Mutex, Once},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, Response, StatusCode},
    routing::post,
};
use conclave::models::{
    AnthropicConfig, AnthropicProvider, AppliedParams, CallFailure, Completion, FailureClass, Message, ModelRequest, OpenAiConfig, OpenAiProvider,
    Provider, Role, Sampling, Usage,
};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// Long enough to prove only that nothing hung, even on a loaded machine.
const NOT_HUNG: Duration = Duration::from_secs(5);

const OPENAI_KEY_VARIABLE: &str = "CONCLAVE_PROVIDERS_HTTP_TEST_OPENAI_KEY";
const OPENAI_KEY: &str = "sk-test-openai-5d1f0c9a7b";
const ANTHROPIC_KEY_VARIABLE: &str = "CONCLAVE_PROVIDERS_HTTP_TEST_ANTHROPIC_KEY";
const ANTHROPIC_KEY: &str = "sk-ant-test-8e2b64f1c3";
/// A variable no test sets: a provider configured with it sends no key.
const UNSET_KEY_VARIABLE: &str = "CONCLAVE_PROVIDERS_HTTP_TEST_UNSET_KEY";

/// Puts the test keys in the environment, once, before anything else in the process runs.
fn set_keys() {
    static KEYS: Once = Once::new();
    KEYS.call_once(|| {
        // SAFETY: every test calls this first, and `call_once` holds back every other caller
        // until it returns, so no other thread of this process reads the environment meanwhile.
        unsafe {
            std::env::set_var(OPENAI_KEY_VARIABLE, OPENAI_KEY);
            std::env::set_var(ANTHROPIC_KEY_VARIABLE, ANTHROPIC_KEY);
            std::env::remove_var(UNSET_KEY_VARIABLE);
        }
    });
}

/// One request a test server received.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }
}

/// A local server on an ephemeral port, answering every POST to one path.
struct Server {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    /// The one request the server received.
    fn request(&self) -> Received {
        let received = self.received.lock().unwrap();
        assert_eq!(received.len(), 1, "requests received: {received:?}");
        received[0].clone()
    }
}

/// Serves `path`, answering each request's JSON body with `respond`.
async fn serve<F, Fut>(path: &str, respond: F) -> Server
where
    F: Fn(Value) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    let app = Router::new().route(
        path,
        post(move |headers: HeaderMap, body: Bytes| {
            let respond = respond.clone();
            let log = log.clone();
            async move {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                log.lock().unwrap().push(Received { headers, body: body.clone() });
                respond(body).await
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server { url, received }
}

/// A URL where nothing listens (the port was just free).
async fn nobody_listening() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response<Body> {
    let mut response = Response::builder().status(StatusCode::from_u16(status).unwrap());
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response.body(body.into()).unwrap()
}

fn json_reply(status: u16, headers: &[(&str, &str)], body: &Value) -> Response<Body> {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    reply(status, &all, body.to_string())
}

/// An event stream of `events`, then (if given) the rest once `gate` opens, then its end.
fn event_stream(events: String, gate: Option<oneshot::Receiver<()>>, rest: String) -> Response<Body> {
    let head = futures::stream::iter([Ok::<_, Infallible>(events)]);
    let tail = futures::stream::once(async move {
        if let Some(gate) = gate {
            let _ = gate.await;
        }
        Ok(rest)
    });
    reply(200, &[("content-type", "text/event-stream"), ("cache-control", "no-cache")], Body::from_stream(head.chain(tail)))
}

/// An event stream that sends `events` and then nothing, never ending.
fn stalled_stream(events: String) -> Response<Body> {
    let head = futures::stream::iter([Ok::<_, Infallible>(events)]);
    reply(200, &[("content-type", "text/event-stream")], Body::from_stream(head.chain(futures::stream::pending())))
}

/// The two APIs, for the tests both must pass the same way.
#[derive(Debug, Clone, Copy)]
enum Api {
    OpenAi,
    Anthropic,
}

impl Api {
    const BOTH: [Api; 2] = [Api::OpenAi, Api::Anthropic];

    fn path(self) -> &'static str {
        match self {
            Api::OpenAi => "/v1/chat/completions",
            Api::Anthropic => "/v1/messages",
        }
    }

    fn key_variable(self) -> &'static str {
        match self {
            Api::OpenAi => OPENAI_KEY_VARIABLE,
            Api::Anthropic => ANTHROPIC_KEY_VARIABLE,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Api::OpenAi => OPENAI_KEY,
            Api::Anthropic => ANTHROPIC_KEY,
        }
    }

    /// A provider of this API against `url`, keyed by `key_variable`.
    fn provider_keyed(self, url: &str, key_variable: &str) -> Box<dyn Provider> {
        set_keys();
        match self {
            Api::OpenAi => Box::new(openai(url, json!({ "api_key_env": key_variable }))),
            Api::Anthropic => Box::new(anthropic(url, json!({ "api_key_env": key_variable }))),
        }
    }

    fn provider(self, url: &str) -> Box<dyn Provider> {
        self.provider_keyed(url, self.key_variable())
    }

    /// A stream of events carrying `pieces`, properly ended when `complete`.
    fn stream_of(self, pieces: &[&str], complete: bool) -> String {
        match self {
            Api::OpenAi => {
                let mut stream: String = pieces.iter().map(|piece| openai_chunk(json!({ "content": piece }), None)).collect();
                if complete {
                    stream.push_str(&openai_chunk(json!({}), Some("stop")));
                    stream.push_str("data: [DONE]\n\n");
                }
                stream
            }
            Api::Anthropic => {
                let mut stream = anthropic_start();
                stream.extend(pieces.iter().map(|piece| anthropic_event("content_block_delta", json!({ "index": 0, "delta": { "type": "text_delta", "text": piece } }))));
                if complete {
                    stream.push_str(&anthropic_end("end_turn", 3));
                }
                stream
            }
        }
    }

    /// A whole answer of `text`.
    fn whole_answer(self, text: &str) -> Value {
        match self {
            Api::OpenAi => json!({ "model": "gpt-test", "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }] }),
            Api::Anthropic => json!({ "type": "message", "model": "claude-test", "content": [{ "type": "text", "text": text }], "stop_reason": "end_turn" }),
        }
    }

    /// An answer (whole) whose body is valid JSON of the wrong shape for a completion.
    fn wrong_shape(self) -> Value {
        json!({ "id": "x", "object": "list", "data": [] })
    }
}

fn openai(url: &str, overrides: Value) -> OpenAiProvider {
    set_keys();
    let mut config = json!({ "base_url": format!("{url}/v1"), "api_key_env": OPENAI_KEY_VARIABLE, "model": "gpt-test" });
    merge(&mut config, overrides);
    OpenAiProvider::new("oa", serde_json::from_value::<OpenAiConfig>(config).unwrap()).unwrap()
}

fn anthropic(url: &str, overrides: Value) -> AnthropicProvider {
    set_keys();
    let mut config = json!({ "base_url": url, "api_key_env": ANTHROPIC_KEY_VARIABLE, "model": "claude-test" });
    merge(&mut config, overrides);
    AnthropicProvider::new("claude", serde_json::from_value::<AnthropicConfig>(config).unwrap()).unwrap()
}

fn merge(config: &mut Value, overrides: Value) {
    if let (Some(config), Value::Object(overrides)) = (config.as_object_mut(), overrides) {
        config.extend(overrides);
    }
}

/// A request with every sampling parameter set, as the router sends for determinism.
fn request() -> ModelRequest {
    let mut request = ModelRequest::prompt("Say hello");
    request.system = Some("Be brief.".to_owned());
    request.sampling = Sampling { temperature: Some(0.0), top_p: Some(0.9), seed: Some(42), max_tokens: Some(64) };
    request.stop = vec!["END".to_owned()];
    request.timeout = Duration::from_secs(30);
    request
}

async fn generate(provider: &dyn Provider, request: &ModelRequest) -> Result<Completion, CallFailure> {
    tokio::time::timeout(NOT_HUNG, provider.generate(request, None)).await.expect("the call hung")
}

/// Streams a call, returning its outcome and every piece the sink received.
async fn generate_streamed(provider: &dyn Provider, request: &ModelRequest) -> (Result<Completion, CallFailure>, Vec<String>) {
    let (sink, pieces) = mpsc::channel(64);
    let outcome = tokio::time::timeout(NOT_HUNG, provider.generate(request, Some(&sink))).await.expect("the call hung");
    drop(sink);
    (outcome, remaining(pieces).await)
}

/// A server at `path` streaming the events `sent_first`, then holding back the events
/// `held_back` until the sender returned fires.
async fn serve_held_back(path: &str, sent_first: String, held_back: String) -> (Server, oneshot::Sender<()>) {
    let (open, gate) = oneshot::channel();
    let gate = Arc::new(Mutex::new(Some(gate)));
    let server = serve(path, move |_| {
        let (sent_first, held_back, gate) = (sent_first.clone(), held_back.clone(), gate.lock().unwrap().take());
        async move { event_stream(sent_first, gate, held_back) }
    })
    .await;
    (server, open)
}

/// Streams a call to a server of [`serve_held_back`]: the first piece must arrive while the
/// rest is still held back (pieces are passed on as they come, not when the answer ends); then
/// `open` lets the rest go. Returns the first piece, the completion and the pieces after it.
async fn stream_held_back(provider: impl Provider, open: oneshot::Sender<()>) -> (String, Completion, Vec<String>) {
    let (sink, mut pieces) = mpsc::channel(64);
    let call = tokio::spawn(async move { provider.generate(&request(), Some(&sink)).await });
    let first = tokio::time::timeout(NOT_HUNG, pieces.recv()).await.expect("no piece arrived").unwrap();
    assert!(!call.is_finished(), "the first piece arrived while the answer was still being written");
    open.send(()).unwrap();
    let completion = tokio::time::timeout(NOT_HUNG, call).await.expect("the call hung").unwrap().unwrap();
    (first, completion, remaining(pieces).await)
}

/// Every piece still in the sink, once all its senders are gone.
async fn remaining(mut pieces: mpsc::Receiver<String>) -> Vec<String> {
    let mut received = Vec::new();
    while let Some(piece) = pieces.recv().await {
        received.push(piece);
    }
    received
}

/// The failure an API's provider reports for an error answer.
async fn failure_for(api: Api, status: u16, headers: &'static [(&'static str, &'static str)], body: Value) -> CallFailure {
    let server = serve(api.path(), move |_| {
        let body = body.clone();
        async move { json_reply(status, headers, &body) }
    })
    .await;
    generate(api.provider(&server.url).as_ref(), &request()).await.unwrap_err()
}

fn openai_error(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
}

fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({ "type": "error", "error": { "type": kind, "message": message }, "request_id": "req_test" })
}

/// An error body of an API's own shape, for failures classified by status alone.
fn error_body(api: Api, message: &str) -> Value {
    match api {
        Api::OpenAi => openai_error(message, "server_error", None),
        Api::Anthropic => anthropic_error("api_error", message),
    }
}

fn openai_chunk(delta: Value, finish_reason: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test-0613", "system_fingerprint": "fp_stream",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason }],
    });
    format!("data: {chunk}\n\n")
}

fn openai_usage_chunk(prompt: u64, completion: u64) -> String {
    let chunk = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test-0613", "system_fingerprint": "fp_stream",
        "choices": [], "usage": { "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion },
    });
    format!("data: {chunk}\n\n")
}

fn anthropic_event(kind: &str, mut data: Value) -> String {
    data["type"] = json!(kind);
    format!("event: {kind}\ndata: {data}\n\n")
}

fn anthropic_start() -> String {
    let message = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-test-20250101",
        "stop_reason": null, "stop_sequence": null, "usage": { "input_tokens": 12, "output_tokens": 1 },
    });
    anthropic_event("message_start", json!({ "message": message }))
        + &anthropic_event("content_block_start", json!({ "index": 0, "content_block": { "type": "text", "text": "" } }))
        + &anthropic_event("ping", json!({}))
}

fn anthropic_end(stop_reason: &str, output_tokens: u64) -> String {
    anthropic_event("content_block_stop", json!({ "index": 0 }))
        + &anthropic_event("message_delta", json!({ "delta": { "stop_reason": stop_reason, "stop_sequence": null }, "usage": { "output_tokens": output_tokens } }))
        + &anthropic_event("message_stop", json!({}))
}

// ---------------------------------------------------------------------------------------------
// openai

#[tokio::test]
async fn openai_answers_with_every_field_and_sends_exactly_what_it_reports() {
    let server = serve("/v1/chat/completions", |_| async {
        json_reply(200, &[], &json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test-0613", "system_fingerprint": "fp_abc123",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hello!", "refusal": null }, "logprobs": null, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13 },
        }))
    })
    .await;
    let provider = openai(&server.url, json!({ "headers": { "X-Title": "conclave-test" } }));
    let completion = generate(&provider, &request()).await.unwrap();
    assert_eq!(
        completion,
        Completion {
            text: "Hello!".to_owned(),
            model: "gpt-test-0613".to_owned(),
            fingerprint: Some("fp_abc123".to_owned()),
            usage: Usage { input_tokens: 11, output_tokens: 2 },
            finish_reason: Some("stop".to_owned()),
            applied: AppliedParams { model: "gpt-test".to_owned(), temperature: Some(0.0), top_p: Some(0.9), seed: Some(42), max_tokens: Some(64), stream: false },
        }
    );
    let sent = server.request();
    assert_eq!(
        sent.body,
        json!({
            "model": "gpt-test",
            "messages": [{ "role": "system", "content": "Be brief." }, { "role": "user", "content": "Say hello" }],
            "temperature": 0.0, "top_p": 0.9, "seed": 42, "max_tokens": 64, "stop": ["END"], "stream": false,
        })
    );
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {OPENAI_KEY}").as_str()));
    assert_eq!(sent.header("x-title"), Some("conclave-test"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn openai_sends_only_the_parameters_its_switches_allow() {
    let answer = json!({ "model": "o-test", "choices": [{ "index": 0, "message": { "role": "assistant", "content": "ok" }, "finish_reason": "stop" }] });
    let server = serve("/v1/chat/completions", move |_| {
        let answer = answer.clone();
        async move { json_reply(200, &[], &answer) }
    })
    .await;
    let provider = openai(&server.url, json!({ "max_tokens_field": "max_completion_tokens", "max_tokens": 500, "supports_seed": false, "top_p_with_temperature": false }));
    let mut asked = request();
    asked.model = Some("o-test".to_owned());
    asked.sampling.max_tokens = None;
    asked.stop.clear();
    let completion = generate(&provider, &asked).await.unwrap();
    assert_eq!(completion.applied, AppliedParams { model: "o-test".to_owned(), temperature: Some(0.0), top_p: None, seed: None, max_tokens: Some(500), stream: false });
    assert_eq!(completion.usage, Usage::default(), "a server that reports no usage reports zero");
    assert_eq!(completion.fingerprint, None);
    assert_eq!(
        server.request().body,
        json!({
            "model": "o-test",
            "messages": [{ "role": "system", "content": "Be brief." }, { "role": "user", "content": "Say hello" }],
            "temperature": 0.0, "max_completion_tokens": 500, "stream": false,
        })
    );

    let server = serve("/v1/chat/completions", |_| async {
        json_reply(200, &[], &json!({ "model": "m", "choices": [{ "index": 0, "message": { "role": "assistant", "content": "ok" }, "finish_reason": "stop" }] }))
    })
    .await;
    let no_temperature = openai(&server.url, json!({ "supports_temperature": false, "top_p_with_temperature": false }));
    let completion = generate(&no_temperature, &request()).await.unwrap();
    assert_eq!((completion.applied.temperature, completion.applied.top_p), (None, Some(0.9)), "top_p goes when no temperature does");
    let sent = server.request().body;
    assert_eq!((sent.get("temperature"), &sent["top_p"]), (None, &json!(0.9)));
}

#[tokio::test]
async fn openai_streams_pieces_as_they_arrive_with_usage_from_the_stream() {
    let sent_first = openai_chunk(json!({ "role": "assistant", "content": "" }), None) + &openai_chunk(json!({ "content": "Hel" }), None);
    let held_back = openai_chunk(json!({ "content": "lo" }), None)
        + ": keep-alive comment\n\n"
        + &openai_chunk(json!({ "content": " there" }), None)
        + &openai_chunk(json!({}), Some("length"))
        + &openai_usage_chunk(9, 3)
        + "data: [DONE]\n\n";
    let (server, open) = serve_held_back("/v1/chat/completions", sent_first, held_back).await;
    let (first, completion, rest) = stream_held_back(openai(&server.url, json!({})), open).await;
    assert_eq!(first, "Hel");
    assert_eq!(rest, ["lo", " there"]);
    assert_eq!(completion.text, "Hello there");
    assert_eq!(completion.usage, Usage { input_tokens: 9, output_tokens: 3 });
    assert_eq!(completion.finish_reason.as_deref(), Some("length"));
    assert_eq!((completion.model.as_str(), completion.fingerprint.as_deref()), ("gpt-test-0613", Some("fp_stream")));
    assert!(completion.applied.stream);
    let sent = server.request().body;
    assert_eq!((&sent["stream"], &sent["stream_options"]), (&json!(true), &json!({ "include_usage": true })));
}

#[tokio::test]
async fn openai_quota_exhaustion_is_a_spend_limit_and_other_429s_a_rate_limit() {
    let quota = openai_error("You exceeded your current quota, please check your plan and billing details.", "insufficient_quota", Some("insufficient_quota"));
    let failure = failure_for(Api::OpenAi, 429, &[], quota).await;
    assert_eq!((failure.class, failure.status), (FailureClass::SpendLimit, Some(429)));
    assert!(failure.message.contains("You exceeded your current quota"), "{}", failure.message);

    let rate = openai_error("Rate limit reached for requests", "requests", Some("rate_limit_exceeded"));
    let failure = failure_for(Api::OpenAi, 429, &[("retry-after-ms", "1500"), ("retry-after", "2")], rate).await;
    assert_eq!((failure.class, failure.retry_after), (FailureClass::RateLimited, Some(Duration::from_millis(1500))));
}

#[tokio::test]
async fn openai_context_and_content_refusals_are_classified() {
    let context = openai_error("This model's maximum context length is 8192 tokens. However, your messages resulted in 9021 tokens.", "invalid_request_error", Some("context_length_exceeded"));
    let failure = failure_for(Api::OpenAi, 400, &[], context).await;
    assert_eq!((failure.class, failure.status), (FailureClass::ContextTooLong, Some(400)));
    assert!(failure.message.contains("maximum context length is 8192"), "{}", failure.message);

    let policy = openai_error("Your request was rejected as a result of our safety system.", "invalid_request_error", Some("content_policy_violation"));
    assert_eq!(failure_for(Api::OpenAi, 400, &[], policy).await.class, FailureClass::ContentPolicy);
    let unknown_argument = openai_error("Unrecognized request argument supplied: foo", "invalid_request_error", None);
    assert_eq!(failure_for(Api::OpenAi, 400, &[], unknown_argument).await.class, FailureClass::InvalidRequest);
    let no_model = openai_error("The model `gpt-nope` does not exist", "invalid_request_error", Some("model_not_found"));
    assert_eq!(failure_for(Api::OpenAi, 404, &[], no_model).await.class, FailureClass::InvalidRequest);

    let server = serve("/v1/chat/completions", |_| async {
        json_reply(200, &[], &json!({ "model": "m", "choices": [{ "index": 0, "message": { "role": "assistant", "content": "" }, "finish_reason": "content_filter" }] }))
    })
    .await;
    let failure = generate(&openai(&server.url, json!({})), &request()).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::ContentPolicy);
}

#[tokio::test]
async fn openai_error_chunks_mid_stream_are_classified_after_the_pieces_already_sent() {
    let server = serve("/v1/chat/completions", |_| async {
        let error = openai_error("The server had an error while processing your request.", "server_error", None);
        let events = openai_chunk(json!({ "content": "Partial" }), None) + &format!("data: {error}\n\n");
        event_stream(events, None, String::new())
    })
    .await;
    let (outcome, pieces) = generate_streamed(&openai(&server.url, json!({})), &request()).await;
    let failure = outcome.unwrap_err();
    assert_eq!(failure.class, FailureClass::ServerError);
    assert!(failure.message.contains("The server had an error"), "{}", failure.message);
    assert_eq!(pieces, ["Partial"]);
}

#[tokio::test]
async fn openai_times_out_on_a_stream_that_stalls_after_its_first_piece() {
    let server = serve("/v1/chat/completions", |_| async { stalled_stream(openai_chunk(json!({ "content": "Hel" }), None)) }).await;
    let mut asked = request();
    asked.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let (outcome, pieces) = generate_streamed(&openai(&server.url, json!({})), &asked).await;
    assert_eq!(outcome.unwrap_err().class, FailureClass::Timeout);
    assert!(started.elapsed() < NOT_HUNG);
    assert_eq!(pieces, ["Hel"], "the deadline covers the whole stream, not only its first byte");
}

// ---------------------------------------------------------------------------------------------
// anthropic

#[tokio::test]
async fn anthropic_answers_with_every_field_and_sends_no_seed_nor_top_p_beside_temperature() {
    let server = serve("/v1/messages", |_| async {
        json_reply(200, &[], &json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test-20250101",
            "content": [{ "type": "thinking", "thinking": "hmm", "signature": "s" }, { "type": "text", "text": "Hello" }, { "type": "text", "text": "!" }],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": { "input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5, "output_tokens": 4 },
        }))
    })
    .await;
    let provider = anthropic(&server.url, json!({ "headers": { "anthropic-beta": "test-beta" } }));
    let mut asked = request();
    asked.messages.insert(0, Message { role: Role::System, content: "Answer in English.".to_owned() });
    asked.messages.push(Message { role: Role::Assistant, content: "Hi?".to_owned() });
    asked.messages.push(Message::user("Again"));
    let completion = generate(&provider, &asked).await.unwrap();
    assert_eq!(
        completion,
        Completion {
            text: "Hello!".to_owned(),
            model: "claude-test-20250101".to_owned(),
            fingerprint: None,
            usage: Usage { input_tokens: 15, output_tokens: 4 },
            finish_reason: Some("end_turn".to_owned()),
            applied: AppliedParams { model: "claude-test".to_owned(), temperature: Some(0.0), top_p: None, seed: None, max_tokens: Some(64), stream: false },
        }
    );
    let sent = server.request();
    assert_eq!(
        sent.body,
        json!({
            "model": "claude-test",
            "max_tokens": 64,
            "system": "Be brief.\n\nAnswer in English.",
            "messages": [{ "role": "user", "content": "Say hello" }, { "role": "assistant", "content": "Hi?" }, { "role": "user", "content": "Again" }],
            "temperature": 0.0,
            "stop_sequences": ["END"],
            "stream": false,
        })
    );
    assert_eq!(sent.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("anthropic-beta"), Some("test-beta"));
    assert_eq!(sent.header("authorization"), None);
}

#[tokio::test]
async fn anthropic_sends_top_p_only_without_temperature_and_its_default_max_tokens() {
    let server = serve("/v1/messages", |_| async {
        json_reply(200, &[], &json!({ "type": "message", "model": "claude-test", "content": [{ "type": "text", "text": "ok" }], "stop_reason": "end_turn", "usage": { "input_tokens": 1, "output_tokens": 1 } }))
    })
    .await;
    let mut asked = ModelRequest::prompt("Say hello");
    asked.sampling.top_p = Some(0.5);
    let completion = generate(&anthropic(&server.url, json!({ "max_tokens": 1000 })), &asked).await.unwrap();
    assert_eq!((completion.applied.top_p, completion.applied.max_tokens), (Some(0.5), Some(1000)));
    assert_eq!(
        server.request().body,
        json!({ "model": "claude-test", "max_tokens": 1000, "messages": [{ "role": "user", "content": "Say hello" }], "top_p": 0.5, "stream": false })
    );
}

#[tokio::test]
async fn anthropic_streams_pieces_as_they_arrive_with_usage_from_the_stream() {
    let sent_first = anthropic_start() + &anthropic_event("content_block_delta", json!({ "index": 0, "delta": { "type": "text_delta", "text": "Hel" } }));
    let held_back = anthropic_event("content_block_delta", json!({ "index": 0, "delta": { "type": "text_delta", "text": "lo" } }))
        + &anthropic_event("ping", json!({}))
        + &anthropic_event("content_block_delta", json!({ "index": 0, "delta": { "type": "text_delta", "text": " there" } }))
        + &anthropic_end("max_tokens", 7);
    let (server, open) = serve_held_back("/v1/messages", sent_first, held_back).await;
    let (first, completion, rest) = stream_held_back(anthropic(&server.url, json!({})), open).await;
    assert_eq!(first, "Hel");
    assert_eq!(rest, ["lo", " there"]);
    assert_eq!(completion.text, "Hello there");
    assert_eq!(completion.usage, Usage { input_tokens: 12, output_tokens: 7 });
    assert_eq!(completion.finish_reason.as_deref(), Some("max_tokens"));
    assert_eq!((completion.model.as_str(), completion.fingerprint), ("claude-test-20250101", None));
    assert!(completion.applied.stream);
    assert_eq!(server.request().body["stream"], json!(true));
}

#[tokio::test]
async fn anthropic_low_credit_is_a_spend_limit_and_a_long_prompt_is_too_long() {
    let credit = anthropic_error("invalid_request_error", "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.");
    let failure = failure_for(Api::Anthropic, 400, &[], credit).await;
    assert_eq!((failure.class, failure.status), (FailureClass::SpendLimit, Some(400)));
    assert!(failure.message.contains("credit balance is too low"), "{}", failure.message);

    let too_long = anthropic_error("invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum");
    assert_eq!(failure_for(Api::Anthropic, 400, &[], too_long).await.class, FailureClass::ContextTooLong);
    let too_large = anthropic_error("request_too_large", "Request exceeds the maximum allowed number of bytes.");
    assert_eq!(failure_for(Api::Anthropic, 413, &[], too_large).await.class, FailureClass::ContextTooLong);
    let invalid = anthropic_error("invalid_request_error", "temperature: range: 0..1");
    assert_eq!(failure_for(Api::Anthropic, 400, &[], invalid).await.class, FailureClass::InvalidRequest);
    let no_model = anthropic_error("not_found_error", "model: claude-nope");
    assert_eq!(failure_for(Api::Anthropic, 404, &[], no_model).await.class, FailureClass::InvalidRequest);
}

#[tokio::test]
async fn anthropic_error_events_mid_stream_and_refusals_are_classified() {
    let server = serve("/v1/messages", |_| async {
        let events = anthropic_start()
            + &anthropic_event("content_block_delta", json!({ "index": 0, "delta": { "type": "text_delta", "text": "Partial" } }))
            + &anthropic_event("error", json!({ "error": { "type": "overloaded_error", "message": "Overloaded" } }));
        event_stream(events, None, String::new())
    })
    .await;
    let (outcome, pieces) = generate_streamed(&anthropic(&server.url, json!({})), &request()).await;
    let failure = outcome.unwrap_err();
    assert_eq!(failure.class, FailureClass::Overloaded);
    assert_eq!(pieces, ["Partial"]);

    let server = serve("/v1/messages", |_| async {
        json_reply(200, &[], &json!({ "type": "message", "model": "claude-test", "content": [], "stop_reason": "refusal", "usage": { "input_tokens": 3, "output_tokens": 0 } }))
    })
    .await;
    assert_eq!(generate(&anthropic(&server.url, json!({})), &request()).await.unwrap_err().class, FailureClass::ContentPolicy);
}

// ---------------------------------------------------------------------------------------------
// both

#[tokio::test]
async fn a_429_with_retry_after_is_rate_limited_for_that_long() {
    for api in Api::BOTH {
        let body = match api {
            Api::OpenAi => openai_error("Rate limit reached for requests", "requests", Some("rate_limit_exceeded")),
            Api::Anthropic => anthropic_error("rate_limit_error", "This request would exceed your account's rate limit. Please try again later."),
        };
        let failure = failure_for(api, 429, &[("retry-after", "7")], body).await;
        assert_eq!((failure.class, failure.retry_after, failure.status), (FailureClass::RateLimited, Some(Duration::from_secs(7)), Some(429)), "{api:?}");
        assert!(failure.message.to_lowercase().contains("rate limit"), "{api:?}: {}", failure.message);
    }
}

#[tokio::test]
async fn a_529_or_503_is_overloaded_and_a_500_a_server_error() {
    for api in Api::BOTH {
        let overloaded = match api {
            Api::OpenAi => error_body(api, "The engine is currently overloaded"),
            Api::Anthropic => anthropic_error("overloaded_error", "Overloaded"),
        };
        let failure = failure_for(api, 529, &[], overloaded).await;
        assert_eq!((failure.class, failure.status), (FailureClass::Overloaded, Some(529)), "{api:?}");
        let failure = failure_for(api, 503, &[("retry-after", "3")], error_body(api, "Service unavailable")).await;
        assert_eq!((failure.class, failure.retry_after), (FailureClass::Overloaded, Some(Duration::from_secs(3))), "{api:?}");
        let failure = failure_for(api, 500, &[], error_body(api, "Internal server error")).await;
        assert_eq!((failure.class, failure.status), (FailureClass::ServerError, Some(500)), "{api:?}");
        assert!(failure.message.contains("Internal server error"), "{api:?}: {}", failure.message);
        let gateway = serve(api.path(), |_| async { reply(502, &[("content-type", "text/html")], "<html>502 Bad Gateway</html>") }).await;
        let failure = generate(api.provider(&gateway.url).as_ref(), &request()).await.unwrap_err();
        assert_eq!(failure.class, FailureClass::ServerError, "{api:?}: a proxy's page is classified by its status");
    }
}

#[tokio::test]
async fn a_server_that_answers_whole_when_asked_to_stream_gives_the_sink_the_whole_text() {
    for api in Api::BOTH {
        let answer = api.whole_answer("Hello there");
        let server = serve(api.path(), move |_| {
            let answer = answer.clone();
            async move { json_reply(200, &[], &answer) }
        })
        .await;
        let (outcome, pieces) = generate_streamed(api.provider(&server.url).as_ref(), &request()).await;
        assert_eq!(outcome.unwrap().text, "Hello there", "{api:?}");
        assert_eq!(pieces, ["Hello there"], "{api:?}");
        assert_eq!(server.request().body["stream"], json!(true), "{api:?}: a stream was asked for");
    }
}

#[tokio::test]
async fn a_server_that_does_not_answer_in_time_is_a_timeout_and_the_call_returns_promptly() {
    for api in Api::BOTH {
        let server = serve(api.path(), |_| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            reply(200, &[], "too late")
        })
        .await;
        let mut asked = request();
        asked.timeout = Duration::from_millis(300);
        let started = Instant::now();
        let failure = generate(api.provider(&server.url).as_ref(), &asked).await.unwrap_err();
        assert_eq!(failure.class, FailureClass::Timeout, "{api:?}: {}", failure.message);
        assert!(started.elapsed() >= Duration::from_millis(300), "{api:?}");
        assert!(started.elapsed() < NOT_HUNG, "{api:?}");
    }
}

#[tokio::test]
async fn a_stream_cut_short_is_a_transport_failure_after_the_pieces_already_sent() {
    for api in Api::BOTH {
        let server = serve(api.path(), move |_| async move { event_stream(api.stream_of(&["Hel", "lo"], false), None, String::new()) }).await;
        let (outcome, pieces) = generate_streamed(api.provider(&server.url).as_ref(), &request()).await;
        let failure = outcome.unwrap_err();
        assert_eq!(failure.class, FailureClass::Transport, "{api:?}: {}", failure.message);
        assert!(failure.message.contains("stream ended before"), "{api:?}: {}", failure.message);
        assert_eq!(pieces, ["Hel", "lo"], "{api:?}");

        let complete = serve(api.path(), move |_| async move { event_stream(api.stream_of(&["Hel", "lo"], true), None, String::new()) }).await;
        let (outcome, pieces) = generate_streamed(api.provider(&complete.url).as_ref(), &request()).await;
        assert_eq!(outcome.unwrap().text, "Hello", "{api:?}: the same stream, properly ended, succeeds");
        assert_eq!(pieces, ["Hel", "lo"], "{api:?}");
    }
}

#[tokio::test]
async fn answers_that_are_not_the_documented_json_are_malformed() {
    for api in Api::BOTH {
        let not_json = serve(api.path(), |_| async { reply(200, &[("content-type", "application/json")], "{not json") }).await;
        let failure = generate(api.provider(&not_json.url).as_ref(), &request()).await.unwrap_err();
        assert_eq!((failure.class, failure.status), (FailureClass::MalformedResponse, Some(200)), "{api:?}: {}", failure.message);

        let wrong_shape = api.wrong_shape();
        let other_json = serve(api.path(), move |_| {
            let body = wrong_shape.clone();
            async move { json_reply(200, &[], &body) }
        })
        .await;
        let failure = generate(api.provider(&other_json.url).as_ref(), &request()).await.unwrap_err();
        assert_eq!(failure.class, FailureClass::MalformedResponse, "{api:?}: {}", failure.message);

        let bad_chunk = serve(api.path(), move |_| async move {
            let mut events = api.stream_of(&["Hel"], false);
            events.push_str("data: {oops\n\n");
            event_stream(events, None, api.stream_of(&["never"], true))
        })
        .await;
        let (outcome, pieces) = generate_streamed(api.provider(&bad_chunk.url).as_ref(), &request()).await;
        assert_eq!(outcome.unwrap_err().class, FailureClass::MalformedResponse, "{api:?}");
        assert_eq!(pieces, ["Hel"], "{api:?}");
    }
}

#[tokio::test]
async fn refused_credentials_name_the_variable_and_never_the_key() {
    for api in Api::BOTH {
        let server = serve(api.path(), move |_| async move {
            // The server quotes the key back, as OpenAI does (partly) for a wrong key.
            let message = format!("Incorrect API key provided: {}", api.key());
            let body = match api {
                Api::OpenAi => openai_error(&message, "invalid_request_error", Some("invalid_api_key")),
                Api::Anthropic => anthropic_error("authentication_error", &message),
            };
            json_reply(401, &[], &body)
        })
        .await;
        let failure = generate(api.provider(&server.url).as_ref(), &request()).await.unwrap_err();
        assert_eq!((failure.class, failure.status), (FailureClass::Authentication, Some(401)), "{api:?}");
        assert!(failure.message.contains(api.key_variable()), "{api:?}: {}", failure.message);
        assert!(!failure.message.contains(api.key()), "{api:?}: {}", failure.message);
        assert!(!format!("{failure:?}").contains(api.key()), "{api:?}");

        let forbidden = failure_for(api, 403, &[], error_body(api, "not allowed")).await;
        assert_eq!(forbidden.class, FailureClass::Authentication, "{api:?}");
    }
}

#[tokio::test]
async fn without_a_key_no_credentials_are_sent_and_a_401_says_which_variable_to_set() {
    for api in Api::BOTH {
        let server = serve(api.path(), |_| async {
            json_reply(401, &[], &json!({ "error": { "message": "You didn't provide an API key.", "type": "authentication_error" } }))
        })
        .await;
        let failure = generate(api.provider_keyed(&server.url, UNSET_KEY_VARIABLE).as_ref(), &request()).await.unwrap_err();
        assert_eq!(failure.class, FailureClass::Authentication, "{api:?}");
        assert!(failure.message.contains(&format!("set the environment variable {UNSET_KEY_VARIABLE}")), "{api:?}: {}", failure.message);
        let sent = server.request();
        assert_eq!((sent.header("authorization"), sent.header("x-api-key")), (None, None), "{api:?}");
    }
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_failure() {
    let url = nobody_listening().await;
    for api in Api::BOTH {
        let failure = generate(api.provider(&url).as_ref(), &request()).await.unwrap_err();
        assert_eq!((failure.class, failure.status), (FailureClass::Transport, None), "{api:?}: {}", failure.message);
        assert!(failure.message.contains("could not connect"), "{api:?}: {}", failure.message);
    }
}

#[tokio::test]
async fn bad_base_urls_and_headers_are_refused_at_construction_naming_the_field() {
    set_keys();
    let err = OpenAiProvider::new("local", serde_json::from_value(json!({ "model": "m", "base_url": "localhost:11434/v1" })).unwrap()).unwrap_err();
    assert!(err.to_string().contains("providers.local.base_url"), "{err}");
    let err = AnthropicProvider::new("claude", serde_json::from_value(json!({ "model": "m", "base_url": "ftp://api.anthropic.com" })).unwrap()).unwrap_err();
    assert!(err.to_string().contains("providers.claude.base_url"), "{err}");
    let err = OpenAiProvider::new("router", serde_json::from_value(json!({ "model": "m", "headers": { "bad header": "x" } })).unwrap()).unwrap_err();
    assert!(err.to_string().contains("providers.router.headers"), "{err}");
    let keyless = json!({ "model": "llama3", "base_url": "http://localhost:11434/v1/", "api_key_env": UNSET_KEY_VARIABLE });
    let provider = OpenAiProvider::new("local", serde_json::from_value(keyless).unwrap());
    assert_eq!(provider.unwrap().default_model(), "llama3", "a missing key is no construction error");
    let provider = openai("http://127.0.0.1:1", json!({}));
    assert!(!format!("{provider:?}").contains(OPENAI_KEY), "{provider:?}");
    let provider = anthropic("http://127.0.0.1:1", json!({}));
    assert!(!format!("{provider:?}").contains(ANTHROPIC_KEY), "{provider:?}");
}
