//! Seeded input for `scripts/bench`: the generator the tests use, at benchmark scale.
//!
//! `cargo run --release --example bench_data -- OUT KIND MB`, KIND one of:
//! - `cloudfront`: gzip CloudFront logs, 8 customers × 3 days × 24 hourly files, MB uncompressed;
//! - `small`: 20,000 plain CloudFront files of ~50 KB (8 customers × 3 days × 834 files);
//! - `audit`: audit CSV, 8 customers × 3 days, MB in all;
//! - `jsonl`: the same audit events as JSON lines (a nested `detail` object), MB in all.
//!
//! Prints the rows written and the uncompressed bytes as JSON.

#[allow(dead_code)]
#[path = "../tests/common/gen.rs"]
mod gen;

use std::io::Write;
use std::path::Path;

const CUSTOMERS: &[&str] = &[
    "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell",
];
/// Bytes of one generated CloudFront record, near enough to size the set.
const CLOUDFRONT_ROW: u64 = 246;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, out, kind, mb] = args.as_slice() else {
        eprintln!("usage: bench_data OUT cloudfront|small|audit|jsonl MB");
        std::process::exit(2);
    };
    let out = Path::new(out);
    let bytes: u64 = mb.parse::<u64>().expect("MB") << 20;
    let (rows, files) = match kind.as_str() {
        "cloudfront" | "small" => {
            let files_per_day = if kind == "small" { 834 } else { 24 };
            let files = CUSTOMERS.len() as u64 * 3 * files_per_day;
            let shape = gen::Shape {
                seed: 20261123,
                customers: CUSTOMERS,
                days: 3,
                files_per_day: files_per_day as u32,
                rows_per_file: (bytes / files / CLOUDFRONT_ROW).max(1) as u32,
                bad_every: 0,
                all_gzip: kind == "cloudfront",
            };
            let g = gen::cloudfront(out, &shape);
            (g.rows, g.files as u64)
        }
        "audit" => audit(out, bytes, false),
        "jsonl" => audit(out, bytes, true),
        other => panic!("unknown kind {other}"),
    };
    let mut size = 0u64;
    let mut stack = vec![out.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                size += std::fs::metadata(&p).unwrap().len();
            }
        }
    }
    println!("{{\"rows\": {rows}, \"files\": {files}, \"bytes_on_disk\": {size}}}");
}

/// Audit events, one file per customer and day: CSV, or JSON lines with `json`.
fn audit(out: &Path, bytes: u64, json: bool) -> (u64, u64) {
    let mut r = gen::Seeded(0xa0d17);
    let per_file = bytes / (CUSTOMERS.len() as u64 * 3);
    let (mut rows, mut files) = (0, 0);
    for customer in CUSTOMERS {
        let folder = out
            .join(if json { "logs/events" } else { "logs/audit" })
            .join(customer);
        std::fs::create_dir_all(&folder).unwrap();
        for day in 1..=3 {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(folder.join(format!(
                    "2024-03-0{day}.{}",
                    if json { "jsonl" } else { "csv" }
                )))
                .unwrap(),
            );
            let header = if json {
                ""
            } else {
                "timestamp,user,action,source_ip,detail\n"
            };
            f.write_all(header.as_bytes()).unwrap();
            let mut written = header.len() as u64;
            while written < per_file {
                let n = r.next();
                let (h, m, s) = (n % 24, (n >> 8) % 60, (n >> 16) % 60);
                let (user, ip) = (n % 5000, ((n >> 3) & 0xff, 1 + (n >> 11) % 254));
                let note = n % 100_000;
                let line = if json {
                    format!(
                        "{{\"timestamp\":\"2024-03-0{day}T{h:02}:{m:02}:{s:02}Z\",\"user\":\"user{user}@{customer}.test\",\"action\":\"login\",\"source_ip\":\"203.0.{}.{}\",\"detail\":{{\"note\":\"note, {note}\",\"n\":{}}}}}\n",
                        ip.0, ip.1, n % 1000
                    )
                } else {
                    format!(
                        "2024-03-0{day}T{h:02}:{m:02}:{s:02}Z,user{user}@{customer}.test,login,203.0.{}.{},\"note, {note}\"\n",
                        ip.0, ip.1
                    )
                };
                f.write_all(line.as_bytes()).unwrap();
                written += line.len() as u64;
                rows += 1;
            }
            files += 1;
        }
    }
    (rows, files)
}
