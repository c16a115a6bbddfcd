//! `citrine query "SQL"` (feature `query`): DataFusion over the lake's committed files.
//!
//! Each table is registered from the files its committed runs list (their reports), never by
//! listing folders, so a query never sees the files of a run that has not written its marker.
//! `customer` and `dt` are ordinary columns of every file, so they filter and group as any
//! column does.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

use crate::commit::RunReport;
use crate::config::Job;
use crate::error::{Error, Result};
use crate::lake::Lake;

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

fn query_error(e: impl std::fmt::Display) -> Error {
    Error::Query {
        message: e.to_string(),
    }
}

/// A session with every table of `job` that has committed data registered.
pub async fn session(job: &Job) -> Result<SessionContext> {
    let ctx = SessionContext::new();
    let lake = Lake::new(&job.root);
    for table in &job.tables {
        let mut urls = Vec::new();
        for run in lake.committed_runs(&table.name)? {
            let report = RunReport::load(&lake.report_path(&table.name, &run))?;
            for f in report.files {
                let path = lake.root().join(&f.key);
                let abs = std::path::absolute(&path).map_err(|e| Error::io(&path, e))?;
                urls.push(ListingTableUrl::parse(abs.display().to_string()).map_err(query_error)?);
            }
        }
        if urls.is_empty() {
            continue;
        }
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .infer_schema(&ctx.state())
            .await
            .map_err(query_error)?;
        let provider = ListingTable::try_new(config).map_err(query_error)?;
        ctx.register_table(table.name.as_str(), Arc::new(provider))
            .map_err(query_error)?;
    }
    Ok(ctx)
}

/// Run `sql` against the lake of `job`.
pub async fn query(job: &Job, sql: &str) -> Result<Vec<RecordBatch>> {
    let ctx = session(job).await?;
    let df = ctx.sql(sql).await.map_err(query_error)?;
    df.collect().await.map_err(query_error)
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
