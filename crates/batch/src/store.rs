//! Where one source's master dataset lives: a directory on local disk or a
//! prefix of an S3 bucket, seen through `object_store` (by DataFusion's scans
//! and by the Delta log) and written by the archiver.
//!
//! On local disk data files are written as before (temporary file, fsync,
//! rename, fsync the directory: [`crate::durable`]), and the Delta log's
//! commits go through [`SyncingStore`], which fsyncs what object_store's
//! local store writes without it and passes the commit's fault points. On S3
//! a file is staged on local disk, then uploaded; a commit is a conditional
//! put, which [`TableStore::check_conditional_put`] verifies at start-up.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use lambdadb_common::failpoint;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use url::Url;

use crate::{BatchError, Result, io_err};

/// How to reach an S3-compatible store (from the server's configuration).
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// `http(s)://host:port` of an S3-compatible service; empty: AWS.
    pub endpoint: String,
    /// The bucket's region; empty: `AWS_REGION` or us-east-1.
    pub region: String,
    /// Whether a plain-HTTP endpoint is allowed.
    pub allow_http: bool,
}

/// Where every source's master dataset lives.
#[derive(Debug, Clone)]
pub enum MasterLocation {
    /// One directory per source under this one.
    Local(PathBuf),
    /// One prefix per source under `s3://bucket/prefix`, and a local
    /// directory where files are staged before their upload.
    S3 {
        /// `s3://bucket/prefix` (no trailing slash).
        url: Url,
        /// The bucket's store.
        store: Arc<dyn ObjectStore>,
        /// Staging directory on local disk.
        staging: PathBuf,
    },
}

impl MasterLocation {
    /// `master_url` empty: `local_root`; `s3://bucket/prefix`: that bucket,
    /// staging files under `staging`. Credentials come from the standard AWS
    /// environment variables.
    pub fn new(
        master_url: &str,
        s3: &S3Settings,
        local_root: &Path,
        staging: &Path,
    ) -> Result<Self> {
        if master_url.is_empty() {
            return Ok(Self::Local(local_root.to_path_buf()));
        }
        let url = Url::parse(master_url.trim_end_matches('/')).map_err(|e| {
            BatchError::Config(format!("master_url '{master_url}' is not a URL: {e}"))
        })?;
        if url.scheme() != "s3" {
            return Err(BatchError::Config(format!(
                "master_url '{master_url}': only s3://bucket/prefix URLs are supported (or empty for data_dir)"
            )));
        }
        let bucket = url.host_str().unwrap_or_default();
        let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if !s3.endpoint.is_empty() {
            b = b.with_endpoint(&s3.endpoint);
        }
        if !s3.region.is_empty() {
            b = b.with_region(&s3.region);
        }
        b = b.with_allow_http(s3.allow_http);
        let store = b.build().map_err(|e| {
            BatchError::Config(format!("cannot use master_url '{master_url}': {e}"))
        })?;
        Ok(Self::S3 {
            url,
            store: Arc::new(store),
            staging: staging.to_path_buf(),
        })
    }

    /// The URL DataFusion reads `s3://` locations with and the store to
    /// register for it; `None` on local disk.
    pub fn remote(&self) -> Option<(Url, Arc<dyn ObjectStore>)> {
        match self {
            Self::Local(_) => None,
            Self::S3 { url, store, .. } => {
                let bucket = Url::parse(&format!("s3://{}", url.host_str().unwrap_or_default()))
                    .expect("a bucket URL parses");
                Some((bucket, store.clone()))
            }
        }
    }

    /// On a shared store: the store and the path of `name` in lambdadb's own
    /// folder beside the tables (`<prefix>/.lambdadb/<name>`; no table encodes to a name with a dot: the writer
    /// lease, and what replicas share). `None` for a local master dataset.
    pub fn shared_path(&self, name: &str) -> Option<(Arc<dyn ObjectStore>, ObjectPath)> {
        match self {
            Self::Local(_) => None,
            Self::S3 { url, store, .. } => {
                let prefix = url.path().trim_matches('/');
                let path = if prefix.is_empty() {
                    format!(".lambdadb/{name}")
                } else {
                    format!("{prefix}/.lambdadb/{name}")
                };
                Some((store.clone(), ObjectPath::from(path)))
            }
        }
    }

