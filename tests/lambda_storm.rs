//! The Lambda under a storm, against the local S3 + SQS server: 60 objects whose S3 event
//! messages (30% of them delivered twice) flow through a queue with a dead-letter queue after
//! 5 receives, drained by 4 concurrent "containers" that each receive a batch, invoke the
//! handler and delete what it did not return, as Lambda's event source mapping does; one
//! container dies once with a batch in hand (its messages come back after the visibility
//! timeout), and a run killed earlier left the table locked for one short lease. Timings are
//! compressed (a 10 s visibility timeout, a 4 s lease, a 3 s wait for the lock).
//!
//! Must hold: no message reaches the dead-letter queue (lock conflicts are waited for, or the
//! batch is sent again with a delay and a fresh receive count); every object is committed
//! exactly once (one report consumes it; every row once in the lake); and the time from an
//! object's notification to the commit of the run that consumed it is bounded. The test prints
//! its measurement (invocations, duplicates, waits, conflicts, resends, p50/p95/max latency),
//! which BENCHMARKS.md quotes.
#![cfg(feature = "lambda")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use citrine::config::ConfigFile;
use citrine::lake::Lake;
use citrine::lambda::{handle_until, LambdaEnv};
use common::gen::{cloudfront, Shape};
use serde_json::{json, Value};

const TABLE: &str = "cloudfront_logs";
const CONTAINERS: usize = 4;
const VISIBILITY_S: i32 = 10;
const MAX_RECEIVES: usize = 5;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    citrine::aws::block_on(f)
}

/// The S3 notification of `key` in `bucket`, as S3 writes it into a queue message.
fn s3_event(bucket: &str, key: &str, size: u64) -> String {
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-12-06T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "citrine-inputs",
               "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": encoded, "size": size, "sequencer": "00"}}}]})
    .to_string()
}

/// What the storm measured.
#[derive(Debug, Default)]
struct Tally {
    invocations: AtomicUsize,
    messages: AtomicUsize,
    lock_waits: AtomicUsize,
    lock_conflicts: AtomicUsize,
    requeued: AtomicUsize,
    returned: AtomicUsize,
    dropped: AtomicUsize,
}

