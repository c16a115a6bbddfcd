//! Messy and hostile inputs, as real input trees hold them. Whatever an input does, its failure
//! is its own (the other inputs and tables commit, the next run tries it again), nothing is
//! committed twice or swallowed, and no output byte carries a full client address. Each case is
//! tried above the size thresholds (inputs held in memory, and inputs past `buffer_file_mb` that
//! are written to files of their own, read whole or streamed from disk).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::Path;

use common::gen::{client_ip, cloudfront_row, Seeded, FIELDS};
use common::{citrine, citrine_env, files_below, ip_tokens, rust_counts};
use serde_json::Value;

/// Rows of a CloudFront file: the header, then `rows` rows on `date` (clients from `seed`).
/// Returns the text and the client addresses used.
fn cloudfront_text(seed: u64, date: &str, rows: u32) -> (String, Vec<String>) {
    let mut r = Seeded(seed | 1);
    let mut text = format!("#Version: 1.0\n{FIELDS}\n");
    let mut ips = Vec::new();
    for i in 0..rows {
        let client = client_ip(&mut r);
        let forwarded = client_ip(&mut r);
        text.push_str(&cloudfront_row(
            date, "10:00:00", "512", &client, &forwarded, i, 443,
        ));
        ips.push(client);
        ips.push(forwarded);
    }
    (text, ips)
}

/// Rows for more than `mib` MiB of CloudFront text.
fn rows_for_mib(mib: u32) -> u32 {
    mib * 1024 * 1024 / 200 + 100
}

