//! `conclave missions`.

use clap::{Args, Subcommand};

use super::{
    CliResult, Options, Outcome,
    client::connect,
    follow::follow,
    input,
    output::{self, Fields, Table, json_line, line},
    runs::{Paging, finished_line, run_outcome},
};
use crate::proto::{self, MissionOutcome, mission_event};

#[derive(Debug, Args)]
pub struct MissionsArgs {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    command: MissionsCommand,
}

#[derive(Debug, Subcommand)]
enum MissionsCommand {
    /// Start a mission; prints the mission.
    Create {
        /// What the mission is to achieve.
        request: Option<String>,
        /// The whole request as JSON (a `CreateMissionRequest`, with `roles`, `limits` and
        /// `gate`), inline, `@file.json` or `@-`; the other flags override its fields.
        #[arg(long = "request")]
        request_json: Option<String>,
        /// Run the plan without a gating debate.
        #[arg(long)]
        skip_gate: bool,
        /// Neither read past missions' memory nor leave one.
        #[arg(long)]
        no_memory: bool,
        /// A label, `key=value` (repeatable).
        #[arg(long = "label", short, value_parser = input::label)]
        labels: Vec<(String, String)>,
        /// An idempotency key.
        #[arg(long)]
        request_id: Option<String>,
        /// The workspace (default `default`).
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Show a mission and, once finished, its result.
    Get {
        /// The mission's id.
        id: String,
    },
    /// List missions, newest first.
    List {
        /// Only missions that ended so: completed, rejected, failed.
        #[arg(long, value_parser = input::mission_outcome)]
        outcome: Option<MissionOutcome>,
        /// The workspace (default `default`).
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Print the mission's progress as it happens, until it ends; exit code 1 if it failed or
    /// was cancelled.
    Watch {
        /// The mission's id.
        id: String,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

pub async fn run(args: MissionsArgs) -> CliResult {
    let json = args.options.json;
    let conn = connect(&args.options).await?;
    let mut client = conn.missions();
    match args.command {
        MissionsCommand::Create { request, request_json, skip_gate, no_memory, labels, request_id, workspace } => {
            let mut create: proto::CreateMissionRequest = input::request(request_json.as_deref())?;
            if let Some(request) = request {
                create.request = request;
            }
            if skip_gate {
                create.gate.get_or_insert_default().skip = true;
            }
            create.no_memory |= no_memory;
            if let Some(request_id) = request_id {
                create.request_id = request_id;
            }
            if let Some(workspace) = workspace {
                create.workspace = workspace;
            }
            create.labels.extend(labels);
            let mission = client.create_mission(create).await?.into_inner();
            print_mission(&mission, json);
        }
        MissionsCommand::Get { id } => {
            let mission = client.get_mission(proto::GetMissionRequest { id }).await?.into_inner();
            print_mission(&mission, json);
        }
        MissionsCommand::List { outcome, workspace, paging } => {
            let missions = paging
                .fetch(|page_token| {
                    let mut client = client.clone();
                    let request = proto::ListMissionsRequest {
                        workspace: workspace.clone().unwrap_or_default(),
                        outcome: outcome.map_or(0, i32::from),
                        page_size: paging.page_size.unwrap_or(0),
                        page_token,
                    };
                    async move {
                        let page = client.list_missions(request).await?.into_inner();
                        Ok((page.missions, page.next_page_token))
                    }
                })
                .await?;
            if json {
                missions.iter().for_each(json_line);
            } else {
                let mut table = Table::new(&["ID", "STATE", "OUTCOME", "CREATED (UTC)", "REQUEST"]);
                for mission in &missions {
                    let run = mission.run.clone().unwrap_or_default();
                    table.row(vec![
                        mission.id.clone(),
                        output::run_state(run.state),
                        mission.result.as_ref().map(|r| outcome_name(r.outcome)).unwrap_or_else(|| "-".to_owned()),
                        output::time(run.create_time.as_ref()),
                        output::cut(&mission.request, 60),
                    ]);
                }
                table.print();
            }
        }
        MissionsCommand::Watch { id, after } => {
            let opener = client.clone();
            let watched = id.clone();
            follow(
                after,
                move |after_sequence| {
                    let mut client = opener.clone();
                    let request = proto::WatchMissionRequest { id: watched.clone(), after_sequence };
                    async move { client.watch_mission(request).await.map(tonic::Response::into_inner) }
                },
                |event: proto::MissionEvent| {
                    if json {
                        json_line(&event);
                    } else {
                        line(describe_event(&event));
                    }
                    Ok(Some(event.sequence))
                },
            )
            .await?;
            let mission = client.get_mission(proto::GetMissionRequest { id }).await?.into_inner();
            let run = mission.run.clone().unwrap_or_default();
            let failed = mission.result.as_ref().is_some_and(|result| result.outcome == MissionOutcome::Failed as i32);
            if !json {
                match &mission.result {
                    Some(result) => line(format!(
                        "mission {} {}: {}",
                        mission.id,
                        outcome_name(result.outcome),
                        output::cut(&result.summary, 200)
                    )),
                    None => line(finished_line(&run)),
                }
            }
            return Ok(if failed { Outcome::Failed } else { run_outcome(&run) });
        }
    }
    Ok(Outcome::Done)
}

fn outcome_name(outcome: i32) -> String {
    output::enum_name(MissionOutcome::try_from(outcome).ok().map(|o| o.as_str_name()), "MISSION_OUTCOME_")
}

fn print_mission(mission: &proto::Mission, json: bool) {
    if json {
        return json_line(mission);
    }
    let run = mission.run.clone().unwrap_or_default();
    let mut fields = Fields::new();
    fields
        .add("id", &mission.id)
        .add("state", output::run_state(run.state))
        .add("request", &mission.request)
        .add("roles", mission.roles.iter().map(|role| role.name.clone()).collect::<Vec<_>>().join(", "))
        .add("labels", output::labels(&run.labels))
        .add("created", output::time(run.create_time.as_ref()))
        .add("finished", output::time(run.finish_time.as_ref()));
    if let Some(error) = &run.error {
        fields.add("error", &error.message);
    }
    if let Some(result) = &mission.result {
        fields
            .add("outcome", outcome_name(result.outcome))
            .add("summary", &result.summary)
            .add("plan", &result.plan_summary)
            .add("validations", result.validations.to_string())
            .add("model calls", result.model_calls.to_string());
        if let Some(gate) = &result.gate {
            let outcome = output::enum_name(
                proto::DebateOutcome::try_from(gate.outcome).ok().map(|o| o.as_str_name()),
                "DEBATE_OUTCOME_",
            );
            fields.add("gate", format!("{outcome} (score {:.2})", gate.score));
        }
    }
    fields.print();
    if let Some(result) = &mission.result
        && !result.steps.is_empty()
    {
        line("");
        let mut table = Table::new(&["STEP", "ROLE", "STATE", "ATTEMPTS", "ARTIFACT", "ERROR"]);
        for step in &result.steps {
            table.row(vec![
                step.id.clone(),
                step.role.clone(),
                step.state.clone(),
                step.attempts.to_string(),
                step.artifact_id.clone(),
                output::cut(&step.error, 60),
            ]);
        }
        table.print();
    }
}

fn describe_event(event: &proto::MissionEvent) -> String {
    let what = match &event.event {
        Some(mission_event::Event::Phase(phase)) => format!("— {phase} —"),
        Some(mission_event::Event::Step(step)) => {
            let error = if step.error.is_empty() { String::new() } else { format!(": {}", step.error) };
            format!("step {} ({}) {}{error}", step.id, step.role, step.state)
        }
        Some(mission_event::Event::State(state)) => format!("state {}", output::run_state(*state)),
        Some(mission_event::Event::Outcome(outcome)) => format!("outcome {}", outcome_name(*outcome)),
        Some(mission_event::Event::Debate(message)) => {
            let said = if message.abstained.is_empty() {
                message.answer.as_ref().map(|answer| output::struct_json(answer).to_string()).unwrap_or_default()
            } else {
                format!("abstained: {}", message.abstained)
            };
            format!("gate: {} ({}) [{}]: {said}", message.participant, message.role, message.phase)
        }
        None => "(unknown event)".to_owned(),
    };
    format!("#{:<4} {}  {what}", event.sequence, output::time(event.time.as_ref()))
}
