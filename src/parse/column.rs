//! Typed column builders shared by the decoders. A decoder appends a row's fields column by
//! column as it reads them; a field that does not parse (a bad number) makes it take the row
//! back out of every column with [`ColumnBuilder::truncate`], so a rejected row leaves nothing
//! behind. Rejects are rare, so the good row pays for no second pass.

use std::sync::Arc;

use arrow::array::{ArrayRef, PrimitiveArray, StringArray};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};

use crate::schema::UTC;

/// Rows a decoder's builders have room for at first: enough for a small file without growing,
/// small enough that thousands of small files do not each allocate a full batch. After each
/// batch the builders keep room for one like it (see [`ColumnBuilder::finish`]).
pub fn initial_rows(batch_size: usize) -> usize {
    batch_size.clamp(1, 1024)
}

/// Room a builder keeps for the next batch after one of `len` rows or bytes: as many plus an
/// eighth when `more` follow, none at the input's end.
fn room(len: usize, more: bool) -> usize {
    if more {
        len + len / 8
    } else {
        0
    }
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

/// An integer of `text` (UTF-8): `str::parse`'s answer. Up to 18 digits with an optional `-`
/// (every log's integers) are read here without overflow checks, since they cannot overflow an
/// `i64`; anything else goes to `str::parse`.
#[inline]
pub fn parse_int(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 18 {
        return parse_str(text);
    }
    let mut value = 0i64;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return parse_str(text);
        }
        value = value * 10 + i64::from(d);
    }
    Some(if negative { -value } else { value })
}

