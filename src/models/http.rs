//! What the `openai` and `anthropic` adapters share: one request/response flow ([`exchange`]:
//! post the body, classify an error answer, read a whole answer or an event stream, feed the
//! caller's sink, all under the call's deadline) driven by each adapter's [`WireFormat`], and
//! beneath it the process's HTTP client, the checks of a configured endpoint, extra headers and
//! API key, a Server-Sent-Events decoder, `Retry-After` parsing and the classification of a
//! request that got no HTTP answer (refused, reset, cut short). Classifying an HTTP answer
//! belongs to each adapter: only it knows its provider's status codes and error bodies.

use std::{
    collections::{BTreeMap, VecDeque},
    fmt,
    pin::Pin,
    sync::OnceLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use reqwest::{
    StatusCode, Url,
    header::{HeaderMap, HeaderName, HeaderValue},
};
use serde::Serialize;
use serde_json::Value;

use super::{AppliedParams, CallFailure, Completion, FailureClass, KeyVariable, ModelRequest, Provider, ProviderKind, Role, TokenSink};
use crate::error::{Error, Result};

/// The longest wait a provider's `Retry-After` may ask for; longer asks are cut to it.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// The most characters of a provider's error message kept in a failure's message.
const MAX_MESSAGE_CHARS: usize = 500;

/// The longest line of an event stream accepted; a longer one means the server is not
/// speaking Server-Sent Events.
const MAX_EVENT_LINE_BYTES: usize = 16 * 1024 * 1024;

/// How long connecting to a provider may take, whatever the call's own timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

static SHARED_CLIENT: OnceLock<reqwest::Client> = OnceLock::new();

/// The HTTP client every provider of the process shares (one connection pool, TCP keep-alive
/// for long generations). Deadlines are per call, with [`within`], not on the client.
fn client() -> Result<reqwest::Client> {
    if let Some(client) = SHARED_CLIENT.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("conclave/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(Duration::from_secs(30))
        .build()
        .map_err(|err| Error::Internal(format!("cannot build the HTTP client: {err}")))?;
    Ok(SHARED_CLIENT.get_or_init(|| client).clone())
}

/// The URL a provider's requests go to: `path` under the configured `base_url`, which must be
/// an absolute `http` or `https` URL (a trailing `/` is ignored).
fn endpoint(provider: &str, base_url: &str, path: &str) -> Result<Url> {
    let field = format!("providers.{provider}.base_url");
    let base = base_url.trim().trim_end_matches('/');
    let not_a_url = |err: &dyn fmt::Display| Error::invalid(&field, format!("`{base_url}` is not a URL ({err}); write it like https://api.example.com/v1"));
    let parsed = Url::parse(base).map_err(|err| not_a_url(&err))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::invalid(field, format!("`{base_url}` is not an http or https URL")));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid(field, format!("`{base_url}` names no host")));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::invalid(field, format!("`{base_url}` has a query or fragment; give the API's base path only")));
    }
    Url::parse(&format!("{base}{path}")).map_err(|err| not_a_url(&err))
}

/// The configured extra headers, checked to be valid HTTP header names and values.
fn extra_headers(provider: &str, headers: &BTreeMap<String, String>) -> Result<HeaderMap> {
    let field = format!("providers.{provider}.headers");
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Error::invalid(&field, format!("`{name}` is not a valid HTTP header name")))?;
        let value = HeaderValue::from_str(value).map_err(|_| Error::invalid(&field, format!("the value of `{name}` is not a valid HTTP header value")))?;
        map.insert(header, value);
    }
    Ok(map)
}

/// A provider's API key as read from its environment variable when the provider is built.
/// The key is sent only in its header; it never appears in Debug output, and [`ApiKey::redact`]
/// removes it from anything a provider echoes back.
struct ApiKey {
    variable: String,
    value: Option<String>,
}

impl ApiKey {
    /// Reads the key from its variable; an unset or empty variable gives a provider without a key.
    pub fn read(variable: &KeyVariable) -> Self {
        Self { variable: variable.0.clone(), value: variable.read() }
    }

