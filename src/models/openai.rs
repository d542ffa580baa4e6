//! The `openai` provider: the OpenAI chat completions API (`POST {base_url}/chat/completions`)
//! and the servers that speak it (Ollama's `/v1`, vLLM, llama.cpp, OpenRouter). Switches in the
//! configuration say which determinism parameters a server accepts; the adapter sends only
//! those and reports exactly what it sent. Failures are classified from the status and the
//! `error.code` / `error.type` of OpenAI's error body. This file holds only the wire (what is
//! sent, how answers and stream chunks read, what errors mean); the exchange itself is the
//! flow `http` runs for both HTTP adapters.

use std::collections::BTreeMap;

use reqwest::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AppliedParams, CallFailure, Completion, FailureClass, KeyVariable, ModelRequest, ProviderKind, Role, Usage,
    http::{self, Connection, ErrorBody, SseEvent, StreamStep, WireFormat, WireMessage},
};
use crate::error::Result;

/// The configuration of an `openai` provider. Only `model` is required.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The API's base URL; requests go to `{base_url}/chat/completions`.
    /// Default `https://api.openai.com/v1`; Ollama's is `http://localhost:11434/v1`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The environment variable holding the API key, sent as `Authorization: Bearer`.
    /// Default `OPENAI_API_KEY`; when it is unset no key is sent (local servers need none).
    #[serde(default = "default_key_variable")]
    pub api_key_env: KeyVariable,
    /// The model used when a request names none.
    pub model: String,
    /// The output limit sent when a request sets none; default none (the server's own).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// The name the output limit is sent under; default `max_tokens`.
    #[serde(default)]
    pub max_tokens_field: MaxTokensField,
    /// Whether the server takes `seed`; default true.
    #[serde(default = "enabled")]
    pub supports_seed: bool,
    /// Whether the server takes `temperature` (some reasoning models refuse it); default true.
    #[serde(default = "enabled")]
    pub supports_temperature: bool,
    /// Whether `top_p` may be sent beside a temperature; default true (OpenAI accepts both).
    /// When false, `top_p` is dropped whenever a temperature is sent.
    #[serde(default = "enabled")]
    pub top_p_with_temperature: bool,
    /// Extra headers sent with every request (OpenRouter's `HTTP-Referer`, `X-Title`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl OpenAiConfig {
    /// The default configuration for a model.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            base_url: default_base_url(),
            api_key_env: default_key_variable(),
            model: model.into(),
            max_tokens: None,
            max_tokens_field: MaxTokensField::default(),
            supports_seed: true,
            supports_temperature: true,
            top_p_with_temperature: true,
            headers: BTreeMap::new(),
        }
    }
}

fn default_base_url() -> String {
    "https://api.openai.com/v1".to_owned()
}

fn default_key_variable() -> KeyVariable {
    KeyVariable("OPENAI_API_KEY".to_owned())
}

fn enabled() -> bool {
    true
}

/// The request field that carries the output limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_tokens`: older OpenAI models and most compatible servers.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: newer OpenAI models, which refuse `max_tokens`.
    MaxCompletionTokens,
}

/// The `openai` provider.
pub struct OpenAiProvider {
    config: OpenAiConfig,
    /// The endpoint, the extra headers and, with a key, `Authorization` (marked sensitive).
    connection: Connection,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.connection.debug(f, "OpenAiProvider", &self.config.model)
    }
}

impl OpenAiProvider {
    /// A provider named `name`; refuses a `base_url` that is not an http(s) URL, an invalid
    /// extra header, and a key that cannot be sent in a header. A missing key is no error.
    pub fn new(name: &str, config: OpenAiConfig) -> Result<Self> {
        let connection = Connection::new(name, &config.base_url, "/chat/completions", &config.headers, &config.api_key_env, AUTHORIZATION, "Bearer ")?;
        Ok(Self { config, connection })
    }

    fn refused(&self, refusal: &str) -> CallFailure {
        let message = format!("provider `{}` refused: {}", self.connection.provider(), self.connection.quote(refusal));
        CallFailure::new(FailureClass::ContentPolicy, message).status(200)
    }
}

