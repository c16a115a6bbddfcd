//! The parts of the Iceberg table spec (format version 2) citrine writes: the table schema with
//! field ids, the partition spec (identity on `customer` and `dt`), the name mapping that lets
//! readers match citrine's Parquet columns (written without field ids) by name, and the Avro
//! schemas of manifests and manifest lists.
//!
//! Spec: <https://iceberg.apache.org/spec/>.

use std::collections::BTreeMap;

use arrow::datatypes::{DataType, Schema, TimeUnit};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::error::{Error, Result};
use crate::schema::{CUSTOMER, DT};

/// The format version citrine writes.
pub const FORMAT_VERSION: u8 = 2;
/// The partition spec's id (there is one).
pub const SPEC_ID: i32 = 0;
/// The field id of the `customer` partition field (partition field ids start at 1000).
pub const CUSTOMER_FIELD_ID: i32 = 1000;
/// The field id of the `dt` partition field.
pub const DT_FIELD_ID: i32 = 1001;

/// One field of an Iceberg schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Its id, stable for the table's life.
    pub id: i32,
    /// Its name.
    pub name: String,
    /// Whether it may be null (citrine's columns all may).
    pub required: bool,
    /// Its Iceberg type (`string`, `long`, `timestamptz`, ...).
    #[serde(rename = "type")]
    pub kind: String,
}

/// An Iceberg schema (a struct of fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcebergSchema {
    /// Always `struct`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    #[serde(rename = "schema-id")]
    pub schema_id: i32,
    /// Its fields, in file column order.
    pub fields: Vec<Field>,
}

/// The Iceberg type of an Arrow type citrine writes.
pub fn iceberg_type(t: &DataType) -> Result<&'static str> {
    Ok(match t {
        DataType::Utf8 | DataType::LargeUtf8 => "string",
        DataType::Int64 => "long",
        DataType::Int32 => "int",
        DataType::Float64 => "double",
        DataType::Boolean => "boolean",
        DataType::Date32 => "date",
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamptz",
        DataType::Timestamp(TimeUnit::Microsecond, None) => "timestamp",
        other => {
            return Err(Error::Internal {
                message: format!("no Iceberg type for the Arrow type {other}"),
            })
        }
    })
}

impl IcebergSchema {
    /// The schema of `arrow`, keeping the ids of the fields `previous` has (by name) and
    /// numbering new ones after `last_column_id`: Iceberg's additive schema evolution.
    /// Returns the schema and the new last column id.
    pub fn of(
        arrow: &Schema,
        previous: Option<&IcebergSchema>,
        last_column_id: i32,
        schema_id: i32,
    ) -> Result<(Self, i32)> {
        let known: BTreeMap<&str, i32> = previous
            .map(|p| p.fields.iter().map(|f| (f.name.as_str(), f.id)).collect())
            .unwrap_or_default();
        let mut last = last_column_id;
        let mut fields = Vec::with_capacity(arrow.fields().len());
        for f in arrow.fields() {
            let id = match known.get(f.name().as_str()) {
                Some(id) => *id,
                None => {
                    last += 1;
                    last
                }
            };
            fields.push(Field {
                id,
                name: f.name().clone(),
                required: false,
                kind: iceberg_type(f.data_type())?.to_owned(),
            });
        }
        Ok((
            Self {
                kind: "struct".into(),
                schema_id,
                fields,
            },
            last,
        ))
    }

    /// The id of the field `name`.
    pub fn id_of(&self, name: &str) -> Result<i32> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.id)
            .ok_or_else(|| Error::Internal {
                message: format!("the Iceberg schema has no field {name}"),
            })
    }

    /// The same fields (ids, names, types), whatever the schema's id.
    pub fn same_fields(&self, other: &IcebergSchema) -> bool {
        self.fields == other.fields
    }

    /// Iceberg's name mapping of this schema (`schema.name-mapping.default`): citrine's
    /// Parquet files carry no field ids, so readers match their columns by name.
    pub fn name_mapping(&self) -> String {
        let mapping: Vec<Json> = self
            .fields
            .iter()
            .map(|f| json!({"field-id": f.id, "names": [f.name]}))
            .collect();
        Json::Array(mapping).to_string()
    }
}

/// The partition spec: identity on `customer` and on `dt`, the folders the Hive layout has.
pub fn partition_spec(schema: &IcebergSchema) -> Result<Json> {
    Ok(json!({
        "spec-id": SPEC_ID,
        "fields": [
            {"name": CUSTOMER, "transform": "identity", "source-id": schema.id_of(CUSTOMER)?, "field-id": CUSTOMER_FIELD_ID},
            {"name": DT, "transform": "identity", "source-id": schema.id_of(DT)?, "field-id": DT_FIELD_ID},
        ]
    }))
}

