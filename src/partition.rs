//! Split table batches by partition (`customer`, `dt`) with Arrow kernels: one sort on the
//! partition columns (then `row_num`, so rows keep file order), then contiguous slices, never
//! per-row hashing. Partition values become path segments through [`PartitionKey::path`], the
//! one function that encodes them.

use std::fmt::Write;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Date32Array, RecordBatch, StringArray};
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::Date32Type;

use crate::error::Result;
use crate::parse::timestamp::civil_from_days;
use crate::schema::{CUSTOMER, DT, ROW_NUM};

/// The longest name a folder may have (ext4, XFS, APFS, NTFS; Hive paths on S3 follow it).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// The longest S3 object key.
pub const MAX_KEY_BYTES: usize = 1024;

/// The value Hive writes for an empty or null partition value.
pub const HIVE_DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// One partition of a table.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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

impl PartitionKey {
    /// Check that the partition's folder can exist: its `customer=…` segment within
    /// [`MAX_SEGMENT_BYTES`], and the whole `customer=…/dt=…` path within `room` bytes (what is
    /// left of a data file's key). The message names the customer (scrubbed, shortened).
    pub fn check_path(&self, room: usize) -> std::result::Result<(), String> {
        let segment = format!("customer={}", escape_path_value(&self.customer));
        let path = self.path();
        let limit = if segment.len() > MAX_SEGMENT_BYTES {
            format!("its folder name `customer=…` would be {} bytes, more than the {MAX_SEGMENT_BYTES} a folder name may have", segment.len())
        } else if path.len() > room {
            format!("a data file key under it would be longer than S3's {MAX_KEY_BYTES} bytes ({} bytes of partition path, {room} left by the lake's prefix)", path.len())
        } else {
            return Ok(());
        };
        let shown = crate::parse::cut_at_boundary(&self.customer, 48);
        Err(format!(
            "customer {:?}{} ({} bytes): {limit}",
            crate::transform::mask::scrub_text(shown),
            if shown.len() < self.customer.len() {
                "…"
            } else {
                ""
            },
            self.customer.len()
        ))
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
    let (customers, dates) = key_columns(batch)?;
    // Logs are mostly in time order and of one customer, so a batch is usually a few runs of
    // one key each: those become slices (no copy), or one concatenation when a key has more
    // than one run (a file's late rows). Many runs (interleaved customers) take one sort.
    if let Some(runs) = key_runs(&customers, &dates, MAX_RUNS) {
        return from_runs(batch, runs);
    }
    let mut keys = vec![
        SortColumn {
            values: Arc::new(customers),
            options: None,
        },
        SortColumn {
            values: Arc::new(dates),
            options: None,
        },
    ];
    if let Some(row_num) = batch.column_by_name(ROW_NUM) {
        keys.push(SortColumn {
            values: row_num.clone(),
            options: None,
        });
    }
    let order = lexsort_to_indices(&keys, None)?;
    let sorted = take_record_batch(batch, &order)?;
    let (customers, dates) = key_columns(&sorted)?;
    let runs = key_runs(&customers, &dates, usize::MAX).expect("no limit on runs");
    from_runs(&sorted, runs)
}

/// Runs past which sorting the batch once beats gathering its runs.
const MAX_RUNS: usize = 64;

/// The batch's contiguous runs of one (customer, dt), grouped by key in key order; `None`
/// past `max_runs` runs.
fn key_runs(
    customers: &StringArray,
    dates: &Date32Array,
    max_runs: usize,
) -> Option<BTreeMap<PartitionKey, Vec<Range<usize>>>> {
    let customer = |i: usize| {
        if customers.is_null(i) {
            ""
        } else {
            customers.value(i)
        }
    };
    let mut runs: BTreeMap<PartitionKey, Vec<Range<usize>>> = BTreeMap::new();
    let (mut count, mut start) = (0, 0);
    let values = dates.values();
    for i in 1..=customers.len() {
        let boundary =
            i == customers.len() || values[i] != values[start] || customer(i) != customer(start);
        if boundary {
            count += 1;
            if count > max_runs {
                return None;
            }
            let key = PartitionKey {
                customer: customer(start).to_owned(),
                dt: values[start],
            };
            runs.entry(key).or_default().push(start..i);
            start = i;
        }
    }
    Some(runs)
}

/// One partition batch per key: a slice of `batch` for a single run, else its runs' rows
/// concatenated in file order.
fn from_runs(
    batch: &RecordBatch,
    runs: BTreeMap<PartitionKey, Vec<Range<usize>>>,
) -> Result<Vec<PartitionBatch>> {
    let slice = |r: &Range<usize>| batch.slice(r.start, r.len());
    runs.into_iter()
        .map(|(key, ranges)| {
            let batch = match ranges.as_slice() {
                [one] => slice(one),
                many => {
                    concat_batches(&batch.schema(), &many.iter().map(slice).collect::<Vec<_>>())?
                }
            };
            Ok(PartitionBatch { key, batch })
        })
        .collect()
}

/// The `customer` and `dt` columns of a table batch.
fn key_columns(batch: &RecordBatch) -> Result<(StringArray, Date32Array)> {
    let column = |name: &str| {
        batch.column_by_name(name).ok_or_else(|| {
            arrow::error::ArrowError::SchemaError(format!("partitioning needs column {name}"))
        })
    };
    let customers = column(CUSTOMER)?.as_string_opt::<i32>().cloned();
    let dates = column(DT)?.as_primitive_opt::<Date32Type>().cloned();
    match (customers, dates) {
        (Some(c), Some(d)) => Ok((c, d)),
        _ => Err(arrow::error::ArrowError::SchemaError(
            "customer must be a string and dt a date".into(),
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_paths_that_cannot_exist_are_refused_with_the_reason() {
        let key = |customer: &str| PartitionKey {
            customer: customer.into(),
            dt: 19_000,
        };
        assert!(key("acme").check_path(100).is_ok());
        // 246 bytes fit a folder name with `customer=` (255); 247 do not.
        assert!(key(&"a".repeat(246)).check_path(1000).is_ok());
        let err = key(&"a".repeat(247)).check_path(1000).unwrap_err();
        assert!(
            err.contains("would be 256 bytes, more than the 255"),
            "{err}"
        );
        assert!(
            err.starts_with(&format!("customer \"{}\"…", "a".repeat(48))),
            "{err}"
        );
        // Escaping counts: 200 characters that escape to 3 bytes each.
        let err = key(&":".repeat(200)).check_path(1000).unwrap_err();
        assert!(err.contains("would be 609 bytes"), "{err}");
        // Multi-byte characters count in bytes: 85 × "€" is 255 bytes.
        assert!(key(&"€".repeat(85)).check_path(1000).is_err());
        // Room left by a long lake prefix.
        let err = key("acme").check_path(20).unwrap_err();
        assert!(err.contains("longer than S3's 1024 bytes"), "{err}");
        // The message never carries a full address.
        let err = key(&format!("192.0.2.77{}", "x".repeat(300)))
            .check_path(1000)
            .unwrap_err();
        assert!(!err.contains("192.0.2.77"), "{err}");
    }
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
        let paths: Vec<_> = parts.iter().map(|p| p.key.path()).collect();
        assert_eq!(
            paths,
            [
                "customer=acme/dt=2019-12-04",
                "customer=acme/dt=2019-12-05",
                "customer=globex/dt=2019-12-04"
            ]
        );
        assert_eq!(row_nums(&parts), [vec![4, 6], vec![3], vec![2, 5]]);
        assert!(split(&batch(&[])).unwrap().is_empty());
    }

    #[test]
    fn batches_already_in_key_order_are_sliced_not_copied() {
        let b = batch(&[
            ("acme", 18_234, 2),
            ("acme", 18_234, 3),
            ("acme", 18_235, 4),
            ("globex", 18_233, 5),
        ]);
        let parts = split(&b).unwrap();
        let summary: Vec<_> = parts
            .iter()
            .map(|p| (p.key.path(), p.batch.num_rows()))
            .collect();
        assert_eq!(
            summary,
            [
                ("customer=acme/dt=2019-12-04".to_string(), 2),
                ("customer=acme/dt=2019-12-05".to_string(), 1),
                ("customer=globex/dt=2019-12-03".to_string(), 1),
            ]
        );
        // Slices share the input's buffers: nothing was copied.
        let ts = |batch: &RecordBatch| batch.column(0).to_data().buffers()[0].as_ptr();
        assert_eq!(ts(&parts[0].batch), ts(&b));
    }

    fn row_nums(parts: &[PartitionBatch]) -> Vec<Vec<i64>> {
        parts
            .iter()
            .map(|p| {
                let rows = p.batch.column_by_name(ROW_NUM).unwrap();
                rows.as_primitive::<Int64Type>().values().to_vec()
            })
            .collect()
    }

    #[test]
    fn late_rows_join_their_partition_in_file_order() {
        // A day's file whose last rows belong to the day before, then to the day again.
        let b = batch(&[
            ("acme", 18_235, 1),
            ("acme", 18_235, 2),
            ("acme", 18_234, 3),
            ("acme", 18_235, 4),
        ]);
        let parts = split(&b).unwrap();
        assert_eq!(parts[0].key.dt, 18_234);
        assert_eq!(row_nums(&parts), [vec![3], vec![1, 2, 4]]);
    }

    #[test]
    fn interleaved_keys_past_the_run_limit_are_sorted_once() {
        let rows: Vec<_> = (0..2 * MAX_RUNS as i64)
            .map(|i| (if i % 2 == 0 { "globex" } else { "acme" }, 18_234, i))
            .collect();
        let parts = split(&batch(&rows)).unwrap();
        let odd: Vec<i64> = (0..2 * MAX_RUNS as i64).filter(|i| i % 2 == 1).collect();
        let even: Vec<i64> = (0..2 * MAX_RUNS as i64).filter(|i| i % 2 == 0).collect();
        assert_eq!(row_nums(&parts), [odd, even]);
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
