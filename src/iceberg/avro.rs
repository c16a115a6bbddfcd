//! The Avro object container files Iceberg keeps its manifests and manifest lists in: written
//! with the `null` codec, read with `null` or `deflate`, values decoded by the writer's schema.
//! Only what Iceberg's manifests use: null, boolean, int, long, float, double, bytes, string,
//! fixed, records, arrays, maps and unions.
//!
//! Spec: <https://avro.apache.org/docs/1.11.1/specification/> (binary encoding, object
//! container files).

use std::io::Read;

use serde_json::Value as Json;

use crate::error::{Error, Result};

/// An Avro value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `boolean`.
    Boolean(bool),
    /// `int` (and `date`).
    Int(i32),
    /// `long`.
    Long(i64),
    /// `float`.
    Float(f32),
    /// `double`.
    Double(f64),
    /// `bytes` or `fixed`.
    Bytes(Vec<u8>),
    /// `string`.
    String(String),
    /// `array`.
    Array(Vec<Value>),
    /// `map`, in its order.
    Map(Vec<(String, Value)>),
    /// A record's fields, in the schema's order.
    Record(Vec<Value>),
    /// A union's branch index and value.
    Union(usize, Box<Value>),
}

impl Value {
    /// The value of an optional field (`["null", T]`): `Null` as `None`.
    pub fn optional(&self) -> Option<&Value> {
        match self {
            Value::Union(_, v) if **v == Value::Null => None,
            Value::Union(_, v) => Some(v),
            Value::Null => None,
            v => Some(v),
        }
    }

    /// The long (or int) it holds.
    pub fn as_long(&self) -> Option<i64> {
        match self.optional()? {
            Value::Long(n) => Some(*n),
            Value::Int(n) => Some(i64::from(*n)),
            _ => None,
        }
    }

    /// The string it holds.
    pub fn as_str(&self) -> Option<&str> {
        match self.optional()? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// The first bytes of every object container file.
const MAGIC: &[u8; 4] = b"Obj\x01";

fn write_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// Encode `value` in Avro's binary encoding (the schema is implied by the value: records list
/// their fields, unions their branch).
pub fn encode(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => {}
        Value::Boolean(b) => out.push(u8::from(*b)),
        Value::Int(n) => write_long(out, i64::from(*n)),
        Value::Long(n) => write_long(out, *n),
        Value::Float(f) => out.extend_from_slice(&f.to_le_bytes()),
        Value::Double(f) => out.extend_from_slice(&f.to_le_bytes()),
        Value::Bytes(b) => write_bytes(out, b),
        Value::String(s) => write_bytes(out, s.as_bytes()),
        Value::Array(items) => {
            if !items.is_empty() {
                write_long(out, items.len() as i64);
                for v in items {
                    encode(out, v);
                }
            }
            write_long(out, 0);
        }
        Value::Map(entries) => {
            if !entries.is_empty() {
                write_long(out, entries.len() as i64);
                for (k, v) in entries {
                    write_bytes(out, k.as_bytes());
                    encode(out, v);
                }
            }
            write_long(out, 0);
        }
        Value::Record(fields) => {
            for v in fields {
                encode(out, v);
            }
        }
        Value::Union(branch, v) => {
            write_long(out, *branch as i64);
            encode(out, v);
        }
    }
}

/// An object container file of `records` with `schema` (Avro JSON) and `metadata` (the
/// Iceberg keys: `schema`, `partition-spec`, `format-version`, ...), in one block, codec
/// `null`. `sync` is the file's 16-byte sync marker.
pub fn container(
    schema: &Json,
    metadata: &[(&str, String)],
    records: &[Value],
    sync: [u8; 16],
) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let mut meta: Vec<(String, Value)> = vec![
        (
            "avro.schema".into(),
            Value::Bytes(schema.to_string().into_bytes()),
        ),
        ("avro.codec".into(), Value::Bytes(b"null".to_vec())),
    ];
    meta.extend(
        metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::Bytes(v.clone().into_bytes()))),
    );
    encode(&mut out, &Value::Map(meta));
    out.extend_from_slice(&sync);
    if !records.is_empty() {
        let mut block = Vec::new();
        for r in records {
            encode(&mut block, r);
        }
        write_long(&mut out, records.len() as i64);
        write_long(&mut out, block.len() as i64);
        out.extend_from_slice(&block);
        out.extend_from_slice(&sync);
    }
    out
}

/// A container file read back: its metadata and its records.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// The file's metadata (its schema and codec among them).
    pub metadata: Vec<(String, Vec<u8>)>,
    /// The records, decoded by the writer's schema.
    pub records: Vec<Value>,
}

