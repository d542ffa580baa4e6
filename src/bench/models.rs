//! The `models` workload of `conclave bench` (`--only models`): what the model layer costs
//! beyond the provider it calls.
//!
//! Everything is measured in-process over a fresh store, with the `mock` provider answering at
//! once (no delay), so what remains is Conclave's own time:
//!
//! * **router**: `--model-calls` calls of [`Router::route`] one at a time, then from
//!   `--model-callers` concurrent callers, beside the same calls made to
//!   [`MockProvider::generate`] directly. The difference is the router's own cost: the
//!   statistics, the determinism defaults, and the circuits, which it reads from the store at
//!   most once per `circuit_refresh_ms`. That store read is also timed alone.
//! * **journaled calls**: one run of a bench-only kind making `--journaled-calls` model calls
//!   through [`RunContext::generate`], each a journaled step committed to the store, beside a run
//!   making as many journaled steps that return the same record without calling a model (the
//!   journal commit alone). Per call: the run's start→finish divided by the calls; the journal
//!   gives each step's own time (the call, before its commit) and the interval between steps.
//! * **generate runs**: `--generate-runs` runs of the built-in `generate` kind created one at a
//!   time, beside as many `noop` runs: create→finish, end to end through the engine.
//! * **the store alone**: what each journaled model call writes, timed on the store without the
//!   engine: the commit of its journal entry, and the append of its one log line.
//!
//! A note then says where a journaled call's time goes, from the parts timed alone, and each
//! part counts the context switches of the process's threads per call: the model layer's time
//! is mostly spent handing work between threads (tokio's workers, the group committer, SQLite's
//! connection threads), so they say more than a CPU profile would.
//!
//! The measurement runs on a tokio runtime of its own whose threads are named like the bench
//! server's, so the CPU split counts it as server time. Timings are taken with the monotonic
//! clock around each call, or read from the run's and the journal's timestamps (µs).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{number, progress, task_failed, BenchArgs, CpuSample, Report, Setup, Summary, Target, SERVER_THREAD};
use crate::{
    artifacts::{Artifacts, ArtifactsConfig},
    domain::{
        JournalEntry, Lease, LogStream, NewLogLine, NewRun, Run, RunId, RunState, Timestamp, WorkerId, WorkspaceId, DEFAULT_WORKSPACE,
    },
    engine::{lifecycle, CreateRunRequest, Engine, EngineConfig, RunContext, Workflow, WorkflowError},
    error::{Error, Result},
    models::{determinism, MockConfig, MockProvider, ModelCall, ModelRequest, ModelsConfig, Provider, Router},
    store::{self, ClaimRequest, SharedStore},
    workflows,
};

/// The bench-only kind whose steps are model calls through [`RunContext::generate`].
const MODEL_CALLS_KIND: &str = "bench-model-calls";
/// The bench-only kind whose steps return a prepared model call record without calling a model.
const RECORDED_STEPS_KIND: &str = "bench-recorded-steps";
/// What every call asks the mock provider.
const PROMPT: &str = "Summarise the review of step 42 in one sentence for the bench";
/// Calls made before each timed pass of the router, not counted.
const WARM_UP_CALLS: usize = 500;
/// Steps of the run made before the timed journaled runs, not counted.
const WARM_UP_STEPS: usize = 100;
/// The Conclave overhead a journaled model call is held to, in µs.
const JOURNALED_OVERHEAD_TARGET_US: f64 = 1000.0;

/// What to measure, as the bench's arguments say.
#[derive(Debug, Clone)]
struct Plan {
    setup: Setup,
    url: String,
    db_connections: u32,
    workers: usize,
    calls: usize,
    callers: usize,
    journaled_calls: usize,
    generate_runs: usize,
}

/// Measures the model layer on the store at `url`, on a runtime and threads of its own, and adds
/// the figures to `report`.
pub(super) async fn bench(setup: Setup, url: &str, args: &BenchArgs, report: &mut Report) -> Result<()> {
    let plan = Plan {
        setup,
        url: url.to_owned(),
        db_connections: args.db_connections,
        workers: args.workers,
        calls: args.model_calls,
        callers: args.model_callers,
        journaled_calls: args.journaled_calls,
        generate_runs: args.generate_runs,
    };
    let stop = CancellationToken::new();
    // An interrupted bench drops this future: the guard stops the measurement's runtime.
    let _stop_when_dropped = stop.clone().drop_guard();
    let thread = std::thread::Builder::new()
        .name(SERVER_THREAD.into())
        .spawn(move || measure_on_own_runtime(plan, stop))
        .map_err(|err| Error::Internal(format!("cannot start the models bench thread: {err}")))?;
    let (measured, result) = tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(task_failed)?
        .map_err(|_| Error::Internal("the models bench thread panicked".into()))?;
    report.absorb(measured);
    result
}

