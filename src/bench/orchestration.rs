//! The `workflows` workload of `conclave bench` (`--only workflows`): what orchestration costs
//! on top of the agents, for the two domain workflows that make many model calls.
//!
//! An engine of its own runs over a fresh store, with one `mock` provider answering every call
//! at once from a script, so what remains is Conclave's time: journaling each answer, the
//! transcript events, the report artifact, the scheduling of the concurrent calls.
//!
//! * **debate**: `--debates` five-role debates, one at a time, each with two mitigation cycles
//!   (security raises a high risk in the first two challenge rounds): 20 model calls, about 40
//!   events and one artifact. The figure is the run's start→finish.
//! * **mission**: `--missions` missions, one at a time, whose plan is a 50-step DAG (10 chains of
//!   5 steps; 10 steps at once), gate skipped: 52 model calls (plan, steps, validation), 50
//!   output artifacts and the reads between the steps.

use std::{sync::Arc, time::Duration};

use serde_json::{json, Value};

use super::{models::finished_run, progress, BenchArgs, CpuSample, Report, Setup, Summary, Target};
use crate::{
    artifacts::{Artifacts, ArtifactsConfig},
    domain::{Run, WorkerId},
    engine::{Engine, EngineConfig},
    error::{Error, Result},
    models::ModelsConfig,
    store, workflows,
};

/// The target: a full debate's orchestration overhead, in ms.
const DEBATE_TARGET_MS: f64 = 20.0;
/// Chains and steps per chain of the mission's plan.
const CHAINS: usize = 10;
const CHAIN_LENGTH: usize = 5;

/// The mock's script: instant, well-formed answers for every phase.
fn script() -> String {
    let mut steps = Vec::new();
    for chain in 0..CHAINS {
        for link in 0..CHAIN_LENGTH {
            let id = format!("c{chain}-{link}");
            let depends = if link == 0 { String::new() } else { format!(", depends_on = [\"c{chain}-{}\"]", link - 1) };
            steps.push(format!("{{ id = \"{id}\", role = \"coder\", instructions = \"do {id}\"{depends} }}"));
        }
    }
    format!(
        r#"[providers.mock]
type = "mock"
[[providers.mock.script]]
step = "opening/"
json = {{ proposal = "Move the queue to Postgres" }}
[[providers.mock.script]]
role = "security"
step = "challenge-1/"
json = {{ risks = [{{ description = "no encryption at rest", severity = "high" }}], critique = "risky", confidence = 0.8 }}
[[providers.mock.script]]
role = "security"
step = "challenge-2/"
json = {{ risks = [{{ description = "no key rotation", severity = "high" }}], critique = "still risky", confidence = 0.8 }}
[[providers.mock.script]]
step = "challenge-"
json = {{ risks = [], critique = "sound", confidence = 0.9 }}
[[providers.mock.script]]
step = "mitigation-"
json = {{ revised_proposal = "Move the queue to Postgres, encrypted, keys rotated" }}
[[providers.mock.script]]
step = "vote/"
json = {{ approve = true, confidence = 0.9, rationale = "sound" }}
[[providers.mock.script]]
step = "plan"
json = {{ summary = "ten chains", steps = [{}] }}
[[providers.mock.script]]
step = "validate/"
json = {{ passed = true, summary = "done" }}
[[providers.mock.script]]
step = "step/"
reply = "ok"
"#,
        steps.join(", ")
    )
}

/// Runs the workload on the store at `url`.
pub(super) async fn bench(setup: Setup, url: &str, args: &BenchArgs, report: &mut Report) -> Result<()> {
    let store = store::open(url, args.db_connections).await?;
    let file: toml::Table = toml::from_str(&script()).map_err(|err| Error::Internal(format!("the bench's mock script: {err}")))?;
    let providers = file
        .get("providers")
        .cloned()
        .ok_or_else(|| Error::Internal("the bench's mock script has no providers".into()))?
        .try_into()
        .map_err(|err| Error::Internal(format!("the bench's mock script: {err}")))?;
    let models = ModelsConfig { providers, router: crate::models::RouterSettings { chain: vec!["mock".into()], ..Default::default() } };
    let router = Arc::new(models.build(store.clone())?);
    let artifacts_dir = tempfile_dir()?;
    let artifacts = Arc::new(Artifacts::open(store.clone(), ArtifactsConfig::in_dir(artifacts_dir.join("artifacts")))?);
    let config = EngineConfig {
        worker_id: WorkerId::new(format!("bench-workflows-{}", std::process::id())),
        worker_slots: args.workers,
        ..EngineConfig::default()
    };
    let engine = Engine::new(store, workflows::builtin_registry(Default::default()), router, artifacts, config);
    engine.start();
    let result = measure(setup, &engine, args, report).await;
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&artifacts_dir);
    result
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("conclave-bench-workflows-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).map_err(|err| Error::Internal(format!("cannot create {}: {err}", dir.display())))?;
    Ok(dir)
}

