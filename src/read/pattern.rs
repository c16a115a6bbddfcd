//! Input patterns: `logs/cloudfront/{customer}/`, `logs/audit/{customer}/*.csv`, a flat
//! CloudFront bucket's `s3://cf-logs/{distribution}.*`, or logging v2's Hive paths
//! `s3://cf-logs/DistributionId={distribution}/**`.
//!
//! `{customer}` and `{distribution}` capture part of a path segment (the whole segment, or
//! the shortest text that lets the rest of the segment match: `{distribution}.*` stops at the
//! first `.`); `*` and `?` match within a segment; `**` matches any number of segments; a
//! trailing `/` means everything below. Names starting with `.` or `_` (temporary and hidden
//! files) are never inputs.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{Location, ObjectInfo, Store, Stores};

/// The placeholder that captures the customer.
pub const CUSTOMER_PLACEHOLDER: &str = "{customer}";
/// The placeholder that captures a CloudFront distribution id (mapped to a customer by the
/// table's `distributions`).
pub const DISTRIBUTION_PLACEHOLDER: &str = "{distribution}";

/// What a placeholder captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// `{customer}`.
    Customer,
    /// `{distribution}`.
    Distribution,
}

impl Capture {
    fn placeholder(self) -> &'static str {
        match self {
            Capture::Customer => CUSTOMER_PLACEHOLDER,
            Capture::Distribution => DISTRIBUTION_PLACEHOLDER,
        }
    }
}

/// One piece of a segment template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text with `*` and `?` wildcards.
    Glob(String),
    /// A placeholder: at least one byte, the fewest that let the rest match.
    Capture(Capture),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// A segment without placeholders.
    Glob(String),
    /// A segment with placeholders (`{customer}`, `DistributionId={distribution}`, ...).
    Template(Vec<Piece>),
    AnyDepth,
}

/// The values a path's placeholders captured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Captured<'a> {
    customer: Option<&'a str>,
    distribution: Option<&'a str>,
}

impl<'a> Captured<'a> {
    fn slot(&mut self, c: Capture) -> &mut Option<&'a str> {
        match c {
            Capture::Customer => &mut self.customer,
            Capture::Distribution => &mut self.distribution,
        }
    }
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

/// An input as listed: what a plan, a pending record and the ledger keep of it, and with its
/// store, a [`MatchedInput`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedInput {
    /// Its key in its store.
    pub key: String,
    /// Its uri as recorded in `source_file`, reports and the ledger: `s3://bucket/key`, or
    /// the path as the pattern spells it (relative to the config folder when the pattern is).
    pub uri: String,
    /// Its customer: the pattern's `{customer}`, else set by the table (its fixed
    /// `customer`, or its `distributions` entry for [`ListedInput::distribution`]).
    pub customer: Option<String>,
    /// The pattern's `{distribution}`, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, nanoseconds since the epoch.
    #[serde(with = "nanoseconds")]
    pub mtime_ns: i128,
    /// The S3 ETag, for objects.
    pub etag: Option<String>,
}

/// One input file a pattern matched: as listed, and the store it is read from.
#[derive(Debug, Clone)]
pub struct MatchedInput {
    /// The store it is read from.
    pub store: Arc<dyn Store>,
    /// What the listing says of it.
    pub listed: ListedInput,
}

impl MatchedInput {
    /// Stream its raw bytes, exactly as listed (see [`Store::open_snapshot`]): a file that
    /// changes while it is read fails the read instead of being recorded with other bytes.
    pub fn open(&self) -> Result<Box<dyn std::io::Read + Send>> {
        let listed = &self.listed;
        self.store.open_snapshot(&ObjectInfo {
            key: listed.key.clone(),
            size: listed.size,
            mtime_ns: listed.mtime_ns,
            etag: listed.etag.clone(),
        })
    }
}

