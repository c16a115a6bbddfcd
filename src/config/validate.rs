//! [`ConfigFile::validate`]: every section and table checked on its own, every problem
//! reported at once with its key and line, paths resolved against the config file's folder.

use std::path::Path;
use std::sync::Arc;

use super::{
    AfterCommit, AfterCommitName, CatalogKind, CatalogService, ColumnMask, ConfigFile,
    CustomerSource, Job, RedshiftConfig, TableConfig, TableSpec, WriteOptions,
};
use crate::aws::AwsOptions;
use crate::error::ConfigError;
use crate::parse::Format;
use crate::read::pattern::InputPattern;
use crate::redshift::sql::Warehouse;
use crate::redshift::{Auth, RedshiftOptions, Target};
use crate::store::Location;
use crate::transform::rules::HashKey;
use crate::transform::MaskOptions;

impl ConfigFile {
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
pub(super) fn line_of_key(text: &str, key: &str) -> Option<usize> {
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
