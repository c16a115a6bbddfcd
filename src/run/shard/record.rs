//! What a sharded run keeps in its journal between its processes: the plan (`plan`), written
//! by `citrine plan` before it hands the table's lock to the run, and each shard's report
//! (`shard-<n>/report`), written by the shard once all its files are.

use serde::{Deserialize, Serialize};

use crate::config::TableSpec;
use crate::error::{Error, FileError, InputError, Result};
pub use crate::run::record::{read, write, PatternStores, PlannedInput};
use crate::run::stream::{Consumed, Outcome};
use crate::write::WrittenFile;

/// Version of the plan and shard report layouts.
const VERSION: u32 = 1;

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
    /// The name a workflow gave the plan (`plan --name`, a Step Functions execution's name):
    /// its handle is `_citrine/plans/<table>/<name>.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
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
        let uri = planned.input.listed.uri.clone();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::RowCounts;
    use crate::partition::PartitionKey;
    use crate::read::pattern::ListedInput;
    use crate::store::Store;
    use crate::transform::TransformCounts;

    #[test]
    fn a_shard_report_reads_back_as_written() {
        let input = PlannedInput {
            pattern: 0,
            listed: ListedInput {
                key: "acme/a.gz".into(),
                uri: "in/acme/a.gz".into(),
                customer: Some("acme".into()),
                distribution: Some("E2ABC".into()),
                size: 10,
                mtime_ns: 1_700_000_000_000_000_123,
                etag: Some("\"e\"".into()),
            },
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
