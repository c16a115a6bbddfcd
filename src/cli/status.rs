//! `citrine status`: tables, partitions, committed runs, ledger size, failing and quarantined
//! inputs.

use std::process::ExitCode;

use citrine::lake::Lake;
use citrine::ledger::failures::Failures;
use citrine::ledger::Ledger;
use citrine::register;
use citrine::store::Stores;
use citrine::transform::mask::scrub_text;

use super::context::Context;

/// `status`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print it as JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// One table in `citrine status`.
#[derive(serde::Serialize)]
struct TableStatus {
    table: String,
    format: &'static str,
    columns: usize,
    partitions: usize,
    runs: usize,
    last_run: Option<String>,
    ledger_inputs: usize,
    checkpoint: Option<String>,
    replayed: usize,
    locked: bool,
    failing: Vec<FailingStatus>,
}

/// A failing or quarantined input in `citrine status`.
#[derive(serde::Serialize)]
struct FailingStatus {
    uri: String,
    quarantined: bool,
    attempts: u32,
    last_failed_at: String,
    last_error: String,
}

/// Print the status of every table.
pub fn status(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let job = ctx.job()?;
    let stores = Stores::new(job.aws.clone());
    let lake = Lake::open(&job, &stores)?;
    let catalog = register::open(&job, &stores, &lake);
    let mut tables = Vec::new();
    for t in &job.tables {
        let ledger = Ledger::load(&lake, &t.name)?;
        let source = ledger.provenance();
        let failures = Failures::load(&lake, &t.name)?;
        tables.push(TableStatus {
            table: t.name.clone(),
            format: t.format.name(),
            columns: catalog.columns(&t.name)?.map_or(0, |c| c.len()),
            partitions: catalog.partitions(&t.name)?.len(),
            runs: ledger.runs(),
            last_run: ledger.newest_run().map(str::to_owned),
            ledger_inputs: ledger.len(),
            checkpoint: source.checkpoint.clone(),
            replayed: source.replayed,
            locked: lake.store().read(&lake.lock_key(&t.name))?.is_some(),
            failing: failures
                .inputs()
                .iter()
                .map(|(uri, f)| FailingStatus {
                    uri: scrub_text(uri),
                    quarantined: f.quarantined,
                    attempts: f.attempts,
                    last_failed_at: f.last_failed_at.clone(),
                    last_error: scrub_text(&f.last_error),
                })
                .collect(),
        });
    }
    if args.json {
        let doc = serde_json::json!({ "lake": job.root.to_string(), "tables": tables });
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("lake: {}", job.root)?;
    for t in &tables {
        let from = match &t.checkpoint {
            Some(run) => format!("checkpoint of run {run}"),
            None => "no checkpoint".to_owned(),
        };
        outln!(
            "{}: {} format, {} columns, {} partitions, {} runs (last {}), {} inputs in the ledger ({from} + {} reports replayed){}",
            t.table,
            t.format,
            t.columns,
            t.partitions,
            t.runs,
            t.last_run.as_deref().unwrap_or("-"),
            t.ledger_inputs,
            t.replayed,
            if t.locked { ", locked by a run" } else { "" }
        )?;
        for f in &t.failing {
            outln!(
                "  {} {} ({} attempts, last {}): {}",
                if f.quarantined {
                    "quarantined"
                } else {
                    "failing"
                },
                f.uri,
                f.attempts,
                f.last_failed_at,
                f.last_error
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
