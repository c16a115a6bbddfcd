//! `citrine redshift`: the warehouse DDL, a marker's COPY, and exactly-once loads of markers.

use std::process::ExitCode;

use anyhow::Context as _;
use citrine::config::CatalogKind;
use citrine::lake::Lake;
use citrine::redshift::{load_run, load_table, maintain, parse_marker, sql, DataApi};
use citrine::store::Stores;

use super::context::Context;

/// Redshift: DDL, COPY statements, and exactly-once loads of markers.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
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
        /// Print each run's outcome as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
}

/// Run a Redshift action.
pub fn redshift(ctx: &Context, action: Action) -> anyhow::Result<ExitCode> {
    let job = ctx.job()?;
    let stores = Stores::new(job.aws.clone());
    let lake = Lake::open(&job, &stores)?;
    let warehouse = job
        .redshift
        .as_ref()
        .map(|r| r.warehouse.clone())
        .unwrap_or_default();
    match action {
        Action::Ddl {
            table,
            from_version,
            spectrum,
        } => {
            ctx.check_table(&job, Some(&table))?;
            if spectrum {
                anyhow::ensure!(
                    matches!(job.catalog, CatalogKind::Glue { .. }),
                    "Spectrum reads the Glue Data Catalog: set catalog.kind = \"glue\" in {}",
                    ctx.config.display()
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
        }
        Action::Copy { manifest } => {
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
        }
        Action::Load {
            manifest,
            table,
            vacuum,
            analyze,
            json,
        } => {
            let options = job.redshift.clone().with_context(|| {
                format!(
                    "no [redshift] section in {}: workgroup or cluster_id, database, secret_arn",
                    ctx.config.display()
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
                    ctx.check_table(&job, Some(&t))?;
                    let outcomes = load_table(&api, &lake, &t)?;
                    (t, outcomes)
                }
                (None, None) => anyhow::bail!("give --manifest or --table"),
            };
            if outcomes.iter().any(|o| o.loaded) {
                maintain(&api, &table, vacuum, analyze)?;
            }
            if json {
                outln!("{}", serde_json::to_string_pretty(&outcomes)?)?;
                return Ok(ExitCode::SUCCESS);
            }
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
        }
    }
    Ok(ExitCode::SUCCESS)
}
