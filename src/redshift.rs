//! Loading markers into Redshift through the Redshift Data API (serverless workgroup or
//! provisioned cluster; credentials from Secrets Manager or temporary cluster credentials,
//! never a password). Each marker is loaded by one transaction ([`load_transaction`]) that makes
//! loading it twice a no-op; statements are polled until they finish, and cancelled when they
//! outlast the timeout, with Redshift's own error text reported.

use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::error::DisplayErrorContext;
use aws_sdk_redshiftdata::types::{Field, StatusString};
use serde::Serialize;

use crate::aws::{block_on, AwsContext};
use crate::commit::redshift::{
    create_loads_table, load_transaction, loaded_runs, maintenance, Load, Warehouse,
};
use crate::error::{Error, Result};
use crate::lake::{Lake, MANIFEST_SUFFIX};

/// Where statements run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Redshift Serverless workgroup.
    Workgroup(String),
    /// A provisioned cluster.
    Cluster(String),
}

/// How statements authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A Secrets Manager secret holding the database credentials.
    Secret(String),
    /// Temporary credentials for this database user (clusters only).
    DbUser(String),
    /// The caller's IAM identity (serverless only).
    Iam,
}

/// `[redshift]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedshiftOptions {
    /// Workgroup or cluster.
    pub target: Target,
    /// Database name.
    pub database: String,
    /// Authentication.
    pub auth: Auth,
    /// Schema and COPY role.
    pub warehouse: Warehouse,
    /// Longest a statement may run before it is cancelled.
    pub timeout: Duration,
    /// Pause between status polls.
    pub poll: Duration,
}

/// What loading one marker did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadOutcome {
    /// The table.
    pub table: String,
    /// The run.
    pub run_id: String,
    /// False when `citrine_loads` already held the run (nothing was sent).
    pub loaded: bool,
}

/// A Redshift Data API client for one target.
#[derive(Debug, Clone)]
pub struct DataApi {
    client: aws_sdk_redshiftdata::Client,
    options: RedshiftOptions,
}

fn redshift_error(message: impl Into<String>) -> Error {
    Error::Redshift {
        message: message.into(),
    }
}

fn sdk_error(e: impl std::error::Error) -> Error {
    redshift_error(DisplayErrorContext(e).to_string())
}

macro_rules! target_and_auth {
    ($builder:expr, $options:expr) => {{
        let mut b = $builder.database(&$options.database);
        b = match &$options.target {
            Target::Workgroup(w) => b.workgroup_name(w),
            Target::Cluster(c) => b.cluster_identifier(c),
        };
        match &$options.auth {
            Auth::Secret(arn) => b.secret_arn(arn),
            Auth::DbUser(user) => b.db_user(user),
            Auth::Iam => b,
        }
    }};
}

impl DataApi {
    /// A client (endpoint from `AWS_ENDPOINT_URL_REDSHIFT_DATA` / `AWS_ENDPOINT_URL` as the SDK
    /// resolves them).
    pub fn new(aws: &AwsContext, options: RedshiftOptions) -> Self {
        Self {
            client: aws_sdk_redshiftdata::Client::new(aws.sdk()),
            options,
        }
    }

    /// The options.
    pub fn options(&self) -> &RedshiftOptions {
        &self.options
    }

    /// Run one statement and wait for it.
    pub fn execute(&self, sql: &str, name: &str) -> Result<()> {
        let id = self.submit(sql, name)?;
        self.wait(&id).map(|_| ())
    }

    /// Run statements in one transaction and wait for them.
    pub fn execute_batch(&self, sqls: Vec<String>, name: &str) -> Result<()> {
        let request = target_and_auth!(self.client.batch_execute_statement(), self.options)
            .set_sqls(Some(sqls))
            .statement_name(name);
        let out = block_on(request.send()).map_err(sdk_error)?;
        let id = out
            .id()
            .ok_or_else(|| redshift_error("no statement id"))?
            .to_owned();
        self.wait(&id).map(|_| ())
    }

