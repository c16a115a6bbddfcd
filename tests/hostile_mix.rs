//! A property of whole runs: for any mix of good, bad and hostile inputs in one run (bad gzip,
//! a bad layout on the last lines, customer folders that cannot exist, headers past the column
//! cap, inputs that only reject, unterminated quotes), every good input is committed exactly
//! once with all its rows, and every bad one is reported and left unconsumed: the next run
//! reports it again and commits nothing new. Inputs are held in memory or written to files of
//! their own (`buffer_file_mb` 0 or 32), on one worker or two. CloudFront inputs come as W3C,
//! as logging v2 JSON lines and as v2 Parquet, audit events as JSON lines and as CloudWatch
//! Logs records, broken ones among them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use citrine::config::ConfigFile;
use citrine::run::{self, NoProgress, TableSummary};
use common::files_below;
use common::gen::{client_ip, cloudfront_row, split_w3c, v2_json, v2_parquet, Seeded, FIELDS};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// CloudFront rows, plain.
    Good(u32),
    /// CloudFront rows, gzip.
    GoodGzip(u32),
    /// Audit rows.
    Audit(u32),
    /// Audit rows, one of which opens a quote that never closes: consumed, one row rejected.
    Unterminated(u32),
    /// A gzip cut short.
    BadGzip,
    /// A `#Fields` block without date and time on the last lines.
    LateLayout(u32),
    /// A customer folder name over 255 bytes.
    LongName,
    /// An audit header past the column cap.
    Wide,
    /// Audit rows that are all rejected.
    AllRejected(u32),
    /// CloudFront logging v2 JSON lines, gzip, one line no JSON (a reject).
    Json(u32),
    /// CloudFront logging v2 Parquet.
    Parquet(u32),
    /// Parquet's magic, then no Parquet.
    BadParquet,
    /// v2 JSON lines none of which is JSON.
    NoJson(u32),
    /// Audit events as JSON lines, one line broken (a reject).
    Events(u32),
    /// CloudWatch Logs records as Firehose writes them (gzip members), a control message first.
    CloudWatch(u32),
    /// JSON lines without a timestamp: every row rejected.
    Timeless(u32),
}

