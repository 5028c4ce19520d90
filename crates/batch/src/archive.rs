//! The archiver: consumed rows into immutable Parquet files of the master dataset.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use deltalake::protocol::{DeltaOperation, SaveMode};
use futures::TryStreamExt;
use lambdadb_common::{Fingerprint, PartitionId};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tracing::{info, warn};

use crate::deltalog::DeltaLog;
use crate::durable::{remove_temporaries, step, tmp_path};
use crate::manifest::{ArchiveFile, MANIFEST_FILE, Manifest};
use crate::store::TableStore;
use crate::{BatchError, Result, io_err, join_err};

/// Consumed offsets `[first_offset, next_offset)` of one partition and the rows
/// accepted among them (in the source's physical schema).
#[derive(Debug, Clone)]
pub struct ArchiveInput {
    /// The Kafka partition the range belongs to.
    pub partition: PartitionId,
    /// First consumed offset of the range; at or above the manifest's watermark.
    pub first_offset: i64,
    /// One past the last consumed offset; the watermark moves here.
    pub next_offset: i64,
    /// Accepted rows of the range; none when every message was rejected.
    pub batches: Vec<Arc<RecordBatch>>,
    /// The last consumed message of the range.
    pub last: Fingerprint,
}

/// Writes and commits master-dataset files of one source table.
#[derive(Debug, Clone)]
pub struct Archiver {
    store: TableStore,
    schema: SchemaRef,
    /// Index of the event-time column in `schema`, if the source has one.
    event_time: Option<usize>,
    log: Arc<tokio::sync::Mutex<DeltaLog>>,
}

/// A file written and fsynced under its temporary name, not yet published.
pub(crate) struct Staged {
    pub tmp: PathBuf,
    pub file: ArchiveFile,
}

impl Archiver {
    /// Opens (or creates) the source's Delta table, removes temporaries and
    /// data files no commit lists (left by a crash between a file's write and
    /// its commit: their rows are consumed again from Kafka), and loads the
    /// state the table records. A pre-Delta `manifest.json` is moved into the
    /// log once (its files stay; the old manifest is kept as `manifest.json.moved`).
    pub async fn open(
        store: TableStore,
        name: &str,
        schema: SchemaRef,
        event_time: Option<&str>,
    ) -> Result<(Self, Manifest)> {
        let local = store.local_dir().map(Path::to_path_buf);
        let staging = store.write_path("");
        let removed = remove_temporaries(&staging)?;
        let legacy = match &local {
            Some(dir) => Manifest::load_legacy(dir)?,
            None => None,
        };
        let started = std::time::Instant::now();
        let (log, manifest) = DeltaLog::open(store.clone(), name, &schema, legacy.clone()).await?;
        let log_ms = started.elapsed().as_millis() as u64;
        if let (Some(dir), Some(_)) = (&local, legacy) {
            let moved = dir.join(format!("{MANIFEST_FILE}.moved"));
            fs::rename(dir.join(MANIFEST_FILE), &moved).map_err(io_err(&moved))?;
        }
        let orphans = remove_unlisted(&store, &manifest).await?;
        if removed + orphans > 0 {
            warn!(table = %store.url, removed, orphans, "removed files of an interrupted archive run");
        }
        tracing::info!(table = %store.url, version = manifest.version, files = manifest.files.len(), log_ms, ms = started.elapsed().as_millis() as u64, "opened the master dataset");
        let event_time = event_time.and_then(|c| schema.index_of(c).ok());
        Ok((
            Self {
                store,
                schema,
                event_time,
                log: Arc::new(tokio::sync::Mutex::new(log)),
            },
            manifest,
        ))
    }

    /// Where the source's table lives.
    pub fn store(&self) -> &TableStore {
        &self.store
    }

    /// The physical schema files are written in.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Writes one file per input that has rows, then commits them and the
    /// advanced watermark (also for inputs that were all rejected) as one
    /// Delta commit. Returns the committed state; on error nothing is
    /// recorded, and the files written before the failure are removed (a full
    /// disk gets its space back before the retry). Once the commit has begun,
    /// its files stay: it may have landed.
    pub async fn archive(&self, current: &Manifest, inputs: Vec<ArchiveInput>) -> Result<Manifest> {
        let (this, cur) = (self.clone(), current.clone());
        let (staged, next) = tokio::task::spawn_blocking(move || {
            let mut staged = Vec::new();
            let next = this.write_files(&cur, &inputs, &mut staged);
            (staged, next)
        })
        .await
        .map_err(join_err)?;
        let next = self
            .land(
                current,
                &staged,
                next,
                "archive.file",
                append(),
                "archive.manifest",
            )
            .await?;
        info!(table = %self.store.url, version = next.version, watermark = %next.watermark, "archived");
        Ok(next)
    }

