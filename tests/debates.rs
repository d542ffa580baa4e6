//! Debates end to end through `DebateService`, on both stores, with the scriptable mock provider
//! answering each phase: every path of the protocol (approved, approved with conditions after a
//! mitigation, rejected by score, vetoed, quorum missed, the cycle bound reached, unusable
//! answers retried then counted as abstentions), the transcript streamed live, the report stored
//! as an artifact, an exact replay, a server crash in the middle of a debate, and bad requests.

mod support;

use std::time::Duration;

use conclave::{
    models::{ModelsConfig, RouterSettings},
    proto::{
        self, artifact_service_client::ArtifactServiceClient, debate_event::Event, debate_service_client::DebateServiceClient,
        download_artifact_response,
    },
};
use support::{fast_config, test_registry, wait_for_state, StepCounter, TestDatabase, TestServer};
use tonic::{transport::Channel, Code};
use tonic_types::StatusExt;

const WAIT: Duration = Duration::from_secs(30);

/// A router with one `mock` provider answering by this script (TOML `[[script]]` entries).
fn scripted(script: &str) -> ModelsConfig {
    let file: toml::Table = toml::from_str(&format!("[providers.mock]\ntype = \"mock\"\n{script}")).expect("script");
    let providers = file["providers"].clone().try_into().expect("providers");
    ModelsConfig { providers, router: RouterSettings { chain: vec!["mock".into()], ..RouterSettings::default() } }
}

const OPENING: &str = r#"
[[providers.mock.script]]
step = "opening/"
json = { proposal = "Move the queue to Postgres", rationale = "one database" }
"#;

const NO_RISKS: &str = r#"
[[providers.mock.script]]
step = "challenge-"
json = { risks = [], critique = "sound", confidence = 0.9 }
"#;

fn votes(approve: bool, confidence: f64) -> String {
    format!(
        "[[providers.mock.script]]\nstep = \"vote/\"\njson = {{ approve = {approve}, confidence = {confidence}, rationale = \"considered\", conditions = [\"watch the costs\"] }}\n"
    )
}

async fn start(database: &TestDatabase, script: &str) -> TestServer {
    TestServer::start_with_models(&database.url, test_registry(&StepCounter::default()), fast_config(), scripted(script)).await
}

async fn debate_client(server: &TestServer) -> DebateServiceClient<Channel> {
    DebateServiceClient::new(Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap())
}

fn request(proposal: &str) -> proto::CreateDebateRequest {
    proto::CreateDebateRequest { proposal: proposal.to_owned(), ..Default::default() }
}

/// Creates a debate and waits until it has finished; returns it.
async fn decided(server: &TestServer, request: proto::CreateDebateRequest) -> proto::Debate {
    let mut debates = debate_client(server).await;
    let created = debates.create_debate(request).await.expect("create").into_inner();
    let mut runs = server.client().await;
    let terminal = [proto::RunState::Succeeded, proto::RunState::Failed, proto::RunState::Cancelled];
    let run = wait_for_state(&mut runs, &created.id, &terminal, WAIT).await;
    assert_eq!(run.state(), proto::RunState::Succeeded, "{:?}", run.error);
    debates.get_debate(proto::GetDebateRequest { id: created.id }).await.expect("get").into_inner()
}

/// Follows a debate's transcript until `phase` begins.
async fn until_phase(debates: &mut DebateServiceClient<Channel>, id: &str, phase: &str) {
    let mut stream = debates.watch_debate(proto::WatchDebateRequest { id: id.to_owned(), after_sequence: 0 }).await.unwrap().into_inner();
    while let Some(event) = stream.message().await.unwrap() {
        if matches!(&event.event, Some(Event::Phase(begun)) if begun.phase == phase) {
            return;
        }
    }
    panic!("debate {id} ended before its {phase} phase");
}

fn result(debate: &proto::Debate) -> &proto::DebateResult {
    debate.result.as_ref().expect("a finished debate has a result")
}

