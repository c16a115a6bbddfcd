//! Column rules: `hash` (HMAC-SHA256 under a key from the environment), `redact` and
//! `email_domain`. No protected value reaches any output byte (Parquet, report, marker,
//! rejects, standard output and error); the same value gives the same hash in two runs and
//! another key another hash; a `hash` rule without a key is a config error.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use proptest::prelude::*;

const KEY: &str = "k3y-for-tests-0123456789";

fn config(dir: &Path) {
    std::fs::write(
        dir.join("citrine.toml"),
        "[lake]\nroot = \"lake\"\ncompression = \"none\"\n[run]\nthreads = 2\nmax_reject_fraction = 0.9\n\n[[table]]\nname = \"audit\"\nformat = \"audit\"\ninputs = [\"in/{customer}/*.csv\"]\nmask_ips = [\"source_ip\"]\n[table.columns.user_email]\nmask = \"hash\"\n[table.columns.user_id]\nmask = \"redact\"\n[table.columns.reply_to]\nmask = \"email_domain\"\n",
    )
    .unwrap();
}

/// One row's protected values.
#[derive(Debug, Clone)]
struct Person {
    email: String,
    id: String,
    reply_local: String,
}

fn person() -> impl Strategy<Value = Person> {
    (
        "[a-z]{6,10}",
        "[a-z]{4,8}",
        "[A-Za-z0-9]{10,16}",
        "[a-z]{6,10}",
    )
        .prop_map(|(user, dom, id, reply)| Person {
            email: format!("{user}@{dom}.example"),
            id: format!("uid-{id}"),
            reply_local: format!("r-{reply}"),
        })
}

/// Audit files for two customers; every third person also has a bad row (a field too many)
/// that holds their values, so it is rejected with them.
fn write_inputs(dir: &Path, people: &[Person]) {
    for (c, customer) in ["acme", "globex"].iter().enumerate() {
        let folder = dir.join("in").join(customer);
        std::fs::create_dir_all(&folder).unwrap();
        let mut text = String::from("timestamp,user_email,user_id,reply_to,action,source_ip\n");
        for (i, p) in people.iter().enumerate().filter(|(i, _)| i % 2 == c) {
            text.push_str(&format!(
                "2024-03-0{}T09:00:{:02}Z,{},{},{}@reply.example,login,203.0.113.{}\n",
                1 + i % 3,
                i % 60,
                p.email,
                p.id,
                p.reply_local,
                i % 250
            ));
            if i % 3 == 0 {
                text.push_str(&format!(
                    "2024-03-01T09:00:00Z,{},{},{}@reply.example,login,203.0.113.1,extra\n",
                    p.email, p.id, p.reply_local
                ));
            }
        }
        std::fs::write(folder.join("2024-03-01.csv"), text).unwrap();
    }
}

fn run(dir: &Path, key: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_citrine"));
    cmd.current_dir(dir)
        .args(["run", "--json"])
        .env("CITRINE_LOG", "debug")
        .env_remove("CITRINE_HASH_KEY");
    if let Some(k) = key {
        cmd.env("CITRINE_HASH_KEY", k);
    }
    cmd.output().unwrap()
}

/// Every byte citrine wrote under `dir/lake`, file by file.
fn lake_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let lake = dir.join("lake");
    common::files_below(&lake)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(lake.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

/// The `user_email` values written, read back with the parquet crate.
fn hashes(dir: &Path) -> BTreeSet<String> {
    use arrow::array::AsArray;
    let mut out = BTreeSet::new();
    for batch in common::batches_below(&dir.join("lake/data/audit")) {
        let emails = batch.column_by_name("user_email").unwrap();
        let ids = batch.column_by_name("user_id").unwrap();
        assert_eq!(
            ids.null_count(),
            ids.len(),
            "redacted: every user_id is null"
        );
        let replies = batch.column_by_name("reply_to").unwrap();
        for r in replies.as_string::<i32>().iter() {
            assert_eq!(r, Some("reply.example"));
        }
        out.extend(
            emails
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap().to_owned()),
        );
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn no_protected_value_reaches_any_output(people in proptest::collection::vec(person(), 6..20)) {
        let a = tempfile::tempdir().unwrap();
        config(a.path());
        write_inputs(a.path(), &people);
        let out = run(a.path(), Some(KEY));
        prop_assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        prop_assert!(summary[0]["rows_rejected"].as_u64().unwrap() > 0, "bad rows were rejected");
        let mut outputs = lake_bytes(a.path());
        outputs.push(("stdout".into(), out.stdout.clone()));
        outputs.push(("stderr".into(), out.stderr.clone()));
        for p in &people {
            for value in [&p.email, &p.id, &p.reply_local, KEY] {
                for (name, bytes) in &outputs {
                    prop_assert!(!contains(bytes, value), "{value:?} in {name}");
                }
            }
        }
        let first = hashes(a.path());
        prop_assert!(first.iter().all(|h| h.len() == 64));

        // The same inputs into another lake with the same key: the same hashes.
        let b = tempfile::tempdir().unwrap();
        config(b.path());
        write_inputs(b.path(), &people);
        prop_assert_eq!(run(b.path(), Some(KEY)).status.code(), Some(0));
        prop_assert_eq!(&hashes(b.path()), &first);
        // Another key: none of them.
        let c = tempfile::tempdir().unwrap();
        config(c.path());
        write_inputs(c.path(), &people);
        prop_assert_eq!(run(c.path(), Some("another key, long enough")).status.code(), Some(0));
        prop_assert!(hashes(c.path()).is_disjoint(&first));
    }
}

#[test]
fn a_hash_is_hmac_sha256_of_the_value_and_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let people = [Person {
        email: "alice@example.com".into(),
        id: "uid-1".into(),
        reply_local: "r".into(),
    }];
    write_inputs(dir.path(), &people);
    // Without the key: a config error naming it, nothing written.
    let out = run(dir.path(), None);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "citrine: citrine.toml: config key `privacy.hash_key_env`: a `hash` column rule needs a key: set the environment variable CITRINE_HASH_KEY (at least 16 bytes); citrine never hashes without one"
    );
    assert!(!dir.path().join("lake").exists());
    let out = run(dir.path(), Some("too short"));
    assert_eq!(out.status.code(), Some(2));
    // With it: HMAC-SHA256(key, value), hex, as Python's hmac module computes it.
    let out = run(dir.path(), Some(KEY));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        hashes(dir.path()),
        BTreeSet::from([
            "004d2e8165b33b5cd4477febbe64c69e1873b8373290a147d5e23c7fdab439db".to_owned()
        ])
    );
}

