//! A run owns its table from lock to marker (docs/design.md §2, ownership): every other command
//! run against a plain `citrine run` held at `before_commit` (data files written and
//! journaled, nothing registered) or at `before_manifest` (partitions registered, report
//! written, no marker) either refuses with exit 2 naming the run that holds the table, or is
//! provably harmless (`redshift load` loads committed markers only), and changes nothing of the
//! lake while it is held. The held run then commits, and the table is exact: every row once,
//! every marker's files present with their sizes, every committed partition in the catalog.
//! Each race is a test of its own, on a local lake and on the S3 + Glue server.

mod common;

use common::gen::Shape;
use common::table::{Table, TABLE};
use common::warehouse::{pg_port, Warehouse, REDSHIFT};

/// The commands raced against a held run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Racer {
    Abort,
    Commit,
    Shard,
    Plan,
    Forget,
    Repair,
    Sync,
    Load,
}

/// Where a race runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum On {
    Local,
    S3,
}

fn shape(seed: u64, customers: &'static [&'static str]) -> Shape<'static> {
    Shape {
        seed,
        customers,
        days: 2,
        files_per_day: 2,
        rows_per_file: 20,
        bad_every: 23,
        all_gzip: false,
    }
}

/// The table with one committed run (acme, globex) and new inputs (acme, initech) for the run
/// that will be held; `None` where the race's servers are not there (skipped with a message).
fn table(on: On) -> Option<Table> {
    let mut t = match on {
        On::Local => Table::local("", REDSHIFT),
        On::S3 => Table::s3(common::aws::endpoint()?, "", REDSHIFT),
    };
    t.add(&shape(3, &["acme", "globex"]));
    t.run();
    t.add(&shape(5, &["acme", "initech"]));
    Some(t)
}

/// The invocations of `racer` against a held plain run `run`, each of which must refuse.
fn refused_invocations(racer: Racer, run: &str, first: &str) -> Vec<Vec<String>> {
    let t = TABLE;
    let forgotten_input = "logs/cloudfront/acme/anything.gz";
    let lists: Vec<Vec<&str>> = match racer {
        Racer::Abort => vec![
            vec!["abort", "--table", t, "--planned"],
            vec!["abort", "--table", t, "--run-id", run],
        ],
        Racer::Commit => vec![
            vec!["commit", "--table", t, "--planned"],
            vec!["commit", "--table", t, "--run-id", run],
        ],
        Racer::Shard => vec![
            vec!["run", "--table", t, "--planned", "--shard", "0"],
            vec!["run", "--table", t, "--run-id", run, "--shard", "0"],
        ],
        Racer::Plan => vec![vec!["plan", "--table", t, "--shards", "2"]],
        Racer::Forget => vec![
            vec!["forget", "--table", t, "--input", forgotten_input],
            vec!["forget", "--table", t, "--run", first, "--delete-rows"],
        ],
        Racer::Repair => vec![vec!["repair", "--table", t]],
        Racer::Sync => vec![vec!["catalog", "sync", "--table", t]],
        Racer::Load => Vec::new(),
    };
    lists
        .into_iter()
        .map(|l| l.into_iter().map(str::to_owned).collect())
        .collect()
}

/// The warehouse a `redshift load` race loads into, with its Data API, and the table created
/// as `redshift ddl` declares it.
fn warehouse(t: &Table, port: u16) -> (Warehouse, String) {
    let w = Warehouse::fresh(port, "own");
    let ddl = common::succeeded(&t.cli(&["redshift", "ddl", "--table", TABLE], &[]));
    w.sql(&common::warehouse::translate(&ddl), true).unwrap();
    let (api, _) = match &t.lake {
        common::table::Lake::Local => w.data_api(),
        common::table::Lake::S3 { endpoint, .. } => {
            let endpoint = endpoint.clone();
            w.data_api_reading(std::sync::Arc::new(move |url: &str| {
                let (bucket, key) = url.strip_prefix("s3://").unwrap().split_once('/').unwrap();
                let file = tempfile::NamedTempFile::new().unwrap();
                let path = file.path().display().to_string();
                endpoint.client(&["download", bucket, key, &path]);
                std::fs::read(file.path()).unwrap()
            }))
        }
    };
    (w, api)
}

/// `redshift load --table` of the table into the warehouse behind `api`: the runs it loaded.
fn load(t: &Table, api: &str) -> Vec<String> {
    // A local lake's load talks to the Data API alone, with static credentials.
    let env = match t.lake {
        common::table::Lake::Local => common::aws::env_for(api),
        common::table::Lake::S3 { .. } => {
            vec![("AWS_ENDPOINT_URL_REDSHIFT_DATA", api.to_owned())]
        }
    };
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = t.cli(&["redshift", "load", "--table", TABLE], &env);
    common::succeeded(&out)
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{TABLE}: run ")))
        .filter_map(|l| l.strip_suffix(" loaded"))
        .map(str::to_owned)
        .collect()
}

