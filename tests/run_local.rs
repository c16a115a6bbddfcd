//! `citrine run` end to end on the embedded default (a local folder and the local catalog):
//! generated data in, read back by DuckDB and pyarrow, run protocol checked.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::gen::{cloudfront, write_config, Generated, Shape};
use common::{
    assert_no_address, citrine, files_below, lake_counts, python, run_summary, rust_counts,
};
use serde_json::Value;

const CUSTOMERS: &[&str] = &["acme", "globex", "umbrella"];

fn generate(dir: &Path) -> Generated {
    let g = cloudfront(
        dir,
        &Shape {
            seed: 42,
            customers: CUSTOMERS,
            days: 3,
            files_per_day: 3,
            rows_per_file: 40,
            bad_every: 53,
            all_gzip: false,
        },
    );
    write_config(dir, "");
    g
}

fn markers(dir: &Path) -> Vec<String> {
    files_below(&dir.join("lake/complete/cloudfront_logs"))
        .into_iter()
        .filter(|f| f.ends_with(".manifest"))
        .collect()
}

#[test]
fn generated_data_lands_whole_and_masked() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path());
    let s = run_summary(dir.path());
    assert_eq!(s["rows_read"], g.rows);
    assert_eq!(s["rows_rejected"], g.bad);
    assert_eq!(s["rows_written"], g.rows - g.bad);
    assert_eq!(s["inputs_consumed"], g.files as u64);
    // Late records went to their own day: the generator's counts include the 4th day.
    assert!(g.expected.keys().any(|k| k.ends_with("2024-01-04")));
    assert_eq!(rust_counts(dir.path()), g.expected);
    if let Some(py) = python() {
        let (duck, arrow) = lake_counts(&py, &dir.path().join("lake/data/cloudfront_logs"));
        assert_eq!(duck, g.expected, "DuckDB");
        assert_eq!(arrow, g.expected, "pyarrow");
    }
    // Each of the 2 workers writes a partition's rows it decoded into a file of its own:
    // at most one file per worker and partition (none reaches the target size here).
    let mut per_partition: BTreeMap<String, usize> = BTreeMap::new();
    for f in files_below(&dir.path().join("lake/data/cloudfront_logs")) {
        let (folder, _) = f.rsplit_once('/').unwrap();
        *per_partition.entry(folder.to_owned()).or_default() += 1;
    }
    assert_eq!(per_partition.len(), g.expected.len());
    assert!(
        per_partition.values().all(|&n| (1..=2).contains(&n)),
        "{per_partition:?}"
    );
    // Rejected rows are in the rejects file with file and line.
    let rejects: Vec<_> = files_below(&dir.path().join("lake/_citrine/rejects"));
    assert_eq!(rejects.len(), 1);
    let text = std::fs::read_to_string(dir.path().join("lake/_citrine/rejects").join(&rejects[0]))
        .unwrap();
    assert_eq!(text.lines().count() as u64, g.bad);
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["reason"], "sc_bytes: not a number: \"12x\"");
    assert!(first["file"]
        .as_str()
        .unwrap()
        .starts_with("logs/cloudfront/"));
    assert_no_address(&dir.path().join("lake"), &g.ips);
}

#[test]
fn reruns_are_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path());
    run_summary(dir.path());
    assert_eq!(markers(dir.path()).len(), 1);
    let before = files_below(&dir.path().join("lake"));

    // Nothing new: nothing written, no marker.
    let s = run_summary(dir.path());
    assert_eq!(s["run_id"], Value::Null);
    assert_eq!(s["inputs_skipped"], g.files as u64);
    assert_eq!(files_below(&dir.path().join("lake")), before);

    // Re-copied identical inputs (new mtime): nothing changes.
    let folder = dir.path().join("logs/cloudfront/acme");
    for f in std::fs::read_dir(&folder).unwrap() {
        let p = f.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, bytes).unwrap();
    }
    let s = run_summary(dir.path());
    assert_eq!(s["run_id"], Value::Null, "{s}");
    assert_eq!(files_below(&dir.path().join("lake")), before);

    // A new input: exactly one new marker listing exactly the new files, with exact sizes.
    let extra = tempfile::tempdir().unwrap();
    let g2 = cloudfront(
        extra.path(),
        &Shape {
            seed: 7,
            customers: &["initech"],
            days: 1,
            files_per_day: 2,
            rows_per_file: 10,
            bad_every: 0,
            all_gzip: false,
        },
    );
    let src = extra.path().join("logs/cloudfront/initech");
    let dst = dir.path().join("logs/cloudfront/initech");
    std::fs::create_dir_all(&dst).unwrap();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dst.join(f.file_name())).unwrap();
    }
    let s = run_summary(dir.path());
    let run_id = s["run_id"].as_str().unwrap().to_owned();
    assert_eq!(s["inputs_consumed"], g2.files as u64);
    assert_eq!(markers(dir.path()).len(), 2);
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(
            dir.path()
                .join(format!("lake/complete/cloudfront_logs/{run_id}.manifest")),
        )
        .unwrap(),
    )
    .unwrap();
    let mut listed = Vec::new();
    for e in manifest["entries"].as_array().unwrap() {
        let url = e["url"].as_str().unwrap();
        let path = url.strip_prefix("file://").unwrap();
        assert_eq!(e["mandatory"], true);
        assert_eq!(
            e["meta"]["content_length"],
            std::fs::metadata(path).unwrap().len()
        );
        listed.push(path.rsplit_once("/lake/").unwrap().1.to_owned());
    }
    listed.sort();
    let new_files: Vec<_> = files_below(&dir.path().join("lake"))
        .into_iter()
        .filter(|f| f.starts_with("data/") && f.contains(&run_id))
        .collect();
    assert_eq!(listed, new_files);
    assert!(new_files.iter().all(|f| f.contains("customer=initech")));
}

