//! Skills, recipes, cards and gates end to end, over gRPC on a real server, on both stores:
//! syncing a skills directory with good and malformed skills; importing from a local registry
//! server; recipe validation errors and warnings; a card moved through three stages with
//! `fully_auto` and `human_approval` levels (with a jury and every gate type); a gate failure
//! under each on-fail behaviour; a card never left locked after its run is cancelled, fails, or
//! its server crashes; and an untrusted skill refused in a fully automatic stage.

mod support;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use axum::{extract::Path as UrlPath, routing::get, Json, Router};
use conclave::{
    artifacts::ArtifactsConfig,
    models::{ModelsConfig, RouterSettings},
    proto::{
        self, artifact_service_client::ArtifactServiceClient, card_service_client::CardServiceClient, recipe_service_client::RecipeServiceClient,
        skill_service_client::SkillServiceClient,
    },
    server::ServeOptions,
    workflows::stage::RegistrySettings,
};
use serde_json::{json, Value};
use support::*;
use tonic::{transport::Channel, Code};

const WAIT: Duration = Duration::from_secs(60);

/// What every recipe step answers, and what every juror says.
const MODELS: &str = r##"
[providers.mock]
type = "mock"

[[providers.mock.script]]
role = "recipe"
step = "step/1/attempt/1"
delay_ms = SLOW_MS
reply = "FINDINGS"

[[providers.mock.script]]
role = "recipe"
reply = "FINDINGS"

[[providers.mock.script]]
role = "jury"
json = { score = 82, rationale = "Clear problem, grounded in quotes." }
"##;

