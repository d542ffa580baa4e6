//! `debate`: the iterative debate (Consensus 2.0). Opening (the proposer writes the proposal) →
//! Challenge (every other participant names risks with a severity, and a critique with its
//! confidence) → Mitigation (the proposer revises against the risks that need it) → back to
//! Challenge while such risks remain, up to `max_cycles` revisions → Final vote (every
//! participant approves or rejects, with confidence and rationale) → Aggregation
//! ([`aggregate::decide`]).
//!
//! Every answer is a journaled model call through the router, under the participant's role, so
//! a debate streams, survives a crash and replays exactly. Answers are JSON checked against
//! their shape; an unusable one is asked for again once with what was wrong, then counted as an
//! abstention. The transcript is the run's workflow events (`debate.phase`, `debate.message`),
//! emitted in participant order whatever order the concurrent calls finish in. The final report
//! is stored as the artifact `debate/report.json`.

pub mod aggregate;
pub mod answers;
mod service;
pub mod spec;

pub use service::{CreateDebateRequest, DebateResource, DebateView, Debates};

use async_trait::async_trait;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use self::{
    aggregate::{Ballot, Decision},
    answers::{Challenge, Mitigation, Opening, Vote},
    spec::{DebateSpec, Participant, Severity},
};
use crate::{
    artifacts::{ArtifactRef, UploadHeader},
    domain::{ArtifactKind, Reliability},
    engine::{RunContext, Workflow, WorkflowError},
    error::Result,
    workflows::structured::{ask, Agent, Answer, Answered},
};

/// The version of the prompts below, journaled with every call.
const PROMPT_VERSION: &str = "debate-v1";
/// The most bytes of one context artifact put in the prompts.
const MAX_CONTEXT_ARTIFACT_BYTES: usize = 64 << 10;
/// The name of the report artifact.
pub const REPORT_NAME: &str = "debate/report.json";

/// The `debate` kind.
pub struct Debate;

#[async_trait]
impl Workflow for Debate {
    fn validate(&self, input: &Map<String, Value>) -> Result<()> {
        DebateSpec::from_input(input).map(drop)
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let spec = DebateSpec::from_input(ctx.input()).map_err(|err| WorkflowError::invalid_input(err.to_string()))?;
        let report = deliberate(ctx, &spec, None).await?;
        let bytes = serde_json::to_vec_pretty(&report).map_err(|err| WorkflowError::fatal(format!("the report cannot be written: {err}")))?;
        let header = UploadHeader {
            name: REPORT_NAME.to_owned(),
            kind: ArtifactKind::Report,
            media_type: "application/json".to_owned(),
            ..UploadHeader::default()
        };
        let stored = ctx.put_artifact("report", header, &bytes).await?;
        let report = Report { report_artifact: Some(stored.id), ..report };
        serde_json::to_value(&report).map_err(|err| WorkflowError::fatal(format!("the report cannot be written: {err}")))
    }
}

/// A risk raised in a challenge, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// `R{cycle}.{n}`.
    pub id: String,
    /// Who raised it.
    pub raised_by: String,
    /// What could go wrong.
    pub description: String,
    /// How bad.
    pub severity: Severity,
    /// Whether it needs mitigation before the vote.
    pub blocking: bool,
    /// The challenge round it was raised in.
    pub cycle: u32,
    /// How a revision handled it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// `open`, `mitigated` (a revision addressed it), or `unresolved` (the cycle bound was
    /// reached with it open).
    pub status: RiskStatus,
}

/// What became of a risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskStatus {
    /// Raised; not (yet) addressed.
    Open,
    /// A revision addressed it.
    Mitigated,
    /// The bound on revisions was reached with it open.
    Unresolved,
}

impl RiskStatus {
    /// The name in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Mitigated => "mitigated",
            Self::Unresolved => "unresolved",
        }
    }
}

/// The agreement of one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// `challenge` or `vote`.
    pub phase: String,
    /// The cycle (challenge rounds), from 1.
    pub cycle: u32,
    /// Challenge: the share of challengers raising no risk that needs mitigation; vote: the
    /// share of counted votes agreeing with the majority.
    pub agreement: f64,
}

