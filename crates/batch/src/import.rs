//! Importing historical Parquet files into the master dataset.
//!
//! Data from before the topic's retention (or a bulk load) enters the master
//! dataset as files of the pseudo-partition [`IMPORT_PARTITION`]. The k-th imported
//! file covers "offset" k of that partition, so the manifest's watermark, every
//! batch view version's watermark and `Manifest::files_from` treat imports exactly
//! like archived Kafka ranges: a view version either covers an import or reads it
//! as speed input, never both. No Kafka partition is negative, so imported rows
//! never meet consumed ones.
//!
//! Each file is rewritten in the source's physical layout (columns matched by
//! name, cast to the declared types, hidden columns added) rather than linked:
//! readers then see one schema, and the import is immutable like every archive
//! file even if the caller's file changes later.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::Schema;
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tracing::info;

use crate::archive::{Archiver, Staged, append, writer_properties};
use crate::durable::{step, tmp_path};
use crate::manifest::{ArchiveFile, ImportedFrom, Manifest};
use crate::{BatchError, Result, io_err};

/// An event-time range in milliseconds, if the rows have one.
type TimeRange = Option<(i64, i64)>;

/// The partition number imported files are recorded under.
pub const IMPORT_PARTITION: i32 = -1;

/// What one import added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Files skipped because the same content was imported before, each with
    /// a message saying which file and when (sent to the client as a NOTICE).
    pub skipped: Vec<String>,
    /// Files imported.
    pub files: usize,
    /// Rows they held.
    pub rows: u64,
    /// Bytes written into the master dataset (the rewritten files).
    pub bytes: u64,
}

/// The Parquet files `path` names: the file itself, or the `.parquet` files of a
/// directory (not recursive) in name order.
pub fn import_paths(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = fs::read_dir(path)
        .map_err(io_err(path))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(BatchError::Import(format!(
            "directory {} holds no .parquet files",
            path.display()
        )));
    }
    Ok(files)
}

impl Archiver {
    /// Rewrites `paths` into the master dataset and commits them in one Delta
    /// commit, all or nothing: on error no file is recorded (written ones are
    /// removed, or at the next start as unlisted).
    pub async fn import(
        &self,
        current: &Manifest,
        paths: &[PathBuf],
    ) -> Result<(Manifest, ImportSummary)> {
        let (this, cur, paths) = (self.clone(), current.clone(), paths.to_vec());
        let (staged, result) = tokio::task::spawn_blocking(move || {
            let mut staged = Vec::new();
            let result = this.stage_imports(&cur, &paths, &mut staged);
            (staged, result)
        })
        .await
        .map_err(crate::join_err)?;
        let summary = match &result {
            // Everything was imported before: nothing to commit.
            Ok((_, s)) if s.files == 0 => return Ok((current.clone(), s.clone())),
            Ok((_, s)) => s.clone(),
            Err(_) => ImportSummary::default(),
        };
        let next = result.map(|(next, _)| next);
        let next = self
            .land(
                current,
                &staged,
                next,
                "import.file",
                append(),
                "import.manifest",
            )
            .await?;
        Ok((next, summary))
    }

    fn stage_imports(
        &self,
        current: &Manifest,
        paths: &[PathBuf],
        staged: &mut Vec<Staged>,
    ) -> Result<(Manifest, ImportSummary)> {
        let mut next = current.clone();
        let mut seq = current.watermark.next(IMPORT_PARTITION);
        let mut summary = ImportSummary::default();
        for src in paths {
            let from = identify(src)?;
            if let Some(earlier) = next.files.iter().find(|f| {
                f.imported_from
                    .as_ref()
                    .is_some_and(|i| i.hash == from.hash && i.size == from.size)
            }) {
                let name = &earlier.imported_from.as_ref().expect("found").name;
                summary.skipped.push(format!(
                    "{} was already imported (same content as {name}, stored as {}); skipped",
                    src.display(),
                    earlier.path
                ));
                continue;
            }
            let rel = format!("p{IMPORT_PARTITION}/{seq:020}.parquet");
            let tmp = tmp_path(&self.store().write_path(&rel));
            let (rows, bytes, event_time_ms) = self.import_file(src, &tmp, seq)?;
            info!(file = %src.display(), rows, "imported");
            let file = ArchiveFile {
                path: rel,
                partition: IMPORT_PARTITION,
                first_offset: seq,
                next_offset: seq + 1,
                rows,
                bytes,
                imported_from: Some(from),
                event_time_ms,
            };
            next.files.push(file.clone());
            staged.push(Staged { tmp, file });
            seq += 1;
            next.watermark.advance(IMPORT_PARTITION, seq);
            summary.files += 1;
            summary.rows += rows;
            summary.bytes += bytes;
        }
        Ok((next, summary))
    }

