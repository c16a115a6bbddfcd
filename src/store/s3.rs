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

use super::{
    join_key, store_error, Exact, Listing, ObjectInfo, Prerequisite, Store, Upload, Version,
    Versioned,
};
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

    /// An upload of `key` that waits for `before` (if any) ahead of its first request.
    fn new_upload(
        &self,
        key: &str,
        before: Option<std::thread::JoinHandle<Result<()>>>,
    ) -> Result<S3Upload> {
        Ok(S3Upload {
            client: self.client.clone(),
            path: self.path(key)?,
            record: self.path(&upload_record(key))?,
            url: self.url(key),
            part_bytes: self.part_bytes,
            buffer: Vec::new(),
            before,
            multipart: None,
            written: 0,
            done: false,
        })
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
        Ok(Box::new(self.new_upload(key, None)?))
    }

    /// `first` runs at once on a thread of its own while the writer fills the first part: an
    /// upload sends nothing until a part is full or it is finished, and waits for `first` then.
    fn upload_after(&self, key: &str, first: Prerequisite) -> Result<Box<dyn Upload>> {
        let pending = std::thread::Builder::new()
            .name("citrine-journal".into())
            .spawn(first)
            .map_err(|e| crate::error::Error::io("starting a thread for a journal entry", e))?;
        Ok(Box::new(self.new_upload(key, Some(pending))?))
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
/// multipart upload of equal parts driven by a task of its own, so the writer never waits on a
/// request: the task starts the upload, records its id, keeps up to [`PARTS_IN_FLIGHT`] parts
/// uploading and completes it; the writer waits only when one more part is already queued.
/// Memory per object: at most (`PARTS_IN_FLIGHT` + 2) parts.
struct S3Upload {
    client: Arc<AmazonS3>,
    path: ObjectPath,
    /// Where the upload's id is kept while it runs.
    record: ObjectPath,
    url: String,
    part_bytes: usize,
    buffer: Vec<u8>,
    /// What must be done before the first request (see [`Store::upload_after`]).
    before: Option<std::thread::JoinHandle<Result<()>>>,
    multipart: Option<Driven>,
    written: u64,
    done: bool,
}

/// What the writer sends the task of a multipart upload.
enum Part {
    /// The next part.
    Next(Bytes),
    /// No more parts: complete the upload. Without it (the sender dropped) the task aborts it.
    Complete,
}

/// A multipart upload's task and the way to it.
struct Driven {
    parts: tokio::sync::mpsc::Sender<Part>,
    task: tokio::task::JoinHandle<object_store::Result<()>>,
    /// Test hook only ([`PART_IN_FLIGHT`] armed): told when the task has a part uploading.
    uploading: Option<std::sync::mpsc::Receiver<()>>,
}

/// The stall point (see [`crate::stall`]) where a writer stops once a part of its multipart
/// upload is uploading (the upload started and recorded).
const PART_IN_FLIGHT: &str = "part_in_flight";

/// Start the multipart upload of `path`, record its id at `record`, upload the parts as they
/// come, then complete it (on [`Part::Complete`]) or abort it (the writer gone, or a part
/// failed), deleting the record either way.
async fn drive(
    client: Arc<AmazonS3>,
    path: ObjectPath,
    record: ObjectPath,
    mut parts: tokio::sync::mpsc::Receiver<Part>,
    uploading: Option<std::sync::mpsc::Sender<()>>,
) -> object_store::Result<()> {
    let id = client.create_multipart(&path).await?;
    let recorded = PutPayload::from(Bytes::from(id.clone().into_bytes()));
    if let Err(e) = client.put(&record, recorded).await {
        let _ = client.abort_multipart(&path, &id).await;
        return Err(e);
    }
    let sent = send_parts(&client, &path, &id, &mut parts, uploading).await;
    let ended = match sent {
        Ok(Some(uploaded)) => client
            .complete_multipart(&path, &id, uploaded)
            .await
            .map(|_| ()),
        Ok(None) => Err(object_store::Error::Generic {
            store: "S3",
            source: "the upload was given up before it was complete".into(),
        }),
        Err(e) => Err(e),
    };
    if ended.is_err() {
        match client.abort_multipart(&path, &id).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(abort) => {
                // The record stays: the next run's recovery aborts the upload it names.
                tracing::warn!(object = %path, error = %abort, "could not abort a multipart upload; the next run's recovery does (or an S3 lifecycle rule, AbortIncompleteMultipartUpload)");
                return ended;
            }
        }
    }
    // The upload has ended (completed or aborted): its record goes.
    let _ = client.delete(&record).await;
    ended
}

