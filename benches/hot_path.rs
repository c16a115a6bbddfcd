//! The hot path, stage by stage, on seeded CloudFront- and audit-shaped data: decode, mask +
//! lineage, partition split, Parquet encode, and the whole run end to end on a temporary lake.
//! `cargo bench --bench hot_path`; every figure is bytes of uncompressed input per second.

use std::hint::black_box;

use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arrow::array::RecordBatch;
use citrine::config::{ConfigFile, WriteOptions};
use citrine::lake::Lake;
use citrine::parse::{cloudfront, decode_chunked, DecodeOptions, Format, FormatDecoder};
use citrine::partition::split;
use citrine::run::{self, NoProgress};
use citrine::schema::table_schema;
use citrine::transform::{Lineage, MaskOptions, Masker, Transform};
use citrine::write::PartitionedWriter;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const FIELDS: &str = "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end";

/// A small xorshift so the data is the same on every run without a rand dependency.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn cloudfront_log(rows: usize) -> Vec<u8> {
    let mut r = Seeded(0x5eed);
    let mut out = format!("#Version: 1.0\n{FIELDS}\n");
    for _ in 0..rows {
        let n = r.next();
        let ip = format!(
            "{}.{}.{}.{}",
            n & 0xff,
            (n >> 8) & 0xff,
            (n >> 16) & 0xff,
            (n >> 24) & 0xff
        );
        let xff = if n.is_multiple_of(5) {
            format!("{ip}, 10.0.0.{}", n % 250)
        } else {
            "-".into()
        };
        out.push_str(&format!(
            "2019-12-{:02}\t{:02}:{:02}:{:02}\tLAX1\t{}\t{ip}\tGET\td111111abcdef8.cloudfront.net\t/p/{}.html\t200\t-\tMozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)\t-\t-\tHit\tSOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==\td111111abcdef8.cloudfront.net\thttps\t23\t0.001\t{xff}\tTLSv1.2\tECDHE-RSA-AES128-GCM-SHA256\tHit\tHTTP/2.0\t-\t-\t11040\t0.001\tHit\ttext/html\t78\t-\t-\n",
            1 + n % 28, (n >> 5) % 24, (n >> 10) % 60, (n >> 16) % 60, n % 100_000, n % 1000
        ));
    }
    out.into_bytes()
}

fn audit_csv(rows: usize) -> Vec<u8> {
    let mut r = Seeded(0xa0d17);
    let mut out = String::from("timestamp,user,action,source_ip,detail\n");
    for i in 0..rows {
        let n = r.next();
        out.push_str(&format!(
            "2024-03-01T{:02}:{:02}:{:02}Z,user{}@acme.test,login,203.0.{}.{},\"note, {i}\"\n",
            n % 24,
            (n >> 8) % 60,
            (n >> 16) % 60,
            n % 5000,
            (n >> 3) & 0xff,
            (n >> 11) & 0xff
        ));
    }
    out.into_bytes()
}

/// The audit events of [`audit_csv`] as JSON lines, with a nested `detail` object.
fn audit_jsonl(rows: usize) -> Vec<u8> {
    let mut r = Seeded(0xa0d17);
    let mut out = String::new();
    for i in 0..rows {
        let n = r.next();
        out.push_str(&format!(
            "{{\"timestamp\":\"2024-03-01T{:02}:{:02}:{:02}Z\",\"user\":\"user{}@acme.test\",\"action\":\"login\",\"source_ip\":\"203.0.{}.{}\",\"detail\":{{\"note\":\"note, {i}\",\"n\":{}}}}}\n",
            n % 24,
            (n >> 8) % 60,
            (n >> 16) % 60,
            n % 5000,
            (n >> 3) & 0xff,
            (n >> 11) & 0xff,
            n % 1000
        ));
    }
    out.into_bytes()
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    let events = DecodeOptions {
        columns: [
            "timestamp",
            "user",
            "action",
            "source_ip",
            "detail_note",
            "detail_n",
        ]
        .map(String::from)
        .to_vec(),
        ..DecodeOptions::rows(8192)
    };
    for (name, format, data) in [
        ("cloudfront", Format::CloudFront, cloudfront_log(20_000)),
        ("audit_csv", Format::Audit, audit_csv(20_000)),
        ("audit_jsonl", Format::Jsonl, audit_jsonl(20_000)),
    ] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut d = FormatDecoder::for_content(format, &data, &events);
                black_box(decode_chunked(&data, 256 * 1024, &mut d).unwrap())
            })
        });
    }
    g.finish();
}

