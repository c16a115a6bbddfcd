//! Input patterns: `logs/cloudfront/{customer}/` or `logs/audit/{customer}/*.csv`.
//!
//! `{customer}` captures one whole path segment; `*` and `?` match within a segment; `**`
//! matches any number of segments; a trailing `/` means everything below. Names starting with
//! `.` or `_` (temporary and hidden files) are never inputs.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::store::{Location, ObjectInfo, Store, Stores};

/// The placeholder that captures the customer.
pub const CUSTOMER_PLACEHOLDER: &str = "{customer}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Glob(String),
    Customer,
    AnyDepth,
}

/// A parsed input pattern: a literal root (a local folder or `s3://bucket/prefix`) and the
/// segments matched below it.
#[derive(Debug, Clone)]
pub struct InputPattern {
    text: String,
    root: Location,
    /// The root as written, for local uris (relative patterns stay relative in uris).
    root_text: String,
    segs: Vec<Seg>,
}

/// One input file a pattern matched.
#[derive(Debug, Clone)]
pub struct MatchedInput {
    /// The store it is read from.
    pub store: Arc<dyn Store>,
    /// Its key in that store.
    pub key: String,
    /// Its uri as recorded in `source_file`, reports and the ledger: `s3://bucket/key`, or
    /// the path as the pattern spells it (relative to the config folder when the pattern is).
    pub uri: String,
    /// The `{customer}` segment, if the pattern has one.
    pub customer: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// The S3 ETag, for objects.
    pub etag: Option<String>,
}

impl MatchedInput {
    /// Stream its raw bytes, exactly as listed (see [`Store::open_snapshot`]): a file that
    /// changes while it is read fails the read instead of being recorded with other bytes.
    pub fn open(&self) -> Result<Box<dyn std::io::Read + Send>> {
        self.store.open_snapshot(&ObjectInfo {
            key: self.key.clone(),
            size: self.size,
            mtime_ns: self.mtime_ns,
            etag: self.etag.clone(),
        })
    }
}

