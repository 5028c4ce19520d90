//! `idle_session_timeout`: a connection that waits for its client longer than
//! the session allows, with no statement running or streaming, is closed with
//! FATAL 57P05 as PostgreSQL does. pgwire owns the socket's read loop, so the
//! watchdog runs beside it and ends the connection from outside.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use lambdadb_query::vars::SessionVars;
use pgwire::error::ErrorInfo;
use pgwire::messages::PgWireBackendMessage;

/// Whether a statement is running, and since when the connection has been idle.
#[derive(Debug)]
pub struct Activity {
    busy: AtomicUsize,
    since: Mutex<Instant>,
    /// TLS connections cannot be written to from outside the TLS stream.
    pub secure: AtomicBool,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            busy: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
            secure: AtomicBool::new(false),
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

pub struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        *self.0.since.lock().expect("activity lock") = Instant::now();
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Returns once the session has been idle longer than its `idle_session_timeout`.
pub async fn expired(activity: Arc<Activity>, vars: SessionVars) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let limit = vars.idle_session_timeout_ms();
        if limit > 0
            && let Some(idle) = activity.idle_for()
            && idle >= Duration::from_millis(limit)
        {
            return;
        }
    }
}

/// Tells the client why (plaintext connections only) and closes the socket.
pub fn terminate(socket: &std::net::TcpStream, activity: &Activity) {
    if !activity.secure.load(Ordering::SeqCst) {
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
