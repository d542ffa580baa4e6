//! Recipes: the seed's default stages with their automation levels, the checks a recipe must
//! pass to be stored (its shape), and the validation that weighs it against the catalog
//! (missing skills, untrusted skills in a fully automatic stage, inputs no mapping gives).

use std::collections::BTreeSet;

use serde::Serialize;

use super::{skill, template};
use crate::{
    domain::{ArtifactName, AutomationLevel, GateSpec, OnFail, Recipe, RecipeStep, Skill, SkillKind, Timestamp, TrustLevel, WorkspaceId},
    engine::Engine,
    error::{Error, Result},
    workflows::gates,
};

/// The seed's stages, in board order, with their default automation levels.
pub const DEFAULT_STAGES: [(&str, AutomationLevel); 11] = [
    ("inbox", AutomationLevel::FullyAuto),
    ("discovery", AutomationLevel::AutoNotify),
    ("prd", AutomationLevel::AutoNotify),
    ("design", AutomationLevel::AutoNotify),
    ("prototype", AutomationLevel::AutoNotify),
    ("validate", AutomationLevel::HumanApproval),
    ("tickets", AutomationLevel::HumanApproval),
    ("build", AutomationLevel::Manual),
    ("alpha", AutomationLevel::Manual),
    ("beta", AutomationLevel::Manual),
    ("ga", AutomationLevel::Manual),
];

/// Positions of the default stages are 10 apart, so stages can go between them.
const POSITION_STEP: u32 = 10;
/// The most steps a recipe has.
const MAX_STEPS: usize = 50;
/// The most gates a recipe has.
const MAX_GATES: usize = 50;
/// The longest a step may take.
const MAX_STEP_TIMEOUT_SECONDS: u32 = 3600;
/// The most retries a step may have.
const MAX_RETRIES: u32 = 10;

/// The default recipes of a workspace: no steps, no gates, the seed's automation levels.
pub fn default_recipes(workspace: &WorkspaceId, now: Timestamp) -> Vec<Recipe> {
    DEFAULT_STAGES
        .iter()
        .zip(1..)
        .map(|((stage, automation), index)| blank(workspace, stage, index * POSITION_STEP, *automation, now))
        .collect()
}

/// A new stage's recipe: enabled, with no steps and no gates; a failure leaves the card there.
fn blank(workspace: &WorkspaceId, stage: &str, position: u32, automation: AutomationLevel, now: Timestamp) -> Recipe {
    Recipe {
        workspace: workspace.clone(),
        stage: stage.to_owned(),
        position,
        automation,
        steps: Vec::new(),
        gates: Vec::new(),
        on_fail: OnFail::Stay,
        provider: String::new(),
        enabled: true,
        revision: 0,
        updated_at: now,
    }
}

/// Checks a stage name: `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn validate_stage(field: &str, stage: &str) -> Result<()> {
    let valid = !stage.is_empty()
        && stage.len() <= 64
        && stage.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && stage.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if valid {
        return Ok(());
    }
    Err(Error::invalid(field, format!("`{stage}` is not a stage name: use 1 to 64 of a-z, 0-9, `_` and `-`, starting with a letter or digit")))
}

/// Checks what a recipe must be to be stored, naming the field at fault (`recipe.steps[1].timeout_seconds`).
pub fn validate_shape(recipe: &Recipe) -> Result<()> {
    validate_stage("recipe.stage", &recipe.stage)?;
    if recipe.steps.len() > MAX_STEPS {
        return Err(Error::invalid("recipe.steps", format!("has {} steps; at most {MAX_STEPS}", recipe.steps.len())));
    }
    if recipe.gates.len() > MAX_GATES {
        return Err(Error::invalid("recipe.gates", format!("has {} gates; at most {MAX_GATES}", recipe.gates.len())));
    }
    for (index, step) in recipe.steps.iter().enumerate() {
        validate_step(&format!("recipe.steps[{index}]"), step)?;
    }
    gates::validate_gates(&recipe.gates).map_err(|err| prefixed("recipe.", err))?;
    if recipe.provider.len() > 128 || recipe.provider.chars().any(char::is_control) {
        return Err(Error::invalid("recipe.provider", "is a provider's name or `provider#alias`, at most 128 characters"));
    }
    Ok(())
}

