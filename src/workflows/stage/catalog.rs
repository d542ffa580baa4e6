//! `SkillService`'s domain: a workspace's catalog of skills. Skills come from a directory of
//! `<skill-id>/SKILL.md` (new ones start `experimental`) or from a remote registry (they start
//! `community`); a skill whose content changed gets a new version, and a skill may be pinned to
//! one. Only a person vets a skill, and only vetted skills run fully automatically.

use std::{path::Path, time::Duration};

use super::{
    registry::{RegistryClient, RegistryListing},
    skill::{self, SkillFileError},
};
use crate::{
    domain::{page_limit, Page, PageToken, Skill, SkillDefinition, SkillId, SkillSource, SkillVersion, Timestamp, TrustLevel, WorkspaceId},
    engine::Engine,
    error::{Error, Result},
};

/// How long a registry call may take.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the remote skills registry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    pub url: String,
    pub token: Option<String>,
}

/// A skill a sync read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub id: SkillId,
    pub version: String,
    /// A new skill, or a new version of one.
    pub changed: bool,
}

/// What a sync did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    pub skills: Vec<Synced>,
    pub errors: Vec<SkillFileError>,
}

/// A new version of a skill to record.
struct Arrival {
    id: SkillId,
    source: SkillSource,
    definition: SkillDefinition,
    declared: Option<String>,
    /// The trust level of a skill new to the catalog.
    trust: TrustLevel,
    pin: bool,
}

/// The catalogs of an engine's workspaces.
#[derive(Debug, Clone)]
pub struct Skills {
    engine: Engine,
    registry: Option<RegistrySettings>,
}

impl Skills {
    pub fn new(engine: Engine, registry: Option<RegistrySettings>) -> Self {
        Self { engine, registry }
    }

    /// Syncs every skill of a directory; malformed ones are reported and the rest synced.
    pub async fn sync(&self, workspace: &str, path: &str) -> Result<SyncReport> {
        let workspace = self.engine.workspace(workspace).await?;
        if path.is_empty() {
            return Err(Error::invalid("path", "is required: the directory holding <skill-id>/SKILL.md"));
        }
        let root = Path::new(path).to_path_buf();
        let scan = tokio::task::spawn_blocking(move || skill::scan_skills(&root))
            .await
            .map_err(|err| Error::Internal(format!("the skills scan stopped: {err}")))??;
        let mut report = SyncReport { skills: Vec::new(), errors: scan.errors };
        for loaded in scan.skills {
            let file = loaded.path.join("SKILL.md").display().to_string();
            let arrival = Arrival {
                id: loaded.id,
                source: SkillSource::Local { path: loaded.path.display().to_string() },
                definition: loaded.definition,
                declared: loaded.declared_version,
                trust: TrustLevel::Experimental,
                pin: false,
            };
            match self.record(&workspace, arrival).await {
                Ok((skill, changed, version)) => report.skills.push(Synced { id: skill.id, version, changed }),
                Err(Error::AlreadyExists { message, .. }) => report.errors.push(SkillFileError { path: file, reason: message }),
                Err(err) => return Err(err),
            }
        }
        Ok(report)
    }

    /// Searches the remote registry.
    pub async fn search_registry(&self, query: &str) -> Result<Vec<RegistryListing>> {
        self.registry()?.search(query).await
    }

    /// Imports a skill from the remote registry (`community` when new).
    pub async fn import(&self, workspace: &str, remote_id: &str, pin: bool) -> Result<Skill> {
        let workspace = self.engine.workspace(workspace).await?;
        if remote_id.is_empty() {
            return Err(Error::invalid("remote_id", "is required: the registry's id of the skill"));
        }
        let client = self.registry()?;
        let (id, definition, version) = client.fetch(remote_id).await?;
        let url = self.registry.as_ref().map(|settings| settings.url.clone()).unwrap_or_default();
        let arrival = Arrival {
            id,
            source: SkillSource::Registry { url, remote_id: remote_id.to_owned() },
            definition,
            declared: Some(version),
            trust: TrustLevel::Community,
            pin,
        };
        Ok(self.record(&workspace, arrival).await?.0)
    }

    /// One skill.
    pub async fn get(&self, workspace: &str, id: &str) -> Result<Skill> {
        let id = skill::validate_skill_id("id", id)?;
        let workspace = self.engine.workspace(workspace).await?;
        self.engine.store().get_skill(&workspace, &id).await?.ok_or_else(|| Error::not_found("skill", id))
    }

    /// The skills of a workspace matching every word of `query` and every tag, by id.
    pub async fn list(&self, workspace: &str, query: &str, tags: &[String], trust: Option<TrustLevel>, page_size: i32, page_token: &str) -> Result<Page<Skill>> {
        let workspace = self.engine.workspace(workspace).await?;
        let limit = page_limit(page_size, 100)? as usize;
        let filters = format!("skills/{workspace}/{query}/{}/{}", tags.join(","), trust.map_or("", TrustLevel::as_str));
        let tokens = PageToken::for_filters(&filters);
        let after = match page_token {
            "" => None,
            token => Some(tokens.decode(token)?),
        };
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        let tags: Vec<String> = tags.iter().map(|tag| tag.to_lowercase()).collect();
        let mut matching: Vec<Skill> = self
            .engine
            .store()
            .list_skills(&workspace)
            .await?
            .into_iter()
            .filter(|skill| after.as_deref().is_none_or(|after| skill.id.as_str() > after))
            .filter(|skill| trust.is_none_or(|trust| skill.trust == trust))
            .filter(|skill| matches(skill, &words, &tags))
            .take(limit + 1)
            .collect();
        let more = matching.len() > limit;
        matching.truncate(limit);
        let next_page_token = more.then(|| matching.last().map(|skill| tokens.encode(skill.id.as_str()))).flatten();
        Ok(Page { items: matching, next_page_token })
    }