fn gzip(data: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn put(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A config with a CloudFront and an audit table (their input folders made); `run` lines go
/// to `[run]`, `lake` to `[lake]`.
fn config(dir: &Path, lake: &str, run: &str) {
    for folder in ["logs/cloudfront", "logs/audit"] {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
    }
    std::fs::write(
        dir.join("citrine.toml"),
        format!(
            "[lake]\nroot = \"lake\"\n{lake}\n[run]\nthreads = 2\nbatch_size = 512\n{run}\n\n\
             [[table]]\nname = \"cloudfront_logs\"\nformat = \"cloudfront\"\ninputs = [\"logs/cloudfront/{{customer}}/\"]\n\n\
             [[table]]\nname = \"audit\"\nformat = \"audit\"\ninputs = [\"logs/audit/{{customer}}/*\"]\nmask_ips = [\"source_ip\"]\n"
        ),
    )
    .unwrap();
}

/// `citrine run --json` with `env`: (exit code, summaries by table, stderr).
fn run_json(dir: &Path, env: &[(&str, &str)]) -> (i32, BTreeMap<String, Value>, String) {
    let out = citrine_env(dir, &["run", "--json"], env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summaries: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    let by_table = summaries
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["table"].as_str().unwrap().to_owned(), s.clone()))
        .collect();
    (out.status.code().unwrap(), by_table, stderr)
}

/// Failed inputs of a summary: uri → error.
fn failed(summary: &Value) -> BTreeMap<String, String> {
    summary["inputs_failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["uri"].as_str().unwrap().to_owned(),
                f["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every data file of `table` is listed by a marker, and every listed file exists.
fn assert_no_orphans(dir: &Path, table: &str) {
    let lake = dir.join("lake");
    let mut listed = BTreeSet::new();
    for f in files_below(&lake.join("complete").join(table)) {
        if f.ends_with(".manifest") {
            let m: Value = serde_json::from_slice(
                &std::fs::read(lake.join("complete").join(table).join(&f)).unwrap(),
            )
            .unwrap();
            for e in m["entries"].as_array().unwrap() {
                let url = e["url"].as_str().unwrap();
                let path = url.strip_prefix("file://").unwrap();
                assert!(Path::new(path).exists(), "listed but missing: {url}");
                listed.insert(std::fs::canonicalize(path).unwrap());
            }
        }
    }
    for f in files_below(&lake.join("data").join(table)) {
        let path = std::fs::canonicalize(lake.join("data").join(table).join(&f)).unwrap();
        assert!(listed.contains(&path), "a data file no marker lists: {f}");
    }
}

/// The audit table's rows per customer|dt, read back.
fn audit_counts(dir: &Path) -> BTreeMap<String, u64> {
    common::table_counts(dir, "audit")
}

fn audit_text(seed: u64, rows: u32, date: &str) -> (String, Vec<String>) {
    let mut r = Seeded(seed | 1);
    let mut text = String::from("timestamp,user,action,source_ip\n");
    let mut ips = Vec::new();
    for i in 0..rows {
        let ip = client_ip(&mut r);
        text.push_str(&format!(
            "{date}T10:{:02}:{:02}Z,user{i}@example.test,login,{ip}\n",
            i % 60,
            (i / 60) % 60
        ));
        ips.push(ip);
    }
    (text, ips)
}

#[test]
fn a_poison_input_fails_alone_at_any_size_and_loads_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "", "buffer_file_mb = 1");
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    // Good inputs: small plain and gzip (held), and one past the buffer and read streamed.
    let (small, _) = cloudfront_text(1, "2024-01-01", 20);
    put(
        d,
        "logs/cloudfront/acme/E1.2024-01-01-10.a",
        small.as_bytes(),
    );
    let (small_gz, _) = cloudfront_text(2, "2024-01-01", 30);
    put(
        d,
        "logs/cloudfront/acme/E1.2024-01-01-11.b.gz",
        &gzip(small_gz.as_bytes(), flate2::Compression::fast()),
    );
    *expected.entry("acme|2024-01-01".into()).or_default() += 50;
    let big_rows = rows_for_mib(5);
    let (big, _) = cloudfront_text(3, "2024-01-02", big_rows);
    assert!(big.len() > 5 << 20);
    put(
        d,
        "logs/cloudfront/globex/E2.2024-01-02-10.c",
        big.as_bytes(),
    );
    *expected.entry("globex|2024-01-02".into()).or_default() += u64::from(big_rows);

    // Poison: a second #Fields block without date and time on the last lines, held and past
    // the buffer, plain and gzip (stored, so it is large on disk and streamed); a gzip cut
    // short near its end.
    let poison = |seed: u64, rows: u32| {
        let (mut text, _) = cloudfront_text(seed, "2024-01-03", rows);
        text.push_str("#Fields: c-ip sc-bytes\n192.0.2.1\t5\n");
        text
    };
    let late_small = poison(4, 40);
    let late_big = poison(5, big_rows);
    put(
        d,
        "logs/cloudfront/initech/late-small.log",
        late_small.as_bytes(),
    );
    put(
        d,
        "logs/cloudfront/initech/late-big.log",
        late_big.as_bytes(),
    );
    let stored = gzip(late_big.as_bytes(), flate2::Compression::none());
    assert!(stored.len() > 5 << 20);
    put(d, "logs/cloudfront/initech/late-big.gz", &stored);
    let (cut, _) = cloudfront_text(6, "2024-01-03", big_rows);
    let cut = gzip(cut.as_bytes(), flate2::Compression::none());
    put(d, "logs/cloudfront/initech/cut.gz", &cut[..cut.len() - 100]);
    // The audit table after it: a large truncated gzip and a good file.
    let (audit_good, _) = audit_text(7, 50, "2024-03-01");
    put(d, "logs/audit/acme/good.csv", audit_good.as_bytes());
    let (audit_big, _) = audit_text(8, 120_000, "2024-03-02");
    let audit_cut = gzip(audit_big.as_bytes(), flate2::Compression::none());
    assert!(audit_cut.len() > 5 << 20);
    put(
        d,
        "logs/audit/acme/big.csv.gz",
        &audit_cut[..audit_cut.len() - 50],
    );

    let (code, s, stderr) = run_json(d, &[]);
    assert_eq!(code, 1, "completed with errors: {stderr}");
    let cf = &s["cloudfront_logs"];
    assert_eq!(cf["inputs_consumed"], 3, "{cf}");
    let bad_layout =
        "does not look like a CloudFront log: #Fields directive has no date and time fields";
    let cut_gzip = "truncated or corrupt gzip stream";
    let fails = failed(cf);
    assert_eq!(
        fails.keys().cloned().collect::<Vec<_>>(),
        [
            "logs/cloudfront/initech/cut.gz",
            "logs/cloudfront/initech/late-big.gz",
            "logs/cloudfront/initech/late-big.log",
            "logs/cloudfront/initech/late-small.log"
        ]
    );
    assert!(fails["logs/cloudfront/initech/cut.gz"].starts_with(cut_gzip));
    for late in ["late-big.gz", "late-big.log", "late-small.log"] {
        assert_eq!(
            fails[&format!("logs/cloudfront/initech/{late}")],
            bad_layout
        );
    }
    for uri in fails.keys() {
        assert!(
            stderr.contains(uri.as_str()),
            "{uri} named on stderr: {stderr}"
        );
    }
    assert_eq!(cf["rows_written"], expected.values().sum::<u64>());
    assert_eq!(rust_counts(d), expected);
    assert_no_orphans(d, "cloudfront_logs");
    // The table configured after it ran, with its own poison failing alone.
    let audit = &s["audit"];
    assert_eq!(audit["inputs_consumed"], 1);
    assert!(failed(audit)["logs/audit/acme/big.csv.gz"].starts_with(cut_gzip));
    assert_eq!(
        audit_counts(d),
        BTreeMap::from([("acme|2024-03-01".into(), 50)])
    );
    assert_no_orphans(d, "audit");

    // Unchanged, they fail again (and nothing else is redone).
    let (code, s, _) = run_json(d, &[]);
    assert_eq!(code, 1);
    assert_eq!(s["cloudfront_logs"]["inputs_consumed"], 0);
    assert_eq!(failed(&s["cloudfront_logs"]).len(), 4);
    assert_eq!(rust_counts(d), expected);

    // Fixed, each loads once.
    let fixed = |text: &str| text[..text.find("#Fields: c-ip").unwrap()].to_owned();
    put(
        d,
        "logs/cloudfront/initech/late-small.log",
        fixed(&late_small).as_bytes(),
    );
    put(
        d,
        "logs/cloudfront/initech/late-big.log",
        fixed(&late_big).as_bytes(),
    );
    put(
        d,
        "logs/cloudfront/initech/late-big.gz",
        &gzip(fixed(&late_big).as_bytes(), flate2::Compression::none()),
    );
    put(d, "logs/cloudfront/initech/cut.gz", &cut);
    put(d, "logs/audit/acme/big.csv.gz", &audit_cut);
    let (code, s, stderr) = run_json(d, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(s["cloudfront_logs"]["inputs_consumed"], 4);
    assert_eq!(s["audit"]["inputs_consumed"], 1);
    *expected.entry("initech|2024-01-03".into()).or_default() += 40 + 3 * u64::from(big_rows);
    assert_eq!(rust_counts(d), expected);
    assert_eq!(audit_counts(d)["acme|2024-03-02"], 120_000);
    assert_no_orphans(d, "cloudfront_logs");
    assert_no_orphans(d, "audit");
    let (code, s, _) = run_json(d, &[]);
    assert_eq!((code, &s["cloudfront_logs"]["run_id"]), (0, &Value::Null));
}

#[test]
fn a_customer_folder_name_that_cannot_exist_fails_its_input_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "", "");
    let (text, _) = cloudfront_text(11, "2024-01-01", 10);
    let long = [
        "a".repeat(250), // 259 bytes with `customer=`
        "€".repeat(85),  // 255 bytes of UTF-8
        "%".repeat(84),  // 84 characters that escape to 252 bytes
    ];
    let fits = "b".repeat(246); // `customer=` and 246 bytes: exactly 255
    for c in long.iter().chain([&fits, &"acme".to_string()]) {
        put(
            d,
            &format!("logs/cloudfront/{c}/E1.2024-01-01-10.x"),
            text.as_bytes(),
        );
    }
    let (code, s, stderr) = run_json(d, &[]);
    assert_eq!(code, 1, "{stderr}");
    let cf = &s["cloudfront_logs"];
    assert_eq!(cf["inputs_consumed"], 2);
    let fails = failed(cf);
    assert_eq!(fails.len(), 3, "{fails:?}");
    for (uri, error) in &fails {
        assert!(
            error.contains("more than the 255 a folder name may have"),
            "{uri}: {error}"
        );
    }
    assert_eq!(
        rust_counts(d),
        BTreeMap::from([
            ("acme|2024-01-01".to_string(), 10),
            (format!("{fits}|2024-01-01"), 10)
        ])
    );
    assert_no_orphans(d, "cloudfront_logs");
}

#[test]
fn a_file_appended_to_while_read_is_consumed_once_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "", "");
    let (text, _) = cloudfront_text(21, "2024-01-01", 301);
    let rel = "logs/cloudfront/acme/E1.2024-01-01-10.growing";
    put(d, rel, text.as_bytes());
    let resume = d.join("resume");
    let resume_text = resume.display().to_string();
    let env = [
        ("CITRINE_TEST_STALL", "input_opened"),
        ("CITRINE_TEST_RESUME", resume_text.as_str()),
    ];
    let child = common::stalled_with(d, &["run", "--json"], &env, "input_opened");
    // The shipper appends 100 more rows while citrine reads the first 301.
    let (more, _) = cloudfront_text(22, "2024-01-01", 100);
    let more = more.lines().skip(2).collect::<Vec<_>>().join("\n") + "\n";
    std::fs::OpenOptions::new()
        .append(true)
        .open(d.join(rel))
        .unwrap()
        .write_all(more.as_bytes())
        .unwrap();
    std::fs::write(&resume, b"").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fails = failed(&s[0]);
    assert!(
        fails[rel].starts_with("changed while being read (listed at ")
            && fails[rel].ends_with("still being written? it is read again on the next run"),
        "{fails:?}"
    );
    assert!(
        !d.join("lake/data/cloudfront_logs").exists(),
        "nothing of it written"
    );
    // The next run reads it whole, once; the one after has nothing to do.
    let (code, s, stderr) = run_json(d, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(s["cloudfront_logs"]["inputs_consumed"], 1);
    assert_eq!(s["cloudfront_logs"]["rows_written"], 401);
    let (code, s, _) = run_json(d, &[]);
    assert_eq!(
        (code, &s["cloudfront_logs"]["inputs_skipped"]),
        (0, &Value::from(1))
    );
    assert_eq!(
        rust_counts(d),
        BTreeMap::from([("acme|2024-01-01".to_string(), 401)])
    );
}