    /// The header value that carries the key after `prefix` (`"Bearer "` or nothing), marked
    /// sensitive; `None` without a key. Refuses a key that cannot be sent in a header, naming
    /// the variable, never the key.
    pub fn header_value(&self, provider: &str, prefix: &str) -> Result<Option<HeaderValue>> {
        let Some(key) = &self.value else { return Ok(None) };
        let mut value = HeaderValue::from_str(&format!("{prefix}{key}")).map_err(|_| {
            Error::invalid(format!("providers.{provider}.api_key_env"), format!("the variable {} holds characters an HTTP header cannot carry", self.variable))
        })?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// Whether the variable held a key.
    pub fn is_set(&self) -> bool {
        self.value.is_some()
    }

    /// `text` with every occurrence of the key replaced, for messages that quote a provider.
    pub fn redact(&self, text: &str) -> String {
        match &self.value {
            Some(key) => text.replace(key.as_str(), "[redacted]"),
            None => text.to_owned(),
        }
    }

    /// What to do about refused credentials, naming the variable.
    pub fn advice(&self) -> String {
        if self.is_set() {
            format!("check the API key in the environment variable {}", self.variable)
        } else {
            format!("no API key was sent: set the environment variable {} and restart", self.variable)
        }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey").field("variable", &self.variable).field("set", &self.is_set()).finish()
    }
}

/// Where an adapter's requests go and how they are sent: the provider's name, its endpoint,
/// the headers every request carries (the API key among them, marked sensitive), the key for
/// the messages that quote the provider, and the shared client.
pub(super) struct Connection {
    provider: String,
    endpoint: Url,
    headers: HeaderMap,
    key: ApiKey,
    client: reqwest::Client,
}

impl Connection {
    /// The connection of provider `provider` to `path` under `base_url`, with the configured
    /// extra headers and the key of `key_variable` sent in `key_header` after `key_prefix`.
    /// Refuses a `base_url` that is not an http(s) URL, an invalid extra header, and a key that
    /// cannot be sent in a header; a missing key is no error (no key is sent).
    pub fn new(
        provider: &str,
        base_url: &str,
        path: &str,
        configured_headers: &BTreeMap<String, String>,
        key_variable: &KeyVariable,
        key_header: HeaderName,
        key_prefix: &str,
    ) -> Result<Self> {
        let endpoint = endpoint(provider, base_url, path)?;
        let mut headers = extra_headers(provider, configured_headers)?;
        let key = ApiKey::read(key_variable);
        if let Some(value) = key.header_value(provider, key_prefix)? {
            headers.insert(key_header, value);
        }
        Ok(Self { provider: provider.to_owned(), endpoint, headers, key, client: client()? })
    }

    /// The same connection with one more header sent with every request.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// The provider's configured name.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// A text the provider sent, made fit for a failure's message (see [`excerpt`]).
    pub fn quote(&self, text: &str) -> String {
        excerpt(text, &self.key)
    }

    /// An adapter's Debug output: its name, endpoint, model and whether it has a key, never
    /// the key itself nor the headers.
    pub fn debug(&self, f: &mut fmt::Formatter<'_>, adapter: &str, model: &str) -> fmt::Result {
        f.debug_struct(adapter)
            .field("name", &self.provider)
            .field("endpoint", &self.endpoint.as_str())
            .field("model", &model)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }

    /// The failure an error stands for, from an HTTP status or (`None`) from within a 200
    /// answer (an error event or chunk of a stream, an error body): classified by the adapter,
    /// quoted without the key, with the advice to check the key when credentials were refused.
    pub fn failure(&self, status: Option<StatusCode>, error: &impl ErrorBody) -> CallFailure {
        let class = error.class(status.map(|status| status.as_u16()));
        let mut message = format!("provider `{}`", self.provider);
        match status {
            Some(status) => message.push_str(&format!(" answered HTTP {}", status.as_u16())),
            None => message.push_str(" reported an error"),
        }
        if let Some(tag) = error.tag() {
            message.push_str(&format!(" ({tag})"));
        }
        message.push_str(": ");
        message.push_str(&self.quote(error.message()));
        if class == FailureClass::Authentication {
            message.push_str("; ");
            message.push_str(&self.key.advice());
        }
        // An error without a status came inside a 200 answer (a stream or a JSON body).
        CallFailure::new(class, message).status(i32::from(status.unwrap_or(StatusCode::OK).as_u16()))
    }

