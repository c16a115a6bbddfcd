//! `citrine run` with an `s3://` lake, `s3://` inputs and the Glue catalog, against the local
//! S3 + Glue endpoint (moto's server, over HTTP): the local end-to-end scenarios again, read
//! back through the endpoint by pyarrow and awswrangler, plus the lock, a failed upload and
//! `catalog sync`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::aws::{database_of, endpoint, Endpoint};
use common::gen::{cloudfront, Generated, Shape};
use common::ip_tokens;
use serde_json::Value;

const TABLE: &str = "cloudfront_logs";

/// Generate CloudFront logs under `dir/logs`, upload them to `bucket/logs`, write a config.
fn setup(e: &Endpoint, dir: &Path, bucket: &str, shape: &Shape) -> Generated {
    let g = cloudfront(dir, shape);
    let logs = dir.join("logs").display().to_string();
    e.client(&["upload", bucket, "logs", &logs]);
    let db = database_of(bucket);
    let text = format!(
        "[lake]\nroot = \"s3://{bucket}/lake\"\n[catalog]\nkind = \"glue\"\ndatabase = \"{db}\"\n[run]\nthreads = 2\nbatch_size = 512\n\n[[table]]\nname = \"{TABLE}\"\nformat = \"cloudfront\"\ninputs = [\"s3://{bucket}/logs/cloudfront/{{customer}}/\"]\n"
    );
    std::fs::write(dir.join("citrine.toml"), text).unwrap();
    g
}

fn shape(seed: u64, customers: &'static [&'static str], days: u32) -> Shape<'static> {
    Shape {
        seed,
        customers,
        days,
        files_per_day: 3,
        rows_per_file: 40,
        bad_every: 53,
        all_gzip: false,
    }
}

