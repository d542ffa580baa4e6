//! The `recipe` kind: one run of a stage's recipe for a card. Its input is the recipe as it was
//! when the run was created, with every skill's version snapshotted, so a replay runs exactly
//! what the original ran. A run that waits for approval does so first; then each step renders
//! its skill's template with its mapped inputs, calls the model through the router (a journaled
//! step, with the step's timeout and retries) and stores its outputs as artifacts named by its
//! output mapping; then the gates are checked, each result an event. The report says how it
//! went; the card service applies it to the card.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{jury, template};
use crate::{
    artifacts::{ArtifactRef, UploadHeader},
    domain::{
        ArtifactKind, ArtifactRecord, AutomationLevel, CardId, DecisionOutcome, GateCheck, GateResult, GateSpec, Metric, OnFail, RecipeOutcome, RecipeStep,
        SkillDefinition, SkillId, SkillKind, TrustLevel,
    },
    engine::{RunContext, Workflow, WorkflowError},
    error::{Error, Result},
    models::{ModelRequest, Origin},
    workflows::gates::{self, GateSubject},
};

/// The wait point of a run that needs a person's approval.
pub const APPROVAL_KEY: &str = "approval";
/// The router role recipe steps speak as.
pub const RECIPE_ROLE: &str = "recipe";
/// A step's timeout when its recipe gives none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(300);
/// The event type of a gate's result.
pub const GATE_EVENT: &str = "recipe.gate";
/// The event type of a finished step.
pub const STEP_EVENT: &str = "recipe.step";

/// A step as planned: the recipe's step with its skill's version snapshotted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    #[serde(flatten)]
    pub step: RecipeStep,
    pub version: String,
    pub trust: TrustLevel,
    pub definition: SkillDefinition,
}

/// What a run reads of its card.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CardContext {
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Documents earlier runs produced: artifact name → artifact id.
    #[serde(default)]
    pub documents: BTreeMap<String, String>,
}

/// A recipe run's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipeRunSpec {
    pub card: CardId,
    pub stage: String,
    pub automation: AutomationLevel,
    pub steps: Vec<PlannedStep>,
    #[serde(default)]
    pub gates: Vec<GateSpec>,
    #[serde(default)]
    pub provider: String,
    /// What a failure does to the card.
    #[serde(default)]
    pub on_fail: OnFail,
    pub context: CardContext,
}

impl RecipeRunSpec {
    /// Reads a run's input.
    pub fn from_input(input: &Map<String, Value>) -> Result<Self> {
        serde_json::from_value(Value::Object(input.clone())).map_err(|err| Error::invalid("input", format!("is not a recipe run: {err}")))
    }

    /// The input of a run.
    pub fn to_input(&self) -> Result<Map<String, Value>> {
        match serde_json::to_value(self) {
            Ok(Value::Object(input)) => Ok(input),
            Ok(_) => Err(Error::Internal("a recipe run's input is not an object".into())),
            Err(err) => Err(Error::Internal(format!("a recipe run's input cannot be written: {err}"))),
        }
    }

    /// Refuses what must never run: a skill that is not vetted in a fully automatic run, and
    /// gates that cannot be checked.
    pub fn validate(&self) -> Result<()> {
        let untrusted = self.steps.iter().enumerate().find(|(_, step)| step.trust != TrustLevel::Vetted);
        if let (AutomationLevel::FullyAuto, Some((index, step))) = (self.automation, untrusted) {
            return Err(Error::precondition(
                "UNTRUSTED_SKILL",
                format!(
                    "step {} runs skill `{}`, which is {}: a fully_auto run executes only vetted skills; vet it (SetSkillTrust) or \
                     lower the stage's automation level",
                    index + 1,
                    step.step.skill,
                    step.trust.as_str()
                ),
            ));
        }
        gates::validate_gates(&self.gates)
    }
}

