//! The only module that knows the order of things: lock → recover → plan → stream → commit
//! (publish, register, report, marker), the run protocol of `docs/design.md` §2. Each step is
//! a module of its own: [`plan`], [`recover`], [`stream`], [`commit`].
//!
//! Streaming runs on a rayon pool of `threads` workers, one input per task. A task decodes,
//! transforms and splits its input, and encodes the partition batches itself with its pool
//! thread's own [`crate::write::PartitionedWriter`]: no hand-off between threads, so a batch is
//! encoded while it is still in the core's cache and no core waits on another's backlog. rayon
//! gives each thread a contiguous range of the plan (inputs sorted by path, so by customer), so
//! a partition is mostly written by one writer; one written by several gets a file from each.
//!
//! A bad input never leaves rows behind and never fails the run, at any size (see
//! [`stream`]). Only a failure that is not the input's (a write to the lake, a bug) fails the
//! table's run, and then nothing of it is committed; other tables still run.

pub mod after_commit;
pub mod commit;
pub mod compact;
pub mod forget;
pub mod journal;
pub mod lock;
pub mod plan;
pub mod record;
pub mod recover;
pub mod rewrite;
pub mod shard;
pub mod stream;

use std::time::Instant;

use serde::Serialize;

pub(crate) use crate::stall::stall_point;

use crate::commit::rejects::RejectSpool;
use crate::commit::report::now_rfc3339;
use crate::commit::FailedInput;
use crate::config::{Job, TableSpec};
use crate::error::{FileError, InputError, Result};
use crate::lake::{run_id_after, Lake};
use crate::ledger::failures::Failures;
use crate::ledger::{Ledger, Provenance};
use crate::read::pattern::MatchedInput;
use crate::register::{self, Catalog};
use crate::store::Stores;
use crate::transform::mask::scrub_text;
use crate::transform::{ColumnRules, Masker, Transform};
use arrow::datatypes::SchemaRef;

use self::journal::Journal;
use self::lock::TableLock;
use self::plan::{plan, resolve_schema, Layout, Plan, Planned};
pub use self::recover::recover;
use self::stream::{stream, Outcome};

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
    /// Inputs not tried because they are quarantined (see `citrine status`).
    pub inputs_quarantined: usize,
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
    /// Input bytes on disk (as stored: gzip compressed).
    pub bytes_in: u64,
    /// Input bytes as decoded: gzip inputs inflated.
    pub bytes_decoded: u64,
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
    /// Values of `email_domain` columns that were not addresses.
    pub emails_invalid: u64,
    /// Wall time.
    pub seconds: f64,
    /// Inputs deleted or archived after a commit (this run's, or one a killed run left), and
    /// those kept because they changed since they were read.
    pub after_commit: after_commit::Done,
    /// The ledger's checkpoint and the reports replayed on top of it: the run's fixed cost.
    pub ledger: Provenance,
    /// Things the user should know that did not fail anything (a pattern that matched
    /// nothing), scrubbed of addresses.
    pub warnings: Vec<String>,
    /// Why the table's run failed, when it did (nothing of it was committed; other tables
    /// ran on), scrubbed of addresses.
    pub error: Option<String>,
}

impl TableSummary {
    /// Input megabytes on disk per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.rate(self.bytes_in)
    }

    /// Input megabytes as decoded (gzip inflated) per second.
    pub fn decoded_mb_per_sec(&self) -> f64 {
        self.rate(self.bytes_decoded)
    }

    fn rate(&self, bytes: u64) -> f64 {
        if self.seconds > 0.0 {
            bytes as f64 / 1e6 / self.seconds
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for TableSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} files in ({} skipped, {} failed), rows {} in / {} out / {} rejected, {} files out ({} bytes), {} partitions ({} new), {:.2} s, {:.1} MB/s read ({:.1} MB/s inflated)",
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
            self.mb_per_sec(),
            self.decoded_mb_per_sec()
        )?;
        if self.inputs_quarantined > 0 {
            write!(
                f,
                ", {} quarantined inputs not tried (citrine status)",
                self.inputs_quarantined
            )?;
        }
        match (&self.run_id, &self.error) {
            (_, Some(_)) => write!(f, ", run failed: nothing committed"),
            (Some(r), None) => write!(f, ", run {r}"),
            (None, None) => write!(f, ", nothing new: no marker"),
        }
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