/// `str::parse` of `text` (UTF-8): the general way, for what the fast paths do not take.
fn parse_str<T: std::str::FromStr>(text: &[u8]) -> Option<T> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A finite float of `text` (UTF-8; what `str::parse` gives, infinities and NaN are not
/// values).
#[inline]
pub fn parse_float(text: &[u8]) -> Option<f64> {
    plain_decimal(text).or_else(|| parse_str::<f64>(text).filter(|v| v.is_finite()))
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

/// Which values of a column are null. Until the first null it is only a count; from then on,
/// one byte per value (a store, cheaper than setting a bit), packed into Arrow's bitmap once
/// per batch.
#[derive(Debug, Default)]
struct Validity {
    len: usize,
    /// Empty while no value is null; otherwise one byte per value, 0 for a null.
    bytes: Vec<u8>,
}

impl Validity {
    #[inline]
    fn append_non_null(&mut self) {
        self.len += 1;
        if !self.bytes.is_empty() {
            self.bytes.push(1);
        }
    }

    /// Append a null to a column with room for `rows` values: the bytes start with that room
    /// at its first null (grown from nothing, a small file's columns reallocated them 3 or 4
    /// times each).
    #[inline]
    fn append_null(&mut self, rows: usize) {
        self.first_null(rows, 1);
        self.len += 1;
        self.bytes.push(0);
    }

    /// Before `n` nulls are appended to a column with room for `rows` values: at the first
    /// null, a byte for each value so far, with room for `rows`.
    #[inline]
    fn first_null(&mut self, rows: usize, n: usize) {
        if self.bytes.is_empty() {
            self.bytes.reserve(rows.max(self.len + n));
            self.bytes.resize(self.len, 1);
        }
    }

    /// Append `n` values that are not null.
    fn append_non_nulls(&mut self, n: usize) {
        self.len += n;
        if !self.bytes.is_empty() {
            self.bytes.resize(self.len, 1);
        }
    }

    /// Append `n` nulls to a column with room for `rows` values (as [`Validity::append_null`]).
    fn append_nulls(&mut self, n: usize, rows: usize) {
        if n == 0 {
            return;
        }
        self.first_null(rows, n);
        self.len += n;
        self.bytes.resize(self.len, 0);
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        self.bytes.truncate(self.len);
        if !self.bytes.contains(&0) {
            self.bytes.clear();
        }
    }

    fn finish(self) -> Option<NullBuffer> {
        (!self.bytes.is_empty()).then(|| {
            NullBuffer::new(BooleanBuffer::collect_bool(self.len, |i| {
                self.bytes[i] != 0
            }))
        })
    }
}

/// Bytes a short string is copied in at once (see [`StrBuilder`]).
const BLOCK: usize = 32;

/// Append `bytes[start..end]` to `out`. A range of at most `B` bytes with `B` bytes of `bytes`
/// from its start is copied as one block of `B` bytes (a couple of vector moves, no call) and
/// the surplus cut off again; longer ranges, and those near the end of `bytes`, are copied
/// exactly. Log fields and address pieces are short: a `memcpy` call each cost more than the
/// copy. Panics, as slicing would, when the range is out of bounds.
#[inline(always)]
pub fn extend_short<const B: usize>(out: &mut Vec<u8>, bytes: &[u8], start: usize, end: usize) {
    let len = end
        .checked_sub(start)
        .expect("a byte range ends before it starts");
    if len <= B && start + B <= bytes.len() {
        let at = out.len();
        out.extend_from_slice(&bytes[start..start + B]);
        out.truncate(at + len);
    } else {
        out.extend_from_slice(&bytes[start..end]);
    }
}

/// Whether the field `start..end` of `text` is `-`, a log's null.
#[inline(always)]
fn is_dash(text: &[u8], start: usize, end: usize) -> bool {
    end == start + 1 && text[start] == b'-'
}

/// Builds one string column from ranges of the lines being decoded.
///
/// Arrow's `StringBuilder` costs an out-of-line call per value and a `memcpy` call inside it;
/// together they were ~15% of a CloudFront run's profile, for values mostly under 32 bytes.
/// Here each value is copied from its line by [`extend_short`], in blocks of [`BLOCK`] bytes.
#[derive(Debug)]
pub struct StrBuilder {
    values: Vec<u8>,
    offsets: Vec<i32>,
    nulls: Validity,
}

impl StrBuilder {
    /// A builder with room for `rows` values and `bytes` bytes of them.
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            values: Vec::with_capacity(bytes + BLOCK),
            offsets,
            nulls: Validity::default(),
        }
    }

    /// Append bytes `start..end` of `line` (UTF-8). Panics, as slicing would, when the range is
    /// out of bounds. The line must be UTF-8 and the range fall on character boundaries (a
    /// decoder's fields lie between ASCII separators of a line it checked): that is checked
    /// once per column by [`StrBuilder::finish`], which panics otherwise, not per value.
    #[inline(always)]
    pub fn append_range(&mut self, line: &[u8], start: usize, end: usize) {
        extend_short::<BLOCK>(&mut self.values, line, start, end);
        self.push_offset();
        self.nulls.append_non_null();
    }

    /// Append a whole string.
    pub fn append_value(&mut self, value: &str) {
        self.append_range(value.as_bytes(), 0, value.len());
    }

    /// Append a null.
    #[inline]
    pub fn append_null(&mut self) {
        self.push_offset();
        self.nulls.append_null(self.offsets.capacity() - 1);
    }

    /// Append the fields `(start, end)` of `text` (UTF-8, each range on character
    /// boundaries, as for [`StrBuilder::append_range`]), in order, a field of `-` as null: a
    /// column's values copied in one loop ([`crate::parse::gather`]). Panics, as slicing
    /// would, when a range is out of bounds.
    ///
    /// The room the values take is reserved first, so the copying loop only writes: with the
    /// builder's lengths kept in registers it takes about a third of the instructions that
    /// [`StrBuilder::append_range`] does per value, whose vectors are checked for room and
    /// their lengths stored back through memory for every value.
    pub fn append_fields<I>(&mut self, text: &[u8], fields: I)
    where
        I: ExactSizeIterator<Item = (usize, usize)> + Clone,
    {
        let rows = fields.len();
        let mut bytes = 0;
        for (start, end) in fields.clone() {
            assert!(
                start <= end && end <= text.len(),
                "a field outside its text"
            );
            bytes += end - start;
        }
        let first = self.values.len();
        assert!(
            first + bytes <= i32::MAX as usize,
            "a string column over 2 GiB in one batch"
        );
        self.values.reserve(bytes + BLOCK);
        self.offsets.reserve(rows);
        let values = self.values.as_mut_ptr();
        let offsets = self.offsets.spare_capacity_mut();
        let mut len = first;
        let mut nulls = 0;
        for ((start, end), offset) in fields.clone().zip(offsets.iter_mut()) {
            let size = end - start;
            if is_dash(text, start, end) {
                nulls += 1;
            } else {
                // SAFETY: the bytes read lie in `text`: the fields do (checked above), and a
                // whole block is read only where the text has one. The values have room for
                // `bytes + BLOCK` past `first`, and `len - first + size <= bytes`, so a block
                // written at `len` ends within it. The source is another allocation.
                unsafe {
                    let (from, to) = (text.as_ptr().add(start), values.add(len));
                    if size <= BLOCK && start + BLOCK <= text.len() {
                        // A copy of a fixed size is a few vector moves; one that may be either
                        // size was compiled to a `memcpy` call.
                        let block = from.cast::<[u8; BLOCK]>().read_unaligned();
                        to.cast::<[u8; BLOCK]>().write_unaligned(block);
                    } else {
                        std::ptr::copy_nonoverlapping(from, to, size);
                    }
                }
                len += size;
            }
            // At most `first + bytes`, checked above to fit.
            offset.write(len as i32);
        }
        // SAFETY: bytes up to `len` were copied in above (past a field's end, a block's
        // surplus is overwritten by the next field or left beyond the length), and the
        // `rows` offsets after the old ones were written (`reserve` made room for them all).
        unsafe {
            self.values.set_len(len);
            self.offsets.set_len(self.offsets.len() + rows);
        }
        if nulls == 0 {
            self.nulls.append_non_nulls(rows);
        } else if nulls == rows {
            self.nulls.append_nulls(rows, self.offsets.capacity() - 1);
        } else {
            for (start, end) in fields {
                if is_dash(text, start, end) {
                    self.nulls.append_null(self.offsets.capacity() - 1);
                } else {
                    self.nulls.append_non_null();
                }
            }
        }
    }

    /// Append `n` nulls.
    pub fn append_nulls(&mut self, n: usize) {
        let end = *self.offsets.last().expect("offsets start with 0");
        self.offsets.resize(self.offsets.len() + n, end);
        self.nulls.append_nulls(n, self.offsets.capacity() - 1);
    }

    /// Keep the first `rows` values.
    pub fn truncate(&mut self, rows: usize) {
        if rows + 1 < self.offsets.len() {
            self.offsets.truncate(rows + 1);
            self.values.truncate(self.offsets[rows] as usize);
            self.nulls.truncate(rows);
        }
    }

    #[inline]
    fn push_offset(&mut self) {
        // Arrow's builder panics the same way; a batch is a few thousand lines of bounded
        // length, far from 2 GiB.
        let end =
            i32::try_from(self.values.len()).expect("a string column over 2 GiB in one batch");
        self.offsets.push(end);
    }

    /// Take the values appended so far as an array, keeping room for as many when `more`
    /// rows follow (see [`ColumnBuilder::finish`]).
    pub fn finish(&mut self, more: bool) -> StringArray {
        let rows = room(self.offsets.len() - 1, more);
        let bytes = room(self.values.len(), more);
        let next = Self::with_capacity(rows, bytes);
        let done = std::mem::replace(self, next);
        // Values were appended as ranges of checked UTF-8 on character boundaries.
        utf8_array(done.offsets, done.values, done.nulls.finish())
    }
}

