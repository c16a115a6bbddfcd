//! Records a run keeps in the lake between its steps and its processes, as JSON objects: a
//! planned input as recorded ([`PlannedInput`], read again through [`PatternStores`]) in a
//! sharded run's plan and in the inputs pending after a commit.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::TableSpec;
use crate::error::{Error, Result};
use crate::read::pattern::MatchedInput;
use crate::run::plan::Planned;
use crate::store::{Store, Stores};

/// One planned input, as the plan records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedInput {
    /// The index of the table's input pattern that matched it.
    pub pattern: usize,
    /// Its key in that pattern's store.
    pub key: String,
    /// Its uri.
    pub uri: String,
    /// Its customer, as the table resolved it.
    pub customer: Option<String>,
    /// Its `{distribution}`, if the pattern names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
    /// Size in bytes, as listed.
    pub size: u64,
    /// Modification time, as listed.
    pub mtime_ns: i128,
    /// ETag, as listed.
    pub etag: Option<String>,
    /// Consumed before with other content.
    pub changed: bool,
}

impl PlannedInput {
    /// The record of `p` (an input the table's patterns matched).
    pub fn of(p: &Planned) -> Result<Self> {
        let pattern = p.pattern.ok_or_else(|| Error::Internal {
            message: format!("{}: a sharded run plans listed inputs only", p.input.uri),
        })?;
        Ok(Self {
            pattern,
            key: p.input.key.clone(),
            uri: p.input.uri.clone(),
            customer: p.input.customer.clone(),
            distribution: p.input.distribution.clone(),
            size: p.input.size,
            mtime_ns: p.input.mtime_ns,
            etag: p.input.etag.clone(),
            changed: p.changed,
        })
    }

    /// The input again, read through its pattern's store.
    pub fn planned(&self, stores: &PatternStores) -> Result<Planned> {
        Ok(Planned {
            input: MatchedInput {
                store: stores.get(self.pattern)?,
                key: self.key.clone(),
                uri: self.uri.clone(),
                customer: self.customer.clone(),
                distribution: self.distribution.clone(),
                size: self.size,
                mtime_ns: self.mtime_ns,
                etag: self.etag.clone(),
            },
            changed: self.changed,
            pattern: Some(self.pattern),
        })
    }
}

/// The stores of a table's input patterns, opened once each.
pub struct PatternStores {
    stores: Vec<Arc<dyn Store>>,
}

impl PatternStores {
    /// Open the stores of `table`'s patterns (no request is made).
    pub fn open(stores: &Stores, table: &TableSpec) -> Result<Self> {
        Ok(Self {
            stores: table
                .inputs
                .iter()
                .map(|p| stores.open(p.root()))
                .collect::<Result<_>>()?,
        })
    }

    fn get(&self, pattern: usize) -> Result<Arc<dyn Store>> {
        self.stores
            .get(pattern)
            .cloned()
            .ok_or_else(|| Error::Internal {
                message: format!("the plan names input pattern {pattern}, which the table lacks"),
            })
    }
}

/// Write `value` as JSON to `key`.
pub fn write<T: Serialize>(store: &dyn Store, key: &str, value: &T) -> Result<()> {
    store.write(key, &serde_json::to_vec(value).expect("plain data"))
}

/// Read the JSON at `key`; `None` when there is none.
pub fn read<T: DeserializeOwned>(store: &dyn Store, key: &str) -> Result<Option<T>> {
    let Some(found) = store.read(key)? else {
        return Ok(None);
    };
    serde_json::from_slice(&found.bytes)
        .map(Some)
        .map_err(|e| Error::Corrupt {
            path: store.url(key),
            message: e.to_string(),
        })
}
