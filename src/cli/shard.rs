//! A sharded run's steps besides its shards: `plan`, `commit`, `abort`.

use std::process::ExitCode;

use citrine::run::shard::{self, PlanOptions, ShardCount, Which};
use citrine::store::Stores;

use super::context::Context;
use super::output::print_summary;

/// The planned run a command acts on: named, or the one holding the table's lock.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct PlannedTarget {
    /// The planned run (as `citrine plan` printed it).
    #[arg(long)]
    run_id: Option<String>,
    /// The planned run holding the table's lock; refused (exit 2) when the holder is not a
    /// planned run.
    #[arg(long)]
    planned: bool,
}

impl PlannedTarget {
    fn which(&self) -> Which<'_> {
        Which::from(self.run_id.as_deref())
    }
}

/// `plan`'s arguments.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The table.
    #[arg(long)]
    table: String,
    /// Number of shards (the array job's size).
    #[arg(
        long,
        required_unless_present = "target_shard_gb",
        conflicts_with = "target_shard_gb"
    )]
    shards: Option<usize>,
    /// Instead of --shards: as many shards as give about this many GB of input each.
    #[arg(long)]
    target_shard_gb: Option<f64>,
    /// With --target-shard-gb: at most this many shards.
    #[arg(long, requires = "target_shard_gb", default_value_t = 1000)]
    max_shards: usize,
    /// A workflow's name for the plan (a Step Functions execution's name): the summary is
    /// also written to `_citrine/plans/<table>/<name>.json` for the workflow to read, and
    /// planning again under the same name (a retried step) gives the same plan.
    #[arg(long)]
    name: Option<String>,
    /// How long the run holds the table's lock without a shard renewing it (minutes):
    /// longer than the shards may wait in a queue.
    #[arg(long, default_value_t = 240)]
    lease_minutes: u64,
    /// Print the plan's summary as JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// `commit`'s and `abort`'s arguments.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The table.
    #[arg(long)]
    table: String,
    #[command(flatten)]
    target: PlannedTarget,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// Plan a sharded run: its lock taken, its inputs split into shards, its id printed.
pub fn plan(ctx: &Context, args: PlanArgs) -> anyhow::Result<ExitCode> {
    let job = ctx.job()?;
    let spec = ctx.table(&job, &args.table)?;
    let count = match (args.shards, args.target_shard_gb) {
        (Some(n), _) => {
            anyhow::ensure!(n >= 1, "--shards must be at least 1");
            ShardCount::Fixed(n)
        }
        (None, Some(gb)) => {
            anyhow::ensure!(gb > 0.0, "--target-shard-gb must be positive");
            anyhow::ensure!(args.max_shards >= 1, "--max-shards must be at least 1");
            ShardCount::TargetBytes {
                bytes: (gb * 1e9) as u64,
                max: args.max_shards,
            }
        }
        (None, None) => anyhow::bail!("pass --shards or --target-shard-gb"),
    };
    let stores = Stores::new(job.aws.clone());
    let options = PlanOptions {
        count,
        lease: std::time::Duration::from_secs(args.lease_minutes.max(1) * 60),
        name: args.name,
    };
    let summary = shard::plan_run(&job, &stores, spec, &options)?;
    print_summary(&summary, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Commit a planned run whose shards have all reported. Failed inputs are reported and left
/// for a later run: the commit itself succeeded, and a workflow must not retry it (exit 0).
pub fn commit(ctx: &Context, args: RunArgs) -> anyhow::Result<ExitCode> {
    let job = ctx.job()?;
    let spec = ctx.table(&job, &args.table)?;
    let stores = Stores::new(job.aws.clone());
    let summary = shard::commit_run(&job, &stores, spec, args.target.which())?;
    print_summary(&summary, args.json)?;
    for f in &summary.inputs_failed {
        errln!("{}: {}", f.uri, f.error);
    }
    Ok(ExitCode::SUCCESS)
}

/// Abort an uncommitted planned run: what it wrote deleted, the lock released.
pub fn abort(ctx: &Context, args: RunArgs) -> anyhow::Result<ExitCode> {
    let job = ctx.job()?;
    let spec = ctx.table(&job, &args.table)?;
    let stores = Stores::new(job.aws.clone());
    let summary = shard::abort_run(&job, &stores, spec, args.target.which())?;
    print_summary(&summary, args.json)?;
    Ok(ExitCode::SUCCESS)
}
