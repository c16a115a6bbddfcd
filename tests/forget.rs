//! `citrine forget --delete-rows`: a consumed input's rows leave the lake (its partition files
//! rewritten as a run of their own) and Redshift (`redshift load`, executed on PostgreSQL with
//! the translation of `common::warehouse`), every other row stays exactly once, and the next
//! run processes the input again. Loads before and after the forget, late and out of order;
//! a forget killed between its marker and its deletions.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::AsArray;
use common::gen::{cloudfront, write_config, Shape};
use common::warehouse::{load, pg_port, Warehouse, REDSHIFT};
use common::{batches_below, citrine, files_below, succeeded};

const TABLE: &str = "cloudfront_logs";

/// Two customers, two days, two files a day (each day's last file also holds rows of the
/// next day), the Redshift section; committed by one run.
fn committed_lake() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    cloudfront(
        dir.path(),
        &Shape {
            seed: 57,
            customers: &["acme", "globex"],
            days: 2,
            files_per_day: 2,
            rows_per_file: 24,
            bad_every: 0,
            all_gzip: false,
        },
    );
    write_config(dir.path(), "");
    let mut text = std::fs::read_to_string(dir.path().join("citrine.toml")).unwrap();
    text.push_str(REDSHIFT);
    std::fs::write(dir.path().join("citrine.toml"), text).unwrap();
    common::run_ok(dir.path());
    dir
}

