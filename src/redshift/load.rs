//! Exactly-once loads: which markers to load, and the one transaction per marker.

use super::data_api::redshift_error;
use std::collections::{BTreeSet, HashMap, HashSet};

use super::sql::{
    create_loads_table, load_transaction, loaded_runs, maintenance, varchar_width, varchar_widths,
    widen_column, Load, RECENT_LOADS,
};
use super::{DataApi, LoadOutcome};
use crate::commit::manifest_json;
use crate::commit::RunReport;
use crate::error::Result;
use crate::lake::{Lake, MANIFEST_SUFFIX};
use crate::ledger::Ledger;

/// A marker as a URL: `s3://…` and `file://…` as given, a plain path (a local lake's marker)
/// as the `file://` URL of its absolute path.
pub fn marker_url(given: &str) -> String {
    if given.contains("://") {
        return given.to_owned();
    }
    let path = std::path::absolute(given).unwrap_or_else(|_| given.into());
    format!("file://{}", path.display())
}

/// The table and run of a marker of `lake`: its URL, or a local lake's path.
pub fn parse_marker(lake: &Lake, given: &str) -> Result<(String, String)> {
    let url = &marker_url(given);
    let bad = || redshift_error(format!("{url}: not a marker of the lake {}", lake.url("")));
    let mut parts = url.rsplit('/');
    let name = parts.next().ok_or_else(bad)?;
    let table = parts.next().ok_or_else(bad)?;
    let run = name.strip_suffix(MANIFEST_SUFFIX).ok_or_else(bad)?;
    if lake.url(&lake.manifest_key(table, run)) != *url {
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

/// The files `citrine forget --delete-rows` runs replaced, read from their reports when a load
/// first needs them (runs of that kind are few: a load reads those after the run it loads).
struct Rewrites<'a> {
    runs: &'a [String],
    replaced: HashMap<String, HashSet<String>>,
}

impl<'a> Rewrites<'a> {
    fn of(ledger: &'a Ledger) -> Self {
        Self {
            runs: ledger.rewrites(),
            replaced: HashMap::new(),
        }
    }

    /// For each file key of `run`, the later run that replaced it, if one did.
    fn replacing(
        &mut self,
        lake: &Lake,
        table: &str,
        run: &str,
        keys: &[&str],
    ) -> Result<Vec<Option<String>>> {
        let later: Vec<&String> = self.runs.iter().filter(|w| w.as_str() > run).collect();
        for w in &later {
            if !self.replaced.contains_key(*w) {
                let supersedes = lake.report(table, w)?.supersedes.into_iter().collect();
                self.replaced.insert((*w).clone(), supersedes);
            }
        }
        Ok(keys
            .iter()
            .map(|key| {
                later
                    .iter()
                    .find(|w| self.replaced[**w].contains(*key))
                    .map(|w| (*w).clone())
            })
            .collect())
    }
}

/// Where a run's derived manifest goes: the files of the run that no later forget run
/// replaced (below `_citrine/`, so query engines skip it; not `.manifest`, so it is no marker).
fn derived_manifest_key(table: &str, run_id: &str) -> String {
    format!("_citrine/manifests/{table}/{run_id}.json")
}

/// Loads into one table: what they share across markers.
struct Loader<'a> {
    api: &'a DataApi,
    lake: &'a Lake,
    table: &'a str,
    ledger: &'a Ledger,
    rewrites: Rewrites<'a>,
    /// The warehouse's declared VARCHAR widths, asked for once, when a run first needs them.
    declared: Option<HashMap<String, u32>>,
}

/// Load one committed run of `table` unless `citrine_loads` already holds it.
pub fn load_run(api: &DataApi, lake: &Lake, table: &str, run_id: &str) -> Result<LoadOutcome> {
    let loaded = Loaded::ask(api, table)?;
    let ledger = Ledger::load(lake, table)?;
    Loader::new(api, lake, table, &ledger).load(run_id, &loaded)
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
    let mut loader = Loader::new(api, lake, table, &ledger);
    let mut out = Vec::new();
    for run in candidates {
        if loaded.holds(&run) {
            continue;
        }
        let outcome = loader.load(&run, &loaded)?;
        if outcome.loaded {
            loaded.recent.insert(run);
        }
        out.push(outcome);
    }
    Ok(out)
}

