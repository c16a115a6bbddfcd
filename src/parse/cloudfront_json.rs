//! CloudFront standard logging v2's JSON output: one JSON object per line, its keys the W3C
//! field names (`c-ip`, `cs(User-Agent)`, …, in any case, order and subset: AWS's own Athena
//! DDL lowercases them), its values the same text a W3C file has (strings; numbers and
//! booleans are taken as their JSON text, `null` as `-`).
//!
//! Each line is handed to the W3C decoder as the row it would be in a W3C file, under a layout
//! of its keys, so typing, masking, rejects and lineage are the W3C path's own: the same
//! requests give the same rows (`row_num` is the JSON line). A tab, carriage return or newline
//! inside a value is written `%09`, `%0D`, `%0A`, as CloudFront encodes them. A line that is
//! no JSON object is a reject with the parser's reason.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::cloudfront::{CloudFrontDecoder, CloudFrontOptions};
use super::lines::{Line, Lines};
use super::{Decoded, Decoder, RejectReason, RowCounts};
use crate::error::FileError;

/// Push decoder for CloudFront logging v2 JSON lines.
#[derive(Debug)]
pub struct CloudFrontJsonDecoder {
    lines: Lines,
    rows: Rows,
}

/// The W3C decoder and what one line is turned into for it.
#[derive(Debug)]
struct Rows {
    inner: CloudFrontDecoder,
    max_line: usize,
    /// The keys of the line being decoded, separated by spaces (a layout's text).
    names: Vec<u8>,
    /// The keys of the layout the W3C decoder has now.
    current: Vec<u8>,
    /// The values of the line being decoded, separated by tabs (a W3C row).
    row: Vec<u8>,
}

impl CloudFrontJsonDecoder {
    /// A decoder with the W3C decoder's `options`.
    pub fn new(options: CloudFrontOptions) -> Self {
        Self {
            lines: Lines::new(options.max_line),
            rows: Rows {
                max_line: options.max_line,
                inner: CloudFrontDecoder::new(options),
                names: Vec::new(),
                current: Vec::new(),
                row: Vec::new(),
            },
        }
    }

    /// Every distinct layout (set of keys, in their order) seen so far.
    pub fn layouts(&self) -> Vec<Vec<String>> {
        self.rows.inner.layouts()
    }
}

impl Rows {
    /// One line: a row of the W3C decoder, or a reject.
    fn line(&mut self, line_no: u64, line: Line<'_>) -> Result<(), FileError> {
        let line = match line {
            Line::Whole(l) if l.trim_ascii().is_empty() => return Ok(()),
            Line::Whole(l) => l,
            Line::TooLong(head) => {
                let limit = self.max_line;
                self.inner
                    .reject_record(line_no, RejectReason::TooLong { limit }, head);
                return Ok(());
            }
        };
        self.names.clear();
        self.row.clear();
        let mut de = serde_json::Deserializer::from_slice(line);
        let parsed = Record {
            names: &mut self.names,
            row: &mut self.row,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        if let Err(e) = parsed {
            self.inner.reject_record(
                line_no,
                RejectReason::NotJson {
                    detail: e.to_string(),
                },
                line,
            );
            return Ok(());
        }
        if self.names != self.current {
            self.inner.set_fields(&self.names)?;
            std::mem::swap(&mut self.current, &mut self.names);
        }
        self.inner.record(line_no, &self.row);
        Ok(())
    }
}

/// Reads one JSON object into a layout's text and a W3C row.
struct Record<'b> {
    names: &'b mut Vec<u8>,
    row: &'b mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Record<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Record<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object (one log record)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if !self.names.is_empty() {
                self.names.push(b' ');
                self.row.push(b'\t');
            }
            push_name(self.names, &key);
            map.next_value_seed(Field(self.row))?;
        }
        Ok(())
    }
}

/// A key as a layout's name: white space (which separates names) becomes `_`, and an empty
/// key is `_`.
fn push_name(out: &mut Vec<u8>, key: &str) {
    if key.is_empty() {
        out.push(b'_');
        return;
    }
    out.extend(
        key.bytes()
            .map(|b| if b.is_ascii_whitespace() { b'_' } else { b }),
    );
}

/// A value as a W3C field: appended to the row.
struct Field<'b>(&'b mut Vec<u8>);

impl Field<'_> {
    fn text(self, s: &str) {
        for &b in s.as_bytes() {
            match b {
                b'\t' => self.0.extend_from_slice(b"%09"),
                b'\n' => self.0.extend_from_slice(b"%0A"),
                b'\r' => self.0.extend_from_slice(b"%0D"),
                b => self.0.push(b),
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Field<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Field<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.text(s);
        Ok(())
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<(), E> {
        self.text(s);
        Ok(())
    }
    fn visit_string<E>(self, s: String) -> Result<(), E> {
        self.text(&s);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.text(&v.to_string());
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.text(&v.to_string());
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.text(&v.to_string());
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.text(if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push(b'-');
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.0.push(b'-');
        Ok(())
    }
    /// A nested array or object: its JSON text.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<serde_json::Value>()? {
            items.push(v);
        }
        self.text(&serde_json::Value::Array(items).to_string());
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            object.insert(k, map.next_value()?);
        }
        self.text(&serde_json::Value::Object(object).to_string());
        Ok(())
    }
}

impl Decoder for CloudFrontJsonDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, FileError> {
        if self.rows.inner.capacity() == 0 {
            return Ok(0);
        }
        let rows = &mut self.rows;
        self.lines.decode(buf, |n, line| {
            rows.line(n, line)?;
            Ok(rows.inner.capacity() > 0)
        })
    }

    fn finish(&mut self) -> Result<(), FileError> {
        let rows = &mut self.rows;
        self.lines
            .finish(|n, line| rows.line(n, line).map(|()| true))?;
        rows.inner.finish()
    }

    fn capacity(&self) -> usize {
        self.rows.inner.capacity()
    }

    fn flush(&mut self) -> Result<Option<Decoded>, FileError> {
        self.rows.inner.flush()
    }

    fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.rows.inner.schema()
    }

    fn counts(&self) -> RowCounts {
        self.rows.inner.counts()
    }
}
