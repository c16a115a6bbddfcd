//! Typed column builders shared by the decoders. A row is first parsed into [`Cell`]s (so a bad
//! field rejects the whole row before anything is appended), then appended column by column.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
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

/// One parsed field, borrowing string bytes from the line being decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// No value.
    Null,
    /// A string (already checked to be UTF-8).
    Str(&'a str),
    /// An integer (for both integer kinds; I32 range is checked when parsing).
    Int(i64),
    /// A float.
    Float(f64),
}

/// Parse `text` as a value of `kind`; `None` when it is not one. Nulls are the caller's call.
#[inline]
pub fn parse_cell(kind: Kind, text: &str) -> Option<Cell<'_>> {
    match kind {
        Kind::Str => Some(Cell::Str(text)),
        Kind::I64 => text.parse::<i64>().ok().map(Cell::Int),
        Kind::I32 => text.parse::<i32>().ok().map(|v| Cell::Int(v.into())),
        Kind::F64 => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Cell::Float),
    }
}

/// An Arrow builder for one [`Kind`].
#[derive(Debug)]
pub enum ColumnBuilder {
    /// Strings.
    Str(StringBuilder),
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
            Kind::Str => Self::Str(StringBuilder::with_capacity(rows, bytes)),
            Kind::I64 => Self::I64(Int64Builder::with_capacity(rows)),
            Kind::I32 => Self::I32(Int32Builder::with_capacity(rows)),
            Kind::F64 => Self::F64(Float64Builder::with_capacity(rows)),
        }
    }

    /// Append one cell. The cell's variant matches the builder's kind by construction
    /// ([`parse_cell`]); a mismatch appends null.
    #[inline]
    pub fn append(&mut self, cell: Cell<'_>) {
        match (self, cell) {
            (Self::Str(b), Cell::Str(s)) => b.append_value(s),
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
            Self::Str(b) => Arc::new(b.finish()),
            Self::I64(b) => Arc::new(b.finish()),
            Self::I32(b) => Arc::new(b.finish()),
            Self::F64(b) => Arc::new(b.finish()),
        };
        let rows = array.len() + array.len() / 8;
        let bytes = array
            .as_string_opt::<i32>()
            .map_or(0, |a| a.value_data().len());
        *self = Self::with_capacity(self.kind(), rows, bytes + bytes / 8);
        array
    }
}

/// Builders for the two columns every decoder emits first.
#[derive(Debug)]
pub struct PrefixBuilders {
    ts: TimestampMicrosecondBuilder,
    row_num: Int64Builder,
}

impl PrefixBuilders {
    /// Builders with room for `rows` rows.
    pub fn new(rows: usize) -> Self {
        Self {
            ts: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC),
            row_num: Int64Builder::with_capacity(rows),
        }
    }

    /// Append one row's `ts` and `row_num`.
    #[inline]
    pub fn append(&mut self, ts: i64, row_num: u64) {
        self.ts.append_value(ts);
        self.row_num.append_value(row_num as i64);
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
        assert_eq!(parse_cell(Kind::I64, "392"), Some(Cell::Int(392)));
        assert_eq!(parse_cell(Kind::I64, "3.5"), None);
        assert_eq!(parse_cell(Kind::I32, "4294967296"), None);
        assert_eq!(parse_cell(Kind::F64, "0.001"), Some(Cell::Float(0.001)));
        assert_eq!(parse_cell(Kind::F64, "NaN"), None);
        assert_eq!(parse_cell(Kind::Str, "x"), Some(Cell::Str("x")));
    }
}