impl WireFormat for OpenAiProvider {
    type Request<'a> = ChatRequest<'a>;
    type Error = ProviderError;
    type Answer = Answer;

    const KIND: ProviderKind = ProviderKind::OpenAi;
    const STREAM_END: &'static str = "[DONE]";

    fn configured_model(&self) -> &str {
        &self.config.model
    }

    fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The request body and what it applies, adapted to the configured switches.
    fn request<'a>(&'a self, request: &'a ModelRequest, stream: bool) -> (ChatRequest<'a>, AppliedParams) {
        let sampling = &request.sampling;
        let model = request.model.as_deref().unwrap_or(&self.config.model);
        let temperature = sampling.temperature.filter(|_| self.config.supports_temperature);
        let top_p = sampling.top_p.filter(|_| self.config.top_p_with_temperature || temperature.is_none());
        let seed = sampling.seed.filter(|_| self.config.supports_seed);
        let max_tokens = sampling.max_tokens.or(self.config.max_tokens);
        let system = request.system.as_deref().map(|system| WireMessage::new(Role::System, system));
        let turns = request.messages.iter().map(|message| WireMessage::new(message.role, &message.content));
        let (max_tokens_field, max_completion_tokens) = match self.config.max_tokens_field {
            MaxTokensField::MaxTokens => (max_tokens, None),
            MaxTokensField::MaxCompletionTokens => (None, max_tokens),
        };
        let body = ChatRequest {
            model,
            messages: system.into_iter().chain(turns).collect(),
            temperature,
            top_p,
            seed,
            max_tokens: max_tokens_field,
            max_completion_tokens,
            stop: &request.stop,
            stream,
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
        };
        let applied = AppliedParams { model: model.to_owned(), temperature, top_p, seed, max_tokens, stream };
        (body, applied)
    }

    fn whole_answer(&self, value: Value) -> Result<Answer, CallFailure> {
        if value.get("choices").is_none()
            && let Some(error) = value.get("error").filter(|error| !error.is_null())
        {
            return Err(self.connection.failure(None, &ProviderError::from_value(error)));
        }
        let answer: ChatResponse = serde_json::from_value(value).map_err(|err| self.connection.malformed(format!("the answer is not a chat completion ({err})")))?;
        let Some(choice) = answer.choices.into_iter().next() else {
            return Err(self.connection.malformed("the answer has no choices"));
        };
        let message = choice.message.unwrap_or_default();
        Ok(Answer {
            text: message.content.unwrap_or_default(),
            refusal: message.refusal.unwrap_or_default(),
            model: answer.model,
            fingerprint: answer.system_fingerprint,
            usage: answer.usage,
            finish_reason: choice.finish_reason,
        })
    }

    /// Adds a chunk's text, refusal, usage and finish reason (of the first choice only).
    fn fold(&self, answer: &mut Answer, event: SseEvent) -> Result<StreamStep, CallFailure> {
        let data = event.data.trim();
        if data == Self::STREAM_END {
            return Ok(StreamStep::End);
        }
        let chunk: StreamChunk = serde_json::from_str(data).map_err(|err| self.connection.malformed(format!("a stream chunk is not a completion chunk ({err})")))?;
        if let Some(error) = chunk.error.filter(|error| !error.is_null()) {
            return Err(self.connection.failure(None, &ProviderError::from_value(&error)));
        }
        answer.model = chunk.model.or(answer.model.take());
        answer.fingerprint = chunk.system_fingerprint.or(answer.fingerprint.take());
        answer.usage = chunk.usage.or(answer.usage.take());
        let mut pieces = Vec::new();
        for choice in chunk.choices.unwrap_or_default().into_iter().filter(|choice| choice.index.unwrap_or(0) == 0) {
            if let Some(delta) = choice.delta {
                if let Some(piece) = delta.content {
                    answer.text.push_str(&piece);
                    pieces.push(piece);
                }
                answer.refusal.push_str(delta.refusal.as_deref().unwrap_or_default());
            }
            answer.finish_reason = choice.finish_reason.or(answer.finish_reason.take());
        }
        Ok(StreamStep::Pieces(pieces))
    }

    /// The completion of an answer, or the content-policy failure it stands for (a refusal, or
    /// an answer the content filter stopped).
    fn completion(&self, answer: Answer, applied: AppliedParams) -> Result<Completion, CallFailure> {
        if !answer.refusal.is_empty() {
            return Err(self.refused(&answer.refusal));
        }
        if answer.finish_reason.as_deref() == Some("content_filter") {
            let message = format!("provider `{}` stopped the answer with its content filter (finish_reason content_filter)", self.connection.provider());
            return Err(CallFailure::new(FailureClass::ContentPolicy, message).status(200));
        }
        let usage = answer.usage.unwrap_or_default();
        Ok(Completion {
            text: answer.text,
            model: http::answering_model(answer.model, &applied),
            fingerprint: answer.fingerprint.filter(|fingerprint| !fingerprint.is_empty()),
            usage: Usage { input_tokens: usage.prompt_tokens.unwrap_or(0), output_tokens: usage.completion_tokens.unwrap_or(0) },
            finish_reason: answer.finish_reason,
            applied,
        })
    }
}

