//! A mission's plan: a DAG of steps, each done by one agent role, as the analysis agent answers
//! it, and the checks that make it runnable (known roles, unique ids, dependencies that exist,
//! no cycle, a bounded size). The ready steps of a plan are those whose dependencies are done.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::workflows::structured::Answer;

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStep {
    /// Unique in the plan: 1-63 characters of a-z, 0-9, `_` and `-`.
    pub id: String,
    /// The agent role that does it.
    pub role: String,
    /// What to do.
    pub instructions: String,
    /// Steps whose outputs it needs.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The mission waits for a person's decision before this step.
    #[serde(default)]
    pub needs_approval: bool,
}

/// The plan, as the analysis agent answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The approach in a few sentences.
    #[serde(default)]
    pub summary: String,
    /// The steps.
    pub steps: Vec<PlanStep>,
}

impl Answer for Plan {
    const SHAPE: &'static str = r#"{"summary": "<the approach>", "steps": [{"id": "<short-id>", "role": "<one of the roles>", "instructions": "<what to do>", "depends_on": ["<ids of steps whose outputs it needs>"], "needs_approval": false}]}"#;

    fn problem(&self) -> Option<String> {
        // The roles and the bound are the mission's; `Plan::check` applies them.
        self.steps.is_empty().then(|| "the plan has no steps".to_owned())
    }
}

impl Plan {
    /// What makes the plan unrunnable under these roles and this bound, if anything.
    pub fn check(&self, roles: &BTreeSet<String>, max_steps: usize) -> Option<String> {
        if self.steps.is_empty() {
            return Some("the plan has no steps".into());
        }
        if self.steps.len() > max_steps {
            return Some(format!("the plan has {} steps; at most {max_steps} are allowed", self.steps.len()));
        }
        let mut ids = BTreeSet::new();
        for step in &self.steps {
            let id_ok = (1..=63).contains(&step.id.len())
                && step.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !id_ok {
                return Some(format!("step id `{}` is not 1-63 characters of a-z, 0-9, `_` and `-`", step.id));
            }
            if !ids.insert(step.id.as_str()) {
                return Some(format!("step id `{}` is used twice", step.id));
            }
            if !roles.contains(&step.role) {
                let known: Vec<&str> = roles.iter().map(String::as_str).collect();
                return Some(format!("step `{}` has role `{}`, which is not one of: {}", step.id, step.role, known.join(", ")));
            }
            if step.instructions.trim().is_empty() {
                return Some(format!("step `{}` has no instructions", step.id));
            }
        }
        for step in &self.steps {
            if let Some(missing) = step.depends_on.iter().find(|dependency| !ids.contains(dependency.as_str())) {
                return Some(format!("step `{}` depends on `{missing}`, which is not a step", step.id));
            }
            if step.depends_on.contains(&step.id) {
                return Some(format!("step `{}` depends on itself", step.id));
            }
        }
        if let Some(cycle) = self.cycle() {
            return Some(format!("the steps {} depend on each other in a cycle", cycle.join(", ")));
        }
        None
    }

    /// The steps left in a cycle (Kahn's algorithm), if any.
    fn cycle(&self) -> Option<Vec<String>> {
        let mut waiting: BTreeMap<&str, usize> = self.steps.iter().map(|step| (step.id.as_str(), step.depends_on.len())).collect();
        let mut ready: Vec<&str> = waiting.iter().filter(|(_, count)| **count == 0).map(|(id, _)| *id).collect();
        while let Some(done) = ready.pop() {
            waiting.remove(done);
            for step in self.steps.iter().filter(|step| step.depends_on.iter().any(|dependency| dependency == done)) {
                if let Some(count) = waiting.get_mut(step.id.as_str()) {
                    *count -= 1;
                    if *count == 0 {
                        ready.push(step.id.as_str());
                    }
                }
            }
        }
        (!waiting.is_empty()).then(|| waiting.keys().map(|id| (*id).to_owned()).collect())
    }

    /// The plan as text, for prompts and for the gating debate.
    pub fn describe(&self) -> String {
        let mut text = format!("{}\n", self.summary.trim());
        for step in &self.steps {
            let after = if step.depends_on.is_empty() { String::new() } else { format!(" (after {})", step.depends_on.join(", ")) };
            let approval = if step.needs_approval { " [needs approval]" } else { "" };
            text.push_str(&format!("- {} by {}{after}{approval}: {}\n", step.id, step.role, step.instructions.trim()));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, role: &str, depends_on: &[&str]) -> PlanStep {
        PlanStep {
            id: id.into(),
            role: role.into(),
            instructions: format!("do {id}"),
            depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
            needs_approval: false,
        }
    }

    fn roles() -> BTreeSet<String> {
        ["coder".to_owned(), "writer".to_owned()].into()
    }

    #[test]
    fn a_diamond_is_runnable() {
        let plan = Plan { summary: String::new(), steps: vec![step("a", "coder", &[]), step("b", "coder", &["a"]), step("c", "writer", &["a"]), step("d", "writer", &["b", "c"])] };
        assert_eq!(plan.check(&roles(), 50), None);
    }

    #[test]
    fn unrunnable_plans_say_why() {
        let check = |steps: Vec<PlanStep>, max: usize| Plan { summary: String::new(), steps }.check(&roles(), max).unwrap_or_default();
        assert!(check(vec![step("a", "coder", &["b"]), step("b", "coder", &["a"])], 50).contains("cycle"));
        assert!(check(vec![step("a", "pilot", &[])], 50).contains("not one of: coder, writer"));
        assert!(check(vec![step("a", "coder", &["z"])], 50).contains("`z`, which is not a step"));
        assert!(check(vec![step("a", "coder", &[]), step("a", "coder", &[])], 50).contains("twice"));
        assert!(check(vec![step("a", "coder", &[]), step("b", "coder", &[])], 1).contains("at most 1"));
        assert!(check(vec![step("A b", "coder", &[])], 50).contains("not 1-63"));
        assert!(check(vec![step("a", "coder", &["a"])], 50).contains("itself"));
    }
}
