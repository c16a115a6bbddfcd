//! citrine streams customer log files into an analytics-ready lake.
//!
//! ```text
//! read (store::Store) ─► parse::Decoder ─► transform::Transform ─► partition::split ─► write::parquet
//!   (S3 on tokio)          (rayon)              (rayon)                (rayon)          (store uploads)
//!                                                                                            │
//! commit::{report, manifest} ◄──── register::Catalog (local | Glue) ◄──── Vec<WrittenFile> ◄─┘
//! ```
//!
//! Each stage is a module named after its place in that flow:
//! - [`read`] opens inputs; every byte passes through one capped decompression helper.
//! - [`parse`] turns bytes into Arrow batches with one push decoder per format
//!   ([`parse::cloudfront`], [`parse::audit`]); bad rows become [`parse::Reject`]s.
//! - [`transform`] masks IPs, cuts over-long strings, attaches lineage (`customer`, `dt`,
//!   `source_file`) and lays batches out in the table schema ([`schema`]).
//! - [`partition`] splits table batches by (`customer`, `dt`) and names their folders.
//! - [`write`] encodes Parquet into [`store`] uploads; [`store`] is the one storage layer for
//!   local folders and S3 ([`aws`] holds the AWS plumbing).
//! - [`register`] registers partitions in a catalog (local JSON or the Glue Data Catalog);
//!   [`commit`] writes the run report and the marker; [`run`] alone knows the order.
//! - [`inspect`] runs the first three on one file for a person to look at.
//!
//! The contract (lake layout, run protocol, table schemas, masking) is `docs/design.md`.
//!
//! ```
//! use citrine::parse::{decode_chunked, Format, FormatDecoder};
//! use citrine::schema::table_schema;
//! use citrine::transform::{Lineage, MaskOptions, Masker, Transform};
//!
//! let log = b"#Version: 1.0\n#Fields: date time c-ip sc-status\n2019-12-04\t21:02:31\t192.0.2.100\t200\n";
//! let mut decoder = FormatDecoder::new(Format::CloudFront, 8192);
//! let decoded = decode_chunked(log, 4096, &mut decoder)?;
//! let table = table_schema(&citrine::parse::cloudfront::parsed_schema());
//! let masker = Masker::new(vec!["c_ip".into()], MaskOptions::default());
//! let lineage = Lineage::new("logs/cloudfront/acme/E1.2019-12-04-21.a1.gz", Some("acme".into()));
//! let out = Transform::new(table, masker).apply(decoded[0].batch.clone(), &lineage)?;
//! assert_eq!(out.batch.num_rows(), 1);
//! let c_ip = out.batch.column_by_name("c_ip").unwrap();
//! let c_ip = c_ip.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
//! assert_eq!(c_ip.value(0), "192.0.2.0/24");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod aws;
pub mod commit;
pub mod config;
pub mod config_source;
pub mod error;
pub mod iam;
pub mod iceberg;
pub mod inspect;
pub mod lake;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod ledger;
pub mod logs;
pub mod malloc;
pub mod parse;
pub mod partition;
pub mod privacy;
#[cfg(feature = "query")]
pub mod query;
pub mod read;
pub mod redshift;
pub mod register;
pub mod run;
pub mod schema;
pub mod stall;
pub mod store;
pub mod transform;
pub mod write;

pub use error::{ConfigError, Error, FileError, InputError, Result};

/// This build's version and commit, e.g. `0.1.0 (build 1a2b3c4d5e6f)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (build ",
    env!("CITRINE_BUILD"),
    ")"
);

/// The `created_by` of every Parquet file citrine writes: `citrine version X.Y.Z (build
/// <commit>)`, the `<application> version <semver> (build <hash>)` form parquet-java parses
/// (Spark, Hive and Glue jobs decide from it whether to trust a file's statistics).
pub const CREATED_BY: &str = concat!(
    "citrine version ",
    env!("CARGO_PKG_VERSION"),
    " (build ",
    env!("CITRINE_BUILD"),
    ")"
);

#[cfg(test)]
mod tests {
    /// parquet-java's `VersionParser` grammar,
    /// `(.*?)\s+version\s*(?:([^(]*?)\s*(?:\(\s*build\s*([^)]*?)\s*\))?)?`, with the version
    /// a semver `X.Y.Z` as its `SemanticVersion` requires.
    fn parquet_java_parse(created_by: &str) -> Option<(&str, &str, &str)> {
        let (application, rest) = created_by.split_once(" version ")?;
        let (version, build) = rest.split_once(" (build ")?;
        let build = build.strip_suffix(')')?;
        let semver: Vec<&str> = version.split('.').collect();
        let numeric = semver.len() == 3
            && semver
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        (numeric && !application.is_empty() && !build.is_empty() && !build.contains(')'))
            .then_some((application, version, build))
    }

    #[test]
    fn created_by_is_what_parquet_java_parses() {
        let (application, version, build) = parquet_java_parse(super::CREATED_BY).unwrap();
        assert_eq!(application, "citrine");
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        assert_eq!(build, env!("CITRINE_BUILD"));
        // What older files said does not parse.
        assert_eq!(parquet_java_parse("citrine 0.1.0"), None);
    }
}
