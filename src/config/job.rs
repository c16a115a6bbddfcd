//! The validated configuration: the [`Job`] a run executes and what it is made of (its
//! tables, write options, catalog), and the closed sets of names config keys take.

use std::sync::Arc;

use super::{
    default_max_open_files, default_memory_budget_mb, default_row_group_rows,
    default_target_file_mb, LambdaConfig, Named, TableFormat,
};
use crate::aws::AwsOptions;
use crate::parse::Format;
use crate::read::pattern::{InputPattern, MatchedInput};
use crate::redshift::RedshiftOptions;
use crate::store::Location;
use crate::transform::rules::{HashKey, Rule};
use crate::transform::MaskOptions;

/// Parquet codecs citrine writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Snappy (the default: fast, what Redshift and Athena expect).
    Snappy,
    /// Zstandard.
    Zstd,
    /// Gzip.
    Gzip,
    /// No compression.
    None,
}

/// How the writers behave.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Codec.
    pub codec: Codec,
    /// Roll files at this many bytes.
    pub target_file_bytes: u64,
    /// Rows per row group.
    pub row_group_rows: usize,
    /// Most files open at once.
    pub max_open_files: usize,
    /// Bytes of unflushed row groups allowed across writers.
    pub memory_budget_bytes: u64,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            codec: Codec::Snappy,
            target_file_bytes: default_target_file_mb() << 20,
            row_group_rows: default_row_group_rows(),
            max_open_files: default_max_open_files(),
            memory_budget_bytes: default_memory_budget_mb() << 20,
        }
    }
}

/// One validated table.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Name.
    pub name: String,
    /// Input format.
    pub format: Format,
    /// Input patterns, resolved against the config folder.
    pub inputs: Vec<InputPattern>,
    /// Columns masked as IP addresses.
    pub mask_columns: Vec<String>,
    /// Columns hashed, redacted or cut to their e-mail domain.
    pub column_rules: Vec<(String, Rule)>,
    /// What happens to its inputs once their run is committed.
    pub after_commit: AfterCommit,
    /// How readers find its files.
    pub table_format: TableFormat,
    /// Where its inputs' customer comes from.
    pub customer: CustomerSource,
    /// For the JSON formats: the field (column name) whose value is each row's customer.
    pub customer_field: Option<String>,
}

impl TableSpec {
    /// True when a `hash` rule needs the job's key.
    pub fn hashes(&self) -> bool {
        self.column_rules.iter().any(|(_, r)| *r == Rule::Hash)
    }

    /// `input` with its customer set as the table says: its pattern's `{customer}`, the
    /// table's fixed `customer`, or the `distributions` entry of its `{distribution}` (none
    /// when the id has none: the input then fails with [`TableSpec::no_customer`]).
    pub fn with_customer(&self, mut input: MatchedInput) -> MatchedInput {
        match &self.customer {
            CustomerSource::Path => {}
            CustomerSource::Fixed(c) => input.listed.customer = Some(c.clone()),
            CustomerSource::Distributions(map) => {
                input.listed.customer = input
                    .listed
                    .distribution
                    .as_ref()
                    .and_then(|d| map.get(d))
                    .cloned();
            }
        }
        input
    }

    /// Why `input` has no customer, when a CloudFront input must have one.
    pub fn no_customer(&self, input: &MatchedInput) -> Option<String> {
        if input.listed.customer.is_some() || self.format != Format::CloudFront {
            return None;
        }
        Some(match &input.listed.distribution {
            Some(d) => format!(
                "distribution {:?} maps to no customer: add it to [table.distributions] of {}",
                crate::parse::cut_at_boundary(d, 64),
                self.name
            ),
            None => "no customer: the path names none".to_owned(),
        })
    }
}

/// Where a table's inputs' customer comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CustomerSource {
    /// The pattern's `{customer}` (or, for audit tables, the rows' `customer` column).
    #[default]
    Path,
    /// The same customer for every input (`customer = "acme"`).
    Fixed(String),
    /// The pattern's `{distribution}`, looked up (`[table.distributions]`).
    Distributions(std::collections::BTreeMap<String, String>),
}

/// What happens to a table's inputs once their run is committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AfterCommit {
    /// Left where they are.
    #[default]
    Keep,
    /// Deleted.
    Delete,
    /// Copied below this location (keeping their path below their pattern's root), then
    /// deleted.
    Archive(Location),
}

