//! The artifact operations behind `ArtifactService` and a workflow's `ctx.put_artifact` and
//! `ctx.get_artifact`: requests are validated here, content goes to the [`BlobStore`], and
//! versions, conditions and reads are recorded in the store.

use std::{collections::BTreeMap, fmt, future::Future, pin::Pin};

use futures::{FutureExt as _, Stream};

use super::{blob::BlobStore, blob::BlobWriter, lineage, ArtifactsConfig, Lineage};
use crate::{
    domain::{
        page_limit, validate_labels, Artifact, ArtifactId, ArtifactKind, ArtifactName, ArtifactQuery, ArtifactUse, Digest,
        NewArtifact, Page, PageToken, Producer, RunId, RunState, Timestamp, WorkspaceId, WriteCondition, DEFAULT_WORKSPACE,
        MAX_MEDIA_TYPE_BYTES, MAX_PRODUCER_FIELD_BYTES,
    },
    error::{Error, FieldViolation, Result},
    store::SharedStore,
};

/// The media type of content uploaded without one.
const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";
/// The page size of a listing that asks for none.
const DEFAULT_PAGE_SIZE: u32 = 50;
/// Blob digests checked against the store per query during collection.
const COLLECT_BATCH: usize = 500;

/// What an upload writes, as received; [`Artifacts::begin_upload`] validates it.
#[derive(Debug, Clone, Default)]
pub struct UploadHeader {
    pub run_id: String,
    pub name: String,
    pub kind: ArtifactKind,
    pub media_type: String,
    pub labels: BTreeMap<String, String>,
    pub producer: Producer,
    /// Empty for none.
    pub expected_etag: String,
    pub if_absent: bool,
    pub size: Option<u64>,
    /// Empty when unknown.
    pub sha256: String,
    /// The lease epoch of a workflow writing into the run it executes.
    pub lease_epoch: Option<u64>,
}

/// One version, as a request names it: by `id`, or by `run_id` and `name` with `version` (0 for
/// the latest).
#[derive(Debug, Clone, Default)]
pub struct ArtifactRef {
    pub id: String,
    pub run_id: String,
    pub name: String,
    pub version: u32,
}

/// A listing, as received.
#[derive(Debug, Clone, Default)]
pub struct ListArtifactsRequest {
    pub workspace: String,
    pub run_id: String,
    pub name_prefix: String,
    pub kind: Option<ArtifactKind>,
    pub labels: BTreeMap<String, String>,
    pub all_versions: bool,
    pub page_size: i32,
    pub page_token: String,
}

/// A download: the artifact, then its content from the requested offset.
pub struct Download {
    /// The version being sent.
    pub artifact: Artifact,
    /// Its content, in chunks; a corrupt blob ends it with `DataLoss`.
    pub chunks: Pin<Box<dyn Stream<Item = Result<bytes::Bytes>> + Send>>,
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download").field("artifact", &self.artifact.id).finish_non_exhaustive()
    }
}

/// What one collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Blobs no version referenced.
    pub blobs: u64,
    /// Temporary files of uploads that died with their process.
    pub abandoned_uploads: u64,
}

/// A named reference, resolved.
enum Resolved {
    Id(ArtifactId),
    Name { run_id: RunId, name: ArtifactName, version: Option<u32> },
}

/// The artifacts of every run: their blobs and their records.
#[derive(Debug)]
pub struct Artifacts {
    store: SharedStore,
    blobs: BlobStore,
    config: ArtifactsConfig,
    /// Held (shared) by an upload from storing its blob until its version is recorded, and
    /// (exclusively) by collection while it removes blobs: a blob an upload is about to
    /// reference is never taken from under it in this process. Across processes sharing the
    /// directory, collection's grace period (`collect_after`) covers the same gap.
    collecting: tokio::sync::RwLock<()>,
}

impl Artifacts {
    /// Opens the blob directory (creating it) over the store.
    pub fn open(store: SharedStore, config: ArtifactsConfig) -> Result<Self> {
        let blobs = BlobStore::open(config.dir.clone())?;
        Ok(Self { store, blobs, config, collecting: tokio::sync::RwLock::new(()) })
    }

