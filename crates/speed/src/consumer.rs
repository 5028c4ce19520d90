//! One Kafka consumer per source table, on its own thread.
//!
//! Partitions are assigned explicitly (`assign`, no group rebalancing) at the
//! offsets lambdadb recorded itself, with `auto.offset.reset=error`: if the broker
//! no longer has the recorded offset (a new broker, a recreated topic, retention
//! overtaking us) the partition stops and the error is reported loudly instead of
//! silently skipping or re-reading data. Group commits are sent as progress
//! reports for operators' lag tooling; nothing reads them back.
//!
//! Retention overtaking the consumer (the recorded offset is below the broker's
//! log start) is handled by [`GapPolicy`]: stop the partition (default), or skip
//! to the log start and report the skipped offsets as a counted loss. Either
//! way librdkafka's `__AUTO_OFFSET_RESET` (what `auto.offset.reset=error`
//! reports) and `OffsetOutOfRange` both lead here; a partition never stalls
//! silently. Broker and topic problems and back-pressure are reported to the
//! sink, which shows them in `lambdadb.sources`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset as KOffset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use crate::decode::{JsonDecoder, RawMessage, Rejection};

/// Per-partition bookkeeping, and what happens when the broker cannot serve an offset.
#[path = "partitions.rs"]
mod partitions;
use crate::table::SpeedBatch;
use lambdadb_common::kafka::Secret;
use lambdadb_common::{Fingerprint, PartitionId, payload_hash};
use partitions::{Parts, offsets_out_of_range, stop_partition};

/// Where decoded micro-batches go (the query layer's source state).
pub trait BatchSink: Send + Sync + 'static {
    /// Next offset to consume for `partition`, as recorded by lambdadb, or `None`
    /// to start at the earliest offset the broker has.
    fn start_offset(&self, partition: PartitionId) -> Option<i64>;
    /// The recorded last archived message of `partition`, checked against the
    /// broker's log before consuming resumes.
    fn fingerprint(&self, _partition: PartitionId) -> Option<Fingerprint> {
        None
    }
    /// Micro-batches (one per partition) and the messages rejected in them.
    fn publish(&self, batches: Vec<SpeedBatch>, rejected: Vec<Rejection>);
    /// A partition stopped; `reason` says why and what to do.
    fn partition_failed(&self, partition: PartitionId, reason: String);
    /// The broker's high watermark of a partition, when known.
    fn high_watermark(&self, _partition: PartitionId, _high: i64) {}
    /// Whether consumption should pause (the speed layer is over its memory
    /// ceiling); asked at every poll, so it must be cheap.
    fn backpressure(&self) -> bool {
        false
    }
    /// A problem of the whole consumer (broker unreachable, topic missing,
    /// assignment refused), or `None` once it is gone; reported at every
    /// metadata round (every few seconds), so the sink logs only changes.
    fn consumer_problem(&self, _problem: Option<String>) {}
    /// Retention deleted offsets `[from, to)` of `partition` before they were
    /// consumed, and [`GapPolicy::Skip`] resumed at `to`: a counted loss.
    fn retention_gap(&self, _partition: PartitionId, _from: i64, _to: i64) {}
}

/// What to do when Kafka's retention deleted offsets lambdadb has not consumed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GapPolicy {
    /// Stop the partition with the reason in `lambdadb.sources` (nothing is
    /// silently lost; the operator decides).
    #[default]
    Stop,
    /// Resume at the broker's log start and count the skipped offsets as lost
    /// (`lambdadb.sources.lost_messages`), logged at error.
    Skip,
}

/// What one source's consumer connects to and how it cuts micro-batches.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Kafka bootstrap servers (`bootstrap.servers`).
    pub brokers: String,
    /// Consumer group the progress commits are sent under; nothing reads them back.
    pub group_id: String,
    /// The source's topic; all of its partitions are consumed, including ones added later.
    pub topic: String,
    /// Largest number of messages decoded into one micro-batch.
    pub max_rows: usize,
    /// Longest time a consumed message waits before its micro-batch is published.
    pub max_wait: Duration,
    /// Further librdkafka properties (TLS, SASL), applied over the defaults.
    pub properties: Vec<(String, Secret)>,
    /// What to do when retention overtook the recorded offsets.
    pub gap_policy: GapPolicy,
}

