//! Iceberg table mode (`table_format = "iceberg"`), read by pyiceberg through the local
//! catalog (the metadata file it names, and the folder's `version-hint.text`) and through the
//! Glue catalog on the local server: one snapshot per committed run, the rows and columns of a
//! Hive lake of the same inputs, every (`source_file`, `row_num`) once; a reader that loads the
//! table while a run is held before its commit sees the previous snapshot only; after a
//! SIGKILL at every stage, the next run leaves snapshots and markers in agreement; a forget's
//! rewrite is one overwrite snapshot; a sharded run is one snapshot, its inputs deleted after
//! it and its failed input quarantined.

mod common;

use std::collections::BTreeMap;

use common::gen::Shape;
use common::table::{Lake, Table, TABLE};
use serde_json::{json, Value};

const ICEBERG: &str = "table_format = \"iceberg\"\n";

fn shape(seed: u64, customers: &'static [&'static str]) -> Shape<'static> {
    Shape {
        seed,
        customers,
        days: 2,
        files_per_day: 2,
        rows_per_file: 20,
        bad_every: 29,
        all_gzip: false,
    }
}

/// The table as pyiceberg reads it.
fn iceberg(t: &Table) -> Value {
    let lake = t.path().join("lake");
    let args = match &t.lake {
        Lake::Local => ["local".to_owned(), lake.to_str().unwrap().to_owned()],
        Lake::S3 { bucket, .. } => ["glue".to_owned(), common::aws::database_of(bucket)],
    };
    common::python_json(
        "tests/support/iceberg_state.py",
        &[&args[0], &args[1], TABLE],
        t.env(),
    )
}

fn counts(v: &Value) -> BTreeMap<String, u64> {
    serde_json::from_value(v["counts"].clone()).unwrap()
}

/// Snapshots and markers agree: each snapshot publishes a committed run, each appended run's
/// marker has its snapshot.
fn assert_agree(t: &Table, ice: &Value, context: &str) {
    let state = t.state();
    let markers: Vec<String> = serde_json::from_value(state["markers"].clone()).unwrap();
    let runs: Vec<String> = ice["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["run_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        runs, markers,
        "{context}: one snapshot per committed run: {ice:#}"
    );
    let total: u64 = t.expected.values().sum();
    assert_eq!(ice["rows"], total, "{context}: {ice:#}");
    assert_eq!(ice["distinct_rows"], total, "{context}: every row once");
    assert_eq!(counts(ice), t.expected, "{context}");
    assert_eq!(
        ice["hint_matches"], true,
        "{context}: version-hint.text is current"
    );
    assert_eq!(state["journals"], json!([]), "{context}");
}

