//! citrine streams customer log files into an analytics-ready lake.
//!
//! ```text
//! read::Source ─► parse::Decoder ─► transform::Transform ─► partition::split ─► write::{parquet, sink}
//!   (tokio I/O)      (rayon)              (rayon)                (rayon)                 │
//!                                                                                         ▼
//! commit::{report, manifest, sql} ◄──── register::Catalog ◄──── Vec<WrittenFile> ◄────────┘
//! ```
//!
//! Each stage is a module named after its place in that flow:
//! - [`read`] opens inputs; every byte passes through one capped decompression helper.
//! - [`parse`] turns bytes into Arrow batches with one push decoder per format
//!   ([`parse::cloudfront`], [`parse::audit`]); bad rows become [`parse::Reject`]s.
//! - [`transform`] masks IPs, cuts over-long strings, attaches lineage (`customer`, `dt`,
//!   `source_file`) and lays batches out in the table schema ([`schema`]).
//! - [`inspect`] runs the first three on one file for a person to look at.
//!
//! The contract (lake layout, run protocol, table schemas, masking) is `DESIGN.md`.
#![warn(missing_docs)]

pub mod error;
pub mod inspect;
pub mod parse;
pub mod read;
pub mod schema;
pub mod transform;

pub use error::{ConfigError, Error, FileError, InputError, Result};
