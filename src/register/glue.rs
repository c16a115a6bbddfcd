//! The AWS Glue Data Catalog (docs/design.md section 5): tables are EXTERNAL_TABLEs with
//! `classification=parquet`, ParquetHiveSerDe and the Mapred Parquet formats, partitioned by
//! `customer` (string) and `dt` (date). Partitions are registered with BatchCreatePartition in
//! chunks of 100, checking every entry's error: AlreadyExists is success, throttling is retried
//! with backoff, anything else fails the run before its marker. The schema grows at the end
//! only, with UpdateTable guarded by the table's VersionId.
//!
//! Glue keeps partition keys apart from the data columns, while citrine's files also carry
//! `customer` and `dt` as data columns (Redshift COPY cannot read path values). So the data
//! columns in Glue are the file columns without the two keys, and [`GlueCatalog::columns`]
//! puts the keys back in their file position, right after `ts`.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_glue::error::ProvideErrorMetadata;
use aws_sdk_glue::types::{
    Column, DatabaseInput, PartitionInput, PartitionValueList, SerDeInfo, StorageDescriptor,
    TableInput,
};

use super::{partition_keys, Catalog, PartitionRecord};
use crate::aws::{block_on, AwsContext, SdkFailure};

/// A failed `CreateTable` (boxed: the SDK's error is hundreds of bytes).
type CreateFailure = Box<
    aws_sdk_glue::error::SdkError<
        aws_sdk_glue::operation::create_table::CreateTableError,
        aws_sdk_glue::config::http::HttpResponse,
    >,
>;
/// A failed `UpdateTable`.
type UpdateFailure = Box<
    aws_sdk_glue::error::SdkError<
        aws_sdk_glue::operation::update_table::UpdateTableError,
        aws_sdk_glue::config::http::HttpResponse,
    >,
>;
use crate::commit::report::ColumnRecord;
use crate::error::{Error, Result};
use crate::partition::PartitionKey;
use crate::schema::{CUSTOMER, DT};

/// Partitions per BatchCreatePartition call (Glue's limit).
pub const CREATE_CHUNK: usize = 100;
/// Partitions per BatchDeletePartition call (Glue's limit).
pub const DELETE_CHUNK: usize = 25;
/// Attempts for entries that Glue throttles.
const ATTEMPTS: u32 = 6;

/// Glue table parameter holding citrine's schema version.
pub const SCHEMA_VERSION_PARAM: &str = "citrine_schema_version";
/// Glue table parameter naming an Iceberg table's kind (`ICEBERG`), as Athena and Spark read it.
pub const TABLE_TYPE_PARAM: &str = "table_type";
/// [`TABLE_TYPE_PARAM`]'s value for an Iceberg table.
pub const ICEBERG: &str = "ICEBERG";
/// Glue table parameter holding an Iceberg table's current metadata file.
pub const METADATA_LOCATION_PARAM: &str = "metadata_location";
/// Glue table parameter holding the metadata file before it.
pub const PREVIOUS_METADATA_LOCATION_PARAM: &str = "previous_metadata_location";

const INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
const SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";

/// A Glue database as a catalog.
#[derive(Debug, Clone)]
pub struct GlueCatalog {
    client: aws_sdk_glue::Client,
    database: String,
    catalog_id: Option<String>,
    database_checked: bool,
}

/// Split file columns into Glue data columns (keys removed).
pub fn data_columns(columns: &[ColumnRecord]) -> Vec<ColumnRecord> {
    columns
        .iter()
        .filter(|c| c.name != CUSTOMER && c.name != DT)
        .cloned()
        .collect()
}

/// File columns from Glue data columns: the keys go back right after the first column (`ts`).
pub fn file_columns(data: &[ColumnRecord]) -> Vec<ColumnRecord> {
    let mut out = Vec::with_capacity(data.len() + 2);
    out.extend(data.first().cloned());
    out.extend(partition_keys());
    out.extend(data.iter().skip(1).cloned());
    out
}

