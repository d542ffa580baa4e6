//! `conclave.v1.TaskService`: decodes each request, calls [`Tasks`], encodes the answer.

use tonic::{Request, Response, Status};

use super::{convert, resource_events, ResponseStream};
use crate::{
    domain::RunId,
    engine::Engine,
    error::Error,
    proto::{self, task_service_server::TaskService},
    workflows::task::Tasks,
};

/// The `TaskService` adapter.
#[derive(Debug, Clone)]
pub struct TaskApi {
    tasks: Tasks,
}

impl TaskApi {
    /// An adapter over the tasks an engine runs, at most `max_running` at once.
    pub fn new(engine: Engine, max_running: u32) -> Self {
        Self { tasks: Tasks::new(engine, max_running) }
    }
}

fn id(text: &str) -> Result<RunId, Error> {
    RunId::parse("id", text)
}

#[tonic::async_trait]
impl TaskService for TaskApi {
    async fn create_task(&self, request: Request<proto::CreateTaskRequest>) -> Result<Response<proto::Task>, Status> {
        let view = self.tasks.create(convert::create_task_request(request.into_inner())?).await?;
        Ok(Response::new(convert::task(&view, None)))
    }

    async fn start_task(&self, request: Request<proto::StartTaskRequest>) -> Result<Response<proto::Task>, Status> {
        let view = self.tasks.start(id(&request.into_inner().id)?).await?;
        Ok(Response::new(convert::task(&view, None)))
    }

    async fn get_task(&self, request: Request<proto::GetTaskRequest>) -> Result<Response<proto::Task>, Status> {
        let view = self.tasks.get(id(&request.into_inner().id)?).await?;
        let progress = self.tasks.progress(&view).await?;
        Ok(Response::new(convert::task(&view, progress.as_ref())))
    }

    async fn list_tasks(&self, request: Request<proto::ListTasksRequest>) -> Result<Response<proto::ListTasksResponse>, Status> {
        let request = request.into_inner();
        let status = convert::from_task_status(request.status, "status")?;
        let page = self.tasks.list(request.workspace, status, request.page_size, request.page_token).await?;
        Ok(Response::new(proto::ListTasksResponse {
            tasks: page.items.iter().map(|view| convert::task(view, None)).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn cancel_task(&self, request: Request<proto::CancelTaskRequest>) -> Result<Response<proto::Task>, Status> {
        let request = request.into_inner();
        let reason = if request.reason.is_empty() { "cancelled by a client" } else { request.reason.as_str() };
        let view = self.tasks.cancel(id(&request.id)?, reason).await?;
        Ok(Response::new(convert::task(&view, None)))
    }

    async fn force_fail_task(&self, request: Request<proto::ForceFailTaskRequest>) -> Result<Response<proto::Task>, Status> {
        let request = request.into_inner();
        let view = self.tasks.force_fail(id(&request.id)?, &request.reason).await?;
        Ok(Response::new(convert::task(&view, None)))
    }

    async fn submit_author_decision(&self, request: Request<proto::SubmitAuthorDecisionRequest>) -> Result<Response<proto::Task>, Status> {
        let request = request.into_inner();
        let view = self.tasks.decide(id(&request.id)?, request.approve, request.note).await?;
        Ok(Response::new(convert::task(&view, None)))
    }

    type WatchTaskStream = ResponseStream<proto::TaskEvent>;

    async fn watch_task(&self, request: Request<proto::WatchTaskRequest>) -> Result<Response<Self::WatchTaskStream>, Status> {
        let request = request.into_inner();
        let deliveries = self.tasks.watch(id(&request.id)?, request.after_sequence).await?;
        Ok(Response::new(resource_events(deliveries, convert::task_event)))
    }

    async fn get_task_stats(&self, request: Request<proto::GetTaskStatsRequest>) -> Result<Response<proto::TaskStats>, Status> {
        let request = request.into_inner();
        let stats = self.tasks.stats(request.workspace, request.recent).await?;
        Ok(Response::new(convert::task_stats(&stats)))
    }

    async fn create_task_loop(&self, request: Request<proto::CreateTaskLoopRequest>) -> Result<Response<proto::TaskLoop>, Status> {
        let looped = self.tasks.create_loop(convert::create_task_loop_request(request.into_inner())?).await?;
        Ok(Response::new(convert::task_loop(&looped)))
    }

    async fn get_task_loop(&self, request: Request<proto::GetTaskLoopRequest>) -> Result<Response<proto::TaskLoop>, Status> {
        let looped = self.tasks.get_loop(id(&request.into_inner().id)?).await?;
        Ok(Response::new(convert::task_loop(&looped)))
    }

    async fn cancel_task_loop(&self, request: Request<proto::CancelTaskLoopRequest>) -> Result<Response<proto::TaskLoop>, Status> {
        let request = request.into_inner();
        let reason = if request.reason.is_empty() { "cancelled by a client" } else { request.reason.as_str() };
        let looped = self.tasks.cancel_loop(id(&request.id)?, reason).await?;
        Ok(Response::new(convert::task_loop(&looped)))
    }

    async fn get_workspace_tree(&self, request: Request<proto::GetWorkspaceTreeRequest>) -> Result<Response<proto::WorkspaceTree>, Status> {
        let request = request.into_inner();
        let tree = self.tasks.workspace_tree(&request.project_dir, request.depth).await?;
        Ok(Response::new(convert::workspace_tree(&tree)))
    }
}
