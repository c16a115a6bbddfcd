//! A run that fails, rather than being killed, removes what it wrote before it exits (docs/
//! design.md §2): on a lake whose file system fills up while a run is at a stage (the data
//! files, the report, the marker) the run exits 2 naming the cause, leaves no marker, nothing
//! of it under `data/`, no journal and no temporary file, and the next run, with room again,
//! is exact. A full disk at the checkpoint, written after the marker, leaves a committed run
//! (exit 0, the checkpoint's failure a warning). On a lake that turns read-only, what the run
//! cannot delete stays in its journal, and the next run's recovery deletes it.
//!
//! The lake is a small tmpfs mounted for each test, which needs root (CI runs as root); other
//! users skip with a message.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::gen::Shape;
use common::table::Table;
use serde_json::json;

/// A tmpfs mounted on a temporary folder, unmounted on drop.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    /// A tmpfs of `mb` megabytes, or `None` (with a message) where mounting is not allowed.
    fn new(mb: u32) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let root = is_root();
        let mounted = root
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED: a full or read-only lake needs a tmpfs mount, which needs root (CI runs as root)");
            return None;
        }
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {options}");
    }

    /// Fill the file system: a file of zeros written until there is no room left.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 << 10];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(28), "ENOSPC: {e}");
                    break;
                }
            }
        }
        path
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Whether this process runs as root.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn shape() -> Shape<'static> {
    Shape {
        seed: 41,
        customers: &["acme", "globex", "initech"],
        days: 3,
        files_per_day: 2,
        rows_per_file: 30,
        bad_every: 19,
        all_gzip: false,
    }
}

/// The lake below the mount.
fn table(mount: &Mount) -> Table {
    let mut t = Table::local_at(&mount.path().join("lake"), "", "");
    t.add(&shape());
    t
}

/// Nothing of a failed run is left: no marker, no data file, no journal, no temporary file.
fn assert_nothing_left(t: &Table, context: &str) {
    let s = t.state();
    for empty in [
        "markers",
        "unlisted",
        "journals",
        "temporary",
        "reports_without_marker",
    ] {
        assert_eq!(s[empty], json!([]), "{context}: {empty}: {s:#}");
    }
    assert_eq!(s["rows"], 0, "{context}: nothing under data/");
}

/// The file system fills up while a run is held at `stage`.
fn full_at(stage: &str) {
    let Some(mount) = Mount::new(16) else { return };
    let t = table(&mount);
    let held = t.held(stage, &[]);
    let filler = mount.fill();
    let ended = held.resume();
    assert_eq!(ended.code, Some(2), "{stage}: {}", ended.stderr);
    assert!(
        ended.stderr.contains("No space left on device"),
        "{stage}: the cause is named: {}",
        ended.stderr
    );
    assert_nothing_left(&t, &format!("a full disk at {stage}"));
    std::fs::remove_file(filler).unwrap();
    t.run();
    t.assert_exact(&format!("the run after a full disk at {stage}"));
}

#[test]
fn a_full_disk_while_writing_data_files() {
    full_at("input_opened");
}

#[test]
fn a_full_disk_at_the_report() {
    full_at("before_report");
}

#[test]
fn a_full_disk_at_the_marker() {
    full_at("before_manifest");
}

#[test]
fn a_full_disk_at_the_checkpoint_leaves_a_committed_run() {
    let Some(mount) = Mount::new(16) else { return };
    let t = table(&mount);
    let held = t.held("before_checkpoint", &[]);
    let filler = mount.fill();
    let ended = held.resume();
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    assert!(
        ended
            .stderr
            .contains("could not write the ledger checkpoint"),
        "{}",
        ended.stderr
    );
    let s = t.assert_exact("committed, without its checkpoint");
    assert_eq!(s["markers"].as_array().unwrap().len(), 1);
    std::fs::remove_file(filler).unwrap();
    // The next run finds nothing new (its plan replays the report instead).
    let out = t.cli(&["run", "--json"], &[]);
    let summary: serde_json::Value = serde_json::from_str(&common::succeeded(&out)).unwrap();
    assert_eq!(summary[0]["run_id"], serde_json::Value::Null);
    t.assert_exact("the run after");
}

#[test]
fn a_read_only_lake_leaves_the_journal_to_the_next_run() {
    let Some(mount) = Mount::new(16) else { return };
    let t = table(&mount);
    let held = t.held("before_report", &[]);
    mount.remount("ro");
    let ended = held.resume();
    assert_eq!(ended.code, Some(2), "{}", ended.stderr);
    assert!(
        ended.stderr.contains("Read-only file system"),
        "{}",
        ended.stderr
    );
    // Nothing could be deleted: the journal still names every file the run wrote.
    let s = t.state();
    assert_eq!(s["markers"], json!([]));
    assert!(!s["unlisted"].as_array().unwrap().is_empty());
    let journaled: Vec<&str> = s["journals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k.as_str())
        .filter(|k| k.contains("/files/"))
        .collect();
    assert_eq!(
        journaled.len(),
        s["unlisted"].as_array().unwrap().len(),
        "{s:#}"
    );
    mount.remount("rw");
    t.run();
    t.assert_exact("the run after a read-only lake");
}
