//! Catalog statements: declaring and dropping source tables, materialized and
//! plain views, and importing files into a source's master dataset.
//!
//! Every change is saved in `catalog.json` (see `catalog_log`) before the
//! statement is acknowledged, and a statement that fails leaves the catalog as
//! it was: a materialized view whose first computation fails, or whose
//! declaration cannot be saved, is removed again (a replaced one gets its old
//! definition back).

use std::path::Path;
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use lambdadb_batch::ImportSummary;
use lambdadb_common::SourceSpec;
use lambdadb_pgcompat::naming::{check_new_name, quote_ident};
use lambdadb_pgcompat::{QueryError, Result};
use lambdadb_speed::{ConsumerSettings, GapPolicy, JsonDecoder, spawn_consumer};
use lambdadb_views::decompose;
use tracing::{error, info, warn};

use crate::ddl::CatalogStatement;
use crate::engine::Engine;
use crate::error::{from_batch, from_view};
use crate::plainview::PlainViewDef;
use crate::source::SourceState;
use crate::view::ViewState;

/// What a catalog statement returns: its command tag and notices for the client.
#[derive(Debug, Clone, Default)]
pub struct Executed {
    /// The command tag (`CREATE TABLE`, `COPY 42`, ...).
    pub tag: String,
    /// Messages sent to the client as NOTICEs before the tag.
    pub notices: Vec<String>,
}

impl Executed {
    fn tag(tag: impl Into<String>) -> Self {
        Self {
            tag: tag.into(),
            notices: Vec::new(),
        }
    }
}

impl Engine {
    /// Runs a catalog statement.
    pub async fn execute(self: &Arc<Self>, stmt: CatalogStatement) -> Result<Executed> {
        match stmt {
            CatalogStatement::CreateSource {
                spec,
                if_not_exists,
            } => {
                self.create_source(spec, if_not_exists).await?;
                Ok(Executed::tag("CREATE TABLE"))
            }
            CatalogStatement::CreateView {
                name,
                query,
                or_replace,
                if_not_exists,
            } => {
                self.create_view(name, query, or_replace, if_not_exists)
                    .await?;
                Ok(Executed::tag("CREATE MATERIALIZED VIEW"))
            }
            CatalogStatement::Refresh { name, full } => {
                self.refresh(&name, full).await?;
                Ok(Executed::tag("REFRESH MATERIALIZED VIEW"))
            }
            CatalogStatement::Rollback { name, version } => {
                let view = self.view(&name).ok_or_else(|| {
                    QueryError::UndefinedTable(format!(
                        "materialized view \"{name}\" does not exist"
                    ))
                })?;
                view.rollback(version).await?;
                Ok(Executed::tag("ALTER MATERIALIZED VIEW"))
            }
            CatalogStatement::Import { table, path } => {
                let summary = self.import(&table, Path::new(&path)).await?;
                Ok(Executed {
                    tag: format!("COPY {}", summary.rows),
                    notices: summary.skipped,
                })
            }
            CatalogStatement::AlterRetention {
                name,
                if_exists,
                retention,
            } => self.alter_retention(&name, if_exists, retention).await,
            CatalogStatement::DropViews { names, if_exists } => {
                self.drop_views(&names, if_exists)?;
                Ok(Executed::tag("DROP MATERIALIZED VIEW"))
            }
        }
    }

    /// Declares a source table and starts consuming its topic from the offsets the
    /// master dataset recorded.
    pub async fn create_source(&self, spec: SourceSpec, if_not_exists: bool) -> Result<()> {
        check_new_name(&spec.name)?;
        let _one_at_a_time = self.source_create.lock().await;
        if self.source(&spec.name).is_some()
            || self.view(&spec.name).is_some()
            || self.plain_view(&spec.name).is_some()
        {
            if if_not_exists {
                return Ok(());
            }
            return Err(QueryError::DuplicateObject(format!(
                "relation \"{}\" already exists",
                spec.name
            )));
        }
        let decoder =
            JsonDecoder::try_new(spec.schema.clone()).map_err(QueryError::FeatureNotSupported)?;
        let state = Arc::new(
            SourceState::open(
                spec.clone(),
                self.master(),
                self.gate().clone(),
                lambdadb_batch::LogPolicy {
                    tombstones: self.config().vacuum_grace,
                    ..Default::default()
                },
                self.config().rejected_keep,
                self.speed_budget(),
            )
            .await?,
        );
        // Holding the lease already (a table declared on the writer): take it
        // over before anything is consumed, so it archives from the start.
        if let Some(epoch) = self.gate().lease().and_then(|l| l.may_write()) {
            state.take_over(epoch).await?;
        }
        let settings = ConsumerSettings {
            brokers: self.brokers().to_string(),
            // Replicas of a shared store each report their own progress.
            group_id: match self.config().shared_store() {
                true => format!("lambdadb-{}-{}", spec.name, self.replica_id()),
                false => format!("lambdadb-{}", spec.name),
            },
            topic: spec.topic.clone(),
            max_rows: self.config().micro_batch_rows,
            max_wait: self.config().micro_batch_wait,
            properties: self.kafka_properties()?,
            gap_policy: match self.config().retention_gap.as_str() {
                "skip" => GapPolicy::Skip,
                _ => GapPolicy::Stop,
            },
        };
        self.catalog_log()
            .declared(&spec.name, spec.definition.clone())?;
        let handle = spawn_consumer(settings, decoder, state.clone())
            .map_err(|e| QueryError::Internal(format!("cannot start the consumer: {e}")))?;
        info!(table = %spec.name, topic = %spec.topic, archived = %state.manifest().watermark, "source table ready");
        self.add_source(state, handle);
        Ok(())
    }

