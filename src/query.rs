//! `citrine query "SQL"` (feature `query`): DataFusion over the lake's committed files.
//!
//! Each table is registered from the files its committed runs list (their reports) less those
//! a later `forget --delete-rows` replaced, never by listing folders, so a query never sees
//! the files of a run that has not written its marker.
//! `customer` and `dt` are ordinary columns of every file, so they filter and group as any
//! column does.
//!
//! Queries are read-only: DDL (`CREATE`, `DROP`), DML (`INSERT`, `COPY … TO`) and statements
//! (`SET`, transactions) are refused before anything runs. Errors are the engine's message,
//! without its debug wrapping; an unknown table lists the tables there are.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::parser::ParserError;

use crate::config::Job;
use crate::error::{Error, Result};
use crate::store::{Location, Stores};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A text table.
    Table,
    /// CSV with a header.
    Csv,
    /// JSON, one object per line.
    Json,
}

fn query_error(e: impl Into<crate::error::BoxError>) -> Error {
    Error::Query { source: e.into() }
}

/// What a query session registers: each table's committed files, and the S3 client for an
/// `s3://` lake. Gathered synchronously, before the async engine starts.
#[derive(Debug, Default)]
pub struct Committed {
    tables: Vec<(String, Vec<String>)>,
    s3: Option<(String, Arc<dyn object_store::ObjectStore>)>,
}

/// The committed files of every table of `job` (from the reports of runs with a marker).
pub fn committed(job: &Job, stores: &Stores) -> Result<Committed> {
    let lake = crate::lake::Lake::open(job, stores)?;
    let mut out = Committed::default();
    if let Location::S3 { bucket, .. } = &job.root {
        out.s3 = Some((format!("s3://{bucket}"), stores.s3_client(bucket)?));
    }
    for table in &job.tables {
        let mut urls = Vec::new();
        let reports = lake.committed_reports(&table.name)?;
        for f in crate::commit::report::live_files(&reports) {
            let url = lake.url(&f.key);
            // Local files by absolute path: DataFusion reads those without URL decoding.
            urls.push(
                url.strip_prefix("file://")
                    .map(str::to_owned)
                    .unwrap_or(url),
            );
        }
        out.tables.push((table.name.clone(), urls));
    }
    Ok(out)
}

/// A session with every table that has committed data registered.
pub async fn session(committed: &Committed) -> Result<SessionContext> {
    let ctx = SessionContext::new();
    if let Some((base, client)) = &committed.s3 {
        let url = datafusion::execution::object_store::ObjectStoreUrl::parse(base)
            .map_err(query_error)?;
        ctx.register_object_store(url.as_ref(), client.clone());
    }
    for (name, files) in &committed.tables {
        if files.is_empty() {
            continue;
        }
        let urls = files
            .iter()
            .map(|f| ListingTableUrl::parse(f).map_err(query_error))
            .collect::<Result<Vec<_>>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .infer_schema(&ctx.state())
            .await
            .map_err(query_error)?;
        let provider = ListingTable::try_new(config).map_err(query_error)?;
        ctx.register_table(name.as_str(), Arc::new(provider))
            .map_err(query_error)?;
    }
    Ok(ctx)
}

/// What a query may do: read.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// The engine's error as a person reads it: a syntax error's own text (not its debug form),
/// a refused statement as such, an unknown table with the tables there are.
fn explain(e: DataFusionError, tables: &[&str]) -> Error {
    let text = match e.find_root() {
        DataFusionError::SQL(parse, _) => match parse.as_ref() {
            ParserError::ParserError(m) | ParserError::TokenizerError(m) => {
                format!("SQL syntax: {m}")
            }
            ParserError::RecursionLimitExceeded => "SQL syntax: nested too deeply".into(),
        },
        DataFusionError::Plan(m) if m.contains("not supported") => {
            format!("{m}: queries are read-only (SELECT, WITH, EXPLAIN)")
        }
        DataFusionError::Plan(m) if m.starts_with("table '") && m.ends_with("' not found") => {
            let list = if tables.is_empty() {
                "none: no table has committed data".to_owned()
            } else {
                tables.join(", ")
            };
            format!("{m}; tables: {list}")
        }
        other => other.message().into_owned(),
    };
    query_error(text)
}

/// Run `sql` (read-only) over the committed tables.
pub async fn query(committed: &Committed, sql: &str) -> Result<Vec<RecordBatch>> {
    let ctx = session(committed).await?;
    let tables: Vec<&str> = committed
        .tables
        .iter()
        .filter(|(_, files)| !files.is_empty())
        .map(|(name, _)| name.as_str())
        .collect();
    let df = ctx
        .sql_with_options(sql, read_only())
        .await
        .map_err(|e| explain(e, &tables))?;
    df.collect().await.map_err(|e| explain(e, &tables))
}

/// Render batches in `format`.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String> {
    match format {
        OutputFormat::Table => Ok(arrow::util::pretty::pretty_format_batches(batches)
            .map_err(query_error)?
            .to_string()),
        OutputFormat::Csv => {
            let mut out = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                for b in batches {
                    w.write(b).map_err(query_error)?;
                }
            }
            String::from_utf8(out).map_err(query_error)
        }
        OutputFormat::Json => {
            let mut out = Vec::new();
            {
                let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
                let refs: Vec<&RecordBatch> = batches.iter().collect();
                w.write_batches(&refs).map_err(query_error)?;
                w.finish().map_err(query_error)?;
            }
            String::from_utf8(out).map_err(query_error)
        }
    }
}
