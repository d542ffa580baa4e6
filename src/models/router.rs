//! The router: every model call goes through it. A call names a role; the role's chain
//! (`primary → fallback → …`) is tried in order, starting from the primary every time, so the
//! primary takes over again as soon as its cooldown ends. On one provider, a transient failure
//! is retried with exponential backoff and jitter (or after the provider's `Retry-After`);
//! every failure is recorded in the provider's circuit breaker, kept in the store so every
//! process sees it; an open circuit is skipped. When the whole chain is cooling, the call waits
//! (a bounded time) for the earliest recovery instead of failing. Once a streamed token has
//! been delivered, the call never fails over or retries: the caller already has part of an
//! answer. A spend limit or bad credentials are never retried on the same provider.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{
    determinism,
    stats::{Recorder, RouterStats},
    BreakerPolicy, CallFailure, Circuit, CircuitState, Completion, FailureClass, ModelRequest, Provider, ProviderKind,
    TokenSink,
};
use crate::{
    domain::Timestamp,
    error::{Error, Result},
    store::SharedStore,
};

/// How the router retries, fails over and waits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterPolicy {
    /// Retries on one provider after a transient failure, before moving down the chain.
    pub retries: u32,
    /// The first backoff between retries; it doubles per retry.
    pub backoff_base: Duration,
    /// The longest backoff, and the longest `Retry-After` waited for on the same provider
    /// (a longer one sends the call down the chain).
    pub backoff_max: Duration,
    /// How long a call waits for a cooling chain to recover before failing.
    pub max_wait: Duration,
    /// How long circuits read from the store are trusted before they are read again. What this
    /// router changes it knows at once; a circuit another process trips is seen within this
    /// time (zero reads the store at every call).
    pub circuit_refresh: Duration,
    /// The circuit breaker of each provider.
    pub breaker: BreakerPolicy,
}

impl Default for RouterPolicy {
    fn default() -> Self {
        Self {
            retries: 2,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            max_wait: Duration::from_secs(30),
            circuit_refresh: Duration::from_secs(1),
            breaker: BreakerPolicy::default(),
        }
    }
}

/// A failed call on the way to an answer (or to the final failure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedCall {
    /// The provider called.
    pub provider: String,
    /// The class of failure.
    pub class: FailureClass,
    /// What went wrong.
    pub message: String,
    /// How long the call took, in milliseconds.
    pub latency_ms: f64,
}

/// An answer and how it was obtained.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The answer.
    pub completion: Completion,
    /// The provider that answered.
    pub provider: String,
    /// Its position in the chain (0: the primary).
    pub link: usize,
    /// The chain that was followed.
    pub chain: Vec<String>,
    /// How long the answering call took.
    pub latency: Duration,
    /// The calls that failed before it.
    pub failed: Vec<FailedCall>,
}

/// A call that got no answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{failure}")]
pub struct RouteFailure {
    /// The failure that ended the call: the last provider's, or the chain's cooldown.
    pub failure: CallFailure,
    /// The provider that failed last, if any was called.
    pub provider: Option<String>,
    /// Every failed call, in order.
    pub failed: Vec<FailedCall>,
    /// Whether part of the answer had been streamed to the caller.
    pub after_first_token: bool,
}

/// A provider as `ListProviders` shows it.
#[derive(Debug, Clone)]
pub struct ProviderStatus {
    /// Its configured name.
    pub name: String,
    /// Its adapter type.
    pub kind: ProviderKind,
    /// The model it uses by default.
    pub model: String,
    /// Its circuit now.
    pub state: CircuitState,
    /// How long until it takes calls again.
    pub cooldown_left: Duration,
    /// Failures counted in the circuit's window.
    pub failures: u32,
    /// The class of its last failure.
    pub last_failure: Option<FailureClass>,
}

/// The chains the router follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chains {
    /// The chain of a call with no role, or a role without a chain of its own.
    pub default: Vec<String>,
    /// Chains by role.
    pub roles: BTreeMap<String, Vec<String>>,
}

/// The router.
pub struct Router {
    providers: BTreeMap<String, Arc<dyn Provider>>,
    chains: Chains,
    policy: RouterPolicy,
    store: SharedStore,
    stats: Recorder,
    /// Circuits as last read from the store or written by this router (`None`: no row, a
    /// provider that never failed), and when.
    seen: std::sync::Mutex<HashMap<String, (Option<Circuit>, Instant)>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("chains", &self.chains)
            .field("policy", &self.policy)
            .finish()
    }
}

