//! Split table batches by partition (`customer`, `dt`) with Arrow kernels: one sort on the
//! partition columns (then `row_num`, so rows keep file order), then contiguous slices, never
//! per-row hashing. Partition values become path segments through [`PartitionKey::path`], the
//! one function that encodes them.

use std::fmt::Write;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::Date32Type;

use crate::error::Result;
use crate::parse::timestamp::civil_from_days;
use crate::schema::{CUSTOMER, DT, ROW_NUM};

/// The value Hive writes for an empty or null partition value.
pub const HIVE_DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// One partition of a table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// The customer.
    pub customer: String,
    /// The UTC date, as days since 1970-01-01.
    pub dt: i32,
}

impl PartitionKey {
    /// `dt` as `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        let (y, m, d) = civil_from_days(i64::from(self.dt));
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// The partition's path below the table folder: `customer=<c>/dt=<YYYY-MM-DD>`, the
    /// customer escaped as Hive escapes path values, so a value can never leave its folder.
    pub fn path(&self) -> String {
        format!(
            "customer={}/dt={}",
            escape_path_value(&self.customer),
            self.date()
        )
    }
}

/// Escape a partition value the way Hive's `FileUtils.escapePathName` does: control bytes and
/// `"#%'*/:=?\{[]^` and DEL become `%XX`; an empty value is Hive's default partition.
pub fn escape_path_value(value: &str) -> String {
    if value.is_empty() {
        return HIVE_DEFAULT_PARTITION.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let escape = c.is_ascii_control()
            || matches!(
                c,
                '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
            );
        if escape {
            let _ = write!(out, "%{:02X}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// Rows of one partition.
#[derive(Debug, Clone)]
pub struct PartitionBatch {
    /// Which partition.
    pub key: PartitionKey,
    /// Its rows (the full table schema, `customer` and `dt` included).
    pub batch: RecordBatch,
}

/// Split a table batch into one batch per partition, in key order.
pub fn split(batch: &RecordBatch) -> Result<Vec<PartitionBatch>> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let column = |name: &str| {
        batch.column_by_name(name).cloned().ok_or_else(|| {
            arrow::error::ArrowError::SchemaError(format!("partitioning needs column {name}"))
        })
    };
    let (customer, dt) = (column(CUSTOMER)?, column(DT)?);
    let mut keys = vec![
        SortColumn {
            values: customer,
            options: None,
        },
        SortColumn {
            values: dt,
            options: None,
        },
    ];
    if let Ok(row_num) = column(ROW_NUM) {
        keys.push(SortColumn {
            values: row_num,
            options: None,
        });
    }
    let order = lexsort_to_indices(&keys, None)?;
    let sorted = take_record_batch(batch, &order)?;
    let customers = sorted
        .column_by_name(CUSTOMER)
        .map(|c| c.as_string::<i32>().clone());
    let dates = sorted
        .column_by_name(DT)
        .map(|c| c.as_primitive::<Date32Type>().clone());
    let (Some(customers), Some(dates)) = (customers, dates) else {
        return Err(arrow::error::ArrowError::SchemaError(
            "customer must be a string and dt a date".into(),
        )
        .into());
    };
    let key_at = |i: usize| PartitionKey {
        customer: if customers.is_null(i) {
            String::new()
        } else {
            customers.value(i).to_owned()
        },
        dt: dates.value(i),
    };
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=sorted.num_rows() {
        let boundary = i == sorted.num_rows()
            || customers.value(i) != customers.value(start)
            || dates.value(i) != dates.value(start);
        if boundary {
            out.push(PartitionBatch {
                key: key_at(start),
                batch: sorted.slice(start, i - start),
            });
            start = i;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::lineage_fields;
    use arrow::array::{Date32Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Int64Type, Schema};
    use std::sync::Arc;

    fn batch(rows: &[(&str, i32, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(lineage_fields().to_vec()));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMicrosecondArray::from(vec![0; rows.len()]).with_timezone("UTC")),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "f"))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn splits_into_contiguous_partitions_keeping_file_order() {
        let b = batch(&[
            ("globex", 18_234, 2),
            ("acme", 18_235, 3),
            ("acme", 18_234, 4),
            ("globex", 18_234, 5),
            ("acme", 18_234, 6),
        ]);
        let parts = split(&b).unwrap();
        let summary: Vec<_> = parts
            .iter()
            .map(|p| {
                let rows = p
                    .batch
                    .column_by_name(ROW_NUM)
                    .unwrap()
                    .as_primitive::<Int64Type>();
                (p.key.path(), rows.values().to_vec())
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("customer=acme/dt=2019-12-04".to_string(), vec![4, 6]),
                ("customer=acme/dt=2019-12-05".to_string(), vec![3]),
                ("customer=globex/dt=2019-12-04".to_string(), vec![2, 5]),
            ]
        );
        assert!(split(&batch(&[])).unwrap().is_empty());
    }

    #[test]
    fn values_cannot_escape_their_folder() {
        let cases = [
            ("acme", "acme"),
            ("../etc", "..%2Fetc"),
            ("a/b", "a%2Fb"),
            ("x=y", "x%3Dy"),
            ("50%", "50%25"),
            ("tab\there", "tab%09here"),
            ("", HIVE_DEFAULT_PARTITION),
            ("Zürich GmbH", "Zürich GmbH"),
        ];
        for (value, want) in cases {
            assert_eq!(escape_path_value(value), want, "{value:?}");
        }
        let key = PartitionKey {
            customer: "..".into(),
            dt: 0,
        };
        assert_eq!(key.path(), "customer=../dt=1970-01-01");
    }
}