#[test]
fn an_unterminated_quote_costs_one_row_never_the_rest_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "", "buffer_file_mb = 1");
    let mut total = 0;
    for (name, rows) in [("small.csv", 200), ("big.csv", 70_000)] {
        let (text, _) = audit_text(31, rows, "2024-03-01");
        let mut lines: Vec<&str> = text.lines().collect();
        // The middle record's action opens a quote that never closes.
        let broken = lines[rows as usize / 2].replacen(",login,", ",\"login,", 1);
        lines[rows as usize / 2] = &broken;
        let text = lines.join("\n") + "\n";
        if rows > 1000 {
            assert!(text.len() > 4 << 20);
        }
        put(d, &format!("logs/audit/acme/{name}"), text.as_bytes());
        total += rows;
    }
    let (code, s, stderr) = run_json(d, &[]);
    assert_eq!(code, 0, "{stderr}");
    let audit = &s["audit"];
    assert_eq!(audit["rows_read"], total);
    assert_eq!(audit["rows_rejected"], 2);
    assert_eq!(audit["rows_written"], total - 2);
    assert_eq!(audit_counts(d)["acme|2024-03-01"], u64::from(total - 2));
    let rejects = std::fs::read_to_string(
        files_below(&d.join("lake/_citrine/rejects/audit"))
            .first()
            .map(|f| d.join("lake/_citrine/rejects/audit").join(f))
            .unwrap(),
    )
    .unwrap();
    let mut lines: Vec<(String, u64, String)> = rejects
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["file"].as_str().unwrap().to_owned(),
                v["line"].as_u64().unwrap(),
                v["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            (
                "logs/audit/acme/big.csv".to_string(),
                35_001,
                "unbalanced quote: the record runs past 1048576 bytes (a quote that never closes?)"
                    .to_string()
            ),
            (
                "logs/audit/acme/small.csv".to_string(),
                101,
                "unbalanced quote: the input ends inside a quoted field".to_string()
            ),
        ]
    );
}

