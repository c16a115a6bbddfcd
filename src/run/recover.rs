//! Recovery, discard and supersede: every deletion of data files the run protocol makes.
//!
//! - [`recover`]: what crashed runs of a table left is deleted before a new run plans, from
//!   the run journals ([`super::journal`]), at the cost of what the crashed runs wrote.
//! - [`repair`]: the explicit full listing, for a lake touched by hand or written by a
//!   citrine that kept no journals (`citrine repair`).
//! - [`discard_run`]: what one uncommitted run wrote (recovery, `citrine abort`).
//! - [`clean_up_failed`]: a run that fails (rather than being killed) removes what it wrote
//!   before it exits, so no reader of the folder sees it meanwhile.
//! - [`delete_superseded`]: the files a committed `forget --delete-rows` run replaced.
//!
//! Each takes the table's [`TableLock`] and deletes what another run wrote only after
//! [`TableLock::fence`]: a process paused past its lease, whose table another run has taken
//! over, deletes nothing of that run's.

use std::collections::BTreeSet;

use super::journal::{journaled_runs, Journal};
use super::lock::TableLock;
use crate::error::Result;
use crate::lake::Lake;

/// Whether the run named was published to an Iceberg table's readers.
pub type PublishedRun<'a> = Box<dyn Fn(&str) -> Result<bool> + 'a>;

/// How a table's runs reach its readers, as recovery needs to know it.
pub enum Readers<'a> {
    /// Hive: partitions are registered before the marker, and a run without a marker was
    /// never published; a forget's replaced files go once it is committed.
    Hive,
    /// Iceberg: a run may have committed its snapshot and died before its marker; the closure
    /// says whether the run `R` did (it is then rolled forward: its marker is written from its
    /// report). Replaced files stay until their snapshots expire.
    Iceberg(PublishedRun<'a>),
}

impl Readers<'_> {
    fn published(&self, run: &str) -> Result<bool> {
        match self {
            Readers::Hive => Ok(false),
            Readers::Iceberg(published) => published(run),
        }
    }
}

/// Write the marker of `run` from its report: the run committed its Iceberg snapshot and died
/// before its marker, so the marker follows what readers already see.
fn roll_forward(lake: &Lake, table: &str, run: &str, lock: &TableLock) -> Result<()> {
    let report = lake.report(table, run)?;
    lock.fence()?;
    lake.store().write(
        &lake.manifest_key(table, run),
        crate::commit::manifest_json(&report.files).as_bytes(),
    )?;
    tracing::warn!(
        table,
        run,
        "wrote the marker of a run that died after its Iceberg snapshot"
    );
    Ok(())
}

/// Delete what the uncommitted run `run` of `table` wrote: `files` (and their staging
/// leftovers), its report, rejects and marker leftovers. Returns how many files were removed.
pub fn discard_run(lake: &Lake, table: &str, run: &str, files: &[String]) -> Result<usize> {
    let store = lake.store();
    for key in files {
        store.delete(key)?;
        store.delete_staging(key)?;
    }
    for key in [
        lake.report_key(table, run),
        lake.rejects_key(table, run),
        lake.manifest_key(table, run),
    ] {
        store.delete(&key)?;
        store.delete_staging(&key)?;
    }
    Ok(files.len())
}

/// Delete what crashed runs of `table` left, from their journals: each journaled run without
/// a marker loses its data files (and their staging leftovers), report and rejects; every
/// journal found is deleted. Returns how many data files were removed.
///
/// With `from` (the newest committed run), only journals of that run and later ones are
/// listed: a run's id sorts after every committed run's, so a crashed run's journal is
/// always among them, and older journals were deleted by the runs that followed them. The
/// listing then starts after them (`start-after`), so it costs the same however many runs
/// came before, even on stores that keep emptied folders (SeaweedFS).
///
/// Each crashed run's files are deleted after a [`TableLock::fence`] of `lock`. A run that
/// `readers` say was published (an Iceberg snapshot) is rolled forward instead: then the
/// ledger loaded before recovery lacks it, and must be loaded again.
pub fn recover(
    lake: &Lake,
    table: &str,
    from: Option<&str>,
    lock: &TableLock,
    readers: &Readers,
) -> Result<Recovered> {
    let store = lake.store();
    let mut done = Recovered::default();
    for (run, files) in journaled_runs(lake, table, from)? {
        let mut committed = store.head(&lake.manifest_key(table, &run))?.is_some();
        if !committed && readers.published(&run)? {
            roll_forward(lake, table, &run, lock)?;
            done.rolled_forward += 1;
            committed = true;
        }
        if !committed {
            lock.fence()?;
            done.removed += discard_run(lake, table, &run, &files)?;
            tracing::warn!(
                table,
                run,
                files = files.len(),
                "removed the files of a run that did not commit"
            );
        } else {
            // Killed after its marker: a forget run maybe before it deleted the files it
            // replaced, any run maybe while writing its ledger checkpoint.
            match lake.report(table, &run) {
                Ok(report) if matches!(readers, Readers::Hive) => {
                    delete_superseded(lake, &report.supersedes, lock)?
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(table, run, error = %e, "a committed run's report is unreadable");
                }
            }
            let checkpoint = format!(
                "{}/{run}{}",
                lake.checkpoint_prefix(table),
                crate::ledger::checkpoint::SUFFIX
            );
            store.delete_staging(&checkpoint)?;
        }
        Journal::open(lake, table, &run, None).finish()?;
    }
    Ok(done)
}