    /// The failure of a 200 answer that is not the provider's documented wire format.
    pub fn malformed(&self, what: impl fmt::Display) -> CallFailure {
        CallFailure::new(FailureClass::MalformedResponse, format!("provider `{}`: {what}", self.provider)).status(200)
    }

    /// The failure an error answer (a status that is not a success) stands for, with the wait
    /// the provider asked for.
    async fn failure_of<E: ErrorBody>(&self, response: reqwest::Response) -> CallFailure {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        self.failure(Some(status), &error_of::<E>(&body)).retry_after(retry_after)
    }
}

/// What a provider's error says, read the provider's way: each adapter knows the shape of its
/// error bodies and classifies them.
pub(super) trait ErrorBody {
    /// The error a JSON error body (or error event, or error chunk) holds.
    fn from_json(body: &Value) -> Self;
    /// The error of a body that is not JSON (a proxy's page): its text is the message.
    fn from_text(text: String) -> Self;
    /// The class of the error, given the HTTP status it came with (`None`: within a 200 answer).
    fn class(&self, status: Option<u16>) -> FailureClass;
    /// The provider's name for the error (a code or type), if it gave one.
    fn tag(&self) -> Option<&str>;
    /// What the provider said.
    fn message(&self) -> &str;
}

/// The error a body holds: read as JSON if it is, else taken as text.
pub(super) fn error_of<E: ErrorBody>(body: &[u8]) -> E {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => E::from_json(&value),
        Err(_) => E::from_text(String::from_utf8_lossy(body).into_owned()),
    }
}

/// What differs from one HTTP API to another: how a request is written, how a whole answer
/// and the events of a streamed one are read, what ends a stream and what an answer means.
/// [`exchange`] does the rest the same way for every API.
pub(super) trait WireFormat: Sync {
    /// The JSON body of a request.
    type Request<'a>: Serialize + Send
    where
        Self: 'a;
    /// What the provider's errors say.
    type Error: ErrorBody;
    /// What an answer says, read whole or gathered event by event.
    type Answer: Default + Send;

    /// The adapter type.
    const KIND: ProviderKind;
    /// What a complete stream ends with, named when a stream ends without it.
    const STREAM_END: &'static str;

    /// The model used when a request names none.
    fn configured_model(&self) -> &str;

    /// Where requests go.
    fn connection(&self) -> &Connection;

    /// The body of `request` and the parameters it applies; `stream` asks for an event stream.
    fn request<'a>(&'a self, request: &'a ModelRequest, stream: bool) -> (Self::Request<'a>, AppliedParams);

    /// What a whole JSON answer says, or the failure it reports.
    fn whole_answer(&self, body: Value) -> Result<Self::Answer, CallFailure>;

    /// Adds one event of a stream to `answer`: the pieces of text it added, or the end.
    fn fold(&self, answer: &mut Self::Answer, event: SseEvent) -> Result<StreamStep, CallFailure>;

    /// The completion of an answer, or the failure it stands for (a refusal, say).
    fn completion(&self, answer: Self::Answer, applied: AppliedParams) -> Result<Completion, CallFailure>;
}

/// What one event of a stream did to the answer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StreamStep {
    /// The answer goes on; these pieces of its text came with the event, in order.
    Pieces(Vec<String>),
    /// The answer is complete.
    End,
}

/// A turn of the conversation as both APIs take it: `{"role", "content"}`.
#[derive(Serialize)]
pub(super) struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
}

impl<'a> WireMessage<'a> {
    /// `content` spoken by `role`.
    pub fn new(role: Role, content: &'a str) -> Self {
        Self { role: role.as_str(), content }
    }
}

/// The model that answered: as the provider names it, else the one asked for.
pub(super) fn answering_model(reported: Option<String>, applied: &AppliedParams) -> String {
    reported.filter(|model| !model.is_empty()).unwrap_or_else(|| applied.model.clone())
}

