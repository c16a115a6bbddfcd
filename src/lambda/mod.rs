//! The Lambda for small loads (feature `lambda`; the `bootstrap` binary runs it): the same
//! pipeline as `citrine run`, fed by S3 ObjectCreated events instead of listings.
//!
//! - S3 events arrive directly or inside SQS messages. With SQS, a message whose objects could
//!   not be committed is reported as a batch item failure, so only it is retried.
//! - Keys are URL-decoded. Keys ending in `/` (folder placeholders), objects gone since the
//!   event, objects no table's input pattern matches (the lake's own objects among them), and
//!   S3 test events are skipped with a log line.
//! - The objects of one invocation are one run per table, with one marker each; the ledger
//!   still drops objects already consumed, so a redelivered event changes nothing.
//! - An event for a `.manifest` object of the lake loads that marker into Redshift, once
//!   (`citrine_loads` guards it), when `[redshift]` is configured.
//! - A table another run holds is waited for, and a batch whose table stays locked is sent
//!   again with a delay rather than returned to the queue ([`requeue`]): lock conflicts never
//!   park an input, nor carry it into the dead-letter queue.
//!
//! Configuration comes from the environment: `CITRINE_CONFIG_TOML` (the whole `citrine.toml`
//! as text), or `CITRINE_CONFIG` (a path, or an `s3://bucket/key` object for a config larger
//! than a Lambda's environment holds; default `citrine.toml` in the working directory, i.e.
//! in the deployment package). The clients are built once per container, in
//! [`LambdaEnv::from_env`].

pub mod requeue;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::Job;
use crate::error::{Error, Result};
use crate::lake::{Lake, MANIFEST_SUFFIX};
use crate::read::pattern::MatchedInput;
use crate::redshift::{load_run, parse_marker, DataApi, LoadOutcome};
use crate::run::{run_inputs, NoProgress, TableSummary};
use crate::store::Stores;

/// What a container keeps between invocations: the job and its clients.
#[derive(Debug)]
pub struct LambdaEnv {
    job: Job,
    stores: Stores,
    lake: Lake,
    redshift: Option<DataApi>,
    queues: requeue::Queues,
}

/// A table's objects of one invocation, each with the index of the pattern that matched it,
/// and the SQS message each came in (`None` when direct).
type TableObjects = (Vec<(MatchedInput, usize)>, Vec<Option<String>>);

/// One object named by an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventObject {
    /// Bucket.
    pub bucket: String,
    /// Key, URL-decoded.
    pub key: String,
}

/// What one invocation did.
#[derive(Debug, Default, Serialize)]
pub struct Invocation {
    /// Table runs (one per table with new objects).
    pub runs: Vec<TableSummary>,
    /// Markers loaded or found already loaded.
    pub loads: Vec<LoadOutcome>,
    /// Objects skipped, with why.
    pub skipped: Vec<String>,
    /// Tries of a table run that found the table locked by another run (another invocation,
    /// a sharded run) and waited.
    pub lock_waits: usize,
    /// Table runs whose table stayed locked past the wait: their messages were sent again.
    pub lock_conflicts: usize,
    /// Messages sent to their queue again, with a delay, because their table stayed locked.
    pub requeued: usize,
    /// SQS message ids to retry.
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<Value>,
}

impl LambdaEnv {
    /// The lake this environment writes.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Build from the config `CITRINE_CONFIG_TOML` holds, or the file or `s3://` object
    /// `CITRINE_CONFIG` names (default `citrine.toml` in the working folder, the package).
    pub fn from_env() -> Result<Self> {
        Self::new(crate::config_source::ConfigSource::resolve(None).load()?)
    }

    /// Build for `job` (fetching its hash key's secret, if it names one).
    pub fn new(mut job: Job) -> Result<Self> {
        let stores = Stores::new(job.aws.clone());
        crate::privacy::resolve_hash_key(&mut job, &stores)?;
        let lake = Lake::open(&job, &stores)?;
        let redshift = job.redshift.clone().map(|r| DataApi::new(stores.aws(), r));
        let queues = requeue::Queues::new(stores.aws());
        Ok(Self {
            job,
            stores,
            lake,
            redshift,
            queues,
        })
    }
}

