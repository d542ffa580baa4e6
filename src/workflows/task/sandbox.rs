//! Per-task sandboxes: a copy of the project to work in, and the merge back.
//!
//! [`create`] copies what git would track (the walk of `super::tree::walker`: no `.git`, nothing
//! `.gitignore` ignores) into a new directory, keeping file permissions and copying symbolic
//! links as links, and records the baseline: the size and SHA-256 of every copied file. The
//! task then works in the copy. [`changes`] compares the copy with the baseline, [`diff`]
//! renders the changes for the final-diff artifact, and [`merge`] writes them into the project
//! unless the project changed the same paths in the meantime, in which case it writes nothing.
//! [`remove`] deletes the copy, and only a directory [`create`] made.
//!
//! Two names at the sandbox's root are Conclave's own and never copied, compared or merged:
//! the marker file [`MARKER_FILE`] and the directory [`CONCLAVE_DIR`] (where the project's
//! merge changelog lives). A symbolic link's recorded state is the hash of its target, so a
//! retargeted link counts as modified. A change of permissions alone (no change of content) is
//! not a change.
//!
//! Everything here is synchronous `std::fs`; callers run it on the blocking pool.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    fs::{self, File, Permissions},
    io::{self, Read as _, Write as _},
    os::unix::{ffi::OsStrExt as _, fs as unix_fs},
    path::{Component, Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::tree::{check_project_dir, walker};
use crate::{
    domain::Digest,
    error::{Error, Result},
};

/// The file [`create`] writes at the sandbox's root, holding the project's path; [`remove`]
/// removes only a directory that has it.
pub const MARKER_FILE: &str = ".conclave-sandbox";
/// Conclave's directory in a project (and a sandbox): never copied or merged.
pub const CONCLAVE_DIR: &str = ".conclave";
/// Where [`merge`] appends its changelog entries, relative to the project.
pub const CHANGELOG_PATH: &str = ".conclave/changelog.md";
/// The largest file [`diff`] shows line by line.
const DIFF_TEXT_LIMIT: u64 = 1 << 20;
/// The most lines (after the common start and end) [`diff`] aligns line by line; beyond it
/// the differing middle is shown as removed, then added.
const DIFF_LINE_LIMIT: usize = 2_000;
/// The unchanged lines [`diff`] shows around each change.
const DIFF_CONTEXT: usize = 3;
/// What a symbolic link's target is hashed after, so a link never hashes like a file.
const SYMLINK_HASH_PREFIX: &[u8] = b"symlink\0";
/// The buffer files are copied and hashed with.
const COPY_BUFFER_BYTES: usize = 64 * 1024;

/// A sandbox: where it is, the project it copies, and what each copied file held at the copy
/// (size and SHA-256 of every file, by relative path), so the merge can tell what the task
/// changed and what changed underneath it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// The project's directory (canonical).
    pub project: PathBuf,
    /// The sandbox's directory (canonical).
    pub path: PathBuf,
    /// Every copied file and symbolic link, by `/`-separated path relative to the project.
    pub baseline: BTreeMap<String, FileState>,
}

/// What a file held: its size and the SHA-256 of its bytes (for a symbolic link, of its
/// target, after a prefix that keeps it from matching a file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// Its size in bytes (a link's: its target's length).
    pub size: u64,
    /// The SHA-256, as 64 lowercase hex digits.
    pub sha256: String,
}

/// What the task changed in its sandbox: relative paths, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Files that are new in the sandbox.
    pub added: Vec<String>,
    /// Files whose content (or link target) differs from the baseline.
    pub modified: Vec<String>,
    /// Files of the baseline that are gone from the sandbox.
    pub deleted: Vec<String>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.deleted.is_empty()
    }

    /// Every changed path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.labelled().into_iter().map(|(_, path)| path)
    }

    /// Every changed path with how it changed, sorted by path.
    fn labelled(&self) -> Vec<(ChangeKind, &str)> {
        let mut all: Vec<(ChangeKind, &str)> = self
            .added
            .iter()
            .map(|path| (ChangeKind::Added, path.as_str()))
            .chain(self.modified.iter().map(|path| (ChangeKind::Modified, path.as_str())))
            .chain(self.deleted.iter().map(|path| (ChangeKind::Deleted, path.as_str())))
            .collect();
        all.sort_by(|a, b| a.1.cmp(b.1));
        all
    }
}

/// How a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Modified => "modified",
            Self::Deleted => "deleted",
        }
    }
}

/// The changelog entry [`merge`] appends for a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangelogEntry {
    /// The task's id.
    pub task_id: String,
    /// The task's title (one line; line breaks become spaces).
    pub title: String,
    /// A paragraph saying what the task did; may be empty.
    pub summary: String,
    /// When the merge happened, RFC 3339.
    pub time: String,
}

/// `<project>-lab/<stamp>-<id>` beside the project: the project's parent, then a directory
/// named after the project plus `-lab` (a trailing slash on `project` makes no difference).
/// Give `project` as an absolute, canonical path: `.` or `..` has no name to go by.
pub fn default_path(project: &Path, stamp: &str, id: &str) -> Result<PathBuf> {
    let Some(name) = project.file_name() else {
        return Err(Error::invalid(
            "project_dir",
            format!("{} has no directory name to put a sandbox beside; give the project's absolute path", project.display()),
        ));
    };
    let bad = |part: &str| part.is_empty() || part.contains(['/', '\0']);
    if bad(stamp) || bad(id) {
        return Err(Error::invalid(
            "sandbox_path",
            format!("cannot name a sandbox after timestamp {stamp:?} and task id {id:?}: neither may be empty or contain '/'"),
        ));
    }
    let mut lab = name.to_os_string();
    lab.push("-lab");
    let parent = project.parent().unwrap_or(Path::new(""));
    Ok(parent.join(lab).join(format!("{stamp}-{id}")))
}

/// Copies the project into `path` (which must not exist, or be an empty directory), skipping
/// `.git` and what `.gitignore` files ignore, keeping file permissions and copying symbolic
/// links as links (never following them); writes the [`MARKER_FILE`] and records the baseline.
/// Special files (sockets, pipes, devices) are not copied. Refuses a `path` inside the project
/// (that would copy itself). If the copy fails, the sandbox directory is removed again.
pub fn create(project: &Path, path: &Path) -> Result<Sandbox> {
    check_project_dir(project)?;
    let project = fs::canonicalize(project).map_err(|err| storage(format_args!("resolving {}", project.display()), err))?;
    let target = resolve_new_path(path)?;
    if target.starts_with(&project) {
        return Err(Error::invalid(
            "sandbox_path",
            format!(
                "{} is inside the project {}, which would copy the sandbox into itself; choose a path outside the project",
                target.display(),
                project.display()
            ),
        ));
    }
    prepare_empty_dir(&target)?;
    let target = fs::canonicalize(&target).map_err(|err| storage(format_args!("resolving {}", target.display()), err))?;
    match copy_project(&project, &target) {
        Ok(baseline) => Ok(Sandbox { project, path: target, baseline }),
        Err(err) => {
            if let Err(cleanup) = fs::remove_dir_all(&target) {
                tracing::warn!(sandbox = %target.display(), error = %cleanup, "could not remove a sandbox whose copy failed");
            }
            Err(err)
        }
    }
}