/// [`run_table`] on `lake` (a lake opened another way, for instance through a store that
/// counts its requests).
pub fn run_table_on(
    job: &Job,
    stores: &Stores,
    lake: &Lake,
    table: &TableSpec,
    progress: &dyn Progress,
) -> Result<TableSummary> {
    run_on(job, stores, lake.clone(), table, None, progress)
}

/// Process `inputs` (those the ledger does not hold), each with the index of the table's
/// pattern that matched it, as one run, instead of listing the table's patterns: the
/// Lambda's objects of one invocation.
pub fn run_inputs(
    job: &Job,
    stores: &Stores,
    table: &TableSpec,
    inputs: Vec<(MatchedInput, usize)>,
    progress: &dyn Progress,
) -> Result<TableSummary> {
    run_table_from(job, stores, table, Some(inputs), progress)
}

fn run_table_from(
    job: &Job,
    stores: &Stores,
    table: &TableSpec,
    given: Option<Vec<(MatchedInput, usize)>>,
    progress: &dyn Progress,
) -> Result<TableSummary> {
    run_on(
        job,
        stores,
        Lake::open(job, stores)?,
        table,
        given,
        progress,
    )
}

fn run_on(
    job: &Job,
    stores: &Stores,
    lake: Lake,
    table: &TableSpec,
    given: Option<Vec<(MatchedInput, usize)>>,
    progress: &dyn Progress,
) -> Result<TableSummary> {
    let started = Instant::now();
    crate::privacy::check_hash_key(job)?;
    let lock = TableLock::acquire_for(&lake, &table.name, job.lock_lease, "run")?;
    let mut summary = TableSummary {
        table: table.name.clone(),
        ..Default::default()
    };
    let Some(mut begun) = begin(
        job,
        stores,
        &lake,
        table,
        given,
        &lock,
        &mut summary,
        progress,
    )?
    else {
        lock.release();
        summary.seconds = started.elapsed().as_secs_f64();
        return Ok(summary);
    };
    // Every file the run writes is recorded in its journal before it is written.
    let journal = Journal::start(&lake, &table.name, &begun.run_id)?;
    let run_id = begun.run_id.clone();
    let failures = std::mem::take(&mut begun.failures);
    let committed = stream_and_commit(
        job,
        &lake,
        table,
        &journal,
        begun,
        &failures,
        &lock,
        &mut summary,
        progress,
    );
    let verdicts = match committed {
        Ok(verdicts) => verdicts,
        Err(e) => {
            // A failed run (not a killed one) removes what it wrote before it goes: no reader
            // of the folder sees its files until the next run. What cannot be removed stays
            // in its journal for that run's recovery.
            let cleaned = recover::clean_up_failed(&lake, &table.name, &run_id, &journal);
            tracing::warn!(table = %table.name, run = %run_id, removed = cleaned.removed, left = cleaned.left, "the run failed; removed the files it wrote");
            lock.release();
            return Err(e);
        }
    };
    // Committed (or, with nothing consumed, its files removed): the journal has served.
    if let Err(e) = journal.finish() {
        tracing::warn!(table = %table.name, error = %e, "could not delete the run's journal; the next run does");
    }
    note_failures(&lake, job, table, failures, verdicts, &mut summary);
    if let Some(run) = &summary.run_id {
        summary.after_commit +=
            after_commit::finish_or_warn(&lake, stores, table, run, &lock, &mut summary.warnings);
    }
    lock.release();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Stream a begun run's inputs and commit them: the verdicts for the failures record.
#[allow(clippy::too_many_arguments)]
fn stream_and_commit(
    job: &Job,
    lake: &Lake,
    table: &TableSpec,
    journal: &Journal,
    begun: Begun,
    failures: &Failures,
    lock: &TableLock,
    summary: &mut TableSummary,
    progress: &dyn Progress,
) -> Result<Vec<(MatchedInput, Verdict)>> {
    let transform = begun.transform(job, table);
    let spool = RejectSpool::new()?;
    let (streamed, files) = stream(
        job,
        table,
        lake,
        &begun.run_id,
        journal,
        &transform,
        &begun.admitted,
        &spool,
        progress,
    )?;
    let mut outcomes = begun.refused;
    outcomes.extend(streamed);
    let verdicts = verdicts(&outcomes, failures);
    stall_point("before_commit");
    let mut catalog = begun.catalog;
    commit::commit(
        &commit::RunContext {
            lake,
            table: &table.name,
            run_id: &begun.run_id,
            started_at: begun.started_at,
            after_commit: &table.after_commit,
            lock,
            format: table.table_format,
        },
        outcomes,
        files,
        transform.table_schema(),
        &spool,
        catalog.as_mut(),
        begun.ledger,
        summary,
    )?;
    Ok(verdicts)
}

/// A run planned under its table's lock: what it streams and what its commit needs.
pub(crate) struct Begun {
    /// The run's id.
    pub run_id: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// The inputs to stream.
    pub admitted: Vec<Planned>,
    /// The inputs refused before anything was read of them (their outcome is known).
    pub refused: Vec<Outcome>,
    /// The table layout the run writes.
    pub layout: Layout,
    /// The ledger the plan was made against.
    pub ledger: Ledger,
    /// The table's catalog.
    pub catalog: Box<dyn Catalog>,
    /// The table's failing inputs.
    pub failures: Failures,
}

/// What became of each input a run tried, for the failures record.
pub(crate) enum Verdict {
    Consumed,
    Failed(String),
}

/// The verdicts (errors scrubbed) that change `failures`, each with its input, taken before
/// the commit consumes the outcomes: every failed input, and the consumed ones it records. A
/// consumed input it does not know needs nothing (20,016 inputs cloned for nothing took 20 ms).
pub(crate) fn verdicts(outcomes: &[Outcome], failures: &Failures) -> Vec<(MatchedInput, Verdict)> {
    outcomes
        .iter()
        .filter_map(|o| {
            let verdict = match &o.result {
                Ok(_) if !failures.inputs().contains_key(&o.planned.input.listed.uri) => {
                    return None
                }
                Ok(_) => Verdict::Consumed,
                Err(InputError {
                    kind: FileError::Vanished,
                    ..
                }) => return None,
                Err(e) => Verdict::Failed(scrub_text(&e.kind.to_string())),
            };
            Some((o.planned.input.clone(), verdict))
        })
        .collect()
}

/// After a commit: failed inputs gain an attempt (quarantined at `run.max_attempts`), and
/// consumed ones (when the run committed) lose their record. A failure to save is a warning.
pub(crate) fn note_failures(
    lake: &Lake,
    job: &Job,
    table: &TableSpec,
    mut failures: Failures,
    verdicts: Vec<(MatchedInput, Verdict)>,
    summary: &mut TableSummary,
) {
    let at = now_rfc3339();
    for (input, verdict) in verdicts {
        match verdict {
            Verdict::Consumed if summary.run_id.is_some() => {
                failures.clear(&input.listed.uri);
            }
            Verdict::Failed(error) => failures.failed(&input, &error, job.max_attempts, &at),
            Verdict::Consumed => {}
        }
    }
    if let Err(e) = failures.save(lake, &table.name) {
        let text = scrub_text(&format!("could not record the failing inputs: {e}"));
        tracing::warn!(table = %table.name, "{text}");
        summary.warnings.push(text);
    }
}

impl Begun {
    /// The transform that gives the run's layout.
    pub fn transform(&self, job: &Job, table: &TableSpec) -> Transform {
        table_transform(self.layout.schema.clone(), job, table)
    }
}

/// The transform of `table` into `schema`: IP masking, then the column rules.
pub fn table_transform(schema: SchemaRef, job: &Job, table: &TableSpec) -> Transform {
    Transform::new(schema, Masker::new(table.mask_columns.clone(), job.mask)).with_rules(
        ColumnRules::new(table.column_rules.clone(), job.hash_key.clone()),
    )
}

/// How `table`'s runs reach its readers, for recovery: Hive, or its Iceberg snapshots as
/// `catalog` records them.
pub fn readers<'a>(
    lake: &'a Lake,
    table: &'a TableSpec,
    catalog: &'a dyn Catalog,
) -> recover::Readers<'a> {
    match table.table_format {
        crate::config::TableFormat::Hive => recover::Readers::Hive,
        crate::config::TableFormat::Iceberg => {
            recover::Readers::Iceberg(Box::new(move |run: &str| {
                crate::iceberg::table::published(lake, &table.name, catalog, run)
            }))
        }
    }
}

