//! `conclave runs`, `conclave logs` and `conclave stats`.

use clap::{Args, Subcommand};

use super::{
    CliResult, Options, Outcome,
    client::connect,
    follow::follow,
    input,
    output::{self, Fields, Table, json_line, line},
};
use crate::proto::{self, RunState, decision, run_event};

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// Create a run and queue it; prints the run.
    Create(CreateArgs),
    /// Show a run.
    Get {
        /// The run's id.
        id: String,
    },
    /// List runs, newest first.
    List(ListArgs),
    /// Cancel a queued, running or waiting run.
    Cancel {
        /// The run's id.
        id: String,
        /// Why; recorded in the run's error and events.
        #[arg(long)]
        reason: Option<String>,
        /// Stop a running run at once instead of at its next step.
        #[arg(long)]
        force: bool,
    },
    /// Queue a failed or cancelled run again.
    Retry {
        /// The run's id.
        id: String,
        /// Execute every step again, forgetting the results of finished ones.
        #[arg(long)]
        reset_journal: bool,
    },
    /// Answer a run that waits for a decision: --approve, --reject or --input.
    Decide(DecideArgs),
    /// Print a run's events as they happen, until it finishes; exit code 1 if it failed or was
    /// cancelled.
    Watch {
        /// The run's id.
        id: String,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The kind of run, e.g. `echo`, `sleep`, `approval`, `shell`.
    kind: String,
    /// The kind's input: a JSON object, `@file.json`, or `@-` for stdin.
    #[arg(long, short)]
    input: Option<String>,
    /// A label, `key=value` (repeatable).
    #[arg(long = "label", short, value_parser = input::label)]
    labels: Vec<(String, String)>,
    /// Higher runs first, -1000 to 1000.
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<i32>,
    /// Attempts allowed before the run fails.
    #[arg(long)]
    max_attempts: Option<u32>,
    /// The time limit of one attempt, e.g. `30s`, `10m`.
    #[arg(long, value_parser = input::duration)]
    attempt_timeout: Option<prost_types::Duration>,
    /// The run fails if not finished by then: RFC 3339, or a duration from now (`2h`).
    #[arg(long, value_parser = input::time)]
    deadline: Option<prost_types::Timestamp>,
    /// Runs sharing this key run at most --concurrency-limit at a time.
    #[arg(long)]
    concurrency_key: Option<String>,
    /// The limit for --concurrency-key (default 1).
    #[arg(long)]
    concurrency_limit: Option<u32>,
    /// An idempotency key: creating again with it returns the first run.
    #[arg(long)]
    request_id: Option<String>,
    /// The workspace (default `default`).
    #[arg(long)]
    workspace: Option<String>,
}

/// Pagination flags shared by the `list` commands.
#[derive(Debug, Clone, Args)]
pub struct Paging {
    /// Items per page (the server's default when unset).
    #[arg(long)]
    pub page_size: Option<i32>,
    /// Start at this page (the token printed after a page).
    #[arg(long)]
    pub page_token: Option<String>,
    /// Fetch every page.
    #[arg(long)]
    pub all: bool,
}

impl Paging {
    /// Fetches the first page, or every page with --all; prints where the next page starts when
    /// there is one left.
    pub async fn fetch<T, Fut>(&self, mut page: impl FnMut(String) -> Fut) -> Result<Vec<T>, super::CliError>
    where
        Fut: std::future::Future<Output = Result<(Vec<T>, String), tonic::Status>>,
    {
        let mut items = Vec::new();
        let mut token = self.page_token.clone().unwrap_or_default();
        loop {
            let (mut batch, next) = page(token).await?;
            items.append(&mut batch);
            if next.is_empty() {
                return Ok(items);
            }
            if !self.all {
                eprintln!("more: --page-token {next} (or --all)");
                return Ok(items);
            }
            token = next;
        }
    }
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only runs in this state: queued, running, waiting, succeeded, failed, cancelled.
    #[arg(long, value_parser = input::run_state)]
    state: Option<RunState>,
    /// Only runs of this kind.
    #[arg(long)]
    kind: Option<String>,
    /// Only runs with this label, `key=value` (repeatable: all must match).
    #[arg(long = "label", short, value_parser = input::label)]
    labels: Vec<(String, String)>,
    /// The workspace (default `default`).
    #[arg(long)]
    workspace: Option<String>,
    #[command(flatten)]
    paging: Paging,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("decision").required(true).args(["approve", "reject", "input"])))]