/// The Avro schema of a manifest's entries (format version 2): the fields citrine writes.
pub fn manifest_entry_schema() -> Json {
    json!({
        "type": "record",
        "name": "manifest_entry",
        "fields": [
            {"name": "status", "type": "int", "field-id": 0},
            {"name": "snapshot_id", "type": ["null", "long"], "default": null, "field-id": 1},
            {"name": "sequence_number", "type": ["null", "long"], "default": null, "field-id": 3},
            {"name": "file_sequence_number", "type": ["null", "long"], "default": null, "field-id": 4},
            {"name": "data_file", "field-id": 2, "type": {
                "type": "record",
                "name": "r2",
                "fields": [
                    {"name": "content", "type": "int", "field-id": 134},
                    {"name": "file_path", "type": "string", "field-id": 100},
                    {"name": "file_format", "type": "string", "field-id": 101},
                    {"name": "partition", "field-id": 102, "type": {
                        "type": "record",
                        "name": "r102",
                        "fields": [
                            {"name": CUSTOMER, "type": ["null", "string"], "default": null, "field-id": CUSTOMER_FIELD_ID},
                            {"name": DT, "type": ["null", {"type": "int", "logicalType": "date"}], "default": null, "field-id": DT_FIELD_ID}
                        ]
                    }},
                    {"name": "record_count", "type": "long", "field-id": 103},
                    {"name": "file_size_in_bytes", "type": "long", "field-id": 104}
                ]
            }}
        ]
    })
}

/// The Avro schema of a manifest list's entries (format version 2).
pub fn manifest_file_schema() -> Json {
    json!({
        "type": "record",
        "name": "manifest_file",
        "fields": [
            {"name": "manifest_path", "type": "string", "field-id": 500},
            {"name": "manifest_length", "type": "long", "field-id": 501},
            {"name": "partition_spec_id", "type": "int", "field-id": 502},
            {"name": "content", "type": "int", "field-id": 517},
            {"name": "sequence_number", "type": "long", "field-id": 515},
            {"name": "min_sequence_number", "type": "long", "field-id": 516},
            {"name": "added_snapshot_id", "type": "long", "field-id": 503},
            {"name": "added_files_count", "type": "int", "field-id": 504},
            {"name": "existing_files_count", "type": "int", "field-id": 505},
            {"name": "deleted_files_count", "type": "int", "field-id": 506},
            {"name": "added_rows_count", "type": "long", "field-id": 512},
            {"name": "existing_rows_count", "type": "long", "field-id": 513},
            {"name": "deleted_rows_count", "type": "long", "field-id": 514},
            {"name": "partitions", "default": null, "field-id": 507, "type": ["null", {
                "type": "array",
                "element-id": 508,
                "items": {
                    "type": "record",
                    "name": "r508",
                    "fields": [
                        {"name": "contains_null", "type": "boolean", "field-id": 509},
                        {"name": "contains_nan", "type": ["null", "boolean"], "default": null, "field-id": 518},
                        {"name": "lower_bound", "type": ["null", "bytes"], "default": null, "field-id": 510},
                        {"name": "upper_bound", "type": ["null", "bytes"], "default": null, "field-id": 511}
                    ]
                }
            }]}
        ]
    })
}

/// A snapshot of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Its id.
    #[serde(rename = "snapshot-id")]
    pub snapshot_id: i64,
    /// The snapshot it follows.
    #[serde(
        rename = "parent-snapshot-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_snapshot_id: Option<i64>,
    /// Its sequence number.
    #[serde(rename = "sequence-number")]
    pub sequence_number: i64,
    /// When it was made.
    #[serde(rename = "timestamp-ms")]
    pub timestamp_ms: i64,
    /// Its manifest list's location.
    #[serde(rename = "manifest-list")]
    pub manifest_list: String,
    /// `operation` and the totals; citrine adds `citrine.run-id` and `citrine.marker`.
    pub summary: BTreeMap<String, String>,
    /// The schema it was written with.
    #[serde(rename = "schema-id", default, skip_serializing_if = "Option::is_none")]
    pub schema_id: Option<i32>,
}

/// The summary key naming the citrine run a snapshot published.
pub const RUN_ID_KEY: &str = "citrine.run-id";
/// The summary key holding that run's marker.
pub const MARKER_KEY: &str = "citrine.marker";

