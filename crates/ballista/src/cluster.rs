//! The Ballista scheduler and executor as lambdadb runs them: Ballista's own
//! processes, with lambdadb's functions and the master dataset's object
//! stores registered, so that they can run the plans lambdadb submits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::RuntimeProducer;
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use ballista_scheduler::scheduler_server::SessionBuilder;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::SessionState;
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use tracing::info;

/// What the scheduler and the executors need from lambdadb.
#[derive(Clone)]
pub struct Cluster {
    /// A session state holding lambdadb's functions (the serving layer's
    /// context): plans name functions, and these are the ones they mean.
    pub functions: SessionState,
    /// The master dataset's stores (the `s3://` bucket with its endpoint and
    /// credentials; local files need none).
    pub stores: Arc<dyn ObjectStoreRegistry>,
}

impl Cluster {
    fn runtime(&self) -> Result<Arc<RuntimeEnv>> {
        RuntimeEnvBuilder::new()
            .with_object_store_registry(self.stores.clone())
            .build_arc()
    }
}

/// Runs a scheduler on `bind` until the process is stopped. Executors pull
/// their tasks from it (Ballista's pull-staged policy: they need no port of
/// their own for it).
pub async fn run_scheduler(bind: SocketAddr, cluster: Cluster) -> Result<()> {
    let runtime = cluster.runtime()?;
    let functions = cluster.functions.clone();
    let builder: SessionBuilder = Arc::new(move |config| {
        let mut state = default_session_builder(config)?;
        state = datafusion::execution::SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(runtime.clone())
            .build();
        register(&mut state, &functions)?;
        Ok(state)
    });
    let config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        external_host: bind.ip().to_string(),
        scheduling_policy: TaskSchedulingPolicy::PullStaged,
        override_session_builder: Some(builder),
        override_physical_codec: Some(crate::codec::Codec::shared()),
        ..SchedulerConfig::default()
    };
    let scheduler = BallistaCluster::new_from_config(&config)
        .await
        .map_err(ballista)?;
    info!(%bind, "Ballista scheduler for lambdadb listening");
    start_server(scheduler, bind, Arc::new(config))
        .await
        .map_err(ballista)
}

/// Where an executor listens and whom it works for.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Its Arrow Flight service (shuffle and result fetches).
    pub bind: SocketAddr,
    /// The scheduler's `HOST:PORT`.
    pub scheduler: String,
    /// Shuffle files; the executor removes a job's files after it.
    pub work_dir: PathBuf,
    /// Tasks run at once; 0: one per core.
    pub slots: usize,
}

/// Runs an executor until SIGINT or SIGTERM (Ballista handles both).
pub async fn run_executor(options: ExecutorOptions, cluster: Cluster) -> Result<()> {
    let (scheduler_host, scheduler_port) = options
        .scheduler
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            DataFusionError::Configuration(format!(
                "scheduler '{}' is not HOST:PORT",
                options.scheduler
            ))
        })?;
    std::fs::create_dir_all(&options.work_dir)?;
    let runtime = cluster.runtime()?;
    let producer: RuntimeProducer = Arc::new(move |_| Ok(runtime.clone()));
    let mut config = ExecutorProcessConfig {
        bind_host: options.bind.ip().to_string(),
        external_host: Some(options.bind.ip().to_string()),
        port: options.bind.port(),
        scheduler_host,
        scheduler_port,
        // The scheduler may still be starting beside it.
        scheduler_connect_timeout_seconds: 30,
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        work_dir: Some(options.work_dir.to_string_lossy().into_owned()),
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(
            &cluster.functions,
        ))),
        override_runtime_producer: Some(producer),
        override_physical_codec: Some(crate::codec::Codec::shared()),
        ..ExecutorProcessConfig::default()
    };
    if options.slots > 0 {
        config.vcores = options.slots;
    }
    info!(bind = %options.bind, scheduler = %options.scheduler, "Ballista executor for lambdadb starting");
    start_executor_process(Arc::new(config))
        .await
        .map_err(ballista)
}

/// Registers `from`'s functions on `state`, replacing built-ins of the same
/// name (lambdadb's `sum` and `date_trunc` differ from DataFusion's).
fn register(state: &mut SessionState, from: &SessionState) -> Result<()> {
    for f in from.scalar_functions().values() {
        state.register_udf(f.clone())?;
    }
    for f in from.aggregate_functions().values() {
        state.register_udaf(f.clone())?;
    }
    for f in from.window_functions().values() {
        state.register_udwf(f.clone())?;
    }
    Ok(())
}

fn ballista(e: ballista_core::error::BallistaError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}
