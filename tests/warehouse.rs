//! The load transaction's semantics on a real SQL engine: the exact statements
//! `citrine redshift load` sends, executed on PostgreSQL 15 (`scripts/pg-server`) with the
//! small translation of `common::warehouse` (COPY becomes an insert of the manifest's rows;
//! DISTSTYLE / SORTKEY dropped). A marker loaded twice adds nothing; a changed source file
//! replaces its old rows; a late, older marker never brings back superseded rows; two
//! connections loading one marker at once add it once (the LOCK); an old marker loads into a
//! grown table with nulls in the new columns.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::fake_api::Calls;
use common::warehouse::{load, pg_port, translate, Warehouse, REDSHIFT};
use common::{citrine, files_below, run_ok, succeeded};

/// An audit table over `dir/logs/<customer>/*.csv`.
fn config(dir: &Path) {
    std::fs::write(
        dir.join("citrine.toml"),
        format!("[lake]\nroot = \"lake\"\n[[table]]\nname = \"audit\"\nformat = \"audit\"\ninputs = [\"logs/{{customer}}/*.csv\"]\nmask_ips = [\"source_ip\"]\n\n{REDSHIFT}"),
    )
    .unwrap();
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join("logs").join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `n` rows of `user` on 2024-03-01.
fn rows(user: &str, n: usize) -> String {
    let mut text = String::from("timestamp,user,action,source_ip\n");
    for i in 0..n {
        text.push_str(&format!(
            "2024-03-01T09:{:02}:00Z,{user},login,203.0.113.{}\n",
            i % 60,
            1 + i % 200
        ));
    }
    text
}

/// The newest marker's URL.
fn newest_marker(dir: &Path) -> String {
    let folder = dir.join("lake/complete/audit");
    let name = files_below(&folder)
        .into_iter()
        .filter(|f| f.ends_with(".manifest"))
        .max()
        .unwrap();
    format!(
        "file://{}",
        std::path::absolute(folder.join(name)).unwrap().display()
    )
}

/// Rows per (source file, user) in the warehouse.
fn by_source(w: &Warehouse) -> BTreeMap<String, u64> {
    w.sql(
        "SELECT source_file || ' ' || \"user\", count(*) FROM logs.audit GROUP BY 1;",
        false,
    )
    .unwrap()
    .into_iter()
    .map(|r| (r[0].clone(), r[1].parse().unwrap()))
    .collect()
}

fn warehouse_for(dir: &Path, port: u16, tag: &str) -> Warehouse {
    let w = Warehouse::fresh(port, tag);
    w.create_table(dir, "audit");
    w
}

#[test]
fn loaded_twice_changed_and_late_markers_leave_each_row_once() {
    let Some(port) = pg_port() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d);
    write(d, "acme/a.csv", &rows("alice", 5));
    write(d, "acme/b.csv", &rows("bob", 3));
    run_ok(d);
    let first = newest_marker(d);
    // a.csv changes: 7 rows of carol now.
    write(d, "acme/a.csv", &rows("carol", 7));
    run_ok(d);
    let second = newest_marker(d);
    assert_ne!(first, second);
    let want: BTreeMap<String, u64> = [
        ("logs/acme/a.csv carol".to_owned(), 7),
        ("logs/acme/b.csv bob".to_owned(), 3),
    ]
    .into();

    // In order: the change replaces a.csv's old rows; a marker loaded twice adds nothing.
    let w = warehouse_for(d, port, "inorder");
    let (api, _) = w.data_api();
    load(d, &api, &["--manifest", &first]);
    assert_eq!(w.count("SELECT count(*) FROM logs.audit"), 8);
    load(d, &api, &["--manifest", &second]);
    assert_eq!(by_source(&w), want);
    load(d, &api, &["--manifest", &second]);
    load(d, &api, &["--manifest", &first]);
    assert_eq!(by_source(&w), want);
    assert_eq!(w.count("SELECT count(*) FROM logs.citrine_loads"), 2);

    // Late: the newer marker first, then the older one, which must not bring alice back.
    let w = warehouse_for(d, port, "late");
    let (api, _) = w.data_api();
    load(d, &api, &["--manifest", &second]);
    load(d, &api, &["--manifest", &first]);
    assert_eq!(by_source(&w), want);
    assert_eq!(
        w.sql(
            "SELECT rows_loaded FROM logs.citrine_loads ORDER BY run_id;",
            false
        )
        .unwrap(),
        [vec!["3".to_owned()], vec!["7".to_owned()]],
        "the late, older marker loads only b.csv"
    );
}

