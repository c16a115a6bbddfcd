//! Opening an input for decoding: its raw bytes hashed as they are read (the content hash
//! recorded in the ledger), small inputs read whole and gzip ones inflated in one call, larger
//! ones streamed through the one capped decompression helper.

use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex};

use xxhash_rust::xxh3::Xxh3;

use super::decompress::{self, Decompressed, Encoding};
use super::inflate::{self, Gunzipped};
use super::pattern::MatchedInput;
use crate::error::{Error, FileError, Result};

/// The hash of an input's raw bytes as far as they have been read: xxh3-128, 32 hex digits,
/// as recorded in reports.
#[derive(Clone, Default)]
pub struct RawHash(Arc<Mutex<Xxh3>>);

impl std::fmt::Debug for RawHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawHash({})", self.hex())
    }
}

impl RawHash {
    /// The hash so far, as recorded in reports.
    pub fn hex(&self) -> String {
        self.0.lock().map(|h| hex128(&h)).unwrap_or_default()
    }
}

/// A reader that hashes every byte read through it.
struct HashingReader<R> {
    inner: R,
    hash: RawHash,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut h) = self.hash.0.lock() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The content hash as recorded in reports: xxh3-128, 32 hex digits.
fn hex128(h: &Xxh3) -> String {
    format!("{:032x}", h.digest128())
}

/// xxh3-128 of an input's raw bytes, hex.
pub fn hash_input(input: &MatchedInput) -> Result<String> {
    let mut f = input.open()?;
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io(&input.listed.uri, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex128(&h))
}

/// Inputs up to this size on disk are read into memory whole, and gzip ones decompressed
/// in one call ([`inflate::gunzip`]), which is about twice as fast as streaming inflate.
pub const WHOLE_INPUT_BYTES: u64 = 4 << 20;

/// Decompressed bytes past which a whole-read gzip input is streamed instead (memory per
/// worker stays below this plus [`WHOLE_INPUT_BYTES`]).
pub const WHOLE_OUTPUT_BYTES: usize = 16 << 20;

/// An input's content: in memory, or a stream for large inputs.
pub enum Content {
    /// Read whole (and inflated, if gzip).
    Memory(Vec<u8>),
    /// Streamed through the capped decompression helper.
    Stream(Decompressed<Box<dyn Read + Send>>),
}

impl Content {
    /// The content as the decoders consume it; `size` is the input's size on disk.
    pub fn into_reader(self, size: u64) -> Box<dyn BufRead> {
        match self {
            Content::Memory(bytes) => Box::new(io::Cursor::new(bytes)),
            Content::Stream(reader) => Box::new(decompress::buffered_sized(reader, size)),
        }
    }
}

/// A reader that counts the bytes its consumer took: an input's decoded (inflated) size.
pub struct Counted<R> {
    inner: R,
    consumed: u64,
}

impl<R: BufRead> Counted<R> {
    /// Count what is consumed of `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner, consumed: 0 }
    }

    /// Bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.consumed += amount as u64;
        self.inner.consume(amount);
    }
}

/// An opened input: its content, how it was encoded, and the hash of its raw bytes (complete
/// once the content has been read to its end).
pub struct Opened {
    /// What the decoder reads.
    pub content: Content,
    /// Plain or gzip.
    pub encoding: Encoding,
    /// The raw bytes' hash.
    pub hash: RawHash,
}

/// Open the content of `raw` (an input's raw bytes, `size` of them on disk), hashing every raw
/// byte, decompressed and capped at `cap` bytes.
pub fn open(
    raw: impl Read + Send + 'static,
    size: u64,
    cap: u64,
) -> std::result::Result<Opened, FileError> {
    let hash = RawHash::default();
    let reader = HashingReader {
        inner: raw,
        hash: hash.clone(),
    };
    let (content, encoding) = open_content(reader, size, cap, WHOLE_OUTPUT_BYTES)?;
    Ok(Opened {
        content,
        encoding,
        hash,
    })
}

