//! Fencing (docs/design.md §2): a run paused past its lease (SIGSTOP: a frozen VM, a stopped
//! container), whose table another run has taken over and committed meanwhile, publishes
//! nothing and deletes nothing of the other's when it is continued, although it is alive and
//! its heartbeat resumes: it fails at its next fence with exit 2, and the lake is the other
//! run's, exact. On a local lake and on the S3 + Glue server, with `run.lock_lease_secs = 3`.

mod common;

use std::time::Duration;

use common::gen::Shape;
use common::table::{signal, Table};

const LEASE: &str = "lock_lease_secs = 3";

fn shape() -> Shape<'static> {
    Shape {
        seed: 31,
        customers: &["acme", "globex"],
        days: 2,
        files_per_day: 2,
        rows_per_file: 25,
        bad_every: 17,
        all_gzip: false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    Local,
    S3,
}

fn table(on: On, extra: &str) -> Option<Table> {
    Some(match on {
        On::Local => Table::local(LEASE, extra),
        On::S3 => Table::s3(common::aws::endpoint()?, LEASE, extra),
    })
}

/// A run held at `stage` is stopped past its lease; a second run takes the table over and
/// commits; the first is continued.
fn taken_over(on: On, stage: &str) {
    let Some(mut t) = table(on, "") else { return };
    t.add(&shape());
    let held = t.held(stage, &[]);
    let stale = t.lock().unwrap()["run_id"].as_str().unwrap().to_owned();
    signal(held.pid(), "STOP");
    // Past the lease (3 s) of its last renewal: the lock is stale, though its process lives.
    std::thread::sleep(Duration::from_millis(4500));
    let taker = t.run();
    assert_ne!(taker, stale);
    let committed = t.assert_exact(&format!("the taker's commit while {stage} was stopped"));
    std::fs::write(held.resume_file(), b"").unwrap();
    signal(held.pid(), "CONT");
    let mut held = held;
    let ended = held.wait();
    assert_eq!(ended.code, Some(2), "{stage}: {}", ended.stderr);
    assert!(
        ended.stderr.contains(&format!(
            "run {stale} no longer holds the table's lock (no run holds it)"
        )) || ended.stderr.contains(&format!(
            "run {stale} no longer holds the table's lock (run {taker}"
        )),
        "{stage}: the fence names why: {}",
        ended.stderr
    );
    // It published nothing, and deleted nothing of the taker's: the same exact lake.
    let after = t.assert_exact(&format!("after the run stopped at {stage} was continued"));
    assert_eq!(after, committed, "{stage}");
    assert_eq!(after["markers"], serde_json::json!([taker]));
}

/// A run stopped between its marker and deleting its inputs (`after_commit = "delete"`): the
/// taker finishes the deletions under its own lock; the continued run's fence stops it from
/// deleting, and it ends committed (exit 0) with the fence as a warning.
fn taken_over_after_its_marker(on: On) {
    let extra = "";
    let Some(mut t) = table(on, extra) else {
        return;
    };
    let config = t.path().join("citrine.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "format = \"cloudfront\"\n",
        "format = \"cloudfront\"\nafter_commit = \"delete\"\n",
    );
    std::fs::write(&config, text).unwrap();
    t.add(&shape());
    let stage = "before_after_commit";
    let held = t.held(stage, &[]);
    let stale = t.lock().unwrap()["run_id"].as_str().unwrap().to_owned();
    signal(held.pid(), "STOP");
    std::thread::sleep(Duration::from_millis(4500));
    // The taker finds nothing new (the stopped run is committed) and finishes its deletions.
    let out = t.cli(&["run", "--json"], &[]);
    let summary: serde_json::Value = serde_json::from_str(&common::succeeded(&out)).unwrap();
    assert_eq!(summary[0]["run_id"], serde_json::Value::Null);
    let inputs = 2 * 2 * 2;
    assert_eq!(summary[0]["after_commit"]["deleted"], inputs);
    std::fs::write(held.resume_file(), b"").unwrap();
    signal(held.pid(), "CONT");
    let mut held = held;
    let ended = held.wait();
    assert_eq!(ended.code, Some(0), "committed: {}", ended.stderr);
    let summary: serde_json::Value = serde_json::from_str(&ended.stdout).unwrap();
    assert_eq!(summary[0]["run_id"], stale.as_str());
    assert_eq!(summary[0]["after_commit"]["deleted"], 0);
    assert!(
        summary[0]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no longer holds the table's lock"),
        "{summary:#}"
    );
    let s = t.assert_exact("after the continued run");
    assert_eq!(s["markers"], serde_json::json!([stale]));
}

#[test]
fn local_taken_over_before_commit() {
    taken_over(On::Local, "before_commit");
}

#[test]
fn local_taken_over_before_report() {
    taken_over(On::Local, "before_report");
}

#[test]
fn local_taken_over_before_manifest() {
    taken_over(On::Local, "before_manifest");
}

#[test]
fn local_taken_over_after_its_marker() {
    taken_over_after_its_marker(On::Local);
}

#[test]
fn s3_taken_over_before_commit() {
    taken_over(On::S3, "before_commit");
}

#[test]
fn s3_taken_over_before_report() {
    taken_over(On::S3, "before_report");
}

#[test]
fn s3_taken_over_before_manifest() {
    taken_over(On::S3, "before_manifest");
}

#[test]
fn s3_taken_over_after_its_marker() {
    taken_over_after_its_marker(On::S3);
}
