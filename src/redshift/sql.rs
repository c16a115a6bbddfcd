//! Redshift SQL for a table and its markers: the warehouse DDL (columns in the exact Parquet
//! order, because COPY maps Parquet columns by position), the schema-growth statements, the
//! Spectrum alternative, the COPY of one marker, and the exactly-once load transaction.
//!
//! Every function here returns text only; running it is [`super::data_api`]'s job.

use std::collections::BTreeMap;

use crate::commit::report::ColumnRecord;

/// The longest value in bytes seen of each string column (run reports record them).
pub type Widths = BTreeMap<String, u32>;

/// Redshift's widest VARCHAR, in bytes.
pub const MAX_VARCHAR: u32 = 65_535;

/// The VARCHAR width for a column whose longest value seen is `longest` bytes: twice that,
/// rounded up to a power of two, at least 256, at most [`MAX_VARCHAR`] (Redshift's guidance:
/// the smallest column that fits, since declared widths cost memory in every query; the
/// headroom keeps widening rare).
pub fn varchar_width(longest: u32) -> u32 {
    (u64::from(longest) * 2)
        .next_power_of_two()
        .clamp(256, u64::from(MAX_VARCHAR))
        .min(u64::from(MAX_VARCHAR)) as u32
}

/// The table recording which runs were loaded.
pub const LOADS_TABLE: &str = "citrine_loads";

/// Where a warehouse table lives and how COPY reads S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warehouse {
    /// Schema of the target tables and of `citrine_loads` (default `public`).
    pub schema: String,
    /// IAM role COPY assumes to read the lake: an ARN, or `default` (the cluster's default role).
    pub iam_role: String,
}

impl Default for Warehouse {
    fn default() -> Self {
        Self {
            schema: "public".into(),
            iam_role: "default".into(),
        }
    }
}

/// A double-quoted identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A single-quoted string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Warehouse {
    /// `"schema"."table"`.
    pub fn qualified(&self, table: &str) -> String {
        format!("{}.{}", ident(&self.schema), ident(table))
    }

    fn iam_role(&self) -> String {
        if self.iam_role == "default" {
            "IAM_ROLE default".into()
        } else {
            format!("IAM_ROLE {}", literal(&self.iam_role))
        }
    }
}

/// The Redshift type of a catalog column. Strings are sized in bytes: columns whose values
/// citrine bounds get a fixed narrow width; every other string is sized from the longest value
/// the lake holds (`widths`, see [`varchar_width`]), or 65,535 bytes when none was recorded
/// (citrine cuts longer values, so a load never fails on width).
pub fn redshift_type(column: &ColumnRecord, widths: &Widths) -> String {
    match column.kind.as_str() {
        "timestamp" => "TIMESTAMP".into(),
        "date" => "DATE".into(),
        "bigint" => "BIGINT".into(),
        "int" => "INTEGER".into(),
        "double" => "DOUBLE PRECISION".into(),
        "boolean" => "BOOLEAN".into(),
        _ => {
            let bytes = match column.name.as_str() {
                // A masked address (`203.0.113.0/24`, an IPv6 /48) or `-`.
                "c_ip" => 64,
                // One path segment of an S3 key (at most 1,024 bytes).
                "customer" => 1024,
                // `s3://` + bucket (63) + key (1,024).
                "source_file" => 1100,
                name => widths.get(name).map_or(MAX_VARCHAR, |w| varchar_width(*w)),
            };
            format!("VARCHAR({bytes})")
        }
    }
}

fn column_lines(columns: &[ColumnRecord], widths: &Widths) -> String {
    columns
        .iter()
        .map(|c| format!("    {} {}", ident(&c.name), redshift_type(c, widths)))
        .collect::<Vec<_>>()
        .join(",\n")
}