    /// Pins the version recipes use; an empty version follows the latest again.
    pub async fn pin(&self, workspace: &str, id: &str, version: &str) -> Result<Skill> {
        let version = (!version.is_empty()).then(|| version.to_owned());
        self.change(workspace, id, move |skill| {
            if let Some(version) = version.as_ref().filter(|version| !skill.versions.iter().any(|known| &known.version == *version)) {
                let known: Vec<&str> = skill.versions.iter().map(|known| known.version.as_str()).collect();
                return Err(Error::invalid("version", format!("skill `{}` has no version `{version}`; it has {}", skill.id, known.join(", "))));
            }
            skill.pinned_version.clone_from(&version);
            Ok(())
        })
        .await
    }

    /// Sets a skill's trust level.
    pub async fn set_trust(&self, workspace: &str, id: &str, trust: TrustLevel) -> Result<Skill> {
        self.change(workspace, id, move |skill| {
            skill.trust = trust;
            Ok(())
        })
        .await
    }

    async fn change(&self, workspace: &str, id: &str, edit: impl Fn(&mut Skill) -> Result<()> + Send + Sync) -> Result<Skill> {
        let id = skill::validate_skill_id("id", id)?;
        let workspace = self.engine.workspace(workspace).await?;
        let missing = id.clone();
        let change = move |existing: Option<&Skill>| {
            let mut skill = existing.cloned().ok_or_else(|| Error::not_found("skill", &missing))?;
            edit(&mut skill)?;
            skill.updated_at = Timestamp::now();
            Ok(skill)
        };
        self.engine.store().update_skill(&workspace, &id, &change).await
    }

    fn registry(&self) -> Result<RegistryClient> {
        let settings = self.registry.as_ref().ok_or_else(|| {
            Error::precondition("NO_REGISTRY", "no skills registry is configured: set skills_registry_url (or CONCLAVE_SKILLS_REGISTRY_URL)")
        })?;
        RegistryClient::new(&settings.url, settings.token.clone(), REGISTRY_TIMEOUT)
    }

    /// Records a skill's version: a new skill, a new version, or nothing when the content is a
    /// version it already has. Returns the skill, whether it changed, and the version.
    async fn record(&self, workspace: &WorkspaceId, arrival: Arrival) -> Result<(Skill, bool, String)> {
        let (version, digest) = skill::version_of(&arrival.definition, arrival.declared.as_deref());
        let now = Timestamp::now();
        let entry = SkillVersion { version: version.clone(), digest: digest.clone(), definition: arrival.definition.clone(), added_at: now };
        let (owner, id) = (workspace.clone(), arrival.id.clone());
        let change = move |existing: Option<&Skill>| {
            let Some(existing) = existing else {
                return Ok(Skill {
                    workspace: owner.clone(),
                    id: id.clone(),
                    source: arrival.source.clone(),
                    trust: arrival.trust,
                    pinned_version: arrival.pin.then(|| entry.version.clone()),
                    versions: vec![entry.clone()],
                    revision: 0,
                    created_at: now,
                    updated_at: now,
                });
            };
            if std::mem::discriminant(&existing.source) != std::mem::discriminant(&arrival.source) {
                return Err(Error::AlreadyExists {
                    reason: "SKILL_EXISTS",
                    message: format!("skill `{id}` is already in the catalog from another source ({})", describe(&existing.source)),
                });
            }
            if existing.versions.iter().any(|known| known.digest == entry.digest) {
                return Err(Error::Aborted { reason: "UNCHANGED", message: String::new() });
            }
            if existing.versions.iter().any(|known| known.version == entry.version) {
                return Err(Error::AlreadyExists {
                    reason: "SKILL_VERSION_EXISTS",
                    message: format!("skill `{id}` already has a version `{}` with other content: declare a new version", entry.version),
                });
            }
            let mut skill = existing.clone();
            skill.source = arrival.source.clone();
            skill.versions.push(entry.clone());
            if arrival.pin {
                skill.pinned_version = Some(entry.version.clone());
            }
            skill.updated_at = now;
            Ok(skill)
        };
        match self.engine.store().update_skill(workspace, &arrival.id, &change).await {
            Ok(skill) => Ok((skill, true, version)),
            Err(Error::Aborted { reason: "UNCHANGED", .. }) => {
                let skill = self.engine.store().get_skill(workspace, &arrival.id).await?.ok_or_else(|| Error::not_found("skill", &arrival.id))?;
                let version = skill.versions.iter().find(|known| known.digest == digest).map_or(version, |known| known.version.clone());
                Ok((skill, false, version))
            }
            Err(err) => Err(err),
        }
    }
}

fn describe(source: &SkillSource) -> String {
    match source {
        SkillSource::Local { path } => format!("the directory {path}"),
        SkillSource::Registry { url, .. } => format!("the registry {url}"),
    }
}

/// Whether a skill has every word (in its id, name, description or tags) and every tag.
fn matches(skill: &Skill, words: &[String], tags: &[String]) -> bool {
    let Some(version) = skill.effective().or_else(|| skill.latest()) else { return false };
    let definition = &version.definition;
    let own_tags: Vec<String> = definition.tags.iter().map(|tag| tag.to_lowercase()).collect();
    if !tags.iter().all(|tag| own_tags.contains(tag)) {
        return false;
    }
    let text = format!("{} {} {} {}", skill.id, definition.name, definition.description, definition.tags.join(" ")).to_lowercase();
    words.iter().all(|word| text.contains(word.as_str()))
}
