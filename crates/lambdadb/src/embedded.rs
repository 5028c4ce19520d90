//! The embedded demo broker: librdkafka's in-process mock cluster. It speaks the
//! real Kafka protocol on 127.0.0.1 (a random port) so other clients can produce to
//! it too. It is not `Send`, so it lives on its own thread for the process's life.
//! Its data is in memory only: it starts empty on every run.

use std::sync::mpsc;

use anyhow::{Context, anyhow};
use rdkafka::mocking::MockCluster;

/// Starts the mock cluster with `topic` created; returns its bootstrap address.
pub fn start(topic: &str, partitions: i32) -> anyhow::Result<String> {
    let (tx, rx) = mpsc::channel();
    let topic = topic.to_string();
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            let cluster = match MockCluster::new(1) {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(anyhow!("cannot start the embedded broker: {e}")));
                    return;
                }
            };
            if let Err(e) = cluster.create_topic(&topic, partitions, 1) {
                let _ = tx.send(Err(anyhow!("cannot create topic {topic}: {e}")));
                return;
            }
            let _ = tx.send(Ok(cluster.bootstrap_servers()));
            // Keep the cluster alive for the life of the process.
            loop {
                std::thread::park();
            }
        })
        .context("cannot spawn the embedded broker thread")?;
    rx.recv().context("embedded broker thread died")?
}