fn glue_columns(columns: &[ColumnRecord]) -> Result<Vec<Column>> {
    columns
        .iter()
        .map(|c| {
            Column::builder()
                .name(&c.name)
                .r#type(&c.kind)
                .build()
                .map_err(|e| Error::Catalog {
                    table: c.name.clone(),
                    source: Box::new(e),
                })
        })
        .collect()
}

fn records(columns: &[Column]) -> Vec<ColumnRecord> {
    columns
        .iter()
        .map(|c| ColumnRecord {
            name: c.name().to_owned(),
            kind: c.r#type().unwrap_or("string").to_owned(),
        })
        .collect()
}

/// The storage descriptor of the table or one of its partitions.
fn descriptor(location: &str, columns: Vec<Column>) -> StorageDescriptor {
    StorageDescriptor::builder()
        .set_columns(Some(columns))
        .location(location)
        .input_format(INPUT_FORMAT)
        .output_format(OUTPUT_FORMAT)
        .compressed(false)
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(SERDE)
                .parameters("serialization.format", "1")
                .build(),
        )
        .parameters("classification", "parquet")
        .build()
}

/// True for the error codes worth retrying after a pause.
fn retryable(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "ConcurrentModificationException"
            | "InternalServiceException"
            | "OperationTimeoutException"
    )
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64 << attempt.min(6))
}

impl GlueCatalog {
    /// The catalog of `database` (created on first use), in `catalog_id` when given.
    pub fn new(aws: &AwsContext, database: &str, catalog_id: Option<String>) -> Self {
        Self {
            client: aws.glue(),
            database: database.to_owned(),
            catalog_id,
            database_checked: false,
        }
    }

    fn error(&self, table: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Catalog {
            table: format!("{}.{table}", self.database),
            source: SdkFailure::boxed(e),
        }
    }

    /// Create the table `input` describes.
    fn create_table(&self, input: TableInput) -> std::result::Result<(), CreateFailure> {
        block_on(
            self.client
                .create_table()
                .set_catalog_id(self.catalog_id.clone())
                .database_name(&self.database)
                .table_input(input)
                .send(),
        )
        .map(|_| ())
        .map_err(Box::new)
    }

    /// Replace the table `input` describes, if it is still at `version`: Glue's optimistic
    /// check, the update applies to the version read before only.
    fn update_table(
        &self,
        input: TableInput,
        version: Option<&str>,
    ) -> std::result::Result<(), UpdateFailure> {
        block_on(
            self.client
                .update_table()
                .set_catalog_id(self.catalog_id.clone())
                .database_name(&self.database)
                .table_input(input)
                .set_version_id(version.map(str::to_owned))
                .send(),
        )
        .map(|_| ())
        .map_err(Box::new)
    }

