//! A generated CloudFront table on a local lake or on the S3 + Glue server, driven through the
//! binary and read back from outside (`tests/support/table_state.py`: pyarrow, boto3): the
//! harness of the ownership, fencing and full-disk tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};

use serde_json::Value;

use super::aws::{database_of, Endpoint};
use super::gen::{cloudfront, Shape};

/// The table every harness lake holds.
pub const TABLE: &str = "cloudfront_logs";

/// Where the lake lives.
pub enum Lake {
    /// `dir/lake`, with the local catalog.
    Local,
    /// `s3://<bucket>/lake` on the local S3 + Glue server, with the Glue catalog.
    S3 { endpoint: Endpoint, bucket: String },
}

/// A table's folder (config, inputs), its lake, and the rows a correct lake holds.
pub struct Table {
    pub dir: tempfile::TempDir,
    pub lake: Lake,
    /// Good rows per `customer|dt` of every input added so far.
    pub expected: BTreeMap<String, u64>,
    batches: usize,
}

impl Table {
    /// A table on a local lake below `dir` (or a new temporary folder), configured with
    /// `extra` TOML appended (a `[redshift]` section, `[run]` keys go in `run_extra`).
    pub fn local(run_extra: &str, extra: &str) -> Self {
        Self::new(Lake::Local, run_extra, extra, tempfile::tempdir().unwrap())
    }

    /// A table on a local lake whose root is `root` (a mount point, say).
    pub fn local_at(root: &Path, run_extra: &str, extra: &str) -> Self {
        let table = Self::new(Lake::Local, run_extra, extra, tempfile::tempdir().unwrap());
        let config = std::fs::read_to_string(table.dir.path().join("citrine.toml")).unwrap();
        let config = config.replacen(
            "root = \"lake\"",
            &format!("root = \"{}\"", root.display()),
            1,
        );
        std::fs::write(table.dir.path().join("citrine.toml"), config).unwrap();
        table
    }

    /// A table on a fresh bucket of the S3 + Glue server.
    pub fn s3(endpoint: Endpoint, run_extra: &str, extra: &str) -> Self {
        let bucket = endpoint.fresh_bucket("own");
        Self::new(
            Lake::S3 { endpoint, bucket },
            run_extra,
            extra,
            tempfile::tempdir().unwrap(),
        )
    }

    fn new(lake: Lake, run_extra: &str, extra: &str, dir: tempfile::TempDir) -> Self {
        let (root, inputs, catalog) = match &lake {
            Lake::Local => (
                "lake".to_owned(),
                "logs/cloudfront/{customer}/".to_owned(),
                String::new(),
            ),
            Lake::S3 { bucket, .. } => (
                format!("s3://{bucket}/lake"),
                format!("s3://{bucket}/logs/cloudfront/{{customer}}/"),
                format!(
                    "[catalog]\nkind = \"glue\"\ndatabase = \"{}\"\n",
                    database_of(bucket)
                ),
            ),
        };
        let text = format!(
            "[lake]\nroot = \"{root}\"\n{catalog}[run]\nthreads = 2\nbatch_size = 512\n{run_extra}\n\n[[table]]\nname = \"{TABLE}\"\nformat = \"cloudfront\"\ninputs = [\"{inputs}\"]\n\n{extra}"
        );
        std::fs::write(dir.path().join("citrine.toml"), text).unwrap();
        Self {
            dir,
            lake,
            expected: BTreeMap::new(),
            batches: 0,
        }
    }

    /// The table's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Generate inputs of `shape` and put them where the table's pattern reads them.
    pub fn add(&mut self, shape: &Shape) {
        self.batches += 1;
        let batch = self.path().join(format!("batch-{}", self.batches));
        let g = cloudfront(&batch, shape);
        for (k, n) in g.expected {
            *self.expected.entry(k).or_default() += n;
        }
        match &self.lake {
            Lake::Local => copy_tree(&batch.join("logs"), &self.path().join("logs")),
            Lake::S3 { endpoint, bucket } => {
                let logs = batch.join("logs").display().to_string();
                endpoint.client(&["upload", bucket, "logs", &logs]);
            }
        }
    }

    /// The environment of a process talking to the table's lake.
    pub fn env(&self) -> Vec<(String, String)> {
        match &self.lake {
            Lake::Local => Vec::new(),
            Lake::S3 { endpoint, .. } => endpoint
                .env()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }
    }

    /// `citrine ARGS` in the table's folder, with `extra` environment.
    pub fn cli(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let env = self.env();
        let mut all: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        super::citrine_env(self.path(), args, &all)
    }

