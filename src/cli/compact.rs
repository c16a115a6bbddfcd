//! `citrine compact`: each partition's small files merged into few large ones, as a run of its
//! own; optionally an Iceberg table's old snapshots expired with the files only they name.

use std::process::ExitCode;
use std::time::Duration;

use citrine::lake::Lake;
use citrine::run::compact::{compact as compact_table, CompactOptions};
use citrine::store::Stores;

use super::context::Context;
use super::output::print_summary;

/// `compact`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The table.
    #[arg(long)]
    table: String,
    /// Files below this many MiB are small, and merged files grow to about it.
    #[arg(long, default_value_t = 128)]
    target_mb: u64,
    /// Then expire the Iceberg table's snapshots older than this (e.g. `7d`, `12h`,
    /// `90m`, `3600s`), deleting the files only they name.
    #[arg(long, value_parser = parse_age)]
    expire_after: Option<Duration>,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// Compact the table.
pub fn compact(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    // Compaction copies values as they are: no hash key is needed.
    let job = ctx.job()?;
    let spec = ctx.table(&job, &args.table)?;
    anyhow::ensure!(args.target_mb >= 1, "--target-mb must be at least 1");
    let stores = Stores::new(job.aws.clone());
    let lake = Lake::open(&job, &stores)?;
    let options = CompactOptions {
        target_bytes: args.target_mb << 20,
        expire_after: args.expire_after,
    };
    let summary = compact_table(&job, &stores, &lake, spec, &options)?;
    print_summary(&summary, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// An age: a number with `d`, `h`, `m` or `s` (seconds without a unit).
fn parse_age(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number with d, h, m or s, e.g. 7d"))?;
    let seconds = match unit {
        'd' => n * 86_400,
        'h' => n * 3_600,
        'm' => n * 60,
        's' => n,
        _ => return Err(format!("{text:?}: the unit is d, h, m or s")),
    };
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_a_unit() {
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_age("3600"), Ok(Duration::from_secs(3_600)));
        assert!(parse_age("7w").is_err());
        assert!(parse_age("d").is_err());
    }
}