#[test]
fn inspect_shows_a_file_as_the_tables_rules_leave_it() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let people = [Person {
        email: "alice@example.com".into(),
        id: "uid-secret-1".into(),
        reply_local: "r-private".into(),
    }];
    write_inputs(dir.path(), &people);
    let out = Command::new(env!("CARGO_BIN_EXE_citrine"))
        .current_dir(dir.path())
        .args(["inspect", "--table", "audit", "in/acme/2024-03-01.csv"])
        .env("CITRINE_HASH_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for value in ["alice@example.com", "uid-secret-1", "r-private"] {
        assert!(!text.contains(value), "{value} in:\n{text}");
    }
    assert!(
        text.contains("004d2e8165b33b5cd4477febbe64c69e1873b8373290a147d5e23c7fdab439db"),
        "{text}"
    );
    assert!(text.contains("reply.example"), "{text}");
    assert!(text.contains("(withheld: "), "the bad row's text: {text}");
}

#[test]
fn the_key_can_come_from_secrets_manager() {
    let Some(e) = common::aws::endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let name = format!("citrine-hash-key-{}", std::process::id());
    let arn = e.client(&["secret", &name, KEY])["arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let cfg = dir.path().join("citrine.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("[privacy]\nhash_key_secret_arn = \"{arn}\"\n{text}"),
    )
    .unwrap();
    let people = [Person {
        email: "alice@example.com".into(),
        id: "uid-1".into(),
        reply_local: "r".into(),
    }];
    write_inputs(dir.path(), &people);
    // No CITRINE_HASH_KEY: the key is the secret's text.
    common::succeeded(&e.citrine(dir.path(), &["run", "--json"], &[]));
    assert_eq!(
        hashes(dir.path()),
        BTreeSet::from([
            "004d2e8165b33b5cd4477febbe64c69e1873b8373290a147d5e23c7fdab439db".to_owned()
        ])
    );
    // The policy names the secret, and printing it needs no access to it.
    let out = common::citrine(dir.path(), &["iam-policy"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&arn));
    // A secret that does not exist: an error naming it, nothing written.
    let missing = arn.replace(&name, "no-such-secret");
    std::fs::write(
        &cfg,
        format!("[privacy]\nhash_key_secret_arn = \"{missing}\"\n{text}"),
    )
    .unwrap();
    let out = e.citrine(dir.path(), &["run"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("secret {missing}: ")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The key is asked for only by what hashes. Without it, on a config with a `hash` rule, the
/// commands that only read or plan work; `run` and a shard refuse (exit 2, naming the
/// variable), writing nothing; `inspect --table` shows the hashed column redacted.
#[test]
fn only_the_commands_that_hash_need_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d);
    write_inputs(
        d,
        &[Person {
            email: "carol@example.com".into(),
            id: "uid-9".into(),
            reply_local: "c".into(),
        }],
    );
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_citrine"))
            .current_dir(d)
            .args(args)
            .env_remove("CITRINE_HASH_KEY")
            .output()
            .unwrap()
    };
    let csv = d.join("in/acme/2024-03-01.csv");
    let csv = csv.to_str().unwrap();
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["iam-policy"],
        &["inspect", "--table", "audit", csv],
        &["plan", "--table", "audit", "--shards", "2", "--json"],
        &["abort", "--table", "audit", "--planned"],
        &["compact", "--table", "audit"],
        &["catalog", "sync"],
    ] {
        let out = cli(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args[0] == "inspect" {
            let shown = String::from_utf8_lossy(&out.stdout);
            assert!(!shown.contains("carol@example.com"), "{shown}");
        }
    }
    let refused = "a `hash` column rule needs a key: set the environment variable CITRINE_HASH_KEY";
    for args in [
        &["run"][..],
        &["run", "--table", "audit", "--planned", "--shard", "0"],
    ] {
        if args.len() > 1 {
            common::succeeded(&cli(&["plan", "--table", "audit", "--shards", "1"]));
        }
        let out = cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(refused),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args.len() > 1 {
            common::succeeded(&cli(&["abort", "--table", "audit", "--planned"]));
        }
    }
    assert!(
        !d.join("lake/data").exists(),
        "nothing written without the key"
    );
}
