//! The records of a run, built from the list of files the writers returned and nothing else:
//! the run report, the marker (a Redshift COPY manifest) and the rejected rows. When and under
//! which lock they are written is the run protocol's ([`crate::run`]).

pub mod manifest;
pub mod rejects;
pub mod report;

pub use manifest::manifest_json;
pub use report::{FailedInput, InputRecord, RunReport, WrittenRecord};
