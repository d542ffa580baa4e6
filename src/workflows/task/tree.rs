//! The project's files and directories to a depth, as `GetWorkspaceTree` shows them.
//!
//! The tree skips what git would: the `.git` directory and whatever the project's `.gitignore`
//! files and `.git/info/exclude` ignore (never the user's global gitignore, and the rules apply
//! whether or not the project is a git repository). Hidden files are shown. Symbolic links are
//! listed as files and never followed. [`walker`] builds the walk with these rules; the
//! sandboxes (`super::sandbox`) copy and compare with the same one.

use std::{cmp::Ordering, fs, path::Path};

use ignore::WalkBuilder;

use crate::error::{Error, Result};

/// The deepest tree [`workspace_tree`] lists.
pub const MAX_DEPTH: u32 = 32;

/// One file or directory under the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Its path relative to the root, `/`-separated (`src/main.rs`).
    pub path: String,
    /// Whether it is a directory (a symbolic link never is).
    pub is_dir: bool,
    /// Its size in bytes; 0 for a directory.
    pub size: u64,
    /// How deep it is: 1 for the root's children.
    pub depth: u32,
}

/// A workspace tree: its entries in order, and whether some were left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// The entries, depth-first in pre-order: each directory is followed by its contents, and
    /// within a directory the subdirectories come first, then the files, each group sorted by
    /// name (byte order).
    pub entries: Vec<TreeEntry>,
    /// Whether entries were left out because there were more than `max_entries`. The entries
    /// kept are the first ones in the order above.
    pub truncated: bool,
}

/// The tree under `root` to `max_depth` levels (1 = the root's children only), in the order
/// [`Tree::entries`] describes, skipping the `.git` directory and what `.gitignore` files and
/// `.git/info/exclude` ignore. At most `max_entries` entries; [`Tree::truncated`] says whether
/// some were left out. Entries that cannot be read (a directory without permission) are
/// skipped.
pub fn workspace_tree(root: &Path, max_depth: u32, max_entries: usize) -> Result<Tree> {
    if max_depth == 0 || max_depth > MAX_DEPTH {
        return Err(Error::invalid("depth", format!("must be between 1 and {MAX_DEPTH}, got {max_depth}")));
    }
    check_project_dir(root)?;

    let mut builder = walker(root);
    builder.max_depth(Some(max_depth as usize)).sort_by_file_path(directories_first_by_name);
    let mut tree = Tree::default();
    for entry in builder.build() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                tracing::debug!(root = %root.display(), error = %err, "workspace tree: skipping an unreadable entry");
                continue;
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        if tree.entries.len() == max_entries {
            tree.truncated = true;
            break;
        }
        let is_dir = entry.file_type().is_some_and(|kind| kind.is_dir());
        let size = if is_dir { 0 } else { entry.metadata().map_or(0, |metadata| metadata.len()) };
        tree.entries.push(TreeEntry {
            path: relative_path(root, entry.path()),
            is_dir,
            size,
            depth: u32::try_from(entry.depth()).unwrap_or(u32::MAX),
        });
    }
    Ok(tree)
}

/// Checks that `root` is a directory that can be read.
pub(super) fn check_project_dir(root: &Path) -> Result<()> {
    match fs::metadata(root) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => return Err(Error::invalid("project_dir", format!("{} is not a directory; give the project's directory", root.display()))),
        Err(err) => return Err(Error::invalid("project_dir", format!("{} cannot be opened ({err}); give an existing directory", root.display()))),
    }
    if let Err(err) = fs::read_dir(root) {
        return Err(Error::invalid("project_dir", format!("{} cannot be read ({err}); give a directory Conclave may read", root.display())));
    }
    Ok(())
}

/// The walk of everything under `root` that git would track: hidden files included, the
/// `.git` directory (or file, in a worktree) skipped at any depth, `.gitignore` files and
/// `.git/info/exclude` obeyed even outside a git repository, no global gitignore, no ignore
/// files from above `root`, no `.ignore` files, symbolic links not followed. Unsorted.
pub(crate) fn walker(root: &Path) -> WalkBuilder {
    let mut builder = WalkBuilder::new(root);
    builder
        .hidden(false)
        .parents(false)
        .ignore(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(true)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|entry| entry.depth() == 0 || entry.file_name() != ".git");
    builder
}

/// `path` relative to `root`, with `/` between its components (lossy for names that are not
/// UTF-8).
pub(crate) fn relative_path(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<_> = relative.components().map(|part| part.as_os_str().to_string_lossy()).collect();
    parts.join("/")
}

