//! `CardService`'s domain: cards move through a workspace's stages; entering a stage creates
//! a recipe run as its automation level says, and the card is locked while that run has not
//! ended. When the run ends — however it ends: passed, failed, cancelled, rejected, or failed
//! by the engine after a crash — the card is *settled*: unlocked, its documents updated, and
//! advanced, notified or handled by the recipe's on-fail behaviour. Settling is idempotent and
//! done by whoever sees the ended run first: a sweep in every server, and any read of the card.
//! Every transition is an entry of the card's audit trail.

use std::{collections::BTreeMap, time::Duration};

use tokio_util::sync::CancellationToken;

use super::run::{CardContext, PlannedStep, RecipeReport, RecipeRunSpec, APPROVAL_KEY};
use crate::{
    domain::{
        page_limit, validate_labels, ArtifactId, AutomationLevel, Card, CardChange, CardEvent, CardEventKind, CardId, CardQuery, CardRun,
        Decision, DecisionOutcome, NewCardEvent, OnFail, Page, PageToken, Recipe, RecipeOutcome, Run, RunId, RunState, Timestamp,
    },
    engine::{CreateRunRequest, Engine},
    error::{Error, Result},
};

/// The run kind of recipe runs.
pub const RECIPE_KIND: &str = "recipe";
/// The label every recipe run carries: its card.
pub const CARD_LABEL: &str = "conclave.card";
/// How often a server looks for cards whose run has ended.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(500);
/// The most cards a sweep reads at once.
const SWEEP_BATCH: u32 = 200;
/// The longest title.
const MAX_TITLE_BYTES: usize = 500;
/// The longest description.
const MAX_DESCRIPTION_BYTES: usize = 64 << 10;
/// The most card inputs.
const MAX_INPUTS: usize = 100;

/// A request to create a card.
#[derive(Debug, Clone, Default)]
pub struct CreateCardRequest {
    pub workspace: String,
    pub title: String,
    pub description: String,
    pub inputs: BTreeMap<String, String>,
    pub stage: String,
    pub labels: BTreeMap<String, String>,
    pub actor: String,
}

/// The cards an engine's workspaces hold.
#[derive(Debug, Clone)]
pub struct Cards {
    engine: Engine,
}

impl Cards {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    /// Creates a card in a stage (the first on the board by default) and enters it.
    pub async fn create(&self, request: CreateCardRequest) -> Result<Card> {
        let workspace = self.engine.workspace(&request.workspace).await?;
        validate_card_fields(&request)?;
        let recipes = self.engine.store().list_recipes(&workspace).await?;
        let stage = if request.stage.is_empty() {
            recipes.first().map(|recipe| recipe.stage.clone()).ok_or_else(|| {
                Error::precondition("NO_STAGES", format!("workspace `{workspace}` has no stages: call InitializeRecipes or UpdateRecipe first"))
            })?
        } else {
            request.stage.clone()
        };
        let recipe = recipes.into_iter().find(|recipe| recipe.stage == stage).ok_or_else(|| unknown_stage(&stage))?;
        let now = Timestamp::now();
        let card = Card {
            id: CardId::new(),
            workspace,
            title: request.title,
            description: request.description,
            inputs: request.inputs,
            stage: stage.clone(),
            previous_stage: None,
            active_run: None,
            documents: BTreeMap::new(),
            questions: Vec::new(),
            review_required: false,
            labels: request.labels,
            last_run: None,
            revision: 0,
            created_at: now,
            updated_at: now,
        };
        let actor = actor_or_default(&request.actor);
        let created = NewCardEvent {
            kind: CardEventKind::Created,
            from_stage: None,
            to_stage: Some(stage),
            run: None,
            actor: actor.clone(),
            message: format!("created in stage `{}`", card.stage),
            at: now,
        };
        let (card, _) = self.engine.store().create_card(&card, &[created]).await?;
        self.enter(card, recipe, &actor, Entry::Created).await
    }

    /// A card, settled first if its run has ended.
    pub async fn get(&self, id: CardId) -> Result<Card> {
        let card = self.engine.store().get_card(id).await?.ok_or_else(|| Error::not_found("card", id))?;
        self.settle(card).await
    }