fn measure_on_own_runtime(plan: Plan, stop: CancellationToken) -> (Report, Result<()>) {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).thread_name(SERVER_THREAD).enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return (Report::default(), Err(Error::Internal(format!("cannot build the models bench runtime: {err}")))),
    };
    runtime.block_on(async move {
        // On a worker thread, as the server's own code runs.
        let mut measured = tokio::spawn(measure(plan));
        tokio::select! {
            joined = &mut measured => joined.unwrap_or_else(|err| (Report::default(), Err(task_failed(err)))),
            () = stop.cancelled() => {
                measured.abort();
                (Report::default(), Err(Error::Internal("interrupted".into())))
            }
        }
    })
}

async fn measure(plan: Plan) -> (Report, Result<()>) {
    let mut report = Report::default();
    let result = measure_into(&plan, &mut report).await;
    (report, result)
}

async fn measure_into(plan: &Plan, report: &mut Report) -> Result<()> {
    let store = store::open(&plan.url, plan.db_connections).await?;
    let router = Arc::new(ModelsConfig::default().build(store.clone())?);
    let mock = Arc::new(MockProvider::new("mock", MockConfig::default())?);
    let routing = router_overhead(plan, &store, &router, &mock, report).await?;
    let record = sample_record(&router).await?;
    let journaled = journaled_calls(plan, store.clone(), router, &record, routing.mock_us, report).await?;
    let writes = store_alone(plan, &store, &record, report).await?;
    explain(plan.setup, &routing, &journaled, &writes, report);
    Ok(())
}

/// Says where the time of a journaled model call goes, from the parts timed alone. The log line
/// a call's answer becomes is appended by the run's log writer, concurrently with the next
/// steps: it costs the run only where it holds SQLite's one writer connection while a commit
/// waits, so it is not added up with the rest.
fn explain(setup: Setup, routing: &RoutingCosts, journaled: &JournaledCosts, writes: &WriteCosts, report: &mut Report) {
    report.note(format!(
        "models [{setup}]: where a journaled model call's {} µs go (means, one caller): the routed call {} µs (the mock provider {} µs, \
         the router's own {} µs; it reads the circuits from the store, {} µs, at most once a second); the commit of its journal entry, timed on the store \
         alone, {} µs; the remaining {} µs are the engine's hand-offs (the step's result to JSON, the group committer, the step's \
         event published) and the writer connection shared with the run's log writer, which appends the call's answer as one log line \
         ({} µs when timed alone) while the next steps run. Measured in the run: the step's own time (the call, and its answer handed \
         to the log writer) {} µs, the rest of each step {} µs. A journaled step returning the same record with no model call takes \
         {} µs; the model-call run wrote {} log lines.",
        number(journaled.per_call_us),
        number(routing.route_us),
        number(routing.mock_us),
        number(routing.route_us - routing.mock_us),
        number(routing.circuit_us),
        number(writes.commit_us),
        number(journaled.per_call_us - routing.route_us - writes.commit_us),
        number(writes.log_append_us),
        number(journaled.in_step_us),
        number(journaled.per_call_us - journaled.in_step_us),
        number(journaled.per_step_us),
        journaled.log_lines,
    ));
}

// ---------------------------------------------------------------------------------------------
// The router against the provider alone.

/// What one timed call calls.
#[derive(Clone)]
enum Callee {
    /// The router, with the `mock` provider behind it.
    Router(Arc<Router>),
    /// The `mock` provider, directly.
    Mock(Arc<MockProvider>),
    /// The circuit read the router makes when its cached circuits are older than `circuit_refresh_ms`.
    Circuits(SharedStore),
}

impl Callee {
    async fn call(&self, request: &ModelRequest) -> Result<()> {
        match self {
            Self::Router(router) => {
                router.route(request, None, None).await.map_err(|failure| Error::Internal(format!("a routed mock call failed: {failure}")))?;
            }
            Self::Mock(mock) => {
                mock.generate(request, None).await.map_err(|failure| Error::Internal(format!("a mock call failed: {failure}")))?;
            }
            Self::Circuits(store) => {
                store.read_circuits(&["mock".to_owned()]).await?;
            }
        }
        Ok(())
    }
}