/// What [`recover`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Data files of runs that did not commit, deleted.
    pub removed: usize,
    /// Runs whose Iceberg snapshot was committed and whose marker was written now.
    pub rolled_forward: usize,
}

/// Delete the data files a committed forget run replaced (its report's `supersedes`), after
/// a fence of `lock`: the run's own marker, or a recovery finishing it.
pub fn delete_superseded(lake: &Lake, keys: &[String], lock: &TableLock) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    lock.fence()?;
    for key in keys {
        lake.store().delete(key)?;
    }
    Ok(())
}

/// What [`clean_up_failed`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanUp {
    /// Data files deleted.
    pub removed: usize,
    /// Journal entries left for the next run's recovery (deleting their file failed).
    pub left: usize,
}

/// Best effort, after the run `run_id` of `table` failed before its marker: delete the data
/// files its journal records (each entry only once its file is gone), its report, rejects and
/// the inputs recorded for after its commit; and the journal itself once it records nothing.
/// What cannot be deleted (a read-only lake, a store that went away) stays in the journal, and
/// the next run's recovery deletes it. Nothing is deleted when the marker exists after all (a
/// write reported as failed that took effect): the run is committed then.
pub fn clean_up_failed(lake: &Lake, table: &str, run_id: &str, journal: &Journal) -> CleanUp {
    let store = lake.store();
    let mut done = CleanUp::default();
    match store.head(&lake.manifest_key(table, run_id)) {
        Ok(None) => {}
        Ok(Some(_)) => {
            tracing::warn!(
                table,
                run = run_id,
                "the run failed after its marker landed: it is committed, and nothing is removed"
            );
            return done;
        }
        Err(e) => {
            tracing::warn!(table, run = run_id, error = %e, "could not tell whether the failed run's marker landed; its files are left to the next run");
            return done;
        }
    }
    let entries = match journal.entries() {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(table, run = run_id, error = %e, "could not read the failed run's journal; the next run removes its files");
            return done;
        }
    };
    for (entry, key) in entries {
        let gone = store
            .delete(&key)
            .and_then(|()| store.delete_staging(&key))
            .and_then(|()| store.delete(&entry));
        match gone {
            Ok(()) => done.removed += 1,
            Err(e) => {
                done.left += 1;
                tracing::warn!(table, file = %lake.url(&key), error = %e, "could not remove a file of the failed run; the next run does");
            }
        }
    }
    let records = [
        lake.report_key(table, run_id),
        lake.rejects_key(table, run_id),
        super::after_commit::pending_key(table, run_id),
    ];
    let mut kept = done.left > 0;
    for key in records {
        if let Err(e) = store.delete(&key).and_then(|()| store.delete_staging(&key)) {
            kept = true;
            tracing::warn!(table, file = %lake.url(&key), error = %e, "could not remove a record of the failed run; the next run does");
        }
    }
    if !kept {
        if let Err(e) = journal.finish() {
            tracing::warn!(table, run = run_id, error = %e, "could not delete the failed run's journal; the next run does");
        }
    }
    done
}

/// Delete, by listing all of the table, whatever no committed run accounts for: data files of
/// runs without a marker, temporary files, reports and rejects of uncommitted runs, and the
/// journals of runs. Its cost grows with the table: run it by hand (under the table's lock,
/// which `lock` is, fenced before the first deletion), not on every run. Returns how many
/// data files were removed.
pub fn repair(lake: &Lake, table: &str, lock: &TableLock, readers: &Readers) -> Result<usize> {
    let mut removed = recover(lake, table, None, lock, readers)?.removed;
    let committed: BTreeSet<String> = lake.committed_runs(table)?.into_iter().collect();
    let store = lake.store();
    let is_tmp = |name: &str| name.starts_with('.') && name.ends_with(".tmp");
    let mut doomed = Vec::new();
    for object in store.list(&lake.data_prefix(table))? {
        let name = object.key.rsplit('/').next().unwrap_or_default();
        if is_tmp(name) || run_of_part(name).is_some_and(|run| !committed.contains(run)) {
            doomed.push(object.key);
            removed += 1;
        }
    }
    // Reports and rejects of runs that never wrote their marker.
    for object in store.list(&lake.complete_prefix(table))? {
        let name = object.key.rsplit('/').next().unwrap_or_default();
        let run = name.strip_suffix(crate::lake::REPORT_SUFFIX);
        if is_tmp(name) || run.is_some_and(|r| !committed.contains(r)) {
            doomed.push(object.key);
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
            doomed.push(object.key);
        }
    }
    if !doomed.is_empty() {
        lock.fence()?;
        for key in &doomed {
            store.delete(key)?;
        }
    }
    if removed > 0 {
        tracing::warn!(table, removed, "removed files of runs that did not commit");
    }
    Ok(removed)
}