    /// Cards of a workspace, perhaps of one stage, by id.
    pub async fn list(&self, workspace: &str, stage: &str, page_size: i32, page_token: &str) -> Result<Page<Card>> {
        let workspace = self.engine.workspace(workspace).await?;
        let limit = page_limit(page_size, 100)?;
        let tokens = PageToken::for_filters(&format!("cards/{workspace}/{stage}"));
        let after = match page_token {
            "" => None,
            token => Some(CardId::parse("page_token", &tokens.decode(token)?)?),
        };
        let query = CardQuery { workspace, stage: (!stage.is_empty()).then(|| stage.to_owned()), after, limit: limit + 1 };
        let mut cards = self.engine.store().list_cards(&query).await?;
        let more = cards.len() > limit as usize;
        cards.truncate(limit as usize);
        let next_page_token = more.then(|| cards.last().map(|card| tokens.encode(&card.id.to_string()))).flatten();
        Ok(Page { items: cards, next_page_token })
    }

    /// Moves a card to a stage, creating the stage's run as its automation level says.
    pub async fn move_to(&self, id: CardId, stage: &str, actor: &str) -> Result<Card> {
        super::recipe::validate_stage("stage", stage)?;
        let card = self.get(id).await?;
        if let Some(run) = card.active_run {
            return Err(locked(&card, run));
        }
        let recipe = self.engine.store().get_recipe(&card.workspace, stage).await?.ok_or_else(|| unknown_stage(stage))?;
        self.enter(card, recipe, &actor_or_default(actor), Entry::Moved).await
    }

    /// Approves or rejects the run of a card's stage that waits for approval.
    pub async fn decide(&self, id: CardId, approve: bool, actor: &str, comment: &str) -> Result<Card> {
        let card = self.get(id).await?;
        let Some(run_id) = card.active_run else {
            return Err(Error::precondition("NOTHING_TO_DECIDE", format!("card {id} has no run waiting for approval")));
        };
        let run = self.engine.get_run(run_id).await?;
        let spec = RecipeRunSpec::from_input(&run.input)?;
        if spec.automation != AutomationLevel::HumanApproval {
            return Err(Error::precondition("NOTHING_TO_DECIDE", format!("the run of card {id} (stage `{}`) does not wait for approval", spec.stage)));
        }
        let outcome = if approve { DecisionOutcome::Approve } else { DecisionOutcome::Reject };
        let already = run.decisions.contains_key(APPROVAL_KEY);
        self.engine.decide_ahead(run_id, APPROVAL_KEY, Decision { outcome, note: comment.to_owned() }).await?;
        if already {
            return self.get(id).await;
        }
        let (kind, verb) = if approve { (CardEventKind::Approved, "approved") } else { (CardEventKind::Rejected, "rejected") };
        let event = NewCardEvent {
            kind,
            from_stage: None,
            to_stage: Some(spec.stage.clone()),
            run: Some(run_id),
            actor: actor_or_default(actor),
            message: if comment.is_empty() { format!("the `{}` run was {verb}", spec.stage) } else { format!("the `{}` run was {verb}: {comment}", spec.stage) },
            at: Timestamp::now(),
        };
        let change = move |card: &Card| Ok(CardChange { card: card.clone(), events: vec![event.clone()] });
        self.engine.store().update_card(id, &change).await?;
        self.get(id).await
    }

    /// A page of a card's audit trail after `after`, with the sequence to read the next page
    /// after (0 on the last page).
    pub async fn events(&self, id: CardId, after: u64, page_size: i32) -> Result<(Vec<CardEvent>, u64)> {
        let limit = page_limit(page_size, 100)?;
        self.engine.store().get_card(id).await?.ok_or_else(|| Error::not_found("card", id))?;
        let mut events = self.engine.store().read_card_events(id, after, limit + 1).await?;
        let more = events.len() > limit as usize;
        events.truncate(limit as usize);
        let next = if more { events.last().map_or(0, |event| event.sequence) } else { 0 };
        Ok((events, next))
    }

