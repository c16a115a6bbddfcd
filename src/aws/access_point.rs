//! S3 access points as the bucket of a location: `s3://<access point ARN>/prefix` or
//! `s3://<alias>/prefix`.
//!
//! An alias (`<name>-<random>-s3alias`) is used wherever a bucket name is, so nothing here
//! concerns it. An ARN (`arn:<partition>:s3:<region>:<account>:accesspoint/<name>`) holds a
//! `/`, so it is split off a location's text here, and its requests go to the access point's
//! own endpoint (`https://<name>-<account>.s3-accesspoint.<region>.amazonaws.com`, the key as
//! the path), signed for its region.

/// An access point, from its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPoint {
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: String,
    /// Its region.
    pub region: String,
    /// Its account.
    pub account: String,
    /// Its name.
    pub name: String,
}

/// The start of an access point ARN's resource.
const RESOURCE: &str = "accesspoint/";

impl AccessPoint {
    /// The access point `arn` names, if it is an S3 access point ARN.
    pub fn parse(arn: &str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("s3"), Some(region), Some(account), Some(res)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let name = res.strip_prefix(RESOURCE)?;
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        (partition.starts_with("aws") && valid(region) && account_ok && valid(name)).then(|| Self {
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Its ARN.
    pub fn arn(&self) -> String {
        format!(
            "arn:{}:s3:{}:{}:{RESOURCE}{}",
            self.partition, self.region, self.account, self.name
        )
    }

    /// The URL its requests go to: `template` (`{name}`, `{account}`, `{region}` replaced;
    /// `[aws] s3_access_point_endpoint`), else AWS's.
    pub fn endpoint(&self, template: Option<&str>) -> String {
        let domain = if self.partition == "aws-cn" {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        let default = format!("https://{{name}}-{{account}}.s3-accesspoint.{{region}}.{domain}");
        template
            .unwrap_or(&default)
            .replace("{name}", &self.name)
            .replace("{account}", &self.account)
            .replace("{region}", &self.region)
    }
}

/// Split the text after `s3://` into its bucket and the rest: the bucket ends at the first
/// `/`, or for an access point ARN at the `/` after its name.
pub fn split_bucket(rest: &str) -> (&str, &str) {
    if rest.starts_with("arn:") {
        if let Some(at) = rest.find(RESOURCE) {
            let name_start = at + RESOURCE.len();
            return match rest[name_start..].find('/') {
                Some(slash) => (&rest[..name_start + slash], &rest[name_start + slash + 1..]),
                None => (rest, ""),
            };
        }
    }
    rest.split_once('/').unwrap_or((rest, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:s3:eu-west-1:123456789012:accesspoint/audit-ap";

    #[test]
    fn an_arn_is_one_bucket_and_its_endpoint_is_the_access_points() {
        assert_eq!(
            split_bucket(&format!("{ARN}/logs/acme/x.csv")),
            (ARN, "logs/acme/x.csv")
        );
        assert_eq!(split_bucket(ARN), (ARN, ""));
        assert_eq!(split_bucket("bucket/a/b"), ("bucket", "a/b"));
        assert_eq!(
            split_bucket("audit-ap-abcdefgh123-s3alias/a"),
            ("audit-ap-abcdefgh123-s3alias", "a")
        );
        let ap = AccessPoint::parse(ARN).unwrap();
        assert_eq!(ap.arn(), ARN);
        assert_eq!(
            ap.endpoint(None),
            "https://audit-ap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            ap.endpoint(Some("http://127.0.0.1:9/ap/{name}")),
            "http://127.0.0.1:9/ap/audit-ap"
        );
        let cn = AccessPoint::parse("arn:aws-cn:s3:cn-north-1:123456789012:accesspoint/a").unwrap();
        assert!(cn
            .endpoint(None)
            .ends_with(".s3-accesspoint.cn-north-1.amazonaws.com.cn"));
    }

    #[test]
    fn what_is_no_access_point_arn_is_refused() {
        for text in [
            "bucket",
            "arn:aws:s3:::bucket",
            "arn:aws:s3:eu-west-1:123:accesspoint/a",
            "arn:aws:s3:eu-west-1:123456789012:accesspoint/",
            "arn:aws:s3:eu-west-1:123456789012:accesspoint/A_B",
            "arn:aws:s3-object-lambda:eu-west-1:123456789012:accesspoint/a",
        ] {
            assert_eq!(AccessPoint::parse(text), None, "{text}");
        }
    }
}