/// Directories (real ones, not links to them) before everything else, then by name.
fn directories_first_by_name(a: &Path, b: &Path) -> Ordering {
    let is_dir = |path: &Path| fs::symlink_metadata(path).is_ok_and(|metadata| metadata.is_dir());
    is_dir(b).cmp(&is_dir(a)).then_with(|| a.file_name().cmp(&b.file_name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, content: &str) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn paths(tree: &Tree) -> Vec<&str> {
        tree.entries.iter().map(|entry| entry.path.as_str()).collect()
    }

    #[test]
    fn lists_directories_first_then_files_by_name_depth_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "b.txt", "bb");
        write(root, "a.txt", "a");
        write(root, "src/main.rs", "fn main() {}");
        write(root, "src/lib/mod.rs", "");
        write(root, "docs/guide.md", "# Guide");
        write(root, ".env.example", "KEY=");
        fs::create_dir(root.join("empty")).unwrap();

        let tree = workspace_tree(root, 5, 100).unwrap();
        assert_eq!(
            paths(&tree),
            ["docs", "docs/guide.md", "empty", "src", "src/lib", "src/lib/mod.rs", "src/main.rs", ".env.example", "a.txt", "b.txt"]
        );
        assert!(!tree.truncated);
        let entry = |path: &str| tree.entries.iter().find(|entry| entry.path == path).unwrap().clone();
        assert_eq!(entry("docs"), TreeEntry { path: "docs".into(), is_dir: true, size: 0, depth: 1 });
        assert_eq!(entry("src/lib/mod.rs"), TreeEntry { path: "src/lib/mod.rs".into(), is_dir: false, size: 0, depth: 3 });
        assert_eq!(entry("b.txt"), TreeEntry { path: "b.txt".into(), is_dir: false, size: 2, depth: 1 });
        assert_eq!(workspace_tree(root, 5, 100).unwrap(), tree, "the same tree every time");
    }

    #[test]
    fn skips_ignored_paths_and_the_git_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, ".gitignore", "target/\n*.log\n");
        write(root, "target/debug/app", "binary");
        write(root, "run.log", "log");
        write(root, "src/.gitignore", "generated.rs\n");
        write(root, "src/generated.rs", "// generated");
        write(root, "src/main.rs", "fn main() {}");
        write(root, "src/nested/trace.log", "log");
        write(root, ".git/HEAD", "ref: refs/heads/main");
        write(root, ".git/info/exclude", "secret.txt\n");
        write(root, "secret.txt", "s3cret");

        let tree = workspace_tree(root, 10, 100).unwrap();
        assert_eq!(paths(&tree), ["src", "src/nested", "src/.gitignore", "src/main.rs", ".gitignore"]);
    }

    #[test]
    fn a_gitignore_applies_outside_a_git_repository() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, ".gitignore", "node_modules\n");
        write(root, "node_modules/left-pad/index.js", "");
        write(root, "index.js", "");
        assert_eq!(paths(&workspace_tree(root, 3, 100).unwrap()), [".gitignore", "index.js"]);
    }

    #[test]
    fn stops_at_the_depth() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "a/b/c/deep.txt", "");
        write(root, "top.txt", "");
        assert_eq!(paths(&workspace_tree(root, 1, 100).unwrap()), ["a", "top.txt"]);
        assert_eq!(paths(&workspace_tree(root, 2, 100).unwrap()), ["a", "a/b", "top.txt"]);
        assert_eq!(paths(&workspace_tree(root, 4, 100).unwrap()), ["a", "a/b", "a/b/c", "a/b/c/deep.txt", "top.txt"]);
    }

    #[test]
    fn truncates_at_max_entries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in ["a", "b", "c", "d"] {
            write(root, name, "");
        }
        let tree = workspace_tree(root, 1, 3).unwrap();
        assert_eq!(paths(&tree), ["a", "b", "c"]);
        assert!(tree.truncated);
        let exact = workspace_tree(root, 1, 4).unwrap();
        assert_eq!(exact.entries.len(), 4);
        assert!(!exact.truncated, "exactly max_entries entries is not truncated");
    }

    #[test]
    fn symbolic_links_are_files_and_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "real/file.txt", "");
        std::os::unix::fs::symlink("real", root.join("link")).unwrap();
        assert_eq!(paths(&workspace_tree(root, 3, 100).unwrap()), ["real", "real/file.txt", "link"]);
    }

    #[test]
    fn refuses_a_missing_root_and_a_bad_depth() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "file.txt", "");
        let field = |result: Result<Tree>| match result {
            Err(Error::InvalidArgument(violations)) => violations[0].field.clone(),
            other => panic!("expected an invalid argument, got {other:?}"),
        };
        assert_eq!(field(workspace_tree(&dir.path().join("missing"), 1, 10)), "project_dir");
        assert_eq!(field(workspace_tree(&dir.path().join("file.txt"), 1, 10)), "project_dir");
        assert_eq!(field(workspace_tree(dir.path(), 0, 10)), "depth");
        assert_eq!(field(workspace_tree(dir.path(), MAX_DEPTH + 1, 10)), "depth");
        assert!(workspace_tree(dir.path(), MAX_DEPTH, 10).is_ok());
    }
}
