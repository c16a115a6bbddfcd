//! The commands of the `citrine` binary: one module per command (or per group of commands
//! that share their arguments), each with its arguments next to the function that runs it.
//! `main.rs` parses the command line and sends each command to its function in one line.

#[macro_use]
pub mod output;

pub mod compact;
pub mod context;
pub mod docs;
pub mod forget;
pub mod iam;
pub mod inspect;
pub mod maintain;
pub mod query;
pub mod redshift;
pub mod run;
pub mod shard;
pub mod status;

/// Exit codes: 0 ok, 1 completed with errors, 2 failed or usage.
pub const EXIT_PARTIAL: u8 = 1;
/// See [`EXIT_PARTIAL`].
pub const EXIT_FAILED: u8 = 2;
