//! Batch view versions: a view's partial-state rows computed by DataFusion over a
//! manifest snapshot, stamped with that snapshot's watermark, published atomically.
//!
//! A run is *full* (the partial query over every file of the snapshot) or
//! *incremental* (the previous version's rows combined with the partial states
//! of the files committed since its watermark): the serving layer decides and
//! hands over the query and its inputs; this module writes, records and keeps
//! the versions (see [`crate::history`]).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::prelude::SessionContext;
use lambdadb_common::Watermark;
use parquet::arrow::ArrowWriter;
use tracing::info;

use crate::durable::{publish, remove_temporaries, step, tmp_path};
use crate::engine::BatchEngine;
use crate::files::{TableFile, files_table};
use crate::history::{RefreshKind, VersionPolicy, ViewHistory, ViewVersion};
use crate::viewshare::SharedViews;
use crate::{BatchError, Result, io_err, now_ms};

/// What a batch run computes: `sql` over the files of `source`.
pub struct ViewRun<'a> {
    /// The context the partial query runs in: the serving layer's functions and
    /// settings, so batch partial states have the types the speed layer's have.
    pub ctx: SessionContext,
    /// The view's SQL, recorded in the version (see [`ViewVersion::definition`]).
    pub definition: &'a str,
    /// The query computing the version's partial rows: the partial query over
    /// the source table, or for an incremental run the combination of `base`
    /// with it.
    pub sql: &'a str,
    /// Full or incremental (then `base` holds the previous version's rows).
    pub how: RefreshKind,
    /// For an incremental run: the name the previous version's partial rows are
    /// registered under, the rows, and that version's `full_at_ms`.
    pub base: Option<(&'a str, Arc<dyn TableProvider>, i64)>,
    /// The name the query reads the source by; `files` are registered under it.
    pub source_name: &'a str,
    /// The source's physical schema (declared columns, then `_partition`, `_offset`).
    pub source_schema: SchemaRef,
    /// Master dataset files the run reads: every file of the snapshot for a
    /// full run, the files above the base's watermark for an incremental one.
    pub files: Vec<TableFile>,
    /// Rows in `files` (for the version's cost figures).
    pub input_rows: u64,
    /// That snapshot's watermark, stamped on the version.
    pub watermark: Watermark,
    /// For an incremental run that chains: the base version, whose files the
    /// new version carries; `sql` is then the partial query over `files` alone.
    pub carried: Option<ViewVersion>,
    /// Where the partial query executes (planned here either way).
    pub engine: Arc<dyn BatchEngine>,
}

/// The most files a version's chain holds: an incremental run on a base with
/// this many combines them into one file (cost: the view's groups) instead of
/// adding one (cost: the new events), so queries merge at most this many
/// files' rows and the combine runs once every `MAX_CHAIN` refreshes.
pub const MAX_CHAIN: usize = 8;

/// The directory of one view's versions.
#[derive(Debug)]
pub struct ViewStore {
    dir: PathBuf,
    policy: VersionPolicy,
    history: std::sync::Mutex<ViewHistory>,
    /// On a shared store: the view's folder there, the versions' truth
    /// (`dir` is then this replica's copy).
    shared: Option<SharedViews>,
}

