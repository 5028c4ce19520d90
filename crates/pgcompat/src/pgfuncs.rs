//! Catalog functions drivers call that DataFusion and datafusion-pg-catalog lack.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, StructArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `information_schema._pg_expandarray(anyarray)`, which pgJDBC's
/// `getPrimaryKeys` and `getIndexInfo` use on `pg_index.indkey` as
/// `(_pg_expandarray(k)).n`. In PostgreSQL it returns one `(x, n)` row per
/// element. Here it is a scalar giving the first element as `(x, 1)`: DataFusion
/// has no set-returning functions in a select list, and lambdadb has no indexes,
/// so the only rows it meets are PostgreSQL's own catalog indexes in the static
/// `pg_index`, which those queries filter out by table.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgExpandArray {
    signature: Signature,
}

impl PgExpandArray {
    /// The function, to register in a session context.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            signature: Signature::any(1, Volatility::Immutable),
        })
    }

    fn fields() -> Fields {
        Fields::from(vec![
            Field::new("x", DataType::Int32, true),
            Field::new("n", DataType::Int32, true),
        ])
    }
}

impl ScalarUDFImpl for PgExpandArray {
    fn name(&self) -> &str {
        "_pg_expandarray"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(Self::fields()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arr = args.args[0].to_array(args.number_rows)?;
        let first: Vec<Option<i32>> = match arr.data_type() {
            DataType::List(_) => {
                let list = arr.as_list::<i32>();
                (0..list.len())
                    .map(|i| -> Result<Option<i32>> {
                        if list.is_null(i) || list.value(i).is_empty() {
                            return Ok(None);
                        }
                        let v = cast(&list.value(i).slice(0, 1), &DataType::Int32)?;
                        let v = v.as_primitive::<arrow::datatypes::Int32Type>();
                        Ok(v.is_valid(0).then(|| v.value(0)))
                    })
                    .collect::<Result<_>>()?
            }
            _ => {
                let v = cast(&arr, &DataType::Int32)?;
                v.as_primitive::<arrow::datatypes::Int32Type>()
                    .iter()
                    .collect()
            }
        };
        let n: Int32Array = first.iter().map(|x| x.map(|_| 1)).collect();
        let x: Int32Array = first.into_iter().collect();
        let out = StructArray::try_new(
            Self::fields(),
            vec![Arc::new(x) as ArrayRef, Arc::new(n) as ArrayRef],
            None,
        )?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `pg_constraint` and `pg_index` with their key columns typed as PostgreSQL's
/// arrays (the static tables from datafusion-pg-catalog hold them as text, so
/// pgJDBC's `getImportedKeys` and `getIndexInfo`, which index `con.conkey[n]` and
/// `i.indoption[n]`, cannot plan) and no rows: lambdadb tables have no keys,
/// constraints or indexes, and the static rows describe PostgreSQL's own
/// catalogs, which lambdadb does not have.
pub fn without_keys(table: &str, schema: &SchemaRef) -> Option<Result<Arc<dyn TableProvider>>> {
    let arrays: &[(&str, DataType)] = match table {
        "pg_constraint" => &[
            ("conkey", DataType::Int16),
            ("confkey", DataType::Int16),
            ("conpfeqop", DataType::Int32),
            ("conppeqop", DataType::Int32),
            ("conffeqop", DataType::Int32),
            ("conexclop", DataType::Int32),
            ("confdelsetcols", DataType::Int16),
        ],
        "pg_index" => &[
            ("indkey", DataType::Int16),
            ("indcollation", DataType::Int32),
            ("indclass", DataType::Int32),
            ("indoption", DataType::Int16),
        ],
        _ => return None,
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match arrays.iter().find(|(n, _)| n == f.name()) {
            Some((_, elem)) => Field::new(
                f.name(),
                DataType::List(Arc::new(Field::new("item", elem.clone(), true))),
                true,
            ),
            None => f.as_ref().clone(),
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    Some(MemTable::try_new(schema, vec![vec![]]).map(|t| Arc::new(t) as Arc<dyn TableProvider>))
}

/// `pg_class` with `reloptions` (`text[]`, always NULL: lambdadb relations have
/// no storage options), which psql's `\d+` reads and datafusion-pg-catalog
/// leaves out.
pub fn with_reloptions(inner: Arc<dyn TableProvider>) -> Result<Arc<dyn TableProvider>> {
    use datafusion::datasource::{ViewTable, provider_as_source};
    use datafusion::logical_expr::{LogicalPlanBuilder, cast, lit};
    use datafusion::prelude::ident;
    let mut exprs: Vec<datafusion::logical_expr::Expr> = inner
        .schema()
        .fields()
        .iter()
        .map(|f| ident(f.name()))
        .collect();
    let text_array = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    exprs.push(cast(lit(ScalarValue::Null), text_array).alias("reloptions"));
    let plan = LogicalPlanBuilder::scan("pg_class", provider_as_source(inner), None)?
        .project(exprs)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// A text function of any arguments that answers NULL.
pub fn null_text(name: &str) -> ScalarUDF {
    constant(name, ScalarValue::Utf8(None))
}

/// A function of any arguments (or none) that answers `value`.
pub fn constant(name: &str, value: ScalarValue) -> ScalarUDF {
    ScalarUDF::new_from_impl(Constant {
        name: name.to_string(),
        signature: Signature::one_of(
            vec![
                datafusion::logical_expr::TypeSignature::Nullary,
                datafusion::logical_expr::TypeSignature::VariadicAny,
            ],
            Volatility::Stable,
        ),
        value,
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Constant {
    name: String,
    signature: Signature,
    value: ScalarValue,
}

impl ScalarUDFImpl for Constant {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.value.data_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

/// PostgreSQL's `format(fmt, args...)` with `%s` (text, NULL as empty), `%I`
/// (identifier, quoted when needed), `%L` (literal, NULL as `NULL`) and `%%`;
/// Metabase builds type names and `regclass` inputs with it.
pub fn format_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Format {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    signature: Signature,
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let cols = args
            .args
            .iter()
            .map(|a| Ok(cast(&a.to_array(n)?, &DataType::Utf8)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let texts: Vec<&arrow::array::StringArray> =
            cols.iter().map(|c| c.as_string::<i32>()).collect();
        let out: arrow::array::StringArray = (0..n)
            .map(|row| {
                let fmt = texts.first().filter(|f| f.is_valid(row))?.value(row);
                let arg = |i: usize| {
                    texts
                        .get(i)
                        .filter(|a| a.is_valid(row))
                        .map(|a| a.value(row))
                };
                Some(format_one(fmt, arg))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

fn format_one<'a>(fmt: &str, arg: impl Fn(usize) -> Option<&'a str>) -> String {
    let mut out = String::new();
    let mut next = 1;
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('s') => {
                out.push_str(arg(next).unwrap_or(""));
                next += 1;
            }
            Some('I') => {
                out.push_str(&crate::naming::quote_ident(arg(next).unwrap_or("")));
                next += 1;
            }
            Some('L') => {
                match arg(next) {
                    Some(v) => out.push_str(&format!("'{}'", v.replace('\'', "''"))),
                    None => out.push_str("NULL"),
                }
                next += 1;
            }
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_like_postgres() {
        let args = ["public", "My Table", "it's"];
        let arg = |i: usize| args.get(i - 1).copied();
        assert_eq!(format_one("%I.%I", arg), "public.\"My Table\"");
        assert_eq!(
            format_one("%s|%L|100%%", |i| [Some("a"), Some("it's")][i - 1]),
            "a|'it''s'|100%"
        );
        assert_eq!(format_one("\"%s\".\"%s\"", arg), "\"public\".\"My Table\"");
    }
}