/// The final report: the proposal as revised, the risks and how each was handled, the votes,
/// and the outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The outcome, score, majority, veto and conditions.
    #[serde(flatten)]
    pub decision: Decision,
    /// The proposal as first written.
    pub original_proposal: String,
    /// The proposal as finally revised.
    pub proposal: String,
    /// Every risk raised.
    pub risks: Vec<Risk>,
    /// Every final vote or abstention.
    pub votes: Vec<Ballot>,
    /// The agreement of each round.
    pub rounds: Vec<Round>,
    /// Revisions made.
    pub mitigation_cycles: u32,
    /// The bound on revisions was reached with risks open.
    pub cycle_bound_reached: bool,
    /// Participants whose answers were unusable twice, by step.
    pub abstentions: Vec<Value>,
    /// The id of this report's artifact (`debate/report.json`), in the run's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_artifact: Option<String>,
}

/// Runs the phases and decides. With `given`, the proposal is that text (a mission's plan) and
/// the opening is skipped; otherwise the proposer writes it from the spec's request.
pub async fn deliberate(ctx: &RunContext, spec: &DebateSpec, given: Option<String>) -> Result<Report, WorkflowError> {
    let context = context_text(ctx, spec).await?;
    let proposer = spec.proposer().ok_or_else(|| WorkflowError::invalid_input("a debate needs a participant"))?;
    let mut abstentions = Vec::new();

    let original = match given {
        Some(proposal) => proposal,
        None => {
            phase(ctx, "opening", 0).await?;
            let prompt = format!("{context}Write the proposal for the panel to judge, for this request:\n\n{}", spec.proposal);
            let key = format!("opening/{}", proposer.name);
            let opening = ask::<Opening>(ctx, &key, agent(proposer), &prompt, PROMPT_VERSION).await?;
            message(ctx, "opening", 0, proposer, &opening).await?;
            match opening {
                Answered::Given(opening) => opening.proposal,
                Answered::Abstained(reason) => {
                    abstentions.push(json!({ "step": key, "participant": proposer.name, "reason": reason }));
                    spec.proposal.clone()
                }
            }
        }
    };
    let mut proposal = original.clone();
    let mut risks: Vec<Risk> = Vec::new();
    let mut rounds = Vec::new();
    let mut cycles = 0;
    let mut bound_reached = false;
    let challengers: Vec<&Participant> = spec.participants.iter().filter(|participant| participant.name != proposer.name).collect();

    for cycle in 1..=spec.protocol.max_cycles + 1 {
        if challengers.is_empty() {
            break;
        }
        phase(ctx, "challenge", cycle).await?;
        let prompt = format!(
            "{context}Challenge this proposal: name the risks (each with a severity) and critique it.\n\nProposal:\n{proposal}\n{}",
            risk_list("Risks raised before", risks.iter())
        );
        let keys: Vec<String> = challengers.iter().map(|participant| format!("challenge-{cycle}/{}", participant.name)).collect();
        let answers = join_all(challengers.iter().zip(&keys).map(|(participant, key)| ask::<Challenge>(ctx, key, agent(participant), &prompt, PROMPT_VERSION))).await;
        let mut blocking_raised = 0;
        let mut challengers_blocking = 0;
        let mut transcript = Vec::new();
        for ((participant, key), answer) in challengers.iter().zip(&keys).zip(answers) {
            let answer = answer?;
            transcript.push(transcript_entry("challenge", cycle, participant, &answer));
            match answer {
                Answered::Given(challenge) => {
                    let before = blocking_raised;
                    for raised in challenge.risks {
                        let blocking = spec.needs_mitigation(raised.severity);
                        blocking_raised += usize::from(blocking);
                        risks.push(Risk {
                            id: format!("R{cycle}.{}", risks.iter().filter(|risk| risk.cycle == cycle).count() + 1),
                            raised_by: participant.name.clone(),
                            description: raised.description,
                            severity: raised.severity,
                            blocking,
                            cycle,
                            resolution: None,
                            status: RiskStatus::Open,
                        });
                    }
                    challengers_blocking += usize::from(blocking_raised > before);
                }
                Answered::Abstained(reason) => {
                    abstentions.push(json!({ "step": key, "participant": participant.name, "reason": reason }));
                }
            }
        }
        ctx.emit_all(transcript).await?;
        rounds.push(Round {
            phase: "challenge".into(),
            cycle,
            agreement: 1.0 - challengers_blocking as f64 / challengers.len() as f64,
        });
        if blocking_raised == 0 {
            break;
        }
        if cycle > spec.protocol.max_cycles {
            bound_reached = true;
            for risk in risks.iter_mut().filter(|risk| risk.blocking && risk.status == RiskStatus::Open) {
                risk.status = RiskStatus::Unresolved;
            }
            break;
        }

        phase(ctx, "mitigation", cycle).await?;
        let open = risks.iter().filter(|risk| risk.blocking && risk.status == RiskStatus::Open);
        let prompt = format!("{context}Revise your proposal so that it handles these risks.\n\nProposal:\n{proposal}\n{}", risk_list("Risks to handle", open));
        let key = format!("mitigation-{cycle}/{}", proposer.name);
        let answer = ask::<Mitigation>(ctx, &key, agent(proposer), &prompt, PROMPT_VERSION).await?;
        message(ctx, "mitigation", cycle, proposer, &answer).await?;
        cycles = cycle;
        match answer {
            Answered::Given(mitigation) => {
                proposal = mitigation.revised_proposal;
                for risk in risks.iter_mut().filter(|risk| risk.blocking && risk.status == RiskStatus::Open) {
                    risk.status = RiskStatus::Mitigated;
                    risk.resolution = mitigation
                        .resolutions
                        .iter()
                        .find(|resolution| resolution.risk_id == risk.id)
                        .map(|resolution| resolution.resolution.clone())
                        .or_else(|| Some("addressed by the revised proposal".to_owned()));
                }
            }
            Answered::Abstained(reason) => abstentions.push(json!({ "step": key, "participant": proposer.name, "reason": reason })),
        }
    }

    let reliability: std::collections::HashMap<String, f64> = if spec.protocol.reliability_weights {
        let names: Vec<String> = spec.participants.iter().map(|participant| participant.name.clone()).collect();
        let records = ctx.reliability("reliability", &names).await?;
        records
            .into_iter()
            .map(|(participant, debates, agreed)| {
                let score = Reliability { participant: participant.clone(), debates, agreed }.score();
                (participant, score)
            })
            .collect()
    } else {
        std::collections::HashMap::new()
    };

    phase(ctx, "vote", 0).await?;
    let prompt = format!(
        "{context}Vote on this proposal: approve or reject, with your confidence and rationale. If you reject it because of a risk that must block it, name that risk.\n\nProposal:\n{proposal}\n{}",
        risk_list("Risks raised", risks.iter())
    );
    let keys: Vec<String> = spec.participants.iter().map(|participant| format!("vote/{}", participant.name)).collect();
    let answers = join_all(spec.participants.iter().zip(&keys).map(|(participant, key)| ask::<Vote>(ctx, key, agent(participant), &prompt, PROMPT_VERSION))).await;
    let mut ballots = Vec::new();
    let mut transcript = Vec::new();
    for ((participant, key), answer) in spec.participants.iter().zip(&keys).zip(answers) {
        let answer = answer?;
        transcript.push(transcript_entry("vote", 0, participant, &answer));
        let (vote, abstained) = match answer {
            Answered::Given(vote) => (Some(vote), None),
            Answered::Abstained(reason) => {
                abstentions.push(json!({ "step": key, "participant": participant.name, "reason": reason }));
                (None, Some(reason))
            }
        };
        // A participant with no record yet starts at one half, like everyone before its first debate.
        let reliability = spec.protocol.reliability_weights.then(|| reliability.get(&participant.name).copied().unwrap_or(0.5));
        ballots.push(Ballot {
            participant: participant.name.clone(),
            weight: participant.weight * reliability.unwrap_or(1.0),
            reliability,
            veto: participant.veto,
            vote,
            abstained,
        });
    }

    ctx.emit_all(transcript).await?;
    let open: Vec<String> = risks
        .iter()
        .filter(|risk| risk.blocking && risk.status != RiskStatus::Mitigated)
        .map(|risk| format!("{} {}", risk.id, risk.description))
        .collect();
    let decision = aggregate::decide(&ballots, &spec.protocol, &open);
    let record: Vec<(String, bool)> = ballots
        .iter()
        .filter_map(|ballot| {
            let matched = decision.outcome.matched_by(ballot.vote.as_ref()?.approve)?;
            Some((ballot.participant.clone(), matched))
        })
        .collect();
    ctx.record_debate_votes("record-votes", &record).await?;
    rounds.push(Round { phase: "vote".into(), cycle: 0, agreement: decision.agreement });
    ctx.emit_all(vec![
        ("debate.phase".to_owned(), json!({ "phase": "aggregation", "cycle": 0 })),
        ("debate.outcome".to_owned(), json!({ "outcome": decision.outcome, "score": decision.score, "majority": decision.majority })),
    ])
    .await?;
    Ok(Report {
        decision,
        original_proposal: original,
        proposal,
        risks,
        votes: ballots,
        rounds,
        mitigation_cycles: cycles,
        cycle_bound_reached: bound_reached,
        abstentions,
        report_artifact: None,
    })
}

