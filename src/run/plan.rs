//! Planning a run: list the table's inputs and keep those the ledger does not hold; fix the
//! table schema the run writes (and the inputs that cannot join it).

use std::collections::BTreeSet;

use arrow::datatypes::SchemaRef;
use rayon::prelude::*;

use crate::config::{Job, TableSpec};
use crate::error::{Error, FileError, Result};
use crate::ledger::{Decision, Ledger};
use crate::parse::audit::{read_columns, HeaderUnion};
use crate::parse::{cloudfront, events, Format};
use crate::read::decompress::{self, Decompressed};
use crate::read::input::hash_input;
use crate::read::pattern::MatchedInput;
use crate::register::{columns_of, grows_at_end, Catalog};
use crate::schema::{is_lineage, table_schema};
use crate::store::Stores;
use crate::transform::mask::scrub_text;

/// One input the plan will process.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The input.
    pub input: MatchedInput,
    /// Consumed before with other content.
    pub changed: bool,
    /// The index of the table's input pattern that matched it.
    pub pattern: Option<usize>,
}

/// What planning found.
pub struct Plan {
    /// The inputs to process, in listing order (by uri within a pattern).
    pub planned: Vec<Planned>,
    /// Inputs the patterns matched.
    pub listed: usize,
    /// Inputs the ledger already held.
    pub skipped: usize,
    /// The ledger the plan was made against (the commit folds the run into it).
    pub ledger: Ledger,
}

/// List the inputs (or take `given` ones) and keep those `ledger` does not hold. Listings
/// are consumed as they arrive: only the new inputs are kept.
pub fn plan(
    table: &TableSpec,
    stores: &Stores,
    ledger: Ledger,
    given: Option<Vec<(MatchedInput, usize)>>,
    warnings: &mut Vec<String>,
) -> Result<Plan> {
    let mut seen = BTreeSet::new();
    let mut planned = Vec::new();
    let (mut listed, mut skipped) = (0, 0);
    let mut consider = |m: MatchedInput, pattern: Option<usize>| -> Result<()> {
        let m = table.with_customer(m);
        if !seen.insert(m.listed.uri.clone()) {
            return Ok(());
        }
        listed += 1;
        let changed = match ledger.decide(
            &m.listed.uri,
            m.listed.size,
            m.listed.mtime_ns,
            m.listed.etag.as_deref(),
        ) {
            Decision::New => false,
            Decision::Unchanged => {
                skipped += 1;
                return Ok(());
            }
            Decision::CheckContent => match hash_input(&m) {
                Ok(hash) if ledger.get(&m.listed.uri).is_some_and(|r| r.hash == hash) => {
                    skipped += 1;
                    return Ok(());
                }
                Ok(_) => true,
                // Unreadable now (or changing): planned, so its own processing reports it.
                Err(e) => {
                    tracing::debug!(input = %m.listed.uri, error = %e, "could not hash a known input; processing it");
                    true
                }
            },
        };
        if changed {
            tracing::warn!(input = %m.listed.uri, "input changed since it was consumed; processing it again");
        }
        planned.push(Planned {
            input: m,
            changed,
            pattern,
        });
        Ok(())
    };
    match given {
        Some(inputs) => inputs
            .into_iter()
            .try_for_each(|(m, pattern)| consider(m, Some(pattern)))?,
        None => {
            for (i, pattern) in table.inputs.iter().enumerate() {
                if pattern.for_each_match(stores, |m| consider(m, Some(i)))? == 0 {
                    let warning = format!(
                        "input pattern {:?} matched nothing under {}",
                        pattern.text(),
                        pattern.root()
                    );
                    tracing::warn!(table = %table.name, "{warning}");
                    warnings.push(scrub_text(&warning));
                }
            }
        }
    }
    Ok(Plan {
        planned,
        listed,
        skipped,
        ledger,
    })
}

/// The table layout a run writes.
pub struct Layout {
    /// The table schema.
    pub schema: SchemaRef,
    /// For audit tables, the header columns in table order (what [`layout_schema`] needs to
    /// give the schema again); empty for CloudFront.
    pub header: Vec<String>,
    /// The planned inputs (by index) whose header would take the table past
    /// `run.max_columns`: they join nothing.
    pub refused: Vec<(usize, FileError)>,
}

