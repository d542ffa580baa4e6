//! Lineage: the artifacts a version was made from and the ones made from it, walked through the
//! store's reads (`artifact_uses`) and writes (`artifacts.run_id`), a level at a time.
//!
//! A version was made from what the step that wrote it read before. Journaled step keys are
//! paths, and the reads under the parent path of the writing step's key belong to that step:
//! a mission step writing under `step/d/r0/output` was made from what it read under
//! `step/d/r0/input/...`, not from what other steps of the mission read. A write whose step read
//! nothing itself, or that names no step, was made from everything its run read before it.

use std::collections::{BTreeMap, HashSet};

use crate::{
    domain::{Artifact, ArtifactId, ArtifactUse, RunId},
    error::Result,
    store::SharedStore,
};

/// The most links a walk follows each way.
pub const MAX_DEPTH: u32 = 20;

/// Where a version came from and where it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// The version asked about.
    pub artifact: Artifact,
    /// The versions it was made from, nearest first.
    pub upstream: Vec<Artifact>,
    /// The versions made from it, nearest first.
    pub downstream: Vec<Artifact>,
    /// The reads linking them, in time order.
    pub uses: Vec<ArtifactUse>,
    /// The walk stopped at its depth with links left to follow.
    pub truncated: bool,
}

/// Walks `depth` links each way from `artifact`.
pub async fn walk(store: &SharedStore, artifact: Artifact, depth: u32) -> Result<Lineage> {
    let mut seen: HashSet<ArtifactId> = HashSet::from([artifact.id]);
    let mut uses: BTreeMap<(i64, ArtifactId, RunId, String), ArtifactUse> = BTreeMap::new();

    // Upstream: what each producing run read before it wrote the version.
    let mut upstream = Vec::new();
    let mut frontier = vec![artifact.clone()];
    let mut truncated = false;
    for level in 0..=depth {
        let runs: Vec<RunId> = distinct(frontier.iter().map(|artifact| artifact.run_id));
        let reads = store.artifact_uses(&[], &runs).await?;
        let inputs: Vec<&ArtifactUse> = reads.iter().filter(|read| frontier.iter().any(|made| made_from(made, read, &reads))).collect();
        let fresh: Vec<ArtifactId> = distinct(inputs.iter().map(|read| read.artifact_id).filter(|id| !seen.contains(id)));
        if level == depth {
            truncated |= !fresh.is_empty();
            break;
        }
        for read in &inputs {
            keep(read, &mut uses);
        }
        let next = store.get_artifacts(&fresh).await?;
        seen.extend(next.iter().map(|artifact| artifact.id));
        upstream.extend(next.iter().cloned());
        if next.is_empty() {
            break;
        }
        frontier = next;
    }

    // Downstream: the runs that read the version, and what they wrote after reading it.
    let mut downstream = Vec::new();
    let mut frontier = vec![artifact.clone()];
    for level in 0..=depth {
        let ids: Vec<ArtifactId> = frontier.iter().map(|artifact| artifact.id).collect();
        let reads = store.artifact_uses(&ids, &[]).await?;
        let readers: Vec<RunId> = distinct(reads.iter().map(|read| read.run_id));
        let written = store.artifacts_of_runs(&readers).await?;
        let readers_reads = store.artifact_uses(&[], &readers).await?;
        let made: Vec<Artifact> = written
            .into_iter()
            .filter(|artifact| !seen.contains(&artifact.id))
            .filter(|artifact| reads.iter().any(|read| made_from(artifact, read, &readers_reads)))
            .collect();
        if level == depth {
            truncated |= !made.is_empty();
            break;
        }
        for read in &reads {
            keep(read, &mut uses);
        }
        seen.extend(made.iter().map(|artifact| artifact.id));
        downstream.extend(made.iter().cloned());
        if made.is_empty() {
            break;
        }
        frontier = made;
    }

    Ok(Lineage { artifact, upstream, downstream, uses: uses.into_values().collect(), truncated })
}

/// Whether `made` was made from what `read` read (see the module's doc); `run_reads` holds every
/// read of `made`'s run.
fn made_from(made: &Artifact, read: &ArtifactUse, run_reads: &[ArtifactUse]) -> bool {
    let before = |read: &ArtifactUse| read.run_id == made.run_id && read.used_at <= made.created_at;
    if !before(read) {
        return false;
    }
    let Some(scope) = step_scope(made) else {
        return true;
    };
    read.step.starts_with(scope) || !run_reads.iter().any(|other| before(other) && other.step.starts_with(scope))
}

/// The parent path of the step that wrote `made`, with its final `/`; `None` if the step is not
/// known or has no parent.
fn step_scope(made: &Artifact) -> Option<&str> {
    let step = made.producer.step.as_deref()?;
    step.rfind('/').map(|at| &step[..=at])
}

/// The distinct values, in order of first appearance.
fn distinct<T: Copy + Eq + std::hash::Hash>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    values.filter(|value| seen.insert(*value)).collect()
}

/// Adds a read to the set, ordered by time.
fn keep(read: &ArtifactUse, uses: &mut BTreeMap<(i64, ArtifactId, RunId, String), ArtifactUse>) {
    uses.insert((read.used_at.as_micros(), read.artifact_id, read.run_id, read.step.clone()), read.clone());
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::{ArtifactKind, ArtifactName, Digest, Producer, Timestamp, WorkspaceId};

    fn written(run_id: RunId, step: &str, at: i64) -> Artifact {
        Artifact {
            id: ArtifactId::new(),
            workspace: WorkspaceId::new("default".to_owned()),
            run_id,
            name: ArtifactName::parse("name", "out.md").unwrap(),
            version: 1,
            kind: ArtifactKind::Document,
            media_type: "text/markdown".into(),
            size: 0,
            digest: Digest::from_bytes([0; 32]),
            labels: BTreeMap::new(),
            producer: Producer { step: Some(step.to_owned()), ..Producer::default() },
            created_at: Timestamp::from_micros(at),
        }
    }

    fn read(run_id: RunId, step: &str, at: i64) -> ArtifactUse {
        ArtifactUse { artifact_id: ArtifactId::new(), run_id, step: step.to_owned(), used_at: Timestamp::from_micros(at) }
    }

    #[test]
    fn a_write_is_made_from_its_own_steps_reads_or_else_from_its_runs() {
        let run = RunId::new();
        let reads = [read(run, "step/b/r0/input/a", 10), read(run, "step/c/r0/input/a", 11), read(run, "setup", 12)];
        let b = written(run, "step/b/r0/output", 20);
        assert_eq!(reads.iter().map(|read| made_from(&b, read, &reads)).collect::<Vec<_>>(), [true, false, false], "its step's reads only");

        let a = written(run, "step/a/r0/output", 20);
        assert!(reads.iter().all(|read| made_from(&a, read, &reads)), "a step that read nothing itself: everything its run read before");
        let top = written(run, "report", 20);
        assert!(reads.iter().all(|read| made_from(&top, read, &reads)), "a step without a parent path: everything its run read before");

        let early = written(run, "step/b/r0/output", 10);
        assert!(!made_from(&early, &reads[1], &reads), "nothing read after the write");
        let elsewhere = written(RunId::new(), "report", 20);
        assert!(!made_from(&elsewhere, &reads[0], &reads), "nothing another run read");
    }
}
