//! The live state of one source table: its archive manifest and its speed rows,
//! kept under one lock so that every reader sees a consistent pair.
//!
//! The seam is exact because both halves are cut at the same offset vector: the
//! manifest's watermark. The speed table holds rows at or above it (an archive
//! commit swaps the manifest and prunes the speed rows it covers in one critical
//! section), so "files of the manifest" plus "all speed rows" is every consumed
//! event exactly once.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arrow::array::AsArray;
use arrow::record_batch::RecordBatch;
use lambdadb_batch::{
    ArchiveInput, Archiver, LogPolicy, Manifest, MasterLocation, TableFile, TableStore,
};
use lambdadb_common::{PartitionId, SourceSpec, Watermark};
use lambdadb_pgcompat::{QueryError, Result};
use lambdadb_speed::{BatchSink, Rejection, SpeedBatch, SpeedTable};
use tracing::warn;

use crate::error::from_batch;
use crate::snapshot::string_views;
use crate::speedbudget::SpeedBudget;
use crate::viewspeed::{ViewInput, ViewSpeed};

/// The views' speed states kept beside the source's rows (attach, fold, swap, cut).
#[path = "source_views.rs"]
mod views;

/// Compaction, pins and the deletion of replaced files.
#[path = "source_compact.rs"]
pub mod compact;

/// Writing under the lease, and following the writer's commits.
#[path = "source_writer.rs"]
mod writer;

/// A message the decoder refused, as shown in `lambdadb.rejected_messages`.
#[derive(Debug, Clone)]
pub struct RejectedMessage {
    /// The Kafka partition the message was read from.
    pub partition: PartitionId,
    /// The message's offset in its partition.
    pub offset: i64,
    /// Why the decoder refused it.
    pub reason: String,
    /// When it was refused, in milliseconds since the epoch.
    pub at_ms: i64,
}

struct Inner {
    manifest: Arc<Manifest>,
    speed: SpeedTable,
    /// The speed part of every materialized view over this source.
    views: BTreeMap<String, ViewSpeed>,
}

/// One consistent view of a source.
#[derive(Clone)]
pub struct SourceSnapshot {
    /// The manifest at the snapshot: the archive files and the watermark they cover.
    pub manifest: Arc<Manifest>,
    /// Every consumed row above the manifest's watermark.
    pub speed: Vec<RecordBatch>,
    /// The next offset to consume per partition when the snapshot was taken.
    pub consumed: Watermark,
    /// The speed table's change counter (bumped by every append and prune) at the snapshot.
    pub speed_sequence: u64,
}

/// A source's whole state at one instant: its snapshot and the speed input of
/// every view over it (see `snapshot::StatementSnapshots`).
#[derive(Clone)]
pub struct SourceCut {
    /// The source's rows.
    pub snapshot: SourceSnapshot,
    /// Each attached view's speed state and the events above it, by view name.
    pub views: BTreeMap<String, ViewInput>,
}

/// Figures for `lambdadb.sources`.
#[derive(Debug, Clone)]
pub struct SourceStats {
    /// The manifest's watermark: offsets below it are in archive files.
    pub archived: Watermark,
    /// The next offset to consume per partition.
    pub consumed: Watermark,
    /// The broker's high watermark per partition, as the consumer last reported it.
    pub high: BTreeMap<PartitionId, i64>,
    /// Rows in the manifest's files.
    pub archived_rows: u64,
    /// Files in the manifest.
    pub archived_files: usize,
    /// Bytes the manifest's files take on disk.
    pub archived_bytes: u64,
    /// Rows the speed table holds in memory.
    pub speed_rows: usize,
    /// Memory the speed table's rows take, in bytes.
    pub speed_bytes: usize,
    /// Messages decoded into rows since start-up.
    pub accepted: u64,
    /// Messages the decoder refused since start-up.
    pub rejected: u64,
    /// Problems and losses, for `lambdadb.sources.status`.
    pub health: Health,
    /// Whether consumption is paused by `speed_memory_limit`.
    pub paused: bool,
}

