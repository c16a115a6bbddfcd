//! The docs check: every `citrine` command and flag the README and the guide show exists in
//! the binary, and every config key the guide's configuration table lists is one the config
//! accepts. A renamed flag or key fails here, not in a user's shell.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn doc(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// The code of `text`: its fenced blocks' lines and its inline code spans.
fn code(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            // A shell comment is prose.
            let line = line.split(" # ").next().unwrap();
            if !line.trim_start().starts_with('#') {
                out.push(line.to_owned());
            }
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let Some(span) = parts.next() {
            out.push(span.to_owned());
            parts.next();
        }
    }
    out
}

/// Code that names citrine without invoking it: the `created_by` of its Parquet files.
const NOT_INVOCATIONS: [&str; 1] = ["citrine version X.Y.Z"];

/// The commands with subcommands of their own.
const GROUPS: [&str; 2] = ["catalog", "redshift"];

/// Each `citrine <command> [<subcommand>] [--flags]` in the code of `text`.
fn invocations(text: &str) -> BTreeSet<(Vec<String>, Vec<String>)> {
    let mut out = BTreeSet::new();
    for span in code(text) {
        if NOT_INVOCATIONS.iter().any(|n| span.contains(n)) {
            continue;
        }
        let words: Vec<&str> = span.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            let is_binary = *w == "citrine" || w.ends_with("/citrine") || *w == "$citrine";
            let Some(first) = words.get(i + 1) else {
                continue;
            };
            let word = first.starts_with(|c: char| c.is_ascii_lowercase())
                && first.chars().all(|c| c.is_ascii_lowercase() || c == '-');
            if !is_binary || !word {
                continue;
            }
            let mut command = vec![first.to_string()];
            if GROUPS.contains(first) {
                if let Some(sub) = words.get(i + 2).filter(|s| !s.starts_with('-')) {
                    command.push(sub.to_string());
                }
            }
            let flags = words[i + 1..]
                .iter()
                .take_while(|w| **w != "|" && **w != "&&" && **w != "#")
                .filter(|w| w.starts_with("--"))
                .map(|w| {
                    w.split('=')
                        .next()
                        .unwrap()
                        .trim_end_matches([',', ')', '`'])
                        .to_owned()
                })
                .collect();
            out.insert((command, flags));
        }
    }
    out
}

fn help(command: &[String]) -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_citrine"))
        .args(command)
        .arg("--help")
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_command_and_flag_the_docs_show_exists() {
    let mut checked = 0;
    for rel in ["README.md", "docs/guide.md"] {
        for (command, flags) in invocations(&doc(rel)) {
            let Some(text) = help(&command) else {
                panic!("{rel}: `citrine {}` is no command", command.join(" "));
            };
            for flag in flags {
                assert!(
                    text.contains(&flag) || ["--help", "--version"].contains(&flag.as_str()),
                    "{rel}: `citrine {}` has no {flag}",
                    command.join(" ")
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked > 30,
        "only {checked} invocations found: the parser is broken"
    );
}

/// The TOML that sets `key` (dotted, as the guide writes it) to `value`.
fn toml_setting(key: &str, value: &str) -> String {
    let key = key.replace("<name>", "x");
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["table", rest @ ..] if rest.len() == 1 => format!("[[table]]\n{} = {value}\n", rest[0]),
        ["table", path @ .., last] => {
            format!("[[table]]\n[table.{}]\n{last} = {value}\n", path.join("."))
        }
        [section, last] => format!("[{section}]\n{last} = {value}\n"),
        [section, path @ .., last] => format!("[{section}.{}]\n{last} = {value}\n", path.join(".")),
        _ => panic!("{key}"),
    }
}

/// A config (the lake's root given) that sets `key` to `value`.
fn config_setting(key: &str, value: &str) -> String {
    match key.strip_prefix("lake.") {
        Some("root") => format!("[lake]\nroot = {value}\n"),
        Some(name) => format!("[lake]\nroot = \"lake\"\n{name} = {value}\n"),
        None => format!("[lake]\nroot = \"lake\"\n{}", toml_setting(key, value)),
    }
}

#[test]
fn every_config_key_the_guide_lists_is_accepted() {
    let guide = doc("docs/guide.md");
    let mut keys = Vec::new();
    for line in guide.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap();
        for key in first.split('`').skip(1).step_by(2) {
            if key.contains('.') && !key.contains(' ') {
                keys.push(key.to_owned());
            }
        }
    }
    assert!(keys.len() > 50, "{keys:?}");
    for key in &keys {
        let known = ["\"x\"", "1", "true", "[]", "{}"].iter().any(|value| {
            let text = config_setting(key, value);
            match citrine::config::ConfigFile::parse(&text, "citrine.toml") {
                Ok(_) => true,
                Err(e) => !e.to_string().contains("unknown field"),
            }
        });
        assert!(
            known,
            "the guide lists `{key}`, which the config does not accept"
        );
    }
    // And the check can fail.
    let text = config_setting("lake.no_such_key", "1");
    let err = citrine::config::ConfigFile::parse(&text, "citrine.toml").unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}