/// The project itself as the working directory, for a task without a sandbox: nothing is
/// copied, and the project's state now is the baseline its changes are measured against
/// (`path` is the project). [`diff`] then has no old content to show: a modified file shows
/// whole, as added. Never [`merge`] or [`remove`] one.
pub fn in_place(project: &Path) -> Result<Sandbox> {
    check_project_dir(project)?;
    let project = fs::canonicalize(project).map_err(|err| storage(format_args!("resolving {}", project.display()), err))?;
    let mut baseline = BTreeMap::new();
    for entry in walker(&project).build() {
        let entry = entry.map_err(|err| walk_error(&project, &err))?;
        if entry.depth() == 0 {
            continue;
        }
        let Some(relative) = tracked_path(&project, entry.path()) else { continue };
        let metadata = fs::symlink_metadata(entry.path()).map_err(|err| storage(format_args!("reading {}", entry.path().display()), err))?;
        if let Some(state) = state_of(entry.path(), &metadata)? {
            baseline.insert(relative, state);
        }
    }
    Ok(Sandbox { path: project.clone(), project, baseline })
}

/// What the task changed in the sandbox relative to the baseline: added, modified and deleted
/// relative paths (sorted), again skipping `.git` and ignored files. A baseline file that the
/// sandbox's `.gitignore` now ignores is compared all the same (it is not deleted).
pub fn changes(sandbox: &Sandbox) -> Result<Changes> {
    if !sandbox.path.is_dir() {
        return Err(Error::not_found("sandbox", sandbox.path.display()));
    }
    let mut changes = Changes::default();
    let mut seen = BTreeSet::new();
    for entry in walker(&sandbox.path).build() {
        let entry = entry.map_err(|err| walk_error(&sandbox.path, &err))?;
        if entry.depth() == 0 || entry.file_type().is_none_or(|kind| kind.is_dir()) {
            continue;
        }
        let Some(relative) = tracked_path(&sandbox.path, entry.path()) else { continue };
        let metadata = fs::symlink_metadata(entry.path()).map_err(|err| storage(format_args!("reading {}", entry.path().display()), err))?;
        let Some(baseline) = sandbox.baseline.get(&relative) else {
            if metadata.is_file() || metadata.is_symlink() {
                changes.added.push(relative);
            }
            continue;
        };
        let changed = if metadata.is_file() && metadata.len() != baseline.size {
            true
        } else {
            state_of(entry.path(), &metadata)?.as_ref() != Some(baseline)
        };
        if changed {
            changes.modified.push(relative.clone());
        }
        seen.insert(relative);
    }
    for (relative, baseline) in &sandbox.baseline {
        if seen.contains(relative) {
            continue;
        }
        match state_at(&sandbox.path, relative)? {
            State::File(state) if state == *baseline => {}
            State::File(_) => changes.modified.push(relative.clone()),
            State::Absent | State::Blocked(_) | State::Other => changes.deleted.push(relative.clone()),
        }
    }
    changes.added.sort();
    changes.modified.sort();
    changes.deleted.sort();
    Ok(changes)
}

/// A unified diff of the changes, for the task's final-diff artifact: for each changed path
/// (sorted) a `--- a/path` / `+++ b/path` header (`/dev/null` for an added or deleted file),
/// then hunks of `-`/`+` lines with three lines of context when both sides are UTF-8 text of
/// at most 1 MiB, else the line `Binary files differ`. The old side is the project's file as
/// it is now (the baseline's content, unless the project changed it, which the merge refuses).
/// A symbolic link shows as the line `symbolic link to <target>`.
pub fn diff(sandbox: &Sandbox, changes: &Changes) -> Result<String> {
    let mut out = String::new();
    for (kind, path) in changes.labelled() {
        check_change_path(path)?;
        // In place, the project is the new side: the old content was not kept.
        let in_place = sandbox.project == sandbox.path;
        let old = if kind == ChangeKind::Added || in_place { Side::Missing } else { read_side(&sandbox.project, path)? };
        let new = if kind == ChangeKind::Deleted { Side::Missing } else { read_side(&sandbox.path, path)? };
        let old_label = if kind == ChangeKind::Added { "/dev/null".to_owned() } else { format!("a/{path}") };
        let new_label = if kind == ChangeKind::Deleted { "/dev/null".to_owned() } else { format!("b/{path}") };
        out.push_str(&format!("--- {old_label}\n+++ {new_label}\n"));
        match (old.text(), new.text()) {
            (Some(old), Some(new)) => unified_hunks(old, new, &mut out),
            _ => out.push_str("Binary files differ\n"),
        }
    }
    Ok(out)
}

/// Merges the sandbox's changes back into the project. Refused (nothing written) with
/// `Error::precondition("MERGE_CONFLICT", ...)` listing the paths if any changed path also
/// changed in the project since the copy (its current state differs from the baseline:
/// modified, deleted, or — for an added path — now exists in the project). Otherwise removes
/// deleted files (and the directories that leaves empty), writes added and modified files
/// (with their permissions) each via a temp file in the same directory and a rename, so a
/// crash never leaves a torn file, then appends `entry` to [`CHANGELOG_PATH`]. Empty changes
/// write nothing, not even a changelog entry.
///
/// `changes` must be what [`changes`] returned for this sandbox; a path that is not in the
/// sandbox any more is refused with `SANDBOX_CHANGED`, before anything is written.
pub fn merge(sandbox: &Sandbox, changes: &Changes, entry: &ChangelogEntry) -> Result<()> {
    check_changes(sandbox, changes)?;
    if changes.is_empty() {
        return Ok(());
    }
    let mut sources = Vec::new();
    for path in changes.added.iter().chain(&changes.modified) {
        match locate(&sandbox.path, path)? {
            Located::Present(source, metadata) if metadata.is_file() || metadata.is_symlink() => sources.push((path, source, metadata)),
            _ => {
                return Err(Error::precondition(
                    "SANDBOX_CHANGED",
                    format!("{path} is no longer a file in the sandbox {}; compute the changes again", sandbox.path.display()),
                ));
            }
        }
    }

    let deleted: BTreeSet<&str> = changes.deleted.iter().map(String::as_str).collect();
    let mut conflicts = Vec::new();
    for path in changes.modified.iter().chain(&changes.deleted) {
        let unchanged = matches!(state_at(&sandbox.project, path)?, State::File(state) if sandbox.baseline.get(path) == Some(&state));
        if !unchanged {
            conflicts.push(path.as_str());
        }
    }
    for path in &changes.added {
        match state_at(&sandbox.project, path)? {
            State::Absent => {}
            State::Blocked(prefix) if deleted.contains(prefix.as_str()) => {}
            State::Blocked(_) | State::File(_) | State::Other => conflicts.push(path.as_str()),
        }
    }
    if !conflicts.is_empty() {
        conflicts.sort_unstable();
        return Err(Error::precondition(
            "MERGE_CONFLICT",
            format!(
                "the project changed since the sandbox was made at these paths the task also changed, so nothing was merged: {}; \
                 merge them by hand from {} or run the task again on the current project",
                conflicts.join(", "),
                sandbox.path.display()
            ),
        ));
    }

    for path in &changes.deleted {
        let target = sandbox.project.join(path);
        match fs::remove_file(&target) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(storage(format_args!("removing {}", target.display()), err)),
        }
        remove_empty_parents(&sandbox.project, &target);
    }
    for (path, source, metadata) in sources {
        install(&sandbox.project.join(path), &source, &metadata)?;
    }
    append_changelog(&sandbox.project, changes, entry)
}

