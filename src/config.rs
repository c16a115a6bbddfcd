//! Configuration in two steps: serde structs that mirror `citrine.toml` (unknown keys are
//! rejected, every field has a documented default), then [`ConfigFile::validate`] into an
//! immutable [`Job`] that the pipeline runs. Every problem is reported before any work starts,
//! naming the key and what was expected.

mod choice;

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

pub use self::choice::{Choice, Named};
use crate::aws::AwsOptions;
use crate::error::ConfigError;
use crate::parse::Format;
use crate::read::pattern::{InputPattern, MatchedInput};
use crate::redshift::sql::Warehouse;
use crate::redshift::{Auth, RedshiftOptions, Target};
use crate::store::Location;
use crate::transform::rules::{HashKey, Rule};
use crate::transform::MaskOptions;

/// The file `citrine.toml` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Where the lake lives and how files are written.
    pub lake: LakeConfig,
    /// Which catalog partitions are registered in.
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// IP masking.
    #[serde(default)]
    pub mask: MaskConfig,
    /// Run tuning.
    #[serde(default)]
    pub run: RunConfig,
    /// AWS settings for `s3://` locations and the Glue catalog.
    #[serde(default)]
    pub aws: AwsOptions,
    /// Where `citrine redshift load` loads markers.
    pub redshift: Option<RedshiftConfig>,
    /// Keys of the column rules.
    #[serde(default)]
    pub privacy: PrivacyConfig,
    /// The Lambda's trigger and name, for `iam-policy --for lambda`.
    #[serde(default)]
    pub lambda: LambdaConfig,
    /// The tables, each with its inputs.
    #[serde(rename = "table", default)]
    pub tables: Vec<TableConfig>,
    /// Where it was read from and its text, so a problem can name its line.
    #[serde(skip)]
    source: Option<(String, String)>,
}

/// `[lake]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// Lake root: a local folder (relative to the config file), e.g. `"lake"`, or
    /// `s3://bucket/prefix`.
    pub root: String,
    /// Parquet codec: `snappy` (default), `zstd`, `gzip` or `none`.
    #[serde(default = "default_compression")]
    pub compression: Choice<Codec>,
    /// Roll a data file once it reaches this many MiB (default 256).
    #[serde(default = "default_target_file_mb")]
    pub target_file_mb: u64,
    /// Rows per Parquet row group (default 131072).
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Most data files open at once; the least recently used is closed past it (default 64).
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// MiB of encoded-but-unflushed data the writers may hold; the largest row group is
    /// flushed past it (default 128).
    #[serde(default = "default_memory_budget_mb")]
    pub memory_budget_mb: u64,
    /// How readers find the tables' files: `hive` (default; partitions registered in the
    /// catalog) or `iceberg` (one Iceberg snapshot per run). A table may say otherwise.
    #[serde(default)]
    pub table_format: TableFormat,
}

/// How readers find a table's files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// Hive-style: the data folder, its partitions registered in the catalog.
    #[default]
    Hive,
    /// An Iceberg table: each run one snapshot, readers see a whole run or none.
    Iceberg,
}

/// `[catalog]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// `local` (default): a JSON file per table under `<root>/_citrine/catalog/`; or `glue`.
    #[serde(default = "default_catalog_kind")]
    pub kind: Choice<CatalogService>,
    /// The database name (Glue; recorded in the local catalog too). Default `citrine`.
    #[serde(default = "default_database")]
    pub database: String,
    /// Glue: the catalog id (the AWS account id) when it is not the caller's own.
    pub catalog_id: Option<String>,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            kind: default_catalog_kind(),
            database: default_database(),
            catalog_id: None,
        }
    }
}

/// `[lambda]`: what `iam-policy --for lambda` grants besides the job's own permissions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaConfig {
    /// ARNs of the SQS queues that trigger the function.
    #[serde(default)]
    pub queue_arns: Vec<String>,
    /// The function's name (its CloudWatch log group is `/aws/lambda/<name>`).
    #[serde(default = "default_function_name")]
    pub function_name: String,
    /// How long an invocation waits for a table another run holds (at most half of the
    /// invocation's remaining time) before it sends the batch's messages again (default 120).
    #[serde(default = "default_lock_wait_secs")]
    pub lock_wait_secs: u64,
    /// The delay of a message sent again because its table stayed locked, jittered by ±50%
    /// (default 60; 900, SQS's most, when a planned sharded run holds the table).
    #[serde(default = "default_requeue_delay_secs")]
    pub requeue_delay_secs: u64,
}

fn default_function_name() -> String {
    "citrine".into()
}

fn default_lock_wait_secs() -> u64 {
    120
}

fn default_requeue_delay_secs() -> u64 {
    60
}

impl Default for LambdaConfig {
    fn default() -> Self {
        Self {
            queue_arns: Vec::new(),
            function_name: default_function_name(),
            lock_wait_secs: default_lock_wait_secs(),
            requeue_delay_secs: default_requeue_delay_secs(),
        }
    }
}

/// `[mask]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Leading IPv4 bits kept (default 24, at most 31).
    #[serde(default = "default_ipv4_prefix")]
    pub ipv4_prefix: u8,
    /// Leading IPv6 bits kept (default 48, at most 127).
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
}

impl Default for MaskConfig {
    fn default() -> Self {
        Self {
            ipv4_prefix: default_ipv4_prefix(),
            ipv6_prefix: default_ipv6_prefix(),
        }
    }
}

/// `[privacy]`: where the key of `hash` column rules comes from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// The environment variable holding the key (default `CITRINE_HASH_KEY`): its text's bytes,
    /// at least 16. Read only when a table has a `hash` rule.
    pub hash_key_env: Option<String>,
    /// Instead: the AWS Secrets Manager secret whose text is the key (fetched when the job is
    /// loaded).
    pub hash_key_secret_arn: Option<String>,
}

