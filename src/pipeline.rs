//! The only module that knows the order of things: lock → recover → plan → stream → publish →
//! register → report → marker (the run protocol of `docs/design.md`).
//!
//! Streaming runs on a rayon pool of `threads` workers, one input per task. A task decodes,
//! transforms and splits its input, and encodes the partition batches itself with its pool
//! thread's own [`PartitionedWriter`]: no hand-off between threads, so a batch is encoded
//! while it is still in the core's cache and no core waits on another's backlog. rayon gives
//! each thread a contiguous range of the plan (inputs sorted by path, so by customer), so a
//! partition is mostly written by one writer; one written by several gets a file from each.
//!
//! A bad input never leaves rows behind and never fails the run, at any size. An input's rows
//! are held in memory until its decoded bytes pass `buffer_file_bytes`; past that they are
//! written tentatively to files of the input's own. When the input turns out bad (unreadable,
//! truncated, a bad layout on its last line, too many rejects, a partition folder that cannot
//! exist, changed while read) the held rows are dropped or its own files deleted, and it is
//! reported and left unconsumed. Only a failure that is not the input's (a write to the lake,
//! a bug) fails the table's run, and then nothing of it is committed; other tables still run.
//! Memory is bounded by: workers × (one decoded batch + `buffer_file_bytes` of held rows) +
//! the writers' budget, split between them, whatever an input inflates to.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use rayon::prelude::*;
use serde::Serialize;
use xxhash_rust::xxh3::Xxh3;

use crate::commit::rejects::RejectSpool;
use crate::commit::report::{now_rfc3339, REPORT_VERSION};
use crate::commit::{manifest_json, FailedInput, InputRecord, RunReport, WrittenRecord};
use crate::config::{CatalogKind, Job, TableSpec, WriteOptions};
use crate::error::{Error, FileError, InputError, Result};
use crate::lake::{new_run_id, Lake};
use crate::ledger::{Decision, Ledger};
use crate::lock::TableLock;
use crate::parse::audit::{read_columns, HeaderUnion};
use crate::parse::Reject;
use crate::parse::{cloudfront, decode_stream, Decoder, Format, FormatDecoder, RowCounts};
use crate::partition::{split, PartitionBatch, MAX_KEY_BYTES};
use crate::read::decompress::{self, Decompressed, Encoding};
use crate::read::inflate::{self, Gunzipped};
use crate::read::pattern::MatchedInput;
use crate::register::{columns_of, grows_at_end, Catalog, GlueCatalog, LocalCatalog};
use crate::schema::{is_lineage, table_schema};
use crate::store::Stores;
use crate::transform::mask::scrub_text;
use crate::transform::{Lineage, Masker, Transform, TransformCounts};
use crate::write::{PartitionedWriter, WrittenFile};

/// Environment variable naming a stage at which a run stops and waits (tests kill it there).
pub const STALL_ENV: &str = "CITRINE_TEST_STALL";

/// Hooks a front end uses to show progress (the CLI draws a bar on a terminal). Every method
/// has an empty default.
pub trait Progress: Sync {
    /// A table's plan is known: `inputs` new inputs of `bytes` bytes on disk.
    fn planned(&self, _table: &str, _inputs: usize, _bytes: u64) {}
    /// One input is done (consumed or failed).
    fn input_done(&self, _bytes: u64) {}
    /// The table's run has ended.
    fn finished(&self, _table: &str) {}
}

/// No progress display.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What one table's run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableSummary {
    /// The table.
    pub table: String,
    /// The run id, when the run committed.
    pub run_id: Option<String>,
    /// Inputs the patterns matched.
    pub inputs_listed: usize,
    /// Inputs the ledger already held.
    pub inputs_skipped: usize,
    /// Inputs consumed.
    pub inputs_consumed: usize,
    /// Inputs consumed that had changed since an earlier run.
    pub inputs_changed: Vec<String>,
    /// Inputs that failed (left unconsumed).
    pub inputs_failed: Vec<FailedInput>,
    /// Rows read, written and rejected (`read = written + rejected`).
    pub rows_read: u64,
    /// Rows written.
    pub rows_written: u64,
    /// Rows rejected.
    pub rows_rejected: u64,
    /// Input bytes on disk.
    pub bytes_in: u64,
    /// Data files written.
    pub files_written: usize,
    /// Bytes written.
    pub bytes_out: u64,
    /// Partitions the run wrote to.
    pub partitions: usize,
    /// Partitions new to the catalog.
    pub partitions_new: usize,
    /// Files of crashed runs removed.
    pub orphans_removed: usize,
    /// Masked tokens that were not addresses.
    pub ips_invalid: u64,
    /// Strings cut to the Redshift limit.
    pub strings_truncated: u64,
    /// Wall time.
    pub seconds: f64,
    /// Things the user should know that did not fail anything (a pattern that matched
    /// nothing), scrubbed of addresses.
    pub warnings: Vec<String>,
    /// Why the table's run failed, when it did (nothing of it was committed; other tables
    /// ran on), scrubbed of addresses.
    pub error: Option<String>,
}

