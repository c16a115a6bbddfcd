//! Opening the next input while the current one is decoded. On S3 every input costs a
//! request's round trip before its first byte, and a worker that opens its inputs one after
//! another waits that long per input. Workers take the plan in contiguous ranges, so when a
//! worker starts input `i` it starts opening `i + 1` on a thread of its own; whoever takes
//! `i + 1` (most often the same worker) finds it opened, and its first [`AHEAD_BYTES`] already
//! read: a whole typical log file, so a worker never waits on a busy server for the body of
//! the next one either. Only remote (`s3://`) inputs are prefetched, at most one per worker at
//! a time.

use std::io::{self, Read};
use std::sync::Mutex;
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::read::pattern::MatchedInput;

type Opening = JoinHandle<Result<Box<dyn Read + Send>>>;

/// Bytes of an input opened ahead that are read into memory before its worker takes it.
pub const AHEAD_BYTES: u64 = 8 << 20;

/// An input's first bytes, read ahead, then the rest as it comes. A read error met while
/// reading ahead is returned where it was met, after the bytes before it.
struct ReadAhead {
    head: io::Cursor<Vec<u8>>,
    failed: Option<io::Error>,
    rest: Box<dyn Read + Send>,
}

impl ReadAhead {
    /// Read up to `bytes` of `input` now.
    fn new(mut input: Box<dyn Read + Send>, bytes: u64) -> Self {
        let mut head = Vec::new();
        let failed = (&mut input).take(bytes).read_to_end(&mut head).err();
        Self {
            head: io::Cursor::new(head),
            failed,
            rest: input,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.head.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.rest.read(buf)
    }
}

/// Per-plan slots of inputs being opened ahead.
pub struct Prefetch<'a> {
    inputs: Vec<&'a MatchedInput>,
    /// For each input: taken by a worker (no prefetch may start after), and its opening.
    slots: Vec<Mutex<(bool, Option<Opening>)>>,
    enabled: bool,
}

impl<'a> Prefetch<'a> {
    /// Slots for `inputs`, in plan order.
    pub fn new(inputs: Vec<&'a MatchedInput>) -> Self {
        let enabled = inputs.iter().any(|m| m.uri.starts_with("s3://"));
        let slots = inputs.iter().map(|_| Mutex::new((false, None))).collect();
        Self {
            inputs,
            slots,
            enabled,
        }
    }

    /// Open input `i` (or take it opened ahead), having started to open `i + 1`.
    pub fn open(&self, i: usize) -> Result<Box<dyn Read + Send>> {
        let pending = {
            let mut slot = self.slots[i].lock().unwrap_or_else(|p| p.into_inner());
            slot.0 = true;
            slot.1.take()
        };
        self.start(i + 1);
        match pending {
            Some(opening) => opening.join().unwrap_or_else(|_| {
                Err(Error::Internal {
                    message: format!("{}: opening it ahead panicked", self.inputs[i].uri),
                })
            }),
            None => self.inputs[i].open(),
        }
    }

    fn start(&self, i: usize) {
        if !self.enabled || i >= self.inputs.len() || !self.inputs[i].uri.starts_with("s3://") {
            return;
        }
        let mut slot = self.slots[i].lock().unwrap_or_else(|p| p.into_inner());
        if slot.0 || slot.1.is_some() {
            return;
        }
        let input = self.inputs[i].clone();
        slot.1 = std::thread::Builder::new()
            .name("citrine-prefetch".into())
            .spawn(move || {
                let opened = input.open()?;
                Ok(Box::new(ReadAhead::new(opened, AHEAD_BYTES)) as Box<dyn Read + Send>)
            })
            .ok();
    }
}

impl Drop for Prefetch<'_> {
    fn drop(&mut self) {
        // Openings nobody took (the run stopped early): wait for them, so no thread outlives
        // the run; their streams are dropped unread.
        for slot in &mut self.slots {
            let slot = slot.get_mut().unwrap_or_else(|p| p.into_inner());
            if let Some(opening) = slot.1.take() {
                let _ = opening.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use std::sync::Arc;

    fn input(dir: &std::path::Path, name: &str, uri: &str) -> MatchedInput {
        std::fs::write(dir.join(name), name.as_bytes()).unwrap();
        MatchedInput {
            store: Arc::new(crate::store::LocalStore::new(dir).unwrap()),
            key: name.into(),
            uri: uri.into(),
            customer: None,
            size: name.len() as u64,
            mtime_ns: crate::store::LocalStore::new(dir)
                .unwrap()
                .head(name)
                .unwrap()
                .unwrap()
                .mtime_ns,
            etag: None,
        }
    }

    fn read(mut r: Box<dyn Read + Send>) -> String {
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        s
    }

    /// A reader of `data` that fails after it.
    struct FailsAfter(io::Cursor<Vec<u8>>);

    impl Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(io::Error::other("the connection was reset")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn reading_ahead_gives_the_same_bytes_and_the_error_where_it_was_met() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for ahead in [0, 1, 4096, 100_000, 200_000] {
            let whole = Box::new(io::Cursor::new(data.clone()));
            let mut got = Vec::new();
            ReadAhead::new(whole, ahead).read_to_end(&mut got).unwrap();
            assert_eq!(got, data, "{ahead} bytes ahead");

            let failing = Box::new(FailsAfter(io::Cursor::new(data.clone())));
            let mut r = ReadAhead::new(failing, ahead);
            let mut got = Vec::new();
            let err = r.read_to_end(&mut got).unwrap_err();
            assert_eq!(err.to_string(), "the connection was reset");
            assert_eq!(
                got, data,
                "every byte before the error, {ahead} bytes ahead"
            );
        }
    }

    #[test]
    fn every_input_is_opened_once_ahead_or_not() {
        let dir = tempfile::tempdir().unwrap();
        // Named as remote inputs so they are prefetched (read from a local store here).
        let inputs: Vec<MatchedInput> = ["a", "b", "c"]
            .iter()
            .map(|n| input(dir.path(), n, &format!("s3://bucket/{n}")))
            .collect();
        let prefetch = Prefetch::new(inputs.iter().collect());
        // Out of order, as stolen ranges go: each input still reads whole, once.
        assert_eq!(read(prefetch.open(1).unwrap()), "b");
        assert!(
            prefetch.slots[2].lock().unwrap().1.is_some(),
            "c opened ahead"
        );
        assert_eq!(read(prefetch.open(0).unwrap()), "a");
        assert_eq!(read(prefetch.open(2).unwrap()), "c");
        // Taken inputs are never opened ahead again.
        assert!(prefetch.slots.iter().all(|s| s.lock().unwrap().1.is_none()));
    }
}
