//! Typed errors. Every error that concerns one input names its uri; errors about one row are
//! not errors at all but [`crate::parse::Reject`] records, so a bad row never stops a file.

use std::io;

/// Any error kept as the source of one of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a whole input file could not be consumed. The run reports the file, leaves it out of the
/// ledger and goes on with the other files.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be opened or read.
    #[error("cannot read: {source}")]
    Io {
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A gzip stream ended before its trailer, or is corrupt.
    #[error("truncated or corrupt gzip stream: {source}")]
    Gzip {
        /// What the decompressor said.
        #[source]
        source: io::Error,
    },
    /// Decompressed output grew past the configured cap (a gzip bomb, or a cap set too low).
    #[error("decompressed size exceeds the cap of {cap} bytes")]
    DecompressionCap {
        /// The cap in bytes.
        cap: u64,
    },
    /// The bytes are not the format the table expects.
    #[error("does not look like {format}: {reason}")]
    NotFormat {
        /// The expected format.
        format: &'static str,
        /// What gave it away.
        reason: String,
    },
    /// The input was deleted between listing and opening it: there is nothing to consume or
    /// to try again, so the run skips it (logged at debug).
    #[error("gone since it was listed")]
    Vanished,
    /// The input changed between listing and the end of reading it (a file still being
    /// written, or replaced): it is not consumed this run and is read again by the next.
    #[error("changed while being read ({detail}); still being written? it is read again on the next run")]
    Changed {
        /// What differed.
        detail: String,
    },
    /// Too large a share of the input's rows was rejected: it is more likely the wrong file
    /// or the wrong configuration than a few bad rows, so none of it is consumed.
    #[error("{rejected} of {read} rows rejected, more than run.max_reject_fraction = {limit} allows (first at line {first_line}: {first_reason})")]
    TooManyRejects {
        /// Rows rejected.
        rejected: u64,
        /// Rows read.
        read: u64,
        /// The configured fraction.
        limit: f64,
        /// Line of the first rejected row.
        first_line: u64,
        /// Why it was rejected (scrubbed).
        first_reason: String,
    },
    /// The input's path names no customer the table knows (a `{distribution}` missing from
    /// its `distributions`).
    #[error("{0}")]
    NoCustomer(String),
    /// A partition folder of the input's rows would not fit the lake's path limits.
    #[error("{0}")]
    PathTooLong(String),
    /// An input's failure as a shard of a sharded run reported it (already scrubbed).
    #[error("{0}")]
    Reported(String),
    /// The input's header would grow its table past the column cap.
    #[error(
        "its header would give the table {columns} columns, more than run.max_columns = {limit}"
    )]
    TooManyColumns {
        /// Columns the table would have.
        columns: usize,
        /// The cap.
        limit: usize,
    },
}

/// Carried inside an `io::Error` by readers that find their input changed while it was read,
/// so it survives the `Read` plumbing and becomes [`FileError::Changed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedWhileRead(pub String);

impl std::fmt::Display for ChangedWhileRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChangedWhileRead {}

impl ChangedWhileRead {
    /// An `io::Error` carrying this.
    pub fn io(detail: impl Into<String>) -> io::Error {
        io::Error::other(Self(detail.into()))
    }

    /// The detail, when `err` carries one.
    pub fn find(err: &io::Error) -> Option<&str> {
        err.get_ref()
            .and_then(|e| e.downcast_ref::<Self>())
            .map(|c| c.0.as_str())
    }
}

/// A [`FileError`] with the input it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{uri}: {kind}")]
pub struct InputError {
    /// The input's uri (a local path or `s3://` uri).
    pub uri: String,
    /// What went wrong (its text is part of this error's message, so it is not a `source`).
    pub kind: FileError,
}

impl InputError {
    /// Attach `uri` to a file error.
    pub fn new(uri: impl Into<String>, kind: FileError) -> Self {
        Self {
            uri: uri.into(),
            kind,
        }
    }
}

/// A configuration problem, reported before any work starts; or several, all at once.
#[derive(Debug)]
pub struct ConfigError {
    /// The offending key, dotted (`lake.compression`, `table[0].inputs`); empty when the
    /// problem is not one key's (no config file, TOML syntax).
    pub key: String,
    /// What was expected.
    pub message: String,
    /// Where: `citrine.toml:12`, the file, or none.
    pub at: Option<String>,
    /// Further problems found in the same check.
    pub also: Vec<ConfigError>,
}