#[test]
fn a_storm_of_duplicate_concurrent_and_redelivered_messages_commits_each_object_once() {
    let Some(e) = common::aws::endpoint() else {
        return;
    };
    // The only test in this binary: it owns the process environment, as a container does.
    for (k, v) in e.env() {
        std::env::set_var(k, v);
    }
    let dir = tempfile::tempdir().unwrap();
    let bucket = e.fresh_bucket("storm");
    let g = cloudfront(
        dir.path(),
        &Shape {
            seed: 71,
            customers: &["acme", "globex", "initech", "umbrella"],
            days: 3,
            files_per_day: 5,
            rows_per_file: 20,
            bad_every: 0,
            all_gzip: true,
        },
    );
    assert_eq!(g.files, 60);
    e.client(&[
        "upload",
        &bucket,
        "logs",
        &dir.path().join("logs").display().to_string(),
    ]);
    let objects: Vec<(String, u64)> = e
        .client(&["list", &bucket, "logs/"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["key"].as_str().unwrap().to_owned(),
                o["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(objects.len(), 60);

    // The queue and its dead-letter queue.
    let sqs = aws_sdk_sqs::Client::new(&block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest()).load(),
    ));
    let dlq_url = block_on(
        sqs.create_queue()
            .queue_name(format!("{bucket}-dlq"))
            .send(),
    )
    .unwrap()
    .queue_url
    .unwrap();
    let dlq_arn = format!("arn:aws:sqs:us-east-1:123456789012:{bucket}-dlq");
    let queue_url = block_on(
        sqs.create_queue()
            .queue_name(&bucket)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                VISIBILITY_S.to_string(),
            )
            .attributes(
                QueueAttributeName::RedrivePolicy,
                json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES})
                    .to_string(),
            )
            .send(),
    )
    .unwrap()
    .queue_url
    .unwrap();
    let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{bucket}");

    let config = format!(
        "[lake]\nroot = \"s3://{bucket}/lake\"\n[run]\nthreads = 1\nlock_lease_secs = 4\n[lambda]\nlock_wait_secs = 3\nrequeue_delay_secs = 2\n\n[[table]]\nname = \"{TABLE}\"\nformat = \"cloudfront\"\ninputs = [\"s3://{bucket}/logs/cloudfront/{{customer}}/\"]\n"
    );
    let job = || {
        ConfigFile::parse(&config, "storm")
            .unwrap()
            .validate(Path::new("."))
            .unwrap()
    };
    let lake = LambdaEnv::new(job()).unwrap().lake().clone();
    // A run killed earlier: the table stays locked for one (short) lease, and its journal
    // names a data file that the next run's recovery deletes.
    leave_a_killed_runs_lock(&lake);

    // The notifications: each object once, a third of them twice, sent over 3 s.
    let sent_at: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let duplicates = objects.len() * 3 / 10;
    let mut deliveries: Vec<usize> = (0..objects.len()).collect();
    deliveries.extend((0..duplicates).map(|i| i * objects.len() / duplicates));
    let storm_start = Instant::now();
    let sender = {
        let (sqs, queue_url, bucket, sent_at) = (
            sqs.clone(),
            queue_url.clone(),
            bucket.clone(),
            sent_at.clone(),
        );
        let objects = objects.clone();
        std::thread::spawn(move || {
            for (n, i) in deliveries.iter().enumerate() {
                let (key, size) = &objects[*i];
                sent_at
                    .lock()
                    .unwrap()
                    .entry(format!("s3://{bucket}/{key}"))
                    .or_insert_with(Instant::now);
                block_on(
                    sqs.send_message()
                        .queue_url(&queue_url)
                        .message_body(s3_event(&bucket, key, *size))
                        .send(),
                )
                .unwrap();
                if n % 4 == 3 {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
    };

    // The containers, each with its own environment, as Lambda runs them.
    let tally = Arc::new(Tally::default());
    let committed: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let crashed = Arc::new(AtomicBool::new(false));
    let containers: Vec<_> = (0..CONTAINERS)
        .map(|c| {
            let (sqs, queue_url, queue_arn) = (sqs.clone(), queue_url.clone(), queue_arn.clone());
            let (tally, committed, done, crashed) = (
                tally.clone(),
                committed.clone(),
                done.clone(),
                crashed.clone(),
            );
            let env = LambdaEnv::new(job()).unwrap();
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let got = block_on(
                        sqs.receive_message()
                            .queue_url(&queue_url)
                            .max_number_of_messages(10)
                            .wait_time_seconds(1)
                            .message_system_attribute_names(MessageSystemAttributeName::All)
                            .send(),
                    )
                    .unwrap();
                    let messages = got.messages.unwrap_or_default();
                    if messages.is_empty() {
                        continue;
                    }
                    // One container dies once with its batch in hand: nothing is deleted, and
                    // the messages come back after the visibility timeout.
                    if c == 1 && !crashed.swap(true, Ordering::SeqCst) {
                        tally.dropped.fetch_add(messages.len(), Ordering::SeqCst);
                        continue;
                    }
                    let records: Vec<Value> = messages
                        .iter()
                        .map(|m| {
                            json!({
                                "messageId": m.message_id(),
                                "receiptHandle": m.receipt_handle(),
                                "body": m.body(),
                                "attributes": {},
                                "eventSource": "aws:sqs",
                                "eventSourceARN": queue_arn,
                                "awsRegion": "us-east-1"
                            })
                        })
                        .collect();
                    tally.invocations.fetch_add(1, Ordering::SeqCst);
                    tally.messages.fetch_add(messages.len(), Ordering::SeqCst);
                    let out = handle_until(
                        &env,
                        &json!({ "Records": records }),
                        Some(Duration::from_secs(60)),
                    )
                    .unwrap();
                    let now = Instant::now();
                    tally.lock_waits.fetch_add(out.lock_waits, Ordering::SeqCst);
                    tally
                        .lock_conflicts
                        .fetch_add(out.lock_conflicts, Ordering::SeqCst);
                    tally.requeued.fetch_add(out.requeued, Ordering::SeqCst);
                    tally
                        .returned
                        .fetch_add(out.batch_item_failures.len(), Ordering::SeqCst);
                    for run in &out.runs {
                        if let Some(id) = &run.run_id {
                            for input in env.lake().report(TABLE, id).unwrap().inputs {
                                committed.lock().unwrap().push((input.uri, now));
                            }
                        }
                    }
                    let failed: BTreeSet<&str> = out
                        .batch_item_failures
                        .iter()
                        .filter_map(|f| f["itemIdentifier"].as_str())
                        .collect();
                    for m in &messages {
                        if !failed.contains(m.message_id().unwrap_or_default()) {
                            block_on(
                                sqs.delete_message()
                                    .queue_url(&queue_url)
                                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                                    .send(),
                            )
                            .unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    sender.join().unwrap();
    // Drained: nothing visible, in flight or delayed for a while.
    let count = |url: &str| -> usize {
        let attrs = block_on(
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::All)
                .send(),
        )
        .unwrap()
        .attributes
        .unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .map(|a| {
            attrs
                .get(a)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .sum()
    };
    let mut idle = 0;
    while idle < 3 {
        assert!(
            storm_start.elapsed() < Duration::from_secs(240),
            "the storm never drained"
        );
        std::thread::sleep(Duration::from_secs(1));
        idle = if count(&queue_url) == 0 { idle + 1 } else { 0 };
    }
    done.store(true, Ordering::SeqCst);
    for c in containers {
        c.join().unwrap();
    }

    // Nothing went to the dead-letter queue.
    assert_eq!(count(&dlq_url), 0, "messages in the dead-letter queue");
    // Every object committed exactly once: in exactly one committed run's report.
    let committed = committed.lock().unwrap().clone();
    let mut runs_per_object: BTreeMap<&str, usize> = BTreeMap::new();
    for (uri, _) in &committed {
        *runs_per_object.entry(uri.as_str()).or_default() += 1;
    }
    assert_eq!(runs_per_object.len(), 60, "every object committed");
    assert!(
        runs_per_object.values().all(|&n| n == 1),
        "each object in exactly one run: {runs_per_object:?}"
    );
    let ledger = citrine::ledger::Ledger::load(&lake, TABLE).unwrap();
    assert_eq!(ledger.len(), 60);
    let rows: BTreeMap<String, u64> =
        serde_json::from_value(e.client(&["counts", &bucket, &format!("lake/data/{TABLE}")]))
            .unwrap();
    assert_eq!(rows, g.expected, "every row once");
    let sources: BTreeMap<String, u64> = serde_json::from_value(e.client(&[
        "source-counts",
        &bucket,
        &format!("lake/data/{TABLE}"),
    ]))
    .unwrap();
    assert_eq!(sources.len(), 60);
    assert!(sources.values().all(|&n| n == 20), "{sources:?}");

    // Latency from an object's first notification to the commit that consumed it.
    let sent_at = sent_at.lock().unwrap();
    let mut latencies: Vec<f64> = committed
        .iter()
        .map(|(uri, at)| at.duration_since(sent_at[uri]).as_secs_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let t = &tally;
    println!(
        "storm: {} objects, {} deliveries ({} duplicates), {} containers; {} invocations of {} messages ({} dropped by a crash); {} waits for the lock, {} tables still locked after the wait, {} messages sent again, {} returned; 0 in the dead-letter queue; notification to commit p50 {:.2} s, p95 {:.2} s, max {:.2} s",
        objects.len(),
        objects.len() + duplicates,
        duplicates,
        CONTAINERS,
        t.invocations.load(Ordering::SeqCst),
        t.messages.load(Ordering::SeqCst),
        t.dropped.load(Ordering::SeqCst),
        t.lock_waits.load(Ordering::SeqCst),
        t.lock_conflicts.load(Ordering::SeqCst),
        t.requeued.load(Ordering::SeqCst),
        t.returned.load(Ordering::SeqCst),
        pct(0.5),
        pct(0.95),
        latencies[latencies.len() - 1],
    );
    // Bounded: the crash's visibility timeout, a lease and the waits, with room for a slow
    // machine.
    assert!(pct(0.95) < 60.0, "p95 {:.1} s", pct(0.95));
}

/// A lock (and a journal naming one data file) that a run killed on another machine left:
/// taken over once its 4 s lease has passed.
fn leave_a_killed_runs_lock(lake: &Lake) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let store = lake.store();
    store
        .write(
            &lake.lock_key(TABLE),
            json!({"run_id": "20000101T000000000Z-killed00", "pid": 1, "host": "another-sandbox", "expires_ms": now_ms + 4000, "command": "run"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    let journal =
        citrine::run::journal::Journal::start(lake, TABLE, "20000101T000000000Z-killed00").unwrap();
    let orphan = format!(
        "data/{TABLE}/customer=acme/dt=2024-01-01/part-20000101T000000000Z-killed00-00000.parquet"
    );
    journal.file(&orphan).unwrap();
    store.write(&orphan, b"cut short").unwrap();
}
