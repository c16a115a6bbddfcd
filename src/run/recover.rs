//! Recovery: what crashed runs of a table left is deleted before a new run plans. Every run
//! does it from the run journals ([`crate::commit::journal`]), at the cost of what the crashed runs
//! wrote; [`repair`] is the explicit full listing, for a lake touched by hand or written by a
//! citrine that kept no journals (`citrine repair`).

use std::collections::BTreeSet;

use crate::error::Result;
use crate::lake::Lake;

/// Delete what crashed runs of `table` left, from their journals (those of `newest`, the
/// newest committed run, and later ones; all when `None`). Returns how many data files were
/// removed.
pub fn recover(lake: &Lake, table: &str, newest: Option<&str>) -> Result<usize> {
    crate::commit::journal::recover(lake, table, newest)
}

/// Delete, by listing all of the table, whatever no committed run accounts for: data files of
/// runs without a marker, temporary files, reports and rejects of uncommitted runs, and the
/// journals of runs. Its cost grows with the table: run it by hand (under the table's lock),
/// not on every run. Returns how many data files were removed.
pub fn repair(lake: &Lake, table: &str) -> Result<usize> {
    let mut removed = recover(lake, table, None)?;
    let committed: BTreeSet<String> = lake.committed_runs(table)?.into_iter().collect();
    let store = lake.store();
    let is_tmp = |name: &str| name.starts_with('.') && name.ends_with(".tmp");
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
    use super::*;

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
}
