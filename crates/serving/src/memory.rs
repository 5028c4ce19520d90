//! Memory for query execution, bounded twice: each session's statement by
//! `query_memory_limit`, and everything the server executes together (every
//! session's queries, batch refreshes and speed folds) by `memory_limit`, so
//! that many sessions cannot together take more than the machine has. Spilling
//! is off: work over either bound fails with 53200 and the server goes on.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

/// A pool of at most `limit` bytes that also draws every byte from `parent`.
#[derive(Debug)]
pub struct BoundedPool {
    parent: Arc<dyn MemoryPool>,
    limit: usize,
    used: AtomicUsize,
    /// Which setting `limit` is, for error messages.
    setting: &'static str,
    /// The last refusal's message: some operators (a repartition's buffer)
    /// drop the pool's error and fail later with "DiskManager is disabled",
    /// which says neither which limit nor what to change; [`explain`] puts it back.
    refused: Mutex<Option<String>>,
}

impl BoundedPool {
    /// At most `limit` bytes (named `setting` in errors), all drawn from `parent`.
    pub fn new(parent: Arc<dyn MemoryPool>, limit: usize, setting: &'static str) -> Self {
        Self {
            parent,
            limit,
            used: AtomicUsize::new(0),
            setting,
            refused: Mutex::new(None),
        }
    }

    fn refuse(&self, message: String) -> DataFusionError {
        *self.refused.lock().expect("refusal lock") = Some(message.clone());
        DataFusionError::ResourcesExhausted(message)
    }
}

/// `e` with the refusal of `pool` (if it is a [`BoundedPool`] that refused)
/// in place of DataFusion's "spilling is disabled" error, which an operator
/// raises after dropping the pool's own error.
pub fn explain(pool: &Arc<dyn MemoryPool>, e: DataFusionError) -> DataFusionError {
    let spill = matches!(e.find_root(), DataFusionError::ResourcesExhausted(m) if m.contains("DiskManager is disabled"));
    let bounded = (pool.as_ref() as &dyn Any).downcast_ref::<BoundedPool>();
    match bounded.and_then(|p| p.refused.lock().expect("refusal lock").take()) {
        Some(refusal) if spill => DataFusionError::ResourcesExhausted(refusal),
        _ => e,
    }
}

impl fmt::Display for BoundedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (used {} of {}; server: {})",
            self.setting,
            self.used.load(Ordering::Relaxed),
            self.limit,
            self.parent
        )
    }
}

impl MemoryPool for BoundedPool {
    fn name(&self) -> &str {
        self.setting
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.parent.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.parent.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.parent.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.parent.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                let next = used.checked_add(additional)?;
                (next <= self.limit).then_some(next)
            })
            .map_err(|used| {
                self.refuse(format!(
                    "{} ({} bytes) reached: {} wanted {additional} more bytes with {used} in use",
                    self.setting,
                    self.limit,
                    reservation.consumer().name()
                ))
            })?;
        if let Err(e) = self.parent.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(self.refuse(format!(
                "memory_limit of the whole server reached (every session's queries, refreshes and folds share it): {e}"
            )));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    #[test]
    fn both_bounds_hold() {
        let server: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(100));
        let a: Arc<dyn MemoryPool> =
            Arc::new(BoundedPool::new(server.clone(), 60, "query_memory_limit"));
        let b: Arc<dyn MemoryPool> =
            Arc::new(BoundedPool::new(server.clone(), 60, "query_memory_limit"));
        let ra = MemoryConsumer::new("a").register(&a);
        let rb = MemoryConsumer::new("b").register(&b);
        ra.try_grow(50).unwrap();
        assert!(
            ra.try_grow(20)
                .unwrap_err()
                .to_string()
                .contains("query_memory_limit")
        );
        // b is within its own bound, but the server's is reached.
        let e = rb.try_grow(60).unwrap_err().to_string();
        assert!(e.contains("memory_limit of the whole server"), "{e}");
        assert_eq!((a.reserved(), b.reserved(), server.reserved()), (50, 0, 50));
        rb.try_grow(40).unwrap();
        drop(ra);
        assert_eq!(server.reserved(), 40);
        rb.try_grow(20).unwrap();
    }

    #[test]
    fn a_dropped_refusal_is_explained() {
        let server: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(10));
        let pool: Arc<dyn MemoryPool> =
            Arc::new(BoundedPool::new(server, 100, "query_memory_limit"));
        let r = MemoryConsumer::new("RepartitionExec").register(&pool);
        assert!(r.try_grow(20).is_err());
        let spill = DataFusionError::ResourcesExhausted(
            "Memory Exhausted while SpillPool (DiskManager is disabled)".into(),
        );
        let e = explain(&pool, spill).to_string();
        assert!(e.contains("memory_limit of the whole server"), "{e}");
        // Used once: a later, unrelated error is left as it is.
        let other = DataFusionError::ResourcesExhausted("DiskManager is disabled".into());
        assert!(!explain(&pool, other).to_string().contains("whole server"));
    }
}
