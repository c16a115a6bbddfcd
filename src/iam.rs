//! `citrine iam-policy`: least-privilege IAM policies for the configured job.
//!
//! - `--for batch` (the default): what a Batch job role (or any host running the CLI) needs:
//!   list and read the input prefixes, read and write below the lake root (multipart aborts
//!   included), the Glue calls on the configured database and tables only, Redshift's Data API
//!   on the configured workgroup or cluster, and the secrets and KMS key the config names.
//! - `--for lambda`: the same, plus the SQS trigger (`lambda.queue_arns`) and the function's
//!   CloudWatch Logs group.
//! - `--for redshift-copy`: the role Redshift's COPY assumes: read the lake's data files, run
//!   markers and derived manifests, and decrypt with the KMS key.
//! - `--for spectrum`: the role Redshift Spectrum assumes for `redshift ddl --spectrum`'s
//!   external schema: the Glue reads of the database and its tables, list and read the
//!   lake's data, decrypt.
//!
//! Every resource is an ARN in the format AWS documents for its service (checked by the tests),
//! in the partition of the configured region (`aws-cn` for `cn-*`, `aws-us-gov` for
//! `us-gov-*`, ...). A Secrets Manager ARN given without the 6-character suffix AWS appends to
//! a secret's name is granted with `-??????` in its place, as AWS advises for partial ARNs.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::aws::access_point::AccessPoint;
use crate::config::AfterCommit;
use crate::config::{CatalogKind, Job};
use crate::error::ConfigError;
use crate::redshift::{Auth, RedshiftOptions, Target};
use crate::store::Location;

/// Bucket → key prefixes (empty prefix = the whole bucket).
type Prefixes = BTreeMap<String, Vec<String>>;

fn add(map: &mut Prefixes, location: &Location) {
    if let Location::S3 { bucket, prefix } = location {
        let list = map.entry(bucket.clone()).or_default();
        if !list.contains(prefix) {
            list.push(prefix.clone());
        }
    }
}

/// The AWS partition of `region`: `aws-cn` for China, `aws-us-gov` for GovCloud, the ISO
/// partitions for theirs, else `aws` (also when the region is not configured).
pub fn partition(region: Option<&str>) -> &'static str {
    let region = region.unwrap_or("");
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("eu-isoe-") {
        "aws-iso-e"
    } else {
        "aws"
    }
}

/// The resources of a Secrets Manager ARN: as given when it ends in the 6-character suffix
/// AWS appends to a secret's name; with `-??????` in its place too when it may be a partial
/// ARN (the name alone), which IAM would otherwise not match.
fn secret_resources(arn: &str) -> Vec<String> {
    let name = arn.rsplit(':').next().unwrap_or_default();
    let suffixed = name
        .rsplit_once('-')
        .is_some_and(|(_, s)| s.len() == 6 && s.bytes().all(|b| b.is_ascii_alphanumeric()));
    if suffixed {
        // A complete ARN, or a name that merely ends like one: both are granted.
        vec![arn.to_owned(), format!("{arn}-??????")]
    } else {
        vec![format!("{arn}-??????")]
    }
}

/// The ARN a policy names for `bucket`: the bucket's, or an access point's own (a location
/// may name an access point ARN as its bucket).
fn bucket_arn(partition: &str, bucket: &str) -> String {
    match AccessPoint::parse(bucket) {
        Some(ap) => ap.arn(),
        None => format!("arn:{partition}:s3:::{bucket}"),
    }
}

/// The ARN of the objects below `prefix` of `bucket` (an access point's are below `/object`).
fn objects(partition: &str, bucket: &str, prefix: &str) -> String {
    let base = match AccessPoint::parse(bucket) {
        Some(ap) => format!("{}/object", ap.arn()),
        None => bucket_arn(partition, bucket),
    };
    if prefix.is_empty() {
        format!("{base}/*")
    } else {
        format!("{base}/{prefix}/*")
    }
}