async fn an_agreed_proposal_is_approved_and_reported(database: &TestDatabase) {
    let server = start(database, &format!("{OPENING}{NO_RISKS}{}", votes(true, 0.9))).await;
    let debate = decided(&server, request("Should the queue move to Postgres?")).await;
    let outcome = result(&debate);
    assert_eq!(outcome.outcome(), proto::DebateOutcome::Approved);
    assert!((outcome.score - 0.9).abs() < 1e-9);
    assert_eq!((outcome.majority.as_str(), outcome.participation), ("approved", 1.0));
    assert_eq!(outcome.proposal, "Move the queue to Postgres");
    assert_eq!(outcome.votes.len(), 5, "the five-role debate");
    assert_eq!(outcome.mitigation_cycles, 0);
    let rounds: Vec<(&str, u32, f64)> = outcome.rounds.iter().map(|r| (r.phase.as_str(), r.cycle, r.agreement)).collect();
    assert_eq!(rounds, [("challenge", 1, 1.0), ("vote", 0, 1.0)]);

    // The transcript, from the beginning, ends with the outcome and the finished run.
    let mut debates = debate_client(&server).await;
    let mut stream = debates.watch_debate(proto::WatchDebateRequest { id: debate.id.clone(), after_sequence: 0 }).await.unwrap().into_inner();
    let mut phases = Vec::new();
    let mut messages = 0;
    let mut last = None;
    while let Some(event) = stream.message().await.expect("the transcript") {
        match event.event.expect("an event") {
            Event::Phase(phase) => phases.push(phase.phase),
            Event::Message(message) => {
                assert!(message.answer.is_some(), "{message:?}");
                messages += 1;
            }
            other => last = Some(other),
        }
    }
    assert_eq!(phases, ["opening", "challenge", "vote", "aggregation"]);
    assert_eq!(messages, 1 + 4 + 5, "the opening, four challenges, five votes");
    assert_eq!(last, Some(Event::State(proto::RunState::Succeeded as i32)));

    // The report is an artifact of the run.
    let channel = Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap();
    let mut artifacts = ArtifactServiceClient::new(channel);
    let reference = proto::ArtifactRef { id: outcome.report_artifact_id.clone(), ..Default::default() };
    let mut download = artifacts.download_artifact(proto::DownloadArtifactRequest { artifact: Some(reference), ..Default::default() }).await.unwrap().into_inner();
    let mut bytes = Vec::new();
    while let Some(message) = download.message().await.unwrap() {
        if let Some(download_artifact_response::Part::Chunk(chunk)) = message.part {
            bytes.extend_from_slice(&chunk);
        }
    }
    let report: serde_json::Value = serde_json::from_slice(&bytes).expect("a JSON report");
    assert_eq!(report["outcome"], "approved");
    assert_eq!(report["votes"].as_array().map(Vec::len), Some(5));

    // An exact replay decides the same without calling the provider again.
    let calls = server.engine.router().stats().requests;
    let mut runs = server.client().await;
    let replay = runs.replay_run(proto::ReplayRunRequest { id: debate.id.clone(), ..Default::default() }).await.unwrap().into_inner();
    let replayed = wait_for_state(&mut runs, &replay.id, &[proto::RunState::Succeeded, proto::RunState::Failed], WAIT).await;
    assert_eq!(replayed.output, debate.run.as_ref().unwrap().output);
    assert_eq!(server.engine.router().stats().requests, calls, "a replay calls no provider");
    server.shutdown().await;
}

