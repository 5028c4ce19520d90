//! The engine: every source and view of one lambdadb process, the consumers that
//! feed them, and the background work (archiving, scheduled refresh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use lambdadb_batch::{ImportSummary, ViewVersion};
use lambdadb_common::{Config, SourceSpec};
use lambdadb_pgcompat::naming::{check_new_name, quote_ident};
use lambdadb_pgcompat::{QueryError, Result};
use lambdadb_speed::{ConsumerHandle, ConsumerSettings, JsonDecoder, spawn_consumer};
use lambdadb_views::decompose;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use tracing::info;

use crate::catalog_log::CatalogLog;
use crate::ddl::CatalogStatement;
use crate::error::{from_batch, from_view};
use crate::memory::BoundedPool;
use crate::plainview::PlainViewDef;
use crate::source::SourceState;
use crate::view::ViewState;

/// One process's source tables, materialized and plain views, consumers and result cache.
pub struct Engine {
    config: Config,
    brokers: String,
    sources: RwLock<BTreeMap<String, Arc<SourceState>>>,
    views: RwLock<BTreeMap<String, Arc<ViewState>>>,
    consumers: Mutex<Vec<ConsumerHandle>>,
    plain_views: RwLock<BTreeMap<String, PlainViewDef>>,
    /// Created at the first INSERT.
    producer: std::sync::OnceLock<FutureProducer>,
    cache: Arc<lambdadb_cache::ResultCache>,
    /// The server's `memory_limit`, shared by every query, refresh and fold.
    memory: Arc<dyn MemoryPool>,
    /// Refreshes' and folds' runtime, drawing from `memory`.
    background: Arc<RuntimeEnv>,
    catalog_log: CatalogLog,
    /// Bumped by every catalog change; part of every cached result's versions.
    generation: std::sync::atomic::AtomicU64,
}

