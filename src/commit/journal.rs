//! The run journal: `_citrine/runs/<table>/<run_id>/started` when a run begins writing, then
//! one empty object `files/<key below data/<table>/>` per data file, written *before* the
//! file's upload starts. Recovering a crashed run therefore costs what that run wrote, never a
//! listing of the table's data. A run deletes its journal once its marker is written (or once
//! it has removed its files, when it commits nothing); a journal whose run has a marker is
//! only leftovers and is deleted too.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::commit::report::now_rfc3339;
use crate::error::Result;
use crate::lake::Lake;
use crate::store::Store;

/// Name of the object a run writes first.
const STARTED: &str = "started";
/// Folder of the per-file entries.
const FILES: &str = "files";

#[derive(Serialize)]
struct Started<'a> {
    run_id: &'a str,
    pid: u32,
    host: String,
    started_at: String,
}

/// A run's journal.
#[derive(Debug, Clone)]
pub struct Journal {
    store: Arc<dyn Store>,
    /// `_citrine/runs/<table>/<run_id>`.
    prefix: String,
    /// `data/<table>/`.
    data_prefix: String,
}

impl Journal {
    /// Record that `run_id` of `table` begins writing.
    pub fn start(lake: &Lake, table: &str, run_id: &str) -> Result<Self> {
        let journal = Self {
            store: lake.store().clone(),
            prefix: format!("{}/{run_id}", lake.runs_prefix(table)),
            data_prefix: format!("{}/", lake.data_prefix(table)),
        };
        let started = Started {
            run_id,
            pid: std::process::id(),
            host: crate::lock::hostname(),
            started_at: now_rfc3339(),
        };
        journal.store.write(
            &format!("{}/{STARTED}", journal.prefix),
            &serde_json::to_vec(&started).expect("plain data"),
        )?;
        Ok(journal)
    }

    /// Record the data file `key` (below the lake root) before it is written.
    pub fn file(&self, key: &str) -> Result<()> {
        let rel = key.strip_prefix(&self.data_prefix).unwrap_or(key);
        self.store
            .write(&format!("{}/{FILES}/{rel}", self.prefix), b"")
    }

    /// Delete the journal: the run is committed, or has removed what it wrote.
    pub fn finish(&self) -> Result<()> {
        for o in self.store.list(&self.prefix)? {
            self.store.delete(&o.key)?;
        }
        Ok(())
    }
}

/// Runs found in a table's journals, with the data keys each recorded.
fn journaled_runs(lake: &Lake, table: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let prefix = format!("{}/", lake.runs_prefix(table));
    let data = lake.data_prefix(table);
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for o in lake.store().list(&lake.runs_prefix(table))? {
        let Some(rest) = o.key.strip_prefix(&prefix) else {
            continue;
        };
        let (run, what) = rest.split_once('/').unwrap_or((rest, ""));
        let files = runs.entry(run.to_owned()).or_default();
        if let Some(rel) = what.strip_prefix(&format!("{FILES}/")) {
            files.push(format!("{data}/{rel}"));
        }
    }
    Ok(runs)
}

/// Delete what crashed runs of `table` left, from their journals: each journaled run without
/// a marker loses its data files (and their staging leftovers), report and rejects; every
/// journal found is deleted. Returns how many data files were removed.
pub fn recover(lake: &Lake, table: &str) -> Result<usize> {
    let store = lake.store();
    let mut removed = 0;
    for (run, files) in journaled_runs(lake, table)? {
        let committed = store.head(&lake.manifest_key(table, &run))?.is_some();
        if !committed {
            for key in &files {
                store.delete(key)?;
                store.delete_staging(key)?;
                removed += 1;
            }
            for key in [
                lake.report_key(table, &run),
                lake.rejects_key(table, &run),
                lake.manifest_key(table, &run),
            ] {
                store.delete(&key)?;
                store.delete_staging(&key)?;
            }
            tracing::warn!(
                table,
                run,
                files = files.len(),
                "removed the files of a run that did not commit"
            );
        } else {
            // Killed after its marker, maybe while writing its ledger checkpoint.
            let checkpoint = format!(
                "{}/{run}{}",
                lake.checkpoint_prefix(table),
                crate::ledger::checkpoint::SUFFIX
            );
            store.delete_staging(&checkpoint)?;
        }
        let journal = Journal {
            store: store.clone(),
            prefix: format!("{}/{run}", lake.runs_prefix(table)),
            data_prefix: String::new(),
        };
        journal.finish()?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crashed_run_loses_exactly_what_its_journal_holds() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let store = lake.store();
        // A committed run's file, and a crashed run's two files and report.
        store
            .write(
                "data/t/customer=a/dt=2024-01-01/part-r1-00000.parquet",
                b"1",
            )
            .unwrap();
        store.write(&lake.manifest_key("t", "r1"), b"{}").unwrap();
        let crashed = Journal::start(&lake, "t", "r2").unwrap();
        for key in [
            "data/t/customer=a/dt=2024-01-01/part-r2-00001.parquet",
            "data/t/customer=b/dt=2024-01-02/part-r2-00002.parquet",
        ] {
            crashed.file(key).unwrap();
            store.write(key, b"2").unwrap();
        }
        store.write(&lake.report_key("t", "r2"), b"{}").unwrap();
        // A committed run that died before deleting its journal.
        let done = Journal::start(&lake, "t", "r3").unwrap();
        done.file("data/t/customer=a/dt=2024-01-01/part-r3-00003.parquet")
            .unwrap();
        store
            .write(
                "data/t/customer=a/dt=2024-01-01/part-r3-00003.parquet",
                b"3",
            )
            .unwrap();
        store.write(&lake.manifest_key("t", "r3"), b"{}").unwrap();

        assert_eq!(recover(&lake, "t").unwrap(), 2);
        let keys: Vec<String> = store.list("").unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(
            keys,
            [
                "complete/t/r1.manifest",
                "complete/t/r3.manifest",
                "data/t/customer=a/dt=2024-01-01/part-r1-00000.parquet",
                "data/t/customer=a/dt=2024-01-01/part-r3-00003.parquet",
            ]
        );
        assert_eq!(recover(&lake, "t").unwrap(), 0, "nothing left to do");
    }
}
