//! Missions end to end through `MissionService`, on both stores, with the scriptable mock
//! provider as every agent: a plan with parallel branches runs them at once (their step times
//! overlap) and links their outputs by lineage; memory from one mission reaches the next
//! related one; a rejected plan halts the mission; the validation sends a step back; a step
//! waits for approval holding no worker; a server crash mid-DAG repeats no finished step; a
//! finished mission replays identically; bad requests are refused field by field.

mod support;

use std::time::Duration;

use conclave::{
    models::{ModelsConfig, RouterSettings},
    proto::{self, artifact_service_client::ArtifactServiceClient, mission_event::Event, mission_service_client::MissionServiceClient},
};
use support::{fast_config, test_registry, wait_for_state, StepCounter, TestDatabase, TestServer};
use tonic::{transport::Channel, Code};
use tonic_types::StatusExt;

const WAIT: Duration = Duration::from_secs(30);

fn scripted(script: &str) -> ModelsConfig {
    let file: toml::Table = toml::from_str(&format!("[providers.mock]\ntype = \"mock\"\n{script}")).expect("script");
    let providers = file["providers"].clone().try_into().expect("providers");
    ModelsConfig { providers, router: RouterSettings { chain: vec!["mock".into()], ..RouterSettings::default() } }
}

/// A diamond: `a` first, then `b` and `c` at once, then `d`.
const PLAN: &str = r#"
[[providers.mock.script]]
step = "plan"
json = { summary = "research, build and document, then review", steps = [
  { id = "a", role = "researcher", instructions = "find what exists" },
  { id = "b", role = "coder", instructions = "build it", depends_on = ["a"] },
  { id = "c", role = "writer", instructions = "document it", depends_on = ["a"] },
  { id = "d", role = "reviewer", instructions = "review both", depends_on = ["b", "c"] },
] }
"#;

const PASSED: &str = r#"
[[providers.mock.script]]
step = "validate/"
json = { passed = true, summary = "built, documented and reviewed" }
"#;

fn steps(delay_ms: u64) -> String {
    format!(
        "[[providers.mock.script]]\nstep = \"step/b/\"\ndelay_ms = {delay_ms}\nreply = \"the code\"\n[[providers.mock.script]]\nstep = \"step/c/\"\ndelay_ms = {delay_ms}\nreply = \"the docs\"\n[[providers.mock.script]]\nstep = \"step/\"\nreply = \"step output\"\n"
    )
}

async fn start(database: &TestDatabase, script: &str) -> TestServer {
    TestServer::start_with_models(&database.url, test_registry(&StepCounter::default()), fast_config(), scripted(script)).await
}

async fn missions_client(server: &TestServer) -> MissionServiceClient<Channel> {
    MissionServiceClient::new(Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap())
}

fn ungated(request: &str) -> proto::CreateMissionRequest {
    proto::CreateMissionRequest {
        request: request.to_owned(),
        gate: Some(proto::MissionGate { skip: true, ..Default::default() }),
        ..Default::default()
    }
}

async fn finished(server: &TestServer, id: &str) -> proto::Mission {
    let mut runs = server.client().await;
    let run = wait_for_state(&mut runs, id, &[proto::RunState::Succeeded, proto::RunState::Failed, proto::RunState::Cancelled], WAIT).await;
    assert_eq!(run.state(), proto::RunState::Succeeded, "{:?}", run.error);
    missions_client(server).await.get_mission(proto::GetMissionRequest { id: id.to_owned() }).await.expect("get").into_inner()
}

async fn carried_out(server: &TestServer, request: proto::CreateMissionRequest) -> proto::Mission {
    let created = missions_client(server).await.create_mission(request).await.expect("create").into_inner();
    finished(server, &created.id).await
}

fn result(mission: &proto::Mission) -> &proto::MissionResult {
    mission.result.as_ref().expect("a finished mission has a result")
}

fn step<'a>(result: &'a proto::MissionResult, id: &str) -> &'a proto::MissionStep {
    result.steps.iter().find(|step| step.id == id).unwrap_or_else(|| panic!("no step {id}"))
}

