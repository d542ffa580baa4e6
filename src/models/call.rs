//! One model call: what is asked (messages, sampling, limits), what came back (text, usage,
//! the provider's fingerprint) and what was actually sent, which the journal records so the
//! call can be reproduced.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::domain::RunId;

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model (sent apart from the turns where the provider wants that).
    System,
    /// The user's turn.
    User,
    /// The model's earlier turn.
    Assistant,
}

impl Role {
    /// The role's name on the wire of both HTTP APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One message of the conversation sent to a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self { role: Role::User, content: content.into() }
    }
}

/// Sampling as asked. Adapters send what their provider accepts and report it in
/// [`AppliedParams`]; the router fills in temperature 0 and the derived seed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Sampling {
    /// Sampling temperature; `None` leaves the provider's default.
    pub temperature: Option<f64>,
    /// Nucleus sampling; sent only where the provider accepts it beside `temperature`.
    pub top_p: Option<f64>,
    /// The seed, where the provider takes one.
    pub seed: Option<u64>,
    /// The most tokens to generate; `None` uses the provider's configured default.
    pub max_tokens: Option<u32>,
}

/// Where a call comes from: the mock provider derives its output from it, and the router its
/// seed. Calls through `ModelService` from outside a run have no run and no step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The run making the call.
    pub run_id: Option<RunId>,
    /// The journal key of the step making the call.
    pub step: Option<String>,
    /// The role speaking (`author`, `reviewer`): it picks the router's chain and the mock's script.
    pub role: Option<String>,
    /// The providers this caller uses, in order, instead of its role's chain: each a provider's
    /// name, or `provider#alias` (the alias tells participants on one provider apart).
    pub chain: Vec<String>,
}

/// A request to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    /// The model; `None` uses the provider's configured model.
    pub model: Option<String>,
    /// The system prompt, if any.
    pub system: Option<String>,
    /// The conversation, oldest first; the last message is usually the user's.
    pub messages: Vec<Message>,
    /// Sampling parameters.
    pub sampling: Sampling,
    /// Sequences that end generation.
    pub stop: Vec<String>,
    /// How long the call may take, first byte to last.
    pub timeout: Duration,
    /// The directory a `cli` provider runs in (the run's working directory).
    pub workdir: Option<PathBuf>,
    /// Where the call comes from.
    pub origin: Origin,
}

impl ModelRequest {
    /// A request of one user message with default sampling and a 2-minute timeout.
    pub fn prompt(text: impl Into<String>) -> Self {
        Self {
            model: None,
            system: None,
            messages: vec![Message::user(text)],
            sampling: Sampling::default(),
            stop: Vec::new(),
            timeout: Duration::from_secs(120),
            workdir: None,
            origin: Origin::default(),
        }
    }

    /// The whole prompt as one text (system prompt, then each message after its role), for
    /// providers that take a single prompt, such as command-line agents.
    pub fn flattened(&self) -> String {
        let mut text = String::new();
        if let Some(system) = &self.system {
            text.push_str(system);
            text.push_str("\n\n");
        }
        let single_user = self.messages.len() == 1 && self.messages[0].role == Role::User;
        for message in &self.messages {
            if !single_user {
                text.push_str(message.role.as_str());
                text.push_str(": ");
            }
            text.push_str(&message.content);
            text.push('\n');
        }
        text
    }
}

/// Tokens used by a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the prompt.
    pub input_tokens: u64,
    /// Tokens generated.
    pub output_tokens: u64,
}

/// The parameters an adapter actually sent, after adapting the request to its provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedParams {
    /// The model asked for.
    pub model: String,
    /// The temperature sent, if any.
    pub temperature: Option<f64>,
    /// The `top_p` sent, if any.
    pub top_p: Option<f64>,
    /// The seed sent, if any.
    pub seed: Option<u64>,
    /// The output limit sent, if any.
    pub max_tokens: Option<u32>,
    /// Whether the answer was streamed.
    pub stream: bool,
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The generated text.
    pub text: String,
    /// The model that answered, as the provider names it.
    pub model: String,
    /// The provider's fingerprint of the serving configuration (OpenAI's
    /// `system_fingerprint`, Anthropic's response id prefix is not one: `None` there).
    pub fingerprint: Option<String>,
    /// Tokens used.
    pub usage: Usage,
    /// Why generation stopped (`stop`, `length`, `end_turn`), as the provider says.
    pub finish_reason: Option<String>,
    /// What was sent.
    pub applied: AppliedParams,
}

/// Where an adapter delivers text as it is generated, when the caller streams. The adapter
/// sends each piece as soon as it has it and ignores a closed receiver (the caller left); the
/// full text is still returned in the [`Completion`].
pub type TokenSink = mpsc::Sender<String>;
