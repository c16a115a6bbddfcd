//! Hive-partitioned Parquet files, one open writer per partition.
//!
//! Memory is bounded three ways: at most `max_open_files` writers are open (the least
//! recently used is closed past it); encoded-but-unflushed row groups across open writers stay
//! under `memory_budget_bytes` (the largest is flushed to its file past it); a file is closed
//! and a new one started once it reaches `target_file_bytes`. Each file is a streaming
//! [`Upload`] to the lake's store (locally a temporary dot-name renamed into place; on S3 one
//! PUT or a multipart upload), published only when closed, so a reader never sees half a file;
//! files become part of the table when the run's marker lands.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use crate::config::{Codec, WriteOptions};
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::partition::{PartitionBatch, PartitionKey};
use crate::store::Upload;

/// One data file a run wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Key below the lake root, `/`-separated.
    pub key: String,
    /// Exact size in bytes.
    pub bytes: u64,
    /// Rows in it.
    pub rows: u64,
    /// Its partition.
    pub partition: PartitionKey,
}

/// Columns written without a dictionary: unique or nearly unique per row.
pub const UNIQUE_COLUMNS: &[&str] = &["ts", "row_num", "x_edge_request_id"];

/// Writer properties for citrine's Parquet: Parquet v1 data pages and writer version (what
/// Redshift COPY and Spectrum read), the configured codec, bounded row groups.
pub fn writer_properties(options: &WriteOptions) -> WriterProperties {
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
        .set_created_by(format!("citrine {}", env!("CARGO_PKG_VERSION")));
    // Columns that are (nearly) unique per row gain nothing from a dictionary and cost a hash
    // table insert per value until the writer gives up on it (a profile showed ~16% of a
    // CloudFront run in dictionary interning).
    for column in UNIQUE_COLUMNS {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    builder.build()
}

struct OpenFile {
    writer: ArrowWriter<Box<dyn Upload>>,
    url: String,
    key: String,
    rows: u64,
    last_used: u64,
}

/// Writes partition batches of one table for one run.
pub struct PartitionedWriter {
    lake: Lake,
    table: String,
    run_id: String,
    schema: SchemaRef,
    props: WriterProperties,
    options: WriteOptions,
    sequence: Arc<AtomicU64>,
    open: HashMap<PartitionKey, OpenFile>,
    tick: u64,
    written: Vec<WrittenFile>,
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
            props: writer_properties(&options),
            lake,
            table: table.to_owned(),
            run_id: run_id.to_owned(),
            schema,
            options,
            sequence,
            open: HashMap::new(),
            tick: 0,
            written: Vec::new(),
        }
    }

    /// Write one partition's rows.
    pub fn write(&mut self, part: PartitionBatch) -> Result<()> {
        if part.batch.num_rows() == 0 {
            return Ok(());
        }
        self.tick += 1;
        if !self.open.contains_key(&part.key) {
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
            let file = self.create(&part.key)?;
            self.open.insert(part.key.clone(), file);
        }
        let tick = self.tick;
        let file = self.open.get_mut(&part.key).expect("opened above");
        file.writer
            .write(&part.batch)
            .map_err(|source| parquet_error(&file.url, source))?;
        file.rows += part.batch.num_rows() as u64;
        file.last_used = tick;
        let size = file.writer.bytes_written() as u64 + file.writer.in_progress_size() as u64;
        if size >= self.options.target_file_bytes {
            self.close(&part.key)?;
        } else {
            self.enforce_budget()?;
        }
        Ok(())
    }

    /// Bytes held in unflushed row groups across open files.
    pub fn buffered_bytes(&self) -> u64 {
        self.open
            .values()
            .map(|f| f.writer.memory_size() as u64)
            .sum()
    }

    fn enforce_budget(&mut self) -> Result<()> {
        while self.buffered_bytes() > self.options.memory_budget_bytes {
            let largest = self
                .open
                .values_mut()
                .filter(|f| f.writer.in_progress_rows() > 0)
                .max_by_key(|f| f.writer.memory_size());
            let Some(file) = largest else { break };
            file.writer
                .flush()
                .map_err(|source| parquet_error(&file.url, source))?;
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
        let upload = self.lake.store().upload(&rel)?;
        let writer = ArrowWriter::try_new(upload, self.schema.clone(), Some(self.props.clone()))
            .map_err(|source| parquet_error(&url, source))?;
        Ok(OpenFile {
            writer,
            url,
            key: rel,
            rows: 0,
            last_used: self.tick,
        })
    }

    fn close(&mut self, key: &PartitionKey) -> Result<()> {
        let Some(file) = self.open.remove(key) else {
            return Ok(());
        };
        let upload = file
            .writer
            .into_inner()
            .map_err(|source| parquet_error(&file.url, source))?;
        let bytes = upload.finish()?;
        self.written.push(WrittenFile {
            key: file.key,
            bytes,
            rows: file.rows,
            partition: key.clone(),
        });
        Ok(())
    }

    /// Close every open file and return all files written, sorted by key.
    pub fn finish(mut self) -> Result<Vec<WrittenFile>> {
        let keys: Vec<PartitionKey> = self.open.keys().cloned().collect();
        for k in keys {
            self.close(&k)?;
        }
        let mut written = std::mem::take(&mut self.written);
        written.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(written)
    }

    /// Drop every open file: their uploads are aborted, nothing of them is published.
    /// Closed files stay for the caller (or the next run's orphan cleanup) to remove.
    pub fn abort(mut self) {
        self.open.clear();
    }

    /// The files closed so far.
    pub fn written(&self) -> &[WrittenFile] {
        &self.written
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
        Date32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::Schema;
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
    fn open_file_cap_closes_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let options = WriteOptions {
            max_open_files: 2,
            ..Default::default()
        };
        let mut w = writer(dir.path(), options);
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
