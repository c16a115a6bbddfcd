//! `citrine redshift …` on a local lake: the DDL and COPY texts, and `load` through the Redshift
//! Data API over HTTP. moto's redshift-data accepts our requests, but answers `CreatedAt` as an
//! ISO string where the real API (and so the Rust SDK) uses epoch seconds, so the SDK cannot
//! read its replies: moto checks the request shape only, and a small HTTP fake of the Data API
//! covers the statement lifecycle (FINISHED with results, FAILED with Redshift's text, ABORTED,
//! and a statement outliving the timeout, which is cancelled).

mod common;

use std::path::Path;

use common::fake_api::{fake_api, Calls};
use common::{citrine, citrine_env, run_ok, succeeded};
use serde_json::{json, Value};

const REDSHIFT: &str = "[redshift]\nworkgroup = \"analytics\"\ndatabase = \"dev\"\nsecret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:citrine\"\nschema = \"logs\"\niam_role = \"arn:aws:iam::123456789012:role/copy\"\ntimeout_secs = 1\npoll_ms = 20\n";

/// A local lake with one committed run of the audit samples; returns its manifest URL and run.
fn lake(dir: &Path) -> (String, String) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/logs/audit");
    for customer in ["acme", "globex"] {
        let to = dir.join("logs").join(customer);
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(src.join(customer)).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
    std::fs::write(
        dir.join("citrine.toml"),
        format!("[lake]\nroot = \"lake\"\n[[table]]\nname = \"audit\"\nformat = \"audit\"\ninputs = [\"logs/{{customer}}/*.csv\"]\nmask_ips = [\"source_ip\"]\n\n{REDSHIFT}"),
    )
    .unwrap();
    run_ok(dir);
    let complete = dir.join("lake/complete/audit");
    let manifest = std::fs::read_dir(&complete)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "manifest"))
        .unwrap();
    let run = manifest.file_stem().unwrap().to_string_lossy().into_owned();
    let url = format!(
        "file://{}",
        std::path::absolute(&manifest).unwrap().display()
    );
    (url, run)
}

