//! One run over many processes (an AWS Batch array job): the same protocol and lake as a
//! one-process run, split in four commands.
//!
//! - [`plan_run`] takes the table's lock, recovers, plans the new inputs and fixes the run's
//!   layout as every run does, splits the inputs into shards balanced by bytes
//!   ([`balance`]), writes the plan into the run's journal
//!   (`_citrine/runs/<table>/<run_id>/plan`) and hands the lock to the run: it stays held, by
//!   the run rather than a process, for the plan's lease.
//! - [`run_shard`] processes exactly one shard's inputs (renewing the lock's lease while it
//!   works), writing data files named `part-<run_id>-s<shard>-<n>.parquet`, each recorded in
//!   the shard's journal folder before it is written, then its report. A retried shard first
//!   deletes what an earlier attempt of it wrote; a shard that has reported is done.
//! - [`commit_run`] refuses unless every shard has reported, then commits the run exactly as
//!   a one-process run commits (catalog, report, marker, ledger checkpoint), deletes the
//!   journal and releases the lock. Committing again does nothing.
//! - [`abort_run`] deletes what the run wrote and releases the lock.
//!
//! A crashed sharded run is recovered like any run once its lease passes: the next run takes
//! the lock over and deletes what the journal records.

pub mod balance;
pub mod record;

use std::time::{Duration, Instant};

use serde::Serialize;

use self::balance::{balance, shards_for, Item};
use self::record::{PatternStores, PlannedInput, RefusedInput, RunPlan, ShardInput, ShardReport};
use super::journal::{self, Journal};
use super::lock::TableLock;
use super::stream::stream;
use super::{begin, commit, stall_point, NoProgress, Progress, TableSummary};
use crate::commit::rejects::{RejectSpool, ShardRejects};
use crate::config::{Job, TableSpec};
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::ledger::Ledger;
use crate::register;
use crate::store::Stores;
use crate::transform::mask::scrub_text;
use crate::transform::Transform;

/// The name of the plan in a run's journal.
const PLAN: &str = "plan";
/// The name of a shard's report in its journal folder.
const REPORT: &str = "report";
/// The name of a shard's rejects in its journal folder.
const REJECTS: &str = "rejects.jsonl";

/// How many shards a plan makes.
#[derive(Debug, Clone, Copy)]
pub enum ShardCount {
    /// Exactly this many (an array job's size).
    Fixed(usize),
    /// As many as give shards of about `bytes` input bytes each, at most `max`.
    TargetBytes {
        /// Input bytes per shard.
        bytes: u64,
        /// The most shards.
        max: usize,
    },
}

impl ShardCount {
    /// The shards for `bytes` of input.
    fn shards(self, bytes: u64) -> usize {
        match self {
            ShardCount::Fixed(n) => n.max(1),
            ShardCount::TargetBytes { bytes: target, max } => {
                shards_for(bytes, target).min(max.max(1))
            }
        }
    }
}

/// How to plan a sharded run.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// How many shards.
    pub count: ShardCount,
    /// How long the run holds the table's lock without a shard renewing it.
    pub lease: Duration,
    /// A workflow's name for the plan (a Step Functions execution's): the plan's summary is
    /// also written to its handle, `_citrine/plans/<table>/<name>.json`, for the workflow to
    /// read, and planning again under that name gives the same plan.
    pub name: Option<String>,
}

/// The longest [`PlanOptions::name`] (a Step Functions execution name's limit).
pub const MAX_PLAN_NAME: usize = 80;

/// Check a plan's name: 1 to 80 letters, digits, `-` and `_`, as Step Functions execution
/// names are, so it is a safe key.
pub fn check_plan_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PLAN_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a plan's name is 1 to {MAX_PLAN_NAME} letters, digits, '-' and '_': {name:?}"
        ))
    }
}

