//! Bytes to Arrow record batches: one push decoder per input format.
//!
//! A [`Decoder`] takes byte chunks of any size (a whole file, a line, one byte) and gives the
//! same batches whatever the chunking, so local files, gzip streams and S3 bodies share one
//! parser. Rows that cannot be parsed become [`Reject`]s; they never stop the file. Decoders
//! emit `ts`, `row_num`, then the format's own columns; lineage and masking are added by
//! [`crate::transform`]. This module does not know about customers, partitions or storage.

pub mod audit;
pub mod cloudfront;
pub mod cloudfront_json;
pub mod cloudfront_parquet;
pub mod column;
pub mod events;
mod gather;
mod lines;
mod simple_csv;
mod split;
pub mod timestamp;

use std::fmt;
use std::io::{self, BufRead};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::error::FileError;

/// Default rows per batch.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// The input formats citrine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CloudFront standard access logs (W3C, tab separated).
    CloudFront,
    /// WAU audit logs (CSV with a header row).
    Audit,
    /// Audit events as JSON lines.
    Jsonl,
    /// Audit events from CloudWatch Logs (Firehose-delivered subscription records, or
    /// export-task files).
    CloudWatch,
}

impl Format {
    /// The name used in config files and messages.
    pub const fn name(self) -> &'static str {
        match self {
            Format::CloudFront => "cloudfront",
            Format::Audit => "audit",
            Format::Jsonl => "jsonl",
            Format::CloudWatch => "cloudwatch",
        }
    }

    /// True for the formats of audit events, whose columns are the union of their inputs'
    /// (the audit CSV's header, the JSON formats' keys).
    pub fn has_header_union(self) -> bool {
        self != Format::CloudFront
    }

    /// Guess the format from the first bytes of a (decompressed) input: CloudFront logs start
    /// with a `#Version` or `#Fields` directive (or are logging v2 JSON or Parquet), anything
    /// else is taken for CSV.
    pub fn sniff(head: &[u8]) -> Format {
        if CloudFrontShape::of(head) != CloudFrontShape::W3c {
            return Format::CloudFront;
        }
        let head = head.strip_prefix(UTF8_BOM).unwrap_or(head);
        let first = head
            .split(|&b| b == b'\n')
            .map(|l| l.trim_ascii())
            .find(|l| !l.is_empty())
            .unwrap_or_default();
        if first.starts_with(b"#Version") || first.starts_with(b"#Fields") {
            Format::CloudFront
        } else {
            Format::Audit
        }
    }
}

/// The byte order mark some tools put at the start of UTF-8 files.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why one row was rejected. The text never contains a full IP address: values are scrubbed
/// before they are put here.
#[derive(Debug, Clone, PartialEq)]
pub enum RejectReason {
    /// The row has a different number of fields than its header or `#Fields` line.
    FieldCount {
        /// Fields the layout has.
        expected: usize,
        /// Fields the row has.
        found: usize,
    },
    /// A numeric column holds something that is not a number.
    BadNumber {
        /// The column.
        column: String,
        /// The value, scrubbed.
        value: String,
    },
    /// The timestamp is missing or not a recognised form.
    BadTimestamp {
        /// The value, scrubbed.
        value: String,
    },
    /// A string column is not valid UTF-8.
    InvalidUtf8 {
        /// The column.
        column: String,
    },
    /// A CloudFront data row came before any `#Fields` directive.
    NoFieldsDirective,
    /// A record that is not one JSON object (the parser's reason).
    NotJson {
        /// What the parser said.
        detail: String,
    },
    /// A line longer than the decoder accepts.
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The row's `customer` value disagrees with the customer in its path.
    CustomerMismatch {
        /// The row's value.
        row: String,
        /// The path's value.
        path: String,
    },
    /// Neither the path nor the row names a customer.
    MissingCustomer,
    /// A quoted CSV field never closed (or closed only lines later, leaving a record of the
    /// wrong shape): the record is rejected at the line where it started and decoding
    /// resumes at the next line, so the lines it swallowed are rows of their own.
    UnbalancedQuote {
        /// What showed it.
        detail: String,
    },
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FieldCount { expected, found } => {
                write!(f, "expected {expected} fields, found {found}")
            }
            Self::BadNumber { column, value } => write!(f, "{column}: not a number: {value:?}"),
            Self::BadTimestamp { value } => write!(f, "timestamp: not recognised: {value:?}"),
            Self::InvalidUtf8 { column } => write!(f, "{column}: invalid UTF-8"),
            Self::NoFieldsDirective => write!(f, "data row before any #Fields directive"),
            Self::TooLong { limit } => write!(f, "line longer than {limit} bytes"),
            Self::NotJson { detail } => write!(f, "not a JSON object: {detail}"),
            Self::CustomerMismatch { row, path } => {
                write!(
                    f,
                    "customer {row:?} in the row disagrees with {path:?} in the path"
                )
            }
            Self::MissingCustomer => write!(f, "no customer in the row or the input path"),
            Self::UnbalancedQuote { detail } => write!(f, "unbalanced quote: {detail}"),
        }
    }
}