#[test]
fn no_full_address_reaches_any_output_byte() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "compression = \"none\"", "");
    let mut ips: HashSet<String> = HashSet::new();
    // A layout naming c-ip twice: the second copy goes to `extra`.
    let (text, used) = cloudfront_text(41, "2024-01-01", 30);
    ips.extend(used);
    let twice = text.replacen("c-ip", "c-ip c-ip", 1);
    let twice: String = twice
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i < 2 {
                format!("{l}\n")
            } else {
                let ip = l.split('\t').nth(4).unwrap().to_owned();
                let mut fields: Vec<&str> = l.split('\t').collect();
                fields.insert(5, &ip);
                format!("{}\n", fields.join("\t"))
            }
        })
        .collect();
    put(
        d,
        "logs/cloudfront/acme/E1.2024-01-01-10.twice",
        twice.as_bytes(),
    );
    // An audit file without a header row: its first row would be echoed as the header.
    let (audit, used) = audit_text(42, 20, "2024-03-01");
    ips.extend(used);
    let headless: String = audit.lines().skip(1).map(|l| format!("{l}\n")).collect();
    put(d, "logs/audit/acme/headless.csv", headless.as_bytes());
    // An unterminated quote whose swallowed lines hold addresses.
    let (audit, used) = audit_text(43, 30, "2024-03-01");
    ips.extend(used);
    let quoted = audit.replacen(",login,", ",\"login,", 3);
    put(d, "logs/audit/acme/quoted.csv", quoted.as_bytes());

    let out = citrine_env(d, &["run", "--json"], &[("CITRINE_LOG", "debug")]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no header row"), "{stderr}");
    let mut texts = vec![
        (
            "stdout".to_string(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ),
        ("stderr".to_string(), stderr.into_owned()),
    ];
    for rel in files_below(&d.join("lake")) {
        let bytes = std::fs::read(d.join("lake").join(&rel)).unwrap();
        texts.push((rel, String::from_utf8_lossy(&bytes).into_owned()));
    }
    for (name, text) in &texts {
        let leaked: Vec<_> = ip_tokens(text).filter(|t| ips.contains(*t)).collect();
        assert!(leaked.is_empty(), "{name}: full addresses {leaked:?}");
    }
    // The second c-ip is in `extra`, masked.
    let parquet = texts
        .iter()
        .find(|(n, _)| n.contains("cloudfront_logs/customer=acme"));
    assert!(
        parquet.unwrap().1.contains("{\"c_ip\":\""),
        "extra holds the second copy"
    );
}

#[test]
fn an_input_that_would_widen_the_table_past_its_cap_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "", "");
    let (good, _) = audit_text(51, 5, "2024-03-01");
    put(d, "logs/audit/acme/good.csv", good.as_bytes());
    let mut wide = String::from("timestamp");
    for i in 0..20_000 {
        wide.push_str(&format!(",c{i}"));
    }
    wide.push_str("\n2024-03-01T10:00:00Z");
    wide.push_str(&",x".repeat(20_000));
    wide.push('\n');
    put(d, "logs/audit/acme/wide.csv", wide.as_bytes());
    let (code, s, stderr) = run_json(d, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        failed(&s["audit"])["logs/audit/acme/wide.csv"],
        "its header would give the table 20008 columns, more than run.max_columns = 1000"
    );
    let catalog: Value =
        serde_json::from_slice(&std::fs::read(d.join("lake/_citrine/catalog/audit.json")).unwrap())
            .unwrap();
    assert_eq!(catalog["columns"].as_array().unwrap().len(), 8);
    let ddl = citrine(d, &["redshift", "ddl", "--table", "audit"]);
    assert_eq!(ddl.status.code(), Some(0));
}

