//! What a mission is asked: the request in natural language, the agent roles its plan may use,
//! its limits, and the debate that gates its plan. It is the input of a `mission` run, plain
//! JSON validated when the run is created.

use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, FieldViolation, Result},
    models::chain_entry_problem,
    workflows::debate::spec::{DebateSpec, Participant, Protocol},
};

/// The longest request, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 << 10;
/// The most steps a plan may have.
pub const MAX_STEPS: u32 = 200;

/// An agent role a plan may give steps to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRole {
    /// Its name; its calls take the router's chain for this role.
    pub name: String,
    /// What it is good at, for the planner.
    #[serde(default)]
    pub description: String,
    /// Providers its calls try, in order, instead of the router's chain for the role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
}

/// How far a mission may go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Steps running at once at most.
    pub parallelism: u32,
    /// Model calls the mission may make in all (planning, the gate, the steps, validation).
    pub max_model_calls: u32,
    /// Steps a plan may have.
    pub max_steps: u32,
    /// Times the validation may send failed steps back to be done again.
    pub max_revisions: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { parallelism: 4, max_model_calls: 500, max_steps: 50, max_revisions: 1 }
    }
}

/// The debate that gates the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gate {
    /// Skip the gate: the plan runs as planned.
    pub skip: bool,
    /// The panel; empty means the five-role debate.
    pub participants: Vec<Participant>,
    /// Its rules.
    pub protocol: Protocol,
}

impl Default for Gate {
    fn default() -> Self {
        Self { skip: false, participants: Vec::new(), protocol: Protocol { max_cycles: 1, ..Protocol::default() } }
    }
}

/// A mission's whole input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissionSpec {
    /// What the mission is to achieve.
    pub request: String,
    /// The roles its steps may be given to; empty means researcher, coder, writer, reviewer.
    #[serde(default)]
    pub roles: Vec<AgentRole>,
    /// Its limits.
    #[serde(default)]
    pub limits: Limits,
    /// The debate gating its plan.
    #[serde(default)]
    pub gate: Gate,
    /// Read the memory of related past missions before planning, and leave its own after.
    #[serde(default = "yes")]
    pub memory: bool,
}

fn yes() -> bool {
    true
}

/// The roles of a mission that names none.
pub fn default_roles() -> Vec<AgentRole> {
    [
        ("researcher", "finds and summarises what is known"),
        ("coder", "writes and changes code"),
        ("writer", "writes documents and explanations"),
        ("reviewer", "checks work for mistakes"),
    ]
    .into_iter()
    .map(|(name, description)| AgentRole { name: name.to_owned(), description: description.to_owned(), chain: Vec::new() })
    .collect()
}

impl MissionSpec {
    /// Reads and validates a mission from a run's input.
    pub fn from_input(input: &serde_json::Map<String, serde_json::Value>) -> Result<Self> {
        let spec: MissionSpec = serde_json::from_value(serde_json::Value::Object(input.clone()))
            .map_err(|err| Error::invalid("input", format!("is not a mission: {err}")))?;
        spec.validated()
    }

    /// The spec with defaults filled in, or every violation.
    pub fn validated(mut self) -> Result<Self> {
        if self.roles.is_empty() {
            self.roles = default_roles();
        }
        let mut violations = Vec::new();
        let mut violation = |field: String, description: String| violations.push(FieldViolation { field, description });
        if self.request.trim().is_empty() {
            violation("request".into(), "is required: what the mission is to achieve".into());
        } else if self.request.len() > MAX_REQUEST_BYTES {
            violation("request".into(), format!("is {} bytes; at most {MAX_REQUEST_BYTES}", self.request.len()));
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, role) in self.roles.iter().enumerate() {
            let name_ok = (1..=63).contains(&role.name.len())
                && role.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !name_ok {
                violation(format!("roles[{index}].name"), "must be 1-63 characters of a-z, 0-9, `_` and `-`".into());
            } else if !names.insert(role.name.as_str()) {
                violation(format!("roles[{index}].name"), format!("`{}` is given twice", role.name));
            }
            if let Some(problem) = role.chain.iter().find_map(|entry| chain_entry_problem(entry)) {
                violation(format!("roles[{index}].chain"), problem);
            }
        }
        let limits = &self.limits;
        if !(1..=64).contains(&limits.parallelism) {
            violation("limits.parallelism".into(), format!("is {}; give 1 to 64", limits.parallelism));
        }
        if !(1..=MAX_STEPS).contains(&limits.max_steps) {
            violation("limits.max_steps".into(), format!("is {}; give 1 to {MAX_STEPS}", limits.max_steps));
        }
        if limits.max_model_calls < 3 {
            violation("limits.max_model_calls".into(), "must allow at least a plan, a step and a validation (3)".into());
        }
        if limits.max_revisions > 5 {
            violation("limits.max_revisions".into(), format!("is {}; at most 5", limits.max_revisions));
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        if !self.gate.skip
            && let Err(Error::InvalidArgument(found)) = self.gate_spec("the plan".to_owned())
        {
            let found = found.into_iter().map(|violation| FieldViolation { field: format!("gate.{}", violation.field), ..violation });
            return Err(Error::InvalidArgument(found.collect()));
        }
        Ok(self)
    }

    /// The gating debate's spec for a plan.
    pub fn gate_spec(&self, plan: String) -> Result<DebateSpec> {
        DebateSpec {
            proposal: plan,
            context: format!("The plan answers this request: {}", self.request),
            context_artifacts: Vec::new(),
            participants: self.gate.participants.clone(),
            protocol: self.gate.protocol.clone(),
        }
        .validated()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> Result<MissionSpec> {
        let serde_json::Value::Object(map) = value else { panic!("an object") };
        MissionSpec::from_input(&map)
    }

    #[test]
    fn defaults_fill_in_roles_limits_and_the_gate() {
        let spec = spec(json!({ "request": "Write the release notes" })).unwrap();
        assert_eq!(spec.roles.len(), 4);
        assert_eq!(spec.limits, Limits::default());
        assert!(!spec.gate.skip && spec.memory);
    }

    #[test]
    fn every_bad_field_is_named() {
        let Err(Error::InvalidArgument(violations)) = spec(json!({
            "request": "",
            "roles": [{ "name": "Bad" }],
            "limits": { "parallelism": 0, "max_steps": 1000, "max_model_calls": 1 },
            "gate": { "participants": [{ "name": "x", "role": "critic", "weight": -1 }] }
        })) else {
            panic!("violations")
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["request", "roles[0].name", "limits.parallelism", "limits.max_steps", "limits.max_model_calls"]);
        let Err(Error::InvalidArgument(violations)) = spec(json!({
            "request": "x",
            "gate": { "participants": [{ "name": "x", "role": "critic", "weight": -1 }] }
        })) else {
            panic!("violations")
        };
        assert_eq!(violations[0].field, "gate.participants[0].weight");
    }
}
