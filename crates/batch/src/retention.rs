//! Retention: master-dataset files whose events are all older than a
//! source's limit (by event time) leave the table in one Delta commit (a
//! DELETE: `dataChange = true`), atomically. The watermark does not move: the
//! offsets stay archived, their rows are gone. A file with any event younger
//! than the horizon stays whole (files are never rewritten for retention).

use deltalake::protocol::DeltaOperation;
use tracing::info;

use crate::Result;
use crate::archive::Archiver;
use crate::manifest::Manifest;

impl Archiver {
    /// Removes the files whose newest event is older than `horizon_ms`.
    /// Returns the committed state and the removed files' relative paths
    /// (deleted from the store after the grace period), or `None` when no
    /// file expired.
    pub async fn expire(
        &self,
        current: &Manifest,
        horizon_ms: i64,
    ) -> Result<Option<(Manifest, Vec<String>)>> {
        let expired: Vec<String> = current
            .files
            .iter()
            .filter(|f| {
                f.event_time_ms
                    .is_some_and(|(_, newest)| newest < horizon_ms)
            })
            .map(|f| f.path.clone())
            .collect();
        if expired.is_empty() {
            return Ok(None);
        }
        let mut next = current.clone();
        next.files.retain(|f| !expired.contains(&f.path));
        // No predicate: delta-rs would parse it as SQL for conflict checks;
        // the horizon is in the log message and the removes' tags.
        let operation = DeltaOperation::Delete { predicate: None };
        let next = self
            .commit(current, &next, operation, "retention.manifest")
            .await?;
        info!(table = %self.store().url, files = expired.len(), horizon_ms, "removed files past retention");
        Ok(Some((next, expired)))
    }
}
