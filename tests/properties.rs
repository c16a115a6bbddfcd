//! Property tests: masking never lets a full address through, and row accounting holds for any
//! mix of good and broken lines.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use citrine::parse::{cloudfront, Format};
use citrine::schema::table_schema;
use citrine::transform::mask::parse_token;
use citrine::transform::{Lineage, MaskOptions, Masker, Transform};
use common::decode_pieces;
use proptest::prelude::*;

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        any::<u32>().prop_map(|v| IpAddr::V6(Ipv4Addr::from(v).to_ipv6_mapped())),
    ]
}

/// An address as it may appear in a log: bare, with a port, bracketed.
fn written(ip: IpAddr, style: u8) -> String {
    match (ip, style % 3) {
        (IpAddr::V4(v4), 1) => format!("{v4}:{}", 1000 + u16::from(style)),
        (IpAddr::V6(v6), 1) => format!("[{v6}]:443"),
        (IpAddr::V6(v6), 2) => format!("[{v6}]"),
        (ip, _) => ip.to_string(),
    }
}

/// A forwarded-for list with mixed separators.
fn xff() -> impl Strategy<Value = (Vec<IpAddr>, String)> {
    prop::collection::vec((ip(), any::<u8>(), 0..3usize), 1..5).prop_map(|items| {
        let mut text = String::new();
        let mut ips = Vec::new();
        for (i, (ip, style, sep)) in items.into_iter().enumerate() {
            if i > 0 {
                text.push_str([",", ", ", ",%20"][sep]);
            }
            text.push_str(&written(ip, style));
            ips.push(ip);
        }
        (ips, text)
    })
}

/// Every token of every output string, split the way a reader of the lake would split it.
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c == '\t' || c == '"' || c.is_whitespace())
        .flat_map(|t| t.split("%20"))
        .filter(|t| !t.is_empty())
}

fn leaks(text: &str, inputs: &HashSet<IpAddr>) -> Option<String> {
    tokens(text)
        .find(|t| parse_token(t).is_some_and(|ip| inputs.contains(&ip)))
        .map(str::to_owned)
}

fn string_values(batch: &RecordBatch) -> Vec<String> {
    let mut out = Vec::new();
    for col in batch.columns() {
        if col.data_type() == &DataType::Utf8 {
            out.extend(col.as_string::<i32>().iter().flatten().map(str::to_owned));
        }
    }
    out
}

const FIELDS: &str = "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for";

#[derive(Debug, Clone, Copy)]
enum Line {
    Good,
    BadNumber,
    ShortRow,
    BadTimestamp,
    Blank,
    Directive,
    InvalidUtf8,
}

fn line_kind() -> impl Strategy<Value = Line> {
    prop_oneof![
        4 => Just(Line::Good),
        1 => Just(Line::BadNumber),
        1 => Just(Line::ShortRow),
        1 => Just(Line::BadTimestamp),
        1 => Just(Line::Blank),
        1 => Just(Line::Directive),
        1 => Just(Line::InvalidUtf8),
    ]
}

