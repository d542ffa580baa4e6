//! The statements of artifacts: their versions, labels and uses (the blobs themselves are files,
//! kept by `artifacts::blob`).

use std::collections::BTreeMap;

use super::{json_column, multi_row, to_i64, to_json, to_u32, to_u64, Bind, Statement};
use crate::{
    domain::{
        Artifact, ArtifactId, ArtifactKind, ArtifactName, ArtifactQuery, ArtifactUse, Digest, NewArtifact, Producer, RunId,
        RunState, Timestamp, WorkspaceId, WriteCondition, DEFAULT_WORKSPACE,
    },
    error::{Error, Result},
};

const ARTIFACT_COLUMNS: &str = "id, workspace_id, run_id, name, version, kind, media_type, size, sha256, labels, \
    producer_step, producer_tool, producer_tool_version, schema_ref, created_at";

/// An `artifacts` row as both backends return it.
#[derive(Debug, sqlx::FromRow)]
pub struct ArtifactRow {
    pub id: String,
    pub workspace_id: String,
    pub run_id: String,
    pub name: String,
    pub version: i64,
    pub kind: String,
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
    pub labels: String,
    pub producer_step: Option<String>,
    pub producer_tool: Option<String>,
    pub producer_tool_version: Option<String>,
    pub schema_ref: Option<String>,
    pub created_at: i64,
}

impl TryFrom<ArtifactRow> for Artifact {
    type Error = Error;

    fn try_from(row: ArtifactRow) -> Result<Self> {
        let corrupt = |column: &str, err: Error| Error::Internal(format!("artifact {}: corrupt {column}: {err}", row.id));
        Ok(Artifact {
            id: ArtifactId::parse("id", &row.id).map_err(|err| corrupt("id", err))?,
            workspace: WorkspaceId::new(row.workspace_id.clone()),
            run_id: RunId::parse("run_id", &row.run_id).map_err(|err| corrupt("run_id", err))?,
            name: ArtifactName::stored(row.name.clone()),
            version: to_u32(row.version),
            kind: ArtifactKind::from_stored(&row.kind)?,
            media_type: row.media_type.clone(),
            size: to_u64(row.size),
            digest: Digest::parse("sha256", &row.sha256).map_err(|err| corrupt("sha256", err))?,
            labels: json_column::<BTreeMap<String, String>>("labels", &row.labels)?,
            producer: Producer {
                step: row.producer_step,
                tool: row.producer_tool,
                tool_version: row.producer_tool_version,
                schema: row.schema_ref,
            },
            created_at: Timestamp::from_micros(row.created_at),
        })
    }
}

/// An `artifact_uses` row.
#[derive(Debug, sqlx::FromRow)]
pub struct UseRow {
    pub artifact_id: String,
    pub run_id: String,
    pub step: String,
    pub used_at: i64,
}

impl TryFrom<UseRow> for ArtifactUse {
    type Error = Error;

    fn try_from(row: UseRow) -> Result<Self> {
        Ok(ArtifactUse {
            artifact_id: ArtifactId::parse("artifact_id", &row.artifact_id)
                .map_err(|err| Error::Internal(format!("corrupt artifact use: {err}")))?,
            run_id: RunId::parse("run_id", &row.run_id).map_err(|err| Error::Internal(format!("corrupt artifact use: {err}")))?,
            step: row.step,
            used_at: Timestamp::from_micros(row.used_at),
        })
    }
}

/// The run an artifact is written into, with what a write checks: its workspace (`text`), its
/// state (`text2`) and its lease epoch (`int`); with `lock`, locked until the transaction ends,
/// so writes into one run are serialised against each other and against its lease changing.
pub fn run_for_write(run: RunId, lock: bool) -> Statement {
    let mut statement = Statement::new("SELECT workspace_id AS text, state AS text2, lease_epoch AS int FROM runs WHERE id = ");
    statement.push_bind(run.to_string());
    if lock {
        statement.push(" FOR UPDATE");
    }
    statement
}

/// The latest version of a name: its id (`text`) and number (`int`).
pub fn latest_version(run: RunId, name: &ArtifactName) -> Statement {
    let mut statement = Statement::new("SELECT id AS text, version AS int FROM artifacts WHERE run_id = ");
    statement.push_bind(run.to_string()).push(" AND name = ").push_bind(name.as_str().to_owned());
    statement.push(" ORDER BY version DESC LIMIT 1");
    statement
}