impl Router {
    /// A router over named providers; refuses chains that name unknown providers.
    pub fn new(providers: BTreeMap<String, Arc<dyn Provider>>, chains: Chains, policy: RouterPolicy, store: SharedStore) -> Result<Self> {
        let known = || providers.keys().cloned().collect::<Vec<_>>().join(", ");
        if chains.default.is_empty() {
            return Err(Error::invalid("router.chain", format!("must name at least one provider; configured: {}", known())));
        }
        let named = std::iter::once(("router.chain".to_owned(), &chains.default))
            .chain(chains.roles.iter().map(|(role, chain)| (format!("router.roles.{role}"), chain)));
        for (field, chain) in named {
            if chain.is_empty() {
                return Err(Error::invalid(field, "is empty; name at least one provider"));
            }
            if let Some(unknown) = chain.iter().find(|name| !providers.contains_key(*name)) {
                return Err(Error::invalid(field, format!("names `{unknown}`, which is not a configured provider; configured: {}", known())));
            }
        }
        Ok(Self { providers, chains, policy, store, stats: Recorder::default(), seen: std::sync::Mutex::default() })
    }

    /// The chain of a role.
    pub fn chain(&self, role: Option<&str>) -> &[String] {
        role.and_then(|role| self.chains.roles.get(role)).unwrap_or(&self.chains.default)
    }

    /// The circuits of `chain` as last seen, if every one was seen within `refresh`.
    fn seen(&self, chain: &[String], refresh: Duration) -> Option<HashMap<String, Circuit>> {
        if refresh.is_zero() {
            return None;
        }
        let seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut circuits = HashMap::new();
        for name in chain {
            let (circuit, at) = seen.get(name)?;
            if at.elapsed() > refresh {
                return None;
            }
            if let Some(circuit) = circuit {
                circuits.insert(name.clone(), circuit.clone());
            }
        }
        Some(circuits)
    }

    fn remember(&self, circuits: impl IntoIterator<Item = (String, Option<Circuit>)>) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (name, circuit) in circuits {
            seen.insert(name, (circuit, now));
        }
    }

    /// The chains the router follows.
    pub fn chains(&self) -> &Chains {
        &self.chains
    }

    /// Whether a provider of this name is configured.
    pub fn has_provider(&self, name: &str) -> bool {
        self.providers.contains_key(name)
    }

    /// The router's figures since this process started.
    pub fn stats(&self) -> RouterStats {
        self.stats.snapshot()
    }

    /// Every configured provider with its circuit.
    pub async fn providers(&self) -> Result<Vec<ProviderStatus>> {
        let names: Vec<String> = self.providers.keys().cloned().collect();
        let circuits: HashMap<String, Circuit> =
            self.store.read_circuits(&names).await?.into_iter().map(|circuit| (circuit.provider.clone(), circuit)).collect();
        let now = Timestamp::now();
        Ok(self
            .providers
            .iter()
            .map(|(name, provider)| {
                let circuit = circuits.get(name).cloned().unwrap_or_else(|| Circuit::closed(name, now));
                ProviderStatus {
                    name: name.clone(),
                    kind: provider.kind(),
                    model: provider.default_model().to_owned(),
                    state: circuit.state_at(now),
                    cooldown_left: circuit.cooldown_left(now),
                    failures: circuit.failures,
                    last_failure: circuit.last_failure,
                }
            })
            .collect())
    }

    /// Routes a call through its role's chain (or to one provider, when `only` names it), with
    /// the determinism defaults applied.
    pub async fn route(&self, request: &ModelRequest, only: Option<&str>, tokens: Option<&TokenSink>) -> Result<Routed, RouteFailure> {
        self.stats.request();
        let chain: Vec<String> = match only {
            Some(name) => vec![name.to_owned()],
            None if !request.origin.chain.is_empty() => request.origin.chain.iter().map(|entry| provider_of(entry).to_owned()).collect(),
            None => self.chain(request.origin.role.as_deref()).to_vec(),
        };
        let mut request = request.clone();
        request.sampling = determinism::deterministic(&request);
        let mut call = Call { router: self, chain, request, tokens, failed: Vec::new(), delivered: false };
        let result = call.run().await;
        if result.is_err() {
            self.stats.failed();
        }
        result
    }
}

