//! Typed column builders shared by the decoders. A row is first parsed into [`Cell`]s (so a bad
//! field rejects the whole row before anything is appended), then appended column by column.

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    Array, ArrayBuilder, ArrayRef, Float64Builder, Int32Builder, Int64Builder, StringArray,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::DataType;

use crate::schema::UTC;

/// Rows a decoder's builders have room for at first: enough for a small file without growing,
/// small enough that thousands of small files do not each allocate a full batch. After each
/// batch the builders keep room for one like it (see [`ColumnBuilder::finish`]).
pub fn initial_rows(batch_size: usize) -> usize {
    batch_size.clamp(1, 1024)
}

/// The value types a decoded column can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 string.
    Str,
    /// 64-bit signed integer.
    I64,
    /// 32-bit signed integer.
    I32,
    /// 64-bit float.
    F64,
}

impl Kind {
    /// The Arrow type of the column.
    pub fn data_type(self) -> DataType {
        match self {
            Kind::Str => DataType::Utf8,
            Kind::I64 => DataType::Int64,
            Kind::I32 => DataType::Int32,
            Kind::F64 => DataType::Float64,
        }
    }
}

/// One parsed field of the line being decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// No value.
    Null,
    /// A string: the byte range `start..end` of the line (already checked to be UTF-8).
    Str {
        /// First byte.
        start: usize,
        /// One past the last byte.
        end: usize,
    },
    /// An integer (for both integer kinds; I32 range is checked when parsing).
    Int(i64),
    /// A float.
    Float(f64),
}

/// Parse bytes `start..end` of `line` as a value of `kind`; `None` when they are not one. Nulls
/// are the caller's call.
#[inline]
pub fn parse_cell(kind: Kind, line: &str, start: usize, end: usize) -> Option<Cell> {
    // Strings stay ranges; only numbers need the text.
    let text = || &line[start..end];
    match kind {
        Kind::Str => Some(Cell::Str { start, end }),
        Kind::I64 => text().parse::<i64>().ok().map(Cell::Int),
        Kind::I32 => text().parse::<i32>().ok().map(|v| Cell::Int(v.into())),
        Kind::F64 => plain_decimal(&line.as_bytes()[start..end])
            .or_else(|| text().parse::<f64>().ok().filter(|v| v.is_finite()))
            .map(Cell::Float),
    }
}

/// Exact powers of ten as `f64` (every one up to 10^22 is).
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The common float of a log (`0.001`, `12.5`, `-3`): an optional `-`, digits, at most one
/// `.`, at most 15 significant digits and 15 after the point. Its value is exactly what
/// `str::parse` gives: the digits as an integer are below 2^53 and the power of ten is exact,
/// so one IEEE division is correctly rounded (Clinger's fast path). `None` for anything else,
/// which the caller parses the general way.
fn plain_decimal(b: &[u8]) -> Option<f64> {
    let (negative, b) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    let mut mantissa = 0u64;
    let mut digits = 0;
    let mut significant = 0;
    let mut fraction: Option<usize> = None;
    for &c in b {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                digits += 1;
                if mantissa > 0 {
                    significant += 1;
                }
                if let Some(f) = fraction.as_mut() {
                    *f += 1;
                }
            }
            b'.' if fraction.is_none() => fraction = Some(0),
            _ => return None,
        }
        if significant > 15 {
            return None;
        }
    }
    let fraction = fraction.unwrap_or(0);
    if digits == 0 || fraction >= POW10.len() {
        return None;
    }
    let value = mantissa as f64 / POW10[fraction];
    Some(if negative { -value } else { value })
}

/// Bytes a short string is copied in at once (see [`StrBuilder`]).
const BLOCK: usize = 32;