/// `ListBucket` on `bucket`, limited to `prefixes` (no condition for a whole bucket).
fn list_statement(partition: &str, sid: String, bucket: &str, prefixes: &[String]) -> Value {
    let mut statement = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": [bucket_arn(partition, bucket)],
    });
    if prefixes.iter().all(|p| !p.is_empty()) {
        let like: Vec<String> = prefixes
            .iter()
            .flat_map(|p| [p.clone(), format!("{p}/*")])
            .collect();
        statement["Condition"] = json!({ "StringLike": { "s3:prefix": like } });
    }
    statement
}

fn sid(prefix: &str, bucket: &str) -> String {
    let clean: String = bucket
        .split(['-', '.', '_', ':', '/'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("{prefix}{clean}")
}

/// Whose policy [`policy_for`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A Batch job role, or any host running the CLI.
    Batch,
    /// The Lambda's execution role.
    Lambda,
    /// The role Redshift's COPY assumes to read the lake.
    RedshiftCopy,
    /// The role Redshift Spectrum assumes to read the lake through the Glue catalog.
    Spectrum,
}

/// A policy document, and what its reader should know about it (printed on standard error).
#[derive(Debug, Clone)]
pub struct Policy {
    /// The IAM policy document.
    pub document: Value,
    /// Notes: where a statement is broader than it could be, and why.
    pub notes: Vec<String>,
}

/// The policy document for `job`'s `role`.
pub fn policy_for(job: &Job, role: Role) -> Result<Policy, ConfigError> {
    let mut notes = Vec::new();
    let statements = match role {
        Role::Batch => job_statements(job, &mut notes),
        Role::Lambda => {
            if job.lambda.queue_arns.is_empty() {
                return Err(ConfigError::new(
                    "lambda.queue_arns",
                    "iam-policy --for lambda needs the ARNs of the SQS queues that trigger the function",
                ));
            }
            let mut statements = job_statements(job, &mut notes);
            statements.extend(lambda_statements(job));
            statements
        }
        Role::RedshiftCopy => copy_statements(job)?,
        Role::Spectrum => spectrum_statements(job)?,
    };
    Ok(Policy {
        document: json!({ "Version": "2012-10-17", "Statement": statements }),
        notes,
    })
}

/// The policy document of a Batch job role for `job`.
pub fn policy(job: &Job) -> Value {
    let mut notes = Vec::new();
    json!({ "Version": "2012-10-17", "Statement": job_statements(job, &mut notes) })
}

/// The account the catalog names, else any.
fn account(job: &Job) -> &str {
    match &job.catalog {
        CatalogKind::Glue {
            catalog_id: Some(id),
        } => id,
        _ => "*",
    }
}

/// The partition of `job`'s region.
fn partition_of(job: &Job) -> &'static str {
    partition(job.aws.region.as_deref())
}

/// The SQS trigger (and sending a locked table's messages again), and the function's log
/// group.
fn lambda_statements(job: &Job) -> Vec<Value> {
    let region = job.aws.region.as_deref().unwrap_or("*");
    let group = format!(
        "arn:{}:logs:{region}:{}:log-group:/aws/lambda/{}",
        partition_of(job),
        account(job),
        job.lambda.function_name
    );
    vec![
        json!({
            "Sid": "LambdaTriggerQueues",
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            "Resource": job.lambda.queue_arns,
        }),
        json!({
            "Sid": "LambdaSendsLockedBatchesAgain",
            "Effect": "Allow",
            "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
            "Resource": job.lambda.queue_arns,
        }),
        json!({
            "Sid": "LambdaLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [group.clone(), format!("{group}:log-stream:*")],
        }),
    ]
}

/// What COPY reads: data files, markers and derived manifests below the lake root.
fn copy_statements(job: &Job) -> Result<Vec<Value>, ConfigError> {
    let Location::S3 { bucket, prefix } = &job.root else {
        return Err(ConfigError::new(
            "lake.root",
            "iam-policy --for redshift-copy is for an s3:// lake (Redshift reads S3 only)",
        ));
    };
    let partition = partition_of(job);
    let under = |folder: &str| {
        let below = if prefix.is_empty() {
            folder.to_owned()
        } else {
            format!("{prefix}/{folder}")
        };
        objects(partition, bucket, &below)
    };
    let mut out = vec![json!({
        "Sid": sid("CopyReadsLake", bucket),
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": [under("data"), under("complete"), under("_citrine/manifests")],
    })];
    if let Some(key) = &job.aws.kms_key_arn {
        out.push(json!({
            "Sid": "CopyDecrypts",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [key],
        }));
    }
    Ok(out)
}

