//! Audit events as JSON: CloudWatch Logs as a subscription filter delivers them through Firehose
//! (gzip members of records, a CONTROL_MESSAGE among them, one broken) and as an export task
//! writes them, and the same events as JSON lines; loaded by `citrine run`, read back by DuckDB
//! and pyarrow: messages flattened into columns, a text message kept whole and scrubbed, the
//! customer from the path or from a field of the event, rows in = rows written + rejected.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::fixture;
use serde_json::Value;

/// `sql` run by DuckDB over the lake below `d` (`{t}` is a table's Parquet files), as rows
/// of text.
fn duck(d: &Path, sql: &str) -> Option<Vec<Vec<Value>>> {
    let python = common::python()?;
    let script = "import duckdb, json, sys\n\
        rows = duckdb.connect().sql(sys.argv[1]).fetchall()\n\
        print(json.dumps([[None if v is None else str(v) for v in r] for r in rows]))";
    let out = std::process::Command::new(python)
        .current_dir(d)
        .args(["-c", script, sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn table(name: &str) -> String {
    format!("read_parquet('lake/data/{name}/**/*.parquet', union_by_name = true)")
}

fn setup(d: &Path) {
    let put = |rel: &str, from: &str| {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::copy(fixture(from), p).unwrap();
    };
    put(
        "cw/acme/2024/03/01/firehose-1-2024-03-01-10-00-00-abc",
        "cloudwatch/firehose-subscription.gz",
    );
    put(
        "cw/acme/2024/03/01/firehose-1-2024-03-01-10-05-00-def",
        "cloudwatch/firehose-broken.gz",
    );
    put(
        "cw/acme/exportedlogs/task-1/api-2024-03-01/000000.gz",
        "cloudwatch/export-000000.gz",
    );
    put("jl/events.jsonl", "cloudwatch/events.jsonl");
    std::fs::write(
        d.join("citrine.toml"),
        "[lake]\nroot = \"lake\"\n[run]\nmax_reject_fraction = 0.5\n\n\
         [[table]]\nname = \"audit_cw\"\nformat = \"cloudwatch\"\ninputs = [\"cw/{customer}/\"]\n\
         mask_ips = [\"source_ip\"]\n\n\
         [[table]]\nname = \"audit_jl\"\nformat = \"jsonl\"\ninputs = [\"jl/*.jsonl\"]\n\
         customer_field = \"tenant\"\nmask_ips = [\"source_ip\"]\n",
    )
    .unwrap();
}

#[test]
fn cloudwatch_subscriptions_exports_and_json_lines_load_as_columns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let s: Value =
        serde_json::from_str(&common::succeeded(&common::citrine(d, &["run", "--json"]))).unwrap();
    let (cw, jl) = (&s[0], &s[1]);
    assert_eq!(cw["table"], "audit_cw");
    // 5 events a file, the broken one 3 and a record that is no JSON; no control message.
    assert_eq!(
        (
            &cw["inputs_consumed"],
            &cw["rows_written"],
            &cw["rows_rejected"],
            &cw["rows_read"]
        ),
        (
            &Value::from(3),
            &Value::from(13),
            &Value::from(1),
            &Value::from(14)
        ),
        "{cw}"
    );
    // 4 events; the broken line rejected; the text event has no tenant in the JSON lines.
    assert_eq!(
        (&jl["rows_written"], &jl["rows_rejected"]),
        (&Value::from(4), &Value::from(1)),
        "{jl}"
    );
    let rejects: String = common::files_below(&d.join("lake/_citrine/rejects"))
        .iter()
        .map(|f| std::fs::read_to_string(d.join("lake/_citrine/rejects").join(f)).unwrap())
        .collect();
    assert_eq!(rejects.matches("not a JSON object").count(), 2, "{rejects}");

    let want = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    assert_eq!(
        common::table_counts(d, "audit_cw"),
        want(&[("acme|2024-03-01", 13)])
    );
    let jl_counts = want(&[("acme|2024-03-01", 2), ("globex|2024-03-01", 2)]);
    assert_eq!(common::table_counts(d, "audit_jl"), jl_counts);
    if let Some(python) = common::python() {
        let (duck_counts, arrow) = common::lake_counts(&python, &d.join("lake/data/audit_jl"));
        assert_eq!((&duck_counts, &arrow), (&jl_counts, &jl_counts));
    }
    common::assert_no_address(
        &d.join("lake"),
        &[
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.5",
            "192.0.2.99",
            "192.0.2.11",
            "192.0.2.77",
        ]
        .map(str::to_owned)
        .into(),
    );

    let Some(rows) = duck(
        d,
        &format!(
            "SELECT source_file, row_num, strftime(ts, '%H:%M'), log_group, log_stream, \"user\", \
             source_ip, tenant, detail_rows, detail_format, ok, message, extra \
             FROM {} ORDER BY source_file, row_num",
            table("audit_cw")
        ),
    ) else {
        return;
    };
    let sub = |row_num: u64| -> &Vec<Value> {
        rows.iter()
            .find(|r| {
                r[0].as_str().unwrap().contains("10-00-00-abc")
                    && r[1].as_str() == Some(row_num.to_string().as_str())
            })
            .unwrap()
    };
    let s = |v: &str| Value::from(v);
    assert_eq!(
        sub(2)[2..11].to_vec(),
        [
            s("10:01"),
            s("/wau/audit"),
            s("api-2024-03-01"),
            s("u2"),
            s("198.51.100.0/24"),
            s("acme"),
            s("120"),
            s("csv"),
            Value::Null,
        ]
    );
    // The text message is kept whole, its address masked; the event has no JSON fields.
    assert_eq!(sub(4)[11], s("user u4 failed a login from 192.0.2.0/24"));
    assert_eq!(sub(4)[5], Value::Null);
    assert_eq!(sub(5)[10], s("true"));
    // The export's events: the same fields, no log group (the export names it in its path).
    let export: Vec<_> = rows
        .iter()
        .filter(|r| r[0].as_str().unwrap().ends_with("000000.gz"))
        .collect();
    assert_eq!(export.len(), 5);
    assert!(export.iter().all(|r| r[3].is_null()));
    assert_eq!(export[1][5..9].to_vec(), sub(2)[5..9].to_vec());
}

#[test]
fn a_key_first_seen_past_the_sample_goes_to_extra_and_nothing_is_lost() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("jl/acme")).unwrap();
    // Past the 1 MiB the plan samples, a key no earlier event had.
    let mut f = std::fs::File::create(d.join("jl/acme/big.jsonl")).unwrap();
    let pad = "p".repeat(200);
    let mut n = 0;
    let mut written = 0;
    while written < (1 << 20) + 4096 {
        let line = format!(
            "{{\"timestamp\":\"2024-03-01T10:00:00Z\",\"user\":\"u{n}\",\"pad\":\"{pad}\"}}\n"
        );
        written += line.len();
        f.write_all(line.as_bytes()).unwrap();
        n += 1;
    }
    f.write_all(
        b"{\"timestamp\":\"2024-03-01T10:00:01Z\",\"user\":\"late\",\"late_key\":\"kept\"}\n",
    )
    .unwrap();
    drop(f);
    std::fs::write(
        d.join("citrine.toml"),
        "[lake]\nroot = \"lake\"\n[[table]]\nname = \"audit_jl\"\nformat = \"jsonl\"\ninputs = [\"jl/{customer}/\"]\n",
    )
    .unwrap();
    let s = common::run_summary(d);
    assert_eq!(s["rows_written"], n + 1, "{s}");
    let Some(rows) = duck(
        d,
        &format!(
            "SELECT extra FROM {} WHERE \"user\" = 'late'",
            table("audit_jl")
        ),
    ) else {
        return;
    };
    assert_eq!(rows, [[Value::from(r#"{"late_key":"kept"}"#)]]);
    // The next input that starts with the key makes it a column (the table grows at its end).
    std::fs::write(
        d.join("jl/acme/next.jsonl"),
        "{\"timestamp\":\"2024-03-01T11:00:00Z\",\"user\":\"v\",\"late_key\":\"now a column\"}\n",
    )
    .unwrap();
    common::run_summary(d);
    let rows = duck(
        d,
        &format!(
            "SELECT late_key FROM {} WHERE \"user\" = 'v'",
            table("audit_jl")
        ),
    )
    .unwrap();
    assert_eq!(rows, [[Value::from("now a column")]]);
}

/// Past the whole-read size (a gzip of incompressible events, streamed) with a line over the
/// 1 MiB limit in it, beside a small good input, on two workers: every good event loads, the
/// long line is one reject naming its line, and the other input is untouched.
#[test]
fn a_streamed_input_with_an_over_long_line_rejects_that_line_alone() {
    use citrine::read::input::WHOLE_INPUT_BYTES;
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("jl/acme")).unwrap();
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut noise = |n: usize| -> String {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'a' + (seed % 26) as u8)
            })
            .collect()
    };
    let mut text = String::new();
    let mut events = 0u64;
    while text.len() < 9 << 20 {
        text.push_str(&format!(
            "{{\"timestamp\":\"2024-03-01T10:00:00Z\",\"user\":\"u{events}\",\"n\":\"{}\"}}\n",
            noise(300)
        ));
        events += 1;
        if events == 100 {
            text.push_str(&format!(
                "{{\"timestamp\":\"2024-03-01T10:00:00Z\",\"n\":\"{}\"}}\n",
                "x".repeat(2 << 20)
            ));
        }
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() as u64 > WHOLE_INPUT_BYTES, "{}", gz.len());
    std::fs::write(d.join("jl/acme/big.jsonl.gz"), gz).unwrap();
    std::fs::write(
        d.join("jl/acme/small.jsonl"),
        "{\"timestamp\":\"2024-03-01T11:00:00Z\",\"user\":\"s\"}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("citrine.toml"),
        "[lake]\nroot = \"lake\"\n[run]\nthreads = 2\n[[table]]\nname = \"audit_jl\"\nformat = \"jsonl\"\ninputs = [\"jl/{customer}/\"]\n",
    )
    .unwrap();
    let s = common::run_summary(d);
    assert_eq!(s["inputs_consumed"], 2, "{s}");
    assert_eq!(
        (s["rows_written"].as_u64(), s["rows_rejected"].as_u64()),
        (Some(events + 1), Some(1))
    );
    let rejects: String = common::files_below(&d.join("lake/_citrine/rejects"))
        .iter()
        .map(|f| std::fs::read_to_string(d.join("lake/_citrine/rejects").join(f)).unwrap())
        .collect();
    assert!(
        rejects.contains("\"line\":101") && rejects.contains("longer than 1048576 bytes"),
        "{}",
        &rejects[..rejects.len().min(400)]
    );
}
