//! The models section of the configuration file: the providers by name, and the router's
//! chains and policy. With none configured, one `mock` provider serves every role, so the
//! service runs with no keys.
//!
//! ```toml
//! [providers.claude]
//! type = "anthropic"
//! model = "claude-sonnet-4-5"
//!
//! [providers.local]
//! type = "openai"
//! base_url = "http://localhost:11434/v1"
//! model = "llama3.1"
//!
//! [router]
//! chain = ["claude", "local"]          # the default chain
//! roles.reviewer = ["local", "claude"]  # a role's own chain
//! ```

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::Deserialize;

use super::{
    AnthropicConfig, AnthropicProvider, BreakerPolicy, Chains, CliConfig, CliProvider, MockConfig, MockProvider, OpenAiConfig, OpenAiProvider, Provider,
    Router, RouterPolicy,
};
use crate::{
    error::{Error, Result},
    store::SharedStore,
};

/// One provider's configuration, by adapter type.
#[derive(Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ProviderSettings {
    /// `type = "mock"`.
    Mock(MockConfig),
    /// `type = "openai"`: the OpenAI-compatible chat completions API.
    Openai(OpenAiConfig),
    /// `type = "anthropic"`: the Anthropic messages API.
    Anthropic(AnthropicConfig),
    /// `type = "cli"`: a local program (claude, codex, gemini or any command).
    Cli(CliConfig),
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The adapters' settings name key variables, never keys; still, print only the type.
        f.write_str(match self {
            Self::Mock(_) => "mock",
            Self::Openai(_) => "openai",
            Self::Anthropic(_) => "anthropic",
            Self::Cli(_) => "cli",
        })
    }
}

impl ProviderSettings {
    fn build(&self, name: &str) -> Result<Arc<dyn Provider>> {
        Ok(match self {
            Self::Mock(config) => Arc::new(MockProvider::new(name, config.clone())?),
            Self::Openai(config) => Arc::new(OpenAiProvider::new(name, config.clone())?),
            Self::Anthropic(config) => Arc::new(AnthropicProvider::new(name, config.clone())?),
            Self::Cli(config) => Arc::new(CliProvider::new(name, config.clone())?),
        })
    }
}

/// The circuit breaker's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Failures within the window that open a provider's circuit [default: 3].
    pub failures: Option<u32>,
    /// The window failures are counted in, in seconds [default: 60].
    pub window_seconds: Option<f64>,
    /// The first cooldown of an open circuit, in seconds [default: 30].
    pub cooldown_seconds: Option<f64>,
    /// The longest cooldown, in seconds [default: 600].
    pub max_cooldown_seconds: Option<f64>,
}

/// The router's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterSettings {
    /// The default chain [default: `["mock"]` when no provider is configured].
    pub chain: Vec<String>,
    /// Chains by role.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Retries on one provider after a transient failure [default: 2].
    pub retries: Option<u32>,
    /// The first backoff between retries, in milliseconds [default: 250].
    pub backoff_base_ms: Option<u64>,
    /// The longest backoff, and the longest `Retry-After` waited for on one provider, in
    /// milliseconds [default: 10000].
    pub backoff_max_ms: Option<u64>,
    /// How long a call waits for a cooling chain to recover, in seconds [default: 30].
    pub max_wait_seconds: Option<f64>,
    /// How long circuits read from the store are trusted before they are read again, in
    /// milliseconds; a circuit another process trips is seen within this time [default: 1000].
    pub circuit_refresh_ms: Option<u64>,
    /// The circuit breaker.
    pub breaker: BreakerSettings,
}

/// The providers and the router, as configured.
#[derive(Debug, Clone, Default)]
pub struct ModelsConfig {
    /// Providers by name.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// The router.
    pub router: RouterSettings,
}

impl ModelsConfig {
    /// Builds the providers and the router over `store`.
    pub fn build(&self, store: SharedStore) -> Result<Router> {
        let mut settings = self.providers.clone();
        let mut chain = self.router.chain.clone();
        if settings.is_empty() {
            settings.insert("mock".to_owned(), ProviderSettings::Mock(MockConfig::default()));
            if chain.is_empty() {
                chain.push("mock".to_owned());
            }
        }
        if chain.is_empty() {
            let names: Vec<&str> = settings.keys().map(String::as_str).collect();
            return Err(Error::invalid("router.chain", format!("is required: name the default chain, from: {}", names.join(", "))));
        }
        let mut providers = BTreeMap::new();
        for (name, provider) in &settings {
            check_name(name)?;
            providers.insert(name.clone(), provider.build(name)?);
        }
        let chains = Chains { default: chain, roles: self.router.roles.clone() };
        Router::new(providers, chains, self.policy()?, store)
    }

    fn policy(&self) -> Result<RouterPolicy> {
        let defaults = RouterPolicy::default();
        let router = &self.router;
        let breaker = &router.breaker;
        Ok(RouterPolicy {
            retries: router.retries.unwrap_or(defaults.retries),
            backoff_base: router.backoff_base_ms.map_or(defaults.backoff_base, Duration::from_millis),
            backoff_max: router.backoff_max_ms.map_or(defaults.backoff_max, Duration::from_millis),
            max_wait: seconds("router.max_wait_seconds", router.max_wait_seconds, defaults.max_wait, true)?,
            circuit_refresh: router.circuit_refresh_ms.map_or(defaults.circuit_refresh, Duration::from_millis),
            breaker: BreakerPolicy {
                failures: match breaker.failures {
                    Some(0) => return Err(Error::invalid("router.breaker.failures", "must be at least 1")),
                    Some(failures) => failures,
                    None => defaults.breaker.failures,
                },
                window: seconds("router.breaker.window_seconds", breaker.window_seconds, defaults.breaker.window, false)?,
                cooldown: seconds("router.breaker.cooldown_seconds", breaker.cooldown_seconds, defaults.breaker.cooldown, false)?,
                max_cooldown: seconds(
                    "router.breaker.max_cooldown_seconds",
                    breaker.max_cooldown_seconds,
                    defaults.breaker.max_cooldown,
                    false,
                )?,
            },
        })
    }
}

fn seconds(field: &str, value: Option<f64>, default: Duration, zero_allowed: bool) -> Result<Duration> {
    match value {
        None => Ok(default),
        Some(value) if value.is_finite() && value < 1e9 && (value > 0.0 || (zero_allowed && value == 0.0)) => Ok(Duration::from_secs_f64(value)),
        Some(value) => Err(Error::invalid(field, format!("must be a positive number of seconds, not {value}"))),
    }
}

fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        return Ok(());
    }
    Err(Error::invalid(format!("providers.{name}"), "a provider name is 1 to 64 letters, digits, `-`, `_` or `.`"))
}
