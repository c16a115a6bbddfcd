//! The lake's layout (docs/design.md section 1): the one place that knows where things live.
//!
//! ```text
//! <root>/data/<table>/customer=<c>/dt=<YYYY-MM-DD>/part-<run_id>-<n>.parquet
//! <root>/complete/<table>/<run_id>.json       run report
//! <root>/complete/<table>/<run_id>.manifest   the marker, written last
//! <root>/_citrine/                            catalog, locks, rejects
//! ```
//!
//! The root is a local folder or `s3://bucket/prefix`; keys below are the same for both.

use std::path::Path;
use std::sync::Arc;

use crate::commit::RunReport;
use crate::error::{Error, Result};
use crate::store::{LocalStore, Store};

/// Suffix of the marker objects.
pub const MANIFEST_SUFFIX: &str = ".manifest";
/// Suffix of the run reports.
pub const REPORT_SUFFIX: &str = ".json";

/// A lake over a store rooted at the lake root.
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn Store>,
}

impl Lake {
    /// The lake whose root is the root of `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The lake of `job`, opened through `stores`.
    pub fn open(job: &crate::config::Job, stores: &crate::store::Stores) -> Result<Self> {
        Ok(Self::new(stores.open(&job.root)?))
    }

    /// A lake in a local folder (created on first write).
    pub fn local(root: &Path) -> Result<Self> {
        Ok(Self::new(Arc::new(LocalStore::new(root)?)))
    }

    /// The store holding the lake.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The URL of a key (`file://…` or `s3://…`), as manifests and catalogs want it.
    pub fn url(&self, key: &str) -> String {
        self.store.url(key)
    }

    /// `data/<table>`.
    pub fn data_prefix(&self, table: &str) -> String {
        format!("data/{table}")
    }

    /// `complete/<table>`.
    pub fn complete_prefix(&self, table: &str) -> String {
        format!("complete/{table}")
    }

    /// The run report of `run_id`.
    pub fn report_key(&self, table: &str, run_id: &str) -> String {
        format!("complete/{table}/{run_id}{REPORT_SUFFIX}")
    }

    /// The marker of `run_id`.
    pub fn manifest_key(&self, table: &str, run_id: &str) -> String {
        format!("complete/{table}/{run_id}{MANIFEST_SUFFIX}")
    }

    /// The table's lock.
    pub fn lock_key(&self, table: &str) -> String {
        format!("_citrine/locks/{table}.lock")
    }

    /// Where a table's rejected rows go, one folder per run.
    pub fn rejects_prefix(&self, table: &str) -> String {
        format!("_citrine/rejects/{table}")
    }

    /// The rejected rows of one run.
    pub fn rejects_key(&self, table: &str, run_id: &str) -> String {
        format!("_citrine/rejects/{table}/{run_id}/rejects.jsonl")
    }

    /// The local catalog's folder.
    pub fn catalog_prefix(&self) -> &'static str {
        "_citrine/catalog"
    }

    /// The run ids that have a marker, sorted (run ids sort by start time).
    pub fn committed_runs(&self, table: &str) -> Result<Vec<String>> {
        let prefix = self.complete_prefix(table);
        let mut runs: Vec<String> = self
            .store
            .list(&prefix)?
            .into_iter()
            .filter_map(|o| {
                let name = o.key.rsplit('/').next()?;
                name.strip_suffix(MANIFEST_SUFFIX).map(str::to_owned)
            })
            .collect();
        runs.sort();
        Ok(runs)
    }

    /// Whether `run` has a marker, and the runs with markers after it, sorted: one listing
    /// that starts after `run`'s report (`start-after` on S3), so its cost does not depend on
    /// how many runs came before.
    pub fn committed_runs_after(&self, table: &str, run: &str) -> Result<(bool, Vec<String>)> {
        let prefix = self.complete_prefix(table);
        let after = self.report_key(table, run);
        let mut committed = false;
        let mut later = Vec::new();
        for o in self.store.list_after(&prefix, &after)? {
            let name = o.key.rsplit('/').next().unwrap_or_default();
            if let Some(r) = name.strip_suffix(MANIFEST_SUFFIX) {
                if r == run {
                    committed = true;
                } else {
                    later.push(r.to_owned());
                }
            }
        }
        later.sort();
        Ok((committed, later))
    }

    /// `_citrine/runs/<table>`: the journals of the table's runs in progress.
    pub fn runs_prefix(&self, table: &str) -> String {
        format!("_citrine/runs/{table}")
    }

    /// `_citrine/plans/<table>/<name>.json`: the handle of the plan a workflow named `name`
    /// (the run it planned and its shard count, for a state machine to read).
    pub fn plan_handle_key(&self, table: &str, name: &str) -> String {
        format!("_citrine/plans/{table}/{name}.json")
    }

    /// `_citrine/ledger/<table>`: the table's ledger checkpoints.
    pub fn checkpoint_prefix(&self, table: &str) -> String {
        format!("_citrine/ledger/{table}")
    }

    /// The report of a committed run.
    pub fn report(&self, table: &str, run_id: &str) -> Result<RunReport> {
        let key = self.report_key(table, run_id);
        let found = self.store.read(&key)?.ok_or_else(|| Error::Corrupt {
            path: self.url(&key),
            message: "the run has a marker but no report".into(),
        })?;
        RunReport::parse(&found.bytes, &self.url(&key))
    }

    /// The reports of every committed run, oldest first.
    pub fn committed_reports(&self, table: &str) -> Result<Vec<RunReport>> {
        self.committed_runs(table)?
            .iter()
            .map(|r| self.report(table, r))
            .collect()
    }
}

