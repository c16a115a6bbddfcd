//! The end of a run: the run report, then the marker (a Redshift COPY manifest), both built
//! from the list of files the writers returned and nothing else.

pub mod journal;
pub mod manifest;
pub mod rejects;
pub mod report;

pub use manifest::manifest_json;
pub use report::{FailedInput, InputRecord, RunReport, WrittenRecord};
