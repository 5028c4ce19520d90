//! The speed layer's memory ceiling (`speed_memory_limit`), shared by every
//! source: consumers pause when the rows held in memory exceed it and resume
//! below nine tenths of it (the gap keeps them from flapping at the line).
//! Rows leave memory only when archived (or when a view's fold no longer needs
//! them), so a failing archive or fold stops ingest instead of growing memory.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Bytes of speed rows across sources against the configured ceiling.
#[derive(Debug)]
pub struct SpeedBudget {
    limit: usize,
    used: AtomicUsize,
    paused: AtomicBool,
}

impl SpeedBudget {
    /// A budget of `limit` bytes (0: no ceiling).
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
        }
    }

    /// One source's rows went from `old` to `new` bytes.
    pub fn changed(&self, old: usize, new: usize) {
        if new >= old {
            self.used.fetch_add(new - old, Ordering::Relaxed);
        } else {
            self.used.fetch_sub(old - new, Ordering::Relaxed);
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The ceiling in bytes (0: none).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether consumers should be paused now (with hysteresis, see the module doc).
    pub fn over(&self) -> bool {
        if self.limit == 0 {
            return false;
        }
        let used = self.used();
        let paused = self.paused.load(Ordering::Relaxed);
        let now = if paused {
            used > self.limit / 10 * 9
        } else {
            used > self.limit
        };
        if now != paused {
            self.paused.store(now, Ordering::Relaxed);
        }
        now
    }

    /// Whether consumers are paused (as last decided by [`SpeedBudget::over`]).
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_above_the_limit_and_resumes_below_nine_tenths() {
        let b = SpeedBudget::new(1000);
        b.changed(0, 900);
        assert!(!b.over());
        b.changed(900, 1001);
        assert!(b.over(), "over the limit");
        b.changed(1001, 950);
        assert!(b.over(), "still above nine tenths: stays paused");
        b.changed(950, 899);
        assert!(!b.over(), "below nine tenths: resumes");
        assert!(!SpeedBudget::new(0).over(), "0 means no ceiling");
    }
}
