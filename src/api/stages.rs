//! `conclave.v1.SkillService`, `RecipeService` and `CardService`: each decodes a request,
//! calls [`Skills`], [`Recipes`] or [`Cards`], and encodes the answer.

use tonic::{Request, Response, Status};

use super::convert::stages as encode;
use crate::{
    domain::CardId,
    engine::Engine,
    error::Error,
    proto::{self, card_service_server::CardService, recipe_service_server::RecipeService, skill_service_server::SkillService},
    workflows::stage::{recipe::UpdateRecipeRequest, Cards, CreateCardRequest, Recipes, RegistrySettings, Skills},
};

/// The `SkillService` adapter.
#[derive(Debug, Clone)]
pub struct SkillApi {
    skills: Skills,
}

impl SkillApi {
    /// An adapter over the catalogs of an engine's workspaces, importing from `registry`.
    pub fn new(engine: Engine, registry: Option<RegistrySettings>) -> Self {
        Self { skills: Skills::new(engine, registry) }
    }
}

#[tonic::async_trait]
impl SkillService for SkillApi {
    async fn sync_skills(&self, request: Request<proto::SyncSkillsRequest>) -> Result<Response<proto::SyncSkillsResponse>, Status> {
        let request = request.into_inner();
        let report = self.skills.sync(&request.workspace, &request.path).await?;
        Ok(Response::new(encode::sync_report(&report)))
    }

    async fn search_registry(&self, request: Request<proto::SearchRegistryRequest>) -> Result<Response<proto::SearchRegistryResponse>, Status> {
        let listings = self.skills.search_registry(&request.into_inner().query).await?;
        Ok(Response::new(proto::SearchRegistryResponse { skills: listings.iter().map(encode::registry_listing).collect() }))
    }

    async fn import_skill(&self, request: Request<proto::ImportSkillRequest>) -> Result<Response<proto::Skill>, Status> {
        let request = request.into_inner();
        let skill = self.skills.import(&request.workspace, &request.remote_id, request.pin_version).await?;
        Ok(Response::new(encode::skill(&skill)))
    }

    async fn get_skill(&self, request: Request<proto::GetSkillRequest>) -> Result<Response<proto::Skill>, Status> {
        let request = request.into_inner();
        Ok(Response::new(encode::skill(&self.skills.get(&request.workspace, &request.id).await?)))
    }

