//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use citrine::parse::{Decoder, Format, FormatDecoder, Reject, RowCounts};

/// A fixture's path.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// Every decoded batch, every reject and the counts of one decode.
#[derive(Debug, PartialEq)]
pub struct Decoding {
    pub batches: Vec<RecordBatch>,
    pub rejects: Vec<Reject>,
    pub counts: RowCounts,
}

/// Decode `pieces` in order with a fresh decoder, flushing whenever the batch is full.
pub fn decode_pieces<'a>(
    format: Format,
    batch_size: usize,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Decoding {
    decode_with(FormatDecoder::new(format, batch_size), pieces)
}

/// Decode `pieces` in order with `d`, flushing whenever the batch is full.
pub fn decode_with<'a>(
    mut d: FormatDecoder,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Decoding {
    let mut batches = Vec::new();
    let mut rejects = Vec::new();
    let mut take = |d: &mut FormatDecoder| {
        if let Some(out) = d.flush().unwrap() {
            batches.push(out.batch);
            rejects.extend(out.rejects);
        }
    };
    for piece in pieces {
        let mut at = 0;
        while at < piece.len() {
            at += d.decode(&piece[at..]).unwrap();
            if d.capacity() == 0 {
                take(&mut d);
            }
        }
    }
    d.finish().unwrap();
    take(&mut d);
    Decoding {
        batches,
        rejects,
        counts: d.counts(),
    }
}

/// Split `data` after every newline.
pub fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split_inclusive(|&b| b == b'\n').collect()
}

pub mod aws;
pub mod fake_api;
pub mod gen;
pub mod proxy;
pub mod table;
pub mod warehouse;

use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Output};

/// Run the binary with `args` in `dir`.
pub fn citrine(dir: &Path, args: &[&str]) -> Output {
    citrine_env(dir, args, &[])
}

/// The standard output of a command that must have succeeded (exit 0; its standard error shown
/// otherwise).
pub fn succeeded(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `citrine run --json` in `dir`, which must succeed: the first table's summary.
pub fn run_summary(dir: &Path) -> serde_json::Value {
    let stdout = succeeded(&citrine(dir, &["run", "--json"]));
    serde_json::from_str::<serde_json::Value>(&stdout).unwrap()[0].clone()
}

/// `citrine run` in `dir`, which must succeed (exit code 0).
pub fn run_ok(dir: &Path) -> Output {
    let out = citrine(dir, &["run"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run the binary with `args` in `dir` and extra environment.
pub fn citrine_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_citrine"));
    cmd.current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

/// Start `citrine run` in `dir` with `env`, stopping at `stage` (CITRINE_TEST_STALL must be
/// among `env`), and return once it is there.
pub fn stalled(dir: &Path, env: &[(&str, &str)], stage: &str) -> std::process::Child {
    stalled_with(dir, &["run"], env, stage)
}

/// [`stalled`] for any arguments; the child's standard output is piped for the caller.
pub fn stalled_with(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stage: &str,
) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_citrine"));
    cmd.current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let reached = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains(&format!("stalled at {stage}")));
    if !reached {
        let status = child.wait().unwrap();
        panic!("the run exited ({status}) before stalling at {stage}");
    }
    // Keep reading its standard error, so a run that goes on can still write to it.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    child
}

/// The Python with DuckDB and pyarrow (made by scripts/python-env), or `None` outside CI when
/// it has not been made: the caller skips with a message. In CI its absence is a failure.
pub fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CITRINE_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI=true but no Python with DuckDB and pyarrow: run scripts/python-env (scripts/test does)"
    );
    eprintln!("SKIPPED: DuckDB/pyarrow read-back (run scripts/python-env to enable)");
    None
}

/// What the Python script `script` (a path in the repository) prints, as JSON, run with `args`
/// and the variables `env` by scripts/python-env's interpreter; its failure fails the test.
pub fn python_json<K, V>(
    script: &str,
    args: &[&str],
    env: impl IntoIterator<Item = (K, V)>,
) -> serde_json::Value
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    let python = python().expect("a Python with the test tools");
    let out = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
        .args(args)
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Rows per `customer|dt` as DuckDB and as pyarrow read the table's data folder.
pub fn lake_counts(python: &Path, data: &Path) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lake_counts.py");
    let out = Command::new(python).arg(script).arg(data).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let map = |k: &str| -> BTreeMap<String, u64> {
        v[k].as_object()
            .unwrap()
            .iter()
            .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
            .collect()
    };
    (map("duckdb"), map("pyarrow"))
}

/// Every file below `dir`, relative, sorted.
pub fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Tokens that could be IPv4 addresses (`/` kept, so a masked `a.b.c.0/24` stays whole).
pub fn ip_tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '/'))
        .filter(|t| t.len() >= 7)
}

/// Fail if any file of the lake — Parquet values, reports, manifests, rejects, catalog —
/// holds one of `ips` whole.
pub fn assert_no_address(lake: &Path, ips: &HashSet<String>) {
    use arrow::array::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    for rel in files_below(lake) {
        let path = lake.join(&rel);
        if rel.ends_with(".parquet") {
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
                    .unwrap()
                    .build()
                    .unwrap();
            for batch in reader {
                for col in batch.unwrap().columns() {
                    if let Some(s) = col.as_string_opt::<i32>() {
                        for v in s.iter().flatten() {
                            let leaked = ip_tokens(v).find(|t| ips.contains(*t));
                            assert!(leaked.is_none(), "{rel}: full address in value {v:?}");
                        }
                    }
                }
            }
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            let leaked = ip_tokens(&text)
                .find(|t| ips.contains(*t))
                .map(str::to_owned);
            assert!(leaked.is_none(), "{rel}: full address {leaked:?}");
        }
    }
}

/// Rows per `customer|dt` of `cloudfront_logs` from the lake's own files, read with the
/// parquet crate.
pub fn rust_counts(dir: &Path) -> BTreeMap<String, u64> {
    table_counts(dir, "cloudfront_logs")
}

/// Every record batch of every Parquet file below `data`, read with the parquet crate
/// (asserting nothing else is there: no stray or temporary file).
pub fn batches_below(data: &Path) -> Vec<arrow::array::RecordBatch> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut out = Vec::new();
    for rel in files_below(data) {
        assert!(
            rel.ends_with(".parquet") && !rel.contains("/."),
            "stray file {rel}"
        );
        let f = std::fs::File::open(data.join(&rel)).unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
        {
            out.push(batch.unwrap());
        }
    }
    out
}

/// Rows per `customer|dt` of `table` in `dir/lake`, read with the parquet crate.
pub fn table_counts(dir: &Path, table: &str) -> BTreeMap<String, u64> {
    use arrow::array::AsArray;
    use arrow::datatypes::Date32Type;
    let mut out = BTreeMap::new();
    for batch in batches_below(&dir.join("lake/data").join(table)) {
        let c = batch
            .column_by_name("customer")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let d = batch
            .column_by_name("dt")
            .unwrap()
            .as_primitive::<Date32Type>()
            .clone();
        for i in 0..batch.num_rows() {
            let date = arrow::temporal_conversions::date32_to_datetime(d.value(i))
                .unwrap()
                .date();
            *out.entry(format!("{}|{date}", c.value(i))).or_default() += 1;
        }
    }
    out
}
