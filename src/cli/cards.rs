//! `conclave cards`.

use clap::{Args, Subcommand};

use super::{
    CliResult, Options, Outcome,
    client::connect,
    input,
    output::{self, Fields, Table, json_line, line},
    runs::Paging,
};
use crate::proto::{self, CardEventKind, RecipeOutcome};

#[derive(Debug, Args)]
pub struct CardsArgs {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    command: CardsCommand,
}

#[derive(Debug, Subcommand)]
enum CardsCommand {
    /// Create a card; entering its stage runs the stage's recipe. Prints the card.
    Create {
        /// The card's title.
        title: String,
        /// What it is about.
        #[arg(long)]
        description: Option<String>,
        /// The stage to start in (the first on the board by default).
        #[arg(long)]
        stage: Option<String>,
        /// An input the recipes read as `card.inputs.<key>`, `key=value` (repeatable).
        #[arg(long = "input", value_parser = input::label)]
        inputs: Vec<(String, String)>,
        /// A label, `key=value` (repeatable).
        #[arg(long = "label", short, value_parser = input::label)]
        labels: Vec<(String, String)>,
        /// Who creates it, for the audit trail.
        #[arg(long)]
        actor: Option<String>,
        /// The workspace (default `default`).
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Show a card.
    Get {
        /// The card's id.
        id: String,
    },
    /// List cards.
    List {
        /// Only cards in this stage.
        #[arg(long)]
        stage: Option<String>,
        /// The workspace (default `default`).
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Move a card to a stage (exit code 4 while it is locked by its run, or for an unknown
    /// stage). Prints the card.
    Move {
        /// The card's id.
        id: String,
        /// The stage to move it to.
        stage: String,
        /// Who moves it, for the audit trail.
        #[arg(long)]
        actor: Option<String>,
    },
    /// Approve or reject the run waiting for approval in a card's stage. Prints the card.
    #[command(group(clap::ArgGroup::new("decision").required(true).args(["approve", "reject"])))]
    Decide {
        /// The card's id.
        id: String,
        /// Approve the run.
        #[arg(long)]
        approve: bool,
        /// Reject the run.
        #[arg(long)]
        reject: bool,
        /// Why.
        #[arg(long)]
        comment: Option<String>,
        /// Who decides, for the audit trail.
        #[arg(long)]
        actor: Option<String>,
    },
    /// A card's audit trail, oldest first.
    Events {
        /// The card's id.
        id: String,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

pub async fn run(args: CardsArgs) -> CliResult {
    let json = args.options.json;
    let conn = connect(&args.options).await?;
    let mut client = conn.cards();
    match args.command {
        CardsCommand::Create { title, description, stage, inputs, labels, actor, workspace } => {
            let request = proto::CreateCardRequest {
                workspace: workspace.unwrap_or_default(),
                title,
                description: description.unwrap_or_default(),
                inputs: input::labels(&inputs),
                stage: stage.unwrap_or_default(),
                labels: input::labels(&labels),
                actor: actor.unwrap_or_default(),
            };
            let card = client.create_card(request).await?.into_inner();
            print_card(&card, json);
        }
        CardsCommand::Get { id } => {
            let card = client.get_card(proto::GetCardRequest { id }).await?.into_inner();
            print_card(&card, json);
        }
        CardsCommand::List { stage, workspace, paging } => {
            let cards = paging
                .fetch(|page_token| {
                    let mut client = client.clone();
                    let request = proto::ListCardsRequest {
                        workspace: workspace.clone().unwrap_or_default(),
                        stage: stage.clone().unwrap_or_default(),
                        page_size: paging.page_size.unwrap_or(0),
                        page_token,
                    };
                    async move {
                        let page = client.list_cards(request).await?.into_inner();
                        Ok((page.cards, page.next_page_token))
                    }
                })
                .await?;
            if json {
                cards.iter().for_each(json_line);
            } else {
                let mut table = Table::new(&["ID", "STAGE", "LOCKED", "LAST RUN", "UPDATED (UTC)", "TITLE"]);
                for card in &cards {
                    table.row(vec![
                        card.id.clone(),
                        card.stage.clone(),
                        if card.locked { "yes" } else { "no" }.to_owned(),
                        card.last_run.as_ref().map(|run| outcome_name(run.outcome)).unwrap_or_else(|| "-".to_owned()),
                        output::time(card.updated_at.as_ref()),
                        output::cut(&card.title, 50),
                    ]);
                }
                table.print();
            }
        }
        CardsCommand::Move { id, stage, actor } => {
            let card = client.move_card(proto::MoveCardRequest { id, stage, actor: actor.unwrap_or_default() }).await?.into_inner();
            print_card(&card, json);
        }
        CardsCommand::Decide { id, approve, reject: _, comment, actor } => {
            let request =
                proto::DecideCardRunRequest { id, approve, actor: actor.unwrap_or_default(), comment: comment.unwrap_or_default() };
            let card = client.decide_card_run(request).await?.into_inner();
            print_card(&card, json);
        }
        CardsCommand::Events { id, after } => {
            let mut after_sequence = after;
            loop {
                let request = proto::ListCardEventsRequest { id: id.clone(), after_sequence, page_size: 0 };
                let page = client.list_card_events(request).await?.into_inner();
                for event in &page.events {
                    if json {
                        json_line(event);
                    } else {
                        line(describe_event(event));
                    }
                }
                if page.next_after_sequence == 0 || page.next_after_sequence <= after_sequence {
                    break;
                }
                after_sequence = page.next_after_sequence;
            }
        }
    }
    Ok(Outcome::Done)
}

fn outcome_name(outcome: i32) -> String {
    output::enum_name(RecipeOutcome::try_from(outcome).ok().map(|o| o.as_str_name()), "RECIPE_OUTCOME_")
}

fn sorted(map: &std::collections::HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = map.iter().map(|(key, value)| format!("{key}={value}")).collect();
    pairs.sort();
    pairs.join(", ")
}

fn print_card(card: &proto::Card, json: bool) {
    if json {
        return json_line(card);
    }
    let mut fields = Fields::new();
    fields
        .add("id", &card.id)
        .add("title", &card.title)
        .add("description", output::cut(&card.description, 200))
        .add("stage", &card.stage)
        .add("previous stage", &card.previous_stage)
        .add("locked", if card.locked { "yes" } else { "no" })
        .add("active run", &card.active_run_id)
        .add("inputs", sorted(&card.inputs))
        .add("labels", output::labels(&card.labels))
        .add("documents", sorted(&card.documents))
        .add("questions", card.questions.join("\n"))
        .add("review", if card.review_required { "required" } else { "" })
        .add("workspace", &card.workspace)
        .add("created", output::time(card.created_at.as_ref()))
        .add("updated", output::time(card.updated_at.as_ref()));
    if let Some(run) = &card.last_run {
        fields
            .add("last run", format!("{} in {}: {}", run.run_id, run.stage, outcome_name(run.outcome)))
            .add("run message", &run.message);
        for gate in &run.gates {
            let verdict = if gate.passed { "passed" } else { "failed" };
            fields.add("gate", format!("{} ({}{}) {verdict}: {}", gate.id, gate.r#type, if gate.required { ", required" } else { "" }, gate.message));
        }
        let mut metrics: Vec<String> = run.metrics.iter().map(|(name, metric)| format!("{name}={}", metric.value)).collect();
        metrics.sort();
        fields.add("metrics", metrics.join(", "));
    }
    fields.print();
}

fn describe_event(event: &proto::CardEvent) -> String {
    let kind = output::enum_name(CardEventKind::try_from(event.kind).ok().map(|k| k.as_str_name()), "CARD_EVENT_KIND_");
    let mut what = kind;
    if !event.from_stage.is_empty() || !event.to_stage.is_empty() {
        what.push_str(&format!(" {} → {}", if event.from_stage.is_empty() { "-" } else { &event.from_stage }, event.to_stage));
    }
    if !event.run_id.is_empty() {
        what.push_str(&format!(" run {}", event.run_id));
    }
    if !event.actor.is_empty() {
        what.push_str(&format!(" by {}", event.actor));
    }
    if !event.message.is_empty() {
        what.push_str(&format!(": {}", event.message));
    }
    format!("#{:<4} {}  {what}", event.sequence, output::time(event.at.as_ref()))
}