fn prefixed(prefix: &str, err: Error) -> Error {
    match err {
        Error::InvalidArgument(violations) => Error::InvalidArgument(
            violations
                .into_iter()
                .map(|mut violation| {
                    violation.field = format!("{prefix}{}", violation.field);
                    violation
                })
                .collect(),
        ),
        other => other,
    }
}

fn validate_step(field: &str, step: &RecipeStep) -> Result<()> {
    skill::validate_skill_id(&format!("{field}.skill_id"), step.skill.as_str())?;
    if step.timeout_seconds > MAX_STEP_TIMEOUT_SECONDS {
        return Err(Error::invalid(format!("{field}.timeout_seconds"), format!("is {}; at most {MAX_STEP_TIMEOUT_SECONDS}", step.timeout_seconds)));
    }
    if step.retries > MAX_RETRIES {
        return Err(Error::invalid(format!("{field}.retries"), format!("is {}; at most {MAX_RETRIES}", step.retries)));
    }
    for (input, source) in &step.inputs {
        if input.is_empty() {
            return Err(Error::invalid(format!("{field}.inputs"), "has an empty input name"));
        }
        let known = source.starts_with("text:")
            || source == "card.title"
            || source == "card.description"
            || source.strip_prefix("card.inputs.").is_some_and(|key| !key.is_empty())
            || source.strip_prefix("artifact.").is_some_and(|name| ArtifactName::parse("name", name).is_ok());
        if !known {
            return Err(Error::invalid(
                format!("{field}.inputs[{input}]"),
                format!("`{source}` is not a source: use card.title, card.description, card.inputs.<key>, artifact.<name> or text:<literal>"),
            ));
        }
    }
    for (output, name) in &step.outputs {
        if output.is_empty() {
            return Err(Error::invalid(format!("{field}.outputs"), "has an empty output name"));
        }
        ArtifactName::parse(&format!("{field}.outputs[{output}]"), name)?;
    }
    Ok(())
}

/// A skill a recipe names, as validation found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkillStatus {
    pub skill_id: String,
    pub name: String,
    pub found: bool,
    pub trust: Option<TrustLevel>,
    pub trusted: bool,
    pub source: String,
    pub version: String,
}

/// What validation found: errors block runs, warnings do not.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Validation {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub skills: Vec<SkillStatus>,
}