    /// Commits `next` over `current` (see `DeltaLog::commit`).
    pub(crate) async fn commit(
        &self,
        current: &Manifest,
        next: &Manifest,
        operation: DeltaOperation,
        point: &'static str,
    ) -> Result<Manifest> {
        self.log
            .lock()
            .await
            .commit(current, next, operation, point)
            .await
    }

    /// What other processes committed since the last look, if anything (a
    /// process that does not hold the writer lease follows the table).
    pub async fn follow(&self, installed: u64) -> Result<Option<Manifest>> {
        self.log.lock().await.follow(installed).await
    }

    /// Becomes the table's writer in lease epoch `epoch` (see
    /// `DeltaLog::take_over`); returns the state to continue from.
    pub async fn take_over(&self, epoch: i64) -> Result<Manifest> {
        let m = self.log.lock().await.take_over(epoch).await?;
        info!(table = %self.store.url, epoch, version = m.version, watermark = %m.watermark, "took the table over as its writer");
        Ok(m)
    }

    /// Stops writing in the epoch taken over.
    pub async fn step_down(&self) {
        self.log.lock().await.step_down();
    }

    /// The last steps of every change to the table (archive, import,
    /// compaction): publish the `staged` files under their final names, then
    /// commit `next` over `current`. If staging (`next` is an error) or
    /// publishing failed, the staged files and whatever of them was published
    /// are removed and nothing is recorded; once the commit has begun they
    /// stay, because it may have landed. `file_point` and `commit_point` name
    /// the fault points.
    pub(crate) async fn land(
        &self,
        current: &Manifest,
        staged: &[Staged],
        next: Result<Manifest>,
        file_point: &str,
        operation: DeltaOperation,
        commit_point: &'static str,
    ) -> Result<Manifest> {
        let published = match next {
            Ok(next) => self.publish_all(staged, file_point).await.map(|()| next),
            Err(e) => Err(e),
        };
        match published {
            Ok(next) => self.commit(current, &next, operation, commit_point).await,
            Err(e) => {
                for s in staged {
                    let _ = fs::remove_file(&s.tmp);
                    let _ = self.store.delete(&s.file.path).await;
                }
                Err(e)
            }
        }
    }

    async fn publish_all(&self, staged: &[Staged], point: &str) -> Result<()> {
        for s in staged {
            self.store.publish(&s.tmp, &s.file.path, point).await?;
        }
        Ok(())
    }

    fn write_files(
        &self,
        current: &Manifest,
        inputs: &[ArchiveInput],
        staged: &mut Vec<Staged>,
    ) -> Result<Manifest> {
        let mut next = current.clone();
        for input in inputs {
            assert!(
                input.first_offset >= current.watermark.next(input.partition),
                "archive input overlaps the archived range"
            );
            let rows: usize = input.batches.iter().map(|b| b.num_rows()).sum();
            if rows > 0 {
                let rel = format!(
                    "p{}/{:020}-{:020}.parquet",
                    input.partition, input.first_offset, input.next_offset
                );
                let tmp = tmp_path(&self.store.write_path(&rel));
                let bytes = self.write_file(&tmp, &input.batches, "archive.file")?;
                let file = ArchiveFile {
                    path: rel,
                    partition: input.partition,
                    first_offset: input.first_offset,
                    next_offset: input.next_offset,
                    rows: rows as u64,
                    bytes,
                    imported_from: None,
                    event_time_ms: self.time_bounds(&input.batches),
                };
                next.files.push(file.clone());
                staged.push(Staged { tmp, file });
            }
            next.watermark.advance(input.partition, input.next_offset);
            next.fingerprints.insert(input.partition, input.last);
        }
        Ok(next)
    }

