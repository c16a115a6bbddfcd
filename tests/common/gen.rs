//! A seeded generator of CloudFront logs laid out as customers ship them, with the counts a
//! correct run must produce.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;

/// xorshift64: the same data on every machine.
pub struct Seeded(pub u64);

impl Seeded {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What was generated.
#[derive(Debug, Default)]
pub struct Generated {
    /// Good rows per (customer, dt).
    pub expected: BTreeMap<String, u64>,
    /// Records written (good and bad).
    pub rows: u64,
    /// Bad records among them.
    pub bad: u64,
    /// Every client address used.
    pub ips: HashSet<String>,
    /// Input files written.
    pub files: usize,
}

pub const FIELDS: &str = "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end";

/// Shape of a generated data set.
pub struct Shape<'a> {
    pub seed: u64,
    pub customers: &'a [&'a str],
    /// Days from 2024-01-01.
    pub days: u32,
    /// Files per customer and day (one per hour, from hour 0; the last also holds records of
    /// the next day's first minutes, as late deliveries do).
    pub files_per_day: u32,
    pub rows_per_file: u32,
    /// Every n-th record is broken (0: none).
    pub bad_every: u64,
    /// Gzip every file (else every other one).
    pub all_gzip: bool,
}

fn ip(r: &mut Seeded) -> String {
    let n = r.next();
    // Last octet 1..=254: a client address, never a network address.
    format!(
        "{}.{}.{}.{}",
        1 + n % 223,
        (n >> 8) & 0xff,
        (n >> 16) & 0xff,
        1 + (n >> 24) % 254
    )
}

/// One row of the 33-field layout of [`FIELDS`], newline included.
pub fn cloudfront_row(
    date: &str,
    time: &str,
    bytes: &str,
    client: &str,
    forwarded: &str,
    i: u32,
    port: u64,
) -> String {
    format!(
        "{date}\t{time}\tLAX1\t{bytes}\t{client}\tGET\td1.cloudfront.net\t/p/{i}\t200\t-\tMozilla/5.0%20(X11)\t-\t-\tHit\tid{i}==\td1.cloudfront.net\thttps\t23\t0.001\t{forwarded},%20{client}\tTLSv1.2\tECDHE\tHit\tHTTP/2.0\t-\t-\t{port}\t0.001\tHit\ttext/html\t78\t-\t-\n"
    )
}

/// A client address from the seeded stream: never a network address, so a masked value
/// (`a.b.c.0/24`) can never equal one.
pub fn client_ip(r: &mut Seeded) -> String {
    ip(r)
}

/// Write CloudFront logs under `dir/logs/cloudfront/<customer>/`, half of them gzip (or all).
pub fn cloudfront(dir: &Path, shape: &Shape) -> Generated {
    let mut r = Seeded(shape.seed | 1);
    let mut g = Generated::default();
    for customer in shape.customers {
        let folder = dir.join("logs/cloudfront").join(customer);
        std::fs::create_dir_all(&folder).unwrap();
        for day in 0..shape.days {
            for hour in 0..shape.files_per_day {
                let mut text = format!("#Version: 1.0\n{FIELDS}\n");
                for i in 0..shape.rows_per_file {
                    g.rows += 1;
                    let late = hour + 1 == shape.files_per_day && i % 4 == 3;
                    let (d, h) = if late { (day + 1, 0) } else { (day, hour % 24) };
                    let date = format!("2024-01-{:02}", 1 + d);
                    let client = ip(&mut r);
                    let forwarded = ip(&mut r);
                    g.ips.insert(client.clone());
                    g.ips.insert(forwarded.clone());
                    let bad = shape.bad_every > 0 && g.rows % shape.bad_every == 0;
                    let bytes = if bad {
                        "12x".to_string()
                    } else {
                        (r.next() % 100_000).to_string()
                    };
                    if bad {
                        g.bad += 1;
                    } else {
                        *g.expected.entry(format!("{customer}|{date}")).or_default() += 1;
                    }
                    let time = format!("{h:02}:{:02}:{:02}", r.next() % 60, r.next() % 60);
                    let port = 1024 + r.next() % 60000;
                    text.push_str(&cloudfront_row(
                        &date, &time, &bytes, &client, &forwarded, i, port,
                    ));
                }
                let name = format!(
                    "E{}.2024-01-{:02}-{hour:02}.{:08x}",
                    customer.len(),
                    1 + day,
                    r.next() as u32
                );
                if shape.all_gzip || (day + hour) % 2 == 0 {
                    let f = std::fs::File::create(folder.join(format!("{name}.gz"))).unwrap();
                    let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
                    e.write_all(text.as_bytes()).unwrap();
                    e.finish().unwrap();
                } else {
                    std::fs::write(folder.join(name), text).unwrap();
                }
                g.files += 1;
            }
        }
    }
    g
}

/// A config for the generated layout, with `extra` appended to `[lake]`.
pub fn write_config(dir: &Path, lake_extra: &str) {
    let text = format!(
        "[lake]\nroot = \"lake\"\n{lake_extra}\n[run]\nthreads = 2\nbatch_size = 512\n\n[[table]]\nname = \"cloudfront_logs\"\nformat = \"cloudfront\"\ninputs = [\"logs/cloudfront/{{customer}}/\"]\n"
    );
    std::fs::write(dir.join("citrine.toml"), text).unwrap();
}

/// Logging v2 JSON lines of `rows` under `names` (W3C names; lower-cased keys with `lower`).
pub fn v2_json(names: &[String], rows: &[Vec<String>], lower: bool) -> Vec<u8> {
    let mut out = String::new();
    for row in rows {
        let mut object = String::from("{");
        for (i, (n, v)) in names.iter().zip(row).enumerate() {
            if i > 0 {
                object.push(',');
            }
            let key = if lower { n.to_lowercase() } else { n.clone() };
            object.push_str(&format!(
                "{}:{}",
                serde_json::json!(key),
                serde_json::json!(v)
            ));
        }
        out.push_str(&object);
        out.push_str("}\n");
    }
    out.into_bytes()
}

/// A logging v2 Parquet object of `rows` under `names` (columns named with `_`, strings).
pub fn v2_parquet(names: &[String], rows: &[Vec<String>]) -> Vec<u8> {
    let columns: Vec<(String, arrow::array::ArrayRef)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let values: Vec<&str> = rows.iter().map(|r| r[i].as_str()).collect();
            (
                citrine::schema::column_name(n),
                std::sync::Arc::new(arrow::array::StringArray::from(values))
                    as arrow::array::ArrayRef,
            )
        })
        .collect();
    let batch = arrow::array::RecordBatch::try_from_iter(columns).unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

/// The field names and rows of a W3C log's text.
pub fn split_w3c(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut names = Vec::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(fields) = line.strip_prefix("#Fields:") {
            names = fields.split_whitespace().map(str::to_owned).collect();
        } else if !line.starts_with('#') && !line.is_empty() {
            rows.push(line.split('\t').map(str::to_owned).collect());
        }
    }
    (names, rows)
}
