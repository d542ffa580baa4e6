//! Structured answers from agents: a request states the JSON shape it wants, the answer is read
//! from the model's text and checked, and an unusable answer is asked for again once with what
//! was wrong; a second unusable one is an abstention, recorded as such. Debates and missions
//! ask their agents this way.

use serde::{de::DeserializeOwned, Serialize};

use crate::{
    engine::{RunContext, WorkflowError},
    models::{Message, ModelRequest, Origin, Role},
};

/// An answer an agent is asked for.
pub trait Answer: DeserializeOwned + Serialize + Clone + Send {
    /// The JSON shape, as the prompt states it.
    const SHAPE: &'static str;

    /// What makes a well-formed answer unusable, if anything.
    fn problem(&self) -> Option<String>;
}

/// An answer, or an abstention after a second unusable one (with why).
pub enum Answered<A> {
    Given(A),
    Abstained(String),
}

/// Reads an answer from a model's text: the JSON object in it (a fenced code block or bare),
/// checked. The error says what to fix, for the retry prompt.
pub fn parse<A: Answer>(text: &str) -> Result<A, String> {
    let start = text.find('{').ok_or("the answer has no JSON object")?;
    let end = text.rfind('}').ok_or("the answer's JSON object is not closed")?;
    if end < start {
        return Err("the answer has no JSON object".to_owned());
    }
    let answer: A = serde_json::from_str(&text[start..=end]).map_err(|err| format!("the JSON does not fit the shape asked for: {err}"))?;
    match answer.problem() {
        Some(problem) => Err(problem),
        None => Ok(answer),
    }
}

/// Who is asked: a role (its router chain, unless `chain` names providers), and what it is told
/// to be.
#[derive(Debug, Clone)]
pub struct Agent<'a> {
    pub role: &'a str,
    /// Providers to try in order instead of the role's chain (`provider` or `provider#alias`).
    pub chain: &'a [String],
    pub instructions: String,
}

/// Asks `agent` for an answer of type `A` as the journaled model call `key`; an unusable
/// answer is asked for again once (step `key/retry`) with what was wrong.
pub async fn ask<A: Answer>(ctx: &RunContext, key: &str, agent: Agent<'_>, prompt: &str, prompt_version: &str) -> Result<Answered<A>, WorkflowError> {
    let mut request = ModelRequest::prompt(prompt);
    request.system = Some(agent.instructions);
    request.origin = Origin { role: Some(agent.role.to_owned()), chain: agent.chain.to_vec(), ..Origin::default() };
    ask_with(ctx, key, request, prompt_version).await
}

/// As [`ask`], with the request made by the caller (its model, sampling, working directory):
/// the shape of `A` is added to its last message.
pub async fn ask_with<A: Answer>(ctx: &RunContext, key: &str, mut request: ModelRequest, prompt_version: &str) -> Result<Answered<A>, WorkflowError> {
    if let Some(last) = request.messages.last_mut() {
        last.content.push_str(&format!("\n\nAnswer with only a JSON object of this shape:\n{}", A::SHAPE));
    }
    let first = ctx.generate(key, request.clone(), Some(prompt_version)).await?;
    let problem = match parse::<A>(&first.text) {
        Ok(answer) => return Ok(Answered::Given(answer)),
        Err(problem) => problem,
    };
    request.messages.push(Message { role: Role::Assistant, content: first.text });
    request.messages.push(Message::user(format!(
        "That answer could not be used: {problem}. Answer again with only the JSON object of the shape asked for."
    )));
    let second = ctx.generate(&format!("{key}/retry"), request, Some(prompt_version)).await?;
    Ok(match parse::<A>(&second.text) {
        Ok(answer) => Answered::Given(answer),
        Err(problem) => Answered::Abstained(format!("two unusable answers; the second: {problem}")),
    })
}
