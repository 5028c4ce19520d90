//! The live state of one materialized view: its plan (definition in
//! partial-state form, schemas, merge), its batch versions, and the fold that
//! keeps its speed part.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionConfig;
use lambdadb_batch::{
    RefreshKind, TableFile, VersionPolicy, ViewHistory, ViewRun, ViewStore, ViewVersion,
    files_table,
};
use lambdadb_pgcompat::{QueryError, Result};
use lambdadb_views::{Decomposition, Folder, ViewPlan, conform};
use tracing::{debug, warn};

use crate::context::context;
use crate::error::{from_batch, from_view};
use crate::snapshot::SnapshotTable;
use crate::source::{SourceState, now_ms};
use crate::viewspeed::ViewInput;

/// Batch versions up to this size are kept in memory (see `batch_table`).
const IN_MEMORY_LIMIT: u64 = 256 << 20;

/// The batch part in memory: the table of the version last asked for, and
/// its files' rows, so the next version of a chain reads only its new file.
#[derive(Default)]
struct Loaded {
    table: Option<(u64, Arc<dyn TableProvider>)>,
    files: std::collections::HashMap<String, Vec<RecordBatch>>,
}

/// Gives every `ViewState` (every definition of a view) its own identity.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Where a view keeps its versions and how it refreshes them (the engine's settings).
#[derive(Clone)]
pub struct ViewEnv {
    /// The server's data directory; the view's versions live under it.
    pub data_dir: std::path::PathBuf,
    /// Settings batch runs and folds plan the partial query with.
    pub config: SessionConfig,
    /// Where batch runs and folds execute: the server's shared memory pool.
    pub runtime: Arc<RuntimeEnv>,
    /// `full_refresh_interval`: a refresh is full once the last full one is
    /// older than this (zero: always).
    pub full_refresh_interval: std::time::Duration,
    /// Which versions are kept for rollback.
    pub versions: VersionPolicy,
    /// Where full recomputes execute (`batch_engine`); incremental runs read
    /// the new files only and stay in this process.
    pub batch_engine: Arc<dyn lambdadb_batch::BatchEngine>,
    /// On a shared store: the store, the folder of every view's versions
    /// there (`.lambdadb/views`), and this replica's id for the files it writes.
    pub shared: Option<(
        Arc<dyn object_store::ObjectStore>,
        object_store::path::Path,
        String,
    )>,
}

/// One materialized view: definition, merge plan, source, stored batch versions and folder.
pub struct ViewState {
    /// The view's name in the catalog.
    pub name: String,
    /// This definition's identity: the source accepts folds and versions only
    /// from the definition attached under the name (see `SourceState::attach_view`).
    pub id: u64,
    /// Set when a newer definition replaced this one: it refreshes no more.
    retired: std::sync::atomic::AtomicBool,
    /// The last refresh failure, until a refresh succeeds (`lambdadb.views.status`).
    refresh_error: std::sync::Mutex<Option<String>>,
    /// The last fold failure, until a fold succeeds.
    fold_error: std::sync::Mutex<Option<String>>,
    /// The SELECT text after `AS`, as parsed and printed back.
    pub definition: String,
    /// The definition in partial-state form, the output and partial schemas,
    /// and the merge query planned once.
    pub plan: ViewPlan,
    /// The source table the view reads, which also keeps the view's speed state.
    pub source: Arc<SourceState>,
    store: ViewStore,
    /// Version numbers are never reused, even across a changed definition, so a
    /// query still reading an old version's file never sees it replaced.
    last_version: AtomicU64,
    refresh_lock: tokio::sync::Mutex<()>,
    /// The served version's partial rows, read from its files once.
    loaded: std::sync::Mutex<Loaded>,
    /// Speed-layer work, for `lambdadb.views` and the benchmark.
    pub fold_stats: FoldStats,
    /// Runs folds (used under the source's fold lock only).
    folder: Folder,
    /// Settings, runtime and refresh policy.
    env: ViewEnv,
}

impl std::fmt::Debug for ViewState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ViewState({})", self.name)
    }
}

