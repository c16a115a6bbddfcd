//! A store rooted at `s3://bucket/prefix`, over object_store's S3 client.
//!
//! Conditional writes use `If-None-Match: *` (create) and `If-Match: <etag>` (replace).
//! Reads stream the object body; uploads send one PUT when the object fits in one part and a
//! multipart upload otherwise, its parts in flight while the writer keeps encoding, aborted if
//! the upload fails or is dropped unfinished, so a failed upload never leaves a visible object.
//!
//! A process killed mid-upload aborts nothing, and S3 keeps the parts it received (billed, and
//! listed by `ListMultipartUploads`) until a lifecycle rule removes them. So each multipart
//! upload's id is written to `_citrine/uploads/<key>` when the upload starts and deleted when it
//! completes or is aborted; [`Store::delete_staging`] of the key (what recovery calls for every
//! file a crashed run's journal recorded) aborts the upload named there.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, MultipartId, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion,
};
use tokio::task::JoinSet;

use super::{join_key, store_error, Exact, Listing, ObjectInfo, Store, Upload, Version, Versioned};
use crate::aws::block_on;
use crate::error::{FileError, InputError, Result};

use crate::aws::DEFAULT_S3_PART_BYTES;

/// Where a multipart upload's id is kept while it runs (below the store's root).
const UPLOADS: &str = "_citrine/uploads";

/// A store over one bucket and key prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
    part_bytes: usize,
}

impl S3Store {
    /// The store at `s3://bucket/prefix` using `client` (an S3 client for `bucket`).
    pub fn new(client: Arc<AmazonS3>, bucket: &str, prefix: &str) -> Self {
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
            record: self.path(&upload_record(key))?,
            url: self.url(key),
            part_bytes: self.part_bytes,
            buffer: Vec::new(),
            multipart: None,
            written: 0,
            done: false,
        }))
    }

    /// Abort the multipart upload of `key` that `_citrine/uploads/<key>` names (one a killed
    /// process left), then delete that record.
    fn delete_staging(&self, key: &str) -> Result<()> {
        let record = upload_record(key);
        let Some(found) = self.read(&record)? else {
            return Ok(());
        };
        let id: MultipartId = String::from_utf8_lossy(&found.bytes).into_owned();
        let path = self.path(key)?;
        match block_on(self.client.abort_multipart(&path, &id)) {
            // Already completed or aborted: nothing left to remove.
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_error(&self.url(key), e)),
        }
        tracing::info!(object = %self.url(key), "aborted the unfinished multipart upload of a stopped run");
        self.delete(&record)
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

/// The key recording the multipart upload of `key`.
fn upload_record(key: &str) -> String {
    format!("{UPLOADS}/{}", key.trim_matches('/'))
}

/// One object being written: buffered until it fills a part (one PUT if it never does), then a
/// multipart upload of equal parts, up to [`PARTS_IN_FLIGHT`] of them uploading while the
/// caller keeps writing. Memory per object: at most (`PARTS_IN_FLIGHT` + 1) parts.
struct S3Upload {
    client: Arc<AmazonS3>,
    path: ObjectPath,
    /// Where the upload's id is kept while it runs.
    record: ObjectPath,
    url: String,
    part_bytes: usize,
    buffer: Vec<u8>,
    multipart: Option<Multipart>,
    written: u64,
    done: bool,
}

/// A multipart upload in progress.
struct Multipart {
    id: MultipartId,
    /// Parts sent so far.
    sent: usize,
    in_flight: JoinSet<object_store::Result<(usize, PartId)>>,
    uploaded: Vec<(usize, PartId)>,
}

impl Multipart {
    /// Wait for one part in flight; false when none is.
    fn join_one(&mut self) -> object_store::Result<bool> {
        match block_on(self.in_flight.join_next()) {
            None => Ok(false),
            Some(joined) => {
                let part = joined.map_err(|e| object_store::Error::Generic {
                    store: "S3",
                    source: Box::new(e),
                })??;
                self.uploaded.push(part);
                Ok(true)
            }
        }
    }
}

impl S3Upload {
    /// Send `part` (a whole part, or the last), starting the multipart upload and recording
    /// its id first, and waiting only while [`PARTS_IN_FLIGHT`] parts are already uploading.
    fn send_part(&mut self, part: Vec<u8>) -> object_store::Result<()> {
        if self.multipart.is_none() {
            let id = block_on(self.client.create_multipart(&self.path))?;
            let recorded = PutPayload::from(Bytes::from(id.clone().into_bytes()));
            self.multipart = Some(Multipart {
                id,
                sent: 0,
                in_flight: JoinSet::new(),
                uploaded: Vec::new(),
            });
            block_on(self.client.put(&self.record, recorded))?;
        }
        let upload = self.multipart.as_mut().expect("started above");
        while upload.in_flight.len() >= PARTS_IN_FLIGHT {
            upload.join_one()?;
        }
        let (client, path, id) = (self.client.clone(), self.path.clone(), upload.id.clone());
        let index = upload.sent;
        upload.sent += 1;
        let part = PutPayload::from(Bytes::from(part));
        upload.in_flight.spawn_on(
            async move {
                let part = client.put_part(&path, &id, index, part).await?;
                Ok((index, part))
            },
            crate::aws::runtime().handle(),
        );
        crate::stall::stall_point("part_in_flight");
        Ok(())
    }

    /// The last part, every part awaited, the completion, the record deleted.
    fn complete(&mut self) -> object_store::Result<()> {
        if !self.buffer.is_empty() {
            let last = std::mem::take(&mut self.buffer);
            self.send_part(last)?;
        }
        let upload = self.multipart.as_mut().expect("a multipart upload");
        while upload.join_one()? {}
        upload.uploaded.sort_by_key(|(index, _)| *index);
        let parts = upload.uploaded.iter().map(|(_, p)| p.clone()).collect();
        block_on(
            self.client
                .complete_multipart(&self.path, &upload.id, parts),
        )?;
        self.multipart = None;
        block_on(self.client.delete(&self.record))
    }
}

impl Write for S3Upload {
    /// Parts are cut from the bytes as they come, each a buffer of exactly `part_bytes` (a large
    /// write is not held whole, and a part in flight holds no more than itself).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len() as u64;
        let mut rest = buf;
        loop {
            let room = self.part_bytes - self.buffer.len();
            if rest.len() < room {
                self.buffer.extend_from_slice(rest);
                return Ok(buf.len());
            }
            self.buffer.extend_from_slice(&rest[..room]);
            rest = &rest[room..];
            let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.part_bytes));
            self.send_part(part).map_err(io::Error::other)?;
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Upload for S3Upload {
    fn finish(mut self: Box<Self>) -> Result<u64> {
        let result = match self.multipart {
            None => {
                let payload = PutPayload::from(std::mem::take(&mut self.buffer));
                block_on(self.client.put(&self.path, payload)).map(|_| ())
            }
            // A failure leaves the upload to `drop`, which aborts it.
            Some(_) => self.complete(),
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
        let Some(mut upload) = self.multipart.take() else {
            return;
        };
        // Parts still uploading first (an abort while a part lands may leave that part).
        while let Ok(true) = upload.join_one() {}
        match block_on(self.client.abort_multipart(&self.path, &upload.id)) {
            Ok(()) => {
                let _ = block_on(self.client.delete(&self.record));
            }
            Err(e) => {
                tracing::warn!(object = %self.url, error = %e, "could not abort a multipart upload; the next run's recovery does (or an S3 lifecycle rule, AbortIncompleteMultipartUpload)");
            }
        }
    }
}