/// Stops the consumer thread when dropped or on [`ConsumerHandle::stop`].
pub struct ConsumerHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ConsumerHandle {
    /// Stops the consumer and waits for its thread, which publishes its pending messages first.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Starts one source's consumer on its own thread: partitions start at the offsets
/// `sink` recorded, and decoded micro-batches and rejections go to `sink`.
pub fn spawn_consumer(
    settings: ConsumerSettings,
    decoder: JsonDecoder,
    sink: Arc<dyn BatchSink>,
) -> std::io::Result<ConsumerHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("consume-{}", settings.topic))
        .spawn(move || {
            if let Err(e) = run(&settings, &decoder, sink.as_ref(), &flag) {
                error!(topic = %settings.topic, "consumer stopped: {e}");
            }
        })?;
    Ok(ConsumerHandle {
        stop,
        thread: Some(thread),
    })
}

/// Collects the high watermarks that Fetch responses carry (via librdkafka's
/// statistics): unlike ListOffsets, every Kafka-protocol broker reports them.
#[derive(Default)]
struct StatsContext {
    high: Arc<std::sync::Mutex<BTreeMap<PartitionId, i64>>>,
}

impl ClientContext for StatsContext {
    fn stats(&self, stats: Statistics) {
        let mut high = self.high.lock().expect("stats lock");
        for topic in stats.topics.values() {
            for (p, part) in &topic.partitions {
                if *p >= 0 && part.hi_offset >= 0 {
                    high.insert(*p, part.hi_offset);
                }
            }
        }
    }

    /// Broker and transport errors (an unreachable broker, "all brokers down"):
    /// logged through tracing at warn, where operators look, instead of
    /// librdkafka's default log line.
    fn error(&self, error: KafkaError, reason: &str) {
        warn!("Kafka client: {error}: {reason}");
    }
}

impl ConsumerContext for StatsContext {}

fn backwards_reason(topic: &str, p: PartitionId, want: i64, high: i64) -> String {
    format!(
        "topic {topic} partition {p}: lambdadb recorded offset {want} but the broker's log ends at offset {high}. \
         The broker's offsets went backwards (a new broker or a recreated topic). \
         This partition is stopped so that nothing is dropped or counted twice; the archived data keeps serving. \
         Point lambdadb at the original broker, or start it with a new data directory to ingest this topic afresh."
    )
}

