//! Memory for query execution, bounded twice: each session's statement by
//! `query_memory_limit`, and everything the server executes together (every
//! session's queries, batch refreshes and speed folds) by `memory_limit`, so
//! that many sessions cannot together take more than the machine has. Spilling
//! is off: work over either bound fails with 53200 and the server goes on.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
}

impl BoundedPool {
    /// At most `limit` bytes (named `setting` in errors), all drawn from `parent`.
    pub fn new(parent: Arc<dyn MemoryPool>, limit: usize, setting: &'static str) -> Self {
        Self {
            parent,
            limit,
            used: AtomicUsize::new(0),
            setting,
        }
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
                DataFusionError::ResourcesExhausted(format!(
                    "{} ({} bytes) reached: {} wanted {additional} more bytes with {used} in use",
                    self.setting,
                    self.limit,
                    reservation.consumer().name()
                ))
            })?;
        if let Err(e) = self.parent.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
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
}