    fn ensure_database(&mut self) -> Result<()> {
        if self.database_checked {
            return Ok(());
        }
        let got = block_on(
            self.client
                .get_database()
                .set_catalog_id(self.catalog_id.clone())
                .name(&self.database)
                .send(),
        );
        match got {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                let input = DatabaseInput::builder()
                    .name(&self.database)
                    .description("Log tables written by citrine")
                    .build()
                    .map_err(|e| self.error("", e))?;
                let created = block_on(
                    self.client
                        .create_database()
                        .set_catalog_id(self.catalog_id.clone())
                        .database_input(input)
                        .send(),
                );
                match created {
                    Ok(_) => tracing::info!(database = %self.database, "created the Glue database"),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_already_exists_exception()) => {}
                    Err(e) => return Err(self.error("", e)),
                }
            }
            Err(e) => return Err(self.error("", e)),
        }
        self.database_checked = true;
        Ok(())
    }

    fn get_table(&self, table: &str) -> Result<Option<aws_sdk_glue::types::Table>> {
        let got = block_on(
            self.client
                .get_table()
                .set_catalog_id(self.catalog_id.clone())
                .database_name(&self.database)
                .name(table)
                .send(),
        );
        match got {
            Ok(out) => Ok(out.table),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.error(table, e)),
        }
    }

    fn table_input(
        &self,
        table: &str,
        columns: &[ColumnRecord],
        location: &str,
        version: u64,
    ) -> Result<TableInput> {
        TableInput::builder()
            .name(table)
            .description("Written by citrine; partitions registered by each run")
            .table_type("EXTERNAL_TABLE")
            .parameters("classification", "parquet")
            .parameters("EXTERNAL", "TRUE")
            .parameters(SCHEMA_VERSION_PARAM, version.to_string())
            .set_partition_keys(Some(glue_columns(&partition_keys())?))
            .storage_descriptor(descriptor(location, glue_columns(&data_columns(columns))?))
            .build()
            .map_err(|e| self.error(table, e))
    }

    fn partition_input(
        &self,
        key: &PartitionKey,
        location: &str,
        columns: &[Column],
    ) -> PartitionInput {
        PartitionInput::builder()
            .values(key.customer.clone())
            .values(key.date())
            .storage_descriptor(descriptor(location, columns.to_vec()))
            .build()
    }
}

impl Catalog for GlueCatalog {
    fn columns(&self, table: &str) -> Result<Option<Vec<ColumnRecord>>> {
        Ok(self.get_table(table)?.map(|t| {
            let data = t
                .storage_descriptor()
                .map(|sd| records(sd.columns()))
                .unwrap_or_default();
            let iceberg = t
                .parameters()
                .and_then(|p| p.get(TABLE_TYPE_PARAM))
                .is_some_and(|v| v == ICEBERG);
            // An Iceberg table has no partition keys apart: its columns are the files'.
            if iceberg {
                data
            } else {
                file_columns(&data)
            }
        }))
    }

    fn ensure_table(
        &mut self,
        table: &str,
        columns: &[ColumnRecord],
        location: &str,
    ) -> Result<u64> {
        self.ensure_database()?;
        for attempt in 0..ATTEMPTS {
            let Some(existing) = self.get_table(table)? else {
                let input = self.table_input(table, columns, location, 1)?;
                match self.create_table(input) {
                    Ok(_) => {
                        tracing::info!(database = %self.database, table, "created the Glue table");
                        return Ok(1);
                    }
                    // Another run created it first: compare with what it registered.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_already_exists_exception()) =>
                    {
                        continue
                    }
                    Err(e) => return Err(self.error(table, e)),
                }
            };
            let data = existing
                .storage_descriptor()
                .map(|sd| records(sd.columns()))
                .unwrap_or_default();
            let registered = file_columns(&data);
            let version: u64 = existing
                .parameters()
                .and_then(|p| p.get(SCHEMA_VERSION_PARAM))
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            if !super::grows_at_end(&registered, columns) {
                return Err(Error::Catalog {
                    table: format!("{}.{table}", self.database),
                    source: format!(
                        "the table's columns can only grow at the end: registered {:?}, new {:?}",
                        registered.iter().map(|c| &c.name).collect::<Vec<_>>(),
                        columns.iter().map(|c| &c.name).collect::<Vec<_>>()
                    )
                    .into(),
                });
            }
            if registered.len() >= columns.len() {
                return Ok(version);
            }
            let keep_location = existing
                .storage_descriptor()
                .and_then(|sd| sd.location())
                .unwrap_or(location)
                .to_owned();
            let input = self.table_input(table, columns, &keep_location, version + 1)?;
            match self.update_table(input, existing.version_id()) {
                Ok(_) => {
                    tracing::info!(table, columns = columns.len(), "grew the Glue table schema");
                    return Ok(version + 1);
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_concurrent_modification_exception()) =>
                {
                    std::thread::sleep(backoff(attempt));
                }
                Err(e) => return Err(self.error(table, e)),
            }
        }
        Err(Error::Catalog {
            table: format!("{}.{table}", self.database),
            source: "the table kept changing while its schema was updated".into(),
        })
    }

