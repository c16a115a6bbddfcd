//! Where a config's text comes from, in the order the CLI and the Lambda look for it:
//! `--config PATH`; the text of `$CITRINE_CONFIG_TOML`; `$CITRINE_CONFIG`, a path or an
//! `s3://bucket/key` object (a config over the 4 KB a CloudFormation parameter or a Lambda's
//! environment holds); `./citrine.toml`.
//!
//! Relative paths in a config are relative to its file's folder, and to the working folder
//! for a config given as text or as an object.

use std::path::{Path, PathBuf};

use crate::aws::AwsOptions;
use crate::config::{ConfigFile, Job};
use crate::error::{ConfigError, Error, Result};
use crate::store::{Location, Stores};

/// The variable holding a config's text.
pub const INLINE: &str = "CITRINE_CONFIG_TOML";
/// The variable naming a config's file or `s3://` object.
pub const LOCATION: &str = "CITRINE_CONFIG";

/// Where a config comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file.
    File(PathBuf),
    /// The text of `$CITRINE_CONFIG_TOML`.
    Inline(String),
    /// An object in S3 (`$CITRINE_CONFIG=s3://bucket/key`).
    Object(String),
}

impl ConfigSource {
    /// `given` (`--config`), else `$CITRINE_CONFIG_TOML`, else `$CITRINE_CONFIG`, else
    /// `citrine.toml`.
    pub fn resolve(given: Option<PathBuf>) -> Self {
        if let Some(path) = given {
            return Self::File(path);
        }
        if let Ok(text) = std::env::var(INLINE) {
            return Self::Inline(text);
        }
        match std::env::var(LOCATION) {
            Ok(url) if url.starts_with("s3://") => Self::Object(url),
            Ok(path) => Self::File(PathBuf::from(path)),
            Err(_) => Self::File(PathBuf::from("citrine.toml")),
        }
    }

    /// How messages name it: the file's path, the variable, or the object's URL.
    pub fn origin(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Inline(_) => INLINE.to_owned(),
            Self::Object(url) => url.clone(),
        }
    }

    /// The folder relative paths in the config are relative to.
    fn base(&self) -> PathBuf {
        match self {
            Self::File(path) => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Read and parse the config (an object is read with the standard AWS chain: its
    /// `[aws]` section is not known before it is read).
    pub fn read(&self) -> Result<ConfigFile> {
        Ok(match self {
            Self::File(path) => ConfigFile::load(path)?,
            Self::Inline(text) => ConfigFile::parse(text, INLINE)?,
            Self::Object(url) => {
                let text = read_object(url)?;
                ConfigFile::parse(&text, url)?
            }
        })
    }

    /// Read, parse and validate the config.
    pub fn load(&self) -> Result<Job> {
        Ok(self.read()?.validate(&self.base())?)
    }
}

/// The text of the object at `url` (`s3://bucket/key`).
fn read_object(url: &str) -> Result<String> {
    let bad = |message: String| Error::Config(ConfigError::new(LOCATION, message));
    let (folder, name) = url
        .rsplit_once('/')
        .filter(|(f, n)| !n.is_empty() && f.len() > "s3:/".len())
        .ok_or_else(|| bad(format!("{url:?}: expected s3://bucket/key")))?;
    let location = Location::parse(folder, Path::new(".")).map_err(bad)?;
    let store = Stores::new(AwsOptions::default()).open(&location)?;
    let found = store
        .read(name)?
        .ok_or_else(|| bad(format!("no config object at {url}")))?;
    String::from_utf8(found.bytes).map_err(|_| bad(format!("{url}: the config is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_a_file_the_text_or_an_object() {
        // One test owns these variables.
        std::env::remove_var(INLINE);
        std::env::remove_var(LOCATION);
        assert_eq!(
            ConfigSource::resolve(None),
            ConfigSource::File("citrine.toml".into())
        );
        std::env::set_var(LOCATION, "s3://configs/citrine/prod.toml");
        let object = ConfigSource::resolve(None);
        assert_eq!(
            object,
            ConfigSource::Object("s3://configs/citrine/prod.toml".into())
        );
        assert_eq!(object.origin(), "s3://configs/citrine/prod.toml");
        std::env::set_var(LOCATION, "conf/citrine.toml");
        assert_eq!(ConfigSource::resolve(None).base(), PathBuf::from("conf"));
        std::env::set_var(INLINE, "[lake]");
        assert_eq!(ConfigSource::resolve(None).origin(), INLINE);
        assert_eq!(
            ConfigSource::resolve(Some("x.toml".into())),
            ConfigSource::File("x.toml".into())
        );
        std::env::remove_var(INLINE);
        std::env::remove_var(LOCATION);
        let err = read_object("s3://bucket-only").unwrap_err();
        assert!(
            err.to_string().contains("expected s3://bucket/key"),
            "{err}"
        );
    }
}