    /// Settles every card whose run has ended, until `stop`.
    pub async fn sweep_until(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(SWEEP_INTERVAL) => {}
            }
            if let Err(err) = self.sweep().await {
                tracing::warn!(error = %err, "could not settle the cards whose runs ended; trying again");
            }
        }
    }

    /// One sweep: settles the cards whose run has ended (one query finds them); returns how
    /// many.
    pub async fn sweep(&self) -> Result<usize> {
        let mut settled = 0;
        let mut after = None;
        loop {
            let cards = self.engine.store().cards_with_ended_runs(after, SWEEP_BATCH).await?;
            let Some(last) = cards.last().map(|card| card.id) else { return Ok(settled) };
            for card in cards {
                let before = card.revision;
                if self.settle(card).await?.revision != before {
                    settled += 1;
                }
            }
            after = Some(last);
        }
    }

    /// Settles a card whose run has ended; a card without one, or whose run goes on, is
    /// returned as it is.
    async fn settle(&self, card: Card) -> Result<Card> {
        let Some(run_id) = card.active_run else { return Ok(card) };
        let run = match self.engine.get_run(run_id).await {
            Ok(run) if !run.state.is_terminal() => return Ok(card),
            Ok(run) => Some(run),
            Err(Error::NotFound { .. }) => None,
            Err(err) => return Err(err),
        };
        let ending = Ending::of(run_id, &card, run.as_ref());
        // A passed fully automatic run advances the card: the next stage's run is created first
        // (seeing the documents this run produced), under a request id tied to the ended run, so
        // whoever settles creates the same one.
        let next = match (&ending.outcome, ending.automation) {
            (RecipeOutcome::Passed, Some(AutomationLevel::FullyAuto)) => self.next_recipe(&card).await?,
            _ => None,
        };
        let mut advance = None;
        if let Some(recipe) = next {
            let mut context = card.clone();
            context.documents.extend(ending.outputs.iter().map(|(name, id)| (name.clone(), *id)));
            let planned = self.plan(&context, &recipe, &format!("card/{}/after/{run_id}", card.id)).await?;
            advance = Some((recipe, planned));
        }
        let change = move |stored: &Card| {
            if stored.active_run != Some(run_id) {
                return Err(Error::Aborted { reason: "SETTLED", message: format!("card {} was settled already", stored.id) });
            }
            Ok(ending.apply(stored, advance.as_ref()))
        };
        match self.engine.store().update_card(card.id, &change).await {
            Ok((card, _)) => Ok(card),
            Err(Error::Aborted { reason: "SETTLED", .. }) => self.engine.store().get_card(card.id).await?.ok_or_else(|| Error::not_found("card", card.id)),
            Err(err) => Err(err),
        }
    }

    /// The recipe of the stage after the card's, if there is one.
    async fn next_recipe(&self, card: &Card) -> Result<Option<Recipe>> {
        let recipes = self.engine.store().list_recipes(&card.workspace).await?;
        let position = recipes.iter().find(|recipe| recipe.stage == card.stage).map(|recipe| recipe.position);
        Ok(position.and_then(|position| recipes.into_iter().find(|recipe| recipe.position > position)))
    }

    /// Enters a stage: records the move and, as the automation level says, creates its run. A
    /// move the recipe refuses (an untrusted skill run fully automatically, a missing skill) does
    /// not happen and is recorded; a card created into such a stage stays there without a run.
    async fn enter(&self, card: Card, recipe: Recipe, actor: &str, entry: Entry) -> Result<Card> {
        let request_id = format!("card/{}/{}/{}", card.id, card.revision, recipe.stage);
        let planned = self.plan(&card, &recipe, &request_id).await?;
        if let (Planned::Refused { reason, message }, Entry::Moved) = (&planned, entry) {
            let refusal = event(CardEventKind::Refused, Some(&card.stage), Some(&recipe.stage), None, actor, message.clone());
            let change = move |stored: &Card| Ok(CardChange { card: stored.clone(), events: vec![refusal.clone()] });
            self.engine.store().update_card(card.id, &change).await?;
            return Err(Error::precondition(reason, message.clone()));
        }
        let created = match &planned {
            Planned::Run { run, .. } => Some(*run),
            _ => None,
        };
        let (revision, actor, stage) = (card.revision, actor.to_owned(), recipe.stage.clone());
        let change = move |stored: &Card| {
            if stored.revision != revision {
                return Err(Error::Aborted {
                    reason: "CARD_CHANGED",
                    message: format!("card {} changed while it was being moved; read it and try again", stored.id),
                });
            }
            if let Some(run) = stored.active_run {
                return Err(locked(stored, run));
            }
            let mut events = Vec::new();
            if entry == Entry::Moved {
                events.push(event(CardEventKind::Moved, Some(&stored.stage), Some(&stage), None, &actor, format!("moved from `{}` to `{stage}`", stored.stage)));
            }
            let mut card = stored.clone();
            card.enter(&planned, &mut events);
            Ok(CardChange { card, events })
        };
        match self.engine.store().update_card(card.id, &change).await {
            Ok((card, _)) => Ok(card),
            Err(err) => {
                // A run created for a move that did not happen must not run, unless a concurrent
                // identical move (the same request id, so the same run) took place.
                if let Some(run) = created {
                    let current = self.engine.store().get_card(card.id).await?;
                    if current.is_some_and(|current| current.active_run != Some(run)) {
                        self.engine.cancel_run(run, "the card's move did not happen", false).await?;
                    }
                }
                Err(err)
            }
        }
    }

    /// What entering a recipe's stage takes: no run, a run (created here, idempotently under
    /// `request_id`), or a refusal.
    async fn plan(&self, card: &Card, recipe: &Recipe, request_id: &str) -> Result<Planned> {
        if !recipe.enabled || recipe.automation == AutomationLevel::Manual {
            let why = if recipe.enabled { "manual stage" } else { "the recipe is disabled" };
            return Ok(Planned::NoRun { stage: recipe.stage.clone(), why: why.to_owned() });
        }
        match self.create_run(card, recipe, request_id).await {
            Ok(run) => Ok(Planned::Run { stage: recipe.stage.clone(), run, automation: recipe.automation }),
            Err(Error::FailedPrecondition { reason, message }) => Ok(Planned::Refused { reason, message }),
            Err(Error::InvalidArgument(violations)) => Ok(Planned::Refused {
                reason: "INVALID_RECIPE",
                message: format!("the `{}` recipe cannot run: {}", recipe.stage, Error::InvalidArgument(violations)),
            }),
            Err(err) => Err(err),
        }
    }

    /// Snapshots the recipe with its skills' versions and creates its run.
    async fn create_run(&self, card: &Card, recipe: &Recipe, request_id: &str) -> Result<RunId> {
        let mut steps = Vec::new();
        for (index, step) in recipe.steps.iter().enumerate() {
            let skill = self.engine.store().get_skill(&card.workspace, &step.skill).await?.ok_or_else(|| {
                Error::precondition("MISSING_SKILL", format!("step {} of stage `{}` runs skill `{}`, which is not in the catalog", index + 1, recipe.stage, step.skill))
            })?;
            let version = skill.effective().ok_or_else(|| {
                Error::precondition("MISSING_SKILL", format!("skill `{}` is pinned to a version it does not have", step.skill))
            })?;
            steps.push(PlannedStep { step: step.clone(), version: version.version.clone(), trust: skill.trust, definition: version.definition.clone() });
        }
        let spec = RecipeRunSpec {
            card: card.id,
            stage: recipe.stage.clone(),
            automation: recipe.automation,
            steps,
            gates: recipe.gates.clone(),
            provider: recipe.provider.clone(),
            on_fail: recipe.on_fail,
            context: CardContext {
                title: card.title.clone(),
                description: card.description.clone(),
                inputs: card.inputs.clone(),
                documents: card.documents.iter().map(|(name, id)| (name.clone(), id.to_string())).collect(),
            },
        };
        spec.validate()?;
        let labels = BTreeMap::from([(CARD_LABEL.to_owned(), card.id.to_string()), ("conclave.stage".to_owned(), recipe.stage.clone())]);
        let run = self
            .engine
            .create_run(CreateRunRequest {
                workspace: card.workspace.to_string(),
                kind: RECIPE_KIND.to_owned(),
                input: spec.to_input()?,
                labels,
                request_id: request_id.to_owned(),
                ..CreateRunRequest::default()
            })
            .await?;
        Ok(run.id)
    }
}

