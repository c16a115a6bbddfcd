//! The `[aws]` options, endpoint resolution as the AWS CLI does it, and the context that
//! loads the SDK configuration (once, on first use) and builds the clients.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use super::access_point::AccessPoint;
use super::block_on;
use super::credentials::SdkCredentials;
use crate::error::{Error, Result};

/// Bytes per multipart part of S3 uploads (S3's minimum is 5 MiB for all but the last).
pub const DEFAULT_S3_PART_BYTES: usize = 8 << 20;

/// `[aws]`, as the config file writes it and the clients use it: every key is optional and
/// falls back to the standard AWS chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsOptions {
    /// Region (else `AWS_REGION`, the profile, IMDS; `us-east-1` for S3 when none is found).
    pub region: Option<String>,
    /// Named profile (else `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// S3 endpoint for S3-compatible stores (else `AWS_ENDPOINT_URL_S3`, else
    /// `AWS_ENDPOINT_URL`).
    pub s3_endpoint: Option<String>,
    /// Glue endpoint (else `AWS_ENDPOINT_URL_GLUE`, else `AWS_ENDPOINT_URL`).
    pub glue_endpoint: Option<String>,
    /// Path-style S3 addressing (default: on when a custom S3 endpoint is set).
    pub s3_path_style: Option<bool>,
    /// Whether a request's signature covers a hash of its body (default: only over plain
    /// `http://`, where nothing else protects the body; over HTTPS, TLS does, and the body is
    /// sent `UNSIGNED-PAYLOAD`, as botocore does, saving a SHA-256 pass over every byte sent).
    pub s3_sign_payload: Option<bool>,
    /// Multipart part size for S3 uploads in MiB (default 8, at least 5:
    /// [`AwsOptions::s3_part_bytes`]).
    pub s3_part_mb: Option<u64>,
    /// KMS key every object citrine writes to S3 is encrypted with (SSE-KMS), and that
    /// `iam-policy` grants; none: the bucket's default encryption.
    pub kms_key_arn: Option<String>,
    /// Where an access point ARN's requests go (`{name}`, `{account}`, `{region}` replaced);
    /// none: AWS's `https://{name}-{account}.s3-accesspoint.{region}.amazonaws.com`.
    pub s3_access_point_endpoint: Option<String>,
    /// `[aws.access_points]`: the bucket behind each access point (ARN or alias) a pattern
    /// names: S3 event notifications name the bucket, not the access point an object was
    /// written through.
    #[serde(default)]
    pub access_points: std::collections::BTreeMap<String, String>,
}

impl AwsOptions {
    /// Bytes per multipart part of S3 uploads.
    pub fn s3_part_bytes(&self) -> usize {
        self.s3_part_mb
            .map_or(DEFAULT_S3_PART_BYTES, |mb| (mb << 20) as usize)
    }
}

/// Whether S3 requests sign a hash of their body: as `configured`, else only over a plain
/// `http://` endpoint (AWS itself and any `https://` endpoint: TLS protects the body).
fn sign_payload(configured: Option<bool>, endpoint: Option<&str>) -> bool {
    configured.unwrap_or_else(|| plain_http(endpoint))
}

/// Whether `endpoint` is a plain `http://` one (no endpoint: AWS, over HTTPS).
fn plain_http(endpoint: Option<&str>) -> bool {
    endpoint.is_some_and(|url| url.starts_with("http://"))
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
    pub fn s3_client(&self, bucket: &str) -> Result<Arc<AmazonS3>> {
        let credentials = self
            .credentials
            .get_or_init(|| Arc::new(SdkCredentials::new(self.sdk().credentials_provider())))
            .clone();
        // An access point ARN: its own endpoint, the key as the path, its region.
        let access_point = AccessPoint::parse(bucket);
        let (endpoint, path_style, region) = match &access_point {
            Some(ap) => (
                Some(ap.endpoint(self.options.s3_access_point_endpoint.as_deref())),
                false,
                ap.region.clone(),
            ),
            None => {
                let endpoint = self
                    .options
                    .s3_endpoint
                    .clone()
                    .or_else(|| env_endpoint("AWS_ENDPOINT_URL_S3"));
                let path_style = self.options.s3_path_style.unwrap_or(endpoint.is_some());
                (endpoint, path_style, self.region())
            }
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(access_point.as_ref().map_or(bucket, |ap| ap.name.as_str()))
            .with_region(region)
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
        let sign = sign_payload(self.options.s3_sign_payload, endpoint.as_deref());
        builder = builder
            .with_unsigned_payload(!sign)
            .with_allow_http(plain_http(endpoint.as_deref()));
        if let Some(url) = endpoint {
            builder = builder.with_endpoint(url);
        }
        if let Some(key) = &self.options.kms_key_arn {
            builder = builder.with_sse_kms_encryption(key.clone());
        }
        let client = builder.build().map_err(|e| Error::Store {
            url: format!("s3://{bucket}"),
            source: Box::new(e),
        })?;
        Ok(Arc::new(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_signed_over_plain_http_only_unless_configured() {
        assert!(!sign_payload(None, None));
        assert!(!sign_payload(None, Some("https://s3.example.com")));
        assert!(sign_payload(None, Some("http://127.0.0.1:9000")));
        assert!(sign_payload(Some(true), None));
        assert!(!sign_payload(Some(false), Some("http://127.0.0.1:9000")));
    }

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
