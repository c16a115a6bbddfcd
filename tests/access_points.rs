//! S3 access points as the bucket of inputs and of the lake: `s3://<access point ARN>/…`.
//! moto's server does not route access points, so the test's own server (tests/support/
//! moto_server.py) serves `/ap/<name>/<key>` from the access point's bucket, as S3 does, and
//! records every request: the run reads its inputs and writes its lake through the access
//! points only, never naming either bucket. The Lambda's S3 event (which names the bucket)
//! matches the pattern on the access point through `[aws.access_points]`.

mod common;

use common::aws::OwnServer;

const ARN: &str = "arn:aws:s3:us-east-1:123456789012:accesspoint";

#[test]
fn inputs_and_lake_on_access_points_go_through_them_only() {
    if common::python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let record = d.join("requests.log");
    let Some(server) = OwnServer::start(&[
        (
            "CITRINE_TEST_ACCESS_POINTS",
            r#"{"in-ap": "ap-inputs", "lake-ap": "ap-lake"}"#,
        ),
        ("CITRINE_TEST_ACCESS_POINT_RECORD", record.to_str().unwrap()),
    ]) else {
        return;
    };
    let e = &server.endpoint;
    e.client(&["mkbucket", "ap-inputs"]);
    e.client(&["mkbucket", "ap-lake"]);
    let logs = d.join("logs");
    std::fs::create_dir_all(logs.join("acme")).unwrap();
    std::fs::copy(
        common::fixture("cloudfront/awsdocs-cloudfront-example.log"),
        logs.join("acme/E2.2019-12-04-21.a.log"),
    )
    .unwrap();
    e.client(&["upload", "ap-inputs", "logs", logs.to_str().unwrap()]);
    let config = format!(
        "[lake]\nroot = \"s3://{ARN}/lake-ap/lake\"\n\
             [aws]\ns3_access_point_endpoint = \"{}/ap/{{name}}\"\n\
             [aws.access_points]\n\"{ARN}/in-ap\" = \"ap-inputs\"\n\n\
             [[table]]\nname = \"cloudfront_logs\"\nformat = \"cloudfront\"\n\
             inputs = [\"s3://{ARN}/in-ap/logs/{{customer}}/\"]\nafter_commit = \"delete\"\n",
        e.url
    );
    std::fs::write(d.join("citrine.toml"), &config).unwrap();
    std::fs::write(&record, "").unwrap();
    let out = e.citrine(d, &["run", "--json"], &[]);
    let s: serde_json::Value = serde_json::from_str(&common::succeeded(&out)).unwrap();
    assert_eq!(
        (
            s[0]["inputs_consumed"].as_u64(),
            s[0]["rows_written"].as_u64()
        ),
        (Some(1), Some(6)),
        "{s}"
    );
    assert_eq!(s[0]["after_commit"]["deleted"], 1);

    // Every request of the run went through an access point, with the key as its path.
    let requests = std::fs::read_to_string(&record).unwrap();
    let lines: Vec<&str> = requests.lines().collect();
    assert!(lines.len() > 10, "{requests}");
    for line in &lines {
        let path = line.split(' ').nth(1).unwrap();
        assert!(
            path.starts_with("/ap/in-ap") || path.starts_with("/ap/lake-ap"),
            "a request not through an access point: {line}"
        );
    }
    for expected in [
        "GET /ap/in-ap?list-type=2",
        "GET /ap/in-ap/logs/acme/E2.2019-12-04-21.a.log",
        "POST /ap/in-ap?delete",
        "PUT /ap/lake-ap/lake/complete/cloudfront_logs/",
        "PUT /ap/lake-ap/lake/data/cloudfront_logs/customer=acme/dt=2019-12-04/",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "no {expected}: {requests}"
        );
    }
    // The lake's bucket holds the run; the input is gone from its bucket.
    let listed = e
        .client(&["list", "ap-lake", "lake/complete/cloudfront_logs/"])
        .to_string();
    assert!(listed.contains(".manifest"), "{listed}");
    let left = e.client(&["list", "ap-inputs", "logs/"]).to_string();
    assert!(!left.contains(".log"), "{left}");

    #[cfg(feature = "lambda")]
    lambda_event_names_the_bucket(e, d, &config);
}

/// An S3 notification of an object written through the access point names its bucket: the
/// pattern on the access point matches it (`[aws.access_points]`), and reads it through the
/// access point.
#[cfg(feature = "lambda")]
fn lambda_event_names_the_bucket(e: &common::aws::Endpoint, d: &std::path::Path, config: &str) {
    let logs = d.join("more");
    std::fs::create_dir_all(logs.join("globex")).unwrap();
    std::fs::copy(
        common::fixture("cloudfront/webreadr-log-aws.log"),
        logs.join("globex/E3.2014-05-23-01.b.log"),
    )
    .unwrap();
    e.client(&["upload", "ap-inputs", "logs", logs.to_str().unwrap()]);
    // The only code in this binary that reads the process environment, as a container does.
    for (k, v) in e.env() {
        std::env::set_var(k, v);
    }
    std::env::set_var("CITRINE_CONFIG_TOML", config);
    let env = citrine::lambda::LambdaEnv::from_env().unwrap();
    let event = serde_json::json!({"Records": [{
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": "ap-inputs", "arn": "arn:aws:s3:::ap-inputs"},
            "object": {"key": "logs/globex/E3.2014-05-23-01.b.log", "size": 1}
        }
    }]});
    let out = citrine::lambda::handle(&env, &event).unwrap();
    assert_eq!(out.runs.len(), 1, "{out:?}");
    assert_eq!(out.runs[0].inputs_consumed, 1, "{out:?}");
}
