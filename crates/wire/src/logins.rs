//! Connections that have not logged in yet, bounded by
//! `max_unauthenticated_connections`.
//!
//! Before login a connection costs only its socket, a small buffer and a timer
//! (the session is built after authentication), and there are at most this many
//! such connections. When one more arrives, the oldest is closed to make room:
//! a flood of silent sockets then costs bounded memory and cannot lock clients
//! out, because a real client finishes logging in within milliseconds while the
//! flood's sockets age out in arrival order. `authentication_timeout` closes a
//! connection that stays silent anyway.

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

/// The connections waiting to log in, oldest first.
pub struct PendingLogins {
    max: usize,
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<TcpStream>>>,
    /// Connections closed to make room, since start-up.
    evicted: AtomicU64,
    /// When eviction was last logged, and how many were closed since.
    reported: Mutex<(Option<Instant>, u64)>,
}

/// One connection's place among the pending logins; dropping it (at login, or
/// when the connection ends) gives the place up.
pub struct PendingLogin {
    id: u64,
    logins: Arc<PendingLogins>,
}

impl Drop for PendingLogin {
    fn drop(&mut self) {
        self.logins
            .open
            .lock()
            .expect("logins lock")
            .remove(&self.id);
    }
}

impl PendingLogins {
    /// Room for `max` connections that have not logged in (at least one).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            next: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
            evicted: AtomicU64::new(0),
            reported: Mutex::new((None, 0)),
        })
    }

    /// Counts `socket` as waiting to log in, closing the oldest waiting
    /// connections beyond the limit.
    pub fn register(self: &Arc<Self>, socket: Arc<TcpStream>) -> PendingLogin {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut closed = 0;
        {
            let mut open = self.open.lock().expect("logins lock");
            open.insert(id, socket);
            while open.len() > self.max {
                if let Some((_, oldest)) = open.pop_first() {
                    let _ = oldest.shutdown(Shutdown::Both);
                    closed += 1;
                }
            }
        }
        if closed > 0 {
            self.evicted.fetch_add(closed, Ordering::Relaxed);
            self.report(closed);
        }
        PendingLogin {
            id,
            logins: self.clone(),
        }
    }

    /// Connections waiting to log in now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.open.lock().expect("logins lock").len()
    }

    /// Connections closed to make room since start-up.
    #[cfg(test)]
    fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// A warning at most every ten seconds, with the count since the last one:
    /// a flood must not flood the log too.
    fn report(&self, closed: u64) {
        let mut reported = self.reported.lock().expect("logins lock");
        reported.1 += closed;
        let due = reported
            .0
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(10));
        if due {
            warn!(
                closed = reported.1,
                since_start = self.evicted.load(Ordering::Relaxed),
                limit = self.max,
                "closed the oldest connections that had not logged in, to make room (max_unauthenticated_connections)"
            );
            *reported = (Some(Instant::now()), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn the_oldest_waiting_connection_makes_room() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        let mut accepted = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).unwrap());
            accepted.push(Arc::new(listener.accept().unwrap().0));
        }
        let logins = PendingLogins::new(2);
        let first = logins.register(accepted[0].clone());
        let second = logins.register(accepted[1].clone());
        assert_eq!(logins.waiting(), 2);
        let _third = logins.register(accepted[2].clone());
        assert_eq!((logins.waiting(), logins.evicted()), (2, 1));
        // The oldest was closed: its client reads end of stream.
        let mut buf = [0u8; 1];
        assert_eq!(clients[0].read(&mut buf).unwrap(), 0);
        // Logging in (dropping the place) makes room without closing anyone.
        drop(second);
        drop(first);
        assert_eq!(logins.waiting(), 1);
    }
}
