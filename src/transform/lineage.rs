//! Lineage: who a row belongs to and where it came from. Adds `customer`, `dt` and
//! `source_file`, rejects rows whose own `customer` disagrees with their path, and lays the
//! batch out in table-schema order (columns a file lacks are null).

use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, Date32Array, RecordBatch, StringArray, StringBuilder,
};
use arrow::compute::{cast, filter, filter_record_batch, is_not_null};
use arrow::datatypes::{Int64Type, SchemaRef, TimestampMicrosecondType};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::Result;
use crate::parse::column::utf8_array;
use crate::parse::timestamp::MICROS_PER_DAY;
use crate::parse::{reject_text, Reject, RejectReason};
use crate::schema::{CUSTOMER, DT, ROW_NUM, SOURCE_FILE, TS};

/// Where the rows of one input file come from.
#[derive(Debug, Clone)]
pub struct Lineage {
    /// The input's uri, stored in `source_file`.
    pub source_file: String,
    /// The customer captured from the input path by `{customer}`, if the pattern has one.
    pub path_customer: Option<String>,
    source_files: Repeated,
    path_customers: Repeated,
}

/// One value down a whole column, built once at the largest batch size seen and sliced for
/// each batch (a slice shares its buffers): an input's `source_file`, and its `customer` when
/// the path gives it, cost no copy per row.
#[derive(Debug, Default)]
struct Repeated(Mutex<Option<StringArray>>);

impl Repeated {
    fn array(&self, value: &str, rows: usize) -> StringArray {
        let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match cache.as_ref() {
            Some(column) if column.len() >= rows => column.slice(0, rows),
            _ => {
                let column = repeat(value, rows);
                *cache = Some(column.clone());
                column
            }
        }
    }
}

/// `value` in each of `rows` rows: the bytes repeated by `<[u8]>::repeat` (block copies that
/// double), the offsets a multiple of its length each (a value pushed per row cost 4% of a
/// run of 20,000 small files).
fn repeat(value: &str, rows: usize) -> StringArray {
    let len = value.len();
    len.checked_mul(rows)
        .filter(|&t| i32::try_from(t).is_ok())
        .expect("a repeated column over 2 GiB in one batch");
    let offsets = (0..=rows).map(|i| (i * len) as i32).collect();
    utf8_array(offsets, value.as_bytes().repeat(rows), None)
}

impl Clone for Repeated {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl Lineage {
    /// Lineage of `source_file` with an optional path customer.
    pub fn new(source_file: impl Into<String>, path_customer: Option<String>) -> Self {
        Self {
            source_file: source_file.into(),
            path_customer: path_customer.filter(|c| !c.is_empty()),
            source_files: Repeated::default(),
            path_customers: Repeated::default(),
        }
    }

    /// Decide each row's customer: its own non-empty value, else the path's; a row value that
    /// disagrees with the path, or no value at all, rejects the row. Rejected rows are null in
    /// the returned column, which is built without a `String` per row.
    fn customers(&self, batch: &RecordBatch) -> (StringArray, Vec<(usize, RejectReason)>) {
        let own = batch
            .column_by_name(CUSTOMER)
            .and_then(|c| c.as_string_opt::<i32>().cloned());
        let path = self.path_customer.as_deref();
        if let (None, Some(path)) = (&own, path) {
            return (
                self.path_customers.array(path, batch.num_rows()),
                Vec::new(),
            );
        }
        let mut out = StringBuilder::with_capacity(batch.num_rows(), batch.num_rows() * 8);
        let mut reasons = Vec::new();
        for i in 0..batch.num_rows() {
            let row = own
                .as_ref()
                .filter(|c| c.is_valid(i) && !c.value(i).is_empty())
                .map(|c| c.value(i));
            match (row, path) {
                (Some(r), Some(p)) if r != p => {
                    out.append_null();
                    reasons.push((
                        i,
                        RejectReason::CustomerMismatch {
                            row: reject_text(r.as_bytes()),
                            path: p.to_owned(),
                        },
                    ));
                }
                (Some(c), _) | (None, Some(c)) => out.append_value(c),
                (None, None) => {
                    out.append_null();
                    reasons.push((i, RejectReason::MissingCustomer));
                }
            }
        }
        (out.finish(), reasons)
    }

