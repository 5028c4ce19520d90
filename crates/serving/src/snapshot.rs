//! Archive files plus in-memory rows as one table: the union the seam
//! guarantees to be every event once, read by source tables and by the view
//! queries over the events not folded yet.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use lambdadb_batch::{TableFile, files_table};

/// Archive files plus in-memory rows, all in one physical schema: the union the
/// seam guarantees to be every event once.
#[derive(Debug)]
pub struct SnapshotTable {
    schema: SchemaRef,
    files: Vec<TableFile>,
    rows: Vec<RecordBatch>,
}

impl SnapshotTable {
    /// The archive `files` plus the in-memory `rows`, all in physical schema `schema`.
    pub fn new(schema: SchemaRef, files: Vec<TableFile>, rows: Vec<RecordBatch>) -> Self {
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
            let t = files_table(self.schema.clone(), self.files.clone())?;
            inputs.push(t.scan(state, projection, filters, limit).await?);
        }
        if !self.rows.is_empty() || inputs.is_empty() {
            let mem = MemTable::try_new(self.schema.clone(), vec![self.rows.clone()])?;
            inputs.push(mem.scan(state, projection, filters, limit).await?);
        }
        UnionExec::try_new(inputs)
    }
}

/// `schema` with every `Utf8` field as `Utf8View`.
pub fn string_views(schema: &Schema) -> SchemaRef {
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