/// Builds one string column from ranges of the lines being decoded.
///
/// Arrow's `StringBuilder` costs an out-of-line call per value and a `memcpy` call inside it;
/// together they were ~15% of a CloudFront run's profile, for values mostly under 32 bytes.
/// Here a value of at most [`BLOCK`] bytes whose line has [`BLOCK`] bytes from its start is
/// copied as one fixed-size block (a couple of vector moves, no call) and the surplus cut off
/// again; longer values, and those at a line's very end, are copied exactly.
#[derive(Debug)]
pub struct StrBuilder {
    values: Vec<u8>,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

impl StrBuilder {
    /// A builder with room for `rows` values and `bytes` bytes of them.
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            values: Vec::with_capacity(bytes + BLOCK),
            offsets,
            nulls: NullBufferBuilder::new(rows),
        }
    }

    /// Append bytes `start..end` of `line`. Panics, as slicing would, when the range is out of
    /// bounds. The range must fall on character boundaries (a decoder's fields lie between
    /// ASCII separators): that is checked once per column by [`StrBuilder::finish`], which
    /// panics otherwise, not per value.
    #[inline]
    pub fn append_range(&mut self, line: &str, start: usize, end: usize) {
        let bytes = line.as_bytes();
        let len = end
            .checked_sub(start)
            .expect("a string range ends before it starts");
        if len <= BLOCK && start + BLOCK <= bytes.len() {
            let at = self.values.len();
            self.values.extend_from_slice(&bytes[start..start + BLOCK]);
            self.values.truncate(at + len);
        } else {
            self.values.extend_from_slice(&bytes[start..end]);
        }
        self.push_offset();
        self.nulls.append_non_null();
    }

    /// Append a null.
    #[inline]
    pub fn append_null(&mut self) {
        self.push_offset();
        self.nulls.append_null();
    }

    #[inline]
    fn push_offset(&mut self) {
        // Arrow's builder panics the same way; a batch is a few thousand lines of bounded
        // length, far from 2 GiB.
        let end =
            i32::try_from(self.values.len()).expect("a string column over 2 GiB in one batch");
        self.offsets.push(end);
    }

    /// Take the values appended so far as an array, keeping room for as many (see
    /// [`ColumnBuilder::finish`]).
    pub fn finish(&mut self) -> StringArray {
        let rows = self.offsets.len() - 1;
        let bytes = self.values.len();
        let next = Self::with_capacity(rows + rows / 8, bytes + bytes / 8);
        let done = std::mem::replace(self, next);
        let mut nulls = done.nulls;
        let offsets = OffsetBuffer::new(ScalarBuffer::from(done.offsets));
        // Every value was appended from a `&str`; `try_new` checks, once for the column, that
        // the ranges fell on char boundaries (so the bytes are UTF-8 and every offset lies
        // between characters).
        StringArray::try_new(offsets, Buffer::from_vec(done.values), nulls.finish())
            .expect("string ranges must fall on char boundaries")
    }
}

/// An Arrow builder for one [`Kind`].
#[derive(Debug)]
pub enum ColumnBuilder {
    /// Strings.
    Str(StrBuilder),
    /// 64-bit integers.
    I64(Int64Builder),
    /// 32-bit integers.
    I32(Int32Builder),
    /// Floats.
    F64(Float64Builder),
}

impl ColumnBuilder {
    /// A builder for `kind` with room for `rows` rows (strings: 16 bytes each).
    pub fn new(kind: Kind, rows: usize) -> Self {
        Self::with_capacity(kind, rows, rows * 16)
    }

    /// A builder for `kind` with room for `rows` rows and `bytes` bytes of string data.
    fn with_capacity(kind: Kind, rows: usize, bytes: usize) -> Self {
        match kind {
            Kind::Str => Self::Str(StrBuilder::with_capacity(rows, bytes)),
            Kind::I64 => Self::I64(Int64Builder::with_capacity(rows)),
            Kind::I32 => Self::I32(Int32Builder::with_capacity(rows)),
            Kind::F64 => Self::F64(Float64Builder::with_capacity(rows)),
        }
    }

    /// Append one cell of `line`. The cell's variant matches the builder's kind by
    /// construction ([`parse_cell`]); a mismatch appends null.
    #[inline]
    pub fn append(&mut self, cell: Cell, line: &str) {
        match (self, cell) {
            (Self::Str(b), Cell::Str { start, end }) => b.append_range(line, start, end),
            (Self::I64(b), Cell::Int(v)) => b.append_value(v),
            (Self::I32(b), Cell::Int(v)) => b.append_value(v as i32),
            (Self::F64(b), Cell::Float(v)) => b.append_value(v),
            (b, _) => b.append_null(),
        }
    }

    /// Append a null.
    #[inline]
    pub fn append_null(&mut self) {
        match self {
            Self::Str(b) => b.append_null(),
            Self::I64(b) => b.append_null(),
            Self::I32(b) => b.append_null(),
            Self::F64(b) => b.append_null(),
        }
    }

