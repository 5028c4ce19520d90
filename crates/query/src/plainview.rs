//! Plain views (`CREATE [OR REPLACE] VIEW name AS query`, `DROP VIEW`): the
//! query is kept as text and planned again at every use, against the live
//! catalog, as PostgreSQL expands a view into the query that reads it. Unlike
//! materialized views they store nothing; reading one costs the query it holds.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::LambdaCatalog;
use crate::engine::Engine;

/// A view's definition: its query and the columns it had when declared.
#[derive(Debug, Clone)]
pub struct PlainViewDef {
    pub sql: String,
    pub schema: SchemaRef,
}

pub struct PlainViewTable {
    engine: Arc<Engine>,
    def: PlainViewDef,
}

impl std::fmt::Debug for PlainViewTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlainViewTable({})", self.def.sql)
    }
}

impl PlainViewTable {
    pub fn new(engine: Arc<Engine>, def: PlainViewDef) -> Self {
        Self { engine, def }
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
        let ctx = crate::pgtyping::scan_context(state);
        ctx.register_catalog(
            "lambdadb",
            Arc::new(LambdaCatalog::new(self.engine.clone())),
        );
        let df = ctx.sql(&self.def.sql).await?;
        df.into_view().scan(state, projection, filters, limit).await
    }
}

/// `CREATE [OR REPLACE] VIEW name AS query`: the query is planned once in the
/// declaring session to check it and learn its columns.
pub async fn create(
    engine: &Engine,
    ctx: &datafusion::prelude::SessionContext,
    name: &str,
    query: &str,
    or_replace: bool,
) -> crate::error::Result<()> {
    let df = ctx.sql(query).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    engine.define_plain_view(
        name,
        PlainViewDef {
            sql: query.to_string(),
            schema,
        },
        or_replace,
    )
}

/// `DROP VIEW [IF EXISTS] names`.
pub fn drop(engine: &Engine, names: &[String], if_exists: bool) -> crate::error::Result<()> {
    use crate::error::QueryError;
    for name in names {
        if engine.drop_plain_view(name) {
            continue;
        }
        if engine.view(name).is_some() {
            return Err(QueryError::WrongObjectType(format!(
                "\"{name}\" is a materialized view; use DROP MATERIALIZED VIEW"
            )));
        }
        if !if_exists {
            return Err(QueryError::UndefinedTable(format!(
                "view \"{name}\" does not exist"
            )));
        }
    }
    Ok(())
}
