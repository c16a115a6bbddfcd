//! A Redshift Data API on 127.0.0.1 that executes what it is sent on PostgreSQL 15 (started by
//! `scripts/pg-server`), so a load's semantics are checked on a real SQL engine, not only its
//! text. The statements citrine sends are run as they are, but for a small translation of the
//! Redshift-only parts:
//!
//! - `COPY t (cols) FROM '<manifest>' … FORMAT AS PARQUET MANIFEST` becomes
//!   `INSERT INTO t (cols) VALUES …` of the rows of the manifest's files, read here with the
//!   parquet crate (`file://` manifests, so local lakes);
//! - `DISTSTYLE …` and `COMPOUND SORTKEY (…)` are dropped, `GETDATE()` is `now()`, and
//!   `PRIMARY KEY` is dropped (Redshift does not enforce it, so neither may the test);
//! - a BatchExecuteStatement runs as one transaction (`psql --single-transaction`), as the
//!   Data API runs it.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{json, Value};

use super::fake_api::{fake_api, Calls};

/// A `[redshift]` section for a lake whose loads go to the warehouse's Data API fake
/// (schema `logs`).
pub const REDSHIFT: &str = "[redshift]\nworkgroup = \"analytics\"\ndatabase = \"dev\"\nsecret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:citrine\"\nschema = \"logs\"\niam_role = \"arn:aws:iam::123456789012:role/copy\"\ntimeout_secs = 30\npoll_ms = 20\n";

/// `citrine redshift load ARGS` in `dir` against the Data API at `api`, which must succeed:
/// its standard output.
pub fn load(dir: &std::path::Path, api: &str, args: &[&str]) -> String {
    let env = super::aws::env_for(api);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut all = vec!["redshift", "load"];
    all.extend_from_slice(args);
    super::succeeded(&super::citrine_env(dir, &all, &env))
}

/// The port of the test PostgreSQL, or `None` outside CI when it was not started (the caller
/// skips with a message). In CI its absence is a failure.
pub fn pg_port() -> Option<u16> {
    match std::env::var("CITRINE_TEST_PG_PORT") {
        Ok(p) => Some(p.parse().expect("CITRINE_TEST_PG_PORT is a port")),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI=true but CITRINE_TEST_PG_PORT is not set: start scripts/pg-server")
        }
        Err(_) => {
            eprintln!("skipped: no PostgreSQL (run `scripts/pg-server start` and export CITRINE_TEST_PG_PORT)");
            None
        }
    }
}

/// A statement's rows, or PostgreSQL's error text.
type Outcome = Result<Vec<Vec<String>>, String>;

/// One fresh database of the test PostgreSQL.
#[derive(Clone)]
pub struct Warehouse {
    port: u16,
    database: String,
}

impl Warehouse {
    /// A new, empty database named after `tag`, with the schema `logs`.
    pub fn fresh(port: u16, tag: &str) -> Self {
        let database = format!(
            "{tag}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % 1_000_000_000
        );
        let admin = Self {
            port,
            database: "citrine".into(),
        };
        admin
            .sql(&format!("CREATE DATABASE \"{database}\";"), false)
            .unwrap();
        let w = Self { port, database };
        w.sql("CREATE SCHEMA logs;", false).unwrap();
        w
    }

