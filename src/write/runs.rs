//! Column chunks of a string column whose values come in long runs, encoded by run.
//!
//! `customer` is one value per file and `source_file` one per input, yet Parquet's Arrow
//! writer hashes every row of them into its dictionary and compares every row against the
//! chunk's minimum and maximum: a quarter of the writer's work on an audit run. Here a batch's
//! values are taken as runs (a batch whose values are all equal is found with one comparison
//! of its bytes against themselves, shifted by one value), and the chunk is written as
//! Parquet writes it: a dictionary page of the distinct values (PLAIN), and one v1 data page
//! of RLE runs, definition levels first, then dictionary indices. Pages are uncompressed:
//! they are a few bytes per run, and a chunk's codec is its own in Parquet.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use bytes::Bytes;
use parquet::basic::{Compression, Encoding};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::Result;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::page_index::offset_index::{OffsetIndexMetaData, PageLocation};
use parquet::file::statistics::Statistics;
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

/// The runs of one column chunk in progress.
#[derive(Debug, Default)]
pub struct RunColumn {
    /// Distinct values in first-seen order: the dictionary.
    values: Vec<Arc<[u8]>>,
    index: HashMap<Arc<[u8]>, u32>,
    /// Dictionary index (`None` for null) and length of each run, in row order.
    runs: Vec<(Option<u32>, u64)>,
    rows: u64,
    nulls: u64,
}

impl RunColumn {
    /// Bytes held: the distinct values and the runs.
    pub fn memory_size(&self) -> usize {
        self.values.iter().map(|v| 2 * v.len() + 64).sum::<usize>()
            + self.runs.len() * std::mem::size_of::<(Option<u32>, u64)>()
    }

    /// Append `array`'s values.
    pub fn push(&mut self, array: &StringArray) {
        if array.is_empty() {
            return;
        }
        if let Some(value) = all_equal(array) {
            let key = self.key(value.as_bytes());
            self.extend(Some(key), array.len() as u64);
            return;
        }
        let mut i = 0;
        while i < array.len() {
            let value = array.is_valid(i).then(|| array.value(i));
            let mut end = i + 1;
            while end < array.len() && array.is_valid(end).then(|| array.value(end)) == value {
                end += 1;
            }
            let key = value.map(|v| self.key(v.as_bytes()));
            self.extend(key, (end - i) as u64);
            i = end;
        }
    }

    fn key(&mut self, value: &[u8]) -> u32 {
        if let Some(&key) = self.index.get(value) {
            return key;
        }
        let key = self.values.len() as u32;
        let value: Arc<[u8]> = value.into();
        self.values.push(value.clone());
        self.index.insert(value, key);
        key
    }

    fn extend(&mut self, key: Option<u32>, len: u64) {
        self.rows += len;
        if key.is_none() {
            self.nulls += len;
        }
        match self.runs.last_mut() {
            Some((last, n)) if *last == key => *n += len,
            _ => self.runs.push((key, len)),
        }
    }

    /// The chunk's bytes and what its row group needs to know of them; the column starts
    /// over.
    pub fn close(&mut self, descr: ColumnDescPtr) -> Result<(Bytes, ColumnCloseResult)> {
        let column = std::mem::take(self);
        let mut dictionary = Vec::new();
        for value in &column.values {
            dictionary.extend_from_slice(&(value.len() as u32).to_le_bytes());
            dictionary.extend_from_slice(value);
        }
        let mut data = Vec::new();
        if descr.max_def_level() > 0 {
            let mut levels = Vec::new();
            let defined = column
                .runs
                .iter()
                .map(|&(k, n)| (u64::from(k.is_some()), n));
            rle_runs(defined, 1, &mut levels);
            data.extend_from_slice(&(levels.len() as u32).to_le_bytes());
            data.extend_from_slice(&levels);
        }
        let bit_width = bits_for(column.values.len().saturating_sub(1) as u64);
        data.push(bit_width);
        let keys = column
            .runs
            .iter()
            .filter_map(|&(k, n)| Some((u64::from(k?), n)));
        rle_runs(keys, bit_width, &mut data);

        let mut sink = TrackedWrite::new(Vec::new());
        let mut pages = SerializedPageWriter::new(&mut sink);
        let (dictionary_len, data_len) = (dictionary.len(), data.len());
        let written = [
            Page::DictionaryPage {
                buf: dictionary.into(),
                num_values: column.values.len() as u32,
                encoding: Encoding::PLAIN,
                is_sorted: false,
            },
            Page::DataPage {
                buf: data.into(),
                num_values: column.rows as u32,
                encoding: Encoding::RLE_DICTIONARY,
                def_level_encoding: Encoding::RLE,
                rep_level_encoding: Encoding::RLE,
                statistics: None,
            },
        ]
        .into_iter()
        .zip([dictionary_len, data_len])
        .map(|(page, len)| pages.write_page(CompressedPage::new(page, len)))
        .collect::<Result<Vec<_>>>()?;
        pages.close()?;
        let bytes = Bytes::from(sink.into_inner()?);

        let min = column
            .values
            .iter()
            .min()
            .map(|v| ByteArray::from(v.to_vec()));
        let max = column
            .values
            .iter()
            .max()
            .map(|v| ByteArray::from(v.to_vec()));
        let metadata = ColumnChunkMetaData::builder(descr)
            .set_compression(Compression::UNCOMPRESSED)
            .set_encodings(vec![
                Encoding::PLAIN,
                Encoding::RLE,
                Encoding::RLE_DICTIONARY,
            ])
            .set_num_values(column.rows as i64)
            .set_total_compressed_size(bytes.len() as i64)
            .set_total_uncompressed_size(bytes.len() as i64)
            .set_dictionary_page_offset(Some(0))
            .set_data_page_offset(written[0].bytes_written as i64)
            .set_statistics(Statistics::byte_array(
                min,
                max,
                None,
                Some(column.nulls),
                false,
            ))
            .build()?;
        // The file's offset index lists every chunk's data pages (a column index, of page
        // minimums and maximums, may be absent for some chunks).
        let offset_index = OffsetIndexMetaData {
            page_locations: vec![PageLocation {
                offset: written[0].bytes_written as i64,
                compressed_page_size: written[1].bytes_written as i32,
                first_row_index: 0,
            }],
            unencoded_byte_array_data_bytes: None,
        };
        let close = ColumnCloseResult {
            bytes_written: bytes.len() as u64,
            rows_written: column.rows,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(offset_index),
        };
        Ok((bytes, close))
    }
}

