//! What deploys citrine: the CloudFormation templates in `deploy/` pass `cfn-lint` and say
//! what the README says they do, and the container image (when a Docker daemon is reachable)
//! builds and runs `citrine --version`.

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
    // plan -> array of shards -> commit, abort on failure; the shards find the planned run.
    for needle in [
        "\"plan\", \"--table\"",
        "ArrayProperties:",
        "[\"run\", \"--table\", \"${Table}\", \"--planned\"]",
        "[\"commit\", \"--table\", \"${Table}\", \"--planned\"]",
        "[\"abort\", \"--table\", \"${Table}\", \"--planned\"]",
        "RetryStrategy:",
        "AWS::Scheduler::Schedule",
        "PlatformCapabilities: [FARGATE]",
        "CITRINE_CONFIG_TOML",
    ] {
        assert!(batch.contains(needle), "batch.yaml lacks {needle}");
    }
    // A failed plan (another run holds the table) must not abort that other run.
    let plan_state = batch.split("          Plan:").nth(1).unwrap();
    let plan_state = plan_state.split("          Shards:").next().unwrap();
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
        "logs:PutLogEvents",
    ] {
        assert!(lambda.contains(needle), "lambda.yaml lacks {needle}");
    }
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
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("citrine {}", env!("CARGO_PKG_VERSION"))
    );
}