/// What went wrong with a source, kept until it is resolved (shown in
/// `lambdadb.sources`; each change is logged at warn or error when it happens).
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Partitions whose consumer stopped, with the reason.
    pub failed: BTreeMap<PartitionId, String>,
    /// A problem of the whole consumer: broker unreachable, topic missing.
    pub consumer_problem: Option<String>,
    /// The last archive failure, while archiving keeps failing.
    pub archive_error: Option<String>,
    /// Archive runs that failed since start-up.
    pub archive_failures: u64,
    /// Offsets retention deleted before they were consumed and that
    /// `retention_gap = "skip"` skipped, per partition, since start-up.
    pub lost: BTreeMap<PartitionId, i64>,
}

/// One source table's live state: manifest, speed rows, its views' speed states, ingest figures.
pub struct SourceState {
    /// The table's declaration: columns, topic, format and event-time column.
    pub spec: SourceSpec,
    /// The declared and physical schemas as scanned (text as `Utf8View`, see
    /// `tables::SourceTable`), derived once rather than at every table lookup.
    pub scan_schema: arrow::datatypes::SchemaRef,
    /// The physical schema as scanned: declared columns, then `_partition` and `_offset`.
    pub scan_physical: arrow::datatypes::SchemaRef,
    archiver: Archiver,
    inner: RwLock<Inner>,
    rejected: Mutex<VecDeque<RejectedMessage>>,
    rejected_keep: usize,
    accepted_total: AtomicU64,
    rejected_total: AtomicU64,
    high: Mutex<BTreeMap<PartitionId, i64>>,
    /// One archive run at a time.
    archive_lock: tokio::sync::Mutex<()>,
    /// One change to the views' speed states at a time (folds and version swaps).
    fold_lock: tokio::sync::Mutex<()>,
    /// Latest event time consumed (ms since the epoch), for `lambdadb.freshness`.
    max_event_ms: std::sync::atomic::AtomicI64,
    /// Since when the consumer has been behind the broker's high watermarks.
    behind_since_ms: Mutex<Option<i64>>,
    health: Mutex<Health>,
    /// The speed layer's memory ceiling, shared by every source.
    budget: Arc<SpeedBudget>,
    /// The speed-table bytes this source last reported to `budget`.
    counted_bytes: std::sync::atomic::AtomicUsize,
    /// Compaction's pins, replaced files and figures.
    pub upkeep: compact::Upkeep,
    /// Whether this process may write the master dataset.
    gate: Arc<crate::writer::WriteGate>,
    /// The lease epoch this source's table was taken over in (see `take_over`).
    taken: Mutex<Option<i64>>,
    /// States adopted from the writer (a follower's changes of the files).
    adopted: AtomicU64,
}

impl SourceState {
    /// Opens the source's Delta table of the master dataset in `master`
    /// (refusing an object store whose creates are not conditional).
    pub async fn open(
        spec: SourceSpec,
        master: &MasterLocation,
        gate: Arc<crate::writer::WriteGate>,
        log_policy: LogPolicy,
        rejected_keep: usize,
        budget: Arc<SpeedBudget>,
    ) -> Result<Self> {
        let local = match master {
            MasterLocation::Local(root) => Some(root.as_path()),
            MasterLocation::S3 { .. } => None,
        };
        let mut store = master
            .table(&crate::layout::table_name(local, &spec.name)?)
            .map_err(from_batch)?;
        store.log_policy = log_policy;
        store.follower = !matches!(gate.as_ref(), crate::writer::WriteGate::Local);
        if store.local_dir().is_none() {
            store.check_conditional_put().await.map_err(from_batch)?;
        }
        let (archiver, manifest) = Archiver::open(
            store,
            &spec.name,
            spec.physical_schema(),
            spec.event_time.as_deref(),
        )
        .await
        .map_err(from_batch)?;
        let retention = spec.retention;
        Ok(Self {
            scan_schema: string_views(&spec.schema),
            scan_physical: string_views(&spec.physical_schema()),
            spec,
            archiver,
            inner: RwLock::new(Inner {
                manifest: Arc::new(manifest),
                speed: SpeedTable::new(),
                views: BTreeMap::new(),
            }),
            rejected: Mutex::new(VecDeque::new()),
            rejected_keep,
            accepted_total: AtomicU64::new(0),
            rejected_total: AtomicU64::new(0),
            high: Mutex::new(BTreeMap::new()),
            archive_lock: tokio::sync::Mutex::new(()),
            fold_lock: tokio::sync::Mutex::new(()),
            max_event_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
            behind_since_ms: Mutex::new(None),
            health: Mutex::new(Health::default()),
            budget,
            counted_bytes: std::sync::atomic::AtomicUsize::new(0),
            upkeep: compact::Upkeep::new(retention),
            gate,
            taken: Mutex::new(None),
            adopted: AtomicU64::new(0),
        })
    }

