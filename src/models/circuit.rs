//! The circuit breaker of one provider, as a pure state machine. The router keeps one per
//! provider in the store, so every process sharing the database sees a provider cooling down
//! as soon as one of them trips it.
//!
//! Closed: calls go through; failures are counted in a window. Enough failures in the window
//! (or one failure that will repeat, such as bad credentials or an exhausted spend limit) open
//! the circuit for a cooldown, never shorter than the provider's `Retry-After`. Open: no calls
//! until the cooldown ends. Then half-open: the next call is a probe; success closes the
//! circuit, failure opens it again for twice the previous cooldown (up to a maximum).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CallFailure, FailureClass};
use crate::domain::Timestamp;

/// When a circuit opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Failures within `window` that open the circuit.
    pub failures: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// The first cooldown.
    pub cooldown: Duration,
    /// The longest cooldown, however often the circuit reopens.
    pub max_cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            failures: 3,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(600),
        }
    }
}

/// The state of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// No calls until the cooldown ends.
    Open,
    /// The cooldown ended; the next call is a probe.
    HalfOpen,
}

impl CircuitState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Closed, Self::Open, Self::HalfOpen].into_iter().find(|state| state.as_str() == name)
    }
}

/// One provider's circuit, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Circuit {
    /// The provider's configured name.
    pub provider: String,
    /// Open, closed or waiting for a probe (as stored: an open circuit whose cooldown ended is
    /// half-open; see [`Circuit::state_at`]).
    pub state: CircuitState,
    /// Failures counted in the current window.
    pub failures: u32,
    /// When the current window started.
    pub window_started_at: Timestamp,
    /// Until when it is open.
    pub open_until: Option<Timestamp>,
    /// The cooldown it was last opened for.
    pub last_cooldown: Duration,
    /// The class of the last failure.
    pub last_failure: Option<FailureClass>,
    /// When the last failure happened.
    pub last_failure_at: Option<Timestamp>,
}

impl Circuit {
    /// A closed circuit with no failures.
    pub fn closed(provider: &str, now: Timestamp) -> Self {
        Self {
            provider: provider.to_owned(),
            state: CircuitState::Closed,
            failures: 0,
            window_started_at: now,
            open_until: None,
            last_cooldown: Duration::ZERO,
            last_failure: None,
            last_failure_at: None,
        }
    }

    /// The state at `now`: an open circuit whose cooldown has ended is half-open.
    pub fn state_at(&self, now: Timestamp) -> CircuitState {
        match (self.state, self.open_until) {
            (CircuitState::Open, Some(until)) if until <= now => CircuitState::HalfOpen,
            (state, _) => state,
        }
    }

    /// Whether a call may go to the provider at `now`.
    pub fn admits(&self, now: Timestamp) -> bool {
        self.state_at(now) != CircuitState::Open
    }

    /// How long until it admits calls again (zero when it does now).
    pub fn cooldown_left(&self, now: Timestamp) -> Duration {
        match (self.state_at(now), self.open_until) {
            (CircuitState::Open, Some(until)) => until.since(now),
            _ => Duration::ZERO,
        }
    }

    /// Whether a success has anything to reset (so a healthy provider's successes write nothing).
    pub fn is_pristine(&self) -> bool {
        self.state == CircuitState::Closed && self.failures == 0
    }

    /// The circuit after a successful call: closed, failures forgotten.
    pub fn on_success(&self, now: Timestamp) -> Self {
        Self { last_failure: self.last_failure, last_failure_at: self.last_failure_at, ..Self::closed(&self.provider, now) }
    }

