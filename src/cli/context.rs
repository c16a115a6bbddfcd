//! What every command starts from: the config's source, and the job and tables it names.

use std::path::PathBuf;

use anyhow::Context as _;
use citrine::config::{Job, TableSpec};
use citrine::config_source::ConfigSource;
use citrine::store::Stores;

/// The config a command runs with.
pub struct Context {
    source: ConfigSource,
    /// How messages name the config.
    pub config: PathBuf,
}

impl Context {
    /// The config `-c` names, else the environment's, else `citrine.toml`.
    pub fn new(config: Option<PathBuf>) -> Self {
        let source = ConfigSource::resolve(config);
        let config = PathBuf::from(source.origin());
        Self { source, config }
    }

    /// The job, without the hash key (for every command that does not hash).
    pub fn job(&self) -> anyhow::Result<Job> {
        Ok(self.source.load()?)
    }

    /// The job for commands that hash (a run, a shard): the hash key is required when a table
    /// has a `hash` rule, and its secret, if the config names one, fetched.
    pub fn job_with_key(&self) -> anyhow::Result<Job> {
        let mut job = self.job()?;
        let stores = Stores::new(job.aws.clone());
        citrine::privacy::resolve_hash_key(&mut job, &stores).map_err(|e| match e {
            // Named like the config's own problems.
            citrine::error::Error::Config(c) if c.at.is_none() => {
                citrine::error::Error::Config(c.at(self.source.origin()))
            }
            e => e,
        })?;
        Ok(job)
    }

    /// The table `name` of the config.
    pub fn table<'a>(&self, job: &'a Job, name: &str) -> anyhow::Result<&'a TableSpec> {
        job.tables
            .iter()
            .find(|t| t.name == name)
            .with_context(|| format!("--table {name}: no such table in {}", self.config.display()))
    }

    /// Refuse a `--table` the config does not define.
    pub fn check_table(&self, job: &Job, table: Option<&str>) -> anyhow::Result<()> {
        if let Some(t) = table {
            self.table(job, t)?;
        }
        Ok(())
    }

    /// The tables a command acts on: `only`, or every one.
    pub fn tables<'a>(
        &self,
        job: &'a Job,
        only: Option<&str>,
    ) -> anyhow::Result<Vec<&'a TableSpec>> {
        self.check_table(job, only)?;
        Ok(job
            .tables
            .iter()
            .filter(|t| only.is_none_or(|o| o == t.name))
            .collect())
    }
}
