//! The Lambda binary (`provided.al2023`): S3 / SQS events into the lake, markers into
//! Redshift. See `citrine::lambda` and docs/guide.md, "The Lambda".

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

fn main() -> Result<(), Error> {
    citrine::malloc::keep_freed_blocks();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CITRINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        // Every log line passes the address scrubber, as the CLI's do.
        .with_writer(|| citrine::logs::ScrubLines::new(std::io::stdout()))
        .init();
    // Built once per container: the job, the AWS config and its clients.
    let env = Arc::new(citrine::lambda::LambdaEnv::from_env()?);
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let env = env.clone();
        async move {
            let payload = event.payload;
            // What is left of the invocation bounds how long a locked table is waited for.
            let deadline =
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(event.context.deadline);
            let remaining = deadline.duration_since(std::time::SystemTime::now()).ok();
            // The pipeline is synchronous (rayon and plain threads): off the async workers.
            let done = tokio::task::spawn_blocking(move || {
                citrine::lambda::handle_until(&env, &payload, remaining)
            });
            let invocation = done.await??;
            Ok::<Value, Error>(serde_json::to_value(invocation)?)
        }
    });
    citrine::aws::runtime().block_on(lambda_runtime::run(handler))
}
