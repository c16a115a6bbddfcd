//! Column chunks of string and number columns, dictionary-encoded by citrine.
//!
//! Parquet's Arrow writer hashes every row of a column into its dictionary through several
//! layers of generic code, and compares every row with the chunk's minimum and maximum: on a
//! CloudFront run that was over a fifth of all the work. Log columns mostly repeat (an edge
//! location, a method, a protocol, a customer, a status), and here:
//!
//! - a batch whose values are all equal is found with one comparison of its bytes against
//!   themselves, shifted by one value;
//! - any other value is first compared with the column's previous value, and only then looked
//!   up in a hash table;
//! - rows are kept as runs of dictionary keys, and the chunk's minimum and maximum are taken
//!   over the dictionary alone, when the chunk is closed.
//!
//! The chunk is written as Parquet's writer writes one: a PLAIN dictionary page, then v1 data
//! pages of at most the writer's row limit, each holding definition levels and dictionary keys
//! in the RLE / bit-packing hybrid, every page compressed with the file's codec.
//!
//! A column is not one for a dictionary when its first [`SAMPLE_VALUES`] non-null values of a
//! chunk are nearly all distinct (client ports, byte counts, request paths: every value would be
//! hashed and stored once, for a larger file), or when its dictionary outgrows the writer's
//! dictionary page limit. [`DictColumn::push`] says so, and the file hands the column's rows to
//! Parquet's writer, which writes them plain. The choice is made on the chunk's own values,
//! whatever batches they come in: a file's first batch may hold a handful of rows (an hourly log
//! that crosses midnight), too few to judge a column by.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, StringArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::DataType;
use bytes::Bytes;
use hashbrown::hash_table::{Entry, HashTable};
use parquet::basic::{Compression, Encoding};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::page_index::offset_index::{OffsetIndexMetaData, PageLocation};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use crate::parse::column::every_pair;
use crate::parse::cut_at_boundary;

/// The key a run of nulls carries.
const NULL: u32 = u32::MAX;

/// Non-null values of a chunk that decide whether the column keeps its dictionary.
pub const SAMPLE_VALUES: u64 = 1024;
/// The share of distinct values among those, in percent, at which it does not.
pub const DISTINCT_PERCENT: u64 = 90;

/// How a chunk's pages are written: the file's codec and limits.
#[derive(Debug, Clone, Copy)]
pub struct PageOptions {
    /// The codec of every page.
    pub codec: Compression,
    /// Rows of a data page, at most.
    pub page_rows: usize,
    /// Bytes of a statistics value, at most (Parquet's `statistics_truncate_length`).
    pub truncate: Option<usize>,
    /// Whether the chunk carries statistics.
    pub statistics: bool,
}

impl PageOptions {
    /// Whether citrine can compress pages with `codec` (Parquet's writer handles the rest).
    pub fn supports(codec: Compression) -> bool {
        matches!(
            codec,
            Compression::UNCOMPRESSED
                | Compression::SNAPPY
                | Compression::ZSTD(_)
                | Compression::GZIP(_)
        )
    }
}

/// The columns [`DictColumn`] encodes: their Arrow types, and Parquet's physical types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Utf8`: BYTE_ARRAY.
    Utf8,
    /// `Int32`, `Date32`: INT32.
    Int32,
    /// `Int64`: INT64.
    Int64,
    /// `Float64`: DOUBLE.
    Float64,
}

impl Kind {
    /// The kind of a column of `data_type`, if citrine encodes it.
    pub fn of(data_type: &DataType) -> Option<Self> {
        Some(match data_type {
            DataType::Utf8 => Self::Utf8,
            DataType::Int32 | DataType::Date32 => Self::Int32,
            DataType::Int64 => Self::Int64,
            DataType::Float64 => Self::Float64,
            _ => return None,
        })
    }
}

/// The distinct values of a chunk: the dictionary page's bytes as they are written (PLAIN:
/// a string's length, then its bytes; a number's little-endian bytes), where each value
/// starts, and a hash table of keys.
#[derive(Debug, Default)]
struct Dictionary {
    page: Vec<u8>,
    spans: Vec<(u32, u32)>,
    table: HashTable<u32>,
    hasher: ahash::RandomState,
    /// Values are strings: each is written after its length.
    prefixed: bool,
}

impl Dictionary {
    fn value(&self, key: u32) -> &[u8] {
        let (start, len) = self.spans[key as usize];
        &self.page[start as usize..(start + len) as usize]
    }

    fn key(&mut self, value: &[u8]) -> u32 {
        let Self {
            page,
            spans,
            table,
            hasher,
            prefixed,
        } = self;
        let at = |key: u32| {
            let (start, len) = spans[key as usize];
            &page[start as usize..(start + len) as usize]
        };
        let hash = hasher.hash_one(value);
        match table.entry(hash, |&k| same(at(k), value), |&k| hasher.hash_one(at(k))) {
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => {
                let key = spans.len() as u32;
                if *prefixed {
                    page.extend_from_slice(&(value.len() as u32).to_le_bytes());
                }
                spans.push((page.len() as u32, value.len() as u32));
                page.extend_from_slice(value);
                entry.insert(key);
                key
            }
        }
    }

