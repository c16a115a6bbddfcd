//! One Parquet file: Parquet's Arrow column writers for most columns, [`RunColumn`] for the
//! lineage columns whose values come in runs (`customer`, `source_file`).
//!
//! It does what Parquet's `ArrowWriter` does for citrine's flat schemas (row groups of at most
//! `max_rows` rows, each column chunk encoded as rows arrive and spliced into the file when the
//! row group is flushed), through the writer's own lower-level parts, so the file's schema,
//! metadata and every other column are exactly what `ArrowWriter` writes.

use std::io::Write;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnWriter, ArrowRowGroupWriterFactory, ArrowWriterOptions,
};
use parquet::arrow::ArrowWriter;
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use super::runs::RunColumn;
use crate::schema::{CUSTOMER, SOURCE_FILE};

/// Columns encoded by run when they are strings.
const RUN_COLUMNS: &[&str] = &[CUSTOMER, SOURCE_FILE];

enum Column {
    Arrow(Box<ArrowColumnWriter>),
    Runs(RunColumn),
}

struct RowGroup {
    columns: Vec<Column>,
    rows: usize,
}

/// A Parquet file being written to `W`.
pub struct FileWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// Per column: encoded by run.
    by_run: Vec<bool>,
    in_progress: Option<RowGroup>,
    max_rows: usize,
}

impl<W: Write + Send> FileWriter<W> {
    /// A file of `schema` (flat: every field a leaf column) with `props`.
    pub fn try_new(sink: W, schema: SchemaRef, props: WriterProperties) -> Result<Self> {
        let max_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let options = ArrowWriterOptions::new().with_properties(props);
        let (file, factory) = ArrowWriter::try_new_with_options(sink, schema.clone(), options)?
            .into_serialized_writer()?;
        if file.schema_descr().num_columns() != schema.fields().len() {
            return Err(ParquetError::General(
                "citrine writes flat schemas only".into(),
            ));
        }
        let by_run = schema
            .fields()
            .iter()
            .map(|f| f.data_type() == &DataType::Utf8 && RUN_COLUMNS.contains(&f.name().as_str()))
            .collect();
        Ok(Self {
            file,
            factory,
            schema,
            by_run,
            in_progress: None,
            max_rows,
        })
    }