/// The context block of every prompt: the spec's context and its artifacts.
async fn context_text(ctx: &RunContext, spec: &DebateSpec) -> Result<String, WorkflowError> {
    let mut text = String::new();
    if !spec.context.trim().is_empty() {
        text.push_str(&format!("Context:\n{}\n\n", spec.context.trim()));
    }
    for (index, artifact) in spec.context_artifacts.iter().enumerate() {
        let reference = ArtifactRef { run_id: artifact.run_id.clone(), name: artifact.name.clone(), version: artifact.version, ..ArtifactRef::default() };
        let (record, content) = ctx.get_artifact(&format!("context/{index}"), reference).await?;
        let content = String::from_utf8_lossy(&content[..content.len().min(MAX_CONTEXT_ARTIFACT_BYTES)]).into_owned();
        text.push_str(&format!("Context artifact `{}` (version {}):\n{content}\n\n", record.name, record.version));
    }
    Ok(text)
}

/// The lines listing risks under a heading, or nothing.
fn risk_list<'a>(heading: &str, risks: impl Iterator<Item = &'a Risk>) -> String {
    let lines: Vec<String> = risks.map(|risk| format!("- {} [{}] {} (raised by {})", risk.id, risk.severity.as_str(), risk.description, risk.raised_by)).collect();
    if lines.is_empty() { String::new() } else { format!("\n{heading}:\n{}\n", lines.join("\n")) }
}

