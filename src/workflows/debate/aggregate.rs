//! Aggregation: the final votes decided into an outcome. A veto (a veto-holding participant
//! rejecting with a blocking risk it names) rejects outright; otherwise, if enough votes count,
//! the weighted confidence score against the thresholds gives approved, conditionally approved
//! or rejected. The plain majority is computed beside it, and the agreement of each round.

use serde::{Deserialize, Serialize};

use super::{answers::Vote, spec::Protocol};

/// How a debate ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The score reached the approval threshold.
    Approved,
    /// The score reached the conditional threshold: approved with conditions.
    ConditionallyApproved,
    /// The score fell short.
    Rejected,
    /// A veto-holding participant rejected it with a blocking risk.
    Vetoed,
    /// Too few votes counted to decide.
    QuorumNotReached,
}

impl Outcome {
    /// Whether a vote matched this outcome: approving one that approved, or rejecting one that
    /// did not; `None` when no decision was reached (quorum missed).
    pub fn matched_by(self, approve: bool) -> Option<bool> {
        match self {
            Self::Approved | Self::ConditionallyApproved => Some(approve),
            Self::Rejected | Self::Vetoed => Some(!approve),
            Self::QuorumNotReached => None,
        }
    }

    /// Every outcome.
    pub const ALL: [Outcome; 5] = [Self::Approved, Self::ConditionallyApproved, Self::Rejected, Self::Vetoed, Self::QuorumNotReached];

    /// The name in outputs and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::ConditionallyApproved => "conditionally_approved",
            Self::Rejected => "rejected",
            Self::Vetoed => "vetoed",
            Self::QuorumNotReached => "quorum_not_reached",
        }
    }

    /// The outcome a name stands for.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|outcome| outcome.as_str() == text)
    }
}

/// The plain majority of the votes that counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Majority {
    /// More approvals than rejections.
    Approved,
    /// More rejections than approvals.
    Rejected,
    /// As many of each.
    Tied,
    /// No vote counted.
    NoVotes,
}

impl Majority {
    /// The name in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Tied => "tied",
            Self::NoVotes => "no_votes",
        }
    }
}

/// One participant's final vote, or its abstention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ballot {
    /// Who.
    pub participant: String,
    /// Its weight: the participant's own, times its reliability when the protocol asks for it.
    pub weight: f64,
    /// Its reliability from past debates, when it weighed the vote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reliability: Option<f64>,
    /// Whether it holds a veto.
    pub veto: bool,
    /// Its vote; `None` when it abstained.
    pub vote: Option<Vote>,
    /// Why it abstained (its answer was unusable twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abstained: Option<String>,
}

/// The decision of the votes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The outcome.
    pub outcome: Outcome,
    /// The weighted score: each counted vote's weight times its confidence if it approves,
    /// over the total weight of the counted votes.
    pub score: f64,
    /// The share of participants whose vote counted.
    pub participation: f64,
    /// The plain majority, beside the weighted outcome.
    pub majority: Majority,
    /// Who vetoed, with the blocking risk they named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vetoed_by: Option<String>,
    /// The vetoing participant's blocking risk and rationale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub veto_reason: Option<String>,
    /// The conditions of a conditional approval: those the approving votes set, and the
    /// blocking risks still open.
    pub conditions: Vec<String>,
    /// The share of counted votes that agree with the majority.
    pub agreement: f64,
}