/// Removes the sandbox directory (after a successful merge). Refuses, with
/// `NOT_A_SANDBOX`, anything that is not a directory [`create`] made for this project: one
/// holding a [`MARKER_FILE`] with the project's path. A sandbox already gone is fine. The
/// `<project>-lab` directory of [`default_path`] is removed too once it is empty.
pub fn remove(sandbox: &Sandbox) -> Result<()> {
    let metadata = match fs::symlink_metadata(&sandbox.path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(storage(format_args!("reading {}", sandbox.path.display()), err)),
    };
    let refuse = |why: &str| {
        Error::precondition("NOT_A_SANDBOX", format!("will not remove {}: {why}; remove it by hand if it is yours to delete", sandbox.path.display()))
    };
    if !metadata.is_dir() {
        return Err(refuse("it is not a directory"));
    }
    if sandbox.project.starts_with(&sandbox.path) {
        return Err(refuse("it holds the project"));
    }
    let marker = sandbox.path.join(MARKER_FILE);
    let recorded = match fs::read(&marker) {
        Ok(recorded) => recorded,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(refuse(&format!("it has no {MARKER_FILE} file, so Conclave did not make it"))),
        Err(err) => return Err(storage(format_args!("reading {}", marker.display()), err)),
    };
    if recorded != sandbox.project.as_os_str().as_bytes() {
        return Err(refuse(&format!("its {MARKER_FILE} file names another project than {}", sandbox.project.display())));
    }
    fs::remove_dir_all(&sandbox.path).map_err(|err| storage(format_args!("removing {}", sandbox.path.display()), err))?;

    let lab = default_path(&sandbox.project, "x", "x").ok();
    if let (Some(lab), Some(parent)) = (lab.as_deref().and_then(Path::parent), sandbox.path.parent())
        && lab == parent
    {
        // Fails, as it should, while other sandboxes are in it.
        let _ = fs::remove_dir(parent);
    }
    Ok(())
}

/// `path` made absolute with its existing part resolved (symbolic links, `..`), so it can be
/// compared with the canonical project. The part that does not exist yet may not hold `..`.
fn resolve_new_path(path: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(path).map_err(|err| storage(format_args!("resolving {}", path.display()), err))?;
    let mut existing = absolute.as_path();
    let mut missing = Vec::new();
    loop {
        match fs::canonicalize(existing) {
            Ok(resolved) => {
                let mut resolved = resolved;
                for part in missing.iter().rev() {
                    resolved.push(part);
                }
                return Ok(resolved);
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(storage(format_args!("resolving {}", existing.display()), err)),
        }
        if matches!(existing.components().next_back(), Some(Component::ParentDir)) {
            return Err(Error::invalid("sandbox_path", format!("{} has `..` in its part that does not exist yet; give a plain path", path.display())));
        }
        let Some(name) = existing.file_name() else {
            return Err(Error::invalid("sandbox_path", format!("{} cannot be resolved; give a plain absolute path", path.display())));
        };
        missing.push(name.to_os_string());
        let Some(parent) = existing.parent() else {
            return Err(Error::invalid("sandbox_path", format!("{} cannot be resolved; give a plain absolute path", path.display())));
        };
        existing = parent;
    }
}

/// Makes `path` an empty directory: creates it (and its parents), or accepts an existing empty
/// directory.
fn prepare_empty_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return fs::create_dir_all(path).map_err(|err| storage(format_args!("creating {}", path.display()), err));
        }
        Err(err) => return Err(storage(format_args!("reading {}", path.display()), err)),
        Ok(metadata) if !metadata.is_dir() => {
            return Err(Error::invalid("sandbox_path", format!("{} exists and is not a directory; choose a new path", path.display())));
        }
        Ok(_) => {}
    }
    let mut entries = fs::read_dir(path).map_err(|err| storage(format_args!("reading {}", path.display()), err))?;
    if entries.next().is_some() {
        return Err(Error::invalid("sandbox_path", format!("{} exists and is not empty; choose a new path or empty it", path.display())));
    }
    Ok(())
}

/// Writes the marker and copies the project's tracked files into the empty `target`,
/// returning the baseline.
fn copy_project(project: &Path, target: &Path) -> Result<BTreeMap<String, FileState>> {
    let marker = target.join(MARKER_FILE);
    fs::write(&marker, project.as_os_str().as_bytes()).map_err(|err| storage(format_args!("writing {}", marker.display()), err))?;
    let mut baseline = BTreeMap::new();
    for entry in walker(project).build() {
        let entry = entry.map_err(|err| walk_error(project, &err))?;
        if entry.depth() == 0 {
            continue;
        }
        let Some(relative) = tracked_path(project, entry.path()) else { continue };
        let destination = target.join(&relative);
        let metadata = fs::symlink_metadata(entry.path()).map_err(|err| storage(format_args!("reading {}", entry.path().display()), err))?;
        if metadata.is_dir() {
            fs::create_dir(&destination).map_err(|err| storage(format_args!("creating {}", destination.display()), err))?;
        } else if metadata.is_symlink() {
            let state = copy_symlink(entry.path(), &destination)?;
            baseline.insert(relative, state);
        } else if metadata.is_file() {
            let state = copy_file(entry.path(), &destination, metadata.permissions(), false)?;
            baseline.insert(relative, state);
        } else {
            tracing::debug!(path = %entry.path().display(), "sandbox: not copying a special file");
        }
    }
    Ok(baseline)
}

/// The `/`-separated path of `path` relative to `root`, or `None` for what sandboxes leave
/// alone: Conclave's own names at the root, and names that are not UTF-8 (which the baseline
/// cannot record; they are skipped with a warning).
fn tracked_path(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let Some(relative) = relative.to_str() else {
        tracing::warn!(path = %path.display(), "sandbox: skipping a path that is not UTF-8");
        return None;
    };
    let first = relative.split('/').next().unwrap_or(relative);
    if first == MARKER_FILE || first == CONCLAVE_DIR {
        return None;
    }
    Some(relative.to_owned())
}

