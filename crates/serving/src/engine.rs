//! The engine: every source and view of one lambdadb process, the consumers that
//! feed them, and the background work (archiving, scheduled refresh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::SessionConfig;
use lambdadb_batch::{Lease, MasterLocation, S3Settings, ViewVersion};
use lambdadb_common::Config;
use lambdadb_pgcompat::{QueryError, Result};
use lambdadb_speed::ConsumerHandle;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;

use crate::catalog_log::CatalogLog;
use crate::memory::BoundedPool;
use crate::plainview::PlainViewDef;
use crate::source::SourceState;
use crate::speedbudget::SpeedBudget;
use crate::view::ViewState;
use crate::writer::WriteGate;

/// One process's source tables, materialized and plain views, consumers and result cache.
pub struct Engine {
    config: Config,
    brokers: String,
    sources: RwLock<BTreeMap<String, Arc<SourceState>>>,
    pub(crate) views: RwLock<BTreeMap<String, Arc<ViewState>>>,
    consumers: Mutex<Vec<ConsumerHandle>>,
    pub(crate) plain_views: RwLock<BTreeMap<String, PlainViewDef>>,
    /// The speed layer's memory ceiling, shared by every source.
    speed_budget: Arc<SpeedBudget>,
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
    /// Where the sources' Delta tables live (`data_dir/sources` or `master_url`).
    master: MasterLocation,
    /// The stores scans read `s3://` master-dataset files from.
    object_stores: Arc<DefaultObjectStoreRegistry>,
    /// One CREATE TABLE of a source at a time: opening its Delta table awaits.
    pub(crate) source_create: tokio::sync::Mutex<()>,
    /// Footer and statistics caches every runtime shares.
    caches: SharedCaches,
    /// Whether this process writes the master dataset (see `crate::writer`).
    gate: Arc<WriteGate>,
    /// This replica's id (`data_dir/replica.id`).
    replica_id: String,
    /// Held while the sources follow a lease round (see `replication`).
    pub(crate) adopting: Arc<tokio::sync::Mutex<()>>,
    /// Where full recomputes of views execute (`batch_engine`).
    batch_engine: Arc<dyn lambdadb_batch::BatchEngine>,
}

impl Engine {
    /// `brokers` is the effective bootstrap list (the embedded broker's in demo
    /// mode). Fails when `master_url` cannot be used.
    pub fn new(config: Config, brokers: String) -> Result<Arc<Self>> {
        Self::with_batch_engine(config, brokers, Arc::new(lambdadb_batch::LocalEngine))
    }