    /// The table of the source whose directory name is `dir_name`.
    pub fn table(&self, dir_name: &str) -> Result<TableStore> {
        match self {
            Self::Local(root) => {
                let dir = root.join(dir_name);
                std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
                let dir = dir.canonicalize().map_err(io_err(&dir))?;
                let url = Url::from_directory_path(&dir).map_err(|_| {
                    BatchError::Config(format!("{} is not an absolute path", dir.display()))
                })?;
                let point = Arc::new(Mutex::new("archive.manifest"));
                let store: Arc<dyn ObjectStore> = Arc::new(SyncingStore {
                    inner: LocalFileSystem::new(),
                    point: point.clone(),
                });
                Ok(TableStore {
                    url,
                    store,
                    local: Some(dir),
                    staging: None,
                    point,
                    log_policy: LogPolicy::default(),
                    follower: false,
                })
            }
            Self::S3 {
                url,
                store,
                staging,
            } => {
                let url = Url::parse(&format!("{}/{dir_name}/", url.as_str()))
                    .map_err(|e| BatchError::Config(e.to_string()))?;
                let staging = staging.join(dir_name);
                std::fs::create_dir_all(&staging).map_err(io_err(&staging))?;
                Ok(TableStore {
                    url,
                    store: store.clone(),
                    local: None,
                    staging: Some(staging),
                    point: Arc::new(Mutex::new("archive.manifest")),
                    log_policy: LogPolicy::default(),
                    follower: false,
                })
            }
        }
    }
}

/// One source's table: its root URL and the store that holds it.
#[derive(Debug, Clone)]
pub struct TableStore {
    /// The table's root, ending in `/` (`file:///…/sources/events/`, `s3://b/p/events/`).
    pub url: Url,
    /// The store, rooted at the bucket (or `/`): locations are `url`'s path plus the file's.
    pub store: Arc<dyn ObjectStore>,
    local: Option<PathBuf>,
    staging: Option<PathBuf>,
    /// The fault-point name the next commit passes (see [`SyncingStore`]).
    point: Arc<Mutex<&'static str>>,
    /// How long the table's log keeps what it no longer needs.
    pub log_policy: LogPolicy,
    /// Opened by a process that writes only under the lease: opening the
    /// table commits nothing (the log policy is brought up to date when it
    /// takes the table over).
    pub follower: bool,
}

/// How long a table's Delta log keeps removed files' tombstones and old
/// commits. Both are table properties, set at creation and brought up to
/// date at every open by the writer.
///
/// Tombstones (`remove` actions) stay in every checkpoint until
/// `delta.deletedFileRetentionDuration` has passed, and every open reads the
/// checkpoint whole: with the Delta default of a week, the checkpoint after
/// compacting a month of 10-second archive runs holds tens of thousands of
/// them. lambdadb deletes replaced files itself after `vacuum_grace`, so a
/// tombstone older than that protects nothing: it is kept that long.
///
/// Commit files stay for `delta.logRetentionDuration` (Delta's default: 30
/// days). Opening a table lists its `_delta_log` (on local disk the whole
/// directory: object_store's local store cannot start a listing at an
/// offset), and at one commit per 10-second archive run, 30 days are 260,000
/// files. A day (8,640) keeps a day of `history()` for outside readers; time
/// travel further back fails anyway once replaced files are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPolicy {
    /// `delta.deletedFileRetentionDuration`.
    pub tombstones: std::time::Duration,
    /// `delta.logRetentionDuration`.
    pub commits: std::time::Duration,
}

impl Default for LogPolicy {
    fn default() -> Self {
        Self {
            tombstones: std::time::Duration::from_secs(600),
            commits: std::time::Duration::from_secs(24 * 3600),
        }
    }
}

impl LogPolicy {
    /// The table properties that carry this policy, as Delta spells them.
    pub fn properties(&self) -> [(&'static str, String); 2] {
        let interval = |d: std::time::Duration| format!("interval {} seconds", d.as_secs().max(1));
        [
            (
                "delta.deletedFileRetentionDuration",
                interval(self.tombstones),
            ),
            ("delta.logRetentionDuration", interval(self.commits)),
        ]
    }
}

impl TableStore {
    /// The table's directory on local disk, if it is local.
    pub fn local_dir(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    /// Where `rel` is written before it is published: in the table's
    /// directory on local disk, in the staging directory for S3.
    pub fn write_path(&self, rel: &str) -> PathBuf {
        match (&self.local, &self.staging) {
            (Some(dir), _) => dir.join(rel),
            (None, Some(staging)) => staging.join(rel),
            (None, None) => unreachable!("a table is local or staged"),
        }
    }

    /// The location of file `rel` as DataFusion reads it: an absolute path
    /// on local disk, an `s3://` URL otherwise.
    pub fn location(&self, rel: &str) -> String {
        match &self.local {
            Some(dir) => dir.join(rel).to_string_lossy().into_owned(),
            None => format!("{}{rel}", self.url),
        }
    }

    /// Master-dataset file `f` as a scan reads it (location, size, rows).
    pub fn table_file(&self, f: &crate::ArchiveFile) -> crate::TableFile {
        crate::TableFile {
            location: self.location(&f.path),
            bytes: f.bytes,
            rows: Some(f.rows),
        }
    }

    /// The object-store path of file `rel`.
    pub fn object_path(&self, rel: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{rel}", self.url.path().trim_start_matches('/')))
    }

    /// Makes a fully written and fsynced temporary file `tmp` the table's
    /// file `rel`: a rename on local disk, an upload (then the staged copy is
    /// removed) on S3. `point` names the fault points.
    pub async fn publish(&self, tmp: &Path, rel: &str, point: &str) -> Result<()> {
        if self.local.is_some() {
            let (tmp, dest, point) = (tmp.to_path_buf(), self.write_path(rel), point.to_string());
            return tokio::task::spawn_blocking(move || {
                crate::durable::publish(&tmp, &dest, &point)
            })
            .await
            .map_err(crate::join_err)?;
        }
        let sent = crate::shared::upload_file(self.store.clone(), self.object_path(rel), tmp).await;
        if let Err(e) = sent {
            return Err(BatchError::Io {
                path: PathBuf::from(rel),
                source: std::io::Error::other(format!("upload failed: {e}")),
            });
        }
        crate::durable::step(point, "renamed", tmp)?;
        let _ = tokio::fs::remove_file(tmp).await;
        Ok(())
    }

    /// Deletes file `rel` (a missing one is not an error).
    pub async fn delete(&self, rel: &str) -> Result<()> {
        match self.store.delete(&self.object_path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(rel, e)),
        }
    }

