//! `citrine forget`: make the next run process inputs again.
//!
//! - A failing or quarantined input is released (its failure record dropped).
//! - A consumed input leaves the ledger through a run of its own: a report that names it in
//!   `forgotten` and a marker, so a ledger rebuilt from reports alone agrees.
//! - A consumed input whose rows were written needs `delete_rows`: the live data files of the
//!   partitions its consuming run wrote are read, and each that holds rows of a forgotten input
//!   is rewritten without them as files of the forget run. Its report lists the replaced files
//!   in `supersedes`; they are deleted once its marker exists (a run killed in between leaves
//!   its journal, and the next run's recovery finishes the deletions). `redshift load` of the
//!   forget run deletes the forgotten inputs' rows, and a load of an earlier run leaves the
//!   replaced files out, so the lake and Redshift hold every other row exactly once.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use super::commit::{publish, register, to_iceberg};
use super::journal::Journal;
use super::lock::TableLock;
use super::plan::resolve_schema;
use super::recover::delete_superseded;
use super::stall_point;
use crate::commit::report::now_rfc3339;
use crate::commit::RunReport;
use crate::config::{Job, TableFormat, TableSpec};
use crate::error::{Error, Result};
use crate::lake::{run_id_after, Lake};
use crate::ledger::failures::Failures;
use crate::ledger::Ledger;
use crate::partition::split;
use crate::register::{self, columns_of};
use crate::store::Stores;
use crate::transform::mask::scrub_text;
use crate::write::{PartitionedWriter, WrittenFile};

/// What became of one uri given to `forget`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Fate {
    /// A failing or quarantined input: released, tried again by the next run.
    Released {
        /// The input.
        uri: String,
    },
    /// A consumed input: out of the ledger (its rows, if any, deleted), processed again by
    /// the next run.
    Forgotten {
        /// The input.
        uri: String,
        /// The run that had consumed it.
        consumed_by: String,
        /// Rows of it that run wrote.
        rows: u64,
    },
    /// Refused: nothing done for it.
    Refused {
        /// The input.
        uri: String,
        /// Why (scrubbed).
        reason: String,
    },
}

/// What `forget` did to a table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetSummary {
    /// The table.
    pub table: String,
    /// Each uri's fate, in the order given.
    pub inputs: Vec<Fate>,
    /// The forget run, when consumed inputs were forgotten.
    pub run_id: Option<String>,
    /// Rows deleted from the lake.
    pub rows_deleted: u64,
    /// Rows of other inputs copied into the rewritten files.
    pub rows_kept: u64,
    /// Data files replaced (and deleted).
    pub files_superseded: usize,
    /// Data files written in their place.
    pub files_written: usize,
}

impl ForgetSummary {
    /// True when some uri was refused.
    pub fn refused(&self) -> bool {
        self.inputs
            .iter()
            .any(|f| matches!(f, Fate::Refused { .. }))
    }
}

/// What to forget.
#[derive(Debug, Clone, Default)]
pub struct Forget {
    /// Inputs by uri.
    pub uris: Vec<String>,
    /// Every input this committed run consumed (and no later run consumed again).
    pub run: Option<String>,
    /// Allow forgetting inputs whose rows were written: their rows are deleted.
    pub delete_rows: bool,
}

/// Forget what `what` names of `table` (see the module docs). Takes the table's lock; a
/// refused uri changes nothing for itself and does not stop the others.
pub fn forget(
    job: &Job,
    stores: &Stores,
    lake: &Lake,
    table: &TableSpec,
    what: &Forget,
) -> Result<ForgetSummary> {
    let lock = TableLock::acquire_for(lake, &table.name, job.lock_lease, "forget")?;
    let result = forget_locked(job, stores, lake, table, what, &lock);
    lock.release();
    result
}

