//! `citrine iam-policy`: the least-privilege IAM policy a Batch job role or Lambda role needs
//! to run the configured job: list and read the input prefixes, read and write below the lake
//! root (multipart aborts included), and the Glue calls of the catalog on the configured
//! database and tables only.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::config::AfterCommit;
use crate::config::{CatalogKind, Job};
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

fn objects(bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("arn:aws:s3:::{bucket}/*")
    } else {
        format!("arn:aws:s3:::{bucket}/{prefix}/*")
    }
}

/// `ListBucket` on `bucket`, limited to `prefixes` (no condition for a whole bucket).
fn list_statement(sid: String, bucket: &str, prefixes: &[String]) -> Value {
    let mut statement = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": [format!("arn:aws:s3:::{bucket}")],
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
        .split(['-', '.', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("{prefix}{clean}")
}

/// The policy document for `job`.
pub fn policy(job: &Job) -> Value {
    let mut statements = Vec::new();
    let mut lake = Prefixes::new();
    add(&mut lake, &job.root);
    for (bucket, prefixes) in &lake {
        statements.push(list_statement(sid("ListLake", bucket), bucket, prefixes));
        statements.push(json!({
            "Sid": sid("WriteLake", bucket),
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": prefixes.iter().map(|p| objects(bucket, p)).collect::<Vec<_>>(),
        }));
    }
    let mut inputs = Prefixes::new();
    for table in &job.tables {
        for pattern in &table.inputs {
            add(&mut inputs, pattern.root());
        }
    }
    for (bucket, prefixes) in &inputs {
        statements.push(list_statement(sid("ListInputs", bucket), bucket, prefixes));
        statements.push(json!({
            "Sid": sid("ReadInputs", bucket),
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": prefixes.iter().map(|p| objects(bucket, p)).collect::<Vec<_>>(),
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
            "Resource": prefixes.iter().map(|p| objects(bucket, p)).collect::<Vec<_>>(),
        }));
    }
    for (bucket, prefixes) in &archives {
        statements.push(json!({
            "Sid": sid("WriteArchive", bucket),
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": prefixes.iter().map(|p| objects(bucket, p)).collect::<Vec<_>>(),
        }));
    }
    if let CatalogKind::Glue { catalog_id } = &job.catalog {
        let region = job.aws.region.as_deref().unwrap_or("*");
        let account = catalog_id.as_deref().unwrap_or("*");
        let arn = |rest: String| format!("arn:aws:glue:{region}:{account}:{rest}");
        let db = &job.database;
        let mut resources = vec![arn("catalog".into()), arn(format!("database/{db}"))];
        resources.extend(
            job.tables
                .iter()
                .map(|t| arn(format!("table/{db}/{}", t.name))),
        );
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
        statements.extend(redshift_statements(job, r));
    }
    if let Some(arn) = &job.hash_key_secret {
        statements.push(json!({
            "Sid": "HashKeySecret",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": [arn],
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// `redshift load`: the Data API on the workgroup or cluster, its credentials, and the status
/// calls (which AWS authorises per statement owner, not per resource).
fn redshift_statements(job: &Job, r: &RedshiftOptions) -> Vec<Value> {
    let region = job.aws.region.as_deref().unwrap_or("*");
    let target = match &r.target {
        Target::Workgroup(w) => format!("arn:aws:redshift-serverless:{region}:*:workgroup/*{w}*"),
        Target::Cluster(c) => format!("arn:aws:redshift:{region}:*:cluster:{c}"),
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
            "Resource": [arn],
        }),
        (Auth::DbUser(user), Target::Cluster(c)) => json!({
            "Sid": "RedshiftClusterCredentials",
            "Effect": "Allow",
            "Action": ["redshift:GetClusterCredentials"],
            "Resource": [
                format!("arn:aws:redshift:{region}:*:dbuser:{c}/{user}"),
                format!("arn:aws:redshift:{region}:*:dbname:{c}/{}", r.database),
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
        let job = ConfigFile::parse(text, "t")
            .unwrap()
            .validate(std::path::Path::new("/base"))
            .unwrap();
        let text = serde_json::to_string_pretty(&policy(&job)).unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn redshift_loads_add_the_data_api_and_the_secret() {
        let text = "[lake]\nroot = \"lake\"\n[[table]]\nname = \"t\"\nformat = \"audit\"\ninputs = [\"in/\"]\n[redshift]\ncluster_id = \"c1\"\ndatabase = \"dev\"\nsecret_arn = \"arn:aws:secretsmanager:eu-west-1:1:secret:s\"\n";
        let job = ConfigFile::parse(text, "t")
            .unwrap()
            .validate(std::path::Path::new("/base"))
            .unwrap();
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
        assert_eq!(
            p["Statement"][2]["Resource"][0],
            "arn:aws:secretsmanager:eu-west-1:1:secret:s"
        );
    }

    #[test]
    fn deleting_or_archiving_inputs_adds_exactly_those_rights() {
        let text = "[lake]\nroot = \"lake\"\n[[table]]\nname = \"kept\"\nformat = \"audit\"\ninputs = [\"s3://in/kept/\"]\n[[table]]\nname = \"gone\"\nformat = \"audit\"\ninputs = [\"s3://in/gone/\"]\nafter_commit = \"archive\"\narchive_to = \"s3://cold/archive/\"\n";
        let job = ConfigFile::parse(text, "t")
            .unwrap()
            .validate(std::path::Path::new("/base"))
            .unwrap();
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
        let job = ConfigFile::parse(text, "t")
            .unwrap()
            .validate(std::path::Path::new("/base"))
            .unwrap();
        assert_eq!(policy(&job)["Statement"], json!([]));
    }
}
