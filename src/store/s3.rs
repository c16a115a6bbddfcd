//! A store rooted at `s3://bucket/prefix`, over object_store's S3 client.
//!
//! Conditional writes use `If-None-Match: *` (create) and `If-Match: <etag>` (replace).
//! Reads stream the object body; uploads send one PUT when the object fits in one part and a
//! multipart upload otherwise, its parts in flight while the writer keeps encoding, aborted if
//! the upload fails or is dropped unfinished, so a failed upload never leaves a visible object.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
    WriteMultipart,
};

use super::{join_key, store_error, Exact, Listing, ObjectInfo, Store, Upload, Version, Versioned};
use crate::aws::block_on;
use crate::error::{FileError, InputError, Result};

use crate::aws::DEFAULT_S3_PART_BYTES;

/// A store over one bucket and key prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    part_bytes: usize,
}

impl S3Store {
    /// The store at `s3://bucket/prefix` using `client` (an S3 client for `bucket`).
    pub fn new(client: Arc<dyn ObjectStore>, bucket: &str, prefix: &str) -> Self {
        Self {
            client,
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            part_bytes: DEFAULT_S3_PART_BYTES,
        }
    }

    /// Use parts of `bytes` (at least 5 MiB on AWS) for multipart uploads.
    pub fn with_part_bytes(mut self, bytes: usize) -> Self {
        self.part_bytes = bytes.max(1);
        self
    }

    fn full_key(&self, key: &str) -> String {
        join_key(&self.prefix, key.trim_matches('/'))
    }

    fn path(&self, key: &str) -> Result<ObjectPath> {
        let full = self.full_key(key);
        ObjectPath::parse(&full).map_err(|e| store_error(&self.url(key), e))
    }

    fn relative(&self, full: &str) -> String {
        if self.prefix.is_empty() {
            return full.to_owned();
        }
        full.strip_prefix(&self.prefix)
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(full)
            .to_owned()
    }

    /// The listing path of `prefix` (`None`: the whole bucket).
    fn prefix_path(&self, prefix: &str) -> Result<Option<ObjectPath>> {
        let full = self.full_key(prefix);
        if full.is_empty() {
            return Ok(None);
        }
        ObjectPath::parse(&full)
            .map(Some)
            .map_err(|e| store_error(&self.url(prefix), e))
    }

    fn info(&self, m: object_store::ObjectMeta) -> ObjectInfo {
        ObjectInfo {
            key: self.relative(m.location.as_ref()),
            size: m.size,
            mtime_ns: nanos(m.last_modified),
            etag: m.e_tag,
        }
    }

    fn put_mode(&self, key: &str, bytes: &[u8], mode: PutMode) -> Result<Option<Version>> {
        let path = self.path(key)?;
        let payload = PutPayload::from(Bytes::copy_from_slice(bytes));
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match block_on(self.client.put_opts(&path, payload, opts)) {
            Ok(r) => Ok(Some(Version(r.e_tag.unwrap_or_default()))),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(&self.url(key), e)),
        }
    }
}

fn nanos(t: chrono::DateTime<chrono::Utc>) -> i128 {
    t.timestamp_nanos_opt().map_or(0, i128::from)
}

