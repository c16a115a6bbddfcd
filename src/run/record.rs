//! Records a run keeps in the lake between its steps and its processes, as JSON objects: a
//! planned input as recorded ([`PlannedInput`], read again through [`PatternStores`]) in a
//! sharded run's plan and in the inputs pending after a commit.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::TableSpec;
use crate::error::{Error, Result};
use crate::read::pattern::{ListedInput, MatchedInput};
use crate::run::plan::Planned;
use crate::store::{Store, Stores};

/// One planned input, as the plan records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedInput {
    /// The index of the table's input pattern that matched it.
    pub pattern: usize,
    /// The input, as listed.
    #[serde(flatten)]
    pub listed: ListedInput,
    /// Consumed before with other content.
    pub changed: bool,
}

impl PlannedInput {
    /// The record of `p` (an input the table's patterns matched).
    pub fn of(p: &Planned) -> Result<Self> {
        let pattern = p.pattern.ok_or_else(|| Error::Internal {
            message: format!(
                "{}: a sharded run plans listed inputs only",
                p.input.listed.uri
            ),
        })?;
        Ok(Self {
            pattern,
            listed: p.input.listed.clone(),
            changed: p.changed,
        })
    }

    /// The input again, read through its pattern's store.
    pub fn planned(&self, stores: &PatternStores) -> Result<Planned> {
        Ok(Planned {
            input: MatchedInput {
                store: stores.get(self.pattern)?,
                listed: self.listed.clone(),
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
