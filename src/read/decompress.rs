//! The one way citrine decompresses input. Gzip is detected by its magic bytes, never by the
//! file name; multi-member streams (concatenated `.gz` files, as log shippers write them) are
//! read whole; and the decompressed size is capped so a gzip bomb fails its file instead of
//! exhausting memory or disk. `clippy.toml` bans the raw flate2 decoders everywhere else.
//! Small gzip inputs held in memory whole go through [`super::inflate`] instead, with the
//! same rules (every member, the cap), falling back to this reader when they grow too large.

use std::io::{self, BufReader, Chain, Cursor, Read};

use crate::error::FileError;

/// The two bytes every gzip member starts with (RFC 1952).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Default cap on the decompressed bytes of one input: 16 GiB.
pub const DEFAULT_DECOMPRESSED_CAP: u64 = 16 << 30;

/// How an input is encoded on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Plain bytes.
    Plain,
    /// One or more gzip members.
    Gzip,
}

/// Error payload used inside `io::Error` when the cap is hit, so it survives `Read` plumbing.
#[derive(Debug)]
struct CapExceeded(u64);

impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decompressed size exceeds the cap of {} bytes", self.0)
    }
}

impl std::error::Error for CapExceeded {}

type Sniffed<R> = Chain<Cursor<Vec<u8>>, R>;

/// A reader over an input's content, decompressed if it is gzip, and capped.
pub struct Decompressed<R: Read> {
    inner: Inner<R>,
    encoding: Encoding,
    produced: u64,
    cap: u64,
}

enum Inner<R: Read> {
    Plain(Sniffed<R>),
    #[allow(clippy::disallowed_types)]
    Gzip(Box<flate2::bufread::MultiGzDecoder<BufReader<Sniffed<R>>>>),
}

impl<R: Read> Decompressed<R> {
    /// Sniff the first bytes of `reader` and wrap it. `cap` bounds the decompressed bytes.
    pub fn new(reader: R, cap: u64) -> io::Result<Self> {
        Self::sized(reader, cap, u64::MAX)
    }

    /// [`Decompressed::new`] for an input of `input_bytes` raw bytes: its read buffer is no
    /// larger than the input. Buffers are zeroed once each, which for thousands of small
    /// files cost more than reading them.
    pub fn sized(mut reader: R, cap: u64, input_bytes: u64) -> io::Result<Self> {
        let mut head = Vec::with_capacity(2);
        (&mut reader).take(2).read_to_end(&mut head)?;
        let encoding = if head == GZIP_MAGIC {
            Encoding::Gzip
        } else {
            Encoding::Plain
        };
        let sniffed = Cursor::new(head).chain(reader);
        #[allow(clippy::disallowed_types)]
        let inner = match encoding {
            Encoding::Plain => Inner::Plain(sniffed),
            Encoding::Gzip => Inner::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(
                BufReader::with_capacity(buffer_size(64 * 1024, input_bytes), sniffed),
            ))),
        };
        Ok(Self {
            inner,
            encoding,
            produced: 0,
            cap,
        })
    }

    /// The encoding found by sniffing.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Decompressed bytes produced so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }
}

impl<R: Read> Read for Decompressed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.inner {
            Inner::Plain(r) => {
                // The first read would stop at the end of the sniffed bytes; go on into the
                // file so the first chunk is large enough to sniff a format from.
                let mut n = r.read(buf)?;
                if self.produced == 0 && n > 0 && n < buf.len() {
                    n += r.read(&mut buf[n..])?;
                }
                n
            }
            Inner::Gzip(r) => r.read(buf)?,
        };
        self.produced += n as u64;
        if self.produced > self.cap {
            return Err(io::Error::other(CapExceeded(self.cap)));
        }
        Ok(n)
    }
}

/// Turn an I/O error from a [`Decompressed`] reader into the file-level error it stands for.
pub fn classify(err: io::Error, encoding: Encoding) -> FileError {
    if let Some(detail) = crate::error::ChangedWhileRead::find(&err) {
        return FileError::Changed {
            detail: detail.to_owned(),
        };
    }
    if let Some(CapExceeded(cap)) = err.get_ref().and_then(|e| e.downcast_ref::<CapExceeded>()) {
        return FileError::DecompressionCap { cap: *cap };
    }
    match (encoding, err.kind()) {
        (
            Encoding::Gzip,
            io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput,
        ) => FileError::Gzip { source: err },
        _ => FileError::Io { source: err },
    }
}

