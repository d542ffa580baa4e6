//! `conclave recipes`.

use clap::{Args, Subcommand};

use super::{
    CliResult, Options, Outcome,
    client::connect,
    input,
    output::{self, Fields, Table, json_line, line},
};
use crate::proto::{self, AutomationLevel, OnFail, TrustLevel, gate};

#[derive(Debug, Args)]
pub struct RecipesArgs {
    #[command(flatten)]
    pub options: Options,
    /// The workspace (default `default`).
    #[arg(long, global = true)]
    workspace: Option<String>,
    #[command(subcommand)]
    command: RecipesCommand,
}

#[derive(Debug, Subcommand)]
enum RecipesCommand {
    /// Create the default stages (inbox … ga) that have no recipe yet; prints those created.
    Init,
    /// List the recipes in board order.
    List,
    /// Show a stage's recipe.
    Get {
        /// The stage.
        stage: String,
    },
    /// Validate a stage's recipe: prints its errors, warnings and each skill's status; exit code
    /// 1 when it is not valid.
    Validate {
        /// The stage.
        stage: String,
    },
    /// Change a stage's recipe; prints the recipe.
    Set {
        /// The stage.
        stage: String,
        /// The new recipe as JSON (a `Recipe`, as in `UpdateRecipeRequest.recipe`), inline,
        /// `@file.json` or `@-`.
        #[arg(long)]
        request: String,
        /// Only these fields, comma-separated: position, automation_level, steps, gates, on_fail,
        /// provider, enabled (all of them when not given).
        #[arg(long, value_delimiter = ',')]
        mask: Vec<String>,
        /// Apply only to this revision (else the server answers ABORTED).
        #[arg(long)]
        etag: Option<String>,
        /// Create the stage when it has no recipe.
        #[arg(long)]
        create: bool,
    },
}

pub async fn run(args: RecipesArgs) -> CliResult {
    let json = args.options.json;
    let workspace = args.workspace.unwrap_or_default();
    let conn = connect(&args.options).await?;
    let mut client = conn.recipes();
    match args.command {
        RecipesCommand::Init => {
            let created = client.initialize_recipes(proto::InitializeRecipesRequest { workspace }).await?.into_inner().created;
            print_recipes(&created, json);
            if !json && created.is_empty() {
                eprintln!("every default stage already has a recipe");
            }
        }
        RecipesCommand::List => {
            let recipes = client.list_recipes(proto::ListRecipesRequest { workspace }).await?.into_inner().recipes;
            print_recipes(&recipes, json);
        }
        RecipesCommand::Get { stage } => {
            let recipe = client.get_recipe(proto::GetRecipeRequest { workspace, stage }).await?.into_inner();
            print_recipe(&recipe, json);
        }
        RecipesCommand::Validate { stage } => {
            let validation = client.validate_recipe(proto::ValidateRecipeRequest { workspace, stage, recipe: None }).await?.into_inner();
            print_validation(&validation, json);
            if !validation.valid {
                return Ok(Outcome::Failed);
            }
        }
        RecipesCommand::Set { stage, request, mask, etag, create } => {
            let mut recipe: proto::Recipe = input::request(Some(&request))?;
            recipe.stage = stage;
            if !workspace.is_empty() {
                recipe.workspace = workspace;
            }
            let paths: Vec<String> = mask.into_iter().map(|path| path.trim().to_owned()).filter(|path| !path.is_empty()).collect();
            let request = proto::UpdateRecipeRequest {
                recipe: Some(recipe),
                update_mask: (!paths.is_empty()).then_some(prost_types::FieldMask { paths }),
                etag: etag.unwrap_or_default(),
                allow_missing: create,
            };
            let recipe = client.update_recipe(request).await?.into_inner();
            print_recipe(&recipe, json);
        }
    }
    Ok(Outcome::Done)
}

fn level_name(level: i32) -> String {
    output::enum_name(AutomationLevel::try_from(level).ok().map(|l| l.as_str_name()), "AUTOMATION_LEVEL_")
}

fn on_fail_name(on_fail: i32) -> String {
    output::enum_name(OnFail::try_from(on_fail).ok().map(|o| o.as_str_name()), "ON_FAIL_")
}

fn print_recipes(recipes: &[proto::Recipe], json: bool) {
    if json {
        return recipes.iter().for_each(json_line);
    }
    let mut table = Table::new(&["POSITION", "STAGE", "AUTOMATION", "STEPS", "GATES", "ON FAIL", "ENABLED"]);
    for recipe in recipes {
        table.row(vec![
            recipe.position.to_string(),
            recipe.stage.clone(),
            level_name(recipe.automation_level),
            recipe.steps.len().to_string(),
            recipe.gates.len().to_string(),
            on_fail_name(recipe.on_fail),
            if recipe.enabled { "yes" } else { "no" }.to_owned(),
        ]);
    }
    table.print();
}

fn print_recipe(recipe: &proto::Recipe, json: bool) {
    if json {
        return json_line(recipe);
    }
    let mut fields = Fields::new();
    fields
        .add("stage", &recipe.stage)
        .add("workspace", &recipe.workspace)
        .add("position", recipe.position.to_string())
        .add("automation", level_name(recipe.automation_level))
        .add("on fail", on_fail_name(recipe.on_fail))
        .add("enabled", if recipe.enabled { "yes" } else { "no" })
        .add("provider", &recipe.provider)
        .add("etag", &recipe.etag)
        .add("updated", output::time(recipe.updated_at.as_ref()));
    for step in &recipe.steps {
        let mut inputs: Vec<String> = step.inputs.iter().map(|(name, from)| format!("{name}←{from}")).collect();
        inputs.sort();
        let mut outputs: Vec<String> = step.outputs.iter().map(|(name, to)| format!("{name}→{to}")).collect();
        outputs.sort();
        fields.add("step", format!("{} [{}] [{}]", step.skill_id, inputs.join(", "), outputs.join(", ")));
    }
    for gate in &recipe.gates {
        let check = match &gate.check {
            Some(gate::Check::FileExists(_)) => "file_exists",
            Some(gate::Check::ContentCheck(_)) => "content_check",
            Some(gate::Check::ArtifactExists(_)) => "artifact_exists",
            Some(gate::Check::MetricThreshold(_)) => "metric_threshold",
            Some(gate::Check::Command(_)) => "command",
            None => "?",
        };
        fields.add("gate", format!("{} ({check}{})", gate.id, if gate.required { ", required" } else { "" }));
    }
    fields.print();
}

fn print_validation(validation: &proto::RecipeValidation, json: bool) {
    if json {
        return json_line(validation);
    }
    line(if validation.valid { "valid" } else { "not valid" });
    for error in &validation.errors {
        line(format!("error: {error}"));
    }
    for warning in &validation.warnings {
        line(format!("warning: {warning}"));
    }
    if !validation.skills.is_empty() {
        let mut table = Table::new(&["SKILL", "FOUND", "TRUST", "TRUSTED", "SOURCE", "VERSION"]);
        for skill in &validation.skills {
            table.row(vec![
                skill.skill_id.clone(),
                if skill.found { "yes" } else { "no" }.to_owned(),
                output::enum_name(TrustLevel::try_from(skill.trust_level).ok().map(|l| l.as_str_name()), "TRUST_LEVEL_"),
                if skill.trusted { "yes" } else { "no" }.to_owned(),
                skill.source.clone(),
                skill.version.clone(),
            ]);
        }
        table.print();
    }
}
