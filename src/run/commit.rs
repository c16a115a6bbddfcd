//! The commit of a run, as a function of what streaming gave (each input's outcome and the
//! files written) and nothing else: the summary's tallies, the rejects, the catalog's
//! partitions, the run report, and the marker, last. Testable without a pipeline.

use std::collections::BTreeSet;

use arrow::datatypes::SchemaRef;

use super::lock::TableLock;
use super::record::PlannedInput;
use super::stall_point;
use super::stream::{remove_files, Outcome};
use super::TableSummary;
use crate::commit::rejects::Rejects;
use crate::commit::report::ColumnRecord;
use crate::commit::{manifest_json, FailedInput, InputRecord, RunReport};
use crate::config::{AfterCommit, TableFormat};
use crate::error::{joined, Error, FileError, InputError, Result};
use crate::lake::Lake;
use crate::ledger::{checkpoint, Ledger};
use crate::register::{columns_of, Catalog};
use crate::transform::mask::scrub_text;
use crate::write::WrittenFile;

/// Whether a run committed on `ledger` writes the table's newest checkpoint: when its plan
/// found none, or replayed [`checkpoint::EVERY_RUNS`] − 1 reports or more after it.
fn checkpoint_due(ledger: &Ledger) -> bool {
    ledger.provenance().checkpoint.is_none()
        || ledger.provenance().replayed + 1 >= checkpoint::EVERY_RUNS
}

/// `ledger` with the committed `report` folded in, encoded as a checkpoint of `table`.
fn encode_checkpoint(
    lake: &Lake,
    table: &str,
    mut ledger: Ledger,
    report: &RunReport,
) -> Result<checkpoint::Encoded> {
    ledger.apply(report.clone());
    checkpoint::encode(lake, table, &ledger)
}

/// What registering a run's files in the catalog did.
pub(crate) struct Registered {
    /// The table's schema version after it.
    pub schema_version: u64,
    /// Partitions the files are in.
    pub partitions: usize,
    /// Of those, partitions new to the catalog.
    pub partitions_new: usize,
}

/// Create or grow `table` to `columns` in the catalog and register the partitions of `files`
/// ("already exists" is success).
pub(crate) fn register(
    lake: &Lake,
    table: &str,
    catalog: &mut dyn Catalog,
    columns: &[ColumnRecord],
    files: &[WrittenFile],
) -> Result<Registered> {
    let data_url = format!("{}/", lake.url(&lake.data_prefix(table)));
    let schema_version = catalog.ensure_table(table, columns, &data_url)?;
    let partitions: BTreeSet<_> = files.iter().map(|f| f.partition.clone()).collect();
    let registrations: Vec<_> = partitions
        .into_iter()
        .map(|p| {
            let url = format!("{data_url}{}/", p.path());
            (p, url)
        })
        .collect();
    Ok(Registered {
        schema_version,
        partitions: registrations.len(),
        partitions_new: catalog.add_partitions(table, &registrations)?,
    })
}

/// The last steps of every commit: write `report`, then `before_marker`'s durable record,
/// then, right after a [`TableLock::fence`] of `lock`, `to_readers` (an Iceberg table's
/// snapshot; nothing for a Hive table, whose partitions are registered before) and the marker
/// (the manifest of the report's files), then, if due, the ledger checkpoint (`ledger` with
/// the report folded in). A run whose lock was taken over fails at the fence and publishes
/// nothing. A checkpoint that fails is logged, never the run's: the run is committed, and the
/// next plan replays one more report. A run that dies between `to_readers` and its marker is
/// rolled forward by the next run's recovery (the marker is written from the report).
pub(crate) fn publish(
    lake: &Lake,
    lock: &TableLock,
    ledger: Ledger,
    report: RunReport,
    before_marker: impl FnOnce() -> Result<()>,
    to_readers: impl FnOnce(&RunReport) -> Result<()>,
) -> Result<()> {
    let store = lake.store();
    let (table, run_id) = (report.table.clone(), report.run_id.clone());
    let older = ledger.provenance().checkpoint_keys.clone();
    std::thread::scope(|scope| {
        // The checkpoint is encoded beside the writes of the report and the marker (for
        // 20,016 inputs 0.15 s, which followed them on one core), and stored after them.
        let (table_ref, report_ref) = (&table, &report);
        let encoding = checkpoint_due(&ledger)
            .then(|| scope.spawn(move || encode_checkpoint(lake, table_ref, ledger, report_ref)));
        stall_point("before_report");
        store.write(
            &lake.report_key(&table, &run_id),
            report.to_json().as_bytes(),
        )?;
        before_marker()?;
        stall_point("before_manifest");
        // Nothing may publish for a run that no longer owns its table (docs/design.md §2,
        // fencing): the check is the last thing before the marker's write.
        lock.fence()?;
        to_readers(&report)?;
        stall_point("published");
        store.write(
            &lake.manifest_key(&table, &run_id),
            manifest_json(&report.files).as_bytes(),
        )?;
        stall_point("before_checkpoint");
        if let Some(encoding) = encoding {
            let stored = joined(encoding.join(), || "encoding the ledger checkpoint".into())
                .and_then(|encoded| encoded.store(lake, &older));
            if let Err(e) = stored {
                tracing::warn!(table, error = %e, "could not write the ledger checkpoint; the next plan replays more reports");
            }
        }
        Ok(())
    })
}