/// A string array of `values` cut at `offsets` (rising from 0 to the values' end; a panic
/// otherwise), which must be UTF-8 split between characters: a panic otherwise too. ASCII
/// values, nearly all of a log's, are checked with one pass over the bytes; Arrow's own check
/// would walk every offset as well (~1.5% of an audit run). The offsets are checked here too,
/// with [`every_pair`].
pub fn utf8_array(offsets: Vec<i32>, values: Vec<u8>, nulls: Option<NullBuffer>) -> StringArray {
    let rows = offsets.len().saturating_sub(1);
    assert!(
        offsets.first().is_some_and(|&first| first >= 0) && every_pair(&offsets, |a, b| a <= b),
        "string offsets must rise from a non-negative start"
    );
    // SAFETY: just checked: not empty, the first offset is not negative and none is below the
    // one before it, which is all `OffsetBuffer::new` checks.
    let offsets = unsafe { OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)) };
    assert_eq!(offsets.last().map(|&o| o as usize), Some(values.len()));
    assert!(nulls.as_ref().is_none_or(|n| n.len() == rows));
    if values.is_ascii() {
        // SAFETY: ASCII bytes are UTF-8 and every offset lies between characters; the offsets
        // rise (`OffsetBuffer::new` checked) and end at the values' end, and the nulls cover
        // the rows (both asserted above).
        return unsafe { StringArray::new_unchecked(offsets, Buffer::from_vec(values), nulls) };
    }
    StringArray::try_new(offsets, Buffer::from_vec(values), nulls)
        .expect("string values must be UTF-8 cut at char boundaries")
}

