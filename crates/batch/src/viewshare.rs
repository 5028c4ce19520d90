//! A view's batch versions on the shared store, so that every replica serves
//! the versions the writer publishes (docs/scale-out.md).
//!
//! The writer uploads each version's file, then the view's history
//! (`versions.json`) by a conditional write: `If-Match` on the history it
//! last saw, or create-if-absent for the first. A writer that lost the lease
//! meanwhile (a newer holder rewrote the history) fails there, before its
//! local history changes. File names carry the writer's replica id, so two
//! writers never write the same key. Followers poll the history (a GET with
//! `If-None-Match`: nothing is transferred while it is unchanged), download
//! the files of the versions kept, and serve the new version once their
//! source has caught up with its watermark.

use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use tokio::io::AsyncWriteExt;

use crate::history::ViewHistory;
use crate::{BatchError, Result};

const HISTORY: &str = "versions.json";

/// One view's folder on the shared store.
#[derive(Debug)]
pub struct SharedViews {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// This replica's id, part of the names of the files it writes.
    tag: String,
    /// The history's version as last read or written here.
    seen: Mutex<Option<UpdateVersion>>,
}

fn err(what: &str, e: impl std::fmt::Display) -> BatchError {
    BatchError::Delta(format!("shared view versions: {what}: {e}"))
}

impl SharedViews {
    /// The folder `prefix` (`<master prefix>/.lambdadb/views/<view>`) of
    /// `store`; `tag` names this replica in the files it writes.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath, tag: String) -> Self {
        Self {
            store,
            prefix,
            tag,
            seen: Mutex::new(None),
        }
    }

    /// The tag the files this replica writes carry.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    fn key(&self, name: &str) -> ObjectPath {
        self.prefix.clone().join(name)
    }

    /// Uploads the local file `dir/name` (a version's partial rows).
    pub(crate) async fn upload(&self, dir: &Path, name: &str) -> Result<()> {
        let bytes = tokio::fs::read(dir.join(name))
            .await
            .map_err(|e| err(name, e))?;
        self.store
            .put_opts(
                &self.key(name),
                PutPayload::from(bytes),
                PutOptions::from(PutMode::Create),
            )
            .await
            .map(|_| ())
            .or_else(|e| match e {
                // A retry of an upload that landed: the same bytes.
                object_store::Error::AlreadyExists { .. } => Ok(()),
                e => Err(err(name, e)),
            })
    }

    /// Writes `history` if the shared one is still the one last seen here;
    /// fails (naming why) when another writer changed it meanwhile.
    pub(crate) async fn put_history(&self, history: &ViewHistory) -> Result<()> {
        let body = serde_json::to_vec_pretty(history).expect("history serializes");
        let seen = self.seen.lock().expect("seen lock").clone();
        let mode = match seen {
            Some(v) => PutMode::Update(v),
            None => PutMode::Create,
        };
        match self
            .store
            .put_opts(&self.key(HISTORY), PutPayload::from(body), PutOptions::from(mode))
            .await
        {
            Ok(put) => {
                *self.seen.lock().expect("seen lock") = Some(UpdateVersion {
                    e_tag: put.e_tag,
                    version: put.version,
                });
                Ok(())
            }
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. },
            ) => Err(BatchError::Delta(
                "another writer published versions of this view meanwhile (this process lost the writer lease); nothing was published".into(),
            )),
            Err(e) => Err(err(HISTORY, e)),
        }
    }

    /// The shared history if it changed since last seen here (`None`: unchanged
    /// or never published).
    pub(crate) async fn fetch_history(&self) -> Result<Option<ViewHistory>> {
        let seen = self.seen.lock().expect("seen lock").clone();
        let options = GetOptions {
            if_none_match: seen.as_ref().and_then(|v| v.e_tag.clone()),
            ..GetOptions::default()
        };
        let got = match self.store.get_opts(&self.key(HISTORY), options).await {
            Ok(g) => g,
            Err(object_store::Error::NotModified { .. } | object_store::Error::NotFound { .. }) => {
                return Ok(None);
            }
            Err(e) => return Err(err(HISTORY, e)),
        };
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        if seen.as_ref() == Some(&version) {
            return Ok(None);
        }
        let bytes = got.bytes().await.map_err(|e| err(HISTORY, e))?;
        let history: ViewHistory = serde_json::from_slice(&bytes).map_err(|e| err(HISTORY, e))?;
        *self.seen.lock().expect("seen lock") = Some(version);
        Ok(Some(history))
    }

    /// Downloads file `name` into `dir` (through a temporary, renamed when whole).
    pub(crate) async fn download(&self, dir: &Path, name: &str) -> Result<()> {
        let target = dir.join(name);
        if target.exists() {
            return Ok(());
        }
        let got = self
            .store
            .get(&self.key(name))
            .await
            .map_err(|e| err(name, e))?;
        let tmp = crate::durable::tmp_path(&target);
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| err(name, e))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.try_next().await.map_err(|e| err(name, e))? {
            f.write_all(&chunk).await.map_err(|e| err(name, e))?;
        }
        f.sync_all().await.map_err(|e| err(name, e))?;
        drop(f);
        tokio::fs::rename(&tmp, &target)
            .await
            .map_err(|e| err(name, e))
    }

    /// Deletes file `name` from the shared folder (a version no longer kept).
    pub(crate) async fn delete(&self, name: &str) {
        let _ = self.store.delete(&self.key(name)).await;
    }
}
