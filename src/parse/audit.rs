//! WAU audit logs: CSV with a header row, RFC 4180 quoting (embedded commas, quotes and
//! newlines), optional UTF-8 BOM, LF or CRLF.
//!
//! The header names the columns (normalised like CloudFront names: `Source IP` → `source_ip`).
//! `timestamp` is required and becomes `ts`; an optional `customer` column is emitted as
//! `customer` for [`crate::transform`] to check against the path; every other column is a
//! string column in header order. Empty fields are null. Tables take the union of the headers of
//! their files in first-seen order: see [`HeaderUnion`].

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use csv_core::{ReadRecordResult, Reader};

use super::column::{initial_rows, PrefixBuilders, StrBuilder, MAX_BATCH_BYTES};
use super::simple_csv::{simple_record, Split};
use super::timestamp::{parse_timestamp, Timestamps};
use super::{
    reject_text, Decoded, Decoder, Reject, RejectReason, RowCounts, DEFAULT_BATCH_SIZE, UTF8_BOM,
};
use crate::error::FileError;
use crate::schema::{column_name, parsed_prefix, CUSTOMER};
use crate::transform::mask::scrub_text;

/// The header column that holds the event time.
pub const TIMESTAMP: &str = "timestamp";

/// Options of the audit decoder.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Rows per batch.
    pub batch_size: usize,
    /// Longest record accepted, in bytes. A longer one is almost always an unbalanced quote
    /// swallowing the lines after it: it is rejected at the line where it started, and
    /// decoding resumes at the next line.
    pub max_record: usize,
    /// A batch ends once its records hold this many bytes, whatever its row count, so no
    /// string column of a batch comes near Arrow's 2 GiB offset limit (at most
    /// [`MAX_BATCH_BYTES`]).
    pub max_batch_bytes: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            max_record: 1 << 20,
            max_batch_bytes: 256 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Ts,
    Customer,
    Column(usize),
}

#[derive(Debug)]
struct Header {
    targets: Vec<Target>,
    /// The index of the `timestamp` field (found once, not per record).
    ts: usize,
    /// Every header name, normalised, in file order (for messages).
    names: Vec<String>,
    /// The names of the emitted string columns.
    columns: Vec<String>,
    schema: SchemaRef,
}

impl Header {
    fn parse(fields: &[&[u8]]) -> Result<Header, FileError> {
        if let Some((i, what)) = fields
            .iter()
            .enumerate()
            .find_map(|(i, f)| looks_like_data(&String::from_utf8_lossy(f)).map(|what| (i, what)))
        {
            // The values are not echoed: a data row holds addresses and user names.
            return Err(FileError::NotFormat {
                format: "an audit CSV",
                reason: format!(
                    "no header row: the first line looks like data (its field {} is {what})",
                    i + 1
                ),
            });
        }
        let mut targets = Vec::with_capacity(fields.len());
        let mut names: Vec<String> = Vec::with_capacity(fields.len());
        let mut columns = Vec::new();
        for (i, raw) in fields.iter().enumerate() {
            let mut name = column_name(&String::from_utf8_lossy(raw));
            if name.is_empty() {
                name = format!("column_{}", i + 1);
            }
            if names.contains(&name) {
                let base = name.clone();
                let mut n = 2;
                while names.contains(&name) {
                    name = format!("{base}_{n}");
                    n += 1;
                }
            }
            let target = match name.as_str() {
                TIMESTAMP => Target::Ts,
                CUSTOMER => Target::Customer,
                _ => {
                    columns.push(name.clone());
                    Target::Column(columns.len() - 1)
                }
            };
            names.push(name);
            targets.push(target);
        }
        if !targets.contains(&Target::Ts) {
            return Err(FileError::NotFormat {
                format: "an audit CSV",
                reason: scrub_text(&format!(
                    "the header has no `timestamp` column (it has {})",
                    shown_names(&names)
                )),
            });
        }
        let mut schema_fields: Vec<Field> = parsed_prefix().into();
        if targets.contains(&Target::Customer) {
            schema_fields.push(Field::new(CUSTOMER, DataType::Utf8, true));
        }
        schema_fields.extend(columns.iter().map(|c| Field::new(c, DataType::Utf8, true)));
        Ok(Header {
            ts: targets
                .iter()
                .position(|t| *t == Target::Ts)
                .unwrap_or_default(),
            targets,
            names,
            columns,
            schema: Arc::new(Schema::new(schema_fields)),
        })
    }
}

impl Header {
    /// True when `line`, alone, is a record of this header's shape with a timestamp that
    /// parses: a line inside a quoted field that is really a row. It is read twice, as CSV
    /// (its end taken as the record's even inside a quote) and with quotes as plain text (the
    /// quote it opens is the one that went wrong), and either reading may show the row.
    fn reads_as_row(&self, line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return false;
        }
        [true, false].into_iter().any(|quoting| {
            let mut reader = csv_core::ReaderBuilder::new().quoting(quoting).build();
            let mut out = vec![0u8; line.len() + 1];
            let mut ends = vec![0usize; self.targets.len() + 1];
            let (mut nout, mut nend) = (0, 0);
            for input in [line, &[][..]] {
                let (res, _, o, e) = reader.read_record(input, &mut out[nout..], &mut ends[nend..]);
                nout += o;
                nend += e;
                match res {
                    ReadRecordResult::InputEmpty => continue,
                    ReadRecordResult::Record => break,
                    _ => return false,
                }
            }
            if nend != self.targets.len() {
                return false;
            }
            let Some(ts) = self.targets.iter().position(|t| *t == Target::Ts) else {
                return false;
            };
            let start = if ts == 0 { 0 } else { ends[ts - 1] };
            Timestamps::default().parse(&out[start..ends[ts]]).is_some()
        })
    }
}

