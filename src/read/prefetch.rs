//! Opening the next inputs while the current one is decoded. On S3 every input costs a
//! request's round trip before its first byte, and a worker that opens its inputs one after
//! another waits that long per input; a server busy with the run's uploads makes that longer.
//! Workers take the plan in contiguous ranges, so when a worker starts input `i` it starts
//! opening the inputs after it, each on a thread of its own, until [`AHEAD_TOTAL_BYTES`] are
//! on their way (at most [`AHEAD_INPUTS`] inputs, the first at least); whoever takes one of
//! them (most often the same worker) finds it opened, and its first [`AHEAD_BYTES`] already
//! read: a whole typical log file. A server that stalls for a moment (busy with the run's
//! uploads) then costs the worker nothing.
//!
//! A local input costs no round trip to open, but its bytes may not be in the page cache (a
//! cold disk, or pages the system reclaimed since the listing), and a worker that reads it
//! waits for the disk. So the next [`AHEAD_LOCAL_INPUTS`] local inputs are opened by the worker
//! itself, at once (no thread), and opening a local file asks the system to read its first
//! [`AHEAD_BYTES`] meanwhile ([`crate::store::LocalStore`]). In one traced run of 20,016 warmed
//! small files, the workers had waited 0.3 s on such reads.
use std::io::{self, Read};
use std::sync::Mutex;
use std::thread::JoinHandle;

use crate::error::{joined, Result};
use crate::read::pattern::MatchedInput;

/// An input opened ahead.
enum Opening {
    /// Being opened on a thread of its own (remote).
    Thread(JoinHandle<Result<Box<dyn Read + Send>>>),
    /// Opened already (local), or the error opening it met.
    Opened(Result<Box<dyn Read + Send>>),
}

impl Opening {
    /// The opened input, once it is.
    fn take(self, uri: &str) -> Result<Box<dyn Read + Send>> {
        match self {
            Self::Thread(handle) => joined(handle.join(), || format!("{uri}: opening it ahead")),
            Self::Opened(opened) => opened,
        }
    }
}

/// Bytes of an input opened ahead that are read into memory before its worker takes it (the
/// store's own read-ahead hint covers as much).
pub use crate::store::AHEAD_BYTES;

/// Bytes of the inputs after the current one that a worker has on their way at most (each
/// counted up to [`AHEAD_BYTES`]).
pub const AHEAD_TOTAL_BYTES: u64 = 12 << 20;

/// Inputs after the current one that a worker opens ahead at most.
pub const AHEAD_INPUTS: usize = 16;

/// Local inputs after the current one that a worker holds open ahead at most: each is an open
/// file, so few, and they cost nothing to open when taken.
pub const AHEAD_LOCAL_INPUTS: usize = 4;

/// An input's first bytes, read ahead, then the rest as it comes. A read error met while
/// reading ahead is returned where it was met, after the bytes before it.
struct ReadAhead {
    head: io::Cursor<Vec<u8>>,
    failed: Option<io::Error>,
    rest: Box<dyn Read + Send>,
}

impl ReadAhead {
    /// Read up to `bytes` of `input` (of `size` bytes) now.
    fn new(mut input: Box<dyn Read + Send>, size: u64, bytes: u64) -> Self {
        // Exactly what is read (plus one byte to see the end): no doubling of a growing buffer.
        let mut head = Vec::with_capacity(size.min(bytes) as usize + 1);
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
}

impl<'a> Prefetch<'a> {
    /// Slots for `inputs`, in plan order.
    pub fn new(inputs: Vec<&'a MatchedInput>) -> Self {
        let slots = inputs.iter().map(|_| Mutex::new((false, None))).collect();
        Self { inputs, slots }
    }

    /// Open input `i` (or take it opened ahead), having started to open those after it (see
    /// the module's text).
    pub fn open(&self, i: usize) -> Result<Box<dyn Read + Send>> {
        let pending = {
            let mut slot = self.slots[i].lock().unwrap_or_else(|p| p.into_inner());
            slot.0 = true;
            slot.1.take()
        };
        let (mut ahead, mut local) = (0, 0);
        for next in (i + 1..self.inputs.len()).take(AHEAD_INPUTS) {
            if ahead >= AHEAD_TOTAL_BYTES {
                break;
            }
            if !is_remote(self.inputs[next]) {
                if local == AHEAD_LOCAL_INPUTS {
                    break;
                }
                local += 1;
            }
            ahead += self.inputs[next].listed.size.min(AHEAD_BYTES);
            self.start(next);
        }
        match pending {
            Some(opening) => opening.take(&self.inputs[i].listed.uri),
            None => self.inputs[i].open(),
        }
    }