/// Whether `holds` is true of every offset and the one after it. 16 pairs at a time with no
/// early exit inside a block, which the compiler turns into vector compares, stopping at the
/// first block where it fails: Arrow's `OffsetBuffer::new` (offsets that never fall) and a
/// value-by-value test of equal lengths (a dictionary column's constant batches) each took
/// ~8–11 instructions an offset, 2% of a small-files run's instructions each (callgrind).
pub fn every_pair(offsets: &[i32], holds: impl Fn(i32, i32) -> bool) -> bool {
    const BLOCK: usize = 16;
    let Some((_, after)) = offsets.split_first() else {
        return true;
    };
    offsets
        .chunks(BLOCK)
        .zip(after.chunks(BLOCK))
        .all(|(before, after)| {
            before
                .iter()
                .zip(after)
                .fold(true, |all, (&a, &b)| all & holds(a, b))
        })
}

/// A column of fixed-width values and their nulls.
#[derive(Debug)]
pub struct NumBuilder<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    nulls: Validity,
}

impl<T: ArrowPrimitiveType> NumBuilder<T> {
    /// A builder with room for `rows` values.
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            values: Vec::with_capacity(rows),
            nulls: Validity::default(),
        }
    }

    /// Append a value.
    #[inline]
    pub fn append_value(&mut self, value: T::Native) {
        self.values.push(value);
        self.nulls.append_non_null();
    }

    /// Append a null.
    #[inline]
    pub fn append_null(&mut self) {
        self.values.push(T::Native::default());
        self.nulls.append_null(self.values.capacity());
    }

    /// Append `n` nulls.
    pub fn append_nulls(&mut self, n: usize) {
        self.values
            .resize(self.values.len() + n, T::Native::default());
        self.nulls.append_nulls(n, self.values.capacity());
    }

    /// Keep the first `rows` values.
    pub fn truncate(&mut self, rows: usize) {
        self.values.truncate(rows);
        self.nulls.truncate(rows);
    }

    /// Take the values appended so far as an array, keeping room for as many (plus an
    /// eighth) when `more` rows follow, so the next batch of a file is appended without
    /// growing.
    pub fn finish(&mut self, more: bool) -> PrimitiveArray<T> {
        let rows = room(self.values.len(), more);
        let done = std::mem::replace(self, Self::with_capacity(rows));
        let nulls = done.nulls;
        PrimitiveArray::new(ScalarBuffer::from(done.values), nulls.finish())
    }
}

/// A builder for one [`Kind`].
#[derive(Debug)]
pub enum ColumnBuilder {
    /// Strings.
    Str(StrBuilder),
    /// 64-bit integers.
    I64(NumBuilder<Int64Type>),
    /// 32-bit integers.
    I32(NumBuilder<Int32Type>),
    /// Floats.
    F64(NumBuilder<Float64Type>),
}

impl ColumnBuilder {
    /// A builder for `kind` with room for `rows` rows (strings: 16 bytes each).
    pub fn new(kind: Kind, rows: usize) -> Self {
        match kind {
            Kind::Str => Self::Str(StrBuilder::with_capacity(rows, rows * 16)),
            Kind::I64 => Self::I64(NumBuilder::with_capacity(rows)),
            Kind::I32 => Self::I32(NumBuilder::with_capacity(rows)),
            Kind::F64 => Self::F64(NumBuilder::with_capacity(rows)),
        }
    }

