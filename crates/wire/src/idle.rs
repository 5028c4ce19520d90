//! Connection watchdog. `authentication_timeout`: a connection that has not
//! finished logging in within it is closed, as PostgreSQL does (pgwire's own
//! limit is a fixed minute). `idle_session_timeout`: a session that waits for
//! its client longer than it allows, with no statement running or streaming,
//! is closed with FATAL 57P05. pgwire owns the socket's read loop, so the
//! watchdog runs beside it and ends the connection from outside.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pgwire::error::ErrorInfo;
use pgwire::messages::PgWireBackendMessage;

use crate::session::LoginSession;

/// Whether a statement is running, and since when the connection has been idle.
#[derive(Debug)]
pub struct Activity {
    busy: AtomicUsize,
    since: Mutex<Instant>,
    /// TLS connections cannot be written to from outside the TLS stream.
    pub secure: AtomicBool,
    /// Set once the client has logged in.
    pub authenticated: AtomicBool,
    opened: Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            busy: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
            secure: AtomicBool::new(false),
            authenticated: AtomicBool::new(false),
            opened: Instant::now(),
        }
    }
}

impl Activity {
    /// Marks a statement running until the guard (kept by its result stream) drops.
    pub fn begin(self: &Arc<Self>) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::SeqCst);
        BusyGuard(self.clone())
    }

    /// How long the connection has waited for its client; None while busy.
    pub fn idle_for(&self) -> Option<Duration> {
        (self.busy.load(Ordering::SeqCst) == 0)
            .then(|| self.since.lock().expect("activity lock").elapsed())
    }
}

/// Keeps the connection counted as busy until it drops; see [`Activity::begin`].
pub struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        *self.0.since.lock().expect("activity lock") = Instant::now();
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why the watchdog ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The client did not log in within `authentication_timeout`.
    Authentication,
    /// The session waited for its client longer than `idle_session_timeout`.
    Idle,
}

/// Returns once the connection has overstayed its login time, or the session
/// has been idle longer than its `idle_session_timeout`.
pub async fn expired(activity: Arc<Activity>, session: LoginSession, login: Duration) -> Expiry {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !activity.authenticated.load(Ordering::SeqCst) {
            if activity.opened.elapsed() >= login {
                return Expiry::Authentication;
            }
            continue;
        }
        let limit = session
            .get()
            .map(|s| s.vars().idle_session_timeout_ms())
            .unwrap_or(0);
        if limit > 0
            && let Some(idle) = activity.idle_for()
            && idle >= Duration::from_millis(limit)
        {
            return Expiry::Idle;
        }
    }
}

/// Closes the socket; an idle session is told why first (plaintext only), a
/// login that timed out is just closed, as PostgreSQL does.
pub fn terminate(socket: &std::net::TcpStream, activity: &Activity, why: Expiry) {
    if why == Expiry::Idle && !activity.secure.load(Ordering::SeqCst) {
        let info = ErrorInfo::new(
            "FATAL".into(),
            "57P05".into(),
            "terminating connection due to idle-session timeout".into(),
        );
        let mut buf = BytesMut::new();
        if PgWireBackendMessage::ErrorResponse(info.into())
            .encode(&mut buf)
            .is_ok()
        {
            let mut s = socket;
            let _ = s.write_all(&buf);
        }
    }
    let _ = socket.shutdown(std::net::Shutdown::Both);
}
