//! `lambdadb produce`: JSON lines to a Kafka topic, one message per line, keyed by
//! a field or spread round-robin over the partitions; reports acknowledgements.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "LAMBDADB_BROKERS")]
    pub brokers: String,
    /// Topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// Use this JSON field's value as the message key (else round-robin).
    #[arg(long)]
    pub key: Option<String>,
    /// File of JSON lines; `-` or nothing reads standard input.
    pub file: Option<PathBuf>,
}

#[derive(Default)]
struct Counts {
    acked: AtomicU64,
    failed: AtomicU64,
}

struct Ctx(Arc<Counts>);

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.acked.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                eprintln!("delivery failed: {e}");
                self.0.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let counts = Arc::new(Counts::default());
    let producer: ThreadedProducer<Ctx> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", "10")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .set("compression.type", "lz4")
        .set("enable.idempotence", "false")
        .set("acks", "all")
        .create_with_context(Ctx(counts.clone()))
        .context("cannot create the Kafka producer")?;
    let md = producer
        .client()
        .fetch_metadata(Some(&args.topic), Duration::from_secs(10))
        .with_context(|| format!("cannot reach brokers {}", args.brokers))?;
    let partitions = md
        .topics()
        .first()
        .map(|t| t.partitions().len() as i32)
        .unwrap_or(0);
    if partitions == 0 {
        bail!(
            "topic {} does not exist on {}; create it first",
            args.topic,
            args.brokers
        );
    }

    let reader: Box<dyn BufRead> = match args.file.as_ref().filter(|p| p.as_os_str() != "-") {
        Some(p) => Box::new(BufReader::new(
            std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
        )),
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    let started = Instant::now();
    let mut sent = 0u64;
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let key = args.key.as_ref().and_then(|k| {
            serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get(k).map(|x| x.to_string()))
        });
        let partition = (sent % partitions as u64) as i32;
        loop {
            let mut rec: BaseRecord<'_, String, String> =
                BaseRecord::to(&args.topic).payload(&line);
            rec = match &key {
                Some(k) => rec.key(k),
                None => rec.partition(partition),
            };
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => bail!("cannot produce: {e}"),
            }
        }
        sent += 1;
        if sent.is_multiple_of(100_000) {
            eprintln!(
                "sent {sent}, acknowledged {}",
                counts.acked.load(Ordering::Relaxed)
            );
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .context("not every message was acknowledged within 60 s")?;
    let acked = counts.acked.load(Ordering::Relaxed);
    let failed = counts.failed.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "produced {sent} messages to {}: {acked} acknowledged, {failed} failed ({:.0} msg/s)",
        args.topic,
        acked as f64 / secs.max(1e-9)
    );
    if acked != sent {
        bail!("{} of {sent} messages were not acknowledged", sent - acked);
    }
    Ok(())
}