impl Validation {
    pub fn valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Weighs a recipe against the catalog (`skills` holds at least the skills it names).
pub fn validate(recipe: &Recipe, skills: &[Skill]) -> Validation {
    let mut validation = Validation::default();
    let mut seen = BTreeSet::new();
    for (index, step) in recipe.steps.iter().enumerate() {
        let number = index + 1;
        let Some(found) = skills.iter().find(|skill| skill.id == step.skill) else {
            validation.errors.push(format!("step {number}: skill `{}` is not in the workspace's catalog", step.skill));
            if seen.insert(step.skill.clone()) {
                validation.skills.push(SkillStatus {
                    skill_id: step.skill.to_string(),
                    name: String::new(),
                    found: false,
                    trust: None,
                    trusted: false,
                    source: String::new(),
                    version: String::new(),
                });
            }
            continue;
        };
        let Some(version) = found.effective() else {
            validation.errors.push(format!("step {number}: skill `{}` is pinned to version `{}`, which it does not have", step.skill, found.pinned_version.clone().unwrap_or_default()));
            continue;
        };
        if seen.insert(step.skill.clone()) {
            validation.skills.push(SkillStatus {
                skill_id: step.skill.to_string(),
                name: version.definition.name.clone(),
                found: true,
                trust: Some(found.trust),
                trusted: found.trust == TrustLevel::Vetted,
                source: match &found.source {
                    crate::domain::SkillSource::Local { .. } => "local".to_owned(),
                    crate::domain::SkillSource::Registry { .. } => "registry".to_owned(),
                },
                version: version.version.clone(),
            });
        }
        if recipe.automation == AutomationLevel::FullyAuto && found.trust != TrustLevel::Vetted {
            validation.errors.push(format!(
                "step {number}: skill `{}` is {}, and a fully_auto recipe may run only vetted skills",
                step.skill,
                found.trust.as_str()
            ));
        }
        let definition = &version.definition;
        for field in definition.inputs.iter().filter(|field| field.required && !step.inputs.contains_key(&field.name)) {
            validation.errors.push(format!("step {number}: required input `{}` of `{}` has no mapping", field.name, step.skill));
        }
        match definition.kind {
            SkillKind::Prompt => {
                for placeholder in template::placeholders(&definition.prompt_template) {
                    let given = match placeholder.strip_prefix("params.") {
                        Some(param) => step.params.contains_key(param),
                        None => step.inputs.contains_key(&placeholder),
                    };
                    if !given {
                        validation.errors.push(format!("step {number}: the template of `{}` uses {{{{{placeholder}}}}}, which no mapping or param gives", step.skill));
                    }
                }
            }
            SkillKind::Jury => {
                if !step.inputs.contains_key("document") {
                    validation.errors.push(format!("step {number}: the jury `{}` scores its `document` input, which is not mapped", step.skill));
                }
                if let Err(problem) = super::jury::Panel::from_params(&step.params) {
                    validation.errors.push(format!("step {number}: {problem}"));
                }
            }
        }
        let declared: BTreeSet<&str> = definition.outputs.iter().map(|field| field.name.as_str()).collect();
        for output in step.outputs.keys().filter(|output| !declared.is_empty() && !declared.contains(output.as_str())) {
            validation.warnings.push(format!("step {number}: `{}` declares no output `{output}`", step.skill));
        }
    }
    if !recipe.gates.iter().any(|gate| gate.required) {
        validation.warnings.push("no required gate: any run that completes its steps passes".to_owned());
    }
    if !recipe.enabled {
        validation.warnings.push("the recipe is disabled: moving a card here creates no run".to_owned());
    }
    if recipe.steps.is_empty() && recipe.automation != AutomationLevel::Manual {
        validation.warnings.push("no steps: a run only checks the gates".to_owned());
    }
    validation
}

/// The fields of a recipe a request gives; `None` where the request left an enum unset.
#[derive(Debug, Clone)]
pub struct RecipeFields {
    pub position: u32,
    pub automation: Option<AutomationLevel>,
    pub steps: Vec<RecipeStep>,
    pub gates: Vec<GateSpec>,
    pub on_fail: Option<OnFail>,
    pub provider: String,
    pub enabled: bool,
}

/// The fields an update mask may name.
pub const UPDATABLE: [&str; 7] = ["position", "automation_level", "steps", "gates", "on_fail", "provider", "enabled"];

/// A request to change a recipe.
#[derive(Debug, Clone)]
pub struct UpdateRecipeRequest {
    pub workspace: String,
    pub stage: String,
    pub fields: RecipeFields,
    /// The fields to change; empty for all.
    pub mask: Vec<String>,
    /// The revision the change applies to; empty for any.
    pub etag: String,
    /// Create the stage's recipe if it has none.
    pub allow_missing: bool,
}

impl RecipeFields {
    /// `recipe` with the masked fields replaced by these.
    fn apply(&self, mask: &[&str], mut recipe: Recipe) -> Result<Recipe> {
        for field in mask {
            match *field {
                "position" => recipe.position = self.position,
                "automation_level" => {
                    recipe.automation = self.automation.ok_or_else(|| Error::invalid("recipe.automation_level", "is required: fully_auto, auto_notify, human_approval or manual"))?
                }
                "steps" => recipe.steps.clone_from(&self.steps),
                "gates" => recipe.gates.clone_from(&self.gates),
                "on_fail" => recipe.on_fail = self.on_fail.ok_or_else(|| Error::invalid("recipe.on_fail", "is required: stay, revert, create_questions or review_required"))?,
                "provider" => recipe.provider.clone_from(&self.provider),
                "enabled" => recipe.enabled = self.enabled,
                other => return Err(Error::invalid("update_mask", format!("`{other}` is not a field that can be updated: use {}", UPDATABLE.join(", ")))),
            }
        }
        Ok(recipe)
    }
}

/// The recipes of an engine's workspaces.
#[derive(Debug, Clone)]
pub struct Recipes {
    engine: Engine,
}

impl Recipes {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    /// Creates the default recipes a workspace lacks; returns those created.
    pub async fn initialize(&self, workspace: &str) -> Result<Vec<Recipe>> {
        let workspace = self.engine.workspace(workspace).await?;
        let mut created = Vec::new();
        for recipe in default_recipes(&workspace, Timestamp::now()) {
            let stage = recipe.stage.clone();
            let change = move |existing: Option<&Recipe>| match existing {
                Some(_) => Err(Error::Aborted { reason: "RECIPE_EXISTS", message: String::new() }),
                None => Ok(recipe.clone()),
            };
            match self.engine.store().update_recipe(&workspace, &stage, &change).await {
                Ok(recipe) => created.push(recipe),
                Err(Error::Aborted { reason: "RECIPE_EXISTS", .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(created)
    }

    /// A stage's recipe.
    pub async fn get(&self, workspace: &str, stage: &str) -> Result<Recipe> {
        validate_stage("stage", stage)?;
        let workspace = self.engine.workspace(workspace).await?;
        self.engine.store().get_recipe(&workspace, stage).await?.ok_or_else(|| Error::not_found("recipe", format!("{workspace}/{stage}")))
    }

    /// A workspace's recipes in board order.
    pub async fn list(&self, workspace: &str) -> Result<Vec<Recipe>> {
        let workspace = self.engine.workspace(workspace).await?;
        self.engine.store().list_recipes(&workspace).await
    }

    /// Changes the masked fields of a recipe (under its etag, when given).
    pub async fn update(&self, request: UpdateRecipeRequest) -> Result<Recipe> {
        validate_stage("recipe.stage", &request.stage)?;
        let workspace = self.engine.workspace(&request.workspace).await?;
        let mask: Vec<&str> = if request.mask.is_empty() { UPDATABLE.to_vec() } else { request.mask.iter().map(String::as_str).collect() };
        if let Some(unknown) = mask.iter().find(|field| !UPDATABLE.contains(field)) {
            return Err(Error::invalid("update_mask", format!("`{unknown}` is not a field that can be updated: use {}", UPDATABLE.join(", "))));
        }
        // A new stage goes after the last unless the request places it.
        let last = self.engine.store().list_recipes(&workspace).await?.iter().map(|recipe| recipe.position).max().unwrap_or(0);
        let (stage, fields, etag, allow_missing) = (request.stage.clone(), request.fields.clone(), request.etag.clone(), request.allow_missing);
        let owner = workspace.clone();
        let change = move |existing: Option<&Recipe>| {
            let base = match existing {
                Some(existing) => {
                    if !etag.is_empty() && etag != existing.revision.to_string() {
                        return Err(Error::Aborted {
                            reason: "ETAG_MISMATCH",
                            message: format!("recipe `{stage}` is at etag {}, not {etag}: read it again and reapply the change", existing.revision),
                        });
                    }
                    existing.clone()
                }
                None if allow_missing => blank(&owner, &stage, last + POSITION_STEP, AutomationLevel::Manual, Timestamp::now()),
                None => return Err(Error::not_found("recipe", format!("{owner}/{stage}"))),
            };
            let mut recipe = fields.apply(&mask, base)?;
            if existing.is_none() && (recipe.position == 0 || !mask.contains(&"position")) {
                recipe.position = last + POSITION_STEP;
            }
            validate_shape(&recipe)?;
            recipe.updated_at = Timestamp::now();
            Ok(recipe)
        };
        self.engine.store().update_recipe(&workspace, &request.stage, &change).await
    }

    /// Validates the stored recipe of a stage, or `given` instead.
    pub async fn validate(&self, workspace: &str, stage: &str, given: Option<Recipe>) -> Result<Validation> {
        let recipe = match given {
            Some(mut recipe) => {
                recipe.workspace = self.engine.workspace(workspace).await?;
                validate_shape(&recipe)?;
                recipe
            }
            None => self.get(workspace, stage).await?,
        };
        let skills = self.engine.store().list_skills(&recipe.workspace).await?;
        Ok(validate(&recipe, &skills))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::{GateCheck, SkillDefinition, SkillField, SkillId, SkillSource, SkillVersion};

    fn skill(id: &str, trust: TrustLevel, template: &str, required: &[&str]) -> Skill {
        let now = Timestamp::now();
        Skill {
            workspace: WorkspaceId::new("default"),
            id: SkillId::new(id),
            source: SkillSource::Local { path: format!("/skills/{id}") },
            trust,
            pinned_version: None,
            versions: vec![SkillVersion {
                version: "1".into(),
                digest: "d".into(),
                definition: SkillDefinition {
                    name: id.to_uppercase(),
                    prompt_template: template.into(),
                    inputs: required.iter().map(|name| SkillField { name: (*name).into(), required: true, ..SkillField::default() }).collect(),
                    ..SkillDefinition::default()
                },
                added_at: now,
            }],
            revision: 1,
            created_at: now,
            updated_at: now,
        }
    }

    fn recipe(automation: AutomationLevel, steps: Vec<RecipeStep>) -> Recipe {
        let mut recipe = default_recipes(&WorkspaceId::new("default"), Timestamp::now()).remove(0);
        recipe.automation = automation;
        recipe.steps = steps;
        recipe
    }

    fn step(skill: &str, inputs: &[(&str, &str)]) -> RecipeStep {
        RecipeStep {
            skill: SkillId::new(skill),
            params: serde_json::Map::new(),
            inputs: inputs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            outputs: BTreeMap::from([("summary".to_owned(), "research.md".to_owned())]),
            timeout_seconds: 0,
            retries: 0,
        }
    }

    #[test]
    fn the_defaults_are_the_seeds_eleven_stages_in_order() {
        let recipes = default_recipes(&WorkspaceId::new("w"), Timestamp::now());
        let stages: Vec<_> = recipes.iter().map(|recipe| (recipe.stage.as_str(), recipe.automation)).collect();
        assert_eq!(stages.len(), 11);
        assert_eq!(stages[0], ("inbox", AutomationLevel::FullyAuto));
        assert_eq!(stages[5], ("validate", AutomationLevel::HumanApproval));
        assert_eq!(stages[10], ("ga", AutomationLevel::Manual));
        assert!(recipes.windows(2).all(|pair| pair[0].position < pair[1].position));
    }

    #[test]
    fn missing_and_untrusted_skills_are_errors_and_no_required_gate_a_warning() {
        let skills = [skill("analyze", TrustLevel::Community, "Read {{transcript}}", &["transcript"])];
        let found = validate(&recipe(AutomationLevel::FullyAuto, vec![step("analyze", &[("transcript", "card.description")]), step("ghost", &[])]), &skills);
        assert!(!found.valid());
        assert!(found.errors.iter().any(|error| error.contains("`ghost` is not in the workspace's catalog")), "{found:?}");
        assert!(found.errors.iter().any(|error| error.contains("community") && error.contains("fully_auto")), "{found:?}");
        assert!(found.warnings.iter().any(|warning| warning.contains("no required gate")), "{found:?}");
        assert_eq!(found.skills.len(), 2);
        assert!(found.skills[0].found && !found.skills[0].trusted);
        assert!(!found.skills[1].found);
    }

    #[test]
    fn unmapped_inputs_and_template_placeholders_are_errors() {
        let skills = [skill("analyze", TrustLevel::Vetted, "Read {{transcript}} for {{params.audience}}", &["transcript"])];
        let found = validate(&recipe(AutomationLevel::FullyAuto, vec![step("analyze", &[])]), &skills);
        assert!(found.errors.iter().any(|error| error.contains("required input `transcript`")), "{found:?}");
        assert!(found.errors.iter().any(|error| error.contains("{{params.audience}}")), "{found:?}");
    }

    #[test]
    fn a_vetted_recipe_with_a_required_gate_is_valid_without_warnings() {
        let skills = [skill("analyze", TrustLevel::Vetted, "Read {{transcript}}", &["transcript"])];
        let mut good = recipe(AutomationLevel::FullyAuto, vec![step("analyze", &[("transcript", "card.description")])]);
        good.gates = vec![GateSpec {
            id: "research".into(),
            name: String::new(),
            check: GateCheck::FileExists { pattern: "research.md".into() },
            required: true,
            failure_message: String::new(),
        }];
        let found = validate(&good, &skills);
        assert!(found.valid(), "{found:?}");
        assert!(found.warnings.is_empty(), "{found:?}");
    }

    #[test]
    fn shapes_name_the_field_at_fault() {
        let mut bad = recipe(AutomationLevel::Manual, vec![step("analyze", &[("x", "somewhere")])]);
        let err = validate_shape(&bad).unwrap_err().to_string();
        assert!(err.contains("recipe.steps[0].inputs[x]"), "{err}");
        bad.steps[0].inputs.clear();
        bad.steps[0].retries = 99;
        assert!(validate_shape(&bad).unwrap_err().to_string().contains("recipe.steps[0].retries"));
        bad.steps.clear();
        bad.stage = "Bad Stage".into();
        assert!(validate_shape(&bad).unwrap_err().to_string().contains("recipe.stage"));
    }
}
