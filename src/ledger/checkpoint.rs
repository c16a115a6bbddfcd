//! Ledger checkpoints: `_citrine/ledger/<table>/<run_id>.ckpt`, the whole ledger as of one
//! committed run (every consumed input's record and the run that last supplied it), zstd
//! compressed JSON lines: a header line, then one line `{"run": …, "input": {…}}` per input. Named by run id, so the
//! newest is the last of one listing; a run deletes the older ones after writing its own.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use super::{Entry, Ledger};
use crate::commit::InputRecord;
use crate::error::{Error, Result};
use crate::lake::Lake;

/// Format version.
pub const CHECKPOINT_VERSION: u32 = 1;

/// The zstd level of a checkpoint. Its lines repeat the run id and most of each uri, which the
/// fastest level finds as well: for the benchmark's 20,016 small files 0.63 MB where level 3
/// gave 0.72 MB, and the encoding (beside the report's write, on a run's last stretch) took
/// 54 ms where it took 0.14 s with a copy of every record.
const LEVEL: i32 = 1;

/// Suffix of checkpoint objects.
pub const SUFFIX: &str = ".ckpt";

/// A run writes a checkpoint when its plan replayed this many reports or more after the
/// newest one (or found none): a plan never replays more than this many.
pub const EVERY_RUNS: usize = 4;

#[derive(Serialize, Deserialize)]
struct Header {
    version: u32,
    table: String,
    run_id: String,
    runs: usize,
    inputs: usize,
    /// Runs that superseded data files (absent in checkpoints written before there were any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rewrites: Vec<String>,
}

#[derive(Deserialize)]
struct Line {
    run: String,
    input: InputRecord,
}

/// A [`Line`] as written: borrowed from the ledger, so encoding copies no record.
#[derive(Serialize)]
struct LineRef<'a> {
    run: &'a str,
    input: &'a InputRecord,
}

/// The table's checkpoint keys, oldest first (one listing).
pub fn list(lake: &Lake, table: &str) -> Result<Vec<String>> {
    let mut keys: Vec<String> = lake
        .store()
        .list(&lake.checkpoint_prefix(table))?
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.ends_with(SUFFIX))
        .collect();
    keys.sort();
    Ok(keys)
}

fn corrupt(lake: &Lake, key: &str, message: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        path: lake.url(key),
        message: format!("ledger checkpoint: {message}"),
    }
}

/// Read the checkpoint at `key` of `table`.
pub fn read(lake: &Lake, table: &str, key: &str) -> Result<Ledger> {
    let bytes = lake
        .store()
        .read(key)?
        .ok_or_else(|| corrupt(lake, key, "gone"))?
        .bytes;
    let text = zstd::decode_all(bytes.as_slice()).map_err(|e| corrupt(lake, key, e))?;
    let mut lines = text.lines();
    let header: Header = match lines.next() {
        Some(Ok(line)) => serde_json::from_str(&line).map_err(|e| corrupt(lake, key, e))?,
        _ => return Err(corrupt(lake, key, "empty")),
    };
    if header.version != CHECKPOINT_VERSION || header.table != table {
        return Err(corrupt(
            lake,
            key,
            format!(
                "version {} of table {}, expected version {CHECKPOINT_VERSION} of {table}",
                header.version, header.table
            ),
        ));
    }
    let mut ledger = Ledger {
        runs: header.runs,
        newest_run: Some(header.run_id),
        rewrites: header.rewrites,
        ..Default::default()
    };
    for line in lines {
        let line = line.map_err(|e| corrupt(lake, key, e))?;
        let Line { run, input: record } =
            serde_json::from_str(&line).map_err(|e| corrupt(lake, key, e))?;
        ledger
            .by_uri
            .insert(record.uri.clone(), Entry { record, run });
    }
    if ledger.by_uri.len() != header.inputs {
        return Err(corrupt(
            lake,
            key,
            format!(
                "{} inputs, its header says {}",
                ledger.by_uri.len(),
                header.inputs
            ),
        ));
    }
    Ok(ledger)
}

/// Write `ledger` (which must end with a committed run) as the table's newest checkpoint, then
/// delete the checkpoints listed in `older`. Returns the new key.
pub fn write(lake: &Lake, table: &str, ledger: &Ledger, older: &[String]) -> Result<String> {
    encode(lake, table, ledger)?.store(lake, older)
}

/// A checkpoint encoded, not yet stored.
pub struct Encoded {
    key: String,
    bytes: Vec<u8>,
}

impl Encoded {
    /// Store it as the table's newest checkpoint, then delete the checkpoints listed in
    /// `older`. Returns its key.
    pub fn store(self, lake: &Lake, older: &[String]) -> Result<String> {
        let Self { key, bytes } = self;
        lake.store().write(&key, &bytes)?;
        for old in older.iter().filter(|k| **k != key) {
            if let Err(e) = lake.store().delete(old) {
                tracing::warn!(checkpoint = %lake.url(old), error = %e, "could not delete an older ledger checkpoint");
            }
        }
        Ok(key)
    }
}