/// What a header field is when it is a value rather than a name: an address or a
/// timestamp with a date (`2024-03-01…`).
fn looks_like_data(field: &str) -> Option<&'static str> {
    let field = field.trim();
    if field.parse::<std::net::IpAddr>().is_ok() {
        return Some("an IP address");
    }
    if field.contains('-') && parse_timestamp(field).is_some() {
        return Some("a timestamp");
    }
    None
}

/// Header names for a message: at most 20 of them, the rest counted.
fn shown_names(names: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut text = format!("{:?}", &names[..names.len().min(SHOWN)]);
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// Push decoder for audit CSV files.
#[derive(Debug)]
pub struct AuditDecoder {
    options: AuditOptions,
    reader: Reader,
    /// Bytes at the very start of the input held back until a BOM is ruled in or out.
    head: Vec<u8>,
    started: bool,
    header: Option<Header>,
    /// What csv-core decodes: a record's fields, one after another, and where each ends.
    out: Vec<u8>,
    ends: Vec<usize>,
    /// Where each field of the record being appended starts (in `out`, or in the line
    /// [`simple_record`] split, which fills `ends` too).
    starts: Vec<usize>,
    /// Scratch space of [`simple_record`].
    hits: Vec<usize>,
    nout: usize,
    nend: usize,
    /// Newlines consumed so far, and the last byte consumed: they place each record's line.
    newlines: u64,
    last_byte: u8,
    /// Raw bytes of the record in progress given in earlier calls (the record spans them).
    partial: Vec<u8>,
    /// Bytes to decode before any more input: the lines after an abandoned record.
    pending: Vec<u8>,
    /// Skipping the rest of a line whose record was abandoned before the line ended.
    skipping: bool,
    /// In `finish`: the batch may run past its size to decode what is pending.
    finishing: bool,
    prefix: PrefixBuilders,
    timestamps: Timestamps,
    customer: StrBuilder,
    columns: Vec<StrBuilder>,
    rejects: Vec<Reject>,
    counts: RowCounts,
}

impl AuditDecoder {
    /// A decoder with `options`.
    pub fn new(options: AuditOptions) -> Self {
        let rows = options.batch_size.max(1);
        Self {
            options: AuditOptions {
                batch_size: rows,
                max_batch_bytes: options.max_batch_bytes.clamp(1, MAX_BATCH_BYTES),
                ..options
            },
            reader: Reader::new(),
            head: Vec::with_capacity(3),
            started: false,
            header: None,
            out: vec![0; 4096],
            ends: vec![0; 64],
            starts: vec![0; 64],
            hits: Vec::new(),
            nout: 0,
            nend: 0,
            newlines: 0,
            last_byte: 0,
            partial: Vec::new(),
            pending: Vec::new(),
            skipping: false,
            finishing: false,
            prefix: PrefixBuilders::new(initial_rows(rows)),
            timestamps: Timestamps::default(),
            customer: StrBuilder::with_capacity(0, 0),
            columns: Vec::new(),
            rejects: Vec::new(),
            counts: RowCounts::default(),
        }
    }

    /// The file's header names, normalised, once the header has been read.
    pub fn header(&self) -> Option<&[String]> {
        self.header.as_ref().map(|h| h.names.as_slice())
    }

    /// The string columns this file contributes (header order, without `timestamp` and
    /// `customer`), once the header has been read.
    pub fn columns(&self) -> Option<&[String]> {
        self.header.as_ref().map(|h| h.columns.as_slice())
    }

    /// Feed bytes to csv-core until the input is used up, the batch is full, or a record is
    /// abandoned (then [`Self::pending`] holds what to decode before the rest of `input`).
    /// Returns the bytes of `input` consumed.
    fn pump(&mut self, input: &[u8]) -> Result<usize, FileError> {
        let mut pos = 0;
        // Where the record in progress starts in `input` (its earlier bytes are in `partial`).
        let mut start = 0;
        loop {
            if self.skipping {
                let Some(nl) = memchr::memchr(b'\n', &input[pos..]) else {
                    return Ok(input.len());
                };
                pos += nl + 1;
                self.newlines += 1;
                self.last_byte = b'\n';
                self.skipping = false;
                start = pos;
            }
            if self.capacity() == 0 && !self.finishing {
                self.partial.extend_from_slice(&input[start..pos]);
                return Ok(pos);
            }
            if self.header.is_some() && self.at_record_start() {
                // Like csv-core at a record's start, pass over the ends of lines.
                while let Some(&b @ (b'\r' | b'\n')) = input.get(pos) {
                    self.newlines += u64::from(b == b'\n');
                    self.last_byte = b;
                    pos += 1;
                }
                start = pos;
                if pos == input.len() {
                    // (An empty input would tell csv-core the stream has ended.)
                    return Ok(pos);
                }
                if let Some((line_len, split)) = self.simple_line(&input[pos..]) {
                    self.newlines += 1;
                    self.last_byte = b'\n';
                    // The fields are read from `input` itself, past the line too: a short
                    // field is copied as one block (`extend_short`).
                    self.record(Fields::Line(&input[pos..], split), self.newlines)?;
                    pos += line_len + 1;
                    start = pos;
                    continue;
                }
            }
            let line_before = self.reader.line();
            let (res, nin, nout, nend) = self.reader.read_record(
                &input[pos..],
                &mut self.out[self.nout..],
                &mut self.ends[self.nend..],
            );
            // csv-core counts the newlines it passes.
            self.newlines += self.reader.line() - line_before;
            if let Some(&b) = input[pos..pos + nin].last() {
                self.last_byte = b;
            }
            pos += nin;
            self.nout += nout;
            self.nend += nend;
            // Past the record limit, whether the record has ended in this call or not (so the
            // outcome does not depend on how the input was cut into pieces).
            if self.nout > self.options.max_record {
                let raw = self.take_raw(&input[start..pos]);
                let detail = format!(
                    "the record runs past {} bytes (a quote that never closes?)",
                    self.options.max_record
                );
                self.abandon(&raw, detail)?;
                return Ok(pos);
            }
            match res {
                ReadRecordResult::InputEmpty => {
                    self.partial.extend_from_slice(&input[start..pos]);
                    return Ok(pos);
                }
                ReadRecordResult::End => return Ok(pos),
                full @ (ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull) => {
                    self.grow(&full)
                }
                ReadRecordResult::Record => {
                    // The record's last line: the newline that ended it is already counted,
                    // unless it ended at `\r` (CRLF, whose `\n` comes next) or at end of input.
                    let ended_by_newline = nin > 0 && self.last_byte == b'\n';
                    let end_line = self.newlines + u64::from(!ended_by_newline);
                    let embedded = count_newlines(&self.out[..self.nout]);
                    if self.complete_record(&input[start..pos], end_line, embedded)? {
                        return Ok(pos);
                    }
                    start = pos;
                }
            }
        }
    }

    /// Nothing of a record has been read: csv-core is between records (after a record its
    /// state reads the next byte as it does at the very start).
    fn at_record_start(&self) -> bool {
        self.nout == 0 && self.nend == 0 && self.partial.is_empty()
    }

    /// Split the line at the start of `rest` into [`Self::starts`] and [`Self::ends`] when it
    /// is a whole line that [`simple_record`] reads and within the record limit: the line's
    /// length (its `\n` not counted) and its split. `None` leaves it to csv-core.
    fn simple_line(&mut self, rest: &[u8]) -> Option<(usize, Split)> {
        let len = memchr::memchr(b'\n', rest)?;
        if len > self.options.max_record {
            return None;
        }
        let split = simple_record(
            &rest[..len],
            &mut self.hits,
            &mut self.starts,
            &mut self.ends,
        )?;
        Some((len, split))
    }

    /// The record just ended on `end_line` (its raw text is [`Self::partial`], then `tail`;
    /// `embedded` newlines inside its fields): decoded, or abandoned when it is a quote left
    /// open that a later line closed (several lines, the wrong number of fields). True when
    /// abandoned.
    fn complete_record(
        &mut self,
        tail: &[u8],
        end_line: u64,
        embedded: usize,
    ) -> Result<bool, FileError> {
        if embedded > 0 {
            if let Some(header) = &self.header {
                let expected = header.targets.len();
                let detail = if expected != self.nend {
                    Some(format!(
                        "a quoted field runs over {} lines, leaving {} fields where {expected} are expected",
                        embedded + 1,
                        self.nend,
                    ))
                } else {
                    // The right shape, but a later line of it reads as a row of its own: two
                    // quotes left open on different lines closed each other.
                    let mut raw = self.partial.clone();
                    raw.extend_from_slice(tail);
                    let lead = raw
                        .iter()
                        .take_while(|&&b| b == b'\r' || b == b'\n')
                        .count();
                    raw[lead..]
                        .split(|&b| b == b'\n')
                        .skip(1)
                        .position(|line| header.reads_as_row(line))
                        .map(|at| {
                            format!(
                                "a quoted field runs over {} lines, and its line {} reads as a row of its own",
                                embedded + 1,
                                at + 2
                            )
                        })
                };
                if let Some(detail) = detail {
                    let raw = self.take_raw(tail);
                    self.abandon(&raw, detail)?;
                    return Ok(true);
                }
            }
        }
        self.record(Fields::Out, end_line - embedded as u64)?;
        self.nout = 0;
        self.nend = 0;
        self.partial.clear();
        Ok(false)
    }

    /// The input has ended with a record in progress: a newline ends it unless it is inside
    /// a quoted field, which never closed (then it is abandoned). The newline is not counted
    /// as one of the input's. (csv-core's own end of input would end such a record silently.)
    fn end_last_record(&mut self) -> Result<(), FileError> {
        loop {
            let (res, _, nout, nend) = self.reader.read_record(
                b"\n",
                &mut self.out[self.nout..],
                &mut self.ends[self.nend..],
            );
            match res {
                full @ (ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull) => {
                    self.grow(&full)
                }
                ReadRecordResult::Record => {
                    self.nout += nout;
                    self.nend += nend;
                    let embedded = count_newlines(&self.out[..self.nout]);
                    self.complete_record(&[], self.newlines + 1, embedded)?;
                    return Ok(());
                }
                ReadRecordResult::InputEmpty | ReadRecordResult::End => {
                    let raw = std::mem::take(&mut self.partial);
                    self.abandon(&raw, "the input ends inside a quoted field".into())?;
                    return Ok(());
                }
            }
        }
    }

    /// Double the buffer csv-core found full.
    fn grow(&mut self, full: &ReadRecordResult) {
        if *full == ReadRecordResult::OutputEndsFull {
            let len = self.ends.len() * 2;
            self.ends.resize(len, 0);
        } else {
            let len = self.out.len() * 2;
            self.out.resize(len, 0);
        }
    }

    /// The raw text of the record in progress: what earlier calls gave, then `tail`.
    fn take_raw(&mut self, tail: &[u8]) -> Vec<u8> {
        let mut raw = std::mem::take(&mut self.partial);
        raw.extend_from_slice(tail);
        raw
    }

    /// Reject the record whose raw text is `raw` at the line where it starts, and decode again
    /// from the next line: the lines an unbalanced quote swallowed are rows of their own.
    fn abandon(&mut self, raw: &[u8], detail: String) -> Result<(), FileError> {
        // `raw` may begin with the end of the line before (the `\n` of a CRLF) and blank lines.
        let lead = raw
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let lead_newlines = memchr::memchr_iter(b'\n', &raw[..lead]).count() as u64;
        let first_line_of_raw = self.newlines + 1 - memchr::memchr_iter(b'\n', raw).count() as u64;
        let line = first_line_of_raw + lead_newlines;
        let body = &raw[lead..];
        let first_end = memchr::memchr(b'\n', body).map(|i| i + 1);
        let text = &body[..first_end.unwrap_or(body.len())];
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        // No more than the limit: how much of an over-long line arrived must not show.
        let text = &text[..text.len().min(self.options.max_record)];
        if self.header.is_none() {
            return Err(FileError::NotFormat {
                format: "an audit CSV",
                reason: format!("the header row has an unbalanced quote: {detail}"),
            });
        }
        self.counts.rows_read += 1;
        self.counts.rows_rejected += 1;
        self.rejects.push(Reject {
            line,
            reason: RejectReason::UnbalancedQuote { detail },
            raw: reject_text(text),
        });
        self.reader.reset();
        self.nout = 0;
        self.nend = 0;
        self.partial.clear();
        // Newlines before what is decoded next: through the rejected line, or up to it while
        // the rest of that line is still to be skipped.
        self.newlines = if first_end.is_some() { line } else { line - 1 };
        self.last_byte = b'\n';
        match first_end {
            Some(end) => {
                let mut pending = body[end..].to_vec();
                pending.append(&mut self.pending);
                self.pending = pending;
            }
            // The record's first line has not ended yet: the rest of it is not a row.
            None => self.skipping = true,
        }
        Ok(())
    }

    /// Decode what [`Self::pending`] holds; false when the batch filled first.
    fn drain_pending(&mut self) -> Result<bool, FileError> {
        while !self.pending.is_empty() {
            if self.capacity() == 0 && !self.finishing {
                return Ok(false);
            }
            let pending = std::mem::take(&mut self.pending);
            let used = self.pump(&pending)?;
            // An abandoned record in `pending` queued its own lines first.
            self.pending.extend_from_slice(&pending[used..]);
        }
        Ok(true)
    }

    /// Decode the record whose fields `fields` holds, found on `line`: the header, a row, or a
    /// reject.
    fn record(&mut self, fields: Fields<'_>, line: u64) -> Result<(), FileError> {
        let (bytes, count, ascii) = match fields {
            Fields::Line(bytes, split) => (bytes, split.fields, split.ascii),
            Fields::Out => {
                // csv-core's fields lie one after another.
                if self.starts.len() < self.nend {
                    self.starts.resize(self.nend, 0);
                }
                for i in 0..self.nend {
                    self.starts[i] = if i == 0 { 0 } else { self.ends[i - 1] };
                }
                (&self.out[..], self.nend, self.out[..self.nout].is_ascii())
            }
        };
        let (starts, ends) = (&self.starts[..count], &self.ends[..count]);
        let field = |i: usize| -> &[u8] { &bytes[starts[i]..ends[i]] };
        let Some(header) = &self.header else {
            let fields: Vec<&[u8]> = (0..count).map(field).collect();
            let header = Header::parse(&fields)?;
            self.columns = header
                .columns
                .iter()
                .map(|_| StrBuilder::with_capacity(initial_rows(self.options.batch_size), 0))
                .collect();
            self.header = Some(header);
            return Ok(());
        };
        self.counts.rows_read += 1;
        let reason = match Self::check(header, count, field, ascii, &mut self.timestamps) {
            Ok(ts) => {
                let size = starts.iter().zip(ends).map(|(s, e)| e - s).sum();
                self.prefix.append(ts, line, size);
                for (target, (&from, &end)) in header.targets.iter().zip(starts.iter().zip(ends)) {
                    // Every field was checked to be UTF-8. Empty is null.
                    let builder = match *target {
                        Target::Ts => continue,
                        Target::Customer => &mut self.customer,
                        Target::Column(c) => &mut self.columns[c],
                    };
                    if end > from {
                        builder.append_range(bytes, from, end);
                    } else {
                        builder.append_null();
                    }
                }
                self.counts.rows_ok += 1;
                return Ok(());
            }
            Err(reason) => reason,
        };
        let raw = render_csv((0..count).map(field));
        self.counts.rows_rejected += 1;
        self.rejects.push(Reject {
            line,
            reason,
            raw: reject_text(raw.as_bytes()),
        });
        Ok(())
    }

    /// Validate one record of `count` fields against the header (each field UTF-8, which an
    /// `ascii` record is without a look); its `ts` if good.
    fn check<'a>(
        header: &Header,
        count: usize,
        field: impl Fn(usize) -> &'a [u8],
        ascii: bool,
        timestamps: &mut Timestamps,
    ) -> Result<i64, RejectReason> {
        if count != header.targets.len() {
            return Err(RejectReason::FieldCount {
                expected: header.targets.len(),
                found: count,
            });
        }
        // Each field on its own: bytes split by a delimiter (`\xC3,\xA9`) would join into a
        // character in the record as a whole.
        if !ascii {
            if let Some(bad) = (0..count).position(|i| std::str::from_utf8(field(i)).is_err()) {
                return Err(RejectReason::InvalidUtf8 {
                    column: header.names[bad].clone(),
                });
            }
        }
        let text = field(header.ts);
        timestamps
            .parse(text)
            .ok_or_else(|| RejectReason::BadTimestamp {
                value: reject_text(text),
            })
    }
}

