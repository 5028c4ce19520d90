//! The live state of one materialized view: its definition in partial-state form,
//! its output schema, and the batch version currently served.

use std::sync::{Arc, RwLock};

use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionConfig;
use lambdadb_batch::{ViewRun, ViewStore, ViewVersion, files_table};
use tracing::warn;

use crate::decompose::{BATCH_PARTS, Decomposition};
use crate::error::{QueryError, Result};
use crate::source::SourceState;

pub struct ViewState {
    pub name: String,
    /// The SELECT text after `AS`, as parsed and printed back.
    pub definition: String,
    pub decomposition: Decomposition,
    /// Output schema of the view.
    pub schema: SchemaRef,
    /// Schema of the partial-state rows both layers produce.
    pub partial_schema: SchemaRef,
    store: ViewStore,
    current: RwLock<Option<Arc<ViewVersion>>>,
    refresh_lock: tokio::sync::Mutex<()>,
    /// Settings batch runs plan the partial query with (the serving layer's).
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
    /// was computed from the same definition.
    pub async fn open(
        name: String,
        definition: String,
        decomposition: Decomposition,
        source: &SourceState,
        data_dir: &std::path::Path,
        config: SessionConfig,
    ) -> Result<Self> {
        let ctx = crate::pgtyping::context(config.clone(), None);
        let empty_source = MemTable::try_new(source.spec.physical_schema(), vec![vec![]])?;
        ctx.register_table(decomposition.source.as_str(), Arc::new(empty_source))?;
        let partial = ctx.sql(&decomposition.partial_sql).await?;
        let partial_schema: SchemaRef = Arc::new(partial.schema().as_arrow().clone());
        ctx.register_table(
            BATCH_PARTS,
            Arc::new(MemTable::try_new(partial_schema.clone(), vec![vec![]])?),
        )?;
        let merged = ctx.sql(&decomposition.merge_sql()).await?;
        let schema: SchemaRef = Arc::new(merged.schema().as_arrow().clone());

        let (store, current) = ViewStore::open(&data_dir.join("views").join(&name))?;
        let current = match current {
            Some(v) if v.definition == definition => Some(Arc::new(v)),
            Some(v) => {
                warn!(view = %name, version = v.version, "the definition changed; the stored batch version is not used and the view is recomputed from the master dataset");
                None
            }
            None => None,
        };
        Ok(Self {
            name,
            definition,
            decomposition,
            schema,
            partial_schema,
            store,
            current: RwLock::new(current),
            refresh_lock: tokio::sync::Mutex::new(()),
            config,
        })
    }

    pub fn current(&self) -> Option<Arc<ViewVersion>> {
        self.current.read().expect("view lock").clone()
    }

    /// The batch part: the version's partial rows, or nothing before the first run.
    pub fn batch_table(&self, version: Option<&ViewVersion>) -> Result<Arc<dyn TableProvider>> {
        Ok(match version {
            Some(v) => files_table(self.partial_schema.clone(), &[self.store.file_path(v)])?,
            None => Arc::new(MemTable::try_new(
                self.partial_schema.clone(),
                vec![vec![]],
            )?),
        })
    }

    /// Archives what the source consumed, recomputes the view over the whole
    /// master dataset and publishes the new version.
    pub async fn refresh(&self, source: &Arc<SourceState>) -> Result<Arc<ViewVersion>> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        let manifest = source.archive().await?;
        let prev = self.current().map(|v| v.version).unwrap_or(0);
        let files: Vec<_> = manifest
            .files
            .iter()
            .map(|f| source.dir().join(&f.path))
            .collect();
        let v = self
            .store
            .run(
                prev + 1,
                ViewRun {
                    ctx: crate::pgtyping::context(self.config.clone(), None),
                    definition: &self.definition,
                    partial_sql: &self.decomposition.partial_sql,
                    source_name: &self.decomposition.source,
                    source_schema: source.spec.physical_schema(),
                    files,
                    watermark: manifest.watermark.clone(),
                },
            )
            .await
            .map_err(QueryError::from)?;
        let v = Arc::new(v);
        *self.current.write().expect("view lock") = Some(v.clone());
        Ok(v)
    }
}
