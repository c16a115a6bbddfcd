//! Column rules beyond IP masking, per table (`[table.columns.<name>] mask = …`):
//!
//! - `hash`: the value's HMAC-SHA256 under the job's key, as 64 lower-case hex digits. Stable
//!   across runs and machines with the same key, so joins and distinct counts still work; a
//!   different key gives unrelated values. There is no unkeyed hash: a `hash` rule without a
//!   key is a configuration error.
//! - `redact`: the value is dropped (null).
//! - `email_domain`: `alice@Example.com` keeps `example.com`; a value that is not an address
//!   becomes `-` and is counted, as a token in an IP column that is not an address is.
//!
//! Nulls stay null and empty strings stay empty (they hold nothing to protect). The key never
//! appears in any output: [`HashKey`] prints as `HashKey(…)`.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// What a rule does to each value of its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// HMAC-SHA256 under the job's key, hex.
    Hash,
    /// Null.
    Redact,
    /// The domain of an e-mail address, lower case.
    EmailDomain,
}

/// The key `hash` rules use. Never printed.
#[derive(Clone)]
pub struct HashKey(Hmac<Sha256>);

impl HashKey {
    /// The least key length accepted, in bytes.
    pub const MIN_BYTES: usize = 16;

    /// A key from its bytes (at least [`HashKey::MIN_BYTES`]).
    pub fn new(key: &[u8]) -> Option<Self> {
        if key.len() < Self::MIN_BYTES {
            return None;
        }
        Hmac::<Sha256>::new_from_slice(key).ok().map(Self)
    }

    /// `value`'s HMAC-SHA256, hex, appended to `out`.
    pub fn hash_into(&self, value: &str, out: &mut String) {
        let mut mac = self.0.clone();
        mac.update(value.as_bytes());
        for b in mac.finalize().into_bytes() {
            let _ = write!(out, "{b:02x}");
        }
    }
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(…)")
    }
}

/// The domain of an e-mail address, lower case; `None` when `value` is not one.
pub fn email_domain(value: &str) -> Option<String> {
    let v = value.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, domain) = v.rsplit_once('@')?;
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if local.is_empty() || !domain.contains('.') || !domain.split('.').all(label_ok) {
        return None;
    }
    Some(domain.to_lowercase())
}

/// A table's column rules, applied to every batch before it is written.
#[derive(Debug, Clone, Default)]
pub struct ColumnRules {
    rules: Vec<(String, Rule)>,
    key: Option<Arc<HashKey>>,
}

impl ColumnRules {
    /// Rules on columns by name; `key` is required when any rule hashes (the config checks).
    pub fn new(rules: Vec<(String, Rule)>, key: Option<Arc<HashKey>>) -> Self {
        Self { rules, key }
    }

