//! The `mock` provider: deterministic output with no network, for demos and tests. Without a
//! script, the answer is derived from (run, step, prompt, seed), so the same call always gets
//! the same answer. A script, per role, fixes replies, structured replies (votes, verdicts),
//! failures, delays and token streams, in order, each for a number of calls.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::{AppliedParams, CallFailure, Completion, FailureClass, ModelRequest, Provider, ProviderKind, TokenSink, Usage};
use crate::error::{Error, Result};

/// The configuration of a `mock` provider.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    /// The model name it answers as.
    pub model: String,
    /// Words per streamed piece.
    pub chunk_words: usize,
    /// Milliseconds between streamed pieces.
    pub token_delay_ms: u64,
    /// Milliseconds every call takes before answering.
    pub delay_ms: u64,
    /// Scripted answers, tried in order; the first that matches the call's role and has calls
    /// left answers it. Calls no entry matches get the derived answer.
    pub script: Vec<ScriptEntry>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self { model: "mock-1".to_owned(), chunk_words: 3, token_delay_ms: 0, delay_ms: 0, script: Vec::new() }
    }
}

/// One scripted answer.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptEntry {
    /// The role it answers (`reviewer`); unset answers every role.
    pub role: Option<String>,
    /// Answers only calls whose step key starts with this (`vote/`, `challenge-2/`); unset
    /// answers every step.
    pub step: Option<String>,
    /// A fixed reply.
    pub reply: Option<String>,
    /// A structured reply (a vote, a verdict), sent as its JSON text.
    pub json: Option<Value>,
    /// Fail with this class (`rate_limited`, `overloaded`, …) instead of answering.
    pub fail: Option<String>,
    /// With `fail`: the `Retry-After` to report, in milliseconds.
    pub retry_after_ms: Option<u64>,
    /// Milliseconds this answer takes, instead of the provider's `delay_ms`.
    pub delay_ms: Option<u64>,
    /// The pieces to stream, in order (their concatenation is the reply).
    pub tokens: Option<Vec<String>>,
    /// With `tokens` and `fail`: fail after streaming the pieces.
    pub fail_after_tokens: bool,
    /// How many calls this entry answers; unset answers every call.
    pub times: Option<u32>,
}

/// What a script entry says to do.
enum Scripted {
    Reply { text: String, pieces: Option<Vec<String>>, delay: Option<Duration> },
    Fail { failure: CallFailure, pieces: Vec<String>, delay: Option<Duration> },
}

/// The `mock` provider.
#[derive(Debug)]
pub struct MockProvider {
    name: String,
    config: MockConfig,
    /// Calls each script entry answered so far, by index.
    used: Mutex<HashMap<usize, u32>>,
}

impl MockProvider {
    /// A mock provider; refuses a script entry with an unknown failure class or no answer.
    pub fn new(name: &str, config: MockConfig) -> Result<Self> {
        for (index, entry) in config.script.iter().enumerate() {
            let field = format!("providers.{name}.script[{index}]");
            if let Some(class) = &entry.fail
                && FailureClass::parse(class).is_none()
            {
                let known: Vec<&str> = FailureClass::ALL.iter().map(|class| class.as_str()).collect();
                return Err(Error::invalid(format!("{field}.fail"), format!("`{class}` is not a failure class; use one of: {}", known.join(", "))));
            }
            let answers = [entry.reply.is_some(), entry.json.is_some(), entry.fail.is_some(), entry.tokens.is_some()];
            if !answers.contains(&true) {
                return Err(Error::invalid(field, "says nothing to do: set `reply`, `json`, `tokens` or `fail`"));
            }
            if entry.reply.is_some() && entry.json.is_some() {
                return Err(Error::invalid(field, "sets both `reply` and `json`; keep one"));
            }
        }
        Ok(Self { name: name.to_owned(), config, used: Mutex::new(HashMap::new()) })
    }

