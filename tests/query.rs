//! `citrine query` (feature `query`): DataFusion over the committed lake, in every output
//! format, on the shipped example logs.
#![cfg(feature = "query")]

mod common;

use std::path::Path;

use common::{citrine, run_ok};

/// A copy of the example config and logs in a fresh folder, run once.
fn example_lake() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("citrine.toml"), dir.path().join("citrine.toml")).unwrap();
    for rel in common::files_below(&root.join("examples/logs")) {
        let dst = dir.path().join("examples/logs").join(&rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(root.join("examples/logs").join(&rel), dst).unwrap();
    }
    run_ok(dir.path());
    dir
}

fn query(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["query"];
    all.extend_from_slice(args);
    let out = citrine(dir, &all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn queries_see_partition_columns_in_every_format() {
    let dir = example_lake();
    let sql = "SELECT customer, dt, count(*) AS n, min(c_ip) AS network FROM cloudfront_logs GROUP BY customer, dt ORDER BY customer, dt";
    insta::assert_snapshot!("cloudfront_by_partition_table", query(dir.path(), &[sql]));
    insta::assert_snapshot!(
        "cloudfront_by_partition_csv",
        query(dir.path(), &[sql, "--format", "csv"])
    );
    insta::assert_snapshot!(
        "cloudfront_by_partition_json",
        query(dir.path(), &[sql, "--format", "json"])
    );
    let audit = "SELECT customer, count(*) AS n FROM wau_audit_logs WHERE dt = DATE '2024-03-01' GROUP BY customer";
    insta::assert_snapshot!("audit_filtered_by_dt", query(dir.path(), &[audit]));
}

#[test]
fn uncommitted_files_are_invisible_and_errors_are_clear() {
    let dir = example_lake();
    // A stray file of a run without a marker is not part of the table.
    let data = dir
        .path()
        .join("lake/data/cloudfront_logs/customer=acme/dt=2019-12-04");
    let committed = std::fs::read_dir(&data)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(
        &committed,
        data.join("part-19700101T000000000Z-deadbeef-00000.parquet"),
    )
    .unwrap();
    let n = query(
        dir.path(),
        &[
            "SELECT count(*) AS n FROM cloudfront_logs",
            "--format",
            "csv",
        ],
    );
    assert_eq!(n, "n\n19\n");
    let out = citrine(dir.path(), &["query", "SELECT * FROM nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{out:?}"
    );
}

#[test]
fn queries_are_read_only_and_errors_read_as_text() {
    let dir = example_lake();
    let target = dir.path().join("copied.csv");
    let copy = format!("COPY (SELECT 1) TO '{}'", target.display());
    let mut text = String::new();
    for sql in [
        "SELECT * FROM nope",
        "SELEC 1",
        copy.as_str(),
        "INSERT INTO cloudfront_logs SELECT * FROM cloudfront_logs",
        "DROP TABLE cloudfront_logs",
        "CREATE TABLE t AS SELECT 1",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let out = citrine(dir.path(), &["query", sql]);
        assert_eq!(out.status.code(), Some(2), "{sql}");
        let stderr = String::from_utf8_lossy(&out.stderr).replace(&copy, "COPY …");
        text.push_str(&format!("{}\n{stderr}\n", sql.replace(&copy, "COPY …")));
    }
    assert!(!target.exists(), "COPY … TO wrote a file");
    insta::assert_snapshot!("query_errors", text);
    // The tables are still all there.
    assert_eq!(
        query(
            dir.path(),
            &[
                "SELECT count(*) AS n FROM cloudfront_logs",
                "--format",
                "csv"
            ]
        ),
        "n\n19\n"
    );
}
