//! Where the separators of a line are, found 16 bytes at a time (SSE2) on x86-64 and eight
//! bytes at a time elsewhere.
//!
//! A CloudFront row has 33 short fields; finding each tab with its own `memchr` call cost more
//! in call overhead than in scanning (a profile put it at ~6% of a CloudFront run), and
//! `memchr::memchr_iter` is the same calls behind an iterator. This scans the line once: a
//! 64-bit word at a time with plain integer arithmetic was 2.4–2.8× faster than `memchr_iter`
//! on the benchmark's lines (BENCHMARKS.md, fourth round), and SSE2 blocks of 16 bytes take a
//! fifth of that word loop's instructions.

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// Append to `out` the index of every `sep` byte in `line`, in increasing order. True when
/// the line is ASCII (so UTF-8 without a further check).
#[inline]
pub fn find_all(line: &[u8], sep: u8, out: &mut Vec<usize>) -> bool {
    find_any(line, [sep], out)
}

/// Append to `out` the index of every byte of `line` that is one of `seps`, in increasing
/// order: one pass over the line whatever the number of separators. True when every byte of
/// the line is ASCII, seen in the same pass.
///
/// On x86-64 the line is read 16 bytes at a time with SSE2 (part of every x86-64 CPU): one
/// compare per separator and one mask per block, where the word-at-a-time scan took about 23
/// instructions per 8 bytes (a callgrind count of the CloudFront decoder). The bytes after
/// the last full block, and the whole line elsewhere, go through [`find_any_words`].
#[inline]
pub fn find_any<const N: usize>(line: &[u8], seps: [u8; N], out: &mut Vec<usize>) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let (blocks, ascii) = sse2::find_any(line, seps, out);
        let tail = find_any_words(&line[blocks..], blocks, seps, out);
        ascii && tail
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        find_any_words(line, 0, seps, out)
    }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };

    /// Bytes in a block, and so the most hits one block can have.
    const BLOCK: usize = 16;

    /// [`super::find_any`] over the line's whole 16-byte blocks: how many bytes that was, and
    /// whether they were ASCII. Not inlined: inside a decoder's line loop its state was kept
    /// on the stack, and a call costs less than those loads and stores.
    #[inline(never)]
    pub(super) fn find_any<const N: usize>(
        line: &[u8],
        seps: [u8; N],
        out: &mut Vec<usize>,
    ) -> (usize, bool) {
        // SAFETY (the intrinsics): SSE2 is in the x86-64 baseline, so these instructions exist
        // on every CPU this code is built for; the only memory they read is an unaligned
        // 16-byte load of a chunk that is exactly 16 bytes long.
        let patterns: [__m128i; N] = seps.map(|sep| unsafe { _mm_set1_epi8(sep as i8) });
        let mut blocks = line.chunks_exact(BLOCK);
        let mut base = 0;
        let mut high = unsafe { _mm_setzero_si128() };
        for block in &mut blocks {
            let found = unsafe {
                let v = _mm_loadu_si128(block.as_ptr().cast());
                high = _mm_or_si128(high, v);
                let eq = patterns.iter().fold(_mm_setzero_si128(), |eq, pattern| {
                    _mm_or_si128(eq, _mm_cmpeq_epi8(v, *pattern))
                });
                _mm_movemask_epi8(eq) as u32
            };
            if found != 0 {
                push_hits(out, base, found);
            }
            base += BLOCK;
        }
        (base, unsafe { _mm_movemask_epi8(high) } == 0)
    }

    /// Append `base` plus the place of each set bit of `hits` (one bit per byte of a block).
    /// Written through the vector's spare room and its length set once: pushed one by one,
    /// each hit reloaded and stored the vector's pointer and length.
    #[inline]
    fn push_hits(out: &mut Vec<usize>, base: usize, mut hits: u32) {
        out.reserve(BLOCK);
        let room = out.spare_capacity_mut();
        let mut n = 0;
        while hits != 0 {
            room[n].write(base + hits.trailing_zeros() as usize);
            n += 1;
            hits &= hits - 1;
        }
        let len = out.len() + n;
        // SAFETY: the first `n` slots of the spare room were written just above (a block has
        // at most `BLOCK` hits and `reserve` made room for that many, so `room[n]` was in
        // bounds), so the first `len` elements are initialised.
        unsafe { out.set_len(len) };
    }
}