/// What [`plan_run`] did: also the plan's handle, which a workflow reads.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct PlanSummary {
    /// The table.
    pub table: String,
    /// The run planned; `None` when there was nothing new (no lock is held then).
    pub run_id: Option<String>,
    /// Shards planned.
    pub shards: usize,
    /// Inputs planned.
    pub inputs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes per shard.
    pub shard_bytes: Vec<u64>,
    /// Inputs the patterns matched.
    pub inputs_listed: usize,
    /// Inputs the ledger already held.
    pub inputs_skipped: usize,
    /// Files of crashed runs removed.
    pub orphans_removed: usize,
    /// Warnings (scrubbed).
    pub warnings: Vec<String>,
    /// The plan's name, when a workflow gave it one.
    #[serde(default)]
    pub name: Option<String>,
    /// The marker the run's commit writes (its URL), for the load after it.
    #[serde(default)]
    pub marker: Option<String>,
    /// Whether the config has a `[redshift]` section: the workflow loads the marker after
    /// the commit.
    #[serde(default)]
    pub load: bool,
}

impl PlanSummary {
    /// The summary of `plan`, planned on `lake` for `job`.
    fn of(plan: &RunPlan, job: &Job, lake: &Lake, orphans_removed: usize) -> Self {
        let shard_bytes: Vec<u64> = plan
            .shards
            .iter()
            .map(|s| s.iter().map(|i| i.listed.size).sum())
            .collect();
        Self {
            table: plan.table.clone(),
            run_id: Some(plan.run_id.clone()),
            shards: plan.shards.len(),
            inputs: plan.shards.iter().map(Vec::len).sum(),
            bytes: shard_bytes.iter().sum(),
            shard_bytes,
            inputs_listed: plan.listed,
            inputs_skipped: plan.skipped,
            orphans_removed,
            warnings: plan.warnings.clone(),
            name: plan.name.clone(),
            marker: Some(lake.url(&lake.manifest_key(&plan.table, &plan.run_id))),
            load: job.redshift.is_some(),
        }
    }

    /// Write the summary to the handle of its name, if it has one.
    fn write_handle(&self, lake: &Lake) -> Result<()> {
        match &self.name {
            Some(name) => record::write(
                lake.store().as_ref(),
                &lake.plan_handle_key(&self.table, name),
                self,
            ),
            None => Ok(()),
        }
    }
}

/// Delete the handle of a plan of `table` named `name` (its run is committed or aborted; the
/// handle of a plan that found nothing new is left to the lake's lifecycle rule).
fn delete_handle(lake: &Lake, table: &str, name: Option<&str>) {
    if let Some(name) = name {
        let key = lake.plan_handle_key(table, name);
        if let Err(e) = lake.store().delete(&key) {
            tracing::warn!(table, handle = %lake.url(&key), error = %e, "could not delete the plan's handle");
        }
    }
}

impl std::fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.run_id {
            None => write!(
                f,
                "{}: nothing new ({} inputs listed, {} skipped): no run planned",
                self.table, self.inputs_listed, self.inputs_skipped
            ),
            Some(run) => {
                let largest = self.shard_bytes.iter().max().copied().unwrap_or(0);
                let mean = self.bytes as f64 / self.shards.max(1) as f64;
                write!(
                    f,
                    "{}: run {run} planned: {} inputs ({} bytes) in {} shards, largest {:.2}× the mean",
                    self.table,
                    self.inputs,
                    self.bytes,
                    self.shards,
                    if mean > 0.0 { largest as f64 / mean } else { 0.0 }
                )
            }
        }
    }
}

/// What [`run_shard`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShardSummary {
    /// The table.
    pub table: String,
    /// The run.
    pub run_id: String,
    /// The shard.
    pub shard: usize,
    /// The shard had reported already: nothing was done.
    pub already_done: bool,
    /// No run was named and none is planned for the table: nothing was done.
    pub nothing_planned: bool,
    /// Files an earlier attempt of this shard wrote, deleted first.
    pub files_discarded: usize,
    /// Inputs of the shard.
    pub inputs: usize,
    /// Inputs that failed (the commit reports them).
    pub inputs_failed: usize,
    /// Rows read.
    pub rows_read: u64,
    /// Rows written.
    pub rows_written: u64,
    /// Rows rejected.
    pub rows_rejected: u64,
    /// Input bytes.
    pub bytes_in: u64,
    /// Data files written.
    pub files_written: usize,
    /// Wall time.
    pub seconds: f64,
}