/// Per-call latencies of one pass, in nanoseconds, and the pass's wall time.
struct Pass {
    nanos: Summary,
    wall: Duration,
}

impl Pass {
    fn mean_us(&self) -> f64 {
        let calls = self.nanos.sorted.len().max(1);
        self.nanos.sorted.iter().sum::<u64>() as f64 / calls as f64 / 1000.0
    }

    fn p50_us(&self) -> f64 {
        self.nanos.percentile(50.0) as f64 / 1000.0
    }

    fn p99_us(&self) -> f64 {
        self.nanos.percentile(99.0) as f64 / 1000.0
    }

    fn calls_per_second(&self) -> f64 {
        super::per_second(self.nanos.sorted.len() as u64, self.wall)
    }
}

/// A request as a run's step would make it: from a run, under a step key of its own.
fn step_request(run: RunId, index: usize) -> ModelRequest {
    let mut request = ModelRequest::prompt(PROMPT);
    request.origin.run_id = Some(run);
    request.origin.step = Some(format!("call-{index}"));
    request
}

/// `calls` calls, one at a time.
async fn sequential(callee: &Callee, calls: usize) -> Result<Pass> {
    let run = RunId::new();
    let mut nanos = Vec::with_capacity(calls);
    let started = Instant::now();
    for index in 0..calls {
        let request = step_request(run, index);
        let began = Instant::now();
        callee.call(&request).await?;
        nanos.push(u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    Ok(Pass { wall: started.elapsed(), nanos: Summary::of(nanos) })
}

/// `calls` calls shared by `callers` concurrent tasks.
async fn concurrent(callee: &Callee, calls: usize, callers: usize) -> Result<Pass> {
    let next = Arc::new(AtomicUsize::new(0));
    let run = RunId::new();
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for _ in 0..callers {
        let (callee, next) = (callee.clone(), next.clone());
        tasks.spawn(async move {
            let mut nanos = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= calls {
                    return Ok::<_, Error>(nanos);
                }
                let request = step_request(run, index);
                let began = Instant::now();
                callee.call(&request).await?;
                nanos.push(u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX));
            }
        });
    }
    let mut nanos = Vec::with_capacity(calls);
    while let Some(joined) = tasks.join_next().await {
        nanos.extend(joined.map_err(task_failed)??);
    }
    Ok(Pass { wall: started.elapsed(), nanos: Summary::of(nanos) })
}

/// Mean costs per call with one caller, in µs.
struct RoutingCosts {
    /// A routed call.
    route_us: f64,
    /// The mock provider called directly.
    mock_us: f64,
    /// The circuit read the router makes once per `circuit_refresh_ms`.
    circuit_us: f64,
}

/// Times the router and the mock provider alone, one caller then many.
async fn router_overhead(
    plan: &Plan,
    store: &SharedStore,
    router: &Arc<Router>,
    mock: &Arc<MockProvider>,
    report: &mut Report,
) -> Result<RoutingCosts> {
    let setup = plan.setup;
    let routed = Callee::Router(router.clone());
    let direct = Callee::Mock(mock.clone());
    let circuits = Callee::Circuits(store.clone());
    for callee in [&routed, &direct, &circuits] {
        sequential(callee, WARM_UP_CALLS).await?;
    }

    let workload = "models: router, 1 caller";
    progress(setup, format_args!("{workload}: {} calls of the router, of the mock provider, and of the circuit read", plan.calls));
    let cpu = CpuSample::take(&[]);
    let switches = Switches::take();
    let routed_pass = sequential(&routed, plan.calls).await?;
    let routed_switches = switches.and_then(|before| before.per_call(plan.calls));
    let switches = Switches::take();
    let direct_pass = sequential(&direct, plan.calls).await?;
    let direct_switches = switches.and_then(|before| before.per_call(plan.calls));
    let circuit_pass = sequential(&circuits, plan.calls).await?;
    report.cpu_since(workload, setup, cpu);
    add_pass(report, workload, setup, &routed_pass, ["Router::route mean", "Router::route p50", "Router::route p99"]);
    add_pass(report, workload, setup, &direct_pass, ["mock provider alone mean", "mock provider alone p50", "mock provider alone p99"]);
    report.add(workload, setup, "router overhead (mean difference)", routed_pass.mean_us() - direct_pass.mean_us(), "µs", None);
    report.add(workload, setup, "circuit read from the store, mean", circuit_pass.mean_us(), "µs", None);
    add_switches(report, workload, setup, "context switches per routed call", routed_switches);
    add_switches(report, workload, setup, "context switches per mock call", direct_switches);

    let workload = format!("models: router, {} callers", plan.callers);
    progress(setup, format_args!("{workload}: {} calls of the router and of the mock provider", plan.calls));
    let cpu = CpuSample::take(&[]);
    let routed_many = concurrent(&routed, plan.calls, plan.callers).await?;
    let direct_many = concurrent(&direct, plan.calls, plan.callers).await?;
    report.cpu_since(&workload, setup, cpu);
    add_pass(report, &workload, setup, &routed_many, ["Router::route mean", "Router::route p50", "Router::route p99"]);
    report.add(&workload, setup, "Router::route calls", routed_many.calls_per_second(), "calls/s", None);
    add_pass(report, &workload, setup, &direct_many, ["mock provider alone mean", "mock provider alone p50", "mock provider alone p99"]);
    report.add(&workload, setup, "mock provider alone calls", direct_many.calls_per_second(), "calls/s", None);
    report.add(&workload, setup, "router overhead (mean difference)", routed_many.mean_us() - direct_many.mean_us(), "µs", None);
    report.note(format!(
        "{workload} [{setup}]: a call's latency includes its wait for one of the {} cores; wall time per call: router {} µs, mock alone {} µs",
        std::thread::available_parallelism().map_or(1, usize::from),
        number(routed_many.wall.as_secs_f64() * 1e6 / plan.calls as f64),
        number(direct_many.wall.as_secs_f64() * 1e6 / plan.calls as f64),
    ));
    Ok(RoutingCosts { route_us: routed_pass.mean_us(), mock_us: direct_pass.mean_us(), circuit_us: circuit_pass.mean_us() })
}

