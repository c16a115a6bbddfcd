//! `citrine catalog sync`: make the catalog's partitions exactly those of the lake's committed
//! runs, the repair users otherwise reach for `MSCK REPAIR TABLE` for. The committed run
//! reports are the truth (files of runs without a marker are not part of the table), so sync
//! never lists data folders. Idempotent: a second sync changes nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Catalog, PartitionRecord};
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::parse::timestamp::days_from_civil;
use crate::partition::PartitionKey;

/// What one table's sync changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncSummary {
    /// The table.
    pub table: String,
    /// Partitions the lake has.
    pub partitions: usize,
    /// Partitions registered by this sync.
    pub added: usize,
    /// Registered partitions with no committed data, removed.
    pub removed: usize,
}

impl std::fmt::Display for SyncSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} partitions in the lake, {} registered now, {} stale removed",
            self.table, self.partitions, self.added, self.removed
        )
    }
}

/// The partition key of a `customer` and a `YYYY-MM-DD` date.
fn key_of(customer: &str, dt: &str) -> Option<PartitionKey> {
    let mut parts = dt.splitn(3, '-');
    let y = parts.next()?.parse().ok()?;
    let m = parts.next()?.parse().ok()?;
    let d = parts.next()?.parse().ok()?;
    Some(PartitionKey {
        customer: customer.to_owned(),
        dt: i32::try_from(days_from_civil(y, m, d)?).ok()?,
    })
}

/// Rebuild `table`'s catalog entry from the lake: create or grow the table to the columns of
/// the latest committed run, register every partition with committed data (files no forget
/// replaced), remove the rest. Run it holding the table's lock (a run in flight has
/// registered partitions no committed report names yet); `fence` is called right before
/// partitions are removed, and fails when that lock was lost.
pub fn sync(
    lake: &Lake,
    catalog: &mut dyn Catalog,
    table: &str,
    fence: &dyn Fn() -> Result<()>,
) -> Result<SyncSummary> {
    let reports = lake.committed_reports(table)?;
    let mut summary = SyncSummary {
        table: table.to_owned(),
        ..Default::default()
    };
    let Some(latest) = reports.last() else {
        return Ok(summary);
    };
    let data_url = format!("{}/", lake.url(&lake.data_prefix(table)));
    catalog.ensure_table(table, &latest.columns, &data_url)?;
    let mut wanted: BTreeMap<Vec<String>, (PartitionKey, String)> = BTreeMap::new();
    for f in crate::commit::report::live_files(&reports) {
        let key = key_of(&f.customer, &f.dt).ok_or_else(|| Error::Corrupt {
            path: lake.url(&f.key),
            message: format!("bad partition date {:?}", f.dt),
        })?;
        let url = format!("{data_url}{}/", key.path());
        wanted.insert(vec![key.customer.clone(), key.date()], (key, url));
    }
    summary.partitions = wanted.len();
    let registered: Vec<PartitionRecord> = catalog.partitions(table)?;
    let stale: Vec<Vec<String>> = registered
        .iter()
        .filter(|p| !wanted.contains_key(&p.values))
        .map(|p| p.values.clone())
        .collect();
    let missing: Vec<(PartitionKey, String)> = wanted
        .into_iter()
        .filter(|(values, _)| !registered.iter().any(|p| &p.values == values))
        .map(|(_, v)| v)
        .collect();
    summary.added = catalog.add_partitions(table, &missing)?;
    if !stale.is_empty() {
        fence()?;
        summary.removed = catalog.drop_partitions(table, &stale)?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_become_keys() {
        let k = key_of("acme", "2019-12-04").unwrap();
        assert_eq!(k.dt, 18_234);
        assert_eq!(k.date(), "2019-12-04");
        assert!(key_of("acme", "2019-13").is_none());
    }
}