/// A participant as the one asked.
fn agent(participant: &Participant) -> Agent<'_> {
    Agent { role: &participant.role, chain: &participant.chain, instructions: role_instructions(&participant.role) }
}

/// What a role is asked to be.
fn role_instructions(role: &str) -> String {
    let duty = match role {
        "analyst" => "You analyse feasibility, facts and assumptions.",
        "proposer" => "You write the proposal and revise it to handle the risks the panel raises.",
        "critic" => "You look for flaws, gaps and weak reasoning, and say so plainly.",
        "security" => "You look for security, privacy and safety risks.",
        "optimizer" => "You look for ways to make the proposal simpler, cheaper or faster.",
        _ => "You judge the proposal from the point of view of your role.",
    };
    format!("You are the {role} of a review panel. {duty} Answer in JSON only.")
}

/// Records the start of a phase in the transcript.
async fn phase(ctx: &RunContext, phase: &str, cycle: u32) -> Result<(), WorkflowError> {
    ctx.emit("debate.phase", json!({ "phase": phase, "cycle": cycle })).await
}

/// Records an answer (or an abstention) in the transcript.
async fn message<A: Answer>(ctx: &RunContext, phase: &str, cycle: u32, participant: &Participant, answer: &Answered<A>) -> Result<(), WorkflowError> {
    ctx.emit_all(vec![transcript_entry(phase, cycle, participant, answer)]).await
}

/// The transcript event of an answer (or an abstention); a round's entries are written together.
fn transcript_entry<A: Answer>(phase: &str, cycle: u32, participant: &Participant, answer: &Answered<A>) -> (String, Value) {
    let content = match answer {
        Answered::Given(answer) => json!({ "answer": answer }),
        Answered::Abstained(reason) => json!({ "abstained": reason }),
    };
    let mut data = json!({ "phase": phase, "cycle": cycle, "participant": participant.name, "role": participant.role });
    if let (Value::Object(data), Value::Object(content)) = (&mut data, content) {
        data.extend(content);
    }
    ("debate.message".to_owned(), data)
}
