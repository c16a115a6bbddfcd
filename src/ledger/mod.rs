//! The ledger: which inputs a table has consumed, and which run last supplied each. It is
//! rebuilt from the reports of committed runs (those with a marker), so it can never disagree
//! with what was published: a run that died before its marker consumed nothing.
//!
//! Rebuilding it from every report would cost a request per run ever committed. A
//! [`checkpoint`] (the delta-rs idea) holds the ledger as of one run; loading takes the newest
//! checkpoint and replays only the reports of markers after it, so the cost is the same on day
//! 1,000 as on day 1. Checkpoints are an optimisation, never needed for correctness: a missing,
//! stale or unreadable one costs a full replay, said in the log, with the same result.

pub mod checkpoint;
pub mod failures;

use std::collections::HashMap;

use serde::Serialize;

use crate::commit::{InputRecord, RunReport};
use crate::error::Result;
use crate::lake::Lake;

/// Reports read at once while replaying.
const REPLAY_THREADS: usize = 8;

/// One consumed input: its latest record, and the run that consumed it last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The record of the input as last consumed.
    pub record: InputRecord,
    /// The run that consumed it last.
    pub run: String,
}

/// Where a ledger came from: what a run's fixed cost was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// The checkpoint read (its run id), if one was usable.
    pub checkpoint: Option<String>,
    /// Reports replayed on top of it.
    pub replayed: usize,
    /// Why no checkpoint was used, when one existed but was not usable.
    pub fallback: Option<String>,
    /// Checkpoint objects found (the newest, and older ones a run may delete).
    #[serde(skip)]
    pub checkpoint_keys: Vec<String>,
}

/// Inputs consumed by committed runs, latest record per uri.
#[derive(Debug, Default)]
pub struct Ledger {
    by_uri: HashMap<String, Entry>,
    runs: usize,
    newest_run: Option<String>,
    /// Runs that superseded data files (`citrine forget --delete-rows`), oldest first.
    rewrites: Vec<String>,
    provenance: Provenance,
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
    /// Rebuild for `table`: the newest checkpoint, then the reports of the markers after it.
    pub fn load(lake: &Lake, table: &str) -> Result<Self> {
        let keys = checkpoint::list(lake, table)?;
        let mut provenance = Provenance {
            checkpoint_keys: keys.clone(),
            ..Default::default()
        };
        let mut ledger = Ledger::default();
        let mut tail = None;
        if let Some(key) = keys.last() {
            match checkpoint::read(lake, table, key) {
                Ok(read) => {
                    let run = read.newest_run.clone().unwrap_or_default();
                    let (committed, after) = lake.committed_runs_after(table, &run)?;
                    if committed {
                        provenance.checkpoint = Some(run);
                        ledger = read;
                        tail = Some(after);
                    } else {
                        provenance.fallback =
                            Some(format!("{}: its run {run} has no marker", lake.url(key)));
                    }
                }
                Err(e) => provenance.fallback = Some(e.to_string()),
            }
        }
        if let Some(why) = &provenance.fallback {
            tracing::warn!(table, %why, "ledger checkpoint not usable; replaying every committed report");
        }
        let tail = match tail {
            Some(runs) => runs,
            None => lake.committed_runs(table)?,
        };
        provenance.replayed = tail.len();
        for report in read_reports(lake, table, &tail)? {
            ledger.apply(report);
        }
        ledger.provenance = provenance;
        Ok(ledger)
    }

    /// Fold in a committed run's report (runs in commit order): its inputs are consumed, its
    /// forgotten inputs dropped.
    pub fn apply(&mut self, report: RunReport) {
        for uri in &report.forgotten {
            self.by_uri.remove(uri);
        }
        if !report.supersedes.is_empty() {
            self.rewrites.push(report.run_id.clone());
        }
        self.by_uri.reserve(report.inputs.len());
        for input in report.inputs {
            self.by_uri.insert(
                input.uri.clone(),
                Entry {
                    record: input,
                    run: report.run_id.clone(),
                },
            );
        }
        self.runs += 1;
        self.newest_run = Some(report.run_id);
    }

    /// Where this ledger came from.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// The newest committed run folded in.
    pub fn newest_run(&self) -> Option<&str> {
        self.newest_run.as_deref()
    }

    /// The runs that superseded data files (`citrine forget --delete-rows`), oldest first: a
    /// load of an earlier run reads their reports to leave out files they replaced.
    pub fn rewrites(&self) -> &[String] {
        &self.rewrites
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.by_uri.values()
    }

    /// Drop `uri`, so the next run processes it as new; returns what was held. Only a new
    /// checkpoint of this ledger makes that durable (see `citrine forget`).
    pub fn forget(&mut self, uri: &str) -> Option<Entry> {
        self.by_uri.remove(uri)
    }

    /// The run that last consumed `uri`.
    pub fn last_run(&self, uri: &str) -> Option<&str> {
        self.by_uri.get(uri).map(|e| e.run.as_str())
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

    /// The entry of `uri` (its record and the run that consumed it), if consumed.
    pub fn entry(&self, uri: &str) -> Option<&Entry> {
        self.by_uri.get(uri)
    }

    /// The record of `uri`, if consumed.
    pub fn get(&self, uri: &str) -> Option<&InputRecord> {
        self.by_uri.get(uri).map(|e| &e.record)
    }

    /// Decide from metadata alone: (uri, size, mtime or ETag).
    pub fn decide(&self, uri: &str, size: u64, mtime_ns: i128, etag: Option<&str>) -> Decision {
        match self.get(uri) {
            None => Decision::New,
            Some(r) if r.size != size => Decision::CheckContent,
            Some(r) if r.mtime_ns == mtime_ns => Decision::Unchanged,
            Some(r) if etag.is_some() && r.etag.as_deref() == etag => Decision::Unchanged,
            Some(_) => Decision::CheckContent,
        }
    }
}

/// The reports of `runs`, in that order, read `REPLAY_THREADS` at a time.
fn read_reports(lake: &Lake, table: &str, runs: &[String]) -> Result<Vec<RunReport>> {
    let mut out = Vec::with_capacity(runs.len());
    for chunk in runs.chunks(REPLAY_THREADS) {
        let read: Vec<Result<RunReport>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|run| scope.spawn(move || lake.report(table, run)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a report reader panicked"))
                .collect()
        });
        for report in read {
            out.push(report?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_input_with_any_new_identity_is_hashed_never_reprocessed_blindly() {
        let mut ledger = Ledger::default();
        ledger.apply(RunReport {
            schema_version: 1,
            inputs: vec![InputRecord {
                uri: "logs/a.log".into(),
                size: 100,
                mtime_ns: 7,
                etag: Some("\"e1\"".into()),
                hash: "h".into(),
                rows_read: 1,
                rows_written: 1,
                rows_rejected: 0,
                changed: false,
            }],
            ..RunReport::new("t", "r1", String::new())
        });
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
