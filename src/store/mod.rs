//! The one storage layer: every byte citrine reads or writes, in the lake or from inputs,
//! goes through a [`Store`], rooted at a [`Location`] (a local folder or `s3://bucket/prefix`).
//!
//! Two implementations: [`LocalStore`] (the embedded default) and [`S3Store`] (object_store's
//! S3 client with credentials from the standard AWS chain). Local folders are not served by
//! object_store's `LocalFileSystem`: it maps keys to files through a URL and so percent-decodes
//! them, which would turn a Hive-escaped partition folder such as `customer=a%3Ab` into
//! `customer=a:b` on disk and break the catalog's locations. The trait is synchronous: the
//! pipeline runs on rayon and plain threads, and the S3 store drives its async client on one
//! shared tokio runtime ([`crate::aws::runtime`]).
//!
//! Whole-object writes are atomic (a reader sees the old object or the new one, never half).
//! Streaming writes ([`Store::upload`]) become visible only at [`Upload::finish`]; an upload
//! that is aborted or dropped leaves nothing visible.

pub mod counting;
pub mod local;
pub mod s3;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::aws::{AwsContext, AwsOptions};
use crate::error::{ChangedWhileRead, Error, Result};

pub use counting::{CountingStore, Requests};
pub use local::LocalStore;
pub use s3::S3Store;

/// Bytes of an input read ahead of its worker (by [`crate::read::prefetch`], and hinted to
/// the system by [`LocalStore`] when it opens a file).
pub const AHEAD_BYTES: u64 = 4 << 20;

/// Where a lake or an input tree lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A local folder (absolute or relative to the working directory).
    Local(PathBuf),
    /// A bucket and a key prefix without leading or trailing `/` (may be empty).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
}

impl Location {
    /// Parse `text`: `s3://bucket/prefix` or a local path resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> std::result::Result<Self, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = crate::aws::access_point::split_bucket(rest);
            if bucket.is_empty() {
                return Err(format!("{text:?}: expected s3://bucket/prefix"));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|s| s == "." || s == "..") {
                return Err(format!("{text:?}: `.` and `..` are not allowed in a key"));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        if text.contains("://") {
            return Err(format!(
                "{text:?}: expected a local path or an s3:// URI (no other schemes)"
            ));
        }
        Ok(Self::Local(base.join(text)))
    }

    /// True for `s3://` locations.
    pub fn is_s3(&self) -> bool {
        matches!(self, Self::S3 { .. })
    }

    /// The location of `rel` below this one (`rel` is `/`-separated).
    pub fn join(&self, rel: &str) -> Self {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            return self.clone();
        }
        match self {
            Self::Local(p) => Self::Local(p.join(rel)),
            Self::S3 { bucket, prefix } => Self::S3 {
                bucket: bucket.clone(),
                prefix: join_key(prefix, rel),
            },
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(p) => write!(f, "{}", p.display()),
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// `a` and `b` joined with one `/` (either may be empty).
pub fn join_key(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

/// One object listed or looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key below the store's root, `/`-separated.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// The S3 ETag (none for local files).
    pub etag: Option<String>,
}

/// The version of an object for compare-and-swap: the ETag on S3, a content hash locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub String);

/// A whole object read with its version.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its version.
    pub version: Version,
}

/// Objects of a listing, in key order, as they arrive.
pub type Listing<'a> = Box<dyn Iterator<Item = Result<ObjectInfo>> + Send + 'a>;

/// Work that must be done before an upload creates anything (see [`Store::upload_after`]).
pub type Prerequisite = Box<dyn FnOnce() -> Result<()> + Send>;

/// A streaming write. Nothing is visible until [`Upload::finish`]; dropping an unfinished
/// upload aborts it.
pub trait Upload: Write + Send {
    /// Publish the object; returns its exact size.
    fn finish(self: Box<Self>) -> Result<u64>;
    /// Give up: nothing is published.
    fn abort(self: Box<Self>);
}

/// What citrine needs from storage; keys are relative to the store's root.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The URL of `key`: `file:///abs/path` or `s3://bucket/prefix/key`.
    fn url(&self, key: &str) -> String;
    /// Read a whole (small) object; `None` when absent.
    fn read(&self, key: &str) -> Result<Option<Versioned>>;
    /// Write a whole object atomically, replacing any.
    fn write(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// Write only if absent; `None` when the key exists.
    fn create(&self, key: &str, bytes: &[u8]) -> Result<Option<Version>>;
    /// Replace only if the object is still at `version`; `None` when it is not (or is gone).
    fn replace(&self, key: &str, bytes: &[u8], version: &Version) -> Result<Option<Version>>;
    /// Delete; a missing key is success.
    fn delete(&self, key: &str) -> Result<()>;
    /// The object's size, mtime and ETag; `None` when absent.
    fn head(&self, key: &str) -> Result<Option<ObjectInfo>>;
    /// Every object below `prefix` (a folder key, `""` for all), in key order, fetched as it
    /// is consumed (an S3 listing one page at a time), so a listing of millions of objects
    /// never sits in memory whole.
    fn list_iter<'a>(&'a self, prefix: &str) -> Result<Listing<'a>>;
    /// The objects below `prefix` whose keys sort after `after` (a key below the root), in key
    /// order: on S3 one `start-after` listing, however many keys sort before it.
    fn list_after(&self, prefix: &str, after: &str) -> Result<Vec<ObjectInfo>>;
    /// Every object below `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.list_iter(prefix)?.collect()
    }
    /// Stream an object's bytes.
    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>>;
    /// Stream the bytes of `expect`, the object as it was listed: exactly its size, and only
    /// while it is still that version (S3: `If-Match` on its ETag; locally its size and mtime,
    /// checked again at the end). An object found changed fails the read with
    /// [`crate::error::ChangedWhileRead`] (or, for S3 before any byte, with
    /// [`crate::error::FileError::Changed`]), so what is recorded as consumed is exactly
    /// what was read.
    fn open_snapshot(&self, expect: &ObjectInfo) -> Result<Box<dyn Read + Send>>;
    /// Start a streaming write of `key`.
    fn upload(&self, key: &str) -> Result<Box<dyn Upload>>;
    /// Start a streaming write of `key` that creates nothing, and makes no request, before
    /// `first` has run (a run journal's entry for the file). By default `first` runs here, at
    /// once; a store whose uploads send nothing for a while (S3) runs it meanwhile.
    fn upload_after(&self, key: &str, first: Prerequisite) -> Result<Box<dyn Upload>> {
        first()?;
        self.upload(key)
    }
    /// Delete what an interrupted write of `key` may have left beside it: a local store's
    /// temporary files, the unfinished multipart upload of a killed process on S3.
    fn delete_staging(&self, key: &str) -> Result<()> {
        let _ = key;
        Ok(())
    }
}

