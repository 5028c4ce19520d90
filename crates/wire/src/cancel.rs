//! Protocol cancel requests. A cancel arrives on a new connection carrying the
//! target's process id and secret key; the registry wakes that connection's
//! running statement, whose row stream then ends with 57014 and drops the plan,
//! so execution stops (not only planning).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use tokio::sync::Notify;
use tracing::debug;

/// Every live connection's cancel key and signal.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    connections: Mutex<HashMap<i32, (SecretKey, Arc<Notify>)>>,
}

impl CancelRegistry {
    /// Records connection `pid`'s cancel key and the signal that cancels its running statement.
    pub fn register(&self, pid: i32, key: SecretKey, signal: Arc<Notify>) {
        self.connections
            .lock()
            .expect("cancel lock")
            .insert(pid, (key, signal));
    }

    /// Forgets connection `pid`, once it has closed.
    pub fn remove(&self, pid: i32) {
        self.connections.lock().expect("cancel lock").remove(&pid);
    }
}

/// Protocol 3.0 keys are 32-bit integers, 3.2 keys are bytes; the same key may be
/// decoded either way, so compare the bytes.
fn key_bytes(k: &SecretKey) -> Vec<u8> {
    match k {
        SecretKey::I32(i) => i.to_be_bytes().to_vec(),
        SecretKey::Bytes(b) => b.to_vec(),
    }
}

#[async_trait]
impl CancelHandler for CancelRegistry {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let target = self
            .connections
            .lock()
            .expect("cancel lock")
            .get(&request.pid)
            .cloned();
        match target {
            // A wrong key is ignored silently, as PostgreSQL does.
            Some((key, signal)) if key_bytes(&key) == key_bytes(&request.secret_key) => {
                debug!(pid = request.pid, "cancel request");
                signal.notify_waiters();
            }
            _ => debug!(
                pid = request.pid,
                "cancel request for an unknown connection or key"
            ),
        }
    }
}
