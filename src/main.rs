//! The `citrine` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use citrine::inspect::{inspect_path, InspectOptions};
use citrine::parse::Format;

/// Streams customer log files into a masked, Hive-partitioned Parquet lake.
#[derive(Debug, Parser)]
#[command(name = "citrine", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show how files parse: format, field layout, row and reject counts, first rows (masked).
    Inspect {
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
        #[arg(long, value_delimiter = ',')]
        mask_ips: Option<Vec<String>>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Cloudfront,
    Audit,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Cloudfront => Format::CloudFront,
            FormatArg::Audit => Format::Audit,
        }
    }
}

/// Exit codes: 0 ok, 1 completed with errors, 2 failed or usage.
const EXIT_PARTIAL: u8 = 1;
const EXIT_FAILED: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("citrine: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Inspect {
            files,
            format,
            rows,
            mask_ips,
        } => {
            let options = InspectOptions {
                format: format.map(Into::into),
                rows,
                mask_columns: mask_ips,
                ..Default::default()
            };
            let mut failed = 0;
            for (i, file) in files.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                match inspect_path(file, &options) {
                    Ok(report) => print!("{report}"),
                    Err(e) => {
                        failed += 1;
                        eprintln!("citrine: {e:#}");
                    }
                }
            }
            Ok(if failed > 0 {
                ExitCode::from(EXIT_PARTIAL)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