/// Rows and distinct (source_file, row_num) in the warehouse.
fn warehouse_rows(w: &Warehouse) -> (u64, u64) {
    let rows = w
        .sql(
            &format!("SELECT count(*), count(DISTINCT (source_file, row_num)) FROM logs.{TABLE};"),
            false,
        )
        .unwrap();
    (rows[0][0].parse().unwrap(), rows[0][1].parse().unwrap())
}

/// Race `racer` against a plain run held at `stage` on `on`.
fn race(on: On, racer: Racer, stage: &str) {
    let Some(t) = table(on) else { return };
    let loads = if racer == Racer::Load {
        let Some(port) = pg_port() else { return };
        Some(warehouse(&t, port))
    } else {
        None
    };
    let first = {
        let s = t.state();
        s["markers"][0].as_str().unwrap().to_owned()
    };
    let held = t.held(stage, &[]);
    let lock = t.lock().expect("the held run holds the lock");
    let run = lock["run_id"].as_str().unwrap().to_owned();
    assert_eq!(lock["command"], "run");
    assert!(
        run > first,
        "the lock names the run by the id it commits under"
    );
    let before = t.state();

    for args in refused_invocations(racer, &run, &first) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = t.cli(&args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} at {stage}: {stderr}");
        assert!(
            stderr.contains(&format!("run {run} (citrine run)")),
            "{args:?} at {stage} names the holder: {stderr}"
        );
    }
    if let Some((_, api)) = &loads {
        // Harmless: the committed run is loaded, the held one (no marker) is not.
        assert_eq!(load(&t, api), std::slice::from_ref(&first), "at {stage}");
    }
    assert_eq!(
        t.state(),
        before,
        "{racer:?} at {stage} changed nothing of the lake"
    );

    let ended = held.resume();
    assert_eq!(
        ended.code,
        Some(0),
        "the held run commits: {}",
        ended.stderr
    );
    let s = t.assert_exact(&format!("after {racer:?} raced a run held at {stage}"));
    assert_eq!(
        s["markers"],
        serde_json::json!([first, run]),
        "the held run committed under its id"
    );
    if let Some((w, api)) = &loads {
        assert_eq!(load(&t, api), std::slice::from_ref(&run));
        let total: u64 = t.expected.values().sum();
        assert_eq!(
            warehouse_rows(w),
            (total, total),
            "every row once in Redshift"
        );
    }
}

/// One test per (lake, command, stage).
macro_rules! races {
    ($($name:ident: $on:ident, $racer:ident, $stage:literal;)*) => {
        $(
            #[test]
            fn $name() {
                race(On::$on, Racer::$racer, $stage);
            }
        )*
    };
}

races! {
    local_abort_before_commit: Local, Abort, "before_commit";
    local_abort_before_manifest: Local, Abort, "before_manifest";
    local_commit_before_commit: Local, Commit, "before_commit";
    local_commit_before_manifest: Local, Commit, "before_manifest";
    local_shard_before_commit: Local, Shard, "before_commit";
    local_shard_before_manifest: Local, Shard, "before_manifest";
    local_plan_before_commit: Local, Plan, "before_commit";
    local_plan_before_manifest: Local, Plan, "before_manifest";
    local_forget_before_commit: Local, Forget, "before_commit";
    local_forget_before_manifest: Local, Forget, "before_manifest";
    local_repair_before_commit: Local, Repair, "before_commit";
    local_repair_before_manifest: Local, Repair, "before_manifest";
    local_sync_before_commit: Local, Sync, "before_commit";
    local_sync_before_manifest: Local, Sync, "before_manifest";
    local_load_before_commit: Local, Load, "before_commit";
    local_load_before_manifest: Local, Load, "before_manifest";
    s3_abort_before_commit: S3, Abort, "before_commit";
    s3_abort_before_manifest: S3, Abort, "before_manifest";
    s3_commit_before_commit: S3, Commit, "before_commit";
    s3_commit_before_manifest: S3, Commit, "before_manifest";
    s3_shard_before_commit: S3, Shard, "before_commit";
    s3_shard_before_manifest: S3, Shard, "before_manifest";
    s3_plan_before_commit: S3, Plan, "before_commit";
    s3_plan_before_manifest: S3, Plan, "before_manifest";
    s3_forget_before_commit: S3, Forget, "before_commit";
    s3_forget_before_manifest: S3, Forget, "before_manifest";
    s3_repair_before_commit: S3, Repair, "before_commit";
    s3_repair_before_manifest: S3, Repair, "before_manifest";
    s3_sync_before_commit: S3, Sync, "before_commit";
    s3_sync_before_manifest: S3, Sync, "before_manifest";
    s3_load_before_commit: S3, Load, "before_commit";
    s3_load_before_manifest: S3, Load, "before_manifest";
}
