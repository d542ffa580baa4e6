//! The `anthropic` provider: the Anthropic messages API (`POST {base_url}/v1/messages`). The
//! system prompt travels apart from the turns; `temperature` is sent, `top_p` never beside it
//! (newer Claude models refuse both) and no seed (the API has none). Failures are classified
//! from the status and the `error.type` of Anthropic's error body, and for a 400 from what its
//! message says (a prompt too long, a credit balance too low). This file holds only the wire
//! (what is sent, how answers and stream events read, what errors mean); the exchange itself
//! is the flow `http` runs for both HTTP adapters.

use std::collections::BTreeMap;

use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AppliedParams, CallFailure, Completion, FailureClass, KeyVariable, ModelRequest, ProviderKind, Role, Usage,
    http::{self, Connection, ErrorBody, SseEvent, StreamStep, WireFormat, WireMessage},
};
use crate::error::{Error, Result};

/// The configuration of an `anthropic` provider. Only `model` is required.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnthropicConfig {
    /// The API's base URL; requests go to `{base_url}/v1/messages`.
    /// Default `https://api.anthropic.com`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The environment variable holding the API key, sent as `x-api-key`.
    /// Default `ANTHROPIC_API_KEY`; when it is unset no key is sent.
    #[serde(default = "default_key_variable")]
    pub api_key_env: KeyVariable,
    /// The API version, sent as `anthropic-version`; default `2023-06-01`.
    #[serde(default = "default_version")]
    pub version: String,
    /// The model used when a request names none.
    pub model: String,
    /// The output limit sent when a request sets none (the API requires one); default 4096.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Extra headers sent with every request (`anthropic-beta`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl AnthropicConfig {
    /// The default configuration for a model.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            base_url: default_base_url(),
            api_key_env: default_key_variable(),
            version: default_version(),
            model: model.into(),
            max_tokens: default_max_tokens(),
            headers: BTreeMap::new(),
        }
    }
}

fn default_base_url() -> String {
    "https://api.anthropic.com".to_owned()
}

fn default_key_variable() -> KeyVariable {
    KeyVariable("ANTHROPIC_API_KEY".to_owned())
}

fn default_version() -> String {
    "2023-06-01".to_owned()
}

fn default_max_tokens() -> u32 {
    4096
}

/// The `anthropic` provider.
pub struct AnthropicProvider {
    config: AnthropicConfig,
    /// The endpoint, the extra headers, `anthropic-version` and, with a key, `x-api-key`
    /// (marked sensitive).
    connection: Connection,
}

impl std::fmt::Debug for AnthropicProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.connection.debug(f, "AnthropicProvider", &self.config.model)
    }
}

impl AnthropicProvider {
    /// A provider named `name`; refuses a `base_url` that is not an http(s) URL, an invalid
    /// extra header or version, and a key that cannot be sent in a header. A missing key is no
    /// error.
    pub fn new(name: &str, config: AnthropicConfig) -> Result<Self> {
        let connection = Connection::new(name, &config.base_url, "/v1/messages", &config.headers, &config.api_key_env, HeaderName::from_static("x-api-key"), "")?;
        let version = HeaderValue::from_str(&config.version)
            .map_err(|_| Error::invalid(format!("providers.{name}.version"), "is not a valid HTTP header value; write it like 2023-06-01"))?;
        Ok(Self { connection: connection.with_header(HeaderName::from_static("anthropic-version"), version), config })
    }
}

impl WireFormat for AnthropicProvider {
    type Request<'a> = MessagesRequest<'a>;
    type Error = ProviderError;
    type Answer = Answer;

    const KIND: ProviderKind = ProviderKind::Anthropic;
    const STREAM_END: &'static str = "message_stop";

    fn configured_model(&self) -> &str {
        &self.config.model
    }

    fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The request body and what it applies.
    fn request<'a>(&'a self, request: &'a ModelRequest, stream: bool) -> (MessagesRequest<'a>, AppliedParams) {
        let sampling = &request.sampling;
        let model = request.model.as_deref().unwrap_or(&self.config.model);
        let max_tokens = sampling.max_tokens.unwrap_or(self.config.max_tokens);
        let temperature = sampling.temperature;
        let top_p = sampling.top_p.filter(|_| temperature.is_none());
        let system_parts: Vec<&str> = request
            .system
            .as_deref()
            .into_iter()
            .chain(request.messages.iter().filter(|message| message.role == Role::System).map(|message| message.content.as_str()))
            .collect();
        let system = (!system_parts.is_empty()).then(|| system_parts.join("\n\n"));
        let messages = request
            .messages
            .iter()
            .filter(|message| message.role != Role::System)
            .map(|message| WireMessage::new(message.role, &message.content))
            .collect();
        let body = MessagesRequest { model, max_tokens, system, messages, temperature, top_p, stop_sequences: &request.stop, stream };
        let applied = AppliedParams { model: model.to_owned(), temperature, top_p, seed: None, max_tokens: Some(max_tokens), stream };
        (body, applied)
    }

    fn whole_answer(&self, value: Value) -> Result<Answer, CallFailure> {
        if value.get("type").and_then(Value::as_str) == Some("error") {
            return Err(self.connection.failure(None, &ProviderError::from_json(&value)));
        }
        let answer: MessageResponse = serde_json::from_value(value).map_err(|err| self.connection.malformed(format!("the answer is not a message ({err})")))?;
        let usage = answer.usage.unwrap_or_default();
        Ok(Answer {
            text: answer.content.iter().filter(|block| block.kind == "text").filter_map(|block| block.text.as_deref()).collect(),
            model: answer.model,
            usage: Usage { input_tokens: usage.prompt_tokens().unwrap_or(0), output_tokens: usage.output_tokens.unwrap_or(0) },
            stop_reason: answer.stop_reason,
        })
    }

    /// Adds an event by its type: `message_start` (model, input tokens), text from
    /// `content_block_start` and `content_block_delta`, `message_delta` (stop reason, counts);
    /// `message_stop` ends the answer, an `error` event fails it, others are skipped.
    fn fold(&self, answer: &mut Answer, event: SseEvent) -> Result<StreamStep, CallFailure> {
        let value: Value = serde_json::from_str(&event.data).map_err(|err| self.connection.malformed(format!("a stream event is not JSON ({err})")))?;
        let kind = value.get("type").and_then(Value::as_str).map(str::to_owned).or(event.event).unwrap_or_default();
        if kind == "error" {
            return Err(self.connection.failure(None, &ProviderError::from_json(&value)));
        }
        let payload: StreamEvent = serde_json::from_value(value).map_err(|err| self.connection.malformed(format!("a `{kind}` event is not as documented ({err})")))?;
        let piece = match kind.as_str() {
            "message_start" => {
                let Some(message) = payload.message else {
                    return Err(self.connection.malformed("message_start carries no message"));
                };
                answer.model = message.model.or(answer.model.take());
                if let Some(counted) = message.usage {
                    answer.count(&counted);
                }
                None
            }
            "content_block_start" => payload.content_block.filter(|block| block.kind == "text").and_then(|block| block.text),
            "content_block_delta" => payload.delta.filter(|delta| delta.kind.as_deref() == Some("text_delta")).and_then(|delta| delta.text),
            "message_delta" => {
                answer.stop_reason = payload.delta.and_then(|delta| delta.stop_reason).or(answer.stop_reason.take());
                if let Some(counted) = payload.usage {
                    answer.count(&counted);
                }
                None
            }
            Self::STREAM_END => return Ok(StreamStep::End),
            // `ping`, `content_block_stop`, and event types added later.
            _ => None,
        };
        answer.text.push_str(piece.as_deref().unwrap_or_default());
        Ok(StreamStep::Pieces(piece.into_iter().collect()))
    }

    /// The completion of an answer, or the content-policy failure of a refusal.
    fn completion(&self, answer: Answer, applied: AppliedParams) -> Result<Completion, CallFailure> {
        if answer.stop_reason.as_deref() == Some("refusal") {
            let message = format!("provider `{}` refused to answer (stop_reason refusal)", self.connection.provider());
            return Err(CallFailure::new(FailureClass::ContentPolicy, message).status(200));
        }
        Ok(Completion {
            text: answer.text,
            model: http::answering_model(answer.model, &applied),
            fingerprint: None,
            usage: answer.usage,
            finish_reason: answer.stop_reason,
            applied,
        })
    }
}

