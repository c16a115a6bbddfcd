//! Hive-partitioned Parquet files, one open writer per partition.
//!
//! Memory is bounded three ways: at most `max_open_files` writers are open (the least
//! recently used is closed past it); encoded-but-unflushed row groups across open writers stay
//! under `memory_budget_bytes` (the largest is flushed to its file past it); a file is closed
//! and a new one started once it reaches `target_file_bytes`. Each file is a streaming
//! [`Upload`] to the lake's store (locally a temporary dot-name renamed into place; on S3 one
//! PUT or a multipart upload), published only when closed, so a reader never sees half a file;
//! files become part of the table when the run's marker lands. A closed file is encoded to its
//! end and published on a thread of its own while the writer goes on (its memory still counted
//! in the budget until it is done), and a worker closes its files of a customer as soon as its
//! next input is another customer's ([`PartitionedWriter::next_input_customer`]), so uploads
//! and fsyncs spread over the run instead of all waiting for its end.
//!
//! One input at a time may be written *tentatively* ([`PartitionedWriter::begin_input`]): its
//! rows go to files of their own, which [`PartitionedWriter::commit_input`] hands to the
//! writer's shared files and [`PartitionedWriter::rollback_input`] deletes, so an input that
//! fails after some of its rows were encoded leaves nothing in the run. The budget and the
//! open-file cap count tentative files with the others.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use crate::config::{Codec, WriteOptions};
use crate::error::{joined, Error, Result};
use crate::lake::Lake;
use crate::partition::{PartitionBatch, PartitionKey};
use crate::store::Upload;

use super::file::FileWriter;

/// One data file a run wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrittenFile {
    /// Key below the lake root, `/`-separated.
    pub key: String,
    /// Exact size in bytes.
    pub bytes: u64,
    /// Rows in it.
    pub rows: u64,
    /// Its partition.
    pub partition: PartitionKey,
    /// The longest value in bytes of each string column, by column index (0 for other
    /// columns): what Redshift's VARCHAR widths must hold.
    #[serde(default)]
    pub widths: Vec<u32>,
}

/// The longest value of each string column of `schema` over `files`, by name (a column no
/// file has a value of is 0).
pub fn column_widths(
    schema: &arrow::datatypes::Schema,
    files: &[WrittenFile],
) -> std::collections::BTreeMap<String, u32> {
    schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.data_type() == &arrow::datatypes::DataType::Utf8)
        .map(|(i, f)| {
            let longest = files
                .iter()
                .filter_map(|file| file.widths.get(i))
                .copied()
                .max()
                .unwrap_or(0);
            (f.name().clone(), longest)
        })
        .collect()
}

/// Raise `widths` (by column index) to the longest value of each string column of `batch`.
fn widen(widths: &mut [u32], batch: &RecordBatch) {
    for (width, column) in widths.iter_mut().zip(batch.columns()) {
        let Some(strings) = column.as_string_opt::<i32>() else {
            continue;
        };
        let offsets = strings.value_offsets();
        // No value can be longer than all of them together.
        let total = (offsets[offsets.len() - 1] - offsets[0]) as u32;
        if total <= *width {
            continue;
        }
        let longest = offsets
            .windows(2)
            .map(|w| (w[1] - w[0]) as u32)
            .max()
            .unwrap_or(0);
        *width = (*width).max(longest);
    }
}

impl WrittenFile {
    /// The file as a run report and its manifest record it.
    pub fn record(&self, lake: &Lake) -> crate::commit::WrittenRecord {
        crate::commit::WrittenRecord {
            url: lake.url(&self.key),
            key: self.key.clone(),
            bytes: self.bytes,
            rows: self.rows,
            customer: self.partition.customer.clone(),
            dt: self.partition.date(),
        }
    }
}

/// Columns written without a dictionary: unique or nearly unique per row.
pub const UNIQUE_COLUMNS: &[&str] = &["ts", "row_num", "x_edge_request_id"];

