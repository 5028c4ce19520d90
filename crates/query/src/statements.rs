//! Statement helpers of a session: SHOW's result column, SET's assignment,
//! and the checks that keep writes and file access away from users.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{Expr, Set, Value};

use crate::error::{QueryError, Result};

pub(crate) fn show_schema(name: &str) -> SchemaRef {
    if name.eq_ignore_ascii_case("all") {
        return Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("setting", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, false),
        ]));
    }
    // PostgreSQL names the column after the parameter, in lower case.
    let col = match name.to_ascii_lowercase().as_str() {
        "time zone" => "TimeZone".to_string(),
        "transaction isolation level" => "transaction_isolation".to_string(),
        other => other.replace(' ', "_"),
    };
    Arc::new(Schema::new(vec![Field::new(
        col.to_ascii_lowercase(),
        DataType::Utf8,
        false,
    )]))
}

/// The name and value of a `SET`, in the forms clients send.
pub(crate) fn set_assignment(set: &Set) -> Option<(String, String)> {
    match set {
        Set::SingleAssignment {
            variable, values, ..
        } => {
            let value = values
                .iter()
                .map(|v| match v {
                    Expr::Value(v) => match &v.value {
                        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                        other => other.to_string(),
                    },
                    Expr::Identifier(i) => i.value.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            Some((variable.to_string(), value))
        }
        Set::SetTimeZone { value, .. } => {
            let v = match value {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                },
                other => other.to_string(),
            };
            Some(("TimeZone".into(), v))
        }
        _ => None,
    }
}

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
                crate::error::classify(&e)
            ));
        }
        QueryError::FeatureNotSupported(format!(
            "{}; lambdadb runs queries here, declares source tables with CREATE TABLE ... WITH (topic = ...) and views with CREATE MATERIALIZED VIEW",
            crate::error::classify(&e)
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
) -> Option<crate::session::Prepared> {
    use datafusion::sql::sqlparser::ast::{ObjectType, Statement};
    let name = |n: &datafusion::sql::sqlparser::ast::ObjectName| {
        n.0.last()
            .map(|p| p.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    match stmt {
        Statement::CreateView(v) if !v.materialized => {
            Some(crate::session::Prepared::CreatePlainView {
                name: name(&v.name),
                query: v.query.to_string(),
                or_replace: v.or_replace,
            })
        }
        Statement::Drop {
            object_type: ObjectType::View,
            if_exists,
            names,
            ..
        } => Some(crate::session::Prepared::DropPlainViews {
            names: names.iter().map(name).collect(),
            if_exists: *if_exists,
        }),
        _ => None,
    }
}

/// `SHOW name` and `SHOW ALL` from the session's settings.
pub(crate) fn show(
    vars: &crate::vars::SessionVars,
    name: &str,
) -> crate::error::Result<crate::session::Outcome> {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::record_batch::RecordBatch;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use std::sync::Arc;

    use crate::error::QueryError;
    use crate::session::Outcome;
    let schema = show_schema(name);
    let columns: Vec<ArrayRef> = if name.eq_ignore_ascii_case("all") {
        let all = vars.all();
        vec![
            Arc::new(StringArray::from(
                all.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                all.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                all.iter().map(|r| r.2.clone()).collect::<Vec<_>>(),
            )),
        ]
    } else {
        vec![Arc::new(StringArray::from(vec![vars.get(name)?]))]
    };
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    let stream =
        RecordBatchStreamAdapter::new(schema.clone(), futures::stream::iter(vec![Ok(batch)]));
    Ok(Outcome::Rows {
        schema,
        stream: Box::pin(stream),
    })
}