impl std::fmt::Display for ShardSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.nothing_planned {
            return write!(f, "{}: no run is planned: nothing to do", self.table);
        }
        if self.already_done {
            return write!(
                f,
                "{}: run {} shard {}: reported already; nothing to do",
                self.table, self.run_id, self.shard
            );
        }
        write!(
            f,
            "{}: run {} shard {}: {} inputs ({} failed), rows {} in / {} out / {} rejected, {} files out, {:.2} s",
            self.table,
            self.run_id,
            self.shard,
            self.inputs,
            self.inputs_failed,
            self.rows_read,
            self.rows_written,
            self.rows_rejected,
            self.files_written,
            self.seconds
        )?;
        if self.files_discarded > 0 {
            write!(
                f,
                ", {} files of an earlier attempt deleted first",
                self.files_discarded
            )?;
        }
        Ok(())
    }
}

/// Plan a sharded run of `table` (see the module's documentation). The lock is handed to the
/// run for the options' lease: long enough for the shards to start; they renew it while they
/// work.
pub fn plan_run(
    job: &Job,
    stores: &Stores,
    table: &TableSpec,
    options: &PlanOptions,
) -> Result<PlanSummary> {
    let lake = Lake::open(job, stores)?;
    plan_run_on(job, stores, &lake, table, options)
}

/// [`plan_run`] on `lake`.
pub fn plan_run_on(
    job: &Job,
    stores: &Stores,
    lake: &Lake,
    table: &TableSpec,
    options: &PlanOptions,
) -> Result<PlanSummary> {
    if let Some(name) = &options.name {
        check_plan_name(name).map_err(|reason| Error::Sharded {
            table: table.name.clone(),
            run: "?".into(),
            reason,
        })?;
        // A retried plan step: what it planned (or found) the first time.
        let handle = lake.plan_handle_key(&table.name, name);
        if let Some(done) = record::read::<PlanSummary>(lake.store().as_ref(), &handle)? {
            return Ok(done);
        }
    }
    let lock = match TableLock::acquire_for(lake, &table.name, job.lock_lease, "plan") {
        Err(Error::Locked { table: t, holder }) => {
            // A plan step retried after it handed the lock to its run, before the handle.
            if holder.planned && options.name.is_some() {
                let plan = read_plan(lake, table, &holder.run_id)?;
                if plan.name == options.name {
                    let done = PlanSummary::of(&plan, job, lake, 0);
                    done.write_handle(lake)?;
                    return Ok(done);
                }
            }
            return Err(Error::Locked { table: t, holder });
        }
        other => other?,
    };
    let mut summary = TableSummary {
        table: table.name.clone(),
        ..Default::default()
    };
    let begun = begin(
        job,
        stores,
        lake,
        table,
        None,
        &lock,
        &mut summary,
        &NoProgress,
    )?;
    let Some(begun) = begun else {
        lock.release();
        let nothing = PlanSummary {
            table: table.name.clone(),
            inputs_listed: summary.inputs_listed,
            inputs_skipped: summary.inputs_skipped,
            orphans_removed: summary.orphans_removed,
            warnings: summary.warnings,
            name: options.name.clone(),
            load: job.redshift.is_some(),
            ..Default::default()
        };
        nothing.write_handle(lake)?;
        return Ok(nothing);
    };
    let bytes: u64 = begun.admitted.iter().map(|p| p.input.listed.size).sum();
    let shards = options.count.shards(bytes);
    let items: Vec<Item<'_>> = begun
        .admitted
        .iter()
        .map(|p| Item {
            customer: p.input.listed.customer.as_deref(),
            bytes: p.input.listed.size,
        })
        .collect();
    let assignment = balance(&items, shards);
    let record = |i: &usize| PlannedInput::of(&begun.admitted[*i]);
    let plan = RunPlan {
        version: RunPlan::VERSION,
        run_id: begun.run_id.clone(),
        table: table.name.clone(),
        started_at: begun.started_at.clone(),
        started_ms: now_ms(),
        lease_s: options.lease.as_secs().max(1),
        patterns: table.inputs.iter().map(|p| p.text().to_owned()).collect(),
        header: begun.layout.header.clone(),
        listed: summary.inputs_listed,
        skipped: summary.inputs_skipped,
        warnings: summary.warnings,
        refused: begun
            .refused
            .iter()
            .map(|o| {
                Ok(RefusedInput {
                    input: PlannedInput::of(&o.planned)?,
                    error: match &o.result {
                        Err(e) => scrub_text(&e.kind.to_string()),
                        Ok(_) => String::new(),
                    },
                })
            })
            .collect::<Result<_>>()?,
        shards: assignment
            .iter()
            .map(|s| s.iter().map(record).collect::<Result<_>>())
            .collect::<Result<_>>()?,
        name: options.name.clone(),
    };
    lock.name_run(&plan.run_id)?;
    let journal = Journal::start(lake, &table.name, &plan.run_id)?;
    record::write(lake.store().as_ref(), &journal.key(PLAN), &plan)?;
    lock.hand_over(&plan.run_id, options.lease)?;
    tracing::info!(table = %table.name, run = %plan.run_id, shards, "planned a sharded run");
    let planned = PlanSummary::of(&plan, job, lake, summary.orphans_removed);
    planned.write_handle(lake)?;
    Ok(planned)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// Which planned (sharded) run a command acts on: the one named, or the one holding the
/// table's lock (`--planned`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which<'a> {
    /// This run (`--run-id R`).
    Named(&'a str),
    /// The planned run holding the table's lock (`--planned`).
    Holder,
}

impl<'a> From<Option<&'a str>> for Which<'a> {
    /// `--run-id R` when given, else `--planned`.
    fn from(run: Option<&'a str>) -> Self {
        run.map_or(Which::Holder, Which::Named)
    }
}

