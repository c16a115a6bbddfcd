//! A run's rejected rows, spooled to a local temporary file as each input finishes (so memory
//! holds at most one input's rejects per worker, however bad the input), then published as
//! `_citrine/rejects/<table>/<run_id>/rejects.jsonl`: one JSON line `{file, line, reason, raw}`
//! per row, with addresses already scrubbed by the decoders.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::parse::Reject;
use crate::store::Store;

/// The spool of one run: a file in the system's temporary folder that is unlinked as soon as
/// it is created, so nothing of it outlives the process, even one killed with SIGKILL.
#[derive(Debug)]
pub struct RejectSpool {
    /// The name it was created under (for messages; it no longer exists).
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
    lines: AtomicU64,
}

#[derive(Serialize)]
struct Line<'a> {
    file: &'a str,
    line: u64,
    reason: String,
    raw: &'a str,
}

impl RejectSpool {
    /// A new spool in the system's temporary folder.
    pub fn new() -> Result<Self> {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            ".citrine-rejects-{}-{}.jsonl",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Self {
            path,
            file: Mutex::new(BufWriter::new(file)),
            lines: AtomicU64::new(0),
        })
    }

    /// Add the rejects of one consumed input.
    pub fn append(&self, file: &str, rejects: &[Reject]) -> Result<()> {
        if rejects.is_empty() {
            return Ok(());
        }
        let mut text = Vec::new();
        for r in rejects {
            let line = Line {
                file,
                line: r.line,
                reason: r.reason.to_string(),
                raw: &r.raw,
            };
            serde_json::to_writer(&mut text, &line).expect("plain data");
            text.push(b'\n');
        }
        let mut out = self.file.lock().expect("reject spool");
        out.write_all(&text).map_err(|e| Error::io(&self.path, e))?;
        self.lines
            .fetch_add(rejects.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Rows spooled so far.
    pub fn lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }

    /// Upload the spool to `key` (streamed); `None` when nothing was rejected.
    pub fn publish(&self, store: &dyn Store, key: &str) -> Result<Option<String>> {
        if self.lines() == 0 {
            return Ok(None);
        }
        let mut spool = self.file.lock().expect("reject spool");
        spool.flush().map_err(|e| Error::io(&self.path, e))?;
        // The clone shares the file's offset: read from the start, then leave it at the end
        // for any later append.
        let mut from = spool
            .get_ref()
            .try_clone()
            .map_err(|e| Error::io(&self.path, e))?;
        from.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(&self.path, e))?;
        let mut to = store.upload(key)?;
        std::io::copy(&mut from, &mut to).map_err(|e| Error::io(store.url(key), e))?;
        from.seek(SeekFrom::End(0))
            .map_err(|e| Error::io(&self.path, e))?;
        to.finish()?;
        Ok(Some(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::RejectReason;
    use crate::store::LocalStore;

    #[test]
    fn spooled_rejects_publish_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let spool = RejectSpool::new().unwrap();
        assert_eq!(spool.publish(&store, "r.jsonl").unwrap(), None);
        let reject = Reject {
            line: 7,
            reason: RejectReason::FieldCount {
                expected: 3,
                found: 2,
            },
            raw: "a\tb".into(),
        };
        spool.append("in/a.log", &[reject.clone(), reject]).unwrap();
        assert_eq!(spool.lines(), 2);
        assert_eq!(
            spool.publish(&store, "r.jsonl").unwrap().as_deref(),
            Some("r.jsonl")
        );
        let text = String::from_utf8(store.read("r.jsonl").unwrap().unwrap().bytes).unwrap();
        assert_eq!(text.lines().count(), 2);
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(
            (first["file"].as_str(), first["line"].as_u64()),
            (Some("in/a.log"), Some(7))
        );
        assert!(!spool.path.exists(), "the spool has no name while it lives");
    }
}

/// Where a run's rejected rows wait until its commit publishes them as the run's one object.
pub trait Rejects {
    /// Write the rejects to `key`; `None` when there are none.
    fn publish(&self, store: &dyn Store, key: &str) -> Result<Option<String>>;
}

impl Rejects for RejectSpool {
    fn publish(&self, store: &dyn Store, key: &str) -> Result<Option<String>> {
        RejectSpool::publish(self, store, key)
    }
}

/// The rejects a sharded run's shards published (JSON lines each), joined in shard order.
#[derive(Debug, Clone, Default)]
pub struct ShardRejects(pub Vec<String>);

impl Rejects for ShardRejects {
    fn publish(&self, store: &dyn Store, key: &str) -> Result<Option<String>> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let mut to = store.upload(key)?;
        for part in &self.0 {
            let mut from = store.open(part)?;
            std::io::copy(&mut from, &mut to).map_err(|e| Error::io(store.url(part), e))?;
        }
        to.finish()?;
        Ok(Some(key.to_owned()))
    }
}