/// Which catalog partitions are registered in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogKind {
    /// JSON files under `<root>/_citrine/catalog/`.
    Local,
    /// The AWS Glue Data Catalog.
    Glue {
        /// Catalog id (account), when not the caller's.
        catalog_id: Option<String>,
    },
}

/// `catalog.kind`: where partitions are registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogService {
    /// `local`: [`CatalogKind::Local`].
    Local,
    /// `glue`: [`CatalogKind::Glue`].
    Glue,
}

/// A column's `mask`: IP masking, or one of the [`Rule`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnMask {
    /// `ip`: masked as the table's `mask_ips` columns are.
    Ip,
    /// `hash`, `redact` or `email_domain`.
    Rule(Rule),
}

/// A table's `after_commit`, before its `archive_to` is joined to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCommitName {
    /// `keep`.
    Keep,
    /// `delete`.
    Delete,
    /// `archive` (to `archive_to`).
    Archive,
}

impl Named for Codec {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("snappy", Codec::Snappy),
        ("zstd", Codec::Zstd),
        ("gzip", Codec::Gzip),
        ("none", Codec::None),
        ("uncompressed", Codec::None),
    ];
    const EXPECTED: &'static str = "snappy, zstd, gzip or none";
}

impl Named for CatalogService {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("local", CatalogService::Local),
        ("glue", CatalogService::Glue),
    ];
    const EXPECTED: &'static str = "\"local\" or \"glue\"";
}

impl Named for Format {
    const NAMES: &'static [(&'static str, Self)] = &[
        (Format::CloudFront.name(), Format::CloudFront),
        (Format::Audit.name(), Format::Audit),
        (Format::Jsonl.name(), Format::Jsonl),
        (Format::CloudWatch.name(), Format::CloudWatch),
    ];
    const EXPECTED: &'static str = "\"cloudfront\", \"audit\", \"jsonl\" or \"cloudwatch\"";
}

impl Named for ColumnMask {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("ip", ColumnMask::Ip),
        ("hash", ColumnMask::Rule(Rule::Hash)),
        ("redact", ColumnMask::Rule(Rule::Redact)),
        ("email_domain", ColumnMask::Rule(Rule::EmailDomain)),
    ];
    const EXPECTED: &'static str = "\"ip\", \"hash\", \"redact\" or \"email_domain\"";
}

impl Named for AfterCommitName {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("keep", AfterCommitName::Keep),
        ("delete", AfterCommitName::Delete),
        ("archive", AfterCommitName::Archive),
    ];
    const EXPECTED: &'static str = "\"keep\", \"delete\" or \"archive\"";
}

/// A validated configuration: everything a run needs, nothing left to check.
#[derive(Debug, Clone)]
pub struct Job {
    /// Lake root.
    pub root: Location,
    /// The Lambda's trigger queues and name (for `iam-policy --for lambda`).
    pub lambda: LambdaConfig,
    /// Catalog kind.
    pub catalog: CatalogKind,
    /// Catalog database name.
    pub database: String,
    /// AWS settings.
    pub aws: AwsOptions,
    /// The warehouse, when configured.
    pub redshift: Option<RedshiftOptions>,
    /// Writer settings.
    pub write: WriteOptions,
    /// Masking.
    pub mask: MaskOptions,
    /// Worker threads.
    pub threads: usize,
    /// Rows per batch.
    pub batch_size: usize,
    /// Lock lease.
    pub lock_lease: std::time::Duration,
    /// Decompressed cap per input, bytes.
    pub max_decompressed_bytes: u64,
    /// Decoded bytes of one input held before its rows are written to files of its own.
    pub buffer_file_bytes: u64,
    /// Share of rejected rows past which an input fails.
    pub max_reject_fraction: f64,
    /// Failed attempts after which an input is quarantined.
    pub max_attempts: u32,
    /// Most columns of a table.
    pub max_columns: usize,
    /// Tables in config order.
    pub tables: Vec<TableSpec>,
    /// The key of `hash` column rules (read only when a table has one).
    pub hash_key: Option<Arc<HashKey>>,
    /// The Secrets Manager secret holding that key, still to be fetched
    /// ([`crate::privacy::resolve_hash_key`]).
    pub hash_key_secret: Option<String>,
    /// The environment variable the key is read from (`privacy.hash_key_env`).
    pub hash_key_var: String,
}
