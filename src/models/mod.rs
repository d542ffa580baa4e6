//! Models: every agent in Conclave speaks through this layer. A [`Provider`] adapter talks to
//! one provider (`mock`, `openai`, `anthropic`, `cli`) and classifies its failures; the router
//! picks a provider from a role's chain, retries, fails over and keeps a circuit breaker per
//! provider in the store; calls from runs are journaled steps that record what is needed to
//! reproduce them, so a finished run can be replayed without calling a provider.

mod anthropic;
mod call;
mod circuit;
mod config;
pub mod determinism;
mod cli;
mod failure;
mod http;
mod journal;
mod mock;
mod openai;
mod provider;
mod router;
mod stats;

pub use anthropic::{AnthropicConfig, AnthropicProvider};
pub use call::{AppliedParams, Completion, Message, ModelRequest, Origin, Role, Sampling, TokenSink, Usage};
pub use circuit::{BreakerPolicy, Circuit, CircuitState};
pub use config::{BreakerSettings, ModelsConfig, ProviderSettings, RouterSettings};
pub use cli::{CliConfig, CliProvider, PromptMode};
pub use failure::{CallFailure, FailureClass};
pub use journal::ModelCall;
pub use mock::{MockConfig, MockProvider, ScriptEntry};
pub use openai::{MaxTokensField, OpenAiConfig, OpenAiProvider};
pub use router::{chain_entry_problem, provider_of, Chains, FailedCall, ProviderStatus, RouteFailure, Routed, Router, RouterPolicy};
pub use stats::{ProviderStats, RouterStats};
pub use provider::{KeyVariable, Provider, ProviderKind};
