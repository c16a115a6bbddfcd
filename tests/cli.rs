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

/// The binary in `dir` with no config from the environment.
fn citrine_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_citrine"))
        .current_dir(dir)
        .args(args)
        .env_remove("CITRINE_CONFIG")
        .env_remove("CITRINE_CONFIG_TOML")
        .output()
        .unwrap()
}

#[test]
fn config_problems_are_reported_together_and_a_missing_config_says_how_to_pass_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = citrine_in(dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(2));
    let here = dir.path().display().to_string();
    let stderr = String::from_utf8(out.stderr)
        .unwrap()
        .replace(&here, "<dir>");
    insta::assert_snapshot!("missing_config", stderr);

    std::fs::write(
        dir.path().join("citrine.toml"),
        "[lake]\nroot = \"lake\"\ncompression = \"lz4\"\n\n[[table]]\nname = \"Bad Name\"\nformat = \"audit\"\ninputs = [\"in/\"]\n\n[[table]]\nname = \"ok\"\nformat = \"parquet\"\ninputs = [\"in/\"]\n\n[run]\nmax_attempts = 0\n",
    )
    .unwrap();
    let out = citrine_in(dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("config_problems", String::from_utf8(out.stderr).unwrap());

    // Under --log-format json every line on standard error is JSON.
    let out = citrine_in(dir.path(), &["--log-format", "json", "status"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    for line in stderr.lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect(line);
        assert_eq!(event["level"], "ERROR");
        assert!(event["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("4 problems in the config:"));
    }
    // Never ANSI escapes when standard error is not a terminal.
    assert!(!stderr.contains('\u{1b}'));
}

#[test]
fn status_json_completions_and_man() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("citrine.toml"),
        "[lake]\nroot = \"lake\"\n[[table]]\nname = \"audit\"\nformat = \"audit\"\ninputs = [\"in/{customer}/*.csv\"]\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("in/acme")).unwrap();
    std::fs::write(
        dir.path().join("in/acme/a.csv"),
        "timestamp,user\n2024-03-01T00:00:00Z,alice\n",
    )
    .unwrap();
    assert!(citrine_in(dir.path(), &["run"]).status.success());
    let out = citrine_in(dir.path(), &["status", "--json"]);
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let table = &status["tables"][0];
    assert_eq!(table["table"], "audit");
    assert_eq!(
        (table["runs"].as_u64(), table["ledger_inputs"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(table["partitions"], 1);
    assert_eq!(table["failing"], serde_json::json!([]));

    let out = citrine_in(dir.path(), &["completions", "bash"]);
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(
        script.contains("_citrine()") && script.contains("forget"),
        "{script}"
    );
    let out = citrine_in(dir.path(), &["man"]);
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH citrine 1"), "{page}");
    for command in ["run", "status", "forget", "redshift", "completions"] {
        assert!(
            page.contains(&format!("citrine\\-{command}")) || page.contains(command),
            "{command}"
        );
    }
}

/// Every command and subcommand has its manual page, with EXIT STATUS and ENVIRONMENT, printed
/// one by one or written all at once.
#[test]
fn every_command_has_its_manual_page() {
    let out = citrine(&["man", "redshift", "load"]);
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH citrine-redshift-load 1"), "{page}");
    assert!(page.contains("\\-\\-manifest"), "{page}");
    assert!(page.contains(".SH \"EXIT STATUS\"") && page.contains(".SH ENVIRONMENT"));
    assert!(page.contains("CITRINE_CONFIG_TOML") && page.contains("AWS_BATCH_JOB_ARRAY_INDEX"));
    let out = citrine(&["man", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let out = citrine(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    let pages = common::files_below(dir.path());
    for name in [
        "citrine.1",
        "citrine-run.1",
        "citrine-plan.1",
        "citrine-commit.1",
        "citrine-abort.1",
        "citrine-forget.1",
        "citrine-compact.1",
        "citrine-status.1",
        "citrine-repair.1",
        "citrine-catalog-sync.1",
        "citrine-iam-policy.1",
        "citrine-redshift-ddl.1",
        "citrine-redshift-copy.1",
        "citrine-redshift-load.1",
        "citrine-query.1",
        "citrine-inspect.1",
        "citrine-man.1",
        "citrine-completions.1",
    ] {
        assert!(pages.iter().any(|p| p == name), "{name} in {pages:?}");
    }
}

/// Every command that reports something says it as JSON with `--json`.
#[test]
fn reporting_commands_speak_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("citrine.toml"),
        "[lake]\nroot = \"lake\"\n[[table]]\nname = \"audit\"\nformat = \"audit\"\ninputs = [\"in/{customer}/*.csv\"]\n",
    )
    .unwrap();
    std::fs::create_dir_all(d.join("in/acme")).unwrap();
    std::fs::write(
        d.join("in/acme/a.csv"),
        "timestamp,user\n2024-03-01T00:00:00Z,alice\n",
    )
    .unwrap();
    let json = |args: &[&str]| -> serde_json::Value {
        let out = citrine_in(d, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    };
    let run = json(&["run", "--json"]);
    let run_id = run[0]["run_id"].as_str().unwrap().to_owned();
    let sync = json(&["catalog", "sync", "--json"]);
    assert_eq!(sync[0]["table"], "audit");
    assert_eq!(sync[0]["partitions"], 1);
    let repair = json(&["repair", "--json"]);
    assert_eq!(repair[0]["removed"], 0);
    let plan = json(&["plan", "--table", "audit", "--shards", "1", "--json"]);
    assert_eq!(plan["run_id"], serde_json::Value::Null, "{plan}");
    std::fs::write(
        d.join("in/acme/b.csv"),
        "timestamp,user\n2024-03-02T00:00:00Z,bob\n",
    )
    .unwrap();
    let plan = json(&["plan", "--table", "audit", "--shards", "1", "--json"]);
    assert!(plan["run_id"].is_string(), "{plan}");
    let abort = json(&["abort", "--table", "audit", "--planned", "--json"]);
    assert_eq!(abort["run_id"], plan["run_id"], "{abort}");
    let forget = json(&[
        "forget",
        "--table",
        "audit",
        "--run",
        &run_id,
        "--delete-rows",
        "--json",
    ]);
    assert_eq!(forget["rows_deleted"], 1, "{forget}");
    assert_eq!(forget["inputs"][0]["outcome"], "forgotten", "{forget}");
    let compact = json(&["compact", "--table", "audit", "--json"]);
    assert_eq!(compact["table"], "audit");
}