    /// How artifacts are kept.
    pub fn config(&self) -> &ArtifactsConfig {
        &self.config
    }

    /// Starts an upload: validates its header, then starts the checks that need the store (the
    /// run exists, the writer holds its lease if it says it does, the write condition holds) and
    /// the temp file, both of which run while the content arrives rather than before it. A
    /// refusal fails the next write and the finish, and [`Upload::refused`] reports it as soon as
    /// it is known, so a refused write ends early. Everything is checked again, atomically, when
    /// the version is recorded.
    pub fn begin_upload(&self, header: UploadHeader) -> Result<Upload<'_>> {
        let draft = validate_upload(header, self.config.max_bytes)?;
        let checks = Box::pin(self.check_upload(draft.run_id, draft.name.clone(), draft.lease_epoch, draft.condition.clone()));
        let writer = self.blobs.writer(self.config.max_bytes, draft.size);
        Ok(Upload { artifacts: self, draft, writer, checks: Checks::Running(checks) })
    }

    /// The checks of an upload that need the store.
    async fn check_upload(&self, run_id: RunId, name: ArtifactName, lease_epoch: Option<u64>, condition: WriteCondition) -> Result<()> {
        let run = self.store.get_run(run_id).await?.ok_or_else(|| Error::not_found("run", run_id))?;
        if let Some(epoch) = lease_epoch {
            let held = run.state == RunState::Running && run.lease.as_ref().is_some_and(|lease| lease.epoch == epoch);
            if !held {
                return Err(Error::StaleLease { run_id: run.id.to_string(), epoch });
            }
        }
        if condition != WriteCondition::Always {
            let latest = self.store.find_artifact(run_id, &name, None).await?;
            condition.check(&name, latest.map(|artifact| artifact.id))?;
        }
        Ok(())
    }

    /// Stores `content` as a new version (a whole upload in one call).
    pub async fn put(&self, header: UploadHeader, content: &[u8]) -> Result<Artifact> {
        let mut upload = self.begin_upload(header)?;
        upload.write(content).await?;
        upload.finish("").await
    }

    /// One version's metadata.
    pub async fn get(&self, reference: &ArtifactRef) -> Result<Artifact> {
        match resolve(reference)? {
            Resolved::Id(id) => self.store.get_artifacts(&[id]).await?.pop().ok_or_else(|| Error::not_found("artifact", id)),
            Resolved::Name { run_id, name, version } => {
                let found = self.store.find_artifact(run_id, &name, version).await?;
                found.ok_or_else(|| match version {
                    Some(version) => Error::not_found("artifact", format!("{run_id}/{name} version {version}")),
                    None => Error::not_found("artifact", format!("{run_id}/{name}")),
                })
            }
        }
    }

    /// Streams a version's content from `offset`, at most `length` bytes (0: to the end).
    pub async fn download(&self, reference: &ArtifactRef, offset: u64, length: u64) -> Result<Download> {
        let artifact = self.get(reference).await?;
        if offset > artifact.size {
            return Err(Error::invalid("offset", format!("is {offset}, past the end: the artifact has {} bytes", artifact.size)));
        }
        let reader = self.blobs.open_blob(&artifact.digest).await?.ok_or_else(|| missing_content(&artifact))?;
        let length = (length > 0).then_some(length);
        let chunks = reader.chunks(offset, length, self.config.chunk_bytes).await?;
        Ok(Download { artifact, chunks: Box::pin(chunks) })
    }

    /// A version's whole content, verified; refused above `max_read_bytes`.
    pub async fn read(&self, artifact: &Artifact) -> Result<Vec<u8>> {
        self.blobs.read_all(&artifact.digest, self.config.max_read_bytes).await.map_err(|err| match err {
            Error::NotFound { resource: "blob", .. } => missing_content(artifact),
            other => other,
        })
    }

    /// The content with this digest (a version read before, as a replayed step names it).
    pub async fn read_digest(&self, digest: &Digest, name: &str) -> Result<Vec<u8>> {
        self.blobs.read_all(digest, self.config.max_read_bytes).await.map_err(|err| match err {
            Error::NotFound { resource: "blob", .. } => {
                Error::DataLoss(format!("the content of artifact `{name}` (sha256 {digest}) is no longer stored"))
            }
            other => other,
        })
    }

    /// Records that a run's step read a version.
    pub async fn record_use(&self, artifact: ArtifactId, run_id: RunId, step: &str) -> Result<()> {
        let used = ArtifactUse { artifact_id: artifact, run_id, step: step.to_owned(), used_at: Timestamp::now() };
        self.store.record_artifact_use(&used).await
    }

    /// Lists artifacts, oldest first.
    pub async fn list(&self, request: ListArtifactsRequest) -> Result<Page<Artifact>> {
        let limit = page_limit(request.page_size, DEFAULT_PAGE_SIZE)?;
        let workspace = if request.workspace.is_empty() { DEFAULT_WORKSPACE.to_owned() } else { request.workspace.clone() };
        let mut violations = Vec::new();
        validate_labels(&request.labels, "labels", &mut violations);
        let run_id = if request.run_id.is_empty() {
            None
        } else {
            match RunId::parse("run_id", &request.run_id) {
                Ok(id) => Some(id),
                Err(Error::InvalidArgument(found)) => {
                    violations.extend(found);
                    None
                }
                Err(other) => return Err(other),
            }
        };
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let mut query = ArtifactQuery {
            workspace: Some(WorkspaceId::new(workspace)),
            run_id,
            name_prefix: (!request.name_prefix.is_empty()).then(|| request.name_prefix.clone()),
            kind: request.kind,
            labels: request.labels.clone(),
            all_versions: request.all_versions,
            limit: limit + 1,
            after: None,
        };
        let tokens = PageToken::for_filters(&format!(
            "artifacts|{:?}|{:?}|{:?}|{:?}|{:?}|{}",
            query.workspace, query.run_id, query.name_prefix, query.kind, query.labels, query.all_versions
        ));
        if !request.page_token.is_empty() {
            query.after = Some(ArtifactId::parse("page_token", &tokens.decode(&request.page_token)?)?);
        }
        let artifacts = self.store.list_artifacts(&query).await?;
        Ok(tokens.page(artifacts, limit, |artifact| artifact.id.to_string()))
    }

    /// Deletes one version, or every version of a name (by name with version 0); returns how
    /// many. The content goes with the next collection once nothing references it.
    pub async fn delete(&self, reference: &ArtifactRef) -> Result<u64> {
        let ids = match resolve(reference)? {
            Resolved::Id(id) => vec![id],
            Resolved::Name { run_id, name, version: Some(version) } => {
                self.store.find_artifact(run_id, &name, Some(version)).await?.map(|artifact| artifact.id).into_iter().collect()
            }
            Resolved::Name { run_id, name, version: None } => {
                let all = self.store.artifacts_of_runs(&[run_id]).await?;
                all.into_iter().filter(|artifact| artifact.name == name).map(|artifact| artifact.id).collect()
            }
        };
        let deleted = self.store.delete_artifacts(&ids).await?;
        if deleted == 0 {
            let what = if reference.id.is_empty() { format!("{}/{}", reference.run_id, reference.name) } else { reference.id.clone() };
            return Err(Error::not_found("artifact", what));
        }
        Ok(deleted)
    }

    /// Where a version came from and where it went, `depth` links each way (0: 5, at most 20).
    pub async fn lineage(&self, reference: &ArtifactRef, depth: u32) -> Result<Lineage> {
        let depth = match depth {
            0 => 5,
            depth if depth > lineage::MAX_DEPTH => {
                return Err(Error::invalid("depth", format!("is {depth}; follow at most {} links", lineage::MAX_DEPTH)));
            }
            depth => depth,
        };
        let artifact = self.get(reference).await?;
        lineage::walk(&self.store, artifact, depth).await
    }

    /// Removes the temporary files of uploads that died with their process, and the blobs no
    /// version references that are older than `collect_after`.
    pub async fn collect(&self) -> Result<Collected> {
        let abandoned_uploads = self.blobs.sweep_temp(self.config.abandon_upload_after).await?;
        let cutoff = std::time::SystemTime::now().checked_sub(self.config.collect_after).unwrap_or(std::time::UNIX_EPOCH);
        let old: Vec<Digest> =
            self.blobs.list().await?.into_iter().filter(|(_, modified)| *modified <= cutoff).map(|(digest, _)| digest).collect();
        let mut blobs = 0;
        for batch in old.chunks(COLLECT_BATCH) {
            let _no_upload_is_finishing = self.collecting.write().await;
            let referenced: std::collections::HashSet<Digest> = self.store.referenced_digests(batch).await?.into_iter().collect();
            for digest in batch.iter().filter(|digest| !referenced.contains(*digest)) {
                // An upload that reused the blob since it was listed touched it: it stays.
                if self.blobs.remove_unless_touched_since(digest, cutoff).await? {
                    blobs += 1;
                }
            }
        }
        Ok(Collected { blobs, abandoned_uploads })
    }
}