/// Inserts `artifact` as the next version of its name, in one statement, if its run exists,
/// `lease_epoch` (if given) is the lease of the run, running, and the write's condition holds;
/// returns the version (`int`) and the run's workspace (`text`), or no row if a check failed
/// (for the caller to find out which). Its labels are not inserted.
///
/// The checks and the insert are atomic only where the store's writes are serialised (SQLite's
/// one writer connection): on Postgres the run row must be locked first.
pub fn insert_next_version(artifact: &NewArtifact, lease_epoch: Option<u64>) -> Result<Statement> {
    let (run, name) = (artifact.run_id.to_string(), artifact.name.as_str().to_owned());
    let mut statement = Statement::new(format!("INSERT INTO artifacts ({ARTIFACT_COLUMNS}) SELECT "));
    statement.push_bind(artifact.id.to_string()).push(", runs.workspace_id, runs.id, ").push_bind(name.clone());
    statement.push(", COALESCE((SELECT MAX(version) FROM artifacts WHERE run_id = ").push_bind(run.clone());
    statement.push(" AND name = ").push_bind(name.clone()).push("), 0) + 1");
    // The values after the five columns above (id, workspace, run, name, version).
    for value in row_values(&numbered(artifact, WorkspaceId::new(""), 0))?.into_iter().skip(5) {
        statement.push(", ").push_bind(value);
    }
    statement.push(" FROM runs WHERE runs.id = ").push_bind(run.clone());
    if let Some(epoch) = lease_epoch {
        statement.push(" AND runs.state = ").push_bind(RunState::Running.as_str().to_owned());
        statement.push(" AND runs.lease_epoch = ").push_bind(to_i64(epoch));
    }
    match &artifact.condition {
        WriteCondition::Always => {}
        WriteCondition::Absent => {
            statement.push(" AND NOT EXISTS (SELECT 1 FROM artifacts WHERE run_id = ").push_bind(run);
            statement.push(" AND name = ").push_bind(name).push(")");
        }
        WriteCondition::Etag(etag) => {
            statement.push(" AND (SELECT id FROM artifacts WHERE run_id = ").push_bind(run);
            statement.push(" AND name = ").push_bind(name).push(" ORDER BY version DESC LIMIT 1) = ").push_bind(etag.to_string());
        }
    }
    statement.push(" RETURNING version AS int, workspace_id AS text");
    Ok(statement)
}

/// Inserts a version and its labels.
pub fn insert(artifact: &Artifact) -> Result<Vec<Statement>> {
    let mut statement = Statement::new(format!("INSERT INTO artifacts ({ARTIFACT_COLUMNS}) VALUES "));
    statement.push_tuple(row_values(artifact)?);
    let mut statements = vec![statement];
    statements.extend(insert_labels(artifact.id, artifact.run_id, &artifact.labels)?);
    Ok(statements)
}

/// The values of a version's row, in the order of [`ARTIFACT_COLUMNS`].
fn row_values(artifact: &Artifact) -> Result<Vec<Bind>> {
    Ok(vec![
        artifact.id.to_string().into(),
        artifact.workspace.as_str().to_owned().into(),
        artifact.run_id.to_string().into(),
        artifact.name.as_str().to_owned().into(),
        i64::from(artifact.version).into(),
        artifact.kind.as_str().to_owned().into(),
        artifact.media_type.clone().into(),
        to_i64(artifact.size).into(),
        artifact.digest.as_str().to_owned().into(),
        to_json(&artifact.labels)?.into(),
        artifact.producer.step.clone().into(),
        artifact.producer.tool.clone().into(),
        artifact.producer.tool_version.clone().into(),
        artifact.producer.schema.clone().into(),
        artifact.created_at.as_micros().into(),
    ])
}

/// Inserts the labels of a version.
pub fn insert_labels(id: ArtifactId, run: RunId, labels: &BTreeMap<String, String>) -> Result<Vec<Statement>> {
    let labels: Vec<(&String, &String)> = labels.iter().collect();
    multi_row("INSERT INTO artifact_labels (artifact_id, run_id, key, value) VALUES ", "", &labels, |(key, value)| {
        Ok(vec![id.to_string().into(), run.to_string().into(), (*key).clone().into(), (*value).clone().into()])
    })
}

/// The artifact a new version becomes, once numbered.
pub fn numbered(new: &NewArtifact, workspace: WorkspaceId, version: u32) -> Artifact {
    Artifact {
        id: new.id,
        workspace,
        run_id: new.run_id,
        name: new.name.clone(),
        version,
        kind: new.kind,
        media_type: new.media_type.clone(),
        size: new.size,
        digest: new.digest.clone(),
        labels: new.labels.clone(),
        producer: new.producer.clone(),
        created_at: new.created_at,
    }
}

