//! The gate at the end of each round, in seed `003`'s order: tests failed, lint failed, (a
//! required gate of the task's own failed, from the shared engine of `workflows::gates`), a
//! review blocker, a review unknown, a review missing, else passed. A failed gate carries the
//! findings that go into the next round.

use serde::{Deserialize, Serialize};

/// A reviewer's verdict on a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    NoBlocker,
    Blocker,
    /// No usable answer, or the reviewer could not tell.
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoBlocker => "no_blocker",
            Self::Blocker => "blocker",
            Self::Unknown => "unknown",
        }
    }
}

/// A reviewer's review of a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub reviewer: String,
    pub verdict: Verdict,
    #[serde(default)]
    pub findings: Vec<String>,
}

/// How a verify command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    Passed,
    Failed,
    TimedOut,
    /// No command was given.
    Skipped,
}

impl CheckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Skipped => "skipped",
        }
    }

    /// Whether the gate counts it as a failure.
    fn failed(self) -> bool {
        matches!(self, Self::Failed | Self::TimedOut)
    }
}

/// A verify command's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub command: String,
    pub outcome: CheckOutcome,
    pub exit_code: i32,
    /// The last lines of its output, for the findings.
    #[serde(default)]
    pub tail: String,
    /// The verify log artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_artifact_id: Option<String>,
}

impl Check {
    /// No command was given.
    pub fn skipped() -> Self {
        Self { command: String::new(), outcome: CheckOutcome::Skipped, exit_code: 0, tail: String::new(), log_artifact_id: None }
    }
}

/// Why a gate failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateFailure {
    TestsFailed,
    LintFailed,
    /// A required gate of the task's `gates` failed.
    GatesFailed,
    ReviewBlocker,
    ReviewUnknown,
    ReviewMissing,
}

impl GateFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TestsFailed => "tests_failed",
            Self::LintFailed => "lint_failed",
            Self::GatesFailed => "gates_failed",
            Self::ReviewBlocker => "review_blocker",
            Self::ReviewUnknown => "review_unknown",
            Self::ReviewMissing => "review_missing",
        }
    }
}

/// A gate's result: passed, or the first failure in the order, with what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<GateFailure>,
    #[serde(default)]
    pub findings: Vec<String>,
}

impl GateResult {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// `passed`, or the failure's name.
    pub fn as_str(&self) -> &'static str {
        self.failure.map_or("passed", GateFailure::as_str)
    }
}