impl Container {
    /// The metadata value of `key`, as text.
    pub fn meta(&self, key: &str) -> Option<String> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// A cursor over bytes being decoded.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    origin: &'a str,
}

impl<'a> Reader<'a> {
    fn bad(&self, what: &str) -> Error {
        Error::Corrupt {
            path: self.origin.to_owned(),
            message: format!("avro: {what} at byte {}", self.at),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| self.bad("unexpected end"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn long(&mut self) -> Result<i64> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            z |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(self.bad("a varint longer than 64 bits"))
    }

    fn length(&mut self) -> Result<usize> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| self.bad("a negative length"))
    }

    fn bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.length()?;
        Ok(self.take(n)?.to_vec())
    }

    /// A block count; a negative one is followed by the block's size in bytes.
    fn block_count(&mut self) -> Result<usize> {
        let n = self.long()?;
        if n < 0 {
            self.long()?;
        }
        Ok(n.unsigned_abs() as usize)
    }

    fn value(&mut self, schema: &Json, named: &mut Vec<(String, Json)>) -> Result<Value> {
        match schema {
            Json::String(name) => self.named_or_primitive(name, named),
            Json::Array(branches) => {
                let branch = self.length()?;
                let s = branches
                    .get(branch)
                    .ok_or_else(|| self.bad("a union branch out of range"))?;
                Ok(Value::Union(branch, Box::new(self.value(s, named)?)))
            }
            Json::Object(o) => {
                let kind = o.get("type").and_then(Json::as_str).unwrap_or_default();
                match kind {
                    "record" => {
                        if let Some(name) = o.get("name").and_then(Json::as_str) {
                            named.push((name.to_owned(), schema.clone()));
                        }
                        let fields = o
                            .get("fields")
                            .and_then(Json::as_array)
                            .ok_or_else(|| self.bad("a record without fields"))?;
                        let mut out = Vec::with_capacity(fields.len());
                        for f in fields {
                            out.push(self.value(&f["type"], named)?);
                        }
                        Ok(Value::Record(out))
                    }
                    "array" => {
                        let mut items = Vec::new();
                        loop {
                            let n = self.block_count()?;
                            if n == 0 {
                                return Ok(Value::Array(items));
                            }
                            for _ in 0..n {
                                items.push(self.value(&o["items"], named)?);
                            }
                        }
                    }
                    "map" => {
                        let mut entries = Vec::new();
                        loop {
                            let n = self.block_count()?;
                            if n == 0 {
                                return Ok(Value::Map(entries));
                            }
                            for _ in 0..n {
                                let k = String::from_utf8(self.bytes()?)
                                    .map_err(|_| self.bad("a map key that is not UTF-8"))?;
                                entries.push((k, self.value(&o["values"], named)?));
                            }
                        }
                    }
                    "fixed" => {
                        if let Some(name) = o.get("name").and_then(Json::as_str) {
                            named.push((name.to_owned(), schema.clone()));
                        }
                        let size = o.get("size").and_then(Json::as_u64).unwrap_or(0) as usize;
                        Ok(Value::Bytes(self.take(size)?.to_vec()))
                    }
                    "enum" => Ok(Value::Int(self.long()? as i32)),
                    // A primitive with attributes (a logical type).
                    primitive => self.named_or_primitive(primitive, named),
                }
            }
            _ => Err(self.bad("an unreadable schema")),
        }
    }

    fn named_or_primitive(&mut self, name: &str, named: &mut Vec<(String, Json)>) -> Result<Value> {
        Ok(match name {
            "null" => Value::Null,
            "boolean" => Value::Boolean(self.take(1)?[0] != 0),
            "int" => Value::Int(self.long()? as i32),
            "long" => Value::Long(self.long()?),
            "float" => Value::Float(f32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            "double" => Value::Double(f64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            "bytes" => Value::Bytes(self.bytes()?),
            "string" => Value::String(
                String::from_utf8(self.bytes()?)
                    .map_err(|_| self.bad("a string that is not UTF-8"))?,
            ),
            other => {
                let schema = named
                    .iter()
                    .rev()
                    .find(|(n, _)| n == other)
                    .map(|(_, s)| s.clone())
                    .ok_or_else(|| self.bad(&format!("an unknown type {other:?}")))?;
                return self.value(&schema, named);
            }
        })
    }
}

/// Read an object container file (`origin` names it in errors).
pub fn read_container(bytes: &[u8], origin: &str) -> Result<Container> {
    let mut r = Reader {
        bytes,
        at: 0,
        origin,
    };
    if r.take(4)? != MAGIC {
        return Err(r.bad("not an Avro object container file"));
    }
    let mut metadata = Vec::new();
    loop {
        let n = r.block_count()?;
        if n == 0 {
            break;
        }
        for _ in 0..n {
            let k = String::from_utf8(r.bytes()?).map_err(|_| r.bad("a metadata key"))?;
            metadata.push((k, r.bytes()?));
        }
    }
    let sync = r.take(16)?.to_vec();
    let find = |k: &str| {
        metadata
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let schema: Json = serde_json::from_slice(&find("avro.schema").unwrap_or_default())
        .map_err(|_| r.bad("an unreadable avro.schema"))?;
    let codec = find("avro.codec").unwrap_or_else(|| b"null".to_vec());
    let mut records = Vec::new();
    while r.at < bytes.len() {
        let count = r.length()?;
        let size = r.length()?;
        let raw = r.take(size)?;
        let block = match codec.as_slice() {
            b"null" => raw.to_vec(),
            b"deflate" => {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(raw)
                    .read_to_end(&mut out)
                    .map_err(|e| r.bad(&format!("a deflate block: {e}")))?;
                out
            }
            other => {
                return Err(r.bad(&format!(
                    "codec {:?} (readable: null, deflate)",
                    String::from_utf8_lossy(other)
                )))
            }
        };
        let mut b = Reader {
            bytes: &block,
            at: 0,
            origin,
        };
        let mut named = Vec::new();
        for _ in 0..count {
            records.push(b.value(&schema, &mut named)?);
        }
        if r.take(16)? != sync.as_slice() {
            return Err(r.bad("a block without the file's sync marker"));
        }
    }
    Ok(Container { metadata, records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn longs_are_zigzag_varints() {
        for (n, want) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 0x01]),
        ] {
            let mut out = Vec::new();
            write_long(&mut out, n);
            assert_eq!(out, want, "{n}");
        }
        for n in [i64::MIN, -1_000_000_007, 0, 300, i64::MAX] {
            let mut out = Vec::new();
            write_long(&mut out, n);
            let mut r = Reader {
                bytes: &out,
                at: 0,
                origin: "t",
            };
            assert_eq!(r.long().unwrap(), n);
        }
    }

    #[test]
    fn a_container_reads_back_as_written() {
        let schema = json!({"type": "record", "name": "r", "fields": [
            {"name": "a", "type": "long"},
            {"name": "b", "type": ["null", "string"]},
            {"name": "c", "type": {"type": "array", "items": {"type": "record", "name": "s", "fields": [
                {"name": "x", "type": "boolean"}, {"name": "y", "type": ["null", "bytes"]}]}}},
            {"name": "d", "type": {"type": "int", "logicalType": "date"}},
            {"name": "e", "type": {"type": "map", "values": "double"}},
            {"name": "f", "type": "s"}
        ]});
        let record = |n: i64| {
            Value::Record(vec![
                Value::Long(n),
                if n % 2 == 0 {
                    Value::Union(0, Box::new(Value::Null))
                } else {
                    Value::Union(1, Box::new(Value::String(format!("v{n}"))))
                },
                Value::Array(vec![Value::Record(vec![
                    Value::Boolean(true),
                    Value::Union(1, Box::new(Value::Bytes(vec![1, 2, 3]))),
                ])]),
                Value::Int(19_000),
                Value::Map(vec![("k".into(), Value::Double(1.5))]),
                Value::Record(vec![
                    Value::Boolean(false),
                    Value::Union(0, Box::new(Value::Null)),
                ]),
            ])
        };
        let records: Vec<Value> = (0..5).map(record).collect();
        let bytes = container(
            &schema,
            &[("format-version", "2".into())],
            &records,
            [7; 16],
        );
        let back = read_container(&bytes, "t").unwrap();
        assert_eq!(back.records, records);
        assert_eq!(back.meta("format-version").as_deref(), Some("2"));
        assert_eq!(back.meta("avro.codec").as_deref(), Some("null"));
        assert_eq!(back.records[1].clone(), record(1));
        if let Value::Record(f) = &back.records[1] {
            assert_eq!(f[1].as_str(), Some("v1"));
            assert_eq!(f[0].as_long(), Some(1));
        }
        // A file cut short is refused, not read in part.
        assert!(read_container(&bytes[..bytes.len() - 3], "t").is_err());
        assert!(read_container(b"PAR1", "t").is_err());
    }
}
