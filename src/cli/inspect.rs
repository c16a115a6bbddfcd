//! `citrine inspect`: how files parse, their first rows masked, without writing anything.

use std::path::PathBuf;
use std::process::ExitCode;

use citrine::inspect::{inspect_path, InspectOptions};
use citrine::parse::Format;
use citrine::store::Stores;
use citrine::transform::rules::Rule;
use citrine::transform::ColumnRules;

use super::context::Context;
use super::output::error_text;
use super::EXIT_PARTIAL;

/// A format, as `--format` names it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Cloudfront,
    Audit,
    Jsonl,
    Cloudwatch,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Cloudfront => Format::CloudFront,
            FormatArg::Audit => Format::Audit,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Cloudwatch => Format::CloudWatch,
        }
    }
}

/// `inspect`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to inspect (plain or gzip).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Format, instead of detecting it from the first line.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Rows to show per file.
    #[arg(long, default_value_t = 5)]
    rows: usize,
    /// Audit columns to mask (comma separated); default: columns named like `*_ip`.
    #[arg(long, value_delimiter = ',', conflicts_with = "table")]
    mask_ips: Option<Vec<String>>,
    /// Apply this configured table's masking and column rules (hash, redact, e-mail
    /// domain), as a run does.
    #[arg(long)]
    table: Option<String>,
}

/// Inspect each file; exit 1 when one could not be read.
pub fn inspect(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut options = InspectOptions {
        format: args.format.map(Into::into),
        rows: args.rows,
        mask_columns: args.mask_ips,
        ..Default::default()
    };
    if let Some(name) = &args.table {
        let mut job = ctx.job()?;
        let spec = ctx.table(&job, name)?.clone();
        let mut rules = spec.column_rules.clone();
        // Without the key, hashed columns are shown redacted instead.
        let stores = Stores::new(job.aws.clone());
        if citrine::privacy::resolve_hash_key(&mut job, &stores).is_err() {
            for (_, rule) in &mut rules {
                if *rule == Rule::Hash {
                    *rule = Rule::Redact;
                }
            }
        }
        options.format = options.format.or(Some(spec.format));
        options.mask = job.mask;
        options.mask_columns = Some(spec.mask_columns.clone());
        options.rules = ColumnRules::new(rules, job.hash_key.clone());
    }
    let mut failed = 0;
    for (i, file) in args.files.iter().enumerate() {
        if i > 0 {
            outln!()?;
        }
        match inspect_path(file, &options) {
            Ok(report) => out!("{report}")?,
            Err(e) => {
                failed += 1;
                errln!("{}", error_text(&e));
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}
