//! CloudFront standard access logs (W3C extended format, tab separated).
//!
//! The layout of each row comes from the last `#Fields:` directive before it, so 19-, 23-, 24-,
//! 26- and 33-field files load into the one table layout: fields the file lacks are null,
//! fields the table does not know go to the trailing `extra` column as a JSON object, `-` is
//! null. Directive lines may use spaces or tabs; rows may end in CRLF or a stray trailing tab;
//! the last line needs no newline.

use std::cell::RefCell;
use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use memchr::memchr;

use super::column::{
    initial_rows, ColumnBuilder, Kind, PrefixBuilders, StrBuilder, MAX_BATCH_BYTES,
};
use super::gather::{Pending, GATHER_BYTES};
use super::split::find_all;
use super::timestamp::{parse_date, parse_time, MICROS_PER_DAY};
use super::{
    reject_text, Decoded, Decoder, Reject, RejectReason, RowCounts, DEFAULT_BATCH_SIZE, UTF8_BOM,
};
use crate::error::FileError;
use crate::schema::{column_name, parsed_prefix, EXTRA};
use crate::transform::mask::scrub_text;

/// The standard fields in AWS order (after `date` and `time`, which fold into `ts`), with the
/// type each is stored as.
pub const STANDARD_FIELDS: [(&str, Kind); 31] = [
    ("x-edge-location", Kind::Str),
    ("sc-bytes", Kind::I64),
    ("c-ip", Kind::Str),
    ("cs-method", Kind::Str),
    ("cs(Host)", Kind::Str),
    ("cs-uri-stem", Kind::Str),
    ("sc-status", Kind::I32),
    ("cs(Referer)", Kind::Str),
    ("cs(User-Agent)", Kind::Str),
    ("cs-uri-query", Kind::Str),
    ("cs(Cookie)", Kind::Str),
    ("x-edge-result-type", Kind::Str),
    ("x-edge-request-id", Kind::Str),
    ("x-host-header", Kind::Str),
    ("cs-protocol", Kind::Str),
    ("cs-bytes", Kind::I64),
    ("time-taken", Kind::F64),
    ("x-forwarded-for", Kind::Str),
    ("ssl-protocol", Kind::Str),
    ("ssl-cipher", Kind::Str),
    ("x-edge-response-result-type", Kind::Str),
    ("cs-protocol-version", Kind::Str),
    ("fle-status", Kind::Str),
    ("fle-encrypted-fields", Kind::Str),
    ("c-port", Kind::I32),
    ("time-to-first-byte", Kind::F64),
    ("x-edge-detailed-result-type", Kind::Str),
    ("sc-content-type", Kind::Str),
    ("sc-content-len", Kind::I64),
    ("sc-range-start", Kind::I64),
    ("sc-range-end", Kind::I64),
];

const N_COLS: usize = STANDARD_FIELDS.len();

/// The columns masked in every CloudFront table.
pub const MASKED_COLUMNS: [&str; 2] = ["c_ip", "x_forwarded_for"];

/// Column names of the standard fields, in order.
static COLUMN_NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
    STANDARD_FIELDS
        .iter()
        .map(|(w3c, _)| column_name(w3c))
        .collect()
});

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields: Vec<Field> = parsed_prefix().into();
    for ((_, kind), name) in STANDARD_FIELDS.iter().zip(COLUMN_NAMES.iter()) {
        fields.push(Field::new(name, kind.data_type(), true));
    }
    fields.push(Field::new(EXTRA, DataType::Utf8, true));
    Arc::new(Schema::new(fields))
});

/// The schema of the batches the CloudFront decoder emits.
pub fn parsed_schema() -> SchemaRef {
    SCHEMA.clone()
}

/// Where one position of a `#Fields` layout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Date,
    Time,
    Column(usize),
    Extra(usize),
}

#[derive(Debug)]
struct Layout {
    /// The field names as the directive gives them.
    names: Vec<String>,
    slots: Vec<Slot>,
    extra_names: Vec<String>,
    /// Standard columns the layout lacks: null in each of its rows.
    missing: Vec<usize>,
    /// Where `date` and `time` are (the last of each, when named twice).
    date: usize,
    time: usize,
    /// String columns as (position, column): copied a column at a time (see [`Pending`]).
    strs: Vec<(usize, usize)>,
    /// Number columns as (position, column): parsed as each row is read, since a field that
    /// is no number rejects its row.
    nums: Vec<(usize, usize)>,
    /// Whether any field goes to `extra`.
    has_extra: bool,
}

thread_local! {
    /// The last `#Fields` directive this thread parsed and its layout. A decoder lives for one
    /// input, and a run's inputs mostly share one directive: parsing it again for each small
    /// file was 1% of a small-files run.
    static LAST_LAYOUT: RefCell<Option<(Vec<u8>, Arc<Layout>)>> = const { RefCell::new(None) };
}