async fn a_mitigated_risk_leads_to_conditional_approval(database: &TestDatabase) {
    let script = format!(
        r#"{OPENING}
[[providers.mock.script]]
role = "security"
step = "challenge-1/"
json = {{ risks = [{{ description = "no encryption at rest", severity = "high" }}, {{ description = "verbose logs", severity = "low" }}], critique = "risky", confidence = 0.8 }}
[[providers.mock.script]]
step = "mitigation-1/"
json = {{ revised_proposal = "Move the queue to Postgres, encrypted at rest", resolutions = [{{ risk_id = "R1.1", resolution = "enable encryption" }}] }}
{NO_RISKS}{}"#,
        votes(true, 0.6)
    );
    let server = start(database, &script).await;
    let debate = decided(&server, request("Should the queue move to Postgres?")).await;
    let outcome = result(&debate);
    assert_eq!(outcome.outcome(), proto::DebateOutcome::ConditionallyApproved);
    assert_eq!(outcome.conditions, ["watch the costs"]);
    assert_eq!(outcome.proposal, "Move the queue to Postgres, encrypted at rest");
    assert_eq!(outcome.original_proposal, "Move the queue to Postgres");
    assert_eq!(outcome.mitigation_cycles, 1);
    let risks: Vec<(&str, bool, &str, &str)> =
        outcome.risks.iter().map(|r| (r.id.as_str(), r.blocking, r.status.as_str(), r.resolution.as_str())).collect();
    assert_eq!(risks, [("R1.1", true, "mitigated", "enable encryption"), ("R1.2", false, "open", "")]);
    let rounds: Vec<(&str, u32, f64)> = outcome.rounds.iter().map(|r| (r.phase.as_str(), r.cycle, r.agreement)).collect();
    assert_eq!(rounds, [("challenge", 1, 0.75), ("challenge", 2, 1.0), ("vote", 0, 1.0)]);
    server.shutdown().await;
}

async fn low_confidence_is_rejected_and_listed_by_outcome(database: &TestDatabase) {
    let script = format!(
        "{OPENING}{NO_RISKS}[[providers.mock.script]]\nrole = \"analyst\"\nstep = \"vote/\"\njson = {{ approve = true, confidence = 0.5, rationale = \"maybe\" }}\n{}",
        votes(false, 0.8)
    );
    let server = start(database, &script).await;
    let debate = decided(&server, request("Rewrite it in COBOL?")).await;
    let outcome = result(&debate);
    assert_eq!(outcome.outcome(), proto::DebateOutcome::Rejected);
    assert!((outcome.score - 0.1).abs() < 1e-9, "{}", outcome.score);
    assert_eq!(outcome.majority, "rejected");
    assert!((outcome.rounds.last().unwrap().agreement - 0.8).abs() < 1e-9);

    let mut debates = debate_client(&server).await;
    let list = |outcome: proto::DebateOutcome| proto::ListDebatesRequest { outcome: outcome as i32, ..Default::default() };
    let rejected = debates.list_debates(list(proto::DebateOutcome::Rejected)).await.unwrap().into_inner();
    assert_eq!(rejected.debates.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [debate.id.as_str()]);
    assert!(debates.list_debates(list(proto::DebateOutcome::Approved)).await.unwrap().into_inner().debates.is_empty());
    let all = debates.list_debates(list(proto::DebateOutcome::Unspecified)).await.unwrap().into_inner();
    assert_eq!(all.debates.len(), 1);
    server.shutdown().await;
}

async fn a_veto_rejects_outright_and_says_why(database: &TestDatabase) {
    let script = format!(
        "{OPENING}{NO_RISKS}[[providers.mock.script]]\nrole = \"security\"\nstep = \"vote/\"\njson = {{ approve = false, confidence = 0.9, rationale = \"unsafe\", blocking_risk = \"credentials in plain text\" }}\n{}",
        votes(true, 1.0)
    );
    let server = start(database, &script).await;
    let debate = decided(&server, request("Ship the config service")).await;
    let outcome = result(&debate);
    assert_eq!(outcome.outcome(), proto::DebateOutcome::Vetoed);
    assert_eq!(outcome.vetoed_by, "security");
    assert!(outcome.veto_reason.contains("credentials in plain text"), "{}", outcome.veto_reason);
    assert_eq!(outcome.majority, "approved", "the majority would have approved");
    server.shutdown().await;
}

