//! Artifacts: the documents, patches, reports and tool outputs that runs produce. An artifact is
//! named within its run and versioned (each write of a name is a new version with its own etag);
//! its bytes are a blob addressed by their SHA-256; and it records where it came from (the
//! producing step, tool or model) and which steps consumed it.

use std::{collections::BTreeMap, fmt};

use super::{ArtifactId, RunId, Timestamp, WorkspaceId};
use crate::error::{Error, Result};

/// The longest artifact name, in bytes.
pub const MAX_NAME_BYTES: usize = 512;
/// The longest media type, in bytes.
pub const MAX_MEDIA_TYPE_BYTES: usize = 255;
/// The longest producer field (step, tool, version) or schema reference, in bytes.
pub const MAX_PRODUCER_FIELD_BYTES: usize = 1024;

/// The SHA-256 of a blob's bytes, as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// The digest of a finished hash.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        use fmt::Write;
        let mut hex = String::with_capacity(64);
        for byte in bytes {
            let _ = write!(hex, "{byte:02x}");
        }
        Self(hex)
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest as _;
        Self::from_bytes(sha2::Sha256::digest(data).into())
    }

    /// Parses a digest given in a request (hex, either case); `field` names the field.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        if text.len() != 64 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(Error::invalid(field, format!("`{text}` is not a SHA-256 digest: give 64 hex digits")));
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated artifact name: a relative path of `/`-separated segments, none of them empty,
/// `.` or `..`, with no control characters or backslashes, at most [`MAX_NAME_BYTES`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactName(String);

impl ArtifactName {
    /// Checks a name given in a request; `field` names the field for the error.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        let problem = if text.is_empty() {
            Some("is required: name the artifact, e.g. `report.md` or `patches/fix-1.diff`".to_owned())
        } else if text.len() > MAX_NAME_BYTES {
            Some(format!("is {} bytes long; names are at most {MAX_NAME_BYTES} bytes", text.len()))
        } else if text.chars().any(char::is_control) {
            Some("contains a control character; use printable characters only".to_owned())
        } else if text.contains('\\') {
            Some("contains a backslash; separate path segments with `/`".to_owned())
        } else if text.starts_with('/') {
            Some(format!("`{text}` is absolute; names are relative paths such as `out/report.md`"))
        } else if text.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
            Some(format!("`{text}` has an empty, `.` or `..` segment; names may not traverse paths"))
        } else if text.trim() != text {
            Some(format!("`{text}` starts or ends with white space"))
        } else {
            None
        };
        match problem {
            Some(problem) => Err(Error::invalid(field, problem)),
            None => Ok(Self(text.to_owned())),
        }
    }

    /// Wraps a name read from the store (validated when it was written).
    pub fn stored(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArtifactName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an artifact is, for listing and for gates (`artifact_exists`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ArtifactKind {
    /// Any file (the default).
    #[default]
    File,
    /// A document written for people: a plan, a PRD, a summary.
    Document,
    /// A change to apply: a diff or patch.
    Patch,
    /// A report: review findings, test results, a score.
    Report,
    /// The output of a tool call.
    ToolOutput,
    /// The output of a model call.
    ModelOutput,
    /// A link to something kept elsewhere (a pull request, a preview); the content is the URL.
    Url,
}

impl ArtifactKind {
    /// Every kind, for parsing and listing.
    pub const ALL: [ArtifactKind; 7] =
        [Self::File, Self::Document, Self::Patch, Self::Report, Self::ToolOutput, Self::ModelOutput, Self::Url];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Document => "document",
            Self::Patch => "patch",
            Self::Report => "report",
            Self::ToolOutput => "tool_output",
            Self::ModelOutput => "model_output",
            Self::Url => "url",
        }
    }

    /// The kind a stored name stands for.
    pub fn from_stored(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| Error::Internal(format!("corrupt artifact kind `{text}`")))
    }
}

/// Where an artifact came from. Every field is optional: a client uploading a file may know none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Producer {
    /// The journaled step of the run that wrote it.
    pub step: Option<String>,
    /// The tool or model that made the content (`git diff`, `anthropic/claude-sonnet-4`).
    pub tool: Option<String>,
    /// That tool's or model's version.
    pub tool_version: Option<String>,
    /// The schema the content follows (a name, URL or JSON Schema id).
    pub schema: Option<String>,
}

/// One stored version of a named artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// This version's id; it is also the version's etag.
    pub id: ArtifactId,
    /// The workspace of the run.
    pub workspace: WorkspaceId,
    /// The run the artifact belongs to.
    pub run_id: RunId,
    /// Its name within the run.
    pub name: ArtifactName,
    /// 1 for the first write of the name, then one more per write.
    pub version: u32,
    /// What it is.
    pub kind: ArtifactKind,
    /// The media type of the content, e.g. `text/markdown`.
    pub media_type: String,
    /// The content's length in bytes.
    pub size: u64,
    /// The content's SHA-256.
    pub digest: Digest,
    /// Labels to find it by.
    pub labels: BTreeMap<String, String>,
    /// Where it came from.
    pub producer: Producer,
    /// When this version was written.
    pub created_at: Timestamp,
}

