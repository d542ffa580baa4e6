//! Seed `004`'s execution system as data: a workspace's catalog of skills (with versions and
//! trust levels), its recipe per stage (automation level, skill steps, gates, what a failure
//! does), and the cards that move through the stages with an audit trail of every transition.
//! These are stored as documents; the rules that change them live in `workflows::stage`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ArtifactId, ArtifactKind, CardId, RunId, SkillId, Timestamp, WorkspaceId};

/// How far a skill is trusted: only `vetted` skills may run fully automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustLevel {
    /// Reviewed and approved.
    Vetted,
    /// From a registry, not reviewed.
    Community,
    /// In development (local skills start here).
    #[default]
    Experimental,
}

impl TrustLevel {
    pub const ALL: [TrustLevel; 3] = [Self::Vetted, Self::Community, Self::Experimental];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vetted => "vetted",
            Self::Community => "community",
            Self::Experimental => "experimental",
        }
    }
}

/// Where a skill came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SkillSource {
    /// A `<skill-id>/SKILL.md` directory synced from disk.
    Local { path: String },
    /// A remote skills registry.
    Registry { url: String, remote_id: String },
}

/// What a skill does when a recipe step runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkillKind {
    /// Its template, rendered with the step's inputs, is sent to a model; the answer is its output.
    #[default]
    Prompt,
    /// A panel of personas scores a document; the mean is the `jury_score` metric.
    Jury,
}

/// A declared input or output of a skill.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SkillField {
    pub name: String,
    /// The type as written (`string`, `string[]`, `Problem[]`).
    #[serde(default)]
    pub type_name: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: String,
}

/// One version of a skill, as parsed from its files or received from a registry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SkillDefinition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub kind: SkillKind,
    #[serde(default)]
    pub inputs: Vec<SkillField>,
    #[serde(default)]
    pub outputs: Vec<SkillField>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The prompt template (`prompt.txt`, else the document itself), with `{{input}}` and
    /// `{{params.name}}` placeholders.
    #[serde(default)]
    pub prompt_template: String,
    /// The files of `templates/`, by path relative to it.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
    /// What a registry said about it, kept as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_metadata: Option<Value>,
}

/// A stored version of a skill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillVersion {
    /// The declared version, or `sha256:<first 12 hex digits>` of the definition.
    pub version: String,
    /// SHA-256 of the definition, hex.
    pub digest: String,
    pub definition: SkillDefinition,
    pub added_at: Timestamp,
}

/// A skill in a workspace's catalog, with every version it has had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skill {
    pub workspace: WorkspaceId,
    pub id: SkillId,
    pub source: SkillSource,
    pub trust: TrustLevel,
    /// The version recipes use; `None` uses the latest.
    #[serde(default)]
    pub pinned_version: Option<String>,
    /// Oldest first; never empty.
    pub versions: Vec<SkillVersion>,
    /// Counts changes; the store sets it.
    #[serde(default)]
    pub revision: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Skill {
    /// The newest version.
    pub fn latest(&self) -> Option<&SkillVersion> {
        self.versions.last()
    }

    /// The version recipes run: the pinned one, else the newest.
    pub fn effective(&self) -> Option<&SkillVersion> {
        match &self.pinned_version {
            Some(pinned) => self.versions.iter().find(|version| &version.version == pinned),
            None => self.latest(),
        }
    }
}

/// How much of a stage runs by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutomationLevel {
    /// Runs by itself and advances the card on success.
    FullyAuto,
    /// Runs by itself and notifies when it ends; a person moves the card on.
    AutoNotify,
    /// The run waits for a person to approve it before it starts.
    HumanApproval,
    /// No run: a person does the work.
    #[default]
    Manual,
}

impl AutomationLevel {
    pub const ALL: [AutomationLevel; 4] = [Self::FullyAuto, Self::AutoNotify, Self::HumanApproval, Self::Manual];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullyAuto => "fully_auto",
            Self::AutoNotify => "auto_notify",
            Self::HumanApproval => "human_approval",
            Self::Manual => "manual",
        }
    }
}

/// What a failed recipe run does to its card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    /// The card stays in the stage.
    #[default]
    Stay,
    /// The card goes back to the stage it came from.
    Revert,
    /// The card stays, with a question for each failed gate.
    CreateQuestions,
    /// The card stays and is flagged for review before it may move on.
    ReviewRequired,
}

impl OnFail {
    pub const ALL: [OnFail; 4] = [Self::Stay, Self::Revert, Self::CreateQuestions, Self::ReviewRequired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stay => "stay",
            Self::Revert => "revert",
            Self::CreateQuestions => "create_questions",
            Self::ReviewRequired => "review_required",
        }
    }
}