    /// Reports the speed table's size to the shared budget (after every change).
    fn account(&self, inner: &Inner) {
        let now = inner.speed.memory_bytes();
        let old = self.counted_bytes.swap(now, Ordering::Relaxed);
        self.budget.changed(old, now);
    }

    /// The latest event time consumed, if the source declares one.
    pub fn max_event_ms(&self) -> Option<i64> {
        Some(self.max_event_ms.load(Ordering::Relaxed)).filter(|v| *v != i64::MIN)
    }

    /// Seconds the consumer has been behind the broker (0 when caught up).
    pub fn lag_seconds(&self) -> f64 {
        match *self.behind_since_ms.lock().expect("lag lock") {
            Some(since) => (now_ms() - since).max(0) as f64 / 1000.0,
            None => 0.0,
        }
    }

    /// Re-evaluates whether the consumer is behind the last reported high watermarks.
    fn track_lag(&self) {
        let consumed = self.consumed();
        let behind = self
            .high
            .lock()
            .expect("high lock")
            .iter()
            .any(|(p, h)| consumed.next(*p) < *h);
        let mut since = self.behind_since_ms.lock().expect("lag lock");
        match (behind, *since) {
            (true, None) => *since = Some(now_ms()),
            (false, Some(_)) => *since = None,
            _ => {}
        }
    }

