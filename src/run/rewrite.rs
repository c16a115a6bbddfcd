//! A run that writes some of a table's data files again, as files of its own, and supersedes
//! them: `forget --delete-rows` (the files holding rows of forgotten inputs, without those
//! rows) and `compact` (a partition's small files, merged into few).
//!
//! It is a run like any other under the table's lock: every file it writes is journaled first,
//! it is fenced before registering and before its marker, and it fails clean. Its report lists
//! the replaced files in `supersedes` (a forget run's also the inputs in `forgotten`). In a
//! Hive table the replaced files are deleted once the marker exists (a run killed in between
//! leaves its journal, and the next run's recovery finishes the deletions); in an Iceberg
//! table the run is one snapshot (an overwrite or a replace) and the replaced files stay
//! until the snapshots that name them expire (`citrine compact --expire-after`). `redshift
//! load` replaces rows by (`source_file`, `row_num`) for such a run, and leaves the replaced
//! files out of the loads of earlier runs, so Redshift holds every row once in any load order.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::commit::{publish, register, to_iceberg};
use super::journal::Journal;
use super::lock::TableLock;
use super::plan::resolve_schema;
use super::recover::delete_superseded;
use super::stall_point;
use crate::commit::report::now_rfc3339;
use crate::commit::RunReport;
use crate::config::{Job, TableFormat, TableSpec, WriteOptions};
use crate::error::{Error, Result};
use crate::iceberg::table::Operation;
use crate::lake::{run_id_after, Lake};
use crate::ledger::Ledger;
use crate::partition::split;
use crate::register::{self, columns_of};
use crate::store::Stores;
use crate::write::{PartitionedWriter, WrittenFile};

/// What to write again.
#[derive(Debug)]
pub struct Rewrite<'a> {
    /// The Iceberg operation it is (`Overwrite` for a forget, `Replace` for a compaction).
    pub operation: Operation,
    /// The data files to read (keys below the lake root).
    pub files: Vec<String>,
    /// Inputs whose rows are left out.
    pub drop: HashSet<&'a str>,
    /// A file holding none of `drop`'s rows is written again too (a compaction); else it is
    /// left as it is (a forget).
    pub every_file: bool,
    /// The inputs the report names in `forgotten`.
    pub forgotten: Vec<String>,
    /// How large the files written may grow (else the lake's `target_file_mb`).
    pub target_file_bytes: Option<u64>,
}

/// What a rewrite did.
#[derive(Debug, Default)]
pub struct Rewritten {
    /// Its run.
    pub run_id: String,
    /// Files written.
    pub files: Vec<WrittenFile>,
    /// Files replaced (keys).
    pub supersedes: Vec<String>,
    /// Rows left out, per input of `drop`.
    pub deleted: BTreeMap<String, u64>,
    /// Rows copied.
    pub rows_kept: u64,
}

/// The live data files of `table`: those the current Iceberg snapshot names, or every data
/// file below the table's folder for a Hive table (after recovery, those of committed runs
/// that no later rewrite replaced). Each with its size. With `folders`, only those below them.
pub fn live_files(
    lake: &Lake,
    table: &TableSpec,
    catalog: &dyn register::Catalog,
    folders: Option<&[String]>,
) -> Result<Vec<(String, u64)>> {
    let is_data = |key: &str| {
        let name = key.rsplit('/').next().unwrap_or_default();
        name.starts_with("part-") && name.ends_with(".parquet")
    };
    let listed: Vec<(String, u64)> = match folders {
        Some(folders) => {
            let mut out = Vec::new();
            for folder in folders {
                out.extend(
                    lake.store()
                        .list(folder)?
                        .into_iter()
                        .map(|o| (o.key, o.size)),
                );
            }
            out
        }
        None => lake
            .store()
            .list(&format!("{}/", lake.data_prefix(&table.name)))?
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect(),
    };
    let live = match table.table_format {
        TableFormat::Hive => None,
        TableFormat::Iceberg => Some(crate::iceberg::table::live_keys(
            lake,
            &table.name,
            catalog,
        )?),
    };
    Ok(listed
        .into_iter()
        .filter(|(key, _)| is_data(key) && live.as_ref().is_none_or(|l| l.contains(key)))
        .collect())
}

/// Run `what` as a run of its own on `table` (whose lock `lock` is, recovered): see the
/// module's documentation. A rewrite that fails before its marker removes what it wrote.
pub fn rewrite(
    job: &Job,
    stores: &Stores,
    lake: &Lake,
    table: &TableSpec,
    ledger: Ledger,
    lock: &TableLock,
    what: &Rewrite,
) -> Result<Rewritten> {
    let run_id = run_id_after(ledger.newest_run().unwrap_or_default());
    lock.name_run(&run_id)?;
    let journal = Journal::start(lake, &table.name, &run_id)?;
    let done = match write_and_publish(
        job, stores, lake, table, ledger, lock, &run_id, &journal, what,
    ) {
        Ok(done) => done,
        Err(e) => {
            super::recover::clean_up_failed(lake, &table.name, &run_id, &journal);
            return Err(e);
        }
    };
    stall_point("before_supersede");
    // An Iceberg table's older snapshots still name the replaced files: they go when those
    // snapshots expire (`citrine compact --expire-after`).
    if table.table_format == TableFormat::Hive {
        delete_superseded(lake, &done.supersedes, lock)?;
    }
    if let Err(e) = journal.finish() {
        tracing::warn!(table = %table.name, error = %e, "could not delete the run's journal; the next run does");
    }
    Ok(done)
}

