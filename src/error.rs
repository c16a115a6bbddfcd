//! Typed errors. Every error that concerns one input names its uri; errors about one row are
//! not errors at all but [`crate::parse::Reject`] records, so a bad row never stops a file.

use std::io;

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

/// A configuration problem, reported before any work starts.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct ConfigError {
    /// The offending key, dotted (`table.mask_ips`).
    pub key: String,
    /// What was expected.
    pub message: String,
}

impl ConfigError {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

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
    #[error("{url}: {message}")]
    Store {
        /// The object or prefix.
        url: String,
        /// What the store said.
        message: String,
    },
    /// A catalog request (Glue) failed.
    #[error("catalog {table}: {message}")]
    Catalog {
        /// The table (`database.table`).
        table: String,
        /// What the catalog said.
        message: String,
    },
    /// A Redshift statement failed, was aborted or timed out.
    #[error("redshift: {message}")]
    Redshift {
        /// What Redshift (or the Data API) said.
        message: String,
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
    #[error("table {table} is locked by run {holder} (pid {pid} on {host}) until {expires}; try again later")]
    Locked {
        /// The table.
        table: String,
        /// The run holding it.
        holder: String,
        /// Its process id.
        pid: u32,
        /// Its host.
        host: String,
        /// When its lease expires (RFC 3339).
        expires: String,
    },
    /// A query failed (SQL error, unknown table, ...).
    #[error("query: {message}")]
    Query {
        /// What the engine said.
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

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
