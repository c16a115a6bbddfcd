//! Whole-buffer gunzip through libdeflate, for gzip inputs small enough to hold in memory
//! (most log files). libdeflate decompresses a buffer it can see whole about twice as fast as
//! a streaming inflater (measured in BENCHMARKS.md), and checks each member's CRC-32 and
//! length as it goes. Larger inputs, and any that would grow past the caller's limit, stream
//! through [`super::decompress::Decompressed`] instead.

use std::io;
use std::ptr::NonNull;

use libdeflate_sys::{
    libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_free_decompressor,
    libdeflate_gzip_decompress_ex, libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE,
    libdeflate_result_LIBDEFLATE_SUCCESS,
};

use crate::error::FileError;

/// What [`gunzip`] made of a buffer.
#[derive(Debug)]
pub enum Gunzipped {
    /// Every member, decompressed and checked.
    Whole(Vec<u8>),
    /// The output would pass the caller's limit: stream it instead.
    TooLarge,
}

/// One libdeflate decompressor (it holds tables; reuse it across inputs of one thread).
struct Inflater(NonNull<libdeflate_decompressor>);

impl Inflater {
    fn new() -> Self {
        // SAFETY: plain allocation; a null return (out of memory) is checked below.
        let p = unsafe { libdeflate_alloc_decompressor() };
        Self(NonNull::new(p).expect("out of memory allocating a libdeflate decompressor"))
    }

    /// Decompress one member at the start of `input` into at most `room` bytes of `out`'s
    /// spare capacity (reserved by the caller). Returns the input bytes consumed, `Ok(None)`
    /// when `room` is too small, `Err` for corrupt data.
    fn member(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        room: usize,
    ) -> Result<Option<usize>, ()> {
        let spare = out.spare_capacity_mut();
        let room = room.min(spare.len());
        let (mut read, mut written) = (0usize, 0usize);
        // SAFETY: the decompressor is live; `input` is readable for its length and `spare` is
        // writable for at least `room` bytes; libdeflate writes at most `room` bytes and
        // reports how many through `written`.
        let result = unsafe {
            libdeflate_gzip_decompress_ex(
                self.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                spare.as_mut_ptr().cast(),
                room,
                &mut read,
                &mut written,
            )
        };
        if result == libdeflate_result_LIBDEFLATE_SUCCESS {
            // SAFETY: libdeflate initialised `written` (≤ room) bytes of the spare capacity.
            unsafe { out.set_len(out.len() + written) };
            Ok(Some(read))
        } else if result == libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE {
            Ok(None)
        } else {
            Err(())
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor and freed once.
        unsafe { libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

thread_local! {
    static INFLATER: std::cell::RefCell<Option<Inflater>> = const { std::cell::RefCell::new(None) };
}

/// Decompress every gzip member of `input` (concatenated members are read whole, as
/// [`super::decompress::Decompressed`] does). Output past `limit` bytes, or past `cap`, gives
/// [`Gunzipped::TooLarge`]: the caller streams the input instead, and the streaming reader
/// reports the cap with its usual error.
pub fn gunzip(input: &[u8], cap: u64, limit: usize) -> Result<Gunzipped, FileError> {
    INFLATER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let inflater = slot.get_or_insert_with(Inflater::new);
        gunzip_with(inflater, input, cap, limit)
    })
}

fn gunzip_with(
    inflater: &mut Inflater,
    input: &[u8],
    cap: u64,
    limit: usize,
) -> Result<Gunzipped, FileError> {
    let corrupt = |what: &str| FileError::Gzip {
        source: io::Error::new(io::ErrorKind::InvalidData, what.to_owned()),
    };
    let max = usize::try_from(cap).unwrap_or(usize::MAX).min(limit);
    // A member's trailer ends in its length mod 2^32: for one member, the exact output size.
    let trailer = input.len().checked_sub(4).map_or(0, |at| {
        u32::from_le_bytes(input[at..].try_into().expect("4 bytes")) as usize
    });
    let mut out: Vec<u8> = Vec::new();
    let mut room = trailer.max(input.len()).max(4096);
    let mut pos = 0;
    while pos < input.len() || pos == 0 {
        // `out.len() <= max` holds here, so there is always at least one byte of room.
        let allowed = room.min(max + 1 - out.len());
        out.reserve_exact(allowed);
        match inflater.member(&input[pos..], &mut out, allowed) {
            Err(()) => return Err(corrupt("invalid deflate data, checksum or length")),
            Ok(Some(read)) => pos += read,
            Ok(None) if allowed < room => return Ok(Gunzipped::TooLarge),
            Ok(None) => room = room.saturating_mul(2),
        }
        if out.len() > max {
            return Ok(Gunzipped::TooLarge);
        }
    }
    Ok(Gunzipped::Whole(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::decompress::gz;

    fn whole(input: &[u8], cap: u64, limit: usize) -> Vec<u8> {
        match gunzip(input, cap, limit).unwrap() {
            Gunzipped::Whole(v) => v,
            Gunzipped::TooLarge => panic!("too large"),
        }
    }

    #[test]
    fn members_are_read_whole_and_in_order() {
        let text: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
        assert_eq!(whole(&gz(&text), u64::MAX, 1 << 30), text);
        // Three members, the middle one empty, the first larger than the last's trailer says.
        let mut joined = gz(&text);
        joined.extend(gz(b""));
        joined.extend(gz(b"tail\n"));
        let mut want = text.clone();
        want.extend_from_slice(b"tail\n");
        assert_eq!(whole(&joined, u64::MAX, 1 << 30), want);
    }

    #[test]
    fn output_past_the_limit_or_cap_is_left_to_the_stream() {
        let zeros = gz(&vec![0u8; 1 << 20]);
        assert!(matches!(
            gunzip(&zeros, u64::MAX, (1 << 20) - 1),
            Ok(Gunzipped::TooLarge)
        ));
        assert!(matches!(
            gunzip(&zeros, 1000, 1 << 30),
            Ok(Gunzipped::TooLarge)
        ));
        assert_eq!(whole(&zeros, 1 << 20, 1 << 20).len(), 1 << 20);
    }

    #[test]
    fn corrupt_or_truncated_input_is_a_gzip_error() {
        let data = gz(b"some log lines\n".repeat(1000).as_slice());
        let truncated = &data[..data.len() / 2];
        let mut flipped = data.clone();
        let n = flipped.len();
        flipped[n - 6] ^= 0xff; // the CRC-32
        let mut trailing = data.clone();
        trailing.extend_from_slice(b"garbage!");
        for bad in [truncated, &flipped[..], &trailing[..], &data[..3]] {
            let err = gunzip(bad, u64::MAX, 1 << 30).unwrap_err();
            assert!(matches!(err, FileError::Gzip { .. }), "{err}");
        }
    }
}