/// What Spectrum reads: the Glue database and tables, and the lake's data (listed and read).
fn spectrum_statements(job: &Job) -> Result<Vec<Value>, ConfigError> {
    let (Location::S3 { bucket, prefix }, CatalogKind::Glue { .. }) = (&job.root, &job.catalog)
    else {
        return Err(ConfigError::new(
            "catalog.kind",
            "iam-policy --for spectrum is for an s3:// lake registered in the Glue catalog (catalog.kind = \"glue\")",
        ));
    };
    let partition = partition_of(job);
    let data = if prefix.is_empty() {
        "data".to_owned()
    } else {
        format!("{prefix}/data")
    };
    let mut out = vec![
        json!({
            "Sid": "SpectrumReadsCatalog",
            "Effect": "Allow",
            "Action": [
                "glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables",
                "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition"
            ],
            "Resource": glue_resources(job),
        }),
        list_statement(
            partition,
            sid("SpectrumListsLake", bucket),
            bucket,
            std::slice::from_ref(&data),
        ),
        json!({
            "Sid": sid("SpectrumReadsLake", bucket),
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [objects(partition, bucket, &data)],
        }),
    ];
    if let Some(key) = &job.aws.kms_key_arn {
        out.push(json!({
            "Sid": "SpectrumDecrypts",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [key],
        }));
    }
    Ok(out)
}

/// The Glue catalog, the job's database and its tables.
fn glue_resources(job: &Job) -> Vec<String> {
    let region = job.aws.region.as_deref().unwrap_or("*");
    let account = match &job.catalog {
        CatalogKind::Glue {
            catalog_id: Some(id),
        } => id.as_str(),
        _ => "*",
    };
    let partition = partition_of(job);
    let arn = |rest: String| format!("arn:{partition}:glue:{region}:{account}:{rest}");
    let db = &job.database;
    let mut resources = vec![arn("catalog".into()), arn(format!("database/{db}"))];
    resources.extend(
        job.tables
            .iter()
            .map(|t| arn(format!("table/{db}/{}", t.name))),
    );
    resources
}

