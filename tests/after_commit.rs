//! `table.after_commit`: inputs deleted or archived only once their run's marker exists, only
//! if unchanged since they were read; a process killed between the marker and the deletions
//! leaves them to the next run. Locally and on the S3 server.

mod common;

use std::path::Path;

use common::gen::{cloudfront, write_config, Generated, Shape};
use common::{files_below, rust_counts};
use serde_json::Value;

fn generate(dir: &Path, after: &str) -> Generated {
    let g = cloudfront(
        dir,
        &Shape {
            seed: 31,
            customers: &["acme", "globex"],
            days: 2,
            files_per_day: 2,
            rows_per_file: 20,
            bad_every: 0,
            all_gzip: false,
        },
    );
    write_config(dir, "");
    let mut text = std::fs::read_to_string(dir.join("citrine.toml")).unwrap();
    text.push_str(after);
    std::fs::write(dir.join("citrine.toml"), text).unwrap();
    g
}

fn inputs_left(dir: &Path) -> Vec<String> {
    files_below(&dir.join("logs"))
}

#[test]
fn inputs_are_deleted_after_the_marker_and_a_killed_run_leaves_them_to_the_next() {
    // Deleted once committed.
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "after_commit = \"delete\"\n");
    let s = common::run_summary(dir.path());
    assert_eq!(s["after_commit"]["deleted"], g.files);
    assert!(inputs_left(dir.path()).is_empty());
    assert_eq!(rust_counts(dir.path()), g.expected);
    assert!(files_below(&dir.path().join("lake/_citrine/pending")).is_empty());
    // The run's report records it.
    assert_eq!(report(dir.path(), &s)["after_commit"], s["after_commit"]);

    // Killed between the marker and the deletions: committed, inputs still there; the next
    // run deletes them and commits nothing new.
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "after_commit = \"delete\"\n");
    let mut child = common::stalled(
        dir.path(),
        &[("CITRINE_TEST_STALL", "before_after_commit")],
        "before_after_commit",
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(files_below(&dir.path().join("lake/complete"))
        .iter()
        .any(|f| f.ends_with(".manifest")));
    assert_eq!(inputs_left(dir.path()).len(), g.files);
    let s = common::run_summary(dir.path());
    assert_eq!(s["run_id"], Value::Null);
    assert_eq!(s["after_commit"]["deleted"], g.files);
    assert!(inputs_left(dir.path()).is_empty());
    assert_eq!(rust_counts(dir.path()), g.expected);
    // The killed run's report records what the next run finished for it.
    let reports: Vec<String> = files_below(&dir.path().join("lake/complete/cloudfront_logs"))
        .into_iter()
        .filter(|f| f.ends_with(".json"))
        .collect();
    assert_eq!(reports.len(), 1);
    let text = std::fs::read(
        dir.path()
            .join("lake/complete/cloudfront_logs")
            .join(&reports[0]),
    )
    .unwrap();
    let report: Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(report["after_commit"], s["after_commit"]);
}

/// The report of the run a summary names.
fn report(dir: &Path, summary: &Value) -> Value {
    let run = summary["run_id"].as_str().unwrap();
    let path = dir.join(format!("lake/complete/cloudfront_logs/{run}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn an_input_rewritten_before_its_deletion_is_kept_and_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "after_commit = \"delete\"\n");
    let resume = dir.path().join("resume");
    let child = common::stalled_with(
        dir.path(),
        &["run", "--json"],
        &[
            ("CITRINE_TEST_STALL", "before_after_commit"),
            ("CITRINE_TEST_RESUME", resume.to_str().unwrap()),
        ],
        "before_after_commit",
    );
    // Rewritten while the run waits between its marker and the deletions.
    let victim = inputs_left(dir.path())
        .into_iter()
        .find(|f| !f.ends_with(".gz"))
        .unwrap();
    let path = dir.path().join("logs").join(&victim);
    let mut text = std::fs::read_to_string(&path).unwrap();
    let last = text.lines().last().unwrap().to_owned();
    text.push_str(&last);
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    std::fs::write(&resume, b"").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let s: Value = serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone();
    assert_eq!(s["after_commit"]["deleted"], g.files - 1);
    assert_eq!(
        s["after_commit"]["kept_changed"],
        serde_json::json!([format!("logs/{victim}")])
    );
    assert_eq!(inputs_left(dir.path()), [victim]);
    // The next run reads it again (changed), commits it, and then deletes it.
    let s = common::run_summary(dir.path());
    assert_eq!(s["inputs_consumed"], 1);
    assert_eq!(s["inputs_changed"].as_array().unwrap().len(), 1);
    assert_eq!(s["after_commit"]["deleted"], 1);
    assert!(inputs_left(dir.path()).is_empty());
}

#[test]
fn archived_inputs_move_below_archive_to_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        dir.path(),
        "after_commit = \"archive\"\narchive_to = \"archive\"\n",
    );
    let before: Vec<(String, Vec<u8>)> = inputs_left(dir.path())
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(dir.path().join("logs").join(&f)).unwrap();
            (f, bytes)
        })
        .collect();
    let s = common::run_summary(dir.path());
    assert_eq!(s["after_commit"]["archived"], g.files);
    assert!(inputs_left(dir.path()).is_empty());
    // Kept at their path below the pattern's root (`logs/cloudfront/`).
    for (f, bytes) in before {
        let rel = f.strip_prefix("cloudfront/").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("archive").join(rel)).unwrap(),
            bytes,
            "{f}"
        );
    }
    assert_eq!(rust_counts(dir.path()), g.expected);
}

#[test]
fn on_the_s3_server_inputs_are_deleted_after_the_commit() {
    let Some(e) = common::aws::endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bucket = e.fresh_bucket("after");
    let g = cloudfront(
        dir.path(),
        &Shape {
            seed: 33,
            customers: &["acme"],
            days: 1,
            files_per_day: 3,
            rows_per_file: 20,
            bad_every: 0,
            all_gzip: true,
        },
    );
    let logs = dir.path().join("logs").display().to_string();
    e.client(&["upload", &bucket, "logs", &logs]);
    std::fs::write(
        dir.path().join("citrine.toml"),
        format!("[lake]\nroot = \"s3://{bucket}/lake\"\n[[table]]\nname = \"cloudfront_logs\"\nformat = \"cloudfront\"\ninputs = [\"s3://{bucket}/logs/cloudfront/{{customer}}/\"]\nafter_commit = \"delete\"\n"),
    )
    .unwrap();
    let stdout = common::succeeded(&e.citrine(dir.path(), &["run", "--json"], &[]));
    let s: Value = serde_json::from_str::<Value>(&stdout).unwrap()[0].clone();
    assert_eq!(s["after_commit"]["deleted"], g.files);
    assert!(e
        .client(&["list", &bucket, "logs/"])
        .as_array()
        .unwrap()
        .is_empty());
    let counts: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(e.client(&["counts", &bucket, "lake/data/cloudfront_logs"]))
            .unwrap();
    assert_eq!(counts, g.expected);
}