    fn len(&self) -> usize {
        self.spans.len()
    }
}

/// A data page encoded once its rows reached the page limit (uncompressed until the chunk
/// closes): definition levels when the column has them, the keys' bit width, the keys.
#[derive(Debug)]
struct EncodedPage {
    rows: u32,
    body: Vec<u8>,
}

/// What [`DictColumn::push`] did with an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Took every row; the column keeps its dictionary.
    Kept,
    /// The column is not one for a dictionary. The chunk took the array's first `taken` rows;
    /// its rows and the array's others are to be written another way.
    Refused {
        /// Rows of the array the chunk holds.
        taken: usize,
    },
}

/// One column chunk in progress.
#[derive(Debug)]
pub struct DictColumn {
    kind: Kind,
    dictionary: Dictionary,
    /// Pages encoded so far.
    pages: Vec<EncodedPage>,
    /// The page in progress: dictionary key ([`NULL`] for null) and length of each run, in
    /// row order, and how many rows they hold.
    runs: Vec<(u32, u32)>,
    page_rows: u32,
    /// Rows of a page, at most.
    max_page_rows: u32,
    options: PageOptions,
    /// The column has definition levels (it is nullable).
    levels: bool,
    /// The key of the last non-null value pushed.
    last: Option<u32>,
    rows: u64,
    nulls: u64,
    /// Dictionary page bytes past which the column is not one for a dictionary.
    limit: usize,
    /// Whether the first [`SAMPLE_VALUES`] non-null values have been judged.
    judged: bool,
}

impl DictColumn {
    /// A chunk of `kind` whose dictionary may hold `limit` bytes of values (and their
    /// lengths), its pages written as `options` say, with definition levels when `levels`.
    pub fn new(kind: Kind, limit: usize, options: PageOptions, levels: bool) -> Self {
        Self {
            kind,
            dictionary: Dictionary {
                prefixed: kind == Kind::Utf8,
                ..Dictionary::default()
            },
            pages: Vec::new(),
            runs: Vec::new(),
            page_rows: 0,
            max_page_rows: options.page_rows.clamp(1, u32::MAX as usize) as u32,
            options,
            levels,
            last: None,
            rows: 0,
            nulls: 0,
            limit,
            judged: false,
        }
    }

    /// Bytes held: the dictionary, its table, the pages and the runs.
    pub fn memory_size(&self) -> usize {
        self.dictionary.page.capacity()
            + self.dictionary.spans.capacity() * 8
            + self.dictionary.table.capacity() * 8
            + self.pages.iter().map(|p| p.body.capacity()).sum::<usize>()
            + self.runs.capacity() * 8
    }

    /// Bytes the chunk would take encoded, about (before compression).
    pub fn encoded_size(&self) -> usize {
        self.dictionary.page.len()
            + self.pages.iter().map(|p| p.body.len()).sum::<usize>()
            + (self.page_rows as usize * (usize::from(self.bit_width()) + 1)).div_ceil(8)
    }

    /// Bits of a key, for the dictionary as it is.
    fn bit_width(&self) -> u8 {
        bits_for(self.dictionary.len().saturating_sub(1) as u64)
    }

    /// Append `array`'s values (of the column's kind), or say the column is not one for a
    /// dictionary: its first [`SAMPLE_VALUES`] non-null values are at least
    /// [`DISTINCT_PERCENT`] distinct, or its dictionary has outgrown its limit. The column's
    /// rows so far ([`DictColumn::to_array`]) and the rest of `array` are then to be written
    /// another way.
    pub fn push(&mut self, array: &dyn Array) -> Pushed {
        let mut taken = 0;
        while taken < array.len() {
            // Until the sample is judged, rows are taken up to its last value.
            let take = if self.judged {
                array.len() - taken
            } else {
                let wanted = (SAMPLE_VALUES - (self.rows - self.nulls)) as usize;
                let rest = array.len() - taken;
                match array.nulls() {
                    None => wanted,
                    Some(nulls) => nulls
                        .slice(taken, rest)
                        .valid_indices()
                        .nth(wanted - 1)
                        .map_or(rest, |i| i + 1),
                }
                .min(rest)
            };
            if taken == 0 && take == array.len() {
                self.append(array);
            } else {
                self.append(&array.slice(taken, take));
            }
            taken += take;
            if !self.judged && self.rows - self.nulls >= SAMPLE_VALUES {
                self.judged = true;
                if self.dictionary.len() as u64 * 100 >= SAMPLE_VALUES * DISTINCT_PERCENT {
                    return Pushed::Refused { taken };
                }
            }
            if self.dictionary.page.len() > self.limit {
                return Pushed::Refused { taken };
            }
        }
        Pushed::Kept
    }

