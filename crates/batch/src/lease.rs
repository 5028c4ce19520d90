//! One writer at a time: a lease object on the shared store.
//!
//! Every writer-capable process (`--role writer` or `all` on a shared store)
//! competes for `.lambdadb/lease.json`. The holder renews it by a conditional
//! update (`If-Match` on the object's ETag) every third of the expiry; the
//! others watch it and take it over, again by a conditional update, once they
//! have seen the same version of the object unchanged for a whole expiry by
//! their own monotonic clock. No two clocks are compared: the holder's
//! `expires_at_ms` in the object is for people reading it.
//!
//! Safety does not rest on timing alone. The holder stops writing once half an
//! expiry has passed since its last successful renewal (a taker waits a whole
//! one), and every Delta commit carries the holder's epoch as an application
//! transaction, which a new holder commits first: a commit from a holder that
//! was paused past its lease conflicts with it and fails (see
//! `deltalog::DeltaLog::take_over`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tracing::{info, warn};

use crate::{BatchError, Result, now_ms};

/// The lease object as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Who holds it: the replica id of its `data_dir` (a restarted process
    /// on the same `data_dir` is the same replica, and resumes at once).
    pub holder: String,
    /// Where its clients reach it (its `listen` address), for people.
    #[serde(default)]
    pub address: String,
    /// Bumped by every takeover; every commit of the holder carries it.
    pub epoch: i64,
    /// When the holder last renewed it (ms since the epoch, its clock).
    pub renewed_at_ms: i64,
    /// When it lapses if not renewed (the holder's clock; informative).
    pub expires_at_ms: i64,
    /// Given up by its holder at shutdown: free to take at once.
    #[serde(default)]
    pub released: bool,
}

/// What this process knows of the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// This process holds it, in `epoch`, and may write.
    Held {
        /// The epoch its commits carry.
        epoch: i64,
    },
    /// Another process holds it (or held it when last seen).
    Other(Option<LeaseRecord>),
}

#[derive(Debug)]
struct Inner {
    /// The object's version as last read or written.
    seen: Option<(UpdateVersion, LeaseRecord)>,
    /// When `seen` was first observed unchanged (takeover after `expiry`).
    seen_since: Instant,
    /// Our epoch and the instant of our last successful write, while we hold it.
    held: Option<(i64, Instant)>,
    /// Released at shutdown: a round still in flight must not take it again.
    released: bool,
}

/// The lease of one shared store, as one process sees and holds it.
#[derive(Debug)]
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    holder: String,
    address: String,
    expiry: Duration,
    inner: Mutex<Inner>,
}

