//! Connection slots for `max_connections`.
//!
//! A connection takes a slot when its startup message arrives, not when the TCP
//! connection is accepted: port probes (load balancers, readiness checks) and
//! cancel requests never log in, so they must not crowd out clients, and a
//! probe that closed a moment ago must not still hold a slot while the server
//! has yet to see its EOF.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The connection slots: at most `max_connections` connections past startup at once.
pub struct Slots {
    active: AtomicUsize,
    max: usize,
}

/// A held slot; dropping it (when the connection's handler goes) frees it.
pub struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Slots {
    /// Slots for at most `max` connections, none taken.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            active: AtomicUsize::new(0),
            max,
        })
    }

    /// Takes a slot, or says why not (the 53300 message). The count only ever
    /// rises below `max`, so a refused attempt never makes a concurrent one fail.
    pub fn take(self: &Arc<Self>) -> Result<Slot, String> {
        let max = self.max;
        self.active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |open| {
                (open < max).then_some(open + 1)
            })
            .map(|_| Slot(self.clone()))
            .map_err(|_| {
                format!(
                    "sorry, too many clients already: {max} connections are open (max_connections); close idle connections or raise max_connections"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_frees_its_count_and_drop_frees_a_slot() {
        let slots = Slots::new(2);
        let a = slots.take().ok().unwrap();
        let _b = slots.take().ok().unwrap();
        assert!(slots.take().err().unwrap().contains("too many clients"));
        // The refused attempt did not keep a count.
        assert!(slots.take().is_err());
        drop(a);
        assert!(slots.take().is_ok());
    }
}