impl TableSummary {
    /// Input megabytes per second.
    pub fn mb_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes_in as f64 / 1e6 / self.seconds
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for TableSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} files in ({} skipped, {} failed), rows {} in / {} out / {} rejected, {} files out ({} bytes), {} partitions ({} new), {:.2} s, {:.1} MB/s",
            self.table,
            self.inputs_consumed,
            self.inputs_skipped,
            self.inputs_failed.len(),
            self.rows_read,
            self.rows_written,
            self.rows_rejected,
            self.files_written,
            self.bytes_out,
            self.partitions,
            self.partitions_new,
            self.seconds,
            self.mb_per_sec()
        )?;
        match (&self.run_id, &self.error) {
            (_, Some(_)) => write!(f, ", run failed: nothing committed"),
            (Some(r), None) => write!(f, ", run {r}"),
            (None, None) => write!(f, ", nothing new: no marker"),
        }
    }
}

/// One input the plan will process.
#[derive(Debug, Clone)]
struct Planned {
    input: MatchedInput,
    changed: bool,
}

/// What processing one input gave.
struct Outcome {
    planned: Planned,
    result: std::result::Result<Consumed, InputError>,
}

struct Consumed {
    hash: String,
    counts: RowCounts,
    rows_written: u64,
    rows_rejected: u64,
    transform: TransformCounts,
}

/// Environment variable naming a file whose appearance ends a stall (tests change an input
/// while the run waits, then let it go on); without it a stall lasts 300 s.
pub const RESUME_ENV: &str = "CITRINE_TEST_RESUME";

