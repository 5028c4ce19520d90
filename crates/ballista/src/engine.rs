//! The batch engine that submits a run's physical plan to a Ballista scheduler.

use std::sync::Arc;

use ballista_core::execution_plans::execute_physical_plan;
use ballista_core::extension::SessionConfigExt;
use datafusion::arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion_proto::protobuf::PhysicalPlanNode;
use futures::TryStreamExt;
use lambdadb_batch::BatchEngine;

/// Runs full recomputes on the Ballista cluster behind one scheduler.
#[derive(Debug)]
pub struct BallistaEngine {
    /// `http://HOST:PORT` of the scheduler's gRPC service.
    url: String,
    /// One scheduler session for this process's jobs: the scheduler keeps a
    /// context per session id, so a fresh id per run would grow its cache
    /// with the age of the deployment.
    session_id: String,
}

impl BallistaEngine {
    /// The engine for the scheduler at `addr` (`HOST:PORT`); `replica` names
    /// this process's session there.
    pub fn new(addr: &str, replica: &str) -> Self {
        Self {
            url: format!("http://{addr}"),
            session_id: format!("lambdadb-{replica}"),
        }
    }
}

#[async_trait::async_trait]
impl BatchEngine for BallistaEngine {
    fn name(&self) -> &str {
        "ballista"
    }

    /// The serving layer's context with Ballista's restrictions: no
    /// round-robin repartition and no dynamic filters across stages (they
    /// wait forever there, apache/datafusion-ballista#1375), no physical
    /// scalar subqueries (#1909).
    fn context(&self, ctx: SessionContext) -> Result<SessionContext> {
        let state = ctx.state();
        let config = state.config().clone().upgrade_for_ballista();
        Ok(SessionContext::new_with_state(
            SessionStateBuilder::new_from_existing(state)
                .with_config(config)
                .build(),
        ))
    }

    async fn collect(
        &self,
        ctx: &SessionContext,
        plan: Arc<dyn ExecutionPlan>,
    ) -> Result<Vec<RecordBatch>> {
        let config = ctx.copied_config();
        let codec = crate::codec::Codec::shared();
        let stream = execute_physical_plan::<PhysicalPlanNode>(
            self.url.clone(),
            &config.ballista_config(),
            plan,
            codec.as_ref(),
            self.session_id.clone(),
            config,
        )
        .await
        .map_err(|e| explain(&self.url, e))?;
        stream
            .try_collect()
            .await
            .map_err(|e| explain(&self.url, e))
    }
}

/// A failed job, with where it ran and what to check.
fn explain(url: &str, e: DataFusionError) -> DataFusionError {
    DataFusionError::Execution(format!(
        "the Ballista job at {url} failed: {e}. Check that the scheduler runs and has executors \
         (`lambdadb ballista-scheduler`, `lambdadb ballista-executor`), or set batch_engine = \"local\""
    ))
}
