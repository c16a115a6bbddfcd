//! What a sharded run keeps in its journal between its processes: the plan (`plan`), written
//! by `citrine plan` before it hands the table's lock to the run, and each shard's report
//! (`shard-<n>/report`), written by the shard once all its files are.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::TableSpec;
use crate::error::{Error, FileError, InputError, Result};
use crate::read::pattern::MatchedInput;
use crate::run::plan::Planned;
use crate::run::stream::{Consumed, Outcome};
use crate::store::{Store, Stores};
use crate::write::WrittenFile;

/// Version of the plan and shard report layouts.
const VERSION: u32 = 1;

/// One planned input, as the plan records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedInput {
    /// The index of the table's input pattern that matched it.
    pub pattern: usize,
    /// Its key in that pattern's store.
    pub key: String,
    /// Its uri.
    pub uri: String,
    /// Its customer, from the path.
    pub customer: Option<String>,
    /// Size in bytes, as listed.
    pub size: u64,
    /// Modification time, as listed.
    pub mtime_ns: i128,
    /// ETag, as listed.
    pub etag: Option<String>,
    /// Consumed before with other content.
    pub changed: bool,
}

impl PlannedInput {
    /// The record of `p` (an input the table's patterns matched).
    pub fn of(p: &Planned) -> Result<Self> {
        let pattern = p.pattern.ok_or_else(|| Error::Internal {
            message: format!("{}: a sharded run plans listed inputs only", p.input.uri),
        })?;
        Ok(Self {
            pattern,
            key: p.input.key.clone(),
            uri: p.input.uri.clone(),
            customer: p.input.customer.clone(),
            size: p.input.size,
            mtime_ns: p.input.mtime_ns,
            etag: p.input.etag.clone(),
            changed: p.changed,
        })
    }

    /// The input again, read through its pattern's store.
    pub fn planned(&self, stores: &PatternStores) -> Result<Planned> {
        Ok(Planned {
            input: MatchedInput {
                store: stores.get(self.pattern)?,
                key: self.key.clone(),
                uri: self.uri.clone(),
                customer: self.customer.clone(),
                size: self.size,
                mtime_ns: self.mtime_ns,
                etag: self.etag.clone(),
            },
            changed: self.changed,
            pattern: Some(self.pattern),
        })
    }
}

/// The stores of a table's input patterns, opened once each.
pub struct PatternStores {
    stores: Vec<Arc<dyn Store>>,
}

impl PatternStores {
    /// Open the stores of `table`'s patterns (no request is made).
    pub fn open(stores: &Stores, table: &TableSpec) -> Result<Self> {
        Ok(Self {
            stores: table
                .inputs
                .iter()
                .map(|p| stores.open(p.root()))
                .collect::<Result<_>>()?,
        })
    }

    fn get(&self, pattern: usize) -> Result<Arc<dyn Store>> {
        self.stores
            .get(pattern)
            .cloned()
            .ok_or_else(|| Error::Internal {
                message: format!("the plan names input pattern {pattern}, which the table lacks"),
            })
    }
}

/// An input the plan refused before reading it (its header would take the table past
/// `run.max_columns`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefusedInput {
    /// The input.
    pub input: PlannedInput,
    /// Why (scrubbed).
    pub error: String,
}

/// A sharded run's plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunPlan {
    /// Layout version.
    pub version: u32,
    /// The run.
    pub run_id: String,
    /// Its table.
    pub table: String,
    /// When the plan was made (RFC 3339).
    pub started_at: String,
    /// The same, in milliseconds since the epoch.
    pub started_ms: i64,
    /// The lease the run's processes renew the table lock with, in seconds.
    pub lease_s: u64,
    /// The table's input patterns when planned: the shards' config must match.
    pub patterns: Vec<String>,
    /// The audit header columns of the run's layout (empty for CloudFront).
    pub header: Vec<String>,
    /// Inputs the patterns matched.
    pub listed: usize,
    /// Inputs the ledger already held.
    pub skipped: usize,
    /// Warnings of the plan (scrubbed).
    pub warnings: Vec<String>,
    /// Inputs refused at planning.
    pub refused: Vec<RefusedInput>,
    /// The inputs of each shard.
    pub shards: Vec<Vec<PlannedInput>>,
}

impl RunPlan {
    /// The plan's layout version.
    pub const VERSION: u32 = VERSION;

    /// Fail unless `table`'s input patterns are those the run was planned with.
    pub fn check_config(&self, table: &TableSpec) -> Result<()> {
        let now: Vec<&str> = table.inputs.iter().map(|p| p.text()).collect();
        if now != self.patterns {
            return Err(Error::Sharded {
                table: self.table.clone(),
                run: self.run_id.clone(),
                reason: format!(
                    "the config's input patterns {now:?} differ from those the run was planned with, {:?}",
                    self.patterns
                ),
            });
        }
        Ok(())
    }
}

