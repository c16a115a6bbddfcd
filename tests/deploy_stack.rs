//! The templates of `deploy/` executed, not only linted: each is deployed as a CloudFormation
//! stack on a local AWS server (moto, through `tests/support/moto_server.py`), and the Batch
//! stack's state machine runs for real, its Batch jobs running the citrine binary (the job
//! definition's image is the binary's path there) against the same server's S3 and Glue, its
//! load going to a Redshift Data API that executes on PostgreSQL. Three paths:
//!
//! - work: plan → an array of shards of the size the plan wrote → commit → load, every step
//!   naming the plan's run; the lake exact, every row once in the warehouse;
//! - nothing new: the plan's handle says no shards, and no shard job is submitted;
//! - a failed shard (a child killed on every attempt): the run is aborted by its id, and the
//!   execution fails; a later run commits the inputs once.
//!
//! Every SubmitJob's parameters are checked against AWS's published constraints where the
//! server does not check them (an integer array size between 2 and 10,000; a command of
//! strings). What the server cannot create (resource types moto's CloudFormation lacks) is
//! asserted as an exact list, so that it is known what was not executed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::aws::{database_of, OwnServer};
use common::gen::{cloudfront, Shape};
use common::warehouse::{pg_port, Warehouse};
use serde_json::{json, Value};

const TABLE: &str = "cloudfront_logs";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn template(name: &str) -> String {
    root().join("deploy").join(name).display().to_string()
}

/// Deploy `name` as `stack` with `params`; the stack must be created.
fn deploy(e: &common::aws::Endpoint, stack: &str, name: &str, params: Value) -> Value {
    let out = e.client(&["deploy", stack, &template(name), &params.to_string()]);
    assert_eq!(out["status"], "CREATE_COMPLETE", "{name}: {out:#}");
    out
}