/// Open an input's (decompressed, capped) content: small inputs whole (up to `whole_output`
/// bytes decompressed), large ones streamed.
fn open_content(
    mut reader: impl Read + Send + 'static,
    size: u64,
    cap: u64,
    whole_output: usize,
) -> std::result::Result<(Content, Encoding), FileError> {
    let stream = |reader: Box<dyn Read + Send>| {
        let reader = Decompressed::sized(reader, cap, size)
            .map_err(|e| decompress::classify(e, Encoding::Plain))?;
        let encoding = reader.encoding();
        Ok((Content::Stream(reader), encoding))
    };
    if size > WHOLE_INPUT_BYTES {
        return stream(Box::new(reader));
    }
    let mut raw = Vec::with_capacity(size as usize + 1);
    reader
        .read_to_end(&mut raw)
        .map_err(|e| decompress::classify(e, Encoding::Plain))?;
    if !raw.starts_with(&decompress::GZIP_MAGIC) {
        if raw.len() as u64 > cap {
            return Err(FileError::DecompressionCap { cap });
        }
        return Ok((Content::Memory(raw), Encoding::Plain));
    }
    match inflate::gunzip(&raw, cap, whole_output)? {
        Gunzipped::Whole(content) => Ok((Content::Memory(content), Encoding::Gzip)),
        // Too large to hold (or past the cap): the streaming reader reads it, and reports
        // the cap as it always does.
        Gunzipped::TooLarge => stream(Box::new(io::Cursor::new(raw))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::decompress::gz;

    const WHOLE_OUTPUT: usize = 1 << 16;

    fn content(raw: Vec<u8>, cap: u64) -> std::result::Result<(Vec<u8>, bool), FileError> {
        let size = raw.len() as u64;
        let (content, _) = open_content(io::Cursor::new(raw), size, cap, WHOLE_OUTPUT)?;
        Ok(match content {
            Content::Memory(bytes) => (bytes, true),
            Content::Stream(mut reader) => {
                let mut out = Vec::new();
                let encoding = reader.encoding();
                reader
                    .read_to_end(&mut out)
                    .map_err(|e| decompress::classify(e, encoding))?;
                (out, false)
            }
        })
    }

    #[test]
    fn small_inputs_are_read_whole_and_large_ones_streamed() {
        let text = b"#Version: 1.0\n".repeat(1000);
        assert_eq!(
            content(text.clone(), u64::MAX).unwrap(),
            (text.clone(), true)
        );
        assert_eq!(content(gz(&text), u64::MAX).unwrap(), (text.clone(), true));
        // Past the whole-input size on disk: streamed, same bytes.
        let big: Vec<u8> = (0..WHOLE_INPUT_BYTES + 1)
            .map(|i| (i % 251) as u8)
            .collect();
        assert_eq!(content(big.clone(), u64::MAX).unwrap(), (big, false));
        // A small gzip that inflates past the whole-output limit is streamed too.
        let bomb = vec![b'x'; WHOLE_OUTPUT + 1];
        assert_eq!(content(gz(&bomb), u64::MAX).unwrap(), (bomb, false));
    }

    #[test]
    fn the_cap_holds_on_both_paths() {
        let text = b"a line of a log\n".repeat(1000);
        for raw in [text.clone(), gz(&text)] {
            let err = content(raw, 100).unwrap_err();
            assert!(
                matches!(err, FileError::DecompressionCap { cap: 100 }),
                "{err}"
            );
        }
        let truncated = gz(&text);
        let err = content(truncated[..truncated.len() - 9].to_vec(), u64::MAX).unwrap_err();
        assert!(matches!(err, FileError::Gzip { .. }), "{err}");
    }

    #[test]
    fn counted_counts_what_is_consumed() {
        let mut r = Counted::new(io::Cursor::new(b"line one\nline two\n".to_vec()));
        let mut first = String::new();
        r.read_line(&mut first).unwrap();
        assert_eq!(r.consumed(), 9);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(r.consumed(), 18);
    }
}
