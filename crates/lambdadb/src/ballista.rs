//! `batch_engine = "ballista://HOST:PORT"` and the `ballista-scheduler` and
//! `ballista-executor` subcommands (the `ballista` cargo feature; without it
//! the setting is refused at start with what to do instead).

use std::sync::Arc;

use lambdadb_batch::{BatchEngine, LocalEngine};
use lambdadb_common::Config;

/// The engine full recomputes run on, from `batch_engine`.
pub fn engine(config: &Config) -> anyhow::Result<Arc<dyn BatchEngine>> {
    match config.ballista_scheduler()? {
        None => Ok(Arc::new(LocalEngine)),
        Some(addr) => cluster::engine(&addr, config),
    }
}

#[cfg(not(feature = "ballista"))]
mod cluster {
    use super::*;

    pub fn engine(addr: &str, _: &Config) -> anyhow::Result<Arc<dyn BatchEngine>> {
        anyhow::bail!(
            "batch_engine = \"ballista://{addr}\", but this lambdadb was built without Ballista: \
             build it with `cargo build --release -p lambdadb --features ballista`, or set batch_engine = \"local\""
        )
    }
}

#[cfg(feature = "ballista")]
pub use cluster::{ExecutorArgs, SchedulerArgs, executor, scheduler};

#[cfg(feature = "ballista")]
mod cluster {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    use anyhow::Context;
    use clap::Args;
    use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
    use datafusion::prelude::SessionConfig;
    use lambdadb_ballista::{BallistaEngine, Cluster, ExecutorOptions};
    use lambdadb_batch::{MasterLocation, S3Settings};

    use super::*;

    pub fn engine(addr: &str, config: &Config) -> anyhow::Result<Arc<dyn BatchEngine>> {
        tracing::info!(scheduler = %addr, "full recomputes of views run on Ballista");
        let who = format!(
            "{}-{}",
            config.listen.replace([':', '.'], "_"),
            std::process::id()
        );
        Ok(Arc::new(BallistaEngine::new(addr, &who)))
    }

    #[derive(Args, Debug)]
    pub struct SchedulerArgs {
        /// Configuration file: its master_url and s3_* settings say where the
        /// master dataset is (default: conf/lambdadb.toml when it exists).
        #[arg(long)]
        pub config: Option<PathBuf>,
        /// The scheduler's gRPC address.
        #[arg(long, default_value = "127.0.0.1:50050")]
        pub listen: SocketAddr,
    }

    #[derive(Args, Debug)]
    pub struct ExecutorArgs {
        /// Configuration file, as for the scheduler.
        #[arg(long)]
        pub config: Option<PathBuf>,
        /// The executor's Arrow Flight address (shuffle and result fetches).
        #[arg(long, default_value = "127.0.0.1:50051")]
        pub listen: SocketAddr,
        /// The scheduler's HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:50050")]
        pub scheduler: String,
        /// Directory for shuffle files (default: a directory per port under the system's temporary directory).
        #[arg(long)]
        pub work_dir: Option<PathBuf>,
        /// Tasks run at once (default: one per core).
        #[arg(long, default_value_t = 0)]
        pub slots: usize,
    }

    /// lambdadb's functions and the master dataset's stores, from the configuration.
    fn cluster(config: Option<PathBuf>) -> anyhow::Result<Cluster> {
        let path = config.or_else(crate::default_config_path);
        let config = Config::load(path.as_deref())?;
        let scratch = std::env::temp_dir();
        let master = MasterLocation::new(
            &config.master_url,
            &S3Settings {
                endpoint: config.s3_endpoint.clone(),
                region: config.s3_region.clone(),
                allow_http: config.s3_allow_http,
            },
            &scratch,
            &scratch,
        )?;
        let stores = Arc::new(DefaultObjectStoreRegistry::new());
        if let Some((url, store)) = master.remote() {
            stores.register_store(&url, store);
        }
        Ok(Cluster {
            functions: lambdadb_serving::context::context(SessionConfig::new(), None).state(),
            stores,
        })
    }

    fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
        Ok(tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("ballista")
            .build()?)
    }

    pub fn scheduler(args: SchedulerArgs) -> anyhow::Result<()> {
        let cluster = cluster(args.config)?;
        runtime()?
            .block_on(lambdadb_ballista::run_scheduler(args.listen, cluster))
            .context("the Ballista scheduler stopped")
    }

    pub fn executor(args: ExecutorArgs) -> anyhow::Result<()> {
        let cluster = cluster(args.config)?;
        let work_dir = args.work_dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("lambdadb-ballista-{}", args.listen.port()))
        });
        let options = ExecutorOptions {
            bind: args.listen,
            scheduler: args.scheduler,
            work_dir,
            slots: args.slots,
        };
        runtime()?
            .block_on(lambdadb_ballista::run_executor(options, cluster))
            .context("the Ballista executor stopped")
    }
}
