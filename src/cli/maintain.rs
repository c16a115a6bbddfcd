//! Table maintenance under the table's lock: `repair` (what no committed run accounts for,
//! deleted) and `catalog sync` (the catalog made exactly the committed partitions, or an
//! Iceberg table's metadata pointer repaired).

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::Context as _;
use citrine::config::TableFormat;
use citrine::lake::Lake;
use citrine::register;
use citrine::run;
use citrine::run::lock::TableLock;
use citrine::store::Stores;
use citrine::transform::mask::scrub_text;

use super::context::Context;

/// `repair`'s arguments.
#[derive(Debug, clap::Args)]
pub struct RepairArgs {
    /// Only this table.
    #[arg(long)]
    table: Option<String>,
    /// Print what was removed as JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// Catalog maintenance.
#[derive(Debug, clap::Subcommand)]
pub enum CatalogAction {
    /// Make the catalog's partitions exactly those of the committed runs (a repair, like
    /// MSCK REPAIR TABLE; idempotent).
    Sync {
        /// Only this table.
        #[arg(long)]
        table: Option<String>,
        /// Print what changed as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
}

/// Print `reports` (one JSON object per table) as a JSON array, or their `text` lines.
fn report(reports: &[(serde_json::Value, String)], json: bool) -> anyhow::Result<()> {
    if json {
        let all: Vec<_> = reports.iter().map(|(v, _)| v).collect();
        outln!("{}", scrub_text(&serde_json::to_string_pretty(&all)?))?;
    } else {
        for (_, text) in reports {
            outln!("{}", scrub_text(text))?;
        }
    }
    Ok(())
}

/// Delete, table by table, the data files no committed run accounts for.
pub fn repair(ctx: &Context, args: RepairArgs) -> anyhow::Result<ExitCode> {
    let job = ctx.job()?;
    let stores = Stores::new(job.aws.clone());
    let lake = Lake::open(&job, &stores)?;
    let mut reports = Vec::new();
    for t in ctx.tables(&job, args.table.as_deref())? {
        let lock = TableLock::acquire_for(&lake, &t.name, job.lock_lease, "repair")?;
        let catalog = register::open(&job, &stores, &lake);
        let readers = run::readers(&lake, t, catalog.as_ref());
        let removed = run::recover::repair(&lake, &t.name, &lock, &readers)
            .with_context(|| format!("repair of {} failed", t.name))?;
        lock.release();
        reports.push((
            serde_json::json!({"table": t.name, "removed": removed}),
            format!(
                "{}: {removed} data files of uncommitted runs removed",
                t.name
            ),
        ));
    }
    report(&reports, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Run a catalog action.
pub fn catalog(ctx: &Context, action: CatalogAction) -> anyhow::Result<ExitCode> {
    let CatalogAction::Sync { table, json } = action;
    let job = ctx.job()?;
    let stores = Stores::new(job.aws.clone());
    let lake = Lake::open(&job, &stores)?;
    let mut catalog = register::open(&job, &stores, &lake);
    let mut reports = Vec::new();
    for t in ctx.tables(&job, table.as_deref())? {
        // Under the table's lock: a run in flight has registered partitions that no
        // committed report names yet, which a sync would remove.
        let lock = TableLock::acquire_for(&lake, &t.name, job.lock_lease, "catalog sync")?;
        if t.table_format == TableFormat::Iceberg {
            // An Iceberg table's catalog entry is its metadata pointer: the newest metadata
            // file of a committed run.
            let runs: BTreeSet<String> = lake.committed_runs(&t.name)?.into_iter().collect();
            lock.fence()?;
            let current =
                citrine::iceberg::table::repair_pointer(&lake, &t.name, catalog.as_mut(), &|run| {
                    runs.contains(run)
                })
                .with_context(|| format!("catalog sync of {} failed", t.name))?;
            lock.release();
            reports.push((
                serde_json::json!({"table": t.name, "iceberg_metadata": current}),
                format!(
                    "{}: Iceberg metadata {}",
                    t.name,
                    current.as_deref().unwrap_or("(none yet)")
                ),
            ));
            continue;
        }
        let summary = register::sync::sync(&lake, catalog.as_mut(), &t.name, &|| lock.fence())
            .with_context(|| format!("catalog sync of {} failed", t.name))?;
        lock.release();
        reports.push((serde_json::to_value(&summary)?, summary.to_string()));
    }
    report(&reports, json)?;
    Ok(ExitCode::SUCCESS)
}