    /// Rewrites `src` into `tmp` (fsynced); returns its rows, size and event-time range.
    fn import_file(&self, src: &Path, tmp: &Path, seq: i64) -> Result<(u64, u64, TimeRange)> {
        let file = File::open(src).map_err(io_err(src))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| {
                BatchError::Import(format!("{} is not a Parquet file: {e}", src.display()))
            })?
            .with_batch_size(64 * 1024)
            .build()?;
        let columns = match_columns(&self.schema(), &reader.schema(), src)?;
        if let Some(parent) = tmp.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let out = File::create(tmp).map_err(io_err(tmp))?;
        let mut writer = ArrowWriter::try_new(out, self.schema(), Some(writer_properties()?))?;
        let mut rows = 0u64;
        let mut bounds: Option<(i64, i64)> = None;
        for batch in reader {
            let batch = batch.map_err(|e| BatchError::Import(format!("{}: {e}", src.display())))?;
            let batch = Arc::new(conform(&self.schema(), &columns, &batch, seq, src)?);
            if let Some((lo, hi)) = self.time_bounds(std::slice::from_ref(&batch)) {
                bounds = Some(bounds.map_or((lo, hi), |(l, h)| (l.min(lo), h.max(hi))));
            }
            writer.write(&batch)?;
            rows += batch.num_rows() as u64;
        }
        let out = writer.into_inner()?;
        step("import.file", "written", tmp)?;
        out.sync_all().map_err(io_err(tmp))?;
        step("import.file", "synced", tmp)?;
        let bytes = out.metadata().map_err(io_err(tmp))?.len();
        Ok((rows, bytes, bounds))
    }
}

/// The identity of a file to import: its content hash and size. Reading the
/// whole file costs about what the import itself does, and makes a retried
/// COPY (after a lost connection or an error after the commit) a no-op.
fn identify(src: &Path) -> Result<ImportedFrom> {
    use std::hash::Hasher;
    use std::io::Read;
    let mut f = File::open(src).map_err(io_err(src))?;
    let mut h = twox_hash::XxHash3_64::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err(src))?;
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
        size += n as u64;
    }
    Ok(ImportedFrom {
        name: src.display().to_string(),
        hash: format!("{:016x}", h.finish()),
        size,
    })
}

/// For each declared column (the physical schema without its two hidden
/// columns), the index of the file column of the same name (case-insensitive).
fn match_columns(physical: &Schema, file: &Schema, src: &Path) -> Result<Vec<Option<usize>>> {
    let declared = &physical.fields()[..physical.fields().len() - 2];
    let find = |name: &str| {
        file.fields()
            .iter()
            .position(|f| f.name().eq_ignore_ascii_case(name))
    };
    let extra: Vec<&str> = file
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| !declared.iter().any(|d| d.name().eq_ignore_ascii_case(n)))
        .collect();
    if !extra.is_empty() {
        return Err(BatchError::Import(format!(
            "{} has columns the table does not declare: {}; declare them, or write a file without them",
            src.display(),
            extra.join(", ")
        )));
    }
    declared
        .iter()
        .map(|d| match find(d.name()) {
            Some(i) => Ok(Some(i)),
            None if d.is_nullable() => Ok(None),
            None => Err(BatchError::Import(format!(
                "{} has no column \"{}\", which the table declares NOT NULL",
                src.display(),
                d.name()
            ))),
        })
        .collect()
}

