//! The statements of skills, recipes and cards. Each is one JSON document in a row of its table,
//! beside the columns that queries need and a `revision` that counts the row's changes; so the
//! three share one way of being read and written ([`Document`], [`DocumentKey`]). Cards also
//! keep an audit trail, `card_events`, numbered per card from 1.

use std::fmt;

use serde::{de::DeserializeOwned, Serialize};

use super::{multi_row, to_i64, to_u64, Bind, Statement};
use crate::{
    domain::{Card, CardEvent, CardId, CardQuery, NewCardEvent, Recipe, Skill, SkillId, Timestamp, WorkspaceId},
    error::Result,
    store::{json_column, to_json},
};

/// A document kept as one JSON row with a revision: a skill, a recipe or a card.
pub trait Document: Serialize + DeserializeOwned {
    /// The revision the document carries (the store's count of its changes).
    fn revision(&self) -> u64;

    /// Records the revision the store gave it.
    fn set_revision(&mut self, revision: u64);

    /// When it last changed.
    fn updated_at(&self) -> Timestamp;

    /// The columns kept beside the document for queries (not the key), with their values.
    fn columns(&self) -> Vec<(&'static str, Bind)>;
}

impl Document for Skill {
    fn revision(&self) -> u64 {
        self.revision
    }

    fn set_revision(&mut self, revision: u64) {
        self.revision = revision;
    }

    fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    fn columns(&self) -> Vec<(&'static str, Bind)> {
        Vec::new()
    }
}

impl Document for Recipe {
    fn revision(&self) -> u64 {
        self.revision
    }

    fn set_revision(&mut self, revision: u64) {
        self.revision = revision;
    }

    fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    fn columns(&self) -> Vec<(&'static str, Bind)> {
        vec![("position", i64::from(self.position).into())]
    }
}

impl Document for Card {
    fn revision(&self) -> u64 {
        self.revision
    }

    fn set_revision(&mut self, revision: u64) {
        self.revision = revision;
    }

    fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    fn columns(&self) -> Vec<(&'static str, Bind)> {
        vec![
            ("workspace_id", self.workspace.as_str().to_owned().into()),
            ("stage", self.stage.clone().into()),
            ("active_run_id", self.active_run.map(|run| run.to_string()).into()),
            ("created_at", self.created_at.as_micros().into()),
        ]
    }
}

/// Where a document's row is: its table and the values of the table's key columns.
#[derive(Debug, Clone)]
pub struct DocumentKey {
    table: &'static str,
    columns: Vec<(&'static str, String)>,
}

impl DocumentKey {
    /// A skill of a workspace's catalog.
    pub fn skill(workspace: &WorkspaceId, id: &SkillId) -> Self {
        Self { table: "skills", columns: vec![("workspace_id", workspace.as_str().to_owned()), ("skill_id", id.as_str().to_owned())] }
    }

    /// A stage's recipe in a workspace.
    pub fn recipe(workspace: &WorkspaceId, stage: &str) -> Self {
        Self { table: "recipes", columns: vec![("workspace_id", workspace.as_str().to_owned()), ("stage", stage.to_owned())] }
    }

    /// A card.
    pub fn card(id: CardId) -> Self {
        Self { table: "cards", columns: vec![("id", id.to_string())] }
    }