#[test]
fn files_vanishing_while_listed_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "", "");
    let (text, _) = cloudfront_text(61, "2024-01-01", 5);
    for i in 0..20 {
        put(
            d,
            &format!("logs/cloudfront/acme/E1.2024-01-01-{i:02}.x"),
            text.as_bytes(),
        );
    }
    // An rsync-style copy: dot-temp files appear and vanish in the input tree all along.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        let folder = d.join("logs/cloudfront/acme");
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let tmp = folder.join(format!(".E1.part.{}", n % 64));
                let _ = std::fs::write(&tmp, b"partial");
                let _ = std::fs::remove_file(folder.join(format!(".E1.part.{}", (n + 32) % 64)));
                n += 1;
            }
        })
    };
    for i in 0..15 {
        let (code, s, stderr) = run_json(d, &[]);
        assert_eq!(code, 0, "run {i}: {stderr}");
        assert_eq!(s["cloudfront_logs"]["inputs_listed"], 20, "run {i}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    assert_eq!(
        rust_counts(d),
        BTreeMap::from([("acme|2024-01-01".to_string(), 100)])
    );
}

#[test]
fn an_input_deleted_after_listing_is_skipped_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "", "");
    let (text, _) = cloudfront_text(65, "2024-01-01", 7);
    for name in ["a", "b", "c"] {
        put(
            d,
            &format!("logs/cloudfront/acme/E1.2024-01-01-10.{name}"),
            text.as_bytes(),
        );
    }
    let resume = d.join("resume");
    let resume_text = resume.display().to_string();
    let env = [
        ("CITRINE_TEST_STALL", "planned"),
        ("CITRINE_TEST_RESUME", resume_text.as_str()),
    ];
    let child = common::stalled_with(d, &["run", "--json"], &env, "planned");
    std::fs::remove_file(d.join("logs/cloudfront/acme/E1.2024-01-01-10.b")).unwrap();
    std::fs::write(&resume, b"").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s[0]["inputs_consumed"], 2);
    assert_eq!(s[0]["inputs_skipped"], 1);
    assert_eq!(s[0]["inputs_failed"], serde_json::json!([]));
    assert_eq!(
        rust_counts(d),
        BTreeMap::from([("acme|2024-01-01".to_string(), 14)])
    );
}