/// The rewrite run `run_id` up to its marker.
#[allow(clippy::too_many_arguments)]
fn write_and_publish(
    job: &Job,
    stores: &Stores,
    lake: &Lake,
    table: &TableSpec,
    ledger: Ledger,
    lock: &TableLock,
    run_id: &str,
    journal: &Journal,
    what: &Rewrite,
) -> Result<Rewritten> {
    let started_at = now_rfc3339();
    let mut catalog = register::open(job, stores, lake);
    let schema = resolve_schema(job, table, &[], catalog.as_ref())?.schema;
    let options = WriteOptions {
        target_file_bytes: what
            .target_file_bytes
            .unwrap_or(job.write.target_file_bytes),
        ..job.write.clone()
    };
    let mut writer = PartitionedWriter::new(
        lake.clone(),
        &table.name,
        run_id,
        schema.clone(),
        options,
        Arc::new(AtomicU64::new(0)),
    )
    .with_journal(Arc::new(journal.clone()));
    let mut done = Rewritten {
        run_id: run_id.to_owned(),
        ..Default::default()
    };
    for key in &what.files {
        let Some((kept, any_dropped)) = without(lake, key, &schema, &what.drop, &mut done.deleted)?
        else {
            continue;
        };
        if !any_dropped && !what.every_file {
            continue;
        }
        for batch in kept {
            done.rows_kept += batch.num_rows() as u64;
            for part in split(&batch)? {
                writer.write(part)?;
            }
        }
        done.supersedes.push(key.clone());
    }
    done.files = writer.finish()?;

    // A rewrite taken over while it wrote registers nothing.
    lock.fence()?;
    let columns = columns_of(&schema);
    let schema_version = match table.table_format {
        TableFormat::Hive => {
            register(lake, &table.name, catalog.as_mut(), &columns, &done.files)?.schema_version
        }
        TableFormat::Iceberg => {
            crate::iceberg::table::schema_version(lake, &table.name, catalog.as_ref(), &schema)?
        }
    };
    let report = RunReport {
        schema_version,
        widths: crate::write::column_widths(&schema, &done.files),
        columns,
        files: done.files.iter().map(|f| f.record(lake)).collect(),
        forgotten: what.forgotten.clone(),
        supersedes: done.supersedes.clone(),
        ..RunReport::new(&table.name, run_id, started_at)
    };
    // An Iceberg table's rewrite: the new files in, the replaced ones out, one snapshot.
    let to_readers = |report: &RunReport| match table.table_format {
        TableFormat::Hive => Ok(()),
        TableFormat::Iceberg => to_iceberg(
            lake,
            catalog.as_mut(),
            what.operation,
            report,
            &schema,
            &done.files,
            &done.supersedes,
        ),
    };
    publish(lake, lock, ledger, report, || Ok(()), to_readers)?;
    Ok(done)
}

/// The rows of the data file `key` that belong to no input of `drop`, in `schema` (columns the
/// file predates are null), and whether any row was left out; `None` when the file is gone.
/// Rows left out are counted per input in `deleted`.
fn without(
    lake: &Lake,
    key: &str,
    schema: &SchemaRef,
    drop: &HashSet<&str>,
    deleted: &mut BTreeMap<String, u64>,
) -> Result<Option<(Vec<RecordBatch>, bool)>> {
    let url = lake.url(key);
    let corrupt = |e: &dyn std::fmt::Display| Error::Corrupt {
        path: url.clone(),
        message: e.to_string(),
    };
    let Some(object) = lake.store().read(key)? else {
        return Ok(None);
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(object.bytes))
        .and_then(|b| b.build())
        .map_err(|e| corrupt(&e))?;
    let mut kept = Vec::new();
    let mut any = false;
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(&e))?;
        let sources = batch
            .column_by_name("source_file")
            .ok_or_else(|| corrupt(&"no source_file column"))?;
        let sources = cast(sources, &DataType::Utf8).map_err(|e| corrupt(&e))?;
        let sources = sources.as_string::<i32>();
        let keep: BooleanArray = sources
            .iter()
            .map(|s| {
                let hit = s.filter(|s| drop.contains(s));
                if let Some(uri) = hit {
                    *deleted.entry(uri.to_owned()).or_default() += 1;
                    any = true;
                }
                Some(hit.is_none())
            })
            .collect();
        let batch = filter_record_batch(&batch, &keep).map_err(|e| corrupt(&e))?;
        if batch.num_rows() > 0 {
            kept.push(conform(&batch, schema).map_err(|e| corrupt(&e))?);
        }
    }
    Ok(Some((kept, any)))
}

/// `batch` in `schema`'s columns and types: a column the file predates is null (columns only
/// ever grow at the end).
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => cast(column, field.data_type()).map_err(|e| e.to_string()),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<std::result::Result<_, _>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn an_older_file_gains_the_columns_it_predates_as_nulls() {
        let old = RecordBatch::try_from_iter([
            (
                "source_file",
                Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
            ),
            (
                "row_num",
                Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            ),
        ])
        .unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("source_file", DataType::Utf8, true),
            Field::new("row_num", DataType::Int64, true),
            Field::new("grown", DataType::Utf8, true),
        ]));
        let out = conform(&old, &schema).unwrap();
        assert_eq!(out.schema(), schema);
        assert_eq!(out.column(2).null_count(), 2);
        assert_eq!(out.column(0).as_string::<i32>().value(1), "b");
    }
}
