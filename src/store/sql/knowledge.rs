//! The statements of what workflows learn across runs: debate participants' votes against
//! their debates' outcomes, and missions' memory with full-text search (FTS5 on SQLite,
//! `tsvector` on Postgres).

use super::{to_i64, Flavor, Statement};
use crate::domain::{Memory, RunId, Timestamp, WorkspaceId};

/// Records whether each participant's vote matched its debate's outcome (once per debate).
pub fn insert_votes(run: RunId, workspace: &WorkspaceId, votes: &[(String, bool)], now: Timestamp) -> Statement {
    let mut statement = Statement::new("INSERT INTO debate_votes (run_id, workspace_id, participant, agreed, recorded_at) VALUES ");
    for (participant, agreed) in votes {
        statement.push_tuple(vec![
            run.to_string().into(),
            workspace.as_str().to_owned().into(),
            participant.clone().into(),
            (*agreed).into(),
            now.as_micros().into(),
        ]);
    }
    statement.push(" ON CONFLICT (run_id, participant) DO NOTHING");
    statement
}

/// Participants' records in a workspace.
pub fn reliability(workspace: &WorkspaceId, participants: &[String]) -> Statement {
    let mut statement = Statement::new(
        "SELECT participant, COUNT(*) AS debates, SUM(CASE WHEN agreed THEN 1 ELSE 0 END) AS agreed \
         FROM debate_votes WHERE workspace_id = ",
    );
    statement.push_bind(workspace.as_str().to_owned()).push(" AND participant IN ");
    statement.push_tuple(participants.iter().map(|participant| participant.clone().into()).collect());
    statement.push(" GROUP BY participant ORDER BY participant");
    statement
}

/// Stores a mission's memory, replacing an earlier one of the same run.
pub fn remember(memory: &Memory) -> Vec<Statement> {
    let mut delete = Statement::new("DELETE FROM mission_memory WHERE run_id = ");
    delete.push_bind(memory.run_id.to_string());
    let mut insert = Statement::new("INSERT INTO mission_memory (run_id, workspace_id, request, summary, outcome, created_at) VALUES ");
    insert.push_tuple(vec![
        memory.run_id.to_string().into(),
        memory.workspace.as_str().to_owned().into(),
        memory.request.clone().into(),
        memory.summary.clone().into(),
        memory.outcome.clone().into(),
        memory.created_at.as_micros().into(),
    ]);
    vec![delete, insert]
}

/// The memories of a workspace matching any of `words`, best first.
pub fn recall(flavor: Flavor, workspace: &WorkspaceId, words: &[String], limit: u32) -> Statement {
    let columns = "run_id, workspace_id, request, summary, outcome, CAST(created_at AS BIGINT) AS created_at";
    let mut statement = Statement::new(format!("SELECT {columns} FROM mission_memory WHERE workspace_id = "));
    statement.push_bind(workspace.as_str().to_owned());
    match flavor {
        Flavor::Sqlite => {
            // Each word quoted, so none is read as FTS5 syntax.
            let query = words.iter().map(|word| format!("\"{word}\"")).collect::<Vec<_>>().join(" OR ");
            statement.push(" AND mission_memory MATCH ").push_bind(query).push(" ORDER BY rank");
        }
        Flavor::Postgres => {
            let query = words.join(" | ");
            statement.push(" AND search @@ to_tsquery('english', ").push_bind(query.clone()).push(")");
            statement.push(" ORDER BY ts_rank(search, to_tsquery('english', ").push_bind(query).push(")) DESC, created_at DESC");
        }
    }
    statement.push(" LIMIT ").push_bind(to_i64(u64::from(limit)));
    statement
}

/// A participant's record.
#[derive(Debug, sqlx::FromRow)]
pub struct ReliabilityRow {
    pub participant: String,
    pub debates: i64,
    pub agreed: i64,
}

/// A `mission_memory` row.
#[derive(Debug, sqlx::FromRow)]
pub struct MemoryRow {
    pub run_id: String,
    pub workspace_id: String,
    pub request: String,
    pub summary: String,
    pub outcome: String,
    pub created_at: i64,
}