/// A finished run's workflow events: their types, and the step each names, in order.
async fn transcript(server: &TestServer, id: &str) -> Vec<(String, String)> {
    let mut runs = server.client().await;
    let mut watch = runs.watch_run(proto::WatchRunRequest { id: id.to_owned(), after_sequence: 0 }).await.unwrap().into_inner();
    let mut events = Vec::new();
    while let Some(response) = watch.message().await.unwrap() {
        for event in response.events {
            if let Some(proto::run_event::Event::Workflow(workflow)) = event.event {
                let step = workflow.data.as_ref().and_then(|data| data.fields.get("id")).and_then(|id| match &id.kind {
                    Some(prost_types::value::Kind::StringValue(id)) => Some(id.clone()),
                    _ => None,
                });
                events.push((workflow.r#type, step.unwrap_or_default()));
            }
        }
    }
    events
}

fn micros(time: &Option<prost_types::Timestamp>) -> i64 {
    let time = time.as_ref().expect("a time");
    time.seconds * 1_000_000 + i64::from(time.nanos) / 1_000
}

async fn parallel_branches_overlap_and_memory_carries_over(database: &TestDatabase) {
    let server = start(database, &format!("{PLAN}{PASSED}{}", steps(400))).await;
    let mission = carried_out(&server, ungated("Build the export feature with docs")).await;
    let outcome = result(&mission);
    assert_eq!(outcome.outcome(), proto::MissionOutcome::Completed);
    assert_eq!(outcome.summary, "built, documented and reviewed");
    assert_eq!(outcome.plan.len(), 4);
    assert!(outcome.steps.iter().all(|step| step.state == "done" && step.attempts == 1), "{:?}", outcome.steps);
    let (b, c, a, d) = (step(outcome, "b"), step(outcome, "c"), step(outcome, "a"), step(outcome, "d"));
    assert!(micros(&b.start_time) < micros(&c.finish_time) && micros(&c.start_time) < micros(&b.finish_time), "b and c ran at the same time: {b:?} {c:?}");
    assert!(micros(&a.finish_time) <= micros(&b.start_time) && micros(&c.finish_time) <= micros(&d.start_time), "dependencies ran first");
    assert_eq!(outcome.validations, 1);
    assert_eq!(outcome.model_calls, 5, "four steps and one validation");

    // The outputs are artifacts, linked by lineage, step by step: d was made from what d read
    // (b and c), and a is one link further up, through them.
    let channel = Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap();
    let mut artifacts = ArtifactServiceClient::new(channel);
    let reference = |id: &str| Some(proto::ArtifactRef { id: id.to_owned(), ..Default::default() });
    let lineage = artifacts
        .get_artifact_lineage(proto::GetArtifactLineageRequest { artifact: reference(&d.artifact_id), depth: 1 })
        .await
        .unwrap()
        .into_inner();
    let mut upstream: Vec<String> = lineage.upstream.iter().map(|artifact| artifact.name.clone()).collect();
    upstream.sort();
    assert_eq!(upstream, ["steps/b.md", "steps/c.md"]);
    let mut uses: Vec<&str> = lineage.uses.iter().map(|used| used.step.as_str()).collect();
    uses.sort();
    assert_eq!(uses, ["step/d/r0/input/b", "step/d/r0/input/c", "validate/0/input/d"], "its inputs, and the validation's read of it");
    let deeper = artifacts
        .get_artifact_lineage(proto::GetArtifactLineageRequest { artifact: reference(&d.artifact_id), depth: 2 })
        .await
        .unwrap()
        .into_inner();
    let mut upstream: Vec<String> = deeper.upstream.iter().map(|artifact| artifact.name.clone()).collect();
    upstream.sort();
    assert_eq!(upstream, ["steps/a.md", "steps/b.md", "steps/c.md"]);
    // Downstream of a: b and c, which read it, not d, which did not.
    let a_lineage = artifacts
        .get_artifact_lineage(proto::GetArtifactLineageRequest { artifact: reference(&a.artifact_id), depth: 1 })
        .await
        .unwrap()
        .into_inner();
    let mut downstream: Vec<String> = a_lineage.downstream.iter().map(|artifact| artifact.name.clone()).collect();
    downstream.sort();
    assert_eq!(downstream, ["steps/b.md", "steps/c.md"]);

    // A related mission reads the first one's memory; an unrelated one does not.
    let related = carried_out(&server, ungated("Extend the export feature to CSV")).await;
    assert_eq!(result(&related).memories, std::slice::from_ref(&mission.id));
    let unrelated = carried_out(&server, ungated("Plan the team offsite")).await;
    assert!(result(&unrelated).memories.is_empty(), "{:?}", result(&unrelated).memories);

    // An exact replay gives the same report without calling a provider.
    let calls = server.engine.router().stats().requests;
    let mut runs = server.client().await;
    let replay = runs.replay_run(proto::ReplayRunRequest { id: mission.id.clone(), ..Default::default() }).await.unwrap().into_inner();
    let replayed = wait_for_state(&mut runs, &replay.id, &[proto::RunState::Succeeded, proto::RunState::Failed], WAIT).await;
    assert_eq!(replayed.output, mission.run.as_ref().unwrap().output);
    assert_eq!(server.engine.router().stats().requests, calls);
    let (first, again) = (transcript(&server, &mission.id).await, transcript(&server, &replay.id).await);
    assert_eq!(first.iter().filter(|(kind, _)| kind == "mission.step").count(), 4, "{first:?}");
    assert_eq!(again, first, "the replay's transcript comes in the same order");

    let mut missions = missions_client(&server).await;
    let completed = missions
        .list_missions(proto::ListMissionsRequest { outcome: proto::MissionOutcome::Completed as i32, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(completed.missions.len(), 4, "the three missions and the replay, a mission run of its own");
    server.shutdown().await;
}

async fn a_rejected_plan_halts_the_mission(database: &TestDatabase) {
    let gate = r#"
[[providers.mock.script]]
step = "challenge-"
json = { risks = [], critique = "fine", confidence = 0.9 }
[[providers.mock.script]]
role = "security"
step = "vote/"
json = { approve = false, confidence = 0.9, rationale = "no", blocking_risk = "it deletes production data" }
[[providers.mock.script]]
step = "vote/"
json = { approve = true, confidence = 0.9, rationale = "yes" }
"#;
    let server = start(database, &format!("{PLAN}{gate}{PASSED}{}", steps(0))).await;
    let request = proto::CreateMissionRequest { request: "Clean up the database".into(), ..Default::default() };
    let mission = carried_out(&server, request).await;
    let outcome = result(&mission);
    assert_eq!(outcome.outcome(), proto::MissionOutcome::Rejected);
    assert!(outcome.summary.contains("vetoed by security: it deletes production data"), "{}", outcome.summary);
    let gate = outcome.gate.as_ref().expect("the gate's result");
    assert_eq!((gate.outcome(), gate.vetoed_by.as_str()), (proto::DebateOutcome::Vetoed, "security"));
    assert!(outcome.steps.is_empty(), "no step ran");
    assert_eq!(outcome.model_calls, 0);
    server.shutdown().await;
}

async fn the_validation_sends_a_step_back_under_the_gates_conditions(database: &TestDatabase) {
    let script = format!(
        r#"{PLAN}
[[providers.mock.script]]
step = "challenge-"
json = {{ risks = [], critique = "fine", confidence = 0.9 }}
[[providers.mock.script]]
step = "vote/"
json = {{ approve = true, confidence = 0.6, rationale = "ok", conditions = ["keep the old export working"] }}
[[providers.mock.script]]
step = "validate/0"
json = {{ passed = false, failed_steps = [{{ id = "c", problem = "the docs miss the CSV format" }}], summary = "docs incomplete" }}
{PASSED}{}"#,
        steps(0)
    );
    let server = start(database, &script).await;
    let mission = carried_out(&server, proto::CreateMissionRequest { request: "Build the export".into(), ..Default::default() }).await;
    let outcome = result(&mission);
    assert_eq!(outcome.outcome(), proto::MissionOutcome::Completed);
    let gate = outcome.gate.as_ref().expect("gated");
    assert_eq!(gate.outcome(), proto::DebateOutcome::ConditionallyApproved);
    assert_eq!(gate.conditions, ["keep the old export working"]);
    let attempts: Vec<(&str, u32)> = outcome.steps.iter().map(|step| (step.id.as_str(), step.attempts)).collect();
    assert_eq!(attempts, [("a", 1), ("b", 1), ("c", 2), ("d", 2)], "c, and d which reads it, were done again");
    assert_eq!(outcome.validations, 2);
    server.shutdown().await;
}

async fn a_step_needing_approval_waits_without_a_worker(database: &TestDatabase) {
    let plan = r#"
[[providers.mock.script]]
step = "plan"
json = { steps = [
  { id = "prepare", role = "coder", instructions = "prepare the migration" },
  { id = "apply", role = "coder", instructions = "apply it", depends_on = ["prepare"], needs_approval = true },
] }
"#;
    let server = start(database, &format!("{plan}{PASSED}{}", steps(0))).await;
    let created = missions_client(&server).await.create_mission(ungated("Migrate the schema")).await.unwrap().into_inner();
    let mut runs = server.client().await;
    let waiting = wait_for_state(&mut runs, &created.id, &[proto::RunState::Waiting], WAIT).await;
    assert_eq!(waiting.waiting.as_ref().map(|waiting| waiting.key.as_str()), Some("approve/apply"));
    assert!(waiting.lease.is_none(), "a waiting mission holds no worker");
    let decision = proto::Decision { outcome: Some(proto::decision::Outcome::Approve(true)), ..Default::default() };
    runs.submit_decision(proto::SubmitDecisionRequest { id: created.id.clone(), key: "approve/apply".into(), decision: Some(decision) }).await.unwrap();
    let mission = finished(&server, &created.id).await;
    assert_eq!(result(&mission).outcome(), proto::MissionOutcome::Completed);
    assert_eq!(step(result(&mission), "apply").state, "done");
    server.shutdown().await;
}

async fn a_crash_mid_dag_repeats_no_finished_step(database: &TestDatabase) {
    let slow = "[[providers.mock.script]]\nstep = \"step/b/\"\ndelay_ms = 3000\nreply = \"the code\"\n[[providers.mock.script]]\nstep = \"step/\"\nreply = \"step output\"\n";
    let server = start(database, &format!("{PLAN}{PASSED}{slow}")).await;
    let mut missions = missions_client(&server).await;
    let created = missions.create_mission(ungated("Build the export")).await.unwrap().into_inner();
    let mut events = missions.watch_mission(proto::WatchMissionRequest { id: created.id.clone(), after_sequence: 0 }).await.unwrap().into_inner();
    while let Some(event) = events.message().await.unwrap() {
        if matches!(&event.event, Some(Event::Step(step)) if step.id == "c") {
            break;
        }
    }
    server.crash().await;

    let server = start(database, &format!("{PLAN}{PASSED}{}", steps(0))).await;
    let mission = finished(&server, &created.id).await;
    assert_eq!(result(&mission).outcome(), proto::MissionOutcome::Completed);
    assert_eq!(server.engine.router().stats().requests, 3, "after the restart: b (in flight at the crash), d and the validation");
    server.shutdown().await;
}

async fn bad_missions_are_refused_field_by_field(database: &TestDatabase) {
    let server = start(database, "").await;
    let mut missions = missions_client(&server).await;
    let bad = proto::CreateMissionRequest {
        request: " ".into(),
        roles: vec![
            proto::AgentRole { name: "Bad Name".into(), ..Default::default() },
            proto::AgentRole { name: "coder".into(), chain: vec!["Not A Provider".into()], ..Default::default() },
        ],
        limits: Some(proto::MissionLimits { parallelism: Some(0), max_steps: Some(1000), ..Default::default() }),
        ..Default::default()
    };
    let refused = missions.create_mission(bad).await.expect_err("a bad mission");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<String> = refused.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["request", "roles[0].name", "roles[1].chain", "limits.parallelism", "limits.max_steps"]);
    let missing = missions.get_mission(proto::GetMissionRequest { id: conclave::domain::RunId::new().to_string() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    server.shutdown().await;
}

on_both_stores!(
    parallel_branches_overlap_and_memory_carries_over,
    a_rejected_plan_halts_the_mission,
    the_validation_sends_a_step_back_under_the_gates_conditions,
    a_step_needing_approval_waits_without_a_worker,
    a_crash_mid_dag_repeats_no_finished_step,
    bad_missions_are_refused_field_by_field,
);
