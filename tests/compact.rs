//! `citrine compact`: after many Lambda-sized runs of one partition, one compaction leaves at
//! most two files in each partition, the same rows; Redshift (the load statements executed on
//! PostgreSQL) holds every row once after loading every marker, before and after the
//! compaction, in order and out of order. An Iceberg table's compaction is one replace
//! snapshot, and `--expire-after` deletes the replaced files once their snapshots expire.

mod common;

use std::collections::BTreeMap;

use common::gen::Shape;
use common::table::{Table, TABLE};
use common::warehouse::{pg_port, Warehouse, REDSHIFT};
use serde_json::Value;

/// One small input of the partition acme (a Lambda invocation's worth); the generator
/// sets the lowest bit of its seed, so distinct inputs need seeds two apart.
fn small(seed: u64) -> Shape<'static> {
    Shape {
        seed,
        customers: &["acme"],
        days: 1,
        files_per_day: 1,
        rows_per_file: 12,
        bad_every: 0,
        all_gzip: true,
    }
}

/// Data files per partition folder.
fn files_per_partition(t: &Table) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for f in common::files_below(&t.path().join("lake/data").join(TABLE)) {
        if f.ends_with(".parquet") {
            let folder = f.rsplit_once('/').unwrap().0.to_owned();
            *out.entry(folder).or_default() += 1;
        }
    }
    out
}

fn compact(t: &Table, extra: &[&str]) -> Value {
    let mut args = vec!["compact", "--table", TABLE, "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&common::succeeded(&t.cli(&args, &[]))).unwrap()
}

/// `redshift load --manifest` of each of `runs` into the warehouse behind `api`.
fn load(t: &Table, api: &str, runs: &[String]) {
    for run in runs {
        let marker = t
            .path()
            .join(format!("lake/complete/{TABLE}/{run}.manifest"));
        common::warehouse::load(t.path(), api, &["--manifest", marker.to_str().unwrap()]);
    }
}

fn warehouse_rows(w: &Warehouse) -> (u64, u64) {
    let rows = w
        .sql(
            &format!("SELECT count(*), count(DISTINCT (source_file, row_num)) FROM logs.{TABLE};"),
            false,
        )
        .unwrap();
    (rows[0][0].parse().unwrap(), rows[0][1].parse().unwrap())
}

#[test]
fn fifty_small_runs_compact_to_two_files_and_redshift_holds_each_row_once() {
    let Some(port) = pg_port() else { return };
    if common::python().is_none() {
        return;
    }
    let mut t = Table::local("", REDSHIFT);
    let mut runs = Vec::new();
    for seed in 0..50 {
        t.add(&small(100 + 2 * seed));
        runs.push(t.run());
    }
    let before = files_per_partition(&t);
    assert!(before.values().all(|&n| n >= 25), "{before:?}");
    let total: u64 = t.expected.values().sum();

    // Two warehouses: one loads half the markers before the compaction, the rest and the
    // compaction's after, shuffled; the other loads everything after, newest first.
    let early = Warehouse::fresh(port, "compact_a");
    let late = Warehouse::fresh(port, "compact_b");
    for w in [&early, &late] {
        w.create_table(t.path(), TABLE);
    }
    let (early_api, _) = early.data_api();
    let (late_api, _) = late.data_api();
    load(&t, &early_api, &runs[..25]);
    assert_eq!(
        warehouse_rows(&early).0,
        t.expected.values().sum::<u64>() * 25 / 50
    );

    let summary = compact(&t, &[]);
    let compaction = summary["run_id"].as_str().unwrap().to_owned();
    assert_eq!(summary["files_replaced"], before.values().sum::<usize>());
    assert_eq!(summary["rows"], total);
    let after = files_per_partition(&t);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert!(after.values().all(|&n| n <= 2), "{after:?}");
    t.assert_exact("after the compaction");
    // Compacting again finds nothing to merge.
    assert_eq!(compact(&t, &[])["run_id"], Value::Null);

    let mut rest: Vec<String> = runs[25..].to_vec();
    rest.push(compaction.clone());
    rest.reverse();
    rest.swap(3, 17);
    load(&t, &early_api, &rest);
    assert_eq!(
        warehouse_rows(&early),
        (total, total),
        "loaded before and after"
    );
    let mut all: Vec<String> = runs.clone();
    all.push(compaction);
    all.reverse();
    load(&t, &late_api, &all);
    assert_eq!(
        warehouse_rows(&late),
        (total, total),
        "loaded after, newest first"
    );
    // Loading everything again adds nothing.
    load(&t, &late_api, &all);
    assert_eq!(warehouse_rows(&late), (total, total));
}

#[test]
fn an_iceberg_compaction_is_one_replace_snapshot_and_expiry_deletes_what_it_replaced() {
    if common::python().is_none() {
        return;
    }
    let mut t = Table::local("", "table_format = \"iceberg\"\n");
    for seed in 0..12 {
        t.add(&small(300 + 2 * seed));
        t.run();
    }
    let before = files_per_partition(&t);
    let summary = compact(&t, &[]);
    assert!(summary["run_id"].is_string(), "{summary}");
    // The replaced files stay (older snapshots name them) until their snapshots expire.
    assert_eq!(files_per_partition(&t), {
        let mut m = before.clone();
        for (folder, n) in m.iter_mut() {
            *n += usize::from(before[folder] >= 2);
        }
        m
    });
    let state = t.assert_exact("after the Iceberg compaction");
    let snapshots = iceberg_snapshots(&t);
    assert_eq!(snapshots.last().unwrap(), "replace");
    assert_eq!(snapshots.len(), 13);
    assert_eq!(state["markers"].as_array().unwrap().len(), 13);

    // Expire everything older than now: the current snapshot stays, the replaced files go.
    let expired = compact(&t, &["--expire-after", "0s"]);
    assert_eq!(expired["expired"]["snapshots"], 12, "{expired}");
    assert_eq!(
        expired["expired"]["data_files"],
        before.values().sum::<usize>(),
        "{expired}"
    );
    let after = files_per_partition(&t);
    assert!(after.values().all(|&n| n <= 2), "{after:?}");
    assert_eq!(iceberg_snapshots(&t), ["replace"]);
    t.assert_exact("after the expiry");
}

/// The operations of the Iceberg table's snapshots, oldest first, as pyiceberg reads them.
fn iceberg_snapshots(t: &Table) -> Vec<String> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/iceberg_state.py");
    let out = std::process::Command::new(common::python().unwrap())
        .arg(script)
        .args(["local", t.path().join("lake").to_str().unwrap(), TABLE])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let total: u64 = t.expected.values().sum();
    assert_eq!(v["rows"], total);
    assert_eq!(v["distinct_rows"], total);
    v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["operation"].as_str().unwrap().to_owned())
        .collect()
}