    /// Writes `batches` to `tmp` and fsyncs it; returns its size.
    pub(crate) fn write_file(
        &self,
        tmp: &Path,
        batches: &[Arc<RecordBatch>],
        point: &str,
    ) -> Result<u64> {
        if let Some(parent) = tmp.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let file = File::create(tmp).map_err(io_err(tmp))?;
        let mut writer =
            ArrowWriter::try_new(file, self.schema.clone(), Some(writer_properties()?))?;
        for b in batches {
            writer.write(b)?;
        }
        let file = writer.into_inner()?;
        step(point, "written", tmp)?;
        file.sync_all().map_err(io_err(tmp))?;
        step(point, "synced", tmp)?;
        Ok(file.metadata().map_err(io_err(tmp))?.len())
    }

    /// The smallest and largest event time among `batches`, in milliseconds.
    pub(crate) fn time_bounds(&self, batches: &[Arc<RecordBatch>]) -> Option<(i64, i64)> {
        let i = self.event_time?;
        let mut bounds: Option<(i64, i64)> = None;
        for b in batches {
            if let Some((lo, hi)) = crate::timebounds::bounds_ms(b.column(i)) {
                bounds = Some(match bounds {
                    Some((l, h)) => (l.min(lo), h.max(hi)),
                    None => (lo, hi),
                });
            }
        }
        bounds
    }
}

/// `batch` with its columns cast to `schema`'s types (a scan may return
/// strings as views, say), so every file keeps the table's physical schema.
pub(crate) fn conform_to(schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| BatchError::Delta(format!("a rewritten file does not fit the table: {e}")))?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| BatchError::Delta(format!("a rewritten file does not fit the table: {e}")))
}

/// Deletes the data files under the table that its state does not list.
async fn remove_unlisted(store: &TableStore, manifest: &Manifest) -> Result<usize> {
    let listed: std::collections::HashSet<String> = manifest
        .files
        .iter()
        .map(|f| store.object_path(&f.path).to_string())
        .collect();
    let prefix = store.object_path("");
    let found: Vec<_> = store
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| crate::store::store_err("(listing)", e))?;
    let mut orphans = 0;
    for meta in found {
        let key = meta.location.to_string();
        let rel = key
            .strip_prefix(prefix.as_ref())
            .unwrap_or(&key)
            .trim_start_matches('/');
        if rel.starts_with("_delta_log/") || !rel.ends_with(".parquet") || listed.contains(&key) {
            continue;
        }
        store.delete(rel).await?;
        orphans += 1;
    }
    Ok(orphans)
}

/// An append of new rows (archive runs and imports).
pub(crate) fn append() -> DeltaOperation {
    DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    }
}

