//! The C allocator's settings for a run.
//!
//! Parquet's writer grows each column's page buffer to about a megabyte and frees it once the
//! page is compressed, hundreds of times a second per worker. glibc serves blocks that size with
//! `mmap` and gives them back with `munmap` (its threshold adapts only up to the size last
//! freed, and freed memory above 128 KiB at the top of a worker's heap is returned too), so each
//! page cost fresh zeroed pages, a page fault per 4 KiB and a TLB shootdown across the workers:
//! the kernel took 18% of an audit run's CPU time. With the blocks kept in the heap, system
//! time went from ~0.45 s to ~0.23 s and the run's wall time fell by 15–20%, for ~8 MiB more
//! peak RSS (BENCHMARKS.md).
//! Memory freed is kept for reuse, so peak RSS still follows the peak of live memory, which
//! the run's budget bounds.
//!
//! Each heap ("arena") keeps its own freed blocks, and glibc gives threads up to 8 arenas per
//! core. A run has more threads than workers (publishing, reading ahead, the HTTP client), so
//! on S3 the freed blocks of a dozen arenas added up: peak RSS about 200 MiB where 4 arenas
//! gave about 150, at the same speed, and the same speed locally with 2 workers (BENCHMARKS.md).
//! Arenas are capped at twice the cores, at least 4.

/// Blocks below this come from the heap, never from their own `mmap`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;
/// Free memory at the top of a heap is returned to the system above this.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 128 << 20;

/// Arenas for `cores` cores: twice as many, so workers seldom share one, and at least 4.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn arenas(cores: usize) -> libc::c_int {
    libc::c_int::try_from(cores.saturating_mul(2).max(4)).unwrap_or(libc::c_int::MAX)
}

/// Keep freed blocks of up to 32 MiB for reuse instead of mapping and unmapping them, in at
/// most twice as many arenas as cores. Call it first in `main`, before any thread starts. True
/// when the allocator took the settings (false where the C library is not glibc, whose
/// allocator needs none of this).
pub fn keep_freed_blocks() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        // SAFETY: `mallopt` only sets the allocator's parameters; called before other threads
        // exist, nothing allocates concurrently.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
                && libc::mallopt(libc::M_ARENA_MAX, arenas(cores)) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_settings() {
        assert!(super::keep_freed_blocks());
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn arenas_are_twice_the_cores_and_at_least_four() {
        assert_eq!(super::arenas(1), 4);
        assert_eq!(super::arenas(2), 4);
        assert_eq!(super::arenas(16), 32);
        assert_eq!(super::arenas(usize::MAX), libc::c_int::MAX);
    }
}
