//! A Redshift Data API client for one target: statements submitted, polled until they end,
//! cancelled past the timeout.

use std::time::Instant;

use aws_sdk_redshiftdata::error::DisplayErrorContext;
use aws_sdk_redshiftdata::types::{Field, StatusString};

use super::{Auth, RedshiftOptions, Target};
use crate::aws::{block_on, AwsContext, SdkFailure};
use crate::error::{Error, Result};

/// A Redshift Data API client for one target.
#[derive(Debug, Clone)]
pub struct DataApi {
    client: aws_sdk_redshiftdata::Client,
    options: RedshiftOptions,
}

pub(super) fn redshift_error(message: impl Into<String>) -> Error {
    Error::Redshift {
        source: message.into().into(),
    }
}

fn sdk_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Redshift {
        source: SdkFailure::boxed(e),
    }
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

    /// Run a query; the first field of each row, as text.
    pub fn query_column(&self, sql: &str, name: &str) -> Result<Vec<String>> {
        Ok(self
            .query_rows(sql, name)?
            .into_iter()
            .filter_map(|row| row.into_iter().next())
            .collect())
    }

    /// Run a query; every row, each field as text (a null as an empty string).
    pub fn query_rows(&self, sql: &str, name: &str) -> Result<Vec<Vec<String>>> {
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
                out.push(
                    record
                        .iter()
                        .map(|field| match field {
                            Field::StringValue(s) => s.clone(),
                            Field::LongValue(n) => n.to_string(),
                            Field::DoubleValue(x) => x.to_string(),
                            Field::BooleanValue(b) => b.to_string(),
                            _ => String::new(),
                        })
                        .collect(),
                );
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
