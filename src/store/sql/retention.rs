//! The statements of retention: what finished runs leave behind, removed after a while.

use super::Statement;
use crate::domain::{RunId, Timestamp};

/// Up to `limit` runs finished before `before` whose history is still there, oldest first;
/// with `lock`, locked against a concurrent `RetryRun` (and skipped if another process has them).
pub fn histories_to_prune(before: Timestamp, limit: u32, lock: bool) -> Statement {
    finished_before("SELECT id AS text FROM runs WHERE history_pruned_at IS NULL AND finished_at < ", before, limit, lock)
}

/// Up to `limit` runs finished before `before`, oldest first, locked as above.
pub fn runs_to_delete(before: Timestamp, limit: u32, lock: bool) -> Statement {
    finished_before("SELECT id AS text FROM runs WHERE finished_at < ", before, limit, lock)
}

fn finished_before(head: &str, before: Timestamp, limit: u32, lock: bool) -> Statement {
    let mut statement = Statement::new(head);
    statement.push_bind(before.as_micros()).push(" AND finished_at IS NOT NULL ORDER BY finished_at LIMIT ").push_bind(i64::from(limit));
    if lock {
        statement.push(" FOR UPDATE SKIP LOCKED");
    }
    statement
}

/// Deletes the rows of `table` that belong to the runs (`column` names the run).
pub fn delete_of_runs(table: &str, column: &str, runs: &[RunId]) -> Statement {
    let mut statement = Statement::new(format!("DELETE FROM {table} WHERE {column} IN "));
    statement.push_tuple(runs.iter().map(|id| id.to_string().into()).collect());
    statement
}

/// Records that the runs' histories were pruned.
pub fn mark_pruned(runs: &[RunId], now: Timestamp) -> Statement {
    let mut statement = Statement::new("UPDATE runs SET history_pruned_at = ");
    statement.push_bind(now.as_micros()).push(" WHERE id IN ");
    statement.push_tuple(runs.iter().map(|id| id.to_string().into()).collect());
    statement
}

/// The tables holding a run's history, with the column naming the run.
pub const HISTORY_TABLES: [(&str, &str); 3] = [("run_events", "run_id"), ("run_logs", "run_id"), ("run_journal", "run_id")];

/// What else a run owns, deleted with it (before the run row itself): its labels, its
/// artifacts' versions and labels (their blobs go when no version references them), and the
/// record of what it read.
pub const OWNED_TABLES: [(&str, &str); 4] =
    [("run_labels", "run_id"), ("artifact_labels", "run_id"), ("artifact_uses", "run_id"), ("artifacts", "run_id")];