/// The job attempts the server ran, in order: (job name, array index, command, exit code).
fn jobs(record: &Path) -> Vec<(String, Option<u64>, Vec<String>, i64)> {
    let text = std::fs::read_to_string(record).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["job"].as_str().unwrap().to_owned(),
                v["index"].as_u64(),
                serde_json::from_value(v["command"].clone()).unwrap(),
                v["exit"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// AWS's published constraints on a SubmitJob request that moto does not check.
fn check_submit_job(p: &Value) {
    for key in ["JobName", "JobQueue", "JobDefinition"] {
        assert!(p[key].is_string(), "{key}: {p}");
    }
    let name = p["JobName"].as_str().unwrap();
    assert!(
        !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "a job name: {name}"
    );
    if let Some(size) = p.pointer("/ArrayProperties/Size") {
        let n = size
            .as_u64()
            .unwrap_or_else(|| panic!("ArrayProperties.Size must be an integer: {size}"));
        assert!((2..=10_000).contains(&n), "an array size of {n}");
    }
    let command = p["ContainerOverrides"]["Command"].as_array().unwrap();
    assert!(command.iter().all(Value::is_string), "{command:?}");
}

#[test]
fn the_batch_workflow_runs_work_nothing_new_and_a_failed_shard() {
    let Some(port) = pg_port() else { return };
    if common::python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("jobs.jsonl");
    let fail = dir.path().join("fail-jobs");
    // The warehouse's Data API reads COPY's objects from the server started below.
    let w = Warehouse::fresh(port, "sfn");
    let server_url: std::sync::Arc<std::sync::OnceLock<common::aws::Endpoint>> =
        std::sync::Arc::default();
    let reader = server_url.clone();
    let (api, _) = w.data_api_reading(std::sync::Arc::new(move |url: &str| {
        let (bucket, key) = url.strip_prefix("s3://").unwrap().split_once('/').unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().display().to_string();
        reader
            .get()
            .unwrap()
            .client(&["download", bucket, key, &path]);
        std::fs::read(file.path()).unwrap()
    }));
    let Some(server) = OwnServer::start(&[
        ("CITRINE_TEST_JOB_RECORD", record.to_str().unwrap()),
        ("CITRINE_TEST_FAIL_JOBS", fail.to_str().unwrap()),
        ("AWS_ENDPOINT_URL_REDSHIFT_DATA", &api),
    ]) else {
        return;
    };
    let e = &server.endpoint;
    let _ = server_url.set(e.clone());
    e.post_config(
        json!({"stepfunctions": {"execute_state_machine": true}, "batch": {"use_docker": false}}),
    );

    let bucket = e.fresh_bucket("sfn");
    let db = database_of(&bucket);
    let generate = |seed: u64, customers: &'static [&'static str]| {
        let batch = dir.path().join(format!("batch-{seed}"));
        let g = cloudfront(
            &batch,
            &Shape {
                seed,
                customers,
                days: 2,
                files_per_day: 2,
                rows_per_file: 25,
                bad_every: 0,
                all_gzip: true,
            },
        );
        e.client(&[
            "upload",
            &bucket,
            "logs",
            &batch.join("logs").display().to_string(),
        ]);
        g.expected
    };
    let mut expected = generate(1, &["acme", "globex", "initech"]);
    let config = format!(
        "[lake]\nroot = \"s3://{bucket}/lake\"\n[catalog]\nkind = \"glue\"\ndatabase = \"{db}\"\n[run]\nthreads = 2\n\n[[table]]\nname = \"{TABLE}\"\nformat = \"cloudfront\"\ninputs = [\"s3://{bucket}/logs/cloudfront/{{customer}}/\"]\n\n{}",
        common::warehouse::REDSHIFT
    );
    // The warehouse table, created once as `redshift ddl` declares it (from a local lake of
    // the same inputs: the DDL follows the table's columns and its values' widths).
    create_warehouse_table(&w, dir.path(), &dir.path().join("batch-1/logs"));
    let policy = dir.path().join("policy.json");
    std::fs::write(config_path(dir.path()), &config).unwrap();
    let iam = common::succeeded(&common::citrine_env(
        dir.path(),
        &["iam-policy", "--for", "batch"],
        &[],
    ));
    std::fs::write(&policy, iam).unwrap();
    let policy_arn = e.client(&["policy", "citrine-batch", policy.to_str().unwrap()])["arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let service_role = e.client(&["role", "batch-service", "batch.amazonaws.com"])["arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let net = e.client(&["network"]);
    let subnets: Vec<String> = serde_json::from_value(net["subnets"].clone()).unwrap();
    let stack = deploy(
        e,
        "citrine-batch",
        "batch.yaml",
        json!({
            "ContainerImage": env!("CARGO_BIN_EXE_citrine"),
            "ConfigToml": config,
            "TableName": TABLE,
            "LakeBucket": bucket,
            "LakePrefix": "lake/",
            "TargetShardGb": "0.000001",
            "MaxShards": "3",
            "CitrinePolicyArn": policy_arn,
            "BatchServiceRoleArn": service_role,
            "Subnets": subnets.join(","),
            "SecurityGroups": net["security_group"],
        }),
    );
    let machine = stack["outputs"]["StateMachineArn"]
        .as_str()
        .unwrap()
        .to_owned();
    // What moto's CloudFormation cannot create, exactly (so each is known not executed).
    assert_eq!(
        stack["skipped"],
        json!(["FailedRunsAlarm", "Schedule", "TimedOutRunsAlarm"]),
        "{stack:#}"
    );

    // 1. Work: plan -> 3 shards -> commit -> load.
    let work = e.client(&["run-state-machine", &machine, "work-1"]);
    assert_eq!(work["status"], "SUCCEEDED", "{work:#}");
    assert_eq!(
        work["states"],
        json!([
            "Plan",
            "ReadPlan",
            "AnythingNew",
            "Shards",
            "Commit",
            "LoadWanted",
            "Load"
        ]),
        "{work:#}"
    );
    let ran = jobs(&record);
    let run = run_of(&ran, "citrine-commit");
    let marker = format!("s3://{bucket}/lake/complete/{TABLE}/{run}.manifest");
    let want: Vec<(&str, Option<u64>, Vec<String>)> = vec![
        ("citrine-plan", None, plan_command("work-1")),
        ("citrine-shards", Some(0), shard_command(&run)),
        ("citrine-shards", Some(1), shard_command(&run)),
        ("citrine-shards", Some(2), shard_command(&run)),
        (
            "citrine-commit",
            None,
            strings(&["commit", "--table", TABLE, "--run-id", &run]),
        ),
        (
            "citrine-load",
            None,
            strings(&["redshift", "load", "--manifest", &marker]),
        ),
    ];
    assert_eq!(without_exit(&ran), want);
    assert!(ran.iter().all(|j| j.3 == 0), "{ran:?}");
    for s in work["scheduled"].as_array().unwrap() {
        if s["resource"] == "submitJob.sync" {
            check_submit_job(&s["parameters"]);
        }
    }
    let shards = work["scheduled"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "Shards")
        .unwrap();
    assert_eq!(shards["parameters"]["ArrayProperties"]["Size"], json!(3));
    let state = table_state(e, &bucket, &db);
    assert_exact(&state, &expected, "after the work path");
    assert_eq!(state["markers"], json!([run]));
    assert_eq!(warehouse_rows(&w), total(&expected), "loaded once");

    // 2. Nothing new: the plan alone; no shard job submitted.
    std::fs::remove_file(&record).unwrap();
    let idle = e.client(&["run-state-machine", &machine, "idle-1"]);
    assert_eq!(idle["status"], "SUCCEEDED", "{idle:#}");
    assert_eq!(
        idle["states"],
        json!(["Plan", "ReadPlan", "AnythingNew", "NothingNew"])
    );
    assert_eq!(
        without_exit(&jobs(&record)),
        vec![("citrine-plan", None, plan_command("idle-1"))]
    );

    // 3. A failed shard: child 1 is killed on every attempt; the run is aborted by its id.
    std::fs::remove_file(&record).unwrap();
    let more = generate(2, &["acme", "umbrella"]);
    std::fs::write(&fail, "citrine-shards:1").unwrap();
    let failed = e.client(&["run-state-machine", &machine, "fail-1"]);
    assert_eq!(failed["status"], "FAILED", "{failed:#}");
    assert_eq!(failed["error"], "CitrineRunFailed");
    assert_eq!(
        failed["states"],
        json!([
            "Plan",
            "ReadPlan",
            "AnythingNew",
            "Shards",
            "Abort",
            "Failed"
        ])
    );
    let ran = jobs(&record);
    let aborted = run_of(&ran, "citrine-abort");
    assert_ne!(aborted, run);
    let attempts = |name: &str, index: Option<u64>| {
        ran.iter()
            .filter(|j| j.0 == name && j.1 == index)
            .map(|j| j.3)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        attempts("citrine-shards", Some(1)),
        [137, 137, 137],
        "{ran:?}"
    );
    assert_eq!(attempts("citrine-shards", Some(0)), [0]);
    assert_eq!(attempts("citrine-abort", None), [0]);
    assert!(ran.iter().all(|j| j.0 != "citrine-commit"), "{ran:?}");
    assert!(ran
        .iter()
        .filter(|j| j.0 != "citrine-plan")
        .all(|j| j.2.contains(&aborted)));
    // Nothing of the aborted run is left, the table is free, and the lake is the first run's.
    let state = table_state(e, &bucket, &db);
    assert_exact(&state, &expected, "after the aborted run");
    assert_eq!(state["lock"], false);
    // The next execution commits the new inputs once.
    std::fs::write(&fail, "").unwrap();
    let again = e.client(&["run-state-machine", &machine, "work-2"]);
    assert_eq!(again["status"], "SUCCEEDED", "{again:#}");
    for (k, n) in more {
        *expected.entry(k).or_default() += n;
    }
    let state = table_state(e, &bucket, &db);
    assert_exact(&state, &expected, "after the next run");
    assert_eq!(warehouse_rows(&w), total(&expected), "every row once");
}

#[test]
fn the_lake_and_lambda_templates_deploy() {
    if common::python().is_none() {
        return;
    }
    let Some(server) = OwnServer::start(&[]) else {
        return;
    };
    let e = &server.endpoint;
    let lake = deploy(
        e,
        "citrine-lake",
        "lake.yaml",
        json!({"LakeBucketName": "citrine-lake-deploy"}),
    );
    assert_eq!(lake["skipped"], json!(["GlueDatabase"]), "{lake:#}");
    let code = e.fresh_bucket("code");
    let dir = tempfile::tempdir().unwrap();
    // moto stores the function without running it: any zip deploys.
    let zip = dir.path().join("upload/citrine-lambda-x86_64.zip");
    std::fs::create_dir_all(zip.parent().unwrap()).unwrap();
    std::fs::write(&zip, b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0").unwrap();
    e.client(&[
        "upload",
        &code,
        "",
        &dir.path().join("upload").display().to_string(),
    ]);
    // The Batch stack with the VPC endpoints private subnets without a NAT need.
    let net = e.client(&["network"]);
    let subnets: Vec<String> = serde_json::from_value(net["subnets"].clone()).unwrap();
    let role = e.client(&["role", "batch-service", "batch.amazonaws.com"])["arn"].clone();
    let batch = deploy(
        e,
        "citrine-batch-private",
        "batch.yaml",
        json!({
            "ContainerImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/citrine:latest",
            "CpuArchitecture": "ARM64",
            "ConfigLocation": "s3://configs/citrine.toml",
            "TableName": TABLE,
            "LakeBucket": "citrine-lake-deploy",
            "CitrinePolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "BatchServiceRoleArn": role,
            "Subnets": subnets.join(","),
            "SecurityGroups": net["security_group"],
            "CreateVpcEndpoints": "true",
            "VpcId": net["vpc"],
            "RouteTableIds": net["route_table"],
        }),
    );
    for endpoint in [
        "S3Endpoint",
        "EcrApiEndpoint",
        "EcrDkrEndpoint",
        "LogsEndpoint",
        "StsEndpoint",
        "GlueEndpoint",
        "EndpointSecurityGroup",
    ] {
        assert!(
            batch["resources"].get(endpoint).is_some(),
            "{endpoint}: {batch:#}"
        );
    }
    let lambda = deploy(
        e,
        "citrine-lambda",
        "lambda.yaml",
        json!({
            "CodeBucket": code,
            "ConfigToml": "[lake]\nroot = \"s3://citrine-lake-deploy/lake\"\n",
            "InputBucket": "inputs",
            "LakeBucket": "citrine-lake-deploy",
            "CitrinePolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess",
        }),
    );
    assert_eq!(
        lambda["skipped"],
        json!([
            "DeadLetterAlarm",
            "ErrorsAlarm",
            "InputsFailedAlarm",
            "QueuePolicy",
            "RowsRejectedAlarm"
        ]),
        "{lambda:#}"
    );
}

fn config_path(dir: &Path) -> std::path::PathBuf {
    dir.join("citrine.toml")
}

/// Create the table in `w` as `citrine redshift ddl` declares it for a local lake of `logs`.
fn create_warehouse_table(w: &Warehouse, dir: &Path, logs: &Path) {
    let local = dir.join("local");
    let mut cp = std::process::Command::new("cp");
    cp.args([
        "-r",
        logs.to_str().unwrap(),
        local.join("logs").to_str().unwrap(),
    ]);
    std::fs::create_dir_all(&local).unwrap();
    assert!(cp.status().unwrap().success());
    std::fs::write(
        local.join("citrine.toml"),
        format!(
            "[lake]\nroot = \"lake\"\n[[table]]\nname = \"{TABLE}\"\nformat = \"cloudfront\"\ninputs = [\"logs/cloudfront/{{customer}}/\"]\n\n{}",
            common::warehouse::REDSHIFT
        ),
    )
    .unwrap();
    common::run_ok(&local);
    let ddl = common::succeeded(&common::citrine(
        &local,
        &["redshift", "ddl", "--table", TABLE],
    ));
    w.sql(&common::warehouse::translate(&ddl), true).unwrap();
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| (*x).to_owned()).collect()
}

fn plan_command(name: &str) -> Vec<String> {
    strings(&[
        "plan",
        "--table",
        TABLE,
        "--target-shard-gb",
        "0.000001",
        "--max-shards",
        "3",
        "--lease-minutes",
        "240",
        "--name",
        name,
    ])
}

fn shard_command(run: &str) -> Vec<String> {
    strings(&["run", "--table", TABLE, "--run-id", run])
}

/// The run id a job named `job` was given (`--run-id R`).
fn run_of(ran: &[(String, Option<u64>, Vec<String>, i64)], job: &str) -> String {
    let command = &ran
        .iter()
        .find(|j| j.0 == job)
        .unwrap_or_else(|| panic!("no {job}: {ran:?}"))
        .2;
    let at = command.iter().position(|a| a == "--run-id").unwrap();
    command[at + 1].clone()
}

fn without_exit(
    ran: &[(String, Option<u64>, Vec<String>, i64)],
) -> Vec<(&str, Option<u64>, Vec<String>)> {
    let mut out: Vec<_> = ran
        .iter()
        .map(|j| (j.0.as_str(), j.1, j.2.clone()))
        .collect();
    out.dedup();
    out
}

fn table_state(e: &common::aws::Endpoint, bucket: &str, db: &str) -> Value {
    let lake = format!("s3://{bucket}/lake");
    common::python_json("tests/support/table_state.py", &[&lake, TABLE, db], e.env())
}

fn total(expected: &BTreeMap<String, u64>) -> (u64, u64) {
    let n: u64 = expected.values().sum();
    (n, n)
}

fn assert_exact(s: &Value, expected: &BTreeMap<String, u64>, context: &str) {
    let n: u64 = expected.values().sum();
    assert_eq!(
        (s["rows"].as_u64(), s["distinct_rows"].as_u64()),
        (Some(n), Some(n)),
        "{context}: {s:#}"
    );
    let counts: BTreeMap<String, u64> = serde_json::from_value(s["counts"].clone()).unwrap();
    assert_eq!(&counts, expected, "{context}");
    for empty in [
        "marker_problems",
        "unlisted",
        "journals",
        "reports_without_marker",
    ] {
        assert_eq!(s[empty], json!([]), "{context}: {empty}: {s:#}");
    }
    assert_eq!(s["catalog"], s["partitions"], "{context}");
}

fn warehouse_rows(w: &Warehouse) -> (u64, u64) {
    let rows = w
        .sql(
            &format!("SELECT count(*), count(DISTINCT (source_file, row_num)) FROM logs.{TABLE};"),
            false,
        )
        .unwrap_or_default();
    rows.first()
        .map_or((0, 0), |r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
}