fn add_pass(report: &mut Report, workload: &str, setup: Setup, pass: &Pass, figures: [&'static str; 3]) {
    let [mean, p50, p99] = figures;
    report.add(workload, setup, mean, pass.mean_us(), "µs", None);
    report.add(workload, setup, p50, pass.p50_us(), "µs", None);
    report.add(workload, setup, p99, pass.p99_us(), "µs", None);
}

// ---------------------------------------------------------------------------------------------
// Journaled calls in a run.

/// What each step of a bench run does.
enum StepBody {
    /// A model call through [`RunContext::generate`].
    ModelCall,
    /// Returns this record without calling a model: the journal commit alone, with the payload
    /// of a model call.
    Recorded(Box<ModelCall>),
}

/// A bench-only kind: input `calls`, that many journaled steps `call-0`, `call-1`, …
struct JournaledSteps {
    body: StepBody,
}

fn step_count(input: &Map<String, Value>) -> Result<usize> {
    input
        .get("calls")
        .and_then(Value::as_u64)
        .and_then(|calls| usize::try_from(calls).ok())
        .filter(|&calls| calls > 0)
        .ok_or_else(|| Error::invalid("input.calls", "must be a positive integer"))
}

#[async_trait]
impl Workflow for JournaledSteps {
    fn validate(&self, input: &Map<String, Value>) -> Result<()> {
        step_count(input).map(drop)
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let calls = step_count(ctx.input()).map_err(|err| WorkflowError::invalid_input(err.to_string()))?;
        for index in 0..calls {
            let key = format!("call-{index}");
            match &self.body {
                StepBody::ModelCall => ctx.generate(&key, ModelRequest::prompt(PROMPT), None).await?,
                StepBody::Recorded(record) => ctx.step(&key, || async { Ok(ModelCall::clone(record)) }).await?,
            };
        }
        Ok(json!({ "calls": calls }))
    }
}

/// What a journaled run took.
struct JournaledRun {
    /// start→finish of the run.
    elapsed: Duration,
    /// The interval between one step's end and the next one's (the first from the run's start),
    /// in µs: one call and one commit each.
    intervals: Summary,
    /// The mean interval over the first and over the last tenth of the steps, in µs: whether a
    /// step costs more as the run's journal grows.
    tenths: (f64, f64),
    /// The steps' own time (the call, before its commit), summed.
    in_steps: Duration,
    /// Log lines the run wrote.
    log_lines: u64,
}

impl JournaledRun {
    fn per_step_us(&self, steps: usize) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / steps.max(1) as f64
    }

    fn in_step_us(&self, steps: usize) -> f64 {
        self.in_steps.as_secs_f64() * 1e6 / steps.max(1) as f64
    }

    /// A note comparing the first and the last tenth of the steps.
    fn drift(&self, workload: &str, setup: Setup) -> String {
        let (first, last) = self.tenths;
        format!(
            "{workload} [{setup}]: mean interval between step ends over the first tenth of the steps {} µs, over the last tenth {} µs",
            number(first),
            number(last)
        )
    }
}

