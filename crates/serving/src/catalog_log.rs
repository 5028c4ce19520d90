//! Objects declared over the wire outlive the process: `data_dir/catalog.json`
//! lists the CREATE statements of every source table, materialized view and plain
//! view an admin declared (not those of `sql/` files, which declare themselves at
//! every start), in declaration order. Start-up applies the `sql/` files, then
//! replays this list. A DROP removes the entry; CREATE OR REPLACE moves it to
//! the end (the new definition may read objects declared after the old one).
//! The file is written before the statement is acknowledged: if it cannot be
//! written, the statement fails (and its change is undone by the caller), so an
//! acknowledged declaration always comes back after a restart.
//!
//! Dropping an object that a `sql/` file declares lasts until the next start,
//! when the file declares it again: edit the file to drop it for good.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lambdadb_pgcompat::{QueryError, Result};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::catalog_shared::SharedCatalog;

const FILE: &str = "catalog.json";

pub use crate::catalog_shared::Declared;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    objects: Vec<Declared>,
}

/// The declarations in `data_dir/catalog.json`, rewritten at every change after start-up.
pub struct CatalogLog {
    path: PathBuf,
    /// Off while start-up applies files and replays the log itself.
    recording: std::sync::atomic::AtomicBool,
    lock: Mutex<()>,
    /// On a shared store: the catalog every replica shares (see `crate::catalog_shared`).
    shared: Option<SharedCatalog>,
    /// The shared declarations as this replica last applied or wrote them.
    applied: Mutex<Vec<Declared>>,
}

/// What other replicas changed in the shared catalog since this one last looked.
#[derive(Debug, Default)]
pub struct RemoteChanges {
    /// Declarations and settings to run, in catalog order.
    pub apply: Vec<Declared>,
    /// Objects whose declaration is gone (dropped elsewhere).
    pub drop: Vec<String>,
}

tokio::task_local! {
    /// Set while a replica runs declarations another replica made (see
    /// [`CatalogLog::replaying`]): they are in the shared catalog already.
    static REPLAYING: ();
}

/// Runs `f` to completion from synchronous code inside the runtime (the DDL
/// paths that record declarations are synchronous; a shared catalog write
/// is a request to the store).
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

