//! One Parquet file: [`DictColumn`] for string and number columns that keep a dictionary,
//! Parquet's Arrow column writers for every other column (and, written plain, for a column
//! [`DictColumn`] finds to be no column for a dictionary, from then on in the file).
//!
//! It does what Parquet's `ArrowWriter` does for citrine's flat schemas (row groups of at most
//! `max_rows` rows, each column chunk encoded as rows arrive and spliced into the file when the
//! row group is flushed), through the writer's own lower-level parts, so the file's schema and
//! metadata are what `ArrowWriter` writes.

use std::io::Write;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{FieldRef, SchemaRef};
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnWriter, ArrowRowGroupWriterFactory, ArrowWriterOptions,
};
use parquet::arrow::ArrowWriter;
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use super::dictionary::{DictColumn, Kind, PageOptions, Pushed};
use crate::schema::{CUSTOMER, SOURCE_FILE};

/// Columns whose values come in runs (one per file, one per input): their dictionary never
/// grows past what a run's inputs name, so it has no limit.
const RUN_COLUMNS: &[&str] = &[CUSTOMER, SOURCE_FILE];

/// One column chunk in progress: by citrine's dictionary when it has one, else by Parquet's
/// Arrow writer (which takes the dictionary's rows should it overflow).
struct Column {
    dictionary: Option<DictColumn>,
    arrow: Box<ArrowColumnWriter>,
}

struct RowGroup {
    columns: Vec<Column>,
    rows: usize,
}

/// How one column of the file is written.
#[derive(Clone, Copy)]
enum Plan {
    Arrow,
    /// By [`DictColumn`] of this kind, its dictionary at most this many bytes.
    Dictionary(Kind, usize, PageOptions),
}

/// A Parquet file being written to `W`.
pub struct FileWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    plans: Vec<Plan>,
    in_progress: Option<RowGroup>,
    max_rows: usize,
}

