//! Crashes and contention: a run killed with SIGKILL at its worst moments, then run again,
//! leaves the same lake as an uninterrupted run; two runs on one table never both proceed.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Child;

use common::gen::{cloudfront, write_config, Generated, Shape};
use common::{citrine, files_below, run_ok, rust_counts};
use serde_json::Value;

fn generate(dir: &Path) -> Generated {
    let g = cloudfront(
        dir,
        &Shape {
            seed: 9,
            customers: &["acme", "globex"],
            days: 2,
            files_per_day: 3,
            rows_per_file: 30,
            bad_every: 41,
            all_gzip: false,
        },
    );
    write_config(dir, "");
    g
}

/// Start a run that stops at `stage`, and return once it is there.
fn stalled(dir: &Path, stage: &str) -> Child {
    common::stalled(dir, &[("CITRINE_TEST_STALL", stage)], stage)
}

/// What must be equal between two lakes fed the same inputs: rows per partition, catalog
/// partitions, the number of markers, and the ledger (uri and content hash of every input).
fn fingerprint(dir: &Path) -> (Value, BTreeSet<String>, usize, BTreeSet<(String, String)>) {
    let lake = dir.join("lake");
    let catalog: Value = serde_json::from_slice(
        &std::fs::read(lake.join("_citrine/catalog/cloudfront_logs.json")).unwrap(),
    )
    .unwrap();
    let partitions = catalog["partitions"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let complete = lake.join("complete/cloudfront_logs");
    let mut markers = 0;
    let mut ledger = BTreeSet::new();
    let mut committed = BTreeSet::new();
    let all = files_below(&complete);
    for f in &all {
        if let Some(run) = f.strip_suffix(".json") {
            assert!(
                all.contains(&format!("{run}.manifest")),
                "orphan report {f}"
            );
        }
        if let Some(run) = f.strip_suffix(".manifest") {
            markers += 1;
            committed.insert(run.to_owned());
            let report: Value = serde_json::from_slice(
                &std::fs::read(complete.join(format!("{run}.json"))).unwrap(),
            )
            .unwrap();
            for i in report["inputs"].as_array().unwrap() {
                ledger.insert((
                    i["uri"].as_str().unwrap().to_owned(),
                    i["hash"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    // Every data file belongs to a committed run: no orphan survived.
    for f in files_below(&lake.join("data")) {
        assert!(
            committed.iter().any(|r| f.contains(r.as_str())),
            "orphan data file {f}"
        );
    }
    let counts = serde_json::to_value(rust_counts(dir)).unwrap();
    (counts, partitions, markers, ledger)
}

#[test]
fn killed_runs_leave_no_trace_and_the_rerun_equals_an_uninterrupted_run() {
    let reference = tempfile::tempdir().unwrap();
    let g = generate(reference.path());
    run_ok(reference.path());
    let want = fingerprint(reference.path());
    assert_eq!(want.0, serde_json::to_value(&g.expected).unwrap());

    for stage in ["before_commit", "before_manifest"] {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path());
        let mut child = stalled(dir.path(), stage);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lake = dir.path().join("lake");
        let data = files_below(&lake.join("data"));
        assert!(!data.is_empty(), "{stage}: the killed run had written data");
        assert!(
            !files_below(&lake.join("complete"))
                .iter()
                .any(|f| f.ends_with(".manifest")),
            "{stage}: no marker"
        );
        run_ok(dir.path());
        assert_eq!(fingerprint(dir.path()), want, "after a kill at {stage}");
        // The killed run's files are gone, not merely unreferenced.
        let after = files_below(&lake.join("data"));
        assert!(data.iter().all(|f| !after.contains(f)), "{stage}");
    }
}

#[test]
fn a_second_run_is_refused_while_the_first_holds_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path());
    let mut first = stalled(dir.path(), "after_lock");
    let second = citrine(dir.path(), &["run"]);
    assert_eq!(second.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("table cloudfront_logs is locked by run"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("lake/complete").exists(),
        "the refused run wrote nothing"
    );
    // The holder dies; its lock is stale at once (its process is gone) and the next run
    // processes every input exactly once.
    first.kill().unwrap();
    first.wait().unwrap();
    run_ok(dir.path());
    assert_eq!(rust_counts(dir.path()), g.expected);
    let (_, _, markers, ledger) = fingerprint(dir.path());
    assert_eq!(markers, 1);
    assert_eq!(ledger.len(), g.files);
}

#[test]
fn a_run_killed_between_its_marker_and_its_checkpoint_is_committed_once() {
    let reference = tempfile::tempdir().unwrap();
    generate(reference.path());
    run_ok(reference.path());
    let want = fingerprint(reference.path());

    let dir = tempfile::tempdir().unwrap();
    generate(dir.path());
    let mut child = stalled(dir.path(), "before_checkpoint");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let lake = dir.path().join("lake");
    // The marker is written: the run is committed; its journal is still there, no checkpoint.
    assert_eq!(fingerprint(dir.path()), want);
    assert!(!files_below(&lake.join("_citrine/runs")).is_empty());
    assert!(files_below(&lake.join("_citrine/ledger")).is_empty());
    // The next run has nothing to do, and clears the journal; the same lake.
    let out = citrine(dir.path(), &["run", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s[0]["run_id"], Value::Null);
    assert_eq!(s[0]["ledger"]["checkpoint"], Value::Null);
    assert!(files_below(&lake.join("_citrine/runs")).is_empty());
    assert_eq!(fingerprint(dir.path()), want);
}
