//! The run journal: `_citrine/runs/<table>/<run_id>/started` when a run begins writing, then
//! one empty object `files/<key below data/<table>/>` per data file, written *before* the
//! file's upload starts. Recovering a crashed run ([`super::recover`]) therefore costs what that
//! run wrote, never a listing of the table's data. A run deletes its journal once its marker
//! is written (or once it has removed its files, when it commits nothing or fails); a journal
//! whose run has a marker is only leftovers and is deleted too.

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

/// A run's journal, or one shard's part of it.
#[derive(Debug, Clone)]
pub struct Journal {
    store: Arc<dyn Store>,
    /// `_citrine/runs/<table>/<run_id>`, or `…/<run_id>/shard-<n>` for a shard.
    prefix: String,
    /// `data/<table>/`.
    data_prefix: String,
}

/// The folder of shard `shard` within its run's journal.
pub fn shard_folder(shard: usize) -> String {
    format!("shard-{shard:04}")
}

impl Journal {
    /// Record that `run_id` of `table` begins writing.
    pub fn start(lake: &Lake, table: &str, run_id: &str) -> Result<Self> {
        Self::open(lake, table, run_id, None).begin(run_id)
    }

    /// Record that shard `shard` of the sharded run `run_id` begins writing.
    pub fn start_shard(lake: &Lake, table: &str, run_id: &str, shard: usize) -> Result<Self> {
        Self::open(lake, table, run_id, Some(shard)).begin(run_id)
    }

    /// The journal of `run_id` (or of one of its shards), as it is.
    pub fn open(lake: &Lake, table: &str, run_id: &str, shard: Option<usize>) -> Self {
        let run = format!("{}/{run_id}", lake.runs_prefix(table));
        Self {
            store: lake.store().clone(),
            prefix: match shard {
                Some(s) => format!("{run}/{}", shard_folder(s)),
                None => run,
            },
            data_prefix: format!("{}/", lake.data_prefix(table)),
        }
    }

    fn begin(self, run_id: &str) -> Result<Self> {
        let started = Started {
            run_id,
            pid: std::process::id(),
            host: super::lock::hostname(),
            started_at: now_rfc3339(),
        };
        self.store.write(
            &self.key(STARTED),
            &serde_json::to_vec(&started).expect("plain data"),
        )?;
        Ok(self)
    }

    /// The key of `name` within this journal (a run's plan, a shard's report).
    pub fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// Record the data file `key` (below the lake root) before it is written.
    pub fn file(&self, key: &str) -> Result<()> {
        let rel = key.strip_prefix(&self.data_prefix).unwrap_or(key);
        self.store.write(&self.key(&format!("{FILES}/{rel}")), b"")
    }

    /// The data files this journal recorded: each entry's key with the data file's key.
    pub fn entries(&self) -> Result<Vec<(String, String)>> {
        let files = format!("{FILES}/");
        let mut out = Vec::new();
        for o in self.store.list(&self.prefix)? {
            if let Some(rel) = file_entry(&o.key[self.prefix.len()..], &files) {
                let key = format!("{}{rel}", self.data_prefix);
                out.push((o.key, key));
            }
        }
        Ok(out)
    }

    /// Delete the data files this journal recorded (and their staging leftovers), then the
    /// journal: what one attempt of a shard wrote. Returns how many data files were recorded.
    pub fn discard(&self) -> Result<usize> {
        let entries = self.entries()?;
        for (_, key) in &entries {
            self.store.delete(key)?;
            self.store.delete_staging(key)?;
        }
        self.finish()?;
        Ok(entries.len())
    }

    /// Delete the journal: the run is committed, or has removed what it wrote.
    pub fn finish(&self) -> Result<()> {
        for o in self.store.list(&self.prefix)? {
            self.store.delete(&o.key)?;
        }
        Ok(())
    }
}

impl crate::write::FileLog for Journal {
    fn before_write(&self, key: &str) -> Result<()> {
        self.file(key)
    }
}

/// The data file (below `data/<table>/`) a journal entry `rest` (the key after a run's or a
/// shard's folder) records, if it records one: `/files/<rel>` or `/shard-<n>/files/<rel>`.
fn file_entry<'a>(rest: &'a str, files: &str) -> Option<&'a str> {
    let rest = rest.trim_start_matches('/');
    rest.strip_prefix(files).or_else(|| {
        let (folder, rest) = rest.split_once('/')?;
        folder.starts_with("shard-").then_some(())?;
        rest.strip_prefix(files)
    })
}

/// Runs found in a table's journals, with the data keys each recorded (a sharded run's
/// shards' too): those of `from` and after (they sort by run id), or all.
pub(crate) fn journaled_runs(
    lake: &Lake,
    table: &str,
    from: Option<&str>,
) -> Result<BTreeMap<String, Vec<String>>> {
    let runs_prefix = lake.runs_prefix(table);
    let prefix = format!("{runs_prefix}/");
    let data = lake.data_prefix(table);
    let files_folder = format!("{FILES}/");
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let listed = match from {
        // `…/<run>` sorts just before every key of that run's journal.
        Some(run) => lake
            .store()
            .list_after(&runs_prefix, &format!("{prefix}{run}"))?,
        None => lake.store().list(&runs_prefix)?,
    };
    for o in listed {
        let Some(rest) = o.key.strip_prefix(&prefix) else {
            continue;
        };
        let (run, what) = rest.split_once('/').unwrap_or((rest, ""));
        let files = runs.entry(run.to_owned()).or_default();
        if let Some(rel) = file_entry(what, &files_folder) {
            files.push(format!("{data}/{rel}"));
        }
    }
    Ok(runs)
}

/// The data files the journal of `run` (all its shards) recorded.
pub fn run_files(lake: &Lake, table: &str, run: &str) -> Result<Vec<String>> {
    let data = lake.data_prefix(table);
    let prefix = format!("{}/{run}", lake.runs_prefix(table));
    let files_folder = format!("{FILES}/");
    let mut out = Vec::new();
    for o in lake.store().list(&prefix)? {
        if let Some(rel) = file_entry(&o.key[prefix.len()..], &files_folder) {
            out.push(format!("{data}/{rel}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_attempt_is_discarded_alone() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let store = lake.store();
        let keys = [
            "data/t/customer=a/dt=2024-01-01/part-r-s0000-00000.parquet",
            "data/t/customer=a/dt=2024-01-01/part-r-s0001-00000.parquet",
        ];
        for (shard, key) in keys.iter().enumerate() {
            let journal = Journal::start_shard(&lake, "t", "r", shard).unwrap();
            journal.file(key).unwrap();
            store.write(key, b"x").unwrap();
        }
        assert_eq!(
            Journal::open(&lake, "t", "r", Some(0)).discard().unwrap(),
            1
        );
        let left: Vec<String> = store.list("").unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(
            left,
            [
                "_citrine/runs/t/r/shard-0001/files/customer=a/dt=2024-01-01/part-r-s0001-00000.parquet",
                "_citrine/runs/t/r/shard-0001/started",
                keys[1],
            ]
        );
    }
}