/// A new run id: UTC start time to the millisecond, then random hex; ids sort by start.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    run_id_at(now.as_millis() as i64)
}

/// A run id that sorts after `previous` (and after now): a run on a machine whose clock is
/// behind the last committed run's still gets a later id, so "the markers after a run" is one
/// listing that misses none.
pub fn run_id_after(previous: &str) -> String {
    let own = new_run_id();
    if own.as_str() > previous {
        return own;
    }
    let millis = millis_of(previous).unwrap_or_default() + 1;
    run_id_at(millis)
}

/// The id of a run started at `millis` since the epoch.
fn run_id_at(millis: i64) -> String {
    use crate::parse::timestamp::civil_from_days;
    use std::hash::{BuildHasher, RandomState};
    let day_ms = 86_400_000;
    let (y, m, d) = civil_from_days(millis.div_euclid(day_ms));
    let ms = millis.rem_euclid(day_ms);
    let random = RandomState::new().hash_one((millis, std::process::id())) as u32;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}{:03}Z-{random:08x}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The start of a run id, milliseconds since the epoch.
fn millis_of(run_id: &str) -> Option<i64> {
    let b = run_id.as_bytes();
    if b.len() < 19 || b[8] != b'T' || b[18] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| run_id.get(r)?.parse::<i64>().ok();
    let days =
        crate::parse::timestamp::days_from_civil(num(0..4)?, num(4..6)? as u32, num(6..8)? as u32)?;
    Some(
        days * 86_400_000
            + num(9..11)? * 3_600_000
            + num(11..13)? * 60_000
            + num(13..15)? * 1000
            + num(15..18)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time_and_differ() {
        let a = new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_run_id();
        assert!(a < b, "{a} {b}");
        assert_eq!(a.len(), "20261123T090102123Z-0123abcd".len());
        assert_eq!(
            millis_of(&run_id_at(1_575_493_351_123)),
            Some(1_575_493_351_123)
        );
        // A run whose clock is behind the last committed run still sorts after it.
        let ahead = "29991231T235959998Z-ffffffff";
        let next = run_id_after(ahead);
        assert!(
            next.as_str() > ahead && next.starts_with("29991231T235959999Z-"),
            "{next}"
        );
        // Ids of one millisecond order by their random part: a later millisecond sorts after.
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(run_id_after("20000101T000000000Z-00000000") > b);
    }

    #[test]
    fn committed_runs_are_the_ones_with_markers() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        assert!(lake.committed_runs("t").unwrap().is_empty());
        let s = lake.store();
        s.write(&lake.report_key("t", "r1"), b"{}").unwrap();
        s.write(&lake.report_key("t", "r2"), b"{}").unwrap();
        s.write(&lake.manifest_key("t", "r2"), b"{}").unwrap();
        assert_eq!(lake.committed_runs("t").unwrap(), ["r2"]);
        s.write(&lake.report_key("t", "r3"), b"{}").unwrap();
        s.write(&lake.manifest_key("t", "r3"), b"{}").unwrap();
        assert_eq!(
            lake.committed_runs_after("t", "r2").unwrap(),
            (true, vec!["r3".to_string()])
        );
        assert_eq!(
            lake.committed_runs_after("t", "r1").unwrap(),
            (false, vec!["r2".to_string(), "r3".to_string()])
        );
    }
}