impl InputPattern {
    /// Parse `text` (`s3://bucket/…` or a local path), resolving a relative local pattern
    /// against `base`.
    pub fn parse(text: &str, base: &Path) -> std::result::Result<Self, String> {
        let (bucket, path) = match text.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() || bucket.contains(['*', '?', '{', '}']) {
                    return Err(format!("{text:?}: expected s3://bucket/pattern"));
                }
                (Some(bucket), path)
            }
            None if text.contains("://") => {
                return Err(format!(
                    "{text:?}: expected a local path or an s3:// URI (no other schemes)"
                ))
            }
            None => (None, text),
        };
        let trailing = path.ends_with('/') || (bucket.is_some() && path.is_empty());
        let parts: Vec<&str> = path
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        if parts.contains(&"..") {
            return Err(format!("{text:?}: `..` is not allowed in a pattern"));
        }
        let is_literal = |p: &str| !p.contains(['*', '?', '{', '}', '[']);
        let literal = parts.iter().take_while(|p| is_literal(p)).count();
        // With no trailing slash the last segment names files, so it is never the root.
        let literal = if trailing {
            literal
        } else {
            literal.min(parts.len().saturating_sub(1))
        };
        let mut root_text = parts[..literal].join("/");
        let root = match bucket {
            Some(bucket) => Location::S3 {
                bucket: bucket.to_owned(),
                prefix: root_text.clone(),
            },
            None => {
                if text.starts_with('/') {
                    root_text.insert(0, '/');
                }
                Location::Local(base.join(&root_text))
            }
        };
        let mut segs = Vec::new();
        for p in &parts[literal..] {
            let seg = match *p {
                CUSTOMER_PLACEHOLDER => Seg::Customer,
                "**" => Seg::AnyDepth,
                p if p.contains(['{', '}']) => {
                    return Err(format!(
                        "{text:?}: {CUSTOMER_PLACEHOLDER} must be a whole path segment"
                    ))
                }
                p => Seg::Glob(p.to_owned()),
            };
            segs.push(seg);
        }
        if segs.iter().filter(|s| **s == Seg::Customer).count() > 1 {
            return Err(format!("{text:?}: {CUSTOMER_PLACEHOLDER} may appear once"));
        }
        if trailing {
            segs.push(Seg::AnyDepth);
        }
        if segs.is_empty() {
            // A single literal file.
            segs.push(Seg::Glob(
                parts.last().copied().unwrap_or_default().to_owned(),
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            root,
            root_text,
            segs,
        })
    }

    /// True when the pattern captures a `{customer}` segment.
    pub fn has_customer(&self) -> bool {
        self.segs.contains(&Seg::Customer)
    }

    /// The pattern as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The literal root the pattern lists below.
    pub fn root(&self) -> &Location {
        &self.root
    }

    /// The input `s3://bucket/key` as this pattern would list it, if it matches (the object's
    /// size, mtime and ETag are looked up; `Ok(None)` also when it no longer exists).
    pub fn match_object(
        &self,
        stores: &Stores,
        bucket: &str,
        key: &str,
    ) -> Result<Option<MatchedInput>> {
        let Location::S3 {
            bucket: root_bucket,
            prefix,
        } = &self.root
        else {
            return Ok(None);
        };
        if root_bucket != bucket {
            return Ok(None);
        }
        let rel = if prefix.is_empty() {
            key
        } else {
            match key
                .strip_prefix(prefix.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(r) => r,
                None => return Ok(None),
            }
        };
        let segs: Vec<&str> = rel.split('/').collect();
        if segs
            .iter()
            .any(|s| s.is_empty() || s.starts_with('.') || s.starts_with('_'))
        {
            return Ok(None);
        }
        let mut customer = None;
        if !match_segs(&self.segs, &segs, &mut customer) {
            return Ok(None);
        }
        let store = stores.open(&self.root)?;
        let Some(object) = store.head(rel)? else {
            tracing::info!(object = %store.url(rel), "gone since the event; skipped");
            return Ok(None);
        };
        Ok(Some(MatchedInput {
            uri: store.url(rel),
            customer: customer.map(str::to_owned),
            key: rel.to_owned(),
            store,
            size: object.size,
            mtime_ns: object.mtime_ns,
            etag: object.etag,
        }))
    }

    /// Every file the pattern matches, sorted by uri. A local pattern whose literal folder
    /// does not exist is an error ([`Error::MissingInputFolder`]); an S3 prefix with nothing
    /// below it matches nothing.
    pub fn list(&self, stores: &Stores) -> Result<Vec<MatchedInput>> {
        let mut out = Vec::new();
        self.for_each_match(stores, |m| {
            out.push(m);
            Ok(())
        })?;
        out.sort_by(|a, b| a.uri.cmp(&b.uri));
        Ok(out)
    }

    /// Hand every file the pattern matches to `each` as the listing yields it (in key order),
    /// so a listing of millions of objects is never held whole. Returns how many matched.
    pub fn for_each_match(
        &self,
        stores: &Stores,
        mut each: impl FnMut(MatchedInput) -> Result<()>,
    ) -> Result<usize> {
        if let Location::Local(root) = &self.root {
            if !root.is_dir() {
                return Err(Error::MissingInputFolder {
                    pattern: self.text.clone(),
                    folder: root.display().to_string(),
                });
            }
        }
        let store = stores.open(&self.root)?;
        let mut matched = 0;
        for object in store.list_iter("")? {
            let object = object?;
            let segs: Vec<&str> = object.key.split('/').collect();
            if segs
                .iter()
                .any(|s| s.is_empty() || s.starts_with('.') || s.starts_with('_'))
            {
                continue;
            }
            let mut customer = None;
            if !match_segs(&self.segs, &segs, &mut customer) {
                continue;
            }
            let uri = match &self.root {
                Location::S3 { .. } => store.url(&object.key),
                Location::Local(_) if self.root_text.is_empty() => object.key.clone(),
                Location::Local(_) => format!("{}/{}", self.root_text, object.key),
            };
            matched += 1;
            each(MatchedInput {
                store: store.clone(),
                customer: customer.map(str::to_owned),
                key: object.key,
                uri,
                size: object.size,
                mtime_ns: object.mtime_ns,
                etag: object.etag,
            })?;
        }
        Ok(matched)
    }
}

