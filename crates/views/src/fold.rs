//! The speed layer's fold of a view: partial states of the events above its batch
//! version, kept as segments. A fold computes the partial states of the new events
//! only (cost proportional to them) and appends them as one more segment; when
//! there are more than [`COMPACT_AT`] segments it combines them into one (cost
//! proportional to the view's groups).

use std::sync::Arc;

use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::prelude::SessionContext;

use crate::decompose::SPEED_PARTS;
use crate::error::{Result, ViewError};
use crate::plan::ViewPlan;

/// Segments kept before they are combined into one.
pub const COMPACT_AT: usize = 8;

/// Runs a view's partial-state queries in a context kept for the purpose:
/// building one per fold cost more than folding a few hundred events. One fold
/// at a time: callers serialize them (the serving layer holds the source's fold
/// lock), because inputs are registered in the shared context by name.
pub struct Folder {
    ctx: SessionContext,
}

impl Folder {
    /// `ctx` must know the functions the view was planned with (see
    /// [`ViewPlan::try_new`]).
    pub fn new(ctx: SessionContext) -> Self {
        Self { ctx }
    }

    /// Runs `sql` with `tables` registered (and released afterwards) and
    /// conforms the result to the partial schema.
    async fn partial_rows(
        &self,
        plan: &ViewPlan,
        sql: &str,
        tables: Vec<(&str, Arc<dyn TableProvider>)>,
    ) -> Result<Vec<RecordBatch>> {
        let ctx = &self.ctx;
        let names: Vec<&str> = tables.iter().map(|(n, _)| *n).collect();
        for (name, t) in tables {
            ctx.deregister_table(name)?;
            ctx.register_table(name, t)?;
        }
        let result = async { ctx.sql(sql).await?.collect().await }.await;
        for name in names {
            ctx.deregister_table(name)?;
        }
        let batches = result?;
        batches
            .into_iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| conform(&b, &plan.partial_schema))
            .collect()
    }

    /// `segments` followed by the partial states of `pending` (the events not
    /// folded yet, read as the view's source table), combined into one segment
    /// when there are more than [`COMPACT_AT`].
    pub async fn fold(
        &self,
        plan: &ViewPlan,
        segments: &[RecordBatch],
        pending: Arc<dyn TableProvider>,
    ) -> Result<Vec<RecordBatch>> {
        let d = &plan.decomposition;
        let new = self
            .partial_rows(plan, &d.partial_sql, vec![(d.source.as_str(), pending)])
            .await?;
        let mut segments = segments.to_vec();
        segments.extend(new);
        if segments.len() > COMPACT_AT {
            let parts = plan.parts_table(segments)?;
            segments = self
                .partial_rows(plan, &d.combine_sql, vec![(SPEED_PARTS, parts)])
                .await?;
        }
        Ok(segments)
    }
}

/// Casts `batch` to `schema` (same columns in the same order): combining partial
/// states can widen a type (a sum of sums), and the segments must keep one schema.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ViewError::Internal(format!("partial state does not conform: {e}")))?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| ViewError::Internal(format!("partial state does not conform: {e}")))
}