/// Decode an S3 event key: `+` is a space, `%XX` a byte.
pub fn decode_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The objects of an S3 event (`Records` with `eventSource` `aws:s3`); an S3 test event gives
/// none. `Err` when the JSON is not an S3 event at all.
pub fn s3_objects(event: &Value) -> std::result::Result<Vec<EventObject>, String> {
    if event.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        tracing::info!("S3 test event; nothing to do");
        return Ok(Vec::new());
    }
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or("not an S3 event: no Records")?;
    let mut out = Vec::new();
    for r in records {
        let source = r.get("eventSource").and_then(Value::as_str).unwrap_or("");
        if source != "aws:s3" {
            return Err(format!("not an S3 record: eventSource {source:?}"));
        }
        let name = r.get("eventName").and_then(Value::as_str).unwrap_or("");
        if !name.starts_with("ObjectCreated:") {
            tracing::info!(event = name, "not an ObjectCreated event; skipped");
            continue;
        }
        let bucket = r.pointer("/s3/bucket/name").and_then(Value::as_str);
        let key = r.pointer("/s3/object/key").and_then(Value::as_str);
        match (bucket, key) {
            (Some(b), Some(k)) => out.push(EventObject {
                bucket: b.to_owned(),
                key: decode_key(k),
            }),
            _ => return Err("an S3 record without s3.bucket.name or s3.object.key".into()),
        }
    }
    Ok(out)
}

/// The CloudWatch namespace of the Lambda's metrics.
pub const METRICS_NAMESPACE: &str = "citrine";

/// A table run's summary in CloudWatch Embedded Metric Format: one JSON object that CloudWatch
/// Logs turns into metrics (rows in, written and rejected, inputs failed, bytes in and out,
/// seconds), per table and over all tables. `timestamp_ms` is the time of the metrics.
pub fn metrics(summary: &TableSummary, timestamp_ms: u64) -> Value {
    let metrics: Vec<Value> = [
        ("RowsIn", "Count"),
        ("RowsWritten", "Count"),
        ("RowsRejected", "Count"),
        ("InputsConsumed", "Count"),
        ("InputsFailed", "Count"),
        ("BytesIn", "Bytes"),
        ("BytesOut", "Bytes"),
        ("Seconds", "Seconds"),
    ]
    .iter()
    .map(|(name, unit)| serde_json::json!({ "Name": name, "Unit": unit }))
    .collect();
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                // Per table, and over every table (what the template's alarms watch).
                "Dimensions": [["table"], []],
                "Metrics": metrics,
            }],
        },
        "table": summary.table,
        "run_id": summary.run_id,
        "RowsIn": summary.rows_read,
        "RowsWritten": summary.rows_written,
        "RowsRejected": summary.rows_rejected,
        "InputsConsumed": summary.inputs_consumed,
        "InputsFailed": summary.inputs_failed.len(),
        "BytesIn": summary.bytes_in,
        "BytesOut": summary.bytes_out,
        "Seconds": summary.seconds,
    })
}

/// Print `summary`'s [`metrics`] as one line on standard output (the function's log),
/// through the address scrubber as every line citrine emits.
fn emit_metrics(summary: &TableSummary) {
    use std::io::Write as _;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut out = crate::logs::ScrubLines::new(std::io::stdout());
    let _ = writeln!(out, "{}", metrics(summary, now));
}

/// An SQS message of the event: its body and queue, to send it again.
struct SqsMessage {
    body: String,
    queue_arn: String,
}

/// Handle one invocation's event (S3, SQS of S3, or an S3 test event), waiting for a locked
/// table up to `[lambda] lock_wait_secs`. Each table's run logs its summary, and its
/// [`metrics`] as one Embedded Metric Format line.
pub fn handle(env: &LambdaEnv, event: &Value) -> Result<Invocation> {
    handle_until(env, event, None)
}

