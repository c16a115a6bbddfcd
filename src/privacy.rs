//! The key of `hash` column rules: asked for only by what hashes (a run, a shard, the Lambda,
//! `inspect --table`), so `status`, `plan`, `query` and the rest run without the secret. When
//! it lives in AWS Secrets Manager (`privacy.hash_key_secret_arn`) it is fetched once, before
//! anything runs; the secret's text (`SecretString`) is the key, as the environment
//! variable's text is.

use std::sync::Arc;

use crate::aws::{block_on, SdkFailure};
use crate::config::Job;
use crate::error::{Error, Result};
use crate::store::Stores;
use crate::transform::rules::HashKey;

/// Fetch the hash key named by `job.hash_key_secret`, if the job has one and no key yet; fail
/// ([`check_hash_key`]) when a table hashes and there is no key: what the commands that hash
/// call after loading the config.
pub fn resolve_hash_key(job: &mut Job, stores: &Stores) -> Result<()> {
    let Some(arn) = job.hash_key_secret.clone() else {
        return check_hash_key(job);
    };
    if job.hash_key.is_some() {
        return Ok(());
    }
    let client = aws_sdk_secretsmanager::Client::new(stores.aws().sdk());
    let got =
        block_on(client.get_secret_value().secret_id(&arn).send()).map_err(|e| Error::Secret {
            arn: arn.clone(),
            source: SdkFailure::boxed(e),
        })?;
    let text = got.secret_string().ok_or_else(|| Error::Secret {
        arn: arn.clone(),
        source: "the secret has no SecretString (a binary secret is not a key here)".into(),
    })?;
    let key = HashKey::new(text.as_bytes()).ok_or_else(|| Error::Secret {
        arn: arn.clone(),
        source: format!("the key is shorter than {} bytes", HashKey::MIN_BYTES).into(),
    })?;
    job.hash_key = Some(Arc::new(key));
    Ok(())
}

/// Fail when a table hashes and the job has no key (its variable unset, or its secret not
/// fetched by [`resolve_hash_key`]): citrine never hashes without one. Only what hashes asks:
/// a run, a shard, the Lambda, `inspect --table` (which shows hashed values).
pub fn check_hash_key(job: &Job) -> Result<()> {
    if job.tables.iter().any(|t| t.hashes()) && job.hash_key.is_none() {
        return Err(Error::Config(crate::error::ConfigError::new(
            "privacy.hash_key_env",
            format!(
                "a `hash` column rule needs a key: set the environment variable {} (at least {} bytes); citrine never hashes without one",
                job.hash_key_var,
                HashKey::MIN_BYTES
            ),
        )));
    }
    Ok(())
}