    /// Attach lineage and align `batch` (decoder columns, masked) to `table`.
    pub fn attach(
        &self,
        batch: RecordBatch,
        table: &SchemaRef,
    ) -> Result<(RecordBatch, Vec<Reject>)> {
        let (customers, reasons) = self.customers(&batch);
        let mut rejects = Vec::with_capacity(reasons.len());
        let (batch, customers): (RecordBatch, ArrayRef) = if reasons.is_empty() {
            (batch, Arc::new(customers))
        } else {
            let row_nums = batch
                .column_by_name(ROW_NUM)
                .map(|c| c.as_primitive::<Int64Type>().clone());
            for (i, reason) in reasons {
                rejects.push(Reject {
                    line: row_nums.as_ref().map_or(0, |r| r.value(i) as u64),
                    reason,
                    raw: reject_text(render_row(&batch, i).as_bytes()),
                });
            }
            let keep = is_not_null(&customers)?;
            (
                filter_record_batch(&batch, &keep)?,
                filter(&customers, &keep)?,
            )
        };

        let rows = batch.num_rows();
        let ts = batch
            .column_by_name(TS)
            .map(|c| c.as_primitive::<TimestampMicrosecondType>().clone());
        let dt: Date32Array = match &ts {
            Some(ts) => ts.unary(|us| us.div_euclid(MICROS_PER_DAY) as i32),
            None => Date32Array::from(vec![None; rows]),
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.fields().len());
        for field in table.fields() {
            let col: ArrayRef = match field.name().as_str() {
                CUSTOMER => customers.clone(),
                DT => Arc::new(dt.clone()),
                SOURCE_FILE => Arc::new(self.source_files.array(&self.source_file, rows)),
                name => match batch.column_by_name(name) {
                    Some(c) if c.data_type() == field.data_type() => c.clone(),
                    Some(c) => cast(c, field.data_type())?,
                    None => new_null_array(field.data_type(), rows),
                },
            };
            columns.push(col);
        }
        Ok((RecordBatch::try_new(table.clone(), columns)?, rejects))
    }
}

/// One row as comma-separated display values (for reject records).
fn render_row(batch: &RecordBatch, row: usize) -> String {
    let opts = FormatOptions::default().with_null("");
    let mut out = String::new();
    for (i, col) in batch.columns().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Ok(f) = ArrayFormatter::try_new(col.as_ref(), &opts) {
            out.push_str(&f.value(row).to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::audit::HeaderUnion;
    use crate::schema::table_schema;
    use arrow::array::{Int64Array, TimestampMicrosecondArray};

    #[test]
    fn repeat_gives_the_value_in_every_row() {
        for (value, rows) in [
            ("s3://b/logs/acme/E1.gz", 5),
            ("é", 3),
            ("", 4),
            ("x", 0),
            ("ab", 1),
        ] {
            assert_eq!(
                repeat(value, rows),
                StringArray::from_iter_values(std::iter::repeat_n(value, rows)),
                "{value:?} × {rows}"
            );
        }
    }

    fn parsed(customers: Vec<Option<&str>>, extra: &str) -> (RecordBatch, SchemaRef) {
        let mut union = HeaderUnion::default();
        union.add(&["action".to_string(), "zone".to_string()]);
        let parsed_schema = union.parsed_schema();
        let n = customers.len();
        let file_schema = Arc::new(arrow::datatypes::Schema::new(vec![
            parsed_schema.field(0).clone(),
            parsed_schema.field(1).clone(),
            parsed_schema.field(2).clone(),
            parsed_schema.field(3).clone(),
        ]));
        let batch = RecordBatch::try_new(
            file_schema,
            vec![
                Arc::new(
                    TimestampMicrosecondArray::from(vec![MICROS_PER_DAY - 1; n])
                        .with_timezone("UTC"),
                ),
                Arc::new(Int64Array::from_iter_values(2..2 + n as i64)),
                Arc::new(StringArray::from(customers)),
                Arc::new(StringArray::from(vec![extra; n])),
            ],
        )
        .unwrap();
        (batch, table_schema(&parsed_schema))
    }

    #[test]
    fn path_customer_fills_empty_values_and_mismatch_rejects() {
        let (batch, table) = parsed(vec![Some("acme"), None, Some(""), Some("evil")], "login");
        let lineage = Lineage::new("logs/audit/acme/a.csv", Some("acme".into()));
        let (out, rejects) = lineage.attach(batch, &table).unwrap();
        assert_eq!(out.num_rows(), 3);
        let c = out.column_by_name(CUSTOMER).unwrap().as_string::<i32>();
        assert_eq!(c.iter().collect::<Vec<_>>(), [Some("acme"); 3]);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].line, 5);
        assert_eq!(
            rejects[0].reason,
            RejectReason::CustomerMismatch {
                row: "evil".into(),
                path: "acme".into()
            }
        );
        // Columns the file lacks are null; order follows the table.
        assert_eq!(
            crate::schema::names(&out.schema()),
            [
                "ts",
                "customer",
                "dt",
                "source_file",
                "row_num",
                "action",
                "zone"
            ]
        );
        assert_eq!(out.column_by_name("zone").unwrap().null_count(), 3);
        let dt = out
            .column_by_name(DT)
            .unwrap()
            .as_primitive::<arrow::datatypes::Date32Type>();
        assert_eq!(dt.value(0), 0);
    }

    #[test]
    fn constant_columns_are_slices_of_one_array_per_input() {
        let lineage = Lineage::new("logs/acme/a.log", Some("acme".into()));
        let table = table_schema(&HeaderUnion::default().parsed_schema());
        let batch = |n: usize| {
            let ts = TimestampMicrosecondArray::from(vec![0; n]).with_timezone("UTC");
            let rows = Int64Array::from_iter_values(0..n as i64);
            let schema = Arc::new(arrow::datatypes::Schema::new(vec![
                table.field_with_name(TS).unwrap().clone(),
                table.field_with_name(ROW_NUM).unwrap().clone(),
            ]));
            RecordBatch::try_new(schema, vec![Arc::new(ts), Arc::new(rows)]).unwrap()
        };
        let mut buffers = Vec::new();
        for n in [5, 3, 8, 2] {
            let (out, rejects) = lineage.attach(batch(n), &table).unwrap();
            assert!(rejects.is_empty());
            for (name, want) in [(SOURCE_FILE, "logs/acme/a.log"), (CUSTOMER, "acme")] {
                let column = out.column_by_name(name).unwrap().as_string::<i32>();
                assert_eq!(column.iter().collect::<Vec<_>>(), vec![Some(want); n]);
            }
            let values = out.column_by_name(SOURCE_FILE).unwrap().as_string::<i32>();
            buffers.push(values.values().as_ptr());
        }
        // Built at 5 rows, sliced for 3, rebuilt at 8, sliced for 2.
        assert_eq!(buffers[0], buffers[1]);
        assert_ne!(buffers[1], buffers[2]);
        assert_eq!(buffers[2], buffers[3]);
    }

    #[test]
    fn no_customer_anywhere_rejects() {
        let (batch, table) = parsed(vec![Some("acme"), None], "login");
        let lineage = Lineage::new("x.csv", None);
        let (out, rejects) = lineage.attach(batch, &table).unwrap();
        assert_eq!(out.num_rows(), 1);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].reason, RejectReason::MissingCustomer);
        assert_eq!(rejects[0].line, 3);
    }
}