    /// Takes the script entry that answers this call, if any, counting the call against it.
    async fn scripted(&self, request: &ModelRequest) -> Option<Scripted> {
        let role = request.origin.role.as_deref();
        let step = request.origin.step.as_deref().unwrap_or_default();
        let mut used = self.used.lock().await;
        let (index, entry) = self.config.script.iter().enumerate().find(|(index, entry)| {
            let role_matches = entry.role.is_none() || entry.role.as_deref() == role;
            let step_matches = entry.step.as_deref().is_none_or(|prefix| step.starts_with(prefix));
            let calls_left = entry.times.is_none_or(|times| used.get(index).copied().unwrap_or(0) < times);
            role_matches && step_matches && calls_left
        })?;
        *used.entry(index).or_insert(0) += 1;
        let delay = entry.delay_ms.map(Duration::from_millis);
        let pieces = entry.tokens.clone();
        if let Some(class) = entry.fail.as_deref().and_then(FailureClass::parse) {
            let failure = CallFailure::new(class, format!("scripted failure of mock provider `{}`", self.name))
                .retry_after(entry.retry_after_ms.map(Duration::from_millis));
            let pieces = if entry.fail_after_tokens { pieces.unwrap_or_default() } else { Vec::new() };
            return Some(Scripted::Fail { failure, pieces, delay });
        }
        let text = match (&entry.reply, &entry.json, &pieces) {
            (Some(reply), _, _) => reply.clone(),
            (None, Some(json), _) => json.to_string(),
            (None, None, Some(pieces)) => pieces.concat(),
            (None, None, None) => String::new(),
        };
        Some(Scripted::Reply { text, pieces, delay })
    }

    /// The answer derived from the call: the same run, step, prompt and seed give the same text.
    fn derived(&self, request: &ModelRequest) -> String {
        let mut hash = Sha256::new();
        for part in [
            request.origin.run_id.map(|id| id.to_string()).unwrap_or_default(),
            request.origin.step.clone().unwrap_or_default(),
            request.flattened(),
            request.sampling.seed.map(|seed| seed.to_string()).unwrap_or_default(),
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let digest = hash.finalize();
        let tag: String = digest.iter().take(6).map(|byte| format!("{byte:02x}")).collect();
        let asked = request.messages.last().map(|message| message.content.as_str()).unwrap_or_default();
        let asked: String = asked.split_whitespace().take(12).collect::<Vec<_>>().join(" ");
        format!("mock answer {tag} to: {asked}")
    }

    fn pieces_of(&self, text: &str) -> Vec<String> {
        let words: Vec<&str> = text.split_inclusive(' ').collect();
        words.chunks(self.config.chunk_words.max(1)).map(|chunk| chunk.concat()).collect()
    }

    async fn stream(&self, pieces: &[String], tokens: Option<&TokenSink>) {
        let Some(tokens) = tokens else { return };
        for (index, piece) in pieces.iter().enumerate() {
            if index > 0 && self.config.token_delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(self.config.token_delay_ms)).await;
            }
            let _ = tokens.send(piece.clone()).await;
        }
    }
}

