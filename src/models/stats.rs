//! The router's figures since this process started: calls, failures by class, fallbacks and
//! latency per provider. Kept in memory: each process reports its own traffic.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use super::FailureClass;

/// Latencies kept per provider for the percentiles.
const LATENCY_WINDOW: usize = 4096;

/// One provider's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderStats {
    /// Calls made to it.
    pub calls: u64,
    /// Calls it answered.
    pub successes: u64,
    /// Failed calls, by class.
    pub failures: BTreeMap<FailureClass, u64>,
    /// Calls it answered as a fallback (not the chain's first link).
    pub fallbacks: u64,
    /// Median latency of its answers over the recent window.
    pub p50: Duration,
    /// 99th percentile latency of its answers over the recent window.
    pub p99: Duration,
}

/// The router's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouterStats {
    /// Requests routed.
    pub requests: u64,
    /// Requests answered by a fallback.
    pub fallbacks: u64,
    /// Requests that failed after the chain was exhausted or stopped.
    pub failed: u64,
    /// Requests that waited for a cooling chain to recover.
    pub waited: u64,
    /// Per provider, by name.
    pub providers: BTreeMap<String, ProviderStats>,
}

#[derive(Debug, Default)]
struct Counters {
    stats: RouterStats,
    latencies: BTreeMap<String, VecDeque<Duration>>,
}

/// The router's counters.
#[derive(Debug, Default)]
pub(super) struct Recorder {
    counters: Mutex<Counters>,
}

impl Recorder {
    fn with<T>(&self, f: impl FnOnce(&mut Counters) -> T) -> T {
        let mut counters = self.counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut counters)
    }

    pub(super) fn request(&self) {
        self.with(|c| c.stats.requests += 1);
    }

    pub(super) fn waited(&self) {
        self.with(|c| c.stats.waited += 1);
    }

    pub(super) fn failed(&self) {
        self.with(|c| c.stats.failed += 1);
    }

    pub(super) fn success(&self, provider: &str, link: usize, latency: Duration) {
        self.with(|c| {
            let stats = c.stats.providers.entry(provider.to_owned()).or_default();
            stats.calls += 1;
            stats.successes += 1;
            if link > 0 {
                stats.fallbacks += 1;
                c.stats.fallbacks += 1;
            }
            let window = c.latencies.entry(provider.to_owned()).or_default();
            if window.len() == LATENCY_WINDOW {
                window.pop_front();
            }
            window.push_back(latency);
        });
    }

    pub(super) fn failure(&self, provider: &str, class: FailureClass) {
        self.with(|c| {
            let stats = c.stats.providers.entry(provider.to_owned()).or_default();
            stats.calls += 1;
            *stats.failures.entry(class).or_insert(0) += 1;
        });
    }

    /// The figures now, with the percentiles computed.
    pub(super) fn snapshot(&self) -> RouterStats {
        self.with(|c| {
            let mut stats = c.stats.clone();
            for (provider, window) in &c.latencies {
                let mut sorted: Vec<Duration> = window.iter().copied().collect();
                sorted.sort_unstable();
                if let Some(entry) = stats.providers.get_mut(provider) {
                    entry.p50 = percentile(&sorted, 0.50);
                    entry.p99 = percentile(&sorted, 0.99);
                }
            }
            stats
        })
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