/// How one step went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub skill: SkillId,
    pub version: String,
    pub attempts: u32,
    /// Artifact name → artifact id.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A recipe run's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipeReport {
    pub outcome: RecipeOutcome,
    pub steps: Vec<StepReport>,
    #[serde(default)]
    pub gates: Vec<GateResult>,
    #[serde(default)]
    pub metrics: BTreeMap<String, Metric>,
    /// Every document the run produced, latest version: artifact name → artifact id.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    pub message: String,
}

/// The `recipe` kind.
#[derive(Debug, Default)]
pub struct RecipeRun;

#[async_trait]
impl Workflow for RecipeRun {
    fn validate(&self, input: &Map<String, Value>) -> Result<()> {
        RecipeRunSpec::from_input(input)?.validate()
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let spec = RecipeRunSpec::from_input(ctx.input()).map_err(|err| WorkflowError::invalid_input(err.to_string()))?;
        spec.validate().map_err(|err| WorkflowError::invalid_input(err.to_string()))?;
        let report = carry_out(ctx, &spec).await?;
        serde_json::to_value(&report).map_err(|err| WorkflowError::fatal(format!("the recipe run's report cannot be written: {err}")))
    }
}

/// A document a step stored.
struct Output {
    record: ArtifactRecord,
    content: String,
    labels: BTreeMap<String, String>,
}

/// What the run has produced so far.
#[derive(Default)]
struct Produced {
    /// Artifact name → its record, content and labels.
    documents: BTreeMap<String, Output>,
    metrics: BTreeMap<String, Metric>,
}

async fn carry_out(ctx: &RunContext, spec: &RecipeRunSpec) -> Result<RecipeReport, WorkflowError> {
    if spec.automation == AutomationLevel::HumanApproval {
        let prompt = format!("Approve the `{}` recipe run for card `{}` ({} steps)?", spec.stage, spec.context.title, spec.steps.len());
        let decision = ctx.wait_for_decision(APPROVAL_KEY, &prompt).await?;
        if !matches!(decision.outcome, DecisionOutcome::Approve) {
            let note = if decision.note.is_empty() { String::new() } else { format!(": {}", decision.note) };
            return Ok(RecipeReport {
                outcome: RecipeOutcome::Rejected,
                steps: Vec::new(),
                gates: Vec::new(),
                metrics: BTreeMap::new(),
                outputs: BTreeMap::new(),
                message: format!("rejected{note}"),
            });
        }
    }
    let mut produced = Produced::default();
    let mut steps = Vec::new();
    for (index, planned) in spec.steps.iter().enumerate() {
        let report = run_step(ctx, spec, index, planned, &mut produced).await?;
        let failed = report.error.clone();
        let said = json!({ "step": index + 1, "skill": report.skill, "attempts": report.attempts, "outputs": report.outputs, "error": report.error });
        ctx.emit_once(&format!("step/{}/said", index + 1), STEP_EVENT, said).await?;
        steps.push(report);
        if let Some(error) = failed {
            let outputs = outputs_of(&produced);
            return Ok(RecipeReport {
                outcome: RecipeOutcome::Failed,
                steps,
                gates: Vec::new(),
                metrics: produced.metrics,
                outputs,
                message: format!("step {} (`{}`) failed: {error}", index + 1, planned.step.skill),
            });
        }
    }
    let results = check_gates(ctx, spec, &produced).await?;
    let verdict = gates::verdict(&results);
    let (outcome, message) = if verdict.passed {
        (RecipeOutcome::Passed, format!("{} steps ran; every required gate passed", steps.len()))
    } else {
        (RecipeOutcome::FailedGates, format!("required gates failed: {}", verdict.failed_required.join(", ")))
    };
    let outputs = outputs_of(&produced);
    Ok(RecipeReport { outcome, steps, gates: results, metrics: produced.metrics, outputs, message })
}

fn outputs_of(produced: &Produced) -> BTreeMap<String, String> {
    produced.documents.iter().map(|(name, output)| (name.clone(), output.record.id.clone())).collect()
}