/// A modification time in records: a JSON number as before, written through `i64` (until the
/// year 2262) so that records may flatten a [`ListedInput`] (serde's flattening cannot carry
/// an `i128`), text beyond it.
mod nanoseconds {
    use serde::{de, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ns: &i128, s: S) -> Result<S::Ok, S::Error> {
        match i64::try_from(*ns) {
            Ok(n) => s.serialize_i64(n),
            Err(_) => s.serialize_str(&ns.to_string()),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
        struct Ns;
        impl de::Visitor<'_> for Ns {
            type Value = i128;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("nanoseconds since the epoch")
            }
            fn visit_i64<E>(self, v: i64) -> Result<i128, E> {
                Ok(v.into())
            }
            fn visit_u64<E>(self, v: u64) -> Result<i128, E> {
                Ok(v.into())
            }
            fn visit_i128<E>(self, v: i128) -> Result<i128, E> {
                Ok(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<i128, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Ns)
    }
}

impl InputPattern {
    /// Parse `text` (`s3://bucket/…` or a local path), resolving a relative local pattern
    /// against `base`.
    pub fn parse(text: &str, base: &Path) -> std::result::Result<Self, String> {
        let (bucket, path) = match text.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, path) = crate::aws::access_point::split_bucket(rest);
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
                "**" => Seg::AnyDepth,
                p if p.contains(['{', '}']) => {
                    Seg::Template(template(p).map_err(|m| format!("{text:?}: {m}"))?)
                }
                p => Seg::Glob(p.to_owned()),
            };
            segs.push(seg);
        }
        for c in [Capture::Customer, Capture::Distribution] {
            let count = segs
                .iter()
                .map(|s| match s {
                    Seg::Template(pieces) => {
                        pieces.iter().filter(|p| **p == Piece::Capture(c)).count()
                    }
                    _ => 0,
                })
                .sum::<usize>();
            if count > 1 {
                return Err(format!("{text:?}: {} may appear once", c.placeholder()));
            }
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

    /// True when the pattern captures `capture`.
    pub fn captures(&self, capture: Capture) -> bool {
        self.segs.iter().any(|s| match s {
            Seg::Template(pieces) => pieces.contains(&Piece::Capture(capture)),
            _ => false,
        })
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
    /// size, mtime and ETag are looked up; `Ok(None)` also when it no longer exists). A
    /// pattern on an access point matches the objects of the bucket `[aws] access_points`
    /// names for it, read through the access point.
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
        // An object written through an access point is notified under its bucket's name.
        let behind = stores.aws().options().access_points.get(root_bucket);
        if root_bucket != bucket && behind.map(String::as_str) != Some(bucket) {
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
        let mut captured = Captured::default();
        if !match_segs(&self.segs, &segs, &mut captured) {
            return Ok(None);
        }
        let store = stores.open(&self.root)?;
        let Some(object) = store.head(rel)? else {
            tracing::info!(object = %store.url(rel), "gone since the event; skipped");
            return Ok(None);
        };
        Ok(Some(MatchedInput {
            listed: ListedInput {
                uri: store.url(rel),
                customer: captured.customer.map(str::to_owned),
                distribution: captured.distribution.map(str::to_owned),
                key: rel.to_owned(),
                size: object.size,
                mtime_ns: object.mtime_ns,
                etag: object.etag,
            },
            store,
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
        out.sort_by(|a, b| a.listed.uri.cmp(&b.listed.uri));
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
            let mut captured = Captured::default();
            if !match_segs(&self.segs, &segs, &mut captured) {
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
                listed: ListedInput {
                    customer: captured.customer.map(str::to_owned),
                    distribution: captured.distribution.map(str::to_owned),
                    key: object.key,
                    uri,
                    size: object.size,
                    mtime_ns: object.mtime_ns,
                    etag: object.etag,
                },
            })?;
        }
        Ok(matched)
    }
}

/// A segment's template: its text split at `{customer}` and `{distribution}`.
fn template(segment: &str) -> std::result::Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = segment;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Glob(rest[..open].to_owned()));
        }
        let capture = [Capture::Customer, Capture::Distribution]
            .into_iter()
            .find(|c| rest[open..].starts_with(c.placeholder()))
            .ok_or_else(|| {
                format!("{segment:?}: the placeholders are {CUSTOMER_PLACEHOLDER} and {DISTRIBUTION_PLACEHOLDER}")
            })?;
        if matches!(pieces.last(), Some(Piece::Capture(_))) {
            return Err(format!(
                "{segment:?}: two placeholders need text between them"
            ));
        }
        pieces.push(Piece::Capture(capture));
        rest = &rest[open + capture.placeholder().len()..];
    }
    if rest.contains('}') {
        return Err(format!("{segment:?}: a `}}` without its placeholder"));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Glob(rest.to_owned()));
    }
    Ok(pieces)
}

fn match_segs<'a>(pat: &[Seg], path: &[&'a str], captured: &mut Captured<'a>) -> bool {
    match (pat.first(), path.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(Seg::AnyDepth), _) => {
            (0..=path.len()).any(|skip| match_segs(&pat[1..], &path[skip..], captured))
        }
        (Some(_), None) => false,
        (Some(Seg::Template(pieces)), Some(p)) => {
            let before = *captured;
            if match_pieces(pieces, p, captured) && match_segs(&pat[1..], &path[1..], captured) {
                return true;
            }
            *captured = before;
            false
        }
        (Some(Seg::Glob(g)), Some(p)) => {
            glob(g.as_bytes(), p.as_bytes()) && match_segs(&pat[1..], &path[1..], captured)
        }
    }
}