/// `CREATE TABLE` for the warehouse table: columns in file order, sorted by `ts` then
/// `row_num` (time-range scans and the load's deletes stay cheap), distribution left to
/// Redshift (`AUTO`: even while small, by key when it finds one).
pub fn create_table(
    w: &Warehouse,
    table: &str,
    columns: &[ColumnRecord],
    widths: &Widths,
) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n{}\n)\nDISTSTYLE AUTO\nCOMPOUND SORTKEY (\"ts\", \"row_num\");\n",
        w.qualified(table),
        column_lines(columns, widths)
    )
}

/// `ALTER TABLE … ADD COLUMN` for every column of `now` past the `before` ones (schema growth
/// only ever appends).
pub fn add_columns(
    w: &Warehouse,
    table: &str,
    before: &[ColumnRecord],
    now: &[ColumnRecord],
    widths: &Widths,
) -> String {
    now.iter()
        .skip(before.len())
        .map(|c| {
            format!(
                "ALTER TABLE {} ADD COLUMN {} {};\n",
                w.qualified(table),
                ident(&c.name),
                redshift_type(c, widths)
            )
        })
        .collect()
}

/// The query for the declared widths of `table`'s VARCHAR columns in the warehouse.
pub fn varchar_widths(w: &Warehouse, table: &str) -> String {
    format!(
        "SELECT \"column_name\", \"character_maximum_length\" FROM information_schema.columns WHERE \"table_schema\" = {} AND \"table_name\" = {} AND \"character_maximum_length\" IS NOT NULL;\n",
        literal(&w.schema),
        literal(table)
    )
}

/// Widen `column` of `table` to `width` bytes. Redshift runs it outside a transaction, so
/// it is sent alone, before the load whose rows need it.
pub fn widen_column(w: &Warehouse, table: &str, column: &str, width: u32) -> String {
    format!(
        "ALTER TABLE {} ALTER COLUMN {} TYPE VARCHAR({width});",
        w.qualified(table),
        ident(column)
    )
}

/// The warehouse DDL of a table whose schema went through `history` (schema version → columns,
/// oldest first, as the run reports record it): `CREATE TABLE` for the latest schema, then,
/// for each earlier version, the `ALTER TABLE` statements that bring a table created at that
/// version up to date. With `from_version`, only the statements from that version.
pub fn ddl(
    w: &Warehouse,
    table: &str,
    history: &[(u64, Vec<ColumnRecord>)],
    from_version: Option<u64>,
    widths: &Widths,
) -> Result<String, String> {
    let Some((latest, columns)) = history.last() else {
        return Err(format!("{table}: no committed run yet, so no schema"));
    };
    let mut out = String::new();
    if let Some(v) = from_version {
        let Some((_, before)) = history.iter().find(|(k, _)| *k == v) else {
            let known: Vec<_> = history.iter().map(|(k, _)| k.to_string()).collect();
            return Err(format!(
                "{table}: no schema version {v} (versions: {})",
                known.join(", ")
            ));
        };
        out.push_str(&format!("-- {table}: schema v{v} to v{latest}\n"));
        out.push_str(&add_columns(w, table, before, columns, widths));
        return Ok(out);
    }
    out.push_str(&format!(
        "-- {table}: schema v{latest}, {} columns in Parquet order\n",
        columns.len()
    ));
    out.push_str(&create_table(w, table, columns, widths));
    for (v, before) in &history[..history.len() - 1] {
        out.push_str(&format!(
            "\n-- A table created at schema v{v} grows to v{latest} with:\n"
        ));
        out.push_str(&add_columns(w, table, before, columns, widths));
    }
    Ok(out)
}

/// The Spectrum alternative: an external schema over the Glue database, so the lake's tables
/// are queried in place (no COPY).
pub fn spectrum_schema(
    external_schema: &str,
    glue_database: &str,
    iam_role: &str,
    region: Option<&str>,
) -> String {
    let role = if iam_role == "default" {
        "IAM_ROLE default".to_owned()
    } else {
        format!("IAM_ROLE {}", literal(iam_role))
    };
    let region = region
        .map(|r| format!("\nREGION {}", literal(r)))
        .unwrap_or_default();
    format!(
        "CREATE EXTERNAL SCHEMA IF NOT EXISTS {}\nFROM DATA CATALOG DATABASE {}\n{role}{region};\n",
        ident(external_schema),
        literal(glue_database),
    )
}