    /// Appends ` WHERE key = … AND …`.
    fn push_where(&self, statement: &mut Statement) {
        for (index, (column, value)) in self.columns.iter().enumerate() {
            statement.push(if index == 0 { " WHERE " } else { " AND " });
            statement.push(column).push(" = ").push_bind(value.clone());
        }
    }
}

impl fmt::Display for DocumentKey {
    /// `skills (workspace_id = default, skill_id = summarize)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns: Vec<String> = self.columns.iter().map(|(column, value)| format!("{column} = {value}")).collect();
        write!(f, "{} ({})", self.table, columns.join(", "))
    }
}

const DOCUMENT_COLUMNS: &str = "revision, document";

/// The document at `key`; with `lock`, locked until the transaction ends (Postgres).
pub fn select(key: &DocumentKey, lock: bool) -> Statement {
    let mut statement = Statement::new(format!("SELECT {DOCUMENT_COLUMNS} FROM {}", key.table));
    key.push_where(&mut statement);
    if lock {
        statement.push(" FOR UPDATE");
    }
    statement
}

/// Inserts a document at `key` unless a row is there already; returns its revision (`AS int`)
/// only if it inserted it.
pub fn insert<T: Document>(key: &DocumentKey, document: &T) -> Result<Statement> {
    let columns = document.columns();
    let names: Vec<&str> = key
        .columns
        .iter()
        .map(|(name, _)| *name)
        .chain(columns.iter().map(|(name, _)| *name))
        .chain(["revision", "document", "updated_at"])
        .collect();
    let mut values: Vec<Bind> = key.columns.iter().map(|(_, value)| value.clone().into()).collect();
    values.extend(columns.into_iter().map(|(_, value)| value));
    values.push(to_i64(document.revision()).into());
    values.push(to_json(document)?.into());
    values.push(document.updated_at().as_micros().into());
    let mut statement = Statement::new(format!("INSERT INTO {} ({}) VALUES ", key.table, names.join(", ")));
    statement.push_tuple(values);
    statement.push(" ON CONFLICT DO NOTHING RETURNING revision AS int");
    Ok(statement)
}

/// Rewrites the document at `key` if its revision is still `previous`; returns its revision
/// (`AS int`) only if it rewrote it.
pub fn update<T: Document>(key: &DocumentKey, document: &T, previous: u64) -> Result<Statement> {
    let mut statement = Statement::new(format!("UPDATE {} SET ", key.table));
    for (column, value) in document.columns() {
        statement.push(column).push(" = ").push_bind(value).push(", ");
    }
    statement.push("revision = ").push_bind(to_i64(document.revision()));
    statement.push(", document = ").push_bind(to_json(document)?);
    statement.push(", updated_at = ").push_bind(document.updated_at().as_micros());
    key.push_where(&mut statement);
    statement.push(" AND revision = ").push_bind(to_i64(previous));
    statement.push(" RETURNING revision AS int");
    Ok(statement)
}

/// Every skill of a workspace, by id.
pub fn list_skills(workspace: &WorkspaceId) -> Statement {
    let mut statement = Statement::new(format!("SELECT {DOCUMENT_COLUMNS} FROM skills WHERE workspace_id = "));
    statement.push_bind(workspace.as_str().to_owned()).push(" ORDER BY skill_id");
    statement
}

/// Every recipe of a workspace, by position then stage.
pub fn list_recipes(workspace: &WorkspaceId) -> Statement {
    let mut statement = Statement::new(format!("SELECT {DOCUMENT_COLUMNS} FROM recipes WHERE workspace_id = "));
    statement.push_bind(workspace.as_str().to_owned()).push(" ORDER BY position, stage");
    statement
}

/// The cards a query selects, by id.
pub fn list_cards(query: &CardQuery) -> Statement {
    let mut statement = Statement::new(format!("SELECT {DOCUMENT_COLUMNS} FROM cards WHERE workspace_id = "));
    statement.push_bind(query.workspace.as_str().to_owned());
    if let Some(stage) = &query.stage {
        statement.push(" AND stage = ").push_bind(stage.clone());
    }
    if let Some(after) = query.after {
        statement.push(" AND id > ").push_bind(after.to_string());
    }
    statement.push(" ORDER BY id LIMIT ").push_bind(i64::from(query.limit));
    statement
}

/// Cards of every workspace whose active run has ended or no longer exists, by id, after
/// `after`: the cards to settle.
pub fn cards_with_ended_runs(after: Option<CardId>, limit: u32) -> Statement {
    let mut statement = Statement::new(
        "SELECT cards.revision, cards.document FROM cards LEFT JOIN runs ON runs.id = cards.active_run_id \
         WHERE cards.active_run_id IS NOT NULL AND (runs.id IS NULL OR runs.state IN ('succeeded', 'failed', 'cancelled'))",
    );
    if let Some(after) = after {
        statement.push(" AND cards.id > ").push_bind(after.to_string());
    }
    statement.push(" ORDER BY cards.id LIMIT ").push_bind(i64::from(limit));
    statement
}

/// The sequence of a card's last audit entry (`AS int`, 0 if it has none).
pub fn last_card_event(card: CardId) -> Statement {
    let mut statement = Statement::new("SELECT COALESCE(MAX(sequence), 0) AS int FROM card_events WHERE card_id = ");
    statement.push_bind(card.to_string());
    statement
}

/// Numbers a card's new audit entries after `last_sequence`.
pub fn number_card_events(card: CardId, last_sequence: u64, events: Vec<NewCardEvent>) -> Vec<CardEvent> {
    events.into_iter().zip(last_sequence + 1..).map(|(event, sequence)| CardEvent { card, sequence, event }).collect()
}

/// Appends audit entries (already numbered).
pub fn insert_card_events(events: &[CardEvent]) -> Result<Vec<Statement>> {
    multi_row("INSERT INTO card_events (card_id, sequence, at, document) VALUES ", "", events, |event| {
        Ok(vec![
            event.card.to_string().into(),
            to_i64(event.sequence).into(),
            event.event.at.as_micros().into(),
            to_json(&event.event)?.into(),
        ])
    })
}

/// A card's audit entries after sequence `after`, in order.
pub fn select_card_events(card: CardId, after: u64, limit: u32) -> Statement {
    let mut statement = Statement::new("SELECT sequence, document FROM card_events WHERE card_id = ");
    statement.push_bind(card.to_string()).push(" AND sequence > ").push_bind(to_i64(after));
    statement.push(" ORDER BY sequence LIMIT ").push_bind(i64::from(limit));
    statement
}

/// A row of `skills`, `recipes` or `cards`.
#[derive(Debug, sqlx::FromRow)]
pub struct DocumentRow {
    pub revision: i64,
    pub document: String,
}

impl DocumentRow {
    /// The document, with the revision of its row.
    pub fn into_document<T: Document>(self) -> Result<T> {
        let mut document: T = json_column("document", &self.document)?;
        document.set_revision(to_u64(self.revision));
        Ok(document)
    }
}

/// A row of `card_events`.
#[derive(Debug, sqlx::FromRow)]
pub struct CardEventRow {
    pub sequence: i64,
    pub document: String,
}

impl CardEventRow {
    pub fn into_event(self, card: CardId) -> Result<CardEvent> {
        Ok(CardEvent { card, sequence: to_u64(self.sequence), event: json_column("card event", &self.document)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_selected_by_every_key_column() {
        let key = DocumentKey::recipe(&WorkspaceId::new("w"), "discovery");
        let statement = select(&key, true);
        assert_eq!(statement.sql, "SELECT revision, document FROM recipes WHERE workspace_id = $1 AND stage = $2 FOR UPDATE");
        assert_eq!(statement.binds, [Bind::from("w".to_owned()), Bind::from("discovery".to_owned())]);
    }
}
