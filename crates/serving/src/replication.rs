//! Several processes on one shared store (docs/scale-out.md): the lease
//! keeper of a writer-capable process, and the follower that installs what
//! the writer commits in every process that is not writing.
//!
//! The keeper ticks the lease every third of its expiry. When this process
//! comes to hold it, every source's table is taken over in the new epoch
//! (a commit that fences any earlier holder) before it writes; when it loses
//! it, every source steps down and follows. The follower runs every
//! `follow_interval` over the sources that are not written here.

use std::sync::Arc;
use std::time::Duration;

use lambdadb_batch::LeaseState;
use tracing::{info, warn};

use crate::engine::Engine;

impl Engine {
    /// Starts the lease keeper (writer-capable on a shared store) and the
    /// follower (every process on a shared store).
    pub fn spawn_replication(self: &Arc<Self>) {
        if let Some(lease) = self.gate().lease().cloned() {
            let engine = self.clone();
            tokio::spawn(async move {
                // On a fixed cadence, whatever the sources' takeovers cost:
                // the holder may write only within half an expiry of a renewal.
                let mut tick = tokio::time::interval(lease.expiry() / 3);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    engine.lease_round().await;
                }
            });
        }
        if !matches!(**self.gate(), crate::writer::WriteGate::Local) {
            let engine = self.clone();
            let every = self.config().follow_interval.max(Duration::from_millis(50));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    engine.follow_round().await;
                }
            });
        }
    }

    /// One tick of the lease; the sources follow from it in a task of their
    /// own (a takeover commit can take longer than a renewal period, and the
    /// next renewal must not wait for it). A round that finds the previous
    /// one's sources still busy leaves them to the next round.
    pub async fn lease_round(self: &Arc<Self>) {
        let Some(lease) = self.gate().lease() else {
            return;
        };
        let state = match lease.tick().await {
            Ok(s) => s,
            Err(e) => {
                warn!(
                    "the writer lease cannot be read or renewed (this process stops writing half an expiry after its last renewal): {e}"
                );
                return;
            }
        };
        let Ok(busy) = self.adopting.clone().try_lock_owned() else {
            return;
        };
        let engine = self.clone();
        tokio::spawn(async move {
            let _busy = busy;
            engine.adopt(state).await;
        });
    }

    /// Takes every source over in the epoch held, or steps every source down.
    async fn adopt(&self, state: LeaseState) {
        match state {
            LeaseState::Held { epoch } => {
                for s in self.sources() {
                    if s.taken_epoch() != Some(epoch) {
                        match s.take_over(epoch).await {
                            // Continue from the versions the last writer published.
                            Ok(()) => self.follow_views(&s.spec.name).await,
                            Err(e) => {
                                warn!(table = %s.spec.name, epoch, "taking the table over failed, retried at the next lease round: {e}")
                            }
                        }
                    }
                }
            }
            LeaseState::Other(holder) => {
                for s in self.sources() {
                    if s.taken_epoch().is_some() {
                        info!(table = %s.spec.name, holder = ?holder.as_ref().map(|h| &h.holder), "stepping down: another process holds the writer lease");
                        s.step_down().await;
                    }
                }
            }
        }
    }

    /// Installs the writer's new commits in every source not written here.
    pub async fn follow_round(&self) {
        for s in self.sources() {
            if s.may_write() {
                continue;
            }
            if let Err(e) = s.follow().await {
                warn!(table = %s.spec.name, "following the writer's commits failed, retried: {e}");
            }
            // After the source: a view version is served once the files up
            // to its watermark are.
            self.follow_views(&s.spec.name).await;
        }
    }

    /// Serves the versions the writer published for the views over `source`.
    async fn follow_views(&self, source: &str) {
        for v in self.views().iter().filter(|v| v.source_name() == source) {
            if let Err(e) = v.follow().await {
                warn!(view = %v.name, "following the writer's view versions failed, retried: {e}");
            }
        }
    }
}