fn match_segs<'a>(pat: &[Seg], path: &[&'a str], customer: &mut Option<&'a str>) -> bool {
    match (pat.first(), path.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(Seg::AnyDepth), _) => {
            (0..=path.len()).any(|skip| match_segs(&pat[1..], &path[skip..], customer))
        }
        (Some(_), None) => false,
        (Some(Seg::Customer), Some(p)) => {
            let before = *customer;
            *customer = Some(p);
            if match_segs(&pat[1..], &path[1..], customer) {
                return true;
            }
            *customer = before;
            false
        }
        (Some(Seg::Glob(g)), Some(p)) => {
            glob(g.as_bytes(), p.as_bytes()) && match_segs(&pat[1..], &path[1..], customer)
        }
    }
}

/// `*` and `?` wildcard match of one segment.
fn glob(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(b"*.csv", b"a.csv"));
        assert!(glob(b"E*.gz", b"E1.2019-12-04-21.abc.gz"));
        assert!(!glob(b"*.csv", b"a.csv.gz"));
        assert!(glob(b"a?c", b"abc"));
        assert!(glob(b"*", b""));
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "logs/cloudfront/acme/E1.2019-12-04-21.a.gz",
            "logs/cloudfront/acme/2019/E1.2019-12-05-01.b.gz",
            "logs/cloudfront/globex/E2.2019-12-04-21.c.gz",
            "logs/cloudfront/globex/.E2.partial",
            "logs/cloudfront/_tmp/x.gz",
            "logs/audit/acme/2024-03-01.csv",
            "logs/audit/acme/notes.txt",
            "logs/audit/top.csv",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        dir
    }

    fn listed(pattern: &str, base: &Path) -> Vec<(String, Option<String>)> {
        InputPattern::parse(pattern, base)
            .unwrap()
            .list(&Stores::new(Default::default()))
            .unwrap()
            .into_iter()
            .map(|m| (m.uri, m.customer))
            .collect()
    }

    #[test]
    fn customer_folder_with_everything_below() {
        let dir = tree();
        let got = listed("logs/cloudfront/{customer}/", dir.path());
        let c = |s: &str| Some(s.to_string());
        assert_eq!(
            got,
            [
                (
                    "logs/cloudfront/acme/2019/E1.2019-12-05-01.b.gz".into(),
                    c("acme")
                ),
                (
                    "logs/cloudfront/acme/E1.2019-12-04-21.a.gz".into(),
                    c("acme")
                ),
                (
                    "logs/cloudfront/globex/E2.2019-12-04-21.c.gz".into(),
                    c("globex")
                ),
            ]
        );
    }

    #[test]
    fn glob_in_the_last_segment() {
        let dir = tree();
        let got = listed("logs/audit/{customer}/*.csv", dir.path());
        assert_eq!(
            got,
            [("logs/audit/acme/2024-03-01.csv".into(), Some("acme".into()))]
        );
        let got = listed("logs/audit/**/*.csv", dir.path());
        assert_eq!(got.len(), 2);
        let missing = InputPattern::parse("missing/{customer}/", dir.path())
            .unwrap()
            .list(&Stores::new(Default::default()))
            .unwrap_err();
        assert!(
            missing.to_string().ends_with("missing does not exist"),
            "{missing}"
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        let base = Path::new("/b");
        assert!(InputPattern::parse("logs/{customer}-x/", base).is_err());
        assert!(InputPattern::parse("logs/{customer}/{customer}/", base).is_err());
        assert!(InputPattern::parse("../logs/", base).is_err());
        assert!(InputPattern::parse("gs://b/logs/", base).is_err());
        assert!(InputPattern::parse("s3:///logs/", base).is_err());
    }

    #[test]
    fn s3_patterns_root_at_their_literal_prefix() {
        let base = Path::new("/b");
        let p = InputPattern::parse("s3://bkt/logs/cloudfront/{customer}/", base).unwrap();
        assert_eq!(p.root().to_string(), "s3://bkt/logs/cloudfront");
        let p = InputPattern::parse("s3://bkt/audit/{customer}/*.csv", base).unwrap();
        assert_eq!(p.root().to_string(), "s3://bkt/audit");
        let p = InputPattern::parse("s3://bkt", base).unwrap();
        assert_eq!(p.root().to_string(), "s3://bkt");
    }
}