    fn append(&mut self, array: &dyn Array) {
        if !array.is_empty() && array.null_count() == array.len() {
            // A field a file never fills (`cs_cookie`, `fle_status`, the range fields of most
            // CloudFront logs): one run, not a null at a time (~45 instructions each).
            self.extend(NULL, array.len() as u32);
            return;
        }
        match self.kind {
            Kind::Utf8 => self.push_strings(array.as_string::<i32>()),
            Kind::Int32 | Kind::Int64 | Kind::Float64 => {
                let width = if self.kind == Kind::Int32 { 4 } else { 8 };
                let data = array.to_data();
                let values =
                    &data.buffers()[0].as_slice()[data.offset() * width..][..data.len() * width];
                self.push_fixed(values, width, array.nulls())
            }
        }
    }

    fn push_strings(&mut self, array: &StringArray) {
        if array.is_empty() {
            return;
        }
        if let Some(value) = all_equal(array.value_offsets(), array.value_data(), array.nulls()) {
            let key = self.key(value);
            self.extend(key, array.len() as u32);
            return;
        }
        let offsets = array.value_offsets();
        let data = array.value_data();
        let nulls = array.nulls().filter(|n| n.null_count() > 0);
        for (i, range) in offsets.windows(2).enumerate() {
            if nulls.is_some_and(|n| n.is_null(i)) {
                self.extend(NULL, 1);
                continue;
            }
            let key = self.key(&data[range[0] as usize..range[1] as usize]);
            self.extend(key, 1);
        }
    }

    /// Append values of `width` bytes each.
    fn push_fixed(&mut self, values: &[u8], width: usize, nulls: Option<&NullBuffer>) {
        let rows = values.len() / width;
        if rows == 0 {
            return;
        }
        let nulls = nulls.filter(|n| n.null_count() > 0);
        if nulls.is_none() && repeats(values, width) {
            let key = self.key(&values[..width]);
            self.extend(key, rows as u32);
            return;
        }
        for (i, value) in values.chunks_exact(width).enumerate() {
            if nulls.is_some_and(|n| n.is_null(i)) {
                self.extend(NULL, 1);
                continue;
            }
            let key = self.key(value);
            self.extend(key, 1);
        }
    }

    /// The key of `value`: the last value's when it is the same.
    fn key(&mut self, value: &[u8]) -> u32 {
        if let Some(last) = self.last {
            if same(self.dictionary.value(last), value) {
                return last;
            }
        }
        let key = self.dictionary.key(value);
        self.last = Some(key);
        key
    }

    fn extend(&mut self, key: u32, mut len: u32) {
        self.rows += u64::from(len);
        if key == NULL {
            self.nulls += u64::from(len);
        }
        while len > 0 {
            let take = len.min(self.max_page_rows - self.page_rows);
            match self.runs.last_mut() {
                Some((last, n)) if *last == key => *n += take,
                _ => self.runs.push((key, take)),
            }
            self.page_rows += take;
            len -= take;
            if self.page_rows == self.max_page_rows {
                self.end_page();
            }
        }
    }

    /// Encode the page in progress (each page has its keys' bit width: the dictionary's size
    /// so far).
    fn end_page(&mut self) {
        let mut body = Vec::new();
        if self.levels {
            let mut levels = Hybrid::new(1);
            for &(key, n) in &self.runs {
                levels.put(u32::from(key != NULL), n);
            }
            let levels = levels.finish();
            body.extend_from_slice(&(levels.len() as u32).to_le_bytes());
            body.extend_from_slice(&levels);
        }
        let bit_width = self.bit_width();
        body.push(bit_width);
        let mut keys = Hybrid::new(bit_width);
        for &(key, n) in self.runs.iter().filter(|(key, _)| *key != NULL) {
            keys.put(key, n);
        }
        body.extend_from_slice(&keys.finish());
        self.pages.push(EncodedPage {
            rows: self.page_rows,
            body,
        });
        self.runs.clear();
        self.page_rows = 0;
    }

    /// The key of every row (`None` for null), read back from the pages and the runs.
    fn keys(&self) -> Vec<Option<u32>> {
        let mut keys = Vec::with_capacity(self.rows as usize);
        for page in &self.pages {
            let rows = page.rows as usize;
            let mut body = page.body.as_slice();
            let defined = if self.levels {
                let len = u32::from_le_bytes(body[..4].try_into().expect("4 bytes")) as usize;
                let levels = unhybrid(&body[4..4 + len], 1, rows);
                body = &body[4 + len..];
                levels
            } else {
                vec![1; rows]
            };
            let present = defined.iter().filter(|&&d| d == 1).count();
            let mut values = unhybrid(&body[1..], body[0], present).into_iter();
            keys.extend(
                defined
                    .iter()
                    .map(|&d| if d == 1 { values.next() } else { None }),
            );
        }
        for &(key, n) in &self.runs {
            keys.extend(std::iter::repeat_n(
                (key != NULL).then_some(key),
                n as usize,
            ));
        }
        keys
    }