fn cloudfront_line(kind: Line, c_ip: &str, xff: &str) -> Vec<u8> {
    let (date, bytes) = match kind {
        Line::BadTimestamp => ("2020-02-30", "1"),
        Line::BadNumber => ("2020-02-03", "1e"),
        _ => ("2020-02-03", "392"),
    };
    let row = format!("{date}\t04:05:06\tLAX1\t{bytes}\t{c_ip}\tGET\th.net\t/a\t200\t-\tUA\t-\t-\tHit\tid\th.net\thttps\t23\t0.001\t{xff}");
    match kind {
        Line::Blank => Vec::new(),
        Line::Directive => FIELDS.as_bytes().to_vec(),
        Line::ShortRow => row.replacen("\tLAX1", "", 1).into_bytes(),
        Line::InvalidUtf8 => row
            .replacen("UA", "U\u{7f}A", 1)
            .bytes()
            .map(|b| if b == 0x7f { 0xfe } else { b })
            .collect(),
        _ => row.into_bytes(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn masking_never_lets_a_full_address_through(
        rows in prop::collection::vec((ip(), any::<u8>(), xff(), line_kind()), 1..40),
        v4 in 0u8..=31,
        v6 in 0u8..=127,
    ) {
        let mut data = format!("#Version: 1.0\n{FIELDS}\n").into_bytes();
        let mut inputs = HashSet::new();
        for (c_ip, style, (xs, xff), kind) in &rows {
            inputs.insert(*c_ip);
            inputs.extend(xs.iter().copied());
            data.extend(cloudfront_line(*kind, &written(*c_ip, *style), xff));
            data.push(b'\n');
        }
        let decoded = decode_pieces(Format::CloudFront, 7, [data.as_slice()]);
        let opts = MaskOptions { ipv4_prefix: v4, ipv6_prefix: v6 };
        let schema = cloudfront::parsed_schema();
        let transform = Transform::new(
            table_schema(&schema),
            Masker::new(cloudfront::MASKED_COLUMNS.map(String::from).to_vec(), opts),
        );
        for batch in decoded.batches {
            let out = transform.apply(batch, &Lineage::new("s3://b/k.gz", Some("acme".into()))).unwrap();
            for v in string_values(&out.batch) {
                prop_assert!(leaks(&v, &inputs).is_none(), "leak in value {v:?}");
            }
        }
        for r in &decoded.rejects {
            let text = format!("{} {}", r.reason, r.raw);
            prop_assert!(leaks(&text, &inputs).is_none(), "leak in reject {text:?}");
        }
    }

    #[test]
    fn cloudfront_row_accounting_holds(
        kinds in prop::collection::vec(line_kind(), 0..60),
        batch_size in 1usize..10,
        chunk in 1usize..64,
    ) {
        let mut data = format!("#Version: 1.0\n{FIELDS}\n").into_bytes();
        let mut rows = 0u64;
        for kind in &kinds {
            data.extend(cloudfront_line(*kind, "192.0.2.1", "-"));
            data.push(b'\n');
            rows += u64::from(!matches!(kind, Line::Blank | Line::Directive));
        }
        let d = decode_pieces(Format::CloudFront, batch_size, data.chunks(chunk));
        let ok: usize = d.batches.iter().map(RecordBatch::num_rows).sum();
        prop_assert_eq!(d.counts.rows_read, rows);
        prop_assert_eq!(d.counts.rows_ok, ok as u64);
        prop_assert_eq!(d.counts.rows_rejected, d.rejects.len() as u64);
        prop_assert_eq!(d.counts.rows_read, d.counts.rows_ok + d.counts.rows_rejected);
        let good = kinds.iter().filter(|k| matches!(k, Line::Good)).count();
        prop_assert_eq!(ok, good);
    }

    #[test]
    fn audit_row_accounting_holds_through_the_transform(
        rows in prop::collection::vec((0u8..6, any::<bool>()), 0..60),
        batch_size in 1usize..10,
        chunk in 1usize..64,
    ) {
        // 0: good, 1: good with own matching customer, 2: other customer (transform rejects),
        // 3: bad timestamp, 4: field count, 5: quoted newline (good, two lines).
        let mut data = b"timestamp,customer,user,ip\n".to_vec();
        for (i, (kind, crlf)) in rows.iter().enumerate() {
            let line = match kind {
                0 => format!("2024-01-01T00:00:{:02}Z,,u{i},192.0.2.{i}", i % 60),
                1 => format!("1704067200,acme,u{i},192.0.2.1"),
                2 => format!("1704067200,other,u{i},192.0.2.1"),
                3 => format!("soon,,u{i},192.0.2.1"),
                4 => format!("1704067200,,u{i}"),
                _ => format!("1704067200,,\"u{i}\nsecond line\",192.0.2.1"),
            };
            data.extend(line.as_bytes());
            data.extend(if *crlf { &b"\r\n"[..] } else { b"\n" });
        }
        let d = decode_pieces(Format::Audit, batch_size, data.chunks(chunk));
        prop_assert_eq!(d.counts.rows_read, rows.len() as u64);
        let mut union = citrine::parse::audit::HeaderUnion::default();
        union.add(&["user".to_string(), "ip".to_string()]);
        let transform = Transform::new(
            table_schema(&union.parsed_schema()),
            Masker::new(vec!["ip".into()], MaskOptions::default()),
        );
        let lineage = Lineage::new("logs/audit/acme/x.csv", Some("acme".into()));
        let (mut written, mut rejected) = (0u64, d.rejects.len() as u64);
        for batch in d.batches {
            let out = transform.apply(batch, &lineage).unwrap();
            written += out.batch.num_rows() as u64;
            rejected += out.rejects.len() as u64;
        }
        prop_assert_eq!(d.counts.rows_read, written + rejected);
        let expect_written = rows.iter().filter(|(k, _)| matches!(k, 0 | 1 | 5)).count() as u64;
        prop_assert_eq!(written, expect_written);
    }
}