impl Store for S3Store {
    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    fn read(&self, key: &str) -> Result<Option<Versioned>> {
        let path = self.path(key)?;
        let got = match block_on(self.client.get(&path)) {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_error(&self.url(key), e)),
        };
        let version = Version(got.meta.e_tag.clone().unwrap_or_default());
        let bytes = block_on(got.bytes()).map_err(|e| store_error(&self.url(key), e))?;
        Ok(Some(Versioned {
            bytes: bytes.to_vec(),
            version,
        }))
    }

    fn write(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.put_mode(key, bytes, PutMode::Overwrite)?
            .map(|_| ())
            .ok_or_else(|| store_error(&self.url(key), "the write was refused"))
    }

    fn create(&self, key: &str, bytes: &[u8]) -> Result<Option<Version>> {
        self.put_mode(key, bytes, PutMode::Create)
    }

    fn replace(&self, key: &str, bytes: &[u8], version: &Version) -> Result<Option<Version>> {
        let update = UpdateVersion {
            e_tag: Some(version.0.clone()),
            version: None,
        };
        self.put_mode(key, bytes, PutMode::Update(update))
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match block_on(self.client.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(&self.url(key), e)),
        }
    }

    fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let path = self.path(key)?;
        match block_on(self.client.head(&path)) {
            Ok(m) => Ok(Some(ObjectInfo {
                key: key.to_owned(),
                size: m.size,
                mtime_ns: nanos(m.last_modified),
                etag: m.e_tag,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(&self.url(key), e)),
        }
    }

    fn list_iter<'a>(&'a self, prefix: &str) -> Result<Listing<'a>> {
        let path = self.prefix_path(prefix)?;
        let url = self.url(prefix);
        // S3 lists keys in UTF-8 binary order, page by page as the stream is polled.
        let mut stream = self.client.list(path.as_ref());
        Ok(Box::new(std::iter::from_fn(move || {
            let next = block_on(stream.next())?;
            Some(next.map(|m| self.info(m)).map_err(|e| store_error(&url, e)))
        })))
    }

    fn list_after(&self, prefix: &str, after: &str) -> Result<Vec<ObjectInfo>> {
        let path = self.prefix_path(prefix)?;
        let offset = self.path(after)?;
        let url = self.url(prefix);
        block_on(
            self.client
                .list_with_offset(path.as_ref(), &offset)
                .map(|m| m.map(|m| self.info(m)).map_err(|e| store_error(&url, e)))
                .collect::<Vec<_>>(),
        )
        .into_iter()
        .collect()
    }

    fn open(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        let path = self.path(key)?;
        let got = block_on(self.client.get(&path)).map_err(|e| store_error(&self.url(key), e))?;
        Ok(Box::new(StreamReader {
            stream: got.into_stream(),
            current: Bytes::new(),
        }))
    }

    fn open_snapshot(&self, expect: &ObjectInfo) -> Result<Box<dyn Read + Send>> {
        let key = &expect.key;
        let path = self.path(key)?;
        let options = GetOptions {
            if_match: expect.etag.clone(),
            ..Default::default()
        };
        let got = match block_on(self.client.get_opts(&path, options)) {
            Ok(got) => got,
            Err(object_store::Error::Precondition { .. }) => {
                return Err(InputError::new(
                    self.url(key),
                    FileError::Changed {
                        detail: "its ETag is no longer the one listed".into(),
                    },
                )
                .into())
            }
            Err(object_store::Error::NotFound { .. }) => {
                return Err(InputError::new(self.url(key), FileError::Vanished).into())
            }
            Err(e) => return Err(store_error(&self.url(key), e)),
        };
        let body = StreamReader {
            stream: got.into_stream(),
            current: Bytes::new(),
        };
        Ok(Box::new(Exact::new(body, expect.size)))
    }

    fn upload(&self, key: &str) -> Result<Box<dyn Upload>> {
        Ok(Box::new(S3Upload {
            client: self.client.clone(),
            path: self.path(key)?,
            url: self.url(key),
            part_bytes: self.part_bytes,
            buffer: Vec::new(),
            multipart: None,
            written: 0,
            done: false,
        }))
    }
}

/// A blocking `Read` over an object's body stream.
struct StreamReader {
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    current: Bytes,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match block_on(self.stream.next()) {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Parts of one multipart upload sent at once while the writer goes on encoding.
pub const PARTS_IN_FLIGHT: usize = 4;

/// One object being written: buffered until it fills a part (one PUT if it never does), then a
/// multipart upload with up to [`PARTS_IN_FLIGHT`] parts uploading while the caller keeps
/// writing. Memory per object: at most (`PARTS_IN_FLIGHT` + 1) parts.
struct S3Upload {
    client: Arc<dyn ObjectStore>,
    path: ObjectPath,
    url: String,
    part_bytes: usize,
    buffer: Vec<u8>,
    multipart: Option<WriteMultipart>,
    written: u64,
    done: bool,
}

impl S3Upload {
    /// Hand `bytes` to the multipart upload (started on the first full part), waiting only
    /// while [`PARTS_IN_FLIGHT`] parts are already uploading.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.multipart.is_none() {
            let upload =
                block_on(self.client.put_multipart(&self.path)).map_err(io::Error::other)?;
            self.multipart = Some(WriteMultipart::new_with_chunk_size(upload, self.part_bytes));
        }
        let upload = self.multipart.as_mut().expect("started above");
        block_on(upload.wait_for_capacity(PARTS_IN_FLIGHT)).map_err(io::Error::other)?;
        // A full part is uploaded by a task on the shared runtime.
        let _runtime = crate::aws::runtime().enter();
        upload.write(bytes);
        crate::stall::stall_point("part_in_flight");
        Ok(())
    }
}

impl Write for S3Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len() as u64;
        if self.multipart.is_some() {
            self.send(buf)?;
            return Ok(buf.len());
        }
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= self.part_bytes {
            let first = std::mem::take(&mut self.buffer);
            self.send(&first)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Upload for S3Upload {
    fn finish(mut self: Box<Self>) -> Result<u64> {
        let result: io::Result<()> = match self.multipart.take() {
            None => {
                let payload = PutPayload::from(std::mem::take(&mut self.buffer));
                block_on(self.client.put(&self.path, payload))
                    .map(|_| ())
                    .map_err(io::Error::other)
            }
            // The last part, then every part awaited, then the completion; a failure aborts.
            Some(upload) => block_on(upload.finish())
                .map(|_| ())
                .map_err(io::Error::other),
        };
        match result {
            Ok(()) => {
                self.done = true;
                Ok(self.written)
            }
            Err(e) => Err(store_error(&self.url, e)),
        }
    }

    fn abort(self: Box<Self>) {}
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(upload) = self.multipart.take() {
            if let Err(e) = block_on(upload.abort()) {
                tracing::warn!(object = %self.url, error = %e, "could not abort a multipart upload; an S3 lifecycle rule (AbortIncompleteMultipartUpload) will remove its parts");
            }
        }
    }
}