/// What an OpenAI error body says: `{"error": {"message", "type", "code"}}`. Compatible servers
/// vary: `code` may be a number (OpenRouter, llama.cpp), `error` a bare string, the body not
/// JSON at all (a proxy's page), which then is the message.
#[derive(Debug, Default)]
pub(super) struct ProviderError {
    message: String,
    kind: Option<String>,
    code: Option<String>,
    numeric_code: Option<u16>,
}

impl ProviderError {
    fn from_value(error: &Value) -> Self {
        if let Some(message) = error.as_str() {
            return Self { message: message.to_owned(), ..Self::default() };
        }
        let text = |field: &str| error.get(field).and_then(Value::as_str).filter(|text| !text.is_empty()).map(str::to_owned);
        let code = error.get("code");
        Self {
            message: text("message").unwrap_or_else(|| error.to_string()),
            kind: text("type"),
            code: code.and_then(Value::as_str).map(str::to_owned),
            numeric_code: code.and_then(Value::as_u64).and_then(|code| u16::try_from(code).ok()),
        }
    }

    fn is_tagged(&self, tag: &str) -> bool {
        self.code.as_deref() == Some(tag) || self.kind.as_deref() == Some(tag)
    }
}

impl ErrorBody for ProviderError {
    /// The body's `error`, or the body itself where it has none (vLLM).
    fn from_json(body: &Value) -> Self {
        Self::from_value(body.get("error").unwrap_or(body))
    }

    fn from_text(text: String) -> Self {
        Self { message: text, ..Self::default() }
    }

    fn class(&self, status: Option<u16>) -> FailureClass {
        classify(status, self)
    }

    fn tag(&self) -> Option<&str> {
        self.code.as_deref().or(self.kind.as_deref())
    }

    fn message(&self) -> &str {
        &self.message
    }
}

/// The class of an OpenAI error: first by what the body names (a quota, the context, the
/// content filter mean the same under any status), then by status.
fn classify(status: Option<u16>, error: &ProviderError) -> FailureClass {
    let message = error.message.to_lowercase();
    if error.is_tagged("insufficient_quota") {
        return FailureClass::SpendLimit;
    }
    if status == Some(413)
        || error.is_tagged("context_length_exceeded")
        || error.is_tagged("exceed_context_size_error")
        || message.contains("maximum context length")
        || message.contains("context length exceeded")
    {
        return FailureClass::ContextTooLong;
    }
    if error.is_tagged("content_policy_violation") || error.is_tagged("content_filter") {
        return FailureClass::ContentPolicy;
    }
    let Some(status) = status.or(error.numeric_code) else {
        return match (error.code.as_deref(), error.kind.as_deref()) {
            (Some("rate_limit_exceeded"), _) | (_, Some("rate_limit_exceeded" | "requests" | "tokens")) => FailureClass::RateLimited,
            (_, Some("invalid_request_error")) => FailureClass::InvalidRequest,
            (_, Some("authentication_error")) => FailureClass::Authentication,
            _ => FailureClass::ServerError,
        };
    };
    match status {
        401 | 403 => FailureClass::Authentication,
        402 => FailureClass::SpendLimit,
        408 => FailureClass::Timeout,
        429 => FailureClass::RateLimited,
        503 | 529 => FailureClass::Overloaded,
        400..=499 => FailureClass::InvalidRequest,
        500..=599 => FailureClass::ServerError,
        _ => FailureClass::MalformedResponse,
    }
}