impl Layout {
    /// The layout of a `#Fields` directive (the text after `#Fields:`).
    fn of(directive: &[u8]) -> Result<Arc<Layout>, FileError> {
        LAST_LAYOUT.with_borrow_mut(|last| {
            if let Some((text, layout)) = last {
                if text.as_slice() == directive {
                    return Ok(layout.clone());
                }
            }
            let layout = Arc::new(Layout::parse(directive)?);
            *last = Some((directive.to_vec(), layout.clone()));
            Ok(layout)
        })
    }

    fn parse(directive: &[u8]) -> Result<Layout, FileError> {
        let text = String::from_utf8_lossy(directive);
        let names: Vec<String> = text.split_ascii_whitespace().map(str::to_owned).collect();
        let mut slots = Vec::with_capacity(names.len());
        let mut extra_names = Vec::new();
        let mut used = [false; N_COLS];
        for name in &names {
            let col = column_name(name);
            let slot = match col.as_str() {
                "date" => Slot::Date,
                "time" => Slot::Time,
                _ => match COLUMN_NAMES.iter().position(|c| *c == col) {
                    Some(i) if !used[i] => {
                        used[i] = true;
                        Slot::Column(i)
                    }
                    _ => {
                        // `extra`'s keys are column names too (`c-country` and v2 Parquet's
                        // `c_country` are one key); a second field of one name keeps its own.
                        let key = if extra_names.contains(&col) {
                            name.clone()
                        } else {
                            col
                        };
                        extra_names.push(key);
                        Slot::Extra(extra_names.len() - 1)
                    }
                },
            };
            slots.push(slot);
        }
        let (Some(date), Some(time)) = (
            slots.iter().rposition(|s| *s == Slot::Date),
            slots.iter().rposition(|s| *s == Slot::Time),
        ) else {
            return Err(FileError::NotFormat {
                format: "a CloudFront log",
                reason: "#Fields directive has no date and time fields".into(),
            });
        };
        let missing = (0..N_COLS).filter(|&i| !used[i]).collect();
        let columns = slots
            .iter()
            .enumerate()
            .filter_map(|(position, slot)| match slot {
                Slot::Column(i) => Some((position, *i)),
                _ => None,
            });
        let (strs, nums) = columns.partition(|&(_, i)| STANDARD_FIELDS[i].1 == Kind::Str);
        let has_extra = slots.iter().any(|s| matches!(s, Slot::Extra(_)));
        Ok(Layout {
            names,
            slots,
            extra_names,
            missing,
            date,
            time,
            strs,
            nums,
            has_extra,
        })
    }
}

/// Options of the CloudFront decoder.
#[derive(Debug, Clone)]
pub struct CloudFrontOptions {
    /// Rows per batch.
    pub batch_size: usize,
    /// Longest line accepted, in bytes; longer lines are rejected.
    pub max_line: usize,
    /// A batch ends once its lines hold this many bytes, whatever its row count, so no string
    /// column of a batch comes near Arrow's 2 GiB offset limit (at most [`MAX_BATCH_BYTES`]).
    pub max_batch_bytes: usize,
}

impl Default for CloudFrontOptions {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            max_line: 1 << 20,
            max_batch_bytes: 256 << 20,
        }
    }
}

/// Push decoder for CloudFront standard logs. See the module docs for what it accepts.
#[derive(Debug)]
pub struct CloudFrontDecoder {
    options: CloudFrontOptions,
    layout: Option<Arc<Layout>>,
    layouts_seen: Vec<Arc<Layout>>,
    prefix: PrefixBuilders,
    columns: Vec<ColumnBuilder>,
    extra: StrBuilder,
    /// Bytes of a line that started in an earlier chunk.
    partial: Vec<u8>,
    /// Inside a line that is already rejected as too long; bytes are dropped up to its newline.
    skipping: bool,
    /// The input has ended (`finish`): no row follows the next flush.
    ended: bool,
    /// Lines completed so far (the next line is `line + 1`).
    line: u64,
    seen_content: bool,
    /// Where each field of the line being decoded ends: its tabs, then the line's end.
    ends: Vec<usize>,
    /// Accepted rows whose string fields are not yet in their columns (all of the current
    /// layout: they are gathered before it changes, when they fill [`GATHER_BYTES`], and
    /// before a batch is taken).
    pending: Pending,
    /// The last `date` field parsed and its day number (none yet): a file's rows share a
    /// few dates.
    last_date: (Vec<u8>, Option<i64>),
    rejects: Vec<Reject>,
    counts: RowCounts,
}

