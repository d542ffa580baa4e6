//! grpc-web beside native gRPC on the same port, as a browser (or Connect-ES's grpc-web
//! transport) speaks it: unary and server-streaming calls over HTTP/1.1 and HTTP/2, errors with
//! their details in the trailers, streams delivered as they happen (not buffered to the end), and
//! the CORS answers a page on another origin needs. The calls are made by hand with reqwest, so
//! the framing is checked byte by byte. Transport only, so it runs on SQLite.

mod support;

use std::time::{Duration, Instant};

use conclave::proto::{self, RunState};
use prost::Message;
use serde_json::json;
use support::*;
use tonic::{
    Code, Status,
    codegen::http::{HeaderMap, HeaderName, HeaderValue},
};

/// The bound on anything a test waits for.
const LIMIT: Duration = Duration::from_secs(60);

/// A page's origin, other than the server's.
const ORIGIN: &str = "http://app.example.test:5173";

async fn server() -> (TestDatabase, TestServer) {
    let database = Backend::Sqlite.database().await.unwrap();
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), fast_config()).await;
    (database, server)
}

/// An HTTP/1.1-only client, as a browser talking to a plaintext server is.
fn http1() -> reqwest::Client {
    reqwest::Client::builder().http1_only().timeout(LIMIT).build().unwrap()
}

/// An HTTP/2 client with prior knowledge (h2c), as a grpc-web client behind a proxy may be.
fn http2() -> reqwest::Client {
    reqwest::Client::builder().http2_prior_knowledge().timeout(LIMIT).build().unwrap()
}

/// One grpc-web message frame: flag 0, a big-endian length, the message.
fn frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut framed = Vec::with_capacity(5 + body.len());
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&body);
    framed
}

/// Starts a grpc-web call the way Connect-ES's grpc-web transport does.
async fn call(client: &reqwest::Client, server: &TestServer, method: &str, request: &impl Message) -> reqwest::Response {
    client
        .post(format!("http://{}/{method}", server.addr))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("x-user-agent", "conclave-grpc-web-test")
        .header("origin", ORIGIN)
        .body(frame(request))
        .send()
        .await
        .expect("send a grpc-web request")
}

/// What a grpc-web body holds, read frame by frame as it arrives.
#[derive(Default)]
struct Frames {
    buffer: Vec<u8>,
    messages: Vec<Vec<u8>>,
    trailers: Option<HeaderMap>,
}

impl Frames {
    /// Adds received bytes and splits off every complete frame.
    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        while self.buffer.len() >= 5 {
            let length = u32::from_be_bytes(self.buffer[1..5].try_into().unwrap()) as usize;
            if self.buffer.len() < 5 + length {
                break;
            }
            let flag = self.buffer[0];
            let payload = self.buffer[5..5 + length].to_vec();
            self.buffer.drain(..5 + length);
            if flag & 0x80 != 0 {
                assert!(self.trailers.is_none(), "a second trailer frame");
                self.trailers = Some(parse_trailers(&payload));
            } else {
                assert!(self.trailers.is_none(), "a message after the trailers");
                assert_eq!(flag, 0, "an uncompressed message frame");
                self.messages.push(payload);
            }
        }
    }

    /// Reads the rest of a response.
    async fn read_all(response: reqwest::Response) -> Frames {
        let mut frames = Frames::default();
        frames.push(&response.bytes().await.expect("the response body"));
        assert!(frames.buffer.is_empty(), "a partial frame at the end of the body");
        frames
    }
}

