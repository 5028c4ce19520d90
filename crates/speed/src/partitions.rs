//! The consumer's per-partition bookkeeping, stopping a partition, and what
//! happens when the broker cannot serve an offset: retention overtook the
//! recorded position (a gap: [`GapPolicy`]), only the last archived message
//! is gone (resume unverified), or the log went backwards (stop).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset as KOffset, TopicPartitionList};
use tracing::{error, warn};

use super::{BatchSink, ConsumerSettings, GapPolicy, StatsContext, backwards_reason};
use lambdadb_common::{Fingerprint, PartitionId};

/// The per-partition bookkeeping of one consumer thread.
#[derive(Default)]
pub(super) struct Parts {
    pub(super) assigned: BTreeSet<PartitionId>,
    /// Next offset to publish per partition (what `flush` published up to).
    pub(super) position: BTreeMap<PartitionId, i64>,
    /// Next offset expected from the broker: anything below it was received
    /// already and is dropped (a redelivery must never count twice).
    pub(super) expected: BTreeMap<PartitionId, i64>,
    pub(super) failed: BTreeSet<PartitionId>,
    /// The last archived message to re-read before resuming (see `Fingerprint`).
    pub(super) verify: BTreeMap<PartitionId, Fingerprint>,
}

impl Parts {
    pub(super) fn live(&self, topic: &str) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for p in self.assigned.iter().filter(|p| !self.failed.contains(p)) {
            tpl.add_partition(topic, *p);
        }
        tpl
    }
}

pub(super) fn stop_partition(
    consumer: &BaseConsumer<StatsContext>,
    s: &ConsumerSettings,
    sink: &dyn BatchSink,
    parts: &mut Parts,
    p: PartitionId,
    reason: String,
) {
    error!("{reason}");
    sink.partition_failed(p, reason);
    parts.failed.insert(p);
    parts.verify.remove(&p);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&s.topic, p);
    if let Err(e) = consumer.incremental_unassign(&tpl) {
        warn!(topic = %s.topic, partition = p, "cannot stop fetching: {e}");
    }
}

/// Restarts fetching `p` at `offset` (after librdkafka stopped it on an offset error).
fn reassign(
    consumer: &BaseConsumer<StatsContext>,
    topic: &str,
    parts: &mut Parts,
    p: PartitionId,
    offset: i64,
) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, p);
    consumer.incremental_unassign(&tpl)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, KOffset::Offset(offset))?;
    consumer.incremental_assign(&tpl)?;
    parts.expected.insert(p, offset);
    Ok(())
}

/// The broker cannot serve an offset of some partition (`OffsetOutOfRange` or
/// librdkafka's `__AUTO_OFFSET_RESET`; neither says which): find the partitions
/// whose next offset lies outside the broker's log and deal with each.
pub(super) fn offsets_out_of_range(
    consumer: &BaseConsumer<StatsContext>,
    s: &ConsumerSettings,
    sink: &dyn BatchSink,
    parts: &mut Parts,
) {
    let candidates: Vec<PartitionId> = parts
        .assigned
        .iter()
        .filter(|p| !parts.failed.contains(p))
        .copied()
        .collect();
    for p in candidates {
        let next = parts
            .position
            .get(&p)
            .copied()
            .or_else(|| sink.start_offset(p));
        let Some(next) = next else { continue };
        // A partition being verified was sent to its last archived message.
        let fetching = parts.verify.get(&p).map(|f| f.offset).unwrap_or(next);
        let (low, high) = match consumer.fetch_watermarks(&s.topic, p, Duration::from_secs(5)) {
            Ok(w) => w,
            Err(e) => {
                warn!(topic = %s.topic, partition = p, "offset out of range, and the broker's log bounds cannot be read (retrying): {e}");
                continue;
            }
        };
        if fetching >= low && fetching <= high {
            continue;
        }
        if next > high {
            stop_partition(
                consumer,
                s,
                sink,
                parts,
                p,
                backwards_reason(&s.topic, p, next, high),
            );
            continue;
        }
        if next >= low {
            // Only the last archived message (next - 1) is gone: retention deleted
            // it but kept everything lambdadb has not consumed. Nothing is lost;
            // the log cannot be fingerprinted, so resume unverified.
            parts.verify.remove(&p);
            warn!(topic = %s.topic, partition = p, offset = next, "retention deleted the last archived message, so the log cannot be verified; resuming at the recorded offset");
            if let Err(e) = reassign(consumer, &s.topic, parts, p, next) {
                warn!(topic = %s.topic, partition = p, "cannot resume (retrying): {e}");
            }
            continue;
        }
        match s.gap_policy {
            GapPolicy::Stop => {
                let reason = format!(
                    "topic {} partition {p}: retention deleted offsets {next} to {} before lambdadb consumed them ({} messages). \
                     This partition is stopped (retention_gap = \"stop\"); the archived data keeps serving. \
                     To continue from the oldest offset the topic still holds and count the gap as lost, restart with retention_gap = \"skip\".",
                    s.topic,
                    low - 1,
                    low - next
                );
                stop_partition(consumer, s, sink, parts, p, reason);
            }
            GapPolicy::Skip => {
                error!(topic = %s.topic, partition = p, from = next, to = low, lost = low - next, "retention deleted offsets before they were consumed; skipping them (retention_gap = \"skip\"), counted in lambdadb.sources.lost_messages");
                parts.verify.remove(&p);
                match reassign(consumer, &s.topic, parts, p, low) {
                    Ok(()) => sink.retention_gap(p, next, low),
                    Err(e) => {
                        warn!(topic = %s.topic, partition = p, "cannot resume (retrying): {e}")
                    }
                }
            }
        }
    }
}
