//! Pure batch → batch steps between the decoders and the writer: mask IPs, cut over-long
//! strings, then attach lineage (`customer`, `dt`, `source_file`) and align the batch to its
//! table schema. Nothing here does I/O; rows it rejects (a customer that disagrees with the
//! path) come back as [`Reject`]s with their masked text.

pub mod lineage;
pub mod mask;
pub mod rules;
pub mod truncate;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::error::Result;
use crate::parse::Reject;
pub use lineage::Lineage;
pub use mask::{MaskOptions, Masker};
pub use rules::ColumnRules;
pub use truncate::REDSHIFT_MAX_VARCHAR;

/// Counters a transform adds to a file's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransformCounts {
    /// Tokens in masked columns that were not addresses (each replaced by `-`).
    pub ips_invalid: u64,
    /// String values cut to the Redshift limit.
    pub strings_truncated: u64,
    /// Values of `email_domain` columns that were not addresses (each replaced by `-`).
    #[serde(default)]
    pub emails_invalid: u64,
}

impl std::ops::AddAssign for TransformCounts {
    fn add_assign(&mut self, rhs: Self) {
        self.ips_invalid += rhs.ips_invalid;
        self.strings_truncated += rhs.strings_truncated;
        self.emails_invalid += rhs.emails_invalid;
    }
}

/// What one transformed batch gives back.
#[derive(Debug)]
pub struct Transformed {
    /// Rows in the table schema.
    pub batch: RecordBatch,
    /// Rows rejected by the transform.
    pub rejects: Vec<Reject>,
    /// Counters.
    pub counts: TransformCounts,
}

/// The steps for one table, built once per run and shared by every worker.
#[derive(Debug, Clone)]
pub struct Transform {
    masker: Masker,
    rules: ColumnRules,
    max_string_bytes: usize,
    table: SchemaRef,
}

impl Transform {
    /// A transform producing batches of `table` schema, masking `masker`'s columns.
    pub fn new(table: SchemaRef, masker: Masker) -> Self {
        Self {
            masker,
            rules: ColumnRules::default(),
            max_string_bytes: REDSHIFT_MAX_VARCHAR,
            table,
        }
    }

    /// Also apply `rules` (hash, redact, e-mail domain) after IP masking.
    pub fn with_rules(mut self, rules: ColumnRules) -> Self {
        self.rules = rules;
        self
    }

    /// True when rejected rows' raw text must be withheld: column rules protect values that
    /// a raw line would show (its fields cannot be told apart reliably once it is bad).
    pub fn withholds_raw_text(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Override the string cut (tests use small values).
    pub fn with_max_string_bytes(mut self, limit: usize) -> Self {
        self.max_string_bytes = limit;
        self
    }

    /// The table schema batches come out in.
    pub fn table_schema(&self) -> &SchemaRef {
        &self.table
    }

    /// Mask and cut only: what `inspect` shows, with no lineage.
    pub fn sanitize(&self, batch: RecordBatch) -> (RecordBatch, TransformCounts) {
        let (batch, ips_invalid) = self.masker.apply(batch);
        let (batch, emails_invalid) = self.rules.apply(batch);
        let (batch, strings_truncated) = truncate::cut_strings(batch, self.max_string_bytes);
        (
            batch,
            TransformCounts {
                ips_invalid,
                strings_truncated,
                emails_invalid,
            },
        )
    }

    /// Run every step on one decoded batch of the file `lineage` describes.
    pub fn apply(&self, batch: RecordBatch, lineage: &Lineage) -> Result<Transformed> {
        let (batch, counts) = self.sanitize(batch);
        let (batch, rejects) = lineage.attach(batch, &self.table)?;
        Ok(Transformed {
            batch,
            rejects,
            counts,
        })
    }
}
