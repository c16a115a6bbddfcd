//! The README's first command on a clean clone: `scripts/demo` runs the main job on the
//! embedded default (the shipped sample logs into a local lake, then queries) from nothing but
//! the committed tree. The binary under test stands in for the script's own build.
#![cfg(feature = "query")]

use std::path::Path;
use std::process::Command;

#[test]
fn the_demo_runs_on_a_clean_clone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let clone = tempfile::tempdir().unwrap();
    let cloned = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(root)
        .arg(clone.path())
        .status();
    if !cloned.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI=true but the repository could not be cloned"
        );
        eprintln!("skipped: not a git checkout");
        return;
    }
    let out = Command::new("bash")
        .arg(clone.path().join("scripts/demo"))
        .env("CITRINE_BIN", env!("CARGO_BIN_EXE_citrine"))
        .env_remove("CITRINE_CONFIG")
        .env_remove("CITRINE_CONFIG_TOML")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both tables ran and committed; both queries printed their tables.
    assert!(
        stdout.contains("cloudfront_logs: ") && stdout.contains(", run "),
        "{stdout}"
    );
    assert!(stdout.contains("wau_audit_logs: "), "{stdout}");
    assert!(
        stdout.contains("| customer") && stdout.contains("requests"),
        "{stdout}"
    );
    assert!(stdout.contains("events"), "{stdout}");
    assert!(clone.path().join("lake/complete/cloudfront_logs").is_dir());
}
