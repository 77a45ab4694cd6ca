//! Build script: builds the git revision into the binary as `LAKEFORM_REVISION`, which
//! `lakeform version` (and `--version`) prints and images/build copies into the image's
//! `org.opencontainers.image.revision` label.
//!
//! The revision is `git rev-parse HEAD`, with `-dirty` when tracked files differ from HEAD.
//! Without a git checkout of this workspace (a source tarball, `cargo package`) it is the
//! `LAKEFORM_GIT_REVISION` environment variable, else `unknown`.
//!
//! Incremental builds: the script reruns only when HEAD moves (`.git/HEAD`, the branch ref it
//! points to, `packed-refs`), when `LAKEFORM_GIT_REVISION` changes, or when the sources of the
//! workspace crates the binary is made of change — then the operator crate is recompiled
//! anyway, so refreshing `-dirty` costs one `git status` and no extra compilation. Edits
//! elsewhere in the tree (e2e/, docs) do not rebuild the binary; its `-dirty` flag is as of
//! its last compilation.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the revision is called when neither git nor the environment knows it.
const UNKNOWN: &str = "unknown";

fn main() {
    println!("cargo:rerun-if-env-changed=LAKEFORM_GIT_REVISION");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let workspace_dir = manifest_dir.parent().unwrap_or(&manifest_dir).to_path_buf();

    let revision = match git_revision(&workspace_dir) {
        Some(revision) => revision,
        None => std::env::var("LAKEFORM_GIT_REVISION")
            .ok()
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| UNKNOWN.to_string()),
    };
    println!("cargo:rustc-env=LAKEFORM_REVISION={revision}");
}

/// The revision from git, or `None` when `workspace_dir` is not the top of a git work tree
/// (no git, no `.git`, or this crate vendored inside some other repository). Also prints the
/// `rerun-if-changed` lines that keep the value current.
fn git_revision(workspace_dir: &Path) -> Option<String> {
    let toplevel = git(workspace_dir, &["rev-parse", "--show-toplevel"])?;
    if !same_dir(Path::new(&toplevel), workspace_dir) {
        return None;
    }
    let head = git(workspace_dir, &["rev-parse", "--verify", "HEAD"])?;

    // HEAD itself, packed-refs (where refs live after `git pack-refs`) and the ref HEAD
    // points to (none on a detached HEAD). `--git-path` also resolves them in linked
    // worktrees. Only paths that exist: cargo reruns the script on every build while a watched
    // path is missing. A packed branch ref becomes a loose file again on the next commit, so
    // then its folder (`refs/heads/…`) is watched — never `.git` itself, which changes with
    // every `git status`.
    for name in ["HEAD", "packed-refs"] {
        if let Some(path) = git_path(workspace_dir, name).filter(|path| path.is_file()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    if let Some(reference) = git(workspace_dir, &["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git_path(workspace_dir, &reference)
    {
        let watch = if path.is_file() {
            Some(path.as_path())
        } else {
            path.parent().filter(|folder| folder.is_dir())
        };
        if let Some(watch) = watch {
            println!("cargo:rerun-if-changed={}", watch.display());
        }
    }
    // The crates the binary is compiled from: edits here recompile it anyway. (Not the root
    // Cargo.toml/Cargo.lock: they change for other crates' dependencies too.)
    for source in [
        "operator/src",
        "operator/Cargo.toml",
        "api/src",
        "api/Cargo.toml",
        "worker/src",
        "worker/Cargo.toml",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace_dir.join(source).display()
        );
    }

    // `--no-optional-locks`: do not refresh (write) the index from a build script. Untracked
    // files do not count, as with `git describe --dirty`.
    let dirty = git(
        workspace_dir,
        &[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )
    .is_none_or(|changes| !changes.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

/// Where git keeps `name` (`HEAD`, `refs/heads/main`, …) for the work tree at `dir`.
fn git_path(dir: &Path, name: &str) -> Option<PathBuf> {
    git(dir, &["rev-parse", "--git-path", name]).map(|path| dir.join(path))
}

/// Runs `git ARGS` in `dir`; its trimmed standard output when it succeeded.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Whether two paths name the same directory (after resolving symlinks).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
