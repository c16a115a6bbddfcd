//! CloudFront standard logging v2: the same requests written as W3C, as v2 JSON lines and as
//! v2 Parquet decode to the same rows (`row_num` aside), for AWS's documented example (full
//! and subset layouts, fixtures built by fixtures/cloudfront/v2/make.py) and for any layout
//! (a property test over field subsets, orders, key cases and values).

mod common;

use std::io::Read;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use citrine::parse::cloudfront::{parsed_schema, STANDARD_FIELDS};
use citrine::parse::{decoder_for, DecodeOptions, Decoder, Format, FormatDecoder};
use common::gen::{v2_json, v2_parquet};
use common::{decode_with, fixture, Decoding};
use proptest::prelude::*;

/// The rows (all batches as one, `row_num` dropped) and the rejects' reasons of `content`,
/// decoded as `citrine run` does: by its shape, fed `chunk` bytes at a time.
fn decode(content: &[u8], chunk: usize) -> (RecordBatch, Vec<String>) {
    let (d, mut reader) = decoder_for(
        Format::CloudFront,
        Box::new(content),
        &DecodeOptions::rows(4),
    )
    .unwrap();
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).unwrap();
    let Decoding {
        batches,
        rejects,
        counts,
    } = decode_with(d, bytes.chunks(chunk.max(1)));
    assert_eq!(counts.rows_read, counts.rows_ok + counts.rows_rejected);
    let all = concat_batches(&parsed_schema(), &batches).unwrap();
    let without_row_num = all.project(&without(&all, "row_num")).unwrap();
    (
        without_row_num,
        rejects.iter().map(|r| r.reason.to_string()).collect(),
    )
}

fn without(batch: &RecordBatch, column: &str) -> Vec<usize> {
    (0..batch.num_columns())
        .filter(|&i| batch.schema().field(i).name() != column)
        .collect()
}

#[test]
fn awsdocs_example_reads_the_same_as_w3c_json_and_parquet() {
    let w3c = std::fs::read(fixture("cloudfront/awsdocs-cloudfront-example.log")).unwrap();
    let reference = decode(&w3c, 1 << 20);
    assert_eq!(reference.0.num_rows(), 6);
    for file in [
        "cloudfront/v2/awsdocs-full.jsonl",
        "cloudfront/v2/awsdocs-full.parquet",
    ] {
        let content = std::fs::read(fixture(file)).unwrap();
        for chunk in [1, 7, 1 << 20] {
            assert_eq!(
                decode(&content, chunk),
                reference,
                "{file}, chunks of {chunk}"
            );
        }
    }
    let subset = std::fs::read(fixture("cloudfront/v2/awsdocs-subset.log")).unwrap();
    let reference = decode(&subset, 1 << 20);
    assert_eq!(reference.0.num_rows(), 6);
    for file in [
        "cloudfront/v2/awsdocs-subset.jsonl",
        "cloudfront/v2/awsdocs-subset.parquet",
    ] {
        let content = std::fs::read(fixture(file)).unwrap();
        for chunk in [1, 13, 1 << 20] {
            assert_eq!(
                decode(&content, chunk),
                reference,
                "{file}, chunks of {chunk}"
            );
        }
    }
}

#[test]
fn a_json_line_that_is_no_object_is_a_reject_with_its_reason() {
    let content = b"{\"date\":\"2019-12-04\",\"time\":\"21:02:31\",\"c-ip\":\"192.0.2.100\"}\n\
not json at all 192.0.2.55\n[1,2]\n{\"date\":\"2019-12-04\",\"time\":\"21:02:31\"} trailing\n\n\
{\"date\":\"2019-12-04\",\"time\":\"21:02:32\",\"sc-bytes\":12,\"cs(Cookie)\":null,\"x-new\":{\"a\":\"b\\tc\"}}\n";
    let (rows, reasons) = decode(content, 1 << 20);
    assert_eq!(rows.num_rows(), 2);
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons.iter().all(|r| r.starts_with("not a JSON object: ")),
        "{reasons:?}"
    );
    // Rejects name their line and never hold a whole address.
    let mut d = FormatDecoder::for_content(Format::CloudFront, content, &DecodeOptions::rows(64));
    let used = d.decode(content).unwrap();
    assert_eq!(used, content.len());
    d.finish().unwrap();
    let out = d.flush().unwrap().unwrap();
    let lines: Vec<u64> = out.rejects.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 3, 4]);
    assert!(
        !out.rejects[0].raw.contains("192.0.2.55"),
        "{:?}",
        out.rejects[0]
    );
    // A number is its text, null is `-`, a nested object its JSON (a tab in it escaped).
    let bytes = out.batch.column_by_name("sc_bytes").unwrap();
    assert_eq!(
        arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(bytes).value(1),
        12
    );
    let extra = out.batch.column_by_name("extra").unwrap();
    assert_eq!(
        arrow::array::AsArray::as_string::<i32>(extra).value(1),
        r#"{"x_new":"{\"a\":\"b\\tc\"}"}"#
    );
}