/// The trailer frame's `name: value\r\n` lines as headers.
fn parse_trailers(payload: &[u8]) -> HeaderMap {
    let text = std::str::from_utf8(payload).expect("trailers are text");
    let mut trailers = HeaderMap::new();
    for line in text.split("\r\n").filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').expect("a `name: value` trailer");
        trailers.append(
            HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    trailers
}

/// The call's status: from the trailer frame, or from the headers of a trailers-only answer.
fn status_of(headers: &HeaderMap, frames: &Frames) -> Status {
    let source = frames.trailers.as_ref().filter(|trailers| trailers.contains_key("grpc-status")).unwrap_or(headers);
    Status::from_header_map(source).expect("a grpc-status in the trailers or the headers")
}

/// The headers every grpc-web answer to a page on another origin carries.
#[track_caller]
fn assert_grpc_web_answer(response: &reqwest::Response) {
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let headers = response.headers();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("application/grpc-web"), "content-type {content_type:?}");
    assert_eq!(headers.get("access-control-allow-origin").map(|v| v.to_str().unwrap()), Some("*"));
    let exposed = headers.get("access-control-expose-headers").and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.split(',').any(|item| item.trim() == name), "{name} is exposed: {exposed:?}");
    }
}

async fn unary_create_and_get(client: reqwest::Client) {
    let (_db, server) = server().await;

    let response = call(&client, &server, "conclave.v1.RunService/CreateRun", &create("noop", json!({}))).await;
    assert_grpc_web_answer(&response);
    let headers = response.headers().clone();
    let frames = Frames::read_all(response).await;
    assert_eq!(status_of(&headers, &frames).code(), Code::Ok);
    assert_eq!(frames.messages.len(), 1, "one answer to a unary call");
    let run = proto::Run::decode(frames.messages[0].as_slice()).expect("a Run");
    assert_eq!(run.kind, "noop");
    assert!(!run.id.is_empty());

    // The run is there for a native gRPC client on the same port.
    let mut native = server.client().await;
    let same = native.get_run(proto::GetRunRequest { id: run.id.clone() }).await.unwrap().into_inner();
    assert_eq!(same.id, run.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_call_over_http1() {
    unary_create_and_get(http1()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_call_over_http2() {
    unary_create_and_get(http2()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_carries_its_code_reason_and_field_violations() {
    let (_db, server) = server().await;
    let client = http1();

    let missing = proto::GetRunRequest { id: uuid::Uuid::now_v7().to_string() };
    let response = call(&client, &server, "conclave.v1.RunService/GetRun", &missing).await;
    assert_grpc_web_answer(&response);
    let headers = response.headers().clone();
    let frames = Frames::read_all(response).await;
    assert!(frames.messages.is_empty());
    let status = status_of(&headers, &frames);
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(reason(&status), "RUN_NOT_FOUND");

    let response = call(&client, &server, "conclave.v1.RunService/CreateRun", &create("echo", json!({"repeat": "twice"}))).await;
    assert_grpc_web_answer(&response);
    let headers = response.headers().clone();
    let status = status_of(&headers, &Frames::read_all(response).await);
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "INVALID_ARGUMENT");
    assert_eq!(bad_fields(&status), ["input.repeat"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stream_arrives_as_it_happens_over_http1() {
    let (_db, server) = server().await;
    let mut native = server.client().await;
    let lines: Vec<String> = (1..=6).map(|n| format!("line {n}")).collect();
    let run = native
        .create_run(create("echo", json!({"lines": lines, "interval_ms": 300})))
        .await
        .unwrap()
        .into_inner();

    let tail = proto::TailLogsRequest { id: run.id.clone(), after_sequence: 0, follow: true };
    let mut response = call(&http1(), &server, "conclave.v1.RunService/TailLogs", &tail).await;
    assert_grpc_web_answer(&response);
    let headers = response.headers().clone();

    // Read chunk by chunk: the first line must arrive while the run is still writing the rest,
    // which a server buffering the whole stream could not do.
    let started = Instant::now();
    let mut frames = Frames::default();
    let mut received = Vec::new();
    let mut first_line_while_running = None;
    while let Some(chunk) = tokio::time::timeout(LIMIT, response.chunk()).await.expect("the stream moves").expect("a chunk") {
        frames.push(&chunk);
        for message in frames.messages.drain(..) {
            let answer = proto::TailLogsResponse::decode(message.as_slice()).expect("a TailLogsResponse");
            for line in answer.lines {
                if first_line_while_running.is_none() {
                    let now = native.get_run(proto::GetRunRequest { id: run.id.clone() }).await.unwrap().into_inner();
                    first_line_while_running = Some(now.state == RunState::Running as i32);
                }
                received.push(line);
            }
        }
        assert!(started.elapsed() < LIMIT);
    }
    assert!(frames.buffer.is_empty(), "a partial frame at the end of the stream");
    assert_eq!(status_of(&headers, &frames).code(), Code::Ok);
    assert_eq!(first_line_while_running, Some(true), "the first line arrived before the run finished");

    let texts: Vec<&str> = received.iter().filter(|line| line.stream == proto::LogStream::Stdout as i32).map(|line| line.text.as_str()).collect();
    assert_eq!(texts, lines.iter().map(String::as_str).collect::<Vec<_>>());
    let sequences: Vec<u64> = received.iter().map(|line| line.sequence).collect();
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>(), "every line once, in order");
    let finished = native.get_run(proto::GetRunRequest { id: run.id.clone() }).await.unwrap().into_inner();
    assert_eq!(finished.state, RunState::Succeeded as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stream_over_http2() {
    let (_db, server) = server().await;
    let mut native = server.client().await;
    let run = native.create_run(create("steps", json!({"count": 4}))).await.unwrap().into_inner();
    wait_for_state(&mut native, &run.id, &[RunState::Succeeded], LIMIT).await;

    let watch = proto::WatchRunRequest { id: run.id.clone(), after_sequence: 0 };
    let response = call(&http2(), &server, "conclave.v1.RunService/WatchRun", &watch).await;
    assert_grpc_web_answer(&response);
    let headers = response.headers().clone();
    let frames = Frames::read_all(response).await;
    assert_eq!(status_of(&headers, &frames).code(), Code::Ok);
    let events: Vec<proto::RunEvent> = frames
        .messages
        .iter()
        .flat_map(|message| proto::WatchRunResponse::decode(message.as_slice()).expect("a WatchRunResponse").events)
        .collect();
    let sequences: Vec<u64> = events.iter().map(|event| event.sequence).collect();
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
    let finished = native.get_run(proto::GetRunRequest { id: run.id.clone() }).await.unwrap().into_inner();
    assert_eq!(sequences.last().copied(), Some(finished.last_event_sequence), "the whole history, then the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cors_preflight_is_answered() {
    let (_db, server) = server().await;
    let response = http1()
        .request(reqwest::Method::OPTIONS, format!("http://{}/conclave.v1.RunService/CreateRun", server.addr))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web,x-user-agent,authorization,grpc-timeout")
        .send()
        .await
        .expect("send a preflight");
    assert!(response.status().is_success(), "{}", response.status());
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    assert_eq!(header("access-control-allow-origin"), "*");
    assert!(header("access-control-allow-methods").contains("post"), "{}", header("access-control-allow-methods"));
    let allowed = header("access-control-allow-headers");
    for name in ["content-type", "x-grpc-web", "x-user-agent", "authorization", "grpc-timeout"] {
        assert!(allowed.split(',').any(|item| item.trim() == name), "{name} is allowed: {allowed:?}");
    }
    assert!(!header("access-control-max-age").is_empty(), "the preflight may be cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_grpc_and_plain_http1_are_unchanged() {
    let (_db, server) = server().await;
    // Native gRPC (HTTP/2) on the same port still works.
    let mut native = server.client().await;
    let run = native.create_run(create("noop", json!({}))).await.unwrap().into_inner();
    wait_for_state(&mut native, &run.id, &[RunState::Succeeded], LIMIT).await;

    // A plain HTTP/1.1 request that is not grpc-web is refused, not served.
    let response = http1()
        .post(format!("http://{}/conclave.v1.RunService/GetRun", server.addr))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("send a plain request");
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
}