/// How a card came to enter a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Created,
    Moved,
}

/// What entering a stage takes.
#[derive(Debug, Clone)]
enum Planned {
    NoRun { stage: String, why: String },
    Run { stage: String, run: RunId, automation: AutomationLevel },
    Refused { reason: &'static str, message: String },
}

impl Card {
    /// Enters the planned stage (the move itself is recorded by the caller).
    fn enter(&mut self, planned: &Planned, events: &mut Vec<NewCardEvent>) {
        let (stage, run) = match planned {
            Planned::NoRun { stage, why } => {
                events.push(event(CardEventKind::RunEnded, None, Some(stage), None, "system", format!("no run: {why}")));
                (stage.clone(), None)
            }
            Planned::Run { stage, run, automation } => {
                events.push(event(CardEventKind::RunCreated, None, Some(stage), Some(*run), "system", format!("{} run created", automation.as_str())));
                if *automation == AutomationLevel::HumanApproval {
                    events.push(event(CardEventKind::AwaitingApproval, None, Some(stage), Some(*run), "system", "the run waits for approval".to_owned()));
                }
                (stage.clone(), Some(*run))
            }
            Planned::Refused { message, .. } => {
                events.push(event(CardEventKind::Refused, None, None, None, "system", format!("no run: {message}")));
                return;
            }
        };
        if self.stage != stage {
            self.previous_stage = Some(std::mem::replace(&mut self.stage, stage));
        }
        self.active_run = run;
        self.review_required = false;
        self.updated_at = Timestamp::now();
    }
}

/// How a card's run ended, read from the run.
#[derive(Debug, Clone)]
struct Ending {
    run: RunId,
    outcome: RecipeOutcome,
    automation: Option<AutomationLevel>,
    on_fail: OnFail,
    report: Option<RecipeReport>,
    outputs: BTreeMap<String, ArtifactId>,
    message: String,
}

impl Ending {
    fn of(run_id: RunId, card: &Card, run: Option<&Run>) -> Self {
        let Some(run) = run else {
            return Self {
                run: run_id,
                outcome: RecipeOutcome::Failed,
                automation: None,
                on_fail: OnFail::Stay,
                report: None,
                outputs: BTreeMap::new(),
                message: format!("run {run_id} of card {} no longer exists", card.id),
            };
        };
        let spec = RecipeRunSpec::from_input(&run.input).ok();
        let report = match (&run.output, run.state) {
            (Some(output), RunState::Succeeded) => serde_json::from_value::<RecipeReport>(output.clone()).ok(),
            _ => None,
        };
        let (outcome, message) = match (run.state, &report) {
            (RunState::Succeeded, Some(report)) => (report.outcome, report.message.clone()),
            (RunState::Succeeded, None) => (RecipeOutcome::Failed, "the run's report cannot be read".to_owned()),
            (RunState::Cancelled, _) => (RecipeOutcome::Cancelled, run.error.as_ref().map_or_else(|| "cancelled".to_owned(), |error| error.message.clone())),
            _ => (RecipeOutcome::Failed, run.error.as_ref().map_or_else(|| "the run failed".to_owned(), |error| error.message.clone())),
        };
        let outputs = report
            .as_ref()
            .map(|report| report.outputs.iter().filter_map(|(name, id)| ArtifactId::parse("output", id).ok().map(|id| (name.clone(), id))).collect())
            .unwrap_or_default();
        Self {
            run: run_id,
            outcome,
            automation: spec.as_ref().map(|spec| spec.automation),
            on_fail: spec.as_ref().map_or(OnFail::Stay, |spec| spec.on_fail),
            report,
            outputs,
            message,
        }
    }