    /// Every row pushed, as one array of `data_type` (the column's).
    pub fn to_array(&self, data_type: &DataType) -> ArrayRef {
        let keys = self.keys();
        let rows = || keys.iter().map(|k| k.map(|k| self.dictionary.value(k)));
        let array: ArrayRef = match self.kind {
            Kind::Utf8 => Arc::new(StringArray::from_iter(rows().map(|v| v.map(utf8)))),
            Kind::Int32 => {
                Arc::new(Int32Array::from_iter(rows().map(|v| {
                    v.map(|v| i32::from_le_bytes(v.try_into().expect("4 bytes")))
                })))
            }
            Kind::Int64 => {
                Arc::new(Int64Array::from_iter(rows().map(|v| {
                    v.map(|v| i64::from_le_bytes(v.try_into().expect("8 bytes")))
                })))
            }
            Kind::Float64 => {
                Arc::new(Float64Array::from_iter(rows().map(|v| {
                    v.map(|v| f64::from_le_bytes(v.try_into().expect("8 bytes")))
                })))
            }
        };
        // `Date32` is `Int32` by value.
        arrow::compute::cast(&array, data_type)
            .expect("a dictionary kind casts to its column's type")
    }

    /// The chunk's bytes and what its row group needs to know of them.
    pub fn close(mut self, descr: ColumnDescPtr) -> Result<(Bytes, ColumnCloseResult)> {
        let options = self.options;
        debug_assert_eq!(self.levels, descr.max_def_level() > 0);
        if self.page_rows > 0 || self.pages.is_empty() {
            self.end_page();
        }
        let mut sink = TrackedWrite::new(Vec::new());
        let mut pages = SerializedPageWriter::new(&mut sink);
        let dictionary_page = Page::DictionaryPage {
            buf: compress(&self.dictionary.page, options.codec)?,
            num_values: self.dictionary.len() as u32,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        };
        let first = pages.write_page(CompressedPage::new(
            dictionary_page,
            self.dictionary.page.len(),
        ))?;
        let (mut uncompressed, mut locations) = (first.uncompressed_size, Vec::new());
        let mut first_row = 0u64;
        for page in &self.pages {
            let data_page = Page::DataPage {
                buf: compress(&page.body, options.codec)?,
                num_values: page.rows,
                encoding: Encoding::RLE_DICTIONARY,
                def_level_encoding: Encoding::RLE,
                rep_level_encoding: Encoding::RLE,
                statistics: None,
            };
            let spec = pages.write_page(CompressedPage::new(data_page, page.body.len()))?;
            uncompressed += spec.uncompressed_size;
            locations.push(PageLocation {
                offset: spec.offset as i64,
                compressed_page_size: spec.bytes_written as i32,
                first_row_index: first_row as i64,
            });
            first_row += u64::from(page.rows);
        }
        pages.close()?;
        let bytes = Bytes::from(sink.into_inner()?);

        let data_page_offset = locations.first().map_or(bytes.len() as i64, |l| l.offset);
        let mut metadata = ColumnChunkMetaData::builder(descr)
            .set_compression(options.codec)
            .set_encodings(vec![
                Encoding::PLAIN,
                Encoding::RLE,
                Encoding::RLE_DICTIONARY,
            ])
            .set_num_values(self.rows as i64)
            .set_total_compressed_size(bytes.len() as i64)
            .set_total_uncompressed_size(uncompressed as i64)
            .set_dictionary_page_offset(Some(0))
            .set_data_page_offset(data_page_offset);
        if options.statistics {
            metadata = metadata.set_statistics(self.statistics(options.truncate));
        }
        let close = ColumnCloseResult {
            bytes_written: bytes.len() as u64,
            rows_written: self.rows,
            metadata: metadata.build()?,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(OffsetIndexMetaData {
                page_locations: locations,
                unencoded_byte_array_data_bytes: None,
            }),
        };
        Ok((bytes, close))
    }

    /// Minimum and maximum over the dictionary (every value in it is in some row), and the
    /// null count, as Parquet's writer gives them: strings cut to `truncate` bytes, NaN left
    /// out, a zero minimum written as -0.0 and a zero maximum as +0.0.
    fn statistics(&self, truncate: Option<usize>) -> Statistics {
        let values = (0..self.dictionary.len() as u32).map(|k| self.dictionary.value(k));
        let nulls = Some(self.nulls);
        match self.kind {
            Kind::Utf8 => {
                let (min, max) = (values.clone().min(), values.max());
                let limit = truncate.unwrap_or(usize::MAX);
                let min = min.map(|v| truncate_min(v, limit));
                let max = max.and_then(|v| truncate_max(v, limit));
                let stats = ValueStatistics::new(
                    min.as_ref().map(|(v, _)| ByteArray::from(v.clone())),
                    max.as_ref().map(|(v, _)| ByteArray::from(v.clone())),
                    None,
                    nulls,
                    false,
                )
                .with_min_is_exact(min.is_some_and(|(_, exact)| exact))
                .with_max_is_exact(max.is_some_and(|(_, exact)| exact));
                Statistics::ByteArray(stats)
            }
            Kind::Int32 => {
                let values = values.map(|v| i32::from_le_bytes(v.try_into().expect("4 bytes")));
                Statistics::int32(values.clone().min(), values.max(), None, nulls, false)
            }
            Kind::Int64 => {
                let values = values.map(|v| i64::from_le_bytes(v.try_into().expect("8 bytes")));
                Statistics::int64(values.clone().min(), values.max(), None, nulls, false)
            }
            Kind::Float64 => {
                let values = values
                    .map(|v| f64::from_le_bytes(v.try_into().expect("8 bytes")))
                    .filter(|v| !v.is_nan());
                let min = values
                    .clone()
                    .reduce(f64::min)
                    .map(|v| if v == 0.0 { -0.0 } else { v });
                let max = values
                    .reduce(f64::max)
                    .map(|v| if v == 0.0 { 0.0 } else { v });
                Statistics::double(min, max, None, nulls, false)
            }
        }
    }
}

