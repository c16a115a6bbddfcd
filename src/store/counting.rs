//! A store that counts the requests made through it: how the tests and the benchmark show that
//! a run's cost does not grow with the table's history. Each call is one request as S3 would
//! bill it (a listing counts one per call, and one more per 1,000 objects it returns, as S3's
//! pages do).

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Listing, ObjectInfo, Prerequisite, Store, Upload, Version, Versioned};
use crate::error::Result;

/// Objects per page of an S3 listing.
const PAGE: u64 = 1000;

/// Requests made, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Requests {
    /// GET and HEAD (whole reads, streamed reads, metadata).
    pub reads: u64,
    /// PUT (whole writes, conditional ones, uploads started).
    pub writes: u64,
    /// DELETE.
    pub deletes: u64,
    /// LIST pages.
    pub lists: u64,
}

impl Requests {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.reads + self.writes + self.deletes + self.lists
    }
}

impl std::ops::Sub for Requests {
    type Output = Requests;
    fn sub(self, rhs: Self) -> Self {
        Self {
            reads: self.reads - rhs.reads,
            writes: self.writes - rhs.writes,
            deletes: self.deletes - rhs.deletes,
            lists: self.lists - rhs.lists,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
    deletes: AtomicU64,
    lists: AtomicU64,
}

/// A [`Store`] that counts the requests made through it to another.
#[derive(Debug, Clone)]
pub struct CountingStore {
    inner: Arc<dyn Store>,
    counters: Arc<Counters>,
}

impl CountingStore {
    /// Count the requests made to `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            counters: Arc::default(),
        }
    }

    /// The requests made so far.
    pub fn requests(&self) -> Requests {
        let c = &self.counters;
        Requests {
            reads: c.reads.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            lists: c.lists.load(Ordering::Relaxed),
        }
    }

    fn count(&self, which: &AtomicU64) {
        which.fetch_add(1, Ordering::Relaxed);
    }

    /// One listing request, and one more for every full page of `objects`.
    fn count_listing(&self, objects: u64) {
        self.counters
            .lists
            .fetch_add(1 + objects / PAGE, Ordering::Relaxed);
    }
}

impl Store for CountingStore {
    fn url(&self, key: &str) -> String {
        self.inner.url(key)
    }
    fn read(&self, key: &str) -> Result<Option<Versioned>> {
        self.count(&self.counters.reads);
        self.inner.read(key)
    }
    fn write(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.count(&self.counters.writes);
        self.inner.write(key, bytes)
    }
    fn create(&self, key: &str, bytes: &[u8]) -> Result<Option<Version>> {
        self.count(&self.counters.writes);
        self.inner.create(key, bytes)
    }
    fn replace(&self, key: &str, bytes: &[u8], version: &Version) -> Result<Option<Version>> {
        self.count(&self.counters.writes);
        self.inner.replace(key, bytes, version)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.count(&self.counters.deletes);
        self.inner.delete(key)
    }
    fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.count(&self.counters.reads);
        self.inner.head(key)
    }
    fn list_iter<'a>(&'a self, prefix: &str) -> Result<Listing<'a>> {
        // Counted as it is consumed: a page per 1,000 objects read.
        self.count(&self.counters.lists);
        let mut seen = 0u64;
        let inner = self.inner.list_iter(prefix)?;
        Ok(Box::new(inner.inspect(move |_| {
            seen += 1;
            if seen.is_multiple_of(PAGE) {
                self.count(&self.counters.lists);
            }
        })))
    }
    fn list_after(&self, prefix: &str, after: &str) -> Result<Vec<ObjectInfo>> {
        let out = self.inner.list_after(prefix, after)?;
        self.count_listing(out.len() as u64);
        Ok(out)
    }
    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        self.count(&self.counters.reads);
        self.inner.open(key)
    }
    fn open_snapshot(&self, expect: &ObjectInfo) -> Result<Box<dyn Read + Send>> {
        self.count(&self.counters.reads);
        self.inner.open_snapshot(expect)
    }
    fn upload(&self, key: &str) -> Result<Box<dyn Upload>> {
        self.count(&self.counters.writes);
        self.inner.upload(key)
    }
    fn upload_after(&self, key: &str, first: Prerequisite) -> Result<Box<dyn Upload>> {
        self.count(&self.counters.writes);
        self.inner.upload_after(key, first)
    }
    fn delete_staging(&self, key: &str) -> Result<()> {
        // Local housekeeping only: no S3 request.
        self.inner.delete_staging(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    #[test]
    fn every_request_is_counted_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let store = CountingStore::new(Arc::new(LocalStore::new(dir.path()).unwrap()));
        for i in 0..1001 {
            store.write(&format!("k/{i:04}"), b"x").unwrap();
        }
        store.read("k/0000").unwrap();
        store.head("k/0001").unwrap();
        store.delete("k/0002").unwrap();
        assert_eq!(store.list("k").unwrap().len(), 1000);
        assert_eq!(store.list_after("k", "k/0990").unwrap().len(), 10);
        assert_eq!(
            store.requests(),
            Requests {
                reads: 2,
                writes: 1001,
                deletes: 1,
                lists: 3
            }
        );
    }
}
