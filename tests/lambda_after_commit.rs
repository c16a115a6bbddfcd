//! The Lambda handler with `after_commit = "delete"`: the originals of the objects an
//! invocation committed are deleted (against the local S3 server).
#![cfg(feature = "lambda")]

mod common;

use std::path::Path;

use citrine::lambda::{handle, LambdaEnv};

#[test]
fn the_lambda_deletes_the_originals_it_committed() {
    let Some(e) = common::aws::endpoint() else {
        return;
    };
    // The only test in this binary: it owns the process environment, as a container does.
    for (k, v) in e.env() {
        std::env::set_var(k, v);
    }
    let dir = tempfile::tempdir().unwrap();
    let bucket = e.fresh_bucket("lambdadel");
    let tree = dir.path().join("upload");
    for (key, sample) in [
        (
            "in/cloudfront/acme/E1.2019-12-04-21.first log.gz",
            "aws-log-parser-cloudfront-multiple.log.gz",
        ),
        (
            "in/cloudfront/globex/E2.2014-05-23-01.café.log",
            "webreadr-log-aws.log",
        ),
    ] {
        let to = tree.join(key);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(common::fixture(&format!("cloudfront/{sample}")), to).unwrap();
    }
    e.client(&["upload", &bucket, "", tree.to_str().unwrap()]);
    std::env::set_var(
        "CITRINE_CONFIG_TOML",
        format!("[lake]\nroot = \"s3://{bucket}/lake\"\n[[table]]\nname = \"cloudfront_logs\"\nformat = \"cloudfront\"\ninputs = [\"s3://{bucket}/in/cloudfront/{{customer}}/\"]\nafter_commit = \"delete\"\n"),
    );
    let env = LambdaEnv::from_env().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lambda/s3-put.json"),
    )
    .unwrap()
    .replace("{{BUCKET}}", &bucket);
    let out = handle(&env, &serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(out.runs.len(), 1);
    assert_eq!(out.runs[0].inputs_consumed, 2, "{out:?}");
    assert_eq!(out.runs[0].after_commit.deleted, 2);
    assert!(e
        .client(&["list", &bucket, "in/"])
        .as_array()
        .unwrap()
        .is_empty());
    // The committed run's marker is there.
    assert_eq!(
        e.client(&["list", &bucket, "lake/complete/"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["key"].as_str().unwrap().ends_with(".manifest"))
            .count(),
        1
    );
}
