//! `information_schema` as PostgreSQL presents it, over the session's catalog.
//! DataFusion's own information_schema reports Arrow types (`Timestamp(µs,
//! "UTC")`) and 0-based positions; BI tools (Grafana's column list, Metabase's
//! field sync, SQLAlchemy) read `data_type`, `udt_name` and `ordinal_position`
//! and expect PostgreSQL's values.
//!
//! Decision: materialized views are listed as `VIEW` here (PostgreSQL leaves
//! them out of `information_schema`), so tools that only read
//! `information_schema` can find the views dashboards are meant to use.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::logical_expr::TableType;

use crate::pgtype::{NAME_OID, VARCHAR_OID, pg_type_of, precision, text_field};

/// The schema's name, as clients qualify its tables (`information_schema.tables`).
pub const SCHEMA: &str = "information_schema";
const TABLES: [&str; 6] = [
    "schemata",
    "tables",
    "columns",
    "views",
    "table_constraints",
    "key_column_usage",
];

/// A snapshot of the other schemas of the catalog, taken when the schema is
/// looked up (once per statement).
pub struct InfoSchema {
    catalog: String,
    schemas: Vec<(String, Arc<dyn SchemaProvider>)>,
}

impl std::fmt::Debug for InfoSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InfoSchema")
    }
}

impl InfoSchema {
    /// `information_schema` of catalog `catalog`, describing the relations of `schemas`.
    pub fn new(catalog: &str, schemas: Vec<(String, Arc<dyn SchemaProvider>)>) -> Self {
        Self {
            catalog: catalog.to_string(),
            schemas,
        }
    }

    /// Every relation: (schema, name, type, definition, columns).
    async fn relations(&self) -> Result<Vec<Relation>> {
        let mut out = Vec::new();
        for (schema, provider) in &self.schemas {
            let mut names = provider.table_names();
            names.sort();
            for name in names {
                if let Some(t) = provider.table(&name).await? {
                    out.push(Relation {
                        schema: schema.clone(),
                        name,
                        kind: t.table_type(),
                        definition: t.get_table_definition().map(str::to_string),
                        columns: t.schema(),
                    });
                }
            }
        }
        for name in TABLES {
            out.push(Relation {
                schema: SCHEMA.into(),
                name: name.into(),
                kind: TableType::View,
                definition: None,
                columns: table_schema(name),
            });
        }
        Ok(out)
    }
}

struct Relation {
    schema: String,
    name: String,
    kind: TableType,
    definition: Option<String>,
    columns: SchemaRef,
}

fn ident(name: &str) -> Field {
    text_field(name, NAME_OID, true)
}

fn chars(name: &str) -> Field {
    text_field(name, VARCHAR_OID, true)
}