#[test]
fn a_killed_run_leaves_no_temporary_file_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "", "");
    let (text, _) = cloudfront_text(71, "2024-01-01", 40);
    let bad = text.replace("\t512\t", "\tNaN-bytes\t");
    put(
        d,
        "logs/cloudfront/acme/E1.2024-01-01-10.x",
        text.as_bytes(),
    );
    // A few rejected rows, so the reject spool has something in it when the run is killed.
    let mut mixed: Vec<&str> = text.lines().collect();
    let bad_line = bad.lines().nth(5).unwrap();
    mixed[5] = bad_line;
    put(
        d,
        "logs/cloudfront/acme/E1.2024-01-01-11.x",
        (mixed.join("\n") + "\n").as_bytes(),
    );
    let tmp = d.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let tmp_text = tmp.display().to_string();
    // A lock temp file of a writer that died long ago.
    put(
        d,
        &format!(
            "lake/_citrine/locks/.cloudfront_logs.lock.{}.0.tmp",
            u32::MAX - 1
        ),
        b"{",
    );
    for stage in [
        "after_lock",
        "input_opened",
        "before_commit",
        "before_manifest",
    ] {
        let env = [("CITRINE_TEST_STALL", stage), ("TMPDIR", tmp_text.as_str())];
        let mut child = common::stalled_with(d, &["run"], &env, stage);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_eq!(files_below(&tmp), Vec::<String>::new(), "{stage}: TMPDIR");
    }
    let (code, _, stderr) = run_json(d, &[("TMPDIR", tmp_text.as_str())]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(files_below(&tmp), Vec::<String>::new());
    let locks = files_below(&d.join("lake/_citrine/locks"));
    assert!(
        locks
            .iter()
            .all(|f| !f.ends_with(".tmp") && !f.ends_with(".lock")),
        "{locks:?}"
    );
    assert_eq!(
        rust_counts(d),
        BTreeMap::from([("acme|2024-01-01".to_string(), 79)])
    );
}

