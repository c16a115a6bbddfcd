//! AWS plumbing shared by the S3 store, the Glue catalog and the Redshift Data API: one tokio runtime for the async
//! clients, the SDK configuration from the standard AWS chain (environment, profiles and SSO,
//! ECS / Batch task roles, IMDSv2, web identity), and endpoint resolution that honours
//! `AWS_ENDPOINT_URL` and the service-specific `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL_GLUE`
//! the way the AWS CLI does.
//!
//! Nothing here contacts AWS until an `s3://` location or the Glue catalog is first used, so a
//! local run never loads credentials.

//!
//! - [`config`]: the `[aws]` options, endpoint resolution, and the context that builds the SDK
//!   configuration and the clients (object_store S3, Glue) from them;
//! - [`credentials`]: the SDK's credential chain, cached, for object_store;
//! - [`access_point`]: S3 access points (ARNs and aliases) as the bucket of a location.
//!
//! This module depends on no other part of citrine but its errors; [`crate::store`] builds on
//! it, never the reverse.

pub mod access_point;
pub mod config;
pub mod credentials;

use std::sync::OnceLock;

pub use self::config::{env_endpoint, AwsContext, AwsOptions, DEFAULT_S3_PART_BYTES};

/// An AWS SDK error shown with its whole context (the SDK's own `Display` says only "service
/// error"), the error itself kept as the source.
#[derive(Debug)]
pub struct SdkFailure(crate::error::BoxError);

impl SdkFailure {
    /// Wrap an SDK error, boxed for one of citrine's errors.
    pub fn boxed(e: impl std::error::Error + Send + Sync + 'static) -> crate::error::BoxError {
        Box::new(Self(Box::new(e)))
    }
}

impl std::fmt::Display for SdkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", aws_sdk_glue::error::DisplayErrorContext(&*self.0))
    }
}

impl std::error::Error for SdkFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The runtime every async AWS call runs on (two worker threads; started on first use).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("citrine-io")
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Run `future` to completion on [`runtime`] from synchronous code. Must not be called from
/// inside an async task (the pipeline calls it from rayon workers and plain threads).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    runtime().block_on(future)
}
