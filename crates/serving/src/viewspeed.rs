//! The speed part of one materialized view: partial-state rows folded
//! incrementally from the events above the view's batch version.
//!
//! It lives under the source's lock (see `SourceState`), beside the source's rows,
//! so that one read of that lock gives a query the view's batch version, its
//! folded partial states and the events not folded yet, all cut at the same
//! offsets.
//!
//! Folding runs on a timer (`speed_fold_interval`). A fold computes partial states
//! over the new events only (cost proportional to them), appends them as one more
//! segment, and combines the segments into one when there are more than
//! [`lambdadb_views::COMPACT_AT`] (cost proportional to the view's groups); see
//! `lambdadb_views::fold`. A query merges the batch version, the segments and the
//! partial states of the few events not folded yet. A new batch version resets
//! the state to its watermark.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use lambdadb_batch::ViewVersion;
use lambdadb_common::Watermark;

/// A view's speed state: the batch version served and the partial states folded above it.
#[derive(Debug, Clone, Default)]
pub struct ViewSpeed {
    /// The definition (`ViewState`) this state belongs to; see `SourceState::attach_view`.
    pub owner: u64,
    /// The batch version served.
    pub version: Option<Arc<ViewVersion>>,
    /// Partial-state rows of every event in `[version's watermark, folded)`.
    pub segments: Vec<RecordBatch>,
    /// The offsets folded into `segments`.
    pub folded: Watermark,
    /// Set at a version swap: `folded` is then a manifest boundary and the events
    /// from it on are read from archive files and the speed table. Cleared by the
    /// first fold, after which the speed table keeps every event above `folded`
    /// (the archiver's pruning stops there).
    pub from_files: bool,
    /// When the last fold was installed.
    pub folded_at_ms: i64,
    /// Events folded since the version (for `lambdadb.views`).
    pub folded_events: u64,
}

impl ViewSpeed {
    /// The state right after `version` is published: nothing folded above it.
    pub fn at_version(version: Option<Arc<ViewVersion>>) -> Self {
        let folded = version
            .as_ref()
            .map(|v| v.watermark.clone())
            .unwrap_or_default();
        Self {
            owner: 0,
            version,
            segments: Vec::new(),
            folded,
            from_files: true,
            folded_at_ms: 0,
            folded_events: 0,
        }
    }

    /// Partial-state rows across the segments.
    pub fn segment_rows(&self) -> usize {
        self.segments.iter().map(|b| b.num_rows()).sum()
    }

    /// Distinct groups in the segments: the first `keys` columns are the group keys.
    pub fn groups(&self, keys: usize) -> usize {
        if keys == 0 {
            return usize::from(!self.segments.is_empty());
        }
        let Some(first) = self.segments.first() else {
            return 0;
        };
        let fields = first.schema().fields()[..keys]
            .iter()
            .map(|f| arrow::row::SortField::new(f.data_type().clone()))
            .collect();
        let Ok(converter) = arrow::row::RowConverter::new(fields) else {
            return self.segment_rows();
        };
        let mut seen = std::collections::HashSet::new();
        for b in &self.segments {
            if let Ok(rows) = converter.convert_columns(&b.columns()[..keys]) {
                for r in rows.iter() {
                    seen.insert(r.owned());
                }
            }
        }
        seen.len()
    }

    /// Memory the segments take, in bytes.
    pub fn segment_bytes(&self) -> usize {
        self.segments
            .iter()
            .map(|b| b.get_array_memory_size())
            .sum()
    }
}

/// What a fold or a query needs: the view's speed state and the events above
/// `speed.folded`, all from one snapshot of the source.
#[derive(Debug, Clone)]
pub struct ViewInput {
    /// The view's speed state at the snapshot.
    pub speed: ViewSpeed,
    /// Archive files holding events above `speed.folded` (only when `from_files`).
    pub files: Vec<lambdadb_batch::TableFile>,
    /// Speed-table rows above `speed.folded` (or above the manifest, with files).
    pub rows: Vec<RecordBatch>,
    /// The consumed offsets the snapshot was cut at: `files` and `rows` hold every
    /// event in `[speed.folded, consumed)`.
    pub consumed: Watermark,
    /// The speed table's change counter at the snapshot.
    pub sequence: u64,
}

impl ViewInput {
    /// Whether there is nothing to fold.
    pub fn is_folded(&self) -> bool {
        !self.speed.from_files && self.consumed.le(&self.speed.folded)
    }

    /// Events in `rows`, the unfolded speed-table rows (events in `files` are not counted).
    pub fn pending_rows(&self) -> usize {
        self.rows.iter().map(|b| b.num_rows()).sum()
    }
}
