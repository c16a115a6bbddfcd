//! A batch whose table another run holds is never parked: the invocation waits for the lock
//! (bounded by [`wait_bound`]), and when the table is still held it sends each of the batch's
//! messages to its queue again, with a jittered delay ([`delay`]), and lets the original go.
//! The copy starts with a fresh receive count, so lock conflicts, however long a table is
//! held, never carry an input into the dead-letter queue; and since the ledger drops what a
//! run consumed, a copy of an input that was committed meanwhile changes nothing.
//!
//! Where the copy cannot be sent, the message goes back the old way (a batch item failure).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use crate::aws::{block_on, AwsContext, SdkFailure};
use crate::error::{Error, Result};

/// SQS's longest message delay.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// How long an invocation may wait for a locked table: `configured`, and at most half of
/// what is left of the invocation (`remaining`), so the run it then makes has time to finish.
pub fn wait_bound(configured: Duration, remaining: Option<Duration>) -> Duration {
    match remaining {
        Some(left) => configured.min(left / 2),
        None => configured,
    }
}

/// The delay of a message sent again: `base` jittered to between half and one and a half of
/// it (so copies of one batch, and batches of concurrent invocations, spread out), or SQS's
/// most when a planned sharded run holds the table (it holds it for as long as its shards
/// take). `salt` varies the jitter.
pub fn delay(base: Duration, planned_holder: bool, salt: &str) -> Duration {
    if planned_holder {
        return MAX_DELAY;
    }
    let unit = (RandomState::new().hash_one(salt) % 1000) as f64 / 1000.0;
    base.mul_f64(0.5 + unit).min(MAX_DELAY)
}

/// The pause between two tries of a locked table: 200 ms to 1 s, jittered.
pub fn pause(salt: &str) -> Duration {
    Duration::from_millis(200 + RandomState::new().hash_one(salt) % 800)
}

/// The SQS queues an invocation's messages came from, to send copies to.
#[derive(Debug)]
pub struct Queues {
    client: aws_sdk_sqs::Client,
    urls: Mutex<HashMap<String, String>>,
}

impl Queues {
    /// Queues reached through `aws` (its endpoints, region and credentials).
    pub fn new(aws: &AwsContext) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(aws.sdk()),
            urls: Mutex::default(),
        }
    }

    /// Send `body` to the queue of `queue_arn` again, delivered after `delay`.
    pub fn send_again(&self, queue_arn: &str, body: &str, delay: Duration) -> Result<()> {
        let url = self.url(queue_arn)?;
        let seconds = delay.min(MAX_DELAY).as_secs() as i32;
        block_on(
            self.client
                .send_message()
                .queue_url(&url)
                .message_body(body)
                .delay_seconds(seconds)
                .send(),
        )
        .map_err(|e| sqs_error(queue_arn, e))?;
        Ok(())
    }

    /// The URL of the queue `arn:<partition>:sqs:<region>:<account>:<name>`, asked once.
    fn url(&self, arn: &str) -> Result<String> {
        if let Some(url) = self.urls.lock().expect("queue urls").get(arn) {
            return Ok(url.clone());
        }
        let parts: Vec<&str> = arn.split(':').collect();
        let (account, name) = match parts.as_slice() {
            [_, _, "sqs", _, account, name] => (*account, *name),
            _ => {
                return Err(Error::Corrupt {
                    path: "event".into(),
                    message: format!("not an SQS queue ARN: {arn:?}"),
                })
            }
        };
        let found = block_on(
            self.client
                .get_queue_url()
                .queue_name(name)
                .queue_owner_aws_account_id(account)
                .send(),
        )
        .map_err(|e| sqs_error(arn, e))?;
        let url = found.queue_url().unwrap_or_default().to_owned();
        self.urls
            .lock()
            .expect("queue urls")
            .insert(arn.to_owned(), url.clone());
        Ok(url)
    }
}

fn sqs_error(queue: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Store {
        url: queue.to_owned(),
        source: SdkFailure::boxed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_keeps_half_the_invocation_for_the_run() {
        let two_min = Duration::from_secs(120);
        assert_eq!(wait_bound(two_min, None), two_min);
        assert_eq!(wait_bound(two_min, Some(Duration::from_secs(900))), two_min);
        assert_eq!(
            wait_bound(two_min, Some(Duration::from_secs(60))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn delays_are_jittered_within_half_to_one_and_a_half() {
        let base = Duration::from_secs(60);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let d = delay(base, false, &format!("m{i}"));
            assert!(
                d >= Duration::from_secs(30) && d < Duration::from_secs(90),
                "{d:?}"
            );
            seen.insert(d.as_secs());
        }
        assert!(seen.len() > 20, "spread out: {seen:?}");
        assert_eq!(delay(base, true, "m"), MAX_DELAY);
        assert!(delay(Duration::from_secs(3600), false, "m") <= MAX_DELAY);
        let p = pause("x");
        assert!(p >= Duration::from_millis(200) && p < Duration::from_secs(1));
    }
}
