//! One client session: a DataFusion context over the engine's catalog, and the
//! routing of each statement to the catalog, to session commands or to DataFusion.

use std::sync::Arc;

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

use crate::catalog::LambdaCatalog;
use crate::ddl::{self, CatalogStatement};
use crate::engine::Engine;
use crate::error::{QueryError, Result};

/// The PostgreSQL version lambdadb reports (its dialect and catalog follow 15).
pub const SERVER_VERSION: &str = "15.0";

/// What a statement produced.
pub enum Outcome {
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
    Command(String),
    Begin,
    Commit,
    Rollback,
}

/// A statement parsed and classified, ready to describe and execute.
#[derive(Clone)]
pub enum Prepared {
    Catalog(CatalogStatement),
    Command(String),
    Begin,
    Commit,
    Rollback,
    Show(String),
    /// Planned by DataFusion; re-planned at every execution so that system tables
    /// and snapshots are current.
    Query {
        sql: String,
        plan: LogicalPlan,
    },
    Empty,
}

pub struct Session {
    engine: Arc<Engine>,
    ctx: SessionContext,
}

impl Session {
    pub fn new(engine: Arc<Engine>) -> Self {
        let ctx = SessionContext::new_with_config(engine.session_config());
        ctx.register_catalog("lambdadb", Arc::new(LambdaCatalog::new(engine.clone())));
        Self { engine, ctx }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Executes every statement of `sql` in order, stopping at the first error (as
    /// the simple query protocol does).
    pub async fn execute_all(&self, sql: &str) -> Vec<Result<Outcome>> {
        let stmts = match self.prepare_all(sql).await {
            Ok(s) => s,
            Err(e) => return vec![Err(e)],
        };
        let mut out = Vec::with_capacity(stmts.len());
        for p in stmts {
            let r = self.execute(&p, vec![]).await;
            let failed = r.is_err();
            out.push(r);
            if failed {
                break;
            }
        }
        out
    }

    /// Parses and plans every statement of `sql`.
    pub async fn prepare_all(&self, sql: &str) -> Result<Vec<Prepared>> {
        if let Some(refresh) = ddl::parse_refresh(sql) {
            return Ok(vec![Prepared::Catalog(refresh?)]);
        }
        let dialect = PostgreSqlDialect {};
        let stmts = DFParserBuilder::new(sql)
            .with_dialect(&dialect)
            .build()?
            .parse_statements()?;
        let mut out = Vec::with_capacity(stmts.len());
        for s in stmts {
            // Planning the second statement before running the first would see a
            // stale catalog, so only plain queries are planned here.
            out.push(self.classify(s).await?);
        }
        Ok(out)
    }

    /// Parses and plans exactly one statement (extended query protocol).
    pub async fn prepare(&self, sql: &str) -> Result<Prepared> {
        let mut all = self.prepare_all(sql).await?;
        match all.len() {
            0 => Ok(Prepared::Empty),
            1 => Ok(all.remove(0)),
            _ => Err(QueryError::Syntax(
                "cannot insert multiple commands into a prepared statement".into(),
            )),
        }
    }

    async fn classify(&self, stmt: DFStatement) -> Result<Prepared> {
        if let DFStatement::Statement(s) = &stmt {
            if let Some(c) = ddl::classify(s) {
                return Ok(Prepared::Catalog(c?));
            }
            match s.as_ref() {
                Statement::StartTransaction { .. } => return Ok(Prepared::Begin),
                Statement::Commit { .. } => return Ok(Prepared::Commit),
                Statement::Rollback { .. } => return Ok(Prepared::Rollback),
                Statement::Set(_) => return Ok(Prepared::Command("SET".into())),
                Statement::ShowVariable { variable } => {
                    let name = variable
                        .iter()
                        .map(|i| i.value.to_ascii_lowercase())
                        .collect::<Vec<_>>()
                        .join(" ");
                    return Ok(Prepared::Show(name));
                }
                _ => {}
            }
        }
        let sql = stmt.to_string();
        let plan = self.ctx.state().statement_to_plan(stmt).await?;
        verify(&plan)?;
        Ok(Prepared::Query { sql, plan })
    }

    /// Result columns of a prepared statement (empty for commands).
    pub fn result_schema(&self, p: &Prepared) -> SchemaRef {
        match p {
            Prepared::Query { plan, .. } => Arc::new(plan.schema().as_arrow().clone()),
            Prepared::Show(name) => show_schema(name),
            _ => Arc::new(Schema::empty()),
        }
    }

    /// Parameter types of a prepared statement, `$1` first.
    pub fn parameter_types(&self, p: &Prepared) -> Result<Vec<Option<DataType>>> {
        let Prepared::Query { plan, .. } = p else {
            return Ok(vec![]);
        };
        let types = plan.get_parameter_types()?;
        let n = types
            .keys()
            .filter_map(|k| k.trim_start_matches('$').parse::<usize>().ok())
            .max()
            .unwrap_or(0);
        Ok((1..=n)
            .map(|i| types.get(&format!("${i}")).cloned().flatten())
            .collect())
    }

    pub async fn execute(&self, p: &Prepared, params: Vec<ScalarValue>) -> Result<Outcome> {
        match p {
            Prepared::Catalog(c) => Ok(Outcome::Command(self.engine.execute(c.clone()).await?)),
            Prepared::Command(tag) => Ok(Outcome::Command(tag.clone())),
            Prepared::Begin => Ok(Outcome::Begin),
            Prepared::Commit => Ok(Outcome::Commit),
            Prepared::Rollback => Ok(Outcome::Rollback),
            Prepared::Empty => Ok(Outcome::Command(String::new())),
            Prepared::Show(name) => self.show(name),
            Prepared::Query { plan, .. } => {
                let mut plan = plan.clone();
                if !params.is_empty() {
                    plan = plan.with_param_values(ParamValues::from(params))?;
                }
                let df = self.ctx.execute_logical_plan(plan).await?;
                let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                let stream = df.execute_stream().await?;
                Ok(Outcome::Rows { schema, stream })
            }
        }
    }

    /// Re-plans a query from its text (so snapshots and system tables are current).
    pub async fn replan(&self, p: &Prepared) -> Result<Prepared> {
        match p {
            Prepared::Query { sql, .. } => self.prepare(sql).await,
            other => Ok(other.clone()),
        }
    }

    fn show(&self, name: &str) -> Result<Outcome> {
        let value = match name {
            "server_version" => SERVER_VERSION.to_string(),
            "server_encoding" | "client_encoding" => "UTF8".into(),
            "timezone" | "time zone" => "UTC".into(),
            "datestyle" => "ISO, MDY".into(),
            "transaction isolation level" | "transaction_isolation" => "read committed".into(),
            "standard_conforming_strings" => "on".into(),
            "integer_datetimes" => "on".into(),
            "search_path" => "public".into(),
            "max_identifier_length" => "63".into(),
            other => {
                return Err(QueryError::InvalidParameter(format!(
                    "unrecognized configuration parameter \"{other}\""
                )));
            }
        };
        let schema = show_schema(name);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![value]))],
        )
        .map_err(|e| QueryError::Internal(e.to_string()))?;
        let stream =
            RecordBatchStreamAdapter::new(schema.clone(), futures::stream::iter(vec![Ok(batch)]));
        Ok(Outcome::Rows {
            schema,
            stream: Box::pin(stream),
        })
    }
}

fn show_schema(name: &str) -> SchemaRef {
    let col = name.replace(' ', "_");
    Arc::new(Schema::new(vec![Field::new(col, DataType::Utf8, false)]))
}

/// Only queries run through DataFusion: its own DDL and DML would bypass the
/// Kafka log (the single source of truth) or write to the server's filesystem.
fn verify(plan: &LogicalPlan) -> Result<()> {
    let check = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    check.verify_plan(plan).map_err(|e| {
        QueryError::FeatureNotSupported(format!(
            "{}; lambdadb runs queries here, declares source tables with CREATE TABLE ... WITH (topic = ...) and views with CREATE MATERIALIZED VIEW",
            crate::error::classify(&e)
        ))
    })
}