fn cardinal(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

fn table_schema(name: &str) -> SchemaRef {
    let fields = match name {
        "schemata" => vec![
            ident("catalog_name"),
            ident("schema_name"),
            ident("schema_owner"),
            ident("default_character_set_catalog"),
            ident("default_character_set_schema"),
            ident("default_character_set_name"),
            chars("sql_path"),
        ],
        "tables" => vec![
            ident("table_catalog"),
            ident("table_schema"),
            ident("table_name"),
            chars("table_type"),
            ident("self_referencing_column_name"),
            chars("reference_generation"),
            ident("user_defined_type_catalog"),
            ident("user_defined_type_schema"),
            ident("user_defined_type_name"),
            chars("is_insertable_into"),
            chars("is_typed"),
            chars("commit_action"),
        ],
        "columns" => vec![
            ident("table_catalog"),
            ident("table_schema"),
            ident("table_name"),
            ident("column_name"),
            cardinal("ordinal_position"),
            chars("column_default"),
            chars("is_nullable"),
            chars("data_type"),
            cardinal("character_maximum_length"),
            cardinal("character_octet_length"),
            cardinal("numeric_precision"),
            cardinal("numeric_precision_radix"),
            cardinal("numeric_scale"),
            cardinal("datetime_precision"),
            chars("interval_type"),
            ident("udt_catalog"),
            ident("udt_schema"),
            ident("udt_name"),
            ident("dtd_identifier"),
            chars("is_identity"),
            chars("is_generated"),
            chars("is_updatable"),
        ],
        "views" => vec![
            ident("table_catalog"),
            ident("table_schema"),
            ident("table_name"),
            chars("view_definition"),
            chars("check_option"),
            chars("is_updatable"),
            chars("is_insertable_into"),
        ],
        "table_constraints" => vec![
            ident("constraint_catalog"),
            ident("constraint_schema"),
            ident("constraint_name"),
            ident("table_catalog"),
            ident("table_schema"),
            ident("table_name"),
            chars("constraint_type"),
            chars("is_deferrable"),
            chars("initially_deferred"),
            chars("enforced"),
        ],
        // Sources have no keys; the table exists so key queries return nothing.
        _ => vec![
            ident("constraint_catalog"),
            ident("constraint_schema"),
            ident("constraint_name"),
            ident("table_catalog"),
            ident("table_schema"),
            ident("table_name"),
            ident("column_name"),
            cardinal("ordinal_position"),
            cardinal("position_in_unique_constraint"),
        ],
    };
    Arc::new(Schema::new(fields))
}

/// Rows of one table, column by column.
struct Rows(Vec<Vec<Option<String>>>, Vec<Vec<Option<i32>>>);

impl Rows {
    fn batch(self, schema: &SchemaRef) -> Result<RecordBatch> {
        let (mut text, mut ints) = (self.0.into_iter(), self.1.into_iter());
        let cols: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                if f.data_type() == &DataType::Int32 {
                    Arc::new(Int32Array::from(ints.next().unwrap_or_default()))
                } else {
                    Arc::new(StringArray::from(text.next().unwrap_or_default()))
                }
            })
            .collect();
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

impl InfoSchema {
    async fn rows(&self, table: &str, n_text: usize, n_int: usize) -> Result<Rows> {
        let mut text: Vec<Vec<Option<String>>> = vec![Vec::new(); n_text];
        let mut ints: Vec<Vec<Option<i32>>> = vec![Vec::new(); n_int];
        let mut push = |t: Vec<Option<String>>, i: Vec<Option<i32>>| {
            for (col, v) in text.iter_mut().zip(t) {
                col.push(v);
            }
            for (col, v) in ints.iter_mut().zip(i) {
                col.push(v);
            }
        };
        let cat = s(&self.catalog);
        match table {
            "schemata" => {
                let mut names: Vec<&str> = self.schemas.iter().map(|(n, _)| n.as_str()).collect();
                names.push(SCHEMA);
                for n in names {
                    push(
                        vec![cat.clone(), s(n), s("lambdadb"), None, None, None, None],
                        vec![],
                    );
                }
            }
            "tables" | "views" | "columns" => {
                for r in self.relations().await? {
                    let view = r.kind == TableType::View;
                    let base = vec![cat.clone(), s(&r.schema), s(&r.name)];
                    match table {
                        "tables" => {
                            let kind = if view { "VIEW" } else { "BASE TABLE" };
                            let mut t = base;
                            t.extend([s(kind), None, None, None, None, None, s("NO"), s("NO")]);
                            t.push(None);
                            push(t, vec![]);
                        }
                        "views" if view => {
                            let mut t = base;
                            t.extend([r.definition.clone(), s("NONE"), s("NO"), s("NO")]);
                            push(t, vec![]);
                        }
                        "columns" => {
                            for (i, f) in r.columns.fields().iter().enumerate() {
                                let ty = pg_type_of(f.data_type());
                                let (p, radix, scale, dtp) = precision(f.data_type());
                                let octets = (ty.oid == 25).then_some(1_073_741_824);
                                let mut t = base.clone();
                                t.extend([
                                    s(f.name()),
                                    None,
                                    s(if f.is_nullable() { "YES" } else { "NO" }),
                                    s(ty.sql_name),
                                    None,
                                    s(&self.catalog),
                                    s("pg_catalog"),
                                    s(ty.udt_name),
                                    s(&(i + 1).to_string()),
                                    s("NO"),
                                    s("NEVER"),
                                    s("NO"),
                                ]);
                                let pos = Some(i as i32 + 1);
                                push(t, vec![pos, None, octets, p, radix, scale, dtp]);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        Ok(Rows(text, ints))
    }
}

#[async_trait]
impl SchemaProvider for InfoSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if !TABLES.contains(&name) {
            return Ok(None);
        }
        let schema = table_schema(name);
        let n_int = schema
            .fields()
            .iter()
            .filter(|f| f.data_type() == &DataType::Int32)
            .count();
        let rows = self
            .rows(name, schema.fields().len() - n_int, n_int)
            .await?;
        let batch = rows.batch(&schema)?;
        Ok(Some(Arc::new(MemTable::try_new(
            schema,
            vec![vec![batch]],
        )?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
    }
}