/// The planned run `which` names, or `None` when it asks for the lock's holder and no run
/// holds the lock (a plan that found nothing new). Refused with [`Error::NotPlanned`] when
/// the run holding the lock is not a planned run: a one-process run, a `forget`, a `repair`
/// (`--planned`), or is the very run named (`--run-id` of a one-process run): only a planned
/// run's own commands act on it.
pub fn resolve_run(lake: &Lake, table: &str, which: Which<'_>) -> Result<Option<String>> {
    let holder = TableLock::holder(lake, table)?;
    let not_planned = |holder| Error::NotPlanned {
        table: table.to_owned(),
        holder: Box::new(holder),
    };
    match which {
        Which::Holder => match holder {
            None => Ok(None),
            Some(h) if h.planned => Ok(Some(h.run_id)),
            Some(h) => Err(not_planned(h)),
        },
        Which::Named(run) => match holder {
            Some(h) if h.run_id == run && !h.planned => Err(not_planned(h)),
            _ => Ok(Some(run.to_owned())),
        },
    }
}

fn read_plan(lake: &Lake, table: &TableSpec, run_id: &str) -> Result<RunPlan> {
    let key = Journal::open(lake, &table.name, run_id, None).key(PLAN);
    let plan: RunPlan =
        record::read(lake.store().as_ref(), &key)?.ok_or_else(|| Error::Sharded {
            table: table.name.clone(),
            run: run_id.to_owned(),
            reason: "the run has no plan (never planned, committed, or aborted)".into(),
        })?;
    if plan.version != RunPlan::VERSION {
        return Err(Error::Corrupt {
            path: lake.url(&key),
            message: format!(
                "plan layout version {} (this citrine reads {})",
                plan.version,
                RunPlan::VERSION
            ),
        });
    }
    plan.check_config(table)?;
    Ok(plan)
}

fn transform(job: &Job, table: &TableSpec, plan: &RunPlan) -> Transform {
    super::table_transform(
        super::plan::layout_schema(table.format, &plan.header),
        job,
        table,
    )
}