/// The statements of one load of `marker`, as sent (captured by a Data API that executes
/// nothing but the bookkeeping queries).
fn load_statements(dir: &Path, w: &Warehouse, marker: &str) -> Vec<String> {
    let (api, calls): (String, Calls) = w.data_api();
    load(dir, &api, &["--manifest", marker]);
    let seen = calls.lock().unwrap();
    let batch = seen
        .iter()
        .find(|(t, _)| t == "batchexecutestatement")
        .map(|(_, b)| b.clone())
        .unwrap();
    batch["Sqls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn two_connections_loading_one_marker_at_once_add_it_once() {
    let Some(port) = pg_port() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d);
    write(d, "acme/a.csv", &rows("alice", 40));
    run_ok(d);
    let marker = newest_marker(d);
    // The exact transaction, taken from a load into a scratch warehouse.
    let scratch = warehouse_for(d, port, "scratch");
    let statements = load_statements(d, &scratch, &marker);
    assert!(statements[0].starts_with("LOCK "));

    let w = warehouse_for(d, port, "racing");
    w.sql(&translate(&statements_loads_table()), false).unwrap();
    let script = statements
        .iter()
        .map(|s| {
            if s.starts_with("COPY ") {
                // Translated once here: both connections insert the same rows.
                common::warehouse::translate_copy(s)
            } else {
                translate(s)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        // Both transactions wait before their commit, so without the LOCK both would have
        // loaded by then (checked by leaving it out: 80 rows, two records).
        + "\nSELECT pg_sleep(0.5);";
    std::thread::scope(|scope| {
        let racers: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| w.sql(&script, true)))
            .collect();
        for r in racers {
            r.join().unwrap().unwrap();
        }
    });
    assert_eq!(w.count("SELECT count(*) FROM logs.audit"), 40);
    assert_eq!(w.count("SELECT count(*) FROM logs.citrine_loads"), 1);
}

/// `citrine_loads`, as `redshift load` creates it.
fn statements_loads_table() -> String {
    "CREATE TABLE IF NOT EXISTS \"logs\".\"citrine_loads\" (\n    \"run_id\" VARCHAR(64) NOT NULL,\n    \"table_name\" VARCHAR(127) NOT NULL,\n    \"manifest\" VARCHAR(2048) NOT NULL,\n    \"rows_loaded\" BIGINT,\n    \"loaded_at\" TIMESTAMP DEFAULT GETDATE(),\n    PRIMARY KEY (\"run_id\")\n);".into()
}

#[test]
fn an_old_marker_loads_into_a_grown_table_with_nulls_in_the_new_columns() {
    let Some(port) = pg_port() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d);
    write(d, "acme/a.csv", &rows("alice", 4));
    run_ok(d);
    let old = newest_marker(d);
    // The warehouse table is created at this schema.
    let w = warehouse_for(d, port, "grown");
    // A later file brings a new column: the table grows at the end, and so does the
    // warehouse's (`ddl --from-version 1` gives the ALTER).
    write(
        d,
        "acme/b.csv",
        "timestamp,user,action,source_ip,device\n2024-03-01T10:00:00Z,bob,login,203.0.113.9,phone\n",
    );
    run_ok(d);
    let new = newest_marker(d);
    let alter = succeeded(&citrine(
        d,
        &["redshift", "ddl", "--table", "audit", "--from-version", "1"],
    ));
    w.sql(&translate(&alter), true).unwrap();
    let (api, _) = w.data_api();
    load(d, &api, &["--manifest", &new]);
    // The old marker, after the growth: its rows get nulls in the new column.
    load(d, &api, &["--manifest", &old]);
    assert_eq!(
        w.sql(
            "SELECT \"user\", coalesce(device, 'NULL') FROM logs.audit ORDER BY 1;",
            false
        )
        .unwrap(),
        [
            vec!["alice".to_owned(), "NULL".to_owned()],
            vec!["alice".to_owned(), "NULL".to_owned()],
            vec!["alice".to_owned(), "NULL".to_owned()],
            vec!["alice".to_owned(), "NULL".to_owned()],
            vec!["bob".to_owned(), "phone".to_owned()],
        ]
    );
}

#[test]
fn a_longer_value_widens_its_column_before_the_load() {
    let Some(port) = pg_port() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d);
    write(d, "acme/a.csv", &rows("alice", 3));
    run_ok(d);
    // Created from the first run's values: `user` is narrow.
    let w = warehouse_for(d, port, "widths");
    let declared = |w: &Warehouse| {
        w.count("SELECT character_maximum_length FROM information_schema.columns WHERE table_schema = 'logs' AND table_name = 'audit' AND column_name = 'user';")
    };
    assert_eq!(declared(&w), 256);
    let long = "x".repeat(1000);
    write(d, "acme/b.csv", &rows(&long, 2));
    run_ok(d);
    let (api, calls) = w.data_api();
    load(d, &api, &["--table", "audit"]);
    assert_eq!(declared(&w), 2048);
    assert_eq!(
        w.count("SELECT count(*) FROM logs.audit WHERE length(\"user\") = 1000"),
        2
    );
    // Widened first, by a statement of its own; the load's transaction after it.
    let seen = calls.lock().unwrap();
    let order: Vec<String> = seen
        .iter()
        .filter_map(|(target, body)| match target.as_str() {
            "executestatement" => body["Sql"]
                .as_str()
                .filter(|s| s.starts_with("ALTER TABLE"))
                .map(str::to_owned),
            "batchexecutestatement" => Some(format!("load {}", body["StatementName"])),
            _ => None,
        })
        .collect();
    assert_eq!(order.len(), 3, "{order:?}");
    assert!(order[0].starts_with("load"), "{order:?}");
    assert_eq!(
        order[1],
        "ALTER TABLE \"logs\".\"audit\" ALTER COLUMN \"user\" TYPE VARCHAR(2048);"
    );
    assert!(order[2].starts_with("load"), "{order:?}");
}
