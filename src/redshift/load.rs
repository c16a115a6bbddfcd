//! Exactly-once loads: which markers to load, and the one transaction per marker.

use super::data_api::redshift_error;
use std::collections::BTreeSet;

use super::sql::{
    create_loads_table, load_transaction, loaded_runs, maintenance, Load, RECENT_LOADS,
};
use super::{DataApi, LoadOutcome};
use crate::error::Result;
use crate::lake::{Lake, MANIFEST_SUFFIX};
use crate::ledger::Ledger;

/// The table and run of a marker URL of `lake`.
pub fn parse_marker(lake: &Lake, url: &str) -> Result<(String, String)> {
    let bad = || redshift_error(format!("{url}: not a marker of the lake {}", lake.url("")));
    let mut parts = url.rsplit('/');
    let name = parts.next().ok_or_else(bad)?;
    let table = parts.next().ok_or_else(bad)?;
    let run = name.strip_suffix(MANIFEST_SUFFIX).ok_or_else(bad)?;
    if lake.url(&lake.manifest_key(table, run)) != url {
        return Err(bad());
    }
    Ok((table.to_owned(), run.to_owned()))
}

/// What `citrine_loads` says of a table: its most recent loads, and from which run on the
/// list is complete (every run before it was loaded longer ago, so it counts as loaded).
struct Loaded {
    recent: BTreeSet<String>,
    complete_from: Option<String>,
}

impl Loaded {
    /// Ask `citrine_loads` (creating it if needed): two statements, whatever the history.
    fn ask(api: &DataApi, table: &str) -> Result<Self> {
        let w = &api.options().warehouse;
        api.execute(&create_loads_table(w), "citrine-loads-table")?;
        let recent: Vec<String> =
            api.query_column(&loaded_runs(w, table), "citrine-loaded-runs")?;
        // Fewer than asked: this is every load of the table.
        let complete_from = if recent.len() >= RECENT_LOADS {
            recent.iter().min().cloned()
        } else {
            None
        };
        Ok(Self {
            recent: recent.into_iter().collect(),
            complete_from,
        })
    }

    fn holds(&self, run: &str) -> bool {
        self.recent.contains(run) || self.complete_from.as_deref().is_some_and(|from| run < from)
    }
}

/// Load one committed run of `table` unless `citrine_loads` already holds it.
pub fn load_run(api: &DataApi, lake: &Lake, table: &str, run_id: &str) -> Result<LoadOutcome> {
    let loaded = Loaded::ask(api, table)?;
    let ledger = Ledger::load(lake, table)?;
    load_one(api, lake, table, run_id, &loaded, &ledger)
}

/// Load every committed run of `table` that `citrine_loads` does not hold, oldest first. Its
/// cost follows the new markers, not the table's history: `citrine_loads` is asked for its
/// most recent loads only; the lake is listed from the oldest of them on; what each run
/// supersedes comes from the ledger's checkpoint, not from every later report.
pub fn load_table(api: &DataApi, lake: &Lake, table: &str) -> Result<Vec<LoadOutcome>> {
    let mut loaded = Loaded::ask(api, table)?;
    let candidates = match loaded.recent.iter().min() {
        Some(oldest) => {
            let (_, later) = lake.committed_runs_after(table, oldest)?;
            later
        }
        None => lake.committed_runs(table)?,
    };
    let ledger = Ledger::load(lake, table)?;
    let mut out = Vec::new();
    for run in candidates {
        if loaded.holds(&run) {
            continue;
        }
        let outcome = load_one(api, lake, table, &run, &loaded, &ledger)?;
        if outcome.loaded {
            loaded.recent.insert(run);
        }
        out.push(outcome);
    }
    Ok(out)
}

fn load_one(
    api: &DataApi,
    lake: &Lake,
    table: &str,
    run_id: &str,
    loaded: &Loaded,
    ledger: &Ledger,
) -> Result<LoadOutcome> {
    let mut outcome = LoadOutcome {
        table: table.to_owned(),
        run_id: run_id.to_owned(),
        loaded: false,
    };
    if loaded.holds(run_id) {
        tracing::info!(table, run_id, "already loaded; nothing sent");
        return Ok(outcome);
    }
    let report = lake.report(table, run_id)?;
    // Inputs this run consumed that a later, loaded run consumed again: stale here.
    let superseded: Vec<String> = report
        .inputs
        .iter()
        .filter(|input| {
            ledger
                .last_run(&input.uri)
                .is_some_and(|last| last > run_id && loaded.holds(last))
        })
        .map(|input| input.uri.clone())
        .collect();
    let manifest_url = lake.url(&lake.manifest_key(table, run_id));
    let load = Load {
        table,
        run_id,
        manifest_url: &manifest_url,
        columns: &report.columns,
        superseded: &superseded,
    };
    api.execute_batch(
        load_transaction(&api.options().warehouse, &load),
        &format!("citrine-load-{run_id}"),
    )?;
    tracing::info!(table, run_id, "loaded");
    outcome.loaded = true;
    Ok(outcome)
}

/// `VACUUM SORT ONLY` and / or `ANALYZE` the table, one statement each.
pub fn maintain(api: &DataApi, table: &str, vacuum: bool, analyze: bool) -> Result<()> {
    for sql in maintenance(&api.options().warehouse, table, vacuum, analyze) {
        api.execute(&sql, "citrine-maintenance")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_recognised_only_in_their_lake() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let url = lake.url(&lake.manifest_key("t", "r1"));
        assert_eq!(
            parse_marker(&lake, &url).unwrap(),
            ("t".into(), "r1".into())
        );
        assert!(parse_marker(&lake, "s3://elsewhere/complete/t/r1.manifest").is_err());
        assert!(parse_marker(&lake, &lake.url(&lake.report_key("t", "r1"))).is_err());
    }
}
