//! Kafka offsets and watermarks.
//!
//! A [`Watermark`] is an offset vector: for each partition, the *next* offset that is
//! not covered. Everything with `offset < watermark[p]` is covered (archived, or
//! folded into a batch view version); a partition absent from the map covers nothing.
//! Using exclusive ends keeps the arithmetic free of `-1` corner cases.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A Kafka partition number.
pub type PartitionId = i32;

/// A Kafka offset within one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Offset(pub i64);

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Per-partition exclusive upper bound of covered offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark(BTreeMap<PartitionId, i64>);

impl Watermark {
    /// An empty watermark: it covers nothing in any partition.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first offset of `partition` that this watermark does not cover.
    pub fn next(&self, partition: PartitionId) -> i64 {
        self.0.get(&partition).copied().unwrap_or(0)
    }

    /// Whether `offset` of `partition` is covered.
    pub fn covers(&self, partition: PartitionId, offset: i64) -> bool {
        offset < self.next(partition)
    }

    /// Raises the bound of one partition; a watermark never moves backwards.
    pub fn advance(&mut self, partition: PartitionId, next: i64) {
        let entry = self.0.entry(partition).or_insert(0);
        if next > *entry {
            *entry = next;
        }
    }

    /// Each partition with its bound (its first uncovered offset), in partition order.
    pub fn partitions(&self) -> impl Iterator<Item = (PartitionId, i64)> + '_ {
        self.0.iter().map(|(p, o)| (*p, *o))
    }

    /// Total number of offsets covered, summed over partitions (assuming every
    /// partition starts at 0); used for progress reporting only.
    pub fn total(&self) -> i64 {
        self.0.values().sum()
    }

    /// Whether every partition of `self` is at or below `other`.
    pub fn le(&self, other: &Watermark) -> bool {
        self.0.iter().all(|(p, o)| *o <= other.next(*p))
    }
}

impl fmt::Display for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(p, o)| format!("{p}:{o}")).collect();
        write!(f, "{{{}}}", parts.join(","))
    }
}

/// Identifies one message of a partition's log: its offset and a stable hash of
/// its payload. Recorded for the last archived message of each partition, it lets
/// a restart check that the broker still holds the same log (a recreated topic
/// with more messages than before would otherwise go unnoticed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The message's offset in its partition.
    pub offset: i64,
    /// [`payload_hash`] of the message's payload.
    pub hash: u64,
}

/// FNV-1a over the payload (absent payloads hash like empty ones): stable across
/// builds, unlike std's hasher.
pub fn payload_hash(payload: Option<&[u8]>) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in payload.unwrap_or_default() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_exclusive_and_monotonic() {
        let mut w = Watermark::new();
        assert!(!w.covers(0, 0));
        w.advance(0, 10);
        assert!(w.covers(0, 9));
        assert!(!w.covers(0, 10));
        w.advance(0, 5);
        assert_eq!(w.next(0), 10, "a watermark never moves backwards");
        assert_eq!(w.next(3), 0);
        let mut v = w.clone();
        v.advance(1, 1);
        assert!(w.le(&v));
        assert!(!v.le(&w));
        assert_eq!(v.to_string(), "{0:10,1:1}");
    }
}
