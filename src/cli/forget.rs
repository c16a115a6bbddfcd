//! `citrine forget`: release failing or quarantined inputs, or forget consumed ones (their
//! rows deleted with `--delete-rows`), so the next run processes them again.

use std::process::ExitCode;

use citrine::lake::Lake;
use citrine::run::forget::{forget as forget_inputs, Fate, Forget};
use citrine::store::Stores;
use citrine::transform::mask::scrub_text;

use super::context::Context;
use super::EXIT_FAILED;

/// `forget`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The table.
    #[arg(long)]
    table: String,
    /// The inputs' uris, as `citrine status` and run reports list them.
    #[arg(long = "input", required_unless_present = "run")]
    inputs: Vec<String>,
    /// Every input this committed run consumed (those no later run consumed again).
    #[arg(long)]
    run: Option<String>,
    /// Also forget consumed inputs whose rows were written: their rows are deleted from the
    /// lake (the files holding them are rewritten as a run of their own), and from Redshift
    /// by `redshift load`.
    #[arg(long)]
    delete_rows: bool,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// Forget the inputs; exit 2 when one was refused (each refusal named on standard error).
pub fn forget(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let job = ctx.job()?;
    let spec = ctx.table(&job, &args.table)?;
    let stores = Stores::new(job.aws.clone());
    let lake = Lake::open(&job, &stores)?;
    let what = Forget {
        uris: args.inputs,
        run: args.run,
        delete_rows: args.delete_rows,
    };
    let summary = forget_inputs(&job, &stores, &lake, spec, &what)?;
    let table = &args.table;
    if args.json {
        outln!("{}", scrub_text(&serde_json::to_string_pretty(&summary)?))?;
    }
    for fate in &summary.inputs {
        match fate {
            Fate::Refused { uri, reason } => errln!("{uri}: {reason}"),
            _ if args.json => {}
            Fate::Released { uri } => outln!(
                "{table}: {}: released; the next run tries it again",
                scrub_text(uri)
            )?,
            Fate::Forgotten {
                uri,
                consumed_by,
                rows,
            } => outln!(
                "{table}: {}: forgotten (consumed by run {consumed_by}, {rows} rows written{}); the next run processes it again",
                scrub_text(uri),
                if *rows > 0 { ", deleted" } else { "" }
            )?,
        }
    }
    if let (Some(run), false) = (&summary.run_id, args.json) {
        outln!(
            "{table}: run {run}: {} rows deleted; {} files rewritten as {} ({} rows of other inputs kept)",
            summary.rows_deleted,
            summary.files_superseded,
            summary.files_written,
            summary.rows_kept
        )?;
    }
    Ok(if summary.refused() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