impl ConfigError {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            at: None,
            also: Vec::new(),
        }
    }

    /// The problem, found at `at` (`file:line`).
    pub fn at(mut self, at: impl Into<String>) -> Self {
        self.at = Some(at.into());
        self
    }

    /// Every problem of `problems` (at least one) as one error.
    pub fn all(mut problems: Vec<ConfigError>) -> Self {
        let mut first = problems.remove(0);
        first.also = problems;
        first
    }

    fn line(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "config key `{}`: {}", self.key, self.message)
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.also.is_empty() {
            return self.line(f);
        }
        write!(f, "{} problems in the config:", 1 + self.also.len())?;
        for problem in std::iter::once(self).chain(&self.also) {
            write!(f, "\n  ")?;
            problem.line(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The library's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One input could not be consumed.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An Arrow kernel failed; this is a bug in citrine, not bad input.
    #[error("internal arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Reading or writing the lake failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A storage request (S3 or the local store) failed.
    #[error("{url}: {source}")]
    Store {
        /// The object or prefix.
        url: String,
        /// What the store said.
        #[source]
        source: BoxError,
    },
    /// A catalog request (Glue) failed.
    #[error("catalog {table}: {source}")]
    Catalog {
        /// The table (`database.table`).
        table: String,
        /// What the catalog said.
        #[source]
        source: BoxError,
    },
    /// A Redshift statement failed, was aborted or timed out.
    #[error("redshift: {source}")]
    Redshift {
        /// What Redshift (or the Data API) said.
        #[source]
        source: BoxError,
    },
    /// Encoding Parquet failed.
    #[error("{path}: parquet: {source}")]
    Parquet {
        /// The file being written.
        path: String,
        /// What the encoder said.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Another run holds the table lock.
    #[error("table {table} is locked by {holder}; try again later")]
    Locked {
        /// The table.
        table: String,
        /// Who holds it.
        holder: Box<Holder>,
    },
    /// A sharded run's process found the table lock held by another run, or by none: the run
    /// was committed, aborted, or its lease passed and another run took the table over.
    #[error("run {run} does not hold table {table}'s lock ({}); was it committed, aborted, or taken over after its lease passed?", held_by(holder))]
    NotHolder {
        /// The table.
        table: String,
        /// The run.
        run: String,
        /// Who holds the lock now, if anyone.
        holder: Option<Box<Holder>>,
    },
    /// A run's fence failed: another run took its table's lock over while it was stalled past
    /// its lease (a paused VM, a stopped container). It stopped before its irreversible step,
    /// publishing and deleting nothing more.
    #[error("table {table}: run {run} no longer holds the table's lock ({}): it was taken over while the run was stalled past its lease, so the run stopped without publishing", held_by(holder))]
    Fenced {
        /// The table.
        table: String,
        /// The run.
        run: String,
        /// Who holds the lock now, if anyone.
        holder: Option<Box<Holder>>,
    },
    /// A command that acts on a planned (sharded) run found the table held by something else:
    /// a one-process run, a `forget`, a `repair`. Nothing was done.
    #[error("table {table}: {holder} holds the table's lock, not a planned run; nothing was done (a one-process run is stopped by stopping its process, and the next run cleans up after it)")]
    NotPlanned {
        /// The table.
        table: String,
        /// Who holds it.
        holder: Box<Holder>,
    },
    /// A sharded run cannot go on as asked (no plan, a shard out of range, a config that
    /// differs from the plan's, a committed run to abort).
    #[error("table {table}, run {run}: {reason}")]
    Sharded {
        /// The table.
        table: String,
        /// The run.
        run: String,
        /// Why.
        reason: String,
    },
    /// A command named a run the table has not committed.
    #[error("table {table} has no committed run {run}")]
    NoRun {
        /// The table.
        table: String,
        /// The run.
        run: String,
    },
    /// A sharded run's commit found shards that have not reported: nothing was published.
    #[error("table {table}, run {run}: shards {} of {shards} have not reported; nothing was committed (run them, or abort the run)", missing.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "))]
    ShardsMissing {
        /// The table.
        table: String,
        /// The run.
        run: String,
        /// The shards without a report.
        missing: Vec<usize>,
        /// The run's shard count.
        shards: usize,
    },
    /// The hash key's secret could not be read.
    #[error("secret {arn}: {source}")]
    Secret {
        /// The secret's ARN.
        arn: String,
        /// Why.
        source: BoxError,
    },
    /// A query failed (SQL error, unknown table, ...).
    #[error("query: {source}")]
    Query {
        /// What the engine said.
        #[source]
        source: BoxError,
    },
    /// A local input pattern's folder does not exist (a typo, or a mount that is missing):
    /// the table's run fails rather than report "0 files" as if all were well.
    #[error("input pattern {pattern:?}: its folder {folder} does not exist")]
    MissingInputFolder {
        /// The pattern as written.
        pattern: String,
        /// Its literal folder.
        folder: String,
    },
    /// A broken invariant: a bug in citrine, never blamed on an input.
    #[error("internal error (a bug in citrine, please report it): {message}")]
    Internal {
        /// What broke.
        message: String,
    },
    /// Lake metadata (report, catalog, lock) is not what citrine wrote.
    #[error("{path}: unreadable lake metadata: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The result of a thread, given its `join()` (of a plain or a scoped thread); its panic (a
/// citrine bug) is an [`Error::Internal`] saying "`what()` panicked".
pub fn joined<T>(join: std::thread::Result<Result<T>>, what: impl FnOnce() -> String) -> Result<T> {
    join.unwrap_or_else(|_| {
        Err(Error::Internal {
            message: format!("{} panicked", what()),
        })
    })
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// Who holds a table's lock, as its lock object says (in the errors of those it refuses).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    /// The run (or a maintenance command's own id).
    pub run_id: String,
    /// The process that took or last renewed it.
    pub pid: u32,
    /// That process's host.
    pub host: String,
    /// When its lease expires (RFC 3339).
    pub expires: String,
    /// A planned (sharded) run's lock, held by the run rather than a process.
    pub planned: bool,
    /// The command holding it (`run`, `forget`, `repair`, …); empty in locks older citrines
    /// wrote.
    pub command: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.planned { "planned run" } else { "run" };
        write!(f, "{kind} {}", self.run_id)?;
        if !self.command.is_empty() {
            write!(f, " (citrine {})", self.command)?;
        }
        write!(
            f,
            ", pid {} on {}, lease until {}",
            self.pid, self.host, self.expires
        )
    }
}

/// "`holder` holds it", or "no run holds it".
fn held_by(holder: &Option<Box<Holder>>) -> String {
    holder
        .as_ref()
        .map_or("no run holds it".to_owned(), |h| format!("{h} holds it"))
}