/// Where the fields of a record are.
#[derive(Debug, Clone, Copy)]
enum Fields<'a> {
    /// In the input, from the line's start: [`AuditDecoder::starts`] and
    /// [`AuditDecoder::ends`] are offsets into these bytes, and `Split` says how many.
    Line(&'a [u8], Split),
    /// In [`AuditDecoder::out`], as csv-core left them ([`AuditDecoder::nend`] of them).
    Out,
}

/// Newlines in a record's decoded fields: a plain loop, which for a record's few dozen bytes
/// costs less than a call into `memchr`.
fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Fields back to one CSV line, quoting where needed (for reject records).
fn render_csv<'a>(fields: impl Iterator<Item = &'a [u8]>) -> String {
    let mut out = String::new();
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let f = String::from_utf8_lossy(f);
        if f.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&f);
        }
    }
    out
}

impl Default for AuditDecoder {
    fn default() -> Self {
        Self::new(AuditOptions::default())
    }
}

impl Decoder for AuditDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, FileError> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.started {
            // Hold back up to three bytes to see whether the input starts with a BOM, however
            // the input is chunked.
            let take = (3 - self.head.len()).min(buf.len());
            self.head.extend_from_slice(&buf[..take]);
            if self.head.len() < 3 && UTF8_BOM.starts_with(&self.head) {
                return Ok(take);
            }
            self.started = true;
            let head = std::mem::take(&mut self.head);
            let head = head.strip_prefix(UTF8_BOM).unwrap_or(&head);
            // Three bytes never fill a batch nor run past a record's limit.
            self.pump(head)?;
            return Ok(take);
        }
        let mut used = 0;
        loop {
            if !self.drain_pending()? {
                return Ok(used);
            }
            if used == buf.len() || self.capacity() == 0 {
                return Ok(used);
            }
            used += self.pump(&buf[used..])?;
        }
    }

    fn finish(&mut self) -> Result<(), FileError> {
        if !self.started {
            self.started = true;
            let head = std::mem::take(&mut self.head);
            if head.as_slice() != UTF8_BOM {
                self.pump(&head)?;
            }
        }
        // Whatever is pending is decoded now, even past the batch size (it is at most one
        // record's limit of bytes).
        self.finishing = true;
        loop {
            self.drain_pending()?;
            let in_progress = self.partial.iter().any(|&b| b != b'\r' && b != b'\n');
            if self.skipping {
                self.skipping = false;
            } else if in_progress {
                // Ending it may abandon it, queuing its later lines.
                self.end_last_record()?;
                continue;
            }
            // An empty input tells csv-core the stream has ended.
            self.pump(&[])?;
            if self.pending.is_empty() {
                return Ok(());
            }
        }
    }

    fn capacity(&self) -> usize {
        self.prefix
            .room(self.options.batch_size, self.options.max_batch_bytes)
    }

    fn flush(&mut self) -> Result<Option<Decoded>, FileError> {
        if self.prefix.is_empty() && self.rejects.is_empty() {
            return Ok(None);
        }
        let schema = self.schema();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        // After `finish` no row follows.
        let more = !self.finishing;
        arrays.extend(self.prefix.finish(more));
        if schema.fields().len() > arrays.len() + self.columns.len() {
            arrays.push(Arc::new(self.customer.finish(more)));
        }
        arrays.extend(
            self.columns
                .iter_mut()
                .map(|b| Arc::new(b.finish(more)) as ArrayRef),
        );
        let batch = RecordBatch::try_new(schema, arrays).map_err(|e| FileError::NotFormat {
            format: "an audit CSV",
            reason: format!("internal error building a batch: {e}"),
        })?;
        Ok(Some(Decoded {
            batch,
            rejects: std::mem::take(&mut self.rejects),
        }))
    }

    fn schema(&self) -> SchemaRef {
        match &self.header {
            Some(h) => h.schema.clone(),
            None => Arc::new(Schema::new(parsed_prefix().to_vec())),
        }
    }

    fn counts(&self) -> RowCounts {
        self.counts
    }
}

