//! The model router against real stores (SQLite and Postgres): failover order, retries with
//! `Retry-After`, circuit breakers shared by two routers on one store, the bounded wait for a
//! cooling chain, switching back to the primary, no failover after the first streamed token,
//! and failures that are never retried. Providers are `mock` providers with scripts, so each
//! test decides exactly how each provider fails.

mod support;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use conclave::{
    models::{
        BreakerPolicy, Chains, CircuitState, FailureClass, MockConfig, MockProvider, ModelRequest, Provider,
        RouteFailure, Routed, Router, RouterPolicy,
    },
    store::SharedStore,
};
use support::{open_store, TestDatabase};
use tokio::sync::mpsc;

/// A mock provider from a TOML script.
fn mock(name: &str, script: &str) -> Arc<dyn Provider> {
    let config: MockConfig = toml::from_str(script).expect("mock script");
    Arc::new(MockProvider::new(name, config).expect("mock provider"))
}

/// A quick policy: no backoff to speak of, a breaker that opens at the first failure.
fn policy(cooldown: Duration, max_wait: Duration) -> RouterPolicy {
    RouterPolicy {
        retries: 0,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_secs(2),
        max_wait,
        circuit_refresh: Duration::from_millis(200),
        breaker: BreakerPolicy { failures: 1, window: Duration::from_secs(60), cooldown, max_cooldown: cooldown * 4 },
    }
}

fn router(store: &SharedStore, providers: Vec<(&str, Arc<dyn Provider>)>, chain: &[&str], policy: RouterPolicy) -> Router {
    let providers: BTreeMap<String, Arc<dyn Provider>> = providers.into_iter().map(|(name, p)| (name.to_owned(), p)).collect();
    let chains = Chains { default: chain.iter().map(|name| (*name).to_owned()).collect(), roles: BTreeMap::new() };
    Router::new(providers, chains, policy, store.clone()).expect("router")
}

async fn ask(router: &Router) -> Result<Routed, RouteFailure> {
    router.route(&ModelRequest::prompt("What is the plan?"), None, None).await
}

fn calls(router: &Router, provider: &str) -> u64 {
    router.stats().providers.get(provider).map_or(0, |stats| stats.calls)
}

async fn fails_over_in_chain_order_and_records_each_failure(database: &TestDatabase) {
    let store = open_store(database).await;
    let router = router(
        &store,
        vec![
            ("primary", mock("primary", "[[script]]\nfail = \"overloaded\"\n")),
            ("second", mock("second", "[[script]]\nfail = \"server_error\"\n")),
            ("third", mock("third", "[[script]]\nreply = \"from third\"\n")),
        ],
        &["primary", "second", "third"],
        RouterPolicy { retries: 1, ..policy(Duration::from_secs(30), Duration::ZERO) },
    );
    let routed = ask(&router).await.expect("the third link answers");
    assert_eq!((routed.provider.as_str(), routed.link, routed.completion.text.as_str()), ("third", 2, "from third"));
    let failed: Vec<(&str, FailureClass)> = routed.failed.iter().map(|call| (call.provider.as_str(), call.class)).collect();
    assert_eq!(failed, [("primary", FailureClass::Overloaded), ("second", FailureClass::ServerError)], "the breaker opened at the first failure, so no retry");
    assert_eq!(router.stats().fallbacks, 1);
    assert_eq!(routed.completion.applied.temperature, Some(0.0), "temperature 0 by default");
}

async fn retry_after_is_honoured_by_failing_over_or_waiting(database: &TestDatabase) {
    let store = open_store(database).await;
    let script = "[[script]]\nfail = \"rate_limited\"\nretry_after_ms = 300\ntimes = 1\n[[script]]\nreply = \"second try\"\n";
    let lenient = RouterPolicy { retries: 2, breaker: BreakerPolicy { failures: 5, ..BreakerPolicy::default() }, ..policy(Duration::from_secs(30), Duration::from_secs(5)) };

    // With a fallback, the call moves on at once, and the primary is not called before its time.
    let router_with_fallback = router(
        &store,
        vec![("limited", mock("limited", script)), ("fallback", mock("fallback", "[[script]]\nreply = \"fallback\"\n"))],
        &["limited", "fallback"],
        lenient,
    );
    let started = std::time::Instant::now();
    assert_eq!(ask(&router_with_fallback).await.expect("the fallback answers").provider, "fallback");
    assert!(started.elapsed() < Duration::from_millis(300), "no wait while a fallback can answer");
    assert_eq!(ask(&router_with_fallback).await.expect("again").provider, "fallback");
    assert_eq!(calls(&router_with_fallback, "limited"), 1, "not called again before its Retry-After");

    // Alone, the call waits for the Retry-After and asks the same provider again.
    let alone = router(&store, vec![("alone", mock("alone", script))], &["alone"], lenient);
    let started = std::time::Instant::now();
    let routed = ask(&alone).await.expect("the provider answers after its Retry-After");
    assert_eq!((routed.provider.as_str(), routed.completion.text.as_str()), ("alone", "second try"));
    assert!(started.elapsed() >= Duration::from_millis(300), "the retry waited for Retry-After");
}