/// One file batch in the physical layout: matched columns cast (failing on a
/// value that does not fit rather than turning it into NULL), absent nullable
/// columns NULL, then `_partition` and `_offset`.
fn conform(
    physical: &Arc<Schema>,
    columns: &[Option<usize>],
    batch: &RecordBatch,
    seq: i64,
    src: &Path,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut out: Vec<ArrayRef> = Vec::with_capacity(physical.fields().len());
    for (field, col) in physical.fields().iter().zip(columns) {
        out.push(match col {
            Some(i) => {
                cast_with_options(batch.column(*i), field.data_type(), &strict).map_err(|e| {
                    BatchError::Import(format!(
                        "{}: column \"{}\" cannot be read as {}: {e}",
                        src.display(),
                        field.name(),
                        field.data_type()
                    ))
                })?
            }
            None => new_null_array(field.data_type(), n),
        });
    }
    out.push(Arc::new(Int32Array::from(vec![IMPORT_PARTITION; n])));
    out.push(Arc::new(Int64Array::from(vec![seq; n])));
    RecordBatch::try_new(physical.clone(), out).map_err(|e| {
        BatchError::Import(format!(
            "{}: {e} (a NOT NULL column holds NULLs?)",
            src.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type};

    fn declared() -> Arc<Schema> {
        lambdadb_common::source::physical_schema(&Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("note", DataType::Utf8, true),
        ]))
    }

    fn write(path: &Path, batch: RecordBatch) {
        let mut w =
            ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    fn file_batch(ids: Vec<i32>, extra: bool) -> RecordBatch {
        let mut fields = vec![
            Field::new("ID", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ];
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(ids.clone())),
            Arc::new(StringArray::from(vec![Some("a"); ids.len()])),
        ];
        if extra {
            fields.push(Field::new("surprise", DataType::Int32, true));
            cols.push(Arc::new(Int32Array::from(ids)));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    }

    #[tokio::test]
    async fn imports_cast_and_stack_as_pseudo_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::MasterLocation::Local(dir.path().to_path_buf())
            .table("t")
            .unwrap();
        let (a, m0) = Archiver::open(store, "t", declared(), None).await.unwrap();
        let f1 = dir.path().join("one.parquet");
        let f2 = dir.path().join("two.parquet");
        let f3 = dir.path().join("three.parquet");
        write(&f1, file_batch(vec![1, 2, 3], false));
        write(&f2, file_batch(vec![4, 5, 6], false));
        write(&f3, file_batch(vec![7, 8, 9], false));
        let (m1, s1) = a
            .import(&m0, &[f1.clone(), f2.clone(), f1.clone()])
            .await
            .unwrap();
        assert_eq!((s1.files, s1.rows), (2, 6), "the same content once");
        assert_eq!(s1.skipped.len(), 1);
        assert_eq!(m1.watermark.next(IMPORT_PARTITION), 2);
        // Importing the same files again (a retried COPY) changes nothing.
        let (again, s) = a.import(&m1, &[f1.clone(), f2]).await.unwrap();
        assert_eq!((again.version, s.files, s.rows), (m1.version, 0, 0));
        assert!(s.skipped[0].contains("already imported"), "{:?}", s.skipped);
        // A view version at m1's watermark covers both; a later import is above it.
        let (m2, _) = a.import(&m1, &[f3]).await.unwrap();
        assert_eq!(m2.files_from(&m1.watermark).count(), 1);
        assert_eq!(m2.files_from(&m0.watermark).count(), 3);

        let rel = &m2.files[2].path;
        let b =
            ParquetRecordBatchReaderBuilder::try_new(File::open(a.store().location(rel)).unwrap())
                .unwrap()
                .build()
                .unwrap()
                .next()
                .unwrap()
                .unwrap();
        assert_eq!(b.schema(), declared());
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[7, 8, 9]);
        assert_eq!(
            b.column(2).null_count(),
            3,
            "absent nullable column is NULL"
        );
        assert_eq!(b.column(4).as_primitive::<Int64Type>().value(0), 2);
    }

    #[tokio::test]
    async fn refuses_undeclared_and_missing_columns() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::MasterLocation::Local(dir.path().to_path_buf())
            .table("t")
            .unwrap();
        let (a, m0) = Archiver::open(store, "t", declared(), None).await.unwrap();
        let f = dir.path().join("extra.parquet");
        write(&f, file_batch(vec![1], true));
        let e = a.import(&m0, &[f]).await.unwrap_err().to_string();
        assert!(e.contains("surprise"), "{e}");
        let g = dir.path().join("noid.parquet");
        let only_name = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )
        .unwrap();
        write(&g, only_name);
        let e = a.import(&m0, &[g]).await.unwrap_err().to_string();
        assert!(e.contains("\"id\""), "{e}");
        drop(a);
        let store = crate::MasterLocation::Local(dir.path().to_path_buf())
            .table("t")
            .unwrap();
        let (_, reopened) = Archiver::open(store, "t", declared(), None).await.unwrap();
        assert_eq!(reopened, m0, "nothing recorded");
    }
}