/// The mean of the first and of the last tenth of `intervals` (at least one value each).
fn first_and_last_tenth(intervals: &[u64]) -> (f64, f64) {
    let tenth = (intervals.len() / 10).max(1).min(intervals.len());
    let mean = |values: &[u64]| if values.is_empty() { 0.0 } else { values.iter().sum::<u64>() as f64 / values.len() as f64 };
    (mean(&intervals[..tenth]), mean(&intervals[intervals.len() - tenth..]))
}

/// The intervals between consecutive step ends, the first from `started`, in µs.
fn step_intervals(started: Timestamp, journal: &[JournalEntry]) -> Vec<u64> {
    let mut ends: Vec<Timestamp> = journal.iter().map(|entry| entry.finished_at).collect();
    ends.sort_unstable();
    let mut previous = started;
    ends.into_iter()
        .map(|end| {
            let interval = end.since(previous);
            previous = end;
            u64::try_from(interval.as_micros()).unwrap_or(u64::MAX)
        })
        .collect()
}

/// Makes a record like the ones the model-call run journals, with one routed call.
async fn sample_record(router: &Router) -> Result<ModelCall> {
    let request = step_request(RunId::new(), 0);
    let routed = router.route(&request, None, None).await.map_err(|failure| Error::Internal(format!("a routed mock call failed: {failure}")))?;
    Ok(ModelCall::new(&request, routed, determinism::deterministic(&request).seed, None))
}

/// Mean costs per journaled call, in µs.
struct JournaledCosts {
    /// A model call through `RunContext::generate`: the run's start→finish over the calls.
    per_call_us: f64,
    /// Its step's own time: the call, before the commit.
    in_step_us: f64,
    /// A step returning a record with no model call.
    per_step_us: f64,
    /// Log lines the model-call run wrote.
    log_lines: u64,
}

/// Times runs of journaled model calls and of journaled steps on an engine of their own, and
/// `generate` runs end to end.
async fn journaled_calls(
    plan: &Plan,
    store: SharedStore,
    router: Arc<Router>,
    record: &ModelCall,
    mock_cost_us: f64,
    report: &mut Report,
) -> Result<JournaledCosts> {
    let mut registry = workflows::builtin_registry(Default::default());
    registry.register(MODEL_CALLS_KIND, JournaledSteps { body: StepBody::ModelCall });
    registry.register(RECORDED_STEPS_KIND, JournaledSteps { body: StepBody::Recorded(Box::new(record.clone())) });
    let config = EngineConfig {
        worker_id: WorkerId::new(format!("bench-models-{}", std::process::id())),
        worker_slots: plan.workers,
        ..EngineConfig::default()
    };
    let artifacts = Arc::new(Artifacts::open(store.clone(), ArtifactsConfig::default())?);
    let engine = Engine::new(store, registry, router.clone(), artifacts, config);
    engine.start();
    let result = measure_runs(plan, &engine, &router, mock_cost_us, report).await;
    engine.shutdown().await;
    result
}