/// Writer properties for citrine's Parquet: Parquet v1 data pages and writer version (what
/// Redshift COPY and Spectrum read), the configured codec, bounded row groups. A column that
/// keeps a dictionary may still lose it in a file, by its own values (see
/// [`crate::write::dictionary`]).
fn file_properties(options: &WriteOptions) -> WriterProperties {
    let compression = match options.codec {
        Codec::Snappy => Compression::SNAPPY,
        Codec::Zstd => Compression::ZSTD(ZstdLevel::default()),
        Codec::Gzip => Compression::GZIP(GzipLevel::default()),
        Codec::None => Compression::UNCOMPRESSED,
    };
    let mut builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(compression)
        .set_max_row_group_row_count(Some(options.row_group_rows))
        .set_created_by(crate::CREATED_BY.to_owned());
    // Columns that are (nearly) unique per row gain nothing from a dictionary and cost a hash
    // table insert per value until the writer gives up on it (a profile showed ~16% of a
    // CloudFront run in dictionary interning).
    for column in UNIQUE_COLUMNS {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    builder.build()
}

/// Threads that publish a writer's last files together (see [`PartitionedWriter::finish`]).
const PUBLISH_THREADS: usize = 16;

/// Files a writer publishes in the background while it goes on encoding (see
/// [`PartitionedWriter::close`]); closing one more first waits for the oldest.
const PUBLISHING_MAX: usize = 8;

struct OpenFile {
    writer: FileWriter<Box<dyn Upload>>,
    url: String,
    key: String,
    rows: u64,
    last_used: u64,
    /// The writer's `memory_size()` after its last write or flush. Only writing to or
    /// flushing a file changes it, so the budget check sums these instead of asking every
    /// open writer (a walk over all its columns) after each batch.
    memory: u64,
    /// Longest value per string column so far (see [`WrittenFile::widths`]).
    widths: Vec<u32>,
}

impl OpenFile {
    /// Encode the last row group and the footer: what is left is to publish.
    fn seal(self, partition: PartitionKey) -> Result<Sealed> {
        let upload = self
            .writer
            .into_inner()
            .map_err(|source| parquet_error(&self.url, source))?;
        Ok(Sealed {
            upload,
            key: self.key,
            rows: self.rows,
            partition,
            widths: self.widths,
        })
    }
}

/// A file whose bytes are all written, not yet published.
struct Sealed {
    upload: Box<dyn Upload>,
    key: String,
    rows: u64,
    partition: PartitionKey,
    widths: Vec<u32>,
}

impl Sealed {
    /// Publish the file (see [`Upload::finish`]).
    fn publish(self) -> Result<WrittenFile> {
        let bytes = self.upload.finish()?;
        Ok(WrittenFile {
            key: self.key,
            bytes,
            rows: self.rows,
            partition: self.partition,
            widths: self.widths,
        })
    }
}

/// A closed file being encoded to its end and published on a thread of its own.
struct Publishing {
    key: String,
    /// What its writer held when it was closed (counted in the budget until it is done).
    memory: u64,
    publish: JoinHandle<Result<WrittenFile>>,
}

/// Which open file a partition batch goes to: the writer's shared one for the partition, or
/// the tentative input's own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Slot {
    key: PartitionKey,
    tentative: bool,
}

/// Where a writer records each data file before its first byte is written (a run's journal),
/// so that a crash leaves no file nobody knows of.
pub trait FileLog: Send + Sync + std::fmt::Debug {
    /// Record the data file `key` (below the lake root) before it is written.
    fn before_write(&self, key: &str) -> Result<()>;
}

/// Writes partition batches of one table for one run.
pub struct PartitionedWriter {
    lake: Lake,
    table: String,
    run_id: String,
    schema: SchemaRef,
    options: WriteOptions,
    sequence: Arc<AtomicU64>,
    open: HashMap<Slot, OpenFile>,
    tick: u64,
    written: Vec<WrittenFile>,
    /// Files of the tentative input closed so far; `None` when no input is tentative.
    tentative: Option<Vec<WrittenFile>>,
    /// Where each file is recorded before it is written, so a crash leaves nothing unknown.
    journal: Option<Arc<dyn FileLog>>,
    /// Closed files being published on threads of their own, oldest first.
    publishing: VecDeque<Publishing>,
    /// The `{customer}` of the inputs written since the last change (see
    /// [`Self::next_input_customer`]).
    customer: Option<String>,
}