/// What an answer said, whole or gathered from a stream.
#[derive(Default)]
pub(super) struct Answer {
    text: String,
    refusal: String,
    model: Option<String>,
    fingerprint: Option<String>,
    usage: Option<WireUsage>,
    finish_reason: Option<String>,
}

#[derive(Serialize)]
pub(super) struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    system_fingerprint: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct StreamChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    system_fingerprint: Option<String>,
    #[serde(default)]
    choices: Option<Vec<StreamChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct StreamChoice {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> ProviderError {
        http::error_of(json.as_bytes())
    }

    #[test]
    fn error_bodies_classify_by_code_then_status() {
        let quota = error(r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#);
        assert_eq!(classify(Some(429), &quota), FailureClass::SpendLimit);
        let rate = error(r#"{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#);
        assert_eq!(classify(Some(429), &rate), FailureClass::RateLimited);
        assert_eq!(classify(None, &rate), FailureClass::RateLimited);
        let context = error(r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#);
        assert_eq!(classify(Some(400), &context), FailureClass::ContextTooLong);
        let vllm_context = error(r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.","type":"BadRequestError","code":400}"#);
        assert_eq!(classify(Some(400), &vllm_context), FailureClass::ContextTooLong);
        let llama_context = error(r#"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#);
        assert_eq!(classify(Some(400), &llama_context), FailureClass::ContextTooLong);
        let filtered = error(r#"{"error":{"message":"The response was filtered","type":null,"param":"prompt","code":"content_filter"}}"#);
        assert_eq!(classify(Some(400), &filtered), FailureClass::ContentPolicy);
        let bad = error(r#"{"error":{"message":"Unrecognized request argument supplied: foo","type":"invalid_request_error","param":null,"code":null}}"#);
        assert_eq!(classify(Some(400), &bad), FailureClass::InvalidRequest);
        assert_eq!(classify(Some(404), &bad), FailureClass::InvalidRequest);
        let html = error("<html>Bad gateway</html>");
        assert_eq!(html.message, "<html>Bad gateway</html>");
        let by_status = [
            (401, FailureClass::Authentication),
            (403, FailureClass::Authentication),
            (402, FailureClass::SpendLimit),
            (408, FailureClass::Timeout),
            (503, FailureClass::Overloaded),
            (529, FailureClass::Overloaded),
            (500, FailureClass::ServerError),
            (502, FailureClass::ServerError),
            (504, FailureClass::ServerError),
        ];
        for (status, class) in by_status {
            assert_eq!(classify(Some(status), &html), class, "HTTP {status}");
        }
        let openrouter_midstream = error(r#"{"error":{"code":502,"message":"Provider returned error"}}"#);
        assert_eq!(classify(None, &openrouter_midstream), FailureClass::ServerError);
        let openrouter_credits = error(r#"{"error":{"code":402,"message":"Insufficient credits"}}"#);
        assert_eq!(classify(None, &openrouter_credits), FailureClass::SpendLimit);
    }

    #[test]
    fn configuration_defaults_everything_but_the_model() {
        let config: OpenAiConfig = toml::from_str(r#"model = "gpt-4o""#).unwrap();
        assert_eq!(config, OpenAiConfig::new("gpt-4o"));
        assert_eq!(config.base_url, "https://api.openai.com/v1");
        assert_eq!(config.api_key_env.0, "OPENAI_API_KEY");
        assert!(toml::from_str::<OpenAiConfig>("base_url = \"http://x\"").is_err(), "model is required");
        assert!(toml::from_str::<OpenAiConfig>("model = \"m\"\ntemprature = 0").is_err(), "unknown fields are refused");
        let config: OpenAiConfig = toml::from_str("model = \"o3\"\nmax_tokens_field = \"max_completion_tokens\"").unwrap();
        assert_eq!(config.max_tokens_field, MaxTokensField::MaxCompletionTokens);
    }
}
