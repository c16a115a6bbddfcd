//! What happens to a run's inputs once its marker exists (`table.after_commit`): kept (the
//! default), deleted, or archived (copied below `archive_to`, then deleted).
//!
//! Durable first: before the marker, the commit records the consumed inputs in
//! `_citrine/pending/<table>/<run_id>.json`; after the marker it deletes or archives each and
//! then drops the record. An input is touched only if its object still matches what was read
//! (size, and ETag or mtime): one rewritten since is kept and reported. A process killed
//! between the marker and the end leaves the record, and the table's next run (or the
//! Lambda's next invocation) finishes it; a record whose run has no marker is dropped with
//! nothing done.

use serde::{Deserialize, Serialize};

use super::lock::TableLock;
use super::record::{PatternStores, PlannedInput};
use super::stall_point;
use crate::config::{AfterCommit, TableSpec};
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::store::{Store, Stores};

pub use crate::commit::report::AfterCommitOutcome as Done;

#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    run_id: String,
    inputs: Vec<PlannedInput>,
}

fn pending_prefix(table: &str) -> String {
    format!("_citrine/pending/{table}")
}

pub(crate) fn pending_key(table: &str, run_id: &str) -> String {
    format!("{}/{run_id}.json", pending_prefix(table))
}

/// Before the marker: record `inputs` (the run's consumed inputs) for what comes after it.
/// Nothing is recorded when the table keeps its inputs.
pub fn record(
    lake: &Lake,
    table: &str,
    after: &AfterCommit,
    run_id: &str,
    inputs: Vec<PlannedInput>,
) -> Result<()> {
    if *after == AfterCommit::Keep || inputs.is_empty() {
        return Ok(());
    }
    let pending = Pending {
        run_id: run_id.to_owned(),
        inputs,
    };
    super::record::write(lake.store().as_ref(), &pending_key(table, run_id), &pending)
}

/// [`finish`], with a failure logged and kept as a warning: the run is committed, and its
/// record stays for the next run to finish.
pub fn finish_or_warn(
    lake: &Lake,
    stores: &Stores,
    table: &TableSpec,
    run_id: &str,
    lock: &TableLock,
    warnings: &mut Vec<String>,
) -> Done {
    finish(lake, stores, table, run_id, lock).unwrap_or_else(|e| warn(table, e, warnings))
}

/// [`resume`], with a failure logged and kept as a warning (the run goes on).
pub fn resume_or_warn(
    lake: &Lake,
    stores: &Stores,
    table: &TableSpec,
    lock: &TableLock,
    warnings: &mut Vec<String>,
) -> Done {
    resume(lake, stores, table, lock).unwrap_or_else(|e| warn(table, e, warnings))
}

fn warn(table: &TableSpec, e: Error, warnings: &mut Vec<String>) -> Done {
    let text = crate::transform::mask::scrub_text(&format!(
        "inputs not yet deleted or archived after their commit (the next run retries): {e}"
    ));
    tracing::warn!(table = %table.name, "{text}");
    warnings.push(text);
    Done::default()
}

/// After the marker of `run_id`: delete or archive its recorded inputs (after a
/// [`TableLock::fence`] of `lock`, the table's lock this process holds), then drop the record.
pub fn finish(
    lake: &Lake,
    stores: &Stores,
    table: &TableSpec,
    run_id: &str,
    lock: &TableLock,
) -> Result<Done> {
    let key = pending_key(&table.name, run_id);
    let store = lake.store();
    let Some(pending) = super::record::read::<Pending>(store.as_ref(), &key)? else {
        return Ok(Done::default());
    };
    stall_point("before_after_commit");
    lock.fence()?;
    let patterns = PatternStores::open(stores, table)?;
    let archive = match &table.after_commit {
        AfterCommit::Archive(to) => Some(stores.open(to)?),
        _ => None,
    };
    let mut done = Done::default();
    for input in &pending.inputs {
        let planned = input.planned(&patterns)?;
        let source = &planned.input.store;
        let Some(now) = source.head(&input.listed.key)? else {
            // Gone already (an earlier attempt, or by hand): nothing to do.
            continue;
        };
        let same = now.size == input.listed.size
            && match (&now.etag, &input.listed.etag) {
                (Some(a), Some(b)) => a == b,
                _ => now.mtime_ns == input.listed.mtime_ns,
            };
        if !same {
            tracing::warn!(input = %input.listed.uri, "rewritten since it was read: kept, and read again by the next run");
            done.kept_changed.push(input.listed.uri.clone());
            continue;
        }
        match &archive {
            Some(to) => {
                copy(
                    source.as_ref(),
                    &input.listed.key,
                    to.as_ref(),
                    &input.listed.key,
                )?;
                source.delete(&input.listed.key)?;
                done.archived += 1;
            }
            None => {
                source.delete(&input.listed.key)?;
                done.deleted += 1;
            }
        }
    }
    // What was done goes into the run's report, before the record that allows it is dropped.
    let mut report = lake.report(&table.name, run_id)?;
    report.after_commit = Some(done.clone());
    store.write(
        &lake.report_key(&table.name, run_id),
        report.to_json().as_bytes(),
    )?;
    store.delete(&key)?;
    tracing::info!(table = %table.name, run = run_id, deleted = done.deleted, archived = done.archived, kept = done.kept_changed.len(), "inputs handled after the commit");
    Ok(done)
}

/// At a run's start, under the table's lock: finish what committed runs left pending (a
/// process killed after its marker) and drop the records of runs that never committed.
/// Nothing is listed when the table keeps its inputs.
pub fn resume(lake: &Lake, stores: &Stores, table: &TableSpec, lock: &TableLock) -> Result<Done> {
    let mut done = Done::default();
    if table.after_commit == AfterCommit::Keep {
        return Ok(done);
    }
    let store = lake.store();
    for o in store.list(&pending_prefix(&table.name))? {
        let name = o.key.rsplit('/').next().unwrap_or_default();
        let Some(run) = name.strip_suffix(".json") else {
            continue;
        };
        if store.head(&lake.manifest_key(&table.name, run))?.is_some() {
            done += finish(lake, stores, table, run, lock)?;
        } else {
            store.delete(&o.key)?;
        }
    }
    Ok(done)
}

/// Copy `from_key` of `from` to `to_key` of `to`, streamed.
fn copy(from: &dyn Store, from_key: &str, to: &dyn Store, to_key: &str) -> Result<()> {
    let mut reader = from.open(from_key)?;
    let mut writer = to.upload(to_key)?;
    std::io::copy(&mut reader, &mut writer).map_err(|e| Error::io(to.url(to_key), e))?;
    writer.finish()?;
    Ok(())
}
