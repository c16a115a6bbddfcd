//! What citrine says about itself goes through the same address scrubber as its rejects
//! ([`scrub_text`]): log lines, error messages and summaries. [`ScrubLines`] is the writer the
//! binaries give their log subscriber, so no log line can carry a full client address,
//! whatever a message or an error's source put in it.

use std::io::{self, Write};

use crate::transform::mask::scrub_text;

/// A writer that holds what it is given and writes it, scrubbed, a line at a time (and the
/// rest when dropped). One is made per log event, so an event is written whole.
#[derive(Debug)]
pub struct ScrubLines<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> ScrubLines<W> {
    /// Scrub everything written to `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            pending: Vec::new(),
        }
    }

    fn emit(&mut self, upto: usize) -> io::Result<()> {
        let text: Vec<u8> = self.pending.drain(..upto).collect();
        let clean = scrub_text(&String::from_utf8_lossy(&text));
        self.inner.write_all(clean.as_bytes())
    }
}

impl<W: Write> Write for ScrubLines<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(last) = self.pending.iter().rposition(|&b| b == b'\n') {
            self.emit(last + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let all = self.pending.len();
        self.emit(all)?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for ScrubLines<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_scrubbed_whatever_the_pieces() {
        let mut out = Vec::new();
        {
            let mut w = ScrubLines::new(&mut out);
            w.write_all(b"client 192.0.").unwrap();
            w.write_all(b"2.77 failed\nsecond 2001:db8::7 ").unwrap();
            w.write_all(b"line").unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "client 192.0.2.0/24 failed\nsecond 2001:db8::/48 line"
        );
    }
}