    async fn list_skills(&self, request: Request<proto::ListSkillsRequest>) -> Result<Response<proto::ListSkillsResponse>, Status> {
        let request = request.into_inner();
        let trust = encode::from_trust_level(request.trust_level, "trust_level")?;
        let page = self.skills.list(&request.workspace, &request.query, &request.tags, trust, request.page_size, &request.page_token).await?;
        Ok(Response::new(proto::ListSkillsResponse {
            skills: page.items.iter().map(encode::skill).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn pin_skill_version(&self, request: Request<proto::PinSkillVersionRequest>) -> Result<Response<proto::Skill>, Status> {
        let request = request.into_inner();
        Ok(Response::new(encode::skill(&self.skills.pin(&request.workspace, &request.id, &request.version).await?)))
    }

    async fn set_skill_trust(&self, request: Request<proto::SetSkillTrustRequest>) -> Result<Response<proto::Skill>, Status> {
        let request = request.into_inner();
        let trust = encode::from_trust_level(request.trust_level, "trust_level")?
            .ok_or_else(|| Error::invalid("trust_level", "is required: vetted, community or experimental"))?;
        Ok(Response::new(encode::skill(&self.skills.set_trust(&request.workspace, &request.id, trust).await?)))
    }
}

/// The `RecipeService` adapter.
#[derive(Debug, Clone)]
pub struct RecipeApi {
    recipes: Recipes,
}

impl RecipeApi {
    pub fn new(engine: Engine) -> Self {
        Self { recipes: Recipes::new(engine) }
    }
}

#[tonic::async_trait]
impl RecipeService for RecipeApi {
    async fn initialize_recipes(&self, request: Request<proto::InitializeRecipesRequest>) -> Result<Response<proto::InitializeRecipesResponse>, Status> {
        let created = self.recipes.initialize(&request.into_inner().workspace).await?;
        Ok(Response::new(proto::InitializeRecipesResponse { created: created.iter().map(encode::recipe).collect() }))
    }

    async fn get_recipe(&self, request: Request<proto::GetRecipeRequest>) -> Result<Response<proto::Recipe>, Status> {
        let request = request.into_inner();
        Ok(Response::new(encode::recipe(&self.recipes.get(&request.workspace, &request.stage).await?)))
    }

    async fn list_recipes(&self, request: Request<proto::ListRecipesRequest>) -> Result<Response<proto::ListRecipesResponse>, Status> {
        let recipes = self.recipes.list(&request.into_inner().workspace).await?;
        Ok(Response::new(proto::ListRecipesResponse { recipes: recipes.iter().map(encode::recipe).collect() }))
    }

    async fn update_recipe(&self, request: Request<proto::UpdateRecipeRequest>) -> Result<Response<proto::Recipe>, Status> {
        let request = request.into_inner();
        let recipe = request.recipe.ok_or_else(|| Error::invalid("recipe", "is required: its workspace and stage say which recipe"))?;
        let (workspace, stage) = (recipe.workspace.clone(), recipe.stage.clone());
        let update = UpdateRecipeRequest {
            workspace,
            stage,
            fields: encode::recipe_fields(recipe, "recipe")?,
            mask: request.update_mask.map(|mask| mask.paths).unwrap_or_default(),
            etag: request.etag,
            allow_missing: request.allow_missing,
        };
        Ok(Response::new(encode::recipe(&self.recipes.update(update).await?)))
    }

    async fn validate_recipe(&self, request: Request<proto::ValidateRecipeRequest>) -> Result<Response<proto::RecipeValidation>, Status> {
        let request = request.into_inner();
        let given = request.recipe.map(|recipe| encode::from_recipe(recipe, "recipe")).transpose()?;
        let validation = self.recipes.validate(&request.workspace, &request.stage, given).await?;
        Ok(Response::new(encode::validation(&validation)))
    }
}

/// The `CardService` adapter.
#[derive(Debug, Clone)]
pub struct CardApi {
    cards: Cards,
}

impl CardApi {
    pub fn new(engine: Engine) -> Self {
        Self { cards: Cards::new(engine) }
    }
}

fn card_id(text: &str) -> Result<CardId, Error> {
    CardId::parse("id", text)
}

#[tonic::async_trait]
impl CardService for CardApi {
    async fn create_card(&self, request: Request<proto::CreateCardRequest>) -> Result<Response<proto::Card>, Status> {
        let request = request.into_inner();
        let card = self
            .cards
            .create(CreateCardRequest {
                workspace: request.workspace,
                title: request.title,
                description: request.description,
                inputs: encode::string_map(request.inputs),
                stage: request.stage,
                labels: encode::string_map(request.labels),
                actor: request.actor,
            })
            .await?;
        Ok(Response::new(encode::card(&card)))
    }

    async fn get_card(&self, request: Request<proto::GetCardRequest>) -> Result<Response<proto::Card>, Status> {
        Ok(Response::new(encode::card(&self.cards.get(card_id(&request.into_inner().id)?).await?)))
    }

    async fn list_cards(&self, request: Request<proto::ListCardsRequest>) -> Result<Response<proto::ListCardsResponse>, Status> {
        let request = request.into_inner();
        let page = self.cards.list(&request.workspace, &request.stage, request.page_size, &request.page_token).await?;
        Ok(Response::new(proto::ListCardsResponse {
            cards: page.items.iter().map(encode::card).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn move_card(&self, request: Request<proto::MoveCardRequest>) -> Result<Response<proto::Card>, Status> {
        let request = request.into_inner();
        let card = self.cards.move_to(card_id(&request.id)?, &request.stage, &request.actor).await?;
        Ok(Response::new(encode::card(&card)))
    }

    async fn decide_card_run(&self, request: Request<proto::DecideCardRunRequest>) -> Result<Response<proto::Card>, Status> {
        let request = request.into_inner();
        let card = self.cards.decide(card_id(&request.id)?, request.approve, &request.actor, &request.comment).await?;
        Ok(Response::new(encode::card(&card)))
    }

    async fn list_card_events(&self, request: Request<proto::ListCardEventsRequest>) -> Result<Response<proto::ListCardEventsResponse>, Status> {
        let request = request.into_inner();
        let (events, next) = self.cards.events(card_id(&request.id)?, request.after_sequence, request.page_size).await?;
        Ok(Response::new(proto::ListCardEventsResponse { events: events.iter().map(encode::card_event).collect(), next_after_sequence: next }))
    }
}