/// A rejected row: where it was, why, and its text (IPs masked, possibly shortened).
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// 1-based line of the row in its file.
    pub line: u64,
    /// Why it was rejected.
    pub reason: RejectReason,
    /// The row's text with every IP address masked.
    pub raw: String,
}

/// The most bytes of a rejected row's text that are kept.
pub const REJECT_RAW_LIMIT: usize = 4096;

/// Row counts of one decoder. `rows_read = rows_ok + rows_rejected` at all times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowCounts {
    /// Records seen (directives and blank lines are not records).
    pub rows_read: u64,
    /// Records decoded into a batch.
    pub rows_ok: u64,
    /// Records rejected.
    pub rows_rejected: u64,
}

/// What a flush gives back: the rows decoded since the last flush and the rows rejected.
#[derive(Debug)]
pub struct Decoded {
    /// The decoded rows (`ts`, `row_num`, then the format's columns).
    pub batch: RecordBatch,
    /// The rejected rows, in line order.
    pub rejects: Vec<Reject>,
}

/// A push decoder: bytes in, record batches out.
pub trait Decoder {
    /// Decode from `buf`, returning the bytes consumed. Fewer than `buf.len()` are consumed only
    /// when the batch is full ([`Decoder::capacity`] is 0): flush, then call again with the rest.
    fn decode(&mut self, buf: &[u8]) -> Result<usize, FileError>;

    /// The input has ended: decode what is left (a last line without a newline).
    fn finish(&mut self) -> Result<(), FileError>;

    /// Rows that can still be decoded before a flush is needed.
    fn capacity(&self) -> usize;

    /// Take the rows and rejects decoded since the last flush, `None` if there are none.
    fn flush(&mut self) -> Result<Option<Decoded>, FileError>;

    /// The schema of the batches this decoder emits.
    fn schema(&self) -> SchemaRef;

    /// Counts so far.
    fn counts(&self) -> RowCounts;
}

/// A decoder for either format, chosen at run time.
// One decoder lives per open file, so the size gap between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum FormatDecoder {
    /// CloudFront logs.
    CloudFront(cloudfront::CloudFrontDecoder),
    /// CloudFront logging v2 JSON lines.
    CloudFrontJson(cloudfront_json::CloudFrontJsonDecoder),
    /// Audit CSV.
    Audit(audit::AuditDecoder),
    /// Audit events as JSON (lines, or CloudWatch Logs).
    Events(events::EventsDecoder),
}

/// What a decoder needs of its table.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Rows per batch.
    pub batch_size: usize,
    /// The table's columns after the lineage ones (the JSON formats lay their keys out in
    /// them; a key they lack goes to `extra`).
    pub columns: Vec<String>,
    /// The field whose value is each row's customer, instead of `customer`.
    pub customer_field: Option<String>,
}

impl DecodeOptions {
    /// Options for `batch_size` rows per batch and nothing known of the table.
    pub fn rows(batch_size: usize) -> Self {
        Self {
            batch_size,
            columns: Vec::new(),
            customer_field: None,
        }
    }
}

