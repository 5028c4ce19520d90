//! Compaction: the small files a partition's archive runs leave (one per
//! `archive_interval`) rewritten into large ones, sorted by event time, and
//! committed in one Delta commit (an OPTIMIZE: `dataChange = false`) with the
//! files they replace.
//!
//! It never breaks the seam. Readers select "the files at or above a
//! watermark" as whole files (`Manifest::files_from`), so a compacted file
//! must not straddle any watermark something still reads from: the served and
//! kept versions of every view and the refreshes in progress (`keep`). Runs
//! are split there. Imported files are left alone: each carries the identity
//! that makes a repeated import a no-op. Queries in flight keep reading the
//! replaced files, which are deleted only after a grace period.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use deltalake::protocol::DeltaOperation;
use futures::StreamExt;
use lambdadb_common::PartitionId;
use parquet::arrow::ArrowWriter;
use tracing::info;

use crate::archive::{Archiver, Staged, writer_properties};
use crate::durable::{step, tmp_path};
use crate::files::files_table;
use crate::manifest::{ArchiveFile, Manifest};
use crate::{BatchError, IMPORT_PARTITION, Result, io_err};

/// When and how far files are merged.
#[derive(Debug, Clone, Copy)]
pub struct CompactPolicy {
    /// Size a compacted file aims at; files at half of it or more are left alone.
    pub target_bytes: u64,
    /// A run is merged only when it has at least this many files.
    pub min_files: usize,
}

/// A file of at least `target / SETTLED_FRACTION` bytes is not rewritten for
/// smaller files that follow it (8 MB with the default 128 MB target).
const SETTLED_FRACTION: u64 = 16;

/// Offsets, per partition, that no compacted file may straddle.
pub type KeepOffsets = BTreeMap<PartitionId, BTreeSet<i64>>;

/// The runs to merge: consecutive small files of one partition, in offset
/// order, at most `target_bytes` together, split at every `keep` offset.
pub fn plan(
    manifest: &Manifest,
    keep: &KeepOffsets,
    policy: CompactPolicy,
) -> Vec<Vec<ArchiveFile>> {
    let mut by_partition: BTreeMap<PartitionId, Vec<&ArchiveFile>> = BTreeMap::new();
    for f in manifest
        .files
        .iter()
        .filter(|f| f.partition != IMPORT_PARTITION)
    {
        by_partition.entry(f.partition).or_default().push(f);
    }
    let empty = BTreeSet::new();
    let mut runs = Vec::new();
    for (p, mut files) in by_partition {
        files.sort_by_key(|f| f.first_offset);
        let keep = keep.get(&p).unwrap_or(&empty);
        let mut run: Vec<ArchiveFile> = Vec::new();
        let mut bytes = 0;
        let mut close = |run: &mut Vec<ArchiveFile>| {
            // A file of at least a sixteenth of the target that is larger than
            // all the files after it in the run stays as it is (size-tiered):
            // it is not rewritten for every few small files that follow it, so
            // each of its bytes is rewritten a few times, not once per pass.
            // Below that floor the newest files keep merging into one, so a
            // steady stream leaves one small file per partition, not a ladder.
            while run.len() >= 2
                && run[0].bytes >= policy.target_bytes / SETTLED_FRACTION
                && run[0].bytes > run[1..].iter().map(|f| f.bytes).sum::<u64>()
            {
                run.remove(0);
            }
            if run.len() >= policy.min_files.max(2) {
                runs.push(std::mem::take(run));
            }
            run.clear();
        };
        for f in files {
            let small = f.bytes < policy.target_bytes / 2;
            // A keep offset strictly inside [run's first, f's next) would be straddled.
            let straddles = run.first().is_some_and(|first| {
                keep.range(first.first_offset + 1..f.next_offset)
                    .next()
                    .is_some()
            });
            if !small || straddles || bytes + f.bytes > policy.target_bytes {
                close(&mut run);
                bytes = 0;
            }
            if small {
                bytes += f.bytes;
                run.push(f.clone());
            }
        }
        close(&mut run);
    }
    runs
}

/// What one compaction pass did.
#[derive(Debug, Clone, Default)]
pub struct CompactSummary {
    /// Files replaced.
    pub files_in: usize,
    /// Files written.
    pub files_out: usize,
    /// Bytes of the files replaced and written.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Relative paths of the replaced files, to delete after the grace period.
    pub replaced: Vec<String>,
}