/// One step of a recipe: a skill run with mapped inputs, its outputs stored as artifacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipeStep {
    pub skill: SkillId,
    /// Values the template reads as `{{params.name}}` (a jury's personas and scale).
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Skill input → where its value comes from: `card.title`, `card.description`,
    /// `card.inputs.<key>`, `artifact.<name>` (this run's, else the card's latest), or
    /// `text:<literal>`.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Skill output → the artifact name it is stored as.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// Seconds one attempt may take; 0 for the default.
    #[serde(default)]
    pub timeout_seconds: u32,
    /// Attempts after the first when the step fails.
    #[serde(default)]
    pub retries: u32,
}

/// How a metric compares with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = ">")]
    Above,
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "==")]
    Equal,
}

impl Comparison {
    pub const ALL: [Comparison; 5] = [Self::AtLeast, Self::Above, Self::AtMost, Self::Below, Self::Equal];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AtLeast => ">=",
            Self::Above => ">",
            Self::AtMost => "<=",
            Self::Below => "<",
            Self::Equal => "==",
        }
    }

    /// Whether `value` compares so with `threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::AtLeast => value >= threshold,
            Self::Above => value > threshold,
            Self::AtMost => value <= threshold,
            Self::Below => value < threshold,
            Self::Equal => (value - threshold).abs() < 1e-9,
        }
    }
}

/// The scale a score is on, stated wherever one is given so that 0–1 and 0–100 never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scale {
    /// 0 to 1.
    #[serde(rename = "0-1")]
    Unit,
    /// 0 to 100.
    #[serde(rename = "0-100")]
    Percent,
}

impl Scale {
    pub const ALL: [Scale; 2] = [Self::Unit, Self::Percent];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unit => "0-1",
            Self::Percent => "0-100",
        }
    }

    /// The top of the scale.
    pub fn max(self) -> f64 {
        match self {
            Self::Unit => 1.0,
            Self::Percent => 100.0,
        }
    }

    /// `value` on this scale, expressed on `other`.
    pub fn convert(self, value: f64, other: Scale) -> f64 {
        value / self.max() * other.max()
    }
}

/// A measured value a gate may check (`jury_score`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub value: f64,
    pub scale: Scale,
}

/// What a gate checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GateCheck {
    /// Some output's name matches a glob (`*.md`, `hypotheses/*`).
    FileExists { pattern: String },
    /// A document has every required section (a Markdown heading, any level, case-insensitive).
    ContentCheck { file: String, required_sections: Vec<String> },
    /// An artifact of a kind, and/or with a label (`key` or `key=value`), exists.
    ArtifactExists {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<ArtifactKindName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    /// A metric compares with a threshold on a stated scale.
    MetricThreshold { metric: String, operator: Comparison, threshold: f64, scale: Scale },
    /// A verify command exits with status 0 within its timeout.
    Command {
        command: String,
        #[serde(default)]
        timeout_seconds: u32,
    },
}

impl GateCheck {
    /// The type's name, as configured and reported.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::FileExists { .. } => "file_exists",
            Self::ContentCheck { .. } => "content_check",
            Self::ArtifactExists { .. } => "artifact_exists",
            Self::MetricThreshold { .. } => "metric_threshold",
            Self::Command { .. } => "command",
        }
    }
}

/// An artifact kind as stored in a gate (by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactKindName(pub ArtifactKind);

impl Serialize for ArtifactKindName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for ArtifactKindName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ArtifactKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .map(Self)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an artifact kind")))
    }
}

/// A gate: a check, whether the stage needs it to pass, and what to say when it does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateSpec {
    /// Unique in its recipe.
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub check: GateCheck,
    #[serde(default = "yes")]
    pub required: bool,
    /// Said when it fails, before what was missing.
    #[serde(default)]
    pub failure_message: String,
}

fn yes() -> bool {
    true
}

/// How one gate came out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub id: String,
    pub name: String,
    /// `file_exists`, `content_check`, …
    pub gate_type: String,
    pub required: bool,
    pub passed: bool,
    /// What was found, or what was missing.
    pub message: String,
}

/// A stage's recipe in a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub workspace: WorkspaceId,
    pub stage: String,
    /// Where the stage sits on the board; a card advances to the next position.
    pub position: u32,
    pub automation: AutomationLevel,
    /// In order.
    pub steps: Vec<RecipeStep>,
    pub gates: Vec<GateSpec>,
    pub on_fail: OnFail,
    /// The provider steps call first (`provider` or `provider#alias`); empty uses the router's
    /// chain for the `recipe` role.
    #[serde(default)]
    pub provider: String,
    pub enabled: bool,
    /// Counts changes; the store sets it. Its etag.
    #[serde(default)]
    pub revision: u64,
    pub updated_at: Timestamp,
}