/// The steps every run takes under its table's lock before it writes anything: recover what
/// crashed runs left, plan the new inputs, name the run and fix its layout. `None` when there
/// is nothing new to process.
#[allow(clippy::too_many_arguments)]
pub(crate) fn begin(
    job: &Job,
    stores: &Stores,
    lake: &Lake,
    table: &TableSpec,
    given: Option<Vec<(MatchedInput, usize)>>,
    lock: &TableLock,
    summary: &mut TableSummary,
    progress: &dyn Progress,
) -> Result<Option<Begun>> {
    let started_at = now_rfc3339();
    let mut ledger = Ledger::load(lake, &table.name)?;
    let catalog = register::open(job, stores, lake);
    let recovered = recover(
        lake,
        &table.name,
        ledger.newest_run(),
        lock,
        &readers(lake, table, catalog.as_ref()),
    )?;
    summary.orphans_removed = recovered.removed;
    if recovered.rolled_forward > 0 {
        // A run published to readers got its marker: the ledger holds it now.
        ledger = Ledger::load(lake, &table.name)?;
    }
    summary.after_commit =
        after_commit::resume_or_warn(lake, stores, table, lock, &mut summary.warnings);
    lock::remove_stale_temp_files(lake, &table.name, job.lock_lease)?;
    stall_point("after_lock");

    let Plan {
        planned,
        listed,
        skipped,
        ledger,
    } = plan(table, stores, ledger, given, &mut summary.warnings)?;
    summary.inputs_listed = listed;
    summary.inputs_skipped = skipped;
    summary.ledger = ledger.provenance().clone();
    // Quarantined inputs are not tried again (read only when there is something to try).
    let mut planned = planned;
    let failures = if planned.is_empty() {
        Failures::default()
    } else {
        let failures = Failures::load(lake, &table.name)?;
        let before = planned.len();
        planned.retain(|p| !failures.is_quarantined(&p.input));
        summary.inputs_quarantined = before - planned.len();
        failures
    };
    stall_point("planned");
    tracing::info!(table = %table.name, listed, skipped, planned = planned.len(), "planned");
    progress.planned(
        &table.name,
        planned.len(),
        planned.iter().map(|p| p.input.listed.size).sum(),
    );
    if planned.is_empty() {
        return Ok(None);
    }

    // The run's id sorts after every committed run's, whatever this machine's clock says, so
    // "the markers after a run" never misses one. It names every file the run writes.
    let run_id = match ledger.newest_run() {
        Some(newest) => run_id_after(newest),
        None => lock.run_id(),
    };
    // The lock names the run from here on: commands that name it find it as the holder.
    lock.name_run(&run_id)?;
    let mut layout = resolve_schema(job, table, &planned, catalog.as_ref())?;
    // Inputs that cannot join the table's layout fail before anything is read of them.
    let mut refused_kinds: std::collections::HashMap<usize, FileError> =
        std::mem::take(&mut layout.refused).into_iter().collect();
    let mut refused = Vec::new();
    let mut admitted = Vec::with_capacity(planned.len());
    for (i, p) in planned.into_iter().enumerate() {
        match refused_kinds.remove(&i) {
            Some(kind) => refused.push(Outcome {
                result: Err(InputError::new(p.input.listed.uri.clone(), kind)),
                planned: p,
            }),
            None => admitted.push(p),
        }
    }
    Ok(Some(Begun {
        run_id,
        started_at,
        admitted,
        refused,
        layout,
        ledger,
        catalog,
        failures,
    }))
}
