//! Golden snapshots of what people and databases read: every shipped fixture as `inspect`
//! shows it, and the audit fixtures as the table rows a run would write.

mod common;

use std::fs::File;

use arrow::util::pretty::pretty_format_batches;
use citrine::inspect::{inspect_path, InspectOptions};
use citrine::parse::audit::{self, HeaderUnion};
use citrine::parse::{decode_stream, Format, FormatDecoder};
use citrine::read::{decompress, Decompressed};
use citrine::schema::table_schema;
use citrine::transform::{Lineage, MaskOptions, Masker, Transform};
use common::{decode_pieces, fixture};

fn inspect(rel: &str) -> String {
    let options = InspectOptions {
        rows: 10,
        ..Default::default()
    };
    let report = inspect_path(&fixture(rel), &options).unwrap();
    // Paths differ between machines; the snapshot keeps the part under fixtures/.
    report
        .to_string()
        .replace(fixture("").to_str().unwrap(), "fixtures/")
}

macro_rules! golden_inspect {
    ($($name:ident: $rel:expr;)*) => {$(
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), inspect($rel));
        }
    )*};
}

golden_inspect! {
    inspect_awsdocs_example: "cloudfront/awsdocs-cloudfront-example.log";
    inspect_aws_log_parser_multiple: "cloudfront/aws-log-parser-cloudfront-multiple.log";
    inspect_node_web_1_0: "cloudfront/node-cloudfront-log-parser-web-1-0.log";
    inspect_node_web_2019_12: "cloudfront/node-cloudfront-log-parser-web-1-0-2019-12.log";
    inspect_webreadr: "cloudfront/webreadr-log-aws.log";
    inspect_audit_acme: "audit/acme/2024-03-01.csv";
    inspect_audit_globex: "audit/globex/2024-03-02.csv";
}

#[test]
fn gzip_sample_gives_the_same_batches_as_its_plain_twin() {
    let plain =
        std::fs::read(fixture("cloudfront/aws-log-parser-cloudfront-multiple.log")).unwrap();
    let gz = File::open(fixture(
        "cloudfront/aws-log-parser-cloudfront-multiple.log.gz",
    ))
    .unwrap();
    let gz = decompress::read_all(gz, 1 << 20).unwrap();
    let a = decode_pieces(Format::CloudFront, 8192, [plain.as_slice()]);
    let b = decode_pieces(Format::CloudFront, 8192, [gz.as_slice()]);
    assert_eq!(a.counts.rows_ok, 6);
    assert_eq!(a, b);
}

#[test]
fn gzip_inspect_matches_plain_inspect_but_for_the_header() {
    let plain = inspect("cloudfront/aws-log-parser-cloudfront-multiple.log");
    let gz = inspect("cloudfront/aws-log-parser-cloudfront-multiple.log.gz");
    let body = |s: &str| s.lines().skip(2).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&plain), body(&gz));
    assert!(gz.contains("encoding: gzip"));
}

/// The audit fixtures as table rows: header union across both files, customer from the
/// `{customer}` folder, `source_ip` masked, lineage attached.
#[test]
fn audit_table_rows() {
    let files = ["audit/acme/2024-03-01.csv", "audit/globex/2024-03-02.csv"];
    // Plan: the union of headers fixes one table schema before anything is written.
    let mut union = HeaderUnion::default();
    for rel in files {
        let data = std::fs::read(fixture(rel)).unwrap();
        let columns =
            audit::read_columns(&data[..], |source| citrine::FileError::Io { source }).unwrap();
        union.add(&columns);
    }
    let table = table_schema(&union.parsed_schema());
    let transform = Transform::new(
        table.clone(),
        Masker::new(vec!["source_ip".into()], MaskOptions::default()),
    );
    let mut batches = Vec::new();
    let mut rejects = Vec::new();
    for rel in files {
        let customer = rel.split('/').nth(1).map(str::to_owned);
        let lineage = Lineage::new(format!("fixtures/{rel}"), customer);
        let reader = Decompressed::new(File::open(fixture(rel)).unwrap(), 1 << 20).unwrap();
        let mut d = FormatDecoder::new(Format::Audit, 8192);
        decode_stream(
            decompress::buffered(reader),
            &mut d,
            |e| decompress::classify(e, decompress::Encoding::Plain),
            |decoded| {
                let out = transform.apply(decoded.batch, &lineage).unwrap();
                batches.push(out.batch);
                rejects.extend(decoded.rejects.into_iter().map(|r| (rel, r)));
                rejects.extend(out.rejects.into_iter().map(|r| (rel, r)));
                Ok(())
            },
        )
        .unwrap();
    }
    let mut text = pretty_format_batches(&batches).unwrap().to_string();
    for (rel, r) in &rejects {
        text.push_str(&format!(
            "\nreject {rel}:{}: {}: {}",
            r.line, r.reason, r.raw
        ));
    }
    insta::assert_snapshot!("audit_table_rows", text);
}
