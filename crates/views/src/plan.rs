//! A materialized view planned once: the schemas of its partial states and of
//! its answer, and the merge query, optimized over placeholder inputs that each
//! query swaps for its snapshot's (planning the merge per query cost more than
//! merging a few thousand groups).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;

use crate::decompose::{BATCH_PARTS, Decomposition, SPEED_PARTS};
use crate::error::Result;

/// A materialized view planned once: its decomposition, its two schemas and the
/// optimized merge plan that [`ViewPlan::bind`] points at one snapshot's inputs.
pub struct ViewPlan {
    /// The definition in partial-state form that the plan was built from.
    pub decomposition: Decomposition,
    /// Output schema of the view.
    pub schema: SchemaRef,
    /// Schema of the partial-state rows both layers produce.
    pub partial_schema: SchemaRef,
    merge_plan: LogicalPlan,
}

impl std::fmt::Debug for ViewPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ViewPlan({})", self.decomposition.partial_sql)
    }
}

impl ViewPlan {
    /// Plans the definition against the source's schema (an empty table), which
    /// validates it and fixes both schemas. `ctx` must know the functions user
    /// SQL is planned with (the dialect's typing rules and [`crate::sketches`]),
    /// so that both layers' partial states and the answer get the same types;
    /// placeholder tables are registered in it.
    pub async fn try_new(
        ctx: &SessionContext,
        decomposition: Decomposition,
        source_schema: SchemaRef,
    ) -> Result<Self> {
        let empty_source = MemTable::try_new(source_schema, vec![vec![]])?;
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
        ctx.sql(&decomposition.incremental_sql).await?;
        Ok(Self {
            decomposition,
            schema,
            partial_schema,
            merge_plan,
        })
    }

    /// Partial-state rows as a table.
    pub fn parts_table(&self, rows: Vec<RecordBatch>) -> Result<Arc<dyn TableProvider>> {
        Ok(Arc::new(MemTable::try_new(
            self.partial_schema.clone(),
            vec![rows],
        )?))
    }

    /// The merge plan over one snapshot: `batch` holds the batch version's
    /// partial rows, `speed` the folded ones, `pending` the source's events not
    /// folded yet; the answer is projected to `projection`.
    pub fn bind(
        &self,
        batch: Arc<dyn TableProvider>,
        speed: Arc<dyn TableProvider>,
        pending: Arc<dyn TableProvider>,
        projection: Option<&Vec<usize>>,
    ) -> datafusion::error::Result<LogicalPlan> {
        let inputs = [
            (BATCH_PARTS, batch),
            (SPEED_PARTS, speed),
            (self.decomposition.source.as_str(), pending),
        ];
        let mut plan = self
            .merge_plan
            .clone()
            .transform_up(|node| match node {
                LogicalPlan::TableScan(mut scan) => {
                    let provider = inputs
                        .iter()
                        .find(|(n, _)| *n == scan.table_name.table())
                        .map(|(_, p)| p.clone())
                        .ok_or_else(|| {
                            DataFusionError::Internal(format!(
                                "view merge plan reads unknown table {}",
                                scan.table_name
                            ))
                        })?;
                    scan.source = provider_as_source(provider);
                    Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
                }
                other => Ok(Transformed::no(other)),
            })?
            .data;
        if let Some(p) = projection {
            let cols: Vec<Expr> = p
                .iter()
                .map(|i| datafusion::prelude::ident(self.schema.field(*i).name()))
                .collect();
            plan = LogicalPlanBuilder::from(plan).project(cols)?.build()?;
        }
        Ok(plan)
    }

    /// Checks that `got`, the schema a bound plan of view `name` executes to,
    /// has the view's column types under `projection`.
    pub fn check_output(
        &self,
        name: &str,
        got: &SchemaRef,
        projection: Option<&Vec<usize>>,
    ) -> datafusion::error::Result<()> {
        let want = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let same_types = got.fields().len() == want.fields().len()
            && got
                .fields()
                .iter()
                .zip(want.fields())
                .all(|(a, b)| a.data_type() == b.data_type());
        if !same_types {
            return Err(DataFusionError::Internal(format!(
                "view {name} planned to {got:?}, expected {want:?}"
            )));
        }
        Ok(())
    }
}