/// Process shard `shard` of the planned run `which` names of `table`.
pub fn run_shard(
    job: &Job,
    stores: &Stores,
    table: &TableSpec,
    which: Which<'_>,
    shard: usize,
    progress: &dyn Progress,
) -> Result<ShardSummary> {
    let lake = Lake::open(job, stores)?;
    run_shard_on(job, stores, &lake, table, which, shard, progress)
}

/// [`run_shard`] on `lake`.
pub fn run_shard_on(
    job: &Job,
    stores: &Stores,
    lake: &Lake,
    table: &TableSpec,
    which: Which<'_>,
    shard: usize,
    progress: &dyn Progress,
) -> Result<ShardSummary> {
    let started = Instant::now();
    crate::privacy::check_hash_key(job)?;
    let Some(run_id) = resolve_run(lake, &table.name, which)? else {
        // The scheduled plan found nothing new: its array job's children do nothing.
        return Ok(ShardSummary {
            table: table.name.clone(),
            shard,
            nothing_planned: true,
            ..Default::default()
        });
    };
    let plan = read_plan(lake, table, &run_id)?;
    let Some(inputs) = plan.shards.get(shard) else {
        return Err(Error::Sharded {
            table: table.name.clone(),
            run: run_id,
            reason: format!(
                "shard {shard} is out of range: the run has {} shards (0 to {})",
                plan.shards.len(),
                plan.shards.len().saturating_sub(1)
            ),
        });
    };
    let lock = TableLock::resume(
        lake,
        &table.name,
        &run_id,
        Duration::from_secs(plan.lease_s),
    )?;
    let mut summary = ShardSummary {
        table: table.name.clone(),
        run_id: run_id.clone(),
        shard,
        inputs: inputs.len(),
        ..Default::default()
    };
    let store = lake.store();
    let earlier = Journal::open(lake, &table.name, &run_id, Some(shard));
    if store.head(&earlier.key(REPORT))?.is_some() {
        summary.already_done = true;
        return Ok(summary);
    }
    // A retried shard: what an earlier attempt wrote goes first, so nothing is written twice.
    if !earlier.entries()?.is_empty() {
        lock.fence()?;
    }
    summary.files_discarded = earlier.discard()?;
    if summary.files_discarded > 0 {
        tracing::warn!(table = %table.name, run = %run_id, shard, files = summary.files_discarded, "deleted the files of an earlier attempt of this shard");
    }
    let journal = Journal::start_shard(lake, &table.name, &run_id, shard)?;
    let pattern_stores = PatternStores::open(stores, table)?;
    let planned = inputs
        .iter()
        .map(|i| i.planned(&pattern_stores))
        .collect::<Result<Vec<_>>>()?;
    summary.bytes_in = planned.iter().map(|p| p.input.listed.size).sum();
    progress.planned(&table.name, planned.len(), summary.bytes_in);
    let transform = transform(job, table, &plan);
    let spool = RejectSpool::new()?;
    let (outcomes, files) = stream(
        job,
        table,
        lake,
        &format!("{run_id}-s{shard:04}"),
        &journal,
        &transform,
        &planned,
        &spool,
        progress,
    )?;
    stall_point("shard_before_report");
    // A shard of a run taken over while it worked does not report (its files are the
    // taker's recovery's to delete).
    lock.fence()?;
    let rejects_key = spool.publish(store.as_ref(), &journal.key(REJECTS))?;
    let inputs = outcomes
        .into_iter()
        .map(ShardInput::of)
        .collect::<Result<Vec<_>>>()?;
    for i in &inputs {
        match &i.result {
            record::InputResult::Consumed(c) => {
                summary.rows_read += c.counts.rows_read;
                summary.rows_written += c.rows_written;
                summary.rows_rejected += c.rows_rejected;
            }
            record::InputResult::Failed(_) => summary.inputs_failed += 1,
            record::InputResult::Vanished => {}
        }
    }
    summary.files_written = files.len();
    summary.seconds = started.elapsed().as_secs_f64();
    let report = ShardReport {
        version: RunPlan::VERSION,
        run_id: run_id.clone(),
        shard,
        inputs,
        files,
        rejects_key,
        seconds: summary.seconds,
    };
    record::write(store.as_ref(), &journal.key(REPORT), &report)?;
    drop(lock);
    Ok(summary)
}

