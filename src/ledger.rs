//! The ledger: which inputs a table has consumed. It is rebuilt from the reports of committed
//! runs (those with a marker), so it can never disagree with what was published: a run that
//! died before its marker consumed nothing.

use std::collections::HashMap;

use crate::commit::{InputRecord, RunReport};
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
    /// Same uri, size and mtime as consumed: skip without reading.
    Unchanged,
    /// Same uri and size, new mtime: hash it to tell a re-copy from a change.
    CheckContent,
    /// Same uri, different size: changed content, process and report.
    Changed,
}

impl Ledger {
    /// Rebuild from the committed runs of `table`.
    pub fn load(lake: &Lake, table: &str) -> Result<Self> {
        let mut ledger = Ledger::default();
        for run in lake.committed_runs(table)? {
            let report = RunReport::load(&lake.report_path(table, &run))?;
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

    /// Decide from metadata alone.
    pub fn decide(&self, uri: &str, size: u64, mtime_ns: i128) -> Decision {
        match self.by_uri.get(uri) {
            None => Decision::New,
            Some(r) if r.size != size => Decision::Changed,
            Some(r) if r.mtime_ns == mtime_ns => Decision::Unchanged,
            Some(_) => Decision::CheckContent,
        }
    }
}
