//! Sharded runs (`citrine plan` → `citrine run --shard I` × N → `citrine commit`), as separate
//! processes in parallel, against a one-process run of the same inputs: the same lake. A shard
//! SIGKILLed and retried, a commit with a shard missing, two plans at once, and an abort.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::gen::{cloudfront, write_config, Generated, Shape};
use common::{citrine, files_below, run_ok, rust_counts};
use serde_json::Value;

const TABLE: &str = "cloudfront_logs";

fn generate(dir: &Path) -> Generated {
    let g = cloudfront(
        dir,
        &Shape {
            seed: 17,
            customers: &["acme", "globex", "initech"],
            days: 3,
            files_per_day: 3,
            rows_per_file: 40,
            bad_every: 37,
            all_gzip: false,
        },
    );
    write_config(dir, "");
    g
}

fn ok(out: &Output, what: &str) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// `citrine plan` with `shards`; the run id.
fn plan(dir: &Path, shards: usize) -> String {
    let out = citrine(
        dir,
        &[
            "plan",
            "--table",
            TABLE,
            "--shards",
            &shards.to_string(),
            "--json",
        ],
    );
    let plan = ok(&out, "plan");
    assert_eq!(plan["shards"], shards);
    plan["run_id"].as_str().unwrap().to_owned()
}