async fn transient_failures_are_retried_with_backoff_on_the_same_provider(database: &TestDatabase) {
    let store = open_store(database).await;
    let flaky = "[[script]]\nfail = \"server_error\"\ntimes = 2\n[[script]]\nreply = \"third time\"\n";
    let router = router(
        &store,
        vec![("flaky", mock("flaky", flaky)), ("fallback", mock("fallback", "[[script]]\nreply = \"fallback\"\n"))],
        &["flaky", "fallback"],
        RouterPolicy { retries: 2, breaker: BreakerPolicy { failures: 5, ..BreakerPolicy::default() }, ..policy(Duration::from_secs(30), Duration::ZERO) },
    );
    let routed = ask(&router).await.expect("the third try answers");
    assert_eq!((routed.provider.as_str(), routed.link, routed.failed.len()), ("flaky", 0, 2));
    assert_eq!(calls(&router, "fallback"), 0);
}

async fn a_tripped_circuit_is_seen_by_another_router_on_the_same_store(database: &TestDatabase) {
    let store = open_store(database).await;
    let build = || {
        router(
            &store,
            vec![
                ("primary", mock("primary", "[[script]]\nfail = \"overloaded\"\n")),
                ("fallback", mock("fallback", "[[script]]\nreply = \"fallback\"\n")),
            ],
            &["primary", "fallback"],
            policy(Duration::from_secs(60), Duration::ZERO),
        )
    };
    let (first, second) = (build(), build());
    // The third router has seen the primary healthy just before the first one trips it.
    let fine = router(
        &store,
        vec![("primary", mock("primary", "[[script]]\nreply = \"fine\"\n")), ("fallback", mock("fallback", "[[script]]\nreply = \"fallback\"\n"))],
        &["primary", "fallback"],
        policy(Duration::from_secs(60), Duration::ZERO),
    );
    assert_eq!(ask(&fine).await.expect("primary answers").provider, "primary");
    assert_eq!(ask(&first).await.expect("fallback answers").provider, "fallback");
    assert_eq!(calls(&first, "primary"), 1);
    let routed = ask(&second).await.expect("fallback answers");
    assert_eq!((routed.provider.as_str(), routed.link), ("fallback", 1));
    assert_eq!(calls(&second, "primary"), 0, "the second router skipped the primary its peer tripped");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(ask(&fine).await.expect("fallback answers").provider, "fallback", "a router that saw the primary healthy sees the trip within its refresh");
    assert_eq!(calls(&fine, "primary"), 1);
    let status = second.providers().await.expect("providers");
    let primary = status.iter().find(|provider| provider.name == "primary").expect("primary listed");
    assert_eq!(primary.state, CircuitState::Open);
    assert!(primary.cooldown_left > Duration::from_secs(50), "{:?}", primary.cooldown_left);
    assert_eq!(primary.last_failure, Some(FailureClass::Overloaded));
}

async fn a_cooling_chain_is_waited_for_within_the_bound(database: &TestDatabase) {
    let store = open_store(database).await;
    let flaky = "[[script]]\nfail = \"overloaded\"\ntimes = 1\n[[script]]\nreply = \"recovered\"\n";
    let router = router(
        &store,
        vec![("only", mock("only", flaky))],
        &["only"],
        policy(Duration::from_millis(400), Duration::from_secs(10)),
    );
    let started = std::time::Instant::now();
    let routed = ask(&router).await.expect("the call waits for the cooldown, then succeeds");
    assert_eq!(routed.completion.text, "recovered");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(router.stats().waited, 1);

    // A cooldown past the bound fails at once, saying when to come back.
    let stubborn = router_with_cooldown(&store, Duration::from_secs(60), Duration::from_millis(500));
    let _ = ask(&stubborn).await;
    let started = std::time::Instant::now();
    let failure = ask(&stubborn).await.expect_err("the chain is cooling past the bound");
    assert!(started.elapsed() < Duration::from_secs(5), "it did not wait for a recovery past the bound");
    assert!(failure.failure.retry_after.is_some_and(|wait| wait > Duration::from_secs(50)), "{failure:?}");
    assert!(failure.failure.message.contains("cooling down"), "{}", failure.failure.message);
}

fn router_with_cooldown(store: &SharedStore, cooldown: Duration, max_wait: Duration) -> Router {
    router(store, vec![("stubborn", mock("stubborn", "[[script]]\nfail = \"overloaded\"\n"))], &["stubborn"], policy(cooldown, max_wait))
}

