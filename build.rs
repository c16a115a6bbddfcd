//! Names the build: `CITRINE_BUILD` is the commit the binary was built from (`git rev-parse
//! --short=12 HEAD`), or the `CITRINE_BUILD` environment variable when set (a container build
//! without `.git` passes it), else `unknown`. It goes into every Parquet file's `created_by`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CITRINE_BUILD");
    let build = std::env::var("CITRINE_BUILD")
        .ok()
        .filter(|b| !b.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CITRINE_BUILD={build}");
}

/// The checked-out commit, watching what moves it (HEAD, the branch it names, packed refs).
fn git_commit() -> Option<String> {
    let git = Path::new(".git");
    if !git.join("HEAD").is_file() {
        return None;
    }
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
        if let Some(branch) = head.trim().strip_prefix("ref: ") {
            if git.join(branch).is_file() {
                println!("cargo:rerun-if-changed=.git/{branch}");
            }
        }
    }
    if git.join("packed-refs").is_file() {
        println!("cargo:rerun-if-changed=.git/packed-refs");
    }
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}
