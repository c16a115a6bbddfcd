//! Redshift's VARCHAR limit: string values over 65,535 bytes are cut at a UTF-8 boundary and
//! counted, so a COPY never fails on one long cookie or query string.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, StringBuilder};

use crate::parse::cut_at_boundary;

/// The longest VARCHAR Redshift stores, in bytes.
pub const REDSHIFT_MAX_VARCHAR: usize = 65_535;

/// Cut every string value of `batch` longer than `limit` bytes. Returns the batch and how many
/// values were cut. Batches with no long value are returned as they are, without copying.
pub fn cut_strings(batch: RecordBatch, limit: usize) -> (RecordBatch, u64) {
    let mut cut = 0;
    let mut arrays: Option<Vec<ArrayRef>> = None;
    for (idx, col) in batch.columns().iter().enumerate() {
        let Some(values) = col.as_any().downcast_ref::<StringArray>() else {
            continue;
        };
        // No value is longer than all of them together: most batches are decided here.
        let offsets = values.offsets();
        let span = (offsets[offsets.len() - 1] - offsets[0]) as usize;
        let too_long = span > limit && offsets.windows(2).any(|w| (w[1] - w[0]) as usize > limit);
        if !too_long {
            continue;
        }
        let mut builder = StringBuilder::with_capacity(values.len(), values.values().len());
        for v in values.iter() {
            match v {
                Some(v) if v.len() > limit => {
                    cut += 1;
                    builder.append_value(cut_at_boundary(v, limit));
                }
                v => builder.append_option(v),
            }
        }
        arrays.get_or_insert_with(|| batch.columns().to_vec())[idx] = Arc::new(builder.finish());
    }
    match arrays {
        None => (batch, 0),
        Some(arrays) => (
            RecordBatch::try_new(batch.schema(), arrays).expect("cutting keeps the schema"),
            cut,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn long_values_are_cut_on_a_char_boundary_and_counted() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let long = "é".repeat(40_000); // 80,000 bytes
        let values = StringArray::from(vec![Some("short"), None, Some(long.as_str())]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(values)]).unwrap();
        let (out, cut) = cut_strings(batch, REDSHIFT_MAX_VARCHAR);
        assert_eq!(cut, 1);
        let s = out
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(s.value(0), "short");
        assert!(s.is_null(1));
        assert_eq!(s.value(2).len(), 65_534); // 65,535 would split a 2-byte char
        assert!(s.value(2).chars().all(|c| c == 'é'));
    }
}