async fn unusable_answers_are_retried_then_abstain(database: &TestDatabase) {
    // The critic's first vote is unusable and its retry fine; the analyst, optimizer and
    // security answer unusably twice: three abstentions of five miss the quorum.
    let script = format!(
        r#"{OPENING}{NO_RISKS}
[[providers.mock.script]]
step = "vote/critic"
reply = "I approve, obviously."
times = 1
[[providers.mock.script]]
step = "vote/analyst"
reply = "yes"
[[providers.mock.script]]
step = "vote/optimizer"
json = {{ approve = true, confidence = 3, rationale = "very sure" }}
[[providers.mock.script]]
step = "vote/security"
json = {{ approve = "maybe" }}
{}"#,
        votes(true, 0.9)
    );
    let server = start(database, &script).await;
    let debate = decided(&server, request("Adopt the plan")).await;
    let outcome = result(&debate);
    assert_eq!(outcome.outcome(), proto::DebateOutcome::QuorumNotReached);
    assert!((outcome.participation - 0.4).abs() < 1e-9);
    let counted: Vec<(&str, bool)> = outcome.votes.iter().map(|vote| (vote.participant.as_str(), vote.counted)).collect();
    assert_eq!(counted, [("analyst", false), ("proposer", true), ("critic", true), ("security", false), ("optimizer", false)]);
    let optimizer = outcome.votes.iter().find(|vote| vote.participant == "optimizer").unwrap();
    assert!(optimizer.abstained.contains("confidence"), "the abstention says why: {}", optimizer.abstained);
    let mut runs = server.client().await;
    let mut watch = runs.watch_run(proto::WatchRunRequest { id: debate.id.clone(), after_sequence: 0 }).await.unwrap().into_inner();
    let mut steps = Vec::new();
    while let Some(response) = watch.message().await.unwrap() {
        for event in response.events {
            if let Some(proto::run_event::Event::StepCompleted(step)) = event.event {
                steps.push(step.key);
            }
        }
    }
    assert!(steps.contains(&"vote/critic/retry".to_owned()) && steps.contains(&"vote/analyst/retry".to_owned()), "{steps:?}");
    assert!(!steps.contains(&"vote/proposer/retry".to_owned()));
    server.shutdown().await;
}

async fn the_cycle_bound_leaves_risks_unresolved(database: &TestDatabase) {
    let script = format!(
        r#"{OPENING}
[[providers.mock.script]]
role = "critic"
step = "challenge-"
json = {{ risks = [{{ description = "it will not scale", severity = "critical" }}], critique = "no", confidence = 0.9 }}
[[providers.mock.script]]
step = "mitigation-"
json = {{ revised_proposal = "Move the queue to Postgres, sharded" }}
{NO_RISKS}{}"#,
        votes(true, 0.6)
    );
    let server = start(database, &script).await;
    let mut create = request("Move the queue");
    create.protocol = Some(proto::DebateProtocol { max_cycles: Some(1), ..Default::default() });
    let debate = decided(&server, create).await;
    let outcome = result(&debate);
    assert!(outcome.cycle_bound_reached);
    assert_eq!(outcome.mitigation_cycles, 1);
    let statuses: Vec<(&str, &str)> = outcome.risks.iter().map(|r| (r.id.as_str(), r.status.as_str())).collect();
    assert_eq!(statuses, [("R1.1", "mitigated"), ("R2.1", "unresolved")]);
    assert_eq!(outcome.outcome(), proto::DebateOutcome::ConditionallyApproved);
    assert!(outcome.conditions.iter().any(|c| c == "resolve the open risk: R2.1 it will not scale"), "{:?}", outcome.conditions);
    server.shutdown().await;
}

