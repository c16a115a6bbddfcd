//! The local catalog: one JSON file per table under `<root>/_citrine/catalog/`, written
//! atomically. It holds what a Glue table holds: location, columns, partition keys and
//! partitions with their locations.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Catalog, PartitionRecord};
use crate::commit::report::ColumnRecord;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::partition::PartitionKey;
use crate::store::Store;

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
    /// An Iceberg table's current metadata file (its URL); `classification` is `iceberg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_location: Option<String>,
}

/// A local catalog for one lake.
#[derive(Debug, Clone)]
pub struct LocalCatalog {
    store: Arc<dyn Store>,
    dir: String,
    database: String,
}

impl LocalCatalog {
    /// The catalog of `lake`, naming its tables' database `database`.
    pub fn new(lake: &Lake, database: &str) -> Self {
        Self {
            store: lake.store().clone(),
            dir: lake.catalog_prefix().to_owned(),
            database: database.to_owned(),
        }
    }

    fn key(&self, table: &str) -> String {
        format!("{}/{table}.json", self.dir)
    }

    /// Read a table, if registered.
    pub fn table(&self, table: &str) -> Result<Option<LocalTable>> {
        let key = self.key(table);
        let Some(found) = self.store.read(&key)? else {
            return Ok(None);
        };
        serde_json::from_slice(&found.bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path: self.store.url(&key),
                message: e.to_string(),
            })
    }

    /// Every registered table.
    pub fn tables(&self) -> Result<Vec<LocalTable>> {
        let mut out = Vec::new();
        for object in self.store.list(&self.dir)? {
            let name = object.key.rsplit('/').next().unwrap_or_default();
            if let Some(t) = name.strip_suffix(".json") {
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
        self.store.write(&self.key(&t.name), &text)
    }

    fn missing(&self, table: &str) -> Error {
        Error::Corrupt {
            path: self.store.url(&self.key(table)),
            message: "the table is not registered".into(),
        }
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
                partition_keys: super::partition_keys().to_vec(),
                partitions: BTreeMap::new(),
                metadata_location: None,
            },
        };
        if !super::grows_at_end(&t.columns, columns) {
            return Err(Error::Corrupt {
                path: self.store.url(&self.key(table)),
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
            return Err(self.missing(table));
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

    fn partitions(&self, table: &str) -> Result<Vec<PartitionRecord>> {
        Ok(self
            .table(table)?
            .map(|t| t.partitions.into_values().collect())
            .unwrap_or_default())
    }

    fn drop_partitions(&mut self, table: &str, values: &[Vec<String>]) -> Result<usize> {
        let Some(mut t) = self.table(table)? else {
            return Err(self.missing(table));
        };
        let before = t.partitions.len();
        t.partitions.retain(|_, p| !values.contains(&p.values));
        let dropped = before - t.partitions.len();
        if dropped > 0 {
            self.save(&t)?;
        }
        Ok(dropped)
    }

    fn iceberg_metadata(&self, table: &str) -> Result<Option<String>> {
        Ok(self.table(table)?.and_then(|t| t.metadata_location))
    }

    fn set_iceberg_metadata(
        &mut self,
        table: &str,
        columns: &[ColumnRecord],
        location: &str,
        from: Option<&str>,
        to: &str,
    ) -> Result<()> {
        let mut t = self.table(table)?.unwrap_or_else(|| LocalTable {
            database: self.database.clone(),
            name: table.to_owned(),
            location: location.to_owned(),
            classification: "iceberg".into(),
            version: 0,
            columns: Vec::new(),
            partition_keys: Vec::new(),
            partitions: BTreeMap::new(),
            metadata_location: None,
        });
        if t.metadata_location.as_deref() != from {
            return Err(super::pointer_moved(
                table,
                from,
                t.metadata_location.as_deref(),
            ));
        }
        if t.columns != columns {
            t.columns = columns.to_vec();
            t.version += 1;
        }
        t.metadata_location = Some(to.to_owned());
        self.save(&t)?;
        // The Hadoop tables' pointer beside the metadata files, for readers that open the
        // folder without a catalog (`version-hint.text`: the current `v<N>.metadata.json`).
        let root = self.store.url("");
        let key = to
            .strip_prefix(root.trim_end_matches('/'))
            .map(|k| k.trim_start_matches('/'));
        if let (Some(key), Some(version)) = (key, crate::iceberg::spec::version_of(to)) {
            let (folder, _) = key.rsplit_once('/').unwrap_or(("", key));
            self.store.write(
                &format!("{folder}/version-hint.text"),
                version.to_string().as_bytes(),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::register::string_columns as cols;

    #[test]
    fn schema_grows_at_the_end_only_and_partitions_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LocalCatalog::new(&Lake::local(dir.path()).unwrap(), "db");
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
        assert_eq!(c.partitions("t").unwrap().len(), 1);
        let values = vec![vec!["acme".to_string(), "2019-12-04".to_string()]];
        assert_eq!(c.drop_partitions("t", &values).unwrap(), 1);
        assert_eq!(c.drop_partitions("t", &values).unwrap(), 0);
        assert!(c.partitions("t").unwrap().is_empty());
    }
}