    /// Append bytes `start..end` of `line` as a value of this column's kind: a string as it
    /// is, a number parsed, and an empty number as null. `false`, with nothing appended, when
    /// they are not a number of the column's kind. For strings the range must fall on char
    /// boundaries (see [`StrBuilder::append_range`]).
    #[inline(always)]
    pub fn append_text(&mut self, line: &[u8], start: usize, end: usize) -> bool {
        match self {
            Self::Str(b) => {
                b.append_range(line, start, end);
                true
            }
            _ if start == end => {
                self.append_null();
                true
            }
            Self::I64(b) => parse_int(&line[start..end])
                .map(|v| b.append_value(v))
                .is_some(),
            Self::I32(b) => parse_int(&line[start..end])
                .and_then(|v| i32::try_from(v).ok())
                .map(|v| b.append_value(v))
                .is_some(),
            Self::F64(b) => parse_float(&line[start..end])
                .map(|v| b.append_value(v))
                .is_some(),
        }
    }

    /// Append a null.
    #[inline(always)]
    pub fn append_null(&mut self) {
        match self {
            Self::Str(b) => b.append_null(),
            Self::I64(b) => b.append_null(),
            Self::I32(b) => b.append_null(),
            Self::F64(b) => b.append_null(),
        }
    }

    /// Append `n` nulls.
    pub fn append_nulls(&mut self, n: usize) {
        match self {
            Self::Str(b) => b.append_nulls(n),
            Self::I64(b) => b.append_nulls(n),
            Self::I32(b) => b.append_nulls(n),
            Self::F64(b) => b.append_nulls(n),
        }
    }

    /// Keep the first `rows` rows: how a decoder takes back a row that turned out bad.
    pub fn truncate(&mut self, rows: usize) {
        match self {
            Self::Str(b) => b.truncate(rows),
            Self::I64(b) => b.truncate(rows),
            Self::I32(b) => b.truncate(rows),
            Self::F64(b) => b.truncate(rows),
        }
    }

    /// Take the values appended so far as an array. When `more` rows follow, the builder is
    /// left with room for as many rows and string bytes as the array has (plus an eighth), so
    /// the next batch of a file is appended without growing buffers; at the input's end it
    /// is left empty (a run of thousands of small files would otherwise allocate room for a
    /// batch per column per file, never used).
    pub fn finish(&mut self, more: bool) -> ArrayRef {
        match self {
            Self::Str(b) => Arc::new(b.finish(more)),
            Self::I64(b) => Arc::new(b.finish(more)),
            Self::I32(b) => Arc::new(b.finish(more)),
            Self::F64(b) => Arc::new(b.finish(more)),
        }
    }
}

/// The largest `max_batch_bytes` a decoder accepts. A batch's records then hold at most this
/// plus one record (16 MiB at most by default), and masking makes a value at most 3 times
/// longer (`::` can become `::/127`), so no string column of a batch, decoded or masked,
/// reaches Arrow's 2 GiB offset limit.
pub const MAX_BATCH_BYTES: usize = 512 << 20;

/// Builders for the two columns every decoder emits first (never null).
#[derive(Debug)]
pub struct PrefixBuilders {
    ts: Vec<i64>,
    row_num: Vec<i64>,
    /// Bytes of the input records appended since the last finish.
    bytes: usize,
}

impl PrefixBuilders {
    /// Builders with room for `rows` rows.
    pub fn new(rows: usize) -> Self {
        Self {
            ts: Vec::with_capacity(rows),
            row_num: Vec::with_capacity(rows),
            bytes: 0,
        }
    }

