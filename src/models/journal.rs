//! A model call as a run's journal records it: the answer and everything needed to reproduce
//! or audit it (provider, chain link, model, parameters sent, seed, prompt hash, provider
//! fingerprint, usage, latency, the failures on the way). A replay returns this record instead
//! of calling a provider.

use serde::{Deserialize, Serialize};

use super::{determinism, AppliedParams, FailedCall, ModelRequest, Routed, Usage};

/// The journal entry of one model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCall {
    /// The answer.
    pub text: String,
    /// The provider that answered.
    pub provider: String,
    /// Its position in the chain (0: the primary).
    pub link: usize,
    /// The chain followed.
    pub chain: Vec<String>,
    /// The model that answered, as the provider named it.
    pub model: String,
    /// The parameters sent.
    pub params: AppliedParams,
    /// The seed derived for the step (sent only where the provider takes one; see `params`).
    pub seed: Option<u64>,
    /// sha256 of the prompt (system prompt and messages).
    pub prompt_hash: String,
    /// The prompt template's version, as the caller named it.
    pub prompt_version: Option<String>,
    /// The provider's fingerprint of its serving configuration.
    pub fingerprint: Option<String>,
    /// Tokens used.
    pub usage: Usage,
    /// How long the answering call took, in milliseconds.
    pub latency_ms: f64,
    /// Why generation stopped.
    pub finish_reason: Option<String>,
    /// The calls that failed before the answer.
    pub failed: Vec<FailedCall>,
}

impl ModelCall {
    /// The record of a routed call.
    pub fn new(request: &ModelRequest, routed: Routed, seed: Option<u64>, prompt_version: Option<String>) -> Self {
        Self {
            prompt_hash: determinism::prompt_hash(request),
            prompt_version,
            seed,
            text: routed.completion.text,
            provider: routed.provider,
            link: routed.link,
            chain: routed.chain,
            model: routed.completion.model,
            params: routed.completion.applied,
            fingerprint: routed.completion.fingerprint,
            usage: routed.completion.usage,
            latency_ms: routed.latency.as_secs_f64() * 1e3,
            finish_reason: routed.completion.finish_reason,
            failed: routed.failed,
        }
    }
}