/// `[table.columns.<name>]`: a rule for one column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    /// `ip`, `hash`, `redact` or `email_domain`.
    pub mask: Choice<ColumnMask>,
}

/// `[run]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Worker threads (default: the machine's cores).
    pub threads: Option<usize>,
    /// Rows per decoded batch (default 8192).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Seconds a table lock is valid without renewal; a later run may take over an expired
    /// lock (default 600).
    #[serde(default = "default_lock_lease_secs")]
    pub lock_lease_secs: u64,
    /// Cap on one input's decompressed size, in MiB (default 16384).
    #[serde(default = "default_max_decompressed_mb")]
    pub max_decompressed_mb: u64,
    /// MiB of one input's decoded rows held in memory before any of them is written (default
    /// 32): an input that fails within it is dropped cleanly. A larger input (counted in
    /// decoded bytes, whatever its size on disk) is written to data files of its own from
    /// there on, deleted if it fails, so its failure is its own at any size.
    #[serde(default = "default_buffer_file_mb")]
    pub buffer_file_mb: u64,
    /// An input with a larger share of rejected rows than this is a failed input: reported,
    /// nothing of it written, left unconsumed (default 0.1).
    #[serde(default = "default_max_reject_fraction")]
    pub max_reject_fraction: f64,
    /// Failed attempts after which an input is quarantined (default 5).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Most columns a table may have, lineage columns included (default 1000; Redshift allows
    /// 1600). An audit file whose header would pass it fails as an input.
    #[serde(default = "default_max_columns")]
    pub max_columns: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            threads: None,
            batch_size: default_batch_size(),
            lock_lease_secs: default_lock_lease_secs(),
            max_decompressed_mb: default_max_decompressed_mb(),
            buffer_file_mb: default_buffer_file_mb(),
            max_reject_fraction: default_max_reject_fraction(),
            max_attempts: default_max_attempts(),
            max_columns: default_max_columns(),
        }
    }
}

/// `[[table]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Table name: lower case letters, digits and `_`.
    pub name: String,
    /// `cloudfront`, `audit`, `jsonl` or `cloudwatch`.
    pub format: Choice<Format>,
    /// Input patterns relative to the config file: `{customer}` (or `{distribution}`)
    /// captures a path segment or part of one, `*` and `?` match within a segment, `**` any
    /// depth, a trailing `/` everything below.
    pub inputs: Vec<String>,
    /// Audit columns holding IP addresses to mask (CloudFront always masks `c_ip` and
    /// `x_forwarded_for`).
    #[serde(default)]
    pub mask_ips: Vec<String>,
    /// Rules by column name (`[table.columns.user_email] mask = "hash"`).
    #[serde(default)]
    pub columns: std::collections::BTreeMap<String, ColumnConfig>,
    /// What happens to an input once its run is committed: `keep` (default), `delete` or
    /// `archive` (moved below `archive_to`).
    pub after_commit: Option<Choice<AfterCommitName>>,
    /// Where `archive` moves inputs: `s3://bucket/prefix/` or a folder.
    pub archive_to: Option<String>,
    /// `hive` or `iceberg`, instead of `[lake] table_format`.
    pub table_format: Option<TableFormat>,
    /// The customer of every input (for a table whose patterns name none).
    pub customer: Option<String>,
    /// CloudFront distribution ids (`{distribution}` in a pattern) to customers.
    #[serde(default)]
    pub distributions: std::collections::BTreeMap<String, String>,
    /// `jsonl` and `cloudwatch`: the field whose value is each row's customer (a field of the
    /// event or message, or `log_group`), instead of `customer`.
    pub customer_field: Option<String>,
}

fn default_compression() -> Choice<Codec> {
    Choice::Known(Codec::Snappy)
}
fn default_target_file_mb() -> u64 {
    256
}
fn default_row_group_rows() -> usize {
    128 * 1024
}
fn default_max_open_files() -> usize {
    64
}
fn default_memory_budget_mb() -> u64 {
    128
}
fn default_catalog_kind() -> Choice<CatalogService> {
    Choice::Known(CatalogService::Local)
}
fn default_database() -> String {
    "citrine".into()
}
fn default_ipv4_prefix() -> u8 {
    24
}
fn default_ipv6_prefix() -> u8 {
    48
}
fn default_batch_size() -> usize {
    crate::parse::DEFAULT_BATCH_SIZE
}
fn default_lock_lease_secs() -> u64 {
    600
}
fn default_max_decompressed_mb() -> u64 {
    16 * 1024
}
fn default_buffer_file_mb() -> u64 {
    32
}
fn default_max_attempts() -> u32 {
    5
}
fn default_max_reject_fraction() -> f64 {
    0.1
}
fn default_max_columns() -> usize {
    1000
}

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

/// `[redshift]`: the warehouse `citrine redshift load` loads markers into.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedshiftConfig {
    /// Redshift Serverless workgroup (or `cluster_id`).
    pub workgroup: Option<String>,
    /// The workgroup's ARN (`arn:aws:redshift-serverless:<region>:<account>:workgroup/<id>`),
    /// for `iam-policy`: workgroup ARNs end in the workgroup's id, not its name.
    pub workgroup_arn: Option<String>,
    /// Provisioned cluster identifier (or `workgroup`).
    pub cluster_id: Option<String>,
    /// Database.
    pub database: String,
    /// Secrets Manager ARN of the database credentials (never a password here).
    pub secret_arn: Option<String>,
    /// Database user for temporary cluster credentials (clusters only, instead of a secret).
    pub db_user: Option<String>,
    /// Schema of the tables and of `citrine_loads` (default `public`).
    #[serde(default = "default_redshift_schema")]
    pub schema: String,
    /// IAM role COPY uses to read the lake (default: the cluster's default role).
    #[serde(default = "default_iam_role")]
    pub iam_role: String,
    /// Seconds a statement may run before it is cancelled (default 900).
    #[serde(default = "default_redshift_timeout")]
    pub timeout_secs: u64,
    /// Milliseconds between status polls (default 500).
    #[serde(default = "default_redshift_poll")]
    pub poll_ms: u64,
}