    fn note_event_times(&self, batches: &[SpeedBatch]) {
        let Some(col) = self.spec.event_time.as_deref() else {
            return;
        };
        let Ok(idx) = self.spec.schema.index_of(col) else {
            return;
        };
        for b in batches {
            let ms = arrow::compute::cast(
                b.rows.column(idx),
                &arrow::datatypes::DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Millisecond,
                    None,
                ),
            )
            .and_then(|a| arrow::compute::cast(&a, &arrow::datatypes::DataType::Int64));
            if let Ok(a) = ms
                && let Some(m) =
                    arrow::compute::max(a.as_primitive::<arrow::datatypes::Int64Type>())
            {
                self.max_event_ms.fetch_max(m, Ordering::Relaxed);
            }
        }
    }

    /// Held while a view's speed state is computed and installed.
    pub fn fold_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.fold_lock
    }

    /// Where this source's Delta table lives.
    pub fn store(&self) -> &TableStore {
        self.archiver.store()
    }

    /// The location scans read master-dataset file `rel` from.
    pub fn location(&self, rel: &str) -> String {
        self.archiver.store().location(rel)
    }

    /// The next offset to consume per partition (cheap: no rows are copied).
    pub fn consumed(&self) -> lambdadb_common::offsets::Watermark {
        self.inner.read().expect("source lock").speed.consumed()
    }

    /// The manifest and every speed row above its watermark (the caller holds the lock).
    fn snapshot_of(inner: &Inner) -> SourceSnapshot {
        SourceSnapshot {
            manifest: inner.manifest.clone(),
            speed: inner.speed.rows_from(&inner.manifest.watermark),
            consumed: inner.speed.consumed(),
            speed_sequence: inner.speed.sequence(),
        }
    }

    /// Why `partition` stopped, if it did.
    pub fn stopped(&self, partition: PartitionId) -> Option<String> {
        let health = self.health.lock().expect("health lock");
        health.failed.get(&partition).cloned()
    }

    /// Archive files at or above `from` (whole files, see `Manifest::files_from`).
    pub fn files_from(&self, snap: &SourceSnapshot, from: &Watermark) -> Vec<TableFile> {
        let store = self.store();
        snap.manifest
            .files_from(from)
            .map(|f| store.table_file(f))
            .collect()
    }

    /// The manifest as last committed.
    pub fn manifest(&self) -> Arc<Manifest> {
        self.inner.read().expect("source lock").manifest.clone()
    }

    /// Archives everything consumed so far. Returns the committed manifest.
    /// A failure is kept in `lambdadb.sources` until an archive succeeds; the
    /// rows stay in memory (back-pressure pauses ingest at the ceiling).
    pub async fn archive(self: &Arc<Self>) -> Result<Arc<Manifest>> {
        if !self.may_write() {
            // A follower: the writer archives; its commits arrive by `follow`.
            return Ok(self.manifest());
        }
        let _one_at_a_time = self.archive_lock.lock().await;
        self.archive_locked_noted().await
    }

    /// [`Self::archive_locked`], with its failure kept for `lambdadb.sources`.
    async fn archive_locked_noted(self: &Arc<Self>) -> Result<Arc<Manifest>> {
        let result = self.archive_locked().await;
        let mut health = self.health.lock().expect("health lock");
        match &result {
            Ok(_) => {
                if health.archive_error.take().is_some() {
                    tracing::info!(table = %self.spec.name, "archiving works again");
                }
            }
            Err(e) => {
                health.archive_failures += 1;
                health.archive_error = Some(e.to_string());
            }
        }
        result
    }

    /// Archives everything consumed so far; callers hold `archive_lock`.
    async fn archive_locked(self: &Arc<Self>) -> Result<Arc<Manifest>> {
        let (manifest, inputs) = {
            let inner = self.inner.read().expect("source lock");
            let archived = &inner.manifest.watermark;
            let mut inputs = Vec::new();
            for (p, consumed) in inner.speed.consumed().partitions() {
                let from = archived.next(p);
                if consumed <= from {
                    continue;
                }
                let batches = inner.speed.batches_between(p, from, consumed);
                let (Some(first), Some(last)) = (
                    batches.first().map(|b| b.first_offset),
                    batches.last().map(|b| b.last),
                ) else {
                    continue;
                };
                inputs.push(ArchiveInput {
                    partition: p,
                    first_offset: first,
                    next_offset: consumed,
                    batches: batches.into_iter().map(|b| b.rows).collect(),
                    last,
                });
            }
            (inner.manifest.clone(), inputs)
        };
        if inputs.is_empty() {
            return Ok(manifest);
        }
        let next = self
            .archiver
            .archive(&manifest, inputs)
            .await
            .map_err(from_batch)?;
        let next = Arc::new(next);
        self.install(next.clone());
        lambdadb_common::failpoint::hit("archive.pruned")
            .map_err(|e| QueryError::Io(e.to_string()))?;
        Ok(next)
    }

    /// Makes `next` the state every snapshot reads, and drops the speed rows
    /// it covers, in one critical section (the seam).
    fn install(&self, next: Arc<Manifest>) {
        let mut inner = self.inner.write().expect("source lock");
        // Keep the events views have not folded yet: a fold reads them from here.
        let mut cut = Watermark::new();
        for (p, archived) in next.watermark.partitions() {
            let keep_from = inner
                .views
                .values()
                .filter(|v| !v.from_files)
                .map(|v| v.folded.next(p))
                .fold(archived, i64::min);
            cut.advance(p, keep_from);
        }
        inner.speed.prune(&cut);
        inner.manifest = next;
        self.account(&inner);
    }

    /// Imports Parquet files into the master dataset (see `lambdadb_batch::import`).
    /// Runs under the archive lock: the two are the only writers of the manifest.
    pub async fn import(
        self: &Arc<Self>,
        paths: Vec<PathBuf>,
    ) -> Result<lambdadb_batch::ImportSummary> {
        self.require_writer("COPY ... FROM a file")?;
        let _one_at_a_time = self.archive_lock.lock().await;
        let manifest = self.manifest();
        let (next, summary) = self
            .archiver
            .import(&manifest, &paths)
            .await
            .map_err(from_batch)?;
        self.inner.write().expect("source lock").manifest = Arc::new(next);
        Ok(summary)
    }

    /// The most recent rejected messages, oldest first (at most `rejected_keep`).
    pub fn rejected_messages(&self) -> Vec<RejectedMessage> {
        self.rejected
            .lock()
            .expect("rejected lock")
            .iter()
            .cloned()
            .collect()
    }

    /// Figures for `lambdadb.sources` and `lambdadb.freshness`, read now.
    pub fn stats(&self) -> SourceStats {
        let inner = self.inner.read().expect("source lock");
        SourceStats {
            archived: inner.manifest.watermark.clone(),
            consumed: inner.speed.consumed(),
            high: self.high.lock().expect("high lock").clone(),
            archived_rows: inner.manifest.rows(),
            archived_files: inner.manifest.files.len(),
            archived_bytes: inner.manifest.bytes(),
            speed_rows: inner.speed.num_rows(),
            speed_bytes: inner.speed.memory_bytes(),
            accepted: self.accepted_total.load(Ordering::Relaxed),
            rejected: self.rejected_total.load(Ordering::Relaxed),
            health: self.health.lock().expect("health lock").clone(),
            paused: self.budget.is_paused(),
        }
    }
}

