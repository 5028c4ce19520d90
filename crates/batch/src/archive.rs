//! The archiver: consumed rows into immutable Parquet files of the master dataset.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use lambdadb_common::{Fingerprint, PartitionId};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tracing::{info, warn};

use crate::durable::{publish, remove_temporaries, step, tmp_path};
use crate::manifest::{ArchiveFile, Manifest};
use crate::{Result, io_err};

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

/// Writes and commits archive files of one source table.
#[derive(Debug, Clone)]
pub struct Archiver {
    dir: PathBuf,
    schema: SchemaRef,
}

impl Archiver {
    /// Opens (or creates) the source's directory, removes temporaries and files no
    /// manifest lists (left by a crash between a file's rename and its manifest
    /// commit: their rows are consumed again from Kafka), and loads the manifest.
    pub fn open(dir: &Path, schema: SchemaRef) -> Result<(Self, Manifest)> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let removed = remove_temporaries(dir)?;
        let manifest = Manifest::load(dir)?;
        let listed: std::collections::HashSet<PathBuf> =
            manifest.files.iter().map(|f| dir.join(&f.path)).collect();
        let mut orphans = 0;
        for entry in fs::read_dir(dir).map_err(io_err(dir))?.flatten() {
            let part_dir = entry.path();
            if !part_dir.is_dir() {
                continue;
            }
            for f in fs::read_dir(&part_dir)
                .map_err(io_err(&part_dir))?
                .flatten()
            {
                let p = f.path();
                if p.extension().is_some_and(|e| e == "parquet") && !listed.contains(&p) {
                    fs::remove_file(&p).map_err(io_err(&p))?;
                    orphans += 1;
                }
            }
        }
        if removed + orphans > 0 {
            warn!(dir = %dir.display(), removed, orphans, "removed files of an interrupted archive run");
        }
        Ok((
            Self {
                dir: dir.to_path_buf(),
                schema,
            },
            manifest,
        ))
    }

    /// The source's directory: the manifest and the archive files live under it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The physical schema files are written in.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Writes one file per input that has rows, then commits a manifest that lists
    /// them and advances the watermark (also for inputs that were all rejected).
    /// Returns the committed manifest; on error nothing is recorded, and the
    /// files written before the failure are removed (a full disk gets its
    /// space back before the retry). Once the manifest's own commit has begun,
    /// its files stay: the new manifest may already be in place on disk.
    pub fn archive(&self, current: &Manifest, inputs: &[ArchiveInput]) -> Result<Manifest> {
        let mut written = Vec::new();
        let next = self.write_files(current, inputs, &mut written);
        let next = match next {
            Ok(next) => next,
            Err(e) => {
                for path in written {
                    let _ = fs::remove_file(&path);
                    let _ = fs::remove_file(tmp_path(&path));
                }
                return Err(e);
            }
        };
        next.commit(&self.dir, "archive.manifest")?;
        info!(dir = %self.dir.display(), version = next.version, watermark = %next.watermark, "archived");
        Ok(next)
    }

    fn write_files(
        &self,
        current: &Manifest,
        inputs: &[ArchiveInput],
        written: &mut Vec<PathBuf>,
    ) -> Result<Manifest> {
        let mut next = current.clone();
        next.version += 1;
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
                written.push(self.dir.join(&rel));
                let bytes = self.write_file(&self.dir.join(&rel), &input.batches)?;
                next.files.push(ArchiveFile {
                    path: rel,
                    partition: input.partition,
                    first_offset: input.first_offset,
                    next_offset: input.next_offset,
                    rows: rows as u64,
                    bytes,
                    imported_from: None,
                });
            }
            next.watermark.advance(input.partition, input.next_offset);
            next.fingerprints.insert(input.partition, input.last);
        }
        Ok(next)
    }

    fn write_file(&self, path: &Path, batches: &[Arc<RecordBatch>]) -> Result<u64> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let tmp = tmp_path(path);
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut writer =
            ArrowWriter::try_new(file, self.schema.clone(), Some(writer_properties()?))?;
        for b in batches {
            writer.write(b)?;
        }
        let file = writer.into_inner()?;
        step("archive.file", "written", &tmp)?;
        file.sync_all().map_err(io_err(&tmp))?;
        step("archive.file", "synced", &tmp)?;
        let bytes = file.metadata().map_err(io_err(&tmp))?.len();
        drop(file);
        publish(&tmp, path, "archive.file")?;
        Ok(bytes)
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

    #[test]
    fn archive_commit_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let schema = rows(&[]).schema();
        let (a, m0) = Archiver::open(dir.path(), schema.clone()).unwrap();
        assert_eq!(m0.version, 0);
        let m1 = a
            .archive(
                &m0,
                &[
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
            .unwrap();
        assert_eq!(m1.files.len(), 1, "an all-rejected range writes no file");
        assert_eq!(m1.watermark.next(1), 2, "but still advances the watermark");
        assert_eq!(m1.rows(), 3);
        assert_eq!(m1.fingerprints[&0], Fingerprint { offset: 3, hash: 7 });

        // A crash leaves a temporary and an unlisted file: both vanish on open.
        std::fs::write(dir.path().join("p0/x.parquet.tmp"), b"junk").unwrap();
        std::fs::write(dir.path().join("p0/orphan.parquet"), b"junk").unwrap();
        let (_, again) = Archiver::open(dir.path(), schema).unwrap();
        assert_eq!(again, m1);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("p0")).unwrap().collect();
        assert_eq!(left.len(), 1);
    }
}