/// An upload in progress: content goes to a temporary file until [`Upload::finish`].
/// Dropped unfinished (the client went away, the limit was passed), it leaves nothing behind.
pub struct Upload<'a> {
    artifacts: &'a Artifacts,
    draft: Draft,
    writer: BlobWriter,
    checks: Checks<'a>,
}

/// The store's checks of an upload, and then their verdict.
enum Checks<'a> {
    Running(Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>),
    Passed,
    Refused(Error),
}

impl Checks<'_> {
    /// Waits for the verdict. Safe to drop and call again: the checks go on where they were.
    async fn verdict(&mut self) -> Result<()> {
        if let Self::Running(checks) = self {
            let verdict = checks.await;
            *self = match verdict {
                Ok(()) => Self::Passed,
                Err(err) => Self::Refused(err),
            };
        }
        match self {
            Self::Refused(err) => Err(err.clone()),
            Self::Running(_) | Self::Passed => Ok(()),
        }
    }

    /// The verdict if it is in; `Ok` while the checks run.
    fn verdict_so_far(&mut self) -> Result<()> {
        self.verdict().now_or_never().unwrap_or(Ok(()))
    }
}

impl fmt::Debug for Upload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload")
            .field("draft", &self.draft)
            .field("writer", &self.writer)
            .field("checked", &!matches!(self.checks, Checks::Running(_)))
            .finish_non_exhaustive()
    }
}

