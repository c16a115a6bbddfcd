//! A small gzip that inflates to 1.5 GiB of valid rows stays within the memory budget plus a
//! constant: what is held per input is bounded by decoded bytes, never by the size on disk.
//! The harness measures the run's peak RSS (getrusage of the finished child); this file holds
//! one test so no other child of this process can raise the figure.

mod common;

use std::io::Write;

use common::{files_below, run_summary};

const BUDGET_MB: u64 = 32;
const BUFFER_MB: u64 = 8;
const THREADS: u64 = 2;
/// What one worker holds besides the writers' budget and its held rows: one decoded batch
/// (512 rows of ~4 KB), the inflater's and reader's buffers, and the allocator's slack.
const CONSTANT_MB: u64 = 32;
/// Inflated size of the input.
const INFLATED: u64 = 3 << 29;

fn peak_rss_of_children_kib() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full rusage into the pointer we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: initialised by the successful call above.
    unsafe { usage.assume_init() }.ru_maxrss as u64
}

fn member(text: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(text).unwrap();
    e.finish().unwrap()
}

/// A CloudFront log of rows with 4 KB paths, as gzip members: `blocks` copies of one member
/// of 64 rows after the header's member (multi-member gzip, as log shippers concatenate).
/// Returns the rows written.
fn bomb(path: &std::path::Path, blocks: u64) -> u64 {
    let rows: String = (0..64)
        .map(|i| {
            let path = char::from(b'a' + i % 16).to_string().repeat(4000);
            format!(
                "2024-01-01\t10:00:{:02}\t192.0.2.{}\t/{path}\n",
                i % 60,
                i + 1
            )
        })
        .collect();
    let mut out = member(b"#Version: 1.0\n#Fields: date time c-ip cs-uri-stem\n");
    let block = member(rows.as_bytes());
    for _ in 0..blocks {
        out.extend_from_slice(&block);
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, out).unwrap();
    blocks * 64
}

fn lake(dir: &std::path::Path, blocks: u64) -> u64 {
    let rows = bomb(
        &dir.join("logs/cloudfront/acme/E1.2024-01-01-10.x.gz"),
        blocks,
    );
    std::fs::write(
        dir.join("citrine.toml"),
        format!(
            "[lake]\nroot = \"lake\"\nmemory_budget_mb = {BUDGET_MB}\n[run]\nthreads = {THREADS}\nbatch_size = 512\nbuffer_file_mb = {BUFFER_MB}\n\n[[table]]\nname = \"cloudfront_logs\"\nformat = \"cloudfront\"\ninputs = [\"logs/cloudfront/{{customer}}/\"]\n"
        ),
    )
    .unwrap();
    rows
}

#[test]
fn a_gzip_inflating_to_one_and_a_half_gib_stays_within_the_budget() {
    // The baseline: the same rows, one block (16 KB decoded). Children's peak RSS is the
    // largest of any child so far, so the small run goes first.
    let small = tempfile::tempdir().unwrap();
    lake(small.path(), 1);
    run_summary(small.path());
    let base_mb = peak_rss_of_children_kib() / 1024;

    let dir = tempfile::tempdir().unwrap();
    let block_bytes = 64 * (4000 + 35);
    let rows = lake(dir.path(), INFLATED / block_bytes);
    let on_disk = std::fs::metadata(
        dir.path()
            .join("logs/cloudfront/acme/E1.2024-01-01-10.x.gz"),
    )
    .unwrap()
    .len();
    assert!(on_disk < 16 << 20, "{on_disk} bytes on disk");
    let s = run_summary(dir.path());
    assert_eq!(s["rows_written"], rows);
    let peak_mb = peak_rss_of_children_kib() / 1024;
    let bound = base_mb + BUDGET_MB + THREADS * BUFFER_MB + CONSTANT_MB;
    println!(
        "peak RSS {peak_mb} MiB for {} MiB inflated from {} KiB ({base_mb} MiB for one block; bound {bound} MiB)",
        INFLATED >> 20,
        on_disk >> 10
    );
    assert!(
        peak_mb <= bound,
        "peak RSS {peak_mb} MiB, over {bound} MiB (baseline {base_mb} MiB)"
    );
    // The input was large enough to go to files of its own, and they are the run's.
    assert_eq!(files_below(&dir.path().join("lake/data")).len(), 1);
}