/// The CloudFront sample decoded and transformed into table batches (one customer, 28 days).
fn table_batches(data: &[u8]) -> (Transform, Vec<RecordBatch>) {
    let mut d = FormatDecoder::new(Format::CloudFront, 8192);
    let batches: Vec<_> = decode_chunked(data, data.len(), &mut d)
        .unwrap()
        .into_iter()
        .map(|o| o.batch)
        .collect();
    let t = Transform::new(
        table_schema(&cloudfront::parsed_schema()),
        Masker::new(
            cloudfront::MASKED_COLUMNS.map(String::from).to_vec(),
            MaskOptions::default(),
        ),
    );
    let lineage = Lineage::new(
        "s3://bucket/logs/acme/E1.2019-12-04-21.abc.gz",
        Some("acme".into()),
    );
    let out = batches
        .iter()
        .map(|b| t.apply(b.clone(), &lineage).unwrap().batch)
        .collect();
    (t, out)
}

fn transform(c: &mut Criterion) {
    let data = cloudfront_log(20_000);
    let mut d = FormatDecoder::new(Format::CloudFront, 8192);
    let batches: Vec<_> = decode_chunked(&data, data.len(), &mut d)
        .unwrap()
        .into_iter()
        .map(|o| o.batch)
        .collect();
    let (t, table) = table_batches(&data);
    let lineage = Lineage::new(
        "s3://bucket/logs/acme/E1.2019-12-04-21.abc.gz",
        Some("acme".into()),
    );
    let mut g = c.benchmark_group("transform");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("cloudfront_mask_and_lineage", |b| {
        b.iter(|| {
            for batch in &batches {
                black_box(t.apply(batch.clone(), &lineage).unwrap());
            }
        })
    });
    g.bench_function("partition_split", |b| {
        b.iter(|| {
            for batch in &table {
                black_box(split(batch).unwrap());
            }
        })
    });
    let parts: Vec<_> = table.iter().flat_map(|b| split(b).unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::local(dir.path()).unwrap();
    g.bench_function("parquet_encode_snappy", |b| {
        b.iter(|| {
            let mut w = PartitionedWriter::new(
                lake.clone(),
                "bench",
                "run",
                t.table_schema().clone(),
                WriteOptions::default(),
                Arc::new(AtomicU64::new(0)),
            );
            for p in &parts {
                w.write(p.clone()).unwrap();
            }
            black_box(w.finish().unwrap());
        })
    });
    g.finish();
}

/// `citrine run` on 8 gzip CloudFront files (4 customers × 2 days) into a fresh local lake.
fn end_to_end(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = 0u64;
    for customer in ["acme", "globex", "initech", "umbrella"] {
        let folder = dir.path().join("logs").join(customer);
        std::fs::create_dir_all(&folder).unwrap();
        for day in 0..2 {
            let data = cloudfront_log(10_000);
            bytes += data.len() as u64;
            let f =
                std::fs::File::create(folder.join(format!("E1.2019-12-0{day}-00.{customer}.gz")))
                    .unwrap();
            let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
            gz.write_all(&data).unwrap();
            gz.finish().unwrap();
        }
    }
    let text = "[lake]\nroot = \"lake\"\n[run]\nthreads = 2\n[[table]]\nname = \"cloudfront_logs\"\nformat = \"cloudfront\"\ninputs = [\"logs/{customer}/\"]\n";
    let job = ConfigFile::parse(text, "bench")
        .unwrap()
        .validate(dir.path())
        .unwrap();
    let lake = dir.path().join("lake");
    let mut g = c.benchmark_group("end_to_end");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("cloudfront_gzip_2_threads", |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_dir_all(&lake);
            },
            |()| {
                let summaries = run::run(&job, None, &NoProgress);
                assert!(summaries.iter().all(|s| s.error.is_none()), "{summaries:?}");
                black_box(summaries)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, decode, transform, end_to_end);
criterion_main!(benches);
