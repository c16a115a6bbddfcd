//! AWS plumbing shared by the S3 store and the Glue catalog: one tokio runtime for the async
//! clients, the SDK configuration from the standard AWS chain (environment, profiles and SSO,
//! ECS / Batch task roles, IMDSv2, web identity), and endpoint resolution that honours
//! `AWS_ENDPOINT_URL` and the service-specific `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL_GLUE`
//! the way the AWS CLI does.
//!
//! Nothing here contacts AWS until an `s3://` location or the Glue catalog is first used, so a
//! local run never loads credentials.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::{BackoffConfig, ClientOptions, CredentialProvider, ObjectStore, RetryConfig};

use crate::error::{Error, Result};

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

/// `[aws]` settings; every field falls back to the standard AWS chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsOptions {
    /// Region (else `AWS_REGION`, the profile, IMDS; `us-east-1` for S3 when none is found).
    pub region: Option<String>,
    /// Named profile (else `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// S3 endpoint (else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`).
    pub s3_endpoint: Option<String>,
    /// Glue endpoint (else `AWS_ENDPOINT_URL_GLUE`, else `AWS_ENDPOINT_URL`).
    pub glue_endpoint: Option<String>,
    /// Path-style S3 addressing (default: on when a custom S3 endpoint is set).
    pub s3_path_style: Option<bool>,
    /// Bytes per multipart part for S3 uploads.
    pub s3_part_bytes: usize,
}

impl Default for AwsOptions {
    fn default() -> Self {
        Self {
            region: None,
            profile: None,
            s3_endpoint: None,
            glue_endpoint: None,
            s3_path_style: None,
            s3_part_bytes: crate::store::s3::DEFAULT_PART_BYTES,
        }
    }
}

/// An endpoint from the environment, the way the AWS CLI resolves it: the service-specific
/// variable first, then `AWS_ENDPOINT_URL`, neither when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`
/// is true.
pub fn env_endpoint(service_var: &str) -> Option<String> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    get(service_var).or_else(|| get("AWS_ENDPOINT_URL"))
}

/// The loaded SDK configuration and the clients built from it.
#[derive(Debug)]
pub struct AwsContext {
    options: AwsOptions,
    sdk: OnceLock<SdkConfig>,
    credentials: OnceLock<Arc<SdkCredentials>>,
}

impl AwsContext {
    /// A context for `options`; nothing is loaded yet.
    pub fn new(options: AwsOptions) -> Self {
        Self {
            options,
            sdk: OnceLock::new(),
            credentials: OnceLock::new(),
        }
    }

    /// The options.
    pub fn options(&self) -> &AwsOptions {
        &self.options
    }

    /// The SDK configuration, loaded from the standard chain on first use.
    pub fn sdk(&self) -> &SdkConfig {
        self.sdk.get_or_init(|| {
            let mut loader = aws_config::defaults(BehaviorVersion::latest());
            if let Some(r) = &self.options.region {
                loader = loader.region(Region::new(r.clone()));
            }
            if let Some(p) = &self.options.profile {
                loader = loader.profile_name(p);
            }
            block_on(loader.load())
        })
    }

    /// The region S3 requests are signed for.
    pub fn region(&self) -> String {
        self.sdk()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into())
    }

    /// A Glue client (endpoint from `[aws] glue_endpoint` or the environment).
    pub fn glue(&self) -> aws_sdk_glue::Client {
        let mut config = aws_sdk_glue::config::Builder::from(self.sdk());
        if let Some(url) = &self.options.glue_endpoint {
            config = config.endpoint_url(url);
        }
        aws_sdk_glue::Client::from_conf(config.build())
    }

    /// An object_store S3 client for `bucket`.
    pub fn s3_client(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let credentials = self
            .credentials
            .get_or_init(|| {
                Arc::new(SdkCredentials {
                    provider: self.sdk().credentials_provider(),
                    cached: tokio::sync::Mutex::new(None),
                })
            })
            .clone();
        let endpoint = self
            .options
            .s3_endpoint
            .clone()
            .or_else(|| env_endpoint("AWS_ENDPOINT_URL_S3"));
        let path_style = self.options.s3_path_style.unwrap_or(endpoint.is_some());
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(self.region())
            .with_credentials(credentials)
            .with_virtual_hosted_style_request(!path_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 5,
                retry_timeout: Duration::from_secs(60),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(300)),
            );
        if let Some(url) = endpoint {
            builder = builder
                .with_allow_http(url.starts_with("http://"))
                .with_endpoint(url);
        }
        let client = builder.build().map_err(|e| Error::Store {
            url: format!("s3://{bucket}"),
            message: e.to_string(),
        })?;
        Ok(Arc::new(client))
    }
}

/// object_store credentials from the SDK's provider chain, cached until five minutes before
/// they expire.
#[derive(Debug)]
pub struct SdkCredentials {
    provider: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

#[async_trait::async_trait]
impl CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((credential, expiry)) = cached.as_ref() {
            let fresh = expiry.is_none_or(|e| e > SystemTime::now() + Duration::from_secs(300));
            if fresh {
                return Ok(credential.clone());
            }
        }
        let no_chain = || object_store::Error::Generic {
            store: "S3",
            source: "no AWS credentials provider is configured".into(),
        };
        let c = self
            .provider
            .as_ref()
            .ok_or_else(no_chain)?
            .provide_credentials()
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: format!("no AWS credentials from the standard chain: {e}").into(),
            })?;
        let credential = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_owned(),
            secret_key: c.secret_access_key().to_owned(),
            token: c.session_token().map(str::to_owned),
        });
        *cached = Some((credential.clone(), c.expiry()));
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_resolve_like_the_cli() {
        // One test owns these variables (tests in this binary do not read them otherwise).
        std::env::remove_var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
        std::env::set_var("AWS_ENDPOINT_URL", "http://general");
        std::env::set_var("AWS_ENDPOINT_URL_S3", "http://s3-only");
        assert_eq!(
            env_endpoint("AWS_ENDPOINT_URL_S3").as_deref(),
            Some("http://s3-only")
        );
        assert_eq!(
            env_endpoint("AWS_ENDPOINT_URL_GLUE").as_deref(),
            Some("http://general")
        );
        std::env::set_var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true");
        assert_eq!(env_endpoint("AWS_ENDPOINT_URL_S3"), None);
        for k in [
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        ] {
            std::env::remove_var(k);
        }
    }
}
