//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use citrine::parse::{Decoder, Format, FormatDecoder, Reject, RowCounts};

/// A fixture's path.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// Every decoded batch, every reject and the counts of one decode.
#[derive(Debug, PartialEq)]
pub struct Decoding {
    pub batches: Vec<RecordBatch>,
    pub rejects: Vec<Reject>,
    pub counts: RowCounts,
}

/// Decode `pieces` in order with a fresh decoder, flushing whenever the batch is full.
pub fn decode_pieces<'a>(
    format: Format,
    batch_size: usize,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Decoding {
    let mut d = FormatDecoder::new(format, batch_size);
    let mut batches = Vec::new();
    let mut rejects = Vec::new();
    let mut take = |d: &mut FormatDecoder| {
        if let Some(out) = d.flush().unwrap() {
            batches.push(out.batch);
            rejects.extend(out.rejects);
        }
    };
    for piece in pieces {
        let mut at = 0;
        while at < piece.len() {
            at += d.decode(&piece[at..]).unwrap();
            if d.capacity() == 0 {
                take(&mut d);
            }
        }
    }
    d.finish().unwrap();
    take(&mut d);
    Decoding {
        batches,
        rejects,
        counts: d.counts(),
    }
}

/// Split `data` after every newline.
pub fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split_inclusive(|&b| b == b'\n').collect()
}
