//! In-memory rows of one source that are not archived yet.
//!
//! Rows arrive as micro-batches per partition, in offset order. Each batch also
//! records the consumed offset range, rejected messages included, so that the
//! archive watermark can move past offsets that produced no row. The table is not
//! synchronised itself: the query layer keeps it under the same lock as the
//! archive manifest, so a reader always sees the pair consistently.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;
use lambdadb_common::{Fingerprint, PartitionId, Watermark};

/// A decoded micro-batch of one partition.
#[derive(Debug, Clone)]
pub struct SpeedBatch {
    /// The Kafka partition every row of the batch comes from.
    pub partition: PartitionId,
    /// First consumed offset of the micro-batch (possibly a rejected message).
    pub first_offset: i64,
    /// One past the last consumed offset.
    pub next_offset: i64,
    /// Accepted rows in the physical schema (may be empty).
    pub rows: Arc<RecordBatch>,
    /// The last consumed message (offset `next_offset - 1`).
    pub last: Fingerprint,
}

#[derive(Debug, Default)]
struct PartitionBuffer {
    batches: VecDeque<SpeedBatch>,
    /// Next offset to consume: everything below has been seen.
    consumed: Option<i64>,
}

/// Unarchived rows of one source, by partition.
#[derive(Debug, Default)]
pub struct SpeedTable {
    partitions: BTreeMap<PartitionId, PartitionBuffer>,
    rows: usize,
    bytes: usize,
    /// Bumped on every append and prune; a cheap identity of the table's contents.
    sequence: u64,
}

impl SpeedTable {
    /// An empty table: nothing consumed yet in any partition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a partition's next micro-batch and moves its consumed position past it.
    pub fn append(&mut self, batch: SpeedBatch) {
        let buf = self.partitions.entry(batch.partition).or_default();
        buf.consumed = Some(batch.next_offset);
        self.rows += batch.rows.num_rows();
        self.bytes += batch.rows.get_array_memory_size();
        buf.batches.push_back(batch);
        self.sequence += 1;
    }

    /// Next offset to consume per partition seen so far.
    pub fn consumed(&self) -> Watermark {
        let mut w = Watermark::new();
        for (p, buf) in &self.partitions {
            if let Some(c) = buf.consumed {
                w.advance(*p, c);
            }
        }
        w
    }

    /// Drops whole micro-batches that `covered` includes (after an archive commit).
    pub fn prune(&mut self, covered: &Watermark) {
        for (p, buf) in self.partitions.iter_mut() {
            let limit = covered.next(*p);
            while buf.batches.front().is_some_and(|b| b.next_offset <= limit) {
                let b = buf.batches.pop_front().expect("front exists");
                self.rows -= b.rows.num_rows();
                self.bytes -= b.rows.get_array_memory_size();
            }
        }
        self.sequence += 1;
    }

    /// Rows with `offset >= from[p]`, trimming a batch that straddles the bound.
    pub fn rows_from(&self, from: &Watermark) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        for (p, buf) in &self.partitions {
            let lo = from.next(*p);
            for b in &buf.batches {
                if b.next_offset <= lo || b.rows.num_rows() == 0 {
                    continue;
                }
                if b.first_offset >= lo {
                    out.push(b.rows.as_ref().clone());
                } else {
                    out.push(trim_below(&b.rows, lo));
                }
            }
        }
        out
    }

    /// The micro-batches of `partition` with offsets in `[from, to)`, whole: used by
    /// the archiver, which always archives up to a micro-batch boundary.
    pub fn batches_between(&self, partition: PartitionId, from: i64, to: i64) -> Vec<SpeedBatch> {
        self.partitions
            .get(&partition)
            .map(|buf| {
                buf.batches
                    .iter()
                    .filter(|b| b.first_offset >= from && b.next_offset <= to)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Rows held, i.e. consumed but not archived yet.
    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// Arrow memory taken by the rows held.
    pub fn memory_bytes(&self) -> usize {
        self.bytes
    }

    /// Changes on every append and prune: a cheap identity of the table's contents.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
}

fn trim_below(batch: &RecordBatch, lo: i64) -> RecordBatch {
    let offsets = batch
        .column(batch.num_columns() - 1)
        .as_primitive::<Int64Type>();
    let keep: BooleanArray = offsets.iter().map(|o| o.map(|o| o >= lo)).collect();
    filter_record_batch(batch, &keep).expect("mask has the batch's length")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(partition: i32, offsets: &[i64], first: i64, next: i64) -> SpeedBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("_partition", DataType::Int32, false),
            Field::new("_offset", DataType::Int64, false),
        ]));
        let rows = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![partition; offsets.len()])),
                Arc::new(Int64Array::from(offsets.to_vec())),
            ],
        )
        .unwrap();
        SpeedBatch {
            partition,
            first_offset: first,
            next_offset: next,
            rows: Arc::new(rows),
            last: Fingerprint {
                offset: next - 1,
                hash: 0,
            },
        }
    }

    #[test]
    fn prune_and_read_from_watermark() {
        let mut t = SpeedTable::new();
        t.append(batch(0, &[0, 1, 2], 0, 3));
        t.append(batch(0, &[3, 5], 3, 6)); // offset 4 was rejected
        t.append(batch(1, &[0], 0, 1));
        assert_eq!(t.consumed().next(0), 6);
        assert_eq!(t.num_rows(), 6);

        let mut from = Watermark::new();
        from.advance(0, 2);
        let rows: usize = t.rows_from(&from).iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 1 + 2 + 1, "offset 2, then 3 and 5, then partition 1");

        let mut archived = Watermark::new();
        archived.advance(0, 3);
        t.prune(&archived);
        assert_eq!(t.num_rows(), 3);
        assert_eq!(t.batches_between(0, 3, 6).len(), 1);
        assert_eq!(
            t.consumed().next(0),
            6,
            "pruning keeps the consumed position"
        );
    }
}
