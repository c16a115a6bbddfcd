//! `citrine compact`: a partition's small data files (below a target size) merged into few
//! large ones, by a rewrite run of its own under the table's lock ([`super::rewrite`]): in an
//! Iceberg table one `replace` snapshot, in a Hive table new journaled files and a report that
//! lists the replaced ones in `supersedes` (deleted after its marker). The rows are the same;
//! `redshift load` of the compaction replaces rows by (`source_file`, `row_num`), so loading
//! every marker, before and after it, in any order, holds each row once.
//!
//! With an expiry, an Iceberg table's snapshots older than it are expired afterwards, and the
//! files only they named (those compactions and forgets replaced) deleted: storage does not
//! grow without bound. A Hive table has none to expire: its replaced files go at once, since
//! readers of its folders would see both.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::lock::TableLock;
use super::rewrite::{live_files, rewrite, Rewrite};
use crate::config::{Job, TableFormat, TableSpec};
use crate::error::Result;
use crate::iceberg::table::{Expired, Operation};
use crate::lake::Lake;
use crate::ledger::Ledger;
use crate::register;
use crate::store::Stores;

/// The default target: files below it are small, and merged files grow to about it.
pub const DEFAULT_TARGET_BYTES: u64 = 128 << 20;

/// How to compact.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Files below this many bytes are small; merged files roll over at it.
    pub target_bytes: u64,
    /// Expire an Iceberg table's snapshots older than this, after compacting.
    pub expire_after: Option<Duration>,
}

/// What `compact` did to a table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompactSummary {
    /// The table.
    pub table: String,
    /// The compaction run, when there was something to compact.
    pub run_id: Option<String>,
    /// Partitions whose small files were merged.
    pub partitions: usize,
    /// Data files replaced.
    pub files_replaced: usize,
    /// Data files written in their place.
    pub files_written: usize,
    /// Rows copied (the same rows).
    pub rows: u64,
    /// Snapshots expired and files deleted with them (an Iceberg table).
    pub expired: Expired,
}

impl std::fmt::Display for CompactSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.run_id {
            Some(run) => write!(
                f,
                "{}: run {run}: {} small files of {} partitions merged into {} ({} rows)",
                self.table, self.files_replaced, self.partitions, self.files_written, self.rows
            )?,
            None => write!(
                f,
                "{}: no partition has two small files: nothing to merge",
                self.table
            )?,
        }
        if self.expired.snapshots > 0 {
            write!(
                f,
                "; {} snapshots expired, {} data files and {} metadata files deleted",
                self.expired.snapshots, self.expired.data_files, self.expired.metadata_files
            )?;
        }
        Ok(())
    }
}

/// The small files to merge: in each partition folder with at least two files below
/// `target`, those files.
fn small_files(live: Vec<(String, u64)>, target: u64) -> BTreeMap<String, Vec<String>> {
    let mut by_folder: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, size) in live {
        if size < target {
            let folder = key.rsplit_once('/').map_or("", |(f, _)| f).to_owned();
            by_folder.entry(folder).or_default().push(key);
        }
    }
    by_folder.retain(|_, files| files.len() >= 2);
    by_folder
}

/// Compact `table` (see the module's documentation).
pub fn compact(
    job: &Job,
    stores: &Stores,
    lake: &Lake,
    table: &TableSpec,
    options: &CompactOptions,
) -> Result<CompactSummary> {
    // Compaction copies values as they are (hashed ones stay hashed): no key is needed.
    // Released when it drops, whatever the outcome.
    let lock = &TableLock::acquire_for(lake, &table.name, job.lock_lease, "compact")?;
    let mut summary = CompactSummary {
        table: table.name.clone(),
        ..Default::default()
    };
    let mut ledger = Ledger::load(lake, &table.name)?;
    let mut catalog = register::open(job, stores, lake);
    // What crashed runs left goes first, so the files read below are committed ones.
    let recovered = super::recover(
        lake,
        &table.name,
        ledger.newest_run(),
        lock,
        &super::readers(lake, table, catalog.as_ref()),
    )?;
    if recovered.rolled_forward > 0 {
        ledger = Ledger::load(lake, &table.name)?;
    }
    let small = small_files(
        live_files(lake, table, catalog.as_ref(), None)?,
        options.target_bytes,
    );
    if !small.is_empty() {
        summary.partitions = small.len();
        let done = rewrite(
            job,
            stores,
            lake,
            table,
            ledger,
            lock,
            &Rewrite {
                operation: Operation::Replace,
                files: small.into_values().flatten().collect(),
                drop: Default::default(),
                every_file: true,
                forgotten: Vec::new(),
                target_file_bytes: Some(options.target_bytes),
            },
        )?;
        summary.run_id = Some(done.run_id);
        summary.files_replaced = done.supersedes.len();
        summary.files_written = done.files.len();
        summary.rows = done.rows_kept;
    }
    if let (Some(after), TableFormat::Iceberg) = (options.expire_after, table.table_format) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let before = now.saturating_sub(after);
        lock.fence()?;
        summary.expired = crate::iceberg::table::expire(
            lake,
            &table.name,
            catalog.as_mut(),
            before.as_millis() as i64,
            now.as_millis() as i64,
        )?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partitions_with_two_small_files_are_merged() {
        let live = vec![
            (
                "data/t/customer=a/dt=2024-01-01/part-1.parquet".to_owned(),
                10,
            ),
            (
                "data/t/customer=a/dt=2024-01-01/part-2.parquet".to_owned(),
                20,
            ),
            (
                "data/t/customer=a/dt=2024-01-01/part-3.parquet".to_owned(),
                500,
            ),
            (
                "data/t/customer=b/dt=2024-01-01/part-4.parquet".to_owned(),
                10,
            ),
            (
                "data/t/customer=c/dt=2024-01-01/part-5.parquet".to_owned(),
                300,
            ),
            (
                "data/t/customer=c/dt=2024-01-01/part-6.parquet".to_owned(),
                400,
            ),
        ];
        let small = small_files(live, 100);
        assert_eq!(
            small,
            BTreeMap::from([(
                "data/t/customer=a/dt=2024-01-01".to_owned(),
                vec![
                    "data/t/customer=a/dt=2024-01-01/part-1.parquet".to_owned(),
                    "data/t/customer=a/dt=2024-01-01/part-2.parquet".to_owned()
                ]
            )])
        );
    }
}