/// Runs a step with its retries; a failure after the last attempt is reported, not raised.
async fn run_step(ctx: &RunContext, spec: &RecipeRunSpec, index: usize, planned: &PlannedStep, produced: &mut Produced) -> Result<StepReport, WorkflowError> {
    let number = index + 1;
    let timeout = match planned.step.timeout_seconds {
        0 => DEFAULT_STEP_TIMEOUT,
        seconds => Duration::from_secs(u64::from(seconds)),
    };
    let inputs = resolve_inputs(ctx, spec, number, planned, produced).await;
    let mut report = StepReport { skill: planned.step.skill.clone(), version: planned.version.clone(), attempts: 0, outputs: BTreeMap::new(), error: None };
    let inputs = match inputs {
        Ok(inputs) => inputs,
        Err(StepFailure::Workflow(err)) => return Err(err),
        Err(StepFailure::Step(message)) => {
            report.error = Some(message);
            return Ok(report);
        }
    };
    for attempt in 1..=planned.step.retries.saturating_add(1) {
        report.attempts = attempt;
        let key = format!("step/{number}/attempt/{attempt}");
        let answer = tokio::time::timeout(timeout, attempt_step(ctx, spec, &key, planned, &inputs, timeout)).await;
        let failure = match answer {
            Ok(Ok(StepOutput { documents, metric })) => {
                for (name, content) in documents {
                    let labels = output_labels(spec, planned);
                    let record = store_output(ctx, &format!("{key}/output/{name}"), planned, &name, &content, labels.clone()).await?;
                    report.outputs.insert(name.clone(), record.id.clone());
                    produced.documents.insert(name, Output { record, content, labels });
                }
                if let Some((name, metric)) = metric {
                    produced.metrics.insert(name, metric);
                }
                report.error = None;
                return Ok(report);
            }
            Ok(Err(StepFailure::Workflow(err))) => return Err(err),
            Ok(Err(StepFailure::Step(message))) => message,
            Err(_) => format!("attempt {attempt} took longer than its timeout of {}s", timeout.as_secs()),
        };
        ctx.log(crate::domain::LogStream::Stderr, &format!("step {number} (`{}`), attempt {attempt}: {failure}", planned.step.skill)).await;
        report.error = Some(failure);
    }
    Ok(report)
}

/// Why a step's attempt did not give its outputs.
pub(super) enum StepFailure {
    /// The run must stop (cancelled, suspended, lease lost, storage).
    Workflow(WorkflowError),
    /// The step failed; another attempt may do better.
    Step(String),
}

impl From<WorkflowError> for StepFailure {
    fn from(err: WorkflowError) -> Self {
        match err {
            WorkflowError::Failed { message, .. } => Self::Step(message),
            other => Self::Workflow(other),
        }
    }
}

/// What a step made: documents by artifact name, and perhaps a metric.
struct StepOutput {
    documents: Vec<(String, String)>,
    metric: Option<(String, Metric)>,
}

/// The values of a step's inputs, from its mapping.
async fn resolve_inputs(
    ctx: &RunContext,
    spec: &RecipeRunSpec,
    number: usize,
    planned: &PlannedStep,
    produced: &Produced,
) -> Result<BTreeMap<String, String>, StepFailure> {
    let mut values = BTreeMap::new();
    for (input, source) in &planned.step.inputs {
        let value = if let Some(literal) = source.strip_prefix("text:") {
            literal.to_owned()
        } else if source == "card.title" {
            spec.context.title.clone()
        } else if source == "card.description" {
            spec.context.description.clone()
        } else if let Some(key) = source.strip_prefix("card.inputs.") {
            spec.context.inputs.get(key).cloned().ok_or_else(|| StepFailure::Step(format!("input `{input}` maps card input `{key}`, which the card does not have")))?
        } else if let Some(name) = source.strip_prefix("artifact.") {
            if let Some(output) = produced.documents.get(name) {
                output.content.clone()
            } else if let Some(id) = spec.context.documents.get(name) {
                let reference = ArtifactRef { id: id.clone(), ..ArtifactRef::default() };
                let (_, content) = ctx.get_artifact(&format!("step/{number}/read/{name}"), reference).await?;
                String::from_utf8_lossy(&content).into_owned()
            } else {
                return Err(StepFailure::Step(format!("input `{input}` maps artifact `{name}`, which neither this run nor the card has produced")));
            }
        } else {
            return Err(StepFailure::Step(format!("input `{input}` has a source `{source}` this version does not know")));
        };
        values.insert(input.clone(), value);
    }
    if let Some(missing) = planned.definition.inputs.iter().find(|field| field.required && !values.contains_key(&field.name)) {
        return Err(StepFailure::Step(format!("required input `{}` has no mapping", missing.name)));
    }
    Ok(values)
}