/// The one value of `array` when every row holds it (no nulls): every value is as long as
/// the first, and the bytes equal themselves shifted by one value.
fn all_equal(array: &StringArray) -> Option<&str> {
    if array.null_count() > 0 {
        return None;
    }
    let offsets = array.value_offsets();
    let len = offsets[1] - offsets[0];
    let same_lengths = offsets.windows(2).all(|w| w[1] - w[0] == len);
    let bytes = &array.value_data()[offsets[0] as usize..offsets[offsets.len() - 1] as usize];
    let len = len as usize;
    (same_lengths && bytes[len..] == bytes[..bytes.len() - len]).then(|| array.value(0))
}

/// Bits that hold `max`.
fn bits_for(max: u64) -> u8 {
    (64 - max.leading_zeros()) as u8
}

/// `runs` of (value, count) in Parquet's RLE / bit-packing hybrid, as RLE runs only: each a
/// ULEB128 header `count << 1`, then the value in `ceil(bit_width / 8)` little-endian bytes.
fn rle_runs(runs: impl Iterator<Item = (u64, u64)>, bit_width: u8, out: &mut Vec<u8>) {
    let value_bytes = usize::from(bit_width).div_ceil(8);
    for (value, count) in runs {
        // A header holds at most 2^31 - 1 values (readers take it as a 32-bit count).
        let mut left = count;
        while left > 0 {
            let n = left.min(i32::MAX as u64);
            let mut header = n << 1;
            loop {
                let byte = (header & 0x7f) as u8;
                header >>= 7;
                if header == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
            out.extend_from_slice(&value.to_le_bytes()[..value_bytes]);
            left -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_are_found_with_one_comparison() {
        let same = StringArray::from(vec!["abc"; 5]);
        assert_eq!(all_equal(&same), Some("abc"));
        assert_eq!(all_equal(&same.slice(2, 3)), Some("abc"));
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
        assert_eq!(all_equal(&StringArray::from(vec![""; 3])), Some(""));
    }

    #[test]
    fn runs_merge_across_batches_and_keep_nulls() {
        let mut column = RunColumn::default();
        column.push(&StringArray::from(vec!["a"; 3]));
        column.push(&StringArray::from(vec![
            Some("a"),
            Some("b"),
            None,
            None,
            Some("a"),
        ]));
        assert_eq!(
            column.runs,
            [(Some(0), 4), (Some(1), 1), (None, 2), (Some(0), 1)]
        );
        assert_eq!((column.rows, column.nulls), (8, 2));
    }

    #[test]
    fn rle_headers_are_uleb128_and_values_take_whole_bytes() {
        let mut out = Vec::new();
        rle_runs([(1, 3), (0, 300)].into_iter(), 1, &mut out);
        assert_eq!(out, [6, 1, 0xd8, 0x04, 0]);
        out.clear();
        rle_runs([(5, 1)].into_iter(), 0, &mut out);
        assert_eq!(out, [2]);
        assert_eq!(
            (bits_for(0), bits_for(1), bits_for(2), bits_for(255)),
            (0, 1, 2, 8)
        );
    }
}