/// The mock models; a recipe step's first attempt takes `slow_ms` first.
fn models(slow_ms: u64) -> ModelsConfig {
    let findings = r"# Findings\n\n## Summary\nUsers want faster exports.\n\n## Problems\n- exports take minutes\n";
    let text = MODELS.replace("SLOW_MS", &slow_ms.to_string()).replace("FINDINGS", findings);
    let file: toml::Table = toml::from_str(&text).expect("models");
    let providers = file.into_iter().next().map(|(_, providers)| providers.try_into().expect("providers")).unwrap_or_default();
    ModelsConfig { providers, router: RouterSettings { chain: vec!["mock".into()], ..RouterSettings::default() } }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A skills directory: three good skills (a prompt, a template-backed one, a jury) and two
/// malformed ones.
fn skills_dir(root: &Path) -> PathBuf {
    let dir = root.join("skills");
    write(
        &dir.join("analyze-transcript/SKILL.md"),
        "# Analyze Transcript\n\nExtracts key insights from user research transcripts.\n\n## Inputs\n- transcript: string (required) - Raw transcript text\n\n## Outputs\n- summary: string - TL;DR summary\n\n## Tags\nresearch, analysis, transcript\n",
    );
    write(&dir.join("analyze-transcript/prompt.txt"), "Summarise this transcript under a `## Summary` heading:\n\n{{transcript}}\n");
    write(
        &dir.join("generate-prd/SKILL.md"),
        "# Generate PRD\n\nWrites a product requirements document.\n\n## Inputs\n- research: string (required) - The research findings\n\n## Outputs\n- prd: string - The PRD\n\n## Tags\nprd, docs\n",
    );
    write(&dir.join("generate-prd/prompt.txt"), "Write a PRD for {{params.audience}} from:\n\n{{research}}\n");
    write(&dir.join("generate-prd/templates/prd-template.md"), "# PRD\n\n## Problem\n\n## Solution\n");
    write(
        &dir.join("jury/SKILL.md"),
        "# Synthetic Jury\n\nA panel of personas scores a document.\n\n## Kind\njury\n\n## Inputs\n- document: string (required) - What is scored\n\n## Outputs\n- verdict: json - Scores with rationales\n\n## Tags\nvalidation\n",
    );
    write(&dir.join("broken/SKILL.md"), "No title here, just words.\n");
    write(&dir.join("no-definition/prompt.txt"), "A prompt without its SKILL.md\n");
    dir
}

struct Setup {
    server: TestServer,
    _root: tempfile::TempDir,
    skills: PathBuf,
}

async fn start(database: &TestDatabase, slow_ms: u64, registry: Option<RegistrySettings>) -> Setup {
    let root = tempfile::tempdir().unwrap();
    let skills = skills_dir(root.path());
    let options = ServeOptions { skills_registry: registry, ..ServeOptions::default() };
    let artifacts = ArtifactsConfig::in_dir(artifacts_dir(&database.url));
    let server = TestServer::start_with_options(&database.url, test_registry(&StepCounter::default()), fast_config(), models(slow_ms), artifacts, options).await;
    Setup { server, _root: root, skills }
}

async fn channel(server: &TestServer) -> Channel {
    Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap()
}

struct Clients {
    skills: SkillServiceClient<Channel>,
    recipes: RecipeServiceClient<Channel>,
    cards: CardServiceClient<Channel>,
}

async fn clients(server: &TestServer) -> Clients {
    let channel = channel(server).await;
    Clients {
        skills: SkillServiceClient::new(channel.clone()),
        recipes: RecipeServiceClient::new(channel.clone()),
        cards: CardServiceClient::new(channel),
    }
}

async fn sync(clients: &mut Clients, path: &Path) -> proto::SyncSkillsResponse {
    clients.skills.sync_skills(proto::SyncSkillsRequest { workspace: String::new(), path: path.display().to_string() }).await.unwrap().into_inner()
}

async fn vet(clients: &mut Clients, id: &str) {
    let request = proto::SetSkillTrustRequest { workspace: String::new(), id: id.into(), trust_level: proto::TrustLevel::Vetted as i32 };
    clients.skills.set_skill_trust(request).await.unwrap();
}

fn step(skill: &str, inputs: &[(&str, &str)], outputs: &[(&str, &str)], params: Value) -> proto::RecipeStep {
    proto::RecipeStep {
        skill_id: skill.into(),
        params: input(params),
        inputs: inputs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        outputs: outputs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        timeout_seconds: 0,
        retries: 0,
    }
}

fn gate(id: &str, required: bool, check: proto::gate::Check) -> proto::Gate {
    proto::Gate { id: id.into(), name: id.replace('-', " "), required, failure_message: String::new(), check: Some(check) }
}

fn sections(file: &str, sections: &[&str]) -> proto::gate::Check {
    proto::gate::Check::ContentCheck(proto::ContentCheckGate { file: file.into(), required_sections: sections.iter().map(|s| (*s).to_owned()).collect() })
}

fn file_exists(pattern: &str) -> proto::gate::Check {
    proto::gate::Check::FileExists(proto::FileExistsGate { pattern: pattern.into() })
}

/// Sets a stage's recipe (creating the stage if need be).
async fn set_recipe(clients: &mut Clients, stage: &str, level: proto::AutomationLevel, steps: Vec<proto::RecipeStep>, gates: Vec<proto::Gate>, on_fail: proto::OnFail) -> proto::Recipe {
    let recipe = proto::Recipe {
        workspace: String::new(),
        stage: stage.into(),
        automation_level: level as i32,
        steps,
        gates,
        on_fail: on_fail as i32,
        enabled: true,
        ..proto::Recipe::default()
    };
    let mask = prost_types::FieldMask { paths: ["automation_level", "steps", "gates", "on_fail", "enabled"].map(str::to_owned).to_vec() };
    let request = proto::UpdateRecipeRequest { recipe: Some(recipe), update_mask: Some(mask), etag: String::new(), allow_missing: true };
    clients.recipes.update_recipe(request).await.unwrap().into_inner()
}

async fn initialize(clients: &mut Clients) {
    clients.recipes.initialize_recipes(proto::InitializeRecipesRequest { workspace: String::new() }).await.unwrap();
}

async fn create_card(clients: &mut Clients, title: &str, stage: &str) -> proto::Card {
    let request = proto::CreateCardRequest {
        workspace: String::new(),
        title: title.into(),
        description: "Interview: \"exports take minutes, I give up\"".into(),
        stage: stage.into(),
        actor: "user:ada".into(),
        ..proto::CreateCardRequest::default()
    };
    clients.cards.create_card(request).await.unwrap().into_inner()
}

async fn move_card(clients: &mut Clients, id: &str, stage: &str) -> Result<proto::Card, tonic::Status> {
    clients.cards.move_card(proto::MoveCardRequest { id: id.into(), stage: stage.into(), actor: "user:ada".into() }).await.map(|response| response.into_inner())
}

async fn get_card(clients: &mut Clients, id: &str) -> proto::Card {
    clients.cards.get_card(proto::GetCardRequest { id: id.into() }).await.unwrap().into_inner()
}

/// Waits until the card satisfies `done`.
async fn until(clients: &mut Clients, id: &str, what: &str, done: impl Fn(&proto::Card) -> bool) -> proto::Card {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let card = get_card(clients, id).await;
        if done(&card) {
            return card;
        }
        assert!(tokio::time::Instant::now() < deadline, "card never {what}: {card:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn unlocked_in(clients: &mut Clients, id: &str, stage: &str) -> proto::Card {
    until(clients, id, &format!("unlocked in {stage}"), |card| !card.locked && card.stage == stage && card.last_run.is_some()).await
}

async fn events(clients: &mut Clients, id: &str) -> Vec<proto::CardEvent> {
    let request = proto::ListCardEventsRequest { id: id.into(), after_sequence: 0, page_size: 1000 };
    clients.cards.list_card_events(request).await.unwrap().into_inner().events
}

fn kinds(events: &[proto::CardEvent]) -> Vec<proto::CardEventKind> {
    events.iter().map(|event| event.kind()).collect()
}

fn outcome(card: &proto::Card) -> proto::RecipeOutcome {
    card.last_run.as_ref().map_or(proto::RecipeOutcome::Unspecified, |run| run.outcome())
}

async fn sync_reports_malformed_skills_per_file_and_syncs_the_rest(database: &TestDatabase) {
    let setup = start(database, 0, None).await;
    let mut clients = clients(&setup.server).await;

    let first = sync(&mut clients, &setup.skills).await;
    let synced: Vec<(&str, bool)> = first.skills.iter().map(|skill| (skill.id.as_str(), skill.changed)).collect();
    assert_eq!(synced, [("analyze-transcript", true), ("generate-prd", true), ("jury", true)], "{first:#?}");
    let mut bad: Vec<&str> = first.errors.iter().map(|error| error.path.as_str()).collect();
    bad.sort_unstable();
    assert_eq!(bad.len(), 2, "{first:#?}");
    assert!(bad[0].ends_with("broken/SKILL.md") && bad[1].contains("no-definition"), "{bad:?}");
    assert!(first.errors.iter().all(|error| !error.reason.is_empty()));

    let skill = clients.skills.get_skill(proto::GetSkillRequest { workspace: String::new(), id: "analyze-transcript".into() }).await.unwrap().into_inner();
    assert_eq!(skill.name, "Analyze Transcript");
    assert_eq!(skill.description, "Extracts key insights from user research transcripts.");
    assert_eq!(skill.trust_level(), proto::TrustLevel::Experimental);
    assert_eq!(skill.source, "local");
    assert_eq!((skill.inputs.len(), skill.inputs[0].name.as_str(), skill.inputs[0].required), (1, "transcript", true));
    assert_eq!(skill.tags, ["research", "analysis", "transcript"]);
    assert!(skill.prompt_template.contains("{{transcript}}"));
    let prd = clients.skills.get_skill(proto::GetSkillRequest { workspace: String::new(), id: "generate-prd".into() }).await.unwrap().into_inner();
    assert_eq!(prd.templates.get("prd-template.md").map(String::as_str), Some("# PRD\n\n## Problem\n\n## Solution\n"));
    let jury = clients.skills.get_skill(proto::GetSkillRequest { workspace: String::new(), id: "jury".into() }).await.unwrap().into_inner();
    assert_eq!(jury.kind(), proto::SkillKind::Jury);

    // Unchanged content is no new version; changed content is.
    let again = sync(&mut clients, &setup.skills).await;
    assert!(again.skills.iter().all(|skill| !skill.changed), "{again:#?}");
    let first_version = skill.version.clone();
    std::fs::write(setup.skills.join("analyze-transcript/prompt.txt"), "Summarise, with a `## Summary` heading:\n\n{{transcript}}\n").unwrap();
    let changed = sync(&mut clients, &setup.skills).await;
    assert_eq!(changed.skills.iter().filter(|skill| skill.changed).map(|skill| skill.id.as_str()).collect::<Vec<_>>(), ["analyze-transcript"]);
    let skill = clients.skills.get_skill(proto::GetSkillRequest { workspace: String::new(), id: "analyze-transcript".into() }).await.unwrap().into_inner();
    assert_eq!(skill.versions.len(), 2);
    assert_ne!(skill.version, first_version);

    // Pinning the first version makes it the one recipes use; unpinning follows the latest.
    let pin = |version: &str| proto::PinSkillVersionRequest { workspace: String::new(), id: "analyze-transcript".into(), version: version.into() };
    let pinned = clients.skills.pin_skill_version(pin(&first_version)).await.unwrap().into_inner();
    assert_eq!((pinned.version.as_str(), pinned.pinned_version.as_str()), (first_version.as_str(), first_version.as_str()));
    assert_ne!(pinned.latest_version, first_version);
    let unpinned = clients.skills.pin_skill_version(pin("")).await.unwrap().into_inner();
    assert_eq!(unpinned.version, unpinned.latest_version);
    let status = clients.skills.pin_skill_version(pin("v-nope")).await.unwrap_err();
    assert_eq!((status.code(), bad_fields(&status)), (Code::InvalidArgument, vec!["version".to_owned()]));

    // Search by text, tag and trust level.
    let list = |query: &str, tags: &[&str], trust: proto::TrustLevel| proto::ListSkillsRequest {
        workspace: String::new(),
        query: query.into(),
        tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
        trust_level: trust as i32,
        page_size: 0,
        page_token: String::new(),
    };
    let ids = |response: proto::ListSkillsResponse| response.skills.into_iter().map(|skill| skill.id).collect::<Vec<_>>();
    assert_eq!(ids(clients.skills.list_skills(list("TRANSCRIPT insights", &[], proto::TrustLevel::Unspecified)).await.unwrap().into_inner()), ["analyze-transcript"]);
    assert_eq!(ids(clients.skills.list_skills(list("", &["docs"], proto::TrustLevel::Unspecified)).await.unwrap().into_inner()), ["generate-prd"]);
    vet(&mut clients, "jury").await;
    assert_eq!(ids(clients.skills.list_skills(list("", &[], proto::TrustLevel::Vetted)).await.unwrap().into_inner()), ["jury"]);
    let mut page = list("", &[], proto::TrustLevel::Unspecified);
    page.page_size = 2;
    let first_page = clients.skills.list_skills(page.clone()).await.unwrap().into_inner();
    assert_eq!(first_page.skills.len(), 2);
    page.page_token = first_page.next_page_token;
    assert_eq!(ids(clients.skills.list_skills(page).await.unwrap().into_inner()), ["jury"]);

    // Bad requests say what to fix.
    let status = clients.skills.sync_skills(proto::SyncSkillsRequest { workspace: String::new(), path: "/nonexistent/skills".into() }).await.unwrap_err();
    assert_eq!((status.code(), bad_fields(&status)), (Code::InvalidArgument, vec!["path".to_owned()]));
    let status = clients.skills.get_skill(proto::GetSkillRequest { workspace: String::new(), id: "../etc".into() }).await.unwrap_err();
    assert_eq!((status.code(), bad_fields(&status)), (Code::InvalidArgument, vec!["id".to_owned()]));
    let status = clients.skills.get_skill(proto::GetSkillRequest { workspace: String::new(), id: "ghost".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = clients.skills.import_skill(proto::ImportSkillRequest { workspace: String::new(), remote_id: "x".into(), pin_version: false }).await.unwrap_err();
    assert_eq!((status.code(), reason(&status).as_str()), (Code::FailedPrecondition, "NO_REGISTRY"));
    setup.server.shutdown().await;
}

/// A skills registry speaking the wire format `registry.rs` documents.
async fn registry_server() -> String {
    let listing = json!({"id": "smp_prd", "name": "PRD Writer", "description": "Writes PRDs from research", "version": "2.1.0", "tags": ["prd"]});
    let skill = json!({
        "id": "smp_prd", "name": "PRD Writer", "description": "Writes PRDs from research", "version": "2.1.0", "tags": ["prd"],
        "inputs": [{"name": "research", "type": "string", "required": true, "description": "findings"}],
        "outputs": [{"name": "prd", "type": "string", "required": false, "description": "the PRD"}],
        "kind": "prompt", "prompt_template": "Write a PRD from {{research}}", "templates": {}, "metadata": {"downloads": 1200}
    });
    let search = {
        let listing = listing.clone();
        move |query: axum::extract::Query<HashMap<String, String>>| {
            let listing = listing.clone();
            async move {
                let found = query.get("q").is_some_and(|q| "prd writer".contains(q.to_lowercase().as_str()));
                Json(json!({ "skills": if found { vec![listing] } else { vec![] } }))
            }
        }
    };
    let fetch = move |UrlPath(id): UrlPath<String>| {
        let skill = skill.clone();
        async move {
            if id == "smp_prd" {
                Ok(Json(skill))
            } else {
                Err(axum::http::StatusCode::NOT_FOUND)
            }
        }
    };
    let app = Router::new().route("/skills", get(search)).route("/skills/{id}", get(fetch));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn skills_are_imported_from_a_registry_as_community(database: &TestDatabase) {
    let url = registry_server().await;
    let setup = start(database, 0, Some(RegistrySettings { url: url.clone(), token: None })).await;
    let mut clients = clients(&setup.server).await;

    let found = clients.skills.search_registry(proto::SearchRegistryRequest { query: "prd".into() }).await.unwrap().into_inner();
    assert_eq!(found.skills.iter().map(|skill| (skill.id.as_str(), skill.version.as_str())).collect::<Vec<_>>(), [("smp_prd", "2.1.0")]);

    let import = |pin| proto::ImportSkillRequest { workspace: String::new(), remote_id: "smp_prd".into(), pin_version: pin };
    let skill = clients.skills.import_skill(import(true)).await.unwrap().into_inner();
    assert_eq!(skill.trust_level(), proto::TrustLevel::Community);
    assert_eq!((skill.source.as_str(), skill.source_location.as_str(), skill.remote_id.as_str()), ("registry", url.as_str(), "smp_prd"));
    assert_eq!((skill.version.as_str(), skill.pinned_version.as_str()), ("2.1.0", "2.1.0"));
    assert_eq!(skill.name, "PRD Writer");
    assert!(skill.remote_metadata.is_some());
    let again = clients.skills.import_skill(import(false)).await.unwrap().into_inner();
    assert_eq!(again.versions.len(), 1, "the same content imported again is no new version");

    let status = clients.skills.import_skill(proto::ImportSkillRequest { workspace: String::new(), remote_id: "smp_missing".into(), pin_version: false }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    setup.server.shutdown().await;
}

async fn validation_reports_errors_warnings_and_skill_status(database: &TestDatabase) {
    let setup = start(database, 0, None).await;
    let mut clients = clients(&setup.server).await;
    sync(&mut clients, &setup.skills).await;

    let created = clients.recipes.initialize_recipes(proto::InitializeRecipesRequest { workspace: String::new() }).await.unwrap().into_inner().created;
    let stages: Vec<(&str, proto::AutomationLevel)> = created.iter().map(|recipe| (recipe.stage.as_str(), recipe.automation_level())).collect();
    assert_eq!(stages.len(), 11);
    assert_eq!(stages[0], ("inbox", proto::AutomationLevel::FullyAuto));
    assert_eq!(stages[1], ("discovery", proto::AutomationLevel::AutoNotify));
    assert_eq!(stages[5], ("validate", proto::AutomationLevel::HumanApproval));
    assert_eq!(stages[7], ("build", proto::AutomationLevel::Manual));
    let again = clients.recipes.initialize_recipes(proto::InitializeRecipesRequest { workspace: String::new() }).await.unwrap().into_inner();
    assert!(again.created.is_empty(), "existing recipes are left as they are");

    // A fully automatic recipe with an experimental skill, a missing one and no required gate.
    set_recipe(
        &mut clients,
        "inbox",
        proto::AutomationLevel::FullyAuto,
        vec![step("analyze-transcript", &[("transcript", "card.description")], &[("summary", "research.md")], json!({})), step("ghost", &[], &[], json!({}))],
        vec![gate("optional", false, file_exists("*.md"))],
        proto::OnFail::Stay,
    )
    .await;
    let validate = |stage: &str| proto::ValidateRecipeRequest { workspace: String::new(), stage: stage.into(), recipe: None };
    let found = clients.recipes.validate_recipe(validate("inbox")).await.unwrap().into_inner();
    assert!(!found.valid);
    assert!(found.errors.iter().any(|error| error.contains("`ghost`")), "{found:#?}");
    assert!(found.errors.iter().any(|error| error.contains("analyze-transcript") && error.contains("experimental") && error.contains("fully_auto")), "{found:#?}");
    assert!(found.warnings.iter().any(|warning| warning.contains("no required gate")), "{found:#?}");
    let statuses: Vec<(&str, bool, bool)> = found.skills.iter().map(|status| (status.skill_id.as_str(), status.found, status.trusted)).collect();
    assert_eq!(statuses, [("analyze-transcript", true, false), ("ghost", false, false)]);

    // Vetted, with a required gate and every input mapped: valid, no warnings.
    vet(&mut clients, "analyze-transcript").await;
    let good = set_recipe(
        &mut clients,
        "inbox",
        proto::AutomationLevel::FullyAuto,
        vec![step("analyze-transcript", &[("transcript", "card.description")], &[("summary", "research.md")], json!({}))],
        vec![gate("research", true, file_exists("research.md"))],
        proto::OnFail::Stay,
    )
    .await;
    let found = clients.recipes.validate_recipe(validate("inbox")).await.unwrap().into_inner();
    assert!(found.valid && found.warnings.is_empty(), "{found:#?}");

    // A template input without a mapping, and a param the template reads but nobody gives.
    let mut given = good.clone();
    given.steps = vec![step("generate-prd", &[], &[("prd", "prd.md")], json!({}))];
    let found = clients.recipes.validate_recipe(proto::ValidateRecipeRequest { workspace: String::new(), stage: "inbox".into(), recipe: Some(given) }).await.unwrap().into_inner();
    assert!(found.errors.iter().any(|error| error.contains("required input `research`")), "{found:#?}");
    assert!(found.errors.iter().any(|error| error.contains("{{params.audience}}")), "{found:#?}");

    // Etags, masks and gates are checked.
    let update = |etag: &str, paths: &[&str], recipe: proto::Recipe| proto::UpdateRecipeRequest {
        recipe: Some(recipe),
        update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|path| (*path).to_owned()).collect() }),
        etag: etag.into(),
        allow_missing: false,
    };
    let mut changed = good.clone();
    changed.provider = "mock".into();
    let updated = clients.recipes.update_recipe(update(&good.etag, &["provider"], changed.clone())).await.unwrap().into_inner();
    assert_eq!(updated.provider, "mock");
    assert_ne!(updated.etag, good.etag);
    let status = clients.recipes.update_recipe(update(&good.etag, &["provider"], changed.clone())).await.unwrap_err();
    assert_eq!((status.code(), reason(&status).as_str()), (Code::Aborted, "ETAG_MISMATCH"));
    let status = clients.recipes.update_recipe(update("", &["colour"], changed.clone())).await.unwrap_err();
    assert_eq!((status.code(), bad_fields(&status)), (Code::InvalidArgument, vec!["update_mask".to_owned()]));
    let mut unscaled = changed.clone();
    unscaled.gates = vec![gate(
        "score",
        true,
        proto::gate::Check::MetricThreshold(proto::MetricThresholdGate { metric: "jury_score".into(), operator: proto::Comparison::AtLeast as i32, threshold: 70.0, scale: 0 }),
    )];
    let status = clients.recipes.update_recipe(update("", &["gates"], unscaled)).await.unwrap_err();
    assert_eq!((status.code(), bad_fields(&status)), (Code::InvalidArgument, vec!["recipe.gates[0].metric_threshold.scale".to_owned()]));
    let mut missing = changed.clone();
    missing.stage = "nowhere".into();
    assert_eq!(clients.recipes.update_recipe(update("", &["provider"], missing)).await.unwrap_err().code(), Code::NotFound);
    let status = clients.recipes.get_recipe(proto::GetRecipeRequest { workspace: String::new(), stage: "Bad Stage".into() }).await.unwrap_err();
    assert_eq!((status.code(), bad_fields(&status)), (Code::InvalidArgument, vec!["stage".to_owned()]));
    let listed = clients.recipes.list_recipes(proto::ListRecipesRequest { workspace: String::new() }).await.unwrap().into_inner().recipes;
    assert_eq!(listed.first().map(|recipe| recipe.stage.as_str()), Some("inbox"));
    setup.server.shutdown().await;
}

async fn a_card_moves_through_three_stages(database: &TestDatabase) {
    let setup = start(database, 0, None).await;
    let mut clients = clients(&setup.server).await;
    sync(&mut clients, &setup.skills).await;
    vet(&mut clients, "analyze-transcript").await;
    vet(&mut clients, "jury").await;
    initialize(&mut clients).await;

    // inbox: fully automatic; its success advances the card to discovery.
    set_recipe(
        &mut clients,
        "inbox",
        proto::AutomationLevel::FullyAuto,
        vec![step("analyze-transcript", &[("transcript", "card.description")], &[("summary", "research.md")], json!({}))],
        vec![
            gate("research-exists", true, file_exists("*.md")),
            gate("has-summary", true, sections("research.md", &["Summary", "Problems"])),
            gate("documented", true, proto::gate::Check::ArtifactExists(proto::ArtifactExistsGate { kind: proto::ArtifactKind::Document as i32, label: "skill=analyze-transcript".into() })),
            gate("grep", true, proto::gate::Check::Command(proto::CommandGate { command: "grep -q 'exports' research.md".into(), timeout_seconds: 10 })),
        ],
        proto::OnFail::Stay,
    )
    .await;
    // discovery: waits for approval; runs an experimental skill, which approval allows.
    set_recipe(
        &mut clients,
        "discovery",
        proto::AutomationLevel::HumanApproval,
        vec![step("generate-prd", &[("research", "artifact.research.md")], &[("prd", "prd.md")], json!({"audience": "admins"}))],
        vec![gate("prd", true, sections("prd.md", &["summary"]))],
        proto::OnFail::Stay,
    )
    .await;
    // validate: a jury scores the PRD; the gate reads its score on the other scale.
    set_recipe(
        &mut clients,
        "validate",
        proto::AutomationLevel::FullyAuto,
        vec![step("jury", &[("document", "artifact.prd.md")], &[("verdict", "jury.json")], json!({"personas": ["skeptic", "buyer", "admin"], "scale": "0-100"}))],
        vec![gate(
            "jury-score",
            true,
            proto::gate::Check::MetricThreshold(proto::MetricThresholdGate {
                metric: "jury_score".into(),
                operator: proto::Comparison::AtLeast as i32,
                threshold: 0.7,
                scale: proto::Scale::Unit as i32,
            }),
        )],
        proto::OnFail::Stay,
    )
    .await;

    let card = create_card(&mut clients, "Faster exports", "").await;
    assert_eq!(card.stage, "inbox");
    assert!(card.locked, "a card is locked while its run is active: {card:#?}");

    // inbox passes, the card advances to discovery, whose run waits for approval.
    let waiting = until(&mut clients, &card.id, "advanced to discovery", |card| card.stage == "discovery" && card.locked).await;
    assert_eq!(waiting.previous_stage, "inbox");
    let inbox = waiting.last_run.clone().unwrap();
    assert_eq!((inbox.stage.as_str(), inbox.outcome()), ("inbox", proto::RecipeOutcome::Passed), "{inbox:#?}");
    assert_eq!(inbox.gates.iter().filter(|gate| gate.passed).count(), 4, "{inbox:#?}");
    assert!(waiting.documents.contains_key("research.md"));
    let status = move_card(&mut clients, &card.id, "prd").await.unwrap_err();
    assert_eq!((status.code(), reason(&status).as_str()), (Code::FailedPrecondition, "CARD_LOCKED"));

    let decide = proto::DecideCardRunRequest { id: card.id.clone(), approve: true, actor: "user:grace".into(), comment: "go".into() };
    clients.cards.decide_card_run(decide).await.unwrap();
    let discovered = unlocked_in(&mut clients, &card.id, "discovery").await;
    assert_eq!(outcome(&discovered), proto::RecipeOutcome::Passed, "{discovered:#?}");
    assert!(discovered.documents.contains_key("prd.md"));

    // A person moves it on to validate; the jury passes it and it advances to tickets.
    move_card(&mut clients, &card.id, "validate").await.unwrap();
    let validated = until(&mut clients, &card.id, "advanced to tickets", |card| card.stage == "tickets").await;
    let run = validated.last_run.clone().unwrap();
    assert_eq!((run.stage.as_str(), run.outcome()), ("validate", proto::RecipeOutcome::Passed), "{run:#?}");
    let score = &run.metrics["jury_score"];
    assert!((score.value - 82.0).abs() < 1e-9 && score.scale() == proto::Scale::Percent, "{score:?}");
    assert!(run.gates[0].message.contains("0.82"), "the conversion is stated: {}", run.gates[0].message);
    assert!(validated.locked, "tickets waits for approval by default");

    // The jury's verdict is an artifact with every score and rationale.
    let verdict_id = validated.documents["jury.json"].clone();
    let mut artifacts = ArtifactServiceClient::new(channel(&setup.server).await);
    let mut download = artifacts
        .download_artifact(proto::DownloadArtifactRequest { artifact: Some(proto::ArtifactRef { id: verdict_id, ..Default::default() }), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let mut content = Vec::new();
    while let Some(chunk) = download.message().await.unwrap() {
        if let Some(proto::download_artifact_response::Part::Chunk(bytes)) = chunk.part {
            content.extend_from_slice(&bytes);
        }
    }
    let verdict: Value = serde_json::from_slice(&content).unwrap();
    assert_eq!(verdict["scores"].as_array().unwrap().len(), 3);
    assert_eq!(verdict["scores"][0]["rationale"], "Clear problem, grounded in quotes.");

    use proto::CardEventKind as K;
    let trail = kinds(&events(&mut clients, &card.id).await);
    assert_eq!(
        trail,
        [
            K::Created, K::RunCreated, K::RunEnded, K::Advanced, K::RunCreated, K::AwaitingApproval, K::Approved, K::RunEnded, K::Moved, K::RunCreated,
            K::RunEnded, K::Advanced, K::RunCreated, K::AwaitingApproval
        ],
        "{trail:?}"
    );
    setup.server.shutdown().await;
}

async fn a_gate_failure_applies_each_on_fail_behaviour(database: &TestDatabase) {
    let setup = start(database, 0, None).await;
    let mut clients = clients(&setup.server).await;
    sync(&mut clients, &setup.skills).await;
    initialize(&mut clients).await;
    for on_fail in [proto::OnFail::Stay, proto::OnFail::Revert, proto::OnFail::CreateQuestions, proto::OnFail::ReviewRequired] {
        // prd notifies and fails its gate: the answer has no `Rollout` section.
        set_recipe(
            &mut clients,
            "prd",
            proto::AutomationLevel::AutoNotify,
            vec![step("analyze-transcript", &[("transcript", "card.description")], &[("summary", "prd.md")], json!({}))],
            vec![gate("rollout", true, sections("prd.md", &["Summary", "Rollout"])), gate("optional", false, file_exists("nothing-*"))],
            on_fail,
        )
        .await;
        set_recipe(&mut clients, "discovery", proto::AutomationLevel::Manual, vec![], vec![], proto::OnFail::Stay).await;
        let card = create_card(&mut clients, &format!("{on_fail:?}"), "discovery").await;
        assert!(!card.locked, "a manual stage creates no run");
        move_card(&mut clients, &card.id, "prd").await.unwrap();
        let ended = until(&mut clients, &card.id, "settled", |card| !card.locked && card.last_run.as_ref().is_some_and(|run| run.stage == "prd")).await;
        assert_eq!(outcome(&ended), proto::RecipeOutcome::FailedGates, "{ended:#?}");
        let gates = &ended.last_run.as_ref().unwrap().gates;
        assert!(!gates[0].passed && gates[0].message.contains("Rollout"), "{gates:#?}");
        assert!(!gates[0].message.contains("Summary,"), "only the missing section is named: {}", gates[0].message);
        let trail = kinds(&events(&mut clients, &card.id).await);
        assert!(trail.contains(&proto::CardEventKind::Notified), "auto_notify notifies: {trail:?}");
        match on_fail {
            proto::OnFail::Stay => {
                assert_eq!(ended.stage, "prd");
                assert_eq!(trail.last(), Some(&proto::CardEventKind::Stayed));
            }
            proto::OnFail::Revert => {
                assert_eq!(ended.stage, "discovery");
                assert_eq!(trail.last(), Some(&proto::CardEventKind::Reverted));
            }
            proto::OnFail::CreateQuestions => {
                assert_eq!(ended.stage, "prd");
                assert_eq!(ended.questions.len(), 1, "one question per failed required gate: {:?}", ended.questions);
                assert!(ended.questions[0].contains("rollout"));
                assert_eq!(trail.last(), Some(&proto::CardEventKind::QuestionsCreated));
            }
            proto::OnFail::ReviewRequired => {
                assert!(ended.review_required);
                assert_eq!(trail.last(), Some(&proto::CardEventKind::ReviewRequired));
                // A person moving the card on clears the flag.
                let moved = move_card(&mut clients, &card.id, "discovery").await.unwrap();
                assert!(!moved.review_required);
            }
            proto::OnFail::Unspecified => unreachable!(),
        }
    }
    setup.server.shutdown().await;
}

async fn a_card_is_never_left_locked(database: &TestDatabase) {
    let root_setup = start(database, 0, None).await;
    let mut clients = clients(&root_setup.server).await;
    sync(&mut clients, &root_setup.skills).await;
    vet(&mut clients, "analyze-transcript").await;
    initialize(&mut clients).await;
    let analyze = || vec![step("analyze-transcript", &[("transcript", "card.description")], &[("summary", "research.md")], json!({}))];

    // Cancelled: the run waiting for approval is cancelled through RunService.
    set_recipe(&mut clients, "validate", proto::AutomationLevel::HumanApproval, analyze(), vec![], proto::OnFail::Stay).await;
    let card = create_card(&mut clients, "cancelled", "validate").await;
    assert!(card.locked);
    let mut runs = root_setup.server.client().await;
    runs.cancel_run(proto::CancelRunRequest { id: card.active_run_id.clone(), reason: "not now".into(), force: false }).await.unwrap();
    let ended = unlocked_in(&mut clients, &card.id, "validate").await;
    assert_eq!(outcome(&ended), proto::RecipeOutcome::Cancelled, "{ended:#?}");

    // Rejected.
    let card = create_card(&mut clients, "rejected", "validate").await;
    let reject = proto::DecideCardRunRequest { id: card.id.clone(), approve: false, actor: "user:grace".into(), comment: "out of scope".into() };
    clients.cards.decide_card_run(reject).await.unwrap();
    let ended = unlocked_in(&mut clients, &card.id, "validate").await;
    assert_eq!(outcome(&ended), proto::RecipeOutcome::Rejected, "{ended:#?}");
    assert!(kinds(&events(&mut clients, &card.id).await).contains(&proto::CardEventKind::Rejected));

    // Failed: the engine fails the run by force.
    let card = create_card(&mut clients, "failed", "validate").await;
    runs.force_fail_run(proto::ForceFailRunRequest { id: card.active_run_id.clone(), reason: "watchdog".into() }).await.unwrap();
    let ended = unlocked_in(&mut clients, &card.id, "validate").await;
    assert_eq!(outcome(&ended), proto::RecipeOutcome::Failed, "{ended:#?}");
    assert!(ended.last_run.as_ref().unwrap().message.contains("watchdog"));
    root_setup.server.shutdown().await;

    // The server crashes while a step runs: the run resumes on the next server and the card is
    // unlocked when it ends. The step's first attempt is slow and times out; the retry answers.
    let setup = start(database, 3_000, None).await;
    let mut clients = self::clients(&setup.server).await;
    let mut slow = analyze();
    slow[0].timeout_seconds = 1;
    slow[0].retries = 1;
    set_recipe(&mut clients, "prd", proto::AutomationLevel::FullyAuto, slow, vec![gate("research", true, file_exists("research.md"))], proto::OnFail::Stay).await;
    set_recipe(&mut clients, "design", proto::AutomationLevel::Manual, vec![], vec![], proto::OnFail::Stay).await;
    let card = create_card(&mut clients, "crashed", "prd").await;
    assert!(card.locked);
    tokio::time::sleep(Duration::from_millis(300)).await;
    setup.server.crash().await;
    let restarted = start(database, 3_000, None).await;
    let mut clients = self::clients(&restarted.server).await;
    let ended = until(&mut clients, &card.id, "advanced past prd", |card| !card.locked && card.stage == "design").await;
    assert_eq!(outcome(&ended), proto::RecipeOutcome::Passed, "{ended:#?}");
    let mut runs = restarted.server.client().await;
    let run = runs.get_run(proto::GetRunRequest { id: ended.last_run.as_ref().unwrap().run_id.clone() }).await.unwrap().into_inner();
    let report = from_value(run.output.unwrap());
    assert_eq!(report["steps"][0]["attempts"].as_f64(), Some(2.0), "the first attempt timed out, the retry answered: {report}");
    restarted.server.shutdown().await;
}

async fn an_untrusted_skill_never_runs_unattended(database: &TestDatabase) {
    let setup = start(database, 0, None).await;
    let mut clients = clients(&setup.server).await;
    sync(&mut clients, &setup.skills).await;
    initialize(&mut clients).await;
    let analyze = vec![step("analyze-transcript", &[("transcript", "card.description")], &[("summary", "research.md")], json!({}))];
    set_recipe(&mut clients, "prd", proto::AutomationLevel::FullyAuto, analyze.clone(), vec![], proto::OnFail::Stay).await;
    set_recipe(&mut clients, "discovery", proto::AutomationLevel::Manual, vec![], vec![], proto::OnFail::Stay).await;

    let card = create_card(&mut clients, "untrusted", "discovery").await;
    let status = move_card(&mut clients, &card.id, "prd").await.unwrap_err();
    assert_eq!((status.code(), reason(&status).as_str()), (Code::FailedPrecondition, "UNTRUSTED_SKILL"), "{status:?}");
    assert!(status.message().contains("analyze-transcript") && status.message().contains("experimental"), "{status:?}");
    let after = get_card(&mut clients, &card.id).await;
    assert_eq!((after.stage.as_str(), after.locked), ("discovery", false), "the move did not happen");
    assert_eq!(kinds(&events(&mut clients, &card.id).await).last(), Some(&proto::CardEventKind::Refused));

    // Nor does a recipe run created directly through RunService.
    let run = clients.recipes.get_recipe(proto::GetRecipeRequest { workspace: String::new(), stage: "prd".into() }).await.unwrap().into_inner();
    assert_eq!(run.automation_level(), proto::AutomationLevel::FullyAuto);
    let skill = clients.skills.get_skill(proto::GetSkillRequest { workspace: String::new(), id: "analyze-transcript".into() }).await.unwrap().into_inner();
    let direct = json!({
        "card": card.id, "stage": "prd", "automation": "fully_auto",
        "steps": [{"skill": "analyze-transcript", "inputs": {"transcript": "card.title"}, "outputs": {}, "version": skill.version, "trust": "experimental",
                   "definition": {"name": "x", "prompt_template": "{{transcript}}"}}],
        "context": {"title": "t"}
    });
    let mut runs = setup.server.client().await;
    let status = runs.create_run(create("recipe", direct)).await.unwrap_err();
    assert_eq!((status.code(), reason(&status).as_str()), (Code::FailedPrecondition, "UNTRUSTED_SKILL"), "{status:?}");

    // Human approval lets the same skill run; vetting it lets it run unattended.
    set_recipe(&mut clients, "prd", proto::AutomationLevel::HumanApproval, analyze.clone(), vec![], proto::OnFail::Stay).await;
    assert!(move_card(&mut clients, &card.id, "prd").await.unwrap().locked);
    vet(&mut clients, "analyze-transcript").await;
    set_recipe(&mut clients, "design", proto::AutomationLevel::FullyAuto, analyze, vec![], proto::OnFail::Stay).await;
    let other = create_card(&mut clients, "vetted", "design").await;
    assert!(other.locked);
    unlocked_in(&mut clients, &other.id, "prototype").await;

    // Bad card requests say what to fix.
    let status = clients.cards.create_card(proto::CreateCardRequest { title: " ".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!((status.code(), bad_fields(&status)), (Code::InvalidArgument, vec!["title".to_owned()]));
    let status = clients.cards.get_card(proto::GetCardRequest { id: "nope".into() }).await.unwrap_err();
    assert_eq!((status.code(), bad_fields(&status)), (Code::InvalidArgument, vec!["id".to_owned()]));
    let status = move_card(&mut clients, &other.id, "no-such-stage").await.unwrap_err();
    assert_eq!((status.code(), reason(&status).as_str()), (Code::FailedPrecondition, "UNKNOWN_STAGE"));
    setup.server.shutdown().await;
}

on_both_stores!(
    sync_reports_malformed_skills_per_file_and_syncs_the_rest,
    skills_are_imported_from_a_registry_as_community,
    validation_reports_errors_warnings_and_skill_status,
    a_card_moves_through_three_stages,
    a_gate_failure_applies_each_on_fail_behaviour,
    a_card_is_never_left_locked,
    an_untrusted_skill_never_runs_unattended,
);