    /// Names the fault points the next commits pass (`archive.manifest`, `import.manifest`).
    pub fn set_commit_point(&self, point: &'static str) {
        *self.point.lock().expect("point lock") = point;
    }

    /// Refuses a store on which a second create of the same key succeeds:
    /// a Delta commit is atomic only through that refusal.
    pub async fn check_conditional_put(&self) -> Result<()> {
        let probe = self.object_path(&format!(
            "_lambdadb_probe/{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let create = || PutOptions::from(PutMode::Create);
        let first = self
            .store
            .put_opts(&probe, PutPayload::from_static(b"1"), create())
            .await;
        let second = self
            .store
            .put_opts(&probe, PutPayload::from_static(b"2"), create())
            .await;
        let _ = self.store.delete(&probe).await;
        match (first, second) {
            (Ok(_), Err(object_store::Error::AlreadyExists { .. })) => Ok(()),
            (Err(e), _) => Err(BatchError::Config(format!(
                "cannot write to {}: {e}",
                self.url
            ))),
            (Ok(_), Ok(_)) => Err(BatchError::Config(format!(
                "the store at {} accepted a second create of the same key: it does not support conditional writes (If-None-Match), and commits to the master dataset would not be atomic; use a store that does (AWS S3, MinIO, moto)",
                self.url
            ))),
            (Ok(_), Err(e)) => Err(BatchError::Config(format!(
                "the store at {} refused a conditional write with an unexpected error ({e}): it does not support conditional writes (If-None-Match), and commits to the master dataset would not be atomic",
                self.url
            ))),
        }
    }
}

/// An object-store error on file `rel` as a batch error.
pub(crate) fn store_err(rel: &str, e: object_store::Error) -> BatchError {
    BatchError::Io {
        path: PathBuf::from(rel),
        source: std::io::Error::other(e.to_string()),
    }
}

/// object_store's local file system, plus what a crash-safe commit needs:
/// a Delta commit file is fsynced with its directory once written, and passes
/// the fault points `<point>.{written,renamed,synced,dir_synced}` (where
/// `point` is the commit's, [`TableStore::set_commit_point`]).
#[derive(Debug)]
pub struct SyncingStore {
    inner: LocalFileSystem,
    point: Arc<Mutex<&'static str>>,
}

impl std::fmt::Display for SyncingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SyncingStore({})", self.inner)
    }
}

impl SyncingStore {
    fn hit(&self, step: &str, location: &ObjectPath) -> object_store::Result<()> {
        let point = *self.point.lock().expect("point lock");
        failpoint::hit(&format!("{point}.{step}")).map_err(|e| object_store::Error::Generic {
            store: "local",
            source: format!("{location}: {e}").into(),
        })
    }

    fn sync(path: &Path) -> object_store::Result<()> {
        let sync = |p: &Path| std::fs::File::open(p).and_then(|f| f.sync_all());
        sync(path)
            .and_then(|_| path.parent().map(sync).unwrap_or(Ok(())))
            .map_err(|e| object_store::Error::Generic {
                store: "local",
                source: format!("fsync {}: {e}", path.display()).into(),
            })
    }
}

fn is_commit(location: &ObjectPath) -> bool {
    let s = location.as_ref();
    s.contains("_delta_log/") && s.ends_with(".json")
}

#[async_trait]
impl ObjectStore for SyncingStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let commit = is_commit(location);
        if commit {
            self.hit("written", location)?;
        }
        let result = self.inner.put_opts(location, payload, opts).await?;
        if commit {
            self.hit("renamed", location)?;
        }
        let path = PathBuf::from(format!("/{location}"));
        tokio::task::spawn_blocking(move || Self::sync(&path))
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "local",
                source: e.to_string().into(),
            })??;
        if commit {
            self.hit("synced", location)?;
            self.hit("dir_synced", location)?;
        }
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