/// One attempt of a step.
async fn attempt_step(
    ctx: &RunContext,
    spec: &RecipeRunSpec,
    key: &str,
    planned: &PlannedStep,
    inputs: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<StepOutput, StepFailure> {
    let chain: Vec<String> = if spec.provider.is_empty() { Vec::new() } else { vec![spec.provider.clone()] };
    match planned.definition.kind {
        SkillKind::Jury => {
            let verdict = jury::score(ctx, key, &planned.step.params, inputs, &chain, timeout).await?;
            let name = planned.step.outputs.values().next().cloned().unwrap_or_else(|| "jury.json".to_owned());
            let content = serde_json::to_string_pretty(&verdict).map_err(|err| StepFailure::Step(format!("the jury's verdict cannot be written: {err}")))?;
            Ok(StepOutput { documents: vec![(name, content)], metric: Some((verdict.metric.clone(), Metric { value: verdict.mean, scale: verdict.scale })) })
        }
        SkillKind::Prompt => {
            let mut prompt = template::render(&planned.definition.prompt_template, inputs, &planned.step.params).map_err(StepFailure::Step)?;
            let outputs: Vec<(&String, &String)> = planned.step.outputs.iter().collect();
            if outputs.len() > 1 {
                let keys = outputs.iter().map(|(output, _)| format!("\"{output}\"")).collect::<Vec<_>>().join(", ");
                prompt.push_str(&format!(
                    "\n\nAnswer with only a JSON object with the keys {keys}, each value the text of that output."
                ));
            }
            let mut request = ModelRequest::prompt(prompt);
            request.system = Some(format!("You carry out the skill `{}`: {}", planned.definition.name, planned.definition.description));
            request.timeout = timeout;
            request.origin = Origin { role: Some(RECIPE_ROLE.to_owned()), chain, ..Origin::default() };
            let call = ctx.generate(key, request, Some(&planned.version)).await?;
            let documents = match outputs.as_slice() {
                [] => vec![(format!("{}.md", planned.step.skill), call.text)],
                [(_, name)] => vec![((*name).clone(), call.text)],
                many => split_outputs(&call.text, many)?,
            };
            Ok(StepOutput { documents, metric: None })
        }
    }
}

/// The outputs of an answer asked for as a JSON object.
fn split_outputs(text: &str, outputs: &[(&String, &String)]) -> Result<Vec<(String, String)>, StepFailure> {
    let object = text
        .find('{')
        .zip(text.rfind('}'))
        .filter(|(start, end)| start < end)
        .and_then(|(start, end)| serde_json::from_str::<Map<String, Value>>(&text[start..=end]).ok())
        .ok_or_else(|| StepFailure::Step("the answer is not the JSON object of outputs asked for".to_owned()))?;
    outputs
        .iter()
        .map(|(output, name)| match object.get(output.as_str()) {
            Some(Value::String(content)) => Ok(((*name).clone(), content.clone())),
            Some(other) => Ok(((*name).clone(), other.to_string())),
            None => Err(StepFailure::Step(format!("the answer has no output `{output}`"))),
        })
        .collect()
}

/// The labels of a step's outputs: its card, stage and skill.
fn output_labels(spec: &RecipeRunSpec, planned: &PlannedStep) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("card".to_owned(), spec.card.to_string()),
        ("stage".to_owned(), spec.stage.clone()),
        ("skill".to_owned(), planned.step.skill.to_string()),
    ])
}

