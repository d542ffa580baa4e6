//! The interface every provider adapter implements, and the configuration that builds one.

use async_trait::async_trait;
use serde::Deserialize;

use super::{CallFailure, Completion, ModelRequest, TokenSink};

/// The adapter types a provider can be configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// Deterministic, scriptable, no network: demos and tests.
    Mock,
    /// The OpenAI-compatible chat completions API (also Ollama, vLLM, llama.cpp).
    OpenAi,
    /// The Anthropic messages API.
    Anthropic,
    /// A local program (claude, codex, gemini or any command).
    Cli,
}

impl ProviderKind {
    /// The name used in the configuration's `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mock => "mock",
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Cli => "cli",
        }
    }
}

/// A model provider: one adapter instance, configured under a name.
///
/// An adapter owns everything about its wire: how a request is encoded, which sampling
/// parameters the provider accepts, how an answer (or a stream of them) is decoded, and how a
/// failure is classified into a [`FailureClass`](super::FailureClass). Nothing above it looks
/// at status codes or error texts.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The adapter type.
    fn kind(&self) -> ProviderKind;

    /// The model used when a request names none.
    fn default_model(&self) -> &str;

    /// Performs one call. With `tokens`, the answer is streamed and each piece of text is sent
    /// there as it arrives; the returned completion holds the whole text either way. A failure
    /// after some text was sent is still a failure (the router will not fail over then).
    async fn generate(&self, request: &ModelRequest, tokens: Option<&TokenSink>) -> Result<Completion, CallFailure>;
}

/// The name of the environment variable that holds a provider's API key, as configured.
/// Keys are read from the environment when the provider is built and never stored, logged or
/// journaled.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct KeyVariable(pub String);

impl KeyVariable {
    /// Reads the key; `None` when the variable is unset or empty.
    pub fn read(&self) -> Option<String> {
        std::env::var(&self.0).ok().filter(|key| !key.is_empty())
    }
}