/// The table schema of `format` with the audit `header` columns (ignored for CloudFront).
pub fn layout_schema(format: Format, header: &[String]) -> SchemaRef {
    let parsed = match format {
        Format::CloudFront => cloudfront::parsed_schema(),
        Format::Audit | Format::Jsonl | Format::CloudWatch => {
            HeaderUnion::from_columns(header.to_vec()).parsed_schema()
        }
    };
    table_schema(&parsed)
}

/// How much of an input of JSON events is read at planning for its columns.
pub const SAMPLE_BYTES: usize = 1 << 20;

/// The columns input `p` brings (its CSV header, or the keys of its first events that `known`
/// lacks), or `None` when it cannot be read (it fails later, with its error reported).
fn input_columns(
    job: &Job,
    table: &TableSpec,
    p: &Planned,
    known: &[String],
) -> Option<Vec<String>> {
    let file = p.input.open().ok()?;
    let reader = Decompressed::new(file, job.max_decompressed_bytes).ok()?;
    let encoding = reader.encoding();
    let reader = decompress::buffered(reader);
    match table.format {
        Format::Audit => read_columns(reader, |e| decompress::classify(e, encoding)).ok(),
        _ => events::sample_columns(
            table.format == Format::CloudWatch,
            reader,
            known,
            SAMPLE_BYTES,
        )
        .ok(),
    }
}

/// The columns each of `planned` brings ([`input_columns`] against `known`), in their order,
/// read on the job's threads: each is a request when inputs are on S3, and a JSON input's
/// sample is a MiB decoded.
fn sample_inputs(
    job: &Job,
    table: &TableSpec,
    planned: &[Planned],
    known: &[String],
) -> Result<Vec<Option<Vec<String>>>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(job.threads.clamp(1, planned.len().max(1)))
        .build()
        .map_err(|e| Error::io("sampling pool", std::io::Error::other(e)))?;
    Ok(pool.install(|| {
        planned
            .par_iter()
            .map(|p| input_columns(job, table, p, known))
            .collect()
    }))
}

/// The table layout for this run: CloudFront's fixed layout, or for audit the catalog's
/// columns followed by new header columns in first-seen order; and the inputs refused.
pub fn resolve_schema(
    job: &Job,
    table: &TableSpec,
    planned: &[Planned],
    catalog: &dyn Catalog,
) -> Result<Layout> {
    let mut refused = Vec::new();
    let header = match table.format {
        Format::CloudFront => Vec::new(),
        Format::Audit | Format::Jsonl | Format::CloudWatch => {
            let existing: Vec<String> = catalog
                .columns(&table.name)?
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.name)
                .filter(|n| !is_lineage(n))
                .collect();
            let mut union = HeaderUnion::from_columns(existing);
            if table.format != Format::Audit {
                union.add(&events::fixed_columns(table.format == Format::CloudWatch));
            }
            let sampled = sample_inputs(job, table, planned, union.columns())?;
            for (i, cols) in sampled.into_iter().enumerate() {
                // A file whose header cannot be read fails later, with its error reported.
                let Some(cols) = cols else {
                    continue;
                };
                let mut grown = union.clone();
                grown.add(&cols);
                let columns = table_schema(&grown.parsed_schema()).fields().len();
                if columns > job.max_columns {
                    refused.push((
                        i,
                        FileError::TooManyColumns {
                            columns,
                            limit: job.max_columns,
                        },
                    ));
                } else {
                    union = grown;
                }
            }
            union.columns().to_vec()
        }
    };
    let schema = layout_schema(table.format, &header);
    if let Some(registered) = catalog.columns(&table.name)? {
        if !grows_at_end(&registered, &columns_of(&schema)) {
            return Err(Error::Corrupt {
                path: table.name.clone(),
                message: "the catalog's columns differ from this table's layout".into(),
            });
        }
    }
    Ok(Layout {
        schema,
        header,
        refused,
    })
}