    /// True when no rule applies.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule of `column`, if any.
    pub fn rule(&self, column: &str) -> Option<Rule> {
        self.rules
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, r)| *r)
    }

    /// Apply the rules to `batch`; returns it with the count of values that an
    /// `email_domain` rule found not to be addresses.
    pub fn apply(&self, batch: RecordBatch) -> (RecordBatch, u64) {
        if self.rules.is_empty() {
            return (batch, 0);
        }
        let mut invalid = 0;
        let schema = batch.schema();
        let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
        for (idx, field) in schema.fields().iter().enumerate() {
            let Some(rule) = self.rule(field.name()) else {
                continue;
            };
            if field.data_type() != &DataType::Utf8 {
                continue;
            }
            let Some(values) = arrays[idx].as_any().downcast_ref::<StringArray>() else {
                continue;
            };
            let (out, n) = self.apply_array(rule, values);
            invalid += n;
            arrays[idx] = Arc::new(out);
        }
        let batch = RecordBatch::try_new(schema, arrays).expect("rules keep the schema");
        (batch, invalid)
    }

    fn apply_array(&self, rule: Rule, values: &StringArray) -> (StringArray, u64) {
        let mut invalid = 0;
        let out = match rule {
            Rule::Redact => StringArray::new_null(values.len()),
            Rule::Hash => {
                let key = self
                    .key
                    .as_ref()
                    .expect("a hash rule has a key (checked with the config)");
                let mut buf = String::with_capacity(64);
                values
                    .iter()
                    .map(|v| {
                        v.map(|v| {
                            buf.clear();
                            if !v.is_empty() {
                                key.hash_into(v, &mut buf);
                            }
                            buf.clone()
                        })
                    })
                    .collect()
            }
            Rule::EmailDomain => values
                .iter()
                .map(|v| {
                    v.map(|v| {
                        if v.is_empty() {
                            return String::new();
                        }
                        email_domain(v).unwrap_or_else(|| {
                            invalid += 1;
                            "-".to_owned()
                        })
                    })
                })
                .collect(),
        };
        (out, invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    fn key(k: &str) -> Arc<HashKey> {
        Arc::new(HashKey::new(k.as_bytes()).unwrap())
    }

    #[test]
    fn hashes_are_keyed_hex_and_stable() {
        let a = key("0123456789abcdef0123");
        let mut h1 = String::new();
        a.hash_into("alice@example.com", &mut h1);
        // RFC 2104 HMAC-SHA256, checked with Python's hmac module.
        assert_eq!(
            h1,
            "dd667a2d0043a35b508dbfa2a1b42443ecd2cf5f8046215ff6e622f0d2dac2a1"
        );
        let mut again = String::new();
        key("0123456789abcdef0123").hash_into("alice@example.com", &mut again);
        assert_eq!(h1, again, "same key, same value: same hash");
        let mut other = String::new();
        key("another key, 20 bytes").hash_into("alice@example.com", &mut other);
        assert_ne!(h1, other, "another key: another hash");
        assert!(HashKey::new(b"short").is_none());
        assert_eq!(format!("{:?}", a), "HashKey(…)");
    }

    #[test]
    fn email_domains() {
        for (v, want) in [
            ("alice@Example.COM", Some("example.com")),
            ("<bob@mail.example.org>", Some("mail.example.org")),
            ("\"odd@local\"@example.net", Some("example.net")),
            ("no-at-sign", None),
            ("@example.com", None),
            ("alice@localhost", None),
            ("alice@exa mple.com", None),
            ("alice@-bad.com", None),
        ] {
            assert_eq!(email_domain(v).as_deref(), want, "{v}");
        }
    }

    #[test]
    fn each_rule_rewrites_its_column_only() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_email", DataType::Utf8, true),
            Field::new("user_id", DataType::Utf8, true),
            Field::new("note", DataType::Utf8, true),
            Field::new("contact", DataType::Utf8, true),
        ]));
        let col = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as ArrayRef;
        let batch = RecordBatch::try_new(
            schema,
            vec![
                col(vec![Some("a@x.org"), None, Some("")]),
                col(vec![Some("u1"), Some("u2"), None]),
                col(vec![Some("keep"), Some("me"), None]),
                col(vec![Some("c@Y.org"), Some("nope"), None]),
            ],
        )
        .unwrap();
        let rules = ColumnRules::new(
            vec![
                ("user_email".into(), Rule::Hash),
                ("user_id".into(), Rule::Redact),
                ("contact".into(), Rule::EmailDomain),
            ],
            Some(key("0123456789abcdef0123")),
        );
        let (out, invalid) = rules.apply(batch);
        let s = |i: usize| {
            out.column(i)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .iter()
                .map(|v| v.map(str::to_owned))
                .collect::<Vec<_>>()
        };
        let hashed = s(0);
        assert_eq!(hashed[0].as_ref().unwrap().len(), 64);
        assert_eq!(hashed[1..], [None, Some(String::new())]);
        assert_eq!(s(1), [None, None, None]);
        assert_eq!(s(2), [Some("keep".to_owned()), Some("me".to_owned()), None]);
        assert_eq!(s(3), [Some("y.org".to_owned()), Some("-".to_owned()), None]);
        assert_eq!(invalid, 1);
    }
}
