//! Unified table providers: one table per source and per materialized view, each
//! answering from one snapshot of batch part plus speed part.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::MemTable;
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use lambdadb_batch::files_table;
use lambdadb_common::Watermark;

use crate::decompose::{BATCH_PARTS, SPEED_PARTS};
use crate::source::SourceState;
use crate::view::ViewState;

/// Archive files plus in-memory rows, all in one physical schema: the union the
/// seam guarantees to be every event once.
#[derive(Debug)]
pub struct SnapshotTable {
    schema: SchemaRef,
    files: Vec<PathBuf>,
    rows: Vec<RecordBatch>,
}

impl SnapshotTable {
    pub fn new(schema: SchemaRef, files: Vec<PathBuf>, rows: Vec<RecordBatch>) -> Self {
        Self {
            schema,
            files,
            rows,
        }
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Parquet uses them to prune; they are applied again above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut inputs = Vec::with_capacity(2);
        if !self.files.is_empty() {
            let t = files_table(self.schema.clone(), &self.files)?;
            inputs.push(t.scan(state, projection, filters, limit).await?);
        }
        if !self.rows.is_empty() || inputs.is_empty() {
            let mem = MemTable::try_new(self.schema.clone(), vec![self.rows.clone()])?;
            inputs.push(mem.scan(state, projection, filters, limit).await?);
        }
        UnionExec::try_new(inputs)
    }
}

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
    pub fn new(source: Arc<SourceState>) -> Self {
        Self { source }
    }
}

/// `schema` with every `Utf8` field as `Utf8View`.
pub(crate) fn string_views(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
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
        let snap = self.source.snapshot();
        let files = self.source.files_from(&snap, &Watermark::new());
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
    pub fn new(view: Arc<ViewState>) -> Self {
        Self { view }
    }
}

#[async_trait]
impl TableProvider for ViewTable {
    fn schema(&self) -> SchemaRef {
        self.view.schema.clone()
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
        let input = self
            .view
            .source
            .view_input(&self.view.name)
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "materialized view \"{}\" was dropped",
                    self.view.name
                ))
            })?;
        let external = |e: crate::error::QueryError| DataFusionError::External(Box::new(e));
        let batch = self
            .view
            .batch_table(input.speed.version.as_deref())
            .map_err(external)?;
        let speed = self
            .view
            .speed_table(&input.speed.segments)
            .map_err(external)?;
        let pending = self.view.pending_table(&input);
        let source_name = self.view.decomposition.source.as_str();
        let inputs = [
            (BATCH_PARTS, batch),
            (SPEED_PARTS, speed),
            (source_name, pending),
        ];
        // The merge plan with this snapshot's inputs in place of the placeholders.
        let mut plan = self
            .view
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
                .map(|i| datafusion::prelude::ident(self.view.schema.field(*i).name()))
                .collect();
            plan = LogicalPlanBuilder::from(plan).project(cols)?.build()?;
        }
        let plan = state.create_physical_plan(&plan).await?;
        let want = match projection {
            Some(p) => Arc::new(self.view.schema.project(p)?),
            None => self.view.schema.clone(),
        };
        let got = plan.schema();
        let same_types = got.fields().len() == want.fields().len()
            && got
                .fields()
                .iter()
                .zip(want.fields())
                .all(|(a, b)| a.data_type() == b.data_type());
        if !same_types {
            return Err(DataFusionError::Internal(format!(
                "view {} planned to {got:?}, expected {want:?}",
                self.view.name
            )));
        }
        Ok(plan)
    }
}
