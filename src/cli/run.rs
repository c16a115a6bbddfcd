//! `citrine run`: every table's new inputs (or one's), each table's run committed with a marker;
//! with `--run-id` or `--planned`, one shard of a planned run.

use std::process::ExitCode;

use anyhow::Context as _;
use citrine::run;
use citrine::store::Stores;
use citrine::transform::mask::scrub_text;

use super::context::Context;
use super::output::{print_summary, Bar};
use super::{EXIT_FAILED, EXIT_PARTIAL};

/// `run`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this table (required for a shard).
    #[arg(long)]
    table: Option<String>,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: ShardTarget,
    /// The shard to process; default: $AWS_BATCH_JOB_ARRAY_INDEX (an array job's child).
    /// Needs --run-id or --planned.
    #[arg(long, requires = "table")]
    shard: Option<usize>,
}

/// `run`'s shard mode: a planned run, named or the lock's holder (neither: a plain run).
#[derive(Debug, clap::Args)]
#[group(required = false, multiple = false)]
struct ShardTarget {
    /// Process a shard of this planned run.
    #[arg(long, requires = "table")]
    run_id: Option<String>,
    /// Process a shard of the run planned for --table (the planned run holding its lock).
    #[arg(long, requires = "table")]
    planned: bool,
}

/// Run every table (or one), or one shard of a planned run. Exit 1 when inputs failed, 2 when
/// a table's run failed.
pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let planned = args.target.run_id.is_some() || args.target.planned;
    if planned || args.shard.is_some() {
        anyhow::ensure!(
            planned,
            "--shard processes a shard of a planned run: name it with --run-id R, or pass --planned"
        );
        return shard(ctx, args);
    }
    let job = ctx.job_with_key()?;
    ctx.check_table(&job, args.table.as_deref())?;
    let bar = Bar::new();
    let summaries = run::run(&job, args.table.as_deref(), &bar);
    if args.json {
        outln!("{}", scrub_text(&serde_json::to_string_pretty(&summaries)?))?;
    } else {
        for s in &summaries {
            outln!("{}", scrub_text(&s.to_string()))?;
        }
    }
    for s in &summaries {
        for f in &s.inputs_failed {
            errln!("{}: {}", f.uri, f.error);
        }
        if let Some(e) = &s.error {
            errln!("table {}: run failed: {e}", s.table);
        }
    }
    Ok(if summaries.iter().any(|s| s.error.is_some()) {
        ExitCode::from(EXIT_FAILED)
    } else if summaries.iter().any(|s| !s.inputs_failed.is_empty()) {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

/// One shard of a planned run. Failed inputs are the run's to report (at its commit), not a
/// reason to retry: exit 0.
fn shard(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let job = ctx.job_with_key()?;
    let table = args.table.as_deref().context("a shard needs --table")?;
    let spec = ctx.table(&job, table)?;
    let shard = match args.shard {
        Some(s) => s,
        None => std::env::var("AWS_BATCH_JOB_ARRAY_INDEX")
            .ok()
            .and_then(|v| v.parse().ok())
            .context("which shard? pass --shard, or run as an AWS Batch array job's child (AWS_BATCH_JOB_ARRAY_INDEX)")?,
    };
    let stores = Stores::new(job.aws.clone());
    let bar = Bar::new();
    let which = run::shard::Which::from(args.target.run_id.as_deref());
    let summary = run::shard::run_shard(&job, &stores, spec, which, shard, &bar)?;
    bar.clear();
    print_summary(&summary, args.json)?;
    Ok(ExitCode::SUCCESS)
}
