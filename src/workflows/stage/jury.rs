//! The jury skill: a panel of personas each scores a document, with a rationale, on a stated
//! scale; the mean of the scores given is the metric (`jury_score` unless the step names
//! another) that a `metric_threshold` gate checks. A persona whose two answers are unusable
//! abstains and does not count; a panel where everyone abstains fails the step.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    domain::Scale,
    engine::RunContext,
    models::{ModelRequest, Origin},
    workflows::structured::{self, Answer, Answered},
};

use super::run::StepFailure;

/// The metric a jury reports when its step names none.
pub const DEFAULT_METRIC: &str = "jury_score";
/// The router role jurors speak as.
pub const JURY_ROLE: &str = "jury";

/// A persona on the panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Persona {
    pub name: String,
    #[serde(default)]
    pub instructions: String,
}

/// One juror's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub persona: String,
    pub score: f64,
    pub rationale: String,
}

/// The panel's verdict: each score, who abstained, and the mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub metric: String,
    pub scale: Scale,
    pub scores: Vec<Score>,
    #[serde(default)]
    pub abstained: Vec<String>,
    pub mean: f64,
}

/// What a juror answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JurorAnswer {
    score: f64,
    rationale: String,
}

impl Answer for JurorAnswer {
    const SHAPE: &'static str = r#"{"score": <number on the scale given>, "rationale": "<why, in a few sentences>"}"#;

    fn problem(&self) -> Option<String> {
        if !self.score.is_finite() || self.score < 0.0 {
            return Some(format!("the score {} is not a number on the scale", self.score));
        }
        if self.rationale.trim().is_empty() {
            return Some("the rationale is empty".to_owned());
        }
        None
    }
}

/// The panel a step's params describe: `personas` (names, or objects with `name` and
/// `instructions`), `scale` (`0-1` or `0-100`, the default) and `metric`.
#[derive(Debug)]
pub struct Panel {
    pub personas: Vec<Persona>,
    pub scale: Scale,
    pub metric: String,
}

impl Panel {
    /// Reads a panel from a step's params; the error says what to fix.
    pub fn from_params(params: &Map<String, Value>) -> Result<Self, String> {
        let personas = match params.get("personas") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|item| match item {
                    Value::String(name) if !name.trim().is_empty() => Ok(Persona { name: name.clone(), instructions: String::new() }),
                    Value::Object(_) => serde_json::from_value::<Persona>(item.clone()).map_err(|err| format!("a persona is not {{name, instructions}}: {err}")),
                    _ => Err("each persona is a name or an object with `name` and `instructions`".to_owned()),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err("params.personas must list at least one persona".to_owned()),
        };
        let scale = match params.get("scale") {
            None => Scale::Percent,
            Some(Value::String(text)) => Scale::ALL.into_iter().find(|scale| scale.as_str() == text).ok_or_else(|| format!("params.scale `{text}` is not `0-1` or `0-100`"))?,
            Some(other) => return Err(format!("params.scale must be `0-1` or `0-100`, not {other}")),
        };
        let metric = match params.get("metric") {
            None => DEFAULT_METRIC.to_owned(),
            Some(Value::String(metric)) if !metric.is_empty() => metric.clone(),
            Some(other) => return Err(format!("params.metric must be a metric name, not {other}")),
        };
        Ok(Self { personas, scale, metric })
    }
}

/// Has each persona score the step's `document` input, as journaled model calls under `key`.
pub(super) async fn score(
    ctx: &RunContext,
    key: &str,
    params: &Map<String, Value>,
    inputs: &BTreeMap<String, String>,
    chain: &[String],
    timeout: Duration,
) -> Result<Verdict, StepFailure> {
    let panel = Panel::from_params(params).map_err(StepFailure::Step)?;
    let document = inputs
        .get("document")
        .ok_or_else(|| StepFailure::Step("a jury scores its `document` input, which the step does not map".to_owned()))?;
    let mut scores = Vec::new();
    let mut abstained = Vec::new();
    for (index, persona) in panel.personas.iter().enumerate() {
        let instructions = format!(
            "You are {} on a review panel. {}\nScore the document from 0 to {} ({}), and say why.",
            persona.name,
            persona.instructions,
            panel.scale.max(),
            panel.scale.as_str()
        );
        let mut request = ModelRequest::prompt(format!("The document:\n\n{document}"));
        request.system = Some(instructions);
        request.timeout = timeout;
        request.origin = Origin { role: Some(JURY_ROLE.to_owned()), chain: chain.to_vec(), ..Origin::default() };
        match structured::ask_with::<JurorAnswer>(ctx, &format!("{key}/juror/{}", index + 1), request, "jury-v1").await? {
            Answered::Given(answer) if answer.score <= panel.scale.max() => {
                scores.push(Score { persona: persona.name.clone(), score: answer.score, rationale: answer.rationale })
            }
            Answered::Given(answer) => {
                ctx.log(crate::domain::LogStream::Stderr, &format!("juror {} scored {} on a {} scale: not counted", persona.name, answer.score, panel.scale.as_str())).await;
                abstained.push(persona.name.clone());
            }
            Answered::Abstained(why) => {
                ctx.log(crate::domain::LogStream::Stderr, &format!("juror {} abstained: {why}", persona.name)).await;
                abstained.push(persona.name.clone());
            }
        }
    }
    if scores.is_empty() {
        return Err(StepFailure::Step(format!("every juror abstained ({})", abstained.join(", "))));
    }
    let mean = scores.iter().map(|score| score.score).sum::<f64>() / scores.len() as f64;
    Ok(Verdict { metric: panel.metric, scale: panel.scale, scores, abstained, mean })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_panel_reads_names_objects_scale_and_metric() {
        let panel = Panel::from_params(&params(json!({
            "personas": ["skeptic", {"name": "buyer", "instructions": "You pay for it."}],
            "scale": "0-1",
            "metric": "fit"
        })))
        .unwrap();
        assert_eq!(panel.personas.len(), 2);
        assert_eq!(panel.personas[1].instructions, "You pay for it.");
        assert_eq!(panel.scale, Scale::Unit);
        assert_eq!(panel.metric, "fit");
        let defaults = Panel::from_params(&params(json!({"personas": ["a"]}))).unwrap();
        assert_eq!((defaults.scale, defaults.metric.as_str()), (Scale::Percent, DEFAULT_METRIC));
    }

    #[test]
    fn a_panel_without_personas_or_with_an_unknown_scale_is_refused() {
        assert!(Panel::from_params(&params(json!({}))).unwrap_err().contains("personas"));
        assert!(Panel::from_params(&params(json!({"personas": []}))).unwrap_err().contains("personas"));
        assert!(Panel::from_params(&params(json!({"personas": ["a"], "scale": "1-10"}))).unwrap_err().contains("1-10"));
        assert!(Panel::from_params(&params(json!({"personas": [3]}))).unwrap_err().contains("persona"));
    }
}