#[async_trait]
impl Provider for MockProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Mock
    }

    fn default_model(&self) -> &str {
        &self.config.model
    }

    async fn generate(&self, request: &ModelRequest, tokens: Option<&TokenSink>) -> Result<Completion, CallFailure> {
        let scripted = self.scripted(request).await;
        let delay = match &scripted {
            Some(Scripted::Reply { delay, .. } | Scripted::Fail { delay, .. }) => delay.unwrap_or(Duration::from_millis(self.config.delay_ms)),
            None => Duration::from_millis(self.config.delay_ms),
        };
        if !delay.is_zero() {
            if delay > request.timeout {
                tokio::time::sleep(request.timeout).await;
                return Err(CallFailure::new(FailureClass::Timeout, format!("the mock provider took longer than {:?}", request.timeout)));
            }
            tokio::time::sleep(delay).await;
        }
        let (text, pieces) = match scripted {
            Some(Scripted::Fail { failure, pieces, .. }) => {
                self.stream(&pieces, tokens).await;
                return Err(failure);
            }
            Some(Scripted::Reply { text, pieces, .. }) => {
                let pieces = pieces.unwrap_or_else(|| self.pieces_of(&text));
                (text, pieces)
            }
            None => {
                let text = self.derived(request);
                let pieces = self.pieces_of(&text);
                (text, pieces)
            }
        };
        self.stream(&pieces, tokens).await;
        let model = request.model.clone().unwrap_or_else(|| self.config.model.clone());
        let words = |text: &str| text.split_whitespace().count() as u64;
        Ok(Completion {
            usage: Usage { input_tokens: words(&request.flattened()), output_tokens: words(&text) },
            text,
            fingerprint: Some(format!("mock-{}", env!("CARGO_PKG_VERSION"))),
            finish_reason: Some("stop".to_owned()),
            applied: AppliedParams {
                model: model.clone(),
                temperature: request.sampling.temperature,
                top_p: request.sampling.top_p,
                seed: request.sampling.seed,
                max_tokens: request.sampling.max_tokens,
                stream: tokens.is_some(),
            },
            model,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RunId;

    fn request(run: RunId, step: &str, role: Option<&str>) -> ModelRequest {
        let mut request = ModelRequest::prompt("Review this plan please");
        request.origin.run_id = Some(run);
        request.origin.step = Some(step.to_owned());
        request.origin.role = role.map(str::to_owned);
        request
    }

    #[tokio::test]
    async fn the_derived_answer_depends_only_on_the_call() {
        let mock = MockProvider::new("mock", MockConfig::default()).unwrap();
        let run = RunId::new();
        let first = mock.generate(&request(run, "a", None), None).await.unwrap();
        let again = mock.generate(&request(run, "a", None), None).await.unwrap();
        let other_step = mock.generate(&request(run, "b", None), None).await.unwrap();
        assert_eq!(first.text, again.text);
        assert_ne!(first.text, other_step.text);
        assert!(first.text.ends_with("to: Review this plan please"), "{}", first.text);
    }

    #[tokio::test]
    async fn scripts_answer_by_role_in_order_for_their_number_of_calls() {
        let config: MockConfig = toml::from_str(
            r#"
            [[script]]
            role = "reviewer"
            fail = "rate_limited"
            retry_after_ms = 1500
            times = 1
            [[script]]
            role = "reviewer"
            json = { vote = "approve", confidence = 0.9 }
            [[script]]
            step = "final/"
            reply = "final word"
            [[script]]
            reply = "fixed"
            "#,
        )
        .unwrap();
        let mock = MockProvider::new("mock", config).unwrap();
        let run = RunId::new();
        let failure = mock.generate(&request(run, "a", Some("reviewer")), None).await.unwrap_err();
        assert_eq!(failure.class, FailureClass::RateLimited);
        assert_eq!(failure.retry_after, Some(Duration::from_millis(1500)));
        let vote = mock.generate(&request(run, "a", Some("reviewer")), None).await.unwrap();
        assert_eq!(serde_json::from_str::<Value>(&vote.text).unwrap()["vote"], "approve");
        let author = mock.generate(&request(run, "a", Some("author")), None).await.unwrap();
        assert_eq!(author.text, "fixed");
        let last = mock.generate(&request(run, "final/author", Some("author")), None).await.unwrap();
        assert_eq!(last.text, "final word", "an entry for a step prefix answers only those steps");
    }

    #[tokio::test]
    async fn streamed_pieces_make_the_reply() {
        let mock = MockProvider::new("mock", MockConfig::default()).unwrap();
        let (sink, mut pieces) = tokio::sync::mpsc::channel(64);
        let completion = mock.generate(&request(RunId::new(), "a", None), Some(&sink)).await.unwrap();
        drop(sink);
        let mut streamed = String::new();
        while let Some(piece) = pieces.recv().await {
            streamed.push_str(&piece);
        }
        assert_eq!(streamed, completion.text);
        assert!(completion.applied.stream);
    }

    #[test]
    fn bad_scripts_are_refused_with_the_field() {
        let config: MockConfig = toml::from_str("[[script]]\nfail = \"oops\"\n").unwrap();
        let err = MockProvider::new("m", config).unwrap_err();
        assert!(err.to_string().contains("providers.m.script[0].fail"), "{err}");
        let config: MockConfig = toml::from_str("[[script]]\nrole = \"x\"\n").unwrap();
        assert!(MockProvider::new("m", config).is_err());
    }
}