impl<W: Write + Send> FileWriter<W> {
    /// A file of `schema` (flat: every field a leaf column) with `props`.
    pub fn try_new(sink: W, schema: SchemaRef, props: WriterProperties) -> Result<Self> {
        let max_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let plans: Vec<Plan> = schema.fields().iter().map(|f| plan(f, &props)).collect();
        // A column citrine encodes reaches Parquet's writer only once it is found to be no
        // column for a dictionary: that writer then writes it plain, rather than hash every
        // value into a dictionary of its own until that overflows too.
        let mut props = props.into_builder();
        for (field, plan) in schema.fields().iter().zip(&plans) {
            if let Plan::Dictionary(..) = plan {
                props = props
                    .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
            }
        }
        let options = ArrowWriterOptions::new().with_properties(props.build());
        let (file, factory) = ArrowWriter::try_new_with_options(sink, schema.clone(), options)?
            .into_serialized_writer()?;
        if file.schema_descr().num_columns() != schema.fields().len() {
            return Err(ParquetError::General(
                "citrine writes flat schemas only".into(),
            ));
        }
        Ok(Self {
            file,
            factory,
            schema,
            plans,
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
            let sliced;
            let rows = if take == batch.num_rows() {
                batch
            } else {
                sliced = batch.slice(offset, take);
                &sliced
            };
            for (i, (field, array)) in self.schema.fields().iter().zip(rows.columns()).enumerate() {
                let column = &mut group.columns[i];
                let Some(dictionary) = &mut column.dictionary else {
                    write_leaves(&mut column.arrow, field, array)?;
                    continue;
                };
                if let Pushed::Refused { taken } = dictionary.push(array) {
                    // Parquet's writer takes the chunk's rows so far and the batch's others,
                    // and the column for the rest of the file (plain: see `try_new`).
                    let held = dictionary.to_array(field.data_type());
                    write_leaves(&mut column.arrow, field, &held)?;
                    if taken < array.len() {
                        let rest = array.slice(taken, array.len() - taken);
                        write_leaves(&mut column.arrow, field, &rest)?;
                    }
                    column.dictionary = None;
                    self.plans[i] = Plan::Arrow;
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
        let schema = self.file.schema_descr();
        let columns = writers
            .into_iter()
            .zip(&self.plans)
            .enumerate()
            .map(|(i, (writer, plan))| Column {
                dictionary: match plan {
                    Plan::Arrow => None,
                    Plan::Dictionary(kind, limit, options) => Some(DictColumn::new(
                        *kind,
                        *limit,
                        *options,
                        schema.column(i).max_def_level() > 0,
                    )),
                },
                arrow: Box::new(writer),
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
            match column.dictionary {
                Some(dictionary) => {
                    let (bytes, close) = dictionary.close(descr)?;
                    row_group.append_column(&bytes, close)?;
                }
                None => column.arrow.close()?.append_to_row_group(&mut row_group)?,
            }
        }
        row_group.close()?;
        Ok(())
    }

    /// Bytes the row group in progress holds in memory.
    pub fn memory_size(&self) -> usize {
        self.columns()
            .map(|c| match &c.dictionary {
                Some(d) => d.memory_size(),
                None => c.arrow.memory_size(),
            })
            .sum()
    }

    /// Estimated encoded bytes of the row group in progress.
    pub fn in_progress_size(&self) -> usize {
        self.columns()
            .map(|c| match &c.dictionary {
                Some(d) => d.encoded_size(),
                None => c.arrow.get_estimated_total_bytes(),
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

/// How `field` is written under `props`: a string or number column that keeps a dictionary
/// (without a bloom filter, in a codec citrine compresses with) by [`DictColumn`].
fn plan(field: &FieldRef, props: &WriterProperties) -> Plan {
    let path = ColumnPath::from(field.name().as_str());
    let by_run = RUN_COLUMNS.contains(&field.name().as_str());
    let codec = props.compression(&path);
    let Some(kind) = Kind::of(field.data_type()) else {
        return Plan::Arrow;
    };
    if !(by_run || props.dictionary_enabled(&path))
        || props.bloom_filter_properties(&path).is_some()
        || !PageOptions::supports(codec)
    {
        return Plan::Arrow;
    }
    let limit = if by_run {
        usize::MAX
    } else {
        props.dictionary_page_size_limit()
    };
    Plan::Dictionary(
        kind,
        limit,
        PageOptions {
            codec,
            page_rows: props.data_page_row_count_limit(),
            truncate: props.statistics_truncate_length(),
            statistics: props.statistics_enabled(&path) != EnabledStatistics::None,
        },
    )
}

fn write_leaves(writer: &mut ArrowColumnWriter, field: &FieldRef, array: &ArrayRef) -> Result<()> {
    for leaf in compute_leaves(field, array)? {
        writer.write(&leaf)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, StringArray};
    use arrow::compute::concat_batches;
    use arrow::datatypes::DataType;
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
        // Every chunk has the file's codec.
        let codecs: Vec<_> = metadata
            .row_group(0)
            .columns()
            .iter()
            .map(|c| c.compression())
            .collect();
        assert_eq!(codecs, [Compression::SNAPPY; 3]);
        assert!(metadata.offset_index().is_some());
    }

    /// Strings from a small alphabet (so they repeat), some long, some not ASCII, some null.
    fn strings(seed: &mut u64, n: usize, distinct: u64) -> StringArray {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let pick = (*seed >> 33) % distinct;
                match pick {
                    0 => None,
                    1 => Some("é".repeat(40)),
                    p => Some(format!("{}-{p}", "v".repeat((p % 5) as usize))),
                }
            })
            .collect()
    }

    fn read(bytes: Bytes) -> (Vec<RecordBatch>, parquet::file::metadata::ParquetMetaData) {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, options).unwrap();
        let metadata = reader.metadata().as_ref().clone();
        (
            reader.build().unwrap().map(Result::unwrap).collect(),
            metadata,
        )
    }

    #[test]
    fn dictionary_chunks_read_back_as_parquets_own_in_every_codec() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("low", DataType::Utf8, true),
            Field::new("many", DataType::Utf8, true),
            Field::new("status", DataType::Int32, true),
            Field::new("day", DataType::Date32, true),
            Field::new("bytes", DataType::Int64, true),
            Field::new("seconds", DataType::Float64, true),
            Field::new("ports", DataType::Int64, true),
        ]));
        let mut seed = 3;
        let batches: Vec<_> = [1, 700, 33, 2000, 8, 1500]
            .into_iter()
            .map(|n| {
                let low = strings(&mut seed, n, 12);
                let many = strings(&mut seed, n, 5000);
                // Numbers from the same stream: the string's length (null with it).
                let lens = |a: &StringArray, k: i64| -> Vec<Option<i64>> {
                    a.iter()
                        .map(|v| v.map(|v| v.len() as i64 * k - 40))
                        .collect()
                };
                let status: Int32Array =
                    lens(&low, 1).iter().map(|v| v.map(|v| v as i32)).collect();
                let day = arrow::compute::cast(&status, &DataType::Date32).unwrap();
                let bytes = Int64Array::from(lens(&low, 1 << 40));
                // NaN, -0.0 and +0.0 among them ("-10", "-5", "v-11").
                let seconds: Float64Array = lens(&low, 1)
                    .iter()
                    .map(|v| {
                        v.map(|v| match v {
                            -37 => f64::NAN,
                            -38 => -0.0,
                            -36 => 0.0,
                            v => v as f64 / 8.0,
                        })
                    })
                    .collect();
                let ports: Int64Array = (0..n)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        (seed >> 20) as i64 % 100_000
                    })
                    .collect();
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(low),
                    Arc::new(many),
                    Arc::new(status),
                    day,
                    Arc::new(bytes),
                    Arc::new(seconds),
                    Arc::new(ports),
                ];
                RecordBatch::try_new(schema.clone(), columns).unwrap()
            })
            .collect();
        for codec in [
            Compression::UNCOMPRESSED,
            Compression::SNAPPY,
            Compression::ZSTD(Default::default()),
            Compression::GZIP(Default::default()),
        ] {
            // Pages of 300 rows, and a dictionary limit the second column outgrows.
            let props = WriterProperties::builder()
                .set_max_row_group_row_count(Some(1900))
                .set_data_page_row_count_limit(300)
                .set_dictionary_page_size_limit(4096)
                .set_compression(codec)
                .build();
            let mut ours = FileWriter::try_new(Vec::new(), schema.clone(), props.clone()).unwrap();
            let mut theirs = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).unwrap();
            for b in &batches {
                ours.write(b).unwrap();
                theirs.write(b).unwrap();
            }
            assert!(matches!(
                ours.plans[..],
                [
                    Plan::Dictionary(Kind::Utf8, ..),
                    Plan::Arrow,
                    Plan::Dictionary(Kind::Int32, ..),
                    Plan::Dictionary(Kind::Int32, ..),
                    Plan::Dictionary(Kind::Int64, ..),
                    Plan::Dictionary(Kind::Float64, ..),
                    Plan::Arrow,
                ]
            ));
            let (ours, ours_meta) = read(ours.into_inner().unwrap().into());
            let (theirs, theirs_meta) = read(theirs.into_inner().unwrap().into());
            assert_eq!(
                concat_batches(&schema, &ours).unwrap(),
                concat_batches(&schema, &theirs).unwrap(),
                "{codec}"
            );
            for (a, b) in ours_meta.row_groups().iter().zip(theirs_meta.row_groups()) {
                assert_eq!(a.num_rows(), b.num_rows());
                for (x, y) in a.columns().iter().zip(b.columns()) {
                    // As text: -0.0 and +0.0 are equal as numbers, not as statistics.
                    let text = |c: &parquet::file::metadata::ColumnChunkMetaData| {
                        format!("{:?}", c.statistics())
                    };
                    assert_eq!(text(x), text(y), "{codec}");
                    assert_eq!(x.compression(), codec);
                }
            }
            // The dictionary column's pages hold 300 rows each, as the offset index says.
            let pages = &ours_meta.offset_index().unwrap()[0][0].page_locations;
            let starts: Vec<_> = pages.iter().map(|p| p.first_row_index).collect();
            assert_eq!(starts, (0..1900).step_by(300).collect::<Vec<_>>());
        }
    }
}