    fn add_partitions(
        &mut self,
        table: &str,
        partitions: &[(PartitionKey, String)],
    ) -> Result<usize> {
        let columns = self
            .get_table(table)?
            .and_then(|t| t.storage_descriptor().map(|sd| sd.columns().to_vec()))
            .unwrap_or_default();
        let mut added = 0;
        for chunk in partitions.chunks(CREATE_CHUNK) {
            let mut pending: Vec<&(PartitionKey, String)> = chunk.iter().collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                let inputs = pending
                    .iter()
                    .map(|(k, loc)| self.partition_input(k, loc, &columns))
                    .collect();
                let out = block_on(
                    self.client
                        .batch_create_partition()
                        .set_catalog_id(self.catalog_id.clone())
                        .database_name(&self.database)
                        .table_name(table)
                        .set_partition_input_list(Some(inputs))
                        .send(),
                );
                let out = match out {
                    Ok(o) => o,
                    Err(e) if attempt + 1 < ATTEMPTS && e.code().is_some_and(retryable) => {
                        std::thread::sleep(backoff(attempt));
                        attempt += 1;
                        continue;
                    }
                    Err(e) => return Err(self.error(table, e)),
                };
                let mut failed: HashMap<Vec<String>, String> = HashMap::new();
                for err in out.errors() {
                    let code = err
                        .error_detail()
                        .and_then(|d| d.error_code())
                        .unwrap_or("UnknownError")
                        .to_owned();
                    if code == "AlreadyExistsException" {
                        failed.insert(err.partition_values().to_vec(), code);
                        continue;
                    }
                    let message = err
                        .error_detail()
                        .and_then(|d| d.error_message())
                        .unwrap_or_default();
                    if !retryable(&code) || attempt + 1 >= ATTEMPTS {
                        return Err(Error::Catalog {
                            table: format!("{}.{table}", self.database),
                            source: format!(
                                "partition {:?} was not registered: {code}: {message}",
                                err.partition_values()
                            )
                            .into(),
                        });
                    }
                    failed.insert(err.partition_values().to_vec(), code);
                }
                let mut retry = Vec::new();
                for p in pending {
                    let values = vec![p.0.customer.clone(), p.0.date()];
                    match failed.get(&values).map(String::as_str) {
                        None => added += 1,
                        Some("AlreadyExistsException") => {}
                        Some(_) => retry.push(p),
                    }
                }
                pending = retry;
                if !pending.is_empty() {
                    tracing::warn!(
                        table,
                        throttled = pending.len(),
                        "Glue throttled partition registration; retrying"
                    );
                    std::thread::sleep(backoff(attempt));
                    attempt += 1;
                }
            }
        }
        Ok(added)
    }

    fn partitions(&self, table: &str) -> Result<Vec<PartitionRecord>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let got = block_on(
                self.client
                    .get_partitions()
                    .set_catalog_id(self.catalog_id.clone())
                    .database_name(&self.database)
                    .table_name(table)
                    .set_next_token(token.take())
                    .send(),
            );
            let page = match got {
                Ok(p) => p,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_entity_not_found_exception()) =>
                {
                    return Ok(Vec::new())
                }
                Err(e) => return Err(self.error(table, e)),
            };
            for p in page.partitions() {
                out.push(PartitionRecord {
                    values: p.values().to_vec(),
                    location: p
                        .storage_descriptor()
                        .and_then(|sd| sd.location())
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }

    fn drop_partitions(&mut self, table: &str, values: &[Vec<String>]) -> Result<usize> {
        let mut dropped = 0;
        for chunk in values.chunks(DELETE_CHUNK) {
            let lists = chunk
                .iter()
                .map(|v| {
                    PartitionValueList::builder()
                        .set_values(Some(v.clone()))
                        .build()
                        .map_err(|e| self.error(table, e))
                })
                .collect::<Result<Vec<_>>>()?;
            let out = block_on(
                self.client
                    .batch_delete_partition()
                    .set_catalog_id(self.catalog_id.clone())
                    .database_name(&self.database)
                    .table_name(table)
                    .set_partitions_to_delete(Some(lists))
                    .send(),
            )
            .map_err(|e| self.error(table, e))?;
            let mut missing = 0;
            for err in out.errors() {
                match err.error_detail().and_then(|d| d.error_code()) {
                    Some("EntityNotFoundException") => missing += 1,
                    code => {
                        return Err(Error::Catalog {
                            table: format!("{}.{table}", self.database),
                            source: format!(
                                "partition {:?} was not removed: {}",
                                err.partition_values(),
                                code.unwrap_or("UnknownError")
                            )
                            .into(),
                        })
                    }
                }
            }
            dropped += chunk.len() - missing;
        }
        Ok(dropped)
    }

    fn iceberg_metadata(&self, table: &str) -> Result<Option<String>> {
        Ok(self.get_table(table)?.and_then(|t| {
            let p = t.parameters()?;
            (p.get(TABLE_TYPE_PARAM).map(String::as_str) == Some(ICEBERG))
                .then(|| p.get(METADATA_LOCATION_PARAM).cloned())
                .flatten()
        }))
    }

    fn set_iceberg_metadata(
        &mut self,
        table: &str,
        columns: &[ColumnRecord],
        location: &str,
        from: Option<&str>,
        to: &str,
    ) -> Result<()> {
        self.ensure_database()?;
        let existing = self.get_table(table)?;
        let found = existing
            .as_ref()
            .and_then(|t| t.parameters())
            .and_then(|p| p.get(METADATA_LOCATION_PARAM))
            .cloned();
        if found.as_deref() != from {
            return Err(super::pointer_moved(
                &format!("{}.{table}", self.database),
                from,
                found.as_deref(),
            ));
        }
        let mut input = TableInput::builder()
            .name(table)
            .description("Written by citrine: an Iceberg table, one snapshot per run")
            .table_type("EXTERNAL_TABLE")
            .parameters("EXTERNAL", "TRUE")
            .parameters(TABLE_TYPE_PARAM, ICEBERG)
            .parameters(METADATA_LOCATION_PARAM, to)
            .storage_descriptor(
                StorageDescriptor::builder()
                    .set_columns(Some(glue_columns(columns)?))
                    .location(location)
                    .build(),
            );
        if let Some(previous) = from {
            input = input.parameters(PREVIOUS_METADATA_LOCATION_PARAM, previous);
        }
        let input = input.build().map_err(|e| self.error(table, e))?;
        match &existing {
            None => self.create_table(input).map_err(|e| self.error(table, e)),
            Some(t) => self
                .update_table(input, t.version_id())
                .map_err(|e| self.error(table, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::register::string_columns as cols;

    #[test]
    fn partition_keys_leave_the_data_columns_and_come_back_in_place() {
        let schema = crate::schema::table_schema(&crate::parse::cloudfront::parsed_schema());
        let files = super::super::columns_of(&schema);
        let data = data_columns(&files);
        assert_eq!(data.len(), files.len() - 2);
        assert!(data.iter().all(|c| c.name != CUSTOMER && c.name != DT));
        assert_eq!(file_columns(&data), files);
        assert_eq!(
            file_columns(&cols(&["ts", "source_file"]))
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["ts", "customer", "dt", "source_file"]
        );
    }

    #[test]
    fn only_transient_errors_are_retried() {
        assert!(retryable("ThrottlingException"));
        assert!(retryable("ConcurrentModificationException"));
        assert!(!retryable("AlreadyExistsException"));
        assert!(!retryable("InvalidInputException"));
        assert!(!retryable("ResourceNumberLimitExceededException"));
        assert!(backoff(1) > backoff(0));
    }
}
