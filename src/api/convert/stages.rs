//! Conversions of `stages.proto`: skills, recipes, gates and cards.

use std::collections::BTreeMap;

use super::{artifact_kind, from_artifact_kind, json_to_struct, struct_to_json, timestamp};
use crate::{
    domain::{
        ArtifactKindName, AutomationLevel, Card, CardEvent, CardEventKind, CardRun, Comparison, GateCheck, GateResult, GateSpec, Metric, OnFail,
        Recipe, RecipeOutcome, RecipeStep, Scale, Skill, SkillField, SkillKind, SkillSource, Timestamp, TrustLevel, WorkspaceId,
    },
    error::{Error, Result},
    proto,
    workflows::stage::{
        recipe::{RecipeFields, SkillStatus, Validation},
        RegistryListing, SkillFileError, SyncReport,
    },
};

pub fn trust_level(trust: TrustLevel) -> proto::TrustLevel {
    match trust {
        TrustLevel::Vetted => proto::TrustLevel::Vetted,
        TrustLevel::Community => proto::TrustLevel::Community,
        TrustLevel::Experimental => proto::TrustLevel::Experimental,
    }
}

/// A trust level given in a request; unspecified is `None`.
pub fn from_trust_level(value: i32, field: &str) -> Result<Option<TrustLevel>> {
    let level = proto::TrustLevel::try_from(value).map_err(|_| Error::invalid(field, format!("{value} is not a TrustLevel")))?;
    Ok(TrustLevel::ALL.into_iter().find(|candidate| trust_level(*candidate) == level))
}

pub fn automation_level(level: AutomationLevel) -> proto::AutomationLevel {
    match level {
        AutomationLevel::FullyAuto => proto::AutomationLevel::FullyAuto,
        AutomationLevel::AutoNotify => proto::AutomationLevel::AutoNotify,
        AutomationLevel::HumanApproval => proto::AutomationLevel::HumanApproval,
        AutomationLevel::Manual => proto::AutomationLevel::Manual,
    }
}

fn from_automation_level(value: i32, field: &str) -> Result<Option<AutomationLevel>> {
    let level = proto::AutomationLevel::try_from(value).map_err(|_| Error::invalid(field, format!("{value} is not an AutomationLevel")))?;
    Ok(AutomationLevel::ALL.into_iter().find(|candidate| automation_level(*candidate) == level))
}

fn on_fail(on_fail: OnFail) -> proto::OnFail {
    match on_fail {
        OnFail::Stay => proto::OnFail::Stay,
        OnFail::Revert => proto::OnFail::Revert,
        OnFail::CreateQuestions => proto::OnFail::CreateQuestions,
        OnFail::ReviewRequired => proto::OnFail::ReviewRequired,
    }
}

fn from_on_fail(value: i32, field: &str) -> Result<Option<OnFail>> {
    let found = proto::OnFail::try_from(value).map_err(|_| Error::invalid(field, format!("{value} is not an OnFail")))?;
    Ok(OnFail::ALL.into_iter().find(|candidate| on_fail(*candidate) == found))
}

fn comparison(comparison: Comparison) -> proto::Comparison {
    match comparison {
        Comparison::AtLeast => proto::Comparison::AtLeast,
        Comparison::Above => proto::Comparison::Above,
        Comparison::AtMost => proto::Comparison::AtMost,
        Comparison::Below => proto::Comparison::Below,
        Comparison::Equal => proto::Comparison::Equal,
    }
}

fn from_comparison(value: i32, field: &str) -> Result<Comparison> {
    let found = proto::Comparison::try_from(value).map_err(|_| Error::invalid(field, format!("{value} is not a Comparison")))?;
    Comparison::ALL
        .into_iter()
        .find(|candidate| comparison(*candidate) == found)
        .ok_or_else(|| Error::invalid(field, "is required: at_least, above, at_most, below or equal"))
}

fn scale(scale: Scale) -> proto::Scale {
    match scale {
        Scale::Unit => proto::Scale::Unit,
        Scale::Percent => proto::Scale::Percent,
    }
}

fn from_scale(value: i32, field: &str) -> Result<Scale> {
    let found = proto::Scale::try_from(value).map_err(|_| Error::invalid(field, format!("{value} is not a Scale")))?;
    Scale::ALL
        .into_iter()
        .find(|candidate| scale(*candidate) == found)
        .ok_or_else(|| Error::invalid(field, "is required: state the threshold's scale, SCALE_UNIT (0-1) or SCALE_PERCENT (0-100)"))
}