impl<'a> Loader<'a> {
    fn new(api: &'a DataApi, lake: &'a Lake, table: &'a str, ledger: &'a Ledger) -> Self {
        Self {
            api,
            lake,
            table,
            ledger,
            rewrites: Rewrites::of(ledger),
            declared: None,
        }
    }

    /// Before a run's load: widen each VARCHAR column narrower than the run's longest value,
    /// each by a statement of its own (Redshift alters a column type outside transactions),
    /// so the load never fails on width.
    fn widen(&mut self, report: &RunReport) -> Result<()> {
        if report.widths.is_empty() {
            return Ok(());
        }
        let w = &self.api.options().warehouse;
        if self.declared.is_none() {
            let rows = self
                .api
                .query_rows(&varchar_widths(w, self.table), "citrine-varchar-widths")?;
            self.declared = Some(
                rows.into_iter()
                    .filter_map(|r| Some((r.first()?.clone(), r.get(1)?.parse().ok()?)))
                    .collect(),
            );
        }
        let declared = self.declared.as_mut().expect("asked for above");
        for (column, longest) in &report.widths {
            let Some(width) = declared.get_mut(column) else {
                continue;
            };
            if *width >= *longest {
                continue;
            }
            let to = varchar_width(*longest);
            self.api.execute(
                &widen_column(w, self.table, column, to),
                &format!("citrine-widen-{}", report.run_id),
            )?;
            tracing::info!(
                table = self.table,
                column,
                from = *width,
                to,
                "widened before the load"
            );
            *width = to;
        }
        Ok(())
    }

    fn load(&mut self, run_id: &str, loaded: &Loaded) -> Result<LoadOutcome> {
        let (api, lake, table, ledger) = (self.api, self.lake, self.table, self.ledger);
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
        // A source file a later, loaded run consumed again (or forgot): its rows here are stale.
        let stale = |uri: &String| {
            ledger
                .last_run(uri)
                .is_some_and(|last| last > run_id && loaded.holds(last))
        };
        let superseded: Vec<String> = report
            .inputs
            .iter()
            .map(|input| &input.uri)
            .filter(|uri| stale(uri))
            .cloned()
            .collect();
        let forgotten: Vec<String> = report
            .forgotten
            .iter()
            .filter(|uri| !stale(uri))
            .cloned()
            .collect();
        // Files a later forget run replaced are gone: COPY reads the others (their rows are in
        // the forget run's files). Once that run is loaded, rows are replaced one by one.
        let keys: Vec<&str> = report.files.iter().map(|f| f.key.as_str()).collect();
        let replacing = self.rewrites.replacing(lake, table, run_id, &keys)?;
        // A rewrite run (a forget's, a compaction's) holds rows earlier runs wrote: they are
        // replaced one by one, so loading it adds none twice, in any order of loads.
        let mut by_row = !report.forgotten.is_empty() || !report.supersedes.is_empty();
        let mut left = Vec::new();
        for (file, by) in report.files.iter().zip(&replacing) {
            match by {
                Some(w) => by_row |= loaded.holds(w),
                None => left.push(file.clone()),
            }
        }
        let marker_url = lake.url(&lake.manifest_key(table, run_id));
        let manifest_url = if left.is_empty() {
            None
        } else if left.len() == report.files.len() {
            Some(marker_url.clone())
        } else {
            let key = derived_manifest_key(table, run_id);
            lake.store().write(&key, manifest_json(&left).as_bytes())?;
            tracing::info!(
                table,
                run_id,
                left = left.len(),
                of = report.files.len(),
                "a later forget run replaced some of this run's files: COPY reads the others"
            );
            Some(lake.url(&key))
        };
        let load = Load {
            table,
            run_id,
            manifest_url: manifest_url.as_deref(),
            marker_url: &marker_url,
            columns: &report.columns,
            superseded: &superseded,
            forgotten: &forgotten,
            by_row,
        };
        self.widen(&report)?;
        api.execute_batch(
            load_transaction(&api.options().warehouse, &load),
            &format!("citrine-load-{run_id}"),
        )?;
        tracing::info!(table, run_id, "loaded");
        outcome.loaded = true;
        Ok(outcome)
    }
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
        // A local lake's marker by its path.
        let path = dir.path().join("complete/t/r1.manifest");
        assert_eq!(
            parse_marker(&lake, path.to_str().unwrap()).unwrap(),
            ("t".into(), "r1".into())
        );
    }
}