/// Versions by id.
pub fn select_by_ids(ids: &[ArtifactId]) -> Statement {
    let mut statement = Statement::new(format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE id IN "));
    statement.push_tuple(ids.iter().map(|id| id.to_string().into()).collect());
    statement.push(" ORDER BY id");
    statement
}

/// One version of a name: `version`, or the latest.
pub fn select_by_name(run: RunId, name: &ArtifactName, version: Option<u32>) -> Statement {
    let mut statement = Statement::new(format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = "));
    statement.push_bind(run.to_string()).push(" AND name = ").push_bind(name.as_str().to_owned());
    match version {
        Some(version) => {
            statement.push(" AND version = ").push_bind(i64::from(version));
        }
        None => {
            statement.push(" ORDER BY version DESC LIMIT 1");
        }
    }
    statement
}

/// Every version written into these runs, oldest first.
pub fn select_of_runs(runs: &[RunId]) -> Statement {
    let mut statement = Statement::new(format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id IN "));
    statement.push_tuple(runs.iter().map(|id| id.to_string().into()).collect());
    statement.push(" ORDER BY id");
    statement
}

/// A page of a listing, by id ascending.
pub fn list(query: &ArtifactQuery) -> Statement {
    let workspace = query.workspace.as_ref().map_or(DEFAULT_WORKSPACE, WorkspaceId::as_str);
    let mut statement = Statement::new(format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts AS a WHERE workspace_id = "));
    statement.push_bind(workspace.to_owned());
    if let Some(run) = query.run_id {
        statement.push(" AND run_id = ").push_bind(run.to_string());
    }
    if let Some(prefix) = &query.name_prefix {
        // A comparison instead of LIKE, so no character of the prefix is a wildcard.
        // The length is a number Conclave computed, so it goes into the text (Postgres's
        // `substr` takes an `integer`, which a bound `bigint` is not).
        statement.push(&format!(" AND substr(name, 1, {}) = ", prefix.chars().count())).push_bind(prefix.clone());
    }
    if let Some(kind) = query.kind {
        statement.push(" AND kind = ").push_bind(kind.as_str().to_owned());
    }
    if let Some(after) = query.after {
        statement.push(" AND id > ").push_bind(after.to_string());
    }
    for (key, value) in &query.labels {
        statement.push(" AND EXISTS (SELECT 1 FROM artifact_labels l WHERE l.artifact_id = a.id AND l.key = ");
        statement.push_bind(key.clone()).push(" AND l.value = ").push_bind(value.clone()).push(")");
    }
    if !query.all_versions {
        statement.push(" AND NOT EXISTS (SELECT 1 FROM artifacts AS b WHERE b.run_id = a.run_id AND b.name = a.name AND b.version > a.version)");
    }
    statement.push(" ORDER BY id LIMIT ").push_bind(i64::from(query.limit));
    statement
}

/// Deletes versions, with their labels and the records of their reads.
pub fn delete(ids: &[ArtifactId]) -> Vec<Statement> {
    ["artifact_labels", "artifact_uses", "artifacts"]
        .into_iter()
        .map(|table| {
            let column = if table == "artifacts" { "id" } else { "artifact_id" };
            let mut statement = Statement::new(format!("DELETE FROM {table} WHERE {column} IN "));
            statement.push_tuple(ids.iter().map(|id| id.to_string().into()).collect());
            statement
        })
        .collect()
}

/// Records a read (once per step).
pub fn insert_use(used: &ArtifactUse) -> Statement {
    let mut statement = Statement::new("INSERT INTO artifact_uses (artifact_id, run_id, step, used_at) VALUES ");
    statement.push_tuple(vec![
        used.artifact_id.to_string().into(),
        used.run_id.to_string().into(),
        used.step.clone().into(),
        used.used_at.as_micros().into(),
    ]);
    statement.push(" ON CONFLICT (artifact_id, run_id, step) DO NOTHING");
    statement
}

/// The reads of these versions, and the reads made by these runs, in time order.
pub fn select_uses(of: &[ArtifactId], by: &[RunId]) -> Statement {
    let mut statement = Statement::new("SELECT artifact_id, run_id, step, used_at FROM artifact_uses WHERE ");
    if of.is_empty() {
        statement.push("FALSE");
    } else {
        statement.push("artifact_id IN ");
        statement.push_tuple(of.iter().map(|id| id.to_string().into()).collect());
    }
    if !by.is_empty() {
        statement.push(" OR run_id IN ");
        statement.push_tuple(by.iter().map(|id| id.to_string().into()).collect());
    }
    statement.push(" ORDER BY used_at, artifact_id, run_id, step");
    statement
}

/// Which of these digests some version still references (`text`).
pub fn referenced(digests: &[Digest]) -> Statement {
    let mut statement = Statement::new("SELECT DISTINCT sha256 AS text FROM artifacts WHERE sha256 IN ");
    statement.push_tuple(digests.iter().map(|digest| digest.as_str().to_owned().into()).collect());
    statement
}
