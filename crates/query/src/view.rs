//! The live state of one materialized view: its definition in partial-state form,
//! its output schema, its batch versions, and the fold that keeps its speed part.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use lambdadb_batch::{ViewRun, ViewStore, ViewVersion, files_table};
use tracing::{debug, warn};

use crate::decompose::{BATCH_PARTS, Decomposition, SPEED_PARTS};
use crate::error::{QueryError, Result};
use crate::source::SourceState;
use crate::tables::SnapshotTable;
use crate::viewspeed::{COMPACT_AT, ViewInput};

/// Batch versions up to this size are kept in memory (see `batch_table`).
const IN_MEMORY_LIMIT: u64 = 256 << 20;

pub struct ViewState {
    pub name: String,
    /// The SELECT text after `AS`, as parsed and printed back.
    pub definition: String,
    pub decomposition: Decomposition,
    /// Output schema of the view.
    pub schema: SchemaRef,
    /// Schema of the partial-state rows both layers produce.
    pub partial_schema: SchemaRef,
    /// The merge query, planned and optimized once over placeholder inputs; a
    /// scan swaps in the snapshot's inputs (planning it per query cost more than
    /// merging a few thousand groups).
    pub merge_plan: datafusion::logical_expr::LogicalPlan,
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
    /// The context folds run in, kept (used under the source's fold lock only):
    /// building one per fold cost more than folding a few hundred events.
    fold_ctx: SessionContext,
    /// Settings batch runs and folds plan the partial query with (the serving layer's).
    config: SessionConfig,
}

impl std::fmt::Debug for ViewState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ViewState({})", self.name)
    }
}