/// Stores an output as an artifact of the run.
async fn store_output(
    ctx: &RunContext,
    key: &str,
    planned: &PlannedStep,
    name: &str,
    content: &str,
    labels: BTreeMap<String, String>,
) -> Result<ArtifactRecord, WorkflowError> {
    let media_type = match Path::new(name).extension().and_then(|ext| ext.to_str()) {
        Some("md") => "text/markdown",
        Some("json") => "application/json",
        _ => "text/plain",
    };
    let header = UploadHeader {
        name: name.to_owned(),
        kind: ArtifactKind::Document,
        media_type: media_type.to_owned(),
        labels,
        producer: crate::domain::Producer {
            tool: Some(format!("skill:{}", planned.step.skill)),
            tool_version: Some(planned.version.clone()),
            ..Default::default()
        },
        ..UploadHeader::default()
    };
    ctx.put_artifact(key, header, content.as_bytes()).await
}

/// Checks the gates (a journaled step: a command gate runs once) and emits each result.
async fn check_gates(ctx: &RunContext, spec: &RecipeRunSpec, produced: &Produced) -> Result<Vec<GateResult>, WorkflowError> {
    if spec.gates.is_empty() {
        return Ok(Vec::new());
    }
    let results: Vec<GateResult> = ctx
        .step("gates", || async {
            // Only command gates need the outputs as files.
            let needs_files = spec.gates.iter().any(|gate| matches!(gate.check, GateCheck::Command { .. }));
            let subject = RunOutputs::new(produced, needs_files)
                .map_err(|err| WorkflowError::retryable(format!("the outputs cannot be laid out for the gates: {err}")))?;
            gates::evaluate_in_run(ctx, &spec.gates, &subject).await
        })
        .await?;
    for result in &results {
        ctx.emit_once(&format!("gates/{}/said", result.id), GATE_EVENT, json!(result)).await?;
    }
    Ok(results)
}

/// A run's outputs as the gates see them: its documents, and, when command gates need them, a
/// directory holding them as files.
struct RunOutputs<'a> {
    produced: &'a Produced,
    dir: Option<tempfile::TempDir>,
}

impl<'a> RunOutputs<'a> {
    fn new(produced: &'a Produced, with_files: bool) -> std::io::Result<Self> {
        if !with_files {
            return Ok(Self { produced, dir: None });
        }
        let dir = tempfile::Builder::new().prefix("conclave-gates-").tempdir()?;
        for (name, Output { content, .. }) in &produced.documents {
            let path = safe_join(dir.path(), name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, content)?;
        }
        Ok(Self { produced, dir: Some(dir) })
    }
}

/// `name` under `root`, with any part that would leave it dropped.
fn safe_join(root: &Path, name: &str) -> PathBuf {
    name.split('/').filter(|part| !part.is_empty() && *part != "." && *part != "..").fold(root.to_path_buf(), |path, part| path.join(part))
}

#[async_trait]
impl GateSubject for RunOutputs<'_> {
    async fn output_names(&self) -> Result<Vec<String>> {
        Ok(self.produced.documents.keys().cloned().collect())
    }

    async fn read_output(&self, name: &str) -> Result<Option<String>> {
        Ok(self.produced.documents.get(name).map(|output| output.content.clone()))
    }

    async fn has_artifact(&self, kind: Option<ArtifactKind>, label: Option<(&str, Option<&str>)>) -> Result<bool> {
        // Every output is a document.
        if kind.is_some_and(|kind| kind != ArtifactKind::Document) {
            return Ok(false);
        }
        Ok(self.produced.documents.values().any(|output| {
            label.is_none_or(|(key, value)| output.labels.get(key).is_some_and(|found| value.is_none_or(|value| found == value)))
        }))
    }

    fn metric(&self, name: &str) -> Option<Metric> {
        self.produced.metrics.get(name).copied()
    }

    fn workdir(&self) -> Option<&Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }
}