/// The statements of the job itself (see the module docs).
fn job_statements(job: &Job, notes: &mut Vec<String>) -> Vec<Value> {
    let partition = partition_of(job);
    let mut statements = Vec::new();
    let mut lake = Prefixes::new();
    add(&mut lake, &job.root);
    for (bucket, prefixes) in &lake {
        statements.push(list_statement(
            partition,
            sid("ListLake", bucket),
            bucket,
            prefixes,
        ));
        statements.push(json!({
            "Sid": sid("WriteLake", bucket),
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": prefixes.iter().map(|p| objects(partition, bucket, p)).collect::<Vec<_>>(),
        }));
    }
    let mut inputs = Prefixes::new();
    for table in &job.tables {
        for pattern in &table.inputs {
            add(&mut inputs, pattern.root());
        }
    }
    for (bucket, prefixes) in &inputs {
        statements.push(list_statement(
            partition,
            sid("ListInputs", bucket),
            bucket,
            prefixes,
        ));
        statements.push(json!({
            "Sid": sid("ReadInputs", bucket),
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": prefixes.iter().map(|p| objects(partition, bucket, p)).collect::<Vec<_>>(),
        }));
    }
    // Inputs deleted or archived after their commit: only those tables' prefixes.
    let mut deleted = Prefixes::new();
    let mut archives = Prefixes::new();
    for table in &job.tables {
        if table.after_commit == AfterCommit::Keep {
            continue;
        }
        for pattern in &table.inputs {
            add(&mut deleted, pattern.root());
        }
        if let AfterCommit::Archive(to) = &table.after_commit {
            add(&mut archives, to);
        }
    }
    for (bucket, prefixes) in &deleted {
        statements.push(json!({
            "Sid": sid("DeleteInputsAfterCommit", bucket),
            "Effect": "Allow",
            "Action": ["s3:DeleteObject"],
            "Resource": prefixes.iter().map(|p| objects(partition, bucket, p)).collect::<Vec<_>>(),
        }));
    }
    for (bucket, prefixes) in &archives {
        statements.push(json!({
            "Sid": sid("WriteArchive", bucket),
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": prefixes.iter().map(|p| objects(partition, bucket, p)).collect::<Vec<_>>(),
        }));
    }
    if let CatalogKind::Glue { .. } = &job.catalog {
        let resources = glue_resources(job);
        statements.push(json!({
            "Sid": "GlueCatalog",
            "Effect": "Allow",
            "Action": [
                "glue:GetDatabase", "glue:CreateDatabase",
                "glue:GetTable", "glue:CreateTable", "glue:UpdateTable",
                "glue:GetPartitions", "glue:BatchCreatePartition", "glue:BatchDeletePartition"
            ],
            "Resource": resources,
        }));
    }
    if let Some(r) = &job.redshift {
        statements.extend(redshift_statements(job, r, notes));
    }
    if let Some(arn) = &job.hash_key_secret {
        statements.push(json!({
            "Sid": "HashKeySecret",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": secret_resources(arn),
        }));
    }
    if let Some(key) = &job.aws.kms_key_arn {
        statements.push(json!({
            "Sid": "LakeEncryption",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": [key],
        }));
    }
    statements
}