/// Applies the gate to a round: its test and lint checks, the results of the task's own gates,
/// the reviewers expected, the reviews given. A reviewer expected without a review is missing.
pub fn evaluate(tests: &Check, lint: &Check, gates: &[crate::domain::GateResult], reviewers: &[String], reviews: &[Review]) -> GateResult {
    let check_findings = |name: &str, check: &Check| {
        let how = match check.outcome {
            CheckOutcome::TimedOut => "ran past its timeout".to_owned(),
            _ => format!("exited with status {}", check.exit_code),
        };
        let mut findings = vec![format!("the {name} command `{}` {how}", check.command)];
        if !check.tail.is_empty() {
            findings.push(format!("its output ended with:\n{}", check.tail));
        }
        findings
    };
    if tests.outcome.failed() {
        return GateResult { failure: Some(GateFailure::TestsFailed), findings: check_findings("test", tests) };
    }
    if lint.outcome.failed() {
        return GateResult { failure: Some(GateFailure::LintFailed), findings: check_findings("lint", lint) };
    }
    let failed: Vec<String> = gates.iter().filter(|gate| gate.required && !gate.passed).map(|gate| format!("gate `{}`: {}", gate.id, gate.message)).collect();
    if !failed.is_empty() {
        return GateResult { failure: Some(GateFailure::GatesFailed), findings: failed };
    }
    let by = |verdict: Verdict| reviews.iter().filter(move |review| review.verdict == verdict);
    let said = |review: &Review| -> Vec<String> {
        if review.findings.is_empty() {
            return vec![format!("{} gave no findings", review.reviewer)];
        }
        review.findings.iter().map(|finding| format!("{}: {finding}", review.reviewer)).collect()
    };
    if by(Verdict::Blocker).next().is_some() {
        return GateResult { failure: Some(GateFailure::ReviewBlocker), findings: by(Verdict::Blocker).flat_map(said).collect() };
    }
    if by(Verdict::Unknown).next().is_some() {
        return GateResult { failure: Some(GateFailure::ReviewUnknown), findings: by(Verdict::Unknown).flat_map(said).collect() };
    }
    let missing: Vec<String> = reviewers
        .iter()
        .filter(|reviewer| !reviews.iter().any(|review| review.reviewer == **reviewer))
        .map(|reviewer| format!("{reviewer} gave no review"))
        .collect();
    if !missing.is_empty() {
        return GateResult { failure: Some(GateFailure::ReviewMissing), findings: missing };
    }
    GateResult { failure: None, findings: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(outcome: CheckOutcome) -> Check {
        Check { command: "make test".into(), outcome, exit_code: if outcome == CheckOutcome::Failed { 2 } else { 0 }, tail: String::new(), log_artifact_id: None }
    }

    fn review(reviewer: &str, verdict: Verdict) -> Review {
        Review { reviewer: reviewer.into(), verdict, findings: vec![format!("{} says so", verdict.as_str())] }
    }

    fn gate(tests: CheckOutcome, lint: CheckOutcome, reviews: &[Review]) -> Option<GateFailure> {
        evaluate(&check(tests), &check(lint), &[], &["a".to_owned(), "b".to_owned()], reviews).failure
    }

    #[test]
    fn failures_are_taken_in_the_seeds_order() {
        use CheckOutcome::{Failed, Passed, Skipped, TimedOut};
        use GateFailure::*;
        use Verdict::*;
        let blocker_and_unknown = [review("a", Blocker), review("b", Unknown)];
        assert_eq!(gate(Failed, Failed, &blocker_and_unknown), Some(TestsFailed), "tests before everything");
        assert_eq!(gate(TimedOut, Passed, &[]), Some(TestsFailed), "a timeout is a failure");
        assert_eq!(gate(Passed, Failed, &blocker_and_unknown), Some(LintFailed), "lint before the reviews");
        assert_eq!(gate(Skipped, TimedOut, &[]), Some(LintFailed));
        assert_eq!(gate(Passed, Passed, &blocker_and_unknown), Some(ReviewBlocker), "a blocker before an unknown");
        assert_eq!(gate(Passed, Passed, &[review("a", Unknown)]), Some(ReviewUnknown), "an unknown before a missing review");
        assert_eq!(gate(Passed, Skipped, &[review("a", NoBlocker)]), Some(ReviewMissing));
        assert_eq!(gate(Skipped, Skipped, &[review("a", NoBlocker), review("b", NoBlocker)]), None, "skipped checks do not fail");
    }

    #[test]
    fn findings_say_what_to_fix() {
        let mut failing = check(CheckOutcome::Failed);
        failing.tail = "assertion failed: parse(\"1\") == 1".into();
        let result = evaluate(&failing, &Check::skipped(), &[], &["a".to_owned()], &[]);
        assert_eq!(result.as_str(), "tests_failed");
        assert_eq!(result.findings, ["the test command `make test` exited with status 2", "its output ended with:\nassertion failed: parse(\"1\") == 1"]);
        let blocked = evaluate(&Check::skipped(), &Check::skipped(), &[], &["a".to_owned()], &[review("a", Verdict::Blocker)]);
        assert_eq!(blocked.findings, ["a: blocker says so"]);
        let missing = evaluate(&Check::skipped(), &Check::skipped(), &[], &["a".to_owned()], &[]);
        assert_eq!(missing.findings, ["a gave no review"]);
    }

    #[test]
    fn a_failed_required_gate_comes_after_lint_and_before_the_reviews() {
        let gate = |id: &str, required: bool, passed: bool| crate::domain::GateResult {
            id: id.into(),
            name: String::new(),
            gate_type: "file_exists".into(),
            required,
            passed,
            message: format!("{id} says so"),
        };
        let reviewers = ["a".to_owned()];
        let blocker = [review("a", Verdict::Blocker)];
        let gates = [gate("docs", true, false), gate("nice", false, false), gate("ok", true, true)];
        let lint_failed = evaluate(&Check::skipped(), &check(CheckOutcome::Failed), &gates, &reviewers, &blocker);
        assert_eq!(lint_failed.failure, Some(GateFailure::LintFailed));
        let result = evaluate(&Check::skipped(), &Check::skipped(), &gates, &reviewers, &blocker);
        assert_eq!(result.as_str(), "gates_failed");
        assert_eq!(result.findings, ["gate `docs`: docs says so"], "only failed required gates are findings");
        let optional_only = evaluate(&Check::skipped(), &Check::skipped(), &gates[1..], &reviewers, &blocker);
        assert_eq!(optional_only.failure, Some(GateFailure::ReviewBlocker));
    }
}