async fn measure_runs(plan: &Plan, engine: &Engine, router: &Router, mock_cost_us: f64, report: &mut Report) -> Result<JournaledCosts> {
    let setup = plan.setup;
    let calls = plan.journaled_calls;
    journaled_run(engine, MODEL_CALLS_KIND, WARM_UP_STEPS).await?;

    let workload = "models: journaled model calls";
    progress(setup, format_args!("{workload}: one run making {calls} calls through RunContext::generate"));
    let routed_before = router.stats();
    let cpu = CpuSample::take(&[]);
    let switches = Switches::take();
    let model_run = journaled_run(engine, MODEL_CALLS_KIND, calls).await?;
    let switches = switches.and_then(|before| before.per_call(calls));
    report.cpu_since(workload, setup, cpu);
    let routed = router.stats().requests.saturating_sub(routed_before.requests);
    if routed != calls as u64 {
        super::loud_warning(format_args!("{setup} {workload}: the router counted {routed} calls, expected {calls}"));
    }
    let per_call = model_run.per_step_us(calls);
    let in_step = model_run.in_step_us(calls);
    report.add(workload, setup, "per call (run start→finish / calls)", per_call, "µs", None);
    report.add(workload, setup, "per call p50 (between step ends)", model_run.intervals.percentile(50.0) as f64, "µs", None);
    report.add(workload, setup, "per call p99 (between step ends)", model_run.intervals.percentile(99.0) as f64, "µs", None);
    report.add(workload, setup, "inside the step (route, mock, log)", in_step, "µs", None);
    report.add(workload, setup, "rest of the step (commit, hand-offs)", per_call - in_step, "µs", None);
    add_switches(report, workload, setup, "context switches per call", switches);
    let overhead = per_call - mock_cost_us;
    report.add(workload, setup, "Conclave overhead per call", overhead, "µs", Some(Target::at_most(JOURNALED_OVERHEAD_TARGET_US)));
    report.note(model_run.drift(workload, setup));

    let workload = "models: journaled steps, no model call";
    progress(setup, format_args!("{workload}: one run making {calls} steps that return a model call record"));
    let cpu = CpuSample::take(&[]);
    let switches = Switches::take();
    let step_run = journaled_run(engine, RECORDED_STEPS_KIND, calls).await?;
    let switches = switches.and_then(|before| before.per_call(calls));
    report.cpu_since(workload, setup, cpu);
    let per_step = step_run.per_step_us(calls);
    report.add(workload, setup, "per step (run start→finish / steps)", per_step, "µs", None);
    report.add(workload, setup, "per step p50 (between step ends)", step_run.intervals.percentile(50.0) as f64, "µs", None);
    report.add(workload, setup, "per step p99 (between step ends)", step_run.intervals.percentile(99.0) as f64, "µs", None);
    add_switches(report, workload, setup, "context switches per step", switches);
    report.note(step_run.drift(workload, setup));

    let runs = plan.generate_runs;
    let workload = "models: generate runs, one at a time";
    progress(setup, format_args!("{workload}: {runs} generate runs, then {runs} noop runs"));
    let cpu = CpuSample::take(&[]);
    let generate = one_at_a_time(engine, "generate", json!({ "prompt": PROMPT }), runs).await?;
    let noop = one_at_a_time(engine, "noop", json!({}), runs).await?;
    report.cpu_since(workload, setup, cpu);
    let mean_us = |latencies: &Summary| latencies.sorted.iter().sum::<u64>() as f64 / latencies.sorted.len().max(1) as f64;
    report.add(workload, setup, "generate create→finish mean", mean_us(&generate), "µs", None);
    report.add(workload, setup, "generate create→finish p50", generate.percentile(50.0) as f64, "µs", None);
    report.add(workload, setup, "generate create→finish p99", generate.percentile(99.0) as f64, "µs", None);
    report.add(workload, setup, "noop create→finish mean", mean_us(&noop), "µs", None);
    report.add(workload, setup, "generate − noop (mean)", mean_us(&generate) - mean_us(&noop), "µs", None);
    Ok(JournaledCosts { per_call_us: per_call, in_step_us: in_step, per_step_us: per_step, log_lines: model_run.log_lines })
}

/// Creates a run of `kind` making `calls` steps, waits for it, and reads back its timings.
async fn journaled_run(engine: &Engine, kind: &str, calls: usize) -> Result<JournaledRun> {
    let limit = Duration::from_secs(60) + Duration::from_millis(20).saturating_mul(u32::try_from(calls).unwrap_or(u32::MAX));
    let run = finished_run(engine, kind, json!({ "calls": calls }), limit).await?;
    let (Some(started), Some(finished)) = (run.started_at, run.finished_at) else {
        return Err(Error::Internal(format!("the {kind} run {} has no start or finish time", run.id)));
    };
    let journal = engine.store().read_journal(run.id).await?;
    if journal.len() != calls {
        return Err(Error::Internal(format!("the {kind} run {} journaled {} steps, expected {calls}", run.id, journal.len())));
    }
    let intervals = step_intervals(started, &journal);
    Ok(JournaledRun {
        elapsed: finished.since(started),
        tenths: first_and_last_tenth(&intervals),
        intervals: Summary::of(intervals),
        in_steps: journal.iter().map(|entry| entry.duration).sum(),
        log_lines: run.last_log_sequence,
    })
}

/// Creates `runs` runs of `kind` one at a time, each waited for; returns their create→finish
/// times in µs (server timestamps).
async fn one_at_a_time(engine: &Engine, kind: &str, input: Value, runs: usize) -> Result<Summary> {
    let mut latencies = Vec::with_capacity(runs);
    for _ in 0..runs {
        let run = finished_run(engine, kind, input.clone(), Duration::from_secs(30)).await?;
        let finished = run.finished_at.ok_or_else(|| Error::Internal(format!("the {kind} run {} has no finish time", run.id)))?;
        latencies.push(u64::try_from(finished.since(run.created_at).as_micros()).unwrap_or(u64::MAX));
    }
    Ok(Summary::of(latencies))
}