    /// The kind this builder holds.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Str(_) => Kind::Str,
            Self::I64(_) => Kind::I64,
            Self::I32(_) => Kind::I32,
            Self::F64(_) => Kind::F64,
        }
    }

    /// Take the values appended so far as an array. The builder is left with room for as many
    /// rows and string bytes as the array has (plus an eighth), so the next batch of a file
    /// is appended without growing buffers: Arrow's builders hand over their buffers and would
    /// otherwise start again from nothing.
    pub fn finish(&mut self) -> ArrayRef {
        let array: ArrayRef = match self {
            Self::Str(b) => return Arc::new(b.finish()),
            Self::I64(b) => Arc::new(b.finish()),
            Self::I32(b) => Arc::new(b.finish()),
            Self::F64(b) => Arc::new(b.finish()),
        };
        let rows = array.len() + array.len() / 8;
        *self = Self::with_capacity(self.kind(), rows, 0);
        array
    }
}

/// The largest `max_batch_bytes` a decoder accepts. A batch's records then hold at most this
/// plus one record (16 MiB at most by default), and masking makes a value at most 3 times
/// longer (`::` can become `::/127`), so no string column of a batch, decoded or masked,
/// reaches Arrow's 2 GiB offset limit.
pub const MAX_BATCH_BYTES: usize = 512 << 20;

/// Builders for the two columns every decoder emits first.
#[derive(Debug)]
pub struct PrefixBuilders {
    ts: TimestampMicrosecondBuilder,
    row_num: Int64Builder,
    /// Bytes of the input records appended since the last finish.
    bytes: usize,
}