/// Every HTTP adapter is a provider: its [`WireFormat`] in the one flow of [`exchange`].
#[async_trait]
impl<W: WireFormat + Send + 'static> Provider for W {
    fn kind(&self) -> ProviderKind {
        W::KIND
    }

    fn default_model(&self) -> &str {
        self.configured_model()
    }

    /// Performs the call, first byte to last, under the request's deadline.
    async fn generate(&self, request: &ModelRequest, tokens: Option<&TokenSink>) -> Result<Completion, CallFailure> {
        within(request.timeout, self.connection().provider(), exchange(self, request, tokens)).await
    }
}

/// Posts a request and reads its answer. With `tokens` an event stream is asked for and each
/// piece is sent there as it arrives; a server that answers whole JSON instead has its whole
/// text sent there at once. An error answer is classified by the adapter's [`ErrorBody`].
async fn exchange<W: WireFormat>(wire: &W, request: &ModelRequest, tokens: Option<&TokenSink>) -> Result<Completion, CallFailure> {
    let connection = wire.connection();
    let (body, applied) = wire.request(request, tokens.is_some());
    let post = connection.client.post(connection.endpoint.clone()).headers(connection.headers.clone()).json(&body);
    let response = post.send().await.map_err(|err| transport_failure(err, &connection.provider))?;
    if !response.status().is_success() {
        return Err(connection.failure_of::<W::Error>(response).await);
    }
    if let Some(tokens) = tokens
        && is_event_stream(&response)
    {
        return read_stream(wire, response, tokens, applied).await;
    }
    let body = read_body(response, &connection.provider).await?;
    let value: Value = serde_json::from_slice(&body).map_err(|err| connection.malformed(format!("the answer is not JSON ({err})")))?;
    let completion = wire.completion(wire.whole_answer(value)?, applied)?;
    if let Some(tokens) = tokens {
        deliver(tokens, &completion.text).await;
    }
    Ok(completion)
}

/// The completion in a streamed answer, each piece sent to `tokens` as it arrives.
async fn read_stream<W: WireFormat>(wire: &W, response: reqwest::Response, tokens: &TokenSink, applied: AppliedParams) -> Result<Completion, CallFailure> {
    let provider = wire.connection().provider();
    let mut events = EventStream::new(response.bytes_stream(), provider);
    let mut answer = W::Answer::default();
    loop {
        let Some(event) = events.next().await? else {
            let message = format!("provider `{provider}`: the stream ended before {}", W::STREAM_END);
            return Err(CallFailure::new(FailureClass::Transport, message).status(200));
        };
        match wire.fold(&mut answer, event)? {
            StreamStep::Pieces(pieces) => {
                for piece in pieces {
                    deliver(tokens, &piece).await;
                }
            }
            StreamStep::End => return wire.completion(answer, applied),
        }
    }
}

/// Runs a whole call, first byte to last, under its deadline: past `limit` the call is
/// dropped (closing its connection) and fails as [`FailureClass::Timeout`].
async fn within<T>(limit: Duration, provider: &str, call: impl Future<Output = Result<T, CallFailure>>) -> Result<T, CallFailure> {
    match tokio::time::timeout(limit, call).await {
        Ok(outcome) => outcome,
        Err(_) => Err(CallFailure::new(FailureClass::Timeout, format!("provider `{provider}` did not finish answering within {limit:?}"))),
    }
}

/// The failure of a request that got no complete HTTP answer. The URL is left out of the
/// message (it is in the configuration, and keys travel in headers, never in it).
fn transport_failure(err: reqwest::Error, provider: &str) -> CallFailure {
    let err = err.without_url();
    let cause = innermost_cause(&err);
    let (class, what) = if err.is_timeout() {
        (FailureClass::Timeout, "timed out")
    } else if err.is_connect() {
        (FailureClass::Transport, "could not connect")
    } else if err.is_body() || err.is_decode() {
        (FailureClass::Transport, "the connection broke while the answer was read")
    } else if err.is_builder() {
        (FailureClass::InvalidRequest, "could not build the request")
    } else {
        (FailureClass::Transport, "the request failed")
    };
    CallFailure::new(class, format!("provider `{provider}`: {what}: {cause}"))
}