/// What an Anthropic error says: `{"type": "error", "error": {"type", "message"}}`, possibly
/// with `error.details.error_code`. A body that is not JSON (a proxy's page) is the message.
#[derive(Debug, Default)]
pub(super) struct ProviderError {
    message: String,
    kind: Option<String>,
    detail_code: Option<String>,
}

impl ErrorBody for ProviderError {
    /// Reads the error of a whole error body or `error` event.
    fn from_json(body: &Value) -> Self {
        let Some(error) = body.get("error").filter(|error| error.is_object()) else {
            return Self { message: body.to_string(), ..Self::default() };
        };
        let text = |value: Option<&Value>| value.and_then(Value::as_str).filter(|text| !text.is_empty()).map(str::to_owned);
        Self {
            message: text(error.get("message")).unwrap_or_else(|| error.to_string()),
            kind: text(error.get("type")),
            detail_code: text(error.pointer("/details/error_code")),
        }
    }

    fn from_text(text: String) -> Self {
        Self { message: text, ..Self::default() }
    }

    fn class(&self, status: Option<u16>) -> FailureClass {
        classify(status, self)
    }

    fn tag(&self) -> Option<&str> {
        self.kind.as_deref()
    }

    fn message(&self) -> &str {
        &self.message
    }
}

/// The class of an Anthropic error: statuses that say it all first, then `error.type`, and for
/// `invalid_request_error` what the message says.
fn classify(status: Option<u16>, error: &ProviderError) -> FailureClass {
    let message = error.message.to_lowercase();
    let by_message = || {
        if message.contains("prompt is too long") || message.contains("exceed context limit") || message.contains("context window") {
            FailureClass::ContextTooLong
        } else if message.contains("credit balance is too low") || message.contains("api usage limits") || message.contains("spend limit") {
            FailureClass::SpendLimit
        } else {
            FailureClass::InvalidRequest
        }
    };
    match status {
        Some(401 | 403) => return FailureClass::Authentication,
        Some(402) => return FailureClass::SpendLimit,
        Some(413) => return FailureClass::ContextTooLong,
        Some(429) if error.detail_code.as_deref() == Some("enforced_spend_limit_reached") => return FailureClass::SpendLimit,
        Some(429) => return FailureClass::RateLimited,
        Some(503 | 529) => return FailureClass::Overloaded,
        _ => {}
    }
    match error.kind.as_deref() {
        Some("invalid_request_error") => by_message(),
        Some("rate_limit_error") => FailureClass::RateLimited,
        Some("overloaded_error") => FailureClass::Overloaded,
        Some("api_error" | "timeout_error") => FailureClass::ServerError,
        Some("authentication_error" | "permission_error") => FailureClass::Authentication,
        Some("billing_error") => FailureClass::SpendLimit,
        Some("request_too_large") => FailureClass::ContextTooLong,
        Some("not_found_error") => FailureClass::InvalidRequest,
        _ => match status {
            Some(400) => by_message(),
            Some(408) => FailureClass::Timeout,
            Some(400..=499) => FailureClass::InvalidRequest,
            Some(500..=599) => FailureClass::ServerError,
            Some(_) => FailureClass::MalformedResponse,
            None => FailureClass::ServerError,
        },
    }
}

/// What an answer said, whole or gathered from a stream.
#[derive(Default)]
pub(super) struct Answer {
    text: String,
    model: Option<String>,
    usage: Usage,
    stop_reason: Option<String>,
}

impl Answer {
    /// Takes the counts a stream event carries (`message_start` has the input, `message_delta`
    /// the output so far and, lately, the input again).
    fn count(&mut self, counted: &WireUsage) {
        self.usage.input_tokens = counted.prompt_tokens().unwrap_or(self.usage.input_tokens);
        self.usage.output_tokens = counted.output_tokens.unwrap_or(self.usage.output_tokens);
    }
}

#[derive(Serialize)]
pub(super) struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    stream: bool,
}

