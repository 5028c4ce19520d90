//! Statement helpers of a session: SHOW's rows, plain view statements, and the
//! checks that keep writes and file access away from users.

use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use lambdadb_pgcompat::error::classify;
use lambdadb_pgcompat::naming::object_name;
use lambdadb_pgcompat::vars::SessionVars;
use lambdadb_pgcompat::{QueryError, Result};

use super::prepared::{Outcome, Prepared};

/// Only queries run through DataFusion: its own DDL and DML would bypass the
/// Kafka log (the single source of truth) or write to the server's filesystem.
/// The check is on the plan, so no spelling of a write gets through; a
/// read-only user is told it lacks the privilege (42501), an admin that the
/// statement is not supported (0A000).
pub(crate) fn verify(plan: &LogicalPlan, admin: bool) -> Result<()> {
    let check = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    check.verify_plan(plan).map_err(|e| {
        if !admin {
            return QueryError::InsufficientPrivilege(format!(
                "permission denied: this user is read-only and may only run queries ({})",
                classify(&e)
            ));
        }
        QueryError::FeatureNotSupported(format!(
            "{}; lambdadb runs queries here, declares source tables with CREATE TABLE ... WITH (topic = ...) and views with CREATE MATERIALIZED VIEW",
            classify(&e)
        ))
    })
}

/// `CREATE [UNBOUNDED] EXTERNAL TABLE` (DataFusion's way to read files) is not
/// PostgreSQL syntax, so it never plans; it is answered here instead of as a
/// syntax error.
pub(crate) fn external_table(sql: &str, admin: bool) -> Option<QueryError> {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(6)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let external = words.first().is_some_and(|w| w == "CREATE")
        && words.iter().take(5).any(|w| w == "EXTERNAL");
    external.then(|| {
        if admin {
            QueryError::FeatureNotSupported(
                "external tables are not supported: lambdadb does not read the server's files; declare source tables with CREATE TABLE ... WITH (topic = ...)".into(),
            )
        } else {
            QueryError::InsufficientPrivilege(
                "permission denied: this user is read-only, and external tables would read the server's files".into(),
            )
        }
    })
}

/// `CREATE [OR REPLACE] VIEW` (not materialized) and `DROP VIEW`.
pub(crate) fn plain_view_statement(
    stmt: &datafusion::sql::sqlparser::ast::Statement,
) -> Option<Prepared> {
    use datafusion::sql::sqlparser::ast::{ObjectType, Statement};
    match stmt {
        Statement::CreateView(v) if !v.materialized => Some(Prepared::CreatePlainView {
            name: object_name(&v.name),
            query: v.query.to_string(),
            or_replace: v.or_replace,
        }),
        Statement::Drop {
            object_type: ObjectType::View,
            if_exists,
            names,
            ..
        } => Some(Prepared::DropPlainViews {
            names: names.iter().map(object_name).collect(),
            if_exists: *if_exists,
        }),
        _ => None,
    }
}

/// `SHOW name` and `SHOW ALL` from the session's settings.
pub(crate) fn show(vars: &SessionVars, name: &str) -> Result<Outcome> {
    let batch = lambdadb_pgcompat::setshow::show(vars, name)?;
    let schema = batch.schema();
    let stream =
        RecordBatchStreamAdapter::new(schema.clone(), futures::stream::iter(vec![Ok(batch)]));
    Ok(Outcome::Rows {
        schema,
        stream: Box::pin(stream),
    })
}
