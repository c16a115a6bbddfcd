//! The marker: a Redshift COPY manifest listing exactly the run's data files, each with its
//! exact size. It is the only object whose name ends in `.manifest`.

use serde::Serialize;

use crate::commit::report::WrittenRecord;

#[derive(Serialize)]
struct Manifest<'a> {
    entries: Vec<Entry<'a>>,
}

#[derive(Serialize)]
struct Entry<'a> {
    url: &'a str,
    mandatory: bool,
    meta: Meta,
}

#[derive(Serialize)]
struct Meta {
    content_length: u64,
}

/// The manifest JSON for `files`, pretty-printed (people read it too).
pub fn manifest_json(files: &[WrittenRecord]) -> String {
    let manifest = Manifest {
        entries: files
            .iter()
            .map(|f| Entry {
                url: &f.url,
                mandatory: true,
                meta: Meta {
                    content_length: f.bytes,
                },
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&manifest).expect("plain data serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_matches_the_redshift_shape() {
        let files = [
            WrittenRecord {
                url: "s3://central/wau/data/t/customer=acme/dt=2019-12-04/part-r1-00000.parquet"
                    .into(),
                key: "data/t/customer=acme/dt=2019-12-04/part-r1-00000.parquet".into(),
                bytes: 4242,
                rows: 10,
                customer: "acme".into(),
                dt: "2019-12-04".into(),
            },
            WrittenRecord {
                url: "file:///lake/data/t/customer=globex/dt=2019-12-05/part-r1-00001.parquet"
                    .into(),
                key: "data/t/customer=globex/dt=2019-12-05/part-r1-00001.parquet".into(),
                bytes: 17,
                rows: 1,
                customer: "globex".into(),
                dt: "2019-12-05".into(),
            },
        ];
        insta::assert_snapshot!(manifest_json(&files));
        let parsed: serde_json::Value = serde_json::from_str(&manifest_json(&[])).unwrap();
        assert_eq!(parsed, serde_json::json!({"entries": []}));
    }
}