    /// `citrine run`, which must commit: its run id.
    pub fn run(&self) -> String {
        let out = self.cli(&["run", "--json"], &[]);
        let stdout = super::succeeded(&out);
        let summary: Value = serde_json::from_str(&stdout).unwrap();
        summary[0]["run_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no run id: {summary}"))
            .to_owned()
    }

    /// `citrine run` stopped at `stage` (with `extra` environment): it goes on once
    /// [`Held::resume`] is called.
    pub fn held(&self, stage: &str, extra: &[(&str, &str)]) -> Held {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let resume = self.path().join(format!("resume-{stage}"));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_citrine"));
        cmd.current_dir(self.path())
            .args(["run", "--json"])
            .env("CITRINE_TEST_STALL", stage)
            .env("CITRINE_TEST_RESUME", &resume)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let wanted = format!("stalled at {stage}");
        // Standard error is read to its end on a thread of its own (a run that goes on must
        // not block on a full pipe); the stall's line is signalled when it comes.
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            for line in lines.map_while(Result::ok) {
                if line.contains(&wanted) {
                    let _ = tx.send(());
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        if rx.recv().is_err() {
            let status = child.wait().unwrap();
            let text = stderr.join().unwrap();
            panic!("the run exited ({status}) before stalling at {stage}: {text}");
        }
        Held {
            child,
            resume,
            stderr: Some(stderr),
        }
    }

    /// The lock object's JSON, if the table is locked.
    pub fn lock(&self) -> Option<Value> {
        let key = format!("lake/_citrine/locks/{TABLE}.lock");
        let text = match &self.lake {
            Lake::Local => std::fs::read_to_string(self.path().join(&key)).ok()?,
            Lake::S3 { endpoint, bucket } => {
                let listed = endpoint.client(&["list", bucket, &key]);
                if listed.as_array().unwrap().is_empty() {
                    return None;
                }
                endpoint.client(&["get", bucket, &key]).as_str()?.to_owned()
            }
        };
        serde_json::from_str(&text).ok()
    }

    /// The table as an outside reader finds it (see `tests/support/table_state.py`).
    pub fn state(&self) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/table_state.py");
        let python = super::python().expect("table_state.py needs scripts/python-env");
        let mut cmd = std::process::Command::new(python);
        cmd.arg(script);
        match &self.lake {
            Lake::Local => cmd.arg(self.path().join(self.local_root())).arg(TABLE),
            Lake::S3 { bucket, .. } => cmd
                .arg(format!("s3://{bucket}/lake"))
                .arg(TABLE)
                .arg(database_of(bucket)),
        };
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "table_state.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn local_root(&self) -> PathBuf {
        let config = std::fs::read_to_string(self.path().join("citrine.toml")).unwrap();
        let root = config
            .lines()
            .find_map(|l| l.strip_prefix("root = \""))
            .and_then(|r| r.strip_suffix('"'))
            .unwrap();
        PathBuf::from(root)
    }

    /// Assert the table is exact: every expected row once, every marker's files present with
    /// their sizes, no data file outside a marker, every committed partition (and no other)
    /// in the catalog, and nothing of a run in flight left (journal, lock, report without a
    /// marker, temporary file), nothing a rewrite replaced left in a Hive table. Returns the
    /// state.
    pub fn assert_exact(&self, context: &str) -> Value {
        let s = self.state();
        let total: u64 = self.expected.values().sum();
        assert_eq!(s["rows"], total, "{context}: rows: {s:#}");
        assert_eq!(
            s["distinct_rows"], total,
            "{context}: every row once: {s:#}"
        );
        let counts: BTreeMap<String, u64> = serde_json::from_value(s["counts"].clone()).unwrap();
        assert_eq!(counts, self.expected, "{context}: rows per partition");
        for empty in [
            "marker_problems",
            "unlisted",
            "journals",
            "reports_without_marker",
            "temporary",
        ] {
            assert_eq!(s[empty], serde_json::json!([]), "{context}: {empty}: {s:#}");
        }
        assert_eq!(
            s["catalog"], s["partitions"],
            "{context}: the catalog: {s:#}"
        );
        assert_eq!(s["lock"], false, "{context}: the lock is released");
        if s["iceberg"] != true {
            assert_eq!(
                s["superseded_present"],
                serde_json::json!([]),
                "{context}: a Hive table deletes what a rewrite replaced: {s:#}"
            );
        }
        s
    }
}

/// A run stopped at a stage.
pub struct Held {
    pub child: Child,
    resume: PathBuf,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// How a held run ended.
pub struct Ended {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Held {
    /// Let it go on, and wait for it to end.
    pub fn resume(mut self) -> Ended {
        std::fs::write(&self.resume, b"").unwrap();
        self.wait()
    }

    /// Wait for it to end (it was resumed, or is being killed).
    pub fn wait(&mut self) -> Ended {
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            std::io::Read::read_to_string(&mut out, &mut stdout).unwrap();
        }
        let status = self.child.wait().unwrap();
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        Ended {
            code: status.code(),
            stdout,
            stderr,
        }
    }

    /// Its file that ends the stall, when it appears.
    pub fn resume_file(&self) -> &Path {
        &self.resume
    }

    /// The process id (to stop and continue it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Send `signal` (`STOP`, `CONT`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