/// The run id in a data file name `part-<run_id>-<n>.parquet`, or a shard's
/// `part-<run_id>-s<shard>-<n>.parquet`.
fn run_of_part(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (run, _) = rest.rsplit_once('-')?;
    Some(match run.rsplit_once("-s") {
        Some((run, shard)) if !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit()) => run,
        _ => run,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn lock(lake: &Lake) -> TableLock {
        TableLock::acquire(lake, "t", "recovering", Duration::from_secs(60), "run").unwrap()
    }

    #[test]
    fn part_names_give_their_run() {
        assert_eq!(
            run_of_part("part-20261123T090102123Z-0a1b2c3d-00012.parquet"),
            Some("20261123T090102123Z-0a1b2c3d")
        );
        assert_eq!(
            run_of_part("part-20261123T090102123Z-0a1b2c3d-s0003-00012.parquet"),
            Some("20261123T090102123Z-0a1b2c3d")
        );
        assert_eq!(run_of_part("other.parquet"), None);
    }

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

        // A sharded run's shard that crashed: its files are the run's.
        let shard = Journal::start_shard(&lake, "t", "r4", 3).unwrap();
        shard
            .file("data/t/customer=b/dt=2024-01-02/part-r4-s0003-00000.parquet")
            .unwrap();
        store
            .write(
                "data/t/customer=b/dt=2024-01-02/part-r4-s0003-00000.parquet",
                b"4",
            )
            .unwrap();
        assert_eq!(
            super::super::journal::run_files(&lake, "t", "r4").unwrap(),
            ["data/t/customer=b/dt=2024-01-02/part-r4-s0003-00000.parquet"]
        );

        // An older committed run's journal that was never deleted: below the newest committed
        // run, so a run's recovery (from the newest committed run on) does not list it.
        Journal::start(&lake, "t", "r1").unwrap();

        let held = lock(&lake);
        assert_eq!(
            recover(&lake, "t", Some("r2"), &held, &Readers::Hive)
                .unwrap()
                .removed,
            3
        );
        let keys: Vec<String> = store
            .list("")
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .filter(|k| !k.starts_with("_citrine/locks/"))
            .collect();
        assert_eq!(
            keys,
            [
                "_citrine/runs/t/r1/started",
                "complete/t/r1.manifest",
                "complete/t/r3.manifest",
                "data/t/customer=a/dt=2024-01-01/part-r1-00000.parquet",
                "data/t/customer=a/dt=2024-01-01/part-r3-00003.parquet",
            ]
        );
        // The full listing (`citrine repair`) finds it.
        assert_eq!(
            recover(&lake, "t", None, &held, &Readers::Hive)
                .unwrap()
                .removed,
            0,
            "nothing left to do"
        );
        held.release();
        assert!(store.list("_citrine/runs").unwrap().is_empty());
    }

    #[test]
    fn a_fenced_recovery_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let store = lake.store();
        let held = lock(&lake);
        // Another run takes the table over, and writes (its journal is the one found).
        store.delete(&lake.lock_key("t")).unwrap();
        let other = TableLock::acquire(&lake, "t", "r2", Duration::from_secs(60), "run").unwrap();
        let journal = Journal::start(&lake, "t", "r2").unwrap();
        let key = "data/t/customer=a/dt=2024-01-01/part-r2-00000.parquet";
        journal.file(key).unwrap();
        store.write(key, b"x").unwrap();
        let err = recover(&lake, "t", None, &held, &Readers::Hive).unwrap_err();
        assert!(matches!(err, crate::Error::Fenced { .. }), "{err}");
        assert!(store.head(key).unwrap().is_some());
        assert_eq!(
            super::super::journal::run_files(&lake, "t", "r2").unwrap(),
            [key]
        );
        other.release();
    }

    #[test]
    fn a_failed_run_removes_what_it_wrote_and_a_committed_one_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let store = lake.store();
        let journal = Journal::start(&lake, "t", "r").unwrap();
        let keys = [
            "data/t/customer=a/dt=2024-01-01/part-r-00000.parquet",
            "data/t/customer=b/dt=2024-01-01/part-r-00001.parquet",
        ];
        for key in keys {
            journal.file(key).unwrap();
            store.write(key, b"x").unwrap();
        }
        store.write(&lake.report_key("t", "r"), b"{}").unwrap();
        assert_eq!(
            clean_up_failed(&lake, "t", "r", &journal),
            CleanUp {
                removed: 2,
                left: 0
            }
        );
        assert!(
            store.list("").unwrap().is_empty(),
            "nothing of the run is left"
        );

        // A run whose marker landed although its write was reported as failed: committed.
        let journal = Journal::start(&lake, "t", "q").unwrap();
        journal.file(keys[0]).unwrap();
        store.write(keys[0], b"x").unwrap();
        store.write(&lake.manifest_key("t", "q"), b"{}").unwrap();
        assert_eq!(
            clean_up_failed(&lake, "t", "q", &journal),
            CleanUp::default()
        );
        assert!(store.head(keys[0]).unwrap().is_some());
    }
}
