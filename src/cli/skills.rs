//! `conclave skills`.

use clap::{Args, Subcommand};

use super::{
    CliResult, Options, Outcome,
    client::connect,
    input,
    output::{self, Fields, Table, json_line, line},
    runs::Paging,
};
use crate::proto::{self, SkillKind, TrustLevel};

#[derive(Debug, Args)]
pub struct SkillsArgs {
    #[command(flatten)]
    pub options: Options,
    /// The workspace (default `default`).
    #[arg(long, global = true)]
    workspace: Option<String>,
    #[command(subcommand)]
    command: SkillsCommand,
}

#[derive(Debug, Subcommand)]
enum SkillsCommand {
    /// Sync a directory of `<skill-id>/SKILL.md` skills on the server into the catalog; prints
    /// the skills synced, and each malformed file on stderr (which does not fail the command).
    Sync {
        /// The directory, as the server sees it.
        path: String,
    },
    /// List skills by id.
    List {
        /// Words that must each appear in the id, name, description or tags.
        #[arg(long)]
        query: Option<String>,
        /// Only skills with this tag (repeatable: all must match).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Only skills of this trust level: vetted, community, experimental.
        #[arg(long, value_parser = trust_level)]
        trust: Option<TrustLevel>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show a skill.
    Get {
        /// The skill's id.
        id: String,
    },
    /// Set a skill's trust level (vetted skills may run fully automatically).
    Trust {
        /// The skill's id.
        id: String,
        /// vetted, community or experimental.
        #[arg(value_parser = trust_level)]
        level: TrustLevel,
    },
    /// Pin the version recipes use; without a version, follow the latest again.
    Pin {
        /// The skill's id.
        id: String,
        /// The version to pin.
        version: Option<String>,
    },
    /// Import a skill from the configured remote registry (it starts `community`).
    Import {
        /// The registry's id of the skill.
        remote_id: String,
        /// Pin the imported version.
        #[arg(long)]
        pin: bool,
    },
}

/// A `TrustLevel` from its short or full name (clap value parser).
fn trust_level(arg: &str) -> Result<TrustLevel, String> {
    input::enum_value(
        arg,
        "TRUST_LEVEL_",
        TrustLevel::from_str_name,
        &[TrustLevel::Vetted, TrustLevel::Community, TrustLevel::Experimental],
        |value: TrustLevel| value.as_str_name(),
    )
}

pub async fn run(args: SkillsArgs) -> CliResult {
    let json = args.options.json;
    let workspace = args.workspace.unwrap_or_default();
    let conn = connect(&args.options).await?;
    let mut client = conn.skills();
    match args.command {
        SkillsCommand::Sync { path } => {
            let synced = client.sync_skills(proto::SyncSkillsRequest { workspace, path }).await?.into_inner();
            if json {
                json_line(&synced);
            } else {
                let mut table = Table::new(&["ID", "VERSION", "CHANGED"]);
                for skill in &synced.skills {
                    table.row(vec![skill.id.clone(), skill.version.clone(), if skill.changed { "yes" } else { "no" }.to_owned()]);
                }
                table.print();
            }
            for error in &synced.errors {
                eprintln!("conclave: {}: {}", error.path, error.reason);
            }
        }
        SkillsCommand::List { query, tags, trust, paging } => {
            let skills = paging
                .fetch(|page_token| {
                    let mut client = client.clone();
                    let request = proto::ListSkillsRequest {
                        workspace: workspace.clone(),
                        query: query.clone().unwrap_or_default(),
                        tags: tags.clone(),
                        trust_level: trust.map_or(0, i32::from),
                        page_size: paging.page_size.unwrap_or(0),
                        page_token,
                    };
                    async move {
                        let page = client.list_skills(request).await?.into_inner();
                        Ok((page.skills, page.next_page_token))
                    }
                })
                .await?;
            if json {
                skills.iter().for_each(json_line);
            } else {
                let mut table = Table::new(&["ID", "VERSION", "TRUST", "KIND", "SOURCE", "TAGS", "NAME"]);
                for skill in &skills {
                    table.row(vec![
                        skill.id.clone(),
                        version(skill),
                        trust_name(skill.trust_level),
                        kind_name(skill.kind),
                        skill.source.clone(),
                        skill.tags.join(","),
                        output::cut(&skill.name, 50),
                    ]);
                }
                table.print();
            }
        }
        SkillsCommand::Get { id } => {
            let skill = client.get_skill(proto::GetSkillRequest { workspace, id }).await?.into_inner();
            print_skill(&skill, json);
        }
        SkillsCommand::Trust { id, level } => {
            let request = proto::SetSkillTrustRequest { workspace, id, trust_level: level.into() };
            let skill = client.set_skill_trust(request).await?.into_inner();
            print_skill(&skill, json);
        }
        SkillsCommand::Pin { id, version } => {
            let request = proto::PinSkillVersionRequest { workspace, id, version: version.unwrap_or_default() };
            let skill = client.pin_skill_version(request).await?.into_inner();
            print_skill(&skill, json);
        }
        SkillsCommand::Import { remote_id, pin } => {
            let request = proto::ImportSkillRequest { workspace, remote_id, pin_version: pin };
            let skill = client.import_skill(request).await?.into_inner();
            print_skill(&skill, json);
        }
    }
    Ok(Outcome::Done)
}

fn trust_name(level: i32) -> String {
    output::enum_name(TrustLevel::try_from(level).ok().map(|l| l.as_str_name()), "TRUST_LEVEL_")
}

fn kind_name(kind: i32) -> String {
    output::enum_name(SkillKind::try_from(kind).ok().map(|k| k.as_str_name()), "SKILL_KIND_")
}

/// The version recipes use, marked when pinned.
fn version(skill: &proto::Skill) -> String {
    if skill.pinned_version.is_empty() { skill.version.clone() } else { format!("{} (pinned)", skill.version) }
}

fn print_skill(skill: &proto::Skill, json: bool) {
    if json {
        return json_line(skill);
    }
    let fields_of = |fields: &[proto::SkillField]| {
        fields
            .iter()
            .map(|f| format!("{} ({}{})", f.name, f.r#type, if f.required { ", required" } else { "" }))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut fields = Fields::new();
    fields
        .add("id", &skill.id)
        .add("name", &skill.name)
        .add("description", output::cut(&skill.description, 200))
        .add("kind", kind_name(skill.kind))
        .add("trust", trust_name(skill.trust_level))
        .add("version", version(skill))
        .add("latest", &skill.latest_version)
        .add("versions", skill.versions.iter().map(|v| v.version.clone()).collect::<Vec<_>>().join(", "))
        .add("inputs", fields_of(&skill.inputs))
        .add("outputs", fields_of(&skill.outputs))
        .add("tags", skill.tags.join(", "))
        .add("source", &skill.source)
        .add("location", &skill.source_location)
        .add("remote id", &skill.remote_id)
        .add("workspace", &skill.workspace)
        .add("created", output::time(skill.created_at.as_ref()))
        .add("updated", output::time(skill.updated_at.as_ref()));
    fields.print();
    if !skill.prompt_template.is_empty() {
        line("");
        line(&skill.prompt_template);
    }
}
