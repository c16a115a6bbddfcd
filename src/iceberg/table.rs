//! A lake table in Iceberg mode: its metadata files below `data/<table>/metadata/`
//! (`v<N>.metadata.json`, manifests and manifest lists as Avro), the current one recorded by
//! the catalog ([`Catalog::iceberg_metadata`]). Each commit writes one snapshot: the
//! manifest of the files it adds (and, for an overwrite or a replace, the manifests it
//! rewrites without the files it removes), a manifest list carrying every other manifest
//! forward, the next metadata file, and last the catalog's pointer to it (conditional on the
//! previous one): readers see the whole snapshot or none of it.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};

use arrow::datatypes::Schema;
use serde_json::json;

use super::avro::{self, Value};
use super::spec::{
    self, bound_date, bound_string, IcebergSchema, Snapshot, TableMetadata, MARKER_KEY, RUN_ID_KEY,
};
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::register::{columns_of, Catalog};
use crate::write::WrittenFile;

/// What a snapshot does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A run's files added (Iceberg's fast append).
    Append,
    /// Files rewritten without some rows (`forget --delete-rows`).
    Overwrite,
    /// Files rewritten into fewer (`compact`), the same rows.
    Replace,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Append => "append",
            Operation::Overwrite => "overwrite",
            Operation::Replace => "replace",
        }
    }
}

/// One commit to the table.
#[derive(Debug)]
pub struct Change<'a> {
    /// What it does.
    pub operation: Operation,
    /// The citrine run it publishes (in the snapshot's summary).
    pub run_id: &'a str,
    /// That run's marker (its URL, in the summary).
    pub marker: String,
    /// The table schema of the files.
    pub schema: &'a Schema,
    /// Data files added.
    pub added: &'a [WrittenFile],
    /// Keys of data files removed (rewritten or compacted).
    pub removed: &'a [String],
    /// When (milliseconds since the epoch).
    pub at_ms: i64,
}

/// A manifest entry's status.
const EXISTING: i32 = 0;
const ADDED: i32 = 1;
const DELETED: i32 = 2;

/// `data/<table>/metadata`.
pub fn metadata_prefix(lake: &Lake, table: &str) -> String {
    format!("{}/metadata", lake.data_prefix(table))
}

/// The key of a lake URL (`file://…` or `s3://…` below the lake root).
fn key_of(lake: &Lake, url: &str) -> Result<String> {
    let root = lake.url("");
    url.strip_prefix(root.trim_end_matches('/'))
        .map(|k| k.trim_start_matches('/').to_owned())
        .ok_or_else(|| Error::Corrupt {
            path: url.to_owned(),
            message: format!("an Iceberg file outside the lake {root}"),
        })
}

pub use super::spec::version_of;

/// A positive id from `seed` (snapshot ids; Iceberg wants them unique in a table).
fn id_of(seed: &str) -> i64 {
    (xxhash_rust::xxh3::xxh3_64(seed.as_bytes()) & (i64::MAX as u64)).max(1) as i64
}