impl Kind {
    fn good(self) -> bool {
        matches!(
            self,
            Kind::Good(_)
                | Kind::GoodGzip(_)
                | Kind::Audit(_)
                | Kind::Unterminated(_)
                | Kind::Json(_)
                | Kind::Parquet(_)
                | Kind::Events(_)
                | Kind::CloudWatch(_)
        )
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (1u32..60).prop_map(Kind::Good),
        (1u32..60).prop_map(Kind::GoodGzip),
        (1u32..60).prop_map(Kind::Audit),
        (20u32..60).prop_map(Kind::Unterminated),
        Just(Kind::BadGzip),
        (1u32..60).prop_map(Kind::LateLayout),
        Just(Kind::LongName),
        Just(Kind::Wide),
        (1u32..20).prop_map(Kind::AllRejected),
        (20u32..60).prop_map(Kind::Json),
        (1u32..60).prop_map(Kind::Parquet),
        Just(Kind::BadParquet),
        (1u32..20).prop_map(Kind::NoJson),
        (20u32..60).prop_map(Kind::Events),
        (1u32..60).prop_map(Kind::CloudWatch),
        (1u32..20).prop_map(Kind::Timeless),
    ]
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn cloudfront(seed: u64, rows: u32) -> String {
    let mut r = Seeded(seed | 1);
    let mut text = format!("#Version: 1.0\n{FIELDS}\n");
    for i in 0..rows {
        let (client, forwarded) = (client_ip(&mut r), client_ip(&mut r));
        text.push_str(&cloudfront_row(
            "2024-01-01",
            "10:00:00",
            "9",
            &client,
            &forwarded,
            i,
            443,
        ));
    }
    text
}

fn audit(seed: u64, rows: u32) -> String {
    let mut r = Seeded(seed | 1);
    let mut text = String::from("timestamp,user,source_ip\n");
    for i in 0..rows {
        text.push_str(&format!(
            "2024-03-01T10:00:00Z,u{i},{}\n",
            client_ip(&mut r)
        ));
    }
    text
}

/// Write input `i` of `kind`: (table, uri, good rows it holds).
fn write_input(dir: &Path, i: usize, kind: Kind) -> (&'static str, String, u64) {
    let seed = i as u64 * 7919 + 1;
    let (table, rel, bytes, rows): (&str, String, Vec<u8>, u64) = match kind {
        Kind::Good(n) => (
            "cloudfront_logs",
            format!("logs/cloudfront/acme/E.{i}.log"),
            cloudfront(seed, n).into_bytes(),
            n.into(),
        ),
        Kind::GoodGzip(n) => (
            "cloudfront_logs",
            format!("logs/cloudfront/globex/E.{i}.gz"),
            gzip(cloudfront(seed, n).as_bytes()),
            n.into(),
        ),
        Kind::Audit(n) => (
            "audit",
            format!("logs/audit/acme/{i}.csv"),
            audit(seed, n).into_bytes(),
            n.into(),
        ),
        Kind::Unterminated(n) => {
            let text = audit(seed, n).replacen(",u3,", ",\"u3,", 1);
            (
                "audit",
                format!("logs/audit/acme/{i}.csv"),
                text.into_bytes(),
                u64::from(n) - 1,
            )
        }
        Kind::BadGzip => {
            let gz = gzip(cloudfront(seed, 30).as_bytes());
            (
                "cloudfront_logs",
                format!("logs/cloudfront/acme/E.{i}.gz"),
                gz[..gz.len() - 12].to_vec(),
                0,
            )
        }
        Kind::LateLayout(n) => {
            let mut text = cloudfront(seed, n);
            text.push_str("#Fields: c-ip\n192.0.2.1\n");
            (
                "cloudfront_logs",
                format!("logs/cloudfront/acme/E.{i}.log"),
                text.into_bytes(),
                0,
            )
        }
        Kind::LongName => (
            "cloudfront_logs",
            format!("logs/cloudfront/{}{i}/E.{i}.log", "n".repeat(250)),
            cloudfront(seed, 5).into_bytes(),
            0,
        ),
        Kind::Wide => {
            let names: Vec<String> = (0..40).map(|c| format!("w{i}_{c}")).collect();
            let text = format!(
                "timestamp,{}\n2024-03-01T10:00:00Z{}\n",
                names.join(","),
                ",v".repeat(40)
            );
            (
                "audit",
                format!("logs/audit/acme/{i}.csv"),
                text.into_bytes(),
                0,
            )
        }
        Kind::AllRejected(n) => {
            let rows: String = (0..n)
                .map(|r| format!("never,u{r},192.0.2.{}\n", r + 1))
                .collect();
            let text = format!("timestamp,user,source_ip\n{rows}");
            (
                "audit",
                format!("logs/audit/acme/{i}.csv"),
                text.into_bytes(),
                0,
            )
        }
        Kind::Json(n) => {
            let (names, rows) = split_w3c(&cloudfront(seed, n));
            let mut json = v2_json(&names, &rows, i.is_multiple_of(2));
            json.extend_from_slice(b"{\"date\": broken 192.0.2.9\n");
            (
                "cloudfront_logs",
                format!("logs/cloudfront/globex/E.{i}.json.gz"),
                gzip(&json),
                n.into(),
            )
        }
        Kind::Parquet(n) => {
            let (names, rows) = split_w3c(&cloudfront(seed, n));
            (
                "cloudfront_logs",
                format!("logs/cloudfront/acme/E.{i}"),
                v2_parquet(&names, &rows),
                n.into(),
            )
        }
        Kind::BadParquet => (
            "cloudfront_logs",
            format!("logs/cloudfront/acme/E.{i}.parquet"),
            b"PAR1 and no footer at all".to_vec(),
            0,
        ),
        Kind::Events(n) => {
            let mut r = Seeded(seed | 1);
            let mut text: String = (0..n)
                .map(|k| {
                    format!(
                        "{{\"timestamp\":\"2024-03-01T10:00:00Z\",\"user\":\"u{k}\",\"source_ip\":\"{}\",\"d\":{{\"n\":{k}}}}}\n",
                        client_ip(&mut r)
                    )
                })
                .collect();
            text.push_str("{\"timestamp\": oops 192.0.2.8}\n");
            (
                "events",
                format!("logs/events/acme/{i}.jsonl"),
                text.into_bytes(),
                n.into(),
            )
        }
        Kind::CloudWatch(n) => {
            let mut r = Seeded(seed | 1);
            let control =
                r#"{"messageType":"CONTROL_MESSAGE","logGroup":"","logStream":"","logEvents":[]}"#;
            let mut bytes = gzip(control.as_bytes());
            let events: Vec<String> = (0..n)
                .map(|k| {
                    let message = format!(
                        "{{\"user\":\"u{k}\",\"source_ip\":\"{}\"}}",
                        client_ip(&mut r)
                    );
                    serde_json::json!({"id": k.to_string(), "timestamp": 1709287200000u64 + u64::from(k), "message": message})
                        .to_string()
                })
                .collect();
            for chunk in events.chunks(7) {
                let record = format!(
                    r#"{{"messageType":"DATA_MESSAGE","logGroup":"/g","logStream":"s","logEvents":[{}]}}"#,
                    chunk.join(",")
                );
                bytes.extend(gzip(record.as_bytes()));
            }
            (
                "cloudwatch",
                format!("logs/cloudwatch/acme/{i}"),
                bytes,
                n.into(),
            )
        }
        Kind::Timeless(n) => (
            "events",
            format!("logs/events/acme/{i}.jsonl"),
            "{\"user\":\"u\",\"source_ip\":\"192.0.2.45\"}\n"
                .repeat(n as usize)
                .into_bytes(),
            0,
        ),
        Kind::NoJson(n) => (
            "cloudfront_logs",
            format!("logs/cloudfront/acme/E.{i}.json"),
            "{not json, 192.0.2.44}\n".repeat(n as usize).into_bytes(),
            0,
        ),
    };
    let path = dir.join(&rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    (table, rel, rows)
}

/// Rows in the table's committed files.
fn rows_in(dir: &Path, table: &str) -> u64 {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let data = dir.join("lake/data").join(table);
    files_below(&data)
        .iter()
        .map(|rel| {
            let f = std::fs::File::open(data.join(rel)).unwrap();
            SerializedFileReader::new(f)
                .unwrap()
                .metadata()
                .file_metadata()
                .num_rows() as u64
        })
        .sum()
}

fn run(dir: &Path, buffer_mb: u32, threads: u32) -> BTreeMap<String, TableSummary> {
    for folder in [
        "logs/cloudfront",
        "logs/audit",
        "logs/events",
        "logs/cloudwatch",
    ] {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
    }
    let text = format!(
        "[lake]\nroot = \"lake\"\n[run]\nthreads = {threads}\nbatch_size = 16\nbuffer_file_mb = {buffer_mb}\nmax_columns = 30\n\n\
         [[table]]\nname = \"cloudfront_logs\"\nformat = \"cloudfront\"\ninputs = [\"logs/cloudfront/{{customer}}/\"]\n\n\
         [[table]]\nname = \"audit\"\nformat = \"audit\"\ninputs = [\"logs/audit/{{customer}}/*.csv\"]\nmask_ips = [\"source_ip\"]\n\n\
         [[table]]\nname = \"events\"\nformat = \"jsonl\"\ninputs = [\"logs/events/{{customer}}/\"]\nmask_ips = [\"source_ip\"]\n\n\
         [[table]]\nname = \"cloudwatch\"\nformat = \"cloudwatch\"\ninputs = [\"logs/cloudwatch/{{customer}}/\"]\nmask_ips = [\"source_ip\"]\n"
    );
    let job = ConfigFile::parse(&text, "citrine.toml")
        .unwrap()
        .validate(dir)
        .unwrap();
    run::run(&job, None, &NoProgress)
        .into_iter()
        .map(|s| (s.table.clone(), s))
        .collect()
}

const TABLES: [&str; 4] = ["cloudfront_logs", "audit", "events", "cloudwatch"];

fn failed_uris(s: &TableSummary) -> BTreeSet<String> {
    s.inputs_failed.iter().map(|f| f.uri.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn good_inputs_commit_once_and_bad_ones_stay_unconsumed(
        kinds in prop::collection::vec(kind(), 1..8),
        buffer_mb in prop_oneof![Just(0u32), Just(32)],
        threads in 1u32..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut good: BTreeMap<&str, (BTreeSet<String>, u64)> = BTreeMap::new();
        let mut bad: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (i, k) in kinds.iter().enumerate() {
            let (table, uri, rows) = write_input(d, i, *k);
            if k.good() {
                let entry = good.entry(table).or_default();
                entry.0.insert(uri);
                entry.1 += rows;
            } else {
                bad.entry(table).or_default().insert(uri);
            }
        }
        for round in 0..2 {
            let summaries = run(d, buffer_mb, threads);
            for table in TABLES {
                let s = &summaries[table];
                prop_assert!(s.error.is_none(), "{table}: {:?}", s.error);
                let (uris, rows) = good.get(table).cloned().unwrap_or_default();
                let consumed = if round == 0 { uris.len() } else { 0 };
                prop_assert_eq!(s.inputs_consumed, consumed, "{} round {}", table, round);
                prop_assert_eq!(
                    failed_uris(s),
                    bad.get(table).cloned().unwrap_or_default(),
                    "{} round {}", table, round
                );
                prop_assert_eq!(s.rows_read, s.rows_written + s.rows_rejected);
                prop_assert_eq!(rows_in(d, table), rows, "{} round {}", table, round);
            }
        }
        // Every data file belongs to the one committed run of its table.
        for table in TABLES {
            let markers = files_below(&d.join("lake/complete").join(table))
                .into_iter()
                .filter(|f| f.ends_with(".manifest"))
                .count();
            let has_good = good.contains_key(table);
            prop_assert_eq!(markers, usize::from(has_good), "{}", table);
            let data = d.join("lake/data").join(table);
            let files = files_below(&data).len();
            let listed: usize = files_below(&d.join("lake/complete").join(table))
                .into_iter()
                .filter(|f| f.ends_with(".manifest"))
                .map(|f| {
                    let m: serde_json::Value = serde_json::from_slice(
                        &std::fs::read(d.join("lake/complete").join(table).join(f)).unwrap(),
                    )
                    .unwrap();
                    m["entries"].as_array().unwrap().len()
                })
                .sum();
            prop_assert_eq!(files, listed, "{}: no file outside a manifest", table);
        }
    }
}
