//! The Lambda handler (`citrine::lambda::handle`, what the `bootstrap` binary runs) invoked
//! with real event JSON (fixtures/lambda/) against the local S3 server, one container's
//! environment for all invocations, asserting the lake afterwards: direct S3 events, S3 events
//! inside SQS messages (batch item failures per message, an input that fails returning its
//! message alone), S3's test event, a folder key, an
//! object gone since the event, a redelivered event, a batch that finds its table locked
//! (returned to the queue, counted), and a marker event loading Redshift once
//! (through an HTTP fake of the Data API).
#![cfg(feature = "lambda")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use citrine::lambda::{handle, LambdaEnv};
use common::aws::Endpoint;
use common::fake_api::fake_api;
use serde_json::{json, Value};

/// The queue the SQS fixtures' messages come from (`eventSourceARN`).
const FIXTURE_QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:citrine-inputs";

fn event(name: &str, bucket: &str, run: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/lambda")
        .join(name);
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("{{BUCKET}}", bucket)
        .replace("{{RUN}}", run)
        // Each test's own queue on the local server.
        .replace(
            FIXTURE_QUEUE,
            &format!("arn:aws:sqs:us-east-1:123456789012:{bucket}"),
        );
    serde_json::from_str(&text).unwrap()
}

fn put_file(e: &Endpoint, dir: &Path, bucket: &str, key: &str, sample: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/cloudfront")
        .join(sample);
    let tree = dir.join("upload");
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join(key).parent().unwrap()).unwrap();
    std::fs::copy(src, tree.join(key)).unwrap();
    e.client(&["upload", bucket, "", tree.to_str().unwrap()]);
}