/// The COPY of one marker into `target`, as AWS documents COPY from Parquet: no column list,
/// the file's columns mapped to the table's by position, so `target` must have exactly the
/// run's columns in file order (the load's stage table does; a grown warehouse table takes an
/// older marker through `redshift load`).
pub fn copy(w: &Warehouse, target: &str, manifest_url: &str) -> String {
    format!(
        "COPY {target}\nFROM {}\n{}\nFORMAT AS PARQUET\nMANIFEST;\n",
        literal(manifest_url),
        w.iam_role()
    )
}

/// The `citrine_loads` table.
pub fn create_loads_table(w: &Warehouse) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n    \"run_id\" VARCHAR(64) NOT NULL,\n    \"table_name\" VARCHAR(127) NOT NULL,\n    \"manifest\" VARCHAR(2048) NOT NULL,\n    \"rows_loaded\" BIGINT,\n    \"loaded_at\" TIMESTAMP DEFAULT GETDATE(),\n    PRIMARY KEY (\"run_id\")\n);\n",
        w.qualified(LOADS_TABLE)
    )
}

/// The most recent runs of `table` already loaded, newest first (at most [`RECENT_LOADS`]).
pub fn loaded_runs(w: &Warehouse, table: &str) -> String {
    format!(
        "SELECT \"run_id\" FROM {} WHERE \"table_name\" = {} ORDER BY \"run_id\" DESC LIMIT {RECENT_LOADS};\n",
        w.qualified(LOADS_TABLE),
        literal(table)
    )
}

/// How many of a table's most recent loads [`loaded_runs`] returns: a load plans against
/// these, whatever the table's history (runs older than the oldest of them are loaded).
pub const RECENT_LOADS: usize = 1000;

/// One marker to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load<'a> {
    /// Target table.
    pub table: &'a str,
    /// The run.
    pub run_id: &'a str,
    /// The manifest COPY reads: the marker, or one of the run's files a later
    /// `forget --delete-rows` run left (`None` when it left none, or the run wrote none).
    pub manifest_url: Option<&'a str>,
    /// The marker's URL, recorded in `citrine_loads`.
    pub marker_url: &'a str,
    /// The run's columns (from its report).
    pub columns: &'a [ColumnRecord],
    /// Source files of this run that a later, already loaded run consumed again (they
    /// changed): their rows here are stale and are not loaded.
    pub superseded: &'a [String],
    /// Source files whose rows this run deleted (`citrine forget`), less those a later, already
    /// loaded run consumed again.
    pub forgotten: &'a [String],
    /// Replace the target's rows by row (`source_file`, `row_num`) instead of by source file:
    /// the run holds only some of each source file's rows (a forget run's rewritten files, or
    /// a run some of whose files a loaded forget run replaced).
    pub by_row: bool,
}