impl PrefixBuilders {
    /// Builders with room for `rows` rows.
    pub fn new(rows: usize) -> Self {
        Self {
            ts: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC),
            row_num: Int64Builder::with_capacity(rows),
            bytes: 0,
        }
    }

    /// Append one row's `ts` and `row_num`; `bytes` is the size of its input record.
    #[inline]
    pub fn append(&mut self, ts: i64, row_num: u64, bytes: usize) {
        self.ts.append_value(ts);
        self.row_num.append_value(row_num as i64);
        self.bytes += bytes;
    }

    /// Rows the pending batch has room for: up to `batch_size` rows, and none once its records
    /// hold `max_bytes` bytes. The byte bound keeps every string column of a batch far from
    /// Arrow's 2 GiB offset limit, whatever the row count.
    pub fn room(&self, batch_size: usize, max_bytes: usize) -> usize {
        if self.bytes >= max_bytes {
            return 0;
        }
        batch_size.saturating_sub(self.len())
    }

    /// Rows appended since the last finish.
    pub fn len(&self) -> usize {
        self.row_num.len()
    }

    /// True when no row is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take `ts` and `row_num` arrays, keeping room for as many rows (see
    /// [`ColumnBuilder::finish`]).
    pub fn finish(&mut self) -> [ArrayRef; 2] {
        let arrays: [ArrayRef; 2] = [Arc::new(self.ts.finish()), Arc::new(self.row_num.finish())];
        *self = Self::new(arrays[0].len() + arrays[0].len() / 8);
        arrays
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_parse_by_kind() {
        let cell = |kind, text: &str| parse_cell(kind, text, 0, text.len());
        assert_eq!(cell(Kind::I64, "392"), Some(Cell::Int(392)));
        assert_eq!(cell(Kind::I64, "3.5"), None);
        assert_eq!(cell(Kind::I32, "4294967296"), None);
        assert_eq!(cell(Kind::F64, "0.001"), Some(Cell::Float(0.001)));
        assert_eq!(cell(Kind::F64, "NaN"), None);
        assert_eq!(parse_cell(Kind::I64, "a\t12\tb", 2, 4), Some(Cell::Int(12)));
        assert_eq!(
            parse_cell(Kind::Str, "a\tbc", 2, 4),
            Some(Cell::Str { start: 2, end: 4 })
        );
    }

    /// Append `ranges` of `line` (None: a null) and compare with Arrow's own array of them.
    fn check(builder: &mut StrBuilder, line: &str, ranges: &[Option<(usize, usize)>]) {
        for r in ranges {
            match *r {
                Some((start, end)) => builder.append_range(line, start, end),
                None => builder.append_null(),
            }
        }
        let expected: StringArray = ranges
            .iter()
            .map(|r| r.map(|(start, end)| &line[start..end]))
            .collect();
        assert_eq!(builder.finish(), expected);
    }

    #[test]
    fn strings_of_every_length_near_the_line_end() {
        let line = "GET\t/p/7\t-\tMozilla/5.0%20(X11;%20Linux%20x86_64)\tt\u{e9}l\u{e9}phone\tz";
        let mut builder = StrBuilder::with_capacity(2, 4);
        let mut ranges = Vec::new();
        // Every range from every start: short ones inside the line, at its end, and long ones.
        for start in 0..line.len() {
            for end in start..=line.len() {
                if line.is_char_boundary(start) && line.is_char_boundary(end) {
                    ranges.push(Some((start, end)));
                }
            }
            ranges.push(None);
        }
        check(&mut builder, line, &ranges);
        // The next batch starts empty, with room kept.
        check(
            &mut builder,
            line,
            &[Some((0, 3)), None, Some((line.len(), line.len()))],
        );
        check(&mut builder, line, &[]);
    }

    /// A column of `ranges` of `line`, finished (where the ranges are checked).
    fn finished(line: &str, ranges: &[(usize, usize)]) -> StringArray {
        let mut builder = StrBuilder::with_capacity(1, 1);
        for &(start, end) in ranges {
            builder.append_range(line, start, end);
        }
        builder.finish()
    }

    #[test]
    #[should_panic(expected = "char boundar")]
    fn a_short_range_inside_a_character_panics() {
        // Byte 2 is inside the two-byte é, and the line is long enough for the block copy.
        finished(
            "t\u{e9}l\u{e9}phone and more text after it, and more",
            &[(2, 4)],
        );
    }

    #[test]
    #[should_panic(expected = "char boundar")]
    fn a_range_inside_a_character_at_the_line_end_panics() {
        finished("t\u{e9}l\u{e9}phone", &[(2, 4)]);
    }

    #[test]
    #[should_panic(expected = "char boundar")]
    fn a_range_ending_inside_a_character_panics() {
        // Two values split one character: the values buffer is valid UTF-8 ("中"), only the
        // offset between them is not at a boundary.
        finished("\u{4e2d}a\u{4e2d}", &[(0, 1), (1, 3)]);
    }

    #[test]
    fn plain_decimals_parse_as_the_standard_parser_does() {
        for text in [
            "0",
            "0.001",
            "12.5",
            "-3",
            "-0.0",
            "1.",
            ".5",
            "999999999999999",
            "0.000000000000001",
            "1234567.89012345",
            "4200000.0517",
            "32.85828107",
        ] {
            let fast = plain_decimal(text.as_bytes()).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(
                fast.to_bits(),
                text.parse::<f64>().unwrap().to_bits(),
                "{text}"
            );
        }
        // Left to the general parser: too many digits, exponents, signs, names, no digits.
        for text in [
            "1234567890123456",
            "1000000.000000000",
            "0.0000000000000001",
            "1e3",
            "+1",
            "inf",
            "NaN",
            ".",
            "-",
            "",
            "1.2.3",
            "1,5",
            "--1",
        ] {
            assert_eq!(plain_decimal(text.as_bytes()), None, "{text}");
        }
        assert_eq!(
            parse_cell(Kind::F64, "1e3", 0, 3),
            Some(Cell::Float(1000.0))
        );
    }

    proptest::proptest! {
        #[test]
        fn short_plain_decimals_take_the_fast_path(text in "-?[0-9]{0,7}(\\.[0-9]{0,7})?") {
            // At most 14 digits: parsed here exactly when the standard parser takes them.
            let fast = plain_decimal(text.as_bytes()).map(f64::to_bits);
            proptest::prop_assert_eq!(fast, text.parse::<f64>().ok().map(f64::to_bits));
        }

        #[test]
        fn long_plain_decimals_agree_or_fall_back(text in "-?[0-9]{0,20}(\\.[0-9]{0,20})?") {
            if let Some(fast) = plain_decimal(text.as_bytes()) {
                proptest::prop_assert_eq!(fast.to_bits(), text.parse::<f64>().unwrap().to_bits());
            }
        }

        #[test]
        fn any_ranges_give_arrows_array(
            line in "[a-z\u{e9}\u{4e2d}\t]{0,60}",
            picks in proptest::collection::vec((0usize..64, 0usize..64, proptest::bool::ANY), 0..40),
        ) {
            let bounds: Vec<usize> = (0..=line.len()).filter(|&i| line.is_char_boundary(i)).collect();
            let ranges: Vec<Option<(usize, usize)>> = picks
                .iter()
                .map(|&(a, b, null)| {
                    let (a, b) = (bounds[a % bounds.len()], bounds[b % bounds.len()]);
                    (!null).then_some((a.min(b), a.max(b)))
                })
                .collect();
            check(&mut StrBuilder::with_capacity(4, 8), &line, &ranges);
        }
    }
}
