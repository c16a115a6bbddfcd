//! Streaming a run's planned inputs into Parquet, on a rayon pool, each worker writing its own
//! files.
//!
//! A bad input never leaves rows behind and never fails the run, at any size. An input's rows
//! are held in memory until its decoded bytes pass `buffer_file_bytes`; past that they are
//! written tentatively to files of the input's own. When the input turns out bad (unreadable,
//! truncated, a bad layout on its last line, too many rejects, a partition folder that cannot
//! exist, changed while read) the held rows are dropped or its own files deleted, and it is
//! reported and left unconsumed. Memory is bounded by: workers × (one decoded batch +
//! `buffer_file_bytes` of held rows + on S3 the inputs read ahead, at most
//! [`crate::read::prefetch::AHEAD_TOTAL_BYTES`] + [`crate::read::prefetch::AHEAD_BYTES`]) + the
//! writers' budget, split between them, whatever an input inflates to.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use rayon::prelude::*;

use super::journal::Journal;
use super::plan::Planned;
use super::stall_point;
use super::Progress;
use crate::commit::rejects::RejectSpool;
use crate::config::{Job, TableSpec, WriteOptions};
use crate::error::{Error, FileError, InputError, Result};
use crate::lake::Lake;
use crate::parse::{decode_stream, decoder_for, DecodeOptions, Decoder, Reject, RowCounts};
use crate::partition::{split, PartitionBatch, MAX_KEY_BYTES};
use crate::read::prefetch::Prefetch;
use crate::read::{decompress, input};
use crate::transform::{Lineage, Transform, TransformCounts};
use crate::write::{PartitionedWriter, WrittenFile};

/// A rejected row's text where the table's column rules protect values a raw line would show.
pub const WITHHELD: &str = "(withheld: the table's column rules protect values this line holds)";

/// What processing one input gave.
pub struct Outcome {
    /// The input.
    pub planned: Planned,
    /// Consumed, or why not.
    pub result: std::result::Result<Consumed, InputError>,
}

/// What a consumed input gave.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Consumed {
    /// Hash of the raw bytes read.
    pub hash: String,
    /// The decoder's counts.
    pub counts: RowCounts,
    /// Rows written.
    pub rows_written: u64,
    /// Rows rejected (by the decoder and the transform).
    pub rows_rejected: u64,
    /// What the transform counted.
    pub transform: TransformCounts,
    /// Bytes the decoder read: the content, inflated when the input is gzip.
    #[serde(default)]
    pub bytes_decoded: u64,
}

