//! Parquet encoding and publishing. Writers return what they wrote ([`WrittenFile`]);
//! committing is a separate step that reads only that list.

mod file;
pub mod parquet;
mod runs;

pub use self::parquet::{column_widths, PartitionedWriter, WrittenFile};