/// [`find_any`] a 64-bit word at a time, with plain integer arithmetic; indexes are
/// `offset` plus the place in `line`.
#[inline]
fn find_any_words<const N: usize>(
    line: &[u8],
    offset: usize,
    seps: [u8; N],
    out: &mut Vec<usize>,
) -> bool {
    let patterns = seps.map(|sep| ONES * u64::from(sep));
    let mut words = line.chunks_exact(8);
    let mut base = offset;
    let mut high = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("chunks of 8"));
        high |= word;
        let mut hits = patterns
            .iter()
            .fold(0, |hits, pattern| hits | zero_bytes(word ^ pattern));
        while hits != 0 {
            out.push(base + hits.trailing_zeros() as usize / 8);
            hits &= hits - 1;
        }
        base += 8;
    }
    let tail = words.remainder();
    out.extend(
        (0..tail.len())
            .filter(|&i| seps.contains(&tail[i]))
            .map(|i| base + i),
    );
    high & !LOW7 == 0 && tail.is_ascii()
}

/// The high bit of each byte of the result is set exactly where that byte of `x` is zero, and
/// every other bit is clear. Each byte's sum stays within its byte (at most 0x7f + 0x7f), so
/// unlike the shorter borrow trick there are no false hits next to a real one.
#[inline]
fn zero_bytes(x: u64) -> u64 {
    !(((x & LOW7) + LOW7) | x | LOW7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(line: &[u8], sep: u8) -> Vec<usize> {
        (0..line.len()).filter(|&i| line[i] == sep).collect()
    }

    fn found(line: &[u8], sep: u8) -> Vec<usize> {
        let mut out = Vec::new();
        find_all(line, sep, &mut out);
        out
    }

    #[test]
    fn finds_separators_across_words_and_in_the_tail() {
        let line = b"2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\t\t\t-\t";
        assert_eq!(found(line, b'\t'), naive(line, b'\t'));
        assert_eq!(found(b"", b'\t'), Vec::<usize>::new());
        assert_eq!(found(b"\t", b'\t'), vec![0]);
        assert_eq!(
            found(b"\t\t\t\t\t\t\t\t\t", b'\t'),
            (0..9).collect::<Vec<_>>()
        );
    }

    #[test]
    fn bytes_one_off_the_separator_are_not_hits() {
        // 0x08 and 0x0a next to a tab are where a borrow-based test gives false hits; bytes
        // with the high bit set must not match either.
        let line = [
            0x08, 0x09, 0x0a, 0x89, 0x09, 0x08, 0x01, 0x00, 0xff, 0x09, 0x19, 0x0b,
        ];
        assert_eq!(found(&line, b'\t'), vec![1, 4, 9]);
        assert_eq!(found(&line, 0), vec![7]);
        assert_eq!(found(&line, 0xff), vec![8]);
    }

    proptest! {
        #[test]
        fn agrees_with_a_byte_by_byte_scan(
            line in proptest::collection::vec(prop_oneof![Just(b'\t'), Just(b','), any::<u8>()], 0..80),
            sep in prop_oneof![Just(b'\t'), Just(b','), any::<u8>()],
        ) {
            prop_assert_eq!(found(&line, sep), naive(&line, sep));
        }

        #[test]
        fn any_of_three_agrees_with_a_byte_by_byte_scan(
            line in proptest::collection::vec(prop_oneof![Just(b','), Just(b'"'), Just(b'\r'), any::<u8>()], 0..80),
        ) {
            let mut out = Vec::new();
            let ascii = find_any(&line, [b',', b'"', b'\r'], &mut out);
            let naive: Vec<usize> =
                (0..line.len()).filter(|&i| matches!(line[i], b',' | b'"' | b'\r')).collect();
            prop_assert_eq!(out, naive);
            prop_assert_eq!(ascii, line.is_ascii());
        }

        #[test]
        fn the_word_scan_alone_agrees_with_a_byte_by_byte_scan(
            line in proptest::collection::vec(prop_oneof![Just(b'\t'), Just(b','), any::<u8>()], 0..80),
            offset in 0usize..100,
        ) {
            // The whole scan on targets without SSE2 blocks, and the tail of every line on
            // x86-64.
            let mut out = Vec::new();
            let ascii = find_any_words(&line, offset, [b'\t', b','], &mut out);
            let naive: Vec<usize> = (0..line.len())
                .filter(|&i| matches!(line[i], b'\t' | b','))
                .map(|i| i + offset)
                .collect();
            prop_assert_eq!(out, naive);
            prop_assert_eq!(ascii, line.is_ascii());
        }

        #[test]
        fn a_line_is_ascii_exactly_when_no_byte_has_its_high_bit(
            line in proptest::collection::vec(prop_oneof![8 => 0u8..0x80, 1 => 0x80u8..=0xff], 0..80),
        ) {
            prop_assert_eq!(find_all(&line, b'\t', &mut Vec::new()), line.is_ascii());
        }
    }
}
