//! Many partitions in one run stay within the memory budget. The harness measures the run's
//! peak RSS (getrusage of the finished child) and prints it. This file holds one test so no
//! other child of this process can raise the figure.

mod common;

use common::gen::{cloudfront, write_config, Shape};
use common::{run_ok, rust_counts};

const BUDGET_MB: u64 = 32;
/// What the process needs besides the writers' budget: the binary, allocator slack, decoded
/// batches in flight (threads × one small file) and channel contents. See BENCHMARKS.md for the
/// figure measured with 5,000 partitions and a 32 MiB budget.
const OVERHEAD_MB: u64 = 96;

fn peak_rss_of_children_kib() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full rusage into the pointer we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: initialised by the successful call above.
    unsafe { usage.assume_init() }.ru_maxrss as u64
}

#[test]
fn five_thousand_partitions_stay_under_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let customers: Vec<String> = (0..500).map(|i| format!("customer{i:03}")).collect();
    let names: Vec<&str> = customers.iter().map(String::as_str).collect();
    let g = cloudfront(
        dir.path(),
        &Shape {
            seed: 3,
            customers: &names,
            days: 10,
            files_per_day: 1,
            rows_per_file: 12,
            bad_every: 0,
            all_gzip: false,
        },
    );
    // One file per customer and day, its last rows late: 500 × 11 days of partitions.
    assert!(g.expected.len() >= 5000, "{} partitions", g.expected.len());
    write_config(
        dir.path(),
        &format!("memory_budget_mb = {BUDGET_MB}\nmax_open_files = 64\n"),
    );
    run_ok(dir.path());
    let peak_mb = peak_rss_of_children_kib() / 1024;
    println!("peak RSS {peak_mb} MiB for {} partitions (budget {BUDGET_MB} MiB + {OVERHEAD_MB} MiB overhead)", g.expected.len());
    assert!(peak_mb <= BUDGET_MB + OVERHEAD_MB, "peak RSS {peak_mb} MiB");
    assert_eq!(rust_counts(dir.path()), g.expected);
}