/// What a card holds while it moves through the stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub id: CardId,
    pub workspace: WorkspaceId,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Values steps can map as `card.inputs.<key>`.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    pub stage: String,
    /// The stage it was in before (where `revert` sends it).
    #[serde(default)]
    pub previous_stage: Option<String>,
    /// The recipe run of its stage while that run has not ended: the card is locked.
    #[serde(default)]
    pub active_run: Option<RunId>,
    /// The latest version of each document its runs produced, by artifact name.
    #[serde(default)]
    pub documents: BTreeMap<String, ArtifactId>,
    /// Questions a failed run left for people (`create_questions`).
    #[serde(default)]
    pub questions: Vec<String>,
    /// Set by a failure under `review_required`; cleared when a person moves the card.
    #[serde(default)]
    pub review_required: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How its last finished run ended.
    #[serde(default)]
    pub last_run: Option<CardRun>,
    /// Counts changes (and recipe runs); the store sets it.
    #[serde(default)]
    pub revision: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Card {
    /// Whether a run of its stage is still going, so it cannot be moved.
    pub fn locked(&self) -> bool {
        self.active_run.is_some()
    }
}

/// How a recipe run ended, for its card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipeOutcome {
    /// Every step ran and every required gate passed.
    Passed,
    /// A required gate failed.
    FailedGates,
    /// A step failed after its retries, or the run failed.
    Failed,
    Cancelled,
    /// A person rejected the run waiting for approval.
    Rejected,
}

impl RecipeOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::FailedGates => "failed_gates",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
        }
    }
}

/// A card's finished recipe run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardRun {
    pub run: RunId,
    pub stage: String,
    pub outcome: RecipeOutcome,
    #[serde(default)]
    pub gates: Vec<GateResult>,
    #[serde(default)]
    pub metrics: BTreeMap<String, Metric>,
    /// How it ended, for people.
    #[serde(default)]
    pub message: String,
}

/// What happened to a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardEventKind {
    Created,
    /// A person (or an advance) moved it to a stage.
    Moved,
    /// A recipe run was created for its stage; it is locked.
    RunCreated,
    /// The run waits for a person to approve it.
    AwaitingApproval,
    Approved,
    Rejected,
    /// Its run ended (the message says how); it is unlocked.
    RunEnded,
    /// A run ended under `auto_notify`.
    Notified,
    /// Its run succeeded under `fully_auto`: it moved to the next stage.
    Advanced,
    /// Its run failed under `revert`: it went back to the stage it came from.
    Reverted,
    /// Its run failed under `stay`.
    Stayed,
    QuestionsCreated,
    ReviewRequired,
    /// A move was refused (the stage's recipe would run an untrusted skill unattended).
    Refused,
}

impl CardEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Moved => "moved",
            Self::RunCreated => "run_created",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::RunEnded => "run_ended",
            Self::Notified => "notified",
            Self::Advanced => "advanced",
            Self::Reverted => "reverted",
            Self::Stayed => "stayed",
            Self::QuestionsCreated => "questions_created",
            Self::ReviewRequired => "review_required",
            Self::Refused => "refused",
        }
    }
}

/// An entry of a card's audit trail, before the store numbers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCardEvent {
    pub kind: CardEventKind,
    #[serde(default)]
    pub from_stage: Option<String>,
    #[serde(default)]
    pub to_stage: Option<String>,
    #[serde(default)]
    pub run: Option<RunId>,
    /// Who did it: `user:<name>`, `system`.
    pub actor: String,
    pub message: String,
    pub at: Timestamp,
}

/// An entry of a card's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardEvent {
    pub card: CardId,
    /// From 1, without gaps, per card.
    pub sequence: u64,
    #[serde(flatten)]
    pub event: NewCardEvent,
}

/// A change to a card decided from the card as stored: the card to store and the audit
/// entries that record it, committed together.
#[derive(Debug, Clone)]
pub struct CardChange {
    pub card: Card,
    pub events: Vec<NewCardEvent>,
}

/// Which cards to list.
#[derive(Debug, Clone)]
pub struct CardQuery {
    pub workspace: WorkspaceId,
    pub stage: Option<String>,
    /// Cards with an id greater than this.
    pub after: Option<CardId>,
    pub limit: u32,
}