/// Upload the parts as they come, [`PARTS_IN_FLIGHT`] at a time; `None` when the writer went
/// away before completing (every part started has ended by then).
async fn send_parts(
    client: &Arc<AmazonS3>,
    path: &ObjectPath,
    id: &MultipartId,
    parts: &mut tokio::sync::mpsc::Receiver<Part>,
    uploading: Option<std::sync::mpsc::Sender<()>>,
) -> object_store::Result<Option<Vec<PartId>>> {
    let mut in_flight: JoinSet<object_store::Result<(usize, PartId)>> = JoinSet::new();
    let mut uploaded = Vec::new();
    let mut sent = 0;
    let joined = |j: std::result::Result<object_store::Result<(usize, PartId)>, _>| {
        j.map_err(|e: tokio::task::JoinError| object_store::Error::Generic {
            store: "S3",
            source: Box::new(e),
        })?
    };
    let complete = loop {
        let Some(part) = parts.recv().await else {
            break false;
        };
        let Part::Next(bytes) = part else {
            break true;
        };
        while in_flight.len() >= PARTS_IN_FLIGHT {
            if let Some(j) = in_flight.join_next().await {
                uploaded.push(joined(j)?);
            }
        }
        let (client, path, id, index) = (client.clone(), path.clone(), id.clone(), sent);
        sent += 1;
        in_flight.spawn(async move {
            let part = client.put_part(&path, &id, index, bytes.into()).await?;
            Ok((index, part))
        });
        if let Some(told) = &uploading {
            let _ = told.send(());
        }
    };
    while let Some(j) = in_flight.join_next().await {
        uploaded.push(joined(j)?);
    }
    if !complete {
        return Ok(None);
    }
    uploaded.sort_by_key(|(index, _)| *index);
    Ok(Some(uploaded.into_iter().map(|(_, p)| p).collect()))
}

impl S3Upload {
    /// Wait for what must be done before the first request.
    fn before_first_request(&mut self) -> Result<()> {
        match self.before.take() {
            None => Ok(()),
            Some(pending) => crate::error::joined(pending.join(), || {
                format!("{}: the work before its upload", self.url)
            }),
        }
    }

    /// Hand `part` (a whole part) to the upload's task, starting the task first.
    fn send_part(&mut self, part: Vec<u8>) -> Result<()> {
        if self.multipart.is_none() {
            self.before_first_request()?;
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let (client, path, record) =
                (self.client.clone(), self.path.clone(), self.record.clone());
            let (told, uploading) = crate::stall::armed(PART_IN_FLIGHT)
                .then(std::sync::mpsc::channel)
                .unzip();
            let task = crate::aws::runtime().spawn(drive(client, path, record, rx, told));
            self.multipart = Some(Driven {
                parts: tx,
                task,
                uploading,
            });
        }
        let driven = self.multipart.as_ref().expect("started above");
        if driven
            .parts
            .blocking_send(Part::Next(Bytes::from(part)))
            .is_err()
        {
            // The task ended early: it failed.
            return Err(self.end_task(false).err().unwrap_or_else(|| {
                store_error(&self.url, "the multipart upload ended before its last part")
            }));
        }
        if let Some(uploading) = &driven.uploading {
            if uploading.recv().is_ok() {
                crate::stall::stall_point(PART_IN_FLIGHT);
            }
        }
        Ok(())
    }

    /// End the multipart upload: completed when `complete`, else aborted; waits for its task.
    fn end_task(&mut self, complete: bool) -> Result<()> {
        let Some(driven) = self.multipart.take() else {
            return Ok(());
        };
        if complete {
            let _ = driven.parts.blocking_send(Part::Complete);
        }
        drop(driven.parts);
        match block_on(driven.task) {
            Ok(result) => result.map_err(|e| store_error(&self.url, e)),
            Err(e) => Err(store_error(&self.url, e)),
        }
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
        let result = if self.multipart.is_none() {
            self.before_first_request()?;
            let payload = PutPayload::from(std::mem::take(&mut self.buffer));
            block_on(self.client.put(&self.path, payload))
                .map(|_| ())
                .map_err(|e| store_error(&self.url, e))
        } else {
            let last = std::mem::take(&mut self.buffer);
            // A failure leaves the upload to `drop`, which aborts it.
            let sent = if last.is_empty() {
                Ok(())
            } else {
                self.send_part(last)
            };
            sent.and_then(|()| self.end_task(true))
        };
        result?;
        self.done = true;
        Ok(self.written)
    }

    fn abort(self: Box<Self>) {}
}

impl Drop for S3Upload {
    /// An unfinished upload is aborted, and waited for: when this returns, no part of it is
    /// uploading and S3 keeps none.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Err(e) = self.end_task(false) {
            tracing::debug!(object = %self.url, error = %e, "an unfinished multipart upload ended");
        }
    }
}