/// `body` compressed by `codec`, as Parquet's codecs frame it.
fn compress(body: &[u8], codec: Compression) -> Result<Bytes> {
    let compressed = match codec {
        Compression::UNCOMPRESSED => body.to_vec(),
        Compression::SNAPPY => snap::raw::Encoder::new()
            .compress_vec(body)
            .map_err(|e| ParquetError::External(Box::new(e)))?,
        Compression::ZSTD(level) => zstd::bulk::compress(body, level.compression_level())?,
        Compression::GZIP(level) => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.compression_level()),
            );
            encoder.write_all(body)?;
            encoder.finish()?
        }
        other => {
            return Err(ParquetError::NYI(format!(
                "citrine's dictionary pages with {other}"
            )))
        }
    };
    Ok(compressed.into())
}

/// The first `limit` bytes of `value` (UTF-8) cut at a character boundary (a lower bound of
/// it), and whether that is `value` whole.
fn truncate_min(value: &[u8], limit: usize) -> (Vec<u8>, bool) {
    let cut = cut_at_boundary(utf8(value), limit);
    (cut.as_bytes().to_vec(), cut.len() == value.len())
}

/// An upper bound of `value` (UTF-8) of at most `limit` bytes (its prefix with the last
/// character that can be, incremented), and whether it is `value` whole; none when no prefix
/// can be.
fn truncate_max(value: &[u8], limit: usize) -> Option<(Vec<u8>, bool)> {
    if value.len() <= limit {
        return Some((value.to_vec(), true));
    }
    let mut chars: Vec<char> = cut_at_boundary(utf8(value), limit).chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            let text: String = chars.into_iter().collect();
            return (text.len() <= limit).then(|| (text.into_bytes(), false));
        }
    }
    None
}

/// A string column's value as text (pushed from a string array, so UTF-8).
fn utf8(value: &[u8]) -> &str {
    std::str::from_utf8(value).expect("pushed from a string array")
}

/// The one value of a string array (its offsets, bytes and nulls) when every row holds it:
/// every value is as long as the first, and the bytes equal themselves shifted by one value.
fn all_equal<'a>(offsets: &[i32], data: &'a [u8], nulls: Option<&NullBuffer>) -> Option<&'a [u8]> {
    if nulls.is_some_and(|n| n.null_count() > 0) {
        return None;
    }
    let len = offsets[1] - offsets[0];
    let same_lengths = every_pair(offsets, |a, b| b - a == len);
    let bytes = &data[offsets[0] as usize..offsets[offsets.len() - 1] as usize];
    let len = len as usize;
    (same_lengths && repeats(bytes, len)).then(|| &bytes[..len])
}

/// Whether `bytes` is one value of `len` bytes over and over: they equal themselves shifted
/// by one value.
fn repeats(bytes: &[u8], len: usize) -> bool {
    bytes[len..] == bytes[..bytes.len() - len]
}

/// `a == b`, for the short values a dictionary holds without a call to `memcmp` (a profile of
/// the audit job put those calls at 3% of the run): up to 32 bytes compare as at most four
/// overlapping words.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"));
    match n {
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        17..=32 => [0, 8, n - 16, n - 8]
            .iter()
            .all(|&at| word(a, at) == word(b, at)),
        _ => a == b,
    }
}

/// Bits that hold `max`.
fn bits_for(max: u64) -> u8 {
    (64 - max.leading_zeros()) as u8
}

/// Parquet's RLE / bit-packing hybrid, written from runs: a run of 8 values or more is an RLE
/// run (after whatever is pending is completed to a group of 8 from it), shorter runs are
/// bit-packed 8 values at a time. The last group is padded with zeros (readers know how many
/// values a page holds). At bit width 0 everything is RLE.
struct Hybrid {
    out: Vec<u8>,
    bit_width: u8,
    pending: Vec<u32>,
}

impl Hybrid {
    fn new(bit_width: u8) -> Self {
        Self {
            out: Vec::new(),
            bit_width,
            pending: Vec::new(),
        }
    }

    fn put(&mut self, value: u32, count: u32) {
        let fill = (8 - self.pending.len() % 8) % 8;
        if self.bit_width == 0 || count as usize >= fill + 8 {
            let fill = if self.bit_width == 0 { 0 } else { fill };
            self.pending.extend(std::iter::repeat_n(value, fill));
            self.flush_packed();
            self.rle(value, count - fill as u32);
        } else {
            self.pending
                .extend(std::iter::repeat_n(value, count as usize));
        }
    }

    fn rle(&mut self, value: u32, count: u32) {
        uleb128(u64::from(count) << 1, &mut self.out);
        let bytes = usize::from(self.bit_width).div_ceil(8);
        self.out.extend_from_slice(&value.to_le_bytes()[..bytes]);
    }