impl std::fmt::Debug for SourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceState({})", self.spec.name)
    }
}

impl BatchSink for SourceState {
    fn start_offset(&self, partition: PartitionId) -> Option<i64> {
        let inner = self.inner.read().expect("source lock");
        let w = &inner.manifest.watermark;
        w.partitions()
            .any(|(p, _)| p == partition)
            .then(|| w.next(partition))
    }

    fn fingerprint(&self, partition: PartitionId) -> Option<lambdadb_common::Fingerprint> {
        let inner = self.inner.read().expect("source lock");
        inner.manifest.fingerprints.get(&partition).copied()
    }

    fn publish(&self, batches: Vec<SpeedBatch>, rejected: Vec<Rejection>) {
        let accepted: usize = batches.iter().map(|b| b.rows.num_rows()).sum();
        self.note_event_times(&batches);
        self.accepted_total
            .fetch_add(accepted as u64, Ordering::Relaxed);
        if !rejected.is_empty() {
            self.rejected_total
                .fetch_add(rejected.len() as u64, Ordering::Relaxed);
            let now = now_ms();
            let mut kept = self.rejected.lock().expect("rejected lock");
            for r in rejected {
                warn!(table = %self.spec.name, topic = %self.spec.topic, partition = r.partition, offset = r.offset, reason = %r.reason, "rejected message");
                kept.push_back(RejectedMessage {
                    partition: r.partition,
                    offset: r.offset,
                    reason: r.reason,
                    at_ms: now,
                });
                while kept.len() > self.rejected_keep {
                    kept.pop_front();
                }
            }
        }
        {
            let mut inner = self.inner.write().expect("source lock");
            for b in batches {
                inner.speed.append(b);
            }
            self.account(&inner);
        }
        self.track_lag();
    }

    fn backpressure(&self) -> bool {
        self.budget.over()
    }

    fn consumer_problem(&self, problem: Option<String>) {
        let mut health = self.health.lock().expect("health lock");
        if health.consumer_problem == problem {
            return;
        }
        match &problem {
            Some(p) => warn!(table = %self.spec.name, "{p}"),
            None => tracing::info!(table = %self.spec.name, "the consumer recovered"),
        }
        health.consumer_problem = problem;
    }

    fn retention_gap(&self, partition: PartitionId, from: i64, to: i64) {
        *self
            .health
            .lock()
            .expect("health lock")
            .lost
            .entry(partition)
            .or_default() += to - from;
    }

    fn partition_failed(&self, partition: PartitionId, reason: String) {
        self.health
            .lock()
            .expect("health lock")
            .failed
            .insert(partition, reason);
    }

    fn high_watermark(&self, partition: PartitionId, high: i64) {
        self.high.lock().expect("high lock").insert(partition, high);
        self.track_lag();
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
