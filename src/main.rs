//! The `citrine` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use citrine::config::Job;
use citrine::config_source::ConfigSource;
use citrine::inspect::{inspect_path, InspectOptions};
use citrine::lake::Lake;
use citrine::ledger::Ledger;
use citrine::logs::ScrubLines;
use citrine::parse::Format;
use citrine::register;
use citrine::run;
use citrine::run::forget::Fate;
use citrine::store::Stores;
use citrine::transform::mask::scrub_text;

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

/// The planned run a command acts on: named, or the one holding the table's lock.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct PlannedTarget {
    /// The planned run (as `citrine plan` printed it).
    #[arg(long)]
    run_id: Option<String>,
    /// The planned run holding the table's lock; refused (exit 2) when the holder is not a
    /// planned run.
    #[arg(long)]
    planned: bool,
}

impl PlannedTarget {
    fn which(&self) -> run::shard::Which<'_> {
        run::shard::Which::from(self.run_id.as_deref())
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PolicyRole {
    Batch,
    Lambda,
    RedshiftCopy,
    Spectrum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Process new inputs of every table (or one) and commit each table's run with a marker.
    /// With --run-id or --planned: process one shard of a planned sharded run.
    Run {
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
    },
    /// Plan a sharded run of a table: take its lock, split its new inputs into shards balanced
    /// by bytes, and print the run id. Then `run --shard I` each shard, then `commit`.
    Plan {
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
    },
    /// Commit a planned run once every shard has reported (exit 2, naming the missing shards,
    /// otherwise). Committing a committed run does nothing.
    Commit {
        /// The table.
        #[arg(long)]
        table: String,
        #[command(flatten)]
        target: PlannedTarget,
        /// Print the summary as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Release failing or quarantined inputs, or forget consumed ones, so the next run
    /// processes them again.
    Forget {
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
    },
    /// Abort an uncommitted planned run: delete what it wrote and release the table's lock.
    /// A one-process run is not aborted: stop its process, and the next run cleans up.
    Abort {
        /// The table.
        #[arg(long)]
        table: String,
        #[command(flatten)]
        target: PlannedTarget,
    },
    /// Merge each partition's small data files into few large ones, as a run of its own
    /// (the same rows; an Iceberg table's one replace snapshot); optionally expire an Iceberg
    /// table's old snapshots and the files only they name.
    Compact {
        /// The table.
        #[arg(long)]
        table: String,
        /// Files below this many MiB are small, and merged files grow to about it.
        #[arg(long, default_value_t = 128)]
        target_mb: u64,
        /// Then expire the Iceberg table's snapshots older than this (e.g. `7d`, `12h`,
        /// `90m`, `3600s`), deleting the files only they name.
        #[arg(long, value_parser = parse_age)]
        expire_after: Option<std::time::Duration>,
        /// Print the summary as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Tables, partitions, committed runs, ledger size, failing and quarantined inputs.
    Status {
        /// Print it as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Delete, by listing the whole table, what no committed run accounts for (files of runs
    /// that crashed, left by a citrine without run journals or a lake touched by hand).
    /// Every run already recovers from its journals; this costs a listing of all the data.
    Repair {
        /// Only this table.
        #[arg(long)]
        table: Option<String>,
    },
    /// Catalog maintenance.
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Print the least-privilege IAM policy (JSON) the configured job needs on AWS.
    IamPolicy {
        /// Whose: a Batch job role (or any host running the CLI), the Lambda's execution role
        /// (adds its SQS trigger and logs), the role Redshift's COPY assumes, or the role
        /// Redshift Spectrum assumes (`redshift ddl --spectrum`).
        #[arg(long = "for", value_enum, default_value_t = PolicyRole::Batch)]
        role: PolicyRole,
    },
    /// Redshift: DDL, COPY statements, and exactly-once loads of markers.
    Redshift {
        #[command(subcommand)]
        action: RedshiftAction,
    },
    /// Run SQL over the lake's committed data (DataFusion; needs the `query` feature).
    Query {
        /// The SQL, e.g. "SELECT customer, dt, count(*) FROM cloudfront_logs GROUP BY 1, 2".
        sql: String,
        /// Output: a text table, CSV or JSON lines.
        #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
        format: QueryFormat,
    },
    /// Print a shell completion script: `citrine completions bash > /etc/bash_completion.d/citrine`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `citrine man | man -l -`.
    Man,
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
        #[arg(long, value_delimiter = ',', conflicts_with = "table")]
        mask_ips: Option<Vec<String>>,
        /// Apply this configured table's masking and column rules (hash, redact, e-mail
        /// domain), as a run does.
        #[arg(long)]
        table: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogAction {
    /// Make the catalog's partitions exactly those of the committed runs (a repair, like
    /// MSCK REPAIR TABLE; idempotent).
    Sync {
        /// Only this table.
        #[arg(long)]
        table: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum RedshiftAction {
    /// Print the warehouse DDL of a table: CREATE TABLE, the schema-growth ALTERs, or the
    /// Spectrum external schema.
    Ddl {
        /// The table.
        #[arg(long)]
        table: String,
        /// Only the ALTER TABLE statements from this schema version to the latest.
        #[arg(long, conflicts_with = "spectrum")]
        from_version: Option<u64>,
        /// Print the Spectrum alternative (an external schema over the Glue database).
        #[arg(long)]
        spectrum: bool,
    },
    /// Print the COPY … FORMAT AS PARQUET MANIFEST statement of a marker.
    Copy {
        /// The marker's URL (`s3://…/complete/<table>/<run_id>.manifest`).
        #[arg(long)]
        manifest: String,
    },
    /// Load a marker (or every unloaded marker of a table) through the Redshift Data API,
    /// exactly once.
    Load {
        /// The marker's URL.
        #[arg(long, conflicts_with = "table", required_unless_present = "table")]
        manifest: Option<String>,
        /// Every committed run of this table that is not loaded yet, oldest first.
        #[arg(long)]
        table: Option<String>,
        /// VACUUM SORT ONLY the table afterwards.
        #[arg(long)]
        vacuum: bool,
        /// ANALYZE the table afterwards.
        #[arg(long)]
        analyze: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum QueryFormat {
    Table,
    Csv,
    Json,
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

/// `print!` that returns an error instead of panicking: a closed pipe (`citrine … | head`)
/// then ends the program quietly (see [`main`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `println!` as [`out!`] is `print!`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// Standard error's lines are JSON (`--log-format json`).
static JSON_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A line for the user on standard error: `citrine: <text>`, or under `--log-format json` an
/// ERROR event of the JSON log (so every line there is JSON). Scrubbed of addresses either way.
macro_rules! errln {
    ($($arg:tt)*) => {{
        let text = scrub_text(&format!($($arg)*));
        if JSON_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::error!("{text}");
        } else {
            eprintln!("citrine: {text}");
        }
    }};
}

/// Exit codes: 0 ok, 1 completed with errors, 2 failed or usage.
const EXIT_PARTIAL: u8 = 1;
const EXIT_FAILED: u8 = 2;

fn main() -> ExitCode {
    citrine::malloc::keep_freed_blocks();
    let cli = Cli::parse();
    init_logs(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        // The reader of our output went away (`| head`): not an error, as in ripgrep.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("{}", error_text(e.as_ref()));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// An error and its causes on one line, scrubbed of addresses. A cause whose text its parent
/// already shows (most of ours do, so a message reads whole on its own) is not repeated.
fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut cause = Some(e);
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        cause = c.source();
    }
    scrub_text(&text)
}

/// True when `e` is standard output's reader having gone away.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_logs(format: LogFormat) {
    JSON_STDERR.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    let filter = tracing_subscriber::EnvFilter::try_from_env("CITRINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only on a terminal, and never with NO_COLOR set (no-color.org).
    let ansi = {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(|| ScrubLines::new(std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A progress bar on standard error when it is a terminal; nothing otherwise.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new() -> Self {
        use std::io::IsTerminal;
        let bar = if std::io::stderr().is_terminal() {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Self(bar)
    }
}

impl run::Progress for Bar {
    fn planned(&self, table: &str, _inputs: usize, bytes: u64) {
        self.0.reset();
        self.0.set_prefix(table.to_owned());
        self.0.set_length(bytes);
        self.0.set_position(0);
    }
    fn input_done(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finished(&self, _table: &str) {
        self.0.finish_and_clear();
    }
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

fn load_job(source: &ConfigSource) -> anyhow::Result<Job> {
    Ok(source.load()?)
}

/// [`load_job`] for commands that hash (run, a shard, `inspect --table`): the hash key is
/// required when a table has a `hash` rule, and its secret, if the config names one, fetched.
fn load_job_with_key(source: &ConfigSource) -> anyhow::Result<Job> {
    let mut job = load_job(source)?;
    let stores = Stores::new(job.aws.clone());
    citrine::privacy::resolve_hash_key(&mut job, &stores).map_err(|e| match e {
        // Named like the config's own problems.
        citrine::error::Error::Config(c) if c.at.is_none() => {
            citrine::error::Error::Config(c.at(source.origin()))
        }
        e => e,
    })?;
    Ok(job)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let source = ConfigSource::resolve(cli.config);
    // How messages name the config.
    let config = PathBuf::from(source.origin());
    match cli.command {
        Command::Run {
            table: Some(table),
            json,
            target,
            shard,
        } if target.run_id.is_some() || target.planned || shard.is_some() => {
            anyhow::ensure!(
                target.run_id.is_some() || target.planned,
                "--shard processes a shard of a planned run: name it with --run-id R, or pass --planned"
            );
            let job = load_job_with_key(&source)?;
            let spec = table_spec(&job, &table, &config)?;
            let shard = match shard {
                Some(s) => s,
                None => std::env::var("AWS_BATCH_JOB_ARRAY_INDEX")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .context("which shard? pass --shard, or run as an AWS Batch array job's child (AWS_BATCH_JOB_ARRAY_INDEX)")?,
            };
            let stores = Stores::new(job.aws.clone());
            let bar = Bar::new();
            let which = run::shard::Which::from(target.run_id.as_deref());
            let summary = run::shard::run_shard(&job, &stores, spec, which, shard, &bar)?;
            bar.0.finish_and_clear();
            print_summary(&summary, json)?;
            // Failed inputs are the run's to report (at its commit), not a reason to retry.
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            table,
            shards,
            target_shard_gb,
            max_shards,
            name,
            lease_minutes,
            json,
        } => {
            let job = load_job(&source)?;
            let spec = table_spec(&job, &table, &config)?;
            let count = match (shards, target_shard_gb) {
                (Some(n), _) => {
                    anyhow::ensure!(n >= 1, "--shards must be at least 1");
                    run::shard::ShardCount::Fixed(n)
                }
                (None, Some(gb)) => {
                    anyhow::ensure!(gb > 0.0, "--target-shard-gb must be positive");
                    anyhow::ensure!(max_shards >= 1, "--max-shards must be at least 1");
                    run::shard::ShardCount::TargetBytes {
                        bytes: (gb * 1e9) as u64,
                        max: max_shards,
                    }
                }
                (None, None) => anyhow::bail!("pass --shards or --target-shard-gb"),
            };
            let stores = Stores::new(job.aws.clone());
            let options = run::shard::PlanOptions {
                count,
                lease: std::time::Duration::from_secs(lease_minutes.max(1) * 60),
                name,
            };
            let summary = run::shard::plan_run(&job, &stores, spec, &options)?;
            print_summary(&summary, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Commit {
            table,
            target,
            json,
        } => {
            let job = load_job(&source)?;
            let spec = table_spec(&job, &table, &config)?;
            let stores = Stores::new(job.aws.clone());
            let summary = run::shard::commit_run(&job, &stores, spec, target.which())?;
            print_summary(&summary, json)?;
            // Failed inputs are reported, and left for a later run: the commit itself
            // succeeded, and a workflow must not retry it (exit 0).
            for f in &summary.inputs_failed {
                errln!("{}: {}", f.uri, f.error);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Abort { table, target } => {
            let job = load_job(&source)?;
            let spec = table_spec(&job, &table, &config)?;
            let stores = Stores::new(job.aws.clone());
            let summary = run::shard::abort_run(&job, &stores, spec, target.which())?;
            print_summary(&summary, false)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { table, json, .. } => {
            let job = load_job_with_key(&source)?;
            check_table(&job, table.as_deref(), &config)?;
            let bar = Bar::new();
            let summaries = run::run(&job, table.as_deref(), &bar);
            if json {
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
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "citrine", &mut script);
            out!("{}", String::from_utf8(script)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut page)?;
            out!("{}", String::from_utf8(page)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => {
            let job = load_job(&source)?;
            let stores = Stores::new(job.aws.clone());
            let lake = Lake::open(&job, &stores)?;
            let catalog = register::open(&job, &stores, &lake);
            let mut tables = Vec::new();
            for t in &job.tables {
                let ledger = Ledger::load(&lake, &t.name)?;
                let source = ledger.provenance();
                let failures = citrine::ledger::failures::Failures::load(&lake, &t.name)?;
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
            if json {
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
        Command::Forget {
            table,
            inputs,
            run,
            delete_rows,
        } => {
            let job = load_job(&source)?;
            let spec = table_spec(&job, &table, &config)?;
            let stores = Stores::new(job.aws.clone());
            let lake = Lake::open(&job, &stores)?;
            let what = citrine::run::forget::Forget {
                uris: inputs,
                run,
                delete_rows,
            };
            let summary = citrine::run::forget::forget(&job, &stores, &lake, spec, &what)?;
            for fate in &summary.inputs {
                match fate {
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
                    Fate::Refused { uri, reason } => {
                        errln!("{uri}: {reason}")
                    }
                }
            }
            if let Some(run) = &summary.run_id {
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
        Command::Compact {
            table,
            target_mb,
            expire_after,
            json,
        } => {
            let job = load_job(&source)?;
            let spec = table_spec(&job, &table, &config)?;
            anyhow::ensure!(target_mb >= 1, "--target-mb must be at least 1");
            let stores = Stores::new(job.aws.clone());
            let lake = Lake::open(&job, &stores)?;
            let options = run::compact::CompactOptions {
                target_bytes: target_mb << 20,
                expire_after,
            };
            let summary = run::compact::compact(&job, &stores, &lake, spec, &options)?;
            print_summary(&summary, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Repair { table } => {
            let job = load_job(&source)?;
            check_table(&job, table.as_deref(), &config)?;
            let stores = Stores::new(job.aws.clone());
            let lake = Lake::open(&job, &stores)?;
            for t in &job.tables {
                if table.as_deref().is_some_and(|only| only != t.name) {
                    continue;
                }
                let lock =
                    run::lock::TableLock::acquire_for(&lake, &t.name, job.lock_lease, "repair")?;
                let catalog = register::open(&job, &stores, &lake);
                let readers = run::readers(&lake, t, catalog.as_ref());
                let removed = run::recover::repair(&lake, &t.name, &lock, &readers)
                    .with_context(|| format!("repair of {} failed", t.name))?;
                lock.release();
                outln!(
                    "{}: {removed} data files of uncommitted runs removed",
                    t.name
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog {
            action: CatalogAction::Sync { table },
        } => {
            let job = load_job(&source)?;
            check_table(&job, table.as_deref(), &config)?;
            let stores = Stores::new(job.aws.clone());
            let lake = Lake::open(&job, &stores)?;
            let mut catalog = register::open(&job, &stores, &lake);
            for t in &job.tables {
                if table.as_deref().is_some_and(|only| only != t.name) {
                    continue;
                }
                // Under the table's lock: a run in flight has registered partitions that no
                // committed report names yet, which a sync would remove.
                let lock = run::lock::TableLock::acquire_for(
                    &lake,
                    &t.name,
                    job.lock_lease,
                    "catalog sync",
                )?;
                if t.table_format == citrine::config::TableFormat::Iceberg {
                    // An Iceberg table's catalog entry is its metadata pointer: the newest
                    // metadata file of a committed run.
                    let runs: std::collections::BTreeSet<String> =
                        lake.committed_runs(&t.name)?.into_iter().collect();
                    lock.fence()?;
                    let current = citrine::iceberg::table::repair_pointer(
                        &lake,
                        &t.name,
                        catalog.as_mut(),
                        &|run| runs.contains(run),
                    )
                    .with_context(|| format!("catalog sync of {} failed", t.name))?;
                    lock.release();
                    outln!(
                        "{}: Iceberg metadata {}",
                        t.name,
                        current.as_deref().unwrap_or("(none yet)")
                    )?;
                    continue;
                }
                let summary =
                    citrine::register::sync::sync(&lake, catalog.as_mut(), &t.name, &|| {
                        lock.fence()
                    })
                    .with_context(|| format!("catalog sync of {} failed", t.name))?;
                lock.release();
                outln!("{summary}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Redshift { action } => {
            let job = load_job(&source)?;
            redshift(&job, action, &config)
        }
        Command::IamPolicy { role } => {
            let job = load_job(&source)?;
            let role = match role {
                PolicyRole::Batch => citrine::iam::Role::Batch,
                PolicyRole::Lambda => citrine::iam::Role::Lambda,
                PolicyRole::RedshiftCopy => citrine::iam::Role::RedshiftCopy,
                PolicyRole::Spectrum => citrine::iam::Role::Spectrum,
            };
            let policy = citrine::iam::policy_for(&job, role)?;
            for note in &policy.notes {
                tracing::warn!("{note}");
            }
            outln!("{}", serde_json::to_string_pretty(&policy.document)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Query { sql, format } => {
            let job = load_job(&source)?;
            query(&job, &sql, format)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect {
            files,
            format,
            rows,
            mask_ips,
            table,
        } => {
            let mut options = InspectOptions {
                format: format.map(Into::into),
                rows,
                mask_columns: mask_ips,
                ..Default::default()
            };
            if let Some(name) = &table {
                let mut job = load_job(&source)?;
                let spec = table_spec(&job, name, &config)?.clone();
                let mut rules = spec.column_rules.clone();
                // Without the key, hashed columns are shown redacted instead.
                let stores = Stores::new(job.aws.clone());
                if citrine::privacy::resolve_hash_key(&mut job, &stores).is_err() {
                    for (_, rule) in &mut rules {
                        if *rule == citrine::transform::rules::Rule::Hash {
                            *rule = citrine::transform::rules::Rule::Redact;
                        }
                    }
                }
                options.format = options.format.or(Some(spec.format));
                options.mask = job.mask;
                options.mask_columns = Some(spec.mask_columns.clone());
                options.rules = citrine::transform::ColumnRules::new(rules, job.hash_key.clone());
            }
            let mut failed = 0;
            for (i, file) in files.iter().enumerate() {
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
    }
}

fn redshift(job: &Job, action: RedshiftAction, config: &Path) -> anyhow::Result<ExitCode> {
    use citrine::config::CatalogKind;
    use citrine::redshift::sql;
    use citrine::redshift::{load_run, load_table, maintain, parse_marker, DataApi};
    let stores = Stores::new(job.aws.clone());
    let lake = Lake::open(job, &stores)?;
    let warehouse = job
        .redshift
        .as_ref()
        .map(|r| r.warehouse.clone())
        .unwrap_or_default();
    match action {
        RedshiftAction::Ddl {
            table,
            from_version,
            spectrum,
        } => {
            check_table(job, Some(&table), config)?;
            if spectrum {
                anyhow::ensure!(
                    matches!(job.catalog, CatalogKind::Glue { .. }),
                    "Spectrum reads the Glue Data Catalog: set catalog.kind = \"glue\" in {}",
                    config.display()
                );
                out!(
                    "{}",
                    sql::spectrum_schema(
                        &format!("{}_lake", job.database),
                        &job.database,
                        &warehouse.iam_role,
                        job.aws.region.as_deref()
                    )
                )?;
                outln!(
                    "-- then: SELECT count(*) FROM \"{}_lake\".\"{table}\";",
                    job.database
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut history: Vec<(u64, Vec<citrine::commit::report::ColumnRecord>)> = Vec::new();
            // VARCHARs sized from the longest value any run wrote.
            let mut widths = sql::Widths::new();
            for report in lake.committed_reports(&table)? {
                for (column, w) in &report.widths {
                    let longest = widths.entry(column.clone()).or_default();
                    *longest = (*longest).max(*w);
                }
                if history
                    .last()
                    .is_none_or(|(v, _)| *v != report.schema_version)
                {
                    history.push((report.schema_version, report.columns));
                }
            }
            out!(
                "{}",
                sql::ddl(&warehouse, &table, &history, from_version, &widths)
                    .map_err(anyhow::Error::msg)?
            )?;
            Ok(ExitCode::SUCCESS)
        }
        RedshiftAction::Copy { manifest } => {
            let (table, run) = parse_marker(&lake, &manifest)?;
            // A committed run's marker: its report exists.
            lake.report(&table, &run)?;
            out!(
                "{}",
                sql::copy(
                    &warehouse,
                    &warehouse.qualified(&table),
                    &citrine::redshift::load::marker_url(&manifest)
                )
            )?;
            Ok(ExitCode::SUCCESS)
        }
        RedshiftAction::Load {
            manifest,
            table,
            vacuum,
            analyze,
        } => {
            let options = job.redshift.clone().with_context(|| {
                format!(
                    "no [redshift] section in {}: workgroup or cluster_id, database, secret_arn",
                    config.display()
                )
            })?;
            let api = DataApi::new(stores.aws(), options);
            let (table, outcomes) = match (manifest, table) {
                (Some(m), _) => {
                    let (table, run) = parse_marker(&lake, &m)?;
                    let outcome = load_run(&api, &lake, &table, &run)?;
                    (table, vec![outcome])
                }
                (None, Some(t)) => {
                    check_table(job, Some(&t), config)?;
                    let outcomes = load_table(&api, &lake, &t)?;
                    (t, outcomes)
                }
                (None, None) => anyhow::bail!("give --manifest or --table"),
            };
            if outcomes.is_empty() {
                outln!("{table}: nothing new to load")?;
            }
            for o in &outcomes {
                let what = if o.loaded {
                    "loaded"
                } else {
                    "already loaded, skipped"
                };
                outln!("{}: run {} {what}", o.table, o.run_id)?;
            }
            if outcomes.iter().any(|o| o.loaded) {
                maintain(&api, &table, vacuum, analyze)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An age: a number with `d`, `h`, `m` or `s` (seconds without a unit).
fn parse_age(text: &str) -> Result<std::time::Duration, String> {
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
    Ok(std::time::Duration::from_secs(seconds))
}

/// Refuse a `--table` the config does not define.
/// Print a summary on standard output: its text, or JSON with `json`; scrubbed either way.
fn print_summary<T: serde::Serialize + std::fmt::Display>(
    summary: &T,
    json: bool,
) -> anyhow::Result<()> {
    let text = if json {
        serde_json::to_string_pretty(summary)?
    } else {
        summary.to_string()
    };
    outln!("{}", scrub_text(&text))?;
    Ok(())
}

/// The table `name` of the config.
fn table_spec<'a>(
    job: &'a Job,
    name: &str,
    config: &Path,
) -> anyhow::Result<&'a citrine::config::TableSpec> {
    job.tables
        .iter()
        .find(|t| t.name == name)
        .with_context(|| format!("--table {name}: no such table in {}", config.display()))
}

fn check_table(job: &Job, table: Option<&str>, config: &Path) -> anyhow::Result<()> {
    if let Some(t) = table {
        anyhow::ensure!(
            job.tables.iter().any(|s| s.name == t),
            "--table {t}: no such table in {}",
            config.display()
        );
    }
    Ok(())
}

#[cfg(feature = "query")]
fn query(job: &Job, sql: &str, format: QueryFormat) -> anyhow::Result<()> {
    use citrine::query::{committed, query, render, OutputFormat};
    let stores = Stores::new(job.aws.clone());
    let committed = committed(job, &stores)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(job.threads)
        .enable_all()
        .build()?;
    let batches = runtime.block_on(query(&committed, sql))?;
    let format = match format {
        QueryFormat::Table => OutputFormat::Table,
        QueryFormat::Csv => OutputFormat::Csv,
        QueryFormat::Json => OutputFormat::Json,
    };
    out!("{}", render(&batches, format)?)?;
    if format == OutputFormat::Table {
        outln!()?;
    }
    Ok(())
}

#[cfg(not(feature = "query"))]
fn query(_job: &Job, _sql: &str, _format: QueryFormat) -> anyhow::Result<()> {
    anyhow::bail!(
        "this citrine was built without the `query` feature: cargo build --features query"
    )
}
