//! Exactly-once loads: which markers to load, and the one transaction per marker.

use super::data_api::redshift_error;
use super::sql::{create_loads_table, load_transaction, loaded_runs, maintenance, Load};
use super::{DataApi, LoadOutcome};
use crate::error::Result;
use crate::lake::{Lake, MANIFEST_SUFFIX};

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

/// Load one committed run of `table` unless `citrine_loads` already holds it.
pub fn load_run(api: &DataApi, lake: &Lake, table: &str, run_id: &str) -> Result<LoadOutcome> {
    let w = &api.options().warehouse;
    api.execute(&create_loads_table(w), "citrine-loads-table")?;
    let loaded = api.query_column(&loaded_runs(w, table), "citrine-loaded-runs")?;
    load_one(api, lake, table, run_id, &loaded)
}

/// Load every committed run of `table` that `citrine_loads` does not hold, oldest first.
pub fn load_table(api: &DataApi, lake: &Lake, table: &str) -> Result<Vec<LoadOutcome>> {
    let w = &api.options().warehouse;
    api.execute(&create_loads_table(w), "citrine-loads-table")?;
    let mut loaded = api.query_column(&loaded_runs(w, table), "citrine-loaded-runs")?;
    let mut out = Vec::new();
    for run in lake.committed_runs(table)? {
        let outcome = load_one(api, lake, table, &run, &loaded)?;
        if outcome.loaded {
            loaded.push(run);
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
    loaded: &[String],
) -> Result<LoadOutcome> {
    let mut outcome = LoadOutcome {
        table: table.to_owned(),
        run_id: run_id.to_owned(),
        loaded: false,
    };
    if loaded.iter().any(|r| r == run_id) {
        tracing::info!(table, run_id, "already loaded; nothing sent");
        return Ok(outcome);
    }
    let report = lake.report(table, run_id)?;
    // Inputs this run consumed that a later, loaded run consumed again: stale here.
    let mut superseded = Vec::new();
    for later in lake.committed_runs(table)? {
        if later.as_str() <= run_id || !loaded.contains(&later) {
            continue;
        }
        let later = lake.report(table, &later)?;
        for input in &report.inputs {
            if later.inputs.iter().any(|i| i.uri == input.uri) && !superseded.contains(&input.uri) {
                superseded.push(input.uri.clone());
            }
        }
    }
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