fn run(
    s: &ConsumerSettings,
    decoder: &JsonDecoder,
    sink: &dyn BatchSink,
    stop: &AtomicBool,
) -> Result<(), KafkaError> {
    let context = StatsContext::default();
    let high_marks = context.high.clone();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &s.brokers)
        .set("group.id", &s.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "10")
        // librdkafka stops fetching a partition whose local queue holds
        // queued.min.messages (100k) and retries only after fetch.queue.backoff.ms
        // (1 s): a consumer that drains faster than that sat idle ~0.6 s of every
        // second while catching up (bench: 60% idle CPU, periodic zero-progress
        // windows). A short backoff and a deeper queue keep fetches flowing.
        .set("fetch.queue.backoff.ms", "5")
        .set("queued.min.messages", "500000")
        .set("socket.keepalive.enable", "true")
        .set("statistics.interval.ms", "1000");
    for (key, value) in &s.properties {
        config.set(key, value.expose());
    }
    let consumer: BaseConsumer<StatsContext> = config.create_with_context(context)?;

    let mut parts = Parts::default();
    let mut paused = false;
    let mut last_metadata = Instant::now() - Duration::from_secs(3600);
    let mut last_commit = Instant::now();
    let mut pending: Vec<RawMessage> = Vec::with_capacity(s.max_rows);
    let mut batch_started: Option<Instant> = None;
    let mut last_high_check = Instant::now();

    while !stop.load(Ordering::SeqCst) {
        // Pick up the topic once it exists and partitions added later; a failed
        // lookup is how an unreachable broker or a missing topic shows.
        if last_metadata.elapsed()
            > Duration::from_secs(if parts.assigned.is_empty() { 1 } else { 3 })
        {
            last_metadata = Instant::now();
            match partitions_of(&consumer, &s.topic) {
                Ok(all) => {
                    let new: Vec<PartitionId> = all
                        .into_iter()
                        .filter(|p| !parts.assigned.contains(p))
                        .collect();
                    match assign(&consumer, s, sink, &mut parts, &new) {
                        Ok(()) => sink.consumer_problem(None),
                        Err(e) => sink.consumer_problem(Some(format!(
                            "cannot assign partitions {new:?} of topic {} (retrying every 3 s): {e}",
                            s.topic
                        ))),
                    }
                    if paused && !new.is_empty() {
                        let _ = consumer.pause(&parts.live(&s.topic));
                    }
                }
                Err(e) => sink.consumer_problem(Some(e)),
            }
        }

        if last_high_check.elapsed() > Duration::from_millis(500) {
            last_high_check = Instant::now();
            let high = high_marks.lock().expect("stats lock").clone();
            for (p, h) in high {
                sink.high_watermark(p, h);
                // Before anything of p was consumed, the recorded start must lie
                // within the broker's log; once consuming, offsets come from it.
                if parts.position.contains_key(&p) || parts.failed.contains(&p) {
                    continue;
                }
                if let Some(want) = sink.start_offset(p).filter(|w| *w > h) {
                    let reason = backwards_reason(&s.topic, p, want, h);
                    stop_partition(&consumer, s, sink, &mut parts, p, reason);
                }
            }
        }

        // Back-pressure: pause fetching while the speed layer is over its memory
        // ceiling (librdkafka resumes at the next undelivered offset).
        let over = sink.backpressure();
        if over != paused && !parts.assigned.is_empty() {
            let tpl = parts.live(&s.topic);
            let result = if over {
                consumer.pause(&tpl)
            } else {
                consumer.resume(&tpl)
            };
            match result {
                Ok(()) => {
                    paused = over;
                    if over {
                        warn!(topic = %s.topic, "speed layer over speed_memory_limit: consumption paused until archiving frees memory");
                    } else {
                        info!(topic = %s.topic, "consumption resumed");
                    }
                }
                Err(e) => warn!(topic = %s.topic, "cannot pause or resume consumption: {e}"),
            }
        }

        match consumer.poll(Duration::from_millis(5)) {
            Some(Ok(m)) if parts.failed.contains(&m.partition()) => {}
            Some(Ok(m)) if parts.verify.contains_key(&m.partition()) => {
                let p = m.partition();
                let want = parts.verify.remove(&p).expect("checked");
                let same = m.offset() == want.offset && payload_hash(m.payload()) == want.hash;
                if !same {
                    let reason = format!(
                        "topic {} partition {p}: the message at offset {} is not the one lambdadb archived there \
                         (found offset {} with different content). The topic was recreated or this is a different broker. \
                         This partition is stopped so that nothing is dropped or counted twice; the archived data keeps serving. \
                         Point lambdadb at the original broker, or start it with a new data directory to ingest this topic afresh.",
                        s.topic,
                        want.offset,
                        m.offset()
                    );
                    stop_partition(&consumer, s, sink, &mut parts, p, reason);
                } else {
                    info!(topic = %s.topic, partition = p, offset = want.offset, "log fingerprint matches; resuming");
                    parts.expected.insert(p, want.offset + 1);
                }
                // The verified message itself was archived already: skip it.
            }
            Some(Ok(m)) => {
                let (p, offset) = (m.partition(), m.offset());
                if parts.expected.get(&p).is_some_and(|e| offset < *e) {
                    debug!(topic = %s.topic, partition = p, offset, "dropped a redelivered message");
                } else {
                    parts.expected.insert(p, offset + 1);
                    pending.push(RawMessage {
                        partition: p,
                        offset,
                        payload: m.payload().map(<[u8]>::to_vec),
                    });
                    batch_started.get_or_insert_with(Instant::now);
                }
            }
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset,
            ))) => {
                flush(&mut pending, decoder, sink, &mut parts.position);
                offsets_out_of_range(&consumer, s, sink, &mut parts);
            }
            Some(Err(e)) => warn!(topic = %s.topic, "consume error: {e}"),
            None => {}
        }

        let due = batch_started.is_some_and(|t| t.elapsed() >= s.max_wait);
        if pending.len() >= s.max_rows || (due && !pending.is_empty()) {
            flush(&mut pending, decoder, sink, &mut parts.position);
            batch_started = None;
        }

        if last_commit.elapsed() > Duration::from_secs(5) && !parts.position.is_empty() {
            last_commit = Instant::now();
            let mut tpl = TopicPartitionList::new();
            for (p, o) in &parts.position {
                let _ = tpl.add_partition_offset(&s.topic, *p, KOffset::Offset(*o));
            }
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                debug!(topic = %s.topic, "progress commit failed (harmless): {e}");
            }
        }
    }
    flush(&mut pending, decoder, sink, &mut parts.position);
    Ok(())
}