async fn the_primary_takes_over_again_when_its_cooldown_ends(database: &TestDatabase) {
    let store = open_store(database).await;
    let primary = "[[script]]\nfail = \"transport\"\ntimes = 1\n[[script]]\nreply = \"primary\"\n";
    let router = router(
        &store,
        vec![("primary", mock("primary", primary)), ("fallback", mock("fallback", "[[script]]\nreply = \"fallback\"\n"))],
        &["primary", "fallback"],
        policy(Duration::from_millis(300), Duration::ZERO),
    );
    assert_eq!(ask(&router).await.expect("fallback").provider, "fallback");
    assert_eq!(ask(&router).await.expect("fallback while cooling").provider, "fallback");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let routed = ask(&router).await.expect("primary again");
    assert_eq!((routed.provider.as_str(), routed.link), ("primary", 0));
    let status = router.providers().await.expect("providers");
    assert_eq!(status.iter().find(|p| p.name == "primary").map(|p| p.state), Some(CircuitState::Closed), "the probe closed it");
}

async fn no_failover_after_the_first_streamed_token(database: &TestDatabase) {
    let store = open_store(database).await;
    let broken = "[[script]]\ntokens = [\"The plan \", \"is\"]\nfail = \"transport\"\nfail_after_tokens = true\n";
    let router = router(
        &store,
        vec![("primary", mock("primary", broken)), ("fallback", mock("fallback", "[[script]]\nreply = \"fallback\"\n"))],
        &["primary", "fallback"],
        policy(Duration::from_secs(30), Duration::ZERO),
    );
    let (sink, mut pieces) = mpsc::channel(16);
    let failure = router.route(&ModelRequest::prompt("plan?"), None, Some(&sink)).await.expect_err("the stream broke");
    drop(sink);
    assert!(failure.after_first_token);
    assert_eq!(failure.failure.class, FailureClass::Transport);
    assert_eq!(calls(&router, "fallback"), 0, "a partly delivered answer is not restarted elsewhere");
    let mut delivered = String::new();
    while let Some(piece) = pieces.recv().await {
        delivered.push_str(&piece);
    }
    assert_eq!(delivered, "The plan is");
}

async fn spend_limits_and_bad_credentials_are_not_retried(database: &TestDatabase) {
    let store = open_store(database).await;
    for class in ["spend_limit", "authentication"] {
        let router = router(
            &store,
            vec![
                (class, mock(class, &format!("[[script]]\nfail = \"{class}\"\n"))),
                ("fallback", mock("fallback", "[[script]]\nreply = \"fallback\"\n")),
            ],
            &[class, "fallback"],
            RouterPolicy { retries: 3, breaker: BreakerPolicy { failures: 10, ..BreakerPolicy::default() }, ..policy(Duration::from_secs(30), Duration::ZERO) },
        );
        let routed = ask(&router).await.expect("fallback answers");
        assert_eq!(routed.provider, "fallback");
        assert_eq!(calls(&router, class), 1, "{class} was not retried");
        let status = router.providers().await.expect("providers");
        assert_eq!(status.iter().find(|p| p.name == class).map(|p| p.state), Some(CircuitState::Open), "{class} opens the circuit at once");
    }
}

async fn failures_of_the_request_itself_do_not_fail_over(database: &TestDatabase) {
    let store = open_store(database).await;
    let router = router(
        &store,
        vec![
            ("primary", mock("primary", "[[script]]\nfail = \"context_too_long\"\n")),
            ("fallback", mock("fallback", "[[script]]\nreply = \"fallback\"\n")),
        ],
        &["primary", "fallback"],
        policy(Duration::from_secs(30), Duration::ZERO),
    );
    let failure: RouteFailure = ask(&router).await.expect_err("a prompt too long fails everywhere");
    assert_eq!(failure.failure.class, FailureClass::ContextTooLong);
    assert_eq!(calls(&router, "fallback"), 0);
    let status = router.providers().await.expect("providers");
    assert_eq!(status.iter().find(|p| p.name == "primary").map(|p| p.state), Some(CircuitState::Closed), "the caller's fault does not trip the provider");
}

on_both_stores!(
    fails_over_in_chain_order_and_records_each_failure,
    retry_after_is_honoured_by_failing_over_or_waiting,
    transient_failures_are_retried_with_backoff_on_the_same_provider,
    a_tripped_circuit_is_seen_by_another_router_on_the_same_store,
    a_cooling_chain_is_waited_for_within_the_bound,
    the_primary_takes_over_again_when_its_cooldown_ends,
    no_failover_after_the_first_streamed_token,
    spend_limits_and_bad_credentials_are_not_retried,
    failures_of_the_request_itself_do_not_fail_over,
);