async fn measure(setup: Setup, engine: &Engine, args: &BenchArgs, report: &mut Report) -> Result<()> {
    let limit = Duration::from_secs(120);
    let debate = json!({ "proposal": "Should the job queue move to Postgres?" });
    // One uncounted debate first.
    check_debate(&finished_run(engine, "debate", debate.clone(), limit).await?)?;

    let workload = "workflows: five-role debate, two mitigation cycles";
    progress(setup, format_args!("{workload}: {} debates, one at a time", args.debates));
    let cpu = CpuSample::take(&[]);
    let mut durations = Vec::new();
    for _ in 0..args.debates {
        let run = finished_run(engine, "debate", debate.clone(), limit).await?;
        check_debate(&run)?;
        durations.push(duration_us(&run)?);
    }
    report.cpu_since(workload, setup, cpu);
    let durations = Summary::of(durations);
    let mean_ms = mean(&durations) / 1000.0;
    report.add(workload, setup, "orchestration overhead per debate, mean", mean_ms, "ms", Some(Target::at_most(DEBATE_TARGET_MS)));
    report.add(workload, setup, "per debate p50", durations.percentile(50.0) as f64 / 1000.0, "ms", None);
    report.add(workload, setup, "per debate p99", durations.percentile(99.0) as f64 / 1000.0, "ms", None);
    report.add(workload, setup, "per model call (20 a debate), mean", mean_ms * 1000.0 / 20.0, "µs", None);

    let mission = json!({ "request": "Do fifty things in ten chains", "gate": { "skip": true }, "memory": false, "limits": { "parallelism": CHAINS } });
    check_mission(&finished_run(engine, "mission", mission.clone(), limit).await?)?;
    let workload = "workflows: mission, 50-step DAG";
    progress(setup, format_args!("{workload}: {} missions, one at a time", args.missions));
    let cpu = CpuSample::take(&[]);
    let mut durations = Vec::new();
    for _ in 0..args.missions {
        let run = finished_run(engine, "mission", mission.clone(), limit).await?;
        check_mission(&run)?;
        durations.push(duration_us(&run)?);
    }
    report.cpu_since(workload, setup, cpu);
    let durations = Summary::of(durations);
    let mean_ms = mean(&durations) / 1000.0;
    report.add(workload, setup, "orchestration overhead per mission, mean", mean_ms, "ms", None);
    report.add(workload, setup, "per mission p50", durations.percentile(50.0) as f64 / 1000.0, "ms", None);
    report.add(workload, setup, "per step (50), mean", mean_ms * 1000.0 / (CHAINS * CHAIN_LENGTH) as f64, "µs", None);
    Ok(())
}

fn mean(summary: &Summary) -> f64 {
    summary.sorted.iter().sum::<u64>() as f64 / summary.sorted.len().max(1) as f64
}

/// A run's start→finish, in µs.
fn duration_us(run: &Run) -> Result<u64> {
    let (Some(started), Some(finished)) = (run.started_at, run.finished_at) else {
        return Err(Error::Internal(format!("run {} has no start or finish time", run.id)));
    };
    Ok(u64::try_from(finished.since(started).as_micros()).unwrap_or(u64::MAX))
}

/// Checks that the debate went as scripted, so the figure is of the intended work.
fn check_debate(run: &Run) -> Result<()> {
    let output = run.output.as_ref();
    let outcome = output.and_then(|output| output.get("outcome")).and_then(Value::as_str);
    let cycles = output.and_then(|output| output.get("mitigation_cycles")).and_then(Value::as_u64);
    if outcome != Some("approved") || cycles != Some(2) {
        return Err(Error::Internal(format!("the bench debate {} ended {outcome:?} after {cycles:?} cycles, not approved after 2", run.id)));
    }
    Ok(())
}

fn check_mission(run: &Run) -> Result<()> {
    let output = run.output.as_ref();
    let outcome = output.and_then(|output| output.get("outcome")).and_then(Value::as_str);
    let steps = output.and_then(|output| output.get("steps")).and_then(Value::as_array).map(Vec::len);
    if outcome != Some("completed") || steps != Some(CHAINS * CHAIN_LENGTH) {
        return Err(Error::Internal(format!("the bench mission {} ended {outcome:?} with {steps:?} steps", run.id)));
    }
    Ok(())
}