#[derive(Deserialize)]
struct MessageResponse {
    #[serde(default)]
    model: Option<String>,
    content: Vec<ContentBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

/// Token counts. The prompt's tokens are split between uncached input and cache writes and
/// reads; [`WireUsage::prompt_tokens`] adds them up.
#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

impl WireUsage {
    fn prompt_tokens(&self) -> Option<u64> {
        let input = self.input_tokens?;
        Some(input + self.cache_creation_input_tokens.unwrap_or(0) + self.cache_read_input_tokens.unwrap_or(0))
    }
}

#[derive(Deserialize)]
struct StreamEvent {
    #[serde(default)]
    message: Option<StartedMessage>,
    #[serde(default)]
    content_block: Option<ContentBlock>,
    #[serde(default)]
    delta: Option<StreamDelta>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct StartedMessage {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// The `delta` of `content_block_delta` (`type`, `text`) or of `message_delta` (`stop_reason`).
#[derive(Deserialize)]
struct StreamDelta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> ProviderError {
        http::error_of(json.as_bytes())
    }

    #[test]
    fn error_bodies_classify_by_status_type_and_message() {
        let too_long = error(r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#);
        assert_eq!(classify(Some(400), &too_long), FailureClass::ContextTooLong);
        let over_context = error(r#"{"type":"error","error":{"type":"invalid_request_error","message":"input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, decrease input length or `max_tokens` and try again"}}"#);
        assert_eq!(classify(Some(400), &over_context), FailureClass::ContextTooLong);
        let credit = error(r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."},"request_id":"req_1"}"#);
        assert_eq!(classify(Some(400), &credit), FailureClass::SpendLimit);
        let usage_limit = error(r#"{"type":"error","error":{"type":"invalid_request_error","message":"You have reached your specified API usage limits. You will regain access on 2026-04-01 at 00:00 UTC."}}"#);
        assert_eq!(classify(Some(400), &usage_limit), FailureClass::SpendLimit);
        let bad = error(r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: at least one message is required"}}"#);
        assert_eq!(classify(Some(400), &bad), FailureClass::InvalidRequest);
        let spend_429 = error(r#"{"type":"error","error":{"type":"rate_limit_error","message":"spend limit reached","details":{"error_code":"enforced_spend_limit_reached"}}}"#);
        assert_eq!(classify(Some(429), &spend_429), FailureClass::SpendLimit);
        let rate = error(r#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your account's rate limit."}}"#);
        assert_eq!(classify(Some(429), &rate), FailureClass::RateLimited);
        assert_eq!(classify(None, &rate), FailureClass::RateLimited);
        let overloaded = error(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
        assert_eq!(classify(Some(529), &overloaded), FailureClass::Overloaded);
        assert_eq!(classify(None, &overloaded), FailureClass::Overloaded, "an error event in a stream");
        let api = error(r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#);
        assert_eq!(classify(Some(500), &api), FailureClass::ServerError);
        let auth = error(r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#);
        assert_eq!(classify(Some(401), &auth), FailureClass::Authentication);
        let denied = error(r#"{"type":"error","error":{"type":"permission_error","message":"no access"}}"#);
        assert_eq!(classify(Some(403), &denied), FailureClass::Authentication);
        let large = error(r#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#);
        assert_eq!(classify(Some(413), &large), FailureClass::ContextTooLong);
        let missing = error(r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-nope"}}"#);
        assert_eq!(classify(Some(404), &missing), FailureClass::InvalidRequest);
        let billing = error(r#"{"type":"error","error":{"type":"billing_error","message":"billing issue"}}"#);
        assert_eq!(classify(Some(402), &billing), FailureClass::SpendLimit);
        let page = ProviderError { message: "<html>Service Unavailable</html>".to_owned(), ..ProviderError::default() };
        assert_eq!(classify(Some(503), &page), FailureClass::Overloaded);
        assert_eq!(classify(Some(502), &page), FailureClass::ServerError);
    }

    #[test]
    fn configuration_defaults_everything_but_the_model() {
        let config: AnthropicConfig = toml::from_str(r#"model = "claude-sonnet-4-5""#).unwrap();
        assert_eq!(config, AnthropicConfig::new("claude-sonnet-4-5"));
        assert_eq!((config.base_url.as_str(), config.api_key_env.0.as_str(), config.version.as_str(), config.max_tokens), ("https://api.anthropic.com", "ANTHROPIC_API_KEY", "2023-06-01", 4096));
        assert!(toml::from_str::<AnthropicConfig>("version = \"2023-06-01\"").is_err(), "model is required");
        assert!(toml::from_str::<AnthropicConfig>("model = \"m\"\nseed = 1").is_err(), "unknown fields are refused");
    }
}