/// Run `shards` as separate processes at once (the array job's children), by
/// AWS_BATCH_JOB_ARRAY_INDEX as Batch sets it; each must succeed.
fn run_shards(dir: &Path, run: &str, shards: &[usize]) -> Vec<Value> {
    let children: Vec<_> = shards
        .iter()
        .map(|s| {
            Command::new(env!("CARGO_BIN_EXE_citrine"))
                .current_dir(dir)
                .args(["run", "--table", TABLE, "--run-id", run, "--json"])
                .env("AWS_BATCH_JOB_ARRAY_INDEX", s.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .zip(shards)
        .map(|(c, s)| ok(&c.wait_with_output().unwrap(), &format!("shard {s}")))
        .collect()
}

/// `citrine commit` of the planned run holding the table's lock (`--planned`).
fn commit(dir: &Path) -> Value {
    ok(
        &citrine(dir, &["commit", "--table", TABLE, "--planned", "--json"]),
        "commit",
    )
}

/// Everything two lakes fed the same inputs must agree on.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    /// Rows per `customer|dt`.
    counts: BTreeMap<String, u64>,
    /// Every row's `(source_file, row_num)`, each once.
    rows: BTreeSet<(String, i64)>,
    /// Catalog partitions and columns.
    partitions: BTreeSet<String>,
    columns: Value,
    /// The ledger: uri → (hash, rows read, written, rejected).
    ledger: BTreeMap<String, (String, u64, u64, u64)>,
    /// Rejected rows published.
    rejects: usize,
}

fn fingerprint(dir: &Path) -> Fingerprint {
    let lake_dir = dir.join("lake");
    let catalog: Value = serde_json::from_slice(
        &std::fs::read(lake_dir.join(format!("_citrine/catalog/{TABLE}.json"))).unwrap(),
    )
    .unwrap();
    let lake = citrine::lake::Lake::local(&lake_dir).unwrap();
    let ledger = citrine::ledger::Ledger::load(&lake, TABLE)
        .unwrap()
        .entries()
        .map(|e| {
            let r = &e.record;
            (
                r.uri.clone(),
                (r.hash.clone(), r.rows_read, r.rows_written, r.rows_rejected),
            )
        })
        .collect();
    let rejects = files_below(&lake_dir.join("_citrine/rejects"))
        .iter()
        .map(|f| {
            std::fs::read_to_string(lake_dir.join("_citrine/rejects").join(f))
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    // No run left a journal or a lock behind.
    assert!(files_below(&lake_dir.join("_citrine/runs")).is_empty());
    assert!(!lake_dir
        .join(format!("_citrine/locks/{TABLE}.lock"))
        .exists());
    Fingerprint {
        counts: rust_counts(dir),
        rows: row_ids(&lake_dir.join("data").join(TABLE)),
        partitions: catalog["partitions"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect(),
        columns: catalog["columns"].clone(),
        ledger,
        rejects,
    }
}

/// `(source_file, row_num)` of every row below `data`, asserting each appears once.
fn row_ids(data: &Path) -> BTreeSet<(String, i64)> {
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Int64Type};
    let mut out = BTreeSet::new();
    for batch in common::batches_below(data) {
        let source = arrow::compute::cast(
            batch.column_by_name("source_file").unwrap(),
            &DataType::Utf8,
        )
        .unwrap();
        let row = arrow::compute::cast(batch.column_by_name("row_num").unwrap(), &DataType::Int64)
            .unwrap();
        for (s, r) in source
            .as_string::<i32>()
            .iter()
            .zip(row.as_primitive::<Int64Type>().iter())
        {
            let id = (s.unwrap().to_owned(), r.unwrap());
            assert!(out.insert(id.clone()), "row {id:?} twice");
        }
    }
    out
}

/// The committed runs' markers; asserts the one of `run` lists exactly the table's files.
fn markers_listing_every_file(dir: &Path, run: &str) -> usize {
    let lake = dir.join("lake");
    let complete = files_below(&lake.join("complete").join(TABLE));
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(lake.join(format!("complete/{TABLE}/{run}.manifest"))).unwrap(),
    )
    .unwrap();
    let listed: BTreeSet<String> = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap().to_owned())
        .collect();
    let on_disk: BTreeSet<String> = files_below(&lake.join("data").join(TABLE))
        .into_iter()
        .map(|f| {
            lake.join("data")
                .join(TABLE)
                .join(f)
                .canonicalize()
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    let listed: BTreeSet<String> = listed
        .iter()
        .map(|u| {
            Path::new(u.trim_start_matches("file://"))
                .canonicalize()
                .unwrap_or_else(|e| panic!("{u}: {e}"))
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(listed, on_disk, "the marker lists exactly the data files");
    complete.iter().filter(|f| f.ends_with(".manifest")).count()
}

fn reference() -> (tempfile::TempDir, Fingerprint, Generated) {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path());
    run_ok(dir.path());
    let want = fingerprint(dir.path());
    assert_eq!(want.counts, g.expected);
    (dir, want, g)
}

#[test]
fn four_shard_processes_give_the_lake_of_one_process() {
    let (_reference, want, g) = reference();
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path());
    let run = plan(dir.path(), 4);
    let shards = run_shards(dir.path(), &run, &[0, 1, 2, 3]);
    let inputs: u64 = shards.iter().map(|s| s["inputs"].as_u64().unwrap()).sum();
    assert_eq!(inputs, g.files as u64, "every input in exactly one shard");
    assert!(
        shards.iter().all(|s| s["inputs"].as_u64().unwrap() > 0),
        "{shards:?}"
    );
    // Nothing is published before the commit.
    assert!(!dir.path().join("lake/complete").exists());
    let summary = commit(dir.path());
    assert_eq!(summary["run_id"], run.as_str());
    assert_eq!(summary["inputs_consumed"], g.files);
    assert_eq!(
        summary["rows_read"].as_u64().unwrap(),
        summary["rows_written"].as_u64().unwrap() + summary["rows_rejected"].as_u64().unwrap()
    );
    assert_eq!(markers_listing_every_file(dir.path(), &run), 1);
    assert_eq!(fingerprint(dir.path()), want);

    // Committing again does nothing (a retried commit job), named or not; a plain run then
    // finds nothing new.
    let again = ok(
        &citrine(
            dir.path(),
            &["commit", "--table", TABLE, "--run-id", &run, "--json"],
        ),
        "commit again",
    );
    assert_eq!(again["run_id"], run.as_str());
    assert_eq!(again["warnings"][0], "committed already: nothing to do");
    let again = commit(dir.path());
    assert_eq!(again["run_id"], Value::Null);
    assert_eq!(
        again["warnings"][0],
        "no run holds the table's lock: nothing to commit"
    );
    let out = citrine(dir.path(), &["run", "--json"]);
    assert_eq!(ok(&out, "run")[0]["run_id"], Value::Null);
    assert_eq!(fingerprint(dir.path()), want);
}

#[test]
fn a_killed_shard_retried_gives_the_same_lake() {
    let (_reference, want, _) = reference();
    for stage in ["input_opened", "shard_before_report"] {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path());
        let run = plan(dir.path(), 4);
        let mut child = common::stalled_with(
            dir.path(),
            &["run", "--table", TABLE, "--run-id", &run, "--shard", "1"],
            &[("CITRINE_TEST_STALL", stage)],
            stage,
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let left = files_below(&dir.path().join("lake/data"));
        if stage == "shard_before_report" {
            assert!(!left.is_empty(), "the killed shard had written its files");
        }
        // A commit now is refused: the killed shard has not reported.
        let out = citrine(dir.path(), &["commit", "--table", TABLE, "--run-id", &run]);
        assert_eq!(out.status.code(), Some(2));
        // The retry (Batch's retry strategy) deletes the earlier attempt's files first.
        let shards = run_shards(dir.path(), &run, &[0, 1, 2, 3]);
        if stage == "shard_before_report" {
            assert_eq!(shards[1]["files_discarded"], left.len(), "{stage}");
        }
        commit(dir.path());
        assert_eq!(markers_listing_every_file(dir.path(), &run), 1);
        assert_eq!(fingerprint(dir.path()), want, "after a kill at {stage}");
        // A shard run again after the commit has nothing to act on.
        let out = citrine(
            dir.path(),
            &["run", "--table", TABLE, "--run-id", &run, "--shard", "1"],
        );
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(fingerprint(dir.path()), want);
    }
}

#[test]
fn a_missing_shard_blocks_the_commit_a_second_plan_is_refused_and_an_abort_leaves_nothing() {
    let (_reference, want, _) = reference();
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path());
    let run = plan(dir.path(), 3);
    // The table is the run's: a second plan and a plain run are refused.
    for args in [
        &["plan", "--table", TABLE, "--shards", "2"][..],
        &["run"][..],
    ] {
        let out = citrine(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "table {TABLE} is locked by planned run {run} (citrine plan)"
            )),
            "{args:?}: {stderr}"
        );
    }
    run_shards(dir.path(), &run, &[0, 2]);
    let out = citrine(dir.path(), &["commit", "--table", TABLE, "--planned"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("citrine: table {TABLE}, run {run}: shards 1 of 3 have not reported; nothing was committed (run them, or abort the run)")
    );
    let lake = dir.path().join("lake");
    assert!(!lake.join("complete").exists(), "nothing published");
    assert!(
        !lake.join("_citrine/catalog").exists(),
        "nothing registered"
    );

    // Commands that change a run name it: without --run-id or --planned, a usage error.
    for args in [
        &["abort", "--table", TABLE][..],
        &["commit", "--table", TABLE][..],
        &["run", "--table", TABLE, "--shard", "0"][..],
    ] {
        let out = citrine(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = citrine(dir.path(), &["abort", "--table", TABLE, "--planned"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = String::from_utf8_lossy(&out.stdout);
    assert!(
        written.starts_with(&format!("{TABLE}: run {run} aborted: ")),
        "{written}"
    );
    // Nothing of the run is left: no data, journal, lock, report or rejects (a local lake
    // keeps the lock's compare-and-swap guard file, empty).
    let left: Vec<String> = files_below(&lake)
        .into_iter()
        .filter(|f| !f.ends_with(".lock.cas"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The aborted run cannot be committed or resumed.
    let out = citrine(dir.path(), &["commit", "--table", TABLE, "--run-id", &run]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the run has no plan"));
    // And the inputs are still new: a plain run loads them once.
    run_ok(dir.path());
    assert_eq!(fingerprint(dir.path()), want);
    // A scheduled plan with nothing new plans no run, and its shards and commit do nothing.
    let out = citrine(dir.path(), &["plan", "--table", TABLE, "--shards", "3"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing new"));
    let out = citrine(
        dir.path(),
        &["run", "--table", TABLE, "--planned", "--shard", "2"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{TABLE}: no run is planned: nothing to do")
    );
    assert_eq!(commit(dir.path())["run_id"], Value::Null);
    assert_eq!(fingerprint(dir.path()), want);
    // A committed run cannot be aborted.
    let committed = files_below(&lake.join("complete").join(TABLE))
        .into_iter()
        .find_map(|f| f.strip_suffix(".manifest").map(str::to_owned))
        .unwrap();
    let out = citrine(
        dir.path(),
        &["abort", "--table", TABLE, "--run-id", &committed],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the run is committed"));
}

#[test]
fn on_the_s3_server_four_shards_give_the_lake_of_one_process() {
    let Some(e) = common::aws::endpoint() else {
        return;
    };
    let shape = Shape {
        seed: 23,
        customers: &["acme", "globex"],
        days: 2,
        files_per_day: 3,
        rows_per_file: 30,
        bad_every: 29,
        all_gzip: true,
    };
    let mut lakes = Vec::new();
    for sharded in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let bucket = e.fresh_bucket("shard");
        let g = cloudfront(dir.path(), &shape);
        let logs = dir.path().join("logs").display().to_string();
        e.client(&["upload", &bucket, "logs", &logs]);
        std::fs::write(
            dir.path().join("citrine.toml"),
            format!("[lake]\nroot = \"s3://{bucket}/lake\"\n[run]\nthreads = 2\nbatch_size = 512\n\n[[table]]\nname = \"{TABLE}\"\nformat = \"cloudfront\"\ninputs = [\"s3://{bucket}/logs/cloudfront/{{customer}}/\"]\n"),
        )
        .unwrap();
        let cli = |args: &[&str]| {
            let out = e.citrine(dir.path(), args, &[]);
            ok(&out, &format!("{args:?}"))
        };
        let run = if sharded {
            let run = cli(&["plan", "--table", TABLE, "--shards", "4", "--json"])["run_id"]
                .as_str()
                .unwrap()
                .to_owned();
            let children: Vec<_> = (0..4)
                .map(|s| {
                    let mut cmd = Command::new(env!("CARGO_BIN_EXE_citrine"));
                    cmd.current_dir(dir.path())
                        .args(["run", "--table", TABLE, "--planned", "--json"])
                        .env("AWS_BATCH_JOB_ARRAY_INDEX", s.to_string())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped());
                    for (k, v) in e.env() {
                        cmd.env(k, v);
                    }
                    cmd.spawn().unwrap()
                })
                .collect();
            for c in children {
                ok(&c.wait_with_output().unwrap(), "shard");
            }
            let summary = cli(&["commit", "--table", TABLE, "--run-id", &run, "--json"]);
            assert_eq!(summary["run_id"], run.as_str());
            run
        } else {
            cli(&["run", "--json"])[0]["run_id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let counts: BTreeMap<String, u64> =
            serde_json::from_value(e.client(&["counts", &bucket, &format!("lake/data/{TABLE}")]))
                .unwrap();
        assert_eq!(counts, g.expected);
        // One marker, listing exactly the data files; no journal or lock left.
        let keys: Vec<String> = e
            .client(&["list", &bucket, "lake/"])
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            !keys
                .iter()
                .any(|k| k.starts_with("lake/_citrine/runs/") || k.ends_with(".lock")),
            "{keys:?}"
        );
        let manifests: Vec<&String> = keys.iter().filter(|k| k.ends_with(".manifest")).collect();
        assert_eq!(
            manifests,
            [&format!("lake/complete/{TABLE}/{run}.manifest")]
        );
        let manifest: Value =
            serde_json::from_str(e.client(&["get", &bucket, manifests[0]]).as_str().unwrap())
                .unwrap();
        let listed: BTreeSet<String> = manifest["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["url"].as_str().unwrap().to_owned())
            .collect();
        let data: BTreeSet<String> = keys
            .iter()
            .filter(|k| k.starts_with(&format!("lake/data/{TABLE}/")))
            .map(|k| format!("s3://{bucket}/{k}"))
            .collect();
        assert_eq!(listed, data);
        let report: Value = serde_json::from_str(
            e.client(&["get", &bucket, &format!("lake/complete/{TABLE}/{run}.json")])
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let ledger: BTreeSet<(String, String)> = report["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["uri"].as_str().unwrap().replace(&bucket, "B"),
                    i["hash"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        lakes.push((counts, ledger, report["rows_rejected"].clone()));
    }
    assert_eq!(lakes[0], lakes[1]);
}

#[test]
fn a_named_plan_writes_its_handle_and_a_retried_plan_step_gets_the_same_run() {
    let (_reference, want, g) = reference();
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path());
    let handle = dir
        .path()
        .join(format!("lake/_citrine/plans/{TABLE}/exec-1.json"));
    let plan_named = |name: &str| {
        ok(
            &citrine(
                dir.path(),
                &[
                    "plan",
                    "--table",
                    TABLE,
                    "--target-shard-gb",
                    "0.000001",
                    "--max-shards",
                    "3",
                    "--name",
                    name,
                    "--json",
                ],
            ),
            "plan --name",
        )
    };
    let first = plan_named("exec-1");
    let run = first["run_id"].as_str().unwrap().to_owned();
    // Capped at --max-shards: the array size a workflow reads, as a number.
    assert_eq!(first["shards"], 3);
    assert_eq!(first["inputs"], g.files);
    assert_eq!(first["load"], false);
    assert!(first["marker"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/lake/complete/{TABLE}/{run}.manifest")));
    let written: Value = serde_json::from_slice(&std::fs::read(&handle).unwrap()).unwrap();
    assert_eq!(written, first);
    // A retried plan step gets the same plan, from its handle or, when the first attempt
    // handed the lock over and died before writing the handle, from the run's own plan.
    assert_eq!(plan_named("exec-1"), first);
    std::fs::remove_file(&handle).unwrap();
    assert_eq!(plan_named("exec-1")["run_id"], run.as_str());
    // Another name is another plan: refused while the run holds the table.
    let out = citrine(
        dir.path(),
        &[
            "plan", "--table", TABLE, "--shards", "2", "--name", "exec-2",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let bad = citrine(
        dir.path(),
        &[
            "plan", "--table", TABLE, "--shards", "2", "--name", "no/slash",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    run_shards(dir.path(), &run, &[0, 1, 2]);
    let summary = ok(
        &citrine(
            dir.path(),
            &["commit", "--table", TABLE, "--run-id", &run, "--json"],
        ),
        "commit",
    );
    assert_eq!(summary["run_id"], run.as_str());
    assert!(!handle.exists(), "the commit deletes its plan's handle");
    assert_eq!(fingerprint(dir.path()), want);
    // With nothing new the handle says so: no run, no shard.
    let nothing = plan_named("exec-3");
    assert_eq!(nothing["run_id"], Value::Null);
    assert_eq!(nothing["shards"], 0);
    assert!(dir
        .path()
        .join(format!("lake/_citrine/plans/{TABLE}/exec-3.json"))
        .exists());
}