/// A check run once a reader reaches its end.
type AtEnd<R> = Box<dyn FnOnce(&mut R) -> std::io::Result<()> + Send>;

/// A reader of exactly `size` bytes: more, or fewer before the end, fail the read with
/// [`ChangedWhileRead`]; at the end `at_end` may find the object changed too.
pub(crate) struct Exact<R> {
    inner: R,
    size: u64,
    read: u64,
    at_end: Option<AtEnd<R>>,
}

impl<R: Read> Exact<R> {
    /// `inner`, expected to hold `size` bytes.
    pub(crate) fn new(inner: R, size: u64) -> Self {
        Self {
            inner,
            size,
            read: 0,
            at_end: None,
        }
    }

    /// Run `check` once the end is reached (after the size matched).
    pub(crate) fn at_end(
        mut self,
        check: impl FnOnce(&mut R) -> std::io::Result<()> + Send + 'static,
    ) -> Self {
        self.at_end = Some(Box::new(check));
        self
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.size {
            return Err(ChangedWhileRead::io(format!(
                "listed at {} bytes, it grew while read",
                self.size
            )));
        }
        if n == 0 && !buf.is_empty() {
            if self.read < self.size {
                return Err(ChangedWhileRead::io(format!(
                    "listed at {} bytes, it ended after {}",
                    self.size, self.read
                )));
            }
            if let Some(check) = self.at_end.take() {
                check(&mut self.inner)?;
            }
        }
        Ok(n)
    }
}

/// Opens stores for locations, sharing one AWS context and one S3 client per bucket.
#[derive(Debug)]
pub struct Stores {
    aws: Arc<AwsContext>,
    buckets: Mutex<HashMap<String, Arc<object_store::aws::AmazonS3>>>,
}

impl Stores {
    /// Stores using `aws` for any `s3://` location (AWS is contacted only when one is opened).
    pub fn new(aws: AwsOptions) -> Self {
        Self {
            aws: Arc::new(AwsContext::new(aws)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The shared AWS context (SDK config for Glue and the other clients).
    pub fn aws(&self) -> &Arc<AwsContext> {
        &self.aws
    }

    /// The store rooted at `location`.
    pub fn open(&self, location: &Location) -> Result<Arc<dyn Store>> {
        match location {
            Location::Local(root) => Ok(Arc::new(LocalStore::new(root)?)),
            Location::S3 { bucket, prefix } => {
                let store = S3Store::new(self.amazon_s3(bucket)?, bucket, prefix)
                    .with_part_bytes(self.aws.options().s3_part_bytes());
                Ok(Arc::new(store))
            }
        }
    }

    /// The shared object_store S3 client of `bucket` (DataFusion registers it for queries).
    pub fn s3_client(&self, bucket: &str) -> Result<Arc<dyn object_store::ObjectStore>> {
        Ok(self.amazon_s3(bucket)?)
    }

    fn amazon_s3(&self, bucket: &str) -> Result<Arc<object_store::aws::AmazonS3>> {
        let mut buckets = self.buckets.lock().expect("bucket cache");
        if let Some(c) = buckets.get(bucket) {
            return Ok(c.clone());
        }
        let c = self.aws.s3_client(bucket)?;
        buckets.insert(bucket.to_owned(), c.clone());
        Ok(c)
    }
}

/// An error from a store operation on `url`.
pub(crate) fn store_error(url: &str, e: impl Into<crate::error::BoxError>) -> Error {
    Error::Store {
        url: url.to_owned(),
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let base = Path::new("/base");
        assert_eq!(
            Location::parse("lake", base).unwrap(),
            Location::Local("/base/lake".into())
        );
        assert_eq!(
            Location::parse("s3://b/wau/", base).unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: "wau".into()
            }
        );
        let root = Location::parse("s3://b", base).unwrap();
        assert_eq!(root.to_string(), "s3://b");
        assert_eq!(root.join("x/y/").to_string(), "s3://b/x/y");
        assert!(Location::parse("s3:///x", base).is_err());
        assert!(Location::parse("gs://b/x", base).is_err());
        assert!(Location::parse("s3://b/../x", base).is_err());
        let arn = "arn:aws:s3:eu-west-1:123456789012:accesspoint/lake-ap";
        let at = Location::parse(&format!("s3://{arn}/lake/"), base).unwrap();
        assert_eq!(
            at,
            Location::S3 {
                bucket: arn.into(),
                prefix: "lake".into()
            }
        );
        assert_eq!(at.to_string(), format!("s3://{arn}/lake"));
    }
}