impl ViewState {
    /// Plans the definition against the source's schema, which validates it and
    /// fixes both schemas, loads the published version if it was computed from
    /// the same definition, and attaches the view's (empty) speed state to the
    /// source: from then on queries read this definition.
    pub async fn open(
        name: String,
        definition: String,
        decomposition: Decomposition,
        source: Arc<SourceState>,
        env: ViewEnv,
    ) -> Result<Self> {
        let plan = ViewPlan::try_new(
            &context(env.config.clone(), None),
            decomposition,
            source.spec.physical_schema(),
        )
        .await
        .map_err(from_view)?;
        let dir = crate::layout::view_dir(&env.data_dir, &name)?;
        let shared = env.shared.as_ref().map(|(store, root, tag)| {
            let folder = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            lambdadb_batch::SharedViews::new(
                store.clone(),
                root.clone().join(folder.as_str()),
                tag.clone(),
            )
        });
        let store = ViewStore::open(&dir, env.versions, shared).map_err(from_batch)?;
        // On a shared store this replica's copy may be behind the writer's.
        store.follow().await.map_err(from_batch)?;
        let history = store.history();
        let last_version = history.last_number();
        let current = match history.current().cloned() {
            Some(v) if v.definition == definition => Some(Arc::new(v)),
            Some(v) => {
                warn!(view = %name, version = v.version, "the definition changed; the stored batch version is not used and the view is recomputed from the master dataset");
                None
            }
            None => None,
        };
        let view = Self {
            name,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            retired: std::sync::atomic::AtomicBool::new(false),
            refresh_error: std::sync::Mutex::new(None),
            fold_error: std::sync::Mutex::new(None),
            definition,
            plan,
            source,
            store,
            last_version: AtomicU64::new(last_version),
            refresh_lock: tokio::sync::Mutex::new(()),
            loaded: std::sync::Mutex::new(Loaded::default()),
            fold_stats: FoldStats::default(),
            folder: Folder::new(context(env.config.clone(), Some(env.runtime.clone()))),
            env,
        };
        view.source.attach_view(&view.name, view.id, current);
        Ok(view)
    }

    /// The source table the view reads.
    pub fn source_name(&self) -> &str {
        &self.plan.decomposition.source
    }

    /// Stops keeping this view's speed state and removes its stored versions.
    pub fn drop_data(&self) {
        self.retire();
        self.source.detach_view(&self.name, self.id);
        if let Err(e) = std::fs::remove_dir_all(self.store.dir()) {
            warn!(view = %self.name, "cannot remove the view's batch versions: {e}");
        }
    }

    /// The versions kept for rollback and the one recorded as served.
    pub fn history(&self) -> ViewHistory {
        self.store.history()
    }

    /// The batch version served now, if the view has one.
    pub fn current(&self) -> Option<Arc<ViewVersion>> {
        self.speed().and_then(|s| s.version)
    }

    /// This definition's speed state, unless it was replaced or dropped.
    pub fn speed(&self) -> Option<crate::viewspeed::ViewSpeed> {
        self.source.view_speed(&self.name, self.id)
    }

    /// This definition's speed state and the events above it (see `SourceState::view_input`).
    pub fn input(&self) -> Option<ViewInput> {
        self.source.view_input(&self.name, self.id)
    }

    /// Marks this definition as replaced: it refreshes and folds no more.
    /// Waits for a refresh in progress, so none publishes after this returns.
    pub async fn retire_after_refresh(&self) {
        let _no_refresh = self.refresh_lock.lock().await;
        self.retire();
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    /// The last refresh and fold failures, while the view keeps failing.
    pub fn last_error(&self) -> Option<String> {
        let refresh = self.refresh_error.lock().expect("error lock").clone();
        let fold = self.fold_error.lock().expect("error lock").clone();
        match (refresh, fold) {
            (Some(r), Some(f)) => Some(format!("{r}; {f}")),
            (r, f) => r.or(f),
        }
    }

    /// Keeps `result`'s error in `slot` (or clears it on success).
    fn note<T>(slot: &std::sync::Mutex<Option<String>>, what: &str, result: &Result<T>) {
        *slot.lock().expect("error lock") =
            result.as_ref().err().map(|e| format!("{what} failed: {e}"));
    }

    /// The batch part: the version's partial rows, or nothing before the first run.
    /// A version's files are read once and kept in memory (their rows are about
    /// one per group); a version larger than `IN_MEMORY_LIMIT` is scanned from
    /// its files at each query instead.
    pub fn batch_table(&self, version: Option<&ViewVersion>) -> Result<Arc<dyn TableProvider>> {
        let partial_schema = &self.plan.partial_schema;
        let Some(v) = version else {
            return Ok(Arc::new(MemTable::try_new(
                partial_schema.clone(),
                vec![vec![]],
            )?));
        };
        let mut loaded = self.loaded.lock().expect("loaded lock");
        if let Some((n, table)) = loaded.table.as_ref()
            && *n == v.version
        {
            return Ok(table.clone());
        }
        let paths = self.store.file_paths(v);
        let sizes: Vec<u64> = paths
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(u64::MAX))
            .collect();
        if sizes.iter().fold(0u64, |a, b| a.saturating_add(*b)) > IN_MEMORY_LIMIT {
            let files = paths
                .iter()
                .zip(sizes)
                .map(|(p, bytes)| TableFile::sized(p.to_string_lossy().into_owned(), bytes))
                .collect();
            return Ok(files_table(partial_schema.clone(), files)?);
        }
        let mut files = std::collections::HashMap::new();
        let mut partitions = Vec::new();
        for (name, path) in v.files().zip(&paths) {
            let batches = match loaded.files.get(name) {
                Some(b) => b.clone(),
                None => read_partial_rows(path, partial_schema)?,
            };
            partitions.push(batches.clone());
            files.insert(name.to_string(), batches);
        }
        let table: Arc<dyn TableProvider> =
            Arc::new(MemTable::try_new(partial_schema.clone(), partitions)?);
        *loaded = Loaded {
            table: Some((v.version, table.clone())),
            files,
        };
        Ok(table)
    }