impl Archiver {
    /// Rewrites each run into one file sorted by `sort_by` (then `_offset`),
    /// read and sorted by DataFusion in `ctx` (whose runtime reaches the
    /// store), and commits them all in one commit. Returns the committed state.
    pub async fn compact(
        &self,
        current: &Manifest,
        runs: Vec<Vec<ArchiveFile>>,
        ctx: &SessionContext,
        sort_by: Option<&str>,
    ) -> Result<(Manifest, CompactSummary)> {
        let mut staged = Vec::new();
        let result = self.stage_runs(&runs, ctx, sort_by, &mut staged).await;
        let merged: Vec<ArchiveFile> = staged.iter().map(|s| s.file.clone()).collect();
        let replaced: BTreeSet<&str> = runs.iter().flatten().map(|f| f.path.as_str()).collect();
        let next = result.map(|()| {
            let mut next = current.clone();
            next.files.retain(|f| !replaced.contains(f.path.as_str()));
            next.files.extend(merged.iter().cloned());
            next.files.sort_by_key(|f| (f.partition, f.first_offset));
            next
        });
        let summary = CompactSummary {
            files_in: replaced.len(),
            files_out: merged.len(),
            bytes_in: runs.iter().flatten().map(|f| f.bytes).sum(),
            bytes_out: merged.iter().map(|f| f.bytes).sum(),
            replaced: replaced.iter().map(|s| s.to_string()).collect(),
        };
        let operation = DeltaOperation::Optimize {
            predicate: None,
            target_size: summary.bytes_out as i64,
        };
        let next = self
            .land(
                current,
                &staged,
                next,
                "compact.file",
                operation,
                "compact.manifest",
            )
            .await?;
        info!(table = %self.store().url, files_in = summary.files_in, files_out = summary.files_out, bytes_in = summary.bytes_in, bytes_out = summary.bytes_out, "compacted");
        Ok((next, summary))
    }