impl PartitionedWriter {
    /// A writer for `table` in `run_id`. `sequence` numbers files; writers of one run share it
    /// so names never collide. `options` limits apply to this writer alone.
    pub fn new(
        lake: Lake,
        table: &str,
        run_id: &str,
        schema: SchemaRef,
        options: WriteOptions,
        sequence: Arc<AtomicU64>,
    ) -> Self {
        Self {
            lake,
            table: table.to_owned(),
            run_id: run_id.to_owned(),
            schema,
            options,
            sequence,
            open: HashMap::new(),
            tick: 0,
            written: Vec::new(),
            tentative: None,
            journal: None,
            publishing: VecDeque::new(),
            customer: None,
        }
    }

    /// The next input's rows belong to `customer` (its `{customer}` path segment). The plan
    /// lists each customer's inputs together, so when the customer changes, no more rows of the
    /// previous one are expected: its files are closed now and published while the next
    /// customer's inputs are encoded, instead of all at the end of the run. On S3 that spreads
    /// the uploads over the run, and either way it frees their memory early. Should rows of a
    /// closed partition come after all (a worker that took over part of another's range), they
    /// go to a new file.
    pub fn next_input_customer(&mut self, customer: Option<&str>) -> Result<()> {
        let Some(customer) = customer else {
            return Ok(());
        };
        if self.customer.as_deref() == Some(customer) {
            return Ok(());
        }
        let changed = self.customer.replace(customer.to_owned()).is_some();
        if !changed || self.tentative.is_some() {
            return Ok(());
        }
        let shared: Vec<Slot> = self.open.keys().filter(|s| !s.tentative).cloned().collect();
        for slot in shared {
            self.close(&slot)?;
        }
        Ok(())
    }

