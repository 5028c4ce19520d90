//! Unified table providers: one table per source and per materialized view, each
//! answering from one snapshot of batch part plus speed part.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use lambdadb_common::Watermark;
use lambdadb_pgcompat::QueryError;

use crate::error::from_view;
use crate::snapshot::SnapshotTable;
use crate::source::SourceState;
use crate::statement::StatementSnapshots;
use crate::view::ViewState;

/// A source table as users see it: the declared columns of every consumed event.
///
/// Text columns are scanned as `Utf8View`: Parquet strings decode into views
/// without copying each value into one contiguous buffer, and DataFusion's
/// string kernels, grouping and comparisons run faster on them (TPC-H Q1 and Q19
/// over our own files took 23% and 55% longer as `Utf8`, bench/RESULTS.md). The
/// speed part, kept as `Utf8`, is cast per scan, which only builds the views.
/// Stored files, view partial states and the declared catalog types stay `Utf8`.
#[derive(Debug)]
pub struct SourceTable {
    source: Arc<SourceState>,
}

impl SourceTable {
    /// The table over `source`; each scan takes a snapshot of its own.
    pub fn new(source: Arc<SourceState>) -> Self {
        Self { source }
    }
}

/// Casts a speed batch to `schema` (the same columns, text as views).
fn to_views(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                arrow::compute::cast(c, f.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[async_trait]
impl TableProvider for SourceTable {
    fn schema(&self) -> SchemaRef {
        self.source.scan_schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let cut = StatementSnapshots::for_scan(state, &self.source);
        let snap = &cut.snapshot;
        let files = self.source.files_from(snap, &Watermark::new());
        let rows = snap
            .speed
            .iter()
            .map(|b| to_views(b, &self.source.scan_physical))
            .collect::<Result<Vec<_>>>()?;
        let table = SnapshotTable::new(self.source.scan_physical.clone(), files, rows);
        // Declared columns come first in the physical schema, so declared indices
        // are physical indices; without a projection, hide the offset columns.
        let all: Vec<usize> = (0..self.source.spec.schema.fields().len()).collect();
        table
            .scan(state, Some(projection.unwrap_or(&all)), filters, limit)
            .await
    }
}

/// A materialized view: its batch version's partial rows merged with the speed
/// layer's folded partial states and those of the events not folded yet.
#[derive(Debug)]
pub struct ViewTable {
    view: Arc<ViewState>,
}

impl ViewTable {
    /// The table over `view`; each scan binds one snapshot of it into the merge plan.
    pub fn new(view: Arc<ViewState>) -> Self {
        Self { view }
    }
}

#[async_trait]
impl TableProvider for ViewTable {
    fn schema(&self) -> SchemaRef {
        self.view.plan.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.view.definition)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // One read of the source's lock: version, folded states and the events
        // above them, cut at the same offsets.
        let cut = StatementSnapshots::for_scan(state, &self.view.source);
        let input = cut
            .views
            .get(&self.view.name)
            .filter(|i| i.speed.owner == self.view.id)
            .cloned()
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "materialized view \"{}\" was dropped",
                    self.view.name
                ))
            })?;
        let external = |e: QueryError| DataFusionError::External(Box::new(e));
        let batch = self
            .view
            .batch_table(input.speed.version.as_deref())
            .map_err(external)?;
        let speed = self
            .view
            .plan
            .parts_table(input.speed.segments.clone())
            .map_err(|e| external(from_view(e)))?;
        let pending = self.view.pending_table(&input);
        // The merge plan with this snapshot's inputs in place of the placeholders.
        let plan = self.view.plan.bind(batch, speed, pending, projection)?;
        let plan = state.create_physical_plan(&plan).await?;
        self.view
            .plan
            .check_output(&self.view.name, &plan.schema(), projection)?;
        Ok(plan)
    }
}
