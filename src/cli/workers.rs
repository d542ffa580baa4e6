//! `conclave workers`.

use clap::{Args, Subcommand};

use super::{
    CliResult, Options, Outcome,
    client::connect,
    output::{self, Fields, Table, json_line},
    runs::Paging,
};
use crate::proto::{self, WorkerState};

#[derive(Debug, Args)]
pub struct WorkersArgs {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    command: WorkersCommand,
}

#[derive(Debug, Subcommand)]
enum WorkersCommand {
    /// List workers: state, load, last heartbeat.
    List {
        #[command(flatten)]
        paging: Paging,
    },
    /// Ask a worker to finish what it holds and take no new runs.
    Drain {
        /// The worker's id.
        id: String,
        /// Take the drain request back.
        #[arg(long)]
        undrain: bool,
    },
}

pub async fn run(args: WorkersArgs) -> CliResult {
    let json = args.options.json;
    let conn = connect(&args.options).await?;
    let mut client = conn.workers();
    match args.command {
        WorkersCommand::List { paging } => {
            let workers = paging
                .fetch(|page_token| {
                    let mut client = client.clone();
                    let request = proto::ListWorkersRequest { page_size: paging.page_size.unwrap_or(0), page_token };
                    async move {
                        let page = client.list_workers(request).await?.into_inner();
                        Ok((page.workers, page.next_page_token))
                    }
                })
                .await?;
            if json {
                workers.iter().for_each(json_line);
            } else {
                let mut table = Table::new(&["ID", "NAME", "STATE", "RUNNING", "EMBEDDED", "LAST HEARTBEAT", "KINDS"]);
                for worker in &workers {
                    table.row(vec![
                        worker.id.clone(),
                        worker.name.clone(),
                        state_name(worker.state),
                        format!("{}/{}", worker.running, worker.capacity),
                        if worker.embedded { "yes" } else { "no" }.to_owned(),
                        output::ago(worker.last_heartbeat_time.as_ref()),
                        output::cut(&worker.kinds.join(","), 60),
                    ]);
                }
                table.print();
            }
        }
        WorkersCommand::Drain { id, undrain } => {
            let worker = client.drain_worker(proto::DrainWorkerRequest { worker_id: id, undrain }).await?.into_inner();
            if json {
                json_line(&worker);
            } else {
                let mut fields = Fields::new();
                fields
                    .add("id", &worker.id)
                    .add("name", &worker.name)
                    .add("state", state_name(worker.state))
                    .add("running", format!("{} of {}", worker.running, worker.capacity))
                    .add("last heartbeat", output::time(worker.last_heartbeat_time.as_ref()));
                fields.print();
            }
        }
    }
    Ok(Outcome::Done)
}

fn state_name(state: i32) -> String {
    output::enum_name(WorkerState::try_from(state).ok().map(|s| s.as_str_name()), "WORKER_STATE_")
}
