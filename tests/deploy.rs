//! What deploys citrine: the CloudFormation templates in `deploy/` pass `cfn-lint` and say
//! what the guide says they do (tests/deploy_stack.rs deploys and runs them), the Dockerfile
//! passes hadolint, and the container image (when a Docker daemon is reachable) builds and
//! runs `citrine --version`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn templates() -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(root().join("deploy"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    all.sort();
    all
}

#[test]
fn every_template_passes_cfn_lint() {
    let Some(python) = common::python() else {
        return;
    };
    let lint = python.with_file_name("cfn-lint");
    let templates = templates();
    assert_eq!(templates.len(), 3, "{templates:?}");
    let out = Command::new(&lint)
        .args(&templates)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/python-env installs it)", lint.display()));
    assert!(
        out.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_templates_wire_what_the_protocol_needs() {
    let read = |name: &str| std::fs::read_to_string(root().join("deploy").join(name)).unwrap();
    let batch = read("batch.yaml");
    // plan (named after the execution) -> its run's shards -> commit -> load; every step
    // names the run; abort of that run on failure.
    for needle in [
        "States.Array('plan', '--table', '${Table}'",
        "'--name', $$.Execution.Name)",
        "Size.$: $.shards",
        "States.Array('run', '--table', '${Table}', '--run-id', $.run_id)",
        "States.Array('commit', '--table', '${Table}', '--run-id', $.run_id)",
        "States.Array('abort', '--table', '${Table}', '--run-id', $.run_id)",
        "States.Array('redshift', 'load', '--manifest', $.marker)",
        "RetryStrategy:",
        "AWS::Scheduler::Schedule",
        "PlatformCapabilities: [FARGATE]",
        "RuntimePlatform:",
        "CITRINE_CONFIG_TOML",
        "LoggingConfiguration:",
        "AWS::CloudWatch::Alarm",
    ] {
        assert!(batch.contains(needle), "batch.yaml lacks {needle}");
    }
    // No step acts on whatever run holds the table.
    assert!(!batch.contains("--planned"), "batch.yaml names its run");
    // A failed plan (another run holds the table) must not abort that other run.
    let plan_state = batch.split("          Plan:").nth(1).unwrap();
    let plan_state = plan_state.split("          ReadPlan:").next().unwrap();
    assert!(!plan_state.contains("Catch"), "the plan step has no abort");
    let lambda = read("lambda.yaml");
    for needle in [
        "Runtime: provided.al2023",
        "ReportBatchItemFailures",
        "MaximumBatchingWindowInSeconds",
        "MaximumConcurrency",
        "deadLetterTargetArn",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",
        "logs:PutLogEvents",
        "AWS::CloudWatch::Alarm",
        "DeletionPolicy: Retain",
    ] {
        assert!(lambda.contains(needle), "lambda.yaml lacks {needle}");
    }
    assert!(
        !lambda.contains("ChangeMessageVisibility"),
        "granted only what is used"
    );
    let lake = read("lake.yaml");
    assert!(lake.contains("AbortIncompleteMultipartUpload"));
    assert!(lake.contains("AWS::Glue::Database"));
}

#[test]
fn the_image_builds_and_runs_citrine() {
    let daemon = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !daemon {
        eprintln!("SKIPPED: docker build of the image (no Docker daemon reachable here)");
        return;
    }
    let tag = format!("citrine-test:{}", std::process::id());
    let build = Command::new("docker")
        .args(["build", "-t", &tag, "."])
        .current_dir(root())
        .status()
        .unwrap();
    assert!(build.success(), "docker build");
    let out = Command::new("docker")
        .args(["run", "--rm", &tag, "--version"])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", &tag]).status();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .starts_with(&format!("citrine {} (build ", env!("CARGO_PKG_VERSION"))),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let Some(python) = common::python() else {
        return;
    };
    let hadolint = python.with_file_name("hadolint");
    let out = Command::new(&hadolint)
        .arg("Dockerfile")
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (scripts/python-env installs it)",
                hadolint.display()
            )
        });
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