    /// The card once this ending is applied (and, for a passed fully automatic run, advanced).
    fn apply(&self, stored: &Card, advance: Option<&(Recipe, Planned)>) -> CardChange {
        let mut card = stored.clone();
        let stage = card.stage.clone();
        let mut events = Vec::new();
        card.active_run = None;
        card.updated_at = Timestamp::now();
        card.documents.extend(self.outputs.iter().map(|(name, id)| (name.clone(), *id)));
        card.last_run = Some(CardRun {
            run: self.run,
            stage: stage.clone(),
            outcome: self.outcome,
            gates: self.report.as_ref().map(|report| report.gates.clone()).unwrap_or_default(),
            metrics: self.report.as_ref().map(|report| report.metrics.clone()).unwrap_or_default(),
            message: self.message.clone(),
        });
        events.push(event(
            CardEventKind::RunEnded,
            Some(&stage),
            None,
            Some(self.run),
            "system",
            format!("the `{stage}` run ended {}: {}; the card is unlocked", self.outcome.as_str(), self.message),
        ));
        match self.outcome {
            RecipeOutcome::Passed => match (self.automation, advance) {
                (Some(AutomationLevel::FullyAuto), Some((recipe, planned))) => {
                    events.push(event(CardEventKind::Advanced, Some(&stage), Some(&recipe.stage), Some(self.run), "system", format!("advanced from `{stage}` to `{}`", recipe.stage)));
                    if let Planned::Refused { .. } = planned {
                        card.previous_stage = Some(std::mem::replace(&mut card.stage, recipe.stage.clone()));
                    }
                    card.enter(planned, &mut events);
                }
                (Some(AutomationLevel::AutoNotify), _) => {
                    events.push(event(CardEventKind::Notified, Some(&stage), None, Some(self.run), "system", format!("the `{stage}` run passed: {}", self.message)));
                }
                _ => {}
            },
            RecipeOutcome::FailedGates | RecipeOutcome::Failed => {
                if self.automation == Some(AutomationLevel::AutoNotify) {
                    events.push(event(CardEventKind::Notified, Some(&stage), None, Some(self.run), "system", format!("the `{stage}` run failed: {}", self.message)));
                }
                self.apply_on_fail(&mut card, &stage, &mut events);
            }
            RecipeOutcome::Rejected | RecipeOutcome::Cancelled => {}
        }
        CardChange { card, events }
    }