async fn a_debate_survives_a_crash_without_asking_twice(database: &TestDatabase) {
    // The votes take a while: the server dies during them.
    let slow_votes = "[[providers.mock.script]]\nstep = \"vote/\"\ndelay_ms = 1500\njson = { approve = true, confidence = 0.8, rationale = \"ok\" }\n";
    let server = start(database, &format!("{OPENING}{NO_RISKS}{slow_votes}")).await;
    let mut debates = debate_client(&server).await;
    let created = debates.create_debate(request("Adopt the plan")).await.unwrap().into_inner();
    until_phase(&mut debates, &created.id, "vote").await;
    let first_calls = server.engine.router().stats().requests;
    server.crash().await;

    let fast_votes = "[[providers.mock.script]]\nstep = \"vote/\"\njson = { approve = true, confidence = 0.8, rationale = \"ok\" }\n";
    let server = start(database, &format!("{OPENING}{NO_RISKS}{fast_votes}")).await;
    let mut runs = server.client().await;
    let run = wait_for_state(&mut runs, &created.id, &[proto::RunState::Succeeded, proto::RunState::Failed], WAIT).await;
    assert_eq!(run.state(), proto::RunState::Succeeded, "{:?}", run.error);
    assert!(first_calls >= 5, "the opening and four challenges were answered before the crash (and votes begun): {first_calls}");
    assert_eq!(server.engine.router().stats().requests, 5, "after the restart only the five votes were asked");
    server.shutdown().await;
}

async fn bad_debates_are_refused_field_by_field(database: &TestDatabase) {
    let server = start(database, "").await;
    let mut debates = debate_client(&server).await;
    let bad = proto::CreateDebateRequest {
        proposal: String::new(),
        participants: vec![
            proto::DebateParticipant { name: "a".into(), role: "critic".into(), weight: -1.0, veto: true, ..Default::default() },
            proto::DebateParticipant { name: "a".into(), role: "critic".into(), weight: 1.0, veto: false, ..Default::default() },
        ],
        protocol: Some(proto::DebateProtocol { quorum: Some(1.5), ..Default::default() }),
        ..Default::default()
    };
    let refused = debates.create_debate(bad).await.expect_err("a bad debate");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<String> = refused.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["proposal", "participants[0].weight", "participants[1].name", "protocol.quorum"]);
    let missing = debates.get_debate(proto::GetDebateRequest { id: conclave::domain::RunId::new().to_string() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // A run of another kind is not a debate.
    let mut runs = server.client().await;
    let noop = runs.create_run(support::create("noop", serde_json::json!({}))).await.unwrap().into_inner();
    assert_eq!(debates.get_debate(proto::GetDebateRequest { id: noop.id }).await.unwrap_err().code(), Code::NotFound);
    server.shutdown().await;
}

async fn reliability_from_past_debates_weighs_the_votes(database: &TestDatabase) {
    let script = format!(
        "{OPENING}{NO_RISKS}[[providers.mock.script]]\nrole = \"critic\"\nstep = \"vote/\"\njson = {{ approve = false, confidence = 0.9, rationale = \"no\" }}\n{}",
        votes(true, 0.9)
    );
    let server = start(database, &script).await;
    let first = decided(&server, request("Adopt the plan")).await;
    assert_eq!(result(&first).outcome(), proto::DebateOutcome::Approved, "the critic disagreed with the outcome");
    assert!(result(&first).votes.iter().all(|vote| vote.reliability == 0.0), "not weighed by reliability");

    let mut weighed = request("Adopt the next plan");
    weighed.protocol = Some(proto::DebateProtocol { reliability_weights: true, ..Default::default() });
    let second = decided(&server, weighed).await;
    let outcome = result(&second);
    let reliability: Vec<(&str, f64)> = outcome.votes.iter().map(|vote| (vote.participant.as_str(), vote.reliability)).collect();
    let (two_thirds, one_third) = (2.0 / 3.0, 1.0 / 3.0);
    for (name, value) in reliability {
        let expected = if name == "critic" { one_third } else { two_thirds };
        assert!((value - expected).abs() < 1e-9, "{name}: {value}");
    }
    assert!((outcome.score - 0.8).abs() < 1e-9, "the critic's dissent weighs less: {}", outcome.score);
    server.shutdown().await;
}

/// A participant with a chain of its own is answered by those providers, not its role's chain.
async fn a_participant_speaks_through_its_own_chain(database: &TestDatabase) {
    let script = format!("{OPENING}{NO_RISKS}{}", votes(true, 0.9));
    let file: toml::Table = toml::from_str(&format!(
        "[providers.mock]\ntype = \"mock\"\n{script}\n[providers.other]\ntype = \"mock\"\n[[providers.other.script]]\nstep = \"vote/\"\njson = {{ approve = true, confidence = 0.5, rationale = \"from the other provider\" }}\n"
    ))
    .expect("script");
    let providers = file["providers"].clone().try_into().expect("providers");
    let models = ModelsConfig { providers, router: RouterSettings { chain: vec!["mock".into()], ..RouterSettings::default() } };
    let server = TestServer::start_with_models(&database.url, test_registry(&StepCounter::default()), fast_config(), models).await;
    let mut create = request("Adopt the plan");
    create.participants = vec![
        proto::DebateParticipant { name: "proposer".into(), role: "proposer".into(), ..Default::default() },
        proto::DebateParticipant { name: "security".into(), role: "security".into(), veto: true, chain: vec!["other#sec".into()], ..Default::default() },
    ];
    let debate = decided(&server, create).await;
    let rationales: Vec<(&str, &str)> = result(&debate).votes.iter().map(|vote| (vote.participant.as_str(), vote.rationale.as_str())).collect();
    assert_eq!(rationales, [("proposer", "considered"), ("security", "from the other provider")]);

    let mut debates = debate_client(&server).await;
    let mut bad = request("x");
    bad.participants = vec![proto::DebateParticipant { name: "a".into(), role: "critic".into(), chain: vec!["other#".into()], ..Default::default() }];
    let refused = debates.create_debate(bad).await.expect_err("a bad chain");
    let fields: Vec<String> = refused.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["participants[0].chain"]);
    server.shutdown().await;
}

