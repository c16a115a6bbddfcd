//! Inputs that keep failing: attempts and the last error in `citrine status`, quarantine after
//! `run.max_attempts` (not tried, exit 0), `citrine forget` releasing one, and a rewritten
//! input tried again and consumed. `citrine forget` of a consumed input that wrote no rows.

mod common;

use std::path::Path;

use common::citrine;
use common::gen::{cloudfront, write_config, Shape};
use serde_json::Value;

fn run(dir: &Path) -> (Option<i32>, Value) {
    let out = citrine(dir, &["run", "--json"]);
    let summary = serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone();
    (out.status.code(), summary)
}

fn status(dir: &Path) -> String {
    let out = citrine(dir, &["status"]);
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout).unwrap()
}

/// One customer's `files` gzip logs, and a config whose `[run]` also has `run_extra`.
fn setup(seed: u64, files: u32, run_extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    cloudfront(
        dir.path(),
        &Shape {
            seed,
            customers: &["acme"],
            days: 1,
            files_per_day: files,
            rows_per_file: 10,
            bad_every: 0,
            all_gzip: true,
        },
    );
    write_config(dir.path(), "");
    let cfg = dir.path().join("citrine.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("threads = 2", &format!("threads = 2\n{run_extra}"));
    std::fs::write(&cfg, text).unwrap();
    dir
}

#[test]
fn an_input_failing_max_attempts_times_is_quarantined_until_released_or_changed() {
    let dir = setup(41, 2, "max_attempts = 2");
    let good = std::fs::read(common::fixture(
        "cloudfront/aws-log-parser-cloudfront-multiple.log.gz",
    ))
    .unwrap();
    let cut = dir
        .path()
        .join("logs/cloudfront/acme/E1.2024-02-01-00.cut.gz");
    std::fs::write(&cut, &good[..good.len() - 9]).unwrap();
    let uri = "logs/cloudfront/acme/E1.2024-02-01-00.cut.gz";

    // Two failed attempts: exit 1 each; the second quarantines it.
    let (code, s) = run(dir.path());
    assert_eq!(code, Some(1));
    assert_eq!(s["inputs_consumed"], 2);
    assert!(
        status(dir.path()).contains(&format!("  failing {uri} (1 attempts, last ")),
        "{}",
        status(dir.path())
    );
    let (code, _) = run(dir.path());
    assert_eq!(code, Some(1));
    let listed = status(dir.path());
    assert!(
        listed.contains(&format!("  quarantined {uri} (2 attempts, last "))
            && listed.contains("truncated or corrupt gzip stream"),
        "{listed}"
    );
    // Quarantined: not tried, not a failure.
    let (code, s) = run(dir.path());
    assert_eq!(code, Some(0));
    assert_eq!(s["inputs_quarantined"], 1);
    assert_eq!(s["inputs_failed"], serde_json::json!([]));
    assert_eq!(s["run_id"], Value::Null);

    // Released by hand: tried again (and fails again, attempt 1).
    let out = citrine(
        dir.path(),
        &["forget", "--table", "cloudfront_logs", "--input", uri],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("cloudfront_logs: {uri}: released; the next run tries it again")
    );
    let (code, s) = run(dir.path());
    assert_eq!(code, Some(1));
    assert_eq!(s["inputs_failed"][0]["uri"], uri);
    assert!(status(dir.path()).contains(&format!("  failing {uri} (1 attempts")));

    // Quarantined again, then fixed: a changed object is tried, consumed, and forgotten.
    run(dir.path());
    assert!(status(dir.path()).contains("  quarantined "));
    std::fs::write(&cut, &good).unwrap();
    let (code, s) = run(dir.path());
    assert_eq!(code, Some(0), "{s}");
    assert_eq!(s["inputs_consumed"], 1);
    assert!(!status(dir.path()).contains(uri));
    assert!(!dir
        .path()
        .join("lake/_citrine/failures/cloudfront_logs.json")
        .exists());

    // A consumed input whose rows were written needs --delete-rows: exit 2, saying why.
    let out = citrine(
        dir.path(),
        &["forget", "--table", "cloudfront_logs", "--input", uri],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("forgetting it needs --delete-rows"));
}

#[test]
fn a_consumed_input_that_wrote_no_rows_can_be_forgotten_and_is_processed_again() {
    // Every row of one input rejected is allowed here: it is consumed with no rows written.
    let dir = setup(43, 1, "max_reject_fraction = 1.0");
    let empty = "logs/cloudfront/acme/E1.2024-02-01-00.bad";
    std::fs::write(
        dir.path().join(empty),
        "#Version: 1.0\n#Fields: date time\n2024-02-01 not-a-time\n",
    )
    .unwrap();
    let (code, s) = run(dir.path());
    assert_eq!(code, Some(0), "{s}");
    assert_eq!(s["inputs_consumed"], 2);
    let good = common::files_below(&dir.path().join("logs"))
        .into_iter()
        .map(|f| format!("logs/{f}"))
        .find(|f| f != empty)
        .unwrap();
    // A forgotten zero-row input is processed again by the next run; others are not.
    let out = citrine(
        dir.path(),
        &["forget", "--table", "cloudfront_logs", "--input", empty],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("forgotten (consumed by run "));
    let (code, s) = run(dir.path());
    assert_eq!(code, Some(0));
    assert_eq!(s["inputs_consumed"], 1);
    assert_eq!(s["inputs_skipped"], 1);
    // An input whose rows were written is refused: that needs --delete-rows.
    let out = citrine(
        dir.path(),
        &["forget", "--table", "cloudfront_logs", "--input", &good],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("rows of it; forgetting it needs --delete-rows"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, s) = run(dir.path());
    assert_eq!(
        s["run_id"],
        Value::Null,
        "nothing new after the refused forget"
    );
}
