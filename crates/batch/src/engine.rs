//! Where a batch run executes: in this process (the default) or on a cluster
//! (Ballista, in `lambdadb-ballista`). The run plans its partial query here in
//! either case (the scan's file list comes from the Delta log, see
//! [`crate::files`]), so an engine only executes a physical plan.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::error::Result;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;

/// Executes the physical plans of batch runs.
#[async_trait::async_trait]
pub trait BatchEngine: Send + Sync + std::fmt::Debug {
    /// The engine's name as `lambdadb.view_versions` shows it.
    fn name(&self) -> &str;

    /// The context a run plans in, from the serving layer's one: an engine
    /// whose executors cannot run every operator restricts the settings here.
    fn context(&self, ctx: SessionContext) -> Result<SessionContext> {
        Ok(ctx)
    }

    /// Runs `plan` to completion and returns its rows.
    async fn collect(
        &self,
        ctx: &SessionContext,
        plan: Arc<dyn ExecutionPlan>,
    ) -> Result<Vec<RecordBatch>>;
}

/// Runs plans in this process, on the serving layer's runtime.
#[derive(Debug, Default)]
pub struct LocalEngine;

#[async_trait::async_trait]
impl BatchEngine for LocalEngine {
    fn name(&self) -> &str {
        "local"
    }

    async fn collect(
        &self,
        ctx: &SessionContext,
        plan: Arc<dyn ExecutionPlan>,
    ) -> Result<Vec<RecordBatch>> {
        collect(plan, ctx.task_ctx()).await
    }
}