/// Creates a run and waits (by watching its events) until it has succeeded; fails if it ended
/// otherwise or took longer than `limit`.
pub(super) async fn finished_run(engine: &Engine, kind: &str, input: Value, limit: Duration) -> Result<Run> {
    let Value::Object(input) = input else { return Err(Error::Internal("a bench run's input must be an object".into())) };
    let run = engine.create_run(CreateRunRequest { kind: kind.to_owned(), input, ..CreateRunRequest::default() }).await?;
    let watch = async {
        let mut events = engine.watch_run(run.id, 0).await?;
        while let Some(delivery) = events.recv().await {
            delivery?;
        }
        Ok::<_, Error>(())
    };
    tokio::time::timeout(limit, watch)
        .await
        .map_err(|_| Error::Internal(format!("the {kind} run {} did not finish within {} s", run.id, limit.as_secs())))??;
    let run = engine.get_run(run.id).await?;
    if run.state != RunState::Succeeded {
        let why = run.error.as_ref().map_or_else(String::new, |error| format!(": {}", error.message));
        return Err(Error::Internal(format!("the {kind} run {} ended {:?}{why}", run.id, run.state)));
    }
    Ok(run)
}

// ---------------------------------------------------------------------------------------------
// The store alone.

/// The kind of the run the store-alone writes go to; no engine runs it.
const STORE_ONLY_KIND: &str = "bench-store-only";

/// Mean costs per write on the store alone, in µs.
struct WriteCosts {
    /// The commit of one journal entry (a model call record).
    commit_us: f64,
    /// The append of one log line.
    log_append_us: f64,
}