/// Commit the planned run `which` names of `table` once every shard has reported: exactly
/// what a one-process run's commit does. A run that is committed already is left as it is
/// (its summary has its run id and a warning), and so is a lake where no run holds the lock
/// when the holder is asked for: a retried commit does nothing.
pub fn commit_run(
    job: &Job,
    stores: &Stores,
    table: &TableSpec,
    which: Which<'_>,
) -> Result<TableSummary> {
    let lake = Lake::open(job, stores)?;
    commit_run_on(job, stores, &lake, table, which)
}

/// [`commit_run`] on `lake`.
pub fn commit_run_on(
    job: &Job,
    stores: &Stores,
    lake: &Lake,
    table: &TableSpec,
    which: Which<'_>,
) -> Result<TableSummary> {
    let mut summary = TableSummary {
        table: table.name.clone(),
        ..Default::default()
    };
    let Some(run_id) = resolve_run(lake, &table.name, which)? else {
        summary
            .warnings
            .push("no run holds the table's lock: nothing to commit".into());
        return Ok(summary);
    };
    let store = lake.store();
    let run_journal = Journal::open(lake, &table.name, &run_id, None);
    if store
        .head(&lake.manifest_key(&table.name, &run_id))?
        .is_some()
    {
        // Committed before (this is a retry): finish what that commit may have left.
        if let Ok(plan) = read_plan(lake, table, &run_id) {
            delete_handle(lake, &table.name, plan.name.as_deref());
        }
        run_journal.finish()?;
        if let Ok(lock) = TableLock::resume(lake, &table.name, &run_id, job.lock_lease) {
            lock.release();
        }
        summary.run_id = Some(run_id);
        summary
            .warnings
            .push("committed already: nothing to do".into());
        return Ok(summary);
    }
    let plan = read_plan(lake, table, &run_id)?;
    let plan_name = plan.name.clone();
    let lock = TableLock::resume(
        lake,
        &table.name,
        &run_id,
        Duration::from_secs(plan.lease_s),
    )?;
    let mut reports = Vec::with_capacity(plan.shards.len());
    let mut missing = Vec::new();
    for shard in 0..plan.shards.len() {
        let key = Journal::open(lake, &table.name, &run_id, Some(shard)).key(REPORT);
        match record::read::<ShardReport>(store.as_ref(), &key)? {
            Some(r) if r.run_id == run_id && r.shard == shard => reports.push(r),
            Some(_) => {
                return Err(Error::Corrupt {
                    path: lake.url(&key),
                    message: "the shard report names another run or shard".into(),
                })
            }
            None => missing.push(shard),
        }
    }
    if !missing.is_empty() {
        return Err(Error::ShardsMissing {
            table: table.name.clone(),
            run: run_id,
            missing,
            shards: plan.shards.len(),
        });
    }
    let pattern_stores = PatternStores::open(stores, table)?;
    let mut outcomes = Vec::new();
    for r in plan.refused {
        outcomes.push(
            ShardInput {
                input: r.input,
                result: record::InputResult::Failed(r.error),
            }
            .outcome(&pattern_stores)?,
        );
    }
    let mut files = Vec::new();
    let mut rejects = ShardRejects::default();
    for r in reports {
        for i in r.inputs {
            outcomes.push(i.outcome(&pattern_stores)?);
        }
        files.extend(r.files);
        rejects.0.extend(r.rejects_key);
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    let failures = crate::ledger::failures::Failures::load(lake, &table.name)?;
    let verdicts = super::verdicts(&outcomes, &failures);
    summary.inputs_listed = plan.listed;
    summary.inputs_skipped = plan.skipped;
    summary.warnings = plan.warnings;
    let ledger = Ledger::load(lake, &table.name)?;
    summary.ledger = ledger.provenance().clone();
    let mut catalog = register::open(job, stores, lake);
    stall_point("before_commit");
    commit::commit(
        &commit::RunContext {
            lake,
            table: &table.name,
            run_id: &run_id,
            started_at: plan.started_at,
            after_commit: &table.after_commit,
            lock: &lock,
            format: table.table_format,
        },
        outcomes,
        files,
        &super::plan::layout_schema(table.format, &plan.header),
        &rejects,
        catalog.as_mut(),
        ledger,
        &mut summary,
    )?;
    if let Err(e) = run_journal.finish() {
        tracing::warn!(table = %table.name, error = %e, "could not delete the run's journal; the next run does");
    }
    super::note_failures(lake, job, table, failures, verdicts, &mut summary);
    if summary.run_id.is_some() {
        summary.after_commit = super::after_commit::finish_or_warn(
            lake,
            stores,
            table,
            &run_id,
            &lock,
            &mut summary.warnings,
        );
    }
    lock.release();
    delete_handle(lake, &table.name, plan_name.as_deref());
    summary.seconds = (now_ms() - plan.started_ms).max(0) as f64 / 1000.0;
    Ok(summary)
}

/// What [`abort_run`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AbortSummary {
    /// The table.
    pub table: String,
    /// The run aborted; `None` when the lock's holder was asked for and no run holds it.
    pub run_id: Option<String>,
    /// Data files deleted.
    pub files_deleted: usize,
}