    /// Run `sql` (one or more statements); the rows of the last, each a vector of fields.
    pub fn sql(&self, sql: &str, one_transaction: bool) -> Result<Vec<Vec<String>>, String> {
        // scripts/pg-server names the psql of the server it started.
        let mut cmd =
            Command::new(std::env::var("CITRINE_TEST_PSQL").unwrap_or_else(|_| "psql".into()));
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-F",
            "\u{1f}",
        ])
        .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
        .args(["-U", "citrine", "-d", &self.database]);
        // A large text (a COPY's rows) goes through standard input, past the kernel's limit
        // on one argument; as one transaction, as `-c` runs its statements.
        let large = sql.len() > 64 << 10;
        if one_transaction || large {
            cmd.arg("--single-transaction");
        }
        let out = if large {
            use std::io::Write;
            let mut child = cmd
                .args(["-f", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("psql runs");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(sql.as_bytes())
                .unwrap();
            child.wait_with_output().expect("psql runs")
        } else {
            cmd.arg("-c").arg(sql).output().expect("psql runs")
        };
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\u{1f}').map(str::to_owned).collect())
            .collect())
    }

    /// Create `table` as `citrine redshift ddl --table TABLE` in `dir` declares it.
    pub fn create_table(&self, dir: &std::path::Path, table: &str) {
        let ddl = super::succeeded(&super::citrine(dir, &["redshift", "ddl", "--table", table]));
        self.sql(&translate(&ddl), true).unwrap();
    }

    /// One number.
    pub fn count(&self, sql: &str) -> u64 {
        self.sql(sql, false).unwrap()[0][0].parse().unwrap()
    }

    /// A Data API endpoint that runs statements here: (its URL, the calls it saw). COPY reads
    /// `file://` manifests.
    pub fn data_api(&self) -> (String, Calls) {
        self.data_api_reading(Arc::new(|url: &str| {
            let path = url.strip_prefix("file://").expect("a local lake's URL");
            std::fs::read(path).unwrap()
        }))
    }

    /// [`Self::data_api`], with COPY reading manifests and their files through `fetch` (an
    /// S3 lake's objects, say).
    pub fn data_api_reading(&self, fetch: Fetch) -> (String, Calls) {
        let results: Arc<Mutex<HashMap<String, Outcome>>> = Arc::default();
        let next = Arc::new(Mutex::new(0u64));
        let w = self.clone();
        fake_api(move |target, body, _| match target {
            "executestatement" | "batchexecutestatement" => {
                let sqls: Vec<String> = match body.get("Sqls") {
                    Some(list) => list
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| translate_reading(s.as_str().unwrap(), &fetch))
                        .collect(),
                    None => vec![translate_reading(body["Sql"].as_str().unwrap(), &fetch)],
                };
                let result = w.sql(&sqls.join("\n"), target == "batchexecutestatement");
                let id = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    format!("st-{n}")
                };
                results.lock().unwrap().insert(id.clone(), result);
                (200, json!({ "Id": id }))
            }
            "describestatement" => {
                let id = body["Id"].as_str().unwrap_or_default();
                let results = results.lock().unwrap();
                match &results[id] {
                    Ok(rows) => (
                        200,
                        json!({"Id": id, "Status": "FINISHED", "HasResultSet": !rows.is_empty()}),
                    ),
                    Err(e) => (200, json!({"Id": id, "Status": "FAILED", "Error": e})),
                }
            }
            "getstatementresult" => {
                let id = body["Id"].as_str().unwrap_or_default();
                let results = results.lock().unwrap();
                let rows = results[id].as_ref().unwrap();
                let records: Vec<Value> = rows
                    .iter()
                    .map(|r| Value::Array(r.iter().map(|f| json!({"stringValue": f})).collect()))
                    .collect();
                (
                    200,
                    json!({"Records": records, "TotalNumRows": rows.len(), "ColumnMetadata": []}),
                )
            }
            _ => (200, json!({})),
        })
    }
}

/// Reads the object at a URL (what COPY reads: manifests and data files).
pub type Fetch = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

/// One statement without a COPY in PostgreSQL's dialect (see the module docs).
pub fn translate(sql: &str) -> String {
    assert!(!sql.starts_with("COPY "), "a COPY needs translate_reading");
    translate_reading(sql, &(Arc::new(|_: &str| Vec::new()) as Fetch))
}

/// A COPY of a local lake's marker as the insert of its rows.
pub fn translate_copy(sql: &str) -> String {
    let fetch: Fetch = Arc::new(|url: &str| {
        std::fs::read(url.strip_prefix("file://").expect("a local lake's URL")).unwrap()
    });
    copy_as_insert(sql, &fetch)
}

/// One statement in PostgreSQL's dialect, a COPY reading through `fetch`.
fn translate_reading(sql: &str, fetch: &Fetch) -> String {
    if sql.starts_with("COPY ") {
        return copy_as_insert(sql, fetch);
    }
    let mut kept: Vec<String> = Vec::new();
    for line in sql.lines() {
        if line.starts_with("DISTSTYLE") || line.starts_with("COMPOUND SORTKEY") {
            if line.trim_end().ends_with(';') {
                if let Some(last) = kept.last_mut() {
                    last.push(';');
                }
            }
        } else if line.trim_start().starts_with("PRIMARY KEY") {
            // Redshift does not enforce it: neither may the translation, or a missing LOCK
            // would pass unseen.
            if let Some(last) = kept.last_mut() {
                if let Some(stripped) = last.strip_suffix(',') {
                    *last = stripped.to_owned();
                }
            }
        } else {
            kept.push(line.replace("GETDATE()", "now()"));
        }
    }
    kept.join("\n")
}

/// `COPY t (cols) FROM '<manifest>' …` as an insert of the manifest's rows.
fn copy_as_insert(sql: &str, fetch: &Fetch) -> String {
    let first = sql.lines().next().unwrap();
    let head = first.strip_prefix("COPY ").unwrap();
    let manifest = sql
        .lines()
        .find_map(|l| l.strip_prefix("FROM '"))
        .and_then(|l| l.strip_suffix('\''))
        .unwrap();
    let manifest: Value = serde_json::from_slice(&fetch(manifest)).unwrap();
    let mut values = Vec::new();
    for entry in manifest["entries"].as_array().unwrap() {
        let bytes = bytes::Bytes::from(fetch(entry["url"].as_str().unwrap()));
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let options = FormatOptions::default();
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect();
            for row in 0..batch.num_rows() {
                let fields: Vec<String> = batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| {
                        if c.is_null(row) {
                            "NULL".into()
                        } else {
                            format!("'{}'", f.value(row).to_string().replace('\'', "''"))
                        }
                    })
                    .collect();
                values.push(format!("({})", fields.join(", ")));
            }
        }
    }
    if values.is_empty() {
        return "SELECT 1 WHERE false;".into();
    }
    format!("INSERT INTO {head} VALUES\n{};", values.join(",\n"))
}