fn skill_field(field: &SkillField) -> proto::SkillField {
    proto::SkillField { name: field.name.clone(), r#type: field.type_name.clone(), required: field.required, description: field.description.clone() }
}

/// A skill as `GetSkill` shows it: the version recipes use, and every version it has had.
pub fn skill(skill: &Skill) -> proto::Skill {
    let effective = skill.effective().or_else(|| skill.latest());
    let definition = effective.map(|version| &version.definition);
    let (source, source_location, remote_id) = match &skill.source {
        SkillSource::Local { path } => ("local", path.clone(), String::new()),
        SkillSource::Registry { url, remote_id } => ("registry", url.clone(), remote_id.clone()),
    };
    proto::Skill {
        workspace: skill.workspace.to_string(),
        id: skill.id.to_string(),
        name: definition.map(|definition| definition.name.clone()).unwrap_or_default(),
        description: definition.map(|definition| definition.description.clone()).unwrap_or_default(),
        kind: match definition.map(|definition| definition.kind) {
            Some(SkillKind::Jury) => proto::SkillKind::Jury,
            _ => proto::SkillKind::Prompt,
        } as i32,
        inputs: definition.map(|definition| definition.inputs.iter().map(skill_field).collect()).unwrap_or_default(),
        outputs: definition.map(|definition| definition.outputs.iter().map(skill_field).collect()).unwrap_or_default(),
        tags: definition.map(|definition| definition.tags.clone()).unwrap_or_default(),
        trust_level: trust_level(skill.trust) as i32,
        source: source.to_owned(),
        source_location,
        remote_id,
        version: effective.map(|version| version.version.clone()).unwrap_or_default(),
        latest_version: skill.latest().map(|version| version.version.clone()).unwrap_or_default(),
        pinned_version: skill.pinned_version.clone().unwrap_or_default(),
        versions: skill
            .versions
            .iter()
            .map(|version| proto::SkillVersionInfo { version: version.version.clone(), digest: version.digest.clone(), added_at: Some(timestamp(version.added_at)) })
            .collect(),
        prompt_template: definition.map(|definition| definition.prompt_template.clone()).unwrap_or_default(),
        templates: definition.map(|definition| definition.templates.clone().into_iter().collect()).unwrap_or_default(),
        remote_metadata: definition.and_then(|definition| match &definition.remote_metadata {
            Some(serde_json::Value::Object(object)) => Some(json_to_struct(object)),
            _ => None,
        }),
        created_at: Some(timestamp(skill.created_at)),
        updated_at: Some(timestamp(skill.updated_at)),
    }
}

pub fn sync_report(report: &SyncReport) -> proto::SyncSkillsResponse {
    proto::SyncSkillsResponse {
        skills: report.skills.iter().map(|synced| proto::SyncedSkill { id: synced.id.to_string(), version: synced.version.clone(), changed: synced.changed }).collect(),
        errors: report.errors.iter().map(skill_file_error).collect(),
    }
}

fn skill_file_error(error: &SkillFileError) -> proto::SkillFileError {
    proto::SkillFileError { path: error.path.clone(), reason: error.reason.clone() }
}

pub fn registry_listing(listing: &RegistryListing) -> proto::RegistryListing {
    proto::RegistryListing {
        id: listing.id.clone(),
        name: listing.name.clone(),
        description: listing.description.clone(),
        version: listing.version.clone(),
        tags: listing.tags.clone(),
    }
}

fn recipe_step(step: &RecipeStep) -> proto::RecipeStep {
    proto::RecipeStep {
        skill_id: step.skill.to_string(),
        params: Some(json_to_struct(&step.params)),
        inputs: step.inputs.clone().into_iter().collect(),
        outputs: step.outputs.clone().into_iter().collect(),
        timeout_seconds: step.timeout_seconds,
        retries: step.retries,
    }
}

fn from_recipe_step(step: proto::RecipeStep, field: &str) -> Result<RecipeStep> {
    let skill = crate::workflows::stage::skill::validate_skill_id(&format!("{field}.skill_id"), &step.skill_id)?;
    Ok(RecipeStep {
        skill,
        params: struct_to_json(step.params, &format!("{field}.params"))?,
        inputs: step.inputs.into_iter().collect(),
        outputs: step.outputs.into_iter().collect(),
        timeout_seconds: step.timeout_seconds,
        retries: step.retries,
    })
}

fn gate(gate: &GateSpec) -> proto::Gate {
    use proto::gate::Check;
    let check = match &gate.check {
        GateCheck::FileExists { pattern } => Check::FileExists(proto::FileExistsGate { pattern: pattern.clone() }),
        GateCheck::ContentCheck { file, required_sections } => {
            Check::ContentCheck(proto::ContentCheckGate { file: file.clone(), required_sections: required_sections.clone() })
        }
        GateCheck::ArtifactExists { kind, label } => Check::ArtifactExists(proto::ArtifactExistsGate {
            kind: kind.map_or(proto::ArtifactKind::Unspecified, |kind| artifact_kind(kind.0)) as i32,
            label: label.clone().unwrap_or_default(),
        }),
        GateCheck::MetricThreshold { metric, operator, threshold, scale: on } => Check::MetricThreshold(proto::MetricThresholdGate {
            metric: metric.clone(),
            operator: comparison(*operator) as i32,
            threshold: *threshold,
            scale: scale(*on) as i32,
        }),
        GateCheck::Command { command, timeout_seconds } => Check::Command(proto::CommandGate { command: command.clone(), timeout_seconds: *timeout_seconds }),
    };
    proto::Gate { id: gate.id.clone(), name: gate.name.clone(), required: gate.required, failure_message: gate.failure_message.clone(), check: Some(check) }
}

pub fn from_gate(gate: proto::Gate, field: &str) -> Result<GateSpec> {
    use proto::gate::Check;
    let check = match gate.check {
        None => return Err(Error::invalid(format!("{field}.check"), "is required: file_exists, content_check, artifact_exists, metric_threshold or command")),
        Some(Check::FileExists(check)) => GateCheck::FileExists { pattern: check.pattern },
        Some(Check::ContentCheck(check)) => GateCheck::ContentCheck { file: check.file, required_sections: check.required_sections },
        Some(Check::ArtifactExists(check)) => GateCheck::ArtifactExists {
            kind: from_artifact_kind(check.kind, &format!("{field}.artifact_exists.kind"))?.map(ArtifactKindName),
            label: (!check.label.is_empty()).then_some(check.label),
        },
        Some(Check::MetricThreshold(check)) => GateCheck::MetricThreshold {
            metric: check.metric,
            operator: from_comparison(check.operator, &format!("{field}.metric_threshold.operator"))?,
            threshold: check.threshold,
            scale: from_scale(check.scale, &format!("{field}.metric_threshold.scale"))?,
        },
        Some(Check::Command(check)) => GateCheck::Command { command: check.command, timeout_seconds: check.timeout_seconds },
    };
    Ok(GateSpec { id: gate.id, name: gate.name, check, required: gate.required, failure_message: gate.failure_message })
}

pub fn gate_result(result: &GateResult) -> proto::GateResult {
    proto::GateResult {
        id: result.id.clone(),
        name: result.name.clone(),
        r#type: result.gate_type.clone(),
        required: result.required,
        passed: result.passed,
        message: result.message.clone(),
    }
}

pub fn recipe(recipe: &Recipe) -> proto::Recipe {
    proto::Recipe {
        workspace: recipe.workspace.to_string(),
        stage: recipe.stage.clone(),
        position: recipe.position,
        automation_level: automation_level(recipe.automation) as i32,
        steps: recipe.steps.iter().map(recipe_step).collect(),
        gates: recipe.gates.iter().map(gate).collect(),
        on_fail: on_fail(recipe.on_fail) as i32,
        provider: recipe.provider.clone(),
        enabled: recipe.enabled,
        etag: recipe.revision.to_string(),
        updated_at: Some(timestamp(recipe.updated_at)),
    }
}

/// The fields of a recipe given in a request (`field` names the message).
pub fn recipe_fields(recipe: proto::Recipe, field: &str) -> Result<RecipeFields> {
    Ok(RecipeFields {
        position: recipe.position,
        automation: from_automation_level(recipe.automation_level, &format!("{field}.automation_level"))?,
        steps: recipe.steps.into_iter().enumerate().map(|(index, step)| from_recipe_step(step, &format!("{field}.steps[{index}]"))).collect::<Result<_>>()?,
        gates: recipe.gates.into_iter().enumerate().map(|(index, gate)| from_gate(gate, &format!("{field}.gates[{index}]"))).collect::<Result<_>>()?,
        on_fail: from_on_fail(recipe.on_fail, &format!("{field}.on_fail"))?,
        provider: recipe.provider,
        enabled: recipe.enabled,
    })
}

/// A whole recipe given in a request (to validate): unset enums take their defaults.
pub fn from_recipe(recipe: proto::Recipe, field: &str) -> Result<Recipe> {
    let (workspace, stage) = (WorkspaceId::new(recipe.workspace.clone()), recipe.stage.clone());
    let fields = recipe_fields(recipe, field)?;
    Ok(Recipe {
        workspace,
        stage,
        position: fields.position,
        automation: fields.automation.unwrap_or_default(),
        steps: fields.steps,
        gates: fields.gates,
        on_fail: fields.on_fail.unwrap_or_default(),
        provider: fields.provider,
        enabled: fields.enabled,
        revision: 0,
        updated_at: Timestamp::now(),
    })
}

fn skill_status(status: &SkillStatus) -> proto::SkillStatus {
    proto::SkillStatus {
        skill_id: status.skill_id.clone(),
        name: status.name.clone(),
        found: status.found,
        trust_level: status.trust.map_or(proto::TrustLevel::Unspecified, trust_level) as i32,
        trusted: status.trusted,
        source: status.source.clone(),
        version: status.version.clone(),
    }
}

pub fn validation(validation: &Validation) -> proto::RecipeValidation {
    proto::RecipeValidation {
        valid: validation.valid(),
        errors: validation.errors.clone(),
        warnings: validation.warnings.clone(),
        skills: validation.skills.iter().map(skill_status).collect(),
    }
}

fn recipe_outcome(outcome: RecipeOutcome) -> proto::RecipeOutcome {
    match outcome {
        RecipeOutcome::Passed => proto::RecipeOutcome::Passed,
        RecipeOutcome::FailedGates => proto::RecipeOutcome::FailedGates,
        RecipeOutcome::Failed => proto::RecipeOutcome::Failed,
        RecipeOutcome::Cancelled => proto::RecipeOutcome::Cancelled,
        RecipeOutcome::Rejected => proto::RecipeOutcome::Rejected,
    }
}

fn metric(metric: &Metric) -> proto::MetricValue {
    proto::MetricValue { value: metric.value, scale: scale(metric.scale) as i32 }
}

fn card_run(run: &CardRun) -> proto::CardRun {
    proto::CardRun {
        run_id: run.run.to_string(),
        stage: run.stage.clone(),
        outcome: recipe_outcome(run.outcome) as i32,
        gates: run.gates.iter().map(gate_result).collect(),
        metrics: run.metrics.iter().map(|(name, value)| (name.clone(), metric(value))).collect(),
        message: run.message.clone(),
    }
}

pub fn card(card: &Card) -> proto::Card {
    proto::Card {
        id: card.id.to_string(),
        workspace: card.workspace.to_string(),
        title: card.title.clone(),
        description: card.description.clone(),
        inputs: card.inputs.clone().into_iter().collect(),
        stage: card.stage.clone(),
        previous_stage: card.previous_stage.clone().unwrap_or_default(),
        locked: card.locked(),
        active_run_id: card.active_run.map(|run| run.to_string()).unwrap_or_default(),
        documents: card.documents.iter().map(|(name, id)| (name.clone(), id.to_string())).collect(),
        questions: card.questions.clone(),
        review_required: card.review_required,
        labels: card.labels.clone().into_iter().collect(),
        last_run: card.last_run.as_ref().map(card_run),
        etag: card.revision.to_string(),
        created_at: Some(timestamp(card.created_at)),
        updated_at: Some(timestamp(card.updated_at)),
    }
}

fn card_event_kind(kind: CardEventKind) -> proto::CardEventKind {
    match kind {
        CardEventKind::Created => proto::CardEventKind::Created,
        CardEventKind::Moved => proto::CardEventKind::Moved,
        CardEventKind::RunCreated => proto::CardEventKind::RunCreated,
        CardEventKind::AwaitingApproval => proto::CardEventKind::AwaitingApproval,
        CardEventKind::Approved => proto::CardEventKind::Approved,
        CardEventKind::Rejected => proto::CardEventKind::Rejected,
        CardEventKind::RunEnded => proto::CardEventKind::RunEnded,
        CardEventKind::Notified => proto::CardEventKind::Notified,
        CardEventKind::Advanced => proto::CardEventKind::Advanced,
        CardEventKind::Reverted => proto::CardEventKind::Reverted,
        CardEventKind::Stayed => proto::CardEventKind::Stayed,
        CardEventKind::QuestionsCreated => proto::CardEventKind::QuestionsCreated,
        CardEventKind::ReviewRequired => proto::CardEventKind::ReviewRequired,
        CardEventKind::Refused => proto::CardEventKind::Refused,
    }
}

pub fn card_event(event: &CardEvent) -> proto::CardEvent {
    proto::CardEvent {
        sequence: event.sequence,
        kind: card_event_kind(event.event.kind) as i32,
        from_stage: event.event.from_stage.clone().unwrap_or_default(),
        to_stage: event.event.to_stage.clone().unwrap_or_default(),
        run_id: event.event.run.map(|run| run.to_string()).unwrap_or_default(),
        actor: event.event.actor.clone(),
        message: event.event.message.clone(),
        at: Some(timestamp(event.event.at)),
    }
}

/// Map fields of a request as the domain keeps them.
pub fn string_map(map: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}
