//! `lambdadb mock-broker`: librdkafka's mock cluster as a process of its own,
//! for tests that need a broker outliving the server, broker outages without
//! data loss, and retention. The mock keeps at most 5 MB (or 100,000 message
//! sets) per partition and deletes the oldest beyond that, like Kafka's
//! size-based retention. It prints its bootstrap address on the first line of
//! standard output, then obeys commands read from standard input, one per
//! line: `down` / `up` (every broker stops or resumes answering; the data is
//! kept), `down B` / `up B` (broker B alone; this moves no leader: pair it
//! with `leader`), `leader TOPIC PARTITION B` (partition leadership moves to
//! broker B, as after a controller's election), `create TOPIC:PARTITIONS`.
//! Topics are replicated on every broker. It exits when standard input closes.

use std::io::BufRead;

use anyhow::{Context, anyhow};
use rdkafka::mocking::MockCluster;

/// Arguments of `lambdadb mock-broker`.
#[derive(clap::Args, Debug)]
pub struct MockBrokerArgs {
    /// Brokers in the cluster.
    #[arg(long, default_value_t = 1)]
    pub brokers: i32,
    /// Topics to create, as NAME:PARTITIONS.
    #[arg(long = "topic")]
    pub topics: Vec<String>,
}

/// Runs the mock cluster until standard input closes.
pub fn run(args: MockBrokerArgs) -> anyhow::Result<()> {
    let cluster = MockCluster::new(args.brokers).map_err(|e| anyhow!("cannot start: {e}"))?;
    for t in &args.topics {
        create(&cluster, t, args.brokers)?;
    }
    println!("{}", cluster.bootstrap_servers());
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.context("reading commands")?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let result = match words.as_slice() {
            ["down"] => (1..=args.brokers)
                .try_for_each(|b| cluster.broker_down(b))
                .map_err(|e| anyhow!("{e}")),
            ["up"] => (1..=args.brokers)
                .try_for_each(|b| cluster.broker_up(b))
                .map_err(|e| anyhow!("{e}")),
            ["down", b] => broker(b, args.brokers)
                .and_then(|b| cluster.broker_down(b).map_err(|e| anyhow!("{e}"))),
            ["up", b] => broker(b, args.brokers)
                .and_then(|b| cluster.broker_up(b).map_err(|e| anyhow!("{e}"))),
            ["leader", topic, partition, b] => partition
                .parse::<i32>()
                .context("partition")
                .and_then(|p| Ok((p, broker(b, args.brokers)?)))
                .and_then(|(p, b)| {
                    cluster
                        .partition_leader(topic, p, Some(b))
                        .map_err(|e| anyhow!("{e}"))
                }),
            ["create", spec] => create(&cluster, spec, args.brokers),
            [] => Ok(()),
            _ => Err(anyhow!("unknown command: {line}")),
        };
        match result {
            Ok(()) => println!("ok"),
            Err(e) => println!("error: {e}"),
        }
    }
    Ok(())
}

/// Broker `text` of a cluster of `count` (ids 1..=count).
fn broker(text: &str, count: i32) -> anyhow::Result<i32> {
    let b: i32 = text.parse().context("broker id")?;
    if !(1..=count).contains(&b) {
        return Err(anyhow!("broker {b}: the cluster has brokers 1 to {count}"));
    }
    Ok(b)
}

fn create(
    cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    spec: &str,
    replicas: i32,
) -> anyhow::Result<()> {
    let (name, parts) = spec
        .split_once(':')
        .ok_or_else(|| anyhow!("topic {spec}: write NAME:PARTITIONS"))?;
    let parts: i32 = parts.parse().context("partitions")?;
    cluster
        .create_topic(name, parts, replicas)
        .map_err(|e| anyhow!("cannot create topic {name}: {e}"))
}