/// The deepest source of an error, which names what actually happened ("Connection refused").
fn innermost_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Reads a whole response body, classifying a broken connection.
async fn read_body(response: reqwest::Response, provider: &str) -> Result<Vec<u8>, CallFailure> {
    match response.bytes().await {
        Ok(body) => Ok(body.to_vec()),
        Err(err) => Err(transport_failure(err, provider)),
    }
}

/// Whether the answer is an event stream (a server that ignores `stream: true` answers JSON).
fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().to_ascii_lowercase().starts_with("text/event-stream"))
}

/// Sends a piece of text to the caller's sink; a caller that left is ignored.
async fn deliver(tokens: &TokenSink, piece: &str) {
    if piece.is_empty() {
        return;
    }
    let _ = tokens.send(piece.to_owned()).await;
}

/// A provider's error message made fit for a failure: the key removed, then cut to
/// [`MAX_MESSAGE_CHARS`] characters.
fn excerpt(text: &str, key: &ApiKey) -> String {
    if text.trim().is_empty() {
        return "(no message)".to_owned();
    }
    let text = key.redact(text.trim());
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The wait a provider asked for: OpenAI's `retry-after-ms` if present, else `Retry-After` in
/// seconds or as an HTTP date; capped at [`MAX_RETRY_AFTER`].
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(millis) = header("retry-after-ms").and_then(parse_retry_after_ms) {
        return Some(millis);
    }
    header("retry-after").and_then(|value| parse_retry_after(value, SystemTime::now()))
}

/// Parses `retry-after-ms`: a non-negative number of milliseconds, possibly fractional.
fn parse_retry_after_ms(value: &str) -> Option<Duration> {
    let millis: f64 = value.trim().parse().ok()?;
    if !millis.is_finite() || millis < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64((millis / 1000.0).min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// Parses a `Retry-After` value: delta-seconds, or an HTTP date taken relative to `now` (a date
/// in the past means now).
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or_default().min(MAX_RETRY_AFTER))
}

