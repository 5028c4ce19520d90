//! One small object on the shared store that several processes change by
//! read-modify-write (a view's history, the catalog): reads are conditional
//! on the version last seen (`If-None-Match`: nothing is transferred while it
//! is unchanged), writes on it (`If-Match`, or create-if-absent when none was
//! seen), so a process that did not see the latest version loses the write
//! instead of overwriting it. Also the one streamed upload of a local file.

use std::path::Path;
use std::sync::{Arc, Mutex};

use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

/// What a read found.
#[derive(Debug)]
pub enum Fetched {
    /// The object as it is now (its version is the one seen from now on).
    Changed(Vec<u8>),
    /// The version last seen here is still the current one.
    Unchanged,
    /// Never written (or deleted).
    Missing,
}

/// The object at `path` of `store`, and the version of it last seen here.
#[derive(Debug)]
pub struct SharedObject {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    seen: Mutex<Option<UpdateVersion>>,
}

impl SharedObject {
    /// The object at `path`, not read yet.
    pub fn new(store: Arc<dyn ObjectStore>, path: ObjectPath) -> Self {
        Self {
            store,
            path,
            seen: Mutex::new(None),
        }
    }

    /// Where it is, for messages.
    pub fn path(&self) -> &ObjectPath {
        &self.path
    }

    fn seen(&self) -> Option<UpdateVersion> {
        self.seen.lock().expect("seen lock").clone()
    }

    fn note(&self, version: UpdateVersion) {
        *self.seen.lock().expect("seen lock") = Some(version);
    }

    /// Reads the object; with `only_if_changed`, [`Fetched::Unchanged`] when it
    /// is the version last seen.
    pub async fn read(&self, only_if_changed: bool) -> object_store::Result<Fetched> {
        let seen = self.seen().filter(|_| only_if_changed);
        let options = GetOptions {
            if_none_match: seen.as_ref().and_then(|v| v.e_tag.clone()),
            ..GetOptions::default()
        };
        let got = match self.store.get_opts(&self.path, options).await {
            Ok(got) => got,
            Err(object_store::Error::NotModified { .. }) => return Ok(Fetched::Unchanged),
            Err(object_store::Error::NotFound { .. }) => return Ok(Fetched::Missing),
            Err(e) => return Err(e),
        };
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        // A store that ignores If-None-Match answers in full: same version, no change.
        if seen.as_ref() == Some(&version) {
            return Ok(Fetched::Unchanged);
        }
        let bytes = got.bytes().await?;
        self.note(version);
        Ok(Fetched::Changed(bytes.to_vec()))
    }

    /// Writes `body` if the object is still the version last seen here (or
    /// absent, if none was seen). `Ok(false)`: another process wrote it first.
    pub async fn write(&self, body: Vec<u8>) -> object_store::Result<bool> {
        let mode = match self.seen() {
            Some(v) => PutMode::Update(v),
            None => PutMode::Create,
        };
        match self
            .store
            .put_opts(&self.path, PutPayload::from(body), PutOptions::from(mode))
            .await
        {
            Ok(put) => {
                self.note(UpdateVersion {
                    e_tag: put.e_tag,
                    version: put.version,
                });
                Ok(true)
            }
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Uploads the local file `from` to `path`, streamed (multipart above the
/// writer's buffer), so a 128 MB file does not pass through memory whole.
/// An upload that fails is aborted and leaves no object.
pub async fn upload_file(
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    from: &Path,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::open(from).await?;
    let mut upload = object_store::buffered::BufWriter::new(store, path);
    let sent = match tokio::io::copy(&mut file, &mut upload).await {
        Ok(_) => upload.shutdown().await,
        Err(e) => Err(e),
    };
    if sent.is_err() {
        let _ = upload.abort().await;
    }
    sent
}