fn uuid() -> String {
    let a = RandomState::new().hash_one("uuid-a");
    let b = RandomState::new().hash_one("uuid-b");
    let h = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Read the metadata file at `url`.
pub fn read_metadata(lake: &Lake, url: &str) -> Result<TableMetadata> {
    let key = key_of(lake, url)?;
    let found = lake.store().read(&key)?.ok_or_else(|| Error::Corrupt {
        path: url.to_owned(),
        message: "the catalog names an Iceberg metadata file that does not exist".into(),
    })?;
    serde_json::from_slice(&found.bytes).map_err(|e| Error::Corrupt {
        path: url.to_owned(),
        message: format!("Iceberg metadata: {e}"),
    })
}

/// The table's current metadata (its URL and content), if it has any.
pub fn current(
    lake: &Lake,
    table: &str,
    catalog: &dyn Catalog,
) -> Result<Option<(String, TableMetadata)>> {
    match catalog.iceberg_metadata(table)? {
        Some(url) => Ok(Some((url.clone(), read_metadata(lake, &url)?))),
        None => Ok(None),
    }
}

/// Whether the run `run_id` was published to the table (a snapshot of the current metadata
/// names it): what recovery asks of a run that died between its commit and its marker.
pub fn published(lake: &Lake, table: &str, catalog: &dyn Catalog, run_id: &str) -> Result<bool> {
    Ok(current(lake, table, catalog)?.is_some_and(|(_, m)| m.snapshot_of_run(run_id).is_some()))
}

/// One data file as a manifest records it.
#[derive(Debug, Clone)]
struct Entry {
    status: i32,
    snapshot_id: Option<i64>,
    sequence_number: Option<i64>,
    file_sequence_number: Option<i64>,
    path: String,
    customer: Option<String>,
    dt: Option<i32>,
    records: i64,
    bytes: i64,
}

fn opt_long(v: Option<i64>) -> Value {
    match v {
        Some(n) => Value::Union(1, Box::new(Value::Long(n))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

impl Entry {
    fn added(lake: &Lake, f: &WrittenFile, snapshot_id: i64) -> Self {
        Self {
            status: ADDED,
            snapshot_id: Some(snapshot_id),
            sequence_number: None,
            file_sequence_number: None,
            path: lake.url(&f.key),
            customer: Some(f.partition.customer.clone()),
            dt: Some(f.partition.dt),
            records: f.rows as i64,
            bytes: f.bytes as i64,
        }
    }

    fn record(&self) -> Value {
        let customer = match &self.customer {
            Some(c) => Value::Union(1, Box::new(Value::String(c.clone()))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        let dt = match self.dt {
            Some(d) => Value::Union(1, Box::new(Value::Int(d))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        Value::Record(vec![
            Value::Int(self.status),
            opt_long(self.snapshot_id),
            opt_long(self.sequence_number),
            opt_long(self.file_sequence_number),
            Value::Record(vec![
                Value::Int(0),
                Value::String(self.path.clone()),
                Value::String("PARQUET".into()),
                Value::Record(vec![customer, dt]),
                Value::Long(self.records),
                Value::Long(self.bytes),
            ]),
        ])
    }

    /// An entry of a manifest (any writer's: fields found by name).
    fn read(record: &Value, schema: &serde_json::Value, origin: &str) -> Result<Self> {
        let bad = || Error::Corrupt {
            path: origin.to_owned(),
            message: "a manifest entry citrine cannot read".into(),
        };
        let fields = field_map(record, schema).ok_or_else(bad)?;
        let file = fields.get("data_file").ok_or_else(bad)?;
        let file_schema = schema_of(schema, "data_file").ok_or_else(bad)?;
        let df = field_map(file.0, &file_schema).ok_or_else(bad)?;
        let partition = df.get("partition").ok_or_else(bad)?;
        let part_schema = schema_of(&file_schema, "partition").ok_or_else(bad)?;
        let p = field_map(partition.0, &part_schema).ok_or_else(bad)?;
        let long = |m: &BTreeMap<String, (&Value, serde_json::Value)>, k: &str| {
            m.get(k).and_then(|(v, _)| v.as_long())
        };
        Ok(Self {
            status: long(&fields, "status").ok_or_else(bad)? as i32,
            snapshot_id: long(&fields, "snapshot_id"),
            sequence_number: long(&fields, "sequence_number"),
            file_sequence_number: long(&fields, "file_sequence_number"),
            path: df
                .get("file_path")
                .and_then(|(v, _)| v.as_str())
                .ok_or_else(bad)?
                .to_owned(),
            customer: p
                .get(crate::schema::CUSTOMER)
                .and_then(|(v, _)| v.as_str())
                .map(str::to_owned),
            dt: p
                .get(crate::schema::DT)
                .and_then(|(v, _)| v.as_long())
                .map(|d| d as i32),
            records: long(&df, "record_count").ok_or_else(bad)?,
            bytes: long(&df, "file_size_in_bytes").ok_or_else(bad)?,
        })
    }
}

/// A record's fields by name, with each one's schema.
fn field_map<'v>(
    record: &'v Value,
    schema: &serde_json::Value,
) -> Option<BTreeMap<String, (&'v Value, serde_json::Value)>> {
    let Value::Record(values) = record else {
        return None;
    };
    let fields = schema.get("fields")?.as_array()?;
    Some(
        fields
            .iter()
            .zip(values)
            .filter_map(|(f, v)| Some((f["name"].as_str()?.to_owned(), (v, f["type"].clone()))))
            .collect(),
    )
}

/// The (record) schema of the field `name` of the record schema `schema`, unions unwrapped.
fn schema_of(schema: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    let field = schema
        .get("fields")?
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)?;
    let t = &field["type"];
    Some(match t {
        serde_json::Value::Array(branches) => branches.iter().find(|b| b != &"null")?.clone(),
        other => other.clone(),
    })
}

/// One manifest as a manifest list records it.
#[derive(Debug, Clone)]
struct ManifestFile {
    path: String,
    length: i64,
    sequence_number: i64,
    min_sequence_number: i64,
    added_snapshot_id: i64,
    counts: [i64; 6],
    partitions: Value,
}

impl ManifestFile {
    fn record(&self) -> Value {
        let [added_files, existing_files, deleted_files, added_rows, existing_rows, deleted_rows] =
            self.counts;
        Value::Record(vec![
            Value::String(self.path.clone()),
            Value::Long(self.length),
            Value::Int(spec::SPEC_ID),
            Value::Int(0),
            Value::Long(self.sequence_number),
            Value::Long(self.min_sequence_number),
            Value::Long(self.added_snapshot_id),
            Value::Int(added_files as i32),
            Value::Int(existing_files as i32),
            Value::Int(deleted_files as i32),
            Value::Long(added_rows),
            Value::Long(existing_rows),
            Value::Long(deleted_rows),
            self.partitions.clone(),
        ])
    }

    fn read(record: &Value, schema: &serde_json::Value, origin: &str) -> Result<Self> {
        let bad = || Error::Corrupt {
            path: origin.to_owned(),
            message: "a manifest list entry citrine cannot read".into(),
        };
        let m = field_map(record, schema).ok_or_else(bad)?;
        let long = |k: &str| m.get(k).and_then(|(v, _)| v.as_long()).unwrap_or(0);
        Ok(Self {
            path: m
                .get("manifest_path")
                .and_then(|(v, _)| v.as_str())
                .ok_or_else(bad)?
                .to_owned(),
            length: long("manifest_length"),
            sequence_number: long("sequence_number"),
            min_sequence_number: long("min_sequence_number"),
            added_snapshot_id: long("added_snapshot_id"),
            counts: [
                long("added_files_count"),
                long("existing_files_count"),
                long("deleted_files_count"),
                long("added_rows_count"),
                long("existing_rows_count"),
                long("deleted_rows_count"),
            ],
            partitions: normalised_partitions(m.get("partitions").map(|(v, _)| *v)),
        })
    }
}

/// A manifest list's `partitions` as citrine writes the field (`["null", array]`).
fn normalised_partitions(v: Option<&Value>) -> Value {
    match v.and_then(Value::optional) {
        Some(Value::Array(items)) => Value::Union(1, Box::new(Value::Array(items.clone()))),
        _ => Value::Union(0, Box::new(Value::Null)),
    }
}

/// The partition summaries of `entries` (live ones): no nulls, the bounds of each field.
fn partition_summary(entries: &[Entry]) -> Value {
    let live: Vec<&Entry> = entries.iter().filter(|e| e.status != DELETED).collect();
    let customers: BTreeSet<&str> = live.iter().filter_map(|e| e.customer.as_deref()).collect();
    let dts: BTreeSet<i32> = live.iter().filter_map(|e| e.dt).collect();
    let bound = |b: Option<Vec<u8>>| match b {
        Some(bytes) => Value::Union(1, Box::new(Value::Bytes(bytes))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    let summary = |lower: Option<Vec<u8>>, upper: Option<Vec<u8>>| {
        Value::Record(vec![
            Value::Boolean(false),
            Value::Union(0, Box::new(Value::Null)),
            bound(lower),
            bound(upper),
        ])
    };
    Value::Union(
        1,
        Box::new(Value::Array(vec![
            summary(
                customers.first().map(|c| bound_string(c)),
                customers.last().map(|c| bound_string(c)),
            ),
            summary(
                dts.first().map(|d| bound_date(*d)),
                dts.last().map(|d| bound_date(*d)),
            ),
        ])),
    )
}

/// Write a manifest of `entries` at `key`: its record in a manifest list.
fn write_manifest(
    lake: &Lake,
    key: &str,
    schema: &IcebergSchema,
    entries: &[Entry],
    snapshot_id: i64,
    sequence_number: i64,
) -> Result<ManifestFile> {
    let records: Vec<Value> = entries.iter().map(Entry::record).collect();
    let metadata = [
        ("schema", serde_json::to_string(schema).expect("plain data")),
        ("schema-id", schema.schema_id.to_string()),
        (
            "partition-spec",
            spec::partition_spec(schema)?["fields"].to_string(),
        ),
        ("partition-spec-id", spec::SPEC_ID.to_string()),
        ("format-version", spec::FORMAT_VERSION.to_string()),
        ("content", "data".to_owned()),
    ];
    let sync = sync_marker(key);
    let bytes = avro::container(&spec::manifest_entry_schema(), &metadata, &records, sync);
    lake.store().write(key, &bytes)?;
    let count = |status: i32| entries.iter().filter(|e| e.status == status).count() as i64;
    let rows = |status: i32| {
        entries
            .iter()
            .filter(|e| e.status == status)
            .map(|e| e.records)
            .sum::<i64>()
    };
    let min_seq = entries
        .iter()
        .filter_map(|e| e.sequence_number)
        .min()
        .unwrap_or(sequence_number)
        .min(sequence_number);
    Ok(ManifestFile {
        path: lake.url(key),
        length: bytes.len() as i64,
        sequence_number,
        min_sequence_number: min_seq,
        added_snapshot_id: snapshot_id,
        counts: [
            count(ADDED),
            count(EXISTING),
            count(DELETED),
            rows(ADDED),
            rows(EXISTING),
            rows(DELETED),
        ],
        partitions: partition_summary(entries),
    })
}

fn sync_marker(seed: &str) -> [u8; 16] {
    let a = xxhash_rust::xxh3::xxh3_128(seed.as_bytes());
    a.to_le_bytes()
}

/// The manifests of a snapshot's manifest list.
fn read_manifest_list(lake: &Lake, url: &str) -> Result<Vec<ManifestFile>> {
    let key = key_of(lake, url)?;
    let found = lake.store().read(&key)?.ok_or_else(|| Error::Corrupt {
        path: url.to_owned(),
        message: "a snapshot's manifest list is missing".into(),
    })?;
    let c = avro::read_container(&found.bytes, url)?;
    let schema: serde_json::Value =
        serde_json::from_str(&c.meta("avro.schema").unwrap_or_default()).unwrap_or_default();
    c.records
        .iter()
        .map(|r| ManifestFile::read(r, &schema, url))
        .collect()
}

/// The entries of a manifest, their inherited sequence numbers made explicit from `m`.
fn read_manifest(lake: &Lake, m: &ManifestFile) -> Result<Vec<Entry>> {
    let key = key_of(lake, &m.path)?;
    let found = lake.store().read(&key)?.ok_or_else(|| Error::Corrupt {
        path: m.path.clone(),
        message: "a manifest is missing".into(),
    })?;
    let c = avro::read_container(&found.bytes, &m.path)?;
    let schema: serde_json::Value =
        serde_json::from_str(&c.meta("avro.schema").unwrap_or_default()).unwrap_or_default();
    c.records
        .iter()
        .map(|r| {
            let mut e = Entry::read(r, &schema, &m.path)?;
            if e.status == ADDED {
                e.sequence_number = e.sequence_number.or(Some(m.sequence_number));
                e.file_sequence_number = e.file_sequence_number.or(Some(m.sequence_number));
                e.snapshot_id = e.snapshot_id.or(Some(m.added_snapshot_id));
            }
            Ok(e)
        })
        .collect()
}

/// The table's live data files (URLs), as its current snapshot has them.
pub fn live_files(lake: &Lake, metadata: &TableMetadata) -> Result<Vec<String>> {
    let Some(snapshot) = metadata.current() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for m in read_manifest_list(lake, &snapshot.manifest_list)? {
        for e in read_manifest(lake, &m)? {
            if e.status != DELETED {
                out.push(e.path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The keys of the table's live data files (none when it has no snapshot).
pub fn live_keys(
    lake: &Lake,
    table: &str,
    catalog: &dyn Catalog,
) -> Result<std::collections::HashSet<String>> {
    let Some((_, metadata)) = current(lake, table, catalog)? else {
        return Ok(Default::default());
    };
    live_files(lake, &metadata)?
        .iter()
        .map(|url| key_of(lake, url))
        .collect()
}

/// Metadata for a new table at `location`.
fn new_metadata(
    location: String,
    schema: IcebergSchema,
    last_column_id: i32,
    at_ms: i64,
) -> Result<TableMetadata> {
    let spec = spec::partition_spec(&schema)?;
    let mut properties = BTreeMap::new();
    properties.insert("schema.name-mapping.default".into(), schema.name_mapping());
    properties.insert("write.format.default".into(), "parquet".into());
    Ok(TableMetadata {
        format_version: spec::FORMAT_VERSION,
        table_uuid: uuid(),
        location,
        last_sequence_number: 0,
        last_updated_ms: at_ms,
        last_column_id,
        current_schema_id: schema.schema_id,
        schemas: vec![schema],
        partition_specs: vec![spec],
        default_spec_id: spec::SPEC_ID,
        last_partition_id: spec::DT_FIELD_ID,
        properties,
        current_snapshot_id: None,
        snapshots: Vec::new(),
        snapshot_log: Vec::new(),
        metadata_log: Vec::new(),
        sort_orders: vec![json!({"order-id": 0, "fields": []})],
        default_sort_order_id: 0,
        refs: BTreeMap::new(),
        other: BTreeMap::new(),
    })
}

/// Commit `change` to `table` as one snapshot, recorded by `catalog` last. Returns the
/// snapshot.
pub fn commit(
    lake: &Lake,
    table: &str,
    catalog: &mut dyn Catalog,
    change: &Change,
) -> Result<Snapshot> {
    let prefix = metadata_prefix(lake, table);
    let location = lake.url(&lake.data_prefix(table));
    let base = current(lake, table, catalog)?;
    let (base_url, mut metadata) = match base {
        Some((url, m)) => (Some(url), m),
        None => {
            let (schema, last) = IcebergSchema::of(change.schema, None, 0, 0)?;
            (
                None,
                new_metadata(location.clone(), schema, last, change.at_ms)?,
            )
        }
    };
    // Additive schema evolution: a schema with the new columns at the end, ids kept.
    let previous = metadata.schema()?.clone();
    let next_schema_id = metadata
        .schemas
        .iter()
        .map(|s| s.schema_id)
        .max()
        .unwrap_or(0)
        + 1;
    let (schema, last) = IcebergSchema::of(
        change.schema,
        Some(&previous),
        metadata.last_column_id,
        next_schema_id,
    )?;
    let schema = if schema.same_fields(&previous) {
        previous
    } else {
        metadata.last_column_id = last;
        metadata.current_schema_id = schema.schema_id;
        metadata.schemas.push(schema.clone());
        metadata
            .properties
            .insert("schema.name-mapping.default".into(), schema.name_mapping());
        schema
    };

    let sequence_number = metadata.last_sequence_number + 1;
    let snapshot_id = id_of(&format!(
        "{table}/{}/{}",
        change.run_id,
        change.operation.name()
    ));
    let parent = metadata.current().cloned();
    let mut manifests = match &parent {
        Some(p) => read_manifest_list(lake, &p.manifest_list)?,
        None => Vec::new(),
    };
    let removed: BTreeSet<String> = change.removed.iter().map(|k| lake.url(k)).collect();
    let (mut deleted_files, mut deleted_records, mut deleted_bytes) = (0i64, 0i64, 0i64);
    if !removed.is_empty() {
        // Manifests that hold a removed file are written again: it DELETED, the rest EXISTING.
        let mut kept = Vec::with_capacity(manifests.len());
        for (n, m) in manifests.into_iter().enumerate() {
            let entries = read_manifest(lake, &m)?;
            if !entries
                .iter()
                .any(|e| e.status != DELETED && removed.contains(&e.path))
            {
                kept.push(m);
                continue;
            }
            let rewritten: Vec<Entry> = entries
                .into_iter()
                .filter(|e| e.status != DELETED)
                .map(|mut e| {
                    if removed.contains(&e.path) {
                        deleted_files += 1;
                        deleted_records += e.records;
                        deleted_bytes += e.bytes;
                        e.status = DELETED;
                        e.snapshot_id = Some(snapshot_id);
                    } else {
                        e.status = EXISTING;
                    }
                    e
                })
                .collect();
            let key = format!("{prefix}/{}-r{n}.avro", change.run_id);
            kept.push(write_manifest(
                lake,
                &key,
                &schema,
                &rewritten,
                snapshot_id,
                sequence_number,
            )?);
        }
        manifests = kept;
    }
    if !change.added.is_empty() {
        let entries: Vec<Entry> = change
            .added
            .iter()
            .map(|f| Entry::added(lake, f, snapshot_id))
            .collect();
        let key = format!("{prefix}/{}-m0.avro", change.run_id);
        manifests.push(write_manifest(
            lake,
            &key,
            &schema,
            &entries,
            snapshot_id,
            sequence_number,
        )?);
    }
    let list_key = format!("{prefix}/snap-{snapshot_id}-{}.avro", change.run_id);
    let list_meta = [
        ("snapshot-id", snapshot_id.to_string()),
        (
            "parent-snapshot-id",
            parent
                .as_ref()
                .map_or("null".into(), |p| p.snapshot_id.to_string()),
        ),
        ("sequence-number", sequence_number.to_string()),
        ("format-version", spec::FORMAT_VERSION.to_string()),
    ];
    let records: Vec<Value> = manifests.iter().map(ManifestFile::record).collect();
    let list = avro::container(
        &spec::manifest_file_schema(),
        &list_meta,
        &records,
        sync_marker(&list_key),
    );
    lake.store().write(&list_key, &list)?;

    let added_records: i64 = change.added.iter().map(|f| f.rows as i64).sum();
    let added_bytes: i64 = change.added.iter().map(|f| f.bytes as i64).sum();
    let total = |key: &str| -> i64 {
        parent
            .as_ref()
            .and_then(|p| p.summary.get(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut summary = BTreeMap::new();
    summary.insert("operation".to_owned(), change.operation.name().to_owned());
    let figures = [
        ("added-data-files", change.added.len() as i64),
        ("added-records", added_records),
        ("added-files-size", added_bytes),
        ("deleted-data-files", deleted_files),
        ("deleted-records", deleted_records),
        ("removed-files-size", deleted_bytes),
        (
            "total-data-files",
            total("total-data-files") + change.added.len() as i64 - deleted_files,
        ),
        (
            "total-records",
            total("total-records") + added_records - deleted_records,
        ),
        (
            "total-files-size",
            total("total-files-size") + added_bytes - deleted_bytes,
        ),
        ("total-delete-files", 0),
        ("total-position-deletes", 0),
        ("total-equality-deletes", 0),
    ];
    for (k, v) in figures {
        summary.insert(k.to_owned(), v.to_string());
    }
    summary.insert(RUN_ID_KEY.to_owned(), change.run_id.to_owned());
    summary.insert(MARKER_KEY.to_owned(), change.marker.clone());
    let snapshot = Snapshot {
        snapshot_id,
        parent_snapshot_id: parent.as_ref().map(|p| p.snapshot_id),
        sequence_number,
        timestamp_ms: change.at_ms,
        manifest_list: lake.url(&list_key),
        summary,
        schema_id: Some(schema.schema_id),
    };
    metadata.snapshots.retain(|s| s.snapshot_id != snapshot_id);
    metadata.snapshots.push(snapshot.clone());
    metadata.current_snapshot_id = Some(snapshot_id);
    metadata.last_sequence_number = sequence_number;
    metadata.last_updated_ms = change.at_ms;
    metadata
        .snapshot_log
        .push(json!({"timestamp-ms": change.at_ms, "snapshot-id": snapshot_id}));
    if let Some(url) = &base_url {
        metadata
            .metadata_log
            .push(json!({"timestamp-ms": change.at_ms, "metadata-file": url}));
    }
    metadata.refs.insert(
        "main".into(),
        json!({"snapshot-id": snapshot_id, "type": "branch"}),
    );
    publish_metadata(
        lake,
        table,
        catalog,
        base_url.as_deref(),
        &metadata,
        &schema,
    )?;
    Ok(snapshot)
}

/// Write `metadata` as the next metadata file and point the catalog at it (conditional on
/// `base_url` still being current). A file of that name left by a commit that died before
/// its catalog update is garbage (the catalog points below it) and is written over.
fn publish_metadata(
    lake: &Lake,
    table: &str,
    catalog: &mut dyn Catalog,
    base_url: Option<&str>,
    metadata: &TableMetadata,
    schema: &IcebergSchema,
) -> Result<String> {
    let version = base_url.and_then(version_of).unwrap_or(0) + 1;
    let key = format!("{}/v{version}.metadata.json", metadata_prefix(lake, table));
    let text = serde_json::to_vec_pretty(metadata).expect("plain data");
    lake.store().write(&key, &text)?;
    let url = lake.url(&key);
    let columns = columns_of_iceberg(schema);
    catalog.set_iceberg_metadata(table, &columns, &metadata.location, base_url, &url)?;
    Ok(url)
}

/// The catalog columns of an Iceberg schema.
fn columns_of_iceberg(schema: &IcebergSchema) -> Vec<crate::commit::report::ColumnRecord> {
    let fields: Vec<arrow::datatypes::Field> = schema
        .fields
        .iter()
        .map(|f| {
            let t = match f.kind.as_str() {
                "long" => arrow::datatypes::DataType::Int64,
                "int" => arrow::datatypes::DataType::Int32,
                "double" => arrow::datatypes::DataType::Float64,
                "boolean" => arrow::datatypes::DataType::Boolean,
                "date" => arrow::datatypes::DataType::Date32,
                "timestamptz" | "timestamp" => arrow::datatypes::DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Microsecond,
                    None,
                ),
                _ => arrow::datatypes::DataType::Utf8,
            };
            arrow::datatypes::Field::new(&f.name, t, true)
        })
        .collect();
    columns_of(&Schema::new(fields))
}

/// What [`expire`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Expired {
    /// Snapshots dropped from the table's metadata.
    pub snapshots: usize,
    /// Data files deleted (no snapshot left names them).
    pub data_files: usize,
    /// Manifests and manifest lists deleted.
    pub metadata_files: usize,
}

/// The files a snapshot reaches: its manifest list, its manifests, and the data files its
/// manifests name as live.
fn reachable(lake: &Lake, snapshot: &Snapshot) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let mut metadata = BTreeSet::from([snapshot.manifest_list.clone()]);
    let mut data = BTreeSet::new();
    for m in read_manifest_list(lake, &snapshot.manifest_list)? {
        for e in read_manifest(lake, &m)? {
            if e.status != DELETED {
                data.insert(e.path);
            }
        }
        metadata.insert(m.path);
    }
    Ok((metadata, data))
}

/// Expire the snapshots made before `before_ms` (never the current one): drop them from the
/// table's metadata (a new metadata file, the catalog pointed at it), then delete the files
/// only they reached: data files a rewrite replaced, and their manifests and manifest lists.
/// Readers of the snapshots kept lose nothing.
pub fn expire(
    lake: &Lake,
    table: &str,
    catalog: &mut dyn Catalog,
    before_ms: i64,
    at_ms: i64,
) -> Result<Expired> {
    let Some((base_url, mut metadata)) = current(lake, table, catalog)? else {
        return Ok(Expired::default());
    };
    let current_id = metadata.current_snapshot_id;
    let (old, kept): (Vec<Snapshot>, Vec<Snapshot>) = metadata
        .snapshots
        .iter()
        .cloned()
        .partition(|s| s.timestamp_ms < before_ms && Some(s.snapshot_id) != current_id);
    if old.is_empty() {
        return Ok(Expired::default());
    }
    let (mut keep_meta, mut keep_data) = (BTreeSet::new(), BTreeSet::new());
    for s in &kept {
        let (m, d) = reachable(lake, s)?;
        keep_meta.extend(m);
        keep_data.extend(d);
    }
    let (mut old_meta, mut old_data) = (BTreeSet::new(), BTreeSet::new());
    for s in &old {
        let (m, d) = reachable(lake, s)?;
        old_meta.extend(m);
        old_data.extend(d);
    }
    let dropped: BTreeSet<i64> = old.iter().map(|s| s.snapshot_id).collect();
    metadata.snapshots = kept;
    metadata.snapshot_log.retain(|e| {
        e.get("snapshot-id")
            .and_then(serde_json::Value::as_i64)
            .is_none_or(|id| !dropped.contains(&id))
    });
    metadata.last_updated_ms = at_ms;
    metadata
        .metadata_log
        .push(json!({"timestamp-ms": at_ms, "metadata-file": base_url}));
    let schema = metadata.schema()?.clone();
    publish_metadata(lake, table, catalog, Some(&base_url), &metadata, &schema)?;
    let mut done = Expired {
        snapshots: old.len(),
        ..Default::default()
    };
    for url in old_data.difference(&keep_data) {
        lake.store().delete(&key_of(lake, url)?)?;
        done.data_files += 1;
    }
    for url in old_meta.difference(&keep_meta) {
        lake.store().delete(&key_of(lake, url)?)?;
        done.metadata_files += 1;
    }
    Ok(done)
}

/// The schema version a commit of `schema` leaves the table at: the number of schemas its
/// metadata will hold (1 for a new table; one more when `schema` adds columns).
pub fn schema_version(
    lake: &Lake,
    table: &str,
    catalog: &dyn Catalog,
    schema: &Schema,
) -> Result<u64> {
    let Some((_, metadata)) = current(lake, table, catalog)? else {
        return Ok(1);
    };
    let previous = metadata.schema()?;
    let (next, _) = IcebergSchema::of(schema, Some(previous), metadata.last_column_id, 0)?;
    let known = metadata.schemas.len() as u64;
    Ok(if next.same_fields(previous) {
        known
    } else {
        known + 1
    })
}

/// Point the catalog at the newest metadata file whose current snapshot is a committed run's
/// (`committed` says which runs have a marker), or that has no snapshot: what `catalog sync`
/// repairs after a commit that died between its metadata file and the catalog's update, or
/// a catalog entry lost. Returns the metadata file now current, if any.
pub fn repair_pointer(
    lake: &Lake,
    table: &str,
    catalog: &mut dyn Catalog,
    committed: &dyn Fn(&str) -> bool,
) -> Result<Option<String>> {
    let prefix = metadata_prefix(lake, table);
    let mut versions: Vec<(u64, String)> = lake
        .store()
        .list(&prefix)?
        .into_iter()
        .filter_map(|o| version_of(&o.key).map(|v| (v, o.key)))
        .collect();
    versions.sort();
    let current = catalog.iceberg_metadata(table)?;
    for (_, key) in versions.into_iter().rev() {
        let url = lake.url(&key);
        let metadata = read_metadata(lake, &url)?;
        let good = match metadata.current() {
            None => true,
            Some(s) => s.summary.get(RUN_ID_KEY).is_none_or(|r| committed(r)),
        };
        if !good {
            continue;
        }
        if current.as_deref() != Some(url.as_str()) {
            let columns = columns_of_iceberg(metadata.schema()?);
            catalog.set_iceberg_metadata(
                table,
                &columns,
                &metadata.location,
                current.as_deref(),
                &url,
            )?;
        }
        return Ok(Some(url));
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_versions_come_from_their_names() {
        assert_eq!(version_of("data/t/metadata/v12.metadata.json"), Some(12));
        assert_eq!(
            version_of("s3://b/lake/data/t/metadata/v1.metadata.json"),
            Some(1)
        );
        assert_eq!(version_of("data/t/metadata/snap-1.avro"), None);
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(
            u.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(id_of("a") > 0 && id_of("a") != id_of("b"));
    }
}