fn default_redshift_schema() -> String {
    "public".into()
}
fn default_iam_role() -> String {
    "default".into()
}
fn default_redshift_timeout() -> u64 {
    900
}
fn default_redshift_poll() -> u64 {
    500
}

impl RedshiftConfig {
    fn validate(&self) -> Result<RedshiftOptions, ConfigError> {
        let target = match (&self.workgroup, &self.cluster_id) {
            (Some(w), None) => Target::Workgroup(w.clone()),
            (None, Some(c)) => Target::Cluster(c.clone()),
            _ => {
                return Err(ConfigError::new(
                    "redshift.workgroup",
                    "expected exactly one of `workgroup` (serverless) and `cluster_id`",
                ))
            }
        };
        let auth = match (&self.secret_arn, &self.db_user, &target) {
            (Some(arn), None, _) if arn.starts_with("arn:") => Auth::Secret(arn.clone()),
            (Some(arn), None, _) => {
                return Err(ConfigError::new(
                    "redshift.secret_arn",
                    format!("expected a Secrets Manager ARN, got {arn:?}"),
                ))
            }
            (None, Some(user), Target::Cluster(_)) => Auth::DbUser(user.clone()),
            (None, Some(_), Target::Workgroup(_)) => {
                return Err(ConfigError::new(
                    "redshift.db_user",
                    "temporary credentials by user are for clusters; use secret_arn or IAM",
                ))
            }
            (None, None, Target::Workgroup(_)) => Auth::Iam,
            _ => {
                return Err(ConfigError::new(
                    "redshift.secret_arn",
                    "expected one of `secret_arn` or `db_user` for a cluster",
                ))
            }
        };
        positive("redshift.timeout_secs", self.timeout_secs)?;
        positive("redshift.poll_ms", self.poll_ms)?;
        if let Some(arn) = &self.workgroup_arn {
            if !matches!(target, Target::Workgroup(_)) {
                return Err(ConfigError::new(
                    "redshift.workgroup_arn",
                    "workgroup_arn is for a serverless workgroup",
                ));
            }
            if !is_arn(arn, "redshift-serverless") || !arn.contains(":workgroup/") {
                return Err(ConfigError::new(
                    "redshift.workgroup_arn",
                    format!("expected arn:aws:redshift-serverless:<region>:<account>:workgroup/<id>, got {arn:?}"),
                ));
            }
        }
        Ok(RedshiftOptions {
            target,
            workgroup_arn: self.workgroup_arn.clone(),
            database: self.database.clone(),
            auth,
            warehouse: Warehouse {
                schema: self.schema.clone(),
                iam_role: self.iam_role.clone(),
            },
            timeout: std::time::Duration::from_secs(self.timeout_secs),
            poll: std::time::Duration::from_millis(self.poll_ms),
        })
    }
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

impl ConfigFile {
    /// Parse TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut file: Self = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| format!("{origin}:{}", line_of(text, s.start)))
                .unwrap_or_else(|| origin.to_owned());
            ConfigError::new("", e.message().trim_end().to_owned()).at(at)
        })?;
        file.source = Some((origin.to_owned(), text.to_owned()));
        Ok(file)
    }

    /// Read and parse a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let message = if e.kind() == std::io::ErrorKind::NotFound {
                let here = std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|_| ".".into());
                format!(
                    "no config file {} (in {here}): pass one with -c/--config PATH, or set CITRINE_CONFIG to its path or CITRINE_CONFIG_TOML to its text",
                    path.display()
                )
            } else {
                format!("cannot read the config file {}: {e}", path.display())
            };
            ConfigError::new("", message)
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Check every value and resolve paths against `base` (the config file's folder). Every
    /// problem found is reported at once, each with its key and, where the file sets it, its
    /// line.
    pub fn validate(&self, base: &Path) -> Result<Job, ConfigError> {
        self.validate_all(base).map_err(|problems| {
            let mut located: Vec<ConfigError> = problems
                .into_iter()
                .map(|p| match &self.source {
                    Some((origin, text)) if p.at.is_none() => match line_of_key(text, &p.key) {
                        Some(line) => p.at(format!("{origin}:{line}")),
                        None => p.at(origin.clone()),
                    },
                    _ => p,
                })
                .collect();
            // In the file's order; problems of keys the file does not set last.
            located.sort_by_key(|p| {
                p.at.as_deref()
                    .and_then(|a| a.rsplit(':').next()?.parse::<usize>().ok())
                    .unwrap_or(usize::MAX)
            });
            ConfigError::all(located)
        })
    }

    fn validate_all(&self, base: &Path) -> Result<Job, Vec<ConfigError>> {
        let mut problems = Problems::default();
        let lake = problems.note(self.validate_lake(base));
        let catalog = problems.note(self.validate_catalog());
        let aws = problems.note(self.validate_aws());
        let mask = MaskOptions {
            ipv4_prefix: self.mask.ipv4_prefix,
            ipv6_prefix: self.mask.ipv6_prefix,
        };
        problems.note(mask.validate());
        let threads = problems.note(self.validate_run());
        if self.tables.is_empty() {
            problems.push(ConfigError::new("table", "expected at least one [[table]]"));
        }
        let mut tables: Vec<TableSpec> = Vec::new();
        for (i, t) in self.tables.iter().enumerate() {
            if let Some(mut spec) = problems.note(validate_table(i, t, base, &tables)) {
                spec.table_format = t.table_format.unwrap_or(self.lake.table_format);
                tables.push(spec);
            }
        }
        let keys = problems.note(self.validate_privacy(&tables));
        let redshift = problems.note(self.redshift.as_ref().map(|r| r.validate()).transpose());
        for arn in &self.lambda.queue_arns {
            if !is_arn(arn, "sqs") {
                problems.push(ConfigError::new(
                    "lambda.queue_arns",
                    format!("expected SQS queue ARNs (arn:aws:sqs:<region>:<account>:<name>), got {arn:?}"),
                ));
            }
        }
        let (
            Some((root, write)),
            Some(catalog),
            Some(aws),
            Some(threads),
            Some((hash_key, hash_key_secret)),
            Some(redshift),
        ) = (lake, catalog, aws, threads, keys, redshift)
        else {
            return Err(problems.0);
        };
        if !problems.0.is_empty() {
            return Err(problems.0);
        }
        let run = &self.run;
        Ok(Job {
            lambda: self.lambda.clone(),
            hash_key,
            hash_key_secret,
            hash_key_var: self
                .privacy
                .hash_key_env
                .clone()
                .unwrap_or_else(|| "CITRINE_HASH_KEY".into()),
            redshift,
            root,
            catalog,
            database: self.catalog.database.clone(),
            aws,
            write,
            mask,
            threads,
            batch_size: run.batch_size,
            lock_lease: std::time::Duration::from_secs(run.lock_lease_secs),
            max_decompressed_bytes: run.max_decompressed_mb << 20,
            buffer_file_bytes: run.buffer_file_mb << 20,
            max_reject_fraction: run.max_reject_fraction,
            max_attempts: run.max_attempts,
            max_columns: run.max_columns,
            tables,
        })
    }

    /// `[lake]`: the root and how files are written.
    fn validate_lake(&self, base: &Path) -> Result<(Location, WriteOptions), ConfigError> {
        let lake = &self.lake;
        if lake.root.trim().is_empty() {
            return Err(ConfigError::new(
                "lake.root",
                "expected a folder or s3://bucket/prefix, got \"\"",
            ));
        }
        let root =
            Location::parse(&lake.root, base).map_err(|m| ConfigError::new("lake.root", m))?;
        let codec = lake.compression.get("lake.compression")?;
        positive("lake.target_file_mb", lake.target_file_mb)?;
        positive("lake.row_group_rows", lake.row_group_rows as u64)?;
        positive("lake.max_open_files", lake.max_open_files as u64)?;
        positive("lake.memory_budget_mb", lake.memory_budget_mb)?;
        Ok((
            root,
            WriteOptions {
                codec,
                target_file_bytes: lake.target_file_mb << 20,
                row_group_rows: lake.row_group_rows,
                max_open_files: lake.max_open_files,
                memory_budget_bytes: lake.memory_budget_mb << 20,
            },
        ))
    }

    /// `[catalog]`.
    fn validate_catalog(&self) -> Result<CatalogKind, ConfigError> {
        let catalog = match self.catalog.kind.get("catalog.kind")? {
            CatalogService::Local => CatalogKind::Local,
            CatalogService::Glue => CatalogKind::Glue {
                catalog_id: self.catalog.catalog_id.clone(),
            },
        };
        let glue_name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        if self.catalog.database.is_empty() || !self.catalog.database.chars().all(glue_name) {
            return Err(ConfigError::new(
                "catalog.database",
                format!(
                    "expected lower case letters, digits and `_`, got {:?}",
                    self.catalog.database
                ),
            ));
        }
        Ok(catalog)
    }

    /// `[aws]`.
    fn validate_aws(&self) -> Result<AwsOptions, ConfigError> {
        let aws = &self.aws;
        let part_mb = aws.s3_part_mb.unwrap_or(8);
        if part_mb < 5 {
            return Err(ConfigError::new(
                "aws.s3_part_mb",
                format!("expected at least 5 (S3's smallest multipart part), got {part_mb}"),
            ));
        }
        for (key, url) in [
            ("aws.s3_endpoint", &aws.s3_endpoint),
            ("aws.glue_endpoint", &aws.glue_endpoint),
        ] {
            if url
                .as_ref()
                .is_some_and(|u| !u.starts_with("http://") && !u.starts_with("https://"))
            {
                return Err(ConfigError::new(
                    key,
                    format!("expected an http:// or https:// URL, got {url:?}"),
                ));
            }
        }
        for (point, bucket) in &aws.access_points {
            let is_point = crate::aws::access_point::AccessPoint::parse(point).is_some()
                || point.ends_with("-s3alias");
            if !is_point || bucket.is_empty() || bucket.contains(['/', ':']) {
                return Err(ConfigError::new(
                    "aws.access_points",
                    format!("expected an access point ARN or alias = its bucket's name, got {point:?} = {bucket:?}"),
                ));
            }
        }
        if let Some(arn) = &aws.kms_key_arn {
            if !is_arn(arn, "kms") || !arn.contains(":key/") {
                return Err(ConfigError::new(
                    "aws.kms_key_arn",
                    format!("expected a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), got {arn:?}"),
                ));
            }
        }
        Ok(aws.clone())
    }

    /// `[run]`: the worker threads it resolves to.
    fn validate_run(&self) -> Result<usize, ConfigError> {
        let run = &self.run;
        positive("run.batch_size", run.batch_size as u64)?;
        positive("run.lock_lease_secs", run.lock_lease_secs)?;
        positive("run.max_decompressed_mb", run.max_decompressed_mb)?;
        if run.max_attempts == 0 {
            return Err(ConfigError::new(
                "run.max_attempts",
                "expected at least 1 attempt",
            ));
        }
        if !(0.0..=1.0).contains(&run.max_reject_fraction) {
            return Err(ConfigError::new(
                "run.max_reject_fraction",
                format!(
                    "expected a fraction from 0 to 1, got {}",
                    run.max_reject_fraction
                ),
            ));
        }
        let fixed = crate::schema::lineage_fields().len() + 1;
        if run.max_columns <= fixed || run.max_columns > MAX_REDSHIFT_COLUMNS {
            return Err(ConfigError::new(
                "run.max_columns",
                format!(
                    "expected more than {fixed} and at most {MAX_REDSHIFT_COLUMNS} (Redshift's limit), got {}",
                    run.max_columns
                ),
            ));
        }
        let threads = match run.threads {
            Some(0) => return Err(ConfigError::new("run.threads", "expected at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        Ok(threads)
    }

    /// `[privacy]`, given the tables: the hash key, or the secret holding it.
    fn validate_privacy(
        &self,
        tables: &[TableSpec],
    ) -> Result<(Option<Arc<HashKey>>, Option<String>), ConfigError> {
        let hashes = tables.iter().any(TableSpec::hashes);
        let hash_key_secret = match &self.privacy.hash_key_secret_arn {
            Some(arn) if !arn.starts_with("arn:") || !arn.contains(":secretsmanager:") => {
                return Err(ConfigError::new(
                    "privacy.hash_key_secret_arn",
                    format!("expected a Secrets Manager secret ARN, got {arn:?}"),
                ))
            }
            Some(_) if self.privacy.hash_key_env.is_some() => {
                return Err(ConfigError::new(
                    "privacy.hash_key_secret_arn",
                    "give the key one way: hash_key_env or hash_key_secret_arn",
                ))
            }
            Some(arn) if hashes => Some(arn.clone()),
            _ => None,
        };
        let hash_key = if hashes && hash_key_secret.is_none() {
            let var = self
                .privacy
                .hash_key_env
                .clone()
                .unwrap_or_else(|| "CITRINE_HASH_KEY".into());
            // Absent, the key is asked for only by the commands that hash
            // (`privacy::resolve_hash_key`): the others run without the secret.
            match std::env::var(&var) {
                Err(_) => None,
                Ok(text) => Some(Arc::new(HashKey::new(text.as_bytes()).ok_or_else(
                    || {
                        ConfigError::new(
                            "privacy.hash_key_env",
                            format!(
                                "the key in {var} is shorter than {} bytes",
                                HashKey::MIN_BYTES
                            ),
                        )
                    },
                )?)),
            }
        } else {
            None
        };
        Ok((hash_key, hash_key_secret))
    }
}

/// `[[table]]` number `i`, given the tables before it.
fn validate_table(
    i: usize,
    t: &TableConfig,
    base: &Path,
    tables: &[TableSpec],
) -> Result<TableSpec, ConfigError> {
    let key = |k: &str| format!("table[{i}].{k}");
    let valid_name = !t.name.is_empty()
        && t.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !t.name.starts_with('_');
    if !valid_name {
        return Err(ConfigError::new(
            key("name"),
            format!(
                "expected lower case letters, digits and `_`, got {:?}",
                t.name
            ),
        ));
    }
    if tables.iter().any(|o| o.name == t.name) {
        return Err(ConfigError::new(
            key("name"),
            format!("table {:?} is defined twice", t.name),
        ));
    }
    let format = t.format.get(key("format"))?;
    if t.inputs.is_empty() {
        return Err(ConfigError::new(
            key("inputs"),
            "expected at least one pattern",
        ));
    }
    let inputs = t
        .inputs
        .iter()
        .map(|p| InputPattern::parse(p, base).map_err(|m| ConfigError::new(key("inputs"), m)))
        .collect::<Result<Vec<_>, _>>()?;
    let customer =
        customer_source(t, &inputs, format).map_err(|(k, m)| ConfigError::new(key(k), m))?;
    let mut mask_columns: Vec<String> = match format {
        Format::CloudFront => crate::parse::cloudfront::MASKED_COLUMNS
            .map(String::from)
            .to_vec(),
        Format::Audit | Format::Jsonl | Format::CloudWatch => Vec::new(),
    };
    let customer_field = match (&t.customer_field, format) {
        (None, _) => None,
        (Some(_), Format::CloudFront | Format::Audit) => {
            return Err(ConfigError::new(
                key("customer_field"),
                "is for the jsonl and cloudwatch formats (an audit CSV names its customer in a `customer` column)",
            ))
        }
        (Some(f), _) => {
            let name = crate::schema::column_name(f);
            if name.is_empty() || (crate::schema::is_lineage(&name) && name != "customer") {
                return Err(ConfigError::new(
                    key("customer_field"),
                    format!("{f:?} is not a field name"),
                ));
            }
            Some(name)
        }
    };
    let mut column_rules = Vec::new();
    for (c, rule) in &t.columns {
        let at = key(&format!("columns.{c}"));
        let name = crate::schema::column_name(c);
        if crate::schema::is_lineage(&name) || name.is_empty() {
            return Err(ConfigError::new(at, format!("{c:?} is not a data column")));
        }
        if format == Format::CloudFront
            && !crate::parse::cloudfront::parsed_schema()
                .fields()
                .iter()
                .any(|f| f.name() == &name && f.data_type() == &arrow::datatypes::DataType::Utf8)
        {
            return Err(ConfigError::new(
                at,
                format!("{c:?} is not a text column of the cloudfront layout"),
            ));
        }
        let r = match rule.mask.get(format!("{at}.mask"))? {
            ColumnMask::Ip => {
                if !t.mask_ips.contains(c) {
                    mask_columns.push(name);
                }
                continue;
            }
            ColumnMask::Rule(r) => r,
        };
        // A rule replaces IP masking on a column (CloudFront's c_ip, say).
        mask_columns.retain(|m| m != &name);
        column_rules.push((name, r));
    }
    for c in &t.mask_ips {
        let name = crate::schema::column_name(c);
        if crate::schema::is_lineage(&name) || name.is_empty() {
            return Err(ConfigError::new(
                key("mask_ips"),
                format!("{c:?} is not a data column"),
            ));
        }
        if column_rules.iter().any(|(r, _)| r == &name) {
            return Err(ConfigError::new(
                key("mask_ips"),
                format!("{c:?} also has a rule in [table.columns]: give it one"),
            ));
        }
        if !mask_columns.contains(&name) {
            mask_columns.push(name);
        }
    }
    let after_commit = t
        .after_commit
        .as_ref()
        .map(|c| c.get(key("after_commit")))
        .transpose()?;
    let after_commit = match (after_commit, &t.archive_to) {
        (None | Some(AfterCommitName::Keep), None) => AfterCommit::Keep,
        (Some(AfterCommitName::Delete), None) => AfterCommit::Delete,
        (Some(AfterCommitName::Archive), Some(to)) => AfterCommit::Archive(
            Location::parse(to, base).map_err(|m| ConfigError::new(key("archive_to"), m))?,
        ),
        (Some(AfterCommitName::Archive), None) => {
            return Err(ConfigError::new(
                key("archive_to"),
                "after_commit = \"archive\" needs archive_to (s3://bucket/prefix/ or a folder)",
            ))
        }
        (_, Some(_)) => {
            return Err(ConfigError::new(
                key("archive_to"),
                "archive_to is for after_commit = \"archive\" only",
            ))
        }
    };
    Ok(TableSpec {
        name: t.name.clone(),
        format,
        inputs,
        mask_columns,
        column_rules,
        after_commit,
        table_format: t.table_format.unwrap_or_default(),
        customer,
        customer_field,
    })
}

/// Where table `t`'s customer comes from, checked against its patterns: CloudFront rows name
/// no customer, so each pattern needs `{customer}`, or `{distribution}` with the table's
/// `distributions`, or the table a fixed `customer`; and never two of them.
fn customer_source(
    t: &TableConfig,
    inputs: &[InputPattern],
    format: Format,
) -> Result<CustomerSource, (&'static str, String)> {
    use crate::read::pattern::{Capture, CUSTOMER_PLACEHOLDER, DISTRIBUTION_PLACEHOLDER};
    let valid = |c: &str| !c.is_empty() && !c.chars().any(char::is_control);
    for p in inputs {
        if p.captures(Capture::Customer) && (t.customer.is_some() || !t.distributions.is_empty()) {
            return Err(("inputs", format!(
                "{:?}: {CUSTOMER_PLACEHOLDER} and a table's customer or distributions are two answers to one question: keep one",
                p.text()
            )));
        }
        let names_distribution = p.captures(Capture::Distribution);
        if names_distribution == t.distributions.is_empty() {
            return Err((
                "inputs",
                if t.distributions.is_empty() {
                    format!("{:?}: {DISTRIBUTION_PLACEHOLDER} needs [table.distributions] (distribution id = customer)", p.text())
                } else {
                    format!("{:?}: with [table.distributions], every pattern names {DISTRIBUTION_PLACEHOLDER}", p.text())
                },
            ));
        }
    }
    if let Some(c) = &t.customer {
        if !t.distributions.is_empty() {
            return Err((
                "customer",
                "a fixed customer and distributions: keep one".into(),
            ));
        }
        if !valid(c) {
            return Err((
                "customer",
                format!("expected a non-empty name without control characters, got {c:?}"),
            ));
        }
        return Ok(CustomerSource::Fixed(c.clone()));
    }
    if !t.distributions.is_empty() {
        if let Some((d, c)) = t.distributions.iter().find(|(_, c)| !valid(c)) {
            return Err((
                "distributions",
                format!("{d:?}: expected a customer name without control characters, got {c:?}"),
            ));
        }
        return Ok(CustomerSource::Distributions(t.distributions.clone()));
    }
    // CloudFront rows carry no customer: without one every row would be rejected and the
    // inputs consumed for nothing.
    if let Some(p) = inputs
        .iter()
        .find(|p| format == Format::CloudFront && !p.captures(Capture::Customer))
    {
        return Err(("inputs", format!(
            "{:?}: a cloudfront pattern needs a {CUSTOMER_PLACEHOLDER} segment, or {DISTRIBUTION_PLACEHOLDER} with [table.distributions], or the table a fixed customer (CloudFront rows do not name their customer)",
            p.text()
        )));
    }
    Ok(CustomerSource::Path)
}

/// True when `text` is an ARN of `service` (`arn:<partition>:<service>:…`).
fn is_arn(text: &str, service: &str) -> bool {
    let mut parts = text.splitn(6, ':');
    parts.next() == Some("arn")
        && parts.next().is_some_and(|p| p.starts_with("aws"))
        && parts.next() == Some(service)
        && parts.nth(1).is_some()
        && parts.next().is_some_and(|r| !r.is_empty())
}

/// The most columns a Redshift table may have.
pub const MAX_REDSHIFT_COLUMNS: usize = 1600;

fn positive(key: &str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        return Err(ConfigError::new(key, "expected a positive number, got 0"));
    }
    Ok(())
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Problems found while validating: the first of each section (and of each table).
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn note<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        result.map_err(|e| self.0.push(e)).ok()
    }

    fn push(&mut self, problem: ConfigError) {
        self.0.push(problem);
    }
}

/// The line of `text` that sets `key` (`lake.compression`, `table[1].format`,
/// `table[0].columns.user.mask`), else the line of the nearest section of it that the file
/// has (`[redshift]` for a missing `redshift.workgroup`).
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let mut section = String::new();
    let mut tables = 0;
    let mut found: Vec<(String, usize)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            section = format!("{}[{tables}]", name.trim());
            tables += 1;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            let name = name.trim();
            section = match name.strip_prefix("table.") {
                // A sub-table of the last [[table]].
                Some(rest) if tables > 0 => format!("table[{}].{rest}", tables - 1),
                _ => name.to_owned(),
            };
        } else if let Some((k, _)) = line.split_once('=') {
            if line.starts_with('#') {
                continue;
            }
            let k = k.trim().trim_matches('"');
            let full = if section.is_empty() {
                k.to_owned()
            } else {
                format!("{section}.{k}")
            };
            found.push((full, n + 1));
            continue;
        } else {
            continue;
        }
        found.push((section.clone(), n + 1));
    }
    let mut key = key;
    loop {
        if let Some((_, line)) = found.iter().find(|(k, _)| k == key) {
            return Some(*line);
        }
        key = &key[..key.rfind(['.', '['])?];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[lake]
root = "lake"
compression = "snappy"
[catalog]
kind = "local"
[[table]]
name = "cloudfront_logs"
format = "cloudfront"
inputs = ["logs/cloudfront/{customer}/"]
[[table]]
name = "wau_audit_logs"
format = "audit"
inputs = ["logs/audit/{customer}/*.csv"]
mask_ips = ["source_ip"]
"#;

    fn job(text: &str) -> Result<Job, ConfigError> {
        ConfigFile::parse(text, "citrine.toml")?.validate(Path::new("/base"))
    }

    #[test]
    fn column_rules_are_parsed_and_replace_ip_masking() {
        let text = EXAMPLE.replace(
            "inputs = [\"logs/cloudfront/{customer}/\"]",
            "inputs = [\"logs/cloudfront/{customer}/\"]\n[table.columns.cs_cookie]\nmask = \"redact\"\n[table.columns.c_ip]\nmask = \"redact\"",
        ) + "[table.columns.user]\nmask = \"email_domain\"\n[table.columns.device_ip]\nmask = \"ip\"\n";
        let job = job(&text).unwrap();
        assert_eq!(job.tables[0].mask_columns, ["x_forwarded_for"]);
        assert_eq!(
            job.tables[0].column_rules,
            [
                ("c_ip".into(), Rule::Redact),
                ("cs_cookie".into(), Rule::Redact)
            ]
        );
        assert_eq!(job.tables[1].mask_columns, ["device_ip", "source_ip"]);
        assert_eq!(
            job.tables[1].column_rules,
            [("user".into(), Rule::EmailDomain)]
        );
        // No hash rule: no key is needed or read.
        assert!(job.hash_key.is_none());
    }

    #[test]
    fn a_tables_customer_comes_from_one_place() {
        let cf = |inputs: &str, extra: &str| {
            job(&format!(
                "[lake]\nroot = \"lake\"\n[[table]]\nname = \"cf\"\nformat = \"cloudfront\"\ninputs = [{inputs}]\n{extra}"
            ))
        };
        let source =
            |inputs: &str, extra: &str| cf(inputs, extra).unwrap().tables[0].customer.clone();
        assert_eq!(source("\"cf/{customer}/\"", ""), CustomerSource::Path);
        assert_eq!(
            source("\"cf/*.gz\"", "customer = \"acme\""),
            CustomerSource::Fixed("acme".into())
        );
        assert_eq!(
            source(
                "\"cf/{distribution}.*\", \"v2/DistributionId={distribution}/**\"",
                "[table.distributions]\nE1 = \"acme\""
            ),
            CustomerSource::Distributions([("E1".to_owned(), "acme".to_owned())].into())
        );
        for (inputs, extra, says) in [
            (
                "\"cf/*.gz\"",
                "",
                "needs a {customer} segment, or {distribution}",
            ),
            (
                "\"cf/{distribution}.*\"",
                "",
                "{distribution} needs [table.distributions]",
            ),
            (
                "\"cf/{customer}/\"",
                "customer = \"acme\"",
                "two answers to one question",
            ),
            (
                "\"cf/{distribution}.*\", \"cf2/*\"",
                "[table.distributions]\nE1 = \"acme\"",
                "every pattern names {distribution}",
            ),
            ("\"cf/*\"", "customer = \"\"", "expected a non-empty name"),
            (
                "\"cf/{distribution}.*\"",
                "[table.distributions]\nE1 = \"a\\u0007b\"",
                "without control characters",
            ),
        ] {
            let err = cf(inputs, extra).unwrap_err().to_string();
            assert!(err.contains(says), "{inputs} {extra}: {err}");
        }
    }

    #[test]
    fn the_design_example_validates() {
        let job = job(EXAMPLE).unwrap();
        assert_eq!(job.root, Location::Local("/base/lake".into()));
        assert_eq!(job.catalog, CatalogKind::Local);
        assert_eq!(job.tables.len(), 2);
        assert_eq!(job.tables[0].mask_columns, ["c_ip", "x_forwarded_for"]);
        assert_eq!(job.tables[1].mask_columns, ["source_ip"]);
        assert_eq!(job.write.codec, Codec::Snappy);
        assert_eq!(job.write.target_file_bytes, 256 << 20);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                EXAMPLE.replace("compression = \"snappy\"", "compression = \"lz4\""),
                "lake.compression",
            ),
            (
                EXAMPLE.replace("format = \"audit\"", "format = \"csv\""),
                "table[1].format",
            ),
            (
                EXAMPLE.replace("name = \"wau_audit_logs\"", "name = \"Bad Name\""),
                "table[1].name",
            ),
            (
                EXAMPLE.replace("kind = \"local\"", "kind = \"hive\""),
                "catalog.kind",
            ),
            (
                EXAMPLE.replace("root = \"lake\"", "root = \"gs://b/x\""),
                "lake.root",
            ),
            (
                format!("{EXAMPLE}\n[aws]\ns3_part_mb = 1\n"),
                "aws.s3_part_mb",
            ),
            (
                format!("{EXAMPLE}\n[aws]\ns3_endpoint = \"127.0.0.1:9\"\n"),
                "aws.s3_endpoint",
            ),
            (
                format!("{EXAMPLE}\n[mask]\nipv4_prefix = 32\n"),
                "mask.ipv4_prefix",
            ),
            (
                EXAMPLE.replace("root = \"lake\"", "root = \"lake\"\nbogus = 1"),
                "citrine.toml:4",
            ),
            (
                EXAMPLE.replace("logs/audit/{customer}/*.csv", "logs/{customer}/{customer}/"),
                "table[1].inputs",
            ),
            (
                // CloudFront rows cannot name their customer: a pattern must.
                EXAMPLE.replace("logs/cloudfront/{customer}/", "logs/cloudfront/**/*.gz"),
                "table[0].inputs",
            ),
            (
                format!(
                    "{EXAMPLE}
[run]
max_reject_fraction = 1.5
"
                ),
                "run.max_reject_fraction",
            ),
            (
                format!(
                    "{EXAMPLE}
[run]
max_columns = 2000
"
                ),
                "run.max_columns",
            ),
            (
                format!("{EXAMPLE}[table.columns.user]\nmask = \"encrypt\"\n"),
                "table[1].columns.user.mask",
            ),
            (
                // CloudFront's columns are fixed: a rule names one of its text columns.
                EXAMPLE.replace(
                    "inputs = [\"logs/cloudfront/{customer}/\"]",
                    "inputs = [\"logs/cloudfront/{customer}/\"]\n[table.columns.sc_bytes]\nmask = \"redact\"",
                ),
                "table[0].columns.sc_bytes",
            ),
            (
                format!("{EXAMPLE}[table.columns.source_ip]\nmask = \"hash\"\n"),
                "table[1].mask_ips",
            ),
            (
                format!("[privacy]\nhash_key_secret_arn = \"my-key\"\n{EXAMPLE}"),
                "privacy.hash_key_secret_arn",
            ),
        ];
        for (text, key) in cases {
            let err = job(&text).unwrap_err();
            // A TOML error has no key, only its line.
            let found = match err.key.as_str() {
                "" => err.at.clone().unwrap_or_default(),
                k => k.to_owned(),
            };
            assert_eq!(found, key, "{err}");
            assert!(err.also.is_empty(), "one problem: {err}");
        }
        let err =
            job(&EXAMPLE.replace("root = \"lake\"", "root = \"lake\"\nbogus = 1")).unwrap_err();
        assert!(err.message.contains("unknown field `bogus`"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_line() {
        let text = EXAMPLE
            .replace("compression = \"snappy\"", "compression = \"lz4\"")
            .replace("format = \"audit\"", "format = \"csv\"");
        let text = format!("{text}[run]\nthreads = 0\n[redshift]\ndatabase = \"dev\"\n");
        let err = job(&text).unwrap_err();
        insta::assert_snapshot!(err.to_string());
    }

    #[test]
    fn keys_are_found_on_their_lines() {
        let text = "[lake]\nroot = \"x\"\n\n[[table]]\nname = \"a\"\n[[table]]\nname = \"b\"\n[table.columns.user]\nmask = \"hash\"\n[redshift]\n";
        assert_eq!(line_of_key(text, "lake.root"), Some(2));
        assert_eq!(line_of_key(text, "table[1].name"), Some(7));
        assert_eq!(line_of_key(text, "table[1].columns.user.mask"), Some(9));
        assert_eq!(line_of_key(text, "table[0].inputs"), Some(4));
        assert_eq!(line_of_key(text, "redshift.workgroup"), Some(10));
        assert_eq!(line_of_key(text, "run.threads"), None);
    }

    #[test]
    fn an_aws_lake_with_glue_validates() {
        let text = EXAMPLE
            .replace("root = \"lake\"", "root = \"s3://central/wau\"")
            .replace("kind = \"local\"", "kind = \"glue\"\ndatabase = \"logs\"")
            .replace(
                "logs/audit/{customer}/*.csv",
                "s3://acme-in/audit/{customer}/*.csv",
            );
        let text = format!(
            "{text}\n[aws]\nregion = \"eu-west-1\"\ns3_part_mb = 16\ns3_sign_payload = true\n"
        );
        let j = job(&text).unwrap();
        assert_eq!(j.root.to_string(), "s3://central/wau");
        assert_eq!(j.catalog, CatalogKind::Glue { catalog_id: None });
        assert_eq!(j.database, "logs");
        assert_eq!(j.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(j.aws.s3_part_bytes(), 16 << 20);
        assert_eq!(j.aws.s3_sign_payload, Some(true));
        assert_eq!(
            j.tables[1].inputs[0].root().to_string(),
            "s3://acme-in/audit"
        );
        let err = job(&text.replace("database = \"logs\"", "database = \"Logs-DB\"")).unwrap_err();
        assert_eq!(err.key, "catalog.database");
    }

    #[test]
    fn redshift_targets_and_credentials() {
        let with = |section: &str| {
            job(&format!(
                "{EXAMPLE}\n[redshift]\ndatabase = \"dev\"\n{section}"
            ))
        };
        let r = with(
            "workgroup = \"wg\"\nsecret_arn = \"arn:aws:secretsmanager:eu-west-1:1:secret:x\"\n",
        )
        .unwrap()
        .redshift
        .unwrap();
        assert_eq!(r.target, Target::Workgroup("wg".into()));
        assert!(matches!(r.auth, Auth::Secret(_)));
        assert_eq!(r.warehouse, Warehouse::default());
        let r = with("cluster_id = \"c1\"\ndb_user = \"loader\"\n")
            .unwrap()
            .redshift
            .unwrap();
        assert_eq!(r.auth, Auth::DbUser("loader".into()));
        for (section, key) in [
            (
                "workgroup = \"a\"\ncluster_id = \"b\"\n",
                "redshift.workgroup",
            ),
            ("workgroup = \"a\"\ndb_user = \"u\"\n", "redshift.db_user"),
            ("cluster_id = \"b\"\n", "redshift.secret_arn"),
            (
                "workgroup = \"a\"\nsecret_arn = \"hunter2\"\n",
                "redshift.secret_arn",
            ),
        ] {
            assert_eq!(with(section).unwrap_err().key, key, "{section}");
        }
    }
}
