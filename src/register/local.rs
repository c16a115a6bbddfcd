//! The local catalog: one JSON file per table under `<root>/_citrine/catalog/`, written
//! atomically. It holds what a Glue table holds: location, columns, partition keys and
//! partitions with their locations.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Catalog;
use crate::commit::report::ColumnRecord;
use crate::error::{Error, Result};
use crate::lake::{write_atomic, Lake};
use crate::partition::PartitionKey;
use crate::schema::{CUSTOMER, DT};

/// One table in the local catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalTable {
    /// Database name.
    pub database: String,
    /// Table name.
    pub name: String,
    /// Data location URL.
    pub location: String,
    /// `parquet`.
    pub classification: String,
    /// Schema version, grown by one on every change.
    pub version: u64,
    /// Columns in file order.
    pub columns: Vec<ColumnRecord>,
    /// Partition keys.
    pub partition_keys: Vec<ColumnRecord>,
    /// Partitions: `customer=<c>/dt=<d>` → location.
    pub partitions: BTreeMap<String, PartitionRecord>,
}

/// One registered partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Partition values, in key order.
    pub values: Vec<String>,
    /// Its folder URL.
    pub location: String,
}

/// A local catalog for one lake.
#[derive(Debug, Clone)]
pub struct LocalCatalog {
    dir: PathBuf,
    database: String,
}

impl LocalCatalog {
    /// The catalog of `lake`, naming its tables' database `database`.
    pub fn new(lake: &Lake, database: &str) -> Self {
        Self {
            dir: lake.internal_dir().join("catalog"),
            database: database.to_owned(),
        }
    }

    fn path(&self, table: &str) -> PathBuf {
        self.dir.join(format!("{table}.json"))
    }

    /// Read a table, if registered.
    pub fn table(&self, table: &str) -> Result<Option<LocalTable>> {
        let path = self.path(table);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Corrupt {
                    path: path.display().to_string(),
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Every registered table.
    pub fn tables(&self) -> Result<Vec<LocalTable>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        for e in entries {
            let name = e.map_err(|e| Error::io(&self.dir, e))?.file_name();
            if let Some(t) = name.to_string_lossy().strip_suffix(".json") {
                if !t.starts_with('.') {
                    out.extend(self.table(t)?);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn save(&self, t: &LocalTable) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(t).expect("plain data");
        text.push(b'\n');
        write_atomic(&self.path(&t.name), &text)
    }
}

impl Catalog for LocalCatalog {
    fn columns(&self, table: &str) -> Result<Option<Vec<ColumnRecord>>> {
        Ok(self.table(table)?.map(|t| t.columns))
    }

    fn ensure_table(
        &mut self,
        table: &str,
        columns: &[ColumnRecord],
        location: &str,
    ) -> Result<u64> {
        let mut t = match self.table(table)? {
            Some(t) => t,
            None => LocalTable {
                database: self.database.clone(),
                name: table.to_owned(),
                location: location.to_owned(),
                classification: "parquet".into(),
                version: 0,
                columns: Vec::new(),
                partition_keys: vec![
                    ColumnRecord {
                        name: CUSTOMER.into(),
                        kind: "string".into(),
                    },
                    ColumnRecord {
                        name: DT.into(),
                        kind: "date".into(),
                    },
                ],
                partitions: BTreeMap::new(),
            },
        };
        if !super::grows_at_end(&t.columns, columns) {
            return Err(Error::Corrupt {
                path: self.path(table).display().to_string(),
                message: format!(
                    "the table's columns can only grow at the end: registered {:?}, new {:?}",
                    t.columns.iter().map(|c| &c.name).collect::<Vec<_>>(),
                    columns.iter().map(|c| &c.name).collect::<Vec<_>>()
                ),
            });
        }
        if t.columns.len() < columns.len() || t.version == 0 {
            t.columns = columns.to_vec();
            t.version += 1;
            self.save(&t)?;
        }
        Ok(t.version)
    }

    fn add_partitions(
        &mut self,
        table: &str,
        partitions: &[(PartitionKey, String)],
    ) -> Result<usize> {
        let Some(mut t) = self.table(table)? else {
            return Err(Error::Corrupt {
                path: self.path(table).display().to_string(),
                message: "partitions added to a table that is not registered".into(),
            });
        };
        let mut added = 0;
        for (key, location) in partitions {
            if let std::collections::btree_map::Entry::Vacant(slot) = t.partitions.entry(key.path())
            {
                slot.insert(PartitionRecord {
                    values: vec![key.customer.clone(), key.date()],
                    location: location.clone(),
                });
                added += 1;
            }
        }
        if added > 0 {
            self.save(&t)?;
        }
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<ColumnRecord> {
        names
            .iter()
            .map(|n| ColumnRecord {
                name: (*n).into(),
                kind: "string".into(),
            })
            .collect()
    }

    #[test]
    fn schema_grows_at_the_end_only_and_partitions_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LocalCatalog::new(&Lake::new(dir.path()), "db");
        assert_eq!(
            c.ensure_table("t", &cols(&["a", "b"]), "file:///l/data/t/")
                .unwrap(),
            1
        );
        assert_eq!(
            c.ensure_table("t", &cols(&["a", "b"]), "file:///l/data/t/")
                .unwrap(),
            1
        );
        assert_eq!(
            c.ensure_table("t", &cols(&["a", "b", "c"]), "x").unwrap(),
            2
        );
        assert!(c.ensure_table("t", &cols(&["b", "a", "c"]), "x").is_err());
        let key = PartitionKey {
            customer: "acme".into(),
            dt: 18_234,
        };
        let parts = [(
            key.clone(),
            "file:///l/data/t/customer=acme/dt=2019-12-04/".to_string(),
        )];
        assert_eq!(c.add_partitions("t", &parts).unwrap(), 1);
        assert_eq!(c.add_partitions("t", &parts).unwrap(), 0);
        let t = c.table("t").unwrap().unwrap();
        assert_eq!(
            t.partitions["customer=acme/dt=2019-12-04"].values,
            ["acme", "2019-12-04"]
        );
        assert_eq!(c.tables().unwrap().len(), 1);
    }
}