impl Lease {
    /// The lease at `path` (`<prefix>/.lambdadb/lease.json`) for replica
    /// `holder` reached at `address`; `expiry` is how long an unrenewed lease lasts.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        path: ObjectPath,
        holder: String,
        address: String,
        expiry: Duration,
    ) -> Self {
        Self {
            store,
            path,
            holder,
            address,
            expiry,
            inner: Mutex::new(Inner {
                seen: None,
                seen_since: Instant::now(),
                held: None,
                released: false,
            }),
        }
    }

    /// This process's name in the lease.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// How long an unrenewed lease lasts.
    pub fn expiry(&self) -> Duration {
        self.expiry
    }

    /// Whether this process may write now: it holds the lease and renewed it
    /// less than half an expiry ago (a taker waits a whole expiry).
    pub fn may_write(&self) -> Option<i64> {
        let inner = self.inner.lock().expect("lease lock");
        inner
            .held
            .filter(|(_, at)| at.elapsed() < self.expiry / 2)
            .map(|(epoch, _)| epoch)
    }

    /// The lease as last seen: its record and whether we hold it.
    pub fn state(&self) -> LeaseState {
        let inner = self.inner.lock().expect("lease lock");
        match inner.held {
            Some((epoch, _)) => LeaseState::Held { epoch },
            None => LeaseState::Other(inner.seen.as_ref().map(|(_, r)| r.clone())),
        }
    }

    /// The record as last seen or written.
    pub fn record(&self) -> Option<LeaseRecord> {
        let inner = self.inner.lock().expect("lease lock");
        inner.seen.as_ref().map(|(_, r)| r.clone())
    }

    /// One round: renews the lease if we hold it, takes it if it is free or
    /// lapsed, or notes who holds it. Returns the state after the round. A
    /// store error leaves the state as it was (a holder that cannot renew
    /// stops writing by [`Self::may_write`]'s clock).
    pub async fn tick(&self) -> Result<LeaseState> {
        let current = match self.store.get(&self.path).await {
            Ok(got) => {
                let version = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let bytes = got.bytes().await.map_err(store_err)?;
                let record: LeaseRecord = serde_json::from_slice(&bytes).map_err(|e| {
                    BatchError::Config(format!(
                        "the lease object {} is not a lease ({e}); delete it to let a writer take over",
                        self.path
                    ))
                })?;
                Some((version, record))
            }
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(store_err(e)),
        };
        let Some((version, record)) = current else {
            // Nobody ever held it (or it was deleted): create it.
            return self.write(PutMode::Create, 1).await;
        };
        let (ours, lapsed) = {
            let mut inner = self.inner.lock().expect("lease lock");
            let changed = inner.seen.as_ref().map(|(v, _)| v) != Some(&version);
            if changed {
                inner.seen_since = Instant::now();
            }
            let held = inner.held.is_some_and(|(epoch, _)| epoch == record.epoch);
            let ours = record.holder == self.holder && held;
            // The same replica id without our holding it: an earlier process
            // on this data_dir (dead: the data_dir lock admits one) held it.
            let earlier_self = record.holder == self.holder && !held;
            if !ours && inner.held.take().is_some() {
                warn!(holder = %record.holder, epoch = record.epoch, "lost the writer lease: this process stops writing");
            }
            let lapsed =
                earlier_self || record.released || inner.seen_since.elapsed() >= self.expiry;
            inner.seen = Some((version.clone(), record.clone()));
            (ours, lapsed)
        };
        if ours {
            self.write(PutMode::Update(version), record.epoch).await
        } else if lapsed {
            info!(from = %record.holder, epoch = record.epoch + 1, "the writer lease lapsed: taking it over");
            self.write(PutMode::Update(version), record.epoch + 1).await
        } else {
            Ok(LeaseState::Other(Some(record)))
        }
    }

    /// Writes the lease for us in `epoch` under `mode`. A lost race (another
    /// process wrote first) is not an error: the next round sees who won.
    async fn write(&self, mode: PutMode, epoch: i64) -> Result<LeaseState> {
        let now = now_ms();
        let record = LeaseRecord {
            holder: self.holder.clone(),
            address: self.address.clone(),
            epoch,
            renewed_at_ms: now,
            expires_at_ms: now + self.expiry.as_millis() as i64,
            released: false,
        };
        let body = serde_json::to_vec(&record).map_err(|e| BatchError::Config(e.to_string()))?;
        if self.inner.lock().expect("lease lock").released {
            return Ok(LeaseState::Other(self.record()));
        }
        let started = Instant::now();
        let result = self
            .store
            .put_opts(&self.path, PutPayload::from(body), PutOptions::from(mode))
            .await;
        let (state, give_up) = {
            let mut inner = self.inner.lock().expect("lease lock");
            match result {
                Ok(put) => {
                    let version = UpdateVersion {
                        e_tag: put.e_tag,
                        version: put.version,
                    };
                    inner.seen = Some((version, record));
                    inner.seen_since = Instant::now();
                    if inner.released {
                        // Released while this write was in flight: undo it below.
                        (LeaseState::Other(None), true)
                    } else {
                        if inner.held.is_none() {
                            info!(epoch, "holding the writer lease");
                        }
                        // The renewal counts from when it was sent: a slow request
                        // shortens the time we may write, never lengthens it.
                        inner.held = Some((epoch, started));
                        (LeaseState::Held { epoch }, false)
                    }
                }
                Err(object_store::Error::Precondition { .. })
                | Err(object_store::Error::AlreadyExists { .. }) => {
                    if inner.held.take().is_some() {
                        warn!(
                            "lost the writer lease to another process: this process stops writing"
                        );
                    }
                    let seen = inner.seen.as_ref().map(|(_, r)| r.clone());
                    (LeaseState::Other(seen), false)
                }
                Err(e) => return Err(store_err(e)),
            }
        };
        if give_up {
            self.mark_released().await;
        }
        Ok(state)
    }

    /// Gives the lease up (at shutdown), so that another writer need not wait
    /// for it to lapse: marked released if it is still ours. Not deleted: a
    /// conditional delete is not portable, and a plain one could remove a
    /// taker's fresh lease.
    pub async fn release(&self) {
        {
            let mut inner = self.inner.lock().expect("lease lock");
            inner.released = true;
            inner.held.take();
        }
        self.mark_released().await;
    }

    /// Writes the lease as released if the version last seen is ours.
    async fn mark_released(&self) {
        let seen = {
            let inner = self.inner.lock().expect("lease lock");
            inner
                .seen
                .clone()
                .filter(|(_, r)| r.holder == self.holder && !r.released)
        };
        let Some((version, mut record)) = seen else {
            return;
        };
        record.expires_at_ms = now_ms();
        record.released = true;
        let body = serde_json::to_vec(&record).expect("a lease serializes");
        let _ = self
            .store
            .put_opts(
                &self.path,
                PutPayload::from(body),
                PutOptions::from(PutMode::Update(version)),
            )
            .await;
    }
}

fn store_err(e: object_store::Error) -> BatchError {
    BatchError::Delta(format!("the writer lease: {e}"))
}