    /// Append one row's `ts` and `row_num`; `bytes` is the size of its input record.
    #[inline]
    pub fn append(&mut self, ts: i64, row_num: u64, bytes: usize) {
        self.ts.push(ts);
        self.row_num.push(row_num as i64);
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

    /// Take `ts` and `row_num` arrays, keeping room for as many rows when `more` follow (see
    /// [`ColumnBuilder::finish`]).
    pub fn finish(&mut self, more: bool) -> [ArrayRef; 2] {
        let rows = room(self.ts.len(), more);
        let done = std::mem::replace(self, Self::new(rows));
        let ts = PrimitiveArray::<TimestampMicrosecondType>::new(done.ts.into(), None)
            .with_timezone(UTC);
        let row_num = PrimitiveArray::<Int64Type>::new(done.row_num.into(), None);
        [Arc::new(ts), Arc::new(row_num)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Float64Array, Int32Array, Int64Array};

    #[test]
    fn utf8_arrays_are_checked_on_both_paths() {
        let ascii = utf8_array(vec![0, 2, 2, 5], b"abcde".to_vec(), None);
        assert_eq!(ascii, StringArray::from(vec!["ab", "", "cde"]));
        let wide = utf8_array(vec![0, 2, 3], "éa".as_bytes().to_vec(), None);
        assert_eq!(wide, StringArray::from(vec!["é", "a"]));
        let nulls = Some(NullBuffer::from(vec![true, false]));
        let with_nulls = utf8_array(vec![0, 1, 1], b"a".to_vec(), nulls);
        assert_eq!(with_nulls, StringArray::from(vec![Some("a"), None]));
        for (offsets, values, nulls) in [
            // An offset inside a character, bytes that are not UTF-8, offsets short of the
            // values' end, nulls for a row too many.
            (vec![0, 1, 2], "é".as_bytes().to_vec(), None),
            (vec![0, 1], vec![0xff], None),
            (vec![0, 1], b"ab".to_vec(), None),
            // Offsets that fall, start below zero, or are not there at all.
            (vec![0, 2, 1, 2], b"ab".to_vec(), None),
            (vec![-1, 1], b"a".to_vec(), None),
            (vec![], Vec::new(), None),
            (vec![0, 1], b"a".to_vec(), Some(NullBuffer::new_valid(2))),
        ] {
            let made = std::panic::catch_unwind(|| utf8_array(offsets, values, nulls));
            assert!(made.is_err());
        }
    }

    /// Append each of `fields` (all of `line`) to a `kind` column; give what each append
    /// returned and the finished column.
    fn appended(kind: Kind, fields: &[&str]) -> (Vec<bool>, ArrayRef) {
        let mut column = ColumnBuilder::new(kind, 1);
        let line = fields.concat();
        let mut start = 0;
        let took = fields
            .iter()
            .map(|f| {
                start += f.len();
                column.append_text(line.as_bytes(), start - f.len(), start)
            })
            .collect();
        (took, column.finish(true))
    }

    #[test]
    fn fields_append_by_kind() {
        let (took, array) = appended(Kind::I64, &["392", "", "-7", "3.5", "9223372036854775807"]);
        assert_eq!(took, [true, true, true, false, true]);
        let expected: Int64Array = vec![Some(392), None, Some(-7), Some(i64::MAX)].into();
        assert_eq!(array.as_primitive::<Int64Type>(), &expected);

        let (took, array) = appended(Kind::I32, &["200", "4294967296", "-2147483648"]);
        assert_eq!(took, [true, false, true]);
        let expected: Int32Array = vec![200, i32::MIN].into();
        assert_eq!(array.as_primitive::<Int32Type>(), &expected);

        let (took, array) = appended(Kind::F64, &["0.001", "NaN", "1e3", "inf", ""]);
        assert_eq!(took, [true, false, true, false, true]);
        let expected: Float64Array = vec![Some(0.001), Some(1000.0), None].into();
        assert_eq!(array.as_primitive::<Float64Type>(), &expected);

        // Strings are taken as they are, the empty one too.
        let (took, array) = appended(Kind::Str, &["GET", "", "-"]);
        assert_eq!(took, [true; 3]);
        assert_eq!(
            array.as_string::<i32>(),
            &StringArray::from(vec!["GET", "", "-"])
        );
    }

    #[test]
    fn a_truncated_row_leaves_nothing_behind() {
        let line = "a\tbb\t12";
        for kind in [Kind::Str, Kind::I64, Kind::I32, Kind::F64] {
            let mut column = ColumnBuilder::new(kind, 1);
            // A good row, then a bad row's value and null taken back, then one more good row.
            column.append_text(line.as_bytes(), 5, 7);
            column.append_text(line.as_bytes(), 0, 1);
            column.append_null();
            column.truncate(1);
            column.append_null();
            column.truncate(5);
            let array = column.finish(true);
            assert_eq!(array.len(), 2, "{kind:?}");
            assert!(array.is_valid(0) && array.is_null(1), "{kind:?}");
            // The builder starts the next batch empty.
            assert_eq!(column.finish(false).len(), 0, "{kind:?}");
        }
        let mut strings = StrBuilder::with_capacity(1, 1);
        strings.append_range(line.as_bytes(), 2, 4);
        strings.append_range(line.as_bytes(), 0, 1);
        strings.truncate(1);
        strings.append_value("c");
        assert_eq!(strings.finish(true), StringArray::from(vec!["bb", "c"]));
    }

    #[test]
    fn integers_parse_as_the_standard_parser_does() {
        for text in [
            "0",
            "-0",
            "42",
            "-42",
            "007",
            "999999999999999999",
            "-999999999999999999",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "+5",
            "",
            "-",
            "1.0",
            "1 ",
            " 1",
            "1_000",
            "٣",
        ] {
            assert_eq!(
                parse_int(text.as_bytes()),
                text.parse::<i64>().ok(),
                "{text:?}"
            );
        }
    }

    /// Append `ranges` of `line` (None: a null) and compare with Arrow's own array of them.
    fn check(builder: &mut StrBuilder, line: &str, ranges: &[Option<(usize, usize)>]) {
        for r in ranges {
            match *r {
                Some((start, end)) => builder.append_range(line.as_bytes(), start, end),
                None => builder.append_null(),
            }
        }
        let expected: StringArray = ranges
            .iter()
            .map(|r| r.map(|(start, end)| &line[start..end]))
            .collect();
        assert_eq!(builder.finish(true), expected);
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
            builder.append_range(line.as_bytes(), start, end);
        }
        builder.finish(false)
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
        assert_eq!(parse_float(b"1e3"), Some(1000.0));
        assert_eq!(parse_float(b"-inf"), None);
    }

    proptest::proptest! {
        #[test]
        fn offsets_never_fall_exactly_when_each_pair_rises(
            mut offsets in proptest::collection::vec(0i32..40, 0..80),
            fall in proptest::option::of((0usize..80, 1i32..3)),
        ) {
            // Rising offsets, with one of them lowered or not.
            offsets.sort_unstable();
            if let Some((at, by)) = fall {
                if let Some(offset) = offsets.get_mut(at) {
                    *offset -= by;
                }
            }
            proptest::prop_assert_eq!(
                every_pair(&offsets, |a, b| a <= b),
                offsets.windows(2).all(|w| w[0] <= w[1])
            );
        }

        #[test]
        fn integers_agree_with_the_standard_parser(text in "[-+]?[0-9]{0,21}|.{0,6}") {
            proptest::prop_assert_eq!(parse_int(text.as_bytes()), text.parse::<i64>().ok());
        }

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

        /// A column's fields copied in one loop are what copying them one by one gives,
        /// after values and nulls already there: short fields, long ones, fields in a text's
        /// last block, `-` as null (none, some or every one).
        #[test]
        fn fields_copied_in_one_loop_are_fields_copied_one_by_one(
            before in proptest::collection::vec(proptest::option::of("[a-z]{0,40}"), 0..6),
            fields in proptest::collection::vec(
                proptest::prop_oneof!["-", "[a-z\u{e9}-]{0,3}", "[a-z\u{4e2d}]{0,70}"],
                0..40,
            ),
        ) {
            let text = fields.join("\t");
            let mut ranges = Vec::new();
            let mut start = 0;
            for field in &fields {
                ranges.push((start, start + field.len()));
                start += field.len() + 1;
            }
            let (mut looped, mut one_by_one) =
                (StrBuilder::with_capacity(2, 4), StrBuilder::with_capacity(2, 4));
            for builder in [&mut looped, &mut one_by_one] {
                for value in &before {
                    match value {
                        Some(v) => builder.append_value(v),
                        None => builder.append_null(),
                    }
                }
            }
            looped.append_fields(text.as_bytes(), ranges.iter().copied());
            for (field, &(start, end)) in fields.iter().zip(&ranges) {
                if field == "-" {
                    one_by_one.append_null();
                } else {
                    one_by_one.append_range(text.as_bytes(), start, end);
                }
            }
            proptest::prop_assert_eq!(looped.finish(false), one_by_one.finish(false));
        }
    }

    #[test]
    #[should_panic(expected = "a field outside its text")]
    fn a_field_past_its_text_panics() {
        StrBuilder::with_capacity(1, 1).append_fields(b"abc", [(1, 4)].into_iter());
    }
}
