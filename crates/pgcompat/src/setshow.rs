//! `SET` and `SHOW` as PostgreSQL words them: the assignment a `SET` makes, and
//! the rows and column name of `SHOW name` / `SHOW ALL`.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast::{Expr, Set, SetSessionAuthorizationParamKind, Value};

use crate::error::{QueryError, Result};
use crate::vars::SessionVars;

/// The result column(s) of `SHOW name`.
pub fn show_schema(name: &str) -> SchemaRef {
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
pub fn set_assignment(set: &Set) -> Option<(String, String)> {
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
        Set::SetSessionAuthorization(param) => Some((
            "session_authorization".into(),
            match &param.kind {
                SetSessionAuthorizationParamKind::Default => "default".into(),
                SetSessionAuthorizationParamKind::User(name) => name.value.clone(),
            },
        )),
        Set::SetRole { role_name, .. } => Some((
            "role".into(),
            role_name
                .as_ref()
                .map(|r| r.value.clone())
                .unwrap_or_else(|| "none".into()),
        )),
        _ => None,
    }
}

/// The rows of `SHOW name` and `SHOW ALL` from the session's settings.
pub fn show(vars: &SessionVars, name: &str) -> Result<RecordBatch> {
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
    RecordBatch::try_new(schema, columns).map_err(|e| QueryError::Internal(e.to_string()))
}
