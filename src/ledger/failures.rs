//! Inputs that keep failing: `_citrine/failures/<table>.json`, the attempts and last error of
//! every input that failed and has not been consumed since. After `run.max_attempts` failed
//! attempts an input is quarantined: no longer retried, listed by `citrine status`, until
//! `citrine forget` releases it or its object changes (new content is tried again).
//!
//! Read only when a run has inputs to process, written only when it changes: a run with
//! nothing new costs no request here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::read::pattern::MatchedInput;

/// One input's failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Failed attempts since it was last consumed (or released).
    pub attempts: u32,
    /// The last error (scrubbed).
    pub last_error: String,
    /// When it last failed (RFC 3339).
    pub last_failed_at: String,
    /// Its size, mtime and ETag when it last failed: a different object is tried again.
    pub size: u64,
    /// See `size`.
    pub mtime_ns: i128,
    /// See `size`.
    pub etag: Option<String>,
    /// No longer retried.
    pub quarantined: bool,
}

/// A table's failing inputs, by uri.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Failures {
    inputs: BTreeMap<String, Failure>,
    #[serde(skip)]
    changed: bool,
}

fn key(table: &str) -> String {
    format!("_citrine/failures/{table}.json")
}

impl Failures {
    /// Read the table's record (empty when there is none).
    pub fn load(lake: &Lake, table: &str) -> Result<Self> {
        let store = lake.store();
        let Some(found) = store.read(&key(table))? else {
            return Ok(Self::default());
        };
        serde_json::from_slice(&found.bytes).map_err(|e| Error::Corrupt {
            path: store.url(&key(table)),
            message: e.to_string(),
        })
    }

    /// Write the record if it changed (deleted when empty).
    pub fn save(&self, lake: &Lake, table: &str) -> Result<()> {
        if !self.changed {
            return Ok(());
        }
        let store = lake.store();
        if self.inputs.is_empty() {
            store.delete(&key(table))
        } else {
            store.write(
                &key(table),
                &serde_json::to_vec_pretty(self).expect("plain data"),
            )
        }
    }

    /// Every failing input, by uri.
    pub fn inputs(&self) -> &BTreeMap<String, Failure> {
        &self.inputs
    }

    /// True when `input` is quarantined as it is now (same size, mtime or ETag).
    pub fn is_quarantined(&self, input: &MatchedInput) -> bool {
        self.inputs.get(&input.listed.uri).is_some_and(|f| {
            f.quarantined
                && f.size == input.listed.size
                && match (&f.etag, &input.listed.etag) {
                    (Some(a), Some(b)) => a == b,
                    _ => f.mtime_ns == input.listed.mtime_ns,
                }
        })
    }

    /// `input` failed with `error`: one more attempt, quarantined at `max_attempts`.
    pub fn failed(&mut self, input: &MatchedInput, error: &str, max_attempts: u32, at: &str) {
        let attempts = self.inputs.get(&input.listed.uri).map_or(0, |f| f.attempts) + 1;
        let quarantined = attempts >= max_attempts;
        if quarantined {
            tracing::warn!(input = %input.listed.uri, attempts, "quarantined: not retried until `citrine forget` releases it or it changes");
        }
        self.inputs.insert(
            input.listed.uri.clone(),
            Failure {
                attempts,
                last_error: error.to_owned(),
                last_failed_at: at.to_owned(),
                size: input.listed.size,
                mtime_ns: input.listed.mtime_ns,
                etag: input.listed.etag.clone(),
                quarantined,
            },
        );
        self.changed = true;
    }

    /// `uri` was consumed, or released by hand: its failures are forgotten. Returns whether
    /// it had any.
    pub fn clear(&mut self, uri: &str) -> bool {
        let had = self.inputs.remove(uri).is_some();
        self.changed |= had;
        had
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::pattern::ListedInput;
    use std::sync::Arc;

    fn input(uri: &str, size: u64) -> MatchedInput {
        MatchedInput {
            store: Arc::new(crate::store::LocalStore::new(std::path::Path::new("/")).unwrap()),
            listed: ListedInput {
                key: uri.into(),
                uri: uri.into(),
                customer: None,
                distribution: None,
                size,
                mtime_ns: 5,
                etag: None,
            },
        }
    }

    #[test]
    fn an_input_is_quarantined_at_the_limit_until_cleared_or_changed() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let mut f = Failures::load(&lake, "t").unwrap();
        let bad = input("in/bad.gz", 10);
        f.failed(&bad, "truncated", 2, "t1");
        assert!(!f.is_quarantined(&bad));
        f.failed(&bad, "truncated again", 2, "t2");
        assert!(f.is_quarantined(&bad));
        assert!(
            !f.is_quarantined(&input("in/bad.gz", 11)),
            "a new object is tried"
        );
        f.save(&lake, "t").unwrap();
        let back = Failures::load(&lake, "t").unwrap();
        assert_eq!(back.inputs()["in/bad.gz"].attempts, 2);
        assert_eq!(back.inputs()["in/bad.gz"].last_error, "truncated again");
        let mut back = back;
        assert!(back.clear("in/bad.gz"));
        assert!(!back.clear("in/bad.gz"));
        back.save(&lake, "t").unwrap();
        assert!(lake.store().list("_citrine").unwrap().is_empty());
    }
}