    fn apply_on_fail(&self, card: &mut Card, stage: &str, events: &mut Vec<NewCardEvent>) {
        match self.on_fail {
            OnFail::Stay => events.push(event(CardEventKind::Stayed, Some(stage), Some(stage), Some(self.run), "system", format!("stays in `{stage}`"))),
            OnFail::Revert => match card.previous_stage.take() {
                Some(previous) => {
                    events.push(event(CardEventKind::Reverted, Some(stage), Some(&previous), Some(self.run), "system", format!("reverted from `{stage}` to `{previous}`")));
                    card.stage = previous;
                }
                None => events.push(event(CardEventKind::Stayed, Some(stage), Some(stage), Some(self.run), "system", format!("stays in `{stage}`: it came from no other stage"))),
            },
            OnFail::CreateQuestions => {
                let failed: Vec<String> = self
                    .report
                    .as_ref()
                    .map(|report| {
                        report
                            .gates
                            .iter()
                            .filter(|gate| gate.required && !gate.passed)
                            .map(|gate| format!("Gate `{}` failed ({}). How should this be resolved?", gate.id, gate.message.trim_end_matches('.')))
                            .collect()
                    })
                    .unwrap_or_default();
                let questions = if failed.is_empty() {
                    vec![format!("The `{stage}` run failed ({}). How should this be resolved?", self.message.trim_end_matches('.'))]
                } else {
                    failed
                };
                events.push(event(CardEventKind::QuestionsCreated, Some(stage), None, Some(self.run), "system", format!("{} questions created", questions.len())));
                card.questions.extend(questions);
            }
            OnFail::ReviewRequired => {
                card.review_required = true;
                events.push(event(CardEventKind::ReviewRequired, Some(stage), None, Some(self.run), "system", format!("the `{stage}` run failed; review required")));
            }
        }
    }
}

fn event(kind: CardEventKind, from: Option<&str>, to: Option<&str>, run: Option<RunId>, actor: &str, message: String) -> NewCardEvent {
    NewCardEvent { kind, from_stage: from.map(str::to_owned), to_stage: to.map(str::to_owned), run, actor: actor.to_owned(), message, at: Timestamp::now() }
}

fn actor_or_default(actor: &str) -> String {
    if actor.is_empty() { "user".to_owned() } else { actor.to_owned() }
}

fn locked(card: &Card, run: RunId) -> Error {
    Error::precondition("CARD_LOCKED", format!("card {} is locked by its `{}` run {run} until it ends; wait, or cancel the run", card.id, card.stage))
}

fn unknown_stage(stage: &str) -> Error {
    Error::precondition("UNKNOWN_STAGE", format!("stage `{stage}` has no recipe in this workspace: create it with UpdateRecipe (allow_missing) or InitializeRecipes"))
}

fn validate_card_fields(request: &CreateCardRequest) -> Result<()> {
    if request.title.trim().is_empty() {
        return Err(Error::invalid("title", "is required"));
    }
    if request.title.len() > MAX_TITLE_BYTES || request.title.chars().any(char::is_control) {
        return Err(Error::invalid("title", format!("is at most {MAX_TITLE_BYTES} bytes, without control characters")));
    }
    if request.description.len() > MAX_DESCRIPTION_BYTES {
        return Err(Error::invalid("description", format!("is {} bytes; at most {MAX_DESCRIPTION_BYTES}", request.description.len())));
    }
    if request.inputs.len() > MAX_INPUTS {
        return Err(Error::invalid("inputs", format!("has {} entries; at most {MAX_INPUTS}", request.inputs.len())));
    }
    if let Some(key) = request.inputs.keys().find(|key| key.is_empty() || key.len() > 128 || key.chars().any(char::is_control)) {
        return Err(Error::invalid("inputs", format!("key `{key}` must be 1 to 128 printable characters")));
    }
    if !request.stage.is_empty() {
        super::recipe::validate_stage("stage", &request.stage)?;
    }
    let mut violations = Vec::new();
    validate_labels(&request.labels, "labels", &mut violations);
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    Ok(())
}
