//! What a debate is asked: the proposal or question with its context, the participants (each a
//! named role with a weight and perhaps a veto), and the protocol (how many challenge and
//! mitigation cycles, the thresholds, the quorum, which severities need mitigation). It is the
//! input of a `debate` run, so it is plain JSON, validated when the run is created.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, FieldViolation, Result},
    models::chain_entry_problem,
};

/// The most participants a debate takes.
pub const MAX_PARTICIPANTS: usize = 16;
/// The most mitigation cycles a protocol allows.
pub const MAX_CYCLES: u32 = 10;
/// The longest proposal or context, in bytes.
pub const MAX_TEXT_BYTES: usize = 256 << 10;

/// How serious a risk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth noting.
    Low,
    /// Should be addressed.
    Medium,
    /// Must be addressed before approval, by default.
    High,
    /// Must be addressed before approval.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    /// The name used in answers and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// An artifact the debate reads as context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextArtifact {
    /// The run it belongs to.
    pub run_id: String,
    /// Its name.
    pub name: String,
    /// Its version; 0 or absent for the latest.
    #[serde(default)]
    pub version: u32,
}

/// One voice in the debate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// Its name, unique in the debate (`security`, `critic-2`).
    pub name: String,
    /// Its role: what it is asked to do, and the router chain its calls take (`[router.roles]`).
    pub role: String,
    /// The weight of its vote.
    #[serde(default = "one")]
    pub weight: f64,
    /// Whether its rejection, naming a blocking risk, rejects the proposal outright.
    #[serde(default)]
    pub veto: bool,
    /// Providers its calls try, in order, instead of its role's chain: `provider` or
    /// `provider#alias` (the alias tells participants on one provider apart).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
}

fn one() -> f64 {
    1.0
}

/// How the debate is run and decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Protocol {
    /// Mitigation cycles at most: after that many revisions, the debate goes to the vote with
    /// the risks still open.
    pub max_cycles: u32,
    /// The weighted score at or above which the proposal is approved.
    pub approval_threshold: f64,
    /// The weighted score at or above which it is approved with conditions.
    pub conditional_threshold: f64,
    /// The share of participants whose votes must count (not abstain).
    pub quorum: f64,
    /// Risks of these severities need mitigation before the vote.
    pub mitigation_severities: Vec<Severity>,
    /// Weight each vote by its participant's record in past debates (how often its vote
    /// matched the outcome) instead of by `weight` alone.
    pub reliability_weights: bool,
}

impl Default for Protocol {
    fn default() -> Self {
        Self {
            max_cycles: 2,
            approval_threshold: 0.7,
            conditional_threshold: 0.5,
            quorum: 0.6,
            mitigation_severities: vec![Severity::High, Severity::Critical],
            reliability_weights: false,
        }
    }
}

/// A debate's whole input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebateSpec {
    /// The proposal to decide, or the question to answer with one.
    pub proposal: String,
    /// Background the participants read.
    #[serde(default)]
    pub context: String,
    /// Artifacts the participants read as context.
    #[serde(default)]
    pub context_artifacts: Vec<ContextArtifact>,
    /// The voices; empty means the five-role debate of [`default_participants`].
    #[serde(default)]
    pub participants: Vec<Participant>,
    /// The rules.
    #[serde(default)]
    pub protocol: Protocol,
}

/// The five-role debate: an analyst, a proposer, a critic and a security reviewer (both with a
/// veto), and an optimizer.
pub fn default_participants() -> Vec<Participant> {
    [("analyst", false), ("proposer", false), ("critic", true), ("security", true), ("optimizer", false)]
        .into_iter()
        .map(|(role, veto)| Participant { name: role.to_owned(), role: role.to_owned(), weight: 1.0, veto, chain: Vec::new() })
        .collect()
}

impl DebateSpec {
    /// Reads and validates a debate from a run's input, with every problem named by field.
    pub fn from_input(input: &serde_json::Map<String, serde_json::Value>) -> Result<Self> {
        let spec: DebateSpec = serde_json::from_value(serde_json::Value::Object(input.clone()))
            .map_err(|err| Error::invalid("input", format!("is not a debate: {err}")))?;
        spec.validated()
    }

