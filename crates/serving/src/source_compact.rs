//! A source's upkeep of its master dataset: compaction under the archive
//! lock, the watermarks it must not merge across (pinned by refreshes in
//! progress, given by the views' kept versions), and the deletion of replaced
//! files once no query can still be reading them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use lambdadb_batch::{CompactPolicy, CompactSummary, KeepOffsets, Manifest};
use lambdadb_common::Watermark;
use lambdadb_pgcompat::Result;
use tracing::warn;

use super::{SourceState, now_ms};
use crate::error::from_batch;

/// Compaction's state and figures for one source.
#[derive(Debug, Default)]
pub struct Upkeep {
    pins: Mutex<BTreeMap<u64, Watermark>>,
    next_pin: AtomicU64,
    /// Files replaced by compaction, with when, awaiting deletion.
    retired: Mutex<Vec<(Instant, Vec<String>)>>,
    /// Compactions since start-up.
    pub compactions: AtomicU64,
    /// When the last compaction committed (ms since the epoch; 0: none yet).
    pub last_compaction_ms: AtomicI64,
    /// The retention horizon last applied (ms since the epoch; 0: none yet).
    pub retention_horizon_ms: AtomicI64,
    /// Files removed by retention since start-up.
    pub expired_files: AtomicU64,
    /// Files past the horizon at the last retention pass that stay because a
    /// kept view version still reads them (see `Engine::view_watermarks`).
    pub held_files: AtomicU64,
    /// The retention in force: the declaration's, or the last `ALTER TABLE`'s.
    retention: Mutex<Option<Duration>>,
}

impl Upkeep {
    /// Upkeep for a source declared with `retention`.
    pub fn new(retention: Option<Duration>) -> Self {
        Self {
            retention: Mutex::new(retention),
            ..Self::default()
        }
    }

    /// The retention in force (`None`: events are kept for ever).
    pub fn retention(&self) -> Option<Duration> {
        *self.retention.lock().expect("retention lock")
    }

    /// Changes the retention (`ALTER TABLE ... SET/RESET`).
    pub fn set_retention(&self, retention: Option<Duration>) {
        *self.retention.lock().expect("retention lock") = retention;
    }

    /// Replaced files still on the store, awaiting their grace period.
    pub fn retired_files(&self) -> usize {
        let retired = self.retired.lock().expect("retired lock");
        retired.iter().map(|(_, files)| files.len()).sum()
    }
}

/// What a retention pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Retained {
    /// Files removed.
    pub removed: usize,
    /// Files past the horizon kept because a kept view version reads them.
    pub held: usize,
}

/// A watermark a refresh in progress reads from: compaction does not merge
/// across it until the refresh's version is published (then the view's kept
/// versions hold it) and this guard drops.
pub struct Pin {
    source: Arc<SourceState>,
    id: u64,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut pins = self.source.upkeep.pins.lock().expect("pins lock");
        pins.remove(&self.id);
    }
}