/// Copies the file at `from` to the new file `to` with `permissions`, returning its state;
/// with `durable`, fsyncs it too.
fn copy_file(from: &Path, to: &Path, permissions: Permissions, durable: bool) -> Result<FileState> {
    let mut source = File::open(from).map_err(|err| storage(format_args!("opening {}", from.display()), err))?;
    let mut destination = File::create_new(to).map_err(|err| storage(format_args!("creating {}", to.display()), err))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; COPY_BUFFER_BYTES];
    let mut size = 0;
    loop {
        let read = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(storage(format_args!("reading {}", from.display()), err)),
        };
        hasher.update(&buffer[..read]);
        destination.write_all(&buffer[..read]).map_err(|err| storage(format_args!("writing {}", to.display()), err))?;
        size += read as u64;
    }
    destination.set_permissions(permissions).map_err(|err| storage(format_args!("setting the permissions of {}", to.display()), err))?;
    if durable {
        destination.sync_all().map_err(|err| storage(format_args!("syncing {}", to.display()), err))?;
    }
    Ok(FileState { size, sha256: Digest::from_bytes(hasher.finalize().into()).to_string() })
}

/// Makes `to` a symbolic link with the same target as the link `from`, returning its state.
fn copy_symlink(from: &Path, to: &Path) -> Result<FileState> {
    let link = fs::read_link(from).map_err(|err| storage(format_args!("reading the link {}", from.display()), err))?;
    unix_fs::symlink(&link, to).map_err(|err| storage(format_args!("creating the link {}", to.display()), err))?;
    Ok(link_state(&link))
}

/// The state of a symbolic link with this target.
fn link_state(link: &Path) -> FileState {
    let target = link.as_os_str().as_bytes();
    let mut hasher = Sha256::new();
    hasher.update(SYMLINK_HASH_PREFIX);
    hasher.update(target);
    FileState { size: target.len() as u64, sha256: Digest::from_bytes(hasher.finalize().into()).to_string() }
}

/// The state of the file or symbolic link at `path`; `None` for anything else.
fn state_of(path: &Path, metadata: &fs::Metadata) -> Result<Option<FileState>> {
    if metadata.is_symlink() {
        let link = fs::read_link(path).map_err(|err| storage(format_args!("reading the link {}", path.display()), err))?;
        return Ok(Some(link_state(&link)));
    }
    if !metadata.is_file() {
        return Ok(None);
    }
    let mut file = File::open(path).map_err(|err| storage(format_args!("opening {}", path.display()), err))?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut hasher).map_err(|err| storage(format_args!("reading {}", path.display()), err))?;
    Ok(Some(FileState { size, sha256: Digest::from_bytes(hasher.finalize().into()).to_string() }))
}

/// What is at a relative path under a root, looked up without following symbolic links on
/// the way.
enum Located {
    Absent,
    /// A leading part of the path (this one) is not a directory: a file, or a link.
    Blocked(String),
    Present(PathBuf, fs::Metadata),
}

/// Looks up `relative` (a checked, `/`-separated path) under `root` one component at a time,
/// so a symbolic link among its directories never leads outside `root`.
fn locate(root: &Path, relative: &str) -> Result<Located> {
    let mut path = root.to_path_buf();
    let mut end = 0;
    let mut parts = relative.split('/').peekable();
    while let Some(part) = parts.next() {
        path.push(part);
        end += part.len();
        let metadata = match fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Located::Absent),
            Err(err) => return Err(storage(format_args!("reading {}", path.display()), err)),
        };
        if parts.peek().is_none() {
            return Ok(Located::Present(path, metadata));
        }
        if !metadata.is_dir() {
            return Ok(Located::Blocked(relative[..end].to_owned()));
        }
        end += 1;
    }
    Ok(Located::Absent)
}

/// The state of a relative path under a root.
#[derive(Debug, PartialEq, Eq)]
enum State {
    Absent,
    /// A leading part of the path (this one) is not a directory.
    Blocked(String),
    File(FileState),
    /// A directory or a special file.
    Other,
}

fn state_at(root: &Path, relative: &str) -> Result<State> {
    Ok(match locate(root, relative)? {
        Located::Absent => State::Absent,
        Located::Blocked(prefix) => State::Blocked(prefix),
        Located::Present(path, metadata) => state_of(&path, &metadata)?.map_or(State::Other, State::File),
    })
}

/// One side of a file's diff.
enum Side {
    Missing,
    Text(String),
    Binary,
}

impl Side {
    /// The text to diff, empty for a missing file; `None` for a binary one.
    fn text(&self) -> Option<&str> {
        match self {
            Self::Missing => Some(""),
            Self::Text(text) => Some(text),
            Self::Binary => None,
        }
    }
}

fn read_side(root: &Path, relative: &str) -> Result<Side> {
    let Located::Present(path, metadata) = locate(root, relative)? else { return Ok(Side::Missing) };
    if metadata.is_symlink() {
        let link = fs::read_link(&path).map_err(|err| storage(format_args!("reading the link {}", path.display()), err))?;
        return Ok(Side::Text(format!("symbolic link to {}\n", link.display())));
    }
    if !metadata.is_file() {
        return Ok(Side::Missing);
    }
    if metadata.len() > DIFF_TEXT_LIMIT {
        return Ok(Side::Binary);
    }
    let bytes = fs::read(&path).map_err(|err| storage(format_args!("reading {}", path.display()), err))?;
    if bytes.len() as u64 > DIFF_TEXT_LIMIT || bytes.contains(&0) {
        return Ok(Side::Binary);
    }
    Ok(String::from_utf8(bytes).map_or(Side::Binary, Side::Text))
}

/// One step of a line diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    Keep,
    Remove,
    Insert,
}