/// [`handle`] in an invocation with `remaining` time left: a locked table is waited for at
/// most half of it ([`requeue::wait_bound`]).
pub fn handle_until(
    env: &LambdaEnv,
    event: &Value,
    remaining: Option<Duration>,
) -> Result<Invocation> {
    let started = Instant::now();
    let records = event.get("Records").and_then(Value::as_array);
    let is_sqs = records.is_some_and(|r| {
        r.first()
            .and_then(|x| x.get("eventSource"))
            .and_then(Value::as_str)
            == Some("aws:sqs")
    });
    let mut inv = Invocation::default();
    // Objects with the SQS message they came in (None when direct).
    let mut objects: Vec<(EventObject, Option<String>)> = Vec::new();
    let mut messages: BTreeMap<String, SqsMessage> = BTreeMap::new();
    if is_sqs {
        for m in records.into_iter().flatten() {
            let id = m
                .get("messageId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let body = m.get("body").and_then(Value::as_str).unwrap_or("");
            messages.insert(
                id.clone(),
                SqsMessage {
                    body: body.to_owned(),
                    queue_arn: m
                        .get("eventSourceARN")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                },
            );
            let parsed = serde_json::from_str::<Value>(body)
                .map_err(|e| e.to_string())
                .and_then(|v| s3_objects(&v));
            match parsed {
                Ok(objs) => objects.extend(objs.into_iter().map(|o| (o, Some(id.clone())))),
                Err(e) => {
                    tracing::error!(message = %id, error = %e, "an SQS message that is not an S3 event");
                    inv.retry(&id);
                }
            }
        }
    } else {
        let objs = s3_objects(event).map_err(|message| Error::Corrupt {
            path: "event".into(),
            message,
        })?;
        objects.extend(objs.into_iter().map(|o| (o, None)));
    }

    let mut per_table: BTreeMap<usize, TableObjects> = BTreeMap::new();
    let mut markers: Vec<(String, Option<String>)> = Vec::new();
    for (o, message) in objects {
        let url = format!("s3://{}/{}", o.bucket, o.key);
        if o.key.ends_with('/') {
            tracing::info!(object = %url, "a folder key; skipped");
            inv.skipped.push(format!("{url}: folder key"));
            continue;
        }
        if o.key.ends_with(MANIFEST_SUFFIX) {
            markers.push((url, message));
            continue;
        }
        let mut matched = None;
        'tables: for (i, table) in env.job.tables.iter().enumerate() {
            for (p, pattern) in table.inputs.iter().enumerate() {
                if let Some(m) = pattern.match_object(&env.stores, &o.bucket, &o.key)? {
                    matched = Some((i, (m, p)));
                    break 'tables;
                }
            }
        }
        match matched {
            Some((i, m)) => {
                let entry = per_table.entry(i).or_default();
                entry.0.push(m);
                entry.1.push(message);
            }
            None => {
                tracing::info!(object = %url, "no table's inputs match it, or it is gone; skipped");
                inv.skipped.push(format!("{url}: not an input (or gone)"));
            }
        }
    }

    let mut first_error = None;
    let wait = requeue::wait_bound(
        Duration::from_secs(env.job.lambda.lock_wait_secs),
        remaining,
    );
    let mut sent_again = BTreeSet::new();
    for (i, (inputs, batch)) in per_table {
        let table = &env.job.tables[i];
        let message_of: BTreeMap<String, Option<String>> = inputs
            .iter()
            .map(|(m, _)| m.listed.uri.clone())
            .zip(batch.iter().cloned())
            .collect();
        // A table another run holds is tried again until the wait is over.
        let outcome = loop {
            let pause = requeue::pause(&format!("{}{:?}", table.name, Instant::now()));
            match run_inputs(&env.job, &env.stores, table, inputs.clone(), &NoProgress) {
                Err(Error::Locked { .. }) if started.elapsed() + pause < wait => {
                    inv.lock_waits += 1;
                    std::thread::sleep(pause);
                }
                other => break other,
            }
        };
        match outcome {
            Ok(summary) => {
                tracing::info!(summary = %summary, "run");
                emit_metrics(&summary);
                // An input that failed is left unconsumed: its message goes back to the
                // queue, so SQS retries it (and parks it in the dead-letter queue after
                // maxReceiveCount) while the rest of the batch is done.
                if is_sqs {
                    for f in &summary.inputs_failed {
                        if let Some(Some(id)) = message_of.get(&f.uri) {
                            inv.retry(id);
                        }
                    }
                }
                inv.runs.push(summary);
            }
            Err(Error::Locked { holder, .. }) if is_sqs => {
                // Held past the wait (a long run, a planned sharded run): each message goes to
                // its queue again with a delay, a fresh delivery; it is never parked.
                tracing::info!(table = %table.name, %holder, "table still locked; the batch's messages are sent again with a delay");
                inv.lock_conflicts += 1;
                for id in batch.iter().flatten() {
                    if !sent_again.insert(id.clone()) {
                        continue;
                    }
                    let Some(m) = messages.get(id) else { continue };
                    let delay = requeue::delay(
                        Duration::from_secs(env.job.lambda.requeue_delay_secs),
                        holder.planned,
                        id,
                    );
                    match env.queues.send_again(&m.queue_arn, &m.body, delay) {
                        Ok(()) => inv.requeued += 1,
                        Err(e) => {
                            tracing::warn!(message = %id, error = %e, "could not send the message again; it returns to the queue");
                            inv.retry(id);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(table = %table.name, error = %e, "run failed");
                if is_sqs {
                    inv.retry_all(&batch);
                }
                first_error.get_or_insert(e);
            }
        }
    }
    for (url, message) in markers {
        let Some(api) = &env.redshift else {
            tracing::info!(marker = %url, "no [redshift] configured; marker skipped");
            inv.skipped.push(format!("{url}: no [redshift] configured"));
            continue;
        };
        let loaded =
            parse_marker(&env.lake, &url).and_then(|(t, r)| load_run(api, &env.lake, &t, &r));
        match loaded {
            Ok(outcome) => inv.loads.push(outcome),
            Err(e) => {
                tracing::error!(marker = %url, error = %e, "load failed");
                if is_sqs {
                    inv.retry_all(&[message]);
                }
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        // Direct invocations fail whole (Lambda retries them; reruns are exactly once).
        Some(e) if !is_sqs => Err(e),
        _ => Ok(inv),
    }
}

impl Invocation {
    /// Return the SQS message `id` to the queue (once, however many of its objects failed).
    fn retry(&mut self, id: &str) {
        let item = json!({ "itemIdentifier": id });
        if !self.batch_item_failures.contains(&item) {
            self.batch_item_failures.push(item);
        }
    }

    /// Return every SQS message of `messages` to the queue.
    fn retry_all(&mut self, messages: &[Option<String>]) {
        for id in messages.iter().flatten() {
            self.retry(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(decode_key("logs/acme/a+b%3Dc.gz"), "logs/acme/a b=c.gz");
        assert_eq!(decode_key("caf%C3%A9/x"), "café/x");
        assert_eq!(decode_key("100%"), "100%");
        assert_eq!(decode_key("bad%zz"), "bad%zz");
    }

    #[test]
    fn s3_records_give_their_objects() {
        let event = json!({"Records": [
            {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
             "s3": {"bucket": {"name": "b"}, "object": {"key": "logs/a+b.gz", "size": 1}}},
            {"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
             "s3": {"bucket": {"name": "b"}, "object": {"key": "gone"}}}
        ]});
        assert_eq!(
            s3_objects(&event).unwrap(),
            [EventObject {
                bucket: "b".into(),
                key: "logs/a b.gz".into()
            }]
        );
        assert!(s3_objects(&json!({"Event": "s3:TestEvent"}))
            .unwrap()
            .is_empty());
        assert!(s3_objects(&json!({"detail": {}})).is_err());
    }

    #[test]
    fn a_run_summary_is_one_embedded_metric_format_line() {
        let summary = TableSummary {
            table: "cloudfront_logs".into(),
            run_id: Some("20261127T000000000Z-00000000".into()),
            rows_read: 120,
            rows_written: 118,
            rows_rejected: 2,
            inputs_consumed: 3,
            bytes_in: 4096,
            bytes_out: 2048,
            seconds: 0.5,
            ..Default::default()
        };
        let line = metrics(&summary, 1_764_201_600_000);
        insta::assert_snapshot!(serde_json::to_string_pretty(&line).unwrap());
        // Every metric named in the directive is a member of the object.
        for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
        {
            assert!(line[m["Name"].as_str().unwrap()].is_number(), "{m}");
        }
    }
}
