//! Keys whose values form a closed set (`lake.compression`, `catalog.kind`, a table's `format`
//! and `after_commit`, a column's `mask`), typed where the file is read: [`Choice`] holds the
//! value, or the text that names none, so that validation reports an unknown name together
//! with every other problem of the file, each at its line, instead of the first one alone.

use serde::{Deserialize, Deserializer};

use crate::error::ConfigError;

/// A closed set of values a config key takes, by name.
pub trait Named: Sized + Copy + 'static {
    /// Each name and its value (a value may have more than one name).
    const NAMES: &'static [(&'static str, Self)];
    /// What an error says is expected.
    const EXPECTED: &'static str;
}

/// A value of a closed set as the file spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice<T> {
    /// A name of `T`.
    Known(T),
    /// Text that names none of `T`'s values.
    Unknown(String),
}

impl<T: Named> Choice<T> {
    /// The value, or the problem of `key`: what is expected, and what the file says.
    pub fn get(&self, key: impl Into<String>) -> Result<T, ConfigError> {
        match self {
            Self::Known(v) => Ok(*v),
            Self::Unknown(text) => Err(ConfigError::new(
                key,
                format!("expected {}, got {text:?}", T::EXPECTED),
            )),
        }
    }
}

impl<'de, T: Named> Deserialize<'de> for Choice<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(T::NAMES
            .iter()
            .find(|(name, _)| *name == text)
            .map_or(Self::Unknown(text), |&(_, v)| Self::Known(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Side {
        Left,
        Right,
    }

    impl Named for Side {
        const NAMES: &'static [(&'static str, Self)] = &[
            ("left", Side::Left),
            ("l", Side::Left),
            ("right", Side::Right),
        ];
        const EXPECTED: &'static str = "\"left\" or \"right\"";
    }

    #[derive(Deserialize)]
    struct File {
        side: Choice<Side>,
    }

    fn side(text: &str) -> Choice<Side> {
        toml::from_str::<File>(&format!("side = {text:?}"))
            .unwrap()
            .side
    }

    #[test]
    fn names_and_aliases_read_as_their_value() {
        assert_eq!(side("left"), Choice::Known(Side::Left));
        assert_eq!(side("l"), Choice::Known(Side::Left));
        assert_eq!(side("right").get("side").unwrap(), Side::Right);
    }

    #[test]
    fn an_unknown_name_is_kept_for_validation_to_report() {
        assert_eq!(side("Left"), Choice::Unknown("Left".into()));
        let err = side("up").get("x.side").unwrap_err();
        assert_eq!(err.key, "x.side");
        assert_eq!(err.message, "expected \"left\" or \"right\", got \"up\"");
    }

    #[test]
    fn a_value_that_is_not_text_is_a_parse_error() {
        assert!(toml::from_str::<File>("side = 3").is_err());
    }
}