    /// [`Self::new`] with full recomputes of views executing on `batch_engine`
    /// (the binary builds it from the `batch_engine` setting).
    pub fn with_batch_engine(
        config: Config,
        brokers: String,
        batch_engine: Arc<dyn lambdadb_batch::BatchEngine>,
    ) -> Result<Arc<Self>> {
        let master = MasterLocation::new(
            &config.master_url,
            &S3Settings {
                endpoint: config.s3_endpoint.clone(),
                region: config.s3_region.clone(),
                allow_http: config.s3_allow_http,
            },
            &config.data_dir.join("sources"),
            &config.data_dir.join("staging"),
        )
        .map_err(|e| QueryError::InvalidParameter(e.to_string()))?;
        let object_stores = Arc::new(DefaultObjectStoreRegistry::new());
        if let Some((url, store)) = master.remote() {
            object_stores.register_store(&url, store);
        }
        let replica_id = replica_id(&config.data_dir)?;
        let gate = Arc::new(
            match (master.shared_path("lease.json"), config.writer_capable()) {
                (None, _) => WriteGate::Local,
                (Some(_), false) => WriteGate::Reader,
                (Some((store, path)), true) => WriteGate::Lease(Arc::new(Lease::new(
                    store,
                    path,
                    replica_id.clone(),
                    config.listen.clone(),
                    config.lease_expiry,
                ))),
            },
        );
        let caches = SharedCaches::new();
        let shared_catalog = master
            .shared_path("catalog.json")
            .map(|(store, path)| crate::catalog_shared::SharedCatalog::new(store, path));
        let memory_limit = config.memory_bytes();
        let memory: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(memory_limit));
        let background = runtime_with(
            Arc::new(BoundedPool::new(
                memory.clone(),
                memory_limit,
                "memory_limit",
            )),
            object_stores.clone(),
            &caches,
        );
        Ok(Arc::new(Self {
            caches,
            gate,
            replica_id,
            adopting: Arc::new(tokio::sync::Mutex::new(())),
            batch_engine,
            master,
            object_stores,
            source_create: tokio::sync::Mutex::new(()),
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
            catalog_log: CatalogLog::new(&config.data_dir).with_shared(shared_catalog),
            speed_budget: Arc::new(SpeedBudget::new(config.speed_memory_bytes())),
            generation: std::sync::atomic::AtomicU64::new(1),
            config,
        }))
    }

    /// This replica's id (kept in `data_dir/replica.id`).
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// Whether this process writes the master dataset now, and how it may.
    pub fn gate(&self) -> &Arc<WriteGate> {
        &self.gate
    }

    /// Where the sources' Delta tables live.
    pub fn master(&self) -> &MasterLocation {
        &self.master
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
            // A retried send never writes a message twice (see insert).
            .set("enable.idempotence", "true")
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

    /// The Kafka bootstrap servers consumers and the producer connect to.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The speed layer's memory ceiling (`speed_memory_limit`).
    pub fn speed_budget(&self) -> Arc<SpeedBudget> {
        self.speed_budget.clone()
    }

    /// Registers a declared source and the consumer feeding it.
    pub(crate) fn add_source(&self, state: Arc<SourceState>, consumer: ConsumerHandle) {
        self.consumers
            .lock()
            .expect("consumers lock")
            .push(consumer);
        self.sources
            .write()
            .expect("sources lock")
            .insert(state.spec.name.clone(), state);
        self.catalog_changed();
    }

    /// TLS and SASL properties for Kafka clients (never logged: they may hold
    /// the SASL password).
    pub(crate) fn kafka_properties(&self) -> Result<Vec<(String, lambdadb_common::kafka::Secret)>> {
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
        runtime_with(Arc::new(pool), self.object_stores.clone(), &self.caches)
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

    /// `REFRESH MATERIALIZED VIEW name [FULL]`: a new batch version, merged
    /// from the new files into the last one or, when `full` or due, recomputed
    /// from the whole master dataset.
    pub async fn refresh(&self, name: &str, full: bool) -> Result<Arc<ViewVersion>> {
        let view = self.view(name).ok_or_else(|| {
            QueryError::UndefinedTable(format!("materialized view \"{name}\" does not exist"))
        })?;
        view.refresh(full).await
    }

    /// What a view needs from the server: directories, settings, runtime, policies.
    pub fn view_env(&self) -> crate::view::ViewEnv {
        crate::view::ViewEnv {
            data_dir: self.data_dir().to_path_buf(),
            config: self.session_config(),
            runtime: self.background_runtime(),
            full_refresh_interval: self.config.full_refresh_interval,
            versions: lambdadb_batch::VersionPolicy {
                keep: self.config.view_versions_keep,
                max_age_ms: self.config.view_versions_max_age.as_millis() as u64,
            },
            batch_engine: self.batch_engine.clone(),
            shared: self
                .master
                .shared_path("views")
                .map(|(store, root)| (store, root, self.replica_id.clone())),
        }
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

/// DataFusion's caches of Parquet footers and of the statistics derived from
/// them, shared by every session and batch run: each runtime would otherwise
/// start empty, and every new connection read the footers of every file
/// again. Files are immutable once committed, so entries never go stale; both
/// caches are LRU-bounded (DataFusion's defaults: 50 MB of footers, 20 MB of
/// statistics), so the entries of files compaction removed age out.
#[derive(Clone)]
struct SharedCaches {
    footers: Arc<datafusion::execution::cache::cache_manager::FileMetadataCache>,
    statistics: Option<Arc<datafusion::execution::cache::cache_manager::FileStatisticsCache>>,
}

impl SharedCaches {
    fn new() -> Self {
        let defaults =
            datafusion::execution::cache::cache_manager::CacheManager::try_new(&Default::default())
                .expect("the default caches build");
        Self {
            footers: defaults.get_file_metadata_cache(),
            statistics: defaults.get_file_statistic_cache(),
        }
    }

    fn config(&self) -> datafusion::execution::cache::cache_manager::CacheManagerConfig {
        datafusion::execution::cache::cache_manager::CacheManagerConfig::default()
            .with_file_metadata_cache(Some(self.footers.clone()))
            .with_file_statistics_cache(self.statistics.clone())
    }
}

fn runtime_with(
    pool: Arc<dyn MemoryPool>,
    object_stores: Arc<DefaultObjectStoreRegistry>,
    caches: &SharedCaches,
) -> Arc<RuntimeEnv> {
    RuntimeEnvBuilder::new()
        .with_memory_pool(pool)
        .with_object_store_registry(object_stores)
        .with_cache_manager(caches.config())
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .expect("a runtime without spilling always builds")
}

/// This replica's id: kept in `data_dir/replica.id`, made at the first start.
/// A process restarted on the same `data_dir` is the same replica (the
/// `data_dir` lock admits one process), so it resumes a lease it held.
fn replica_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("replica.id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(QueryError::Io(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    }
    let id = format!("r{:016x}", rand::random::<u64>());
    std::fs::create_dir_all(data_dir)
        .and_then(|_| std::fs::write(&path, &id))
        .map_err(|e| QueryError::Io(format!("cannot write {}: {e}", path.display())))?;
    Ok(id)
}