#[test]
fn ddl_and_copy_follow_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, _) = lake(dir.path());
    let ddl = succeeded(&citrine(
        dir.path(),
        &["redshift", "ddl", "--table", "audit"],
    ));
    assert!(ddl.starts_with("-- audit: schema v1"), "{ddl}");
    assert!(ddl.contains("CREATE TABLE IF NOT EXISTS \"logs\".\"audit\" (\n    \"ts\" TIMESTAMP,\n    \"customer\" VARCHAR(1024),\n    \"dt\" DATE,"), "{ddl}");
    assert!(
        ddl.contains("COMPOUND SORTKEY (\"ts\", \"row_num\")"),
        "{ddl}"
    );
    let copy = succeeded(&citrine(
        dir.path(),
        &["redshift", "copy", "--manifest", &manifest],
    ));
    assert!(copy.starts_with("COPY \"logs\".\"audit\"\nFROM"), "{copy}");
    assert!(copy.contains(&format!("FROM '{manifest}'\nIAM_ROLE 'arn:aws:iam::123456789012:role/copy'\nFORMAT AS PARQUET\nMANIFEST;")), "{copy}");
    // A local lake's marker by its path gives the same statement.
    let path = manifest.strip_prefix("file://").unwrap();
    let by_path = succeeded(&citrine(
        dir.path(),
        &["redshift", "copy", "--manifest", path],
    ));
    assert_eq!(by_path, copy);
    // Spectrum needs Glue; a marker from elsewhere is refused.
    let out = citrine(
        dir.path(),
        &["redshift", "ddl", "--table", "audit", "--spectrum"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("catalog.kind = \"glue\""));
    let out = citrine(
        dir.path(),
        &[
            "redshift",
            "copy",
            "--manifest",
            "s3://x/complete/audit/r.manifest",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a marker of the lake"));
}

fn load(dir: &Path, url: &str, args: &[&str]) -> std::process::Output {
    let env = common::aws::env_for(url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut all = vec!["redshift", "load"];
    all.extend_from_slice(args);
    citrine_env(dir, &all, &env)
}

/// A Data API whose statements end in `status`; `loaded` is what `citrine_loads` holds.
fn data_api(status: &'static str, loaded: Vec<String>) -> (String, Calls) {
    fake_api(move |target, body, _| match target {
        "executestatement" | "batchexecutestatement" => (
            200,
            json!({"Id": format!("st-{}", body["StatementName"].as_str().unwrap_or(""))}),
        ),
        "describestatement" => {
            let id = body["Id"].as_str().unwrap_or("");
            // The loads table and the query always finish; the load ends in `status`.
            let status = if id.contains("citrine-load-") {
                status
            } else {
                "FINISHED"
            };
            (
                200,
                json!({"Id": id, "Status": status, "HasResultSet": id.contains("loaded-runs"), "Error": "ERROR: Spectrum Scan Error: S3 access denied (from the fake)"}),
            )
        }
        "getstatementresult" => {
            let records: Vec<Value> = loaded.iter().map(|r| json!([{"stringValue": r}])).collect();
            (
                200,
                json!({"Records": records, "TotalNumRows": loaded.len(), "ColumnMetadata": []}),
            )
        }
        _ => (200, json!({})),
    })
}

fn calls(seen: &Calls, target: &str) -> Vec<Value> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t == target)
        .map(|(_, b)| b.clone())
        .collect()
}

#[test]
fn load_runs_one_transaction_per_marker_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, run) = lake(dir.path());

    // Not loaded yet: the loads table, the query, then one batch (one transaction).
    let (url, seen) = data_api("FINISHED", vec![]);
    let out = load(
        dir.path(),
        &url,
        &["--manifest", &manifest, "--vacuum", "--analyze"],
    );
    assert!(succeeded(&out).contains(&format!("audit: run {run} loaded")));
    let singles: Vec<String> = calls(&seen, "executestatement")
        .iter()
        .map(|b| b["Sql"].as_str().unwrap().to_owned())
        .collect();
    assert!(singles[0].starts_with("CREATE TABLE IF NOT EXISTS \"logs\".\"citrine_loads\""));
    assert!(singles[1].starts_with(
        "SELECT \"run_id\" FROM \"logs\".\"citrine_loads\" WHERE \"table_name\" = 'audit'"
    ));
    // The declared VARCHAR widths, asked once before the load (nothing to widen here).
    assert!(singles[2].starts_with("SELECT \"column_name\", \"character_maximum_length\""));
    assert_eq!(
        &singles[3..],
        [
            "VACUUM SORT ONLY \"logs\".\"audit\";",
            "ANALYZE \"logs\".\"audit\";"
        ]
    );
    for b in calls(&seen, "executestatement")
        .iter()
        .chain(calls(&seen, "batchexecutestatement").iter())
    {
        assert_eq!(
            (b["WorkgroupName"].as_str(), b["Database"].as_str()),
            (Some("analytics"), Some("dev"))
        );
        assert_eq!(
            b["SecretArn"],
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:citrine"
        );
    }
    let batches = calls(&seen, "batchexecutestatement");
    assert_eq!(batches.len(), 1);
    let sqls: Vec<&str> = batches[0]["Sqls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(sqls[0], "LOCK \"logs\".\"citrine_loads\";");
    assert!(
        sqls[2].contains(&format!("FROM '{manifest}'")),
        "{}",
        sqls[2]
    );
    assert!(sqls.last().unwrap().starts_with("DROP TABLE"));
    assert_eq!(batches[0]["StatementName"], format!("citrine-load-{run}"));

    // Already in citrine_loads: nothing is sent, nothing maintained.
    let (url, seen) = data_api("FINISHED", vec![run.clone()]);
    let out = load(dir.path(), &url, &["--table", "audit", "--vacuum"]);
    assert_eq!(succeeded(&out), "audit: nothing new to load\n");
    assert!(calls(&seen, "batchexecutestatement").is_empty());
    assert_eq!(calls(&seen, "executestatement").len(), 2);
    let out = load(dir.path(), &url, &["--manifest", &manifest]);
    assert!(succeeded(&out).contains(&format!("audit: run {run} already loaded, skipped")));
    assert!(calls(&seen, "batchexecutestatement").is_empty());
}