impl CloudFrontDecoder {
    /// A decoder with `options`.
    pub fn new(options: CloudFrontOptions) -> Self {
        let rows = options.batch_size.max(1);
        Self {
            layout: None,
            layouts_seen: Vec::new(),
            prefix: PrefixBuilders::new(initial_rows(rows)),
            columns: STANDARD_FIELDS
                .iter()
                .map(|(_, k)| ColumnBuilder::new(*k, initial_rows(rows)))
                .collect(),
            extra: StrBuilder::with_capacity(initial_rows(rows), 0),
            partial: Vec::new(),
            skipping: false,
            ended: false,
            line: 0,
            seen_content: false,
            ends: Vec::with_capacity(40),
            pending: Pending::default(),
            last_date: (Vec::new(), None),
            rejects: Vec::new(),
            counts: RowCounts::default(),
            options: CloudFrontOptions {
                batch_size: rows,
                max_line: options.max_line.max(256),
                max_batch_bytes: options.max_batch_bytes.clamp(1, MAX_BATCH_BYTES),
            },
        }
    }

    /// Every distinct `#Fields` layout seen so far, as the names the file gave.
    pub fn layouts(&self) -> Vec<Vec<String>> {
        self.layouts_seen.iter().map(|l| l.names.clone()).collect()
    }

    fn reject(&mut self, line: u64, reason: RejectReason, raw: &[u8]) {
        self.counts.rows_rejected += 1;
        self.rejects.push(Reject {
            line,
            reason,
            raw: reject_text(raw),
        });
    }

    /// Decode one complete line (without its `\n`).
    fn line(&mut self, mut line: &[u8]) -> Result<(), FileError> {
        self.line += 1;
        let line_no = self.line;
        if line_no == 1 {
            line = line.strip_prefix(UTF8_BOM).unwrap_or(line);
        }
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if line.trim_ascii().is_empty() {
            return Ok(());
        }
        if !self.seen_content {
            self.seen_content = true;
            if line[0] != b'#' {
                return Err(FileError::NotFormat {
                    format: "a CloudFront log",
                    reason: "the first line is not a #Version or #Fields directive".into(),
                });
            }
        }
        if line[0] == b'#' {
            if let Some(names) = line.strip_prefix(b"#Fields:") {
                self.set_fields(names)?;
            }
            return Ok(());
        }
        self.record(line_no, line);
        Ok(())
    }

