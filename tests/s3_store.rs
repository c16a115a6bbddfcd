//! The S3 store against the local endpoint over HTTP: conditional writes (`If-None-Match: *`,
//! `If-Match`), streaming reads, snapshot reads of a listed version, single and multipart
//! uploads, and an unfinished multipart upload leaving nothing visible.

mod common;

use std::io::{Read, Write};

use citrine::aws::AwsOptions;
use citrine::store::{Location, Stores};
use common::aws::Endpoint;

/// The store's contract on one endpoint, in a fresh bucket, with request bodies signed or not
/// (`sign_payload`; `None`: the default for the endpoint).
fn conformance(endpoint: &Endpoint, sign_payload: Option<bool>) {
    let bucket = endpoint.fresh_bucket("store");
    let stores = Stores::new(AwsOptions {
        s3_endpoint: Some(endpoint.url.clone()),
        s3_part_mb: Some(5),
        s3_sign_payload: sign_payload,
        ..Default::default()
    });
    let store = stores
        .open(&Location::S3 {
            bucket: bucket.clone(),
            prefix: "root/p".into(),
        })
        .unwrap();
    assert_eq!(
        store.url("a/b.txt"),
        format!("s3://{bucket}/root/p/a/b.txt")
    );

    // Conditional create and replace.
    let v1 = store.create("lock", b"one").unwrap().expect("created");
    assert!(
        store.create("lock", b"two").unwrap().is_none(),
        "If-None-Match"
    );
    let read = store.read("lock").unwrap().unwrap();
    assert_eq!((read.bytes.as_slice(), &read.version), (&b"one"[..], &v1));
    let v2 = store
        .replace("lock", b"three", &v1)
        .unwrap()
        .expect("If-Match");
    assert!(
        store.replace("lock", b"four", &v1).unwrap().is_none(),
        "stale If-Match"
    );
    assert_eq!(store.read("lock").unwrap().unwrap().bytes, b"three");
    store.delete("lock").unwrap();
    store.delete("lock").unwrap();
    assert!(store.read("lock").unwrap().is_none());
    assert!(store.replace("lock", b"five", &v2).unwrap().is_none());

    // A multipart upload of 12 MiB in 5 MiB parts, streamed back whole.
    let body: Vec<u8> = (0..12u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut up = store.upload("data/big.bin").unwrap();
    for chunk in body.chunks(1 << 20) {
        up.write_all(chunk).unwrap();
    }
    assert!(
        store.read("data/big.bin").unwrap().is_none(),
        "visible before finish"
    );
    assert_eq!(up.finish().unwrap(), body.len() as u64);
    let mut back = Vec::new();
    store
        .open("data/big.bin")
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == body, "multipart content differs");

    // A small upload is one PUT; an unfinished multipart upload leaves nothing.
    let mut small = store.upload("data/small.bin").unwrap();
    small.write_all(b"tiny").unwrap();
    assert_eq!(small.finish().unwrap(), 4);
    let mut dropped = store.upload("data/dropped.bin").unwrap();
    dropped.write_all(&body[..6 << 20]).unwrap();
    drop(dropped);
    let listed: Vec<(String, u64)> = store
        .list("data")
        .unwrap()
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    assert_eq!(
        listed,
        [
            ("data/big.bin".to_string(), body.len() as u64),
            ("data/small.bin".to_string(), 4)
        ]
    );
    assert!(store.list("nothing").unwrap().is_empty());

    // A snapshot read gives exactly the listed version: a replaced object is refused before
    // its first byte (If-Match), and a listing that is no longer the object's size fails.
    store.write("in/log", b"first version").unwrap();
    let listed = store.head("in/log").unwrap().unwrap();
    let mut got = Vec::new();
    store
        .open_snapshot(&listed)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, b"first version");
    store.write("in/log", b"second, longer version").unwrap();
    let err = store.open_snapshot(&listed).err().expect("refused");
    assert!(
        matches!(
            &err,
            citrine::Error::Input(citrine::InputError {
                kind: citrine::FileError::Changed { .. },
                ..
            })
        ),
        "{err}"
    );
    let stale_size = citrine::store::ObjectInfo {
        etag: None,
        ..store.head("in/log").unwrap().unwrap()
    };
    let short = citrine::store::ObjectInfo {
        size: stale_size.size - 3,
        ..stale_size
    };
    let err = store
        .open_snapshot(&short)
        .unwrap()
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(
        citrine::error::ChangedWhileRead::find(&err).is_some_and(|d| d.contains("it grew")),
        "{err}"
    );
}

#[test]
fn s3_store_conformance_on_moto_and_seaweedfs() {
    let (Some(moto), Some(seaweed)) = (common::aws::endpoint(), common::aws::strict_s3()) else {
        return;
    };
    // The only test in this binary: it owns the process environment (the AWS chain reads it).
    for (k, v) in moto.env() {
        std::env::set_var(k, v);
    }
    conformance(&moto, None);
    // Over http:// bodies are signed by default; unsigned, as over HTTPS, SeaweedFS still
    // checks the rest of each request's signature.
    conformance(&seaweed, None);
    conformance(&seaweed, Some(false));

    // SeaweedFS checks signatures: requests are really signed with the chain's credentials,
    // and wrong ones are refused, body signed or not.
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "wrong");
    for sign_payload in [None, Some(false)] {
        let stores = Stores::new(AwsOptions {
            s3_endpoint: Some(seaweed.url.clone()),
            s3_sign_payload: sign_payload,
            ..Default::default()
        });
        let store = stores
            .open(&Location::S3 {
                bucket: seaweed.fresh_bucket("sig"),
                prefix: String::new(),
            })
            .unwrap();
        let err = store.write("x", b"y").unwrap_err().to_string();
        assert!(
            err.contains("SignatureDoesNotMatch") || err.contains("403"),
            "{sign_payload:?}: {err}"
        );
    }
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
}