impl Upload<'_> {
    /// Appends content; fails if the store's checks have refused the upload meanwhile.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.checks.verdict_so_far()?;
        self.writer.write(chunk).await
    }

    /// Resolves with the store's refusal of the upload once its checks fail; never, if they
    /// pass. Safe to drop and call again: the checks go on where they were.
    pub async fn refused(&mut self) -> Error {
        match self.checks.verdict().await {
            Err(err) => err,
            Ok(()) => std::future::pending().await,
        }
    }

    /// Bytes received so far.
    pub fn bytes_written(&self) -> u64 {
        self.writer.bytes_written()
    }

    /// Stores the content (verified against the declared size and digest, and `sha256` from
    /// the end of the stream when given) and records the version.
    pub async fn finish(self, sha256: &str) -> Result<Artifact> {
        let Upload { artifacts, draft, writer, mut checks } = self;
        checks.verdict().await?;
        let digest = match (draft.digest, sha256) {
            (declared, "") => declared,
            (None, trailer) => Some(Digest::parse("finish.sha256", trailer)?),
            (Some(declared), trailer) => {
                let trailer = Digest::parse("finish.sha256", trailer)?;
                if trailer != declared {
                    return Err(Error::invalid("finish.sha256", format!("is {trailer}, but the header declared {declared}; send one digest")));
                }
                Some(declared)
            }
        };
        let _not_collecting = artifacts.collecting.read().await;
        let blob = writer.finish(digest.as_ref()).await?;
        let new = NewArtifact {
            id: ArtifactId::new(),
            run_id: draft.run_id,
            name: draft.name,
            kind: draft.kind,
            media_type: draft.media_type,
            size: blob.size,
            digest: blob.digest,
            labels: draft.labels,
            producer: draft.producer,
            condition: draft.condition,
            created_at: Timestamp::now(),
        };
        artifacts.store.insert_artifact(&new, draft.lease_epoch).await
    }
}

