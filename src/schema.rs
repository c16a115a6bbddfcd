//! Column names and the table schemas of docs/design.md section 3.
//!
//! Column order is a contract (Redshift COPY maps Parquet columns by position), so every table
//! starts with the lineage columns below and only ever grows at the end.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Event time, microseconds, UTC.
pub const TS: &str = "ts";
/// The customer the record belongs to.
pub const CUSTOMER: &str = "customer";
/// The record's own UTC date; the second partition key.
pub const DT: &str = "dt";
/// The input uri the record came from.
pub const SOURCE_FILE: &str = "source_file";
/// 1-based line of the record in its source file.
pub const ROW_NUM: &str = "row_num";
/// CloudFront fields the table does not know, as a JSON object of name to value.
pub const EXTRA: &str = "extra";

/// The timezone of every timestamp citrine writes.
pub const UTC: &str = "UTC";

/// The `ts` data type: timestamp in microseconds, UTC.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

/// The field decoders emit first: `ts` then `row_num`, before the format's own columns.
pub fn parsed_prefix() -> [Field; 2] {
    [
        Field::new(TS, ts_type(), false),
        Field::new(ROW_NUM, DataType::Int64, false),
    ]
}

/// The five columns every table starts with, in order.
pub fn lineage_fields() -> [Field; 5] {
    [
        Field::new(TS, ts_type(), false),
        Field::new(CUSTOMER, DataType::Utf8, false),
        Field::new(DT, DataType::Date32, false),
        Field::new(SOURCE_FILE, DataType::Utf8, false),
        Field::new(ROW_NUM, DataType::Int64, false),
    ]
}

/// The table schema for a decoder's output schema: the lineage columns, then the decoder's
/// own columns (everything but `ts`, `row_num` and `customer`) in their order.
pub fn table_schema(parsed: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = lineage_fields().into();
    fields.extend(
        parsed
            .fields()
            .iter()
            .filter(|f| !is_lineage(f.name()))
            .map(|f| f.as_ref().clone()),
    );
    Arc::new(Schema::new(fields))
}

/// The column names of `schema`, in order.
pub fn names(schema: &Schema) -> Vec<&str> {
    schema.fields().iter().map(|f| f.name().as_str()).collect()
}

/// True for the names the lineage columns own.
pub fn is_lineage(name: &str) -> bool {
    matches!(name, TS | CUSTOMER | DT | SOURCE_FILE | ROW_NUM)
}

/// A W3C / CloudFront field name as a column name: lower case, `-`, `(` and `)` turned into
/// `_`, no leading, trailing or doubled `_` (`cs(User-Agent)` → `cs_user_agent`).
pub fn column_name(w3c: &str) -> String {
    let mut out = String::with_capacity(w3c.len());
    for c in w3c.trim().chars() {
        let c = match c {
            '-' | '(' | ')' | ' ' | '.' => '_',
            c => c.to_ascii_lowercase(),
        };
        if c == '_' && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push(c);
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_follow_the_design() {
        assert_eq!(column_name("cs(User-Agent)"), "cs_user_agent");
        assert_eq!(column_name("cs(Host)"), "cs_host");
        assert_eq!(column_name("x-edge-location"), "x_edge_location");
        assert_eq!(column_name("time-to-first-byte"), "time_to_first_byte");
        assert_eq!(column_name("Source IP"), "source_ip");
    }

    #[test]
    fn table_schema_starts_with_lineage() {
        let parsed = Schema::new(vec![
            Field::new(TS, ts_type(), false),
            Field::new(ROW_NUM, DataType::Int64, false),
            Field::new("a", DataType::Utf8, true),
            Field::new(CUSTOMER, DataType::Utf8, true),
            Field::new("b", DataType::Int32, true),
        ]);
        assert_eq!(
            names(&table_schema(&parsed)),
            ["ts", "customer", "dt", "source_file", "row_num", "a", "b"]
        );
    }
}