impl ViewStore {
    /// Opens (or creates) a view's directory, removes temporaries and version
    /// files the history does not list (a crash between a version's file and
    /// its record), and loads its history.
    pub fn open(dir: &Path, policy: VersionPolicy, shared: Option<SharedViews>) -> Result<Self> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        remove_temporaries(dir)?;
        let history = ViewHistory::load(dir)?;
        let used = history.files_in_use();
        for entry in fs::read_dir(dir).map_err(io_err(dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".parquet") && !used.contains(name.as_str()) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            policy,
            history: std::sync::Mutex::new(history),
            shared,
        })
    }

    /// On a shared store: loads the history the writer published, if it
    /// changed, with the files of the versions it keeps, and makes it this
    /// replica's (files no kept version reads are deleted). Returns whether
    /// the history changed.
    pub async fn follow(&self) -> Result<bool> {
        let Some(shared) = &self.shared else {
            return Ok(false);
        };
        let Some(next) = shared.fetch_history().await? else {
            return Ok(false);
        };
        for file in next.files_in_use() {
            shared.download(&self.dir, file).await?;
        }
        let mut history = self.history.lock().expect("history lock");
        if *history == next {
            return Ok(false);
        }
        next.save(&self.dir)?;
        let used = next.files_in_use();
        for file in history.files_in_use() {
            if !used.contains(file) {
                let _ = fs::remove_file(self.dir.join(file));
            }
        }
        *history = next;
        Ok(true)
    }

    /// The view's directory: version files and `versions.json` live in it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The versions kept and the one served.
    pub fn history(&self) -> ViewHistory {
        self.history.lock().expect("history lock").clone()
    }

    /// Serves kept version `n` from now on (recorded durably, so a restart
    /// serves it too); `None` if it is not kept.
    pub async fn rollback(&self, n: u64) -> Result<Option<ViewVersion>> {
        let mut next = self.history();
        let Some(v) = next.get(n).cloned() else {
            return Ok(None);
        };
        next.current = Some(n);
        if let Some(shared) = &self.shared {
            shared.put_history(&next).await?;
        }
        next.save(&self.dir)?;
        *self.history.lock().expect("history lock") = next;
        info!(view_dir = %self.dir.display(), version = n, "rolled back");
        Ok(Some(v))
    }

    /// Paths of the Parquet files holding `v`'s partial-state rows.
    pub fn file_paths(&self, v: &ViewVersion) -> Vec<PathBuf> {
        v.files().map(|f| self.dir.join(f)).collect()
    }

    /// Runs the batch computation and publishes it as version `version`.
    pub async fn run(&self, version: u64, run: ViewRun<'_>) -> Result<ViewVersion> {
        let started = Instant::now();
        let ctx = run.engine.context(run.ctx)?;
        ctx.register_table(
            run.source_name,
            files_table(run.source_schema.clone(), run.files.clone())?,
        )?;
        let full_at_ms = match (&run.base, &run.carried) {
            (Some((name, rows, full_at_ms)), _) => {
                ctx.register_table(*name, rows.clone())?;
                *full_at_ms
            }
            (None, Some(carried)) => carried.full_at_ms,
            (None, None) => 0,
        };
        let df = ctx.sql(run.sql).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let plan = df.create_physical_plan().await?;
        let batches = run.engine.collect(&ctx, plan).await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();

        // On a shared store the name carries the writer's replica id: two
        // writers (one of them stale) never write the same key.
        let file = match &self.shared {
            Some(s) => format!("v{version:010}-{}.parquet", s.tag()),
            None => format!("v{version:010}.parquet"),
        };
        let path = self.dir.join(&file);
        let write_path = path.clone();
        let bytes = tokio::task::spawn_blocking(move || -> Result<u64> {
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
            let bytes = f.metadata().map_err(io_err(&tmp))?.len();
            drop(f);
            publish(&tmp, &write_path, "view.file")?;
            Ok(bytes)
        })
        .await
        .map_err(|e| BatchError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })??;

        let now = now_ms();
        let (parts, carried_rows, carried_bytes) = match run.carried {
            Some(c) => {
                let mut parts = c.parts;
                parts.push(c.file);
                (parts, c.rows, c.bytes)
            }
            None => (Vec::new(), 0, 0),
        };
        let v = ViewVersion {
            version,
            watermark: run.watermark,
            file,
            parts,
            rows: rows as u64 + carried_rows,
            definition: run.definition.to_string(),
            refreshed_at_ms: now,
            duration_ms: started.elapsed().as_millis() as u64,
            how: run.how,
            full_at_ms: match run.how {
                RefreshKind::Full => now,
                RefreshKind::Incremental => full_at_ms,
            },
            bytes: bytes + carried_bytes,
            input_files: run.files.len() as u64,
            input_rows: run.input_rows,
            engine: run.engine.name().to_string(),
        };
        if let Err(e) = self.publish(v.clone()).await {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        info!(view_dir = %self.dir.display(), version, rows, how = v.how.as_str(), engine = %v.engine, input_files = v.input_files, watermark = %v.watermark, ms = v.duration_ms, "published batch view");
        Ok(v)
    }

    /// Records `v` as the served version, then deletes the files of the
    /// versions the policy no longer keeps.
    /// On a shared store the version's file and the history go there first
    /// (conditionally: see `crate::viewshare`), so a stale writer publishes
    /// nothing, not even locally.
    async fn publish(&self, v: ViewVersion) -> Result<()> {
        let mut next = self.history();
        let file = v.file.clone();
        next.current = Some(v.version);
        next.versions.push(v);
        let dropped = next.retain(self.policy, now_ms());
        if let Some(shared) = &self.shared {
            shared.upload(&self.dir, &file).await?;
            shared.put_history(&next).await?;
        }
        next.save(&self.dir)?;
        // A dropped version's file may still hold rows of a kept chain.
        let used = next.files_in_use();
        let mut gone = Vec::new();
        for file in dropped.iter().flat_map(|v| v.files()) {
            if !used.contains(file) {
                let _ = fs::remove_file(self.dir.join(file));
                gone.push(file.to_string());
            }
        }
        *self.history.lock().expect("history lock") = next;
        if let Some(shared) = &self.shared {
            for file in gone {
                shared.delete(&file).await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(n: u64, parts: &[&str]) -> ViewVersion {
        ViewVersion {
            version: n,
            file: format!("v{n}.parquet"),
            parts: parts.iter().map(|p| p.to_string()).collect(),
            refreshed_at_ms: now_ms(),
            ..ViewVersion::default()
        }
    }

    /// A version's chain keeps its carried files: neither the start-up sweep
    /// nor dropping the versions that wrote them removes them.
    #[tokio::test]
    async fn chained_files_live_as_long_as_a_version_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["v1.parquet", "v2.parquet", "v3.parquet", "stray.parquet"] {
            fs::write(dir.path().join(f), b"x").unwrap();
        }
        let history = ViewHistory {
            current: Some(3),
            versions: vec![version(3, &["v1.parquet", "v2.parquet"])],
        };
        history.save(dir.path()).unwrap();
        let policy = VersionPolicy {
            keep: 2,
            max_age_ms: 0,
        };
        let store = ViewStore::open(dir.path(), policy, None).unwrap();
        let exists = |f: &str| dir.path().join(f).exists();
        assert!(!exists("stray.parquet"));
        assert!(exists("v1.parquet") && exists("v2.parquet") && exists("v3.parquet"));

        // v4 chains on v3; v5 is a full run. Keeping two drops v3, whose
        // files v4 still holds; then v6 (full) drops v4 and the chain goes.
        fs::write(dir.path().join("v4.parquet"), b"x").unwrap();
        store
            .publish(version(4, &["v1.parquet", "v2.parquet", "v3.parquet"]))
            .await
            .unwrap();
        for n in [5, 6] {
            fs::write(dir.path().join(format!("v{n}.parquet")), b"x").unwrap();
            store.publish(version(n, &[])).await.unwrap();
            if n == 5 {
                assert!(
                    ["v1", "v2", "v3", "v4"]
                        .iter()
                        .all(|v| exists(&format!("{v}.parquet")))
                );
            }
        }
        assert!(
            ["v1", "v2", "v3", "v4"]
                .iter()
                .all(|v| !exists(&format!("{v}.parquet")))
        );
        assert!(exists("v5.parquet") && exists("v6.parquet"));
    }
}