/// Stop here if the test hook names `stage`, until the resume file appears.
fn stall_point(stage: &str) {
    if std::env::var(STALL_ENV).is_ok_and(|s| s == stage) {
        eprintln!("citrine: stalled at {stage} ({STALL_ENV})");
        let resume = std::env::var_os(RESUME_ENV).map(std::path::PathBuf::from);
        let until = Instant::now() + std::time::Duration::from_secs(300);
        while Instant::now() < until && !resume.as_ref().is_some_and(|r| r.exists()) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The lake of `job`, opened through `stores`.
pub fn open_lake(job: &Job, stores: &Stores) -> Result<Lake> {
    Ok(Lake::new(stores.open(&job.root)?))
}

/// The catalog `job` registers partitions in.
pub fn open_catalog(job: &Job, stores: &Stores, lake: &Lake) -> Box<dyn Catalog> {
    match &job.catalog {
        CatalogKind::Local => Box::new(LocalCatalog::new(lake, &job.database)),
        CatalogKind::Glue { catalog_id } => Box::new(GlueCatalog::new(
            stores.aws(),
            &job.database,
            catalog_id.clone(),
        )),
    }
}

/// Run every table of `job` (or just `only`), one after another. A table whose run fails is
/// reported in its summary ([`TableSummary::error`]) and the other tables still run.
pub fn run(job: &Job, only: Option<&str>, progress: &dyn Progress) -> Vec<TableSummary> {
    let stores = Stores::new(job.aws.clone());
    let mut out = Vec::new();
    for table in &job.tables {
        if only.is_some_and(|t| t != table.name) {
            continue;
        }
        let summary = run_table(job, &stores, table, progress).unwrap_or_else(|e| {
            let error = scrub_text(&e.to_string());
            tracing::error!(table = %table.name, %error, "the table's run failed; nothing of it was committed");
            TableSummary {
                table: table.name.clone(),
                error: Some(error),
                ..Default::default()
            }
        });
        progress.finished(&table.name);
        out.push(summary);
    }
    out
}

/// Process the new inputs of one table and commit them as one run.
pub fn run_table(
    job: &Job,
    stores: &Stores,
    table: &TableSpec,
    progress: &dyn Progress,
) -> Result<TableSummary> {
    run_table_from(job, stores, table, None, progress)
}

/// Process `inputs` (those the ledger does not hold) of one table as one run, instead of
/// listing the table's patterns: the Lambda's objects of one invocation.
pub fn run_inputs(
    job: &Job,
    stores: &Stores,
    table: &TableSpec,
    inputs: Vec<MatchedInput>,
    progress: &dyn Progress,
) -> Result<TableSummary> {
    run_table_from(job, stores, table, Some(inputs), progress)
}

fn run_table_from(
    job: &Job,
    stores: &Stores,
    table: &TableSpec,
    given: Option<Vec<MatchedInput>>,
    progress: &dyn Progress,
) -> Result<TableSummary> {
    let started = Instant::now();
    let started_at = now_rfc3339();
    let lake = open_lake(job, stores)?;
    let run_id = new_run_id();
    let lock = TableLock::acquire(&lake, &table.name, &run_id, job.lock_lease)?;
    let mut summary = TableSummary {
        table: table.name.clone(),
        ..Default::default()
    };
    summary.orphans_removed = recover(&lake, &table.name)?;
    crate::lock::remove_stale_temp_files(&lake, &table.name, job.lock_lease)?;
    stall_point("after_lock");

    let (planned, listed, skipped) = plan(table, stores, &lake, given, &mut summary.warnings)?;
    summary.inputs_listed = listed;
    summary.inputs_skipped = skipped;
    stall_point("planned");
    tracing::info!(table = %table.name, listed, skipped, planned = planned.len(), "planned");
    progress.planned(
        &table.name,
        planned.len(),
        planned.iter().map(|p| p.input.size).sum(),
    );
    if planned.is_empty() {
        lock.release();
        summary.seconds = started.elapsed().as_secs_f64();
        return Ok(summary);
    }

    let mut catalog = open_catalog(job, stores, &lake);
    let (schema, refused) = resolve_schema(job, table, &planned, catalog.as_ref())?;
    let transform = Transform::new(
        schema.clone(),
        Masker::new(table.mask_columns.clone(), job.mask),
    );
    // Inputs that cannot join the table's layout fail before anything is read of them.
    let mut refused: std::collections::HashMap<usize, FileError> = refused.into_iter().collect();
    let mut outcomes = Vec::new();
    let mut admitted = Vec::with_capacity(planned.len());
    for (i, p) in planned.into_iter().enumerate() {
        match refused.remove(&i) {
            Some(kind) => outcomes.push(Outcome {
                result: Err(InputError::new(p.input.uri.clone(), kind)),
                planned: p,
            }),
            None => admitted.push(p),
        }
    }
    let spool = RejectSpool::new()?;
    let (streamed, files) = stream(
        job, table, &lake, &run_id, &transform, &admitted, &spool, progress,
    )?;
    outcomes.extend(streamed);
    stall_point("before_commit");

    // Commit: everything below reads only `outcomes` and `files`.
    let mut inputs = Vec::new();
    for o in outcomes {
        summary.bytes_in += o.planned.input.size;
        match o.result {
            Ok(c) => {
                summary.rows_read += c.counts.rows_read;
                summary.rows_written += c.rows_written;
                summary.rows_rejected += c.rows_rejected;
                summary.ips_invalid += c.transform.ips_invalid;
                summary.strings_truncated += c.transform.strings_truncated;
                if o.planned.changed {
                    summary.inputs_changed.push(o.planned.input.uri.clone());
                }
                inputs.push(InputRecord {
                    uri: o.planned.input.uri,
                    size: o.planned.input.size,
                    mtime_ns: o.planned.input.mtime_ns,
                    etag: o.planned.input.etag,
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
        remove_files(&lake, &files);
        return Err(Error::Internal {
            message: format!(
                "{}: {} rows transformed but {written_rows} written",
                lake.url(&lake.data_prefix(&table.name)),
                summary.rows_written
            ),
        });
    }
    summary.inputs_consumed = inputs.len();
    summary.files_written = files.len();
    summary.bytes_out = files.iter().map(|f| f.bytes).sum();
    if inputs.is_empty() {
        // Every input failed: nothing consumed, so no marker.
        remove_files(&lake, &files);
        lock.release();
        summary.seconds = started.elapsed().as_secs_f64();
        return Ok(summary);
    }

    let rejects_key = spool.publish(
        lake.store().as_ref(),
        &lake.rejects_key(&table.name, &run_id),
    )?;
    let columns = columns_of(&schema);
    let data_url = format!("{}/", lake.url(&lake.data_prefix(&table.name)));
    let schema_version = catalog.ensure_table(&table.name, &columns, &data_url)?;
    let partitions: BTreeSet<_> = files.iter().map(|f| f.partition.clone()).collect();
    summary.partitions = partitions.len();
    let registrations: Vec<_> = partitions
        .into_iter()
        .map(|p| {
            let url = format!("{data_url}{}/", p.path());
            (p, url)
        })
        .collect();
    summary.partitions_new = catalog.add_partitions(&table.name, &registrations)?;

    let records: Vec<WrittenRecord> = files
        .iter()
        .map(|f| WrittenRecord {
            url: lake.url(&f.key),
            key: f.key.clone(),
            bytes: f.bytes,
            rows: f.rows,
            customer: f.partition.customer.clone(),
            dt: f.partition.date(),
        })
        .collect();
    let report = RunReport {
        version: REPORT_VERSION,
        run_id: run_id.clone(),
        table: table.name.clone(),
        started_at,
        finished_at: now_rfc3339(),
        schema_version,
        columns,
        inputs,
        failed_inputs: summary.inputs_failed.clone(),
        files: records.clone(),
        rows_rejected: summary.rows_rejected,
        rejects_key,
    };
    let store = lake.store();
    store.write(
        &lake.report_key(&table.name, &run_id),
        report.to_json().as_bytes(),
    )?;
    stall_point("before_manifest");
    store.write(
        &lake.manifest_key(&table.name, &run_id),
        manifest_json(&records).as_bytes(),
    )?;
    lock.release();
    summary.run_id = Some(run_id);
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Delete what crashed runs left: data files of runs without a marker, temporary files,
/// reports and rejects of uncommitted runs. Returns how many data files were removed.
pub fn recover(lake: &Lake, table: &str) -> Result<usize> {
    let committed: BTreeSet<String> = lake.committed_runs(table)?.into_iter().collect();
    let store = lake.store();
    let is_tmp = |name: &str| name.starts_with('.') && name.ends_with(".tmp");
    let mut removed = 0;
    for object in store.list(&lake.data_prefix(table))? {
        let name = object.key.rsplit('/').next().unwrap_or_default();
        if is_tmp(name) || run_of_part(name).is_some_and(|run| !committed.contains(run)) {
            store.delete(&object.key)?;
            removed += 1;
        }
    }
    // Reports and rejects of runs that never wrote their marker.
    for object in store.list(&lake.complete_prefix(table))? {
        let name = object.key.rsplit('/').next().unwrap_or_default();
        let run = name.strip_suffix(crate::lake::REPORT_SUFFIX);
        if is_tmp(name) || run.is_some_and(|r| !committed.contains(r)) {
            store.delete(&object.key)?;
        }
    }
    let rejects = lake.rejects_prefix(table);
    for object in store.list(&rejects)? {
        let run = object.key[rejects.len()..]
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        if !committed.contains(run) {
            store.delete(&object.key)?;
        }
    }
    if removed > 0 {
        tracing::warn!(table, removed, "removed files of runs that did not commit");
    }
    Ok(removed)
}

/// The run id in a data file name `part-<run_id>-<n>.parquet`.
fn run_of_part(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    rest.rsplit_once('-').map(|(run, _)| run)
}

/// List inputs and keep those the ledger does not hold. Returns (planned, listed, skipped).
fn plan(
    table: &TableSpec,
    stores: &Stores,
    lake: &Lake,
    given: Option<Vec<MatchedInput>>,
    warnings: &mut Vec<String>,
) -> Result<(Vec<Planned>, usize, usize)> {
    let ledger = Ledger::load(lake, &table.name)?;
    let mut seen = BTreeSet::new();
    let mut planned = Vec::new();
    let (mut listed, mut skipped) = (0, 0);
    let batches = match given {
        Some(inputs) => vec![inputs],
        None => {
            let mut batches = Vec::with_capacity(table.inputs.len());
            for pattern in &table.inputs {
                let matched = pattern.list(stores)?;
                if matched.is_empty() {
                    let warning = format!(
                        "input pattern {:?} matched nothing under {}",
                        pattern.text(),
                        pattern.root()
                    );
                    tracing::warn!(table = %table.name, "{warning}");
                    warnings.push(scrub_text(&warning));
                }
                batches.push(matched);
            }
            batches
        }
    };
    for matches in batches {
        for m in matches {
            if !seen.insert(m.uri.clone()) {
                continue;
            }
            listed += 1;
            let changed = match ledger.decide(&m.uri, m.size, m.mtime_ns, m.etag.as_deref()) {
                Decision::New => false,
                Decision::Unchanged => {
                    skipped += 1;
                    continue;
                }
                Decision::CheckContent => match hash_input(&m) {
                    Ok(hash) if ledger.get(&m.uri).is_some_and(|r| r.hash == hash) => {
                        skipped += 1;
                        continue;
                    }
                    Ok(_) => true,
                    // Unreadable now (or changing): planned, so its own processing reports it.
                    Err(e) => {
                        tracing::debug!(input = %m.uri, error = %e, "could not hash a known input; processing it");
                        true
                    }
                },
            };
            if changed {
                tracing::warn!(input = %m.uri, "input changed since it was consumed; processing it again");
            }
            planned.push(Planned { input: m, changed });
        }
    }
    Ok((planned, listed, skipped))
}

/// The table schema for this run: CloudFront's fixed layout, or for audit the catalog's
/// columns followed by new header columns in first-seen order. Also the planned inputs (by
/// index) whose header would take the table past `run.max_columns`: they join nothing.
fn resolve_schema(
    job: &Job,
    table: &TableSpec,
    planned: &[Planned],
    catalog: &dyn Catalog,
) -> Result<(SchemaRef, Vec<(usize, FileError)>)> {
    let mut refused = Vec::new();
    let parsed = match table.format {
        Format::CloudFront => cloudfront::parsed_schema(),
        Format::Audit => {
            let existing = catalog
                .columns(&table.name)?
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.name)
                .filter(|n| !is_lineage(n))
                .collect();
            let mut union = HeaderUnion::from_columns(existing);
            for (i, p) in planned.iter().enumerate() {
                // A file whose header cannot be read fails later, with its error reported.
                let Ok(file) = p.input.open() else {
                    continue;
                };
                let Ok(reader) = Decompressed::new(file, job.max_decompressed_bytes) else {
                    continue;
                };
                let encoding = reader.encoding();
                let Ok(cols) = read_columns(decompress::buffered(reader), |e| {
                    decompress::classify(e, encoding)
                }) else {
                    continue;
                };
                let mut grown = union.clone();
                grown.add(&cols);
                let columns = table_schema(&grown.parsed_schema()).fields().len();
                if columns > job.max_columns {
                    refused.push((
                        i,
                        FileError::TooManyColumns {
                            columns,
                            limit: job.max_columns,
                        },
                    ));
                } else {
                    union = grown;
                }
            }
            union.parsed_schema()
        }
    };
    let schema = table_schema(&parsed);
    if let Some(registered) = catalog.columns(&table.name)? {
        if !grows_at_end(&registered, &columns_of(&schema)) {
            return Err(Error::Corrupt {
                path: table.name.clone(),
                message: "the catalog's columns differ from this table's layout".into(),
            });
        }
    }
    Ok((schema, refused))
}

/// Decode, transform and write every planned input, spooling rejected rows. Returns each
/// input's outcome and the files written.
#[allow(clippy::too_many_arguments)]
fn stream(
    job: &Job,
    table: &TableSpec,
    lake: &Lake,
    run_id: &str,
    transform: &Transform,
    planned: &[Planned],
    spool: &RejectSpool,
    progress: &dyn Progress,
) -> Result<(Vec<Outcome>, Vec<WrittenFile>)> {
    let worker = Worker {
        job,
        table,
        transform,
        spool,
        key_room: partition_key_room(lake, &table.name, run_id),
    };
    let threads = job.threads.max(1);
    let per_worker = WriteOptions {
        max_open_files: (job.write.max_open_files / threads).max(1),
        memory_budget_bytes: job.write.memory_budget_bytes / threads as u64,
        ..job.write.clone()
    };
    let sequence = Arc::new(AtomicU64::new(0));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::io("worker pool", io::Error::other(e)))?;
    // One writer per pool thread; a task takes its own thread's. Only that thread's one task at
    // a time uses it (nothing in a task calls back into rayon), so it is never held elsewhere.
    let writers: Vec<Mutex<PartitionedWriter>> = (0..threads)
        .map(|_| {
            Mutex::new(PartitionedWriter::new(
                lake.clone(),
                &table.name,
                run_id,
                transform.table_schema().clone(),
                per_worker.clone(),
                sequence.clone(),
            ))
        })
        .collect();
    let stop = AtomicBool::new(false);
    // rayon splits the plan into contiguous ranges (stealing halves when a thread runs out), so
    // neighbouring inputs, which share partitions, are mostly written by the same writer.
    let results: Vec<Option<Result<Outcome>>> = pool.install(|| {
        planned
            .par_iter()
            .map(|p| {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                let slot = &writers[rayon::current_thread_index().unwrap_or(0) % threads];
                let mut writer = match slot.try_lock() {
                    Ok(writer) => writer,
                    Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                    Err(TryLockError::WouldBlock) => {
                        unreachable!("a pool thread's writer is used by one task at a time")
                    }
                };
                let outcome = process_input(&worker, p, &mut writer);
                if outcome.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                progress.input_done(p.input.size);
                Some(outcome)
            })
            .collect()
    });
    let writers = writers
        .into_iter()
        .map(|w| w.into_inner().unwrap_or_else(PoisonError::into_inner));
    let mut outcomes = Vec::with_capacity(results.len());
    let mut first_error = None;
    for r in results.into_iter().flatten() {
        match r {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let mut files = Vec::new();
    if first_error.is_some() {
        // Closed files are returned so they are removed below; open ones are aborted.
        for w in writers {
            files.extend(w.written());
            w.abort();
        }
    } else {
        // Closing flushes every open file's last row group: in parallel, like the rest.
        let finished: Vec<Result<Vec<WrittenFile>>> = pool.install(|| {
            writers
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(PartitionedWriter::finish)
                .collect()
        });
        for f in finished {
            match f {
                Ok(f) => files.extend(f),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    if let Some(e) = first_error {
        // Nothing of this run may be committed; remove what it wrote now rather than later.
        remove_files(lake, &files);
        return Err(e);
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((outcomes, files))
}

/// Bytes a partition folder (`customer=…/dt=…`) may take so that every data file key of this
/// run stays within S3's key limit (the lake's key prefix and file names counted).
fn partition_key_room(lake: &Lake, table: &str, run_id: &str) -> usize {
    // The longest file name a run writes, with room for more digits than any run reaches.
    let name = format!("part-{run_id}-{}.parquet", "0".repeat(12));
    let key = format!("{}//{name}", lake.data_prefix(table));
    let url = lake.url(&key);
    // On S3 the limit is on the whole key, the lake's prefix included; a local lake is held
    // to the same rule (below its root) so it can be copied to S3 as it is.
    let used = match url.strip_prefix("s3://") {
        Some(rest) => rest.split_once('/').map_or(rest.len(), |(_, k)| k.len()),
        None => key.len(),
    };
    MAX_KEY_BYTES.saturating_sub(used)
}

/// Remove files of a run that will not commit (best effort: the next run's recovery removes
/// whatever is left).
fn remove_files(lake: &Lake, files: &[WrittenFile]) {
    for f in files {
        if let Err(e) = lake.store().delete(&f.key) {
            tracing::warn!(file = %lake.url(&f.key), error = %e, "could not remove a file of a failed run; the next run removes it");
        }
    }
}

/// A reader that hashes every byte read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Arc<std::sync::Mutex<Xxh3>>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut h) = self.hasher.lock() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The content hash as recorded in reports: xxh3-128, 32 hex digits.
fn hex128(h: &Xxh3) -> String {
    format!("{:032x}", h.digest128())
}

/// xxh3-128 of an input's raw bytes, hex.
pub fn hash_input(input: &MatchedInput) -> Result<String> {
    let mut f = input.open()?;
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(&input.uri, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex128(&h))
}

/// The error of an input that could not be opened: the input's own when the store said why
/// (it changed since it was listed), else the store's text.
fn open_failed(e: Error) -> FileError {
    match e {
        Error::Input(InputError { kind, .. }) => kind,
        e => FileError::Io {
            source: io::Error::other(e.to_string()),
        },
    }
}

/// Inputs up to this size on disk are read into memory whole, and gzip ones decompressed
/// in one call ([`inflate::gunzip`]), which is about twice as fast as streaming inflate.
const WHOLE_INPUT_BYTES: u64 = 4 << 20;

/// Decompressed bytes past which a whole-read gzip input is streamed instead (memory per
/// worker stays below this plus [`WHOLE_INPUT_BYTES`]).
const WHOLE_OUTPUT_BYTES: usize = 16 << 20;

/// An input's content: in memory, or a stream for large inputs.
enum Content {
    Memory(Vec<u8>),
    Stream(Decompressed<Box<dyn Read + Send>>),
}

/// Open an input's (decompressed, capped) content: small inputs whole (up to `whole_output`
/// bytes decompressed), large ones streamed.
fn open_content(
    mut reader: impl Read + Send + 'static,
    size: u64,
    cap: u64,
    whole_output: usize,
) -> std::result::Result<(Content, Encoding), FileError> {
    let stream = |reader: Box<dyn Read + Send>| {
        let reader = Decompressed::sized(reader, cap, size)
            .map_err(|e| decompress::classify(e, Encoding::Plain))?;
        let encoding = reader.encoding();
        Ok((Content::Stream(reader), encoding))
    };
    if size > WHOLE_INPUT_BYTES {
        return stream(Box::new(reader));
    }
    let mut raw = Vec::with_capacity(size as usize + 1);
    reader
        .read_to_end(&mut raw)
        .map_err(|e| decompress::classify(e, Encoding::Plain))?;
    if !raw.starts_with(&decompress::GZIP_MAGIC) {
        if raw.len() as u64 > cap {
            return Err(FileError::DecompressionCap { cap });
        }
        return Ok((Content::Memory(raw), Encoding::Plain));
    }
    match inflate::gunzip(&raw, cap, whole_output)? {
        Gunzipped::Whole(content) => Ok((Content::Memory(content), Encoding::Gzip)),
        // Too large to hold (or past the cap): the streaming reader reads it, and reports
        // the cap as it always does.
        Gunzipped::TooLarge => stream(Box::new(io::Cursor::new(raw))),
    }
}

/// What a worker needs besides its writer: the same for every input of the run.
struct Worker<'a> {
    job: &'a Job,
    table: &'a TableSpec,
    transform: &'a Transform,
    spool: &'a RejectSpool,
    /// Bytes a partition folder may take in a data file's key (see [`PartitionKey::check_path`]).
    key_room: usize,
}

/// An input's rows until the input is known to be good. They are held in memory up to a
/// number of decoded bytes; past it they are written tentatively to files of the input's own
/// (see [`PartitionedWriter::begin_input`]). Either way a failure leaves nothing behind.
struct Staged<'w> {
    writer: &'w mut PartitionedWriter,
    held: Vec<PartitionBatch>,
    held_bytes: usize,
    limit: usize,
}

impl<'w> Staged<'w> {
    fn new(writer: &'w mut PartitionedWriter, limit: u64) -> Self {
        Self {
            writer,
            held: Vec::new(),
            held_bytes: 0,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
    }

    /// Take one decoded batch's partitions (`bytes` decoded bytes in all).
    fn add(&mut self, mut parts: Vec<PartitionBatch>, bytes: usize) -> Result<()> {
        if !self.writer.is_tentative() {
            self.held_bytes += bytes;
            self.held.append(&mut parts);
            if self.held_bytes <= self.limit {
                return Ok(());
            }
            self.writer.begin_input();
            parts = std::mem::take(&mut self.held);
        }
        for part in parts {
            self.writer.write(part)?;
        }
        Ok(())
    }

    /// The input is good: its rows become part of the run.
    fn commit(self) -> Result<()> {
        if self.writer.is_tentative() {
            return self.writer.commit_input();
        }
        for part in self.held {
            self.writer.write(part)?;
        }
        Ok(())
    }

    /// The input failed: nothing of it stays (an error is the run's).
    fn discard(self) -> Result<()> {
        self.writer.rollback_input()
    }
}

/// Why a decode stopped early when it is not the input's fault: kept aside and raised as the
/// run's error.
fn stopped_for_the_run() -> FileError {
    FileError::Io {
        source: io::Error::other("stopped: the run failed"),
    }
}

/// Process one input. An `Err` is the run's (a write failed, or a bug): nothing of the run
/// may commit. A bad input gives an `Ok` outcome holding its error, with none of its rows
/// left in the writer.
fn process_input(w: &Worker, p: &Planned, writer: &mut PartitionedWriter) -> Result<Outcome> {
    let (job, uri) = (w.job, &p.input.uri);
    let failed = |kind: FileError| Outcome {
        planned: p.clone(),
        result: Err(InputError::new(uri.clone(), kind)),
    };
    let file = match p.input.open() {
        Ok(f) => f,
        Err(e) => return Ok(failed(open_failed(e))),
    };
    stall_point("input_opened");
    let hasher = Arc::new(std::sync::Mutex::new(Xxh3::new()));
    let reader = HashingReader {
        inner: file,
        hasher: hasher.clone(),
    };
    let cap = job.max_decompressed_bytes;
    let (source, encoding) = match open_content(reader, p.input.size, cap, WHOLE_OUTPUT_BYTES) {
        Ok(opened) => opened,
        Err(kind) => return Ok(failed(kind)),
    };
    let lineage = Lineage::new(uri.clone(), p.input.customer.clone());
    let mut decoder = FormatDecoder::new(w.table.format, job.batch_size);
    let mut staged = Staged::new(writer, job.buffer_file_bytes);
    let mut rejects = Vec::new();
    let mut transform_counts = TransformCounts::default();
    let mut rows_written = 0u64;
    // An error that is not the input's: kept here, the decode stopped, and raised for the run.
    let mut run_error = None;
    let input: Box<dyn io::BufRead> = match source {
        Content::Memory(bytes) => Box::new(io::Cursor::new(bytes)),
        Content::Stream(reader) => Box::new(decompress::buffered_sized(reader, p.input.size)),
    };
    let decoded = decode_stream(
        input,
        &mut decoder,
        |e| decompress::classify(e, encoding),
        |d| {
            rejects.extend(d.rejects);
            let (out, parts) = match w
                .transform
                .apply(d.batch, &lineage)
                .and_then(|out| split(&out.batch).map(|parts| (out, parts)))
            {
                Ok(done) => done,
                Err(e) => {
                    run_error = Some(e);
                    return Err(stopped_for_the_run());
                }
            };
            for part in &parts {
                part.key
                    .check_path(w.key_room)
                    .map_err(FileError::PathTooLong)?;
            }
            transform_counts += out.counts;
            rejects.extend(out.rejects);
            rows_written += out.batch.num_rows() as u64;
            if let Err(e) = staged.add(parts, out.batch.get_array_memory_size()) {
                run_error = Some(e);
                return Err(stopped_for_the_run());
            }
            Ok(())
        },
    );
    if let Some(e) = run_error {
        return Err(e);
    }
    let counts = decoder.counts();
    let verdict =
        decoded.and_then(|()| check_rejects(&rejects, counts.rows_read, job.max_reject_fraction));
    if let Err(kind) = verdict {
        staged.discard()?;
        return Ok(failed(kind));
    }
    staged.commit()?;
    // Consumed: its rejects go to the spool (a failed input's rows are dropped with it).
    w.spool.append(uri, &rejects)?;
    let hash = hasher.lock().map(|h| hex128(&h)).unwrap_or_default();
    Ok(Outcome {
        planned: p.clone(),
        result: Ok(Consumed {
            hash,
            counts,
            rows_written,
            rows_rejected: rejects.len() as u64,
            transform: transform_counts,
        }),
    })
}

/// Fail an input whose rejected share of `read` rows passes `limit` (see
/// [`FileError::TooManyRejects`]).
fn check_rejects(rejects: &[Reject], read: u64, limit: f64) -> std::result::Result<(), FileError> {
    let rejected = rejects.len() as u64;
    if read == 0 || rejected as f64 <= limit * read as f64 {
        return Ok(());
    }
    let first = rejects
        .iter()
        .min_by_key(|r| r.line)
        .expect("some rejected");
    Err(FileError::TooManyRejects {
        rejected,
        read,
        limit,
        first_line: first.line,
        first_reason: first.reason.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::decompress::gz;

    const WHOLE_OUTPUT: usize = 1 << 16;

    fn content(raw: Vec<u8>, cap: u64) -> std::result::Result<(Vec<u8>, bool), FileError> {
        let size = raw.len() as u64;
        let (content, _) = open_content(io::Cursor::new(raw), size, cap, WHOLE_OUTPUT)?;
        Ok(match content {
            Content::Memory(bytes) => (bytes, true),
            Content::Stream(mut reader) => {
                let mut out = Vec::new();
                let encoding = reader.encoding();
                reader
                    .read_to_end(&mut out)
                    .map_err(|e| decompress::classify(e, encoding))?;
                (out, false)
            }
        })
    }

    #[test]
    fn small_inputs_are_read_whole_and_large_ones_streamed() {
        let text = b"#Version: 1.0\n".repeat(1000);
        assert_eq!(
            content(text.clone(), u64::MAX).unwrap(),
            (text.clone(), true)
        );
        assert_eq!(content(gz(&text), u64::MAX).unwrap(), (text.clone(), true));
        // Past the whole-input size on disk: streamed, same bytes.
        let big: Vec<u8> = (0..WHOLE_INPUT_BYTES + 1)
            .map(|i| (i % 251) as u8)
            .collect();
        assert_eq!(content(big.clone(), u64::MAX).unwrap(), (big, false));
        // A small gzip that inflates past the whole-output limit is streamed too.
        let bomb = vec![b'x'; WHOLE_OUTPUT + 1];
        assert_eq!(content(gz(&bomb), u64::MAX).unwrap(), (bomb, false));
    }

    #[test]
    fn the_cap_holds_on_both_paths() {
        let text = b"a line of a log\n".repeat(1000);
        for raw in [text.clone(), gz(&text)] {
            let err = content(raw, 100).unwrap_err();
            assert!(
                matches!(err, FileError::DecompressionCap { cap: 100 }),
                "{err}"
            );
        }
        let truncated = gz(&text);
        let err = content(truncated[..truncated.len() - 9].to_vec(), u64::MAX).unwrap_err();
        assert!(matches!(err, FileError::Gzip { .. }), "{err}");
    }

    #[test]
    fn an_input_fails_once_its_rejected_share_passes_the_limit() {
        use crate::parse::RejectReason;
        let reject = |line| Reject {
            line,
            reason: RejectReason::MissingCustomer,
            raw: String::new(),
        };
        assert!(check_rejects(&[], 0, 0.1).is_ok());
        assert!(check_rejects(&[reject(3)], 10, 0.1).is_ok());
        let err = check_rejects(&[reject(9), reject(4)], 10, 0.1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 of 10 rows rejected, more than run.max_reject_fraction = 0.1 allows (first at line 4: no customer in the row or the input path)"
        );
        assert!(check_rejects(&[reject(1)], 1, 1.0).is_ok());
        assert!(check_rejects(&[reject(1)], 1, 0.0).is_err());
    }

    #[test]
    fn part_names_give_their_run() {
        assert_eq!(
            run_of_part("part-20261123T090102123Z-0a1b2c3d-00012.parquet"),
            Some("20261123T090102123Z-0a1b2c3d")
        );
        assert_eq!(run_of_part("other.parquet"), None);
    }
}