fn forget_locked(
    job: &Job,
    stores: &Stores,
    lake: &Lake,
    table: &TableSpec,
    what: &Forget,
    lock: &TableLock,
) -> Result<ForgetSummary> {
    let ledger = Ledger::load(lake, &table.name)?;
    let mut uris = what.uris.clone();
    if let Some(run) = &what.run {
        if !lake.committed_runs_after(&table.name, run)?.0 {
            return Err(Error::NoRun {
                table: table.name.clone(),
                run: run.clone(),
            });
        }
        uris.extend(
            lake.report(&table.name, run)?
                .inputs
                .into_iter()
                .map(|i| i.uri)
                .filter(|uri| {
                    ledger.last_run(uri) == Some(run.as_str()) && !what.uris.contains(uri)
                }),
        );
    }
    let delete_rows = what.delete_rows;
    // What crashed runs left (a forget run's replaced files among them) goes first, so the
    // partitions read below hold committed files only.
    let catalog = register::open(job, stores, lake);
    let recovered = super::recover(
        lake,
        &table.name,
        ledger.newest_run(),
        lock,
        &super::readers(lake, table, catalog.as_ref()),
    )?;
    let ledger = if recovered.rolled_forward > 0 {
        Ledger::load(lake, &table.name)?
    } else {
        ledger
    };
    let mut failures = Failures::load(lake, &table.name)?;
    let mut summary = ForgetSummary {
        table: table.name.clone(),
        ..Default::default()
    };
    let mut forgotten = Vec::new();
    for uri in &uris {
        let fate = if failures.clear(uri) {
            Fate::Released { uri: uri.clone() }
        } else if let Some(entry) = ledger.entry(uri) {
            let rows = entry.record.rows_written;
            if rows > 0 && !delete_rows {
                Fate::Refused {
                    uri: uri.clone(),
                    reason: format!(
                        "run {} wrote {rows} rows of it; forgetting it needs --delete-rows (its rows are deleted from the lake, and from Redshift by `redshift load`)",
                        entry.run
                    ),
                }
            } else {
                forgotten.push(entry.clone());
                Fate::Forgotten {
                    uri: uri.clone(),
                    consumed_by: entry.run.clone(),
                    rows,
                }
            }
        } else {
            Fate::Refused {
                uri: uri.clone(),
                reason: "neither failing nor consumed".into(),
            }
        };
        summary.inputs.push(fate);
    }
    failures.save(lake, &table.name)?;
    if !forgotten.is_empty() {
        rewrite(
            job,
            stores,
            lake,
            table,
            ledger,
            &forgotten,
            lock,
            &mut summary,
        )?;
    }
    Ok(summary)
}

/// The forget run: rewrite the files holding rows of `forgotten`, then commit a report that
/// names them and the files it supersedes, its marker, and delete the superseded files. A
/// forget run that fails before its marker removes what it wrote.
#[allow(clippy::too_many_arguments)]
fn rewrite(
    job: &Job,
    stores: &Stores,
    lake: &Lake,
    table: &TableSpec,
    ledger: Ledger,
    forgotten: &[crate::ledger::Entry],
    lock: &TableLock,
    summary: &mut ForgetSummary,
) -> Result<()> {
    let run_id = run_id_after(ledger.newest_run().unwrap_or_default());
    lock.name_run(&run_id)?;
    let journal = Journal::start(lake, &table.name, &run_id)?;
    let supersedes = match rewrite_and_publish(
        job, stores, lake, table, ledger, forgotten, lock, &run_id, &journal, summary,
    ) {
        Ok(supersedes) => supersedes,
        Err(e) => {
            super::recover::clean_up_failed(lake, &table.name, &run_id, &journal);
            return Err(e);
        }
    };
    stall_point("before_supersede");
    // An Iceberg table's older snapshots still name the replaced files: they go when those
    // snapshots expire (`citrine compact --expire-after`).
    if table.table_format == TableFormat::Hive {
        delete_superseded(lake, &supersedes, lock)?;
    }
    if let Err(e) = journal.finish() {
        tracing::warn!(table = %table.name, error = %e, "could not delete the forget run's journal; the next run does");
    }
    summary.run_id = Some(run_id);
    summary.files_superseded = supersedes.len();
    Ok(())
}