/// `ledger` (which must end with a committed run) encoded as a checkpoint of `table`.
pub fn encode(lake: &Lake, table: &str, ledger: &Ledger) -> Result<Encoded> {
    let run_id = ledger.newest_run().ok_or_else(|| Error::Internal {
        message: "a checkpoint of a ledger with no run".into(),
    })?;
    let key = format!("{}/{run_id}{SUFFIX}", lake.checkpoint_prefix(table));
    let mut encoder = zstd::Encoder::new(Vec::new(), LEVEL).map_err(|e| Error::io(&key, e))?;
    let header = Header {
        version: CHECKPOINT_VERSION,
        table: table.to_owned(),
        run_id: run_id.to_owned(),
        runs: ledger.runs,
        inputs: ledger.by_uri.len(),
        rewrites: ledger.rewrites.clone(),
    };
    let mut text = Vec::with_capacity(1 << 20);
    json_line(&mut text, &header);
    let mut entries: Vec<&Entry> = ledger.by_uri.values().collect();
    // Uris are the ledger's keys: no two are equal, so an unstable sort gives the same order.
    entries.sort_unstable_by(|a, b| a.record.uri.cmp(&b.record.uri));
    for e in entries {
        json_line(
            &mut text,
            &LineRef {
                run: &e.run,
                input: &e.record,
            },
        );
        // Compressed as it goes: the text of a large ledger is never held whole.
        if text.len() >= 1 << 20 {
            encoder.write_all(&text).map_err(|e| Error::io(&key, e))?;
            text.clear();
        }
    }
    encoder.write_all(&text).map_err(|e| Error::io(&key, e))?;
    let bytes = encoder.finish().map_err(|e| Error::io(&key, e))?;
    Ok(Encoded { key, bytes })
}

/// Append `value` to `text` as one JSON line.
fn json_line(text: &mut Vec<u8>, value: &impl Serialize) {
    serde_json::to_writer(&mut *text, value).expect("plain data serialises");
    text.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::RunReport;

    fn report(run: &str, uris: &[&str]) -> RunReport {
        RunReport {
            schema_version: 1,
            inputs: uris
                .iter()
                .map(|u| InputRecord {
                    uri: (*u).into(),
                    size: 1,
                    mtime_ns: 2,
                    etag: None,
                    hash: format!("h-{u}"),
                    rows_read: 3,
                    rows_written: 3,
                    rows_rejected: 0,
                    changed: false,
                })
                .collect(),
            ..RunReport::new("t", run, String::new())
        }
    }

    #[test]
    fn a_checkpoint_round_trips_and_replaces_the_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let mut ledger = Ledger::default();
        ledger.apply(report("r1", &["a", "b"]));
        let first = write(&lake, "t", &ledger, &[]).unwrap();
        ledger.apply(report("r2", &["b", "c"]));
        let second = write(&lake, "t", &ledger, std::slice::from_ref(&first)).unwrap();
        assert_eq!(list(&lake, "t").unwrap(), std::slice::from_ref(&second));
        let back = read(&lake, "t", &second).unwrap();
        assert_eq!(back.newest_run(), Some("r2"));
        assert_eq!((back.runs(), back.len()), (2, 3));
        assert_eq!(back.last_run("a"), Some("r1"));
        assert_eq!(back.last_run("b"), Some("r2"));
        assert_eq!(back.get("c").unwrap().hash, "h-c");

        // A forget run drops its inputs and is remembered as a rewrite.
        let mut forget = report("r3", &[]);
        forget.forgotten = vec!["a".into()];
        forget.supersedes = vec!["data/t/customer=x/dt=2024-01-01/part-r1-00000.parquet".into()];
        let mut ledger = back;
        ledger.apply(forget);
        assert_eq!((ledger.len(), ledger.last_run("a")), (2, None));
        let third = write(&lake, "t", &ledger, std::slice::from_ref(&second)).unwrap();
        let back = read(&lake, "t", &third).unwrap();
        assert_eq!(back.rewrites(), ["r3"]);
        assert_eq!((back.len(), back.get("a")), (2, None));
    }

    #[test]
    fn a_damaged_checkpoint_is_an_error_never_a_wrong_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let mut ledger = Ledger::default();
        ledger.apply(report("r1", &["a", "b"]));
        let key = write(&lake, "t", &ledger, &[]).unwrap();
        let good = lake.store().read(&key).unwrap().unwrap().bytes;
        let mut cut = zstd::decode_all(good.as_slice()).unwrap();
        let last = cut.len() - 2;
        let start = cut[..last].iter().rposition(|&b| b == b'\n').unwrap() + 1;
        cut.truncate(start);
        let damaged = [
            b"not zstd".to_vec(),
            zstd::encode_all(&b""[..], 3).unwrap(),
            zstd::encode_all(cut.as_slice(), 3).unwrap(),
            good[..good.len() / 2].to_vec(),
        ];
        for bytes in damaged {
            lake.store().write(&key, &bytes).unwrap();
            let err = read(&lake, "t", &key).unwrap_err();
            assert!(err.to_string().contains("ledger checkpoint"), "{err}");
        }
        assert!(read(&lake, "u", &key).is_err(), "another table's");
    }
}
