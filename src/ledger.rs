//! The ledger: which inputs a table has consumed. It is rebuilt from the reports of committed
//! runs (those with a marker), so it can never disagree with what was published: a run that
//! died before its marker consumed nothing.

use std::collections::HashMap;

use crate::commit::InputRecord;
use crate::error::Result;
use crate::lake::Lake;

/// Inputs consumed by committed runs, latest record per uri.
#[derive(Debug, Default)]
pub struct Ledger {
    by_uri: HashMap<String, InputRecord>,
    runs: usize,
}

/// What the plan does with one listed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Never consumed: process it.
    New,
    /// Same uri and size, and the same mtime or S3 ETag as consumed: skip without reading.
    Unchanged,
    /// Same uri, new mtime and ETag or a new size: hash it to tell a re-copy from a change
    /// (a size that differs from the record with the same content is a no-op, never a
    /// reprocess).
    CheckContent,
}

impl Ledger {
    /// Rebuild from the committed runs of `table`.
    pub fn load(lake: &Lake, table: &str) -> Result<Self> {
        let mut ledger = Ledger::default();
        for report in lake.committed_reports(table)? {
            for input in report.inputs {
                ledger.by_uri.insert(input.uri.clone(), input);
            }
            ledger.runs += 1;
        }
        Ok(ledger)
    }

    /// Inputs held.
    pub fn len(&self) -> usize {
        self.by_uri.len()
    }

    /// True when nothing was consumed yet.
    pub fn is_empty(&self) -> bool {
        self.by_uri.is_empty()
    }

    /// Committed runs read.
    pub fn runs(&self) -> usize {
        self.runs
    }

    /// The record of `uri`, if consumed.
    pub fn get(&self, uri: &str) -> Option<&InputRecord> {
        self.by_uri.get(uri)
    }

    /// Decide from metadata alone: (uri, size, mtime or ETag).
    pub fn decide(&self, uri: &str, size: u64, mtime_ns: i128, etag: Option<&str>) -> Decision {
        match self.by_uri.get(uri) {
            None => Decision::New,
            Some(r) if r.size != size => Decision::CheckContent,
            Some(r) if r.mtime_ns == mtime_ns => Decision::Unchanged,
            Some(r) if etag.is_some() && r.etag.as_deref() == etag => Decision::Unchanged,
            Some(_) => Decision::CheckContent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_input_with_any_new_identity_is_hashed_never_reprocessed_blindly() {
        let mut ledger = Ledger::default();
        ledger.by_uri.insert(
            "logs/a.log".into(),
            InputRecord {
                uri: "logs/a.log".into(),
                size: 100,
                mtime_ns: 7,
                etag: Some("\"e1\"".into()),
                hash: "h".into(),
                rows_read: 1,
                rows_written: 1,
                rows_rejected: 0,
                changed: false,
            },
        );
        assert_eq!(ledger.decide("logs/b.log", 100, 7, None), Decision::New);
        assert_eq!(
            ledger.decide("logs/a.log", 100, 7, None),
            Decision::Unchanged
        );
        assert_eq!(
            ledger.decide("logs/a.log", 100, 8, Some("\"e1\"")),
            Decision::Unchanged
        );
        assert_eq!(
            ledger.decide("logs/a.log", 100, 8, None),
            Decision::CheckContent
        );
        // A new size too: the content decides (a record written with another size than its
        // bytes must not make the same bytes load twice).
        assert_eq!(
            ledger.decide("logs/a.log", 120, 7, None),
            Decision::CheckContent
        );
    }
}