/// The forget run `run_id` up to its marker: the files it supersedes.
#[allow(clippy::too_many_arguments)]
fn rewrite_and_publish(
    job: &Job,
    stores: &Stores,
    lake: &Lake,
    table: &TableSpec,
    ledger: Ledger,
    forgotten: &[crate::ledger::Entry],
    lock: &TableLock,
    run_id: &str,
    journal: &Journal,
    summary: &mut ForgetSummary,
) -> Result<Vec<String>> {
    let started_at = now_rfc3339();
    let mut catalog = register::open(job, stores, lake);
    let schema = resolve_schema(job, table, &[], catalog.as_ref())?.schema;
    // An Iceberg table keeps replaced files until their snapshots expire: only the current
    // snapshot's files are the table's.
    let live = match table.table_format {
        TableFormat::Hive => None,
        TableFormat::Iceberg => Some(crate::iceberg::table::live_keys(
            lake,
            &table.name,
            catalog.as_ref(),
        )?),
    };

    // The partitions the consuming runs wrote hold every row of the forgotten inputs.
    let mut partitions = BTreeSet::new();
    let consuming: BTreeSet<&str> = forgotten
        .iter()
        .filter(|e| e.record.rows_written > 0)
        .map(|e| e.run.as_str())
        .collect();
    for run in consuming {
        for file in lake.report(&table.name, run)?.files {
            if let Some((folder, _)) = file.key.rsplit_once('/') {
                partitions.insert(format!("{folder}/"));
            }
        }
    }
    let drop: HashSet<&str> = forgotten.iter().map(|e| e.record.uri.as_str()).collect();

    let writer = PartitionedWriter::new(
        lake.clone(),
        &table.name,
        run_id,
        schema.clone(),
        job.write.clone(),
        Arc::new(AtomicU64::new(0)),
    )
    .with_journal(Arc::new(journal.clone()));
    let Rewritten {
        files,
        supersedes,
        deleted,
        rows_kept,
    } = rewrite_partitions(lake, &partitions, &schema, &drop, live.as_ref(), writer)?;
    summary.rows_kept = rows_kept;
    for entry in forgotten {
        let found = deleted.get(entry.record.uri.as_str()).copied().unwrap_or(0);
        summary.rows_deleted += found;
        if found != entry.record.rows_written {
            tracing::warn!(
                table = %table.name,
                input = %scrub_text(&entry.record.uri),
                found,
                recorded = entry.record.rows_written,
                "the lake held another number of this input's rows than its run recorded"
            );
        }
    }

    // A forget taken over while it rewrote registers nothing.
    lock.fence()?;
    let columns = columns_of(&schema);
    let schema_version = match table.table_format {
        TableFormat::Hive => {
            register(lake, &table.name, catalog.as_mut(), &columns, &files)?.schema_version
        }
        TableFormat::Iceberg => {
            crate::iceberg::table::schema_version(lake, &table.name, catalog.as_ref(), &schema)?
        }
    };
    let report = RunReport {
        schema_version,
        widths: crate::write::column_widths(&schema, &files),
        columns,
        files: files.iter().map(|f| f.record(lake)).collect(),
        forgotten: forgotten.iter().map(|e| e.record.uri.clone()).collect(),
        supersedes: supersedes.clone(),
        ..RunReport::new(&table.name, run_id, started_at)
    };
    // An Iceberg table's overwrite: the rewritten files in, the replaced ones out, one snapshot.
    let to_readers = |report: &RunReport| match table.table_format {
        TableFormat::Hive => Ok(()),
        TableFormat::Iceberg => to_iceberg(
            lake,
            catalog.as_mut(),
            crate::iceberg::table::Operation::Overwrite,
            report,
            &schema,
            &files,
            &supersedes,
        ),
    };
    publish(lake, lock, ledger, report, || Ok(()), to_readers)?;
    summary.files_written = files.len();
    Ok(supersedes)
}

/// What rewriting a table's partitions gave.
struct Rewritten {
    /// Files written.
    files: Vec<WrittenFile>,
    /// Files replaced (keys).
    supersedes: Vec<String>,
    /// Rows left out, per forgotten input.
    deleted: BTreeMap<String, u64>,
    /// Rows copied.
    rows_kept: u64,
}

/// Rewrite every data file below `folders` that holds rows of `drop` without them, with
/// `writer`.
fn rewrite_partitions(
    lake: &Lake,
    folders: &BTreeSet<String>,
    schema: &SchemaRef,
    drop: &HashSet<&str>,
    live: Option<&HashSet<String>>,
    mut writer: PartitionedWriter,
) -> Result<Rewritten> {
    let mut supersedes = Vec::new();
    let mut deleted = BTreeMap::new();
    let mut rows_kept = 0;
    for folder in folders {
        for object in lake.store().list(folder)? {
            let name = object.key.rsplit('/').next().unwrap_or_default();
            if !name.starts_with("part-")
                || !name.ends_with(".parquet")
                || live.is_some_and(|l| !l.contains(&object.key))
            {
                continue;
            }
            let Some(kept) = without(lake, &object.key, schema, drop, &mut deleted)? else {
                continue;
            };
            for batch in kept {
                rows_kept += batch.num_rows() as u64;
                for part in split(&batch)? {
                    writer.write(part)?;
                }
            }
            supersedes.push(object.key);
        }
    }
    Ok(Rewritten {
        files: writer.finish()?,
        supersedes,
        deleted,
        rows_kept,
    })
}

/// The rows of the data file `key` that belong to no input of `drop`, in `schema` (columns the
/// file predates are null), or `None` when it holds no row of them. Rows left out are counted
/// per input in `deleted`.
fn without(
    lake: &Lake,
    key: &str,
    schema: &SchemaRef,
    drop: &HashSet<&str>,
    deleted: &mut BTreeMap<String, u64>,
) -> Result<Option<Vec<RecordBatch>>> {
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
    Ok(any.then_some(kept))
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
