//! `citrine query`: SQL over the lake's committed data (DataFusion, the `query` feature).

use std::process::ExitCode;

use super::context::Context;

/// How query results are printed.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum QueryFormat {
    Table,
    Csv,
    Json,
}

/// `query`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The SQL, e.g. "SELECT customer, dt, count(*) FROM cloudfront_logs GROUP BY 1, 2".
    sql: String,
    /// Output: a text table, CSV or JSON lines.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    format: QueryFormat,
}

/// Run the query and print its result.
#[cfg(feature = "query")]
pub fn query(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    use citrine::query::{committed, query, render, OutputFormat};
    use citrine::store::Stores;
    let job = ctx.job()?;
    let stores = Stores::new(job.aws.clone());
    let committed = committed(&job, &stores)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(job.threads)
        .enable_all()
        .build()?;
    let batches = runtime.block_on(query(&committed, &args.sql))?;
    let format = match args.format {
        QueryFormat::Table => OutputFormat::Table,
        QueryFormat::Csv => OutputFormat::Csv,
        QueryFormat::Json => OutputFormat::Json,
    };
    out!("{}", render(&batches, format)?)?;
    if format == OutputFormat::Table {
        outln!()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Without the `query` feature: say how to build it.
#[cfg(not(feature = "query"))]
pub fn query(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let _ = (ctx.job()?, args.sql, args.format);
    anyhow::bail!(
        "this citrine was built without the `query` feature: cargo build --features query"
    )
}
