//! The `citrine` binary as a user runs it: exit codes, messages naming the file, `--help`.

mod common;

use std::process::Command;

use common::fixture;

fn citrine(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_citrine"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn inspect_help_is_stable() {
    let out = citrine(&["inspect", "--help"]);
    assert!(out.status.success());
    insta::assert_snapshot!("inspect_help", String::from_utf8(out.stdout).unwrap());
}

#[test]
fn truncated_gzip_fails_that_file_only_with_exit_code_1() {
    let dir = std::env::temp_dir().join(format!("citrine-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gz = std::fs::read(fixture(
        "cloudfront/aws-log-parser-cloudfront-multiple.log.gz",
    ))
    .unwrap();
    let truncated = dir.join("E2.2019-12-04-21.cut.gz");
    std::fs::write(&truncated, &gz[..gz.len() / 2]).unwrap();
    let good = fixture("cloudfront/webreadr-log-aws.log");
    let out = citrine(&[
        "inspect",
        truncated.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("E2.2019-12-04-21.cut.gz"), "{stderr}");
    assert!(stderr.contains("truncated or corrupt gzip"), "{stderr}");
    // The good file after it is still inspected.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("rows:     2 read, 2 ok, 0 rejected"),
        "{stdout}"
    );
}

#[test]
fn no_full_address_reaches_the_terminal() {
    let out = citrine(&[
        "inspect",
        fixture("audit/acme/2024-03-01.csv").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for ip in [
        "203.0.113.17",
        "198.51.100.23",
        "2001:db8:4:5::9",
        "203.0.113.18",
    ] {
        assert!(!text.contains(ip), "{ip} leaked:\n{text}");
    }
}

#[test]
fn usage_errors_exit_with_2() {
    let out = citrine(&["inspect"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_aws_example_config_gives_its_iam_policy() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/aws.toml");
    let out = citrine(&["--config", config.to_str().unwrap(), "iam-policy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let policy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sids: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(
        sids,
        [
            "ListLakeCentralLogs",
            "WriteLakeCentralLogs",
            "ListInputsAcmeAudit",
            "ReadInputsAcmeAudit",
            "ListInputsAcmeCdnLogs",
            "ReadInputsAcmeCdnLogs",
            "GlueCatalog"
        ]
    );
    assert_eq!(
        policy["Statement"][6]["Resource"][2],
        "arn:aws:glue:eu-west-1:*:table/logs/cloudfront_logs"
    );
}

#[test]
fn the_config_comes_from_c_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[lake]\nroot = \"lake\"\n[[table]]\nname = \"from_env\"\nformat = \"cloudfront\"\ninputs = [\"logs/{customer}/\"]\n";
    std::fs::write(dir.path().join("other.toml"), text).unwrap();
    let status = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_citrine"));
        cmd.current_dir(dir.path())
            .args(args)
            .env_remove("CITRINE_CONFIG")
            .env_remove("CITRINE_CONFIG_TOML");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} {env:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains("from_env"), "{args:?} {env:?}: {stdout}");
    };
    status(&["-c", "other.toml", "status"], &[]);
    status(&["status"], &[("CITRINE_CONFIG", "other.toml")]);
    // The text itself (a container's or a Lambda's environment); --config still wins.
    status(&["status"], &[("CITRINE_CONFIG_TOML", text)]);
    status(
        &["--config", "other.toml", "status"],
        &[("CITRINE_CONFIG_TOML", "not toml")],
    );
}