/// Rows per source file in the lake, read with the parquet crate.
fn lake_rows(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for batch in batches_below(&dir.join("lake/data").join(TABLE)) {
        let sources = arrow::compute::cast(
            batch.column_by_name("source_file").unwrap(),
            &arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        for s in sources.as_string::<i32>().iter() {
            *out.entry(s.unwrap().to_owned()).or_default() += 1;
        }
    }
    out
}

/// Rows per source file in the warehouse.
fn warehouse_rows(w: &Warehouse) -> BTreeMap<String, u64> {
    w.sql(
        &format!("SELECT source_file, count(*) FROM logs.{TABLE} GROUP BY 1;"),
        false,
    )
    .unwrap()
    .into_iter()
    .map(|r| (r[0].clone(), r[1].parse().unwrap()))
    .collect()
}

/// The input with rows on two days: acme's first day's last file.
fn spanning_input(dir: &Path) -> String {
    let uri = files_below(&dir.join("logs"))
        .into_iter()
        .map(|f| format!("logs/{f}"))
        .find(|f| f.contains("/acme/") && f.contains("2024-01-01-01"))
        .unwrap();
    uri
}

fn markers(dir: &Path) -> Vec<String> {
    let folder = dir.join("lake/complete").join(TABLE);
    let mut out: Vec<String> = files_below(&folder)
        .into_iter()
        .filter(|f| f.ends_with(".manifest"))
        .map(|f| {
            format!(
                "file://{}",
                std::path::absolute(folder.join(f)).unwrap().display()
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn forgetting_written_rows_keeps_the_lake_and_the_warehouse_exactly_once() {
    let Some(port) = pg_port() else { return };
    let dir = committed_lake();
    let d = dir.path();
    let before = lake_rows(d);
    let forgotten = spanning_input(d);
    assert!(before[&forgotten] > 0);
    let w = Warehouse::fresh(port, "forget");
    w.create_table(d, TABLE);
    let (api, _) = w.data_api();
    load(d, &api, &["--table", TABLE]);
    assert_eq!(warehouse_rows(&w), before);

    // Without --delete-rows: refused, nothing changes.
    let out = citrine(d, &["forget", "--table", TABLE, "--input", &forgotten]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rows of it; forgetting it needs --delete-rows (its rows are deleted from the lake, and from Redshift by `redshift load`)"),
        "{stderr}"
    );
    assert_eq!(lake_rows(d), before);

    // With it: the rows go, every other row stays once, the replaced files are gone.
    let files_before = files_below(&d.join("lake/data"));
    let stdout = succeeded(&citrine(
        d,
        &[
            "forget",
            "--table",
            TABLE,
            "--input",
            &forgotten,
            "--delete-rows",
        ],
    ));
    assert!(
        stdout.contains(&format!(
            "{TABLE}: {forgotten}: forgotten (consumed by run "
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{} rows deleted", before[&forgotten])),
        "{stdout}"
    );
    let mut expected = before.clone();
    expected.remove(&forgotten);
    assert_eq!(lake_rows(d), expected);
    let files_after = files_below(&d.join("lake/data"));
    // Files holding its rows (acme's first two days) were replaced; every other file is
    // untouched.
    let in_forgotten_days = |f: &String| {
        f.contains("customer=acme/dt=2024-01-01") || f.contains("customer=acme/dt=2024-01-02")
    };
    for f in files_before.iter().filter(|f| !in_forgotten_days(f)) {
        assert!(files_after.contains(f), "{f} untouched");
    }
    for day in ["dt=2024-01-01", "dt=2024-01-02"] {
        assert!(
            files_before
                .iter()
                .any(|f| f.contains(day) && in_forgotten_days(f) && !files_after.contains(f)),
            "a file of acme's {day} replaced"
        );
    }
    assert!(files_below(&d.join("lake/_citrine/runs")).is_empty());
    // `query` reads the files that are left, and `catalog sync` finds nothing to change.
    let counted = succeeded(&citrine(
        d,
        &[
            "query",
            &format!("SELECT count(*) AS n FROM {TABLE}"),
            "--format",
            "csv",
        ],
    ));
    assert_eq!(counted, format!("n\n{}\n", expected.values().sum::<u64>()));
    let synced = succeeded(&citrine(d, &["catalog", "sync"]));
    assert!(
        synced.contains("6 partitions in the lake, 0 registered now, 0 stale removed"),
        "{synced}"
    );

    // The warehouse follows: the forgotten file's rows deleted, the others once.
    load(d, &api, &["--table", TABLE]);
    assert_eq!(warehouse_rows(&w), expected);

    // The next run processes it again; the warehouse gets it back once, and a repeated load
    // changes nothing.
    let s = common::run_summary(d);
    assert_eq!(s["inputs_consumed"], 1);
    assert_eq!(lake_rows(d), before);
    load(d, &api, &["--table", TABLE]);
    assert_eq!(warehouse_rows(&w), before);
    let again = load(d, &api, &["--table", TABLE]);
    assert!(again.contains("nothing new to load"), "{again}");
    assert_eq!(warehouse_rows(&w), before);
    assert_eq!(
        w.count(&format!("SELECT count(*) FROM logs.{TABLE}")),
        before.values().sum::<u64>()
    );
}

#[test]
fn runs_loaded_after_the_forget_late_or_out_of_order_load_exactly_once() {
    let Some(port) = pg_port() else { return };
    let dir = committed_lake();
    let d = dir.path();
    let before = lake_rows(d);
    let forgotten = spanning_input(d);
    // Forgotten before the first run was ever loaded: its replaced files are gone.
    succeeded(&citrine(
        d,
        &[
            "forget",
            "--table",
            TABLE,
            "--input",
            &forgotten,
            "--delete-rows",
        ],
    ));
    let mut expected = before.clone();
    expected.remove(&forgotten);
    let [first, forget]: [String; 2] = markers(d).try_into().unwrap();

    // In order: the first run's files that are left, then the forget run's.
    let w = Warehouse::fresh(port, "late");
    w.create_table(d, TABLE);
    let (api, _) = w.data_api();
    load(d, &api, &["--table", TABLE]);
    assert_eq!(warehouse_rows(&w), expected);
    assert!(d.join("lake/_citrine/manifests").join(TABLE).is_dir());

    // Out of order: the forget run first, then the first run, late.
    let w = Warehouse::fresh(port, "reversed");
    w.create_table(d, TABLE);
    let (api, _) = w.data_api();
    load(d, &api, &["--manifest", &forget]);
    load(d, &api, &["--manifest", &first]);
    assert_eq!(warehouse_rows(&w), expected);
    load(d, &api, &["--manifest", &first]);
    assert_eq!(warehouse_rows(&w), expected);
}

#[test]
fn a_forget_killed_after_its_marker_is_finished_by_the_next_run() {
    let dir = committed_lake();
    let d = dir.path();
    let before = lake_rows(d);
    let forgotten = spanning_input(d);
    let mut child = common::stalled_with(
        d,
        &[
            "forget",
            "--table",
            TABLE,
            "--input",
            &forgotten,
            "--delete-rows",
        ],
        &[("CITRINE_TEST_STALL", "before_supersede")],
        "before_supersede",
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Committed, but the replaced files are still there: the forgotten rows too.
    assert_eq!(markers(d).len(), 2);
    assert!(lake_rows(d)[&forgotten] > 0);
    // The next run finishes the deletions first, then consumes the input again.
    let s = common::run_summary(d);
    assert_eq!(s["inputs_consumed"], 1);
    assert_eq!(lake_rows(d), before);
    assert!(files_below(&d.join("lake/_citrine/runs")).is_empty());
}

#[test]
fn on_the_s3_server_forgotten_rows_leave_the_lake_and_the_warehouse() {
    let (Some(e), Some(port)) = (common::aws::endpoint(), pg_port()) else {
        return;
    };
    let e = std::sync::Arc::new(e);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bucket = e.fresh_bucket("forget");
    cloudfront(
        d,
        &Shape {
            seed: 59,
            customers: &["acme"],
            days: 2,
            files_per_day: 2,
            rows_per_file: 16,
            bad_every: 0,
            all_gzip: true,
        },
    );
    let logs = d.join("logs").display().to_string();
    e.client(&["upload", &bucket, "logs", &logs]);
    std::fs::write(
        d.join("citrine.toml"),
        format!("[lake]\nroot = \"s3://{bucket}/lake\"\n[[table]]\nname = \"{TABLE}\"\nformat = \"cloudfront\"\ninputs = [\"s3://{bucket}/logs/cloudfront/{{customer}}/\"]\n\n{REDSHIFT}"),
    )
    .unwrap();
    let citrine_s3 = |args: &[&str], extra: &[(&str, &str)]| succeeded(&e.citrine(d, args, extra));
    citrine_s3(&["run"], &[]);
    let lake_rows = || -> BTreeMap<String, u64> {
        serde_json::from_value(e.client(&["source-counts", &bucket, &format!("lake/data/{TABLE}")]))
            .unwrap()
    };
    let before = lake_rows();
    let forgotten = before
        .keys()
        .find(|k| k.contains("2024-01-01-01"))
        .unwrap()
        .clone();

    // COPY reads the lake's objects through the S3 server.
    let fetcher = e.clone();
    let fetch: common::warehouse::Fetch = std::sync::Arc::new(move |url: &str| {
        let (bucket, key) = url.strip_prefix("s3://").unwrap().split_once('/').unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().display().to_string();
        fetcher.client(&["download", bucket, key, &path]);
        std::fs::read(file.path()).unwrap()
    });
    let w = Warehouse::fresh(port, "s3forget");
    let ddl = citrine_s3(&["redshift", "ddl", "--table", TABLE], &[]);
    w.sql(&common::warehouse::translate(&ddl), true).unwrap();
    let (api, _) = w.data_api_reading(fetch);
    let load = || {
        citrine_s3(
            &["redshift", "load", "--table", TABLE],
            &[("AWS_ENDPOINT_URL_REDSHIFT_DATA", api.as_str())],
        )
    };
    load();
    assert_eq!(warehouse_rows(&w), before);

    citrine_s3(
        &[
            "forget",
            "--table",
            TABLE,
            "--input",
            &forgotten,
            "--delete-rows",
        ],
        &[],
    );
    let mut expected = before.clone();
    expected.remove(&forgotten);
    assert_eq!(lake_rows(), expected);
    load();
    assert_eq!(warehouse_rows(&w), expected);

    // Processed again by the next run, and loaded once.
    citrine_s3(&["run"], &[]);
    assert_eq!(lake_rows(), before);
    load();
    assert_eq!(warehouse_rows(&w), before);
}

#[test]
fn forgetting_a_whole_run_empties_the_lake_until_the_next_run() {
    let dir = committed_lake();
    let d = dir.path();
    let before = lake_rows(d);
    let marker = markers(d).remove(0);
    let run = Path::new(&marker)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let out = citrine(
        d,
        &[
            "forget",
            "--table",
            TABLE,
            "--run",
            "20990101T000000000Z-00000000",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("table cloudfront_logs has no committed run 20990101T000000000Z-00000000"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = succeeded(&citrine(
        d,
        &["forget", "--table", TABLE, "--run", &run, "--delete-rows"],
    ));
    assert_eq!(
        stdout.matches(": forgotten (consumed by run ").count(),
        before.len()
    );
    assert!(lake_rows(d).is_empty());
    assert!(files_below(&d.join("lake/data")).is_empty());
    // `status` shows no consumed input; the next run consumes them all again.
    let s = common::run_summary(d);
    assert_eq!(s["inputs_consumed"], before.len());
    assert_eq!(lake_rows(d), before);
}
