//! The inflate ceiling for the benchmark: the fastest inflater citrine links (libdeflate,
//! through `read::inflate::gunzip`) alone on every `.gz` file below a folder, on N threads,
//! reading each file whole as a run does. Prints `{"bytes_out": …, "seconds": …}`. For
//! `scripts/bench`; not a test.
//!
//! `cargo run --release --example inflate_ceiling -- FOLDER [THREADS]`

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use citrine::read::inflate::{gunzip, Gunzipped};

fn gz_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            gz_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "gz") {
            out.push(path);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(folder) = args.get(1) else {
        eprintln!("usage: inflate_ceiling FOLDER [THREADS]");
        std::process::exit(2);
    };
    let threads: usize = args
        .get(2)
        .map_or(2, |t| t.parse().expect("a thread count"));
    let mut files = Vec::new();
    gz_files(Path::new(folder), &mut files);
    let next = AtomicUsize::new(0);
    let bytes_out = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = files.get(i) else { break };
                let raw = std::fs::read(path).expect("a readable file");
                match gunzip(&raw, u64::MAX, usize::MAX / 2).expect("valid gzip") {
                    Gunzipped::Whole(out) => {
                        bytes_out.fetch_add(out.len() as u64, Ordering::Relaxed);
                    }
                    Gunzipped::TooLarge => unreachable!("no limit"),
                }
            });
        }
    });
    println!(
        "{{\"bytes_out\": {}, \"seconds\": {:.4}, \"files\": {}}}",
        bytes_out.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        files.len()
    );
}