/// Read just enough of an audit file to know its header: the columns it contributes to its
/// table (see [`HeaderUnion`]). An empty file contributes none.
pub fn read_columns<R: std::io::BufRead>(
    mut reader: R,
    on_io: impl Fn(std::io::Error) -> FileError,
) -> Result<Vec<String>, FileError> {
    let mut decoder = AuditDecoder::new(AuditOptions {
        batch_size: 1,
        ..Default::default()
    });
    while decoder.columns().is_none() {
        let buf = reader.fill_buf().map_err(&on_io)?;
        if buf.is_empty() {
            decoder.finish()?;
            break;
        }
        let used = decoder.decode(buf)?;
        reader.consume(used);
        if used == 0 {
            break;
        }
    }
    Ok(decoder
        .columns()
        .map(<[String]>::to_vec)
        .unwrap_or_default())
}

/// The union of audit headers across a table's files, in first-seen order. Used to fix one
/// table schema before a run writes anything; the catalog only ever appends to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderUnion {
    columns: Vec<String>,
}

impl HeaderUnion {
    /// Start from the columns a table already has.
    pub fn from_columns(columns: Vec<String>) -> Self {
        Self { columns }
    }

    /// Add one file's columns; returns the names that were new.
    pub fn add<'a>(&mut self, columns: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let mut added = Vec::new();
        for c in columns {
            if !self.columns.contains(c) {
                self.columns.push(c.clone());
                added.push(c.clone());
            }
        }
        added
    }

    /// The columns so far.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The parsed-batch schema of the union (what [`crate::transform`] aligns every file to).
    pub fn parsed_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = parsed_prefix().into();
        fields.push(Field::new(CUSTOMER, DataType::Utf8, true));
        fields.extend(
            self.columns
                .iter()
                .map(|c| Field::new(c, DataType::Utf8, true)),
        );
        Arc::new(Schema::new(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::decode_chunked;
    use arrow::array::AsArray;
    use arrow::compute::concat_batches;
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};

    struct Out {
        batch: RecordBatch,
        rejects: Vec<Reject>,
        counts: RowCounts,
        columns: Vec<String>,
    }

    fn decode_with(input: &[u8], chunk: usize) -> Out {
        let mut d = AuditDecoder::default();
        let out = decode_chunked(input, chunk, &mut d).unwrap();
        let batches: Vec<_> = out.iter().map(|o| o.batch.clone()).collect();
        Out {
            batch: concat_batches(&d.schema(), &batches).unwrap(),
            rejects: out.into_iter().flat_map(|o| o.rejects).collect(),
            counts: d.counts(),
            columns: d.columns().unwrap_or_default().to_vec(),
        }
    }

    fn decode(input: &str) -> Out {
        decode_with(input.as_bytes(), input.len().max(1))
    }

    fn col(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
        b.column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect()
    }

    fn row_nums(b: &RecordBatch) -> Vec<i64> {
        b.column_by_name("row_num")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn batches_are_cut_at_their_byte_bound() {
        let mut input = String::from("timestamp,user,action\n");
        for i in 0..5 {
            input.push_str(&format!("2024-03-01T10:00:0{i}Z,user{i},login\n"));
        }
        let mut d = AuditDecoder::new(AuditOptions {
            // Two records reach it; the third starts a new batch.
            max_batch_bytes: "2024-03-01T10:00:00Zuser0login".len() + 1,
            ..Default::default()
        });
        let out = decode_chunked(input.as_bytes(), 16, &mut d).unwrap();
        let sizes: Vec<_> = out.iter().map(|o| o.batch.num_rows()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let lines: Vec<i64> = out.iter().flat_map(|o| row_nums(&o.batch)).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6]);
    }

    #[test]
    fn rfc4180_quoting_and_line_numbers() {
        let input = "timestamp,user,action,Source IP\n\
            2024-03-01T10:00:00Z,alice,\"login, then logout\",192.0.2.1\n\
            2024-03-01T10:00:01Z,bob,\"said \"\"hi\"\"\",192.0.2.2\n\
            2024-03-01T10:00:02Z,carol,\"two\nlines\",192.0.2.3\n\
            2024-03-01T10:00:03Z,dave,,\n";
        let out = decode(input);
        assert!(out.rejects.is_empty(), "{:?}", out.rejects);
        assert_eq!(out.columns, ["user", "action", "source_ip"]);
        assert_eq!(
            col(&out.batch, "action"),
            [
                Some("login, then logout".into()),
                Some("said \"hi\"".into()),
                Some("two\nlines".into()),
                None
            ]
        );
        assert_eq!(col(&out.batch, "source_ip")[3], None);
        // The record after the two-line record starts on line 6.
        assert_eq!(row_nums(&out.batch), [2, 3, 4, 6]);
    }

    #[test]
    fn crlf_and_bom_and_no_final_newline() {
        let input = "\u{feff}timestamp,user\r\n2024-03-01T10:00:00Z,alice\r\n\"2024-03-01T10:00:01Z\",\"b\r\nob\"\r\n2024-03-01T10:00:02Z,carol";
        let out = decode(input);
        assert!(out.rejects.is_empty(), "{:?}", out.rejects);
        assert_eq!(out.columns, ["user"]);
        assert_eq!(col(&out.batch, "user")[1], Some("b\r\nob".into()));
        assert_eq!(row_nums(&out.batch), [2, 3, 5]);
    }

    #[test]
    fn blank_lines_do_not_shift_line_numbers() {
        let out =
            decode("timestamp,user\n\n2024-03-01T10:00:00Z,alice\n\n\n2024-03-01T10:00:01Z,bob\n");
        assert_eq!(row_nums(&out.batch), [3, 6]);
        assert_eq!(out.counts.rows_read, 2);
    }

    #[test]
    fn timestamp_forms_become_ts() {
        let input = "timestamp,n\n2019-12-04T21:02:31Z,a\n2019-12-04T23:02:31+02:00,b\n1575493351,c\n1575493351000,d\n2019-12-04 21:02:31.250,e\n";
        let out = decode(input);
        let ts = out
            .batch
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let t = 1_575_493_351_000_000;
        assert_eq!(ts.values().to_vec(), [t, t, t, t, t + 250_000]);
    }

    #[test]
    fn customer_column_is_emitted_for_the_transform() {
        let out = decode(
            "customer,timestamp,user\nacme,2024-03-01T10:00:00Z,alice\n,2024-03-01T10:00:00Z,bob\n",
        );
        assert_eq!(col(&out.batch, CUSTOMER), [Some("acme".into()), None]);
        assert_eq!(out.columns, ["user"]);
    }

    #[test]
    fn bad_rows_are_rejected_with_exact_reasons() {
        let mut input = b"timestamp,user,ip\n\
            2024-03-01T10:00:00Z,alice\n\
            yesterday,bob,192.0.2.9\n\
            ,carol,192.0.2.9\n\
            2024-03-01T10:00:00Z,dave,192.0.2.9,extra\n"
            .to_vec();
        input.extend_from_slice(
            b"2024-03-01T10:00:00Z,\xffve,192.0.2.9\n2024-03-01T10:00:00Z,ok,192.0.2.9\n",
        );
        let out = decode_with(&input, input.len());
        let reasons: Vec<_> = out
            .rejects
            .iter()
            .map(|r| (r.line, r.reason.to_string()))
            .collect();
        assert_eq!(
            reasons,
            [
                (2, "expected 3 fields, found 2".to_string()),
                (3, "timestamp: not recognised: \"yesterday\"".to_string()),
                (4, "timestamp: not recognised: \"\"".to_string()),
                (5, "expected 3 fields, found 4".to_string()),
                (6, "user: invalid UTF-8".to_string()),
            ]
        );
        assert_eq!(
            out.counts,
            RowCounts {
                rows_read: 6,
                rows_ok: 1,
                rows_rejected: 5
            }
        );
        assert_eq!(out.rejects[1].raw, "yesterday,bob,192.0.2.0/24");
    }

    /// Decode `input` whole and in every small chunking; all must agree. Returns one decode.
    fn decode_all_ways(input: &[u8], options: AuditOptions) -> Out {
        let mut outs = Vec::new();
        for chunk in [input.len().max(1), 1, 2, 3, 7, 64] {
            let mut d = AuditDecoder::new(options.clone());
            let out = decode_chunked(input, chunk, &mut d).unwrap();
            let batches: Vec<_> = out.iter().map(|o| o.batch.clone()).collect();
            outs.push(Out {
                batch: concat_batches(&d.schema(), &batches).unwrap(),
                rejects: out.into_iter().flat_map(|o| o.rejects).collect(),
                counts: d.counts(),
                columns: d.columns().unwrap_or_default().to_vec(),
            });
        }
        let first = outs.remove(0);
        for (i, o) in outs.iter().enumerate() {
            assert_eq!(o.batch, first.batch, "chunking {i}");
            assert_eq!(o.rejects, first.rejects, "chunking {i}");
            assert_eq!(o.counts, first.counts, "chunking {i}");
        }
        first
    }

    fn reject_lines(out: &Out) -> Vec<(u64, String)> {
        out.rejects
            .iter()
            .map(|r| (r.line, r.reason.to_string()))
            .collect()
    }

    #[test]
    fn an_unterminated_quote_rejects_its_line_and_every_later_row_loads() {
        // Line 3 opens a quote that never closes; the lines after it have no quotes, so
        // without a limit they would all become one field (and, in the last column, one row).
        let mut input = String::from("timestamp,user,note\n2024-03-01T10:00:00Z,alice,ok\n");
        input.push_str("2024-03-01T10:00:01Z,bob,\"never closed 192.0.2.9\n");
        for i in 0..40 {
            input.push_str(&format!(
                "2024-03-01T10:01:{i:02}Z,user{i},198.51.100.{i}\n"
            ));
        }
        let small = AuditOptions {
            max_record: 256,
            batch_size: 8,
            ..Default::default()
        };
        let out = decode_all_ways(input.as_bytes(), small);
        assert_eq!(
            reject_lines(&out),
            [(
                3,
                "unbalanced quote: the record runs past 256 bytes (a quote that never closes?)"
                    .to_string()
            )]
        );
        assert_eq!(
            out.rejects[0].raw,
            "2024-03-01T10:00:01Z,bob,\"never closed 192.0.2.0/24"
        );
        assert_eq!(
            out.counts,
            RowCounts {
                rows_read: 42,
                rows_ok: 41,
                rows_rejected: 1
            }
        );
        let lines = row_nums(&out.batch);
        assert_eq!(lines[0], 2);
        assert_eq!(lines[1..], (4..44).collect::<Vec<i64>>());
        assert_eq!(col(&out.batch, "note")[40], Some("198.51.100.39".into()));
        // The same file with the default limit: the quote reaches the end of the input.
        let out = decode_all_ways(input.as_bytes(), AuditOptions::default());
        assert_eq!(
            reject_lines(&out),
            [(
                3,
                "unbalanced quote: the input ends inside a quoted field".to_string()
            )]
        );
        assert_eq!(out.counts.rows_ok, 41);
    }

    #[test]
    fn a_quote_closed_lines_later_gives_back_the_lines_between() {
        // Line 3's quote is closed by line 5's: one record of the wrong shape over three lines.
        let input = "timestamp,user,note\r\n\
            2024-03-01T10:00:00Z,alice,ok\r\n\
            2024-03-01T10:00:01Z,bob,\"open\r\n\
            2024-03-01T10:00:02Z,carol,x\r\n\
            2024-03-01T10:00:03Z,dave,\"q\",extra\r\n\
            2024-03-01T10:00:04Z,erin,\"two\r\nlines\"\r\n";
        let out = decode_all_ways(input.as_bytes(), AuditOptions::default());
        assert_eq!(
            reject_lines(&out),
            [
                (3, "unbalanced quote: a quoted field runs over 3 lines, leaving 4 fields where 3 are expected".to_string()),
                (5, "expected 3 fields, found 4".to_string()),
            ]
        );
        assert_eq!(row_nums(&out.batch), [2, 4, 6]);
        assert_eq!(
            col(&out.batch, "note"),
            [
                Some("ok".into()),
                Some("x".into()),
                Some("two\r\nlines".into())
            ]
        );
        // Two quotes left open on lines 3 and 4 close each other: a record of the right shape
        // whose second line is a row of its own. Each line is a row; the two are rejected.
        let input = "timestamp,user,note\n\
            2024-03-01T10:00:01Z,bob,\"open 192.0.2.1\n\
            2024-03-01T10:00:02Z,carol,\"open 192.0.2.2\n\
            2024-03-01T10:00:03Z,dave,fine\n\
            2024-03-01T10:00:04Z,erin,\"a real\nmulti-line note\"\n";
        let out = decode_all_ways(input.as_bytes(), AuditOptions::default());
        assert_eq!(
            reject_lines(&out),
            [
                (2, "unbalanced quote: a quoted field runs over 2 lines, and its line 2 reads as a row of its own".to_string()),
                (3, "unbalanced quote: a quoted field runs over 3 lines, and its line 2 reads as a row of its own".to_string()),
            ]
        );
        assert_eq!(row_nums(&out.batch), [4, 5]);
    }

    #[test]
    fn a_last_line_ending_inside_quotes_is_rejected_alone() {
        let input = "timestamp,user\n2024-03-01T10:00:00Z,alice\n2024-03-01T10:00:01Z,\"bob";
        let out = decode_all_ways(input.as_bytes(), AuditOptions::default());
        assert_eq!(
            reject_lines(&out),
            [(
                3,
                "unbalanced quote: the input ends inside a quoted field".to_string()
            )]
        );
        assert_eq!(out.counts.rows_ok, 1);
        // A quote inside an unquoted field is literal, and a closed quote at the end is fine.
        let input = "timestamp,user\n2024-03-01T10:00:00Z,5\" tall\n2024-03-01T10:00:01Z,\"bob\"";
        let out = decode_all_ways(input.as_bytes(), AuditOptions::default());
        assert!(out.rejects.is_empty(), "{:?}", out.rejects);
        assert_eq!(
            col(&out.batch, "user"),
            [Some("5\" tall".into()), Some("bob".into())]
        );
    }

    #[test]
    fn an_over_long_single_line_is_skipped_to_its_end() {
        let long = "y".repeat(600);
        let input =
            format!("timestamp,user\n2024-03-01T10:00:00Z,\"{long}\n2024-03-01T10:00:01Z,bob\n");
        let small = AuditOptions {
            max_record: 256,
            ..Default::default()
        };
        let out = decode_all_ways(input.as_bytes(), small);
        assert_eq!(out.rejects.len(), 1);
        assert_eq!(out.rejects[0].line, 2);
        assert_eq!(row_nums(&out.batch), [3]);
    }

    #[test]
    fn a_data_row_for_a_header_fails_without_echoing_it() {
        for first in [
            "2024-03-01T10:00:00Z,alice,192.0.2.77\n",
            "alice,login,192.0.2.77\n",
            "x,2001:db8::77,y\n",
        ] {
            let mut d = AuditDecoder::default();
            let err = decode_chunked(first.as_bytes(), 100, &mut d).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("no header row: the first line looks like data"),
                "{text}"
            );
            assert!(!text.contains("77") && !text.contains("alice"), "{text}");
        }
        // Names that merely mention addresses are still scrubbed in the missing-column error.
        let mut d = AuditDecoder::default();
        let err = decode_chunked(b"user,seen from 192.0.2.77\n", 100, &mut d).unwrap_err();
        assert!(!err.to_string().contains("192.0.2.77"), "{err}");
    }

    #[test]
    fn header_without_timestamp_is_not_an_audit_file() {
        let mut d = AuditDecoder::default();
        let err = decode_chunked(b"time,user\n1,2\n", 100, &mut d).unwrap_err();
        assert!(err.to_string().contains("no `timestamp` column"), "{err}");
    }

    #[test]
    fn empty_file_has_no_rows() {
        let mut d = AuditDecoder::default();
        assert!(decode_chunked(b"", 100, &mut d).unwrap().is_empty());
        let mut d = AuditDecoder::default();
        assert!(decode_chunked(b"timestamp,user\n", 100, &mut d)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn duplicate_and_empty_header_names_are_made_unique() {
        let out = decode("timestamp,user,User,\n2024-03-01T10:00:00Z,a,b,c\n");
        assert_eq!(out.columns, ["user", "user_2", "column_4"]);
    }

    #[test]
    fn read_columns_stops_after_the_header() {
        let data = b"\xef\xbb\xbftimestamp,User,customer,zone\r\n2024-03-01T10:00:00Z,a,b,c\r\n";
        let cols = read_columns(&data[..], |source| FileError::Io { source }).unwrap();
        assert_eq!(cols, ["user", "zone"]);
        assert!(read_columns(&b""[..], |source| FileError::Io { source })
            .unwrap()
            .is_empty());
    }

    #[test]
    fn header_union_keeps_first_seen_order() {
        let mut u = HeaderUnion::default();
        assert_eq!(
            u.add(&["user".to_string(), "action".to_string()]),
            ["user", "action"]
        );
        assert_eq!(u.add(&["zone".to_string(), "user".to_string()]), ["zone"]);
        assert_eq!(u.columns(), ["user", "action", "zone"]);
        assert_eq!(
            crate::schema::names(&u.parsed_schema()),
            ["ts", "row_num", "customer", "user", "action", "zone"]
        );
    }

    #[test]
    fn bytes_of_one_character_split_by_a_delimiter_are_invalid_utf8() {
        // `\xC3` and `\xA9` are "é" only once the comma between them is gone.
        let input = b"timestamp,user,action\n2024-03-01T00:00:00Z,a\xC3,\xA9b\n2024-03-01T00:00:01Z,ok,fine\n";
        let mut d = AuditDecoder::default();
        let mut at = 0;
        while at < input.len() {
            at += d.decode(&input[at..]).unwrap();
        }
        d.finish().unwrap();
        let out = d.flush().unwrap().unwrap();
        assert_eq!(out.batch.num_rows(), 1);
        assert_eq!(out.rejects.len(), 1);
        assert_eq!(
            out.rejects[0].reason,
            RejectReason::InvalidUtf8 {
                column: "user".into()
            }
        );
    }
}