/// Publish the files of `report` (`added`, `removed` for a rewrite) as one snapshot of its
/// Iceberg table, its run and marker in the snapshot's summary.
pub(crate) fn to_iceberg(
    lake: &Lake,
    catalog: &mut dyn Catalog,
    operation: crate::iceberg::table::Operation,
    report: &RunReport,
    schema: &SchemaRef,
    added: &[WrittenFile],
    removed: &[String],
) -> Result<()> {
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let snapshot = crate::iceberg::table::commit(
        lake,
        &report.table,
        catalog,
        &crate::iceberg::table::Change {
            operation,
            run_id: &report.run_id,
            marker: lake.url(&lake.manifest_key(&report.table, &report.run_id)),
            schema,
            added,
            removed,
            at_ms,
        },
    )?;
    tracing::info!(table = %report.table, run = %report.run_id, snapshot = snapshot.snapshot_id, "committed the Iceberg snapshot");
    Ok(())
}

/// The run being committed.
pub struct RunContext<'a> {
    /// Its lake.
    pub lake: &'a Lake,
    /// Its table.
    pub table: &'a str,
    /// Its id.
    pub run_id: &'a str,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// What happens to its inputs once it is committed.
    pub after_commit: &'a AfterCommit,
    /// The table's lock, which the run holds: fenced before each irreversible step.
    pub lock: &'a TableLock,
    /// How readers find the table's files.
    pub format: TableFormat,
}

