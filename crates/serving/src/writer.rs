//! Who writes the master dataset (docs/scale-out.md).
//!
//! With a local master dataset the one process that owns `data_dir` writes,
//! always. On a shared store (`master_url`) several processes may run: each
//! consumes Kafka into its own speed layer and serves queries, and only the
//! holder of the writer lease (`lambdadb_batch::lease`) archives, compacts,
//! applies retention and publishes batch view versions. The others follow
//! what it commits. Every write path asks the [`WriteGate`] first.

use std::sync::Arc;

use lambdadb_batch::{Lease, LeaseState};

/// Whether this process may write the master dataset now.
#[derive(Debug)]
pub enum WriteGate {
    /// A local master dataset: this process owns it (the `data_dir` lock).
    Local,
    /// A shared store, writer-capable: it writes while it holds the lease.
    Lease(Arc<Lease>),
    /// `role = "reader"`: it never writes.
    Reader,
}

impl WriteGate {
    /// The lease epoch to write in, if this process may write now (`Some(0)`
    /// for a local master dataset, which needs no lease).
    pub fn epoch(&self) -> Option<i64> {
        match self {
            WriteGate::Local => Some(0),
            WriteGate::Lease(l) => l.may_write(),
            WriteGate::Reader => None,
        }
    }

    /// The lease, on a shared store with a writer-capable role.
    pub fn lease(&self) -> Option<&Arc<Lease>> {
        match self {
            WriteGate::Lease(l) => Some(l),
            _ => None,
        }
    }

    /// `all`, `writer` or `reader`, as `lambdadb.replicas` shows it.
    pub fn role(&self) -> &'static str {
        match self {
            WriteGate::Local => "all",
            WriteGate::Lease(_) => "writer",
            WriteGate::Reader => "reader",
        }
    }

    /// Why a write is refused here, for the error a client gets (25006).
    pub fn refusal(&self, what: &str) -> String {
        match self {
            WriteGate::Local => format!("{what} failed: this process cannot write now"),
            WriteGate::Reader => format!(
                "{what} runs on the writer: this process is a reader replica (role = \"reader\"); connect to the process holding the writer lease (lambdadb.replicas shows it)"
            ),
            WriteGate::Lease(l) => match l.state() {
                LeaseState::Other(Some(r)) => format!(
                    "{what} runs on the writer: this process does not hold the writer lease (held by {} at {}, epoch {}); connect to it, or retry here if it is taking over",
                    r.holder, r.address, r.epoch
                ),
                _ => format!(
                    "{what} runs on the writer: this process does not hold the writer lease yet; retry in a moment"
                ),
            },
        }
    }
}