/// Parses an HTTP date in any of the three forms HTTP allows: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`).
fn parse_http_date(text: &str) -> Option<SystemTime> {
    let tokens: Vec<&str> = text.split([' ', ',', '-']).filter(|token| !token.is_empty()).collect();
    let (day, month, year, time) = match tokens.as_slice() {
        [_weekday, day, month, year, time, zone] if zone.eq_ignore_ascii_case("GMT") => (*day, *month, *year, *time),
        [_weekday, month, day, time, year] => (*day, *month, *year, *time),
        _ => return None,
    };
    let day: u32 = day.parse().ok()?;
    let month = month_number(month)?;
    let year: i64 = match year.len() {
        2 => {
            let short: i64 = year.parse().ok()?;
            if short < 70 { 2000 + short } else { 1900 + short }
        }
        4 => year.parse().ok()?,
        _ => return None,
    };
    let mut clock = time.split(':').map(|part| part.parse::<u64>().ok());
    let (Some(Some(hours)), Some(Some(minutes)), Some(Some(seconds)), None) = (clock.next(), clock.next(), clock.next(), clock.next()) else {
        return None;
    };
    if !(1..=31).contains(&day) || hours > 23 || minutes > 59 || seconds > 60 {
        return None;
    }
    let days = days_since_epoch(year, month, day);
    let Ok(days) = u64::try_from(days) else { return Some(UNIX_EPOCH) };
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + hours * 3_600 + minutes * 60 + seconds))
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let name = name.to_ascii_lowercase();
    MONTHS.iter().position(|month| *month == name).map(|index| index as u32 + 1)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_since_epoch(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (i64::from(month) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SseEvent {
    /// The `event:` name, if the server gave one.
    pub event: Option<String>,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
}

/// An event-stream line longer than the decoder accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LineTooLong;

/// Decodes the `text/event-stream` format from chunks of bytes as they arrive: lines may be
/// split anywhere across chunks and end in `\n`, `\r\n` or `\r`; `:` lines are comments;
/// several `data:` lines make one event's data; `id:` and `retry:` are ignored.
#[derive(Debug, Default)]
struct SseDecoder {
    /// Bytes of a line not yet ended.
    partial: Vec<u8>,
    /// The pending event's name.
    event: Option<String>,
    /// The pending event's data, once it has a `data:` line.
    data: Option<String>,
}

impl SseDecoder {
    /// Decodes a chunk, appending the events it completes to `events`.
    pub fn feed(&mut self, chunk: &[u8], events: &mut VecDeque<SseEvent>) -> Result<(), LineTooLong> {
        self.partial.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(offset) = self.partial[start..].iter().position(|byte| matches!(byte, b'\n' | b'\r')) {
            let end = start + offset;
            let ending = match (self.partial[end], self.partial.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                // A `\r` that ends the chunk may be the first half of `\r\n`: wait for more.
                (b'\r', None) => break,
                _ => 1,
            };
            let line = String::from_utf8_lossy(&self.partial[start..end]).into_owned();
            self.line(&line, events);
            start = end + ending;
        }
        self.partial.drain(..start);
        if self.partial.len() > MAX_EVENT_LINE_BYTES {
            return Err(LineTooLong);
        }
        Ok(())
    }

    /// Ends the stream: an event whose lines all arrived is delivered even if the blank line
    /// that should close it did not; a line cut short is dropped.
    pub fn finish(&mut self, events: &mut VecDeque<SseEvent>) {
        // Only the last byte kept can be a line end: a `\r` that waited for a `\n`.
        if let Some((b'\r', line)) = self.partial.split_last() {
            let line = String::from_utf8_lossy(line).into_owned();
            self.line(&line, events);
        }
        self.partial.clear();
        self.line("", events);
    }

    fn line(&mut self, line: &str, events: &mut VecDeque<SseEvent>) {
        if line.is_empty() {
            let event = self.event.take();
            if let Some(data) = self.data.take() {
                events.push_back(SseEvent { event, data });
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
    }
}

/// The events of a streamed response body, read as they arrive.
struct EventStream<S> {
    body: Pin<Box<S>>,
    decoder: SseDecoder,
    ready: VecDeque<SseEvent>,
    ended: bool,
    provider: String,
}

impl<S, B> EventStream<S>
where
    S: Stream<Item = reqwest::Result<B>>,
    B: AsRef<[u8]>,
{
    /// Reads events from `body` (a response's `bytes_stream()`).
    pub fn new(body: S, provider: &str) -> Self {
        Self { body: Box::pin(body), decoder: SseDecoder::default(), ready: VecDeque::new(), ended: false, provider: provider.to_owned() }
    }

    /// The next event; `None` once the body ended. A broken connection is a
    /// [`FailureClass::Transport`] failure.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, CallFailure> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.decoder.feed(chunk.as_ref(), &mut self.ready).map_err(|LineTooLong| {
                    CallFailure::new(FailureClass::MalformedResponse, format!("provider `{}` sent an event-stream line longer than {MAX_EVENT_LINE_BYTES} bytes", self.provider))
                })?,
                Some(Err(err)) => return Err(transport_failure(err, &self.provider)),
                None => {
                    self.decoder.finish(&mut self.ready);
                    self.ended = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::default();
        let mut events = VecDeque::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut events).unwrap();
        }
        decoder.finish(&mut events);
        events.into()
    }

    fn data(text: &str) -> SseEvent {
        SseEvent { event: None, data: text.to_owned() }
    }

    #[test]
    fn events_split_anywhere_across_chunks_decode_whole() {
        let stream = "data: {\"a\":1}\n\ndata: {\"b\":\"é\"}\n\ndata: [DONE]\n\n".as_bytes();
        let whole = decode(&[stream]);
        assert_eq!(whole, vec![data("{\"a\":1}"), data("{\"b\":\"é\"}"), data("[DONE]")]);
        for cut in 1..stream.len() {
            assert_eq!(decode(&[&stream[..cut], &stream[cut..]]), whole, "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode(&bytewise), whole);
    }

    #[test]
    fn crlf_and_lone_cr_end_lines_even_when_split() {
        let expected = vec![SseEvent { event: Some("ping".to_owned()), data: "x".to_owned() }, data("y")];
        assert_eq!(decode(&[b"event: ping\r\ndata: x\r\n\r\ndata: y\r\n\r\n"]), expected);
        assert_eq!(decode(&[b"event: ping\r", b"\ndata: x\r", b"\n\r", b"\ndata: y\r\n\r\n"]), expected);
        assert_eq!(decode(&[b"event: ping\rdata: x\r\rdata: y\r\r"]), expected);
    }

    #[test]
    fn multi_line_data_joins_with_newlines_and_comments_are_skipped() {
        let events = decode(&[b": keep-alive\n\nevent: message_delta\ndata: first\n: a comment\ndata:second\ndata\nid: 7\nretry: 10\n\n"]);
        assert_eq!(events, vec![SseEvent { event: Some("message_delta".to_owned()), data: "first\nsecond\n".to_owned() }]);
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_its_name_does_not_leak() {
        assert_eq!(decode(&[b"event: lonely\n\ndata: next\n\n"]), vec![data("next")]);
    }

    #[test]
    fn at_the_end_a_complete_event_missing_its_blank_line_is_kept_and_a_cut_line_dropped() {
        assert_eq!(decode(&[b"data: [DONE]\n"]), vec![data("[DONE]")]);
        assert_eq!(decode(&[b"data: one\n\ndata: {\"cut"]), vec![data("one")]);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut decoder = SseDecoder::default();
        let mut events = VecDeque::new();
        let chunk = vec![b'a'; 1024 * 1024];
        let mut outcome = Ok(());
        for _ in 0..=16 {
            outcome = decoder.feed(&chunk, &mut events);
        }
        assert_eq!(outcome, Err(LineTooLong));
    }

    #[tokio::test]
    async fn the_event_stream_reads_events_from_a_body_of_chunks() {
        let chunks: Vec<reqwest::Result<Vec<u8>>> = vec![Ok(b"data: a\n".to_vec()), Ok(b"\nevent: e\ndata: b\n\n".to_vec())];
        let mut events = EventStream::new(futures::stream::iter(chunks), "test");
        assert_eq!(events.next().await.unwrap(), Some(data("a")));
        assert_eq!(events.next().await.unwrap(), Some(SseEvent { event: Some("e".to_owned()), data: "b".to_owned() }));
        assert_eq!(events.next().await.unwrap(), None);
    }

    #[test]
    fn retry_after_in_seconds_and_dates_is_capped() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("99999999999999999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:50:07 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sun Nov  6 08:50:07 1994", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO), "a past date means now");
        assert_eq!(parse_retry_after("Mon, 07 Nov 1994 08:49:37 GMT", now), Some(MAX_RETRY_AFTER));
        for nonsense in ["", "-3", "1.5", "soon", "Sun, 06 Nov 1994 25:00:00 GMT", "Sun, 06 Foo 1994 08:00:00 GMT"] {
            assert_eq!(parse_retry_after(nonsense, now), None, "{nonsense:?}");
        }
    }

    #[test]
    fn http_dates_match_the_calendar() {
        let at = |text: &str| parse_http_date(text).unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(at("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
        assert_eq!(at("Tue, 29 Feb 2000 12:00:00 GMT"), 951_825_600);
        assert_eq!(at("Wed, 21 Oct 2015 07:28:00 GMT"), 1_445_412_480);
    }

    #[test]
    fn retry_after_ms_wins_over_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("20"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(20)));
        headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        headers.insert("retry-after-ms", HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(20)), "a nonsensical retry-after-ms falls back");
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn base_urls_must_be_http_with_a_host() {
        assert_eq!(endpoint("p", "http://localhost:11434/v1/", "/chat/completions").unwrap().as_str(), "http://localhost:11434/v1/chat/completions");
        for bad in ["localhost:11434", "ftp://example.com", "https://", "https://api.example.com/v1?x=1", "not a url"] {
            let err = endpoint("p", bad, "/chat/completions").unwrap_err();
            assert!(err.to_string().contains("providers.p.base_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn keys_stay_out_of_debug_and_quoted_messages() {
        let key = ApiKey { variable: "SOME_KEY".to_owned(), value: Some("sk-secret-123".to_owned()) };
        assert!(!format!("{key:?}").contains("sk-secret-123"));
        assert_eq!(excerpt("Incorrect API key provided: sk-secret-123.", &key), "Incorrect API key provided: [redacted].");
        let header = key.header_value("p", "Bearer ").unwrap().unwrap();
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("sk-secret-123"));
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        assert_eq!(excerpt(&long, &key).chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
