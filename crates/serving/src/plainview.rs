//! Plain views (`CREATE [OR REPLACE] VIEW name AS query`, `DROP VIEW`): the
//! query is kept as text and planned again at every use, against the live
//! catalog, as PostgreSQL expands a view into the query that reads it. Unlike
//! materialized views they store nothing; reading one costs the query it holds.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, Session, TableProvider};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

/// A view's definition: its query and the columns it had when declared.
#[derive(Debug, Clone)]
pub struct PlainViewDef {
    /// The view's query, planned again at every use.
    pub sql: String,
    /// The columns the query had when the view was declared.
    pub schema: SchemaRef,
}

/// A plain view as a table: its query expanded over the live catalog when scanned.
pub struct PlainViewTable {
    def: PlainViewDef,
    /// The catalog the view's query is planned over (the live source tables
    /// and views, snapshotted when scanned).
    catalog: Arc<dyn CatalogProvider>,
}

impl std::fmt::Debug for PlainViewTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlainViewTable({})", self.def.sql)
    }
}

impl PlainViewTable {
    /// The view `def`, to be planned over `catalog` when scanned.
    pub fn new(def: PlainViewDef, catalog: Arc<dyn CatalogProvider>) -> Self {
        Self { def, catalog }
    }
}

#[async_trait]
impl TableProvider for PlainViewTable {
    fn schema(&self) -> SchemaRef {
        self.def.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.def.sql)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Planned over a catalog of its own (the view's tables, snapshotted
        // when scanned).
        let ctx = crate::context::scan_context(state);
        ctx.register_catalog("lambdadb", self.catalog.clone());
        let df = ctx.sql(&self.def.sql).await?;
        df.into_view().scan(state, projection, filters, limit).await
    }
}