/// What became of one input of a shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputResult {
    /// Consumed.
    Consumed(Consumed),
    /// Failed, and left unconsumed (the error scrubbed).
    Failed(String),
    /// Deleted since it was listed: skipped.
    Vanished,
}

/// One input of a shard and what became of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardInput {
    /// The input.
    pub input: PlannedInput,
    /// What became of it.
    pub result: InputResult,
}

/// A shard's report: its inputs' outcomes and its files, written last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardReport {
    /// Layout version.
    pub version: u32,
    /// The run.
    pub run_id: String,
    /// The shard.
    pub shard: usize,
    /// Its inputs' outcomes.
    pub inputs: Vec<ShardInput>,
    /// Its data files.
    pub files: Vec<WrittenFile>,
    /// The shard's rejects object, if any row was rejected.
    pub rejects_key: Option<String>,
    /// Wall time of the shard.
    pub seconds: f64,
}

impl ShardInput {
    /// The record of a streamed input's outcome.
    pub fn of(o: Outcome) -> Result<Self> {
        Ok(Self {
            input: PlannedInput::of(&o.planned)?,
            result: match o.result {
                Ok(c) => InputResult::Consumed(c),
                Err(InputError {
                    kind: FileError::Vanished,
                    ..
                }) => InputResult::Vanished,
                Err(e) => {
                    InputResult::Failed(crate::transform::mask::scrub_text(&e.kind.to_string()))
                }
            },
        })
    }

    /// The outcome again, for the commit.
    pub fn outcome(self, stores: &PatternStores) -> Result<Outcome> {
        let planned = self.input.planned(stores)?;
        let uri = planned.input.uri.clone();
        Ok(Outcome {
            planned,
            result: match self.result {
                InputResult::Consumed(c) => Ok(c),
                InputResult::Failed(message) => {
                    Err(InputError::new(uri, FileError::Reported(message)))
                }
                InputResult::Vanished => Err(InputError::new(uri, FileError::Vanished)),
            },
        })
    }
}

/// Write `value` as JSON to `key`.
pub fn write<T: Serialize>(store: &dyn Store, key: &str, value: &T) -> Result<()> {
    store.write(key, &serde_json::to_vec(value).expect("plain data"))
}

/// Read the JSON at `key`; `None` when there is none.
pub fn read<T: DeserializeOwned>(store: &dyn Store, key: &str) -> Result<Option<T>> {
    let Some(found) = store.read(key)? else {
        return Ok(None);
    };
    serde_json::from_slice(&found.bytes)
        .map(Some)
        .map_err(|e| Error::Corrupt {
            path: store.url(key),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::RowCounts;
    use crate::partition::PartitionKey;
    use crate::transform::TransformCounts;

    #[test]
    fn a_shard_report_reads_back_as_written() {
        let input = PlannedInput {
            pattern: 0,
            key: "acme/a.gz".into(),
            uri: "in/acme/a.gz".into(),
            customer: Some("acme".into()),
            size: 10,
            mtime_ns: 1_700_000_000_000_000_123,
            etag: Some("\"e\"".into()),
            changed: true,
        };
        let report = ShardReport {
            version: VERSION,
            run_id: "r".into(),
            shard: 2,
            inputs: vec![
                ShardInput {
                    input: input.clone(),
                    result: InputResult::Consumed(Consumed {
                        hash: "h".into(),
                        counts: RowCounts {
                            rows_read: 3,
                            rows_ok: 2,
                            rows_rejected: 1,
                        },
                        rows_written: 2,
                        rows_rejected: 1,
                        bytes_decoded: 300,
                        transform: TransformCounts {
                            ips_invalid: 4,
                            strings_truncated: 5,
                            emails_invalid: 6,
                        },
                    }),
                },
                ShardInput {
                    input: input.clone(),
                    result: InputResult::Failed("truncated".into()),
                },
                ShardInput {
                    input,
                    result: InputResult::Vanished,
                },
            ],
            files: vec![WrittenFile {
                key: "data/t/customer=acme/dt=2024-01-01/part-r-s0002-00000.parquet".into(),
                bytes: 100,
                rows: 2,
                partition: PartitionKey {
                    customer: "acme".into(),
                    dt: 19_723,
                },
                widths: vec![0, 4, 0, 20, 0],
            }],
            rejects_key: Some("_citrine/runs/t/r/shard-0002/rejects.jsonl".into()),
            seconds: 1.5,
        };
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::LocalStore::new(dir.path()).unwrap();
        write(&store, "report", &report).unwrap();
        let back: ShardReport = read(&store, "report").unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&report).unwrap()
        );
        assert!(read::<ShardReport>(&store, "missing").unwrap().is_none());
        store.write("bad", b"{").unwrap();
        assert!(matches!(
            read::<ShardReport>(&store, "bad").unwrap_err(),
            Error::Corrupt { .. }
        ));
    }
}