/// The load of one marker, as statements that run in one transaction (the Data API's
/// BatchExecuteStatement): lock `citrine_loads` so loads of a table run one at a time, COPY into
/// a staging table, empty the staging table if the run was already loaded (so a marker loaded
/// twice changes nothing), delete the target's rows of every source file being loaded (so a
/// changed source file replaces its old rows; rows of files a later loaded run superseded are
/// dropped first, so loading an old marker late never brings old content back) and of every
/// source file the run forgot, insert, and record the run.
pub fn load_transaction(w: &Warehouse, load: &Load) -> Vec<String> {
    let target = w.qualified(load.table);
    let loads = w.qualified(LOADS_TABLE);
    let stage = ident("citrine_stage");
    let run = literal(load.run_id);
    let loaded = format!("SELECT 1 FROM {loads} WHERE \"run_id\" = {run}");
    let in_list = |files: &[String]| {
        files
            .iter()
            .map(|f| literal(f))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // The stage has exactly the run's columns in file order, what COPY from Parquet maps by
    // position; the insert names them, so an older run loads into a grown table.
    let names = load
        .columns
        .iter()
        .map(|c| ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statements = vec![
        format!("LOCK {loads};"),
        format!(
            "CREATE TEMP TABLE {stage} (\n{}\n);",
            column_lines(load.columns, &Widths::new())
        ),
    ];
    if let Some(manifest) = load.manifest_url {
        statements.push(copy(w, &stage, manifest).trim_end().to_owned());
    }
    statements.push(format!("DELETE FROM {stage} WHERE EXISTS ({loaded});"));
    if !load.superseded.is_empty() {
        statements.push(format!(
            "DELETE FROM {stage} WHERE \"source_file\" IN ({});",
            in_list(load.superseded)
        ));
    }
    if !load.forgotten.is_empty() {
        statements.push(format!(
            "DELETE FROM {target} WHERE \"source_file\" IN ({}) AND NOT EXISTS ({loaded});",
            in_list(load.forgotten)
        ));
    }
    statements.push(if load.by_row {
        format!(
            "DELETE FROM {target} USING (SELECT DISTINCT \"source_file\", \"row_num\" FROM {stage}) AS \"reloaded\" WHERE {target}.\"source_file\" = \"reloaded\".\"source_file\" AND {target}.\"row_num\" = \"reloaded\".\"row_num\";"
        )
    } else {
        format!(
            "DELETE FROM {target} USING (SELECT DISTINCT \"source_file\" FROM {stage}) AS \"reloaded\" WHERE {target}.\"source_file\" = \"reloaded\".\"source_file\";"
        )
    });
    statements.extend([
        format!("INSERT INTO {target} ({names}) SELECT {names} FROM {stage};"),
        format!(
            "INSERT INTO {loads} (\"run_id\", \"table_name\", \"manifest\", \"rows_loaded\") SELECT {run}, {}, {}, (SELECT COUNT(*) FROM {stage}) WHERE NOT EXISTS ({loaded});",
            literal(load.table),
            literal(load.marker_url)
        ),
        format!("DROP TABLE {stage};"),
    ]);
    statements
}

/// Maintenance after loads (outside any transaction: VACUUM cannot run in one).
pub fn maintenance(w: &Warehouse, table: &str, vacuum: bool, analyze: bool) -> Vec<String> {
    let mut out = Vec::new();
    if vacuum {
        out.push(format!("VACUUM SORT ONLY {};", w.qualified(table)));
    }
    if analyze {
        out.push(format!("ANALYZE {};", w.qualified(table)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<ColumnRecord> {
        let c = |name: &str, kind: &str| ColumnRecord {
            name: name.into(),
            kind: kind.into(),
        };
        vec![
            c("ts", "timestamp"),
            c("customer", "string"),
            c("dt", "date"),
            c("source_file", "string"),
            c("row_num", "bigint"),
            c("user", "string"),
            c("sc_status", "int"),
            c("time_taken", "double"),
        ]
    }

    #[test]
    fn quoting_is_safe() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn every_statement_text_is_golden() {
        let w = Warehouse {
            schema: "logs".into(),
            iam_role: "arn:aws:iam::123456789012:role/citrine-copy".into(),
        };
        let cols = columns();
        let none = Widths::new();
        let mut text = String::new();
        text.push_str("-- create_table\n");
        text.push_str(&create_table(&w, "wau_audit_logs", &cols, &none));
        text.push_str("-- create_table sized from the values seen\n");
        let seen: Widths = [("user".to_owned(), 40), ("action".to_owned(), 300)].into();
        text.push_str(&create_table(&w, "wau_audit_logs", &cols, &seen));
        text.push_str("-- varchar_widths, widen_column\n");
        text.push_str(&varchar_widths(&w, "wau_audit_logs"));
        text.push_str(&widen_column(&w, "wau_audit_logs", "user", 2048));
        text.push('\n');
        text.push_str("-- add_columns (v1 had 6 columns)\n");
        text.push_str(&add_columns(&w, "wau_audit_logs", &cols[..6], &cols, &none));
        text.push_str("-- spectrum_schema\n");
        text.push_str(&spectrum_schema(
            "citrine_lake",
            "logs",
            &w.iam_role,
            Some("eu-west-1"),
        ));
        text.push_str("-- copy\n");
        let manifest =
            "s3://central/wau/complete/wau_audit_logs/20261123T090102123Z-0a1b2c3d.manifest";
        text.push_str(&copy(&w, &w.qualified("wau_audit_logs"), manifest));
        text.push_str("-- create_loads_table\n");
        text.push_str(&create_loads_table(&w));
        text.push_str("-- loaded_runs\n");
        text.push_str(&loaded_runs(&w, "wau_audit_logs"));
        text.push_str("-- load_transaction\n");
        let load = Load {
            table: "wau_audit_logs",
            run_id: "20261123T090102123Z-0a1b2c3d",
            manifest_url: Some(manifest),
            marker_url: manifest,
            columns: &cols[..6],
            superseded: &["s3://acme-audit/exports/acme/2024-03-01.csv".into()],
            forgotten: &[],
            by_row: false,
        };
        for s in load_transaction(&w, &load) {
            text.push_str(&s);
            text.push('\n');
        }
        text.push_str("-- load_transaction of a forget run\n");
        let forget = Load {
            run_id: "20261124T090102123Z-0a1b2c3d",
            manifest_url: Some(
                "s3://central/wau/complete/wau_audit_logs/20261124T090102123Z-0a1b2c3d.manifest",
            ),
            marker_url:
                "s3://central/wau/complete/wau_audit_logs/20261124T090102123Z-0a1b2c3d.manifest",
            superseded: &[],
            forgotten: &["s3://acme-audit/exports/acme/2024-03-02.csv".into()],
            by_row: true,
            ..load
        };
        for s in load_transaction(&w, &forget) {
            text.push_str(&s);
            text.push('\n');
        }
        text.push_str("-- load_transaction of a run whose files a forget run all replaced\n");
        let emptied = Load {
            manifest_url: None,
            forgotten: &[],
            ..forget
        };
        for s in load_transaction(&w, &emptied) {
            text.push_str(&s);
            text.push('\n');
        }
        text.push_str("-- maintenance\n");
        for s in maintenance(&Warehouse::default(), "wau_audit_logs", true, true) {
            text.push_str(&s);
            text.push('\n');
        }
        text.push_str("-- ddl with history\n");
        let history = vec![
            (1, cols[..6].to_vec()),
            (2, cols[..7].to_vec()),
            (3, cols.clone()),
        ];
        text.push_str(&ddl(&w, "wau_audit_logs", &history, None, &none).unwrap());
        text.push_str("-- ddl --from-version 2\n");
        text.push_str(&ddl(&w, "wau_audit_logs", &history, Some(2), &none).unwrap());
        insta::assert_snapshot!(text);
        assert!(ddl(&w, "t", &history, Some(9), &none)
            .unwrap_err()
            .contains("versions: 1, 2, 3"));
        assert!(ddl(&w, "t", &[], None, &none).is_err());
    }

    #[test]
    fn widths_have_headroom_and_bounds() {
        assert_eq!(varchar_width(0), 256);
        assert_eq!(varchar_width(100), 256);
        assert_eq!(varchar_width(129), 512);
        assert_eq!(varchar_width(1000), 2048);
        assert_eq!(varchar_width(40_000), MAX_VARCHAR);
        assert_eq!(varchar_width(MAX_VARCHAR), MAX_VARCHAR);
    }
}
