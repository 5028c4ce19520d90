//! Retention: master-dataset files whose events are all older than a
//! source's limit (by event time) leave the table in one Delta commit (a
//! DELETE: `dataChange = true`), atomically. The watermark does not move: the
//! offsets stay archived, their rows are gone. A file with any event younger
//! than the horizon stays whole (files are never rewritten for retention).

use deltalake::protocol::DeltaOperation;
use lambdadb_common::Watermark;
use tracing::info;

use crate::Result;
use crate::archive::Archiver;
use crate::manifest::Manifest;

impl Archiver {
    /// Removes the files whose newest event is older than `horizon_ms` and
    /// whose offsets all lie below every watermark of `needed` (a file above
    /// one is still read by a view version that has not taken its events in,
    /// or that a rollback would rebuild its speed part from).
    /// Returns the committed state and the removed files' relative paths
    /// (deleted from the store after the grace period), or `None` when no
    /// file expired, and how many files past the horizon `needed` held back.
    pub async fn expire(
        &self,
        current: &Manifest,
        horizon_ms: i64,
        needed: &[Watermark],
    ) -> Result<(Option<(Manifest, Vec<String>)>, usize)> {
        let past: Vec<_> = current
            .files
            .iter()
            .filter(|f| {
                f.event_time_ms
                    .is_some_and(|(_, newest)| newest < horizon_ms)
            })
            .collect();
        let expired: Vec<String> = past
            .iter()
            .filter(|f| needed.iter().all(|w| f.next_offset <= w.next(f.partition)))
            .map(|f| f.path.clone())
            .collect();
        let held = past.len() - expired.len();
        if expired.is_empty() {
            return Ok((None, held));
        }
        let gone: std::collections::HashSet<&str> = expired.iter().map(String::as_str).collect();
        let mut next = current.clone();
        next.files.retain(|f| !gone.contains(f.path.as_str()));
        // No predicate: delta-rs would parse it as SQL for conflict checks;
        // the horizon is in the log message and the removes' tags.
        let operation = DeltaOperation::Delete { predicate: None };
        let next = self
            .commit(current, &next, operation, "retention.manifest")
            .await?;
        info!(table = %self.store().url, files = expired.len(), held, horizon_ms, "removed files past retention");
        Ok((Some((next, expired)), held))
    }
}