struct DecideArgs {
    /// The run's id.
    id: String,
    /// Go ahead.
    #[arg(long)]
    approve: bool,
    /// Do not go ahead.
    #[arg(long)]
    reject: bool,
    /// Structured input the run asked for: a JSON object, `@file.json` or `@-`.
    #[arg(long)]
    input: Option<String>,
    /// The wait point answered (default: the one the run waits at).
    #[arg(long)]
    key: Option<String>,
    /// A note from whoever decides.
    #[arg(long)]
    note: Option<String>,
}

pub async fn runs(args: RunsArgs) -> CliResult {
    let options = args.options;
    let conn = connect(&options).await?;
    let mut client = conn.runs();
    match args.command {
        RunsCommand::Create(create) => {
            let request = proto::CreateRunRequest {
                workspace: create.workspace.unwrap_or_default(),
                kind: create.kind,
                input: create.input.as_deref().map(|arg| input::json_struct("--input", arg)).transpose()?,
                priority: create.priority.unwrap_or(0),
                max_attempts: create.max_attempts.unwrap_or(0),
                attempt_timeout: create.attempt_timeout,
                deadline: create.deadline,
                concurrency_key: create.concurrency_key.unwrap_or_default(),
                concurrency_limit: create.concurrency_limit.unwrap_or(0),
                labels: input::labels(&create.labels),
                request_id: create.request_id.unwrap_or_default(),
            };
            let run = client.create_run(request).await?.into_inner();
            print_run(&run, options.json);
        }
        RunsCommand::Get { id } => {
            let run = client.get_run(proto::GetRunRequest { id }).await?.into_inner();
            print_run(&run, options.json);
        }
        RunsCommand::List(list) => {
            let runs = list
                .paging
                .fetch(|page_token| {
                    let mut client = client.clone();
                    let request = proto::ListRunsRequest {
                        workspace: list.workspace.clone().unwrap_or_default(),
                        state: list.state.map_or(0, i32::from),
                        kind: list.kind.clone().unwrap_or_default(),
                        labels: input::labels(&list.labels),
                        page_size: list.paging.page_size.unwrap_or(0),
                        page_token,
                    };
                    async move {
                        let page = client.list_runs(request).await?.into_inner();
                        Ok((page.runs, page.next_page_token))
                    }
                })
                .await?;
            print_runs(&runs, options.json);
        }
        RunsCommand::Cancel { id, reason, force } => {
            let request = proto::CancelRunRequest { id, reason: reason.unwrap_or_default(), force };
            let run = client.cancel_run(request).await?.into_inner();
            print_run(&run, options.json);
        }
        RunsCommand::Retry { id, reset_journal } => {
            let run = client.retry_run(proto::RetryRunRequest { id, reset_journal }).await?.into_inner();
            print_run(&run, options.json);
        }
        RunsCommand::Decide(decide) => {
            let outcome = if decide.approve {
                decision::Outcome::Approve(true)
            } else if decide.reject {
                decision::Outcome::Reject(true)
            } else {
                let arg = decide.input.as_deref().unwrap_or("{}");
                decision::Outcome::Input(input::json_struct("--input", arg)?)
            };
            let request = proto::SubmitDecisionRequest {
                id: decide.id,
                key: decide.key.unwrap_or_default(),
                decision: Some(proto::Decision { outcome: Some(outcome), note: decide.note.unwrap_or_default() }),
            };
            let run = client.submit_decision(request).await?.into_inner();
            print_run(&run, options.json);
        }
        RunsCommand::Watch { id, after } => {
            let json = options.json;
            let opener = client.clone();
            let watched = id.clone();
            follow(
                after,
                move |after_sequence| {
                    let mut client = opener.clone();
                    let request = proto::WatchRunRequest { id: watched.clone(), after_sequence };
                    async move { client.watch_run(request).await.map(tonic::Response::into_inner) }
                },
                |message: proto::WatchRunResponse| {
                    let mut last = None;
                    for event in &message.events {
                        if json {
                            json_line(event);
                        } else {
                            line(describe_event(event));
                        }
                        last = Some(event.sequence);
                    }
                    Ok(last)
                },
            )
            .await?;
            let run = client.get_run(proto::GetRunRequest { id }).await?.into_inner();
            if !json {
                line(finished_line(&run));
            }
            return Ok(run_outcome(&run));
        }
    }
    Ok(Outcome::Done)
}

/// Failed for a run that ended failed or cancelled.
pub fn run_outcome(run: &proto::Run) -> Outcome {
    if run.state == RunState::Failed as i32 || run.state == RunState::Cancelled as i32 { Outcome::Failed } else { Outcome::Done }
}