    /// Run a query and return its first column as text.
    pub fn query_column(&self, sql: &str, name: &str) -> Result<Vec<String>> {
        let id = self.submit(sql, name)?;
        if !self.wait(&id)? {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = block_on(
                self.client
                    .get_statement_result()
                    .id(&id)
                    .set_next_token(token.take())
                    .send(),
            )
            .map_err(sdk_error)?;
            for record in page.records() {
                match record.first() {
                    Some(Field::StringValue(s)) => out.push(s.clone()),
                    Some(Field::LongValue(n)) => out.push(n.to_string()),
                    _ => {}
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    fn submit(&self, sql: &str, name: &str) -> Result<String> {
        let request = target_and_auth!(self.client.execute_statement(), self.options)
            .sql(sql)
            .statement_name(name);
        let out = block_on(request.send()).map_err(sdk_error)?;
        out.id()
            .map(str::to_owned)
            .ok_or_else(|| redshift_error("no statement id"))
    }

    /// Poll until the statement ends; `Ok(has_result_set)` when it finished. At the timeout
    /// the statement is cancelled and the error says so.
    fn wait(&self, id: &str) -> Result<bool> {
        let started = Instant::now();
        loop {
            let d = block_on(self.client.describe_statement().id(id).send()).map_err(sdk_error)?;
            match d.status() {
                Some(StatusString::Finished) => return Ok(d.has_result_set().unwrap_or(false)),
                Some(StatusString::Failed) => {
                    return Err(redshift_error(format!(
                        "statement {id} failed: {}",
                        d.error().unwrap_or("no error text")
                    )))
                }
                Some(StatusString::Aborted) => {
                    return Err(redshift_error(format!("statement {id} was aborted")))
                }
                _ => {}
            }
            if started.elapsed() >= self.options.timeout {
                let cancelled = block_on(self.client.cancel_statement().id(id).send());
                let how = match cancelled {
                    Ok(_) => "cancelled".to_owned(),
                    Err(e) => format!("cancel failed: {}", DisplayErrorContext(e)),
                };
                return Err(redshift_error(format!(
                    "statement {id} still running after {} s; {how}",
                    self.options.timeout.as_secs_f64()
                )));
            }
            std::thread::sleep(self.options.poll);
        }
    }
}

/// The table and run of a marker URL of `lake`.
pub fn parse_marker(lake: &Lake, url: &str) -> Result<(String, String)> {
    let bad = || redshift_error(format!("{url}: not a marker of the lake {}", lake.url("")));
    let mut parts = url.rsplit('/');
    let name = parts.next().ok_or_else(bad)?;
    let table = parts.next().ok_or_else(bad)?;
    let run = name.strip_suffix(MANIFEST_SUFFIX).ok_or_else(bad)?;
    if lake.url(&lake.manifest_key(table, run)) != url {
        return Err(bad());
    }
    Ok((table.to_owned(), run.to_owned()))
}

/// Load one committed run of `table` unless `citrine_loads` already holds it.
pub fn load_run(api: &DataApi, lake: &Lake, table: &str, run_id: &str) -> Result<LoadOutcome> {
    let w = &api.options.warehouse;
    api.execute(&create_loads_table(w), "citrine-loads-table")?;
    let loaded = api.query_column(&loaded_runs(w, table), "citrine-loaded-runs")?;
    load_one(api, lake, table, run_id, &loaded)
}

/// Load every committed run of `table` that `citrine_loads` does not hold, oldest first.
pub fn load_table(api: &DataApi, lake: &Lake, table: &str) -> Result<Vec<LoadOutcome>> {
    let w = &api.options.warehouse;
    api.execute(&create_loads_table(w), "citrine-loads-table")?;
    let mut loaded = api.query_column(&loaded_runs(w, table), "citrine-loaded-runs")?;
    let mut out = Vec::new();
    for run in lake.committed_runs(table)? {
        let outcome = load_one(api, lake, table, &run, &loaded)?;
        if outcome.loaded {
            loaded.push(run);
        }
        out.push(outcome);
    }
    Ok(out)
}

fn load_one(
    api: &DataApi,
    lake: &Lake,
    table: &str,
    run_id: &str,
    loaded: &[String],
) -> Result<LoadOutcome> {
    let mut outcome = LoadOutcome {
        table: table.to_owned(),
        run_id: run_id.to_owned(),
        loaded: false,
    };
    if loaded.iter().any(|r| r == run_id) {
        tracing::info!(table, run_id, "already loaded; nothing sent");
        return Ok(outcome);
    }
    let report = lake.report(table, run_id)?;
    // Inputs this run consumed that a later, loaded run consumed again: stale here.
    let mut superseded = Vec::new();
    for later in lake.committed_runs(table)? {
        if later.as_str() <= run_id || !loaded.contains(&later) {
            continue;
        }
        let later = lake.report(table, &later)?;
        for input in &report.inputs {
            if later.inputs.iter().any(|i| i.uri == input.uri) && !superseded.contains(&input.uri) {
                superseded.push(input.uri.clone());
            }
        }
    }
    let manifest_url = lake.url(&lake.manifest_key(table, run_id));
    let load = Load {
        table,
        run_id,
        manifest_url: &manifest_url,
        columns: &report.columns,
        superseded: &superseded,
    };
    api.execute_batch(
        load_transaction(&api.options.warehouse, &load),
        &format!("citrine-load-{run_id}"),
    )?;
    tracing::info!(table, run_id, "loaded");
    outcome.loaded = true;
    Ok(outcome)
}

/// `VACUUM SORT ONLY` and / or `ANALYZE` the table, one statement each.
pub fn maintain(api: &DataApi, table: &str, vacuum: bool, analyze: bool) -> Result<()> {
    for sql in maintenance(&api.options.warehouse, table, vacuum, analyze) {
        api.execute(&sql, "citrine-maintenance")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_recognised_only_in_their_lake() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let url = lake.url(&lake.manifest_key("t", "r1"));
        assert_eq!(
            parse_marker(&lake, &url).unwrap(),
            ("t".into(), "r1".into())
        );
        assert!(parse_marker(&lake, "s3://elsewhere/complete/t/r1.manifest").is_err());
        assert!(parse_marker(&lake, &lake.url(&lake.report_key("t", "r1"))).is_err());
    }
}