impl std::fmt::Display for AbortSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.run_id {
            Some(run) => write!(
                f,
                "{}: run {run} aborted: {} data files deleted",
                self.table, self.files_deleted
            ),
            None => write!(f, "{}: no run is planned: nothing to abort", self.table),
        }
    }
}

/// Abort the uncommitted planned run `which` names of `table`: delete what it wrote and
/// release the table's lock. The run must own the table while this deletes: its lock is
/// resumed (and fenced), or, when no run holds the lock (its lease passed), taken by this
/// process; a lock another run holds refuses the abort with that run named. A committed run
/// is refused, and a one-process run too (it is stopped by stopping its process).
pub fn abort_run(
    job: &Job,
    stores: &Stores,
    table: &TableSpec,
    which: Which<'_>,
) -> Result<AbortSummary> {
    let lake = Lake::open(job, stores)?;
    abort_run_on(job, &lake, table, which)
}

/// [`abort_run`] on `lake`.
pub fn abort_run_on(
    job: &Job,
    lake: &Lake,
    table: &TableSpec,
    which: Which<'_>,
) -> Result<AbortSummary> {
    let mut summary = AbortSummary {
        table: table.name.clone(),
        ..Default::default()
    };
    let Some(run_id) = resolve_run(lake, &table.name, which)? else {
        return Ok(summary);
    };
    if lake
        .store()
        .head(&lake.manifest_key(&table.name, &run_id))?
        .is_some()
    {
        return Err(Error::Sharded {
            table: table.name.clone(),
            run: run_id,
            reason: "the run is committed; only an uncommitted run can be aborted".into(),
        });
    }
    let lock = match TableLock::resume(lake, &table.name, &run_id, job.lock_lease) {
        Ok(lock) => lock,
        // No run holds the table (the run's lease passed): this process takes it to delete.
        Err(Error::NotHolder { holder: None, .. }) => {
            TableLock::acquire(lake, &table.name, &run_id, job.lock_lease, "abort")?
        }
        Err(e) => return Err(e),
    };
    let files = journal::run_files(lake, &table.name, &run_id)?;
    let plan_name = read_plan(lake, table, &run_id).ok().and_then(|p| p.name);
    lock.fence()?;
    summary.files_deleted = super::recover::discard_run(lake, &table.name, &run_id, &files)?;
    Journal::open(lake, &table.name, &run_id, None).finish()?;
    lock.release();
    delete_handle(lake, &table.name, plan_name.as_deref());
    tracing::warn!(table = %table.name, run = %run_id, files = summary.files_deleted, "aborted the run");
    summary.run_id = Some(run_id);
    Ok(summary)
}