/// `run <id> succeeded` and the output or the error, for people.
pub fn finished_line(run: &proto::Run) -> String {
    let mut text = format!("run {} {}", run.id, output::run_state(run.state));
    if let Some(error) = &run.error
        && run.state != RunState::Succeeded as i32
    {
        text.push_str(&format!(": {}", run_error(error)));
    }
    if let Some(value) = &run.output {
        text.push_str(&format!(" output {}", output::value_json(value)));
    }
    text
}

fn run_error(error: &proto::RunError) -> String {
    let code =
        output::enum_name(proto::ErrorCode::try_from(error.code).ok().map(|code| code.as_str_name()), "ERROR_CODE_");
    format!("{code}: {}", error.message)
}

/// Prints a run: every field that is set, or its JSON.
pub fn print_run(run: &proto::Run, json: bool) {
    if json {
        return json_line(run);
    }
    let mut fields = Fields::new();
    fields
        .add("id", &run.id)
        .add("kind", &run.kind)
        .add("state", output::run_state(run.state))
        .add("workspace", &run.workspace)
        .add("attempt", format!("{} of {}", run.attempt, run.max_attempts))
        .add("priority", run.priority.to_string())
        .add("labels", output::labels(&run.labels))
        .add("request id", &run.request_id)
        .add("created", output::time(run.create_time.as_ref()))
        .add("started", output::time(run.start_time.as_ref()))
        .add("finished", output::time(run.finish_time.as_ref()))
        .add("scheduled", output::time(run.scheduled_time.as_ref()))
        .add("deadline", output::time(run.deadline.as_ref()))
        .add("attempt timeout", output::duration(run.attempt_timeout.as_ref()));
    if !run.concurrency_key.is_empty() {
        fields.add("concurrency", format!("{} (limit {})", run.concurrency_key, run.concurrency_limit.max(1)));
    }
    if let Some(waiting) = &run.waiting {
        fields.add("waiting", format!("{}: {} (since {})", waiting.key, waiting.prompt, output::time(waiting.since.as_ref())));
    }
    if let Some(lease) = &run.lease {
        fields.add(
            "lease",
            format!("worker {} epoch {} until {}", lease.worker_id, lease.epoch, output::time(lease.expire_time.as_ref())),
        );
    }
    if run.cancel_requested {
        fields.add("cancel", "requested");
    }
    if !run.replay_of.is_empty() {
        fields.add("replay of", &run.replay_of);
    }
    fields
        .add("events", run.last_event_sequence.to_string())
        .add("log lines", run.last_log_sequence.to_string())
        .add("input", run.input.as_ref().map(|input| output::struct_json(input).to_string()).unwrap_or_default())
        .add("output", run.output.as_ref().map(|value| output::value_json(value).to_string()).unwrap_or_default())
        .add("error", run.error.as_ref().map(run_error).unwrap_or_default());
    let mut decisions: Vec<_> = run.decisions.iter().collect();
    decisions.sort_by(|a, b| a.0.cmp(b.0));
    for (key, decision) in decisions {
        fields.add("decision", format!("{key}: {}", describe_decision(decision)));
    }
    fields.print();
}

fn print_runs(runs: &[proto::Run], json: bool) {
    if json {
        return runs.iter().for_each(json_line);
    }
    let mut table = Table::new(&["ID", "KIND", "STATE", "ATTEMPT", "CREATED (UTC)", "UPDATED", "LABELS"]);
    for run in runs {
        table.row(vec![
            run.id.clone(),
            run.kind.clone(),
            output::run_state(run.state),
            format!("{}/{}", run.attempt, run.max_attempts),
            output::time(run.create_time.as_ref()),
            output::ago(run.update_time.as_ref()),
            output::labels(&run.labels),
        ]);
    }
    table.print();
}

fn describe_decision(decision: &proto::Decision) -> String {
    let what = match &decision.outcome {
        Some(decision::Outcome::Approve(_)) => "approve".to_owned(),
        Some(decision::Outcome::Reject(_)) => "reject".to_owned(),
        Some(decision::Outcome::Input(input)) => format!("input {}", output::struct_json(input)),
        None => "?".to_owned(),
    };
    if decision.note.is_empty() { what } else { format!("{what} ({})", decision.note) }
}

