//! The engine's background work: archiving every source, folding every view's
//! speed state and refreshing every view, each on its configured interval.

use std::sync::Arc;
use std::time::Duration;

use lambdadb_batch::{CompactPolicy, KeepOffsets};
use lambdadb_common::Watermark;
use tracing::error;

use crate::engine::Engine;

/// How often retention and the deletion of expired files run when
/// compaction is off.
pub const UPKEEP_WHEN_NOT_COMPACTING: Duration = Duration::from_secs(300);

impl Engine {
    /// One pass over every source: retention, compaction (unless
    /// `compact_interval` is 0), then the deletion of files replaced or
    /// expired longer than `vacuum_grace` ago.
    pub async fn compact_all(self: &Arc<Self>) {
        let compacting = !self.config().compact_interval.is_zero();
        let policy = CompactPolicy {
            target_bytes: self.config().compact_target_bytes(),
            min_files: self.config().compact_min_files,
        };
        for s in self.sources() {
            if let Err(e) = s.apply_retention(&self.view_watermarks(&s.spec.name)).await {
                error!(table = %s.spec.name, "applying retention failed, will retry: {e}");
            }
            let ctx =
                crate::context::context(self.session_config(), Some(self.background_runtime()));
            if compacting
                && let Err(e) = s
                    .compact(
                        keep_offsets(&self.view_watermarks(&s.spec.name)),
                        policy,
                        ctx,
                    )
                    .await
            {
                error!(table = %s.spec.name, "compaction failed, will retry: {e}");
            }
            s.delete_retired(self.config().vacuum_grace).await;
        }
    }

    /// The watermarks from which views over `source` still read its files:
    /// every kept version of each view's current definition (the served one,
    /// rollback targets, incremental bases: a rollback rebuilds the speed part
    /// from the files above its version), and the watermark its speed part
    /// reads files from until its first fold. Compaction does not merge across
    /// them; retention removes no file above any of them.
    pub fn view_watermarks(&self, source: &str) -> Vec<Watermark> {
        let mut marks = Vec::new();
        for v in self.views().iter().filter(|v| v.source_name() == source) {
            for version in v.history().versions {
                if version.definition == v.definition {
                    marks.push(version.watermark);
                }
            }
            // The served version is among the kept ones.
            if let Some(speed) = v.speed().filter(|s| s.from_files) {
                marks.push(speed.folded);
            }
        }
        marks
    }

    /// Archives every source on the configured interval and refreshes every view on
    /// its schedule, until the process ends.
    pub fn spawn_background(self: &Arc<Self>) {
        let engine = self.clone();
        let every = self.config().archive_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(50)));
            loop {
                tick.tick().await;
                for s in engine.sources() {
                    if let Err(e) = s.archive().await {
                        error!(table = %s.spec.name, "archiving failed, will retry: {e}");
                    }
                }
            }
        });
        {
            let engine = self.clone();
            let every = self
                .config()
                .speed_fold_interval
                .max(Duration::from_millis(10));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    for v in engine.views() {
                        if let Err(e) = v.fold().await {
                            error!(view = %v.name, "folding new events failed, queries merge them meanwhile: {e}");
                        }
                    }
                }
            });
        }
        {
            // Retention runs even with compaction off (compact_interval = 0),
            // then every UPKEEP_WHEN_NOT_COMPACTING.
            let engine = self.clone();
            let every = match self.config().compact_interval {
                d if d.is_zero() => UPKEEP_WHEN_NOT_COMPACTING,
                d => d,
            };
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    engine.compact_all().await;
                }
            });
        }
        if !self.config().refresh_interval.is_zero() {
            let engine = self.clone();
            let every = self.config().refresh_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    for v in engine.views() {
                        if !v.source.may_write() {
                            continue; // the writer refreshes
                        }
                        if let Err(e) = engine.refresh(&v.name, false).await {
                            error!(view = %v.name, "scheduled refresh failed: {e}");
                        }
                    }
                }
            });
        }
    }
}

/// Every offset of `marks` as a file boundary compaction must keep.
fn keep_offsets(marks: &[Watermark]) -> KeepOffsets {
    let mut keep = KeepOffsets::new();
    for w in marks {
        for (p, offset) in w.partitions() {
            keep.entry(p).or_default().insert(offset);
        }
    }
    keep
}
