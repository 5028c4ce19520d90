//! PostgreSQL compatibility of a session: the `pg_catalog` schema (from
//! `datafusion-pg-catalog`, with `pg_settings` replaced by the session's live
//! parameters) and the functions clients call before they run anything else.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility};
use datafusion::prelude::{SessionContext, create_udf};
use datafusion::scalar::ScalarValue;
use datafusion_pg_catalog::pg_catalog::PgCatalogSchemaProvider;

use crate::pgshared::{PgShared, Roles};
use crate::vars::SessionVars;

/// `version()`: PostgreSQL's format, which clients parse, naming lambdadb.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {} on x86_64-pc-linux-gnu, compiled by rustc, 64-bit",
        crate::vars::SERVER_VERSION
    )
}

/// Installs `pg_catalog` into catalog `lambdadb` and the session functions,
/// sharing the decoded catalog tables and setup's functions of `shared`.
pub fn install(
    ctx: &SessionContext,
    shared: &PgShared,
    vars: &SessionVars,
    users: Vec<String>,
) -> Result<()> {
    let owner = users.first().cloned().unwrap_or_else(|| "lambdadb".into());
    shared.register_functions(ctx);
    let catalog = ctx
        .catalog("lambdadb")
        .ok_or_else(|| DataFusionError::Internal("catalog lambdadb missing".into()))?;
    let inner = Arc::new(PgCatalogSchemaProvider::try_new(
        ctx.state().catalog_list().clone(),
        shared.static_tables.clone(),
        Roles { users },
    )?);
    catalog.register_schema(
        "pg_catalog",
        Arc::new(PgCatalogOverlay {
            inner,
            vars: vars.clone(),
        }),
    )?;
    ctx.register_udf(version_udf());
    ctx.register_udf(current_setting_udf(vars.clone()));
    ctx.register_udf(set_config_udf(vars.clone()));
    ctx.register_udf(pg_size_pretty_udf());
    ctx.register_udf(to_regtype_udf());
    ctx.register_udf(crate::pgfuncs::PgExpandArray::udf());
    ctx.register_udf(crate::pgfuncs::format_udf());
    // Every relation, schema and database is owned by the configured default
    // user (datafusion-pg-catalog's static rows say "postgres").
    ctx.register_udf(crate::pgfuncs::constant(
        "pg_get_userbyid",
        ScalarValue::Utf8(Some(owner)),
    ));
    ctx.register_udf(crate::pgfuncs::constant(
        "pg_encoding_to_char",
        ScalarValue::Utf8(Some("UTF8".into())),
    ));
    // The session's user (datafusion-pg-catalog's answers "postgres").
    for name in ["session_user", "current_user", "current_role"] {
        ctx.register_udf(session_user_udf(name, vars.clone()));
    }
    for name in [
        "pg_function_is_visible",
        "pg_type_is_visible",
        "pg_opclass_is_visible",
        "pg_collation_is_visible",
    ] {
        ctx.register_udf(crate::pgfuncs::constant(
            name,
            ScalarValue::Boolean(Some(true)),
        ));
    }
    // Sizes psql's \dt+ and \d+ show: the data lives outside PostgreSQL's storage.
    for name in ["pg_table_size", "pg_indexes_size"] {
        ctx.register_udf(crate::pgfuncs::constant(name, ScalarValue::Int64(Some(0))));
    }
    // psql's \df: lambdadb has no user-defined functions to describe; and no
    // comments yet, so descriptions are NULL as in PostgreSQL without COMMENT ON.
    // No index or constraint exists, so there is no definition to show either.
    for name in [
        "pg_get_function_result",
        "pg_get_function_arguments",
        "pg_get_function_identity_arguments",
        "obj_description",
        "col_description",
        "shobj_description",
        "pg_get_indexdef",
        "pg_get_constraintdef",
    ] {
        ctx.register_udf(crate::pgfuncs::null_text(name));
    }
    Ok(())
}

/// PostgreSQL's `pg_size_pretty(bigint)`: bytes below 10 kB, then kB, MB, GB, TB
/// rounded half up, as PostgreSQL prints them.
pub fn size_pretty(size: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    const LIMIT2: i64 = LIMIT * 2 - 1;
    if size.abs() < LIMIT {
        return format!("{size} bytes");
    }
    let mut half = size >> 9; // half-kilobytes
    for unit in ["kB", "MB", "GB", "TB"] {
        if half.abs() < LIMIT2 || unit == "TB" {
            return format!("{} {unit}", (half + 1) / 2);
        }
        half >>= 10;
    }
    unreachable!()
}

fn pg_size_pretty_udf() -> ScalarUDF {
    create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arr = arrow::compute::cast(&args[0].to_array(1)?, &DataType::Int64)?;
            let out: StringArray = arr
                .as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .map(|v| v.map(size_pretty))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    )
}