    /// Pending values (a multiple of 8 of them) as one bit-packed run.
    fn flush_packed(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        debug_assert_eq!(self.pending.len() % 8, 0);
        uleb128(((self.pending.len() / 8) as u64) << 1 | 1, &mut self.out);
        let (mut acc, mut bits) = (0u64, 0u32);
        for &value in &self.pending {
            acc |= u64::from(value) << bits;
            bits += u32::from(self.bit_width);
            while bits >= 8 {
                self.out.push(acc as u8);
                acc >>= 8;
                bits -= 8;
            }
        }
        self.pending.clear();
    }

    fn finish(mut self) -> Vec<u8> {
        let pad = (8 - self.pending.len() % 8) % 8;
        self.pending.extend(std::iter::repeat_n(0, pad));
        self.flush_packed();
        self.out
    }
}

/// Read `count` values of `bit_width` bits from the hybrid [`Hybrid`] wrote (citrine's own
/// bytes: anything else is a bug, and panics).
fn unhybrid(mut bytes: &[u8], bit_width: u8, count: usize) -> Vec<u32> {
    let mut values = Vec::with_capacity(count);
    while values.len() < count {
        let (mut header, mut shift) = (0u64, 0);
        loop {
            let byte = bytes[0];
            bytes = &bytes[1..];
            header |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        if header & 1 == 0 {
            let n = usize::from(bit_width).div_ceil(8);
            let mut word = [0u8; 4];
            word[..n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            let run = (header >> 1) as usize;
            values.extend(std::iter::repeat_n(u32::from_le_bytes(word), run));
        } else {
            let mask = (1u64 << bit_width) - 1;
            let (mut acc, mut bits) = (0u64, 0u32);
            for _ in 0..(header >> 1) as usize * 8 {
                while bits < u32::from(bit_width) {
                    acc |= u64::from(bytes[0]) << bits;
                    bytes = &bytes[1..];
                    bits += 8;
                }
                values.push((acc & mask) as u32);
                acc >>= bit_width;
                bits -= u32::from(bit_width);
            }
        }
    }
    debug_assert!(bytes.is_empty(), "{} bytes left", bytes.len());
    values.truncate(count);
    values
}

fn uleb128(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_agrees_with_slice_equality_at_every_length() {
        let base: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        for n in 0..=40 {
            let a = &base[..n];
            assert!(same(a, a), "{n}");
            assert!(!same(a, &base[..n.saturating_sub(1)]) || n == 0, "{n}");
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x80;
                assert!(!same(a, &b), "length {n}, byte {at}");
            }
        }
    }

    /// A chunk in pages of `page_rows` rows, uncompressed.
    fn chunk(kind: Kind, limit: usize, page_rows: usize, levels: bool) -> DictColumn {
        let options = PageOptions {
            codec: Compression::UNCOMPRESSED,
            page_rows,
            truncate: Some(64),
            statistics: true,
        };
        DictColumn::new(kind, limit, options, levels)
    }

    #[test]
    fn equal_values_are_found_with_one_comparison() {
        let all_equal = |a: &StringArray| {
            all_equal(a.value_offsets(), a.value_data(), a.nulls())
                .map(|v| std::str::from_utf8(v).unwrap().to_owned())
        };
        let same = StringArray::from(vec!["abc"; 5]);
        assert_eq!(all_equal(&same).as_deref(), Some("abc"));
        assert_eq!(all_equal(&same.slice(2, 3)).as_deref(), Some("abc"));
        for other in [
            vec!["abc", "abc", "abd"],
            vec!["ab", "cab", "c"],
            vec!["abab", "ab", "ab"],
        ] {
            assert_eq!(
                all_equal(&StringArray::from(other.clone())),
                None,
                "{other:?}"
            );
        }
        assert_eq!(all_equal(&StringArray::from(vec![Some("a"), None])), None);
        assert_eq!(
            all_equal(&StringArray::from(vec![""; 3])).as_deref(),
            Some("")
        );
    }

    #[test]
    fn equal_lengths_agree_with_a_value_by_value_check() {
        let all_lengths = |offsets: &[i32], len: i32| every_pair(offsets, |a, b| b - a == len);
        for n in 1..=40 {
            let even: Vec<i32> = (0..n).map(|i| i * 3).collect();
            assert!(all_lengths(&even, 3), "{n}");
            for at in 1..n as usize {
                let mut odd = even.clone();
                odd[at] += 1;
                let want = odd.windows(2).all(|w| w[1] - w[0] == 3);
                assert_eq!(all_lengths(&odd, 3), want, "{n}, {at}");
            }
        }
        assert!(all_lengths(&[], 3));
    }

    #[test]
    fn a_batch_of_nulls_is_one_run() {
        let mut strings = chunk(Kind::Utf8, usize::MAX, 20_000, true);
        assert_eq!(strings.push(&StringArray::from(vec!["a"; 2])), Pushed::Kept);
        let nulls = StringArray::from(vec![None::<&str>; 5]);
        assert_eq!(strings.push(&nulls), Pushed::Kept);
        assert_eq!(strings.push(&nulls.slice(1, 3)), Pushed::Kept);
        assert_eq!(strings.runs, [(0, 2), (NULL, 8)]);
        assert_eq!((strings.rows, strings.nulls), (10, 8));
        let want: ArrayRef = Arc::new(StringArray::from_iter(
            [Some("a"); 2].into_iter().chain([None; 8]),
        ));
        assert_eq!(&strings.to_array(&DataType::Utf8), &want);

        let mut numbers = chunk(Kind::Int64, usize::MAX, 4, true);
        let nulls = Int64Array::from(vec![None; 6]);
        assert_eq!(numbers.push(&nulls), Pushed::Kept);
        assert_eq!(
            (numbers.rows, numbers.nulls, numbers.pages.len()),
            (6, 6, 1)
        );
        assert_eq!(numbers.runs, [(NULL, 2)]);
        let want: ArrayRef = Arc::new(Int64Array::from(vec![None; 6]));
        assert_eq!(&numbers.to_array(&DataType::Int64), &want);
    }

    #[test]
    fn runs_merge_across_batches_and_keep_nulls() {
        let mut column = chunk(Kind::Utf8, usize::MAX, 20_000, true);
        assert_eq!(column.push(&StringArray::from(vec!["a"; 3])), Pushed::Kept);
        let mixed = StringArray::from(vec![Some("a"), Some("b"), None, None, Some("a")]);
        assert_eq!(column.push(&mixed), Pushed::Kept);
        assert_eq!(column.runs, [(0, 4), (1, 1), (NULL, 2), (0, 1)]);
        assert_eq!((column.rows, column.nulls), (8, 2));
        let want = ["a", "a", "a", "a", "b"]
            .map(Some)
            .into_iter()
            .chain([None, None, Some("a")]);
        let want: ArrayRef = Arc::new(StringArray::from_iter(want));
        assert_eq!(&column.to_array(&DataType::Utf8), &want);
    }

    #[test]
    fn a_dictionary_past_its_limit_is_said() {
        let mut column = chunk(Kind::Utf8, 20, 20_000, true);
        let push =
            |column: &mut DictColumn, values: Vec<&str>| column.push(&StringArray::from(values));
        assert_eq!(push(&mut column, vec!["abcd", "efgh"]), Pushed::Kept);
        assert_eq!(
            push(&mut column, vec!["ijkl", "abcd"]),
            Pushed::Refused { taken: 2 }
        );
        let want: ArrayRef = Arc::new(StringArray::from(vec!["abcd", "efgh", "ijkl", "abcd"]));
        assert_eq!(&column.to_array(&DataType::Utf8), &want);
    }

    /// `n` values of which `distinct` differ, the others repeating the first.
    fn sample(n: usize, distinct: usize) -> Vec<Option<i64>> {
        (0..n as i64)
            .map(|i| Some(if (i as usize) < distinct { i } else { 0 }))
            .collect()
    }

    #[test]
    fn a_column_whose_sample_is_nearly_all_distinct_is_refused_at_its_last_value() {
        let sample_values = SAMPLE_VALUES as usize;
        let at_threshold = sample_values * DISTINCT_PERCENT as usize / 100 + 1;
        // In batches of 100 rows with nulls between the values: the sample ends inside the
        // batch that holds its 1,024th value, and the chunk takes that batch up to that row.
        let mut values = sample(sample_values, at_threshold);
        for i in (0..values.len()).step_by(3) {
            values.insert(i, None);
        }
        let mut column = chunk(Kind::Int64, usize::MAX, 20_000, true);
        let mut pushed = Vec::new();
        let mut last = Pushed::Kept;
        for batch in values.chunks(100) {
            last = column.push(&Int64Array::from(batch.to_vec()));
            if let Pushed::Refused { taken } = last {
                pushed.extend_from_slice(&batch[..taken]);
                break;
            }
            pushed.extend_from_slice(batch);
        }
        assert!(matches!(last, Pushed::Refused { .. }), "{last:?}");
        assert_eq!(pushed.iter().flatten().count(), sample_values);
        assert_eq!(pushed.last(), values.iter().rev().find(|v| v.is_some()));
        let want: ArrayRef = Arc::new(Int64Array::from(pushed));
        assert_eq!(&column.to_array(&DataType::Int64), &want);

        // One value fewer distinct keeps the dictionary, for every later row too.
        let mut column = chunk(Kind::Int64, usize::MAX, 20_000, true);
        let kept = sample(sample_values, at_threshold - 1);
        assert_eq!(column.push(&Int64Array::from(kept)), Pushed::Kept);
        let distinct: Vec<_> = (5_000..9_000).map(Some).collect();
        assert_eq!(column.push(&Int64Array::from(distinct)), Pushed::Kept);

        // One batch past the sample: refused at the sample's end, the rest left to the caller.
        let mut column = chunk(Kind::Int64, usize::MAX, 20_000, true);
        let big = sample(3 * sample_values, 3 * sample_values);
        assert_eq!(
            column.push(&Int64Array::from(big)),
            Pushed::Refused {
                taken: sample_values
            }
        );

        // A chunk with fewer values than the sample keeps its dictionary, however distinct.
        let mut column = chunk(Kind::Int64, usize::MAX, 20_000, true);
        let few = sample(sample_values - 1, sample_values - 1);
        assert_eq!(column.push(&Int64Array::from(few)), Pushed::Kept);
    }

    #[test]
    fn the_hybrid_round_trips_runs_of_every_length_and_width() {
        let mut seed = 7u64;
        for bit_width in [0u8, 1, 3, 8, 13, 32] {
            let max = if bit_width == 0 {
                0
            } else {
                (1u64 << bit_width) - 1
            };
            let mut runs = Vec::new();
            for _ in 0..300 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let value = ((seed >> 20) % (max + 1)) as u32;
                let count = [1, 2, 7, 8, 9, 15, 16, 40][(seed >> 40) as usize % 8];
                runs.push((value, count));
            }
            let mut hybrid = Hybrid::new(bit_width);
            for &(v, n) in &runs {
                hybrid.put(v, n);
            }
            let bytes = hybrid.finish();
            let want: Vec<u32> = runs
                .iter()
                .flat_map(|&(v, n)| std::iter::repeat_n(v, n as usize))
                .collect();
            assert_eq!(
                unhybrid(&bytes, bit_width, want.len()),
                want,
                "bit width {bit_width}"
            );
        }
    }

    #[test]
    fn rle_headers_are_uleb128_and_values_take_whole_bytes() {
        let mut hybrid = Hybrid::new(1);
        hybrid.put(1, 8);
        hybrid.put(0, 300);
        assert_eq!(hybrid.finish(), [16, 1, 0xd8, 0x04, 0]);
        let mut hybrid = Hybrid::new(0);
        hybrid.put(0, 5);
        assert_eq!(hybrid.finish(), [10]);
        assert_eq!(
            (bits_for(0), bits_for(1), bits_for(2), bits_for(255)),
            (0, 1, 2, 8)
        );
    }

    #[test]
    fn pages_end_at_the_row_limit_and_read_back() {
        let mut column = chunk(Kind::Utf8, usize::MAX, 4, true);
        let values = [
            Some("a"),
            Some("a"),
            Some("a"),
            Some("a"),
            Some("a"),
            Some("b"),
            None,
        ];
        assert_eq!(
            column.push(&StringArray::from(values.to_vec())),
            Pushed::Kept
        );
        assert_eq!(column.push(&StringArray::from(vec!["b"; 6])), Pushed::Kept);
        // 13 rows: three whole pages of 4, one row in progress.
        let rows: Vec<_> = column.pages.iter().map(|p| p.rows).collect();
        assert_eq!((rows, column.page_rows), (vec![4, 4, 4], 1));
        let want: Vec<_> = [0, 0, 0, 0, 0, 1]
            .map(Some)
            .into_iter()
            .chain([None])
            .chain([Some(1); 6])
            .collect();
        assert_eq!(column.keys(), want);
        // Without levels (a required column), pages hold keys only.
        let mut column = chunk(Kind::Int64, usize::MAX, 2, false);
        column.push(&Int64Array::from(vec![7, 7, 9]));
        assert_eq!(column.keys(), [Some(0), Some(0), Some(1)]);
    }

    #[test]
    fn float_statistics_leave_nan_out_and_sign_their_zeros() {
        let stats = |values: Vec<Option<f64>>| {
            let mut column = chunk(Kind::Float64, usize::MAX, 20_000, true);
            column.push(&Float64Array::from(values));
            match column.statistics(None) {
                Statistics::Double(s) => (
                    s.min_opt().copied(),
                    s.max_opt().copied(),
                    s.null_count_opt(),
                ),
                other => panic!("{other:?}"),
            }
        };
        let (min, max, nulls) = stats(vec![Some(0.0), Some(f64::NAN), None, Some(1.5)]);
        assert!(min.is_some_and(|m| m == 0.0 && m.is_sign_negative()));
        assert_eq!((max, nulls), (Some(1.5), Some(1)));
        let (min, max, _) = stats(vec![Some(-0.0), Some(-2.0)]);
        assert_eq!(min, Some(-2.0));
        assert!(max.is_some_and(|m| m == 0.0 && m.is_sign_positive()));
        assert_eq!(stats(vec![Some(f64::NAN)]), (None, None, Some(0)));
    }

    #[test]
    fn statistics_are_cut_as_parquet_cuts_them() {
        assert_eq!(truncate_min(b"abcdef", 4), (b"abcd".to_vec(), false));
        assert_eq!(truncate_min(b"abc", 4), (b"abc".to_vec(), true));
        assert_eq!(truncate_max(b"abcdef", 4), Some((b"abce".to_vec(), false)));
        // "é" is two bytes: a cut inside it backs off to the boundary before it.
        assert_eq!(truncate_min("abé".as_bytes(), 3), (b"ab".to_vec(), false));
        assert_eq!(
            truncate_max("abéz".as_bytes(), 3),
            Some((b"ac".to_vec(), false))
        );
        let top = "\u{10FFFF}\u{10FFFF}x";
        assert_eq!(truncate_max(top.as_bytes(), 8), None);
    }
}