#[test]
fn failed_and_aborted_statements_report_redshifts_text() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, _) = lake(dir.path());
    for (status, want) in [
        (
            "FAILED",
            "failed: ERROR: Spectrum Scan Error: S3 access denied (from the fake)",
        ),
        ("ABORTED", "was aborted"),
    ] {
        let (url, _) = data_api(status, vec![]);
        let out = load(dir.path(), &url, &["--manifest", &manifest]);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{status}: {stderr}");
    }
}

#[test]
fn a_statement_past_the_timeout_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, _) = lake(dir.path());
    let (url, seen) = data_api("STARTED", vec![]);
    let started = std::time::Instant::now();
    let out = load(dir.path(), &url, &["--manifest", &manifest]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("still running after 1 s; cancelled"),
        "{stderr}"
    );
    let cancels = calls(&seen, "cancelstatement");
    assert_eq!(cancels.len(), 1);
    assert!(cancels[0]["Id"].as_str().unwrap().contains("citrine-load-"));
    // Polled every 20 ms until the 1 s timeout, not longer.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(calls(&seen, "describestatement").len() > 10);
}

#[test]
fn moto_accepts_the_request_shape() {
    let Some(e) = common::aws::endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (manifest, _) = lake(dir.path());
    let out = load(dir.path(), &e.url, &["--manifest", &manifest]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // moto parsed our ExecuteStatement and echoed its fields (HTTP 200); only its reply's
    // `CreatedAt` string defeats the SDK (a moto gap: AWS sends epoch seconds).
    assert!(stderr.contains("StatusCode(200)"), "{stderr}");
    assert!(stderr.contains(r#"\"Database\": \"dev\""#), "{stderr}");
    assert!(
        stderr.contains(
            r#"\"SecretArn\": \"arn:aws:secretsmanager:us-east-1:123456789012:secret:citrine\""#
        ),
        "{stderr}"
    );
    assert!(stderr.contains("CreatedAt"), "{stderr}");
}

/// A lake with `n` committed runs of `table` (run i consumed input `in/<i>.csv`; run 7 also
/// `in/shared.csv`, which run `n` consumed again), their ledger checkpointed at run
/// `checkpoint`, and the reports of the runs up to it deleted: whatever reads an old report
/// fails. Returns the run ids, oldest first.
fn history(dir: &Path, table: &str, n: usize, checkpoint: usize) -> Vec<String> {
    use citrine::commit::{InputRecord, RunReport};
    use citrine::lake::Lake;
    use citrine::ledger::{checkpoint as ckpt, Ledger};
    let lake = Lake::local(&dir.join("lake")).unwrap();
    let runs: Vec<String> = (1..=n)
        .map(|i| {
            format!(
                "20260101T00{:02}{:02}{:03}Z-{i:08x}",
                i / 60_000 % 60,
                i / 1000 % 60,
                i % 1000
            )
        })
        .collect();
    let mut ledger = Ledger::default();
    for (i, run) in runs.iter().enumerate() {
        let input = |uri: String| InputRecord {
            uri,
            size: 1,
            mtime_ns: 1,
            etag: None,
            hash: "h".into(),
            rows_read: 1,
            rows_written: 1,
            rows_rejected: 0,
            changed: false,
        };
        let mut inputs = vec![input(format!("in/{i}.csv"))];
        if i == 6 || i + 1 == n {
            inputs.push(input("in/shared.csv".into()));
        }
        let report = RunReport {
            schema_version: 1,
            inputs,
            ..RunReport::new(table, run, String::new())
        };
        let store = lake.store();
        store
            .write(&lake.report_key(table, run), report.to_json().as_bytes())
            .unwrap();
        store
            .write(&lake.manifest_key(table, run), b"{\"entries\":[]}")
            .unwrap();
        ledger.apply(report);
        if i + 1 == checkpoint {
            ckpt::write(&lake, table, &ledger, &[]).unwrap();
        }
    }
    for run in &runs[..checkpoint] {
        lake.store().delete(&lake.report_key(table, run)).unwrap();
    }
    runs
}

#[test]
fn a_load_after_a_thousand_markers_costs_the_new_ones_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("citrine.toml"),
        format!("[lake]\nroot = \"lake\"\n[[table]]\nname = \"audit\"\nformat = \"audit\"\ninputs = [\"logs/{{customer}}/*.csv\"]\n\n{REDSHIFT}"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let runs = history(dir.path(), "audit", 1000, 995);
    // citrine_loads holds every run but the last five (its most recent 995 come back).
    let (url, seen) = data_api("FINISHED", runs[..995].iter().rev().cloned().collect());
    let out = load(dir.path(), &url, &["--table", "audit"]);
    let text = succeeded(&out);
    let loaded: Vec<&str> = text.lines().collect();
    assert_eq!(loaded.len(), 5, "{text}");
    assert!(
        loaded[0].ends_with(&format!("run {} loaded", runs[995])),
        "{text}"
    );
    // Two statements to plan, one transaction per new marker, whatever came before.
    assert_eq!(calls(&seen, "executestatement").len(), 2);
    let batches = calls(&seen, "batchexecutestatement");
    assert_eq!(batches.len(), 5);
    assert!(calls(&seen, "describestatement").len() <= 2 + 5 * 2);
    // The last run consumed `in/shared.csv` again: run 7's rows of it are stale, but run 7 is
    // long loaded; the newest run loads its own.
    let last = batches[4]["Sqls"].to_string();
    assert!(!last.contains("\"source_file\" IN"), "{last}");
    // A late, older marker loaded alone: its file a later, loaded run consumed again is
    // dropped from its stage (superseded), from the checkpoint, not from later reports.
    let (url, seen) = data_api(
        "FINISHED",
        runs.iter()
            .rev()
            .filter(|r| **r != runs[6])
            .cloned()
            .collect(),
    );
    let manifest = format!(
        "file://{}",
        std::path::absolute(
            dir.path()
                .join(format!("lake/complete/audit/{}.manifest", runs[6]))
        )
        .unwrap()
        .display()
    );
    // Its report was deleted with the old ones: put it back for this load.
    let report = format!(
        "{{\"version\":1,\"run_id\":\"{}\",\"table\":\"audit\",\"started_at\":\"\",\"finished_at\":\"\",\"schema_version\":1,\"columns\":[],\"inputs\":[{{\"uri\":\"in/6.csv\",\"size\":1,\"mtime_ns\":1,\"hash\":\"h\",\"rows_read\":1,\"rows_written\":1,\"rows_rejected\":0}},{{\"uri\":\"in/shared.csv\",\"size\":1,\"mtime_ns\":1,\"hash\":\"h\",\"rows_read\":1,\"rows_written\":1,\"rows_rejected\":0}}],\"failed_inputs\":[],\"files\":[],\"rows_rejected\":0,\"rejects_key\":null}}",
        runs[6]
    );
    std::fs::write(
        dir.path()
            .join(format!("lake/complete/audit/{}.json", runs[6])),
        report,
    )
    .unwrap();
    let out = load(dir.path(), &url, &["--manifest", &manifest]);
    assert!(succeeded(&out).contains("loaded"), "{}", succeeded(&out));
    let batch = calls(&seen, "batchexecutestatement")[0]["Sqls"].to_string();
    assert!(
        batch.contains("WHERE \\\"source_file\\\" IN ('in/shared.csv')"),
        "{batch}"
    );
}