/// OIDs of the built-in types lambdadb sends.
fn type_oid(name: &str) -> Option<i32> {
    let n = name
        .trim()
        .trim_start_matches("pg_catalog.")
        .to_ascii_lowercase();
    Some(match n.as_str() {
        "bool" | "boolean" => 16,
        "bytea" => 17,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "integer" | "int" => 23,
        "text" => 25,
        "json" => 114,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "varchar" | "character varying" => 1043,
        "date" => 1082,
        "timestamp" | "timestamp without time zone" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "numeric" => 1700,
        _ => return None,
    })
}

/// `to_regtype(text)`: the type's OID, or NULL when there is no such type
/// (drivers probe for extension types such as hstore this way).
fn to_regtype_udf() -> ScalarUDF {
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let names = strings(args, 0)?;
            let out: arrow::array::Int32Array = names
                .iter()
                .map(|n| n.as_deref().and_then(type_oid))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    )
}

fn session_user_udf(name: &str, vars: SessionVars) -> ScalarUDF {
    create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                vars.get("session_authorization").ok(),
            )))
        }),
    )
}

fn version_udf() -> ScalarUDF {
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                version_string(),
            ))))
        }),
    )
}

fn strings(args: &[ColumnarValue], i: usize) -> Result<Vec<Option<String>>> {
    let arr = args[i].to_array(1)?;
    let arr = arrow::compute::cast(&arr, &DataType::Utf8)?;
    Ok(arr
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect())
}

fn current_setting_udf(vars: SessionVars) -> ScalarUDF {
    create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let names = strings(args, 0)?;
            let out: Vec<Option<String>> = names
                .iter()
                .map(|n| n.as_ref().map(|n| vars.get(n)).transpose())
                .collect::<crate::error::Result<_>>()
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            Ok(ColumnarValue::Array(
                Arc::new(StringArray::from(out)) as ArrayRef
            ))
        }),
    )
}

fn set_config_udf(vars: SessionVars) -> ScalarUDF {
    create_udf(
        "set_config",
        vec![DataType::Utf8, DataType::Utf8, DataType::Boolean],
        DataType::Utf8,
        Volatility::Volatile,
        Arc::new(move |args: &[ColumnarValue]| {
            let names = strings(args, 0)?;
            let values = strings(args, 1)?;
            let mut out = Vec::with_capacity(names.len());
            for (n, v) in names.iter().zip(values.iter()) {
                match (n, v) {
                    (Some(n), Some(v)) => {
                        vars.set(n, v)
                            .map_err(|e| DataFusionError::External(Box::new(e)))?;
                        out.push(Some(
                            vars.get(n)
                                .map_err(|e| DataFusionError::External(Box::new(e)))?,
                        ));
                    }
                    _ => out.push(None),
                }
            }
            Ok(ColumnarValue::Array(
                Arc::new(StringArray::from(out)) as ArrayRef
            ))
        }),
    )
}

/// `pg_catalog` with `pg_settings` answering from the session's parameters.
#[derive(Debug)]
struct PgCatalogOverlay {
    inner: Arc<dyn SchemaProvider>,
    vars: SessionVars,
}

#[async_trait]
impl SchemaProvider for PgCatalogOverlay {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if name == "pg_settings" {
            return Ok(Some(settings_table(&self.vars)?));
        }
        let inner = self.inner.table(name).await?;
        if name == "pg_class"
            && let Some(t) = &inner
        {
            return Ok(Some(crate::pgfuncs::with_reloptions(t.clone())?));
        }
        if let Some(t) = &inner
            && let Some(empty) = crate::pgfuncs::without_keys(name, &t.schema())
        {
            return Ok(Some(empty?));
        }
        Ok(inner)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// (name, value, description)
type Setting = (String, String, String);

fn settings_table(vars: &SessionVars) -> Result<Arc<dyn TableProvider>> {
    let rows = vars.all();
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("setting", DataType::Utf8, true),
        Field::new("unit", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("short_desc", DataType::Utf8, true),
        Field::new("context", DataType::Utf8, true),
        Field::new("vartype", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, true),
        Field::new("reset_val", DataType::Utf8, true),
    ]));
    let col = |f: &dyn Fn(&Setting) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            col(&|r| Some(r.0.clone())),
            col(&|r| Some(r.1.clone())),
            col(&|r| (r.0.ends_with("timeout")).then(|| "ms".to_string())),
            col(&|_| Some("Client Connection Defaults".into())),
            col(&|r| Some(r.2.clone())),
            col(&|_| Some("user".into())),
            col(&|_| Some("string".into())),
            col(&|_| Some("default".into())),
            col(&|r| Some(r.1.clone())),
        ],
    )?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn size_pretty_matches_postgres() {
        assert_eq!(super::size_pretty(123), "123 bytes");
        assert_eq!(super::size_pretty(10240), "10 kB");
        assert_eq!(super::size_pretty(20 * 1024 * 1024), "20 MB");
    }
}
