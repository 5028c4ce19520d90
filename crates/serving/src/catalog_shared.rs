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

use std::sync::{Arc, Mutex};

use lambdadb_pgcompat::{QueryError, Result};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

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

/// The shared catalog object and the version of it last seen here.
pub struct SharedCatalog {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    seen: Mutex<Option<UpdateVersion>>,
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
            store,
            path,
            seen: Mutex::new(None),
        }
    }

    /// The declarations and the object's version (`None`: never written).
    /// With `only_if_changed`, `Ok(None)` when it is the version last seen.
    pub async fn read(
        &self,
        only_if_changed: bool,
    ) -> Result<Option<(Vec<Declared>, Option<UpdateVersion>)>> {
        let seen = self.seen.lock().expect("catalog lock").clone();
        let options = GetOptions {
            if_none_match: seen
                .as_ref()
                .filter(|_| only_if_changed)
                .and_then(|v| v.e_tag.clone()),
            ..GetOptions::default()
        };
        match self.store.get_opts(&self.path, options).await {
            Ok(got) => {
                let version = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                if only_if_changed && seen.as_ref() == Some(&version) {
                    return Ok(None);
                }
                let bytes = got.bytes().await.map_err(err)?;
                let objects = parse(&bytes)?;
                *self.seen.lock().expect("catalog lock") = Some(version.clone());
                Ok(Some((objects, Some(version))))
            }
            Err(object_store::Error::NotModified { .. }) => Ok(None),
            Err(object_store::Error::NotFound { .. }) => {
                if only_if_changed && seen.is_none() {
                    return Ok(None);
                }
                Ok(Some((Vec::new(), None)))
            }
            Err(e) => Err(err(e)),
        }
    }

    /// Applies `change` to the shared declarations (again on the winner's
    /// contents after a lost race) and returns what it wrote. Writes nothing
    /// when the change leaves them as they are (a replica applying another's
    /// declaration records what is already there).
    pub async fn update(&self, change: &dyn Fn(&mut Vec<Declared>)) -> Result<Vec<Declared>> {
        for _ in 0..10 {
            let (mut objects, version) = self.read(false).await?.unwrap_or_default();
            let before = objects.clone();
            change(&mut objects);
            if same(&before, &objects) {
                return Ok(objects);
            }
            let body = serde_json::to_vec_pretty(&serde_json::json!({ "objects": objects }))
                .expect("catalog serializes");
            let mode = match version {
                Some(v) => PutMode::Update(v),
                None => PutMode::Create,
            };
            match self
                .store
                .put_opts(&self.path, PutPayload::from(body), PutOptions::from(mode))
                .await
            {
                Ok(put) => {
                    *self.seen.lock().expect("catalog lock") = Some(UpdateVersion {
                        e_tag: put.e_tag,
                        version: put.version,
                    });
                    return Ok(objects);
                }
                Err(
                    object_store::Error::Precondition { .. }
                    | object_store::Error::AlreadyExists { .. },
                ) => continue,
                Err(e) => return Err(err(e)),
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