/// A table's metadata file (the fields citrine reads and writes; any other is kept as it is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableMetadata {
    /// 2.
    #[serde(rename = "format-version")]
    pub format_version: u8,
    /// The table's id.
    #[serde(rename = "table-uuid")]
    pub table_uuid: String,
    /// Where the table lives (`…/data/<table>`).
    pub location: String,
    /// The highest sequence number given.
    #[serde(rename = "last-sequence-number")]
    pub last_sequence_number: i64,
    /// When the metadata last changed.
    #[serde(rename = "last-updated-ms")]
    pub last_updated_ms: i64,
    /// The highest field id given.
    #[serde(rename = "last-column-id")]
    pub last_column_id: i32,
    /// Every schema the table had.
    pub schemas: Vec<IcebergSchema>,
    /// The current one.
    #[serde(rename = "current-schema-id")]
    pub current_schema_id: i32,
    /// Partition specs.
    #[serde(rename = "partition-specs")]
    pub partition_specs: Vec<Json>,
    /// The default spec.
    #[serde(rename = "default-spec-id")]
    pub default_spec_id: i32,
    /// The highest partition field id given.
    #[serde(rename = "last-partition-id")]
    pub last_partition_id: i32,
    /// Table properties (the name mapping among them).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// The current snapshot, once there is one.
    #[serde(
        rename = "current-snapshot-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_snapshot_id: Option<i64>,
    /// Snapshots kept.
    #[serde(default)]
    pub snapshots: Vec<Snapshot>,
    /// When each snapshot became current.
    #[serde(rename = "snapshot-log", default)]
    pub snapshot_log: Vec<Json>,
    /// Earlier metadata files.
    #[serde(rename = "metadata-log", default)]
    pub metadata_log: Vec<Json>,
    /// Sort orders (citrine's files are unsorted: order 0, no fields).
    #[serde(rename = "sort-orders")]
    pub sort_orders: Vec<Json>,
    /// The default sort order.
    #[serde(rename = "default-sort-order-id")]
    pub default_sort_order_id: i32,
    /// Branches and tags (`main`).
    #[serde(default)]
    pub refs: BTreeMap<String, Json>,
    /// Whatever else another writer put there.
    #[serde(flatten)]
    pub other: BTreeMap<String, Json>,
}

impl TableMetadata {
    /// The current schema.
    pub fn schema(&self) -> Result<&IcebergSchema> {
        self.schemas
            .iter()
            .find(|s| s.schema_id == self.current_schema_id)
            .ok_or_else(|| Error::Internal {
                message: "Iceberg metadata without its current schema".into(),
            })
    }

    /// The current snapshot.
    pub fn current(&self) -> Option<&Snapshot> {
        let id = self.current_snapshot_id?;
        self.snapshots.iter().find(|s| s.snapshot_id == id)
    }

    /// The snapshot (among those kept) that published citrine's run `run_id`.
    pub fn snapshot_of_run(&self, run_id: &str) -> Option<&Snapshot> {
        self.snapshots
            .iter()
            .find(|s| s.summary.get(RUN_ID_KEY).is_some_and(|r| r == run_id))
    }
}

/// Iceberg's single-value serialization of a partition bound: a string's UTF-8 bytes, a
/// date's days as a 4-byte little-endian int.
pub fn bound_string(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// See [`bound_string`].
pub fn bound_date(days: i32) -> Vec<u8> {
    days.to_le_bytes().to_vec()
}

/// The version of a metadata file named `v<N>.metadata.json`.
pub fn version_of(key: &str) -> Option<u64> {
    let name = key.rsplit('/').next()?;
    name.strip_prefix('v')?
        .strip_suffix(".metadata.json")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field as ArrowField;

    #[test]
    fn field_ids_stay_and_new_columns_follow() {
        let v1 = Schema::new(vec![
            ArrowField::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            ArrowField::new(CUSTOMER, DataType::Utf8, true),
            ArrowField::new(DT, DataType::Date32, true),
            ArrowField::new("user", DataType::Utf8, true),
        ]);
        let (s1, last) = IcebergSchema::of(&v1, None, 0, 0).unwrap();
        assert_eq!(last, 4);
        assert_eq!(
            s1.fields
                .iter()
                .map(|f| (f.id, f.kind.as_str()))
                .collect::<Vec<_>>(),
            [
                (1, "timestamptz"),
                (2, "string"),
                (3, "date"),
                (4, "string")
            ]
        );
        let mut fields: Vec<_> = v1.fields().iter().cloned().collect();
        fields.push(std::sync::Arc::new(ArrowField::new(
            "action",
            DataType::Utf8,
            true,
        )));
        let v2 = Schema::new(fields);
        let (s2, last) = IcebergSchema::of(&v2, Some(&s1), last, 1).unwrap();
        assert_eq!(last, 5);
        assert_eq!(s2.id_of("action").unwrap(), 5);
        assert_eq!(s2.id_of("user").unwrap(), 4);
        let spec = partition_spec(&s2).unwrap();
        assert_eq!(spec["fields"][1]["source-id"], 3);
        assert!(s2
            .name_mapping()
            .contains(r#"{"field-id":5,"names":["action"]}"#));
        assert!(IcebergSchema::of(
            &Schema::new(vec![ArrowField::new("x", DataType::UInt8, true)]),
            None,
            0,
            0
        )
        .is_err());
    }

    #[test]
    fn bounds_are_single_values() {
        assert_eq!(bound_string("acme"), b"acme");
        assert_eq!(bound_date(19_000), 19_000i32.to_le_bytes());
    }
}
