//! A source under the writer lease: it writes only in the epoch it took its
//! table over in, and otherwise follows the writer's commits (see
//! `crate::writer`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use lambdadb_pgcompat::{QueryError, Result};

use super::SourceState;
use crate::error::from_batch;

impl SourceState {
    /// Whether this process may write the source's table now: locally
    /// always; on a shared store while it holds the lease in the epoch it took
    /// the table over in.
    pub fn may_write(&self) -> bool {
        match self.gate.as_ref() {
            crate::writer::WriteGate::Local => true,
            gate => gate.epoch().is_some_and(|e| Some(e) == self.taken_epoch()),
        }
    }

    /// `Ok` if this process may write now; 25006 with who does otherwise.
    pub fn require_writer(&self, what: &str) -> Result<()> {
        if self.may_write() {
            Ok(())
        } else {
            Err(QueryError::ReadOnlyReplica(self.gate.refusal(what)))
        }
    }

    /// The lease epoch the table was taken over in, if any.
    pub fn taken_epoch(&self) -> Option<i64> {
        *self.taken.lock().expect("taken lock")
    }

    /// Loads what the writer committed since the last look and installs it:
    /// the new files and watermark, and the speed rows they cover dropped (a
    /// follower's speed layer may be behind the writer's: its snapshots then
    /// read files up to the writer's watermark and its own rows above it).
    /// Returns whether the state changed.
    pub async fn follow(self: &Arc<Self>) -> Result<bool> {
        let _one_at_a_time = self.archive_lock.lock().await;
        let installed = self.manifest().version;
        let Some(next) = self.archiver.follow(installed).await.map_err(from_batch)? else {
            return Ok(false);
        };
        self.install(Arc::new(next));
        // Retention may have removed files: cached answers must not hit.
        self.adopted.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Takes the source's table over in lease epoch `epoch` (one commit that
    /// fences earlier holders) and continues from its latest state.
    pub async fn take_over(self: &Arc<Self>, epoch: i64) -> Result<()> {
        let _one_at_a_time = self.archive_lock.lock().await;
        let next = self.archiver.take_over(epoch).await.map_err(from_batch)?;
        if next.version > self.manifest().version {
            self.adopted.fetch_add(1, Ordering::Relaxed);
        }
        self.install(Arc::new(next));
        *self.taken.lock().expect("taken lock") = Some(epoch);
        Ok(())
    }

    /// Stops writing (the lease was lost); the source follows from now on.
    pub async fn step_down(self: &Arc<Self>) {
        *self.taken.lock().expect("taken lock") = None;
        self.archiver.step_down().await;
    }

    /// Changes of the files adopted from the writer (for the result cache).
    pub(crate) fn adopted(&self) -> u64 {
        self.adopted.load(Ordering::Relaxed)
    }
}