    /// The events of `input` not folded yet, as the source table the partial
    /// query reads.
    pub fn pending_table(&self, input: &ViewInput) -> Arc<dyn TableProvider> {
        Arc::new(SnapshotTable::new(
            self.source.spec.physical_schema(),
            input.files.clone(),
            input.rows.clone(),
        ))
    }

    /// Folds the events above the view's speed state into it.
    pub async fn fold(&self) -> Result<()> {
        let _one_at_a_time = self.source.fold_lock().lock().await;
        let result = self.fold_locked().await;
        Self::note(&self.fold_error, "folding new events", &result);
        result
    }

    async fn fold_locked(&self) -> Result<()> {
        if self.retired.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Some(input) = self.input() else {
            return Ok(());
        };
        if input.is_folded() {
            return Ok(());
        }
        let started = Instant::now();
        let segments: Vec<RecordBatch> = self
            .folder
            .fold(
                &self.plan,
                &input.speed.segments,
                self.pending_table(&input),
            )
            .await
            .map_err(from_view)?;
        let us = started.elapsed().as_micros() as u64;
        self.fold_stats.record(input.pending_rows() as u64, us);
        debug!(view = %self.name, events = input.pending_rows(), segments = segments.len(), us, "folded");
        self.source.install_fold(&self.name, &input, segments);
        Ok(())
    }

