//! Parquet encoding and publishing. Writers return what they wrote ([`WrittenFile`]);
//! committing is a separate step that reads only that list.

mod dictionary;
mod file;
pub mod parquet;

pub use self::parquet::{column_widths, FileLog, PartitionedWriter, WrittenFile};
