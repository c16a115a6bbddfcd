//! `citrine forget`: make the next run process inputs again.
//!
//! - A failing or quarantined input is released (its failure record dropped).
//! - A consumed input leaves the ledger through a run of its own: a report that names it in
//!   `forgotten` and a marker, so a ledger rebuilt from reports alone agrees.
//! - A consumed input whose rows were written needs `delete_rows`: the live data files of the
//!   partitions its consuming run wrote are read, and each that holds rows of a forgotten input
//!   is written again without them by a rewrite run ([`super::rewrite`]), whose report lists
//!   the replaced files in `supersedes`. `redshift load` of the forget run deletes the
//!   forgotten inputs' rows, and a load of an earlier run leaves the replaced files out, so
//!   the lake and Redshift hold every other row exactly once.

use std::collections::BTreeSet;

use serde::Serialize;

use super::lock::TableLock;
use super::rewrite::{live_files, Rewrite};
use crate::config::{Job, TableSpec};
use crate::error::{Error, Result};
use crate::iceberg::table::Operation;
use crate::lake::Lake;
use crate::ledger::failures::Failures;
use crate::ledger::Ledger;
use crate::register;
use crate::store::Stores;
use crate::transform::mask::scrub_text;

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
    // Released when it drops, whatever the outcome.
    let lock = &TableLock::acquire_for(lake, &table.name, job.lock_lease, "forget")?;
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

/// The forget run: the files holding rows of `forgotten` written again without them (see
/// [`super::rewrite`]).
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
    // The partitions the consuming runs wrote hold every row of the forgotten inputs.
    let mut folders = BTreeSet::new();
    let consuming: BTreeSet<&str> = forgotten
        .iter()
        .filter(|e| e.record.rows_written > 0)
        .map(|e| e.run.as_str())
        .collect();
    for run in consuming {
        for file in lake.report(&table.name, run)?.files {
            if let Some((folder, _)) = file.key.rsplit_once('/') {
                folders.insert(format!("{folder}/"));
            }
        }
    }
    let folders: Vec<String> = folders.into_iter().collect();
    let catalog = register::open(job, stores, lake);
    let files = live_files(lake, table, catalog.as_ref(), Some(&folders))?
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let done = super::rewrite::rewrite(
        job,
        stores,
        lake,
        table,
        ledger,
        lock,
        &Rewrite {
            operation: Operation::Overwrite,
            files,
            drop: forgotten.iter().map(|e| e.record.uri.as_str()).collect(),
            every_file: false,
            forgotten: forgotten.iter().map(|e| e.record.uri.clone()).collect(),
            target_file_bytes: None,
        },
    )?;
    summary.rows_kept = done.rows_kept;
    for entry in forgotten {
        let found = done
            .deleted
            .get(entry.record.uri.as_str())
            .copied()
            .unwrap_or(0);
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
    summary.run_id = Some(done.run_id);
    summary.files_superseded = done.supersedes.len();
    summary.files_written = done.files.len();
    Ok(())
}
