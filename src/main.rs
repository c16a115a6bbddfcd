//! The `citrine` command line: the commands, parsed here and each sent to its function in
//! `cli/` (its arguments are defined beside it).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[macro_use]
mod cli;

use cli::context::Context;
use cli::output::{error_text, init_logs, is_broken_pipe, LogFormat};
use cli::{
    compact, docs, forget, iam, inspect, maintain, query, redshift, run, shard, status, EXIT_FAILED,
};

/// Streams customer log files into a masked, Hive-partitioned Parquet lake.
#[derive(Debug, Parser)]
#[command(name = "citrine", version = citrine::VERSION, about)]
struct Cli {
    /// Configuration file [default: the text of $CITRINE_CONFIG_TOML, else $CITRINE_CONFIG (a
    /// path, or an s3://bucket/key object), else citrine.toml].
    #[arg(short = 'c', long, global = true)]
    config: Option<PathBuf>,
    /// Log format on standard error: `text`, or `json` for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Process new inputs of every table (or one) and commit each table's run with a marker.
    /// With --run-id or --planned: process one shard of a planned sharded run.
    Run(run::Args),
    /// Plan a sharded run of a table: take its lock, split its new inputs into shards balanced
    /// by bytes, and print the run id. Then `run --shard I` each shard, then `commit`.
    Plan(shard::PlanArgs),
    /// Commit a planned run once every shard has reported (exit 2, naming the missing shards,
    /// otherwise). Committing a committed run does nothing.
    Commit(shard::RunArgs),
    /// Release failing or quarantined inputs, or forget consumed ones, so the next run
    /// processes them again.
    Forget(forget::Args),
    /// Abort an uncommitted planned run: delete what it wrote and release the table's lock.
    /// A one-process run is not aborted: stop its process, and the next run cleans up.
    Abort(shard::RunArgs),
    /// Merge each partition's small data files into few large ones, as a run of its own
    /// (the same rows; an Iceberg table's one replace snapshot); optionally expire an Iceberg
    /// table's old snapshots and the files only they name.
    Compact(compact::Args),
    /// Tables, partitions, committed runs, ledger size, failing and quarantined inputs.
    Status(status::Args),
    /// Delete, by listing the whole table, what no committed run accounts for (files of runs
    /// that crashed, left by a citrine without run journals or a lake touched by hand).
    /// Every run already recovers from its journals; this costs a listing of all the data.
    Repair(maintain::RepairArgs),
    /// Catalog maintenance.
    Catalog {
        #[command(subcommand)]
        action: maintain::CatalogAction,
    },
    /// Print the least-privilege IAM policy (JSON) the configured job needs on AWS.
    IamPolicy(iam::Args),
    /// Redshift: DDL, COPY statements, and exactly-once loads of markers.
    Redshift {
        #[command(subcommand)]
        action: redshift::Action,
    },
    /// Run SQL over the lake's committed data (DataFusion; needs the `query` feature).
    Query(query::Args),
    /// Print a shell completion script: `citrine completions bash > /etc/bash_completion.d/citrine`.
    Completions(docs::CompletionsArgs),
    /// Print the manual page (roff) of citrine or of one command: `citrine man run | man -l -`.
    Man(docs::ManArgs),
    /// Show how files parse: format, field layout, row and reject counts, first rows (masked).
    Inspect(inspect::Args),
}

fn main() -> ExitCode {
    citrine::malloc::keep_freed_blocks();
    let cli = Cli::parse();
    init_logs(cli.log_format);
    match try_main(cli) {
        Ok(code) => code,
        // The reader of our output went away (`| head`): not an error, as in ripgrep.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("{}", error_text(e.as_ref()));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Send the command to its function.
fn try_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context::new(cli.config);
    match cli.command {
        Command::Run(args) => run::run(&ctx, args),
        Command::Plan(args) => shard::plan(&ctx, args),
        Command::Commit(args) => shard::commit(&ctx, args),
        Command::Abort(args) => shard::abort(&ctx, args),
        Command::Forget(args) => forget::forget(&ctx, args),
        Command::Compact(args) => compact::compact(&ctx, args),
        Command::Status(args) => status::status(&ctx, args),
        Command::Repair(args) => maintain::repair(&ctx, args),
        Command::Catalog { action } => maintain::catalog(&ctx, action),
        Command::IamPolicy(args) => iam::iam_policy(&ctx, args),
        Command::Redshift { action } => redshift::redshift(&ctx, action),
        Command::Query(args) => query::query(&ctx, args),
        Command::Inspect(args) => inspect::inspect(&ctx, args),
        Command::Completions(args) => docs::completions(Cli::command(), args),
        Command::Man(args) => docs::man(Cli::command(), args),
    }
}