impl CatalogLog {
    /// The log at `data_dir/catalog.json`; it records nothing until `start_recording`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE),
            recording: std::sync::atomic::AtomicBool::new(false),
            lock: Mutex::new(()),
            shared: None,
            applied: Mutex::new(Vec::new()),
        }
    }

    /// Keeps the declarations in the shared catalog at `shared` too (a
    /// shared master dataset); `data_dir/catalog.json` becomes a copy.
    pub fn with_shared(mut self, shared: Option<SharedCatalog>) -> Self {
        self.shared = shared;
        self
    }

    fn save_copy(&self, objects: &[Declared]) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(&Contents {
            objects: objects.to_vec(),
        })
        .expect("catalog serializes");
        lambdadb_batch::durable::write_atomic(&self.path, &bytes, "catalog").map_err(|e| {
            warn!("cannot save the catalog: {e}");
            QueryError::Io(format!(
                "cannot save the catalog, so the change was not made: {e}; free space or fix permissions in the data directory and run the statement again"
            ))
        })
    }

    /// Runs `f` (the statements of [`Self::remote_changes`]) without writing
    /// what they declare back to the shared catalog, which holds them already.
    pub async fn replaying<F: std::future::Future>(f: F) -> F::Output {
        REPLAYING.scope((), f).await
    }

    /// What other replicas declared or dropped since the last look (on a
    /// shared store; `None` when nothing changed or there is no shared
    /// catalog). Marked as applied: the caller runs them.
    pub async fn remote_changes(&self) -> Result<Option<RemoteChanges>> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        let Some(objects) = shared.read(true).await? else {
            return Ok(None);
        };
        let mut applied = self.applied.lock().expect("catalog lock");
        let changes = RemoteChanges {
            apply: objects
                .iter()
                .filter(|o| !applied.contains(o))
                .cloned()
                .collect(),
            drop: applied
                .iter()
                .filter(|a| a.setting.is_none())
                .filter(|a| {
                    !objects
                        .iter()
                        .any(|o| o.name == a.name && o.setting.is_none())
                })
                .map(|a| a.name.clone())
                .collect(),
        };
        *applied = objects.clone();
        drop(applied);
        self.save_copy(&objects)?;
        Ok(Some(changes))
    }

    /// Starts recording declarations (after start-up).
    pub fn start_recording(&self) {
        self.recording
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn read(&self) -> Result<Contents> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                QueryError::Io(format!(
                    "{} is not a catalog ({e}); move it away to start without the objects declared over the wire",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contents::default()),
            Err(e) => Err(QueryError::Io(format!("cannot read {}: {e}", self.path.display()))),
        }
    }

    /// The declarations to replay at start-up: the shared catalog's on a
    /// shared store (this replica's copy only when the store cannot be read).
    pub async fn objects(&self) -> Result<Vec<Declared>> {
        if let Some(shared) = &self.shared {
            match shared.read(false).await {
                Ok(Some(objects)) => {
                    *self.applied.lock().expect("catalog lock") = objects.clone();
                    self.save_copy(&objects)?;
                    return Ok(objects);
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(
                        "{e}; starting from this replica's copy of it, {}",
                        self.path.display()
                    );
                }
            }
        }
        Ok(self.read()?.objects)
    }

    fn update(&self, change: impl Fn(&mut Vec<Declared>)) -> Result<()> {
        if !self.recording.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let _one_writer = self.lock.lock().expect("catalog log lock");
        if self.shared.is_some() && REPLAYING.try_with(|_| ()).is_ok() {
            return Ok(());
        }
        if let Some(shared) = &self.shared {
            block_on(shared.update(&change))?;
            // What this replica has applied is its own change, not what others
            // wrote meanwhile: those arrive through `remote_changes`.
            let mut applied = self.applied.lock().expect("catalog lock");
            change(&mut applied);
            // The change is made (the shared catalog holds it); the copy is
            // only read when the store cannot be, so its failure is a warning.
            let _ = self.save_copy(&applied);
            return Ok(());
        }
        let mut c = self.read()?;
        change(&mut c.objects);
        self.save_copy(&c.objects)
    }

    /// Records (or replaces, moving it last) the declaration of `name`.
    pub fn declared(&self, name: &str, sql: String) -> Result<()> {
        self.record(name, None, sql)
    }

    /// Records (or replaces, moving it last) the statement `sql` that changed
    /// `setting` of `name`; replayed after the declarations, so it outlasts a
    /// restart also for an object a `sql/` file declares.
    pub fn set(&self, name: &str, setting: &str, sql: String) -> Result<()> {
        self.record(name, Some(setting), sql)
    }

    /// One entry per (object, setting): the declaration is the entry without one.
    fn record(&self, name: &str, setting: Option<&str>, sql: String) -> Result<()> {
        self.update(|objects| {
            objects.retain(|o| o.name != name || o.setting.as_deref() != setting);
            objects.push(Declared {
                name: name.to_string(),
                sql: sql.clone(),
                setting: setting.map(str::to_string),
            });
        })
    }

    /// Removes the declaration of `name` and its settings (after a DROP).
    pub fn dropped(&self, name: &str) -> Result<()> {
        self.update(|objects| objects.retain(|o| o.name != name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settings_are_kept_apart_from_declarations() {
        let dir = tempfile::tempdir().unwrap();
        let log = CatalogLog::new(dir.path());
        log.declared("t", "CREATE TABLE t".into()).unwrap();
        assert!(
            log.objects().await.unwrap().is_empty(),
            "nothing recorded during start-up"
        );
        log.start_recording();
        log.declared("t", "CREATE TABLE t".into()).unwrap();
        log.set("t", "retention", "ALTER 1".into()).unwrap();
        log.declared("v", "CREATE VIEW v".into()).unwrap();
        log.set("t", "retention", "ALTER 2".into()).unwrap();
        async fn sql(log: &CatalogLog) -> Vec<String> {
            log.objects()
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.sql)
                .collect()
        }
        // One entry per setting, the latest, after what it changes.
        assert_eq!(
            sql(&log).await,
            ["CREATE TABLE t", "CREATE VIEW v", "ALTER 2"]
        );
        // Declaring again keeps the setting; dropping removes both.
        log.declared("t", "CREATE TABLE t".into()).unwrap();
        assert_eq!(
            sql(&log).await,
            ["CREATE VIEW v", "ALTER 2", "CREATE TABLE t"]
        );
        log.dropped("t").unwrap();
        assert_eq!(sql(&log).await, ["CREATE VIEW v"]);
    }
}
