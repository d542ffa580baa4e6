//! `conclave tasks`.

use clap::{Args, Subcommand};

use super::{
    CliResult, Options, Outcome,
    client::connect,
    follow::follow,
    input,
    output::{self, Fields, Table, json_line, line},
    runs::Paging,
};
use crate::proto::{self, TaskStatus, task_event};

#[derive(Debug, Args)]
pub struct TasksArgs {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    command: TasksCommand,
}

#[derive(Debug, Subcommand)]
enum TasksCommand {
    /// Create a task (started at once unless --no-start); prints the task.
    Create(Box<CreateArgs>),
    /// Start a task created with --no-start.
    Start {
        /// The task's id.
        id: String,
    },
    /// Show a task: its status, rounds, reviews and gates.
    Get {
        /// The task's id.
        id: String,
    },
    /// List tasks, newest first.
    List {
        /// Only tasks in this status: queued, running, waiting_manual, passed, failed_gate,
        /// failed_system, canceled.
        #[arg(long, value_parser = input::task_status)]
        status: Option<TaskStatus>,
        /// The workspace (default `default`).
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Cancel a task at its next step.
    Cancel {
        /// The task's id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// The author's decision on a task waiting for it: --approve or --reject.
    Decide {
        /// The task's id.
        id: String,
        /// Go on with the task.
        #[arg(long, required_unless_present = "reject", conflicts_with = "reject")]
        approve: bool,
        /// End the task (canceled).
        #[arg(long)]
        reject: bool,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Print the task's dialogue as it happens, until it ends; exit code 1 unless it passed.
    Watch {
        /// The task's id.
        id: String,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The whole request as JSON (a `CreateTaskRequest`: `{"title": ..., "author": {...}, ...}`),
    /// inline, `@file.json` or `@-`; the flags below override its fields.
    #[arg(long)]
    request: Option<String>,
    /// The title.
    #[arg(long)]
    title: Option<String>,
    /// What to do.
    #[arg(long)]
    description: Option<String>,
    /// The project's directory on the server's machine (absolute).
    #[arg(long)]
    project_dir: Option<String>,
    /// The author, `provider#alias` (e.g. `mock#author`).
    #[arg(long)]
    author: Option<String>,
    /// A reviewer, `provider#alias` (repeatable; at least one).
    #[arg(long = "reviewer")]
    reviewers: Vec<String>,
    /// manual (stop for the author's decision after the discussion) or autonomous.
    #[arg(long, value_parser = input::task_mode)]
    mode: Option<proto::TaskMode>,
    /// fix_only, guided or proactive.
    #[arg(long, value_parser = input::evolution_level)]
    evolution: Option<proto::EvolutionLevel>,
    /// Rounds at most.
    #[arg(long)]
    max_rounds: Option<u32>,
    /// The test command (`sh -c` in the working directory).
    #[arg(long)]
    test_command: Option<String>,
    /// The lint command.
    #[arg(long)]
    lint_command: Option<String>,
    /// Work in a copy of the project.
    #[arg(long)]
    sandbox: bool,
    /// Merge a passed task's changes back (with --sandbox).
    #[arg(long)]
    auto_merge: bool,
    /// A label, `key=value` (repeatable).
    #[arg(long = "label", short, value_parser = input::label)]
    labels: Vec<(String, String)>,
    /// An idempotency key.
    #[arg(long)]
    request_id: Option<String>,
    /// The workspace (default `default`).
    #[arg(long)]
    workspace: Option<String>,
    /// Create the task without starting it (`conclave tasks start` starts it).
    #[arg(long)]
    no_start: bool,
}

fn participant(id: String) -> proto::TaskParticipant {
    proto::TaskParticipant { id, ..Default::default() }
}

fn create_request(args: CreateArgs) -> Result<proto::CreateTaskRequest, super::CliError> {
    let mut request: proto::CreateTaskRequest = input::request(args.request.as_deref())?;
    let set = |field: &mut String, value: Option<String>| {
        if let Some(value) = value {
            *field = value;
        }
    };
    set(&mut request.title, args.title);
    set(&mut request.description, args.description);
    set(&mut request.project_dir, args.project_dir);
    set(&mut request.test_command, args.test_command);
    set(&mut request.lint_command, args.lint_command);
    set(&mut request.request_id, args.request_id);
    set(&mut request.workspace, args.workspace);
    if let Some(author) = args.author {
        request.author = Some(participant(author));
    }
    if !args.reviewers.is_empty() {
        request.reviewers = args.reviewers.into_iter().map(participant).collect();
    }
    if let Some(mode) = args.mode {
        request.mode = mode.into();
    }
    if let Some(level) = args.evolution {
        request.evolution_level = level.into();
    }
    if let Some(rounds) = args.max_rounds {
        request.max_rounds = rounds;
    }
    request.sandbox |= args.sandbox;
    request.auto_merge |= args.auto_merge;
    request.labels.extend(args.labels);
    // A task the command line creates starts unless asked not to.
    request.auto_start = !args.no_start;
    Ok(request)
}

pub async fn run(args: TasksArgs) -> CliResult {
    let json = args.options.json;
    let conn = connect(&args.options).await?;
    let mut client = conn.tasks();
    match args.command {
        TasksCommand::Create(create) => {
            let task = client.create_task(create_request(*create)?).await?.into_inner();
            print_task(&task, json);
        }
        TasksCommand::Start { id } => {
            let task = client.start_task(proto::StartTaskRequest { id }).await?.into_inner();
            print_task(&task, json);
        }
        TasksCommand::Get { id } => {
            let task = client.get_task(proto::GetTaskRequest { id }).await?.into_inner();
            print_task(&task, json);
        }
        TasksCommand::List { status, workspace, paging } => {
            let tasks = paging
                .fetch(|page_token| {
                    let mut client = client.clone();
                    let request = proto::ListTasksRequest {
                        workspace: workspace.clone().unwrap_or_default(),
                        status: status.map_or(0, i32::from),
                        page_size: paging.page_size.unwrap_or(0),
                        page_token,
                    };
                    async move {
                        let page = client.list_tasks(request).await?.into_inner();
                        Ok((page.tasks, page.next_page_token))
                    }
                })
                .await?;
            if json {
                tasks.iter().for_each(json_line);
            } else {
                let mut table = Table::new(&["ID", "STATUS", "ROUND", "PHASE", "REASON", "CREATED (UTC)", "TITLE"]);
                for task in &tasks {
                    table.row(vec![
                        task.id.clone(),
                        status_name(task.status),
                        if task.round > 0 { task.round.to_string() } else { String::new() },
                        task.phase.clone(),
                        task.reason.clone(),
                        output::time(task.run.as_ref().and_then(|run| run.create_time.as_ref())),
                        output::cut(&task.title, 50),
                    ]);
                }
                table.print();
            }
        }
        TasksCommand::Cancel { id, reason } => {
            let task = client.cancel_task(proto::CancelTaskRequest { id, reason: reason.unwrap_or_default() }).await?.into_inner();
            print_task(&task, json);
        }
        TasksCommand::Decide { id, approve, reject: _, note } => {
            let request = proto::SubmitAuthorDecisionRequest { id, approve, note: note.unwrap_or_default() };
            let task = client.submit_author_decision(request).await?.into_inner();
            print_task(&task, json);
        }
        TasksCommand::Watch { id, after } => {
            let opener = client.clone();
            let watched = id.clone();
            follow(
                after,
                move |after_sequence| {
                    let mut client = opener.clone();
                    let request = proto::WatchTaskRequest { id: watched.clone(), after_sequence };
                    async move { client.watch_task(request).await.map(tonic::Response::into_inner) }
                },
                |event: proto::TaskEvent| {
                    if json {
                        json_line(&event);
                    } else {
                        line(describe_event(&event));
                    }
                    Ok(Some(event.sequence))
                },
            )
            .await?;
            let task = client.get_task(proto::GetTaskRequest { id }).await?.into_inner();
            if !json {
                let reason = if task.reason.is_empty() { String::new() } else { format!(" ({})", task.reason) };
                line(format!("task {} {}{reason}", task.id, status_name(task.status)));
            }
            let failed = [TaskStatus::FailedGate, TaskStatus::FailedSystem, TaskStatus::Canceled]
                .iter()
                .any(|status| task.status == *status as i32);
            return Ok(if failed { Outcome::Failed } else { super::runs::run_outcome(task.run.as_ref().unwrap_or(&proto::Run::default())) });
        }
    }
    Ok(Outcome::Done)
}

fn status_name(status: i32) -> String {
    output::enum_name(TaskStatus::try_from(status).ok().map(|s| s.as_str_name()), "TASK_STATUS_")
}

fn print_task(task: &proto::Task, json: bool) {
    if json {
        return json_line(task);
    }
    let run = task.run.clone().unwrap_or_default();
    let mut fields = Fields::new();
    fields
        .add("id", &task.id)
        .add("title", &task.title)
        .add("status", status_name(task.status))
        .add("reason", &task.reason)
        .add("message", &task.message)
        .add("run state", output::run_state(run.state))
        .add("project", &task.project_dir)
        .add("workdir", &task.workdir)
        .add("labels", output::labels(&run.labels))
        .add("created", output::time(run.create_time.as_ref()))
        .add("finished", output::time(run.finish_time.as_ref()));
    if task.round > 0 {
        fields.add("now", format!("round {} {}", task.round, task.phase));
    }
    if task.merged {
        fields.add("merged", "yes");
    }
    fields.add("diff artifact", &task.diff_artifact_id);
    fields.print();
    for round in &task.rounds {
        line(format!("round {}: gate {}", round.number, round.gate));
        for review in &round.reviews {
            line(format!("  review {}: {}", review.reviewer, review.verdict));
        }
        for (name, check) in [("tests", &round.tests), ("lint", &round.lint)] {
            if let Some(check) = check {
                let mut text = format!("  {name}: {}", check.outcome);
                if !check.command.is_empty() {
                    text.push_str(&format!(" (exit {}): {}", check.exit_code, check.command));
                }
                line(text);
            }
        }
        for finding in &round.findings {
            line(format!("  - {}", output::cut(finding, 200)));
        }
    }
}

fn describe_event(event: &proto::TaskEvent) -> String {
    let what = match &event.event {
        Some(task_event::Event::Message(message)) => {
            format!("[round {} {}] {}: {}", message.round, message.phase, message.speaker, message.text)
        }
        Some(task_event::Event::Gate(gate)) => {
            let mut text = format!("gate, round {}: {}", gate.round, gate.result);
            for finding in &gate.findings {
                text.push_str(&format!("\n  - {finding}"));
            }
            text
        }
        Some(task_event::Event::Status(status)) => format!("status {}", status_name(*status)),
        Some(task_event::Event::Output(text)) => format!("| {text}"),
        None => "(unknown event)".to_owned(),
    };
    format!("#{:<4} {}  {what}", event.sequence, output::time(event.time.as_ref()))
}