fn run_json(e: &Endpoint, dir: &Path, extra: &[(&str, &str)]) -> Value {
    let out = e.citrine(dir, &["run", "--json"], extra);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

/// `key → size` of every object below `prefix`.
fn objects(e: &Endpoint, bucket: &str, prefix: &str) -> BTreeMap<String, u64> {
    e.client(&["list", bucket, prefix])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["key"].as_str().unwrap().to_owned(),
                o["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn counts(e: &Endpoint, bucket: &str) -> BTreeMap<String, u64> {
    serde_json::from_value(e.client(&["counts", bucket, &format!("lake/data/{TABLE}")])).unwrap()
}

/// Glue partitions as `customer|dt → location`.
fn partitions(e: &Endpoint, bucket: &str) -> BTreeMap<String, String> {
    e.client(&["partitions", &database_of(bucket), TABLE])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let v = &p["values"];
            (
                format!("{}|{}", v[0].as_str().unwrap(), v[1].as_str().unwrap()),
                p["location"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn expected_partitions(bucket: &str, g: &Generated) -> BTreeMap<String, String> {
    g.expected
        .keys()
        .map(|k| {
            let (c, d) = k.split_once('|').unwrap();
            let loc = format!("s3://{bucket}/lake/data/{TABLE}/customer={c}/dt={d}/");
            (k.clone(), loc)
        })
        .collect()
}

/// The marker of `run_id` as `key → content_length`, checking every entry's form.
fn marker(e: &Endpoint, bucket: &str, run_id: &str) -> BTreeMap<String, u64> {
    let text = e.client(&[
        "get",
        bucket,
        &format!("lake/complete/{TABLE}/{run_id}.manifest"),
    ]);
    let m: Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
    m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            assert_eq!(entry["mandatory"], true);
            let url = entry["url"].as_str().unwrap();
            let key = url.strip_prefix(&format!("s3://{bucket}/")).unwrap();
            (
                key.to_owned(),
                entry["meta"]["content_length"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn markers(e: &Endpoint, bucket: &str) -> Vec<String> {
    objects(e, bucket, &format!("lake/complete/{TABLE}/"))
        .into_keys()
        .filter(|k| k.ends_with(".manifest"))
        .collect()
}

#[test]
fn s3_lake_with_glue_end_to_end_and_exactly_once() {
    let Some(e) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bucket = e.fresh_bucket("e2e");
    let g = setup(
        &e,
        dir.path(),
        &bucket,
        &shape(42, &["acme", "globex", "umbrella"], 3),
    );
    let s = run_json(&e, dir.path(), &[]);
    assert_eq!(s["rows_read"], g.rows);
    assert_eq!(s["rows_rejected"], g.bad);
    assert_eq!(s["inputs_consumed"], g.files as u64);
    let run_id = s["run_id"].as_str().unwrap().to_owned();

    // Read back through the endpoint; Glue lists exactly the lake's partitions.
    assert_eq!(counts(&e, &bucket), g.expected, "pyarrow over S3");
    assert_eq!(partitions(&e, &bucket), expected_partitions(&bucket, &g));
    let table = e.client(&["table", &database_of(&bucket), TABLE]);
    assert_eq!(table["type"], "EXTERNAL_TABLE");
    assert_eq!(table["parameters"]["classification"], "parquet");
    assert_eq!(
        table["keys"],
        serde_json::json!([["customer", "string"], ["dt", "date"]])
    );
    assert_eq!(
        table["serde"],
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    );
    assert_eq!(
        table["location"],
        format!("s3://{bucket}/lake/data/{TABLE}/")
    );
    assert_eq!(table["columns"][0], serde_json::json!(["ts", "timestamp"]));

    // The marker lists exactly the run's objects, with exact sizes.
    let data = objects(&e, &bucket, "lake/data/");
    assert_eq!(marker(&e, &bucket, &run_id), data);
    assert!(
        objects(&e, &bucket, "lake/_citrine/locks/").is_empty(),
        "lock released"
    );
    // No full client address in any report, manifest, reject or catalog object (ledger
    // checkpoints are compressed copies of the reports' input records).
    for key in objects(&e, &bucket, "lake/")
        .keys()
        .filter(|k| !k.ends_with(".parquet") && !k.ends_with(".ckpt"))
    {
        let text = e.client(&["get", &bucket, key]);
        let leaked = ip_tokens(text.as_str().unwrap())
            .find(|t| g.ips.contains(*t))
            .map(str::to_owned);
        assert!(leaked.is_none(), "{key}: {leaked:?}");
    }

    // A real catalog client: awswrangler through Glue.
    let wrangled = e.client(&["wrangler", &database_of(&bucket), TABLE]);
    assert_eq!(wrangled["rows"], g.rows - g.bad);

    // Rerun: nothing written, nothing registered twice.
    let lake_before = objects(&e, &bucket, "lake/");
    let s = run_json(&e, dir.path(), &[]);
    assert_eq!(s["run_id"], Value::Null);
    assert_eq!(s["inputs_skipped"], g.files as u64);
    assert_eq!(objects(&e, &bucket, "lake/"), lake_before);
    assert_eq!(partitions(&e, &bucket), expected_partitions(&bucket, &g));

    // Re-copied identical inputs: nothing changes.
    for key in objects(&e, &bucket, "logs/cloudfront/acme/").keys() {
        e.client(&["copy", &bucket, key]);
    }
    let s = run_json(&e, dir.path(), &[]);
    assert_eq!(s["run_id"], Value::Null, "{s}");
    assert_eq!(objects(&e, &bucket, "lake/"), lake_before);

    // A new input: exactly one new marker listing exactly the new objects.
    let extra = tempfile::tempdir().unwrap();
    let g2 = cloudfront(extra.path(), &shape(7, &["initech"], 1));
    let logs = extra.path().join("logs").display().to_string();
    e.client(&["upload", &bucket, "logs", &logs]);
    let s = run_json(&e, dir.path(), &[]);
    let run2 = s["run_id"].as_str().unwrap().to_owned();
    assert_eq!(s["inputs_consumed"], g2.files as u64);
    assert_eq!(markers(&e, &bucket).len(), 2);
    let new: BTreeMap<String, u64> = objects(&e, &bucket, "lake/data/")
        .into_iter()
        .filter(|(k, _)| k.contains(&run2))
        .collect();
    assert_eq!(marker(&e, &bucket, &run2), new);
    assert!(new.keys().all(|k| k.contains("customer=initech")));
    let mut all = g.expected.clone();
    all.extend(g2.expected.clone());
    let both = Generated {
        expected: all,
        ..Default::default()
    };
    assert_eq!(partitions(&e, &bucket), expected_partitions(&bucket, &both));

    // `catalog sync` repairs a drifted catalog, then changes nothing.
    let db = database_of(&bucket);
    e.client(&["drop-partition", &db, TABLE, "acme", "2024-01-02"]);
    e.client(&[
        "add-partition",
        &db,
        TABLE,
        "ghost",
        "2024-01-09",
        "s3://nowhere/",
    ]);
    let sync = |want: &str| {
        let out = e.citrine(dir.path(), &["catalog", "sync"], &[]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && text.contains(want),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sync("1 registered now, 1 stale removed");
    assert_eq!(partitions(&e, &bucket), expected_partitions(&bucket, &both));
    sync("0 registered now, 0 stale removed");
}

#[test]
fn a_new_audit_column_grows_the_glue_table_at_the_end() {
    let Some(e) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bucket = e.fresh_bucket("audit");
    let db = database_of(&bucket);
    let put = |key: &str, text: &str| e.client(&["put", &bucket, key, text]);
    put(
        "in/acme/a.csv",
        "timestamp,user,source_ip\n2024-03-01T10:00:00Z,alice,192.0.2.10\n2024-03-01T23:59:59Z,bob,192.0.2.11\n",
    );
    std::fs::write(
        dir.path().join("citrine.toml"),
        format!("[lake]\nroot = \"s3://{bucket}/lake\"\n[catalog]\nkind = \"glue\"\ndatabase = \"{db}\"\n[[table]]\nname = \"audit\"\nformat = \"audit\"\ninputs = [\"s3://{bucket}/in/{{customer}}/*.csv\", \"s3://{bucket}/nothing-yet/{{customer}}/*.csv\"]\nmask_ips = [\"source_ip\"]\n"),
    )
    .unwrap();
    let columns = || -> (Vec<String>, Value) {
        let t = e.client(&["table", &db, "audit"]);
        let names = t["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c[0].as_str().unwrap().to_owned())
            .collect();
        (names, t["parameters"]["citrine_schema_version"].clone())
    };
    // A pattern whose prefix lists nothing is a warning on every run, never a failure.
    let empty = format!(
        "input pattern \"s3://{bucket}/nothing-yet/{{customer}}/*.csv\" matched nothing under s3://{bucket}/nothing-yet"
    );
    let s = run_json(&e, dir.path(), &[]);
    assert_eq!(s["warnings"], serde_json::json!([empty]));
    let base = ["ts", "source_file", "row_num", "user", "source_ip"]
        .map(String::from)
        .to_vec();
    assert_eq!(columns(), (base.clone(), Value::from("1")));
    put(
        "in/acme/b.csv",
        "zone,timestamp,source_ip,user\neu-west-1,2024-03-02T08:00:00Z,192.0.2.12,carol\n",
    );
    let s = run_json(&e, dir.path(), &[]);
    assert_eq!(s["warnings"], serde_json::json!([empty]));
    let mut grown = base;
    grown.push("zone".into());
    assert_eq!(columns(), (grown, Value::from("2")));
    let counts: BTreeMap<String, u64> =
        serde_json::from_value(e.client(&["counts", &bucket, "lake/data/audit"])).unwrap();
    assert_eq!(
        counts,
        [
            ("acme|2024-03-01".to_string(), 2),
            ("acme|2024-03-02".to_string(), 1)
        ]
        .into()
    );
    assert_eq!(e.client(&["wrangler", &db, "audit"])["rows"], 3);
}

#[test]
fn the_s3_lock_refuses_a_second_run_and_is_taken_over_when_stale() {
    let Some(e) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bucket = e.fresh_bucket("lock");
    setup(&e, dir.path(), &bucket, &shape(3, &["acme"], 1));
    let env: Vec<(&str, String)> = e.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("CITRINE_TEST_STALL", "after_lock"));
    let mut first = common::stalled(dir.path(), &env, "after_lock");
    let second = e.citrine(dir.path(), &["run"], &[]);
    assert_eq!(second.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("is locked by run"), "{stderr}");
    // The holder dies: its lock names a process gone from this host, so it is taken over.
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(
        objects(&e, &bucket, "lake/_citrine/locks/").len(),
        1,
        "the dead run's lock"
    );
    run_json(&e, dir.path(), &[]);
    // A live lease held elsewhere is respected; an expired one is taken over.
    let key = format!("lake/_citrine/locks/{TABLE}.lock");
    let lock = |expires: i64| {
        format!(r#"{{"run_id":"remote","pid":1,"host":"elsewhere","expires_ms":{expires}}}"#)
    };
    e.client(&["put", &bucket, &key, &lock(i64::MAX / 2)]);
    let refused = e.citrine(dir.path(), &["run"], &[]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    e.client(&["put", &bucket, &key, &lock(0)]);
    run_json(&e, dir.path(), &[]);
    assert!(objects(&e, &bucket, "lake/_citrine/locks/").is_empty());
}

#[test]
fn a_failed_upload_leaves_no_partial_object_and_no_marker() {
    let Some(e) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bucket = e.fresh_bucket("cut");
    let g = setup(&e, dir.path(), &bucket, &shape(11, &["acme", "globex"], 2));
    // The endpoint "stops" as the third data object is being uploaded.
    let proxy = common::proxy::start(&e.url, &format!("PUT /{bucket}/lake/data/"), 3);
    let out = e.citrine(
        dir.path(),
        &["run"],
        &[("AWS_ENDPOINT_URL", proxy.url.as_str())],
    );
    assert!(
        proxy.cut.load(std::sync::atomic::Ordering::SeqCst),
        "the cut happened"
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing committed, and every object that did land is a whole Parquet file.
    assert!(objects(&e, &bucket, "lake/complete/").is_empty());
    let landed: BTreeMap<String, u64> =
        serde_json::from_value(e.client(&["check-parquet", &bucket, "lake/data/"])).unwrap();
    assert!(landed.len() < 3, "{landed:?}");
    // The endpoint is back: the next run recovers and equals a clean run.
    let s = run_json(&e, dir.path(), &[]);
    assert_eq!(s["inputs_consumed"], g.files as u64);
    assert_eq!(counts(&e, &bucket), g.expected);
    let run_id = s["run_id"].as_str().unwrap();
    assert_eq!(
        marker(&e, &bucket, run_id),
        objects(&e, &bucket, "lake/data/")
    );
    assert_eq!(partitions(&e, &bucket), expected_partitions(&bucket, &g));
}

#[test]
fn partitions_beyond_one_batch_all_register() {
    let Some(e) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bucket = e.fresh_bucket("chunks");
    let db = database_of(&bucket);
    // One audit file spanning 130 days: 130 partitions, two BatchCreatePartition calls.
    let mut csv = String::from("timestamp,user\n");
    for day in 0..130 {
        csv.push_str(&format!("{},u{day}\n", 1_704_067_200 + day * 86_400));
    }
    e.client(&["put", &bucket, "in/acme/days.csv", &csv]);
    std::fs::write(
        dir.path().join("citrine.toml"),
        format!("[lake]\nroot = \"s3://{bucket}/lake\"\n[catalog]\nkind = \"glue\"\ndatabase = \"{db}\"\n[[table]]\nname = \"audit\"\nformat = \"audit\"\ninputs = [\"s3://{bucket}/in/{{customer}}/*.csv\"]\n"),
    )
    .unwrap();
    let s = run_json(&e, dir.path(), &[]);
    assert_eq!(
        (s["partitions"].clone(), s["partitions_new"].clone()),
        (130.into(), 130.into())
    );
    let registered = e.client(&["partitions", &db, "audit"]);
    let registered = registered.as_array().unwrap();
    assert_eq!(registered.len(), 130);
    assert_eq!(
        registered[0]["values"],
        serde_json::json!(["acme", "2024-01-01"])
    );
    assert_eq!(
        registered[129]["values"],
        serde_json::json!(["acme", "2024-05-09"])
    );
}

#[test]
fn a_run_killed_with_parts_in_flight_leaves_nothing_and_reruns_clean() {
    let Some(e) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bucket = e.fresh_bucket("parts");
    // One customer and day, written uncompressed: files of more than one 5 MiB part.
    let g = setup(
        &e,
        dir.path(),
        &bucket,
        &Shape {
            seed: 17,
            customers: &["acme"],
            days: 1,
            files_per_day: 4,
            rows_per_file: 30_000,
            bad_every: 0,
            all_gzip: true,
        },
    );
    let config = dir.path().join("citrine.toml");
    // One worker: when it stops at a part in flight, its upload is the one unfinished (a second
    // worker could be killed between starting its upload and recording it, one request apart:
    // the gap the design document owns to).
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "[catalog]",
            "compression = \"none\"\n[aws]\ns3_part_mb = 5\n[catalog]",
        )
        .replace("threads = 2", "threads = 1");
    std::fs::write(&config, text).unwrap();
    let env = e.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("CITRINE_TEST_STALL", "part_in_flight"));
    let mut child = common::stalled_with(dir.path(), &["run"], &all, "part_in_flight");
    child.kill().unwrap(); // SIGKILL with a part uploading
    child.wait().unwrap();
    // Nothing of it is visible: no data object, no marker. Its multipart upload is left
    // unfinished (S3 keeps the parts), and recorded by id.
    assert!(objects(&e, &bucket, "lake/data/").is_empty());
    assert!(objects(&e, &bucket, "lake/complete/").is_empty());
    let unfinished = e.client(&["uploads", &bucket, "lake/"]);
    let unfinished = unfinished.as_array().unwrap();
    assert_eq!(unfinished.len(), 1, "{unfinished:?}");
    for upload in unfinished {
        let key = upload["key"].as_str().unwrap();
        let record = format!(
            "lake/_citrine/uploads/{}",
            key.strip_prefix("lake/").unwrap()
        );
        assert_eq!(e.client(&["get", &bucket, &record]), upload["id"], "{key}");
    }
    // The rerun recovers from the run's journal and equals a clean run.
    let s = run_json(&e, dir.path(), &[]);
    assert_eq!(s["inputs_consumed"], g.files as u64);
    assert_eq!(counts(&e, &bucket), g.expected);
    let run_id = s["run_id"].as_str().unwrap();
    let data = objects(&e, &bucket, "lake/data/");
    assert_eq!(marker(&e, &bucket, run_id), data);
    // Larger than one part: written by multipart uploads.
    assert!(data.values().any(|&bytes| bytes > 5 << 20), "{data:?}");
    assert!(objects(&e, &bucket, "lake/_citrine/runs/").is_empty());
    // The killed run's upload was aborted by the rerun's recovery, and every upload of the
    // rerun completed: none is left, nor any record of one.
    assert_eq!(
        e.client(&["uploads", &bucket, "lake/"]),
        serde_json::json!([])
    );
    assert!(objects(&e, &bucket, "lake/_citrine/uploads/").is_empty());
}

#[test]
fn with_a_kms_key_every_object_written_is_sse_kms_encrypted() {
    let Some(e) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bucket = e.fresh_bucket("kms");
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    std::fs::create_dir_all(dir.path().join("logs/acme")).unwrap();
    std::fs::write(
        dir.path().join("logs/acme/a.csv"),
        "timestamp,user\n2024-03-01T00:00:00Z,alice\n2024-03-02T00:00:00Z,bob\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("citrine.toml"),
        format!("[lake]\nroot = \"s3://{bucket}/lake\"\n[aws]\nkms_key_arn = \"{key}\"\n[[table]]\nname = \"audit\"\nformat = \"audit\"\ninputs = [\"logs/{{customer}}/*.csv\"]\n"),
    )
    .unwrap();
    let s = run_json(&e, dir.path(), &[]);
    assert_eq!(s["rows_written"], 2);
    let written = objects(&e, &bucket, "lake/");
    // Data, report, marker, catalog, checkpoint: every one.
    assert!(written.len() >= 5, "{written:?}");
    for object in written.keys() {
        let head = e.client(&["head", &bucket, object]);
        assert_eq!(head["sse"], "aws:kms", "{object}");
        assert_eq!(head["kms_key"], key, "{object}");
    }
}

#[test]
fn a_config_too_large_for_the_environment_is_read_from_s3() {
    let Some(e) = endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bucket = e.fresh_bucket("cfgobj");
    let g = setup(&e, dir.path(), &bucket, &shape(83, &["acme"], 1));
    // Padded past the 4 KB a CloudFormation parameter or a Lambda's environment holds.
    let mut text = std::fs::read_to_string(dir.path().join("citrine.toml")).unwrap();
    text.push_str(&format!("\n# {}\n", "padding ".repeat(800)));
    assert!(text.len() > 4096);
    std::fs::remove_file(dir.path().join("citrine.toml")).unwrap();
    let upload = dir.path().join("config");
    std::fs::create_dir_all(&upload).unwrap();
    std::fs::write(upload.join("citrine.toml"), &text).unwrap();
    e.client(&["upload", &bucket, "configs", &upload.display().to_string()]);
    let location = format!("s3://{bucket}/configs/citrine.toml");
    let out = e.citrine(
        dir.path(),
        &["run", "--json"],
        &[("CITRINE_CONFIG", &location)],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(counts(&e, &bucket), g.expected);
    // A missing object is named.
    let missing = format!("s3://{bucket}/configs/nope.toml");
    let out = e.citrine(dir.path(), &["status"], &[("CITRINE_CONFIG", &missing)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("no config object at {missing}")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn notifications_are_merged_into_a_buckets_own() {
    let Some(e) = endpoint() else {
        return;
    };
    let inputs = e.fresh_bucket("notein");
    let lake = e.fresh_bucket("notelake");
    let queue = format!("arn:aws:sqs:us-east-1:123456789012:{inputs}-q");
    e.client(&["mkqueue", &format!("{inputs}-q")]);
    e.client(&["mkqueue", &format!("{inputs}-other")]);
    // The input bucket already notifies another queue, and EventBridge.
    let other = format!("arn:aws:sqs:us-east-1:123456789012:{inputs}-other");
    e.client(&["put-notifications", &inputs, &serde_json::json!({
        "QueueConfigurations": [{"Id": "theirs", "QueueArn": other, "Events": ["s3:ObjectRemoved:*"]}],
        "EventBridgeConfiguration": {}
    }).to_string()]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/s3-notifications.py");
    for _ in 0..2 {
        let mut cmd = std::process::Command::new(common::python().unwrap());
        cmd.arg(&script)
            .args([&queue, &inputs, "cloudfront/", &lake, "lake/"]);
        for (k, v) in e.env() {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = e.client(&["get-notifications", &inputs]);
    let ids: Vec<&str> = got["QueueConfigurations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["Id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["theirs", "citrine-inputs"], "{got:#}");
    // moto keeps no EventBridge setting (it answers none after one is put): the merge itself
    // is checked on S3's documented answer instead, EventBridge, topics and Lambdas kept.
    let merge = format!(
        "import importlib.util, json\nspec = importlib.util.spec_from_file_location('n', {:?})\nn = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(n)\ncurrent = {{'EventBridgeConfiguration': {{}}, 'TopicConfigurations': [{{'Id': 't', 'TopicArn': 'arn:aws:sns:us-east-1:1:t', 'Events': ['s3:ObjectCreated:*']}}], 'LambdaFunctionConfigurations': [], 'QueueConfigurations': [{{'Id': 'citrine-inputs', 'QueueArn': 'old'}}], 'ResponseMetadata': {{}}}}\nprint(json.dumps(n.merged(current, [{{'Id': 'citrine-inputs', 'QueueArn': 'new'}}])))",
        script.display().to_string()
    );
    let out = std::process::Command::new(common::python().unwrap())
        .args(["-c", &merge])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        merged,
        serde_json::json!({
            "EventBridgeConfiguration": {},
            "TopicConfigurations": [{"Id": "t", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Events": ["s3:ObjectCreated:*"]}],
            "LambdaFunctionConfigurations": [],
            "QueueConfigurations": [{"Id": "citrine-inputs", "QueueArn": "new"}]
        })
    );
    let got = e.client(&["get-notifications", &lake]);
    let rule = &got["QueueConfigurations"][0];
    assert_eq!(rule["Id"], "citrine-markers");
    assert_eq!(rule["QueueArn"], queue.as_str());
    assert_eq!(got["QueueConfigurations"].as_array().unwrap().len(), 1);
}
