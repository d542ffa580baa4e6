//! Lineage: the artifacts a version was made from and the ones made from it. A run that read a
//! version before writing another is taken to have made the second from the first, so the walk
//! follows reads (`artifact_uses`) and writes (`artifacts.run_id`) through the store, a level
//! at a time.

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
        let inputs: Vec<&ArtifactUse> = reads
            .iter()
            .filter(|read| frontier.iter().any(|made| made.run_id == read.run_id && read.used_at <= made.created_at))
            .collect();
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
        let made: Vec<Artifact> = written
            .into_iter()
            .filter(|artifact| !seen.contains(&artifact.id))
            .filter(|artifact| reads.iter().any(|read| read.run_id == artifact.run_id && read.used_at <= artifact.created_at))
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

/// The distinct values, in order of first appearance.
fn distinct<T: Copy + Eq + std::hash::Hash>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    values.filter(|value| seen.insert(*value)).collect()
}

/// Adds a read to the set, ordered by time.
fn keep(read: &ArtifactUse, uses: &mut BTreeMap<(i64, ArtifactId, RunId, String), ArtifactUse>) {
    uses.insert((read.used_at.as_micros(), read.artifact_id, read.run_id, read.step.clone()), read.clone());
}
