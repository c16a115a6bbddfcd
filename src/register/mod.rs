//! Catalogs: where tables and their partitions are registered so engines find them without
//! a crawler. Partitions are registered only after their data files have landed, and
//! registering one twice is success.

pub mod glue;
pub mod local;
pub mod sync;

use arrow::datatypes::{DataType, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::commit::report::ColumnRecord;
use crate::error::{Error, Result};
use crate::partition::PartitionKey;

pub use glue::GlueCatalog;
pub use local::LocalCatalog;

/// One registered partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Partition values, in key order (`customer`, `dt`).
    pub values: Vec<String>,
    /// Its folder URL.
    pub location: String,
}

/// The catalog `job` registers partitions in.
pub fn open(
    job: &crate::config::Job,
    stores: &crate::store::Stores,
    lake: &crate::lake::Lake,
) -> Box<dyn Catalog> {
    match &job.catalog {
        crate::config::CatalogKind::Local => Box::new(LocalCatalog::new(lake, &job.database)),
        crate::config::CatalogKind::Glue { catalog_id } => Box::new(GlueCatalog::new(
            stores.aws(),
            &job.database,
            catalog_id.clone(),
        )),
    }
}

/// What a run needs from a catalog.
pub trait Catalog: Send {
    /// The table's columns in file order (`customer` and `dt` included), if it exists.
    fn columns(&self, table: &str) -> Result<Option<Vec<ColumnRecord>>>;

    /// Create the table, or grow its schema at the end to `columns`. Returns the schema
    /// version after the change. Reordering or retyping an existing column is refused.
    fn ensure_table(
        &mut self,
        table: &str,
        columns: &[ColumnRecord],
        location: &str,
    ) -> Result<u64>;

    /// Register partitions; those already present are success. Returns how many were new.
    fn add_partitions(
        &mut self,
        table: &str,
        partitions: &[(PartitionKey, String)],
    ) -> Result<usize>;

    /// Every registered partition of `table` (none when the table does not exist).
    fn partitions(&self, table: &str) -> Result<Vec<PartitionRecord>>;

    /// Remove the partitions with these values; missing ones are ignored. Returns how many
    /// were removed.
    fn drop_partitions(&mut self, table: &str, values: &[Vec<String>]) -> Result<usize>;

    /// An Iceberg table's current metadata file (its URL), if the table is one.
    fn iceberg_metadata(&self, table: &str) -> Result<Option<String>>;

    /// Record `to` as the Iceberg table's current metadata file, if `from` still is (none:
    /// the table is new), creating the table at `location` with `columns` when it is: the
    /// commit point of an Iceberg snapshot. Another current file fails, changing nothing.
    fn set_iceberg_metadata(
        &mut self,
        table: &str,
        columns: &[ColumnRecord],
        location: &str,
        from: Option<&str>,
        to: &str,
    ) -> Result<()>;
}

/// The error of a catalog whose Iceberg metadata pointer is not the one a commit started from.
pub(crate) fn pointer_moved(table: &str, from: Option<&str>, found: Option<&str>) -> Error {
    Error::Catalog {
        table: table.to_owned(),
        source: format!(
            "the Iceberg table's current metadata changed during the commit (expected {}, found {})",
            from.unwrap_or("none"),
            found.unwrap_or("none")
        )
        .into(),
    }
}

/// The partition keys every catalog registers, in order: `customer` (string), `dt` (date).
pub fn partition_keys() -> [ColumnRecord; 2] {
    [
        ColumnRecord {
            name: crate::schema::CUSTOMER.into(),
            kind: "string".into(),
        },
        ColumnRecord {
            name: crate::schema::DT.into(),
            kind: "date".into(),
        },
    ]
}

/// True when `new` keeps every registered column, in place and with its type, and only adds
/// columns at the end: the one schema change citrine allows (Redshift COPY maps by position).
pub fn grows_at_end(registered: &[ColumnRecord], new: &[ColumnRecord]) -> bool {
    new.starts_with(registered)
}

/// The Hive / Glue type name of an Arrow type citrine writes.
pub fn hive_type(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 => "string".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Int32 => "int".into(),
        DataType::Float64 => "double".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => "timestamp".into(),
        DataType::Boolean => "boolean".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// The catalog columns of a table schema (all columns; `customer` and `dt` are both data
/// columns in the files and partition keys in the catalog).
pub fn columns_of(schema: &Schema) -> Vec<ColumnRecord> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnRecord {
            name: f.name().clone(),
            kind: hive_type(f.data_type()),
        })
        .collect()
}

/// String columns named `names` (a test helper shared by the catalogs' tests).
#[cfg(test)]
pub(crate) fn string_columns(names: &[&str]) -> Vec<ColumnRecord> {
    names
        .iter()
        .map(|n| ColumnRecord {
            name: (*n).into(),
            kind: "string".into(),
        })
        .collect()
}
