//! Newline-delimited records pushed in chunks of any size: each complete line handed on with
//! its 1-based number, a line longer than the limit handed on once as [`Line::TooLong`] (its
//! first bytes) and the rest of it skipped. The JSON decoders read their inputs through it.

use memchr::memchr;

use crate::error::FileError;
use crate::parse::UTF8_BOM;

/// A line as [`Lines`] hands it on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A whole line, without its `\n` (or `\r\n`; the first line without a byte order mark).
    Whole(&'a [u8]),
    /// A line over the limit: its first bytes.
    TooLong(&'a [u8]),
}

/// How many bytes of an over-long line are kept for its reject.
const TOO_LONG_HEAD: usize = 256;

/// The line splitter of one input.
#[derive(Debug)]
pub(crate) struct Lines {
    /// Bytes of a line that started in an earlier chunk.
    partial: Vec<u8>,
    /// Inside a line already handed on as too long: bytes are dropped up to its newline.
    skipping: bool,
    /// Lines completed so far.
    line: u64,
    max_line: usize,
}

impl Lines {
    /// A splitter of lines of at most `max_line` bytes.
    pub(crate) fn new(max_line: usize) -> Self {
        Self {
            partial: Vec::new(),
            skipping: false,
            line: 0,
            max_line: max_line.max(TOO_LONG_HEAD),
        }
    }

    /// Split `buf`, handing each line to `each` (its number and the line), which says whether
    /// to go on: it stops once `each` returns false. Returns the bytes consumed.
    pub(crate) fn decode(
        &mut self,
        buf: &[u8],
        mut each: impl FnMut(u64, Line<'_>) -> Result<bool, FileError>,
    ) -> Result<usize, FileError> {
        let mut at = 0;
        while at < buf.len() {
            let rest = &buf[at..];
            let Some(nl) = memchr(b'\n', rest) else {
                self.push_partial(rest, &mut each)?;
                return Ok(buf.len());
            };
            at += nl + 1;
            let go_on = self.end_line(&rest[..nl], &mut each)?;
            if !go_on {
                break;
            }
        }
        Ok(at)
    }

    /// The input has ended: a last line without a newline is handed on.
    pub(crate) fn finish(
        &mut self,
        mut each: impl FnMut(u64, Line<'_>) -> Result<bool, FileError>,
    ) -> Result<(), FileError> {
        if self.skipping || !self.partial.is_empty() {
            self.end_line(&[], &mut each)?;
        }
        Ok(())
    }

    fn push_partial(
        &mut self,
        bytes: &[u8],
        each: &mut impl FnMut(u64, Line<'_>) -> Result<bool, FileError>,
    ) -> Result<(), FileError> {
        if self.skipping {
            return Ok(());
        }
        if self.partial.len() + bytes.len() > self.max_line {
            let keep = TOO_LONG_HEAD
                .saturating_sub(self.partial.len())
                .min(bytes.len());
            self.partial.extend_from_slice(&bytes[..keep]);
            self.skipping = true;
            let head = std::mem::take(&mut self.partial);
            each(self.line + 1, Line::TooLong(&head))?;
            return Ok(());
        }
        self.partial.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(
        &mut self,
        tail: &[u8],
        each: &mut impl FnMut(u64, Line<'_>) -> Result<bool, FileError>,
    ) -> Result<bool, FileError> {
        if !self.skipping && self.partial.len() + tail.len() > self.max_line {
            self.push_partial(tail, each)?;
        }
        if self.skipping {
            self.skipping = false;
            self.line += 1;
            return Ok(true);
        }
        self.line += 1;
        let go_on = if self.partial.is_empty() {
            each(self.line, Line::Whole(self.clean(tail)))?
        } else {
            self.partial.extend_from_slice(tail);
            let line = std::mem::take(&mut self.partial);
            let go_on = each(self.line, Line::Whole(self.clean(&line)));
            self.partial = line;
            self.partial.clear();
            go_on?
        };
        Ok(go_on)
    }

    /// `line` without its `\r`, and the first line without a byte order mark.
    fn clean<'a>(&self, mut line: &'a [u8]) -> &'a [u8] {
        if self.line == 1 {
            line = line.strip_prefix(UTF8_BOM).unwrap_or(line);
        }
        line.strip_suffix(b"\r").unwrap_or(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `data` fed `chunk` bytes at a time, as (number, text or `!` + head).
    fn split(data: &[u8], chunk: usize, max: usize) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut lines = Lines::new(max);
        let mut each = |n: u64, l: Line<'_>| {
            out.push(match l {
                Line::Whole(b) => (n, String::from_utf8_lossy(b).into_owned()),
                Line::TooLong(b) => (n, format!("!{}", b.len())),
            });
            Ok(true)
        };
        for piece in data.chunks(chunk) {
            let mut at = 0;
            while at < piece.len() {
                at += lines.decode(&piece[at..], &mut each).unwrap();
            }
        }
        lines.finish(&mut each).unwrap();
        out
    }

    #[test]
    fn lines_are_the_same_whatever_the_chunking() {
        let long = "x".repeat(600);
        let data = format!("\u{feff}{{\"a\":1}}\r\n\n{long}\nlast");
        let want = vec![
            (1, "{\"a\":1}".to_owned()),
            (2, String::new()),
            (3, "!256".to_owned()),
            (4, "last".to_owned()),
        ];
        for chunk in [1, 2, 3, 7, 255, 256, 257, 1000] {
            assert_eq!(split(data.as_bytes(), chunk, 256), want, "chunk {chunk}");
        }
    }

    #[test]
    fn a_line_over_the_limit_at_the_end_is_rejected_once() {
        let data = "a\n".to_owned() + &"y".repeat(300);
        for chunk in [1, 10, 400] {
            assert_eq!(
                split(data.as_bytes(), chunk, 256),
                [(1, "a".to_owned()), (2, "!256".to_owned())],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn it_stops_when_told() {
        let mut lines = Lines::new(1024);
        let mut seen = Vec::new();
        let used = lines
            .decode(b"a\nb\nc\n", |n, _| {
                seen.push(n);
                Ok(n < 2)
            })
            .unwrap();
        assert_eq!((used, seen), (4, vec![1, 2]));
    }
}