    /// The circuit after a failed call at `now`.
    pub fn on_failure(&self, failure: &CallFailure, policy: &BreakerPolicy, now: Timestamp) -> Self {
        let mut next = self.clone();
        next.last_failure = Some(failure.class);
        next.last_failure_at = Some(now);
        if !failure.class.trips_circuit() {
            return next;
        }
        let state = self.state_at(now);
        if state == CircuitState::Closed && now.since(self.window_started_at) > policy.window {
            next.failures = 0;
            next.window_started_at = now;
        }
        next.failures += 1;
        let repeats = matches!(failure.class, FailureClass::SpendLimit | FailureClass::Authentication | FailureClass::ProgramMissing);
        let tripped = repeats || next.failures >= policy.failures.max(1);
        // A provider that says when to come back is not called before then, tripped or not.
        let opens = match state {
            CircuitState::HalfOpen => true,
            CircuitState::Open => false,
            CircuitState::Closed => tripped || failure.retry_after.is_some(),
        };
        if opens {
            let cooldown = match state {
                CircuitState::HalfOpen => (self.last_cooldown * 2).min(policy.max_cooldown),
                _ if tripped => policy.cooldown,
                _ => Duration::ZERO,
            };
            let cooldown = cooldown.max(failure.retry_after.unwrap_or_default()).max(Duration::from_millis(1));
            next.state = CircuitState::Open;
            next.open_until = Some(now.plus(cooldown));
            next.last_cooldown = cooldown;
        } else if let (CircuitState::Open, Some(wait)) = (state, failure.retry_after) {
            // A late failure while open (a call that started before the circuit opened) only
            // lengthens the cooldown if the provider asks for longer.
            let until = now.plus(wait);
            if self.open_until.is_none_or(|current| current < until) {
                next.open_until = Some(until);
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(class: FailureClass) -> CallFailure {
        CallFailure::new(class, "test")
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_micros(1_000_000_000_000 + seconds * 1_000_000)
    }

    #[test]
    fn opens_after_enough_failures_in_the_window_then_probes() {
        let policy = BreakerPolicy { failures: 2, window: Duration::from_secs(10), cooldown: Duration::from_secs(5), max_cooldown: Duration::from_secs(60) };
        let circuit = Circuit::closed("p", at(0)).on_failure(&failure(FailureClass::Overloaded), &policy, at(1));
        assert!(circuit.admits(at(1)));
        let circuit = circuit.on_failure(&failure(FailureClass::Overloaded), &policy, at(2));
        assert!(!circuit.admits(at(3)));
        assert_eq!(circuit.cooldown_left(at(3)), Duration::from_secs(4));
        assert_eq!(circuit.state_at(at(7)), CircuitState::HalfOpen);
        let reopened = circuit.on_failure(&failure(FailureClass::Overloaded), &policy, at(7));
        assert_eq!(reopened.cooldown_left(at(7)), Duration::from_secs(10), "the cooldown doubles");
        assert!(reopened.on_success(at(30)).is_pristine());
    }

    #[test]
    fn failures_outside_the_window_start_a_new_count() {
        let policy = BreakerPolicy { failures: 2, window: Duration::from_secs(10), ..BreakerPolicy::default() };
        let circuit = Circuit::closed("p", at(0)).on_failure(&failure(FailureClass::Timeout), &policy, at(1));
        let circuit = circuit.on_failure(&failure(FailureClass::Timeout), &policy, at(20));
        assert!(circuit.admits(at(20)));
        assert_eq!(circuit.failures, 1);
    }

    #[test]
    fn retry_after_and_failures_that_repeat() {
        let policy = BreakerPolicy::default();
        let limited = failure(FailureClass::RateLimited).retry_after(Some(Duration::from_secs(120)));
        let circuit = Circuit::closed("p", at(0)).on_failure(&limited, &policy, at(0));
        assert_eq!(circuit.cooldown_left(at(0)), Duration::from_secs(120), "below the threshold, Retry-After alone opens it for that long");
        let plain = Circuit::closed("p", at(0)).on_failure(&failure(FailureClass::RateLimited), &policy, at(0));
        assert!(plain.admits(at(0)), "one rate limit without Retry-After, below the threshold, does not open");
        let spent = Circuit::closed("p", at(0)).on_failure(&failure(FailureClass::SpendLimit), &policy, at(0));
        assert!(!spent.admits(at(1)), "a spend limit opens at once");
        let circuit = Circuit { failures: policy.failures - 1, ..Circuit::closed("p", at(0)) }.on_failure(&limited, &policy, at(0));
        assert_eq!(circuit.cooldown_left(at(0)), Duration::from_secs(120), "the cooldown is at least Retry-After");
        let refused = Circuit::closed("p", at(0)).on_failure(&failure(FailureClass::ContextTooLong), &policy, at(0));
        assert_eq!(refused.failures, 0, "the caller's fault does not count against the provider");
    }
}