    /// Record every file in `journal` before writing it.
    pub fn with_journal(mut self, journal: Arc<dyn FileLog>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// From now until [`Self::commit_input`] or [`Self::rollback_input`], written rows go to
    /// files of their own. Calling it again while an input is tentative changes nothing.
    pub fn begin_input(&mut self) {
        self.tentative.get_or_insert_with(Vec::new);
    }

    /// True while an input is written tentatively.
    pub fn is_tentative(&self) -> bool {
        self.tentative.is_some()
    }

    /// The tentative input decoded cleanly: its files become ordinary files of the run. An open
    /// one takes the place of the partition's shared file when there is none (later inputs
    /// append to it); otherwise it is closed.
    pub fn commit_input(&mut self) -> Result<()> {
        let Some(closed) = self.tentative.take() else {
            return Ok(());
        };
        self.written.extend(closed);
        let mine: Vec<Slot> = self.open.keys().filter(|s| s.tentative).cloned().collect();
        for slot in mine {
            let shared = Slot {
                key: slot.key.clone(),
                tentative: false,
            };
            if self.open.contains_key(&shared) {
                let file = self.open.remove(&slot).expect("listed above");
                self.written.push(file.seal(slot.key)?.publish()?);
            } else {
                let file = self.open.remove(&slot).expect("listed above");
                self.open.insert(shared, file);
            }
        }
        Ok(())
    }

    /// The tentative input failed: its open files are dropped (their uploads aborted) and its
    /// closed files deleted. An error here means a file of the input may still be in the lake,
    /// so the caller must fail the run (its recovery then deletes every file of the run).
    pub fn rollback_input(&mut self) -> Result<()> {
        let Some(closed) = self.tentative.take() else {
            return Ok(());
        };
        self.open.retain(|slot, _| !slot.tentative);
        for f in closed {
            self.lake.store().delete(&f.key)?;
        }
        Ok(())
    }

    /// Write one partition's rows.
    pub fn write(&mut self, part: PartitionBatch) -> Result<()> {
        if part.batch.num_rows() == 0 {
            return Ok(());
        }
        self.tick += 1;
        let slot = Slot {
            key: part.key,
            tentative: self.tentative.is_some(),
        };
        if !self.open.contains_key(&slot) {
            if self.open.len() >= self.options.max_open_files {
                let lru = self
                    .open
                    .iter()
                    .min_by_key(|(_, f)| f.last_used)
                    .map(|(k, _)| k.clone());
                if let Some(k) = lru {
                    self.close(&k)?;
                }
            }
            let file = self.create(&slot.key)?;
            self.open.insert(slot.clone(), file);
        }
        let tick = self.tick;
        let file = self.open.get_mut(&slot).expect("opened above");
        file.writer
            .write(&part.batch)
            .map_err(|source| parquet_error(&file.url, source))?;
        file.rows += part.batch.num_rows() as u64;
        widen(&mut file.widths, &part.batch);
        file.last_used = tick;
        file.memory = file.writer.memory_size() as u64;
        let size = file.writer.bytes_written() as u64 + file.writer.in_progress_size() as u64;
        if size >= self.options.target_file_bytes {
            self.close(&slot)?;
        } else {
            self.enforce_budget()?;
        }
        Ok(())
    }

    /// Bytes held in unflushed row groups across open files and files still being published.
    pub fn buffered_bytes(&self) -> u64 {
        let publishing: u64 = self.publishing.iter().map(|p| p.memory).sum();
        self.open.values().map(|f| f.memory).sum::<u64>() + publishing
    }

    fn enforce_budget(&mut self) -> Result<()> {
        // Files being published free their memory once they are done: wait for those first.
        while self.buffered_bytes() > self.options.memory_budget_bytes
            && !self.publishing.is_empty()
        {
            self.join_oldest()?;
        }
        while self.buffered_bytes() > self.options.memory_budget_bytes {
            let largest = self
                .open
                .values_mut()
                .filter(|f| f.writer.in_progress_rows() > 0)
                .max_by_key(|f| f.memory);
            let Some(file) = largest else { break };
            file.writer
                .flush()
                .map_err(|source| parquet_error(&file.url, source))?;
            file.memory = file.writer.memory_size() as u64;
        }
        Ok(())
    }

    fn create(&self, key: &PartitionKey) -> Result<OpenFile> {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        let name = format!("part-{}-{n:05}.parquet", self.run_id);
        let rel = format!(
            "{}/{}/{name}",
            self.lake.data_prefix(&self.table),
            key.path()
        );
        let url = self.lake.url(&rel);
        // The journal's entry lands before the file's first byte does (on S3 while the first
        // part fills; see `Store::upload_after`).
        let upload = match &self.journal {
            Some(journal) => {
                let (journal, entry) = (journal.clone(), rel.clone());
                let first = Box::new(move || journal.before_write(&entry));
                self.lake.store().upload_after(&rel, first)?
            }
            None => self.lake.store().upload(&rel)?,
        };
        let props = file_properties(&self.options);
        let writer = FileWriter::try_new(upload, self.schema.clone(), props)
            .map_err(|source| parquet_error(&url, source))?;
        Ok(OpenFile {
            writer,
            url,
            key: rel,
            rows: 0,
            last_used: self.tick,
            memory: 0,
            widths: vec![0; self.schema.fields().len()],
        })
    }

    /// Close the file of `slot`. Its last row group and footer are encoded, and the file
    /// published, on a thread of its own (at most [`PUBLISHING_MAX`] at a time, their memory
    /// counted in the budget until they are done), so the worker goes on decoding instead of
    /// waiting on storage (an fsync; on S3 the last parts and the completion). A tentative
    /// input's file is published before this returns: a rollback may have to delete it.
    fn close(&mut self, slot: &Slot) -> Result<()> {
        let Some(file) = self.open.remove(slot) else {
            return Ok(());
        };
        if let Some(closed) = self.tentative.as_mut().filter(|_| slot.tentative) {
            closed.push(file.seal(slot.key.clone())?.publish()?);
            return Ok(());
        }
        while self.publishing.len() >= PUBLISHING_MAX {
            self.join_oldest()?;
        }
        let (key, memory, partition) = (file.key.clone(), file.memory, slot.key.clone());
        let publish = std::thread::Builder::new()
            .name("citrine-publish".into())
            .spawn(move || file.seal(partition)?.publish())
            .map_err(|e| Error::io("starting a thread to publish a file", e))?;
        self.publishing.push_back(Publishing {
            key,
            memory,
            publish,
        });
        Ok(())
    }

    /// Wait for the oldest file being published in the background.
    fn join_oldest(&mut self) -> Result<()> {
        let Some(Publishing { key, publish, .. }) = self.publishing.pop_front() else {
            return Ok(());
        };
        let written = joined(publish.join(), || {
            format!("publishing {}", self.lake.url(&key))
        })?;
        self.written.push(written);
        Ok(())
    }

    /// Wait for every file being published in the background; the first failure is returned
    /// after all have ended.
    fn join_publishing(&mut self) -> Result<()> {
        let mut first = Ok(());
        while !self.publishing.is_empty() {
            if let Err(e) = self.join_oldest() {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Close every open file and return all files written, sorted by key.
    ///
    /// The files' last row groups and footers are encoded one after the other (CPU work);
    /// then they are published together, on up to [`PUBLISH_THREADS`] threads: publishing waits
    /// on storage (locally an fsync per file, on S3 an upload's last parts and completion), and
    /// one after the other those waits were most of a run's last half second. Files still
    /// publishing in the background from earlier closes go on while the open ones are encoded,
    /// and are waited for before those are published.
    pub fn finish(mut self) -> Result<Vec<WrittenFile>> {
        // An input still tentative here is a caller bug: its rows would be published unchecked.
        if self.tentative.is_some() {
            return Err(Error::Internal {
                message: "a writer finished while an input was still tentative".into(),
            });
        }
        // Sealed while the background publishes go on (encoding beside their uploads), and
        // those are waited for before anything more is published, even when a seal fails.
        let sealed: Result<Vec<Sealed>> = self
            .open
            .drain()
            .map(|(slot, file)| file.seal(slot.key))
            .collect();
        let background = self.join_publishing();
        let encoded = sealed?;
        let threads = encoded.len().min(PUBLISH_THREADS);
        let queue = Mutex::new(encoded.into_iter());
        let published: Vec<Result<WrittenFile>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                            let Some(sealed) = next else {
                                return done;
                            };
                            done.push(sealed.publish());
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(Error::io(
                            "publishing files",
                            std::io::Error::other("panicked"),
                        ))]
                    })
                })
                .collect()
        });
        background?;
        let mut written = std::mem::take(&mut self.written);
        for file in published {
            written.push(file?);
        }
        written.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(written)
    }

    /// Drop every open file: their uploads are aborted, nothing of them is published. Returns
    /// the files closed so far (those published in the background once they are), which stay
    /// for the caller (or the next run's recovery) to remove.
    pub fn abort(mut self) -> Vec<WrittenFile> {
        self.open.clear();
        // A failed background publish left nothing visible (its upload was dropped).
        let _ = self.join_publishing();
        self.written()
    }

    /// The files closed and published so far, a tentative input's included (not those still
    /// being published in the background).
    pub fn written(&self) -> Vec<WrittenFile> {
        let mut all = self.written.clone();
        all.extend(self.tentative.iter().flatten().cloned());
        all
    }
}