/// One event as a line for people: `#3 07:49:18 queued → running (claimed by worker w1)`.
fn describe_event(event: &proto::RunEvent) -> String {
    let what = match &event.event {
        Some(run_event::Event::Created(created)) => format!("created ({}, priority {})", created.kind, created.priority),
        Some(run_event::Event::StateChanged(change)) => {
            let mut text = format!("{} → {}", output::run_state(change.from), output::run_state(change.to));
            if change.attempt > 0 {
                text.push_str(&format!(", attempt {}", change.attempt));
            }
            if !change.reason.is_empty() {
                text.push_str(&format!(": {}", change.reason));
            }
            if let Some(error) = &change.error {
                text.push_str(&format!(" [{}]", run_error(error)));
            }
            text
        }
        Some(run_event::Event::StepCompleted(step)) => {
            format!("step {} done (attempt {}, {})", step.key, step.attempt, output::duration(step.duration.as_ref()))
        }
        Some(run_event::Event::DecisionRecorded(recorded)) => format!(
            "decision {}: {}",
            recorded.key,
            recorded.decision.as_ref().map(describe_decision).unwrap_or_default()
        ),
        Some(run_event::Event::CancelRequested(cancel)) => {
            format!("cancel requested{}{}", if cancel.force { " (force)" } else { "" }, reason_suffix(&cancel.reason))
        }
        Some(run_event::Event::Workflow(workflow)) => format!(
            "{} {}",
            workflow.r#type,
            workflow.data.as_ref().map(|data| output::struct_json(data).to_string()).unwrap_or_default()
        ),
        None => "(unknown event)".to_owned(),
    };
    format!("#{:<4} {}  {what}", event.sequence, output::time(event.time.as_ref()))
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(": {reason}") }
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub options: Options,
    /// The run's id.
    run: String,
    /// Keep printing new lines until the run finishes (resuming after a broken connection).
    #[arg(long, short)]
    follow: bool,
    /// Only lines after this sequence number.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// Prefix each line with its sequence number, time, attempt and stream.
    #[arg(long, short)]
    timestamps: bool,
}

/// `conclave logs`: the run's stdout and system lines on stdout, its stderr lines on stderr.
pub async fn logs(args: LogsArgs) -> CliResult {
    let conn = connect(&args.options).await?;
    let client = conn.runs();
    let (json, timestamps, follow_live, run) = (args.options.json, args.timestamps, args.follow, args.run);
    follow(
        args.after,
        move |after_sequence| {
            let mut client = client.clone();
            let request = proto::TailLogsRequest { id: run.clone(), after_sequence, follow: follow_live };
            async move { client.tail_logs(request).await.map(tonic::Response::into_inner) }
        },
        |message: proto::TailLogsResponse| {
            let mut last = None;
            for log in &message.lines {
                print_log_line(log, json, timestamps);
                last = Some(log.sequence);
            }
            Ok(last)
        },
    )
    .await?;
    Ok(Outcome::Done)
}

fn print_log_line(log: &proto::LogLine, json: bool, timestamps: bool) {
    if json {
        return json_line(log);
    }
    let stream = proto::LogStream::try_from(log.stream).unwrap_or(proto::LogStream::Unspecified);
    let text = if timestamps {
        format!(
            "#{:<5} {} a{} {:<6} {}",
            log.sequence,
            output::time(log.time.as_ref()),
            log.attempt,
            output::enum_name(Some(stream.as_str_name()), "LOG_STREAM_"),
            log.text
        )
    } else {
        log.text.clone()
    };
    if stream == proto::LogStream::Stderr {
        eprintln!("{text}");
    } else {
        line(text);
    }
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub options: Options,
    /// The workspace (default `default`).
    #[arg(long)]
    workspace: Option<String>,
}

/// `conclave stats`: the queue's statistics.
pub async fn stats(args: StatsArgs) -> CliResult {
    let conn = connect(&args.options).await?;
    let request = proto::GetQueueStatsRequest { workspace: args.workspace.unwrap_or_default() };
    let stats = conn.runs().get_queue_stats(request).await?.into_inner();
    if args.options.json {
        json_line(&stats);
        return Ok(Outcome::Done);
    }
    let mut fields = Fields::new();
    fields
        .add("oldest queued", output::duration(stats.oldest_queued_age.as_ref()))
        .add("active leases", stats.active_leases.to_string())
        .add("worker slots", format!("{} busy of {}", stats.busy_worker_slots, stats.worker_slots))
        .add("finished (1 min)", stats.finished_last_minute.to_string())
        .add("throughput", format!("{:.2} runs/s", stats.throughput_per_second));
    fields.print();
    let mut counts = stats.counts.clone();
    counts.sort_by(|a, b| a.kind.cmp(&b.kind).then(a.state.cmp(&b.state)));
    let mut table = Table::new(&["KIND", "STATE", "COUNT"]);
    for count in &counts {
        table.row(vec![count.kind.clone(), output::run_state(count.state), count.count.to_string()]);
    }
    if !table.is_empty() {
        line("");
        table.print();
    }
    Ok(Outcome::Done)
}
