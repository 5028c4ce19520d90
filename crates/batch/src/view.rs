//! Batch view versions: a view's partial-state rows computed by DataFusion over a
//! manifest snapshot, stamped with that snapshot's watermark, published atomically.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;
use lambdadb_common::Watermark;
use parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::durable::{publish, remove_temporaries, step, tmp_path, write_atomic};
use crate::files::files_table;
use crate::{BatchError, Result, io_err};

const CURRENT: &str = "current.json";
/// Versions kept on disk behind the current one, for queries still reading them.
const KEEP_OLD_VERSIONS: u64 = 2;

/// One published batch view version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewVersion {
    /// Number of the run that computed it; names its file (`v<version>.parquet`).
    pub version: u64,
    /// Source offsets folded into this version.
    pub watermark: Watermark,
    /// File name of the partial-state rows, relative to the view's directory.
    pub file: String,
    /// Partial-state rows in the file.
    pub rows: u64,
    /// The view's SQL this version was computed from; a different definition at
    /// start-up makes this version unusable.
    pub definition: String,
    /// When the run finished writing, in milliseconds since the Unix epoch.
    pub refreshed_at_ms: i64,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
}

/// What a batch run computes: `sql` over the files of `source`.
pub struct ViewRun<'a> {
    /// The context the partial query runs in: the serving layer's functions and
    /// settings, so batch partial states have the types the speed layer's have.
    pub ctx: SessionContext,
    /// The view's SQL, recorded in the version (see [`ViewVersion::definition`]).
    pub definition: &'a str,
    /// The query computing the view's partial states over the source table.
    pub partial_sql: &'a str,
    /// The name the partial query reads the source by; `files` are registered under it.
    pub source_name: &'a str,
    /// The source's physical schema (declared columns, then `_partition`, `_offset`).
    pub source_schema: SchemaRef,
    /// Master dataset files of the manifest snapshot the run reads.
    pub files: Vec<PathBuf>,
    /// That snapshot's watermark, stamped on the version.
    pub watermark: Watermark,
}

/// The directory of one view's versions.
#[derive(Debug, Clone)]
pub struct ViewStore {
    dir: PathBuf,
}

impl ViewStore {
    /// Opens (or creates) a view's directory, removes temporaries, and loads its
    /// current version, if one was published.
    pub fn open(dir: &Path) -> Result<(Self, Option<ViewVersion>)> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        remove_temporaries(dir)?;
        let path = dir.join(CURRENT);
        let current = match fs::read(&path) {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes).map_err(|e| BatchError::Corrupt {
                    path: path.clone(),
                    message: e.to_string(),
                })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok((
            Self {
                dir: dir.to_path_buf(),
            },
            current,
        ))
    }

    /// The view's directory: version files and `current.json` live in it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the Parquet file holding `v`'s partial-state rows.
    pub fn file_path(&self, v: &ViewVersion) -> PathBuf {
        self.dir.join(&v.file)
    }

    /// Runs the batch computation and publishes it as version `version`.
    pub async fn run(&self, version: u64, run: ViewRun<'_>) -> Result<ViewVersion> {
        let started = Instant::now();
        let ctx = run.ctx;
        ctx.register_table(
            run.source_name,
            files_table(run.source_schema.clone(), &run.files)?,
        )?;
        let df = ctx.sql(run.partial_sql).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();

        let file = format!("v{version:010}.parquet");
        let path = self.dir.join(&file);
        let write_path = path.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let tmp = tmp_path(&write_path);
            let f = File::create(&tmp).map_err(io_err(&tmp))?;
            let mut w = ArrowWriter::try_new(f, schema, None)?;
            for b in &batches {
                w.write(b)?;
            }
            let f = w.into_inner()?;
            step("view.file", "written", &tmp)?;
            f.sync_all().map_err(io_err(&tmp))?;
            step("view.file", "synced", &tmp)?;
            drop(f);
            publish(&tmp, &write_path, "view.file")?;
            Ok(())
        })
        .await
        .map_err(|e| BatchError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })??;

        let v = ViewVersion {
            version,
            watermark: run.watermark,
            file,
            rows: rows as u64,
            definition: run.definition.to_string(),
            refreshed_at_ms: chrono_now_ms(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let bytes = serde_json::to_vec_pretty(&v).expect("version serializes");
        write_atomic(&self.dir.join(CURRENT), &bytes, "view.current")?;
        self.remove_old(version);
        info!(view_dir = %self.dir.display(), version, rows, watermark = %v.watermark, ms = v.duration_ms, "published batch view");
        Ok(v)
    }

    fn remove_old(&self, current: u64) {
        if let Some(old) = current
            .checked_sub(KEEP_OLD_VERSIONS + 1)
            .filter(|v| *v > 0)
        {
            let _ = fs::remove_file(self.dir.join(format!("v{old:010}.parquet")));
        }
    }
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