    /// `CREATE [OR REPLACE] VIEW name AS query`: the query is planned once in the
    /// declaring session's context `ctx` to check it and learn its columns.
    pub async fn create_plain_view(
        &self,
        ctx: &SessionContext,
        name: &str,
        query: &str,
        or_replace: bool,
    ) -> Result<()> {
        check_new_name(name)?;
        let df = ctx.sql(query).await?;
        let def = PlainViewDef {
            sql: query.to_string(),
            schema: Arc::new(df.schema().as_arrow().clone()),
        };
        let mut views = self.plain_views.write().expect("views lock");
        let taken = self.source(name).is_some() || self.view(name).is_some();
        if taken || (views.contains_key(name) && !or_replace) {
            return Err(QueryError::DuplicateObject(format!(
                "relation \"{name}\" already exists{}",
                if taken {
                    ""
                } else {
                    "; use CREATE OR REPLACE VIEW to change it"
                }
            )));
        }
        self.catalog_log().declared(
            name,
            format!(
                "CREATE OR REPLACE VIEW {} AS {}",
                quote_ident(name),
                def.sql
            ),
        )?;
        views.insert(name.to_string(), def);
        self.catalog_changed();
        Ok(())
    }

    /// `DROP VIEW [IF EXISTS] names`.
    pub fn drop_plain_views(&self, names: &[String], if_exists: bool) -> Result<()> {
        for name in names {
            if self.plain_view(name).is_some() {
                self.catalog_log().dropped(name)?;
                self.plain_views.write().expect("views lock").remove(name);
                self.catalog_changed();
                continue;
            }
            if self.view(name).is_some() {
                return Err(QueryError::WrongObjectType(format!(
                    "\"{name}\" is a materialized view; use DROP MATERIALIZED VIEW"
                )));
            }
            if !if_exists {
                return Err(QueryError::UndefinedTable(format!(
                    "view \"{name}\" does not exist"
                )));
            }
        }
        Ok(())
    }

    /// Declares (or replaces) a materialized view. Like PostgreSQL's `WITH DATA`,
    /// the statement returns once the view is computed: a view without a stored
    /// version of this definition is refreshed from the whole master dataset.
    /// If that fails, or the declaration cannot be saved, the statement fails
    /// and the catalog is as before.
    pub async fn create_view(
        &self,
        name: String,
        query: String,
        or_replace: bool,
        if_not_exists: bool,
    ) -> Result<()> {
        check_new_name(&name)?;
        let old = self.view(&name);
        let taken = self.source(&name).is_some() || self.plain_view(&name).is_some();
        if (old.is_some() || taken) && if_not_exists {
            return Ok(());
        }
        if taken || (old.is_some() && !or_replace) {
            return Err(QueryError::DuplicateObject(format!(
                "relation \"{name}\" already exists{}",
                if taken {
                    ""
                } else {
                    "; use CREATE OR REPLACE MATERIALIZED VIEW to change its definition"
                }
            )));
        }
        let d = decompose(&query, &|s: &str| {
            self.source(s).map(|st| {
                st.spec
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect()
            })
        })
        .map_err(from_view)?;
        if let Some(old) = &old {
            // No refresh of the old definition may publish after this point.
            old.retire_after_refresh().await;
            old.source.detach_view(&name, old.id);
        }
        let sql = format!("CREATE MATERIALIZED VIEW {} AS {query}", quote_ident(&name));
        let result = self.install_view(&name, query, d, sql, old.is_none()).await;
        if result.is_err()
            && let Some(old) = old
        {
            // Put the old definition back; its stored version is still current on disk.
            let restored = self
                .open_view(
                    name.clone(),
                    old.definition.clone(),
                    old.plan.decomposition.clone(),
                )
                .await;
            if let Err(e) = restored {
                error!(view = %name, "the replacement failed and the old definition cannot be restored: {e}");
            }
        }
        result
    }