fn markers(e: &Endpoint, bucket: &str) -> Vec<String> {
    e.client(&["list", bucket, "lake/complete/"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_owned())
        .filter(|k| k.ends_with(".manifest"))
        .collect()
}

#[test]
fn the_handler_on_real_events() {
    let Some(e) = common::aws::endpoint() else {
        return;
    };
    // The fake Data API answers the marker-triggered load.
    let (redshift, seen) = fake_api(|target, body, _| match target {
        "describestatement" => (
            200,
            json!({"Id": body["Id"], "Status": "FINISHED", "HasResultSet": false}),
        ),
        "getstatementresult" => (200, json!({"Records": [], "TotalNumRows": 0})),
        _ => (
            200,
            json!({"Id": format!("st-{}", body["StatementName"].as_str().unwrap_or(""))}),
        ),
    });
    // The only test in this binary: it owns the process environment, as a container does.
    for (k, v) in e.env() {
        std::env::set_var(k, v);
    }
    std::env::set_var("AWS_ENDPOINT_URL_REDSHIFT_DATA", &redshift);
    let dir = tempfile::tempdir().unwrap();
    let bucket = e.fresh_bucket("lambda");
    put_file(
        &e,
        dir.path(),
        &bucket,
        "in/cloudfront/acme/E1.2019-12-04-21.first log.gz",
        "aws-log-parser-cloudfront-multiple.log.gz",
    );
    put_file(
        &e,
        dir.path(),
        &bucket,
        "in/cloudfront/globex/E2.2014-05-23-01.café.log",
        "webreadr-log-aws.log",
    );
    let config = format!(
        "[lake]\nroot = \"s3://{bucket}/lake\"\n[[table]]\nname = \"cloudfront_logs\"\nformat = \"cloudfront\"\ninputs = [\"s3://{bucket}/in/cloudfront/{{customer}}/\"]\n[lambda]\nlock_wait_secs = 3\n[redshift]\nworkgroup = \"wg\"\ndatabase = \"dev\"\nsecret_arn = \"arn:aws:secretsmanager:us-east-1:1:secret:x\"\npoll_ms = 10\n"
    );
    std::env::set_var("CITRINE_CONFIG_TOML", &config);
    let env = LambdaEnv::from_env().unwrap();

    // A direct S3 event with two objects (URL-encoded keys): one run, one marker.
    let out = handle(&env, &event("s3-put.json", &bucket, "")).unwrap();
    assert_eq!(out.runs.len(), 1);
    let run = &out.runs[0];
    assert_eq!(run.inputs_consumed, 2, "{run:?}");
    assert_eq!(run.rows_read, run.rows_written + run.rows_rejected);
    let run_id = run.run_id.clone().unwrap();
    assert_eq!(
        markers(&e, &bucket),
        [format!("lake/complete/cloudfront_logs/{run_id}.manifest")]
    );
    let counts: BTreeMap<String, u64> =
        serde_json::from_value(e.client(&["counts", &bucket, "lake/data/cloudfront_logs"]))
            .unwrap();
    assert_eq!(counts.values().sum::<u64>(), run.rows_written);
    assert!(
        counts.keys().any(|k| k.starts_with("acme|"))
            && counts.keys().any(|k| k.starts_with("globex|"))
    );
    let report: Value = serde_json::from_str(
        e.client(&[
            "get",
            &bucket,
            &format!("lake/complete/cloudfront_logs/{run_id}.json"),
        ])
        .as_str()
        .unwrap(),
    )
    .unwrap();
    let uris: Vec<&str> = report["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        [
            format!("s3://{bucket}/in/cloudfront/acme/E1.2019-12-04-21.first log.gz"),
            format!("s3://{bucket}/in/cloudfront/globex/E2.2014-05-23-01.café.log")
        ]
    );

    // Redelivered: nothing new, no marker.
    let again = handle(&env, &event("s3-put.json", &bucket, "")).unwrap();
    assert_eq!(again.runs[0].run_id, None);
    assert_eq!(again.runs[0].inputs_skipped, 2);
    assert_eq!(markers(&e, &bucket).len(), 1);

    // SQS: a new object and a folder key in one message, an object that is gone in another.
    put_file(
        &e,
        dir.path(),
        &bucket,
        "in/cloudfront/acme/E1.2019-12-13-02.third.gz",
        "node-cloudfront-log-parser-web-1-0-2019-12.log",
    );
    let out = handle(&env, &event("sqs-s3.json", &bucket, "")).unwrap();
    assert!(out.batch_item_failures.is_empty(), "{out:?}");
    assert_eq!(out.runs.len(), 1);
    assert_eq!(out.runs[0].inputs_consumed, 1);
    assert_eq!(out.skipped.len(), 2, "{:?}", out.skipped);
    assert!(out.skipped.iter().any(|s| s.ends_with("acme/: folder key")));
    assert!(out.skipped.iter().any(|s| s.contains("gone.gz")));
    assert_eq!(markers(&e, &bucket).len(), 2);

    // SQS: an object that fails (a gzip cut short) is left unconsumed and its message alone
    // goes back to the queue; the good object of the same batch is committed.
    put_file(
        &e,
        dir.path(),
        &bucket,
        "in/cloudfront/globex/E2.2019-12-14-02.ok.log",
        "webreadr-log-aws.log",
    );
    let gz = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/cloudfront/aws-log-parser-cloudfront-multiple.log.gz"),
    )
    .unwrap();
    let tree = dir.path().join("upload");
    let _ = std::fs::remove_dir_all(&tree);
    let cut = tree.join("in/cloudfront/acme/E1.2019-12-14-02.cut.gz");
    std::fs::create_dir_all(cut.parent().unwrap()).unwrap();
    std::fs::write(&cut, &gz[..gz.len() - 9]).unwrap();
    e.client(&["upload", &bucket, "", tree.to_str().unwrap()]);
    let out = handle(&env, &event("sqs-poison.json", &bucket, "")).unwrap();
    assert_eq!(
        out.batch_item_failures,
        [json!({"itemIdentifier": "msg-cut"})]
    );
    assert_eq!(out.runs[0].inputs_consumed, 1);
    assert!(out.runs[0].inputs_failed[0]
        .error
        .starts_with("truncated or corrupt gzip"));
    assert_eq!(markers(&e, &bucket).len(), 3);

    // SQS while another run holds the table's lock past the wait (`lock_wait_secs = 3`): the
    // invocation waited, then sent each message to its queue again with a delay (a fresh
    // receive count), and returned none: the invocation succeeds, nothing is parked.
    e.client(&["mkqueue", &bucket]);
    let held = citrine::run::lock::TableLock::acquire(
        env.lake(),
        "cloudfront_logs",
        "other-run",
        std::time::Duration::from_secs(600),
        "run",
    )
    .unwrap();
    let out = handle(&env, &event("sqs-poison.json", &bucket, "")).unwrap();
    assert_eq!(out.lock_conflicts, 1);
    assert!(out.lock_waits >= 1, "{out:?}");
    assert_eq!(out.requeued, 2, "{out:?}");
    assert!(out.batch_item_failures.is_empty(), "{out:?}");
    assert!(out.runs.is_empty());
    let queue = e.client(&["queue", &bucket]);
    assert_eq!(queue["delayed"], 2, "both sent again, delayed: {queue}");
    held.release();
    assert_eq!(markers(&e, &bucket).len(), 3);
    // A queue that cannot be reached: the messages return the old way.
    e.client(&["rmqueue", &bucket]);
    let held = citrine::run::lock::TableLock::acquire(
        env.lake(),
        "cloudfront_logs",
        "other-run",
        std::time::Duration::from_secs(600),
        "run",
    )
    .unwrap();
    let out = handle(&env, &event("sqs-poison.json", &bucket, "")).unwrap();
    assert_eq!(out.requeued, 0, "{out:?}");
    assert_eq!(out.batch_item_failures.len(), 2, "{out:?}");
    held.release();

    // SQS: S3's test event is fine; a message that is not an S3 event is retried alone.
    let out = handle(&env, &event("sqs-test-and-garbage.json", &bucket, "")).unwrap();
    assert_eq!(
        out.batch_item_failures,
        [json!({"itemIdentifier": "msg-garbage"})]
    );
    assert!(out.runs.is_empty());

    // Direct events for a folder key and a missing object: skipped, nothing written.
    for name in ["s3-folder-key.json", "s3-missing-object.json"] {
        let out = handle(&env, &event(name, &bucket, "")).unwrap();
        assert!(
            out.runs.is_empty() && out.skipped.len() == 1,
            "{name}: {out:?}"
        );
    }
    assert_eq!(markers(&e, &bucket).len(), 3);

    // The marker event loads that run into Redshift, in one transaction.
    let out = handle(&env, &event("s3-marker.json", &bucket, &run_id)).unwrap();
    assert_eq!(out.loads.len(), 1);
    assert!(out.loads[0].loaded);
    let batches: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t == "batchexecutestatement")
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(batches.len(), 1);
    assert_eq!(
        batches[0]["StatementName"],
        format!("citrine-load-{run_id}")
    );
    let copy = batches[0]["Sqls"][2].as_str().unwrap();
    assert!(
        copy.contains(&format!(
            "FROM 's3://{bucket}/lake/complete/cloudfront_logs/{run_id}.manifest'"
        )),
        "{copy}"
    );
}