fn parquet_error(url: &str, source: parquet::errors::ParquetError) -> Error {
    Error::Parquet {
        path: url.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::split;
    use crate::schema::lineage_fields;
    use arrow::array::{
        Date32Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::{DataType, Schema};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn batch(customers: &[&str], days: &[i32], n: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(lineage_fields().to_vec()));
        let rows = customers.len() * days.len() * n;
        let mut c = Vec::with_capacity(rows);
        let mut d = Vec::with_capacity(rows);
        for cu in customers {
            for day in days {
                for _ in 0..n {
                    c.push(*cu);
                    d.push(*day);
                }
            }
        }
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMicrosecondArray::from(vec![0; rows]).with_timezone("UTC")),
                Arc::new(StringArray::from(c)),
                Arc::new(Date32Array::from(d)),
                Arc::new(StringArray::from(vec!["src"; rows])),
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            ],
        )
        .unwrap()
    }

    /// A writer with default options but at most `max_open_files` open.
    fn capped(dir: &std::path::Path, max_open_files: usize) -> PartitionedWriter {
        let options = WriteOptions {
            max_open_files,
            ..Default::default()
        };
        writer(dir, options)
    }

    fn writer(dir: &std::path::Path, options: WriteOptions) -> PartitionedWriter {
        PartitionedWriter::new(
            Lake::local(dir).unwrap(),
            "t",
            "r1",
            Arc::new(Schema::new(lineage_fields().to_vec())),
            options,
            Arc::new(AtomicU64::new(0)),
        )
    }

    #[test]
    fn files_land_in_hive_folders_with_exact_sizes_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), WriteOptions::default());
        for part in split(&batch(&["acme", "globex"], &[18_234, 18_235], 10)).unwrap() {
            w.write(part).unwrap();
        }
        let files = w.finish().unwrap();
        let keys: Vec<_> = files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "data/t/customer=acme/dt=2019-12-04/part-r1-00000.parquet",
                "data/t/customer=acme/dt=2019-12-05/part-r1-00001.parquet",
                "data/t/customer=globex/dt=2019-12-04/part-r1-00002.parquet",
                "data/t/customer=globex/dt=2019-12-05/part-r1-00003.parquet",
            ]
        );
        for f in &files {
            assert_eq!(f.rows, 10);
            let path = dir.path().join(&f.key);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), f.bytes);
            let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
            let meta = reader.metadata().file_metadata();
            assert_eq!(meta.num_rows(), 10);
            assert_eq!(meta.version(), 1);
        }
        // No temporary file is left behind.
        let leftovers = walk(dir.path())
            .into_iter()
            .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with('.')))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn a_tentative_input_is_committed_into_the_run_or_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = capped(dir.path(), 3);
        for part in split(&batch(&["acme"], &[1], 2)).unwrap() {
            w.write(part).unwrap();
        }
        // A failing input: its rows reach files of their own, some closed by the cap.
        w.begin_input();
        for part in split(&batch(&["acme", "globex"], &[1, 2, 3], 5)).unwrap() {
            w.write(part).unwrap();
        }
        assert!(!w.written().is_empty(), "the cap closed tentative files");
        w.rollback_input().unwrap();
        assert!(!w.is_tentative());
        // A good input: committed, its open file for a partition without a shared one stays
        // open and takes the next rows.
        w.begin_input();
        for part in split(&batch(&["acme"], &[1, 2], 3)).unwrap() {
            w.write(part).unwrap();
        }
        w.commit_input().unwrap();
        for part in split(&batch(&["acme"], &[2], 1)).unwrap() {
            w.write(part).unwrap();
        }
        let files = w.finish().unwrap();
        let rows: Vec<(String, u64)> = files.iter().map(|f| (f.partition.path(), f.rows)).collect();
        assert_eq!(
            rows,
            [
                ("customer=acme/dt=1970-01-02".to_string(), 2),
                ("customer=acme/dt=1970-01-02".to_string(), 3),
                ("customer=acme/dt=1970-01-03".to_string(), 4),
            ]
        );
        // Nothing of the rolled-back input is on disk: only the three files listed.
        let on_disk = walk(dir.path());
        assert_eq!(on_disk.len(), 3, "{on_disk:?}");
    }

    #[test]
    fn finishing_with_a_tentative_input_is_a_bug_not_a_publish() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = capped(dir.path(), 3);
        w.begin_input();
        for part in split(&batch(&["acme"], &[1], 2)).unwrap() {
            w.write(part).unwrap();
        }
        let err = w.finish().unwrap_err();
        assert!(matches!(err, Error::Internal { .. }), "{err}");
    }

    #[test]
    fn open_file_cap_closes_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = capped(dir.path(), 2);
        let days: Vec<i32> = (0..5).collect();
        for part in split(&batch(&["acme"], &days, 3)).unwrap() {
            w.write(part).unwrap();
            assert!(w.open.len() <= 2);
        }
        let files = w.finish().unwrap();
        assert_eq!(files.len(), 5);
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 15);
    }

    #[test]
    fn finishing_publishes_every_open_file() {
        // More open files than publishing threads: each is published once, whole.
        let dir = tempfile::tempdir().unwrap();
        let mut w = capped(dir.path(), 1000);
        let days: Vec<i32> = (0..(PUBLISH_THREADS as i32 * 2 + 3)).collect();
        for part in split(&batch(&["acme", "globex"], &days, 2)).unwrap() {
            w.write(part).unwrap();
        }
        assert_eq!(w.open.len(), days.len() * 2);
        let files = w.finish().unwrap();
        assert_eq!(files.len(), days.len() * 2);
        assert!(
            files.windows(2).all(|f| f[0].key < f[1].key),
            "sorted, no repeats"
        );
        for f in &files {
            assert_eq!(f.rows, 2);
            let path = dir.path().join(&f.key);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), f.bytes);
        }
        assert_eq!(
            walk(dir.path()).len(),
            files.len(),
            "no temporary file left"
        );
    }

    #[test]
    fn a_new_customer_closes_the_last_ones_files_and_publishes_them_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), WriteOptions::default());
        let write = |w: &mut PartitionedWriter, customer: &str, days: &[i32]| {
            w.next_input_customer(Some(customer)).unwrap();
            for part in split(&batch(&[customer], days, 5)).unwrap() {
                w.write(part).unwrap();
            }
        };
        write(&mut w, "acme", &[1, 2]);
        write(&mut w, "acme", &[2, 3]);
        assert_eq!(w.open.len(), 3, "the same customer keeps its files open");
        write(&mut w, "globex", &[1]);
        assert_eq!(w.open.len(), 1, "only globex's file is open");
        assert_eq!(w.publishing.len() + w.written.len(), 3);
        // A customer seen before (a worker that took over part of another's range): new files.
        write(&mut w, "acme", &[3]);
        // No `{customer}` in the pattern: nothing is closed.
        w.next_input_customer(None).unwrap();
        assert_eq!(w.open.len(), 1);
        let files = w.finish().unwrap();
        let acme_day3 = files
            .iter()
            .filter(|f| f.key.contains("customer=acme/dt=1970-01-04"))
            .map(|f| f.rows)
            .collect::<Vec<_>>();
        assert_eq!(acme_day3, [5, 5]);
        assert_eq!(files.len(), 5);
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 5 * 6);
        for f in &files {
            let path = dir.path().join(&f.key);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), f.bytes);
        }
        assert_eq!(walk(dir.path()).len(), 5, "no temporary file left");
    }

    #[test]
    fn more_closed_files_than_publishing_threads_are_all_published() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), WriteOptions::default());
        let days: Vec<i32> = (0..(PUBLISHING_MAX as i32 * 3)).collect();
        for customer in ["acme", "globex", "initech"] {
            w.next_input_customer(Some(customer)).unwrap();
            for part in split(&batch(&[customer], &days, 2)).unwrap() {
                w.write(part).unwrap();
            }
            assert!(w.publishing.len() <= PUBLISHING_MAX);
        }
        let files = w.finish().unwrap();
        assert_eq!(files.len(), days.len() * 3);
        assert!(files.iter().all(|f| f.rows == 2));
        assert_eq!(walk(dir.path()).len(), files.len());
    }

    #[test]
    fn an_aborted_writer_returns_the_files_published_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), WriteOptions::default());
        for customer in ["acme", "globex"] {
            w.next_input_customer(Some(customer)).unwrap();
            for part in split(&batch(&[customer], &[1, 2], 3)).unwrap() {
                w.write(part).unwrap();
            }
        }
        let closed = w.abort();
        let mut keys: Vec<_> = closed.iter().map(|f| f.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "data/t/customer=acme/dt=1970-01-02/part-r1-00000.parquet",
                "data/t/customer=acme/dt=1970-01-03/part-r1-00001.parquet",
            ],
            "acme's files, closed when globex came; globex's were open and are dropped"
        );
        assert_eq!(walk(dir.path()).len(), 2);
    }

    #[test]
    fn files_roll_at_the_target_size() {
        let dir = tempfile::tempdir().unwrap();
        let options = WriteOptions {
            target_file_bytes: 1,
            ..Default::default()
        };
        let mut w = writer(dir.path(), options);
        for _ in 0..3 {
            for part in split(&batch(&["acme"], &[1], 4)).unwrap() {
                w.write(part).unwrap();
            }
        }
        let files = w.finish().unwrap();
        assert_eq!(files.len(), 3, "{files:?}");
    }

    #[test]
    fn the_budget_sees_every_open_writer_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 96 << 10;
        let options = WriteOptions {
            memory_budget_bytes: budget,
            ..Default::default()
        };
        let mut w = writer(dir.path(), options);
        let days: Vec<i32> = (0..6).collect();
        for _ in 0..20 {
            for part in split(&batch(&["acme", "globex"], &days, 300)).unwrap() {
                w.write(part).unwrap();
                let actual: u64 = w.open.values().map(|f| f.writer.memory_size() as u64).sum();
                assert_eq!(w.buffered_bytes(), actual);
                assert!(actual <= budget, "{actual} bytes buffered");
            }
        }
        let flushed = w
            .open
            .values()
            .filter(|f| !f.writer.flushed_row_groups().is_empty());
        assert!(flushed.count() > 0, "the budget never flushed a row group");
        let files = w.finish().unwrap();
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 20 * 2 * 6 * 300);
    }

    /// One partition's rows: the lineage columns, then `unique` (every value distinct),
    /// `repeats` (four values) and `sparse` (distinct, but null past its first 100 rows).
    fn mixed_batch(rows: usize) -> RecordBatch {
        let mut fields = lineage_fields().to_vec();
        for name in ["unique", "repeats", "sparse"] {
            fields.push(arrow::datatypes::Field::new(name, DataType::Utf8, true));
        }
        fields.push(arrow::datatypes::Field::new("port", DataType::Int32, true));
        fields.push(arrow::datatypes::Field::new(
            "status",
            DataType::Int32,
            true,
        ));
        let lineage = batch(&["acme"], &[1], rows);
        let mut columns = lineage.columns().to_vec();
        let ids = (0..rows).map(|i| format!("{}.{}.{}.0", i % 223, i / 223, i % 7));
        columns.push(Arc::new(StringArray::from_iter_values(ids)));
        let agents =
            (0..rows).map(|i| ["curl/8.5.0", "Mozilla/5.0", "Go-http-client/1.1", "-"][i % 4]);
        columns.push(Arc::new(StringArray::from_iter_values(agents)));
        let sparse = (0..rows).map(|i| (i < 100).then(|| format!("q={i}")));
        columns.push(Arc::new(StringArray::from_iter(sparse)));
        let ports = (0..rows as i32).map(|i| 1024 + i * 7 % 60000);
        columns.push(Arc::new(Int32Array::from_iter_values(ports)));
        let statuses = (0..rows).map(|i| [200, 304, 404][i % 3]);
        columns.push(Arc::new(Int32Array::from_iter_values(statuses)));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    #[test]
    fn columns_nearly_all_distinct_lose_their_dictionary_whatever_the_first_batch_holds() {
        // A file's first batch of 50 rows (an hourly log's last minutes before midnight) is
        // too few to judge by; the choice is made on the chunk's first 1,024 values.
        let dir = tempfile::tempdir().unwrap();
        let all = mixed_batch(3000);
        let mut w = PartitionedWriter::new(
            Lake::local(dir.path()).unwrap(),
            "t",
            "r1",
            all.schema(),
            WriteOptions::default(),
            Arc::new(AtomicU64::new(0)),
        );
        for batch in [all.slice(0, 50), all.slice(50, 2950)] {
            for part in split(&batch).unwrap() {
                w.write(part).unwrap();
            }
        }
        let files = w.finish().unwrap();
        assert_eq!(files.len(), 1);
        let path = dir.path().join(&files[0].key);
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let group = reader.metadata().row_group(0);
        let has_dictionary = |name: &str| {
            let column = group
                .columns()
                .iter()
                .find(|c| c.column_path().string() == name)
                .unwrap();
            column.dictionary_page_offset().is_some()
        };
        // Every value distinct: strings and client ports.
        assert!(!has_dictionary("unique") && !has_dictionary("port"));
        // Few values, or too few non-null ones to judge.
        for kept in ["repeats", "status", "sparse", "customer", "source_file"] {
            assert!(has_dictionary(kept), "{kept}");
        }
        // `ts` and `row_num` never have one.
        assert!(!has_dictionary("ts") && !has_dictionary("row_num"));
        // The rows read back as written, the refused columns' first rows included.
        let read: Vec<RecordBatch> =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
                std::fs::File::open(&path).unwrap(),
                4096,
            )
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let read = arrow::compute::concat_batches(&read[0].schema(), &read).unwrap();
        for name in ["unique", "port", "repeats", "sparse"] {
            assert_eq!(
                read.column_by_name(name),
                all.column_by_name(name),
                "{name}"
            );
        }
    }

    fn walk(dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
        out
    }
}
