//! Full recomputes of batch views as Apache DataFusion Ballista jobs
//! (`batch_engine = "ballista://HOST:PORT"`), and the scheduler and executor
//! processes lambdadb ships (`lambdadb ballista-scheduler`,
//! `lambdadb ballista-executor`).
//!
//! A run is planned in the serving process, where the scan's file list comes
//! from the Delta log (`lambdadb_batch::files`), and its physical plan is
//! submitted to the scheduler: Ballista splits it into stages at its
//! repartitions and the executors run them, reading the master dataset's
//! Parquet files from the same store (local paths, or the `s3://` bucket with
//! the same endpoint and credentials). Functions travel by name, so the
//! scheduler and every executor register lambdadb's own (`sum` over bigint as
//! numeric, `date_trunc` in UTC, the sketch aggregates of views): a Ballista
//! cluster without them cannot run lambdadb's plans.
//!
//! It imports only `batch` (for [`lambdadb_batch::BatchEngine`]); the binary
//! hands it the functions and the object stores.

#![warn(missing_docs)]

mod cluster;
mod codec;
mod engine;

pub use cluster::{Cluster, ExecutorOptions, run_executor, run_scheduler};
pub use engine::BallistaEngine;
