//! The structured answers each phase of a debate asks for: their JSON shape (stated in the
//! prompt) and what makes one unusable (see `workflows::structured`).

use serde::{Deserialize, Serialize};

use super::spec::Severity;
use crate::workflows::structured::Answer;

/// Opening: the proposal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Opening {
    /// The proposal, complete enough to be judged.
    pub proposal: String,
    /// Why it is proposed.
    #[serde(default)]
    pub rationale: String,
}

impl Answer for Opening {
    const SHAPE: &'static str = r#"{"proposal": "<the complete proposal>", "rationale": "<why>"}"#;

    fn problem(&self) -> Option<String> {
        self.proposal.trim().is_empty().then(|| "`proposal` is empty".to_owned())
    }
}

/// A risk as a challenger names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskAnswer {
    /// What could go wrong.
    pub description: String,
    /// How bad it would be.
    pub severity: Severity,
}

/// Challenge: risks and critique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    /// The risks found; none if the proposal is sound.
    #[serde(default)]
    pub risks: Vec<RiskAnswer>,
    /// The critique.
    pub critique: String,
    /// Confidence in the critique, 0 to 1.
    pub confidence: f64,
}

impl Answer for Challenge {
    const SHAPE: &'static str = r#"{"risks": [{"description": "<what could go wrong>", "severity": "low|medium|high|critical"}], "critique": "<your critique>", "confidence": <0 to 1>}"#;

    fn problem(&self) -> Option<String> {
        if let Some(problem) = confidence_problem(self.confidence) {
            return Some(problem);
        }
        self.risks.iter().any(|risk| risk.description.trim().is_empty()).then(|| "a risk has an empty `description`".to_owned())
    }
}

/// How a revision handles one risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// The risk's id, as the prompt listed it.
    pub risk_id: String,
    /// What the revision does about it.
    pub resolution: String,
}

/// Mitigation: the proposal revised against the open risks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mitigation {
    /// The whole revised proposal.
    pub revised_proposal: String,
    /// How each risk is handled.
    #[serde(default)]
    pub resolutions: Vec<Resolution>,
}

impl Answer for Mitigation {
    const SHAPE: &'static str =
        r#"{"revised_proposal": "<the complete revised proposal>", "resolutions": [{"risk_id": "<id>", "resolution": "<how it is handled>"}]}"#;

    fn problem(&self) -> Option<String> {
        self.revised_proposal.trim().is_empty().then(|| "`revised_proposal` is empty".to_owned())
    }
}

/// Final vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vote {
    /// For or against.
    pub approve: bool,
    /// Confidence in the vote, 0 to 1.
    pub confidence: f64,
    /// Why.
    pub rationale: String,
    /// Conditions an approval depends on.
    #[serde(default)]
    pub conditions: Vec<String>,
    /// With a rejection: the blocking risk that makes it a veto, for a participant who holds one.
    #[serde(default)]
    pub blocking_risk: Option<String>,
}

impl Answer for Vote {
    const SHAPE: &'static str = r#"{"approve": true|false, "confidence": <0 to 1>, "rationale": "<why>", "conditions": ["<condition of approval>"], "blocking_risk": "<with a rejection: the risk that blocks it, or null>"}"#;

    fn problem(&self) -> Option<String> {
        if let Some(problem) = confidence_problem(self.confidence) {
            return Some(problem);
        }
        self.rationale.trim().is_empty().then(|| "`rationale` is empty".to_owned())
    }
}

fn confidence_problem(confidence: f64) -> Option<String> {
    (!(0.0..=1.0).contains(&confidence)).then(|| format!("`confidence` is {confidence}; give a number from 0 to 1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflows::structured::parse;

    #[test]
    fn answers_are_read_from_bare_or_fenced_json() {
        let vote: Vote = parse(r#"{"approve": true, "confidence": 0.8, "rationale": "fine"}"#).unwrap();
        assert!(vote.approve && vote.blocking_risk.is_none());
        let fenced = "Here it is:\n```json\n{\"risks\": [{\"description\": \"no backups\", \"severity\": \"high\"}], \"critique\": \"c\", \"confidence\": 0.6}\n```";
        let challenge: Challenge = parse(fenced).unwrap();
        assert_eq!(challenge.risks[0].severity, Severity::High);
    }

    #[test]
    fn unusable_answers_say_what_to_fix() {
        assert!(parse::<Vote>("I approve!").unwrap_err().contains("no JSON object"));
        assert!(parse::<Vote>(r#"{"approve": "yes", "confidence": 1, "rationale": "x"}"#).unwrap_err().contains("shape"));
        assert!(parse::<Vote>(r#"{"approve": true, "confidence": 7, "rationale": "x"}"#).unwrap_err().contains("confidence"));
        assert!(parse::<Challenge>(r#"{"risks": [{"description": "x", "severity": "dire"}], "critique": "c", "confidence": 1}"#).is_err());
        assert!(parse::<Opening>(r#"{"proposal": "  "}"#).unwrap_err().contains("proposal"));
    }
}
