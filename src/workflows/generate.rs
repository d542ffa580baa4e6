//! `generate`: one journaled model call through the router, for use from any client. The
//! output is the call's journal record: the text, and the provider, model, parameters, seed,
//! prompt hash, fingerprint, usage and latency that produced it.
//!
//! Input: `prompt` (a user message) or `messages` (a list of `{role, content}` with role
//! `system`, `user` or `assistant`), and optionally `system`, `role` (picks the router's
//! chain), `temperature` (0 to 2, default 0), `max_tokens`, `timeout_seconds` (default 120)
//! and `prompt_version` (recorded with the call).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::input;
use crate::{
    engine::{RunContext, Workflow, WorkflowError},
    error::{Error, Result},
    models::{Message, ModelRequest, Origin, Role, Sampling},
};

/// The `generate` kind.
pub struct Generate;

/// The longest timeout a call may ask for.
const MAX_TIMEOUT_SECONDS: f64 = 3600.0;

struct GenerateParams {
    request: ModelRequest,
    prompt_version: Option<String>,
}

fn params(input: &Map<String, Value>) -> Result<GenerateParams> {
    input::only_fields(
        input,
        &["prompt", "messages", "system", "role", "temperature", "max_tokens", "timeout_seconds", "prompt_version"],
    )?;
    let mut messages = Vec::new();
    match (input::opt_str(input, "prompt")?, input.get("messages")) {
        (Some(_), Some(_)) => return Err(Error::invalid("input.messages", "give either `prompt` or `messages`, not both")),
        (Some(prompt), None) if !prompt.trim().is_empty() => messages.push(Message::user(prompt)),
        (None, Some(Value::Array(items))) if !items.is_empty() => {
            for (index, item) in items.iter().enumerate() {
                messages.push(message(item).map_err(|description| Error::invalid(format!("input.messages[{index}]"), description))?);
            }
        }
        (None, Some(_)) => return Err(Error::invalid("input.messages", "must be a non-empty list of {role, content}")),
        _ => return Err(Error::invalid("input.prompt", "is required (a non-empty string), or give `messages`")),
    }
    let temperature = input::opt_number(input, "temperature", 0.0, 2.0)?;
    let max_tokens = input::opt_count(input, "max_tokens", u64::from(u32::MAX))?.map(|count| count as u32);
    if max_tokens == Some(0) {
        return Err(Error::invalid("input.max_tokens", "must be at least 1"));
    }
    let timeout = input::opt_number(input, "timeout_seconds", 0.001, MAX_TIMEOUT_SECONDS)?.unwrap_or(120.0);
    let request = ModelRequest {
        model: None,
        system: input::opt_str(input, "system")?.map(str::to_owned),
        messages,
        sampling: Sampling { temperature, max_tokens, ..Sampling::default() },
        stop: Vec::new(),
        timeout: Duration::from_secs_f64(timeout),
        workdir: None,
        origin: Origin { role: input::opt_str(input, "role")?.map(str::to_owned), ..Origin::default() },
    };
    Ok(GenerateParams { request, prompt_version: input::opt_str(input, "prompt_version")?.map(str::to_owned) })
}

fn message(item: &Value) -> std::result::Result<Message, String> {
    let role = match item.get("role").and_then(Value::as_str) {
        Some("system") => Role::System,
        Some("user") | None => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => return Err(format!("role `{other}` is not one of system, user, assistant")),
    };
    let content = item.get("content").and_then(Value::as_str).ok_or("needs `content`, a string")?;
    Ok(Message { role, content: content.to_owned() })
}

#[async_trait]
impl Workflow for Generate {
    fn validate(&self, input: &Map<String, Value>) -> Result<()> {
        params(input).map(drop)
    }

    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let params = params(ctx.input()).map_err(|err| WorkflowError::invalid_input(err.to_string()))?;
        let call = ctx.generate("generate", params.request, params.prompt_version.as_deref()).await?;
        serde_json::to_value(call).map_err(|err| WorkflowError::fatal(format!("the model call cannot be recorded: {err}")))
    }
}
