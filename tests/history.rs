//! A run's fixed cost does not grow with the table's history: after 2,000 committed runs (and
//! 300 on the local S3 server), a run with nothing new makes the same few requests to the lake
//! as after 10, counted by a store that counts them. A checkpoint that is damaged or gone
//! changes the cost, never the plan.

mod common;

use std::path::Path;
use std::sync::Arc;

use citrine::config::{ConfigFile, Job};
use citrine::lake::Lake;
use citrine::run::{run_table_on, NoProgress, TableSummary};
use citrine::store::{CountingStore, LocalStore, Requests, Stores};
use common::gen::{client_ip, cloudfront_row, Seeded, FIELDS};

/// Requests a run with nothing new may make to the lake, whatever the history: the lock (1 to
/// take, 2 to release), recovery (a listing of the run journals and one of the lock's folder),
/// the ledger (a listing of checkpoints, the newest read, one listing of the markers after it,
/// at most 3 reports replayed).
const NO_OP_BOUND: u64 = 11;

fn job(dir: &Path, root: &str, extra: &str) -> Job {
    let text = format!(
        "[lake]\nroot = \"{root}\"\n{extra}\n[run]\nthreads = 1\n\n[[table]]\nname = \"cloudfront_logs\"\nformat = \"cloudfront\"\ninputs = [\"logs/cloudfront/{{customer}}/\"]\n"
    );
    ConfigFile::parse(&text, "citrine.toml")
        .unwrap()
        .validate(dir)
        .unwrap()
}