    /// Take `names` (W3C field names, or the column names of logging v2's JSON and Parquet
    /// outputs, separated by white space) as the layout of the rows that follow, as a
    /// `#Fields` directive does.
    pub(crate) fn set_fields(&mut self, names: &[u8]) -> Result<(), FileError> {
        self.seen_content = true;
        let layout = Layout::of(names)?;
        if self
            .layout
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, &layout))
        {
            return Ok(());
        }
        self.gather_pending();
        if !self.layouts_seen.iter().any(|l| l.names == layout.names) {
            self.layouts_seen.push(layout.clone());
        }
        self.layout = Some(layout);
        Ok(())
    }

    /// Decode the data row `line` (its fields separated by tabs, in the current layout's
    /// order), numbered `line_no`: a row, or a reject.
    pub(crate) fn record(&mut self, line_no: u64, line: &[u8]) {
        self.counts.rows_read += 1;
        if line.len() > self.options.max_line {
            let limit = self.options.max_line;
            self.reject(line_no, RejectReason::TooLong { limit }, &line[..256]);
            return;
        }
        let Some(layout) = self.layout.take() else {
            self.reject(line_no, RejectReason::NoFieldsDirective, line);
            return;
        };
        let result = self.row(line_no, line, &layout);
        self.layout = Some(layout);
        if let Err(reason) = result {
            self.reject(line_no, reason, line);
        }
    }

    /// Count a record that never became a row (a v2 JSON line that is no JSON object): a
    /// reject with `reason`.
    pub(crate) fn reject_record(&mut self, line_no: u64, reason: RejectReason, raw: &[u8]) {
        self.counts.rows_read += 1;
        self.reject(line_no, reason, raw);
    }

    /// Decode one data row under `layout`, or say why it is rejected. A rejected row leaves
    /// nothing in the batch.
    fn row(&mut self, line_no: u64, line: &[u8], layout: &Layout) -> Result<(), RejectReason> {
        let ascii = self.split_fields(line, layout.slots.len())?;
        // An ASCII line (seen while its tabs were found) is UTF-8; any other is checked here,
        // once, and its fields are byte ranges between tabs, so on character boundaries.
        if !ascii {
            if let Err(e) = std::str::from_utf8(line) {
                let bad = self
                    .ends
                    .iter()
                    .position(|&end| end > e.valid_up_to())
                    .unwrap_or(0);
                return Err(RejectReason::InvalidUtf8 {
                    column: self.slot_name(layout, bad),
                });
            }
        }
        let rows = self.prefix.len();
        match self.append_numbers(line, layout) {
            Ok(ts) => {
                self.prefix.append(ts, line_no, line.len());
                self.pending.push(line, &self.ends);
                if layout.has_extra {
                    self.append_extra(line, layout);
                } else {
                    self.extra.append_null();
                }
                self.counts.rows_ok += 1;
                if self.pending.bytes() >= GATHER_BYTES {
                    self.gather(layout);
                }
                Ok(())
            }
            Err(reason) => {
                // Only number columns are appended row by row.
                for &(_, i) in &layout.nums {
                    self.columns[i].truncate(rows);
                }
                Err(reason)
            }
        }
    }

    /// Field `position` of the line just split, as a byte range of it.
    #[inline]
    fn field(&self, position: usize) -> (usize, usize) {
        let start = match position {
            0 => 0,
            _ => self.ends[position - 1] + 1,
        };
        (start, self.ends[position])
    }

    /// Append the number fields of a split, UTF-8 checked row to their columns, and give its
    /// timestamp. On `Err` some number columns may hold the row already: the caller takes it
    /// back.
    #[inline]
    fn append_numbers(&mut self, line: &[u8], layout: &Layout) -> Result<i64, RejectReason> {
        for &(position, i) in &layout.nums {
            let (start, end) = self.field(position);
            let column = &mut self.columns[i];
            let value = &line[start..end];
            if value == b"-" {
                column.append_null();
            } else if !column.append_text(line, start, end) {
                return Err(RejectReason::BadNumber {
                    column: COLUMN_NAMES[i].clone(),
                    value: reject_text(value),
                });
            }
        }
        let (date, time) = (self.field(layout.date), self.field(layout.time));
        let (date, time) = (&line[date.0..date.1], &line[time.0..time.1]);
        self.timestamp(date, time).ok_or_else(|| {
            let mut value = date.to_vec();
            value.push(b' ');
            value.extend_from_slice(time);
            RejectReason::BadTimestamp {
                value: reject_text(&value),
            }
        })
    }

    /// [`CloudFrontDecoder::gather`] under the current layout, which every pending row has.
    fn gather_pending(&mut self) {
        if let Some(layout) = self.layout.take() {
            self.gather(&layout);
            self.layout = Some(layout);
        }
    }

    /// Copy the string fields of the pending rows (all of `layout`) into their columns, a
    /// column at a time, and fill the columns `layout` lacks with as many nulls.
    fn gather(&mut self, layout: &Layout) {
        let rows = self.pending.rows();
        if rows == 0 {
            return;
        }
        let text = self.pending.text();
        for &(position, i) in &layout.strs {
            let ColumnBuilder::Str(column) = &mut self.columns[i] else {
                unreachable!("a string column of the layout is built as strings");
            };
            column.append_fields(text, self.pending.column(position));
        }
        for &i in &layout.missing {
            self.columns[i].append_nulls(rows);
        }
        self.pending.clear();
    }

    /// A row's `date` and `time` as microseconds since the epoch, UTC.
    #[inline]
    fn timestamp(&mut self, date: &[u8], time: &[u8]) -> Option<i64> {
        let time = parse_time(time)?;
        let days = match &self.last_date {
            (last, Some(days)) if last.as_slice() == date => *days,
            _ => {
                let days = parse_date(date)?;
                self.last_date.0.clear();
                self.last_date.0.extend_from_slice(date);
                self.last_date.1 = Some(days);
                days
            }
        };
        Some(days * MICROS_PER_DAY + time)
    }

    /// The row's fields that the table does not know, as one JSON object in `extra`, every value
    /// scrubbed of addresses.
    fn append_extra(&mut self, line: &[u8], layout: &Layout) {
        let mut map = serde_json::Map::new();
        let mut start = 0;
        for (slot, &end) in layout.slots.iter().zip(&self.ends) {
            if let Slot::Extra(j) = *slot {
                // The line is UTF-8 (checked) and a field lies between tabs: nothing is lost.
                let v = String::from_utf8_lossy(&line[start..end]);
                let v = v.as_ref();
                // Unknown fields may hold addresses too (a layout naming `c-ip` twice puts
                // the second copy here): every value passes the address scrubber.
                let v = if v == "-" {
                    serde_json::Value::Null
                } else {
                    scrub_text(v).into()
                };
                map.insert(layout.extra_names[j].clone(), v);
            }
            start = end + 1;
        }
        self.extra
            .append_value(&serde_json::Value::Object(map).to_string());
    }

    /// Find the `expected` tab-separated fields of `line` in one pass (into `ends`), or say
    /// how many it has; true when the line is ASCII. A stray trailing tab (seen in AWS's own
    /// example) adds one empty field and is allowed.
    fn split_fields(&mut self, line: &[u8], expected: usize) -> Result<bool, RejectReason> {
        self.ends.clear();
        let ascii = find_all(line, b'\t', &mut self.ends);
        let tabs = self.ends.len();
        if tabs == expected && self.ends.last() == Some(&(line.len() - 1)) {
            // The stray trailing tab ends the last field.
            return Ok(ascii);
        }
        if tabs + 1 != expected {
            return Err(RejectReason::FieldCount {
                expected,
                found: tabs + 1,
            });
        }
        self.ends.push(line.len());
        Ok(ascii)
    }

    fn slot_name(&self, layout: &Layout, i: usize) -> String {
        match layout.slots.get(i) {
            Some(Slot::Date) => "date".into(),
            Some(Slot::Time) => "time".into(),
            Some(Slot::Column(c)) => COLUMN_NAMES[*c].clone(),
            Some(Slot::Extra(j)) => layout.extra_names[*j].clone(),
            None => format!("field {}", i + 1),
        }
    }

    /// Add `bytes` (no newline among them) to the pending partial line.
    fn push_partial(&mut self, bytes: &[u8]) {
        if self.skipping {
            return;
        }
        if self.partial.len() + bytes.len() > self.options.max_line {
            let keep = 256usize.saturating_sub(self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..keep]);
            let limit = self.options.max_line;
            let head = std::mem::take(&mut self.partial);
            self.counts.rows_read += 1;
            self.reject(self.line + 1, RejectReason::TooLong { limit }, &head[..256]);
            self.skipping = true;
            return;
        }
        self.partial.extend_from_slice(bytes);
    }

    /// The line that ends at a newline just seen: the partial line, or one already rejected.
    fn end_partial(&mut self, tail: &[u8]) -> Result<(), FileError> {
        if self.skipping {
            self.skipping = false;
            self.line += 1;
            return Ok(());
        }
        self.push_partial(tail);
        if self.skipping {
            self.skipping = false;
            self.line += 1;
            return Ok(());
        }
        let mut line = std::mem::take(&mut self.partial);
        let result = self.line(&line);
        line.clear();
        self.partial = line;
        result
    }
}