/// The edits that turn `old` into `new`: a longest common subsequence of lines once the
/// common start and end are set aside; when what is left is longer than [`DIFF_LINE_LIMIT`]
/// lines on either side, all of the old middle removed, then all of the new inserted.
fn line_edits(old: &[&str], new: &[&str]) -> Vec<Edit> {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..].iter().rev().zip(new[prefix..].iter().rev()).take_while(|(a, b)| a == b).count();
    let old_middle = &old[prefix..old.len() - suffix];
    let new_middle = &new[prefix..new.len() - suffix];
    let mut edits = vec![Edit::Keep; prefix];
    if old_middle.len() > DIFF_LINE_LIMIT || new_middle.len() > DIFF_LINE_LIMIT {
        edits.extend(std::iter::repeat_n(Edit::Remove, old_middle.len()));
        edits.extend(std::iter::repeat_n(Edit::Insert, new_middle.len()));
    } else {
        // common[i][j]: the longest common subsequence of old_middle[i..] and new_middle[j..].
        let width = new_middle.len() + 1;
        let mut common = vec![0u16; (old_middle.len() + 1) * width];
        for i in (0..old_middle.len()).rev() {
            for j in (0..new_middle.len()).rev() {
                common[i * width + j] = if old_middle[i] == new_middle[j] {
                    common[(i + 1) * width + j + 1] + 1
                } else {
                    common[(i + 1) * width + j].max(common[i * width + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < old_middle.len() || j < new_middle.len() {
            if i < old_middle.len() && j < new_middle.len() && old_middle[i] == new_middle[j] {
                edits.push(Edit::Keep);
                i += 1;
                j += 1;
            } else if j == new_middle.len() || (i < old_middle.len() && common[(i + 1) * width + j] >= common[i * width + j + 1]) {
                edits.push(Edit::Remove);
                i += 1;
            } else {
                edits.push(Edit::Insert);
                j += 1;
            }
        }
    }
    edits.extend(std::iter::repeat_n(Edit::Keep, suffix));
    edits
}

/// Appends the unified-diff hunks (`@@ -a,b +c,d @@` and ` `/`-`/`+` lines) that turn `old`
/// into `new` to `out`; nothing when they are equal.
fn unified_hunks(old: &str, new: &str, out: &mut String) {
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let edits = line_edits(&old_lines, &new_lines);
    // Where each edit starts in the old and the new lines.
    let mut positions = Vec::with_capacity(edits.len() + 1);
    let (mut old_at, mut new_at) = (0, 0);
    for edit in &edits {
        positions.push((old_at, new_at));
        match edit {
            Edit::Keep => (old_at, new_at) = (old_at + 1, new_at + 1),
            Edit::Remove => old_at += 1,
            Edit::Insert => new_at += 1,
        }
    }
    positions.push((old_at, new_at));

    let changed: Vec<usize> = (0..edits.len()).filter(|&index| edits[index] != Edit::Keep).collect();
    let mut next = 0;
    while next < changed.len() {
        // A hunk takes in every later change within twice the context of the last one.
        let first = changed[next];
        let mut last = first;
        next += 1;
        while next < changed.len() && changed[next] - last <= 2 * DIFF_CONTEXT + 1 {
            last = changed[next];
            next += 1;
        }
        let start = first.saturating_sub(DIFF_CONTEXT);
        let end = (last + 1 + DIFF_CONTEXT).min(edits.len());
        let (old_start, new_start) = positions[start];
        let (old_len, new_len) = (positions[end].0 - old_start, positions[end].1 - new_start);
        out.push_str(&format!("@@ -{} +{} @@\n", hunk_range(old_start, old_len), hunk_range(new_start, new_len)));
        for index in start..end {
            let (old_index, new_index) = positions[index];
            let (mark, line) = match edits[index] {
                Edit::Keep => (' ', old_lines[old_index]),
                Edit::Remove => ('-', old_lines[old_index]),
                Edit::Insert => ('+', new_lines[new_index]),
            };
            out.push(mark);
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
}

/// A hunk's range as unified diffs write it: the first line (1-based; for no lines, the line
/// before), and the count unless it is 1.
fn hunk_range(start: usize, len: usize) -> String {
    match len {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        _ => format!("{},{len}", start + 1),
    }
}

/// Checks that `changes` fit the sandbox: safe relative paths, each listed once, added ones new
/// and the others in the baseline.
fn check_changes(sandbox: &Sandbox, changes: &Changes) -> Result<()> {
    let mut seen = BTreeSet::new();
    for (kind, path) in changes.labelled() {
        check_change_path(path)?;
        if !seen.insert(path) {
            return Err(Error::invalid("changes", format!("{path} is listed twice; compute the changes again")));
        }
        if (kind == ChangeKind::Added) == sandbox.baseline.contains_key(path) {
            let why = if kind == ChangeKind::Added { "was in the project at the copy" } else { "was not in the project at the copy" };
            return Err(Error::invalid("changes", format!("{path} is listed as {} but {why}; compute the changes again", kind.as_str())));
        }
    }
    Ok(())
}

/// Checks that a changed path is a plain relative path inside the project that sandboxes
/// handle: no empty, `.` or `..` parts, not under `.git` or Conclave's own names.
fn check_change_path(path: &str) -> Result<()> {
    let bad_part = |part: &str| part.is_empty() || part == "." || part == ".." || part == ".git" || part.contains('\0');
    let first = path.split('/').next().unwrap_or(path);
    if path.split('/').any(bad_part) || first == MARKER_FILE || first == CONCLAVE_DIR {
        return Err(Error::invalid("changes", format!("{path:?} is not a path the sandbox tracks; compute the changes again")));
    }
    Ok(())
}

/// Writes the file or symbolic link at `source` to `target` through a temp file beside it and
/// a rename, creating `target`'s directories as needed.
fn install(target: &Path, source: &Path, metadata: &fs::Metadata) -> Result<()> {
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(Error::Internal(format!("merging into {}: the path has no parent", target.display())));
    };
    fs::create_dir_all(parent).map_err(|err| storage(format_args!("creating {}", parent.display()), err))?;
    let temp = parent.join(format!(".{}.{}.conclave-merge", name.to_string_lossy(), uuid::Uuid::now_v7().simple()));
    let written = if metadata.is_symlink() {
        copy_symlink(source, &temp).map(drop)
    } else {
        copy_file(source, &temp, metadata.permissions(), true).map(drop)
    };
    let renamed = written.and_then(|()| fs::rename(&temp, target).map_err(|err| storage(format_args!("replacing {}", target.display()), err)));
    if let Err(err) = renamed {
        let _ = fs::remove_file(&temp);
        return Err(err);
    }
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| storage(format_args!("syncing {}", parent.display()), err))
}

/// Removes the directories above `path` that are left empty, up to (not including) `root`.
fn remove_empty_parents(root: &Path, path: &Path) {
    let mut dir = path.parent();
    while let Some(current) = dir {
        if current == root || !current.starts_with(root) || fs::remove_dir(current).is_err() {
            return;
        }
        dir = current.parent();
    }
}

/// Appends the entry for a merge to the project's [`CHANGELOG_PATH`]: a `## <time> — <title>
/// (task <id>)` heading, the summary paragraph, and a bullet per changed path
/// (`- added path`, `- modified path`, `- deleted path`), sorted by path.
fn append_changelog(project: &Path, changes: &Changes, entry: &ChangelogEntry) -> Result<()> {
    let path = project.join(CHANGELOG_PATH);
    let dir = project.join(CONCLAVE_DIR);
    fs::create_dir_all(&dir).map_err(|err| storage(format_args!("creating {}", dir.display()), err))?;
    let one_line = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut text = String::new();
    if !path.exists() {
        text.push_str("# Changelog\n\nWhat Conclave's tasks merged into this project, oldest first.\n\n");
    }
    text.push_str(&format!("## {} — {} (task {})\n\n", one_line(&entry.time), one_line(&entry.title), one_line(&entry.task_id)));
    let summary = entry.summary.trim();
    if !summary.is_empty() {
        text.push_str(summary);
        text.push_str("\n\n");
    }
    for (kind, changed) in changes.labelled() {
        text.push_str(&format!("- {} {changed}\n", kind.as_str()));
    }
    text.push('\n');
    let mut file = File::options()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|err| storage(format_args!("opening {}", path.display()), err))?;
    file.write_all(text.as_bytes()).map_err(|err| storage(format_args!("writing {}", path.display()), err))?;
    file.sync_all().map_err(|err| storage(format_args!("syncing {}", path.display()), err))
}

/// A walk that failed part way.
fn walk_error(root: &Path, err: &ignore::Error) -> Error {
    Error::Unavailable(format!("sandbox: walking {}: {err}", root.display()))
}

/// Filesystem trouble, which a retry may get past.
fn storage(what: impl fmt::Display, err: io::Error) -> Error {
    Error::Unavailable(format!("sandbox: {what}: {err}"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn write(root: &Path, path: &str, content: impl AsRef<[u8]>) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn read(root: &Path, path: &str) -> String {
        fs::read_to_string(root.join(path)).unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Every file, link and directory under `root`, with its bytes (a link's target, `dir` for
    /// a directory) and mode.
    fn snapshot(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        let mut all = BTreeMap::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let metadata = fs::symlink_metadata(&path).unwrap();
                let content = if metadata.is_symlink() {
                    fs::read_link(&path).unwrap().as_os_str().as_bytes().to_vec()
                } else if metadata.is_dir() {
                    pending.push(path.clone());
                    b"dir".to_vec()
                } else {
                    fs::read(&path).unwrap()
                };
                all.insert(path.strip_prefix(root).unwrap().to_path_buf(), (content, mode(&path)));
            }
        }
        all
    }

    /// A project with a tracked script, sources, ignored files and a `.git` directory.
    fn project() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("app");
        write(&project, ".gitignore", "target/\n*.log\n");
        write(&project, "README.md", "# App\n");
        write(&project, "src/main.rs", "fn main() {\n    println!(\"hi\");\n}\n");
        write(&project, "src/util.rs", "pub fn util() {}\n");
        write(&project, "build.sh", "#!/bin/sh\ncargo build\n");
        fs::set_permissions(project.join("build.sh"), Permissions::from_mode(0o755)).unwrap();
        write(&project, "target/debug/app", "binary");
        write(&project, "debug.log", "log");
        write(&project, ".git/HEAD", "ref: refs/heads/main\n");
        write(&project, "CHANGELOG.md", "# The user's own changelog\n");
        unix_fs::symlink("README.md", project.join("readme-link")).unwrap();
        (dir, project)
    }

    fn entry() -> ChangelogEntry {
        ChangelogEntry {
            task_id: "task-7".into(),
            title: "Greet louder".into(),
            summary: "Made the greeting louder and dropped the helper.".into(),
            time: "2026-02-12T10:00:00Z".into(),
        }
    }

    fn precondition(result: Result<impl fmt::Debug>) -> (&'static str, String) {
        match result {
            Err(Error::FailedPrecondition { reason, message }) => (reason, message),
            other => panic!("expected a failed precondition, got {other:?}"),
        }
    }

    fn invalid_field(result: Result<impl fmt::Debug>) -> String {
        match result {
            Err(Error::InvalidArgument(violations)) => violations[0].field.clone(),
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn create_copies_tracked_files_with_permissions_and_records_the_baseline() {
        let (dir, project) = project();
        let sandbox = create(&project, &dir.path().join("lab/one")).unwrap();
        let copy = &sandbox.path;

        assert_eq!(sandbox.project, fs::canonicalize(&project).unwrap());
        assert_eq!(read(copy, "src/main.rs"), read(&project, "src/main.rs"));
        assert_eq!(read(copy, "CHANGELOG.md"), "# The user's own changelog\n");
        assert_eq!(mode(&copy.join("build.sh")), 0o755, "the script stays executable");
        assert_eq!(mode(&copy.join("README.md")), mode(&project.join("README.md")));
        assert!(fs::symlink_metadata(copy.join("readme-link")).unwrap().is_symlink(), "a link is copied as a link");
        assert_eq!(fs::read_link(copy.join("readme-link")).unwrap(), Path::new("README.md"));
        assert!(!copy.join(".git").exists(), ".git is not copied");
        assert!(!copy.join("target").exists() && !copy.join("debug.log").exists(), "ignored files are not copied");
        assert_eq!(fs::read(copy.join(MARKER_FILE)).unwrap(), sandbox.project.as_os_str().as_bytes());

        let recorded: Vec<&str> = sandbox.baseline.keys().map(String::as_str).collect();
        assert_eq!(recorded, [".gitignore", "CHANGELOG.md", "README.md", "build.sh", "readme-link", "src/main.rs", "src/util.rs"]);
        assert_eq!(
            sandbox.baseline["README.md"],
            FileState { size: 6, sha256: Digest::of(b"# App\n").to_string() },
            "the baseline holds each file's size and SHA-256"
        );
        assert_ne!(sandbox.baseline["readme-link"].sha256, Digest::of(b"README.md").to_string(), "a link never hashes like a file");
        assert!(changes(&sandbox).unwrap().is_empty(), "a fresh sandbox has no changes");
    }

    #[test]
    fn create_refuses_a_path_inside_the_project_or_a_non_empty_one() {
        let (dir, project) = project();
        assert_eq!(invalid_field(create(&project, &project.join("sandbox"))), "sandbox_path");
        assert_eq!(invalid_field(create(&project, &project.join("target/../sandbox"))), "sandbox_path");
        assert_eq!(invalid_field(create(&project, &project)), "sandbox_path");
        assert!(!project.join("sandbox").exists(), "nothing was created");

        write(dir.path(), "busy/file.txt", "mine");
        assert_eq!(invalid_field(create(&project, &dir.path().join("busy"))), "sandbox_path");
        assert_eq!(read(dir.path(), "busy/file.txt"), "mine");
        fs::create_dir(dir.path().join("empty")).unwrap();
        assert!(create(&project, &dir.path().join("empty")).is_ok(), "an empty directory will do");
        assert_eq!(invalid_field(create(&dir.path().join("missing"), &dir.path().join("x"))), "project_dir");
    }

    #[test]
    fn in_place_measures_changes_in_the_project_itself() {
        let (_dir, project) = project();
        let place = in_place(&project).unwrap();
        assert_eq!(place.path, place.project);
        assert!(place.baseline.contains_key("src/main.rs") && !place.baseline.contains_key("debug.log"));
        assert!(!project.join(MARKER_FILE).exists(), "nothing is written into the project");
        write(&project, "src/util.rs", "pub fn util() -> u32 { 2 }\n");
        let changes = changes(&place).unwrap();
        assert_eq!(changes.modified, ["src/util.rs"]);
        let diff = diff(&place, &changes).unwrap();
        assert!(diff.contains("+pub fn util() -> u32 { 2 }"), "{diff}");
        assert_eq!(precondition(remove(&place)).0, "NOT_A_SANDBOX", "the project is never removed");
    }

    #[test]
    fn changes_lists_added_modified_and_deleted_files() {
        let (dir, project) = project();
        let sandbox = create(&project, &dir.path().join("sandbox")).unwrap();
        let copy = &sandbox.path;
        write(copy, "src/main.rs", "fn main() {\n    println!(\"HI\");\n}\n");
        write(copy, "src/greet/mod.rs", "pub fn greet() {}\n");
        fs::remove_file(copy.join("src/util.rs")).unwrap();
        fs::remove_file(copy.join("readme-link")).unwrap();
        unix_fs::symlink("CHANGELOG.md", copy.join("readme-link")).unwrap();
        write(copy, "target/release/app", "ignored build output");
        write(copy, "test.log", "ignored log");
        write(copy, ".git/config", "[core]");
        write(copy, ".conclave/notes", "Conclave's own");

        let found = changes(&sandbox).unwrap();
        assert_eq!(
            found,
            Changes { added: vec!["src/greet/mod.rs".into()], modified: vec!["readme-link".into(), "src/main.rs".into()], deleted: vec!["src/util.rs".into()] }
        );
        assert_eq!(found.paths().collect::<Vec<_>>(), ["readme-link", "src/greet/mod.rs", "src/main.rs", "src/util.rs"]);
        assert!(!found.is_empty());
    }

    #[test]
    fn a_file_the_task_ignores_is_not_deleted() {
        let (dir, project) = project();
        let sandbox = create(&project, &dir.path().join("sandbox")).unwrap();
        write(&sandbox.path, ".gitignore", "target/\n*.log\nREADME.md\n");
        assert_eq!(changes(&sandbox).unwrap(), Changes { modified: vec![".gitignore".into()], ..Changes::default() });
    }

    #[test]
    fn merge_applies_the_changes_and_writes_the_changelog() {
        let (dir, project) = project();
        let sandbox = create(&project, &dir.path().join("sandbox")).unwrap();
        let copy = &sandbox.path;
        write(copy, "src/main.rs", "fn main() {}\n");
        write(copy, "scripts/deploy.sh", "#!/bin/sh\n");
        fs::set_permissions(copy.join("scripts/deploy.sh"), Permissions::from_mode(0o750)).unwrap();
        fs::remove_file(copy.join("src/util.rs")).unwrap();
        let found = changes(&sandbox).unwrap();

        merge(&sandbox, &found, &entry()).unwrap();
        assert_eq!(read(&project, "src/main.rs"), "fn main() {}\n");
        assert_eq!(read(&project, "scripts/deploy.sh"), "#!/bin/sh\n");
        assert_eq!(mode(&project.join("scripts/deploy.sh")), 0o750, "permissions are merged with the file");
        assert!(!project.join("src/util.rs").exists());
        assert_eq!(read(&project, "debug.log"), "log", "ignored files are left alone");
        assert_eq!(read(&project, "CHANGELOG.md"), "# The user's own changelog\n", "the user's changelog is not touched");
        let leftovers: Vec<_> = snapshot(&project).into_keys().filter(|path| path.to_string_lossy().contains("conclave-merge")).collect();
        assert!(leftovers.is_empty(), "no temp files remain: {leftovers:?}");

        let changelog = read(&project, CHANGELOG_PATH);
        assert!(changelog.starts_with("# Changelog\n"), "{changelog}");
        assert!(
            changelog.ends_with(
                "## 2026-02-12T10:00:00Z — Greet louder (task task-7)\n\n\
                 Made the greeting louder and dropped the helper.\n\n\
                 - added scripts/deploy.sh\n- modified src/main.rs\n- deleted src/util.rs\n\n"
            ),
            "{changelog}"
        );
        let second = create(&project, &dir.path().join("second")).unwrap();
        write(&second.path, "README.md", "# App, again\n");
        merge(&second, &changes(&second).unwrap(), &ChangelogEntry { task_id: "task-8".into(), ..entry() }).unwrap();
        let changelog = read(&project, CHANGELOG_PATH);
        assert_eq!(changelog.matches("## ").count(), 2, "entries are appended: {changelog}");
        assert!(changelog.ends_with("(task task-8)\n\nMade the greeting louder and dropped the helper.\n\n- modified README.md\n\n"), "{changelog}");
    }

    #[test]
    fn merge_is_refused_when_the_project_changed_the_same_files() {
        let (dir, project) = project();
        let sandbox = create(&project, &dir.path().join("sandbox")).unwrap();
        write(&sandbox.path, "src/main.rs", "fn main() { sandbox() }\n");
        write(&sandbox.path, "NEW.md", "from the task\n");
        fs::remove_file(sandbox.path.join("src/util.rs")).unwrap();
        write(&sandbox.path, "README.md", "# App, by the task\n");
        let found = changes(&sandbox).unwrap();

        write(&project, "src/main.rs", "fn main() { project() }\n");
        write(&project, "NEW.md", "from the user\n");
        write(&project, "src/util.rs", "pub fn util() { changed() }\n");
        let before = snapshot(&project);
        let (reason, message) = precondition(merge(&sandbox, &found, &entry()));
        assert_eq!(reason, "MERGE_CONFLICT");
        assert!(message.contains("NEW.md, src/main.rs, src/util.rs"), "{message}");
        assert!(!message.contains("README.md"), "an unconflicted path is not listed: {message}");
        assert_eq!(snapshot(&project), before, "nothing was written, not even the untouched README.md");
        assert!(!project.join(CHANGELOG_PATH).exists());

        // A file the task modified that the project deleted conflicts too.
        write(&project, "src/main.rs", "fn main() {\n    println!(\"hi\");\n}\n");
        fs::remove_file(project.join("NEW.md")).unwrap();
        write(&project, "src/util.rs", "pub fn util() {}\n");
        fs::remove_file(project.join("README.md")).unwrap();
        let (_, message) = precondition(merge(&sandbox, &found, &entry()));
        assert!(message.contains(": README.md;"), "{message}");
    }

    #[test]
    fn a_change_to_another_file_in_the_project_is_not_a_conflict() {
        let (dir, project) = project();
        let sandbox = create(&project, &dir.path().join("sandbox")).unwrap();
        write(&sandbox.path, "src/main.rs", "fn main() { sandbox() }\n");
        let found = changes(&sandbox).unwrap();
        write(&project, "src/util.rs", "pub fn util() { by_the_user() }\n");
        write(&project, "TODO.md", "user's note\n");

        merge(&sandbox, &found, &entry()).unwrap();
        assert_eq!(read(&project, "src/main.rs"), "fn main() { sandbox() }\n");
        assert_eq!(read(&project, "src/util.rs"), "pub fn util() { by_the_user() }\n", "the user's change stays");
        assert_eq!(read(&project, "TODO.md"), "user's note\n");
    }

    #[test]
    fn merge_replaces_a_file_with_a_directory() {
        let (dir, project) = project();
        let sandbox = create(&project, &dir.path().join("sandbox")).unwrap();
        fs::remove_file(sandbox.path.join("src/util.rs")).unwrap();
        write(&sandbox.path, "src/util.rs/mod.rs", "pub mod parts;\n");
        let found = changes(&sandbox).unwrap();
        assert_eq!(found, Changes { added: vec!["src/util.rs/mod.rs".into()], deleted: vec!["src/util.rs".into()], ..Changes::default() });
        merge(&sandbox, &found, &entry()).unwrap();
        assert_eq!(read(&project, "src/util.rs/mod.rs"), "pub mod parts;\n");
    }

    #[test]
    fn merge_refuses_changes_that_do_not_fit_the_sandbox() {
        let (dir, project) = project();
        let sandbox = create(&project, &dir.path().join("sandbox")).unwrap();
        let before = snapshot(&project);
        for bad in ["../escape.txt", "/etc/passwd", ".git/config", "src//main.rs", MARKER_FILE] {
            let changes = Changes { added: vec![bad.into()], ..Changes::default() };
            assert_eq!(invalid_field(merge(&sandbox, &changes, &entry())), "changes", "{bad}");
        }
        let not_added = Changes { added: vec!["README.md".into()], ..Changes::default() };
        assert_eq!(invalid_field(merge(&sandbox, &not_added, &entry())), "changes");
        let gone = Changes { added: vec!["never-made.txt".into()], ..Changes::default() };
        assert_eq!(precondition(merge(&sandbox, &gone, &entry())).0, "SANDBOX_CHANGED");
        assert_eq!(snapshot(&project), before);
    }

    #[test]
    fn diff_shows_line_changes_and_binary_files() {
        let (dir, project) = project();
        write(&project, "logo.png", [0x89, b'P', b'N', b'G', 0, 1, 2]);
        let sandbox = create(&project, &dir.path().join("sandbox")).unwrap();
        write(&sandbox.path, "src/main.rs", "fn main() {\n    println!(\"hello\");\n}\n");
        write(&sandbox.path, "logo.png", [0x89, b'P', b'N', b'G', 0, 9, 9]);
        write(&sandbox.path, "NOTES", "one\ntwo");
        fs::remove_file(sandbox.path.join("src/util.rs")).unwrap();

        let text = diff(&sandbox, &changes(&sandbox).unwrap()).unwrap();
        assert_eq!(
            text,
            "--- /dev/null\n+++ b/NOTES\n@@ -0,0 +1,2 @@\n+one\n+two\n\\ No newline at end of file\n\
             --- a/logo.png\n+++ b/logo.png\nBinary files differ\n\
             --- a/src/main.rs\n+++ b/src/main.rs\n@@ -1,3 +1,3 @@\n fn main() {\n-    println!(\"hi\");\n+    println!(\"hello\");\n }\n\
             --- a/src/util.rs\n+++ /dev/null\n@@ -1 +0,0 @@\n-pub fn util() {}\n"
        );
    }

    #[test]
    fn diff_hunks_keep_three_lines_of_context() {
        let old: String = (1..=20).map(|n| format!("line {n}\n")).collect();
        let new = old.replace("line 5\n", "line five\n").replace("line 7\n", "").replace("line 18\n", "line 18\nline 18.5\n");
        let mut out = String::new();
        unified_hunks(&old, &new, &mut out);
        assert_eq!(
            out,
            "@@ -2,9 +2,8 @@\n line 2\n line 3\n line 4\n-line 5\n+line five\n line 6\n-line 7\n line 8\n line 9\n line 10\n\
             @@ -16,5 +15,6 @@\n line 16\n line 17\n line 18\n+line 18.5\n line 19\n line 20\n"
        );
        let mut same = String::new();
        unified_hunks(&old, &old, &mut same);
        assert!(same.is_empty());

        // Past the line limit the middle is replaced whole, still quickly and correctly.
        let big_old: String = (0..3_000).map(|n| format!("{n}\n")).collect();
        let big_new: String = (0..3_000).map(|n| format!("{}\n", if n % 2 == 0 { n } else { n * 7 })).collect();
        let mut big = String::new();
        unified_hunks(&big_old, &big_new, &mut big);
        assert_eq!(big.lines().filter(|line| line.starts_with('-')).count(), 2_999);
        assert!(big.starts_with("@@ -1,3000 +1,3000 @@\n 0\n-1\n"), "{}", &big[..40]);
    }

    #[test]
    fn remove_deletes_only_a_sandbox() {
        let (dir, project) = project();
        let lab = default_path(&fs::canonicalize(&project).unwrap(), "20260212T100000Z", "task-1").unwrap();
        let sandbox = create(&project, &lab).unwrap();

        let mut stranger = sandbox.clone();
        stranger.path = dir.path().join("stranger");
        write(&stranger.path, "precious.txt", "keep me");
        assert_eq!(precondition(remove(&stranger)).0, "NOT_A_SANDBOX");
        write(&stranger.path, MARKER_FILE, "/some/other/project");
        assert_eq!(precondition(remove(&stranger)).0, "NOT_A_SANDBOX");
        assert_eq!(read(&stranger.path, "precious.txt"), "keep me");
        let project_itself = Sandbox { path: sandbox.project.clone(), ..sandbox.clone() };
        assert_eq!(precondition(remove(&project_itself)).0, "NOT_A_SANDBOX");
        assert!(project.join("README.md").exists());

        remove(&sandbox).unwrap();
        assert!(!sandbox.path.exists());
        assert!(!dir.path().join("app-lab").exists(), "the emptied lab directory goes too");
        assert!(project.join("README.md").exists());
        remove(&sandbox).unwrap();
    }

    #[test]
    fn default_path_is_beside_the_project() {
        let expected = PathBuf::from("/home/me/app-lab/20260212T100000Z-task-1");
        assert_eq!(default_path(Path::new("/home/me/app"), "20260212T100000Z", "task-1").unwrap(), expected);
        assert_eq!(default_path(Path::new("/home/me/app/"), "20260212T100000Z", "task-1").unwrap(), expected);
        assert_eq!(invalid_field(default_path(Path::new("/"), "t", "1")), "project_dir");
        assert_eq!(invalid_field(default_path(Path::new("/home/me/app"), "t", "../1")), "sandbox_path");
        assert_eq!(invalid_field(default_path(Path::new("/home/me/app"), "", "1")), "sandbox_path");
    }
}