/// The provider a chain entry names: `provider` or `provider#alias`.
pub fn provider_of(entry: &str) -> &str {
    entry.split_once('#').map_or(entry, |(provider, _)| provider)
}

/// What is wrong with a chain entry, if anything: it must be `provider` or `provider#alias`,
/// each part 1-63 characters of a-z, 0-9, `_` and `-`.
pub fn chain_entry_problem(entry: &str) -> Option<String> {
    let part_ok = |part: &str| (1..=63).contains(&part.len()) && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    let ok = match entry.split_once('#') {
        Some((provider, alias)) => part_ok(provider) && part_ok(alias),
        None => part_ok(entry),
    };
    (!ok).then(|| format!("`{entry}` is not `provider` or `provider#alias` (each 1-63 characters of a-z, 0-9, `_` and `-`)"))
}

/// One routed call in progress.
struct Call<'a> {
    router: &'a Router,
    chain: Vec<String>,
    request: ModelRequest,
    tokens: Option<&'a TokenSink>,
    failed: Vec<FailedCall>,
    /// Whether a streamed token reached the caller.
    delivered: bool,
}

impl Call<'_> {
    async fn run(&mut self) -> Result<Routed, RouteFailure> {
        let wait_until = Instant::now() + self.router.policy.max_wait;
        let mut last_failure: Option<(String, CallFailure)> = None;
        loop {
            let mut circuits = self.circuits().await?;
            for (link, name) in self.chain.clone().iter().enumerate() {
                let Some(provider) = self.router.providers.get(name).cloned() else {
                    return Err(self.failure(None, CallFailure::new(FailureClass::InvalidRequest, format!("`{name}` is not a configured provider"))));
                };
                let mut retries = 0;
                loop {
                    let now = Timestamp::now();
                    let circuit = circuits.entry(name.clone()).or_insert_with(|| Circuit::closed(name, now));
                    if !circuit.admits(now) {
                        break;
                    }
                    let started = Instant::now();
                    let result = self.call(provider.as_ref()).await;
                    let latency = started.elapsed();
                    let failure = match result {
                        Ok(completion) => {
                            if !circuit.is_pristine() {
                                self.record(name, &|stored: &Circuit| stored.on_success(Timestamp::now())).await;
                            }
                            self.router.stats.success(name, link, latency);
                            return Ok(Routed {
                                completion,
                                provider: name.clone(),
                                link,
                                chain: self.chain.clone(),
                                latency,
                                failed: std::mem::take(&mut self.failed),
                            });
                        }
                        Err(failure) => failure,
                    };
                    self.router.stats.failure(name, failure.class);
                    tracing::info!(provider = %name, class = %failure.class, latency_ms = latency.as_millis() as u64, "model call failed");
                    self.failed.push(FailedCall {
                        provider: name.clone(),
                        class: failure.class,
                        message: failure.message.clone(),
                        latency_ms: latency.as_secs_f64() * 1e3,
                    });
                    let policy = self.router.policy.breaker;
                    if let Some(stored) = self.record(name, &|stored: &Circuit| stored.on_failure(&failure, &policy, Timestamp::now())).await {
                        *circuit = stored;
                    }
                    if self.delivered || !failure.class.may_fail_over() {
                        return Err(self.failure(Some(name.clone()), failure));
                    }
                    let wait = if circuit.admits(Timestamp::now()) { self.backoff(retries, &failure) } else { None };
                    last_failure = Some((name.clone(), failure));
                    match wait {
                        Some(wait) if retries < self.router.policy.retries => {
                            retries += 1;
                            tokio::time::sleep(wait).await;
                        }
                        _ => break,
                    }
                }
            }
            // Every link failed or is cooling: wait for the earliest recovery, if it comes soon
            // enough, then start again from the primary.
            let now = Timestamp::now();
            let earliest = self
                .chain
                .iter()
                .filter_map(|name| circuits.get(name))
                .filter(|circuit| !circuit.admits(now))
                .map(|circuit| circuit.cooldown_left(now))
                .min();
            let all_cooling = self.chain.iter().all(|name| circuits.get(name).is_some_and(|circuit| !circuit.admits(now)));
            match earliest {
                Some(wait) if all_cooling && Instant::now() + wait <= wait_until => {
                    self.router.stats.waited();
                    tracing::info!(chain = ?self.chain, wait_ms = wait.as_millis() as u64, "every provider of the chain is cooling down; waiting for the first to recover");
                    tokio::time::sleep(wait + Duration::from_millis(5)).await;
                }
                Some(wait) if all_cooling => {
                    let class = last_failure.as_ref().map(|(_, failure)| failure.class).or_else(|| {
                        self.chain.iter().filter_map(|name| circuits.get(name)?.last_failure).next()
                    });
                    let failure = CallFailure::new(
                        class.unwrap_or(FailureClass::Overloaded),
                        format!(
                            "every provider of the chain ({}) is cooling down; the first recovers in {:.1} s, past the wait limit of {:.1} s",
                            self.chain.join(" → "),
                            wait.as_secs_f64(),
                            self.router.policy.max_wait.as_secs_f64()
                        ),
                    )
                    .retry_after(Some(wait));
                    let provider = last_failure.map(|(name, _)| name);
                    return Err(self.failure(provider, failure));
                }
                _ => {
                    let (provider, failure) = match last_failure {
                        Some((name, failure)) => (Some(name), failure),
                        None => (None, CallFailure::new(FailureClass::Overloaded, "no provider of the chain could be called")),
                    };
                    return Err(self.failure(provider, failure));
                }
            }
        }
    }

    /// Calls one provider, forwarding streamed tokens to the caller and noting the first.
    async fn call(&mut self, provider: &dyn Provider) -> Result<Completion, CallFailure> {
        let Some(outer) = self.tokens else {
            return provider.generate(&self.request, None).await;
        };
        let (inner, mut pieces) = mpsc::channel::<String>(64);
        let request = &self.request;
        let generate = async move {
            let result = provider.generate(request, Some(&inner)).await;
            drop(inner);
            result
        };
        let mut delivered = false;
        let forward = async {
            while let Some(piece) = pieces.recv().await {
                delivered = true;
                let _ = outer.send(piece).await;
            }
        };
        let (result, ()) = tokio::join!(generate, forward);
        self.delivered |= delivered;
        result
    }

    /// The circuits of the chain: as this router last saw them if that is recent enough,
    /// otherwise as stored.
    async fn circuits(&self) -> Result<HashMap<String, Circuit>, RouteFailure> {
        let refresh = self.router.policy.circuit_refresh;
        if let Some(known) = self.router.seen(&self.chain, refresh) {
            return Ok(known);
        }
        match self.router.store.read_circuits(&self.chain).await {
            Ok(circuits) => {
                let circuits: HashMap<String, Circuit> = circuits.into_iter().map(|circuit| (circuit.provider.clone(), circuit)).collect();
                self.router.remember(self.chain.iter().map(|name| (name.clone(), circuits.get(name).cloned())));
                Ok(circuits)
            }
            Err(err) => {
                // Without the store, route as if every circuit were closed rather than fail calls.
                tracing::warn!(error = %err, "cannot read the providers' circuits; routing as if all were closed");
                Ok(HashMap::new())
            }
        }
    }

    /// Records a circuit change in the store; returns the circuit as stored.
    async fn record(&self, provider: &str, change: &(dyn Fn(&Circuit) -> Circuit + Send + Sync)) -> Option<Circuit> {
        match self.router.store.update_circuit(provider, change, Timestamp::now()).await {
            Ok(circuit) => {
                self.router.remember([(provider.to_owned(), Some(circuit.clone()))]);
                Some(circuit)
            }
            Err(err) => {
                tracing::warn!(provider, error = %err, "cannot record the provider's circuit");
                None
            }
        }
    }

    /// How long to wait before retrying the same provider, or `None` to move on.
    fn backoff(&self, retries: u32, failure: &CallFailure) -> Option<Duration> {
        if !failure.class.is_transient() {
            return None;
        }
        let policy = &self.router.policy;
        if let Some(asked) = failure.retry_after {
            return (asked <= policy.backoff_max).then_some(asked);
        }
        let ceiling = policy.backoff_base.saturating_mul(1 << retries.min(16)).min(policy.backoff_max);
        let jittered = rand::rng().random_range(ceiling.as_secs_f64() / 2.0..=ceiling.as_secs_f64().max(1e-6));
        Some(Duration::from_secs_f64(jittered))
    }

    fn failure(&mut self, provider: Option<String>, failure: CallFailure) -> RouteFailure {
        RouteFailure { failure, provider, failed: std::mem::take(&mut self.failed), after_first_token: self.delivered }
    }
}
