//! Each decoder gives identical batches, rejects and counts whether its input arrives whole,
//! line by line, split in two at every byte offset, or one byte at a time.

mod common;

use citrine::parse::Format;
use common::{decode_pieces, fixture, lines, Decoding};

fn assert_split_invariant(format: Format, data: &[u8], batch_size: usize) {
    let whole = decode_pieces(format, batch_size, [data]);
    assert!(whole.counts.rows_read > 0, "the input has rows");
    let check = |how: &str, got: Decoding| {
        assert_eq!(got, whole, "{how} differs from whole input");
    };
    check(
        "line by line",
        decode_pieces(format, batch_size, lines(data)),
    );
    check(
        "byte by byte",
        decode_pieces(format, batch_size, data.chunks(1)),
    );
    for at in 0..=data.len() {
        let (a, b) = data.split_at(at);
        check(
            &format!("split at byte {at}"),
            decode_pieces(format, batch_size, [a, b]),
        );
    }
}

macro_rules! split_invariant {
    ($($name:ident: $format:expr, $source:expr;)*) => {$(
        #[test]
        fn $name() {
            let data: Vec<u8> = $source;
            // A batch size of 2 makes batches fill in the middle of chunks too.
            assert_split_invariant($format, &data, 2);
            assert_split_invariant($format, &data, 8192);
        }
    )*};
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap()
}

split_invariant! {
    awsdocs_example: Format::CloudFront, read("cloudfront/awsdocs-cloudfront-example.log");
    aws_log_parser_multiple: Format::CloudFront, read("cloudfront/aws-log-parser-cloudfront-multiple.log");
    node_web_1_0: Format::CloudFront, read("cloudfront/node-cloudfront-log-parser-web-1-0.log");
    node_web_2019_12: Format::CloudFront, read("cloudfront/node-cloudfront-log-parser-web-1-0-2019-12.log");
    webreadr: Format::CloudFront, read("cloudfront/webreadr-log-aws.log");
    cloudfront_crlf_with_bad_rows: Format::CloudFront,
        read("cloudfront/webreadr-log-aws.log")
            .split(|&b| b == b'\n')
            .flat_map(|l| [l, b"\r\n", b"2016-03-03\tbad\r\n"].concat())
            .collect();
    audit_acme: Format::Audit, read("audit/acme/2024-03-01.csv");
    audit_globex: Format::Audit, read("audit/globex/2024-03-02.csv");
    audit_crlf_quotes_no_final_newline: Format::Audit,
        b"\xef\xbb\xbftimestamp,a\r\n1,\"x\r\ny\"\r\n\r\n2,\"\"\"q\"\"\"\r\nbad,z\r\n3,last".to_vec();
}