/// Decode, transform and write every planned input, spooling rejected rows. Returns each
/// input's outcome and the files written.
#[allow(clippy::too_many_arguments)]
pub fn stream(
    job: &Job,
    table: &TableSpec,
    lake: &Lake,
    run_id: &str,
    journal: &Journal,
    transform: &Transform,
    planned: &[Planned],
    spool: &RejectSpool,
    progress: &dyn Progress,
) -> Result<(Vec<Outcome>, Vec<WrittenFile>)> {
    let worker = Worker {
        job,
        table,
        transform,
        spool,
        prefetch: Prefetch::new(planned.iter().map(|p| &p.input).collect()),
        key_room: partition_key_room(lake, &table.name, run_id),
        decode: DecodeOptions {
            batch_size: job.batch_size,
            columns: transform
                .table_schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|n| !crate::schema::is_lineage(n))
                .collect(),
            customer_field: table.customer_field.clone(),
        },
    };
    let threads = job.threads.max(1);
    let per_worker = WriteOptions {
        max_open_files: (job.write.max_open_files / threads).max(1),
        memory_budget_bytes: job.write.memory_budget_bytes / threads as u64,
        ..job.write.clone()
    };
    let sequence = Arc::new(AtomicU64::new(0));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::io("worker pool", io::Error::other(e)))?;
    // One writer per pool thread; a task takes its own thread's. Only that thread's one task at
    // a time uses it (nothing in a task calls back into rayon), so it is never held elsewhere.
    let writers: Vec<Mutex<PartitionedWriter>> = (0..threads)
        .map(|_| {
            Mutex::new(
                PartitionedWriter::new(
                    lake.clone(),
                    &table.name,
                    run_id,
                    transform.table_schema().clone(),
                    per_worker.clone(),
                    sequence.clone(),
                )
                .with_journal(Arc::new(journal.clone())),
            )
        })
        .collect();
    let stop = AtomicBool::new(false);
    // rayon splits the plan into contiguous ranges (stealing halves when a thread runs out), so
    // neighbouring inputs, which share partitions, are mostly written by the same writer.
    let results: Vec<Option<Result<Outcome>>> = pool.install(|| {
        planned
            .par_iter()
            .with_max_len(leaf_len(planned.len(), threads))
            .enumerate()
            .map(|(i, p)| {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                let slot = &writers[rayon::current_thread_index().unwrap_or(0) % threads];
                let mut writer = match slot.try_lock() {
                    Ok(writer) => writer,
                    Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                    Err(TryLockError::WouldBlock) => {
                        unreachable!("a pool thread's writer is used by one task at a time")
                    }
                };
                let outcome = process_input(&worker, i, p, &mut writer);
                if outcome.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                progress.input_done(p.input.listed.size);
                Some(outcome)
            })
            .collect()
    });
    let writers = writers
        .into_iter()
        .map(|w| w.into_inner().unwrap_or_else(PoisonError::into_inner));
    let mut outcomes = Vec::with_capacity(results.len());
    let mut first_error = None;
    for r in results.into_iter().flatten() {
        match r {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let mut files = Vec::new();
    if first_error.is_some() {
        // Closed files are returned so they are removed below; open ones are aborted.
        for w in writers {
            files.extend(w.abort());
        }
    } else {
        // Closing flushes every open file's last row group: in parallel, like the rest.
        let finished: Vec<Result<Vec<WrittenFile>>> = pool.install(|| {
            writers
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(PartitionedWriter::finish)
                .collect()
        });
        for f in finished {
            match f {
                Ok(f) => files.extend(f),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    if let Some(e) = first_error {
        // Nothing of this run may be committed; remove what it wrote now rather than later.
        remove_files(lake, &files);
        return Err(e);
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((outcomes, files))
}

/// The most inputs a worker takes as one range it no longer splits: 1/32 of each worker's
/// share, at least [`LEAF_MIN`]. A thread that runs out can only steal ranges not yet begun, so
/// it waits for the other's last range: with rayon's default, an eighth of the plan on 2
/// threads (0.3 s of a 5 s run of 20,016 small inputs). Ranges split finer than needed would
/// cost files instead: a worker that steals part of another's customer writes new files for it.
fn leaf_len(inputs: usize, threads: usize) -> usize {
    (inputs / (threads.max(1) * 32)).max(LEAF_MIN)
}

/// The smallest range [`leaf_len`] gives: below it rayon's own splitting decides.
const LEAF_MIN: usize = 8;

/// Bytes a partition folder (`customer=…/dt=…`) may take so that every data file key of this
/// run stays within S3's key limit (the lake's key prefix and file names counted).
fn partition_key_room(lake: &Lake, table: &str, run_id: &str) -> usize {
    // The longest file name a run writes, with room for more digits than any run reaches.
    let name = format!("part-{run_id}-{}.parquet", "0".repeat(12));
    let key = format!("{}//{name}", lake.data_prefix(table));
    let url = lake.url(&key);
    // On S3 the limit is on the whole key, the lake's prefix included; a local lake is held
    // to the same rule (below its root) so it can be copied to S3 as it is.
    let used = match url.strip_prefix("s3://") {
        Some(rest) => rest.split_once('/').map_or(rest.len(), |(_, k)| k.len()),
        None => key.len(),
    };
    MAX_KEY_BYTES.saturating_sub(used)
}

/// Remove files of a run that will not commit (best effort: the next run's recovery removes
/// whatever is left).
pub fn remove_files(lake: &Lake, files: &[WrittenFile]) {
    for f in files {
        if let Err(e) = lake.store().delete(&f.key) {
            tracing::warn!(file = %lake.url(&f.key), error = %e, "could not remove a file of a failed run; the next run removes it");
        }
    }
}

/// The error of an input that could not be opened: the input's own when the store said why
/// (it changed since it was listed), else the store's text.
fn open_failed(e: Error) -> FileError {
    match e {
        Error::Input(InputError { kind, .. }) => kind,
        e => FileError::Io {
            source: io::Error::other(e.to_string()),
        },
    }
}

/// What a worker needs besides its writer: the same for every input of the run.
struct Worker<'a> {
    job: &'a Job,
    table: &'a TableSpec,
    transform: &'a Transform,
    spool: &'a RejectSpool,
    /// Inputs opened ahead (remote ones).
    prefetch: Prefetch<'a>,
    /// Bytes a partition folder may take in a data file's key (see [`PartitionKey::check_path`]).
    key_room: usize,
    /// What the decoders need of the table.
    decode: DecodeOptions,
}

/// An input's rows until the input is known to be good. They are held in memory up to a
/// number of decoded bytes; past it they are written tentatively to files of the input's own
/// (see [`PartitionedWriter::begin_input`]). Either way a failure leaves nothing behind.
struct Staged<'w> {
    writer: &'w mut PartitionedWriter,
    held: Vec<PartitionBatch>,
    held_bytes: usize,
    limit: usize,
}

impl<'w> Staged<'w> {
    fn new(writer: &'w mut PartitionedWriter, limit: u64) -> Self {
        Self {
            writer,
            held: Vec::new(),
            held_bytes: 0,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
    }

    /// Take one decoded batch's partitions (`bytes` decoded bytes in all).
    fn add(&mut self, mut parts: Vec<PartitionBatch>, bytes: usize) -> Result<()> {
        if !self.writer.is_tentative() {
            self.held_bytes += bytes;
            self.held.append(&mut parts);
            if self.held_bytes <= self.limit {
                return Ok(());
            }
            self.writer.begin_input();
            parts = std::mem::take(&mut self.held);
        }
        for part in parts {
            self.writer.write(part)?;
        }
        Ok(())
    }

    /// The input is good: its rows become part of the run.
    fn commit(self) -> Result<()> {
        if self.writer.is_tentative() {
            return self.writer.commit_input();
        }
        for part in self.held {
            self.writer.write(part)?;
        }
        Ok(())
    }

    /// The input failed: nothing of it stays (an error is the run's).
    fn discard(self) -> Result<()> {
        self.writer.rollback_input()
    }
}

/// Why a decode stopped early when it is not the input's fault: kept aside and raised as the
/// run's error.
fn stopped_for_the_run() -> FileError {
    FileError::Io {
        source: io::Error::other("stopped: the run failed"),
    }
}

/// Process one input. An `Err` is the run's (a write failed, or a bug): nothing of the run
/// may commit. A bad input gives an `Ok` outcome holding its error, with none of its rows
/// left in the writer.
fn process_input(
    w: &Worker,
    index: usize,
    p: &Planned,
    writer: &mut PartitionedWriter,
) -> Result<Outcome> {
    let (job, uri) = (w.job, &p.input.listed.uri);
    let failed = |kind: FileError| Outcome {
        planned: p.clone(),
        result: Err(InputError::new(uri.clone(), kind)),
    };
    if let Some(reason) = w.table.no_customer(&p.input) {
        return Ok(failed(FileError::NoCustomer(reason)));
    }
    let file = match w.prefetch.open(index) {
        Ok(f) => f,
        Err(e) => return Ok(failed(open_failed(e))),
    };
    stall_point("input_opened");
    let opened = match input::open(file, p.input.listed.size, job.max_decompressed_bytes) {
        Ok(opened) => opened,
        Err(kind) => return Ok(failed(kind)),
    };
    let encoding = opened.encoding;
    writer.next_input_customer(p.input.listed.customer.as_deref())?;
    let lineage = Lineage::new(uri.clone(), p.input.listed.customer.clone());
    let (mut decoder, reader) = match decoder_for(
        w.table.format,
        opened.content.into_reader(p.input.listed.size),
        &w.decode,
    ) {
        Ok(opened) => opened,
        Err(e) => return Ok(failed(decompress::classify(e, encoding))),
    };
    let mut staged = Staged::new(writer, job.buffer_file_bytes);
    let mut rejects = Vec::new();
    let mut transform_counts = TransformCounts::default();
    let mut rows_written = 0u64;
    // An error that is not the input's: kept here, the decode stopped, and raised for the run.
    let mut run_error = None;
    let mut content = input::Counted::new(reader);
    let decoded = decode_stream(
        &mut content,
        &mut decoder,
        |e| decompress::classify(e, encoding),
        |d| {
            rejects.extend(d.rejects);
            let (out, parts) = match w
                .transform
                .apply(d.batch, &lineage)
                .and_then(|out| split(&out.batch).map(|parts| (out, parts)))
            {
                Ok(done) => done,
                Err(e) => {
                    run_error = Some(e);
                    return Err(stopped_for_the_run());
                }
            };
            for part in &parts {
                part.key
                    .check_path(w.key_room)
                    .map_err(FileError::PathTooLong)?;
            }
            transform_counts += out.counts;
            rejects.extend(out.rejects);
            rows_written += out.batch.num_rows() as u64;
            if let Err(e) = staged.add(parts, out.batch.get_array_memory_size()) {
                run_error = Some(e);
                return Err(stopped_for_the_run());
            }
            Ok(())
        },
    );
    if let Some(e) = run_error {
        return Err(e);
    }
    let counts = decoder.counts();
    let verdict =
        decoded.and_then(|()| check_rejects(&rejects, counts.rows_read, job.max_reject_fraction));
    if let Err(kind) = verdict {
        staged.discard()?;
        return Ok(failed(kind));
    }
    staged.commit()?;
    // Consumed: its rejects go to the spool (a failed input's rows are dropped with it).
    if w.transform.withholds_raw_text() {
        for r in &mut rejects {
            r.raw = WITHHELD.to_owned();
        }
    }
    w.spool.append(uri, &rejects)?;
    let hash = opened.hash.hex();
    Ok(Outcome {
        planned: p.clone(),
        result: Ok(Consumed {
            hash,
            counts,
            rows_written,
            rows_rejected: rejects.len() as u64,
            transform: transform_counts,
            bytes_decoded: content.consumed(),
        }),
    })
}

/// Fail an input whose rejected share of `read` rows passes `limit` (see
/// [`FileError::TooManyRejects`]).
fn check_rejects(rejects: &[Reject], read: u64, limit: f64) -> std::result::Result<(), FileError> {
    let rejected = rejects.len() as u64;
    if read == 0 || rejected as f64 <= limit * read as f64 {
        return Ok(());
    }
    let first = rejects
        .iter()
        .min_by_key(|r| r.line)
        .expect("some rejected");
    Err(FileError::TooManyRejects {
        rejected,
        read,
        limit,
        first_line: first.line,
        first_reason: first.reason.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_is_a_32nd_of_a_workers_share_or_a_few_inputs() {
        assert_eq!(leaf_len(20_016, 2), 312);
        assert_eq!(leaf_len(576, 2), 9);
        assert_eq!(leaf_len(27, 2), LEAF_MIN);
        assert_eq!(leaf_len(0, 0), LEAF_MIN);
    }

    #[test]
    fn an_input_fails_once_its_rejected_share_passes_the_limit() {
        use crate::parse::RejectReason;
        let reject = |line| Reject {
            line,
            reason: RejectReason::MissingCustomer,
            raw: String::new(),
        };
        assert!(check_rejects(&[], 0, 0.1).is_ok());
        assert!(check_rejects(&[reject(3)], 10, 0.1).is_ok());
        let err = check_rejects(&[reject(9), reject(4)], 10, 0.1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 of 10 rows rejected, more than run.max_reject_fraction = 0.1 allows (first at line 4: no customer in the row or the input path)"
        );
        assert!(check_rejects(&[reject(1)], 1, 1.0).is_ok());
        assert!(check_rejects(&[reject(1)], 1, 0.0).is_err());
    }
}