/// Commit a run from its `outcomes` and written `files`: tally them into `summary`; if any
/// input was consumed, publish the rejects, register the partitions, write the report and then
/// the marker (`summary.run_id` is set). With nothing consumed, the files are removed and no
/// marker is written. An accounting mismatch (rows transformed ≠ rows in files) is an internal
/// error and commits nothing.
#[allow(clippy::too_many_arguments)]
pub fn commit(
    run: &RunContext,
    outcomes: Vec<Outcome>,
    files: Vec<WrittenFile>,
    schema: &SchemaRef,
    rejects: &dyn Rejects,
    catalog: &mut dyn Catalog,
    ledger: Ledger,
    summary: &mut TableSummary,
) -> Result<()> {
    let (lake, table, run_id) = (run.lake, run.table, run.run_id);
    let mut inputs = Vec::new();
    let mut after = Vec::new();
    for o in outcomes {
        summary.bytes_in += o.planned.input.listed.size;
        match o.result {
            Ok(c) => {
                summary.rows_read += c.counts.rows_read;
                summary.bytes_decoded += c.bytes_decoded;
                summary.rows_written += c.rows_written;
                summary.rows_rejected += c.rows_rejected;
                summary.ips_invalid += c.transform.ips_invalid;
                summary.strings_truncated += c.transform.strings_truncated;
                summary.emails_invalid += c.transform.emails_invalid;
                if o.planned.changed {
                    summary
                        .inputs_changed
                        .push(o.planned.input.listed.uri.clone());
                }
                if *run.after_commit != AfterCommit::Keep {
                    after.push(PlannedInput::of(&o.planned)?);
                }
                inputs.push(InputRecord {
                    uri: o.planned.input.listed.uri,
                    size: o.planned.input.listed.size,
                    mtime_ns: o.planned.input.listed.mtime_ns,
                    etag: o.planned.input.listed.etag,
                    hash: c.hash,
                    rows_read: c.counts.rows_read,
                    rows_written: c.rows_written,
                    rows_rejected: c.rows_rejected,
                    changed: o.planned.changed,
                });
            }
            Err(InputError {
                uri,
                kind: FileError::Vanished,
            }) => {
                tracing::debug!(input = %uri, "deleted since it was listed; skipped");
                summary.inputs_skipped += 1;
            }
            Err(e) => {
                let error = scrub_text(&e.kind.to_string());
                tracing::warn!(input = %e.uri, %error, "input failed; left unconsumed");
                summary
                    .inputs_failed
                    .push(FailedInput { uri: e.uri, error });
            }
        }
    }
    let written_rows: u64 = files.iter().map(|f| f.rows).sum();
    if written_rows != summary.rows_written {
        remove_files(lake, &files);
        return Err(Error::Internal {
            message: format!(
                "{}: {} rows transformed but {written_rows} written",
                lake.url(&lake.data_prefix(table)),
                summary.rows_written
            ),
        });
    }
    summary.inputs_consumed = inputs.len();
    summary.files_written = files.len();
    summary.bytes_out = files.iter().map(|f| f.bytes).sum();
    if inputs.is_empty() {
        // Every input failed: nothing consumed, so no marker.
        remove_files(lake, &files);
        return Ok(());
    }

    // A run taken over while it streamed registers nothing.
    run.lock.fence()?;
    let rejects_key = rejects.publish(lake.store().as_ref(), &lake.rejects_key(table, run_id))?;
    let columns = columns_of(schema);
    let schema_version = match run.format {
        TableFormat::Hive => {
            let registered = register(lake, table, catalog, &columns, &files)?;
            summary.partitions = registered.partitions;
            summary.partitions_new = registered.partitions_new;
            registered.schema_version
        }
        TableFormat::Iceberg => {
            summary.partitions = files
                .iter()
                .map(|f| &f.partition)
                .collect::<BTreeSet<_>>()
                .len();
            crate::iceberg::table::schema_version(lake, table, catalog, schema)?
        }
    };
    let report = RunReport {
        schema_version,
        widths: crate::write::column_widths(schema, &files),
        columns,
        inputs,
        failed_inputs: summary.inputs_failed.clone(),
        files: files.iter().map(|f| f.record(lake)).collect(),
        rows_rejected: summary.rows_rejected,
        rejects_key,
        ..RunReport::new(table, run_id, run.started_at.clone())
    };
    // What is to happen to the inputs is durable before the marker that allows it.
    let to_readers = |report: &RunReport| match run.format {
        TableFormat::Hive => Ok(()),
        TableFormat::Iceberg => to_iceberg(
            lake,
            catalog,
            crate::iceberg::table::Operation::Append,
            report,
            schema,
            &files,
            &[],
        ),
    };
    publish(
        lake,
        run.lock,
        ledger,
        report,
        || super::after_commit::record(lake, table, run.after_commit, run_id, after),
        to_readers,
    )?;
    summary.run_id = Some(run_id.to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::commit::rejects::RejectSpool;
    use crate::parse::{cloudfront, RowCounts};
    use crate::partition::PartitionKey;
    use crate::read::pattern::ListedInput;
    use crate::read::pattern::MatchedInput;
    use crate::register::LocalCatalog;
    use crate::run::plan::Planned;
    use crate::run::stream::Consumed;
    use crate::schema::table_schema;
    use crate::store::LocalStore;
    use crate::transform::TransformCounts;

    fn held(lake: &Lake) -> TableLock {
        TableLock::acquire(lake, "t", "r", std::time::Duration::from_secs(60), "run").unwrap()
    }

    fn planned(uri: &str, size: u64) -> Planned {
        Planned {
            input: MatchedInput {
                store: Arc::new(LocalStore::new(std::path::Path::new("/in")).unwrap()),
                listed: ListedInput {
                    key: uri.to_owned(),
                    uri: uri.to_owned(),
                    customer: Some("acme".into()),
                    distribution: None,
                    size,
                    mtime_ns: 7,
                    etag: None,
                },
            },
            changed: false,
            pattern: None,
        }
    }

    fn consumed(uri: &str, read: u64, rejected: u64) -> Outcome {
        Outcome {
            planned: planned(uri, 100),
            result: Ok(Consumed {
                hash: "h".into(),
                counts: RowCounts {
                    rows_read: read,
                    rows_ok: read - rejected,
                    rows_rejected: rejected,
                },
                rows_written: read - rejected,
                rows_rejected: rejected,
                transform: TransformCounts::default(),
                bytes_decoded: read * 100,
            }),
        }
    }

    fn failed(uri: &str, kind: FileError) -> Outcome {
        Outcome {
            planned: planned(uri, 50),
            result: Err(InputError::new(uri, kind)),
        }
    }

    fn file(key: &str, rows: u64) -> WrittenFile {
        WrittenFile {
            key: key.into(),
            bytes: 1000 + rows,
            rows,
            partition: PartitionKey {
                customer: "acme".into(),
                dt: 19_000,
            },
            widths: Vec::new(),
        }
    }

    #[test]
    fn a_commit_is_a_function_of_outcomes_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let mut catalog = LocalCatalog::new(&lake, "db");
        let lock = held(&lake);
        let schema = table_schema(&cloudfront::parsed_schema());
        let spool = RejectSpool::new().unwrap();
        let run = RunContext {
            lake: &lake,
            table: "t",
            run_id: "20260101T000000000Z-00000001",
            started_at: "2026-01-01T00:00:00Z".into(),
            after_commit: &AfterCommit::Keep,
            lock: &lock,
            format: TableFormat::Hive,
        };
        let outcomes = vec![
            consumed("in/a.log", 10, 2),
            failed("in/b.gz", FileError::DecompressionCap { cap: 1 }),
            failed("in/c.log", FileError::Vanished),
            consumed("in/d.log", 5, 0),
        ];
        let files = vec![
            file("data/t/customer=acme/dt=2022-01-08/part-x-0.parquet", 9),
            file("data/t/customer=acme/dt=2022-01-08/part-x-1.parquet", 4),
        ];
        let mut summary = TableSummary::default();
        commit(
            &run,
            outcomes,
            files,
            &schema,
            &spool,
            &mut catalog,
            Ledger::default(),
            &mut summary,
        )
        .unwrap();
        assert_eq!(summary.run_id.as_deref(), Some(run.run_id));
        // The first run of a table writes the ledger's first checkpoint.
        let ledger = Ledger::load(&lake, "t").unwrap();
        assert_eq!(ledger.provenance().checkpoint.as_deref(), Some(run.run_id));
        assert_eq!((ledger.len(), ledger.provenance().replayed), (2, 0));
        assert_eq!(
            (
                summary.rows_read,
                summary.rows_written,
                summary.rows_rejected
            ),
            (15, 13, 2)
        );
        assert_eq!((summary.inputs_consumed, summary.inputs_skipped), (2, 1));
        assert_eq!(summary.inputs_failed.len(), 1);
        assert_eq!((summary.files_written, summary.bytes_out), (2, 2013));
        assert_eq!((summary.partitions, summary.partitions_new), (1, 1));
        let report = lake.report("t", run.run_id).unwrap();
        let uris: Vec<_> = report.inputs.iter().map(|i| i.uri.as_str()).collect();
        assert_eq!(uris, ["in/a.log", "in/d.log"]);
        assert_eq!(report.failed_inputs[0].uri, "in/b.gz");
        let manifest: serde_json::Value = serde_json::from_slice(
            &lake
                .store()
                .read(&lake.manifest_key("t", run.run_id))
                .unwrap()
                .unwrap()
                .bytes,
        )
        .unwrap();
        assert_eq!(manifest["entries"].as_array().unwrap().len(), 2);
        assert_eq!(manifest["entries"][0]["meta"]["content_length"], 1009);
        assert_eq!(catalog.partitions("t").unwrap().len(), 1);
    }

    #[test]
    fn rows_that_do_not_add_up_commit_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let mut catalog = LocalCatalog::new(&lake, "db");
        let lock = held(&lake);
        let run = RunContext {
            lake: &lake,
            table: "t",
            run_id: "r",
            started_at: String::new(),
            after_commit: &AfterCommit::Keep,
            lock: &lock,
            format: TableFormat::Hive,
        };
        let mut summary = TableSummary::default();
        let err = commit(
            &run,
            vec![consumed("in/a.log", 10, 0)],
            vec![file(
                "data/t/customer=acme/dt=2022-01-08/part-r-0.parquet",
                9,
            )],
            &table_schema(&cloudfront::parsed_schema()),
            &RejectSpool::new().unwrap(),
            &mut catalog,
            Ledger::default(),
            &mut summary,
        )
        .unwrap_err();
        assert!(matches!(err, Error::Internal { .. }), "{err}");
        assert!(lake.committed_runs("t").unwrap().is_empty());
        // Nothing consumed: no marker either.
        let mut summary = TableSummary::default();
        commit(
            &run,
            vec![failed("in/b.gz", FileError::Vanished)],
            Vec::new(),
            &table_schema(&cloudfront::parsed_schema()),
            &RejectSpool::new().unwrap(),
            &mut catalog,
            Ledger::default(),
            &mut summary,
        )
        .unwrap();
        assert_eq!(summary.run_id, None);
        assert!(lake.committed_runs("t").unwrap().is_empty());
    }
}
