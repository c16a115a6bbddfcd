//! Finding and opening inputs. Every input, local or remote, is read through
//! [`decompress::Decompressed`], the one capped decompression helper.

pub mod decompress;
pub mod inflate;
pub mod input;
pub mod pattern;
pub mod prefetch;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::error::{FileError, InputError};
pub use decompress::{Decompressed, Encoding, DEFAULT_DECOMPRESSED_CAP};

/// An opened local input: decompressed, capped and buffered.
pub type LocalInput = BufReader<Decompressed<File>>;

/// Open a local file for decoding.
pub fn open_local(path: &Path, cap: u64) -> Result<(LocalInput, Encoding), InputError> {
    let uri = path.display().to_string();
    let file =
        File::open(path).map_err(|source| InputError::new(&uri, FileError::Io { source }))?;
    let reader = Decompressed::new(file, cap)
        .map_err(|source| InputError::new(&uri, FileError::Io { source }))?;
    let encoding = reader.encoding();
    Ok((decompress::buffered(reader), encoding))
}