impl Engine {
    /// `brokers` is the effective bootstrap list (the embedded broker's in demo mode).
    pub fn new(config: Config, brokers: String) -> Arc<Self> {
        let memory_limit = config.memory_bytes();
        let memory: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(memory_limit));
        let background = runtime_with(Arc::new(BoundedPool::new(
            memory.clone(),
            memory_limit,
            "memory_limit",
        )));
        Arc::new(Self {
            memory,
            background,
            brokers,
            sources: RwLock::new(BTreeMap::new()),
            views: RwLock::new(BTreeMap::new()),
            consumers: Mutex::new(Vec::new()),
            plain_views: RwLock::new(BTreeMap::new()),
            producer: std::sync::OnceLock::new(),
            cache: Arc::new(lambdadb_cache::ResultCache::new(
                config.result_cache_bytes(),
            )),
            catalog_log: CatalogLog::new(&config.data_dir),
            generation: std::sync::atomic::AtomicU64::new(1),
            config,
        })
    }

    /// The result cache every session shares.
    pub fn cache(&self) -> &Arc<lambdadb_cache::ResultCache> {
        &self.cache
    }

    /// Declarations made over the wire, replayed at start-up.
    pub fn catalog_log(&self) -> &CatalogLog {
        &self.catalog_log
    }

    /// The catalog's generation: the `#catalog` entry of every cached result's versions.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records a catalog change: cached results computed before it no longer hit.
    pub fn catalog_changed(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The producer INSERT writes through.
    pub fn producer(&self) -> Result<&FutureProducer> {
        if let Some(p) = self.producer.get() {
            return Ok(p);
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.timeout.ms", "10000");
        for (key, value) in self.kafka_properties()? {
            config.set(key, value.expose());
        }
        let p = config
            .create()
            .map_err(|e| QueryError::Internal(format!("cannot create the Kafka producer: {e}")))?;
        Ok(self.producer.get_or_init(|| p))
    }

    /// TLS and SASL properties for Kafka clients (never logged: they may hold
    /// the SASL password).
    fn kafka_properties(&self) -> Result<Vec<(String, lambdadb_common::kafka::Secret)>> {
        self.config
            .kafka_properties()
            .map_err(|e| QueryError::InvalidParameter(e.to_string()))
    }

    /// The configuration the process started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the master dataset, the views' batch versions and `catalog.json` live.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// DataFusion settings every session and batch run shares.
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig::new()
            .with_default_catalog_and_schema("lambdadb", "public")
            // information_schema is PostgreSQL's (lambdadb_pgcompat::infoschema),
            // not DataFusion's.
            .with_information_schema(false)
            .set_str("datafusion.execution.time_zone", "UTC")
            .set_str("datafusion.sql_parser.dialect", "PostgreSQL")
            // `1.5` is numeric in PostgreSQL, exact; a float literal would turn
            // `price * 1.1` into binary floating point.
            .set_bool("datafusion.sql_parser.parse_float_as_decimal", true)
    }

    /// A session's runtime: its memory pool enforces `query_memory_limit` and
    /// draws from the server's `memory_limit` (see `memory`). Spilling to disk
    /// is off, so a query over a limit fails (53200) instead of filling the disk.
    pub fn runtime(&self) -> Arc<RuntimeEnv> {
        let pool = BoundedPool::new(
            self.memory.clone(),
            self.config.query_memory_bytes(),
            "query_memory_limit",
        );
        runtime_with(Arc::new(pool))
    }

    /// The runtime batch refreshes and speed folds run in: bounded by the
    /// server's `memory_limit`, which queries share.
    pub fn background_runtime(&self) -> Arc<RuntimeEnv> {
        self.background.clone()
    }

    /// The source table called `name`, if one is declared.
    pub fn source(&self, name: &str) -> Option<Arc<SourceState>> {
        self.sources
            .read()
            .expect("sources lock")
            .get(name)
            .cloned()
    }

    /// The definition of plain view `name`, if one is declared.
    pub fn plain_view(&self, name: &str) -> Option<PlainViewDef> {
        self.plain_views
            .read()
            .expect("views lock")
            .get(name)
            .cloned()
    }

    /// The names of every plain view, in name order.
    pub fn plain_view_names(&self) -> Vec<String> {
        self.plain_views
            .read()
            .expect("views lock")
            .keys()
            .cloned()
            .collect()
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
        self.catalog_log.declared(
            name,
            format!(
                "CREATE OR REPLACE VIEW {} AS {}",
                quote_ident(name),
                def.sql
            ),
        );
        views.insert(name.to_string(), def);
        self.catalog_changed();
        Ok(())
    }

    /// `DROP VIEW [IF EXISTS] names`.
    pub fn drop_plain_views(&self, names: &[String], if_exists: bool) -> Result<()> {
        for name in names {
            let dropped = self
                .plain_views
                .write()
                .expect("views lock")
                .remove(name)
                .is_some();
            if dropped {
                self.catalog_changed();
                self.catalog_log.dropped(name);
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

    /// The materialized view called `name`, if one is declared.
    pub fn view(&self, name: &str) -> Option<Arc<ViewState>> {
        self.views.read().expect("views lock").get(name).cloned()
    }

    /// Every source table, in name order.
    pub fn sources(&self) -> Vec<Arc<SourceState>> {
        self.sources
            .read()
            .expect("sources lock")
            .values()
            .cloned()
            .collect()
    }

    /// Every materialized view, in name order.
    pub fn views(&self) -> Vec<Arc<ViewState>> {
        self.views
            .read()
            .expect("views lock")
            .values()
            .cloned()
            .collect()
    }

    /// Runs a catalog statement; returns the command tag.
    pub async fn execute(&self, stmt: CatalogStatement) -> Result<String> {
        match stmt {
            CatalogStatement::CreateSource {
                spec,
                if_not_exists,
            } => {
                let (name, sql) = (spec.name.clone(), spec.definition.clone());
                self.create_source(spec, if_not_exists)?;
                self.catalog_log.declared(&name, sql);
                Ok("CREATE TABLE".into())
            }
            CatalogStatement::CreateView {
                name,
                query,
                or_replace,
                if_not_exists,
            } => {
                let sql = format!("CREATE MATERIALIZED VIEW {} AS {query}", quote_ident(&name));
                self.create_view(name.clone(), query, or_replace, if_not_exists)
                    .await?;
                self.catalog_log.declared(&name, sql);
                Ok("CREATE MATERIALIZED VIEW".into())
            }
            CatalogStatement::Refresh { name } => {
                self.refresh(&name).await?;
                Ok("REFRESH MATERIALIZED VIEW".into())
            }
            CatalogStatement::Import { table, path } => {
                let summary = self.import(&table, Path::new(&path)).await?;
                Ok(format!("COPY {}", summary.rows))
            }
            CatalogStatement::DropViews { names, if_exists } => {
                self.drop_views(&names, if_exists)?;
                for n in &names {
                    self.catalog_log.dropped(n);
                }
                Ok("DROP MATERIALIZED VIEW".into())
            }
        }
    }

    /// Declares a source table and starts consuming its topic from the offsets the
    /// master dataset recorded.
    pub fn create_source(&self, spec: SourceSpec, if_not_exists: bool) -> Result<()> {
        check_new_name(&spec.name)?;
        if self.source(&spec.name).is_some() || self.view(&spec.name).is_some() {
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
        let state = Arc::new(SourceState::open(
            spec.clone(),
            self.data_dir(),
            self.config.rejected_keep,
        )?);
        info!(table = %spec.name, topic = %spec.topic, archived = %state.manifest().watermark, "source table ready");
        let settings = ConsumerSettings {
            brokers: self.brokers.clone(),
            group_id: format!("lambdadb-{}", spec.name),
            topic: spec.topic.clone(),
            max_rows: self.config.micro_batch_rows,
            max_wait: self.config.micro_batch_wait,
            properties: self.kafka_properties()?,
        };
        let handle = spawn_consumer(settings, decoder, state.clone())
            .map_err(|e| QueryError::Internal(format!("cannot start the consumer: {e}")))?;
        self.consumers.lock().expect("consumers lock").push(handle);
        self.sources
            .write()
            .expect("sources lock")
            .insert(spec.name.clone(), state);
        self.catalog_changed();
        Ok(())
    }

    /// Declares (or replaces) a materialized view. Like PostgreSQL's `WITH DATA`,
    /// the statement returns once the view is computed: a view without a stored
    /// version of this definition is refreshed from the whole master dataset.
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
        let columns = |s: &str| {
            self.source(s).map(|st| {
                st.spec
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect()
            })
        };
        let d = decompose(&query, &columns).map_err(from_view)?;
        let source = self.source(&d.source).expect("checked by decompose");
        if let Some(old) = &old
            && old.source_name() != d.source
        {
            old.source.detach_view(&name);
        }
        // Opening attaches the new definition's (empty) speed state to the source,
        // replacing the old one's: from here on queries read the new definition.
        let view = ViewState::open(
            name.clone(),
            query,
            d,
            source,
            self.data_dir(),
            self.session_config(),
            self.background_runtime(),
        )
        .await?;
        let view = Arc::new(view);
        self.views
            .write()
            .expect("views lock")
            .insert(name.clone(), view.clone());
        self.catalog_changed();
        if view.current().is_none() {
            view.refresh().await?;
        }
        info!(view = %name, version = ?view.current().map(|v| v.version), "materialized view ready");
        Ok(())
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
            if let Some(v) = self.views.write().expect("views lock").remove(name) {
                v.drop_data();
                self.catalog_changed();
                info!(view = %name, "materialized view dropped");
            }
        }
        Ok(())
    }

    /// Imports the Parquet file (or directory of files) at `path` into `table`'s
    /// master dataset, then recomputes the table's views so that they include the
    /// imported rows when the statement returns.
    pub async fn import(&self, table: &str, path: &Path) -> Result<ImportSummary> {
        let source = self.source(table).ok_or_else(|| {
            if self.view(table).is_some() {
                QueryError::WrongObjectType(format!(
                    "cannot copy to materialized view \"{table}\"; import into its source table"
                ))
            } else {
                QueryError::UndefinedTable(format!("relation \"{table}\" does not exist"))
            }
        })?;
        let path = crate::importdir::importable(&self.config.import_dir, path)?;
        let paths = lambdadb_batch::import_paths(&path).map_err(from_batch)?;
        let summary = source.import(paths).await?;
        self.catalog_changed();
        info!(
            table,
            files = summary.files,
            rows = summary.rows,
            "import committed"
        );
        for v in self.views() {
            if Arc::ptr_eq(&v.source, &source) {
                v.refresh().await?;
            }
        }
        Ok(summary)
    }

    /// `REFRESH MATERIALIZED VIEW name`: a new batch version over the whole master dataset.
    pub async fn refresh(&self, name: &str) -> Result<Arc<ViewVersion>> {
        let view = self.view(name).ok_or_else(|| {
            QueryError::UndefinedTable(format!("materialized view \"{name}\" does not exist"))
        })?;
        view.refresh().await
    }

    /// The `.sql` files of `dir` in name order, with their text.
    pub fn catalog_files(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| {
                QueryError::Io(format!("cannot read SQL directory {}: {e}", dir.display()))
            })?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|f| {
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| QueryError::Io(format!("cannot read {}: {e}", f.display())))?;
                Ok((f, text))
            })
            .collect()
    }

    /// Stops the consumers (their threads flush what they decoded).
    pub fn stop(&self) {
        for c in self.consumers.lock().expect("consumers lock").drain(..) {
            c.stop();
        }
    }
}

fn runtime_with(pool: Arc<dyn MemoryPool>) -> Arc<RuntimeEnv> {
    RuntimeEnvBuilder::new()
        .with_memory_pool(pool)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .expect("a runtime without spilling always builds")
}