impl ViewState {
    /// Plans the definition against the source's schema (an empty table), which
    /// validates it and fixes both schemas, and loads the published version if it
    /// was computed from the same definition. The view is not attached to its
    /// source until [`ViewState::attach`].
    pub async fn open(
        name: String,
        definition: String,
        decomposition: Decomposition,
        source: Arc<SourceState>,
        data_dir: &std::path::Path,
        config: SessionConfig,
    ) -> Result<Self> {
        let ctx = crate::pgtyping::context(config.clone(), None);
        let empty_source = MemTable::try_new(source.spec.physical_schema(), vec![vec![]])?;
        ctx.register_table(decomposition.source.as_str(), Arc::new(empty_source))?;
        let partial = ctx.sql(&decomposition.partial_sql).await?;
        let partial_schema: SchemaRef = Arc::new(partial.schema().as_arrow().clone());
        for table in [BATCH_PARTS, SPEED_PARTS] {
            ctx.register_table(
                table,
                Arc::new(MemTable::try_new(partial_schema.clone(), vec![vec![]])?),
            )?;
        }
        let merged = ctx.sql(&decomposition.merge_sql()).await?;
        let schema: SchemaRef = Arc::new(merged.schema().as_arrow().clone());
        let merge_plan = merged.into_optimized_plan()?;
        // The combine query must give back the partial schema's types (after casts).
        ctx.sql(&decomposition.combine_sql).await?;

        let (store, stored) = ViewStore::open(&data_dir.join("views").join(&name))?;
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
            definition,
            decomposition,
            schema,
            partial_schema,
            merge_plan,
            source,
            store,
            last_version: AtomicU64::new(last_version),
            refresh_lock: tokio::sync::Mutex::new(()),
            loaded: std::sync::Mutex::new(None),
            fold_stats: FoldStats::default(),
            fold_ctx: crate::pgtyping::context(config.clone(), None),
            config,
        };
        view.source.attach_view(&view.name, current);
        Ok(view)
    }

    /// Stops keeping this view's speed state and removes its stored versions.
    pub fn drop_data(&self) {
        self.source.detach_view(&self.name);
        if let Err(e) = std::fs::remove_dir_all(self.store.dir()) {
            warn!(view = %self.name, "cannot remove the view's batch versions: {e}");
        }
    }

    pub fn current(&self) -> Option<Arc<ViewVersion>> {
        self.source.view_speed(&self.name).and_then(|s| s.version)
    }

    /// The batch part: the version's partial rows, or nothing before the first run.
    /// A version's rows are read from its file once and kept in memory (they are
    /// one row per group); a version larger than `IN_MEMORY_LIMIT` is scanned
    /// from its file at each query instead.
    pub fn batch_table(&self, version: Option<&ViewVersion>) -> Result<Arc<dyn TableProvider>> {
        let Some(v) = version else {
            return Ok(Arc::new(MemTable::try_new(
                self.partial_schema.clone(),
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
            return Ok(files_table(self.partial_schema.clone(), &[path])?);
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
                    .and_then(|b| conform(&b, &self.partial_schema))
            })
            .collect::<Result<Vec<_>>>()?;
        let table: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(
            self.partial_schema.clone(),
            vec![batches],
        )?);
        *loaded = Some((v.version, table.clone()));
        Ok(table)
    }

    /// The folded speed part as a table.
    pub fn speed_table(&self, segments: &[RecordBatch]) -> Result<Arc<dyn TableProvider>> {
        Ok(Arc::new(MemTable::try_new(
            self.partial_schema.clone(),
            vec![segments.to_vec()],
        )?))
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

    fn context(&self) -> SessionContext {
        crate::pgtyping::context(self.config.clone(), None)
    }

    /// Runs `sql` in the fold context with `tables` registered (and released
    /// afterwards) and conforms the result to the partial schema. Callers hold
    /// the source's fold lock.
    async fn partial_rows(
        &self,
        sql: &str,
        tables: Vec<(&str, Arc<dyn TableProvider>)>,
    ) -> Result<Vec<RecordBatch>> {
        let ctx = &self.fold_ctx;
        let names: Vec<&str> = tables.iter().map(|(n, _)| *n).collect();
        for (name, t) in tables {
            ctx.deregister_table(name)?;
            ctx.register_table(name, t)?;
        }
        let result = async { ctx.sql(sql).await?.collect().await }.await;
        for name in names {
            ctx.deregister_table(name)?;
        }
        let batches = result?;
        batches
            .into_iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| conform(&b, &self.partial_schema))
            .collect()
    }

    /// Folds the events above the view's speed state into it.
    pub async fn fold(&self) -> Result<()> {
        let _one_at_a_time = self.source.fold_lock().lock().await;
        self.fold_locked().await
    }

    async fn fold_locked(&self) -> Result<()> {
        let Some(input) = self.source.view_input(&self.name) else {
            return Ok(());
        };
        if input.is_folded() {
            return Ok(());
        }
        let started = Instant::now();
        let source = self.decomposition.source.as_str();
        let new = self
            .partial_rows(
                &self.decomposition.partial_sql,
                vec![(source, self.pending_table(&input))],
            )
            .await?;
        let mut segments = input.speed.segments.clone();
        segments.extend(new);
        if segments.len() > COMPACT_AT {
            segments = self
                .partial_rows(
                    &self.decomposition.combine_sql,
                    vec![(SPEED_PARTS, self.speed_table(&segments)?)],
                )
                .await?;
        }
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
        let manifest = self.source.archive().await?;
        let files: Vec<_> = manifest
            .files
            .iter()
            .map(|f| self.source.dir().join(&f.path))
            .collect();
        let version = self.last_version.fetch_add(1, Ordering::SeqCst) + 1;
        let v = self
            .store
            .run(
                version,
                ViewRun {
                    ctx: self.context(),
                    definition: &self.definition,
                    partial_sql: &self.decomposition.partial_sql,
                    source_name: &self.decomposition.source,
                    source_schema: self.source.spec.physical_schema(),
                    files,
                    watermark: manifest.watermark.clone(),
                },
            )
            .await
            .map_err(QueryError::from)?;
        let v = Arc::new(v);
        let _no_fold = self.source.fold_lock().lock().await;
        self.source.swap_version(&self.name, v.clone());
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
    pub folds: AtomicU64,
    pub events: AtomicU64,
    pub micros: AtomicU64,
}

impl FoldStats {
    fn record(&self, events: u64, micros: u64) {
        self.folds.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        self.micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// Casts `batch` to `schema` (same columns in the same order): combining partial
/// states can widen a type (a sum of sums), and the segments must keep one schema.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| QueryError::Internal(format!("partial state does not conform: {e}")))?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| QueryError::Internal(format!("partial state does not conform: {e}")))
}
