//! Iceberg table mode (`table_format = "iceberg"`): each run of a table is published as one
//! Iceberg snapshot, so every reader of the table sees a whole run or none of it.
//!
//! citrine's own writer writes the data files, as in Hive mode; this module writes the table
//! metadata around them: manifests and manifest lists ([`avro`], Avro object container files),
//! the table metadata file ([`spec`]), and commits a snapshot by pointing the catalog at the
//! next metadata file ([`table`]). It is written here rather than with the `iceberg` crate,
//! which pins Arrow and Parquet 58 while citrine is on 59 (two of each would be compiled):
//! the measurement is in docs/design.md.

pub mod avro;
pub mod spec;
pub mod table;
