//! Artifacts: content-addressed blobs on disk ([`blob`]), and the service that names, versions
//! and traces them ([`Artifacts`]): uploads streamed into a blob then recorded in the store
//! under a write condition, downloads streamed out and verified, listings, deletion, lineage,
//! and the collection of blobs no version references any more.

pub mod blob;
mod direct;
mod lineage;
mod service;

use std::{path::PathBuf, time::Duration};

pub use lineage::Lineage;
pub use service::{ArtifactRef, Artifacts, Collected, Download, ListArtifactsRequest, Upload, UploadHeader};

/// Where and how artifacts are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactsConfig {
    /// The directory of the blobs. Processes sharing a database must share it too.
    pub dir: PathBuf,
    /// The largest artifact accepted, in bytes.
    pub max_bytes: u64,
    /// The largest artifact a workflow reads into memory with `ctx.get_artifact`, in bytes.
    pub max_read_bytes: u64,
    /// Bytes per chunk of a download.
    pub chunk_bytes: usize,
    /// A blob no version references is removed once it is this old (its last write), so an
    /// upload between storing its blob and recording its version never loses it.
    pub collect_after: Duration,
    /// An upload's temporary file untouched for this long belongs to a process that died: it
    /// is removed.
    pub abandon_upload_after: Duration,
}

impl ArtifactsConfig {
    /// The defaults, with the blobs under `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_bytes: 4 << 30,
            max_read_bytes: 64 << 20,
            chunk_bytes: 1 << 20,
            collect_after: Duration::from_secs(3600),
            abandon_upload_after: Duration::from_secs(3600),
        }
    }
}

impl Default for ArtifactsConfig {
    /// Blobs in `conclave-artifacts` under the system's temporary directory; a server sets
    /// `artifacts` under its data directory.
    fn default() -> Self {
        Self::in_dir(std::env::temp_dir().join("conclave-artifacts"))
    }
}
