//! CloudFront standard logging v2's Parquet output, read as the W3C text it stands for: a
//! `#Fields` line of its column names (`c_ip`, `cs_user_agent`, …: the W3C names with `_`,
//! which name the same columns), then one tab-separated line per row, a batch at a time. The
//! W3C decoder reads that text, so typing, masking, rejects and lineage are the W3C path's
//! own, and the same requests give the same rows (a row's `row_num` is its line in that text:
//! the file's row number plus one).
//!
//! Parquet needs its footer first: the content is held in memory up to
//! [`MEMORY_BYTES`], and spooled to an unnamed temporary file past it, then read one row
//! group at a time, so memory holds a row group, not the file.

use std::io::{self, BufRead, Read, Write};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::ChunkReader;

/// The first bytes of a Parquet file.
pub const MAGIC: &[u8; 4] = b"PAR1";

/// Parquet content up to this size is held in memory; larger content is spooled to disk.
pub const MEMORY_BYTES: u64 = 16 << 20;

/// A Parquet input as W3C text (see the module's documentation).
pub struct ParquetText {
    batches: ParquetRecordBatchReader,
    /// Text made and not yet consumed.
    text: Vec<u8>,
    at: usize,
}

/// Why Parquet content cannot be read as text: an `InvalidData` error for the decoder.
fn not_readable(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a readable Parquet file: {what}"),
    )
}

impl ParquetText {
    /// Read `content` (a whole Parquet file) and open it, batches of `batch_rows` rows.
    pub fn open(mut content: impl Read, batch_rows: usize) -> io::Result<Self> {
        let mut head = Vec::new();
        (&mut content)
            .take(MEMORY_BYTES + 1)
            .read_to_end(&mut head)?;
        let (names, batches) = if head.len() as u64 <= MEMORY_BYTES {
            batches_of(Bytes::from(head), batch_rows)?
        } else {
            let mut file = tempfile::tempfile()?;
            file.write_all(&head)?;
            drop(head);
            io::copy(&mut content, &mut file)?;
            batches_of(file, batch_rows)?
        };
        let mut text = b"#Fields: ".to_vec();
        text.extend_from_slice(names.join(" ").as_bytes());
        text.push(b'\n');
        Ok(Self {
            batches,
            text,
            at: 0,
        })
    }

    /// The next batch's rows as text, into `self.text`; false at the end.
    fn next_text(&mut self) -> io::Result<bool> {
        let Some(batch) = self.batches.next() else {
            return Ok(false);
        };
        let batch = batch.map_err(not_readable)?;
        self.text.clear();
        self.at = 0;
        write_rows(&batch, &mut self.text)?;
        Ok(true)
    }
}

/// The column names of the Parquet file `source` (white space, or an empty name, made `_`)
/// and its batches.
fn batches_of<T: ChunkReader + 'static>(
    source: T,
    batch_rows: usize,
) -> io::Result<(Vec<String>, ParquetRecordBatchReader)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(source).map_err(not_readable)?;
    let names = builder
        .schema()
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "" => "_".to_owned(),
            name => name.replace(|c: char| c.is_ascii_whitespace(), "_"),
        })
        .collect();
    let batches = builder
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(not_readable)?;
    Ok((names, batches))
}

/// The rows of `batch` as tab-separated lines: each value as text (a null as `-`), a tab,
/// carriage return or newline in it written `%09`, `%0D`, `%0A`, as CloudFront encodes them.
fn write_rows(batch: &RecordBatch, out: &mut Vec<u8>) -> io::Result<()> {
    let columns = batch
        .columns()
        .iter()
        .zip(batch.schema().fields())
        .map(|(c, f)| match c.data_type() {
            DataType::Utf8 => Ok(c.clone()),
            _ => cast(c, &DataType::Utf8).map_err(|e| {
                not_readable(format!(
                    "column {:?} of type {} is no text: {e}",
                    f.name(),
                    c.data_type()
                ))
            }),
        })
        .collect::<io::Result<Vec<_>>>()?;
    let strings: Vec<_> = columns.iter().map(|c| c.as_string::<i32>()).collect();
    for row in 0..batch.num_rows() {
        for (i, column) in strings.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            if column.is_null(row) {
                out.push(b'-');
                continue;
            }
            for &b in column.value(row).as_bytes() {
                match b {
                    b'\t' => out.extend_from_slice(b"%09"),
                    b'\n' => out.extend_from_slice(b"%0A"),
                    b'\r' => out.extend_from_slice(b"%0D"),
                    b => out.push(b),
                }
            }
        }
        out.push(b'\n');
    }
    Ok(())
}

impl Read for ParquetText {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ParquetText {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.at == self.text.len() {
            if !self.next_text()? {
                break;
            }
        }
        Ok(&self.text[self.at..])
    }

    fn consume(&mut self, amount: usize) {
        self.at = (self.at + amount).min(self.text.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use parquet::arrow::ArrowWriter;
    use std::sync::Arc;

    fn parquet(batch: &RecordBatch, row_group_rows: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(row_group_rows))
            .build();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
        out
    }

    #[test]
    fn rows_become_w3c_lines_row_group_by_row_group() {
        let batch = RecordBatch::try_from_iter([
            (
                "date",
                Arc::new(StringArray::from(vec![
                    "2019-12-04",
                    "2019-12-05",
                    "2019-12-06",
                ])) as _,
            ),
            (
                "cs_user_agent",
                Arc::new(StringArray::from(vec![Some("a\tb"), None, Some("c\nd")])) as _,
            ),
            ("sc_bytes", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
        ])
        .unwrap();
        let data = parquet(&batch, 2);
        let mut text = String::new();
        ParquetText::open(io::Cursor::new(data), 1)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(
            text,
            "#Fields: date cs_user_agent sc_bytes\n2019-12-04\ta%09b\t1\n2019-12-05\t-\t2\n2019-12-06\tc%0Ad\t3\n"
        );
    }

    #[test]
    fn what_is_no_parquet_says_so() {
        let err = ParquetText::open(io::Cursor::new(b"PAR1 and then nothing".to_vec()), 8)
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().starts_with("not a readable Parquet file"),
            "{err}"
        );
    }
}
