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
use lambdadb_batch::{ViewRun, ViewStore, ViewVersion, files_table};
use lambdadb_pgcompat::{QueryError, Result};
use lambdadb_views::{Decomposition, Folder, ViewPlan, conform};
use tracing::{debug, warn};

use crate::context::context;
use crate::error::{from_batch, from_view};
use crate::snapshot::SnapshotTable;
use crate::source::SourceState;
use crate::viewspeed::ViewInput;

/// Batch versions up to this size are kept in memory (see `batch_table`).
const IN_MEMORY_LIMIT: u64 = 256 << 20;

/// Gives every `ViewState` (every definition of a view) its own identity.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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
    /// The served version's partial rows, read from its file once.
    loaded: std::sync::Mutex<Option<(u64, Arc<dyn TableProvider>)>>,
    /// Speed-layer work, for `lambdadb.views` and the benchmark.
    pub fold_stats: FoldStats,
    /// Runs folds (used under the source's fold lock only).
    folder: Folder,
    /// Settings batch runs and folds plan the partial query with (the serving layer's).
    config: SessionConfig,
    /// Where batch runs and folds execute: the server's shared memory pool.
    runtime: Arc<RuntimeEnv>,
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
        data_dir: &std::path::Path,
        config: SessionConfig,
        runtime: Arc<RuntimeEnv>,
    ) -> Result<Self> {
        let plan = ViewPlan::try_new(
            &context(config.clone(), None),
            decomposition,
            source.spec.physical_schema(),
        )
        .await
        .map_err(from_view)?;
        let (store, stored) =
            ViewStore::open(&crate::layout::view_dir(data_dir, &name)?).map_err(from_batch)?;
        let last_version = stored.as_ref().map(|v| v.version).unwrap_or(0);
        let current = match stored {
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
            loaded: std::sync::Mutex::new(None),
            fold_stats: FoldStats::default(),
            folder: Folder::new(context(config.clone(), Some(runtime.clone()))),
            config,
            runtime,
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
    /// A version's rows are read from its file once and kept in memory (they are
    /// one row per group); a version larger than `IN_MEMORY_LIMIT` is scanned
    /// from its file at each query instead.
    pub fn batch_table(&self, version: Option<&ViewVersion>) -> Result<Arc<dyn TableProvider>> {
        let partial_schema = &self.plan.partial_schema;
        let Some(v) = version else {
            return Ok(Arc::new(MemTable::try_new(
                partial_schema.clone(),
                vec![vec![]],
            )?));
        };
        let mut loaded = self.loaded.lock().expect("loaded lock");
        if let Some((n, table)) = loaded.as_ref()
            && *n == v.version
        {
            return Ok(table.clone());
        }
        let path = self.store.file_path(v);
        let size = std::fs::metadata(&path)
            .map(|m| m.len())
            .unwrap_or(u64::MAX);
        if size > IN_MEMORY_LIMIT {
            return Ok(files_table(partial_schema.clone(), &[path])?);
        }
        let file = std::fs::File::open(&path)
            .map_err(|e| QueryError::Io(format!("cannot read {}: {e}", path.display())))?;
        let batches =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                file,
            )
            .and_then(|b| b.build())
            .map_err(|e| QueryError::Io(format!("cannot read {}: {e}", path.display())))?
            .map(|b| {
                b.map_err(|e| QueryError::Io(e.to_string()))
                    .and_then(|b| conform(&b, partial_schema).map_err(from_view))
            })
            .collect::<Result<Vec<_>>>()?;
        let table: Arc<dyn TableProvider> =
            Arc::new(MemTable::try_new(partial_schema.clone(), vec![batches])?);
        *loaded = Some((v.version, table.clone()));
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

    /// Archives what the source consumed, recomputes the view over the whole
    /// master dataset, publishes the new version and rebuilds the speed state
    /// above it.
    pub async fn refresh(&self) -> Result<Arc<ViewVersion>> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        if self.retired.load(Ordering::SeqCst) {
            return Err(QueryError::UndefinedTable(format!(
                "materialized view \"{}\" was replaced or dropped while this refresh waited",
                self.name
            )));
        }
        let result = self.refresh_locked().await;
        Self::note(&self.refresh_error, "refresh", &result);
        result
    }

    async fn refresh_locked(&self) -> Result<Arc<ViewVersion>> {
        let manifest = self.source.archive().await?;
        let files: Vec<_> = manifest
            .files
            .iter()
            .map(|f| self.source.dir().join(&f.path))
            .collect();
        let version = self.last_version.fetch_add(1, Ordering::SeqCst) + 1;
        let d = &self.plan.decomposition;
        let v = self
            .store
            .run(
                version,
                ViewRun {
                    ctx: context(self.config.clone(), Some(self.runtime.clone())),
                    definition: &self.definition,
                    partial_sql: &d.partial_sql,
                    source_name: &d.source,
                    source_schema: self.source.spec.physical_schema(),
                    files,
                    watermark: manifest.watermark.clone(),
                },
            )
            .await
            .map_err(from_batch)?;
        let v = Arc::new(v);
        let _no_fold = self.source.fold_lock().lock().await;
        self.source.swap_version(&self.name, self.id, v.clone());
        // Until this fold, queries read the events above the version from files.
        if let Err(e) = self.fold_locked().await {
            warn!(view = %self.name, "fold after refresh failed, queries read the events from files meanwhile: {e}");
        }
        Ok(v)
    }
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