/// How a CloudFront input is written, told by its first bytes (decompressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudFrontShape {
    /// W3C text (`#Version`, `#Fields`, tab-separated rows).
    W3c,
    /// Logging v2 JSON: one object per line.
    JsonLines,
    /// Logging v2 Parquet.
    Parquet,
}

impl CloudFrontShape {
    /// The shape of content starting with `head`: Parquet's magic, a JSON object's `{` (after
    /// white space and a byte order mark), or else W3C (which the decoder checks).
    pub fn of(head: &[u8]) -> Self {
        if head.starts_with(cloudfront_parquet::MAGIC) {
            return Self::Parquet;
        }
        let text = head.strip_prefix(UTF8_BOM).unwrap_or(head);
        match text.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Self::JsonLines,
            _ => Self::W3c,
        }
    }
}

impl FormatDecoder {
    /// A decoder for `format` fit for content starting with `head` (CloudFront's W3C text or
    /// logging v2 JSON lines; Parquet is read as W3C text, see [`cloudfront_parquet`]).
    pub fn for_content(format: Format, head: &[u8], options: &DecodeOptions) -> Self {
        let batch_size = options.batch_size;
        match (format, CloudFrontShape::of(head)) {
            (Format::CloudFront, CloudFrontShape::JsonLines) => Self::CloudFrontJson(
                cloudfront_json::CloudFrontJsonDecoder::new(cloudfront::CloudFrontOptions {
                    batch_size,
                    ..Default::default()
                }),
            ),
            (Format::Jsonl | Format::CloudWatch, _) => {
                let mut columns = events::fixed_columns(format == Format::CloudWatch);
                for c in &options.columns {
                    if !columns.contains(c) {
                        columns.push(c.clone());
                    }
                }
                Self::Events(events::EventsDecoder::new(
                    format == Format::CloudWatch,
                    events::EventsOptions {
                        batch_size,
                        columns,
                        customer_field: options.customer_field.clone(),
                        ..Default::default()
                    },
                ))
            }
            _ => Self::new(format, batch_size),
        }
    }

    /// A decoder for `format` emitting batches of `batch_size` rows.
    pub fn new(format: Format, batch_size: usize) -> Self {
        match format {
            Format::CloudFront => Self::CloudFront(cloudfront::CloudFrontDecoder::new(
                cloudfront::CloudFrontOptions {
                    batch_size,
                    ..Default::default()
                },
            )),
            Format::Audit => Self::Audit(audit::AuditDecoder::new(audit::AuditOptions {
                batch_size,
                ..Default::default()
            })),
            Format::Jsonl | Format::CloudWatch => {
                Self::for_content(format, b"", &DecodeOptions::rows(batch_size))
            }
        }
    }

    /// The field layouts seen so far: every `#Fields` line, or the CSV header.
    pub fn layouts(&self) -> Vec<Vec<String>> {
        match self {
            Self::CloudFront(d) => d.layouts(),
            Self::CloudFrontJson(d) => d.layouts(),
            Self::Audit(d) => d.header().map(|h| vec![h.to_vec()]).unwrap_or_default(),
            Self::Events(d) => vec![d.new_columns().to_vec()],
        }
    }
}

macro_rules! delegate {
    ($self:ident, $d:ident => $call:expr) => {
        match $self {
            FormatDecoder::CloudFront($d) => $call,
            FormatDecoder::CloudFrontJson($d) => $call,
            FormatDecoder::Audit($d) => $call,
            FormatDecoder::Events($d) => $call,
        }
    };
}

impl Decoder for FormatDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, FileError> {
        delegate!(self, d => d.decode(buf))
    }
    fn finish(&mut self) -> Result<(), FileError> {
        delegate!(self, d => d.finish())
    }
    fn capacity(&self) -> usize {
        delegate!(self, d => d.capacity())
    }
    fn flush(&mut self) -> Result<Option<Decoded>, FileError> {
        delegate!(self, d => d.flush())
    }
    fn schema(&self) -> SchemaRef {
        delegate!(self, d => d.schema())
    }
    fn counts(&self) -> RowCounts {
        delegate!(self, d => d.counts())
    }
}