    /// The spec with defaults filled in, or every violation.
    pub fn validated(mut self) -> Result<Self> {
        if self.participants.is_empty() {
            self.participants = default_participants();
        }
        let mut violations = Vec::new();
        let mut violation = |field: String, description: String| violations.push(FieldViolation { field, description });
        if self.proposal.trim().is_empty() {
            violation("proposal".into(), "is required: the proposal or question to debate".into());
        }
        for (field, text) in [("proposal", &self.proposal), ("context", &self.context)] {
            if text.len() > MAX_TEXT_BYTES {
                violation(field.into(), format!("is {} bytes; at most {MAX_TEXT_BYTES}", text.len()));
            }
        }
        if self.participants.len() > MAX_PARTICIPANTS {
            violation("participants".into(), format!("has {}; a debate takes at most {MAX_PARTICIPANTS}", self.participants.len()));
        }
        let mut names = BTreeSet::new();
        for (index, participant) in self.participants.iter().enumerate() {
            let field = |name: &str| format!("participants[{index}].{name}");
            if !is_identifier(&participant.name) {
                violation(field("name"), "must be 1-63 characters of a-z, 0-9, `_` and `-`".into());
            } else if !names.insert(participant.name.as_str()) {
                violation(field("name"), format!("`{}` is given twice; names are unique", participant.name));
            }
            if !is_identifier(&participant.role) {
                violation(field("role"), "must be 1-63 characters of a-z, 0-9, `_` and `-`".into());
            }
            if !participant.weight.is_finite() || participant.weight <= 0.0 || participant.weight > 100.0 {
                violation(field("weight"), format!("is {}; give a number above 0 and at most 100", participant.weight));
            }
            if let Some(problem) = participant.chain.iter().find_map(|entry| chain_entry_problem(entry)) {
                violation(field("chain"), problem);
            }
        }
        if self.proposer().is_none() && !self.participants.is_empty() {
            violation("participants".into(), "needs a participant to propose: one with role `proposer`, or any one".into());
        }
        let protocol = &self.protocol;
        if protocol.max_cycles > MAX_CYCLES {
            violation("protocol.max_cycles".into(), format!("is {}; at most {MAX_CYCLES}", protocol.max_cycles));
        }
        for (field, value) in [
            ("protocol.approval_threshold", protocol.approval_threshold),
            ("protocol.conditional_threshold", protocol.conditional_threshold),
            ("protocol.quorum", protocol.quorum),
        ] {
            if !(0.0..=1.0).contains(&value) {
                violation(field.into(), format!("is {value}; give a share between 0 and 1"));
            }
        }
        if protocol.conditional_threshold > protocol.approval_threshold {
            violation(
                "protocol.conditional_threshold".into(),
                format!(
                    "is {}, above the approval threshold {}; conditional approval needs a lower bar",
                    protocol.conditional_threshold, protocol.approval_threshold
                ),
            );
        }
        for (index, artifact) in self.context_artifacts.iter().enumerate() {
            if artifact.run_id.is_empty() || artifact.name.is_empty() {
                violation(format!("context_artifacts[{index}]"), "names an artifact by run_id and name".into());
            }
        }
        if violations.is_empty() { Ok(self) } else { Err(Error::InvalidArgument(violations)) }
    }

    /// The participant who writes the proposal and revises it: the first with role
    /// `proposer`, else the first.
    pub fn proposer(&self) -> Option<&Participant> {
        self.participants.iter().find(|participant| participant.role == "proposer").or_else(|| self.participants.first())
    }

    /// Whether a risk of this severity needs mitigation.
    pub fn needs_mitigation(&self, severity: Severity) -> bool {
        self.protocol.mitigation_severities.contains(&severity)
    }
}

fn is_identifier(text: &str) -> bool {
    (1..=63).contains(&text.len()) && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> Result<DebateSpec> {
        let serde_json::Value::Object(map) = value else { panic!("an object") };
        DebateSpec::from_input(&map)
    }

    #[test]
    fn an_empty_panel_is_the_five_role_debate() {
        let spec = spec(json!({ "proposal": "Adopt Postgres" })).unwrap();
        let roles: Vec<&str> = spec.participants.iter().map(|p| p.role.as_str()).collect();
        assert_eq!(roles, ["analyst", "proposer", "critic", "security", "optimizer"]);
        assert_eq!(spec.proposer().unwrap().name, "proposer");
        assert!(spec.participants.iter().filter(|p| p.veto).map(|p| p.name.as_str()).eq(["critic", "security"]));
        assert_eq!(spec.protocol, Protocol::default());
    }

    #[test]
    fn every_bad_field_is_named() {
        let err = spec(json!({
            "proposal": " ",
            "participants": [
                { "name": "a", "role": "critic", "weight": 0 },
                { "name": "a", "role": "Bad Role" }
            ],
            "protocol": { "approval_threshold": 0.4, "conditional_threshold": 0.5, "quorum": 2, "max_cycles": 11 }
        }))
        .unwrap_err();
        let Error::InvalidArgument(violations) = err else { panic!("violations") };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "proposal",
                "participants[0].weight",
                "participants[1].name",
                "participants[1].role",
                "protocol.max_cycles",
                "protocol.quorum",
                "protocol.conditional_threshold"
            ]
        );
        assert!(spec(json!({ "proposal": "x", "surprise": 1 })).is_err(), "unknown fields are refused");
    }
}