impl Artifact {
    /// The etag a conditional write names to replace this version.
    pub fn etag(&self) -> String {
        self.id.to_string()
    }
}

/// What a journaled artifact step records of the version it wrote or read: enough to read the
/// same content again (by its digest) when the run resumes or is replayed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArtifactRecord {
    /// The version's id (and etag).
    pub id: String,
    /// The run it belongs to.
    pub run_id: String,
    /// Its name.
    pub name: String,
    /// Its version number.
    pub version: u32,
    /// The content's SHA-256.
    pub sha256: String,
    /// The content's length.
    pub size: u64,
    /// The content's media type.
    pub media_type: String,
}

impl From<&Artifact> for ArtifactRecord {
    fn from(artifact: &Artifact) -> Self {
        Self {
            id: artifact.id.to_string(),
            run_id: artifact.run_id.to_string(),
            name: artifact.name.to_string(),
            version: artifact.version,
            sha256: artifact.digest.to_string(),
            size: artifact.size,
            media_type: artifact.media_type.clone(),
        }
    }
}

/// A condition on the name's current version that a write must meet, checked atomically with
/// the write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WriteCondition {
    /// Always write a new version.
    #[default]
    Always,
    /// Write only while this etag names the latest version.
    Etag(ArtifactId),
    /// Write only if the name has no version yet.
    Absent,
}

impl WriteCondition {
    /// Refuses (`Aborted`) a write of `name` whose condition the name's latest version, `latest`,
    /// does not meet.
    pub fn check(&self, name: &ArtifactName, latest: Option<ArtifactId>) -> Result<()> {
        match (self, latest) {
            (Self::Always, _) | (Self::Absent, None) => Ok(()),
            (Self::Etag(expected), Some(latest)) if latest == *expected => Ok(()),
            (Self::Absent, Some(latest)) => Err(Error::Aborted {
                reason: "ARTIFACT_EXISTS",
                message: format!("artifact `{name}` already exists (latest etag {latest}); the write asked for a new name"),
            }),
            (Self::Etag(expected), latest) => Err(Error::Aborted {
                reason: "ETAG_MISMATCH",
                message: format!(
                    "artifact `{name}` changed: the write expected etag {expected}, the latest is {}; read it again and retry",
                    latest.map_or_else(|| "none (the name has no version)".to_owned(), |latest| latest.to_string())
                ),
            }),
        }
    }
}

/// A version to record, its content already stored as a blob.
#[derive(Debug, Clone)]
pub struct NewArtifact {
    /// The new version's id.
    pub id: ArtifactId,
    /// The run it belongs to.
    pub run_id: RunId,
    /// Its name within the run.
    pub name: ArtifactName,
    /// What it is.
    pub kind: ArtifactKind,
    /// The content's media type.
    pub media_type: String,
    /// The content's length.
    pub size: u64,
    /// The content's SHA-256.
    pub digest: Digest,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Where it came from.
    pub producer: Producer,
    /// The write's condition.
    pub condition: WriteCondition,
    /// When it was written.
    pub created_at: Timestamp,
}

/// Which artifacts a listing returns.
#[derive(Debug, Clone, Default)]
pub struct ArtifactQuery {
    /// Only this workspace's.
    pub workspace: Option<WorkspaceId>,
    /// Only this run's.
    pub run_id: Option<RunId>,
    /// Only names starting with this.
    pub name_prefix: Option<String>,
    /// Only this kind.
    pub kind: Option<ArtifactKind>,
    /// Only artifacts with all these labels.
    pub labels: BTreeMap<String, String>,
    /// Every version, not only the latest of each name.
    pub all_versions: bool,
    /// Page size (already validated).
    pub limit: u32,
    /// Only ids above this one (from the page token).
    pub after: Option<ArtifactId>,
}

/// A step that read an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactUse {
    /// The version read.
    pub artifact_id: ArtifactId,
    /// The run that read it.
    pub run_id: RunId,
    /// The journaled step that read it.
    pub step: String,
    /// When.
    pub used_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_may_not_traverse_or_hide_control_characters() {
        for good in ["report.md", "out/patches/fix-1.diff", "a b.txt", "ünïcode/名前"] {
            assert!(ArtifactName::parse("name", good).is_ok(), "{good}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a/", "a\\b", "a\nb", "a\0b", " a", "a\u{7f}"] {
            assert!(ArtifactName::parse("name", bad).is_err(), "{bad:?}");
        }
        assert!(ArtifactName::parse("name", &"x".repeat(MAX_NAME_BYTES + 1)).is_err());
    }

    #[test]
    fn digests_are_lowercase_hex_of_sha256() {
        assert_eq!(Digest::of(b"abc").as_str(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let upper = Digest::parse("sha256", "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD").unwrap();
        assert_eq!(upper, Digest::of(b"abc"));
        assert!(Digest::parse("sha256", "xyz").is_err());
    }
}