/// One request's value for the field of `kind` (number fields sometimes not numbers, which
/// every shape must reject alike), never holding a tab or newline (W3C cannot).
fn value(numeric: bool) -> impl Strategy<Value = String> {
    if numeric {
        prop_oneof![
            (0u32..100_000).prop_map(|n| n.to_string()),
            Just("-".to_owned()),
            Just("12x".to_owned()),
        ]
        .boxed()
    } else {
        prop_oneof![
            "[a-zA-Z0-9%./:;=_-]{0,12}",
            Just("-".to_owned()),
            Just("Mozilla/5.0%20(X11)".to_owned()),
            Just("192.0.2.7,%20198.51.100.9".to_owned()),
            Just("é€😀".to_owned()),
        ]
        .boxed()
    }
}

/// A layout (date, time and a subset of the standard fields, in any order) and rows for it.
fn requests() -> impl Strategy<Value = (Vec<String>, Vec<Vec<String>>)> {
    let fields = proptest::sample::subsequence(
        (0..STANDARD_FIELDS.len()).collect::<Vec<_>>(),
        0..STANDARD_FIELDS.len(),
    );
    (fields, any::<u64>()).prop_flat_map(|(chosen, seed)| {
        let mut names: Vec<String> = ["date", "time"].map(str::to_owned).to_vec();
        names.extend(chosen.iter().map(|&i| STANDARD_FIELDS[i].0.to_owned()));
        // A shuffle fixed by the seed.
        let mut order: Vec<usize> = (0..names.len()).collect();
        let mut s = seed | 1;
        for i in (1..order.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            order.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let names: Vec<String> = order.iter().map(|&i| names[i].clone()).collect();
        let cells: Vec<BoxedStrategy<String>> = names
            .iter()
            .map(|n| match n.as_str() {
                "date" => prop_oneof![Just("2024-01-31".to_owned()), Just("2024-13-01".to_owned())]
                    .boxed(),
                "time" => Just("23:59:59".to_owned()).boxed(),
                n => {
                    let kind = STANDARD_FIELDS.iter().find(|(w, _)| *w == n).unwrap().1;
                    value(kind != citrine::parse::column::Kind::Str).boxed()
                }
            })
            .collect();
        (Just(names), prop::collection::vec(cells, 1..6))
    })
}

fn as_w3c(names: &[String], rows: &[Vec<String>]) -> Vec<u8> {
    let mut out = format!("#Version: 1.0\n#Fields: {}\n", names.join(" "));
    for row in rows {
        out.push_str(&row.join("\t"));
        out.push('\n');
    }
    out.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_layout_reads_the_same_through_w3c_json_and_parquet(
        (names, rows) in requests(),
        lower in any::<bool>(),
        chunk in 1usize..64,
    ) {
        let reference = decode(&as_w3c(&names, &rows), 1 << 20);
        prop_assert_eq!(reference.0.num_rows() + reference.1.len(), rows.len());
        prop_assert_eq!(&decode(&v2_json(&names, &rows, lower), chunk), &reference);
        prop_assert_eq!(&decode(&v2_parquet(&names, &rows), chunk), &reference);
    }
}

/// `bytes` gzip-compressed.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A flat distribution bucket (legacy logging without a prefix), logging v2's Hive paths with
/// JSON and Parquet objects named without a telling extension, and a table with one fixed
/// customer, loaded by `citrine run` and read back by DuckDB and pyarrow. An id missing from
/// `distributions` fails its input, named, with the reason; the rest load.
#[test]
fn flat_buckets_v2_paths_and_a_fixed_customer_load_with_their_customers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let put = |rel: &str, bytes: &[u8]| {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    let fx = |rel: &str| std::fs::read(fixture(rel)).unwrap();
    let w3c = fx("cloudfront/awsdocs-cloudfront-example.log");
    put("cf/E2EXAMPLE1.2019-12-04-21.a1b2c3d4.gz", &gzip(&w3c));
    put(
        "cf/E3EXAMPLE2.2019-12-13-22.e5f6a7b8",
        &fx("cloudfront/v2/awsdocs-subset.log"),
    );
    put("cf/E9UNMAPPED.2019-12-13-22.c0ffee00.gz", &gzip(&w3c));
    let v2 = "v2/DistributionId={d}/year=2019/month=12/day=04/hour=21";
    put(
        &format!(
            "{}/E2EXAMPLE1.2019-12-04-21.0001.gz",
            v2.replace("{d}", "E2EXAMPLE1")
        ),
        &gzip(&fx("cloudfront/v2/awsdocs-full.jsonl")),
    );
    put(
        &format!(
            "{}/E3EXAMPLE2.2019-12-04-21.0002",
            v2.replace("{d}", "E3EXAMPLE2")
        ),
        &fx("cloudfront/v2/awsdocs-subset.parquet"),
    );
    put("one/access.log", &w3c);
    std::fs::write(
        d.join("citrine.toml"),
        "[lake]\nroot = \"lake\"\n\n\
         [[table]]\nname = \"cloudfront_logs\"\nformat = \"cloudfront\"\n\
         inputs = [\"cf/{distribution}.*\", \"v2/DistributionId={distribution}/**\"]\n\
         [table.distributions]\nE2EXAMPLE1 = \"acme\"\nE3EXAMPLE2 = \"globex\"\n\n\
         [[table]]\nname = \"initech_logs\"\nformat = \"cloudfront\"\ninputs = [\"one/*.log\"]\n\
         customer = \"initech\"\n",
    )
    .unwrap();
    let out = common::citrine(d, &["run", "--json"]);
    assert_eq!(out.status.code(), Some(1), "completed with a failed input");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cf/E9UNMAPPED.2019-12-13-22.c0ffee00.gz")
            && stderr.contains("distribution \"E9UNMAPPED\" maps to no customer"),
        "{stderr}"
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s[0]["inputs_consumed"], 4, "{s}");
    assert_eq!(s[0]["inputs_failed"].as_array().unwrap().len(), 1);
    assert_eq!(s[0]["rows_written"], 24);
    assert_eq!(s[1]["rows_written"], 6);

    let want = |pairs: &[(&str, u64)]| -> std::collections::BTreeMap<String, u64> {
        pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    let cloudfront = want(&[
        ("acme|2019-12-04", 6),
        ("acme|2019-12-13", 6),
        ("globex|2019-12-04", 6),
        ("globex|2019-12-13", 6),
    ]);
    let initech = want(&[("initech|2019-12-04", 3), ("initech|2019-12-13", 3)]);
    assert_eq!(common::table_counts(d, "cloudfront_logs"), cloudfront);
    assert_eq!(common::table_counts(d, "initech_logs"), initech);
    if let Some(python) = common::python() {
        for (table, want) in [("cloudfront_logs", &cloudfront), ("initech_logs", &initech)] {
            let (duck, arrow) = common::lake_counts(&python, &d.join("lake/data").join(table));
            assert_eq!((&duck, &arrow), (want, want), "{table}");
        }
    }
    common::assert_no_address(
        &d.join("lake"),
        &["192.0.2.100", "192.0.2.200"].map(str::to_owned).into(),
    );
    // The unmapped distribution, once mapped, loads on the next run.
    let config = std::fs::read_to_string(d.join("citrine.toml")).unwrap();
    std::fs::write(
        d.join("citrine.toml"),
        config.replace(
            "E3EXAMPLE2 = \"globex\"\n",
            "E3EXAMPLE2 = \"globex\"\nE9UNMAPPED = \"umbrella\"\n",
        ),
    )
    .unwrap();
    let s = common::run_summary(d);
    assert_eq!(
        (s["inputs_consumed"].as_u64(), s["rows_written"].as_u64()),
        (Some(1), Some(6))
    );
}

/// Rows of the generator's CloudFront text, each with `noise` bytes of incompressible query
/// string (so a file's size on disk passes a threshold), and the addresses in them.
fn noisy_rows(seed: u64, rows: u32, noise: usize) -> (Vec<String>, Vec<Vec<String>>) {
    use common::gen::{client_ip, cloudfront_row, split_w3c, Seeded, FIELDS};
    let mut r = Seeded(seed | 1);
    let mut text = format!("#Version: 1.0\n{FIELDS}\n");
    for i in 0..rows {
        let (a, b) = (client_ip(&mut r), client_ip(&mut r));
        text.push_str(&cloudfront_row(
            "2024-02-01",
            "01:02:03",
            "7",
            &a,
            &b,
            i,
            443,
        ));
    }
    let (names, mut rows) = split_w3c(&text);
    let query = names.iter().position(|n| n == "cs-uri-query").unwrap();
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for row in &mut rows {
        row[query] = (0..noise)
            .map(|_| ALPHABET[(r.next() % 62) as usize] as char)
            .collect();
    }
    (names, rows)
}

/// Past every size threshold at once, in one run on two workers: a v2 Parquet object over
/// the in-memory limit (spooled to disk, read a row group at a time), a broken one as large,
/// a gzip JSON object streamed (past the whole-read size) with one broken line, and a small
/// W3C file. The good ones load whole; the broken Parquet fails alone, named, and stays.
#[test]
fn large_v2_inputs_spool_stream_and_fail_alone() {
    use citrine::parse::cloudfront_parquet::MEMORY_BYTES;
    use citrine::read::input::WHOLE_INPUT_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let folder = d.join("logs/acme");
    std::fs::create_dir_all(&folder).unwrap();
    let (names, rows) = noisy_rows(3, 70_000, 260);
    let parquet = v2_parquet(&names, &rows);
    assert!(parquet.len() as u64 > MEMORY_BYTES, "{}", parquet.len());
    std::fs::write(folder.join("E1.2024-02-01-01.big"), &parquet).unwrap();
    let mut broken = b"PAR1".to_vec();
    broken.extend(std::iter::repeat_n(7u8, MEMORY_BYTES as usize + 4096));
    std::fs::write(folder.join("E1.2024-02-01-02.broken"), &broken).unwrap();
    let (jnames, jrows) = noisy_rows(5, 25_000, 260);
    let mut json = v2_json(&jnames, &jrows, true);
    json.extend_from_slice(b"{\"date\":\"2024-02-01\", oops}\n");
    let json = gzip(&json);
    assert!(json.len() as u64 > WHOLE_INPUT_BYTES, "{}", json.len());
    std::fs::write(folder.join("E1.2024-02-01-03.gz"), &json).unwrap();
    let (snames, srows) = noisy_rows(7, 40, 10);
    let mut w3c = format!("#Version: 1.0\n#Fields: {}\n", snames.join(" "));
    for row in &srows {
        w3c.push_str(&row.join("\t"));
        w3c.push('\n');
    }
    std::fs::write(folder.join("E1.2024-02-01-04.log"), w3c).unwrap();
    std::fs::write(
        d.join("citrine.toml"),
        "[lake]\nroot = \"lake\"\n[run]\nthreads = 2\n\n[[table]]\nname = \"cloudfront_logs\"\n\
         format = \"cloudfront\"\ninputs = [\"logs/{customer}/\"]\n",
    )
    .unwrap();
    let out = common::citrine(d, &["run", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &s[0];
    assert_eq!(s["inputs_consumed"], 3, "{s}");
    let failed = s["inputs_failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{s}");
    assert!(failed[0]["uri"]
        .as_str()
        .unwrap()
        .ends_with("E1.2024-02-01-02.broken"));
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("not a readable Parquet file"),
        "{s}"
    );
    assert_eq!(s["rows_written"], 70_000 + 25_000 + 40);
    assert_eq!(s["rows_rejected"], 1);
    assert_eq!(s["rows_read"], 70_000 + 25_000 + 40 + 1);
    assert_eq!(
        common::table_counts(d, "cloudfront_logs"),
        [("acme|2024-02-01".to_owned(), 95_040)].into()
    );
    // The broken one is still there and fails again, alone; nothing is loaded twice.
    let out = common::citrine(d, &["run", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            s[0]["inputs_consumed"].as_u64(),
            s[0]["inputs_failed"].as_array().map(Vec::len)
        ),
        (Some(0), Some(1))
    );
}