/// Read a whole (small) input through the helper, for tests and `inspect`.
pub fn read_all<R: Read>(reader: R, cap: u64) -> Result<Vec<u8>, FileError> {
    let mut d = Decompressed::new(reader, cap).map_err(|source| FileError::Io { source })?;
    let mut out = Vec::new();
    match d.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => Err(classify(e, d.encoding())),
    }
}

/// A `BufRead` over a decompressed input with a large buffer, the shape the decoders consume.
pub fn buffered<R: Read>(reader: Decompressed<R>) -> BufReader<Decompressed<R>> {
    buffered_sized(reader, u64::MAX)
}

/// [`buffered`] for an input of `input_bytes` raw bytes: a plain input gets a buffer no larger
/// than itself, a gzip input one no larger than eight times itself.
pub fn buffered_sized<R: Read>(
    reader: Decompressed<R>,
    input_bytes: u64,
) -> BufReader<Decompressed<R>> {
    let expected = match reader.encoding() {
        Encoding::Plain => input_bytes,
        Encoding::Gzip => input_bytes.saturating_mul(8),
    };
    BufReader::with_capacity(buffer_size(256 * 1024, expected), reader)
}

/// `limit`, or less for a smaller input (never below 4 KiB; one spare byte lets the read that
/// finds the end share the buffer).
fn buffer_size(limit: usize, input_bytes: u64) -> usize {
    usize::try_from(input_bytes.saturating_add(1))
        .unwrap_or(usize::MAX)
        .clamp(4096, limit)
}

/// `data` as one gzip member, for tests.
#[cfg(test)]
pub(crate) fn gz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffers_fit_the_input() {
        let capacity = |data: Vec<u8>| {
            let size = data.len() as u64;
            let reader = Decompressed::sized(Cursor::new(data), u64::MAX, size).unwrap();
            buffered_sized(reader, size).capacity()
        };
        assert_eq!(capacity(vec![b'x'; 30_000]), 30_001);
        assert_eq!(capacity(vec![b'x'; 10]), 4096);
        assert_eq!(capacity(vec![b'x'; 1 << 20]), 256 * 1024);
        let mut state = 0x2545_f491_u32;
        let noise: Vec<u8> = (0..10_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let small_gzip = gz(&noise);
        assert!(small_gzip.len() > 4096);
        assert_eq!(capacity(small_gzip.clone()), 8 * small_gzip.len() + 1);
        let mut big = Vec::new();
        Decompressed::sized(Cursor::new(gz(&vec![b'y'; 1 << 20])), u64::MAX, 1 << 20)
            .unwrap()
            .read_to_end(&mut big)
            .unwrap();
        assert_eq!(big.len(), 1 << 20);
    }

    #[test]
    fn plain_passes_through() {
        assert_eq!(read_all(&b"hello"[..], 100).unwrap(), b"hello");
        assert_eq!(read_all(&b""[..], 100).unwrap(), b"");
        assert_eq!(read_all(&b"\x1f"[..], 100).unwrap(), b"\x1f");
    }

    #[test]
    fn gzip_detected_by_magic_not_name() {
        let data = gz(b"line one\nline two\n");
        let d = Decompressed::new(&data[..], 100).unwrap();
        assert_eq!(d.encoding(), Encoding::Gzip);
        assert_eq!(read_all(&data[..], 100).unwrap(), b"line one\nline two\n");
    }

    #[test]
    fn multi_member_gzip_is_read_whole() {
        let mut data = gz(b"first member\n");
        data.extend(gz(b"second member\n"));
        assert_eq!(
            read_all(&data[..], 1000).unwrap(),
            b"first member\nsecond member\n"
        );
    }

    #[test]
    fn truncated_gzip_is_a_gzip_error() {
        let data = gz(&b"some log line\n".repeat(100));
        let err = read_all(&data[..data.len() - 10], 1 << 20).unwrap_err();
        assert!(matches!(err, FileError::Gzip { .. }), "{err:?}");
    }

    #[test]
    fn gzip_bomb_hits_the_cap() {
        let data = gz(&vec![b'a'; 10 << 20]);
        assert!(data.len() < 100_000);
        let err = read_all(&data[..], 1 << 20).unwrap_err();
        assert!(
            matches!(err, FileError::DecompressionCap { cap } if cap == 1 << 20),
            "{err:?}"
        );
    }

    #[test]
    fn plain_input_is_capped_too() {
        let err = read_all(&[b'x'; 101][..], 100).unwrap_err();
        assert!(matches!(err, FileError::DecompressionCap { cap: 100 }));
    }
}