/// Match one segment `s` against a template, capturing its placeholders (each the shortest
/// non-empty text that lets the rest match).
fn match_pieces<'a>(pieces: &[Piece], s: &'a str, captured: &mut Captured<'a>) -> bool {
    match pieces {
        [] => s.is_empty(),
        [Piece::Capture(c)] => {
            *captured.slot(*c) = Some(s);
            !s.is_empty()
        }
        [Piece::Capture(c), rest @ ..] => {
            for end in (1..=s.len()).filter(|&e| s.is_char_boundary(e)) {
                let before = *captured;
                *captured.slot(*c) = Some(&s[..end]);
                if match_pieces(rest, &s[end..], captured) {
                    return true;
                }
                *captured = before;
            }
            false
        }
        [Piece::Glob(g), rest @ ..] => {
            if rest.is_empty() {
                return glob(g.as_bytes(), s.as_bytes());
            }
            // The text up to each place the next capture may start.
            (0..=s.len()).filter(|&e| s.is_char_boundary(e)).any(|end| {
                glob(g.as_bytes(), &s.as_bytes()[..end]) && match_pieces(rest, &s[end..], captured)
            })
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
    fn a_listed_input_keeps_its_record_form_and_any_modification_time() {
        let mut listed = ListedInput {
            key: "acme/a.gz".into(),
            uri: "in/acme/a.gz".into(),
            customer: Some("acme".into()),
            distribution: None,
            size: 10,
            mtime_ns: 1_700_000_000_000_000_123,
            etag: None,
        };
        let json = serde_json::to_string(&listed).unwrap();
        assert_eq!(
            json,
            r#"{"key":"acme/a.gz","uri":"in/acme/a.gz","customer":"acme","size":10,"mtime_ns":1700000000000000123,"etag":null}"#
        );
        for mtime_ns in [i128::from(i64::MAX) + 1, i128::from(i64::MIN) - 1, -5] {
            listed.mtime_ns = mtime_ns;
            let json = serde_json::to_string(&listed).unwrap();
            assert_eq!(serde_json::from_str::<ListedInput>(&json).unwrap(), listed);
        }
    }

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
            .map(|m| (m.listed.uri, m.listed.customer))
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
        assert!(InputPattern::parse("logs/{cust}/", base).is_err());
        assert!(InputPattern::parse("logs/{customer}{distribution}/", base).is_err());
        assert!(InputPattern::parse("logs/{customer}}/", base).is_err());
        assert!(InputPattern::parse("logs/{customer}/{customer}/", base).is_err());
        assert!(InputPattern::parse("logs/{distribution}/{distribution}.*", base).is_err());
        assert!(InputPattern::parse("../logs/", base).is_err());
        assert!(InputPattern::parse("gs://b/logs/", base).is_err());
        assert!(InputPattern::parse("s3:///logs/", base).is_err());
    }

    /// The segment's captures when `template` matches it.
    fn captures(template_text: &str, segment: &str) -> Option<(Option<String>, Option<String>)> {
        let pieces = template(template_text).unwrap();
        let mut c = Captured::default();
        match_pieces(&pieces, segment, &mut c).then(|| {
            (
                c.customer.map(str::to_owned),
                c.distribution.map(str::to_owned),
            )
        })
    }

    #[test]
    fn placeholders_capture_part_of_a_segment() {
        let d = |s: &str| Some((None, Some(s.to_owned())));
        // A flat distribution bucket: the id is the text before the first `.`.
        assert_eq!(
            captures("{distribution}.*", "E2ABCDEF.2024-01-01-05.a1b2c3.gz"),
            d("E2ABCDEF")
        );
        assert_eq!(
            captures("{distribution}.*.gz", "E2ABCDEF.2024-01-01-05.a1b2c3"),
            None
        );
        // Logging v2's Hive paths.
        assert_eq!(
            captures("DistributionId={distribution}", "DistributionId=E1X"),
            d("E1X")
        );
        assert_eq!(
            captures("DistributionId={distribution}", "DistributionId="),
            None
        );
        assert_eq!(captures("DistributionId={distribution}", "year=2024"), None);
        assert_eq!(
            captures("c-{customer}-logs", "c-acme-corp-logs"),
            Some((Some("acme-corp".to_owned()), None))
        );
        assert_eq!(
            captures("{customer}", "äcme"),
            Some((Some("äcme".to_owned()), None))
        );
        assert_eq!(captures("{customer}", ""), None);
    }

    #[test]
    fn flat_and_hive_distribution_layouts() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "cf/E2ABC.2024-01-01-05.a1.gz",
            "cf/E3XYZ.2024-01-01-06.b2.gz",
            "cf/notes.txt",
            "v2/DistributionId=E2ABC/year=2024/month=01/day=01/hour=05/E2ABC.2024-01-01-05.c3.gz",
            "v2/other/x.gz",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let with = |pattern: &str| -> Vec<(String, Option<String>)> {
            InputPattern::parse(pattern, dir.path())
                .unwrap()
                .list(&Stores::new(Default::default()))
                .unwrap()
                .into_iter()
                .map(|m| (m.listed.uri, m.listed.distribution))
                .collect()
        };
        assert_eq!(
            with("cf/{distribution}.*.gz"),
            [
                ("cf/E2ABC.2024-01-01-05.a1.gz".into(), Some("E2ABC".into())),
                ("cf/E3XYZ.2024-01-01-06.b2.gz".into(), Some("E3XYZ".into())),
            ]
        );
        assert_eq!(
            with("v2/DistributionId={distribution}/**/*.gz"),
            [(
                "v2/DistributionId=E2ABC/year=2024/month=01/day=01/hour=05/E2ABC.2024-01-01-05.c3.gz".into(),
                Some("E2ABC".into())
            )]
        );
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
