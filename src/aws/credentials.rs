//! The SDK's credential chain (environment, profiles and SSO, ECS / Batch task roles, IMDSv2,
//! web identity) as object_store credentials.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::AwsCredential;
use object_store::CredentialProvider;

/// object_store credentials from the SDK's provider chain, cached until five minutes before
/// they expire.
#[derive(Debug)]
pub struct SdkCredentials {
    provider: Option<SharedCredentialsProvider>,
    cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl SdkCredentials {
    /// Credentials from `provider` (none: every request fails, saying so).
    pub fn new(provider: Option<SharedCredentialsProvider>) -> Self {
        Self {
            provider,
            cached: tokio::sync::Mutex::new(None),
        }
    }
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