/// Two lakes fed the same inputs, one Hive, one Iceberg (`on_s3`: with the Glue catalog on
/// the local server), compared.
fn equal_to_hive(on_s3: bool) {
    let (mut hive, mut ice) = if on_s3 {
        let Some(e) = common::aws::endpoint() else {
            return;
        };
        (Table::s3(e.clone(), "", ""), Table::s3(e, "", ICEBERG))
    } else {
        (Table::local("", ""), Table::local("", ICEBERG))
    };
    for (seed, customers) in [(3, &["acme", "globex"][..]), (5, &["acme", "initech"][..])] {
        for t in [&mut hive, &mut ice] {
            t.add(&shape(seed, customers));
            t.run();
        }
    }
    let got = iceberg(&ice);
    assert_agree(&ice, &got, "two runs");
    assert_eq!(counts(&got), hive.expected);
    assert_eq!(
        got["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["operation"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["append", "append"]
    );
    // The Hive lake of the same inputs has the same rows and columns.
    let hive_state = hive.assert_exact("the Hive lake");
    assert_eq!(hive_state["counts"], json!(counts(&got)));
    let hive_columns: Vec<String> = columns_of_lake_files(&hive);
    assert_eq!(got["columns"], json!(hive_columns));

    // Forgetting an input (its rows deleted) is one overwrite snapshot.
    for t in [&hive, &ice] {
        let input = first_input(t);
        common::succeeded(&t.cli(
            &[
                "forget",
                "--table",
                TABLE,
                "--input",
                &input,
                "--delete-rows",
            ],
            &[],
        ));
    }
    let got = iceberg(&ice);
    let last = got["snapshots"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["operation"], "overwrite");
    assert_eq!(got["rows"], got["distinct_rows"]);
    assert_eq!(
        json!(counts(&got)),
        hive.state()["counts"],
        "the rows Hive keeps"
    );
}

/// The columns of the Hive lake's files, as DuckDB-independent pyarrow reads them.
fn columns_of_lake_files(t: &Table) -> Vec<String> {
    let mut cmd = std::process::Command::new(common::python().unwrap());
    let lake = match &t.lake {
        Lake::Local => t.path().join("lake").display().to_string(),
        Lake::S3 { bucket, .. } => format!("s3://{bucket}/lake"),
    };
    cmd.args([
        "-c",
        "import sys, pyarrow.dataset as ds, pyarrow.fs as fs, os\nroot = sys.argv[1]\nif root.startswith('s3://'):\n    f = fs.S3FileSystem(endpoint_override=os.environ['AWS_ENDPOINT_URL'], scheme='http', access_key=os.environ['AWS_ACCESS_KEY_ID'], secret_key=os.environ['AWS_SECRET_ACCESS_KEY'], region='us-east-1', force_virtual_addressing=False)\n    root = root[5:]\nelse:\n    f = fs.LocalFileSystem()\nd = ds.dataset(root + '/data/cloudfront_logs', filesystem=f, format='parquet', partitioning=None)\nprint(','.join(d.schema.names))",
        &lake,
    ]);
    for (k, v) in t.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// An input the table consumed (its uri, as reports name it).
fn first_input(t: &Table) -> String {
    let state = t.state();
    let run = state["markers"][0].as_str().unwrap().to_owned();
    let report: Value = match &t.lake {
        Lake::Local => serde_json::from_slice(
            &std::fs::read(t.path().join(format!("lake/complete/{TABLE}/{run}.json"))).unwrap(),
        )
        .unwrap(),
        Lake::S3 { endpoint, bucket } => serde_json::from_str(
            endpoint
                .client(&["get", bucket, &format!("lake/complete/{TABLE}/{run}.json")])
                .as_str()
                .unwrap(),
        )
        .unwrap(),
    };
    report["inputs"][0]["uri"].as_str().unwrap().to_owned()
}

#[test]
fn a_local_iceberg_table_holds_the_hive_lakes_rows_one_snapshot_per_run() {
    if common::python().is_none() {
        return;
    }
    equal_to_hive(false);
}

#[test]
fn an_iceberg_table_in_glue_holds_the_hive_lakes_rows_one_snapshot_per_run() {
    if common::aws::endpoint().is_none() {
        return;
    }
    equal_to_hive(true);
}

#[test]
fn a_reader_sees_the_previous_snapshot_while_a_run_is_held() {
    if common::python().is_none() {
        return;
    }
    let mut t = Table::local("", ICEBERG);
    t.add(&shape(7, &["acme", "globex"]));
    let first = t.run();
    let before = t.expected.clone();
    t.add(&shape(9, &["globex", "initech"]));
    // Held after its report, before its snapshot: its data files are in the folder, and
    // readers of the table do not see them.
    let held = t.held("before_manifest", &[]);
    let got = iceberg(&t);
    assert_eq!(counts(&got), before, "only the committed run");
    assert_eq!(got["current_run"], first.as_str());
    let ended = held.resume();
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    let got = iceberg(&t);
    assert_agree(&t, &got, "after the held run");
}

#[test]
fn after_a_sigkill_at_every_stage_snapshots_and_markers_agree() {
    if common::python().is_none() {
        return;
    }
    for stage in [
        "before_commit",
        "before_report",
        "before_manifest",
        "published",
        "before_checkpoint",
    ] {
        let mut t = Table::local("", ICEBERG);
        t.add(&shape(11, &["acme", "globex"]));
        t.run();
        t.add(&shape(13, &["acme", "umbrella"]));
        let mut held = t.held(stage, &[]);
        held.child.kill().unwrap(); // SIGKILL
        held.wait();
        // Killed after its snapshot (`published`): the snapshot is there, the marker is not,
        // until the next run writes it from the report.
        let out = t.cli(&["run", "--json"], &[]);
        common::succeeded(&out);
        let got = iceberg(&t);
        assert_agree(&t, &got, &format!("after a kill at {stage}"));
        t.assert_exact(&format!("after a kill at {stage}"));
    }
}

/// A sharded run is one snapshot too, committed by `commit`; the inputs it consumed are
/// deleted after it (`after_commit = "delete"`), and an input that fails is quarantined and
/// stays, in this mode as in Hive's.
#[test]
fn a_sharded_run_is_one_snapshot_and_after_commit_and_quarantine_hold() {
    if common::python().is_none() {
        return;
    }
    let mut t = Table::local(
        "max_attempts = 1\n",
        &format!("{ICEBERG}after_commit = \"delete\"\n"),
    );
    t.add(&shape(15, &["acme", "globex", "initech"]));
    let bad = t
        .path()
        .join("logs/cloudfront/acme/E9.2024-01-01-00.bad.gz");
    std::fs::write(&bad, b"\x1f\x8b\x08\x00 not gzip at all").unwrap();
    let plan: Value = serde_json::from_str(&common::succeeded(
        &t.cli(&["plan", "--table", TABLE, "--shards", "2", "--json"], &[]),
    ))
    .unwrap();
    let run = plan["run_id"].as_str().unwrap().to_owned();
    for shard in ["0", "1"] {
        common::succeeded(&t.cli(
            &["run", "--table", TABLE, "--run-id", &run, "--shard", shard],
            &[],
        ));
    }
    // Until the commit, readers of the table see nothing; then one append.
    assert!(
        iceberg_has_no_snapshot(&t),
        "nothing published before the commit"
    );
    common::succeeded(&t.cli(&["commit", "--table", TABLE, "--run-id", &run], &[]));
    let got = iceberg(&t);
    assert_agree(&t, &got, "the sharded run");
    assert_eq!(got["snapshots"][0]["operation"], "append");
    assert_eq!(got["snapshots"].as_array().unwrap().len(), 1);
    t.assert_exact("the sharded run");
    // Only the failed input is left, quarantined: the next run does not try it.
    let left = common::files_below(&t.path().join("logs"));
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with(".bad.gz"), "{left:?}");
    let again: Value =
        serde_json::from_str(&common::succeeded(&t.cli(&["run", "--json"], &[]))).unwrap();
    assert_eq!(again[0]["inputs_quarantined"], 1, "{again}");
    assert_eq!(again[0]["run_id"], Value::Null);
}

/// Whether the table has no Iceberg metadata yet (no run committed).
fn iceberg_has_no_snapshot(t: &Table) -> bool {
    !t.path()
        .join(format!("lake/data/{TABLE}/metadata/version-hint.text"))
        .exists()
}
