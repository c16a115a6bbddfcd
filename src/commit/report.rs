//! The run report `complete/<table>/<run_id>.json`: what a run consumed (with identities, so
//! the ledger can be rebuilt from reports alone), what it wrote, what it rejected.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Version of the report format.
pub const REPORT_VERSION: u32 = 1;

/// One input a run consumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    /// The input uri.
    pub uri: String,
    /// Size on disk in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// The S3 ETag when the input is an object (absent for local files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// xxh3-128 of the raw bytes, hex.
    pub hash: String,
    /// Rows read from it.
    pub rows_read: u64,
    /// Rows written to the lake.
    pub rows_written: u64,
    /// Rows rejected.
    pub rows_rejected: u64,
    /// True when an earlier run consumed different content under the same uri.
    #[serde(default)]
    pub changed: bool,
}

/// One input a run could not consume; it stays out of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedInput {
    /// The input uri.
    pub uri: String,
    /// Why.
    pub error: String,
}

/// One data file a run wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenRecord {
    /// Its URL (`file://` or `s3://`), as in the manifest.
    pub url: String,
    /// Its path below the lake root.
    pub key: String,
    /// Exact size in bytes.
    pub bytes: u64,
    /// Rows.
    pub rows: u64,
    /// Partition customer.
    pub customer: String,
    /// Partition date, `YYYY-MM-DD`.
    pub dt: String,
}

/// A column of the table as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnRecord {
    /// Name.
    pub name: String,
    /// Hive / Glue type (`timestamp`, `string`, `date`, `bigint`, `int`, `double`).
    #[serde(rename = "type")]
    pub kind: String,
}

/// The run report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Report format version.
    pub version: u32,
    /// The run.
    pub run_id: String,
    /// The table.
    pub table: String,
    /// Start and end, RFC 3339 UTC.
    pub started_at: String,
    /// End.
    pub finished_at: String,
    /// Table schema version (the catalog's column count history grows it).
    pub schema_version: u64,
    /// The table's columns when the run wrote.
    pub columns: Vec<ColumnRecord>,
    /// Inputs consumed.
    pub inputs: Vec<InputRecord>,
    /// Inputs that failed and were left unconsumed.
    pub failed_inputs: Vec<FailedInput>,
    /// Data files written.
    pub files: Vec<WrittenRecord>,
    /// Rows rejected in all.
    pub rows_rejected: u64,
    /// Where the rejected rows are, below the lake root (absent when there are none).
    pub rejects_key: Option<String>,
    /// Inputs whose rows this run removed (`citrine forget`): they leave the ledger, and
    /// `redshift load` deletes their rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forgotten: Vec<String>,
    /// Data files (keys below the lake root) this run's files replace: `citrine forget
    /// --delete-rows` rewrote them without the forgotten inputs' rows. They are deleted once
    /// the run's marker exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<String>,
    /// The longest value in bytes of each string column this run wrote (`redshift ddl` sizes
    /// VARCHARs from them, and `redshift load` widens a column before a run with longer ones).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub widths: std::collections::BTreeMap<String, u32>,
    /// What was done to the inputs once the marker existed (`table.after_commit`), written
    /// into the report when it is done; absent while pending and when inputs are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_commit: Option<AfterCommitOutcome>,
}

/// What was done to a run's inputs after its commit (by the attempt that finished it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterCommitOutcome {
    /// Inputs deleted.
    pub deleted: usize,
    /// Inputs archived (copied, then deleted).
    pub archived: usize,
    /// Inputs kept because their object changed since it was read (uris).
    pub kept_changed: Vec<String>,
}

impl std::ops::AddAssign for AfterCommitOutcome {
    fn add_assign(&mut self, rhs: Self) {
        self.deleted += rhs.deleted;
        self.archived += rhs.archived;
        self.kept_changed.extend(rhs.kept_changed);
    }
}

impl RunReport {
    /// The report of run `run_id` of `table`, started at `started_at` and finishing now,
    /// with nothing consumed, written or rejected yet: callers fill in what the run did.
    pub fn new(table: &str, run_id: &str, started_at: String) -> Self {
        Self {
            version: REPORT_VERSION,
            run_id: run_id.to_owned(),
            table: table.to_owned(),
            started_at,
            finished_at: now_rfc3339(),
            schema_version: 0,
            columns: Vec::new(),
            inputs: Vec::new(),
            failed_inputs: Vec::new(),
            files: Vec::new(),
            rows_rejected: 0,
            rejects_key: None,
            forgotten: Vec::new(),
            supersedes: Vec::new(),
            widths: Default::default(),
            after_commit: None,
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("plain data serialises");
        s.push('\n');
        s
    }

    /// Parse a report read from `origin`.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
            path: origin.to_owned(),
            message: e.to_string(),
        })
    }
}

/// The data files of `reports` (committed runs, oldest first) that no later `forget
/// --delete-rows` run replaced: what the table holds now.
pub fn live_files(reports: &[RunReport]) -> impl Iterator<Item = &WrittenRecord> {
    let replaced: std::collections::HashSet<&str> = reports
        .iter()
        .flat_map(|r| r.supersedes.iter().map(String::as_str))
        .collect();
    reports
        .iter()
        .flat_map(|r| &r.files)
        .filter(move |f| !replaced.contains(f.key.as_str()))
}

/// Now as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_millis() as i64)
}

/// Milliseconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(millis: i64) -> String {
    use crate::parse::timestamp::civil_from_days;
    let day_ms = 86_400_000;
    let (y, m, d) = civil_from_days(millis.div_euclid(day_ms));
    let ms = millis.rem_euclid(day_ms);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_575_493_351_123), "2019-12-04T21:02:31.123Z");
    }
}