/// Cancelling a debate abandons the model calls in flight instead of waiting for them.
async fn a_cancelled_debate_stops_waiting_for_its_agents(database: &TestDatabase) {
    let slow_votes = "[[providers.mock.script]]\nstep = \"vote/\"\ndelay_ms = 60000\njson = { approve = true, confidence = 0.8, rationale = \"ok\" }\n";
    // A long grace, so only the workflow itself stopping promptly ends the run soon.
    let config = conclave::engine::EngineConfig { cancel_grace: Duration::from_secs(60), ..fast_config() };
    let models = scripted(&format!("{OPENING}{NO_RISKS}{slow_votes}"));
    let server = TestServer::start_with_models(&database.url, test_registry(&StepCounter::default()), config, models).await;
    let mut debates = debate_client(&server).await;
    let created = debates.create_debate(request("Adopt the plan")).await.unwrap().into_inner();
    until_phase(&mut debates, &created.id, "vote").await;
    let asked = std::time::Instant::now();
    debates.cancel_debate(proto::CancelDebateRequest { id: created.id.clone(), reason: "changed our minds".into() }).await.unwrap();
    let mut runs = server.client().await;
    let run = wait_for_state(&mut runs, &created.id, &[proto::RunState::Cancelled, proto::RunState::Succeeded, proto::RunState::Failed], WAIT).await;
    assert_eq!(run.state(), proto::RunState::Cancelled);
    assert!(asked.elapsed() < Duration::from_secs(20), "the votes (60 s each, 60 s of grace) were abandoned, not awaited: {:?}", asked.elapsed());
    server.shutdown().await;
}

on_both_stores!(
    a_cancelled_debate_stops_waiting_for_its_agents,
    a_participant_speaks_through_its_own_chain,
    reliability_from_past_debates_weighs_the_votes,
    an_agreed_proposal_is_approved_and_reported,
    a_mitigated_risk_leads_to_conditional_approval,
    low_confidence_is_rejected_and_listed_by_outcome,
    a_veto_rejects_outright_and_says_why,
    unusable_answers_are_retried_then_abstain,
    the_cycle_bound_leaves_risks_unresolved,
    a_debate_survives_a_crash_without_asking_twice,
    bad_debates_are_refused_field_by_field,
);