/// Decides the votes under the protocol; `open_risks` are the blocking risks no mitigation
/// resolved, which become conditions of a conditional approval.
pub fn decide(ballots: &[Ballot], protocol: &Protocol, open_risks: &[String]) -> Decision {
    let counted: Vec<(&Ballot, &Vote)> = ballots.iter().filter_map(|ballot| ballot.vote.as_ref().map(|vote| (ballot, vote))).collect();
    let participation = if ballots.is_empty() { 0.0 } else { counted.len() as f64 / ballots.len() as f64 };
    let approvals = counted.iter().filter(|(_, vote)| vote.approve).count();
    let rejections = counted.len() - approvals;
    let majority = match approvals.cmp(&rejections) {
        _ if counted.is_empty() => Majority::NoVotes,
        std::cmp::Ordering::Greater => Majority::Approved,
        std::cmp::Ordering::Less => Majority::Rejected,
        std::cmp::Ordering::Equal => Majority::Tied,
    };
    let agreement = if counted.is_empty() { 0.0 } else { approvals.max(rejections) as f64 / counted.len() as f64 };
    let total_weight: f64 = counted.iter().map(|(ballot, _)| ballot.weight).sum();
    let approving: f64 = counted.iter().filter(|(_, vote)| vote.approve).map(|(ballot, vote)| ballot.weight * vote.confidence).sum();
    let score = if total_weight > 0.0 { approving / total_weight } else { 0.0 };
    let mut decision = Decision {
        outcome: Outcome::Rejected,
        score,
        participation,
        majority,
        vetoed_by: None,
        veto_reason: None,
        conditions: Vec::new(),
        agreement,
    };

    let veto = counted.iter().find(|(ballot, vote)| {
        ballot.veto && !vote.approve && vote.blocking_risk.as_deref().is_some_and(|risk| !risk.trim().is_empty())
    });
    if let Some((ballot, vote)) = veto {
        decision.outcome = Outcome::Vetoed;
        decision.vetoed_by = Some(ballot.participant.clone());
        decision.veto_reason = Some(format!("{} ({})", vote.blocking_risk.as_deref().unwrap_or_default().trim(), vote.rationale.trim()));
        return decision;
    }
    if counted.is_empty() || participation < protocol.quorum {
        decision.outcome = Outcome::QuorumNotReached;
        return decision;
    }
    decision.outcome = if score >= protocol.approval_threshold {
        Outcome::Approved
    } else if score >= protocol.conditional_threshold {
        Outcome::ConditionallyApproved
    } else {
        Outcome::Rejected
    };
    if decision.outcome == Outcome::ConditionallyApproved {
        let mut conditions: Vec<String> = counted.iter().filter(|(_, vote)| vote.approve).flat_map(|(_, vote)| vote.conditions.iter().cloned()).collect();
        conditions.extend(open_risks.iter().map(|risk| format!("resolve the open risk: {risk}")));
        conditions.dedup();
        decision.conditions = conditions;
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ballot(name: &str, weight: f64, veto: bool, vote: Option<(bool, f64)>) -> Ballot {
        Ballot {
            participant: name.to_owned(),
            weight,
            reliability: None,
            veto,
            vote: vote.map(|(approve, confidence)| Vote {
                approve,
                confidence,
                rationale: format!("{name} says so"),
                conditions: if approve { vec![format!("{name}'s condition")] } else { Vec::new() },
                blocking_risk: None,
            }),
            abstained: vote.is_none().then(|| "unusable twice".to_owned()),
        }
    }

    #[test]
    fn the_weighted_score_decides_against_the_thresholds() {
        let protocol = Protocol::default();
        let strong = [ballot("a", 1.0, false, Some((true, 0.9))), ballot("b", 1.0, false, Some((true, 0.8))), ballot("c", 1.0, false, Some((false, 0.9)))];
        let decision = decide(&strong, &protocol, &[]);
        assert!((decision.score - 1.7 / 3.0).abs() < 1e-9);
        assert_eq!((decision.outcome, decision.majority), (Outcome::ConditionallyApproved, Majority::Approved));
        assert_eq!(decision.conditions, ["a's condition", "b's condition"]);
        // Weight moves the score: the dissenter now carries most of it.
        let weighted = [ballot("a", 1.0, false, Some((true, 0.9))), ballot("b", 1.0, false, Some((true, 0.8))), ballot("c", 4.0, false, Some((false, 0.9)))];
        let decision = decide(&weighted, &protocol, &[]);
        assert_eq!((decision.outcome, decision.majority), (Outcome::Rejected, Majority::Approved), "the majority and the weighted outcome differ");
        let unanimous = [ballot("a", 1.0, false, Some((true, 0.9))), ballot("b", 2.0, false, Some((true, 0.8)))];
        assert_eq!(decide(&unanimous, &protocol, &[]).outcome, Outcome::Approved);
    }

    #[test]
    fn names_in_outputs_match_the_serialized_ones() {
        for majority in [Majority::Approved, Majority::Rejected, Majority::Tied, Majority::NoVotes] {
            assert_eq!(serde_json::to_value(majority).unwrap(), majority.as_str());
        }
        for outcome in Outcome::ALL {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.as_str());
        }
    }

    #[test]
    fn a_veto_needs_a_named_blocking_risk_and_wins_outright() {
        let mut ballots = vec![ballot("a", 1.0, false, Some((true, 1.0))), ballot("b", 1.0, false, Some((true, 1.0))), ballot("security", 1.0, true, Some((false, 0.9)))];
        assert_eq!(decide(&ballots, &Protocol::default(), &[]).outcome, Outcome::ConditionallyApproved, "a rejection without a blocking risk is a vote");
        if let Some(vote) = ballots[2].vote.as_mut() {
            vote.blocking_risk = Some("secrets in logs".into());
        }
        let decision = decide(&ballots, &Protocol::default(), &[]);
        assert_eq!((decision.outcome, decision.vetoed_by.as_deref()), (Outcome::Vetoed, Some("security")));
        assert!(decision.veto_reason.unwrap().contains("secrets in logs"));
        ballots[2].veto = false;
        assert_ne!(decide(&ballots, &Protocol::default(), &[]).outcome, Outcome::Vetoed, "only a veto-holder vetoes");
    }

    #[test]
    fn abstentions_count_against_the_quorum_and_open_risks_become_conditions() {
        let ballots = [ballot("a", 1.0, false, Some((true, 0.6))), ballot("b", 1.0, false, None), ballot("c", 1.0, false, None)];
        let decision = decide(&ballots, &Protocol::default(), &[]);
        assert_eq!(decision.outcome, Outcome::QuorumNotReached);
        assert!((decision.participation - 1.0 / 3.0).abs() < 1e-9);
        let quorate = [ballot("a", 1.0, false, Some((true, 0.6))), ballot("b", 1.0, false, Some((true, 0.6))), ballot("c", 1.0, false, None)];
        let decision = decide(&quorate, &Protocol::default(), &["R2.1 no rollback".to_owned()]);
        assert_eq!(decision.outcome, Outcome::ConditionallyApproved);
        assert!(decision.conditions.contains(&"resolve the open risk: R2.1 no rollback".to_owned()));
        assert_eq!(decide(&[], &Protocol::default(), &[]).majority, Majority::NoVotes);
    }
}