#[test]
fn a_bad_input_is_reported_left_unconsumed_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path());
    let gz = files_below(&dir.path().join("logs/cloudfront/acme"))
        .into_iter()
        .find(|f| f.ends_with(".gz"))
        .unwrap();
    let path = dir.path().join("logs/cloudfront/acme").join(&gz);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
    let out = citrine(dir.path(), &["run", "--json"]);
    assert_eq!(out.status.code(), Some(1), "completed with errors");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&gz) && stderr.contains("truncated or corrupt gzip"),
        "{stderr}"
    );
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s[0]["inputs_consumed"], g.files as u64 - 1);
    assert_eq!(
        s[0]["inputs_failed"][0]["uri"],
        format!("logs/cloudfront/acme/{gz}")
    );
    // Fixed, it is consumed by the next run, once.
    std::fs::write(&path, &bytes).unwrap();
    let s = run_summary(dir.path());
    assert_eq!(s["inputs_consumed"], 1);
    assert_eq!(rust_counts(dir.path()), g.expected);
}

#[test]
fn status_reports_tables_runs_and_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path());
    run_summary(dir.path());
    let out = citrine(dir.path(), &["status"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let partitions = g.expected.len();
    assert!(
        text.contains(&format!("{partitions} partitions, 1 runs"))
            && text.contains(&format!("{} inputs in the ledger", g.files)),
        "{text}"
    );
}

#[test]
fn a_new_audit_column_grows_the_schema_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let acme = dir.path().join("logs/audit/acme");
    std::fs::create_dir_all(&acme).unwrap();
    std::fs::write(
        acme.join("a.csv"),
        "timestamp,user,source_ip\n2024-03-01T10:00:00Z,alice,192.0.2.10\n2024-03-01T23:59:59Z,bob,192.0.2.11\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("citrine.toml"),
        "[lake]\nroot = \"lake\"\n[[table]]\nname = \"audit\"\nformat = \"audit\"\ninputs = [\"logs/audit/{customer}/*.csv\"]\nmask_ips = [\"Source IP\"]\n",
    )
    .unwrap();
    let columns = |dir: &Path| -> (Vec<String>, u64) {
        let c: Value = serde_json::from_slice(
            &std::fs::read(dir.join("lake/_citrine/catalog/audit.json")).unwrap(),
        )
        .unwrap();
        let names = c["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        (names, c["version"].as_u64().unwrap())
    };
    assert_eq!(citrine(dir.path(), &["run"]).status.code(), Some(0));
    let base = [
        "ts",
        "customer",
        "dt",
        "source_file",
        "row_num",
        "user",
        "source_ip",
    ];
    assert_eq!(columns(dir.path()), (base.map(String::from).to_vec(), 1));
    // A later file brings a new column, in a different position: it is appended.
    std::fs::write(
        acme.join("b.csv"),
        "zone,timestamp,source_ip,user\neu-west-1,2024-03-02T08:00:00Z,192.0.2.12,carol\n",
    )
    .unwrap();
    assert_eq!(citrine(dir.path(), &["run"]).status.code(), Some(0));
    let mut grown = base.map(String::from).to_vec();
    grown.push("zone".into());
    assert_eq!(columns(dir.path()), (grown, 2));
    if let Some(py) = python() {
        let (duck, arrow) = lake_counts(&py, &dir.path().join("lake/data/audit"));
        let want: BTreeMap<String, u64> = [
            ("acme|2024-03-01".to_string(), 2),
            ("acme|2024-03-02".to_string(), 1),
        ]
        .into();
        assert_eq!(duck, want);
        assert_eq!(arrow, want);
    }
    let ips: std::collections::HashSet<String> = ["192.0.2.10", "192.0.2.11", "192.0.2.12"]
        .map(String::from)
        .into();
    assert_no_address(&dir.path().join("lake"), &ips);
}

#[test]
fn the_summary_counts_bytes_on_disk_and_inflated() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let gz = std::fs::read(common::fixture(
        "cloudfront/aws-log-parser-cloudfront-multiple.log.gz",
    ))
    .unwrap();
    let mut inflated = Vec::new();
    citrine::read::decompress::Decompressed::new(gz.as_slice(), u64::MAX)
        .unwrap()
        .read_to_end(&mut inflated)
        .unwrap();
    let folder = dir.path().join("logs/cloudfront/acme");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("E1.2019-12-04-21.a.gz"), &gz).unwrap();
    common::gen::write_config(dir.path(), "");
    let s = common::run_summary(dir.path());
    assert_eq!(s["bytes_in"], gz.len() as u64);
    assert_eq!(s["bytes_decoded"], inflated.len() as u64);
}