    /// Append `batch` (of the file's schema), flushing each row group as it fills.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.in_progress.is_none() {
                self.in_progress = Some(self.row_group()?);
            }
            let group = self.in_progress.as_mut().expect("set above");
            let take = (self.max_rows - group.rows).min(batch.num_rows() - offset);
            let rows = batch.slice(offset, take);
            for ((column, field), array) in group
                .columns
                .iter_mut()
                .zip(self.schema.fields())
                .zip(rows.columns())
            {
                match column {
                    Column::Arrow(writer) => {
                        for leaf in compute_leaves(field, array)? {
                            writer.write(&leaf)?;
                        }
                    }
                    Column::Runs(runs) => runs.push(array.as_string::<i32>()),
                }
            }
            group.rows += take;
            offset += take;
            if group.rows >= self.max_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn row_group(&self) -> Result<RowGroup> {
        let index = self.file.flushed_row_groups().len();
        let writers = self.factory.create_column_writers(index)?;
        let columns = writers
            .into_iter()
            .zip(&self.by_run)
            .map(|(writer, &by_run)| match by_run {
                true => Column::Runs(RunColumn::default()),
                false => Column::Arrow(Box::new(writer)),
            })
            .collect();
        Ok(RowGroup { columns, rows: 0 })
    }

    /// Write the row group in progress to the file.
    pub fn flush(&mut self) -> Result<()> {
        let Some(group) = self.in_progress.take() else {
            return Ok(());
        };
        let descriptors: Vec<_> = (0..group.columns.len())
            .map(|i| self.file.schema_descr().column(i))
            .collect();
        let mut row_group = self.file.next_row_group()?;
        for (column, descr) in group.columns.into_iter().zip(descriptors) {
            match column {
                Column::Arrow(writer) => writer.close()?.append_to_row_group(&mut row_group)?,
                Column::Runs(mut runs) => {
                    let (bytes, close) = runs.close(descr)?;
                    row_group.append_column(&bytes, close)?;
                }
            }
        }
        row_group.close()?;
        Ok(())
    }

    /// Bytes the row group in progress holds in memory.
    pub fn memory_size(&self) -> usize {
        self.columns()
            .map(|c| match c {
                Column::Arrow(w) => w.memory_size(),
                Column::Runs(r) => r.memory_size(),
            })
            .sum()
    }

    /// Estimated encoded bytes of the row group in progress.
    pub fn in_progress_size(&self) -> usize {
        self.columns()
            .map(|c| match c {
                Column::Arrow(w) => w.get_estimated_total_bytes(),
                Column::Runs(r) => r.memory_size(),
            })
            .sum()
    }

    fn columns(&self) -> impl Iterator<Item = &Column> {
        self.in_progress.iter().flat_map(|g| &g.columns)
    }

    /// Rows of the row group in progress.
    pub fn in_progress_rows(&self) -> usize {
        self.in_progress.as_ref().map_or(0, |g| g.rows)
    }

    /// Bytes written to the sink so far.
    pub fn bytes_written(&self) -> usize {
        self.file.bytes_written()
    }

    /// Row groups written so far.
    #[cfg(test)]
    pub fn flushed_row_groups(&self) -> &[parquet::file::metadata::RowGroupMetaData] {
        self.file.flushed_row_groups()
    }

    /// Flush the last row group and write the footer: the sink.
    pub fn into_inner(mut self) -> Result<W> {
        self.flush()?;
        self.file.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::compute::concat_batches;
    use arrow::datatypes::{Field, Schema};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::basic::Compression;
    use parquet::file::metadata::PageIndexPolicy;
    use parquet::file::statistics::Statistics;

    fn batch(schema: &SchemaRef, customer: &str, sources: Vec<Option<&str>>) -> RecordBatch {
        let n = sources.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![customer; n])),
            Arc::new(StringArray::from(sources)),
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
        ];
        RecordBatch::try_new(schema.clone(), columns).unwrap()
    }

    #[test]
    fn run_columns_read_back_as_written_across_row_groups() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new(CUSTOMER, DataType::Utf8, true),
            Field::new(SOURCE_FILE, DataType::Utf8, true),
            Field::new("row_num", DataType::Int64, true),
        ]));
        let batches = [
            batch(&schema, "acme", vec![Some("s3://in/b.log"); 7]),
            batch(&schema, "acme", vec![Some("s3://in/a.log"); 5]),
            batch(
                &schema,
                "acme",
                vec![Some("s3://in/c.log"), None, None, Some("s3://in/a.log")],
            ),
        ];
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(6))
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer = FileWriter::try_new(Vec::new(), schema.clone(), props).unwrap();
        for b in &batches {
            writer.write(b).unwrap();
        }
        let bytes = Bytes::from(writer.into_inner().unwrap());

        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, options).unwrap();
        let metadata = reader.metadata().clone();
        let read: Vec<_> = reader.build().unwrap().map(Result::unwrap).collect();
        let want = concat_batches(&schema, &batches).unwrap();
        assert_eq!(concat_batches(&schema, &read).unwrap(), want);

        // Row groups of 6, 6 and 4 rows; each chunk's statistics are its own values.
        let groups: Vec<_> = metadata.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups, [6, 6, 4]);
        let stats: Vec<_> = metadata
            .row_groups()
            .iter()
            .map(|g| match g.column(1).statistics() {
                Some(Statistics::ByteArray(s)) => (
                    s.min_opt().unwrap().as_utf8().unwrap().to_owned(),
                    s.max_opt().unwrap().as_utf8().unwrap().to_owned(),
                    s.null_count_opt(),
                ),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            stats,
            [
                ("s3://in/b.log".into(), "s3://in/b.log".into(), Some(0)),
                ("s3://in/a.log".into(), "s3://in/b.log".into(), Some(0)),
                ("s3://in/a.log".into(), "s3://in/c.log".into(), Some(2)),
            ]
        );
        // The other columns are the Arrow writer's, with the file's codec.
        let codecs: Vec<_> = metadata
            .row_group(0)
            .columns()
            .iter()
            .map(|c| c.compression())
            .collect();
        assert_eq!(
            codecs,
            [
                Compression::UNCOMPRESSED,
                Compression::UNCOMPRESSED,
                Compression::SNAPPY
            ]
        );
        assert!(metadata.offset_index().is_some());
    }
}