    async fn stage_runs(
        &self,
        runs: &[Vec<ArchiveFile>],
        ctx: &SessionContext,
        sort_by: Option<&str>,
        staged: &mut Vec<Staged>,
    ) -> Result<()> {
        for (i, run) in runs.iter().enumerate() {
            let (first, last) = (&run[0], &run[run.len() - 1]);
            let files = run.iter().map(|f| self.store().table_file(f)).collect();
            let name = format!("__compact_{i}");
            ctx.register_table(&name, files_table(self.schema(), files)?)?;
            let order = match sort_by {
                Some(c) => format!("\"{}\", _offset", c.replace('"', "\"\"")),
                None => "_offset".to_string(),
            };
            let stream = ctx
                .sql(&format!("SELECT * FROM {name} ORDER BY {order}"))
                .await?
                .execute_stream()
                .await;
            ctx.deregister_table(&name)?;
            let mut stream = stream?;
            let rel = format!(
                "p{}/{:020}-{:020}-c{}.parquet",
                first.partition,
                first.first_offset,
                last.next_offset,
                unique()
            );
            let tmp = tmp_path(&self.store().write_path(&rel));
            if let Some(parent) = tmp.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
            // Staged under its own name at once, so a failure below removes the
            // temporary file (and never a file of the run: cleanup deletes
            // `file.path` from the store too). The figures are filled in below.
            staged.push(Staged {
                tmp: tmp.clone(),
                file: ArchiveFile {
                    path: rel.clone(),
                    ..first.clone()
                },
            });
            let mut writer = ArrowWriter::try_new(file, self.schema(), Some(writer_properties()?))?;
            let mut rows = 0u64;
            let mut bounds: Option<(i64, i64)> = None;
            while let Some(batch) = stream.next().await {
                let batch = Arc::new(crate::archive::conform_to(&self.schema(), batch?)?);
                if let Some((lo, hi)) = self.time_bounds(std::slice::from_ref(&batch)) {
                    bounds = Some(bounds.map_or((lo, hi), |(l, h)| (l.min(lo), h.max(hi))));
                }
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            let expected: u64 = run.iter().map(|f| f.rows).sum();
            if rows != expected {
                return Err(BatchError::Delta(format!(
                    "compaction read {rows} rows from files recording {expected}; nothing was replaced"
                )));
            }
            let file = writer.into_inner()?;
            step("compact.file", "written", &tmp)?;
            file.sync_all().map_err(io_err(&tmp))?;
            step("compact.file", "synced", &tmp)?;
            let bytes = file.metadata().map_err(io_err(&tmp))?.len();
            let out = ArchiveFile {
                path: rel,
                partition: first.partition,
                first_offset: first.first_offset,
                next_offset: last.next_offset,
                rows,
                bytes,
                imported_from: None,
                event_time_ms: bounds,
            };
            staged.last_mut().expect("pushed").file = out;
        }
        Ok(())
    }
}

/// A suffix that makes a compacted file's name unique even if the same range
/// is compacted again (after a failed commit, say).
fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}", nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: PartitionId, first: i64, next: i64, bytes: u64) -> ArchiveFile {
        ArchiveFile {
            path: format!("p{p}/{first}-{next}"),
            partition: p,
            first_offset: first,
            next_offset: next,
            rows: (next - first) as u64,
            bytes,
            imported_from: None,
            event_time_ms: None,
        }
    }

    #[test]
    fn runs_split_at_kept_watermarks_and_size() {
        let m = Manifest {
            files: vec![
                file(0, 0, 10, 10),
                file(0, 10, 20, 10),
                file(0, 25, 30, 10), // a gap of rejected messages before it
                file(0, 30, 40, 10),
                file(0, 40, 50, 100), // big: left alone
                file(0, 50, 60, 10),
                file(1, 0, 5, 10),
                file(IMPORT_PARTITION, 0, 1, 10),
                file(IMPORT_PARTITION, 1, 2, 10),
            ],
            ..Manifest::default()
        };
        let policy = CompactPolicy {
            target_bytes: 100,
            min_files: 2,
        };
        let ranges = |runs: Vec<Vec<ArchiveFile>>| -> Vec<(i64, i64)> {
            runs.iter()
                .map(|r| (r[0].first_offset, r[r.len() - 1].next_offset))
                .collect()
        };
        assert_eq!(ranges(plan(&m, &KeepOffsets::new(), policy)), vec![(0, 40)]);
        // A view version at 22 (inside the gap) and one at 10: nothing may straddle them.
        let keep = KeepOffsets::from([(0, BTreeSet::from([10, 22]))]);
        assert_eq!(ranges(plan(&m, &keep, policy)), vec![(25, 40)]);
        let small = CompactPolicy {
            target_bytes: 25,
            min_files: 2,
        };
        assert_eq!(
            ranges(plan(&m, &KeepOffsets::new(), small)),
            vec![(0, 20), (25, 40)]
        );
    }

    #[test]
    fn a_compacted_file_is_not_rewritten_for_a_few_small_ones() {
        let policy = CompactPolicy {
            target_bytes: 100,
            min_files: 3,
        };
        let runs = |files: Vec<ArchiveFile>| -> Vec<(i64, i64)> {
            let m = Manifest {
                files,
                ..Manifest::default()
            };
            plan(&m, &KeepOffsets::new(), policy)
                .iter()
                .map(|r| (r[0].first_offset, r[r.len() - 1].next_offset))
                .collect()
        };
        // 40 bytes compacted, then three small files: only the small ones merge.
        let mut files = vec![file(0, 0, 40, 40)];
        files.extend((40..43).map(|o| file(0, o, o + 1, 1)));
        assert_eq!(runs(files.clone()), vec![(40, 43)]);
        // Two small ones only: nothing (min_files), the big one is no reason.
        files.pop();
        assert_eq!(runs(files), Vec::<(i64, i64)>::new());
        // Below a sixteenth of the target (6 bytes here) a file keeps merging
        // with the ones after it: the tail stays one file.
        let mut files = vec![file(0, 0, 40, 5)];
        files.extend((40..43).map(|o| file(0, o, o + 1, 1)));
        assert_eq!(runs(files), vec![(0, 43)]);
        // Once the small ones outweigh it, it merges with them.
        let mut files = vec![file(0, 0, 40, 40)];
        files.extend((40..90).map(|o| file(0, o, o + 1, 1)));
        assert_eq!(runs(files), vec![(0, 90)]);
    }

    /// A compaction that fails while writing removes only its own output:
    /// every file of the run stays listed and on disk.
    #[tokio::test]
    async fn a_failed_compaction_keeps_the_files_it_read() {
        use crate::archive::ArchiveInput;
        use arrow::array::{Int32Array, Int64Array};
        use arrow::datatypes::{DataType, Field, Schema};
        use arrow::record_batch::RecordBatch;
        let schema = Arc::new(Schema::new(vec![
            Field::new("_partition", DataType::Int32, false),
            Field::new("_offset", DataType::Int64, false),
        ]));
        let dir = tempfile::tempdir().unwrap();
        let store = crate::MasterLocation::Local(dir.path().to_path_buf())
            .table("t")
            .unwrap();
        let (a, mut m) = Archiver::open(store, "t", schema.clone(), None)
            .await
            .unwrap();
        for first in [0i64, 2] {
            let rows = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int32Array::from(vec![0, 0])),
                    Arc::new(Int64Array::from(vec![first, first + 1])),
                ],
            )
            .unwrap();
            m = a
                .archive(
                    &m,
                    vec![ArchiveInput {
                        partition: 0,
                        first_offset: first,
                        next_offset: first + 2,
                        batches: vec![Arc::new(rows)],
                        last: lambdadb_common::Fingerprint {
                            offset: first + 1,
                            hash: 1,
                        },
                    }],
                )
                .await
                .unwrap();
        }
        // A run whose recorded row count disagrees with its files fails after
        // the output was staged.
        let mut run = m.files.clone();
        run[0].rows += 1;
        let ctx = SessionContext::new();
        let err = a.compact(&m, vec![run], &ctx, None).await.unwrap_err();
        assert!(err.to_string().contains("nothing was replaced"), "{err}");
        for f in &m.files {
            assert!(
                std::path::Path::new(&a.store().location(&f.path)).exists(),
                "{} was deleted",
                f.path
            );
        }
        let left: Vec<_> = std::fs::read_dir(dir.path().join("t/p0"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "only the run's files: {left:?}");
        // With the right counts the same run compacts into one file.
        let (after, s) = a
            .compact(&m, vec![m.files.clone()], &ctx, None)
            .await
            .unwrap();
        assert_eq!((after.files.len(), after.rows(), s.files_in), (1, 4, 2));
    }
}
