//! What a run with nothing new costs as a table's history grows: commits one-input runs up to
//! each size given, and at each measures a no-op run (wall time, and the requests it made to
//! the lake, counted by `store::CountingStore`). For BENCHMARKS.md; not a test.
//!
//! `cargo run --release --example history_cost -- LAKE N1 N2 …` with `LAKE` a local folder or
//! `s3://bucket/prefix` (the endpoint from `AWS_ENDPOINT_URL`, as the CLI takes it). Prints a
//! Markdown table.

#[allow(dead_code)]
#[path = "../tests/common/gen.rs"]
mod gen;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use citrine::config::ConfigFile;
use citrine::lake::Lake;
use citrine::run::{run_table_on, NoProgress};
use citrine::store::{CountingStore, Location, Stores};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, sizes @ ..] = args.as_slice() else {
        eprintln!("usage: history_cost LAKE N1 N2 …");
        std::process::exit(2);
    };
    let sizes: Vec<u32> = sizes.iter().map(|n| n.parse().expect("a count")).collect();
    let work = tempfile::tempdir().expect("a scratch folder");
    let inputs = work.path().join("logs/cloudfront/acme");
    std::fs::create_dir_all(&inputs).unwrap();
    let text = format!(
        "[lake]\nroot = \"{root}\"\n[run]\nthreads = 1\n\n[[table]]\nname = \"history\"\nformat = \"cloudfront\"\ninputs = [\"logs/cloudfront/{{customer}}/\"]\n"
    );
    let job = ConfigFile::parse(&text, "history.toml")
        .unwrap()
        .validate(work.path())
        .unwrap();
    let stores = Stores::new(job.aws.clone());
    let location = Location::parse(root, work.path()).unwrap();
    let counter = CountingStore::new(stores.open(&location).unwrap());
    let lake = Lake::new(Arc::new(counter.clone()));
    let table = &job.tables[0];
    let mut r = gen::Seeded(7);
    let mut done = 0;
    println!("| runs committed | no-op run | requests (reads / writes / deletes / lists) | reports replayed |");
    println!("|---|---|---|---|");
    for n in sizes {
        while done < n {
            let path = inputs.join(format!("E1.2024-01-01-00.{done:06}"));
            let (a, b) = (gen::client_ip(&mut r), gen::client_ip(&mut r));
            let row = gen::cloudfront_row("2024-01-01", "00:00:01", "1", &a, &b, done, 443);
            std::fs::write(&path, format!("#Version: 1.0\n{}\n{row}", gen::FIELDS)).unwrap();
            let s = run_table_on(&job, &stores, &lake, table, &NoProgress).unwrap();
            assert_eq!(s.inputs_consumed, 1, "{s:?}");
            std::fs::remove_file(Path::new(&path)).unwrap();
            done += 1;
        }
        let before = counter.requests();
        let started = Instant::now();
        let s = run_table_on(&job, &stores, &lake, table, &NoProgress).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let q = counter.requests() - before;
        assert_eq!(s.run_id, None);
        println!(
            "| {n} | {:.1} ms | {} ({} / {} / {} / {}) | {} |",
            seconds * 1000.0,
            q.total(),
            q.reads,
            q.writes,
            q.deletes,
            q.lists,
            s.ledger.replayed
        );
    }
}