    /// Opens and registers a view, computes it unless a stored version of the
    /// same definition exists, and saves its declaration; on failure the view
    /// is removed again (with its stored versions when it is `fresh`, not a
    /// replacement, whose directory still holds the old definition's).
    async fn install_view(
        &self,
        name: &str,
        query: String,
        d: lambdadb_views::Decomposition,
        sql: String,
        fresh: bool,
    ) -> Result<()> {
        let view = self.open_view(name.to_string(), query, d).await?;
        // A process that does not write (a reader replica, a writer without
        // the lease) computes no version: its speed part folds the files and
        // rows itself until the writer's versions arrive.
        let computed = match view.current() {
            Some(_) => Ok(()),
            None if !view.source.may_write() => Ok(()),
            None => view.refresh(false).await.map(|_| ()),
        };
        if let Err(e) = computed.and_then(|()| self.catalog_log().declared(name, sql)) {
            self.views.write().expect("views lock").remove(name);
            if fresh {
                view.drop_data();
            } else {
                view.source.detach_view(name, view.id);
            }
            self.catalog_changed();
            return Err(e);
        }
        info!(view = %name, version = ?view.current().map(|v| v.version), "materialized view ready");
        Ok(())
    }

    /// Opens a view's state (loading a stored version of the same definition)
    /// and registers it under `name`.
    async fn open_view(
        &self,
        name: String,
        query: String,
        d: lambdadb_views::Decomposition,
    ) -> Result<Arc<ViewState>> {
        let source = self.source(&d.source).expect("checked by decompose");
        let view =
            Arc::new(ViewState::open(name.clone(), query, d, source, self.view_env()).await?);
        self.views
            .write()
            .expect("views lock")
            .insert(name, view.clone());
        self.catalog_changed();
        Ok(view)
    }

    /// `DROP MATERIALIZED VIEW [IF EXISTS] names`: the views, their speed state and
    /// their stored versions.
    pub fn drop_views(&self, names: &[String], if_exists: bool) -> Result<()> {
        for name in names {
            if self.view(name).is_none() {
                if self.plain_view(name).is_some() || self.source(name).is_some() {
                    return Err(QueryError::WrongObjectType(format!(
                        "\"{name}\" is not a materialized view{}",
                        if self.plain_view(name).is_some() {
                            "; use DROP VIEW"
                        } else {
                            ""
                        }
                    )));
                }
                if !if_exists {
                    return Err(QueryError::UndefinedTable(format!(
                        "materialized view \"{name}\" does not exist"
                    )));
                }
            }
        }
        for name in names {
            if self.view(name).is_none() {
                continue;
            }
            self.catalog_log().dropped(name)?;
            if let Some(v) = self.views.write().expect("views lock").remove(name) {
                v.drop_data();
                self.catalog_changed();
                info!(view = %name, "materialized view dropped");
            }
        }
        Ok(())
    }

    /// Imports the Parquet file (or directory of files) at `path` into `table`'s
    /// master dataset. Returns once the import is durable: the table and its
    /// views include the rows from then on (views read imported files above
    /// their batch version until the next fold). The views' batch versions are
    /// recomputed in the background. Files whose content was imported before
    /// are skipped with a notice, so a retried COPY never counts rows twice.
    pub async fn import(self: &Arc<Self>, table: &str, path: &Path) -> Result<ImportSummary> {
        let source = self.source(table).ok_or_else(|| {
            if self.view(table).is_some() {
                QueryError::WrongObjectType(format!(
                    "cannot copy to materialized view \"{table}\"; import into its source table"
                ))
            } else {
                QueryError::UndefinedTable(format!("relation \"{table}\" does not exist"))
            }
        })?;
        let path = crate::importdir::importable(&self.config().import_dir, path)?;
        let paths = lambdadb_batch::import_paths(&path).map_err(from_batch)?;
        let summary = source.import(paths).await?;
        self.catalog_changed();
        info!(
            table,
            files = summary.files,
            rows = summary.rows,
            skipped = summary.skipped.len(),
            "import committed"
        );
        if summary.files > 0 {
            let engine = self.clone();
            tokio::spawn(async move {
                for v in engine.views() {
                    if Arc::ptr_eq(&v.source, &source)
                        && let Err(e) = v.refresh(false).await
                    {
                        warn!(view = %v.name, "recomputing the view after an import failed (queries still include the imported rows; the next refresh retries): {e}");
                    }
                }
            });
        }
        Ok(summary)
    }
}
