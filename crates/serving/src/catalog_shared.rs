//! The catalog on the shared store (docs/scale-out.md): on a shared master
//! dataset, the declarations made over the wire on any replica live in
//! `<prefix>/.lambdadb/catalog.json`, so every replica serves the same
//! objects whichever one a client reached.
//!
//! A change is read-modify-write with a conditional put (`If-Match` on the
//! version read, create-if-absent for the first): when two replicas change
//! the catalog at once, the loser reads the winner's contents, applies its own
//! change to them and writes again. Each replica polls the object (a GET with
//! `If-None-Match`, free while unchanged) and applies what others declared or
//! dropped (see `CatalogLog::remote_changes`). `data_dir/catalog.json` is then
//! this replica's copy, read only when the store cannot be.

use std::sync::Arc;

use lambdadb_batch::{Fetched, SharedObject};
use lambdadb_pgcompat::{QueryError, Result};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

/// One object declared over the wire, as `catalog.json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Declared {
    /// The object's name: a source table, materialized view or plain view.
    pub name: String,
    /// The statement that declares it, as run again at start-up.
    pub sql: String,
    /// For a setting changed after the declaration (`ALTER TABLE ... SET`):
    /// which one. Each object keeps one entry per setting, its latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
}

/// The shared catalog object.
pub struct SharedCatalog {
    object: SharedObject,
}

fn err(e: impl std::fmt::Display) -> QueryError {
    QueryError::Io(format!(
        "the shared catalog cannot be read or written ({e}); the change was not made: check the object store and run the statement again"
    ))
}

impl SharedCatalog {
    /// The catalog at `path` of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, path: ObjectPath) -> Self {
        Self {
            object: SharedObject::new(store, path),
        }
    }

    /// The declarations (none if it was never written). With
    /// `only_if_changed`, `Ok(None)` when it is the version last seen or absent.
    pub async fn read(&self, only_if_changed: bool) -> Result<Option<Vec<Declared>>> {
        match self.object.read(only_if_changed).await.map_err(err)? {
            Fetched::Changed(bytes) => parse(&bytes).map(Some),
            Fetched::Unchanged => Ok(None),
            // Nothing declared over the wire yet: no change to look at either.
            Fetched::Missing if only_if_changed => Ok(None),
            Fetched::Missing => Ok(Some(Vec::new())),
        }
    }

    /// Applies `change` to the shared declarations (again on the winner's
    /// contents after a lost race). Writes nothing when the change leaves
    /// them as they are.
    pub async fn update(&self, change: &dyn Fn(&mut Vec<Declared>)) -> Result<()> {
        for _ in 0..10 {
            let mut objects = self.read(false).await?.unwrap_or_default();
            let before = objects.clone();
            change(&mut objects);
            if same(&before, &objects) {
                return Ok(());
            }
            let body = serde_json::to_vec_pretty(&serde_json::json!({ "objects": objects }))
                .expect("catalog serializes");
            // The same fault point as the local catalog's write: this is where
            // a change is saved on a shared store.
            lambdadb_common::failpoint::hit("catalog.written").map_err(err)?;
            if self.object.write(body).await.map_err(err)? {
                return Ok(());
            }
        }
        Err(err("ten writers raced for it"))
    }
}

fn parse(bytes: &[u8]) -> Result<Vec<Declared>> {
    #[derive(serde::Deserialize)]
    struct Contents {
        objects: Vec<Declared>,
    }
    serde_json::from_slice::<Contents>(bytes)
        .map(|c| c.objects)
        .map_err(|e| {
            QueryError::Io(format!(
                "the shared catalog is not a catalog ({e}); restore it from a replica's data_dir/catalog.json"
            ))
        })
}

/// The same declarations, whatever their order.
fn same(a: &[Declared], b: &[Declared]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}