/// The decoder for `format` fit for what `reader` holds, and the content as the decoder reads
/// it (a CloudFront logging v2 Parquet object read as W3C text, see [`cloudfront_parquet`]).
pub fn decoder_for<'r>(
    format: Format,
    mut reader: Box<dyn BufRead + 'r>,
    options: &DecodeOptions,
) -> io::Result<(FormatDecoder, Box<dyn BufRead + 'r>)> {
    let head = reader.fill_buf()?;
    let decoder = FormatDecoder::for_content(format, head, options);
    if format == Format::CloudFront && CloudFrontShape::of(head) == CloudFrontShape::Parquet {
        reader = Box::new(cloudfront_parquet::ParquetText::open(
            reader,
            options.batch_size,
        )?);
    }
    Ok((decoder, reader))
}

/// Drive `decoder` over everything `reader` yields, handing each flushed batch to `sink`.
/// `on_io` turns read errors into file errors (it knows whether the stream was gzip).
pub fn decode_stream<R, D, S>(
    mut reader: R,
    decoder: &mut D,
    on_io: impl Fn(io::Error) -> FileError,
    mut sink: S,
) -> Result<(), FileError>
where
    R: BufRead,
    D: Decoder + ?Sized,
    S: FnMut(Decoded) -> Result<(), FileError>,
{
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(on_io(e)),
        };
        if buf.is_empty() {
            break;
        }
        let len = buf.len();
        let mut at = 0;
        while at < len {
            at += decoder.decode(&buf[at..])?;
            if decoder.capacity() == 0 {
                if let Some(d) = decoder.flush()? {
                    sink(d)?;
                }
            }
        }
        reader.consume(len);
    }
    decoder.finish()?;
    if let Some(d) = decoder.flush()? {
        sink(d)?;
    }
    Ok(())
}

/// Decode a byte slice fed in chunks of `chunk` bytes; the test harness for split invariance,
/// also handy for `inspect`.
pub fn decode_chunked<D: Decoder + ?Sized>(
    data: &[u8],
    chunk: usize,
    decoder: &mut D,
) -> Result<Vec<Decoded>, FileError> {
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        let mut at = 0;
        while at < piece.len() {
            at += decoder.decode(&piece[at..])?;
            if decoder.capacity() == 0 {
                out.extend(decoder.flush()?);
            }
        }
    }
    decoder.finish()?;
    out.extend(decoder.flush()?);
    Ok(out)
}

/// Cut `s` to at most `limit` bytes on a UTF-8 boundary.
pub fn cut_at_boundary(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The text of a rejected row as it may be stored: lossy UTF-8, IPs masked, bounded length.
pub fn reject_text(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let scrubbed = crate::transform::mask::scrub_text(&text);
    cut_at_boundary(&scrubbed, REJECT_RAW_LIMIT).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_formats() {
        assert_eq!(
            Format::sniff(b"#Version: 1.0\n#Fields: date"),
            Format::CloudFront
        );
        assert_eq!(
            Format::sniff(b"\xEF\xBB\xBF\n#Fields: date"),
            Format::CloudFront
        );
        assert_eq!(Format::sniff(b"timestamp,user\n"), Format::Audit);
        assert_eq!(Format::sniff(b""), Format::Audit);
    }

    #[test]
    fn cut_respects_utf8() {
        assert_eq!(cut_at_boundary("héllo", 2), "h");
        assert_eq!(cut_at_boundary("héllo", 3), "hé");
        assert_eq!(cut_at_boundary("abc", 10), "abc");
    }

    #[test]
    fn reject_text_masks_ips() {
        let t = reject_text(b"2019-12-04\t21:02:31\tLAX1\t192.0.2.100\tGET");
        assert!(!t.contains("192.0.2.100"), "{t}");
        assert!(t.contains("192.0.2.0/24"), "{t}");
    }
}