impl SourceState {
    /// Changes whenever the source's rows change: with every consumed message,
    /// and when retention removes files (which consumes nothing). The result
    /// cache's version of the source.
    pub fn content_version(&self) -> u64 {
        let consumed = self.consumed().total() as u64;
        let expired = self.upkeep.expired_files.load(Ordering::Relaxed);
        // A follower's files change with every state it adopts (the writer's
        // archive runs, compactions, retention), whatever it consumed.
        consumed
            .wrapping_add(expired.wrapping_mul(1 << 40))
            .wrapping_add(self.adopted().wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Archives what was consumed and pins the committed watermark, both under
    /// the archive lock, so no compaction merges across it in between.
    pub async fn archive_pinned(self: &Arc<Self>) -> Result<(Arc<Manifest>, Pin)> {
        self.require_writer("REFRESH MATERIALIZED VIEW")?;
        let _one_at_a_time = self.archive_lock.lock().await;
        let manifest = self.archive_locked_noted().await?;
        let id = self.upkeep.next_pin.fetch_add(1, Ordering::Relaxed);
        let mut pins = self.upkeep.pins.lock().expect("pins lock");
        pins.insert(id, manifest.watermark.clone());
        drop(pins);
        Ok((
            manifest,
            Pin {
                source: self.clone(),
                id,
            },
        ))
    }

    /// Merges small files (see `lambdadb_batch::compact`), never across
    /// `keep` or a pinned watermark. Returns what it did, if anything.
    pub async fn compact(
        self: &Arc<Self>,
        mut keep: KeepOffsets,
        policy: CompactPolicy,
        ctx: SessionContext,
    ) -> Result<Option<CompactSummary>> {
        if !self.may_write() {
            return Ok(None);
        }
        let _one_at_a_time = self.archive_lock.lock().await;
        for w in self.upkeep.pins.lock().expect("pins lock").values() {
            for (p, offset) in w.partitions() {
                keep.entry(p).or_default().insert(offset);
            }
        }
        let current = self.manifest();
        let runs = lambdadb_batch::compact::plan(&current, &keep, policy);
        if runs.is_empty() {
            return Ok(None);
        }
        let (next, summary) = self
            .archiver
            .compact(&current, runs, &ctx, self.spec.event_time.as_deref())
            .await
            .map_err(from_batch)?;
        {
            let mut inner = self.inner.write().expect("source lock");
            inner.manifest = Arc::new(next);
        }
        self.upkeep
            .retired
            .lock()
            .expect("retired lock")
            .push((Instant::now(), summary.replaced.clone()));
        self.upkeep.compactions.fetch_add(1, Ordering::Relaxed);
        self.upkeep
            .last_compaction_ms
            .store(now_ms(), Ordering::Relaxed);
        Ok(Some(summary))
    }

    /// Removes the files past the source's retention (none without one) that
    /// lie wholly below every watermark in `needed` (views still read the
    /// files above those: see `Engine::view_watermarks`); they are deleted from
    /// the store after the grace period, like replaced ones.
    pub async fn apply_retention(self: &Arc<Self>, needed: &[Watermark]) -> Result<Retained> {
        let Some(retention) = self.upkeep.retention() else {
            return Ok(Retained::default());
        };
        if !self.may_write() {
            return Ok(Retained::default());
        }
        let horizon = now_ms() - retention.as_millis() as i64;
        let _one_at_a_time = self.archive_lock.lock().await;
        let current = self.manifest();
        let (expired, held) = self
            .archiver
            .expire(&current, horizon, needed)
            .await
            .map_err(from_batch)?;
        self.upkeep
            .retention_horizon_ms
            .store(horizon, Ordering::Relaxed);
        self.upkeep.held_files.store(held as u64, Ordering::Relaxed);
        let Some((next, removed)) = expired else {
            return Ok(Retained { removed: 0, held });
        };
        {
            let mut inner = self.inner.write().expect("source lock");
            inner.manifest = Arc::new(next);
        }
        let n = removed.len();
        self.upkeep
            .expired_files
            .fetch_add(n as u64, Ordering::Relaxed);
        self.upkeep
            .retired
            .lock()
            .expect("retired lock")
            .push((Instant::now(), removed));
        Ok(Retained { removed: n, held })
    }

    /// Deletes files replaced more than `grace` ago: a query planned before
    /// their replacement has finished by then (statement_timeout bounds it
    /// when set; the grace should exceed it).
    pub async fn delete_retired(&self, grace: Duration) {
        let due: Vec<String> = {
            let mut retired = self.upkeep.retired.lock().expect("retired lock");
            let (old, young): (Vec<_>, Vec<_>) =
                retired.drain(..).partition(|(at, _)| at.elapsed() >= grace);
            *retired = young;
            old.into_iter().flat_map(|(_, files)| files).collect()
        };
        for rel in due {
            if let Err(e) = self.archiver.store().delete(&rel).await {
                warn!(table = %self.spec.name, file = %rel, "cannot delete a replaced file (it is removed at the next start): {e}");
            }
        }
    }
}
