//! Configuration in two steps: serde structs that mirror `citrine.toml` (here: unknown keys are
//! rejected, every field has a documented default, a closed set of names is a [`Choice`]),
//! then [`ConfigFile::validate`] (`validate`) into an immutable [`Job`] (`job`) that the
//! pipeline runs. Every problem is reported before any work starts, naming the key and what was
//! expected.

mod choice;
mod job;
mod validate;

use std::path::Path;

use serde::Deserialize;

pub use self::choice::{Choice, Named};
pub use self::job::{
    AfterCommit, AfterCommitName, CatalogKind, CatalogService, Codec, ColumnMask, CustomerSource,
    Job, TableSpec, WriteOptions,
};
pub use self::validate::MAX_REDSHIFT_COLUMNS;
use crate::aws::AwsOptions;
use crate::error::ConfigError;
use crate::parse::Format;

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
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::validate::line_of_key;
    use super::*;
    use crate::redshift::sql::Warehouse;
    use crate::redshift::{Auth, Target};
    use crate::store::Location;
    use crate::transform::rules::Rule;

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