#[test]
fn an_unreadable_lock_is_taken_over_once_its_lease_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "", "lock_lease_secs = 1");
    let (text, _) = cloudfront_text(81, "2024-01-01", 5);
    put(
        d,
        "logs/cloudfront/acme/E1.2024-01-01-10.x",
        text.as_bytes(),
    );
    put(d, "lake/_citrine/locks/cloudfront_logs.lock", b"");
    let (code, s, stderr) = run_json(d, &[]);
    assert_eq!(code, 2, "{stderr}");
    let error = s["cloudfront_logs"]["error"].as_str().unwrap();
    assert!(
        error.contains("the table lock is unreadable; it is taken over once its lease has passed"),
        "{error}"
    );
    // The other table ran all the same.
    assert!(s["audit"]["error"].is_null(), "{}", s["audit"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, s, stderr) = run_json(d, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(s["cloudfront_logs"]["inputs_consumed"], 1);
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "", "");
    let (good, _) = audit_text(91, 5, "2024-03-01");
    put(d, "logs/audit/acme/good.csv", good.as_bytes());
    common::run_ok(d);
    for args in [
        &["redshift", "ddl", "--table", "audit"][..],
        &["iam-policy"][..],
        &["status"][..],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_citrine"))
            .current_dir(d)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -0`: the reader is gone before the first line is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}

#[test]
fn inputs_that_can_only_reject_are_never_consumed_and_missing_folders_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "", "");
    // Every row's timestamp is unreadable: 100% rejected.
    let rows: String = (0..30)
        .map(|i| format!("yesterday,user{i},login,192.0.2.{}\n", i + 1))
        .collect();
    put(
        d,
        "logs/audit/acme/bad.csv",
        format!("timestamp,user,action,source_ip\n{rows}").as_bytes(),
    );
    let (good, _) = audit_text(101, 40, "2024-03-01");
    put(d, "logs/audit/acme/good.csv", good.as_bytes());
    // No logs/cloudfront folder at all: that table fails, naming it; audit still runs.
    std::fs::remove_dir(d.join("logs/cloudfront")).unwrap();
    let (code, s, stderr) = run_json(d, &[]);
    assert_eq!(code, 2, "{stderr}");
    let error = s["cloudfront_logs"]["error"].as_str().unwrap();
    assert!(
        error.starts_with("input pattern \"logs/cloudfront/{customer}/\": its folder ")
            && error.ends_with("logs/cloudfront does not exist"),
        "{error}"
    );
    assert!(
        stderr.contains("table cloudfront_logs: run failed"),
        "{stderr}"
    );
    let audit = &s["audit"];
    assert_eq!(audit["inputs_consumed"], 1);
    assert_eq!(
        failed(audit)["logs/audit/acme/bad.csv"],
        "30 of 30 rows rejected, more than run.max_reject_fraction = 0.1 allows (first at line 2: timestamp: not recognised: \"yesterday\")"
    );
    assert_eq!(
        audit_counts(d),
        BTreeMap::from([("acme|2024-03-01".into(), 40)])
    );
    // Its rejects are not published either: the input is not consumed.
    let rejects = files_below(&d.join("lake/_citrine/rejects"));
    assert!(rejects.is_empty(), "{rejects:?}");
}