/// Times, on the store alone (no engine), what each journaled model call writes: the commit of
/// its journal entry, and the append of its one log line, each `--journaled-calls` times on a
/// run claimed for the purpose.
async fn store_alone(plan: &Plan, store: &SharedStore, record: &ModelCall, report: &mut Report) -> Result<WriteCosts> {
    let setup = plan.setup;
    let calls = plan.journaled_calls;
    let workload = "models: the store alone";
    progress(setup, format_args!("{workload}: {calls} journal entry commits, then {calls} one-line log appends"));
    let (run, lease) = claimed_run(store).await?;
    let output = serde_json::to_value(record).map_err(|err| Error::Internal(format!("a model call record is not JSON: {err}")))?;
    let cpu = CpuSample::take(&[]);
    let switches = Switches::take();
    let mut commits = Vec::with_capacity(calls);
    for index in 0..calls {
        let entry = JournalEntry {
            key: format!("call-{index}"),
            output: output.clone(),
            attempt: run.attempt,
            finished_at: Timestamp::now(),
            duration: Duration::ZERO,
        };
        let began = Instant::now();
        store.update_run(run.id, &|run| lifecycle::record_step(run, &lease, entry.clone())).await?;
        commits.push(u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    let commit_switches = switches.and_then(|before| before.per_call(calls));
    let switches = Switches::take();
    let mut appends = Vec::with_capacity(calls);
    for index in 0..calls {
        let line = NewLogLine { time: Timestamp::now(), stream: LogStream::Stdout, text: record.text.clone() };
        let began = Instant::now();
        store.append_logs(&lease, run.attempt, index as u64, std::slice::from_ref(&line)).await?;
        appends.push(u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    let append_switches = switches.and_then(|before| before.per_call(calls));
    report.cpu_since(workload, setup, cpu);
    let now = Timestamp::now();
    store.update_run(run.id, &|run| lifecycle::succeed(run, &lease, Value::Null, now)).await?;
    let tenths_us = |nanos: &[u64]| {
        let (first, last) = first_and_last_tenth(nanos);
        format!("first tenth {} µs, last tenth {} µs", number(first / 1000.0), number(last / 1000.0))
    };
    report.note(format!("{workload} [{setup}]: journal entry commits: {}; log appends: {}", tenths_us(&commits), tenths_us(&appends)));
    let commits = Pass { nanos: Summary::of(commits), wall: Duration::ZERO };
    let appends = Pass { nanos: Summary::of(appends), wall: Duration::ZERO };
    add_pass(report, workload, setup, &commits, ["journal entry commit mean", "journal entry commit p50", "journal entry commit p99"]);
    add_pass(report, workload, setup, &appends, ["one-line log append mean", "one-line log append p50", "one-line log append p99"]);
    add_switches(report, workload, setup, "context switches per commit", commit_switches);
    add_switches(report, workload, setup, "context switches per append", append_switches);
    Ok(WriteCosts { commit_us: commits.mean_us(), log_append_us: appends.mean_us() })
}

/// A run of [`STORE_ONLY_KIND`], created and claimed directly on the store, with its lease.
async fn claimed_run(store: &SharedStore) -> Result<(Run, Lease)> {
    let now = Timestamp::now();
    let new = NewRun {
        id: RunId::new(),
        workspace: WorkspaceId::new(DEFAULT_WORKSPACE),
        kind: STORE_ONLY_KIND.to_owned(),
        input: Map::new(),
        priority: 0,
        max_attempts: 1,
        attempt_timeout: Duration::from_secs(3600),
        deadline: None,
        concurrency: None,
        labels: BTreeMap::new(),
        request_id: None,
        created_at: now,
        replay: None,
        journal: Vec::new(),
        decisions: BTreeMap::new(),
    };
    store.create_run(new).await?;
    let claim = ClaimRequest {
        worker_id: WorkerId::new(format!("bench-store-{}", std::process::id())),
        kinds: vec![STORE_ONLY_KIND.to_owned()],
        limit: 1,
        lease_ttl: Duration::from_secs(3600),
        now,
    };
    let run = store.claim_runs(&claim).await?.pop().map(|transition| transition.run);
    let Some((run, lease)) = run.and_then(|run| Some((run.clone(), run.lease?))) else {
        return Err(Error::Internal("the store-alone run could not be claimed".into()));
    };
    Ok((run, lease))
}

// ---------------------------------------------------------------------------------------------
// Context switches: how often the threads handed work to each other (Linux only).

/// The context switches (voluntary and not) of each of this process's threads so far, by
/// thread id, from `/proc/self/task/*/status`.
struct Switches(HashMap<String, u64>);

impl Switches {
    fn take() -> Option<Self> {
        let mut threads = HashMap::new();
        for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
            if let Some(switches) = status_switches(&status) {
                threads.insert(entry.file_name().to_string_lossy().into_owned(), switches);
            }
        }
        Some(Self(threads))
    }

    /// The switches since this sample per call, over `calls` calls. Threads that ended since
    /// are not counted.
    fn per_call(self, calls: usize) -> Option<f64> {
        let now = Self::take()?;
        let switches: u64 = now.0.iter().map(|(thread, count)| count.saturating_sub(self.0.get(thread).copied().unwrap_or(0))).sum();
        Some(switches as f64 / calls.max(1) as f64)
    }
}

/// The sum of `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` in a status file.
fn status_switches(status: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        line.get(name.len()..)?.trim().parse().ok()
    };
    Some(field("voluntary_ctxt_switches:")? + field("nonvoluntary_ctxt_switches:")?)
}

fn add_switches(report: &mut Report, workload: &str, setup: Setup, figure: &'static str, per_call: Option<f64>) {
    if let Some(per_call) = per_call {
        report.add(workload, setup, figure, per_call, "switches", None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_intervals_run_from_the_start_through_each_step_end_in_order() {
        let entry = |micros| JournalEntry {
            key: format!("call-{micros}"),
            output: Value::Null,
            attempt: 1,
            finished_at: Timestamp::from_micros(micros),
            duration: Duration::ZERO,
        };
        let journal = [entry(1_300), entry(1_100), entry(1_600)];
        assert_eq!(step_intervals(Timestamp::from_micros(1_000), &journal), [100, 200, 300]);
    }

    #[test]
    fn tenths_average_the_first_and_the_last_intervals() {
        let intervals: Vec<u64> = (1..=20).collect();
        assert_eq!(first_and_last_tenth(&intervals), (1.5, 19.5));
        assert_eq!(first_and_last_tenth(&[7]), (7.0, 7.0));
        assert_eq!(first_and_last_tenth(&[]), (0.0, 0.0));
    }

    #[test]
    fn status_files_give_both_kinds_of_switches() {
        let status = "Name:\tconclave-server\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(status_switches(status), Some(127));
        assert_eq!(status_switches("Name:\tx\n"), None);
    }

    #[test]
    fn bench_runs_need_a_positive_number_of_calls() {
        let input = |value: Value| value.as_object().cloned().unwrap_or_default();
        assert_eq!(step_count(&input(json!({ "calls": 3 }))).unwrap(), 3);
        assert!(step_count(&input(json!({ "calls": 0 }))).is_err());
        assert!(step_count(&input(json!({ "calls": "3" }))).is_err());
        assert!(step_count(&input(json!({}))).is_err());
    }
}