/// A validated upload header.
#[derive(Debug)]
struct Draft {
    run_id: RunId,
    name: ArtifactName,
    kind: ArtifactKind,
    media_type: String,
    labels: BTreeMap<String, String>,
    producer: Producer,
    condition: WriteCondition,
    size: Option<u64>,
    digest: Option<Digest>,
    lease_epoch: Option<u64>,
}

/// Checks every field of an upload header, reporting each bad one.
fn validate_upload(header: UploadHeader, max_bytes: u64) -> Result<Draft> {
    let mut violations = Vec::new();
    let run_id = collect(RunId::parse("header.run_id", &header.run_id), &mut violations);
    let name = collect(ArtifactName::parse("header.name", &header.name), &mut violations);
    let media_type = if header.media_type.is_empty() { DEFAULT_MEDIA_TYPE.to_owned() } else { header.media_type.clone() };
    let media_type_ok = media_type.len() <= MAX_MEDIA_TYPE_BYTES
        && media_type.split_once('/').is_some_and(|(kind, subtype)| !kind.is_empty() && !subtype.is_empty())
        && !media_type.chars().any(|c| c.is_control() || c.is_whitespace() && c != ' ');
    if !media_type_ok {
        violations.push(FieldViolation {
            field: "header.media_type".into(),
            description: format!("`{media_type}` is not a media type such as `text/markdown` (at most {MAX_MEDIA_TYPE_BYTES} bytes)"),
        });
    }
    validate_labels(&header.labels, "header.labels", &mut violations);
    for (field, value) in [
        ("header.producer.step", &header.producer.step),
        ("header.producer.tool", &header.producer.tool),
        ("header.producer.tool_version", &header.producer.tool_version),
        ("header.producer.schema", &header.producer.schema),
    ] {
        if let Some(value) = value
            && (value.len() > MAX_PRODUCER_FIELD_BYTES || value.chars().any(char::is_control))
        {
            violations.push(FieldViolation {
                field: field.into(),
                description: format!("must be at most {MAX_PRODUCER_FIELD_BYTES} bytes without control characters"),
            });
        }
    }
    let condition = match (header.expected_etag.as_str(), header.if_absent) {
        ("", false) => Some(WriteCondition::Always),
        ("", true) => Some(WriteCondition::Absent),
        (_, true) => {
            violations.push(FieldViolation {
                field: "header.if_absent".into(),
                description: "cannot be combined with expected_etag: a write expects either no version or a given one".into(),
            });
            None
        }
        (etag, false) => collect(
            ArtifactId::parse("header.expected_etag", etag)
                .map_err(|_| Error::invalid("header.expected_etag", format!("`{etag}` is not an etag this server issued"))),
            &mut violations,
        )
        .map(WriteCondition::Etag),
    };
    if let Some(size) = header.size
        && size > max_bytes
    {
        violations.push(FieldViolation {
            field: "header.size".into(),
            description: format!("is {size} bytes; this server accepts artifacts of at most {max_bytes} bytes"),
        });
    }
    let digest =
        if header.sha256.is_empty() { None } else { collect(Digest::parse("header.sha256", &header.sha256), &mut violations) };
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    let (Some(run_id), Some(name), Some(condition)) = (run_id, name, condition) else {
        return Err(Error::Internal("an upload header passed validation with a field missing".into()));
    };
    Ok(Draft {
        run_id,
        name,
        kind: header.kind,
        media_type,
        labels: header.labels,
        producer: header.producer,
        condition,
        size: header.size,
        digest,
        lease_epoch: header.lease_epoch,
    })
}

