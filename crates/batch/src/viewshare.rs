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
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use crate::history::ViewHistory;
use crate::shared::{Fetched, SharedObject, upload_file};
use crate::{BatchError, Result};

const HISTORY: &str = "versions.json";

/// One view's folder on the shared store.
#[derive(Debug)]
pub struct SharedViews {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// This replica's id, part of the names of the files it writes.
    tag: String,
    /// `versions.json` there.
    history: SharedObject,
}

fn err(what: &str, e: impl std::fmt::Display) -> BatchError {
    BatchError::Delta(format!("shared view versions: {what}: {e}"))
}

impl SharedViews {
    /// The folder `prefix` (`<master prefix>/.lambdadb/views/<view>`) of
    /// `store`; `tag` names this replica in the files it writes.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath, tag: String) -> Self {
        Self {
            history: SharedObject::new(store.clone(), prefix.clone().join(HISTORY)),
            store,
            prefix,
            tag,
        }
    }

    /// The tag the files this replica writes carry.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    fn key(&self, name: &str) -> ObjectPath {
        self.prefix.clone().join(name)
    }

    /// Uploads the local file `dir/name` (a version's partial rows). Its name
    /// carries this replica's tag, so no other writer writes that key.
    pub(crate) async fn upload(&self, dir: &Path, name: &str) -> Result<()> {
        upload_file(self.store.clone(), self.key(name), &dir.join(name))
            .await
            .map_err(|e| err(name, e))
    }

    /// Writes `history` if the shared one is still the one last seen here;
    /// fails (naming why) when another writer changed it meanwhile.
    pub(crate) async fn put_history(&self, history: &ViewHistory) -> Result<()> {
        let body = serde_json::to_vec_pretty(history).expect("history serializes");
        match self.history.write(body).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(BatchError::Delta(
                "another writer published versions of this view meanwhile (this process lost the writer lease); nothing was published".into(),
            )),
            Err(e) => Err(err(HISTORY, e)),
        }
    }

    /// The shared history if it changed since last seen here (`None`: unchanged
    /// or never published).
    pub(crate) async fn fetch_history(&self) -> Result<Option<ViewHistory>> {
        match self.history.read(true).await.map_err(|e| err(HISTORY, e))? {
            Fetched::Changed(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| err(HISTORY, e)),
            Fetched::Unchanged | Fetched::Missing => Ok(None),
        }
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
