//! Everything Redshift: the SQL texts ([`sql`]), the Data API client that runs them
//! ([`data_api`]), and exactly-once loads of markers ([`load`]).
//!
//! Loads go through the Redshift Data API (serverless workgroup or provisioned cluster;
//! credentials from Secrets Manager or temporary cluster credentials, never a password). Each
//! marker is loaded by one transaction ([`sql::load_transaction`]) that makes loading it twice
//! a no-op; statements are polled until they finish, and cancelled when they outlast the
//! timeout, with Redshift's own error text reported.

pub mod data_api;
pub mod load;
pub mod sql;

use std::time::Duration;

use serde::Serialize;

pub use self::data_api::DataApi;
pub use self::load::{load_run, load_table, maintain, parse_marker};
use self::sql::Warehouse;

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
    /// The workgroup's ARN, when configured (for `iam-policy`).
    pub workgroup_arn: Option<String>,
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