/// How every master-dataset file is written: zstd level 1 decompresses about as
/// fast as snappy and stores the repetitive event columns smaller. Row groups of
/// 128Ki rows: a scan is split among cores by row group, and with the default
/// 1Mi rows a 1.5M-row file was one full and one half group (one core did 70% of
/// TPC-H Q13) and a 200k-row file a single group (one core did all of Q14/Q16/Q19).
pub(crate) fn writer_properties() -> Result<WriterProperties> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(128 * 1024))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    fn rows(offsets: &[i64]) -> Arc<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("_partition", DataType::Int32, false),
            Field::new("_offset", DataType::Int64, false),
        ]));
        Arc::new(
            RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(Int32Array::from(vec![0; offsets.len()])),
                    Arc::new(Int64Array::from(offsets.to_vec())),
                ],
            )
            .unwrap(),
        )
    }

    fn table(dir: &Path) -> TableStore {
        crate::MasterLocation::Local(dir.to_path_buf())
            .table("t")
            .unwrap()
    }

    #[tokio::test]
    async fn archive_commit_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let schema = rows(&[]).schema();
        let (a, m0) = Archiver::open(table(dir.path()), "t", schema.clone(), None)
            .await
            .unwrap();
        assert!(m0.files.is_empty());
        let m1 = a
            .archive(
                &m0,
                vec![
                    ArchiveInput {
                        partition: 0,
                        first_offset: 0,
                        next_offset: 4,
                        batches: vec![rows(&[0, 1]), rows(&[3])],
                        last: Fingerprint { offset: 3, hash: 7 },
                    },
                    ArchiveInput {
                        partition: 1,
                        first_offset: 0,
                        next_offset: 2,
                        batches: vec![],
                        last: Fingerprint { offset: 1, hash: 9 },
                    },
                ],
            )
            .await
            .unwrap();
        assert_eq!(m1.files.len(), 1, "an all-rejected range writes no file");
        assert_eq!(m1.watermark.next(1), 2, "but still advances the watermark");
        assert_eq!(m1.rows(), 3);
        assert_eq!(m1.fingerprints[&0], Fingerprint { offset: 3, hash: 7 });
        drop(a);

        // A crash leaves a temporary and an unlisted file: both vanish on open,
        // and the state comes back from the Delta log alone.
        let t = dir.path().join("t");
        std::fs::write(t.join("p0/x.parquet.tmp"), b"junk").unwrap();
        std::fs::write(t.join("p0/orphan.parquet"), b"junk").unwrap();
        let (_, again) = Archiver::open(table(dir.path()), "t", schema, None)
            .await
            .unwrap();
        assert_eq!(again, m1);
        let left: Vec<_> = std::fs::read_dir(t.join("p0")).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    /// The log policy is a table property: set at creation, brought up to
    /// date by one metadata commit when it changes, and left alone otherwise.
    #[tokio::test]
    async fn log_policy_is_a_table_property() {
        let dir = tempfile::tempdir().unwrap();
        let schema = rows(&[]).schema();
        let log = dir.path().join("t/_delta_log");
        let commits = || {
            std::fs::read_dir(&log)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".json")
                })
                .count()
        };
        Archiver::open(table(dir.path()), "t", schema.clone(), None)
            .await
            .unwrap();
        let created = std::fs::read_to_string(log.join(format!("{:020}.json", 0))).unwrap();
        assert!(
            created.contains("\"delta.deletedFileRetentionDuration\":\"interval 600 seconds\""),
            "{created}"
        );
        assert!(
            created.contains("\"delta.logRetentionDuration\":\"interval 86400 seconds\""),
            "{created}"
        );
        Archiver::open(table(dir.path()), "t", schema.clone(), None)
            .await
            .unwrap();
        assert_eq!(commits(), 1, "the same policy commits nothing");
        let mut store = table(dir.path());
        store.log_policy.tombstones = std::time::Duration::from_secs(5);
        Archiver::open(store, "t", schema, None).await.unwrap();
        assert_eq!(commits(), 2);
        let updated = std::fs::read_to_string(log.join(format!("{:020}.json", 1))).unwrap();
        assert!(
            updated.contains("\"delta.deletedFileRetentionDuration\":\"interval 5 seconds\""),
            "{updated}"
        );
    }

    /// A master dataset from before Delta tables (`manifest.json`) becomes a
    /// Delta table in place: the same files, offsets and fingerprints.
    #[tokio::test]
    async fn a_legacy_manifest_moves_into_the_delta_log() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        std::fs::create_dir_all(t.join("p0")).unwrap();
        let schema = rows(&[]).schema();
        let a = Archiver {
            store: table(dir.path()),
            schema: schema.clone(),
            event_time: None,
            log: Arc::new(tokio::sync::Mutex::new(
                DeltaLog::open(
                    table(&tempfile::tempdir().unwrap().keep()),
                    "x",
                    &schema,
                    None,
                )
                .await
                .unwrap()
                .0,
            )),
        };
        let rel = "p0/00000000000000000000-00000000000000000005.parquet";
        let bytes = a
            .write_file(&t.join(rel), &[rows(&[0, 1, 4])], "archive.file")
            .unwrap();
        let mut legacy = Manifest {
            version: 7,
            files: vec![ArchiveFile {
                path: rel.into(),
                partition: 0,
                first_offset: 0,
                next_offset: 5,
                rows: 3,
                bytes,
                imported_from: None,
                event_time_ms: None,
            }],
            ..Manifest::default()
        };
        legacy.watermark.advance(0, 5);
        legacy.watermark.advance(2, 9); // all rejected: no file, still archived
        legacy.fingerprints.insert(
            0,
            Fingerprint {
                offset: 4,
                hash: 11,
            },
        );
        std::fs::write(t.join(MANIFEST_FILE), serde_json::to_vec(&legacy).unwrap()).unwrap();

        let (_, m) = Archiver::open(table(dir.path()), "t", schema, None)
            .await
            .unwrap();
        assert_eq!(m.files, legacy.files);
        assert_eq!(m.watermark, legacy.watermark);
        assert_eq!(m.fingerprints, legacy.fingerprints);
        assert!(t.join(rel).exists(), "the files stay where they are");
        assert!(!t.join(MANIFEST_FILE).exists());
        assert!(t.join("manifest.json.moved").exists());
    }
}
