//! The engine's background work: archiving every source, folding every view's
//! speed state and refreshing every view, each on its configured interval.

use std::sync::Arc;
use std::time::Duration;

use tracing::error;

use crate::engine::Engine;

impl Engine {
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
        if !self.config().refresh_interval.is_zero() {
            let engine = self.clone();
            let every = self.config().refresh_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    for v in engine.views() {
                        if let Err(e) = engine.refresh(&v.name, false).await {
                            error!(view = %v.name, "scheduled refresh failed: {e}");
                        }
                    }
                }
            });
        }
    }
}