/// `redshift load`: the Data API on the workgroup or cluster, its credentials, and the status
/// calls (which AWS authorises per statement owner, not per resource).
fn redshift_statements(job: &Job, r: &RedshiftOptions, notes: &mut Vec<String>) -> Vec<Value> {
    let region = job.aws.region.as_deref().unwrap_or("*");
    let p = partition_of(job);
    let target = match (&r.target, &r.workgroup_arn) {
        (Target::Workgroup(_), Some(arn)) => arn.clone(),
        (Target::Workgroup(w), None) => {
            notes.push(format!(
                "redshift.workgroup_arn is not set: the Data API statements allow every workgroup in region {region}, because a workgroup's ARN ends in its id, not its name; set it to the output of `aws redshift-serverless get-workgroup --workgroup-name {w} --query workgroup.workgroupArn`"
            ));
            format!("arn:{p}:redshift-serverless:{region}:*:workgroup/*")
        }
        (Target::Cluster(c), _) => format!("arn:{p}:redshift:{region}:*:cluster:{c}"),
    };
    let mut out = vec![
        json!({
            "Sid": "RedshiftDataStatements",
            "Effect": "Allow",
            "Action": ["redshift-data:ExecuteStatement", "redshift-data:BatchExecuteStatement"],
            "Resource": [target.clone()],
        }),
        json!({
            "Sid": "RedshiftDataOwnStatements",
            "Effect": "Allow",
            "Action": ["redshift-data:DescribeStatement", "redshift-data:GetStatementResult", "redshift-data:CancelStatement"],
            "Resource": ["*"],
            "Condition": { "StringEquals": { "redshift-data:statement-owner-iam-userid": "${aws:userid}" } },
        }),
    ];
    out.push(match (&r.auth, &r.target) {
        (Auth::Secret(arn), _) => json!({
            "Sid": "RedshiftSecret",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": secret_resources(arn),
        }),
        (Auth::DbUser(user), Target::Cluster(c)) => json!({
            "Sid": "RedshiftClusterCredentials",
            "Effect": "Allow",
            "Action": ["redshift:GetClusterCredentials"],
            "Resource": [
                format!("arn:{p}:redshift:{region}:*:dbuser:{c}/{user}"),
                format!("arn:{p}:redshift:{region}:*:dbname:{c}/{}", r.database),
            ],
        }),
        _ => json!({
            "Sid": "RedshiftServerlessCredentials",
            "Effect": "Allow",
            "Action": ["redshift-serverless:GetCredentials"],
            "Resource": [target],
        }),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;

    #[test]
    fn the_aws_example_policy() {
        let text = r#"
[lake]
root = "s3://central-logs/wau"
[catalog]
kind = "glue"
database = "logs"
catalog_id = "123456789012"
[aws]
region = "eu-west-1"
[[table]]
name = "cloudfront_logs"
format = "cloudfront"
inputs = ["s3://acme-cdn-logs/cloudfront/{customer}/", "local/cf/{customer}/"]
[[table]]
name = "wau_audit_logs"
format = "audit"
inputs = ["s3://acme-audit/exports/{customer}/*.csv", "s3://acme-audit/old/{customer}/*.csv"]
"#;
        let job = validated(text);
        let text = serde_json::to_string_pretty(&policy(&job)).unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn access_points_are_granted_by_their_own_arns() {
        let ap = "arn:aws:s3:eu-west-1:123456789012:accesspoint";
        let text = format!(
            "[lake]\nroot = \"s3://{ap}/lake-ap/wau\"\n[aws]\nregion = \"eu-west-1\"\n\
             [[table]]\nname = \"t\"\nformat = \"audit\"\ninputs = [\"s3://{ap}/audit-ap/exports/{{customer}}/*.csv\"]\n"
        );
        let job = validated(&text);
        let p = serde_json::to_string(&policy(&job)).unwrap();
        for granted in [
            format!("\"{ap}/lake-ap\""),
            format!("\"{ap}/lake-ap/object/wau/*\""),
            format!("\"{ap}/audit-ap\""),
            format!("\"{ap}/audit-ap/object/exports/*\""),
        ] {
            assert!(p.contains(&granted), "{granted} in {p}");
        }
        assert!(!p.contains("s3:::arn"), "{p}");
    }

    #[test]
    fn redshift_loads_add_the_data_api_and_the_secret() {
        let text = "[lake]\nroot = \"lake\"\n[[table]]\nname = \"t\"\nformat = \"audit\"\ninputs = [\"in/\"]\n[redshift]\ncluster_id = \"c1\"\ndatabase = \"dev\"\nsecret_arn = \"arn:aws:secretsmanager:eu-west-1:1:secret:s\"\n";
        let job = validated(text);
        let p = policy(&job);
        let sids: Vec<&str> = p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap())
            .collect();
        assert_eq!(
            sids,
            [
                "RedshiftDataStatements",
                "RedshiftDataOwnStatements",
                "RedshiftSecret"
            ]
        );
        assert_eq!(
            p["Statement"][0]["Resource"][0],
            "arn:aws:redshift:*:*:cluster:c1"
        );
        // The secret's name alone (a partial ARN): the suffix AWS appends is wildcarded.
        assert_eq!(
            p["Statement"][2]["Resource"],
            json!(["arn:aws:secretsmanager:eu-west-1:1:secret:s-??????"])
        );
    }

    #[test]
    fn secret_arns_are_granted_whole_and_partial() {
        let base = "arn:aws:secretsmanager:us-east-1:123456789012:secret:citrine/redshift";
        assert_eq!(secret_resources(base), [format!("{base}-??????")]);
        let full = format!("{base}-AbC123");
        assert_eq!(
            secret_resources(&full),
            [full.clone(), format!("{full}-??????")]
        );
    }

    #[test]
    fn the_partition_follows_the_region() {
        assert_eq!(partition(Some("eu-west-1")), "aws");
        assert_eq!(partition(None), "aws");
        assert_eq!(partition(Some("cn-north-1")), "aws-cn");
        assert_eq!(partition(Some("us-gov-west-1")), "aws-us-gov");
        assert_eq!(partition(Some("us-iso-east-1")), "aws-iso");
        assert_eq!(partition(Some("us-isob-east-1")), "aws-iso-b");
        let text = "[lake]\nroot = \"s3://lake-cn/x\"\n[catalog]\nkind = \"glue\"\n[aws]\nregion = \"cn-north-1\"\n[[table]]\nname = \"t\"\nformat = \"audit\"\ninputs = [\"s3://in-cn/\"]\n[redshift]\ncluster_id = \"c\"\ndatabase = \"dev\"\nsecret_arn = \"arn:aws-cn:secretsmanager:cn-north-1:1:secret:s\"\n";
        let job = validated(text);
        for role in [Role::Batch, Role::RedshiftCopy, Role::Spectrum] {
            let text = policy_for(&job, role).unwrap().document.to_string();
            assert!(!text.contains("arn:aws:"), "{role:?}: {text}");
            assert!(text.contains("arn:aws-cn:"), "{role:?}: {text}");
        }
    }

    #[test]
    fn deleting_or_archiving_inputs_adds_exactly_those_rights() {
        let text = "[lake]\nroot = \"lake\"\n[[table]]\nname = \"kept\"\nformat = \"audit\"\ninputs = [\"s3://in/kept/\"]\n[[table]]\nname = \"gone\"\nformat = \"audit\"\ninputs = [\"s3://in/gone/\"]\nafter_commit = \"archive\"\narchive_to = \"s3://cold/archive/\"\n";
        let job = validated(text);
        let p = policy(&job);
        let statements = p["Statement"].as_array().unwrap();
        let find = |sid: &str| statements.iter().find(|s| s["Sid"] == sid).unwrap();
        assert_eq!(
            find("DeleteInputsAfterCommitIn")["Resource"],
            json!(["arn:aws:s3:::in/gone/*"])
        );
        assert_eq!(
            find("WriteArchiveCold")["Resource"],
            json!(["arn:aws:s3:::cold/archive/*"])
        );
        assert_eq!(
            find("WriteArchiveCold")["Action"],
            json!(["s3:PutObject", "s3:AbortMultipartUpload"])
        );
    }

    #[test]
    fn a_local_job_needs_no_statements() {
        let text = "[lake]\nroot = \"lake\"\n[[table]]\nname = \"t\"\nformat = \"audit\"\ninputs = [\"in/\"]\n";
        let job = validated(text);
        assert_eq!(policy(&job)["Statement"], json!([]));
    }

    /// The AWS config of every role's snapshot: an S3 lake with a KMS key, Glue, a serverless
    /// workgroup by ARN, the Lambda's queue.
    const FULL: &str = r#"
[lake]
root = "s3://central-logs/wau"
[catalog]
kind = "glue"
database = "logs"
catalog_id = "123456789012"
[aws]
region = "eu-west-1"
kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
[lambda]
queue_arns = ["arn:aws:sqs:eu-west-1:123456789012:citrine-inputs"]
function_name = "citrine-loader"
[redshift]
workgroup = "analytics"
workgroup_arn = "arn:aws:redshift-serverless:eu-west-1:123456789012:workgroup/6f2c1a9e-0b7d-4c1e-9a53-2f4b8d7e1c30"
database = "dev"
[[table]]
name = "cloudfront_logs"
format = "cloudfront"
inputs = ["s3://acme-cdn-logs/cloudfront/{customer}/"]
"#;

    fn validated(text: &str) -> Job {
        ConfigFile::parse(text, "t")
            .unwrap()
            .validate(std::path::Path::new("/base"))
            .unwrap()
    }

    /// True when `arn` has the format AWS documents for its service's resource (a `*` may
    /// stand for a region, an account or a whole name).
    fn documented_arn(arn: &str) -> bool {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [a, partition, service, region, account, resource] = parts[..] else {
            return false;
        };
        let region_ok = region == "*" || region.split('-').count() >= 3;
        let account_ok =
            account == "*" || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
        let uuid = |id: &str| {
            id == "*" || (id.len() == 36 && id.split('-').map(str::len).eq([8, 4, 4, 4, 12]))
        };
        a == "arn"
            && partition == "aws"
            && match service {
                "s3" => region.is_empty() && account.is_empty() && !resource.is_empty(),
                "glue" => {
                    region_ok
                        && account_ok
                        && (resource == "catalog"
                            || resource.starts_with("database/")
                            || resource.starts_with("table/"))
                }
                "sqs" => region_ok && account_ok && !resource.contains('/'),
                "logs" => region_ok && account_ok && resource.starts_with("log-group:/aws/lambda/"),
                "kms" => region_ok && account_ok && resource.strip_prefix("key/").is_some_and(uuid),
                "secretsmanager" => resource.starts_with("secret:"),
                "redshift-serverless" => {
                    region_ok && account_ok && resource.strip_prefix("workgroup/").is_some_and(uuid)
                }
                "redshift" => {
                    region_ok
                        && account_ok
                        && ["cluster:", "dbuser:", "dbname:"]
                            .iter()
                            .any(|p| resource.starts_with(p))
                }
                _ => false,
            }
    }

    fn resources(policy: &Value) -> Vec<String> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Resource"].as_array().unwrap().clone())
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_role_has_its_golden_policy_in_documented_arns() {
        let job = validated(FULL);
        for (name, role) in [
            ("batch", Role::Batch),
            ("lambda", Role::Lambda),
            ("redshift_copy", Role::RedshiftCopy),
            ("spectrum", Role::Spectrum),
        ] {
            let policy = policy_for(&job, role).unwrap();
            assert!(policy.notes.is_empty(), "{name}: {:?}", policy.notes);
            for r in resources(&policy.document) {
                assert!(r == "*" || documented_arn(&r), "{name}: {r}");
            }
            insta::assert_snapshot!(
                format!("policy_{name}"),
                serde_json::to_string_pretty(&policy.document).unwrap()
            );
        }
        // The shipped example's policy too.
        let example = validated(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/aws.toml"))
                .unwrap(),
        );
        for r in resources(&policy(&example)) {
            assert!(r == "*" || documented_arn(&r), "{r}");
        }
    }

    #[test]
    fn a_workgroup_without_its_arn_is_any_workgroup_and_says_so() {
        let text = FULL.replace("workgroup_arn = ", "# workgroup_arn = ");
        let policy = policy_for(&validated(&text), Role::Batch).unwrap();
        let data = &policy.document["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "RedshiftDataStatements")
            .unwrap()["Resource"][0];
        assert_eq!(data, "arn:aws:redshift-serverless:eu-west-1:*:workgroup/*");
        assert!(documented_arn(data.as_str().unwrap()));
        assert_eq!(policy.notes.len(), 1);
        assert!(
            policy.notes[0].contains("--workgroup-name analytics"),
            "{:?}",
            policy.notes
        );
        // The old `workgroup/*analytics*` never matched a real workgroup ARN.
        assert!(!documented_arn(
            "arn:aws:redshift-serverless:eu-west-1:*:workgroup/*analytics*"
        ));
    }

    #[test]
    fn the_lambda_needs_its_queues_and_copy_needs_an_s3_lake() {
        let text = FULL.replace("queue_arns = [", "queue_arns = [] # [");
        let err = policy_for(&validated(&text), Role::Lambda).unwrap_err();
        assert_eq!(err.key, "lambda.queue_arns");
        let local = "[lake]\nroot = \"lake\"\n[[table]]\nname = \"t\"\nformat = \"audit\"\ninputs = [\"in/\"]\n";
        let err = policy_for(&validated(local), Role::RedshiftCopy).unwrap_err();
        assert_eq!(err.key, "lake.root");
        // Bad ARNs are config errors.
        for (from, to, key) in [
            (
                "kms_key_arn = \"arn:aws:kms",
                "kms_key_arn = \"alias",
                "aws.kms_key_arn",
            ),
            ("\"arn:aws:sqs:", "\"https://sqs.", "lambda.queue_arns"),
            (
                "workgroup_arn = \"arn:aws:redshift-serverless",
                "workgroup_arn = \"arn:aws:redshift",
                "redshift.workgroup_arn",
            ),
        ] {
            let err = ConfigFile::parse(&FULL.replace(from, to), "t")
                .unwrap()
                .validate(std::path::Path::new("/base"))
                .unwrap_err();
            assert_eq!(err.key, key);
        }
    }
}