/// The value of a parse, or its violations added to `violations`.
fn collect<T>(parsed: Result<T>, violations: &mut Vec<FieldViolation>) -> Option<T> {
    match parsed {
        Ok(value) => Some(value),
        Err(Error::InvalidArgument(found)) => {
            violations.extend(found);
            None
        }
        Err(other) => {
            violations.push(FieldViolation { field: "request".into(), description: other.to_string() });
            None
        }
    }
}

/// Resolves a reference: an id, or a run and name.
fn resolve(reference: &ArtifactRef) -> Result<Resolved> {
    if !reference.id.is_empty() {
        if !reference.run_id.is_empty() || !reference.name.is_empty() || reference.version != 0 {
            return Err(Error::invalid("artifact", "name a version either by id, or by run_id and name (and version); not both"));
        }
        return Ok(Resolved::Id(ArtifactId::parse("artifact.id", &reference.id)?));
    }
    let mut violations = Vec::new();
    let run_id = collect(RunId::parse("artifact.run_id", &reference.run_id), &mut violations);
    let name = collect(ArtifactName::parse("artifact.name", &reference.name), &mut violations);
    match (run_id, name) {
        (Some(run_id), Some(name)) if violations.is_empty() => {
            Ok(Resolved::Name { run_id, name, version: (reference.version > 0).then_some(reference.version) })
        }
        _ => Err(Error::InvalidArgument(violations)),
    }
}

/// The error for a version whose blob is gone from the blob directory.
fn missing_content(artifact: &Artifact) -> Error {
    Error::DataLoss(format!(
        "the content of artifact {} (`{}` version {}, sha256 {}) is missing from the artifact directory",
        artifact.id, artifact.name, artifact.version, artifact.digest
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> UploadHeader {
        UploadHeader { run_id: RunId::new().to_string(), name: "out/report.md".into(), ..UploadHeader::default() }
    }

    #[test]
    fn a_valid_header_becomes_a_draft_with_defaults() {
        let draft = validate_upload(header(), 100).unwrap();
        assert_eq!(draft.media_type, DEFAULT_MEDIA_TYPE);
        assert_eq!(draft.condition, WriteCondition::Always);
    }

    #[test]
    fn every_bad_header_field_is_reported() {
        let mut bad = UploadHeader {
            run_id: "nope".into(),
            name: "../etc/passwd".into(),
            media_type: "markdown".into(),
            expected_etag: "x".into(),
            size: Some(101),
            sha256: "abc".into(),
            ..UploadHeader::default()
        };
        bad.labels.insert("Bad Key".into(), "v".into());
        bad.producer.tool = Some("a\u{0}b".into());
        let Err(Error::InvalidArgument(violations)) = validate_upload(bad, 100) else { panic!("expected violations") };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "header.run_id",
                "header.name",
                "header.media_type",
                "header.labels[Bad Key]",
                "header.producer.tool",
                "header.expected_etag",
                "header.size",
                "header.sha256"
            ]
        );
    }

    #[test]
    fn if_absent_and_an_etag_exclude_each_other() {
        let both = UploadHeader { expected_etag: ArtifactId::new().to_string(), if_absent: true, ..header() };
        let Err(Error::InvalidArgument(violations)) = validate_upload(both, 100) else { panic!("expected violations") };
        assert_eq!(violations[0].field, "header.if_absent");
    }

    #[test]
    fn a_reference_names_a_version_one_way() {
        assert!(matches!(resolve(&ArtifactRef { id: ArtifactId::new().to_string(), ..ArtifactRef::default() }), Ok(Resolved::Id(_))));
        let both = ArtifactRef { id: ArtifactId::new().to_string(), name: "a".into(), ..ArtifactRef::default() };
        assert!(matches!(resolve(&both), Err(Error::InvalidArgument(_))));
        let Err(Error::InvalidArgument(violations)) = resolve(&ArtifactRef::default()) else { panic!("expected violations") };
        assert_eq!(violations.len(), 2);
    }
}
