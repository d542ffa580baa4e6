//! `conclave debates`.

use clap::{Args, Subcommand};

use super::{
    CliResult, Options, Outcome,
    client::connect,
    follow::follow,
    input,
    output::{self, Fields, Table, json_line, line},
    runs::{Paging, finished_line, run_outcome},
};
use crate::proto::{self, DebateOutcome, debate_event};

#[derive(Debug, Args)]
pub struct DebatesArgs {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    command: DebatesCommand,
}

#[derive(Debug, Subcommand)]
enum DebatesCommand {
    /// Start a debate on a proposal; prints the debate.
    Create {
        /// The proposal to decide (or the question to answer with one).
        proposal: Option<String>,
        /// The whole request as JSON (a `CreateDebateRequest`, with `participants` and
        /// `protocol`), inline, `@file.json` or `@-`; the other flags override its fields.
        #[arg(long)]
        request: Option<String>,
        /// Background the participants read.
        #[arg(long)]
        context: Option<String>,
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
    /// Show a debate and, once finished, its result.
    Get {
        /// The debate's id.
        id: String,
    },
    /// List debates, newest first.
    List {
        /// Only debates that ended so: approved, conditionally_approved, rejected, vetoed,
        /// quorum_not_reached.
        #[arg(long, value_parser = input::debate_outcome)]
        outcome: Option<DebateOutcome>,
        /// The workspace (default `default`).
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Print the transcript as it happens, until the debate ends; exit code 1 if its run failed
    /// or was cancelled.
    Watch {
        /// The debate's id.
        id: String,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

pub async fn run(args: DebatesArgs) -> CliResult {
    let json = args.options.json;
    let conn = connect(&args.options).await?;
    let mut client = conn.debates();
    match args.command {
        DebatesCommand::Create { proposal, request, context, labels, request_id, workspace } => {
            let mut request: proto::CreateDebateRequest = input::request(request.as_deref())?;
            if let Some(proposal) = proposal {
                request.proposal = proposal;
            }
            if let Some(context) = context {
                request.context = context;
            }
            if let Some(request_id) = request_id {
                request.request_id = request_id;
            }
            if let Some(workspace) = workspace {
                request.workspace = workspace;
            }
            request.labels.extend(labels);
            let debate = client.create_debate(request).await?.into_inner();
            print_debate(&debate, json);
        }
        DebatesCommand::Get { id } => {
            let debate = client.get_debate(proto::GetDebateRequest { id }).await?.into_inner();
            print_debate(&debate, json);
        }
        DebatesCommand::List { outcome, workspace, paging } => {
            let debates = paging
                .fetch(|page_token| {
                    let mut client = client.clone();
                    let request = proto::ListDebatesRequest {
                        workspace: workspace.clone().unwrap_or_default(),
                        outcome: outcome.map_or(0, i32::from),
                        page_size: paging.page_size.unwrap_or(0),
                        page_token,
                    };
                    async move {
                        let page = client.list_debates(request).await?.into_inner();
                        Ok((page.debates, page.next_page_token))
                    }
                })
                .await?;
            if json {
                debates.iter().for_each(json_line);
            } else {
                let mut table = Table::new(&["ID", "STATE", "OUTCOME", "SCORE", "CREATED (UTC)", "PROPOSAL"]);
                for debate in &debates {
                    let run = debate.run.clone().unwrap_or_default();
                    let result = debate.result.as_ref();
                    table.row(vec![
                        debate.id.clone(),
                        output::run_state(run.state),
                        result.map(|r| outcome_name(r.outcome)).unwrap_or_else(|| "-".to_owned()),
                        result.map(|r| format!("{:.2}", r.score)).unwrap_or_else(|| "-".to_owned()),
                        output::time(run.create_time.as_ref()),
                        output::cut(&debate.proposal, 50),
                    ]);
                }
                table.print();
            }
        }
        DebatesCommand::Watch { id, after } => {
            let opener = client.clone();
            let watched = id.clone();
            follow(
                after,
                move |after_sequence| {
                    let mut client = opener.clone();
                    let request = proto::WatchDebateRequest { id: watched.clone(), after_sequence };
                    async move { client.watch_debate(request).await.map(tonic::Response::into_inner) }
                },
                |event: proto::DebateEvent| {
                    if json {
                        json_line(&event);
                    } else {
                        line(describe_event(&event));
                    }
                    Ok(Some(event.sequence))
                },
            )
            .await?;
            let debate = client.get_debate(proto::GetDebateRequest { id }).await?.into_inner();
            let run = debate.run.clone().unwrap_or_default();
            if !json {
                match &debate.result {
                    Some(result) => line(format!(
                        "debate {} {} (score {:.2}, majority {})",
                        debate.id,
                        outcome_name(result.outcome),
                        result.score,
                        result.majority
                    )),
                    None => line(finished_line(&run)),
                }
            }
            return Ok(run_outcome(&run));
        }
    }
    Ok(Outcome::Done)
}

fn outcome_name(outcome: i32) -> String {
    output::enum_name(DebateOutcome::try_from(outcome).ok().map(|o| o.as_str_name()), "DEBATE_OUTCOME_")
}

fn print_debate(debate: &proto::Debate, json: bool) {
    if json {
        return json_line(debate);
    }
    let run = debate.run.clone().unwrap_or_default();
    let mut fields = Fields::new();
    fields
        .add("id", &debate.id)
        .add("state", output::run_state(run.state))
        .add("proposal", &debate.proposal)
        .add("context", output::cut(&debate.context, 200))
        .add(
            "participants",
            debate
                .participants
                .iter()
                .map(|p| format!("{} ({}{})", p.name, p.role, if p.veto { ", veto" } else { "" }))
                .collect::<Vec<_>>()
                .join(", "),
        )
        .add("labels", output::labels(&run.labels))
        .add("created", output::time(run.create_time.as_ref()))
        .add("finished", output::time(run.finish_time.as_ref()));
    if let Some(error) = &run.error {
        fields.add("error", &error.message);
    }
    if let Some(result) = &debate.result {
        fields
            .add("outcome", outcome_name(result.outcome))
            .add("score", format!("{:.2}", result.score))
            .add("participation", format!("{:.2}", result.participation))
            .add("majority", &result.majority)
            .add("vetoed by", &result.vetoed_by)
            .add("veto reason", &result.veto_reason)
            .add("conditions", result.conditions.join("\n"))
            .add("cycles", result.mitigation_cycles.to_string())
            .add("final proposal", if result.proposal != debate.proposal { result.proposal.clone() } else { String::new() })
            .add("report", &result.report_artifact_id);
        for vote in &result.votes {
            let verdict = if !vote.counted {
                format!("abstained ({})", vote.abstained)
            } else if vote.approve {
                format!("approve, confidence {:.2}", vote.confidence)
            } else {
                format!("reject, confidence {:.2}", vote.confidence)
            };
            fields.add("vote", format!("{}: {verdict}", vote.participant));
        }
    }
    fields.print();
}

fn describe_event(event: &proto::DebateEvent) -> String {
    let what = match &event.event {
        Some(debate_event::Event::Phase(phase)) => format!("— {} (cycle {}) —", phase.phase, phase.cycle),
        Some(debate_event::Event::Message(message)) => {
            let said = if message.abstained.is_empty() {
                message.answer.as_ref().map(|answer| output::struct_json(answer).to_string()).unwrap_or_default()
            } else {
                format!("abstained: {}", message.abstained)
            };
            format!("{} ({}) [{} {}]: {said}", message.participant, message.role, message.phase, message.cycle)
        }
        Some(debate_event::Event::State(state)) => format!("state {}", output::run_state(*state)),
        Some(debate_event::Event::Outcome(outcome)) => format!("outcome {}", outcome_name(*outcome)),
        None => "(unknown event)".to_owned(),
    };
    format!("#{:<4} {}  {what}", event.sequence, output::time(event.time.as_ref()))
}