    fn start(&self, i: usize) {
        let mut slot = self.slots[i].lock().unwrap_or_else(|p| p.into_inner());
        if slot.0 || slot.1.is_some() {
            return;
        }
        let input = self.inputs[i];
        if !is_remote(input) {
            slot.1 = Some(Opening::Opened(input.open()));
            return;
        }
        let input = input.clone();
        slot.1 = std::thread::Builder::new()
            .name("citrine-prefetch".into())
            .spawn(move || {
                let opened = input.open()?;
                let head = ReadAhead::new(opened, input.listed.size, AHEAD_BYTES);
                Ok(Box::new(head) as Box<dyn Read + Send>)
            })
            .ok()
            .map(Opening::Thread);
    }
}

/// Whether `input` is read over the network (opened ahead on a thread of its own).
fn is_remote(input: &MatchedInput) -> bool {
    input.listed.uri.starts_with("s3://")
}

impl Drop for Prefetch<'_> {
    fn drop(&mut self) {
        // Openings nobody took (the run stopped early): wait for them, so no thread outlives
        // the run; their streams are dropped unread.
        for slot in &mut self.slots {
            let slot = slot.get_mut().unwrap_or_else(|p| p.into_inner());
            if let Some(Opening::Thread(handle)) = slot.1.take() {
                let _ = handle.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::pattern::ListedInput;
    use crate::store::Store;
    use std::sync::Arc;

    fn input(dir: &std::path::Path, name: &str, uri: &str) -> MatchedInput {
        std::fs::write(dir.join(name), name.as_bytes()).unwrap();
        MatchedInput {
            store: Arc::new(crate::store::LocalStore::new(dir).unwrap()),
            listed: ListedInput {
                key: name.into(),
                uri: uri.into(),
                customer: None,
                distribution: None,
                size: name.len() as u64,
                mtime_ns: crate::store::LocalStore::new(dir)
                    .unwrap()
                    .head(name)
                    .unwrap()
                    .unwrap()
                    .mtime_ns,
                etag: None,
            },
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
            ReadAhead::new(whole, data.len() as u64, ahead)
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(got, data, "{ahead} bytes ahead");

            let failing = Box::new(FailsAfter(io::Cursor::new(data.clone())));
            let mut r = ReadAhead::new(failing, data.len() as u64, ahead);
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
    fn inputs_are_opened_ahead_up_to_a_number_of_bytes_and_of_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let many = |size: u64| -> Vec<MatchedInput> {
            (0..40)
                .map(|n| {
                    let mut m = input(dir.path(), &format!("f{n}"), &format!("s3://b/f{n}"));
                    m.listed.size = size;
                    m
                })
                .collect()
        };
        let started = |p: &Prefetch| -> Vec<usize> {
            (0..p.slots.len())
                .filter(|&i| p.slots[i].lock().unwrap().1.is_some())
                .collect()
        };
        // Inputs of 6 MiB count 4 MiB each: 3 of them make 12 MiB.
        let large = many(6 << 20);
        let prefetch = Prefetch::new(large.iter().collect());
        drop(prefetch.open(0));
        assert_eq!(started(&prefetch), [1, 2, 3]);
        // Small inputs: at most AHEAD_INPUTS.
        let small = many(1);
        let prefetch = Prefetch::new(small.iter().collect());
        drop(prefetch.open(0));
        assert_eq!(started(&prefetch), (1..=AHEAD_INPUTS).collect::<Vec<_>>());
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

    #[test]
    fn local_inputs_are_opened_ahead_by_the_worker_a_few_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let url = |n: &str| format!("file://{}", dir.path().join(n).display());
        let inputs: Vec<MatchedInput> = (0..10)
            .map(|n| input(dir.path(), &format!("f{n}"), &url(&format!("f{n}"))))
            .collect();
        let prefetch = Prefetch::new(inputs.iter().collect());
        assert_eq!(read(prefetch.open(0).unwrap()), "f0");
        let opened: Vec<usize> = (0..prefetch.slots.len())
            .filter(|&i| {
                matches!(
                    prefetch.slots[i].lock().unwrap().1,
                    Some(Opening::Opened(Ok(_)))
                )
            })
            .collect();
        assert_eq!(opened, (1..=AHEAD_LOCAL_INPUTS).collect::<Vec<_>>());
        // An input that vanished after it was opened ahead is still the file as listed; one
        // that vanished before fails when taken, on its own.
        std::fs::remove_file(dir.path().join("f1")).unwrap();
        std::fs::remove_file(dir.path().join("f9")).unwrap();
        assert_eq!(read(prefetch.open(1).unwrap()), "f1");
        let err = prefetch.open(9).err().expect("f9 is gone").to_string();
        assert!(err.contains("f9"), "{err}");
        for i in 2..9 {
            assert_eq!(read(prefetch.open(i).unwrap()), format!("f{i}"));
        }
    }
}