impl Default for CloudFrontDecoder {
    fn default() -> Self {
        Self::new(CloudFrontOptions::default())
    }
}

impl Decoder for CloudFrontDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, FileError> {
        let mut at = 0;
        while at < buf.len() && self.capacity() > 0 {
            let rest = &buf[at..];
            match memchr(b'\n', rest) {
                Some(nl) => {
                    if self.partial.is_empty() && !self.skipping {
                        self.line(&rest[..nl])?;
                    } else {
                        self.end_partial(&rest[..nl])?;
                    }
                    at += nl + 1;
                }
                None => {
                    self.push_partial(rest);
                    at = buf.len();
                }
            }
        }
        Ok(at)
    }

    fn finish(&mut self) -> Result<(), FileError> {
        self.ended = true;
        if self.skipping {
            self.skipping = false;
            self.line += 1;
        } else if !self.partial.is_empty() {
            self.end_partial(&[])?;
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.prefix
            .room(self.options.batch_size, self.options.max_batch_bytes)
    }

    fn flush(&mut self) -> Result<Option<Decoded>, FileError> {
        if self.prefix.is_empty() && self.rejects.is_empty() {
            return Ok(None);
        }
        self.gather_pending();
        let mut arrays = Vec::with_capacity(N_COLS + 3);
        let more = !self.ended;
        arrays.extend(self.prefix.finish(more));
        arrays.extend(self.columns.iter_mut().map(|c| c.finish(more)));
        arrays.push(Arc::new(self.extra.finish(more)));
        let batch = RecordBatch::try_new(self.schema(), arrays).map_err(|e| {
            // Builders are appended in lock step; a length mismatch is a bug, not bad input.
            FileError::NotFormat {
                format: "a CloudFront log",
                reason: format!("internal error building a batch: {e}"),
            }
        })?;
        Ok(Some(Decoded {
            batch,
            rejects: std::mem::take(&mut self.rejects),
        }))
    }

    fn schema(&self) -> SchemaRef {
        parsed_schema()
    }

    fn counts(&self) -> RowCounts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::decode_chunked;
    use arrow::array::{Array, AsArray};
    use arrow::compute::concat_batches;
    use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};

    const F19: &str = "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken";
    const EXTRA26: &str = " x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields";

    fn row19(ip: &str, bytes: &str) -> String {
        format!("2020-01-02\t03:04:05\tLAX1\t{bytes}\t{ip}\tGET\th.net\t/a\t200\t-\tUA\t-\t-\tHit\tid==\th.net\thttps\t23\t0.5")
    }

    struct Out {
        batch: RecordBatch,
        rejects: Vec<Reject>,
        counts: RowCounts,
    }

    fn decode(input: &str) -> Out {
        decode_bytes(input.as_bytes())
    }

    fn decode_bytes(input: &[u8]) -> Out {
        let mut d = CloudFrontDecoder::default();
        let out = decode_chunked(input, input.len().max(1), &mut d).unwrap();
        let batches: Vec<_> = out.iter().map(|o| o.batch.clone()).collect();
        Out {
            batch: concat_batches(&parsed_schema(), &batches).unwrap(),
            rejects: out.into_iter().flat_map(|o| o.rejects).collect(),
            counts: d.counts(),
        }
    }

    fn strs(b: &RecordBatch, col: &str) -> Vec<Option<String>> {
        b.column_by_name(col)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect()
    }

    #[test]
    fn nineteen_field_file_loads_with_later_fields_null() {
        let input = format!(
            "#Version: 1.0\n#Fields: {F19}\n{}\n",
            row19("192.0.2.1", "392")
        );
        let out = decode(&input);
        assert_eq!(out.batch.num_rows(), 1);
        assert_eq!(
            out.counts,
            RowCounts {
                rows_read: 1,
                rows_ok: 1,
                rows_rejected: 0
            }
        );
        let b = &out.batch;
        assert_eq!(
            b.column_by_name("sc_bytes")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(0),
            392
        );
        assert_eq!(
            b.column_by_name("sc_status")
                .unwrap()
                .as_primitive::<Int32Type>()
                .value(0),
            200
        );
        assert_eq!(
            b.column_by_name("time_taken")
                .unwrap()
                .as_primitive::<Float64Type>()
                .value(0),
            0.5
        );
        assert!(b.column_by_name("x_forwarded_for").unwrap().is_null(0));
        assert!(b.column_by_name("sc_range_end").unwrap().is_null(0));
        assert_eq!(
            b.column_by_name("ts")
                .unwrap()
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_577_934_245_000_000
        );
        assert_eq!(strs(b, "cs_referer"), [None]);
        assert_eq!(strs(b, EXTRA), [None]);
        assert_eq!(
            b.column_by_name("row_num")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(0),
            3
        );
    }

    #[test]
    fn twenty_six_field_file_and_repeated_directive_blocks() {
        let r26 = format!(
            "{}\t198.51.100.1, 203.0.113.9\tTLSv1.2\tECDHE\tHit\tHTTP/2.0\t-\t-",
            row19("192.0.2.1", "1")
        );
        let input = format!(
            "#Version: 1.0\n#Fields: {F19}{EXTRA26}\n{r26}\n#Version: 1.0\n#Fields: {F19}\n{}\n",
            row19("192.0.2.2", "2")
        );
        let out = decode(&input);
        assert_eq!(out.batch.num_rows(), 2, "{:?}", out.rejects);
        assert_eq!(
            strs(&out.batch, "x_forwarded_for"),
            [Some("198.51.100.1, 203.0.113.9".into()), None]
        );
        assert_eq!(
            strs(&out.batch, "cs_protocol_version"),
            [Some("HTTP/2.0".into()), None]
        );
        let rows = out
            .batch
            .column_by_name("row_num")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(rows.values().to_vec(), [3, 6]);
    }

    #[test]
    fn tab_separated_directives_crlf_trailing_tab_and_no_final_newline() {
        let fields = F19.replace(' ', "\t");
        let input = format!(
            "#Version:\t1.0\r\n#Fields:\t{fields}\r\n{}\t\r\n{}",
            row19("192.0.2.1", "1"),
            row19("192.0.2.2", "2")
        );
        let out = decode(&input);
        assert!(out.rejects.is_empty(), "{:?}", out.rejects);
        assert_eq!(out.batch.num_rows(), 2);
        assert_eq!(
            strs(&out.batch, "c_ip"),
            [Some("192.0.2.1".into()), Some("192.0.2.2".into())]
        );
    }

    #[test]
    fn dash_is_null_for_strings_and_numbers() {
        let line = row19("-", "-");
        let out = decode(&format!("#Fields: {F19}\n{line}\n"));
        assert!(out.batch.column_by_name("c_ip").unwrap().is_null(0));
        assert!(out.batch.column_by_name("sc_bytes").unwrap().is_null(0));
        assert!(out.batch.column_by_name("cs_uri_query").unwrap().is_null(0));
    }

    /// String fields are copied a column at a time: when the pending rows fill
    /// `GATHER_BYTES` (several times here), before a new layout, and at the batch's end. Every
    /// row must keep its own fields through all three, with rejected rows between them, and
    /// streamed 7 bytes at a time as well as whole.
    #[test]
    fn string_fields_gathered_mid_batch_stay_with_their_rows() {
        let layout26 = format!("#Fields: {F19}{EXTRA26}\n");
        let mut input = layout26.clone();
        let mut expected = Vec::new();
        let row = |i: usize, bytes: &str| {
            let referer = if i.is_multiple_of(3) {
                "-".to_owned()
            } else {
                format!("r{i}")
            };
            row19("192.0.2.1", bytes)
                .replace("\t/a\t", &format!("\t/p/{i}\t"))
                .replace(
                    "\t-\tUA\t",
                    &format!("\t{referer}\tUA{}\t", "u".repeat(i % 40)),
                )
        };
        for i in 0..3000 {
            // Every 97th row has a bad byte count and is rejected; layouts change at 1000
            // and 2000.
            if i == 1000 {
                input.push_str(&format!("#Fields: {F19}\n"));
            }
            let bytes = if i % 97 == 5 {
                "x".to_owned()
            } else {
                i.to_string()
            };
            let mut line = row(i, &bytes);
            if !(1000..2000).contains(&i) {
                line.push_str(&format!(
                    "\t10.0.0.{}\tTLSv1.3\tC{i}\tHit\tHTTP/2.0\t-\t-",
                    i % 250
                ));
            }
            if i == 2000 {
                input.push_str(&layout26);
            }
            input.push_str(&line);
            input.push('\n');
            if i % 97 != 5 {
                expected.push(i);
            }
        }
        assert!(
            input.len() > 3 * GATHER_BYTES,
            "the rows fill the pending buffer"
        );
        for chunk in [input.len(), 7] {
            let mut d = CloudFrontDecoder::default();
            let out = decode_chunked(input.as_bytes(), chunk, &mut d).unwrap();
            assert_eq!(out.len(), 1, "one batch");
            let b = &out[0].batch;
            assert_eq!(out[0].rejects.len(), 3000 - expected.len());
            assert_eq!(b.num_rows(), expected.len());
            let stems = strs(b, "cs_uri_stem");
            let referers = strs(b, "cs_referer");
            let agents = strs(b, "cs_user_agent");
            let forwarded = strs(b, "x_forwarded_for");
            let ciphers = strs(b, "ssl_cipher");
            let bytes = b.column_by_name("sc_bytes").unwrap();
            let bytes = bytes.as_primitive::<Int64Type>();
            for (row, &i) in expected.iter().enumerate() {
                assert_eq!(stems[row].as_deref(), Some(format!("/p/{i}").as_str()));
                let referer = (!i.is_multiple_of(3)).then(|| format!("r{i}"));
                assert_eq!(referers[row], referer, "row {i}");
                assert_eq!(agents[row], Some(format!("UA{}", "u".repeat(i % 40))));
                assert_eq!(bytes.value(row), i as i64);
                if (1000..2000).contains(&i) {
                    assert_eq!((&forwarded[row], &ciphers[row]), (&None, &None), "row {i}");
                } else {
                    assert_eq!(forwarded[row], Some(format!("10.0.0.{}", i % 250)));
                    assert_eq!(ciphers[row], Some(format!("C{i}")));
                }
            }
        }
    }

    #[test]
    fn unknown_fields_go_to_extra_as_json_under_their_column_names() {
        let input = format!(
            "#Fields: {F19} c-country x-new-thing C-Country\n{}\tDE\t-\tFR\n",
            row19("192.0.2.1", "1")
        );
        let out = decode(&input);
        // A second field of one column name keeps its own name.
        assert_eq!(
            strs(&out.batch, EXTRA),
            [Some(
                r#"{"C-Country":"FR","c_country":"DE","x_new_thing":null}"#.into()
            )]
        );
    }

    #[test]
    fn bad_rows_are_rejected_with_exact_reasons() {
        let good = row19("192.0.2.1", "1");
        let input = [
            "#Version: 1.0".to_string(),
            format!("#Fields: {F19}"),
            good.clone(),
            good.replace("\t392\t", "\t")
                .replace("\tLAX1\t1\t", "\tLAX1\t"), // 18 fields
            row19("192.0.2.3", "12x"),
            good.replace("2020-01-02", "2020-13-02"),
            good.replace("\t200\t", "\t99999999999\t"),
            String::new(),
            good.clone(),
        ]
        .join("\n");
        // A last row with invalid UTF-8 in the user agent.
        let mut bytes = format!("{input}\n").into_bytes();
        bytes.extend(good.replace("\tUA\t", "\tU~A\t").bytes().map(|b| {
            if b == b'~' {
                0xff
            } else {
                b
            }
        }));
        let out = decode_bytes(&bytes);
        let reasons: Vec<_> = out
            .rejects
            .iter()
            .map(|r| (r.line, r.reason.to_string()))
            .collect();
        assert_eq!(
            reasons,
            [
                (4, "expected 19 fields, found 18".to_string()),
                (5, "sc_bytes: not a number: \"12x\"".to_string()),
                (
                    6,
                    "timestamp: not recognised: \"2020-13-02 03:04:05\"".to_string()
                ),
                (7, "sc_status: not a number: \"99999999999\"".to_string()),
                (10, "cs_user_agent: invalid UTF-8".to_string()),
            ]
        );
        // The rejected rows' fields read before the bad one were taken back out.
        assert_eq!(out.batch.num_rows(), 2);
        for column in ["x_edge_location", "c_ip", "cs_uri_stem", "cs_user_agent"] {
            let values = strs(&out.batch, column);
            assert_eq!(values[0], values[1], "{column}");
        }
        assert_eq!(strs(&out.batch, "c_ip")[0].as_deref(), Some("192.0.2.1"));
        let status = out.batch.column_by_name("sc_status").unwrap();
        assert_eq!(status.as_primitive::<Int32Type>().values(), &[200, 200]);
        assert_eq!(
            out.counts,
            RowCounts {
                rows_read: 7,
                rows_ok: 2,
                rows_rejected: 5
            }
        );
        // Reject text is the row with its IP masked.
        assert!(
            out.rejects[1].raw.contains("\t192.0.2.0/24\t"),
            "{}",
            out.rejects[1].raw
        );
        assert!(!out.rejects.iter().any(|r| r.raw.contains("192.0.2.3")));
    }

    #[test]
    fn dates_are_checked_whether_or_not_they_repeat() {
        let good = row19("192.0.2.1", "1");
        let rows = [
            good.replace("2020-01-02", ""),
            good.clone(),
            good.replace("2020-01-02", "2020-02-30"),
            good.clone(),
            good.replace("2020-01-02", "2021-03-04"),
        ];
        let out = decode(&format!("#Fields: {F19}\n{}\n", rows.join("\n")));
        let lines: Vec<u64> = out.rejects.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4]);
        let ts = out.batch.column_by_name("ts").unwrap();
        let days: Vec<i64> = ts
            .as_primitive::<TimestampMicrosecondType>()
            .values()
            .iter()
            .map(|us| us / MICROS_PER_DAY)
            .collect();
        // 2020-01-02, 2020-01-02, 2021-03-04 as days since 1970-01-01.
        assert_eq!(days, [18263, 18263, 18690]);
    }

    #[test]
    fn data_before_any_directive_is_not_a_cloudfront_file() {
        let mut d = CloudFrontDecoder::default();
        let err = decode_chunked(row19("192.0.2.1", "1").as_bytes(), 1000, &mut d).unwrap_err();
        assert!(matches!(err, FileError::NotFormat { .. }), "{err}");
    }

    #[test]
    fn data_row_before_fields_line_is_rejected() {
        let out = decode(&format!("#Version: 1.0\n{}\n", row19("192.0.2.1", "1")));
        assert_eq!(out.rejects.len(), 1);
        assert_eq!(out.rejects[0].reason, RejectReason::NoFieldsDirective);
        assert_eq!(out.rejects[0].line, 2);
    }

    #[test]
    fn fields_line_without_date_and_time_fails_the_file() {
        let mut d = CloudFrontDecoder::default();
        let err =
            decode_chunked(b"#Fields: c-ip sc-bytes\n1.2.3.4\t5\n", 1000, &mut d).unwrap_err();
        assert!(err.to_string().contains("no date and time"), "{err}");
    }

    #[test]
    fn over_long_line_is_rejected_whatever_the_chunking() {
        let long = format!("{}{}", row19("192.0.2.1", "1"), "x".repeat(2000));
        let input = format!("#Fields: {F19}\n{long}\n{}\n", row19("192.0.2.2", "2"));
        for chunk in [1, 7, 100, input.len()] {
            let mut d = CloudFrontDecoder::new(CloudFrontOptions {
                batch_size: 10,
                max_line: 1000,
                ..Default::default()
            });
            let out = decode_chunked(input.as_bytes(), chunk, &mut d).unwrap();
            let rejects: Vec<_> = out.iter().flat_map(|o| o.rejects.clone()).collect();
            assert_eq!(rejects.len(), 1, "chunk {chunk}");
            assert_eq!(rejects[0].reason, RejectReason::TooLong { limit: 1000 });
            assert_eq!(rejects[0].line, 2);
            assert!(!rejects[0].raw.contains("192.0.2.1"));
            assert_eq!(
                d.counts(),
                RowCounts {
                    rows_read: 2,
                    rows_ok: 1,
                    rows_rejected: 1
                }
            );
        }
    }

    #[test]
    fn batches_are_cut_at_batch_size() {
        let rows: Vec<String> = (0..5).map(|i| row19("192.0.2.1", &i.to_string())).collect();
        let input = format!("#Fields: {F19}\n{}\n", rows.join("\n"));
        let mut d = CloudFrontDecoder::new(CloudFrontOptions {
            batch_size: 2,
            ..Default::default()
        });
        let out = decode_chunked(input.as_bytes(), input.len(), &mut d).unwrap();
        let sizes: Vec<_> = out.iter().map(|o| o.batch.num_rows()).collect();
        assert_eq!(sizes, [2, 2, 1]);
    }

    #[test]
    fn batches_are_cut_at_their_byte_bound() {
        let rows: Vec<String> = (0..7).map(|i| row19("192.0.2.1", &i.to_string())).collect();
        let input = format!("#Fields: {F19}\n{}\n", rows.join("\n"));
        let mut d = CloudFrontDecoder::new(CloudFrontOptions {
            // Two lines reach it; the third starts a new batch.
            max_batch_bytes: rows[0].len() + 1,
            ..Default::default()
        });
        let out = decode_chunked(input.as_bytes(), 50, &mut d).unwrap();
        let sizes: Vec<_> = out.iter().map(|o| o.batch.num_rows()).collect();
        assert_eq!(sizes, [2, 2, 2, 1]);
        let bytes: Vec<i64> = out
            .iter()
            .flat_map(|o| {
                o.batch
                    .column_by_name("sc_bytes")
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(bytes, (0..7).collect::<Vec<i64>>());
    }
}