    /// Archives what the source consumed, computes a new batch version (over
    /// the whole master dataset when `full` or when the policy asks for it,
    /// else incrementally, see [`Self::incremental_base`]), publishes it and
    /// rebuilds the speed state above it.
    pub async fn refresh(&self, full: bool) -> Result<Arc<ViewVersion>> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        if self.retired.load(Ordering::SeqCst) {
            return Err(QueryError::UndefinedTable(format!(
                "materialized view \"{}\" was replaced or dropped while this refresh waited",
                self.name
            )));
        }
        let result = self.refresh_locked(full).await;
        Self::note(&self.refresh_error, "refresh", &result);
        result
    }

    /// The version an incremental run starts from: the one served, unless a
    /// full run is due (`full_refresh_interval` since the last full one).
    fn incremental_base(&self) -> Option<Arc<ViewVersion>> {
        let base = self.current()?;
        let every = self.env.full_refresh_interval;
        let age_ms = now_ms().saturating_sub(base.full_at_ms);
        (!every.is_zero() && base.full_at_ms > 0 && (age_ms as u128) < every.as_millis())
            .then_some(base)
    }

    async fn refresh_locked(&self, full: bool) -> Result<Arc<ViewVersion>> {
        // The pin keeps compaction from merging across the new version's
        // watermark until the version is published (and kept).
        let (manifest, _pin) = self.source.archive_pinned().await?;
        let base = if full { None } else { self.incremental_base() };
        // Whole files above the base's watermark (see `Manifest::files_from`), or all.
        let read: Vec<_> = match &base {
            Some(b) => manifest.files_from(&b.watermark).collect(),
            None => manifest.files.iter().collect(),
        };
        let input_rows = read.iter().map(|f| f.rows).sum();
        let store = self.source.store();
        let files = read.iter().map(|f| store.table_file(f)).collect();
        // A base whose chain is short takes one more file: the partial states
        // of the new files alone (cost: the new events). At MAX_CHAIN files the
        // chain is combined into one (cost: the view's groups).
        let chain = base
            .as_ref()
            .is_some_and(|b| b.files().count() < lambdadb_batch::MAX_CHAIN);
        let base_rows = match &base {
            Some(b) if !chain => Some((
                lambdadb_views::BATCH_PARTS,
                self.batch_table(Some(b))?,
                b.full_at_ms,
            )),
            _ => None,
        };
        let version = self.last_version.fetch_add(1, Ordering::SeqCst) + 1;
        let d = &self.plan.decomposition;
        let v = self
            .store
            .run(
                version,
                ViewRun {
                    ctx: context(self.env.config.clone(), Some(self.env.runtime.clone())),
                    definition: &self.definition,
                    sql: if base_rows.is_some() {
                        &d.incremental_sql
                    } else {
                        &d.partial_sql
                    },
                    how: if base.is_some() {
                        RefreshKind::Incremental
                    } else {
                        RefreshKind::Full
                    },
                    base: base_rows,
                    source_name: &d.source,
                    source_schema: self.source.spec.physical_schema(),
                    files,
                    input_rows,
                    watermark: manifest.watermark.clone(),
                    engine: match &base {
                        None => self.env.batch_engine.clone(),
                        Some(_) => Arc::new(lambdadb_batch::LocalEngine),
                    },
                    carried: base.filter(|_| chain).map(|b| (*b).clone()),
                },
            )
            .await
            .map_err(from_batch)?;
        self.serve(Arc::new(v)).await
    }

    /// Serves `v` from now on and rebuilds the speed state above its watermark.
    async fn serve(&self, v: Arc<ViewVersion>) -> Result<Arc<ViewVersion>> {
        let _no_fold = self.source.fold_lock().lock().await;
        self.source.swap_version(&self.name, self.id, v.clone());
        // Until this fold, queries read the events above the version from files.
        if let Err(e) = self.fold_locked().await {
            warn!(view = %self.name, "fold after a version swap failed, queries read the events from files meanwhile: {e}");
        }
        Ok(v)
    }

    /// On a shared store: loads the versions the writer published and serves
    /// the one it serves, once this replica's source has the files up to its
    /// watermark (the source follows first; until then the version waits and
    /// the current one keeps serving). Returns whether the served version
    /// changed.
    pub async fn follow(&self) -> Result<bool> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        if self.retired.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.store.follow().await.map_err(from_batch)?;
        let history = self.store.history();
        self.last_version
            .fetch_max(history.last_number(), Ordering::SeqCst);
        let Some(v) = history
            .current()
            .filter(|v| v.definition == self.definition)
            .cloned()
        else {
            return Ok(false);
        };
        if self.current().is_some_and(|c| c.version == v.version) {
            return Ok(false);
        }
        if !v.watermark.le(&self.source.manifest().watermark) {
            return Ok(false);
        }
        self.serve(Arc::new(v)).await?;
        Ok(true)
    }

    /// `ALTER MATERIALIZED VIEW name ROLLBACK TO VERSION n`: serves kept version
    /// `n` again (recorded, so a restart serves it too); the speed part is
    /// rebuilt from its watermark, so the answer stays exact. Later refreshes
    /// start from it.
    pub async fn rollback(&self, n: u64) -> Result<Arc<ViewVersion>> {
        self.source
            .require_writer("ALTER MATERIALIZED VIEW ... ROLLBACK")?;
        let _one_at_a_time = self.refresh_lock.lock().await;
        let history = self.store.history();
        let Some(v) = history.get(n) else {
            let kept: Vec<String> = history
                .versions
                .iter()
                .filter(|v| v.definition == self.definition)
                .map(|v| v.version.to_string())
                .collect();
            return Err(QueryError::UndefinedObject(format!(
                "materialized view \"{}\" keeps no version {n}; the versions kept are {} (see lambdadb.view_versions)",
                self.name,
                if kept.is_empty() {
                    "none".to_string()
                } else {
                    kept.join(", ")
                }
            )));
        };
        if v.definition != self.definition {
            return Err(QueryError::NotInPrerequisiteState(format!(
                "version {n} of materialized view \"{}\" was computed from an earlier definition; only versions of the current definition can be served",
                self.name
            )));
        }
        if self.retired.load(Ordering::SeqCst) {
            return Err(QueryError::UndefinedTable(format!(
                "materialized view \"{}\" was replaced or dropped meanwhile",
                self.name
            )));
        }
        let v = self
            .store
            .rollback(n)
            .await
            .map_err(from_batch)?
            .expect("checked above under the refresh lock");
        self.serve(Arc::new(v)).await
    }
}

/// A version file's partial rows, conformed to the view's partial schema.
fn read_partial_rows(
    path: &std::path::Path,
    schema: &arrow::datatypes::SchemaRef,
) -> Result<Vec<RecordBatch>> {
    let file = std::fs::File::open(path)
        .map_err(|e| QueryError::Io(format!("cannot read {}: {e}", path.display())))?;
    datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| QueryError::Io(format!("cannot read {}: {e}", path.display())))?
        .map(|b| {
            b.map_err(|e| QueryError::Io(e.to_string()))
                .and_then(|b| conform(&b, schema).map_err(from_view))
        })
        .collect()
}

/// Folds since start-up: how many, the events they covered, their time.
#[derive(Debug, Default)]
pub struct FoldStats {
    /// Folds run.
    pub folds: AtomicU64,
    /// Events the folds covered.
    pub events: AtomicU64,
    /// Time spent folding, in microseconds.
    pub micros: AtomicU64,
}

impl FoldStats {
    fn record(&self, events: u64, micros: u64) {
        self.folds.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        self.micros.fetch_add(micros, Ordering::Relaxed);
    }
}