/// One small CloudFront log, `i`, for customer `acme`.
fn input(dir: &Path, i: u32) -> std::path::PathBuf {
    let mut r = Seeded(u64::from(i) + 1);
    let (a, b) = (client_ip(&mut r), client_ip(&mut r));
    let path = dir.join(format!("logs/cloudfront/acme/E1.2024-01-01-00.{i:05}"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text = format!(
        "#Version: 1.0\n{FIELDS}\n{}",
        cloudfront_row("2024-01-01", "00:00:01", "1", &a, &b, i, 443)
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// One run on `lake`, with the requests it made.
fn run(job: &Job, lake: &Lake, counter: &CountingStore) -> (TableSummary, Requests) {
    let before = counter.requests();
    let summary = run_table_on(
        job,
        &Stores::new(job.aws.clone()),
        lake,
        &job.tables[0],
        &NoProgress,
    )
    .unwrap();
    (summary, counter.requests() - before)
}

/// Commit runs `from..to`, one input each; the input is removed once consumed, so each run
/// lists one file and the cost measured is the lake's.
fn commit_runs(dir: &Path, job: &Job, lake: &Lake, counter: &CountingStore, from: u32, to: u32) {
    for i in from..to {
        let path = input(dir, i);
        let (s, _) = run(job, lake, counter);
        assert_eq!(s.inputs_consumed, 1, "run {i}: {s:?}");
        std::fs::remove_file(path).unwrap();
    }
}

/// A folder for a lake of thousands of runs: in memory where the machine has one, so the test
/// counts requests instead of waiting on ten fsyncs a run.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

#[test]
fn a_no_op_run_costs_the_same_after_ten_or_two_thousand_runs() {
    let dir = scratch();
    let d = dir.path();
    std::fs::create_dir_all(d.join("logs/cloudfront/acme")).unwrap();
    let job = job(d, "lake", "");
    let counter = CountingStore::new(Arc::new(LocalStore::new(&d.join("lake")).unwrap()));
    let lake = Lake::new(Arc::new(counter.clone()));
    let mut costs = Vec::new();
    let mut done = 0;
    for n in [10, 100, 2000] {
        commit_runs(d, &job, &lake, &counter, done, n);
        done = n;
        let (s, requests) = run(&job, &lake, &counter);
        assert_eq!((s.run_id.as_deref(), s.inputs_listed), (None, 0));
        assert!(s.ledger.checkpoint.is_some(), "{:?}", s.ledger);
        assert!(s.ledger.replayed < 4, "{:?}", s.ledger);
        println!(
            "after {n} runs: a no-op run made {requests:?} ({} in all)",
            requests.total()
        );
        assert!(
            requests.total() <= NO_OP_BOUND,
            "after {n} runs: {requests:?}"
        );
        costs.push(requests.total());
    }
    // What history there is does not show in the cost: the differences are the replayed tail.
    assert!(
        costs.iter().max().unwrap() - costs.iter().min().unwrap() <= 7,
        "{costs:?}"
    );

    // A consumed input copied again and a new one: the plan with the checkpoint...
    let again = input(d, 1999);
    let new = input(d, 5000);
    let plan = |lake: &Lake| {
        let (s, requests) = run(&job, lake, &counter);
        (
            s.inputs_skipped,
            s.inputs_consumed,
            s.ledger.clone(),
            requests,
        )
    };
    let with = plan(&lake);
    assert_eq!((with.0, with.1), (1, 1));
    assert!(with.2.fallback.is_none());
    std::fs::remove_file(&new).unwrap();
    // ...and with it damaged, then gone: the same decisions, from every report.
    let store = LocalStore::new(&d.join("lake")).unwrap();
    let checkpoints = |s: &LocalStore| -> Vec<String> {
        use citrine::store::Store;
        s.list("_citrine/ledger/cloudfront_logs")
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect()
    };
    for damage in ["corrupt", "delete"] {
        let key = checkpoints(&store).pop().expect("a checkpoint");
        {
            use citrine::store::Store;
            if damage == "corrupt" {
                store.write(&key, b"\x28\xb5\x2f\xfd garbage").unwrap();
            } else {
                store.delete(&key).unwrap();
            }
        }
        let newer = input(d, 6000 + u32::from(damage == "delete"));
        let (skipped, consumed, ledger, requests) = plan(&lake);
        assert_eq!((skipped, consumed), (1, 1), "{damage}");
        assert_eq!(ledger.checkpoint, None, "{damage}");
        assert_eq!(
            ledger.fallback.is_some(),
            damage == "corrupt",
            "{damage}: {ledger:?}"
        );
        assert!(ledger.replayed >= 2000, "{damage}: {ledger:?}");
        assert!(
            requests.reads >= 2000,
            "{damage}: the price is paid in reads"
        );
        std::fs::remove_file(newer).unwrap();
        // The run that paid for the replay wrote a fresh checkpoint: cheap again.
        let (_, requests) = run(&job, &lake, &counter);
        assert!(requests.total() <= NO_OP_BOUND, "{damage}: {requests:?}");
    }
    let _ = again;
}

#[test]
fn on_the_s3_server_a_no_op_run_costs_the_same_after_ten_or_three_hundred_runs() {
    let Some(e) = common::aws::endpoint() else {
        return;
    };
    // The only test here that reads the process environment (the AWS chain).
    for (k, v) in e.env() {
        std::env::set_var(k, v);
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("logs/cloudfront/acme")).unwrap();
    let bucket = e.fresh_bucket("history");
    let job = job(d, &format!("s3://{bucket}/lake"), "");
    let stores = Stores::new(job.aws.clone());
    let s3 = stores
        .open(&citrine::store::Location::S3 {
            bucket: bucket.clone(),
            prefix: "lake".into(),
        })
        .unwrap();
    let counter = CountingStore::new(s3);
    let lake = Lake::new(Arc::new(counter.clone()));
    let mut costs = Vec::new();
    let mut done = 0;
    for n in [10, 300] {
        commit_runs(d, &job, &lake, &counter, done, n);
        done = n;
        let (s, requests) = run(&job, &lake, &counter);
        assert_eq!(s.run_id, None);
        println!("S3, after {n} runs: a no-op run made {requests:?}");
        assert!(
            requests.total() <= NO_OP_BOUND,
            "after {n} runs: {requests:?}"
        );
        costs.push(requests.total());
    }
    assert!(costs[1] <= costs[0] + 3, "{costs:?}");
}

/// An Iceberg table: a no-op run reads nothing of the table's metadata (the same requests as a
/// Hive table's), and a run that commits (its data file, a manifest, a manifest list, the next
/// metadata file, the catalog's pointer) makes as many requests after 300 runs as after 10;
/// what grows with history is the size of the metadata file and manifest list it rewrites,
/// which `compact --expire-after` bounds.
#[test]
fn an_iceberg_tables_runs_cost_the_same_after_ten_or_three_hundred_runs() {
    let dir = scratch();
    let d = dir.path();
    std::fs::create_dir_all(d.join("logs/cloudfront/acme")).unwrap();
    let job = job(d, "lake", "table_format = \"iceberg\"");
    let counter = CountingStore::new(Arc::new(LocalStore::new(&d.join("lake")).unwrap()));
    let lake = Lake::new(Arc::new(counter.clone()));
    let (mut no_op, mut commit) = (Vec::new(), Vec::new());
    let mut done = 0;
    for n in [10, 300] {
        commit_runs(d, &job, &lake, &counter, done, n - 1);
        let path = input(d, n - 1);
        let (s, requests) = run(&job, &lake, &counter);
        assert_eq!(s.inputs_consumed, 1, "{s:?}");
        std::fs::remove_file(path).unwrap();
        done = n;
        let (s, idle) = run(&job, &lake, &counter);
        assert_eq!(s.run_id, None);
        println!(
            "Iceberg, after {n} runs: a committing run made {requests:?}, a no-op run {idle:?}"
        );
        assert!(idle.total() <= NO_OP_BOUND, "after {n} runs: {idle:?}");
        commit.push(requests.total());
        no_op.push(idle.total());
    }
    assert!(commit[1] <= commit[0] + 3, "{commit:?}");
    assert!(no_op[1] <= no_op[0] + 3, "{no_op:?}");
}