/// Starts fetching `new` partitions at the offsets lambdadb recorded; on error
/// none of them counts as assigned, so the next metadata round retries.
fn assign(
    consumer: &BaseConsumer<StatsContext>,
    s: &ConsumerSettings,
    sink: &dyn BatchSink,
    parts: &mut Parts,
    new: &[PartitionId],
) -> Result<(), KafkaError> {
    if new.is_empty() {
        return Ok(());
    }
    // Where each starts: the recorded offset, or first the last archived
    // message, re-read to check that this is still the same log.
    let starts: Vec<(PartitionId, Option<i64>, Option<Fingerprint>)> = new
        .iter()
        .map(|p| {
            let start = sink.start_offset(*p);
            let fp = sink.fingerprint(*p).filter(|f| Some(f.offset + 1) == start);
            (*p, start, fp)
        })
        .collect();
    let mut tpl = TopicPartitionList::new();
    for (p, start, fp) in &starts {
        let off = match (fp, start) {
            (Some(f), _) => KOffset::Offset(f.offset),
            (None, Some(o)) => KOffset::Offset(*o),
            (None, None) => KOffset::Beginning,
        };
        tpl.add_partition_offset(&s.topic, *p, off)?;
    }
    consumer.incremental_assign(&tpl)?;
    for (p, start, fp) in starts {
        if let Some(f) = fp {
            parts.verify.insert(p, f);
        }
        if let Some(o) = start {
            parts.expected.insert(p, o);
        }
        parts.assigned.insert(p);
    }
    info!(topic = %s.topic, partitions = ?new, "assigned partitions");
    Ok(())
}

fn partitions_of(
    consumer: &BaseConsumer<StatsContext>,
    topic: &str,
) -> Result<Vec<PartitionId>, String> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .map_err(|e| {
            format!("cannot reach the Kafka broker (retrying every few seconds; check `brokers` and that the broker runs): {e}")
        })?;
    let missing = || {
        format!(
            "topic {topic} does not exist on the broker yet: create it (or fix the table's topic); consumption starts when it appears"
        )
    };
    let t = md.topics().first().ok_or_else(missing)?;
    if let Some(err) = t.error() {
        return Err(match err {
            rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART => missing(),
            other => format!("topic {topic} is not available: {other:?}"),
        });
    }
    if t.partitions().is_empty() {
        return Err(missing());
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// Decodes the pending messages into one micro-batch per partition and publishes them.
fn flush(
    pending: &mut Vec<RawMessage>,
    decoder: &JsonDecoder,
    sink: &dyn BatchSink,
    position: &mut BTreeMap<PartitionId, i64>,
) {
    if pending.is_empty() {
        return;
    }
    let mut by_partition: BTreeMap<PartitionId, Vec<RawMessage>> = BTreeMap::new();
    for m in pending.drain(..) {
        by_partition.entry(m.partition).or_default().push(m);
    }
    let mut batches = Vec::with_capacity(by_partition.len());
    let mut rejected = Vec::new();
    for (p, msgs) in by_partition {
        let first = msgs.first().expect("non-empty").offset;
        let last = msgs.last().expect("non-empty").offset;
        let last_msg = msgs.last().expect("non-empty");
        let fingerprint = Fingerprint {
            offset: last_msg.offset,
            hash: payload_hash(last_msg.payload.as_deref()),
        };
        let (rows, mut rej) = decoder.decode(&msgs);
        rejected.append(&mut rej);
        position.insert(p, last + 1);
        batches.push(SpeedBatch {
            partition: p,
            first_offset: first,
            next_offset: last + 1,
            rows: Arc::new(rows),
            last: fingerprint,
        });
    }
    sink.publish(batches, rejected);
}
