//! The statements lambdadb handles itself rather than DataFusion: declaring source
//! tables and materialized views, and refreshing views.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use lambdadb_common::SourceSpec;
use lambdadb_pgcompat::naming::object_name;
use lambdadb_pgcompat::pgtype::sql_type;
use lambdadb_pgcompat::{QueryError, Result};
use sqlparser::ast::{
    ColumnOption, CopyOption, CopySource, CopyTarget, CreateTable, CreateTableOptions, Expr,
    ObjectType, SqlOption, Statement, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

/// A statement of the catalog, recognised before DataFusion sees the SQL.
#[derive(Debug, Clone)]
pub enum CatalogStatement {
    /// `CREATE TABLE ... WITH (topic = ...)`: a source table fed from a Kafka topic.
    CreateSource {
        /// The table's columns, topic, format and event-time column, with its CREATE text.
        spec: SourceSpec,
        /// With `IF NOT EXISTS`: a source table or view of that name makes it a no-op.
        if_not_exists: bool,
    },
    /// `CREATE [OR REPLACE] MATERIALIZED VIEW name AS query`.
    CreateView {
        /// The view's name, unqualified and normalized.
        name: String,
        /// The SELECT text after `AS`, as parsed and printed back.
        query: String,
        /// With `OR REPLACE`: a materialized view of that name takes the new definition.
        or_replace: bool,
        /// With `IF NOT EXISTS`: an existing relation of that name makes it a no-op.
        if_not_exists: bool,
    },
    /// `REFRESH MATERIALIZED VIEW name [FULL]`: a new batch version of the view.
    Refresh {
        /// The view to refresh, normalized.
        name: String,
        /// With `FULL`: recomputed from the whole master dataset, never
        /// incrementally (how a fixed bug in a view reaches its history).
        full: bool,
    },
    /// `ALTER MATERIALIZED VIEW name ROLLBACK TO VERSION n`: serve a kept version again.
    Rollback {
        /// The view, normalized.
        name: String,
        /// The version to serve (`lambdadb.view_versions`).
        version: u64,
    },
    /// `ALTER TABLE [IF EXISTS] name SET (retention = '...')` or `RESET (retention)`.
    AlterRetention {
        /// The source table, normalized.
        name: String,
        /// With `IF EXISTS`: a missing table is a notice, not an error.
        if_exists: bool,
        /// The new retention; `None` (RESET) keeps everything.
        retention: Option<std::time::Duration>,
    },
    /// `DROP MATERIALIZED VIEW [IF EXISTS] names`.
    DropViews {
        /// The views to drop, unqualified and normalized.
        names: Vec<String>,
        /// With `IF EXISTS`: a name no relation has is skipped rather than refused.
        if_exists: bool,
    },
    /// `COPY table FROM '/server/path' (FORMAT parquet)`: historical files into
    /// the master dataset.
    Import {
        /// The source table whose master dataset takes the files, normalized.
        table: String,
        /// The server-side absolute path of a Parquet file or of a directory of them.
        path: String,
    },
}

impl CatalogStatement {
    /// What the statement does, for messages.
    pub fn describe(&self) -> String {
        match self {
            CatalogStatement::CreateSource { spec, .. } => format!("CREATE TABLE {}", spec.name),
            CatalogStatement::CreateView { name, .. } => format!("CREATE MATERIALIZED VIEW {name}"),
            CatalogStatement::Refresh { name, .. } => format!("REFRESH MATERIALIZED VIEW {name}"),
            CatalogStatement::Rollback { name, version } => {
                format!("ALTER MATERIALIZED VIEW {name} ROLLBACK TO VERSION {version}")
            }
            CatalogStatement::AlterRetention { name, .. } => format!("ALTER TABLE {name}"),
            CatalogStatement::DropViews { names, .. } => {
                format!("DROP MATERIALIZED VIEW {}", names.join(", "))
            }
            CatalogStatement::Import { table, .. } => format!("COPY {table} FROM a file"),
        }
    }
}

/// `REFRESH MATERIALIZED VIEW [CONCURRENTLY] name [FULL]` and `ALTER
/// MATERIALIZED VIEW name ROLLBACK TO VERSION n`, which sqlparser does not parse
/// as statements; names are parsed as such (quoted names hold anything).
/// `None`: the text is neither.
pub fn parse_refresh(sql: &str) -> Option<Result<CatalogStatement>> {
    let mut words = sql.split_whitespace();
    let first = words.next()?;
    let refresh = first.eq_ignore_ascii_case("refresh");
    let alter_view = first.eq_ignore_ascii_case("alter")
        && words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("materialized"));
    if !refresh && !alter_view {
        return None;
    }
    let expected = if refresh {
        "REFRESH MATERIALIZED VIEW name [FULL]"
    } else {
        "ALTER MATERIALIZED VIEW name ROLLBACK TO VERSION n (the only ALTER of a materialized view)"
    };
    let syntax = || QueryError::Syntax(format!("syntax error: expected {expected}"));
    let mut parser = match Parser::new(&PostgreSqlDialect {}).try_with_sql(sql) {
        Ok(p) => p,
        Err(e) => return Some(Err(QueryError::Syntax(e.to_string()))),
    };
    let lead = if refresh {
        Keyword::REFRESH
    } else {
        Keyword::ALTER
    };
    if !parser.parse_keywords(&[lead, Keyword::MATERIALIZED, Keyword::VIEW]) {
        return Some(Err(syntax()));
    }
    if refresh {
        let _ = parser.parse_keyword(Keyword::CONCURRENTLY);
    }
    let Ok(name) = parser.parse_object_name(false) else {
        return Some(Err(syntax()));
    };
    let name = object_name(&name);
    let statement = if refresh {
        let full = parser.parse_keyword(Keyword::FULL);
        CatalogStatement::Refresh { name, full }
    } else {
        if !parser.parse_keywords(&[Keyword::ROLLBACK, Keyword::TO, Keyword::VERSION]) {
            return Some(Err(syntax()));
        }
        let Ok(version) = parser.parse_literal_uint() else {
            return Some(Err(syntax()));
        };
        CatalogStatement::Rollback { name, version }
    };
    while parser.consume_token(&Token::SemiColon) {}
    if parser.peek_token().token != Token::EOF {
        return Some(Err(syntax()));
    }
    Some(Ok(statement))
}

/// Recognises catalog statements among parsed ones; `None` means "DataFusion's".
pub fn classify(stmt: &Statement) -> Option<Result<CatalogStatement>> {
    match stmt {
        Statement::CreateTable(ct) if matches!(ct.table_options, CreateTableOptions::With(_)) => {
            Some(
                source_spec(ct, stmt.to_string()).map(|spec| CatalogStatement::CreateSource {
                    spec,
                    if_not_exists: ct.if_not_exists,
                }),
            )
        }
        Statement::CreateView(v) if v.materialized => Some(Ok(CatalogStatement::CreateView {
            name: object_name(&v.name),
            query: v.query.to_string(),
            or_replace: v.or_replace,
            if_not_exists: v.if_not_exists,
        })),
        Statement::Drop {
            object_type: ObjectType::MaterializedView,
            if_exists,
            names,
            ..
        } => Some(Ok(CatalogStatement::DropViews {
            names: names.iter().map(object_name).collect(),
            if_exists: *if_exists,
        })),
        Statement::Copy {
            source:
                CopySource::Table {
                    table_name,
                    columns,
                },
            to: false,
            target: CopyTarget::File { filename },
            options,
            legacy_options,
            ..
        } => Some(import_statement(
            table_name,
            columns,
            filename,
            options,
            legacy_options,
        )),
        _ => None,
    }
}

/// Server-side `COPY ... FROM 'file'` imports Parquet only: rows in other formats
/// belong on the topic, where the log keeps them.
fn import_statement(
    table_name: &sqlparser::ast::ObjectName,
    columns: &[sqlparser::ast::Ident],
    filename: &str,
    options: &[CopyOption],
    legacy_options: &[sqlparser::ast::CopyLegacyOption],
) -> Result<CatalogStatement> {
    let parquet = options
        .iter()
        .any(|o| matches!(o, CopyOption::Format(f) if f.value.eq_ignore_ascii_case("parquet")));
    if !parquet || options.len() != 1 || !legacy_options.is_empty() {
        return Err(QueryError::FeatureNotSupported(
            "COPY FROM a server file imports Parquet only: COPY t FROM '/path/file.parquet' (FORMAT parquet); other rows go to the table's topic (INSERT, or lambdadb produce)".into(),
        ));
    }
    if !columns.is_empty() {
        return Err(QueryError::FeatureNotSupported(
            "COPY FROM a Parquet file takes no column list: columns are matched by name".into(),
        ));
    }
    if !std::path::Path::new(filename).is_absolute() {
        return Err(QueryError::InvalidParameter(format!(
            "relative path not allowed for COPY FROM a file: \"{filename}\"; give the server-side absolute path"
        )));
    }
    Ok(CatalogStatement::Import {
        table: object_name(table_name),
        path: filename.to_string(),
    })
}

fn source_spec(ct: &CreateTable, definition: String) -> Result<SourceSpec> {
    let name = object_name(&ct.name);
    let CreateTableOptions::With(options) = &ct.table_options else {
        unreachable!("checked by classify")
    };
    let mut topic = None;
    let mut format = "json".to_string();
    let mut event_time = None;
    let mut retention = None;
    for opt in options {
        let SqlOption::KeyValue { key, value } = opt else {
            return Err(QueryError::Syntax(format!(
                "unsupported table option {opt}"
            )));
        };
        let v = option_text(value)?;
        match key.value.to_ascii_lowercase().as_str() {
            "topic" => topic = Some(v),
            "format" => format = v.to_ascii_lowercase(),
            "event_time" => event_time = Some(v),
            "retention" => retention = Some(parse_retention(&v)?),
            other => {
                return Err(QueryError::InvalidParameter(format!(
                    "unknown table option \"{other}\"; source tables take topic, format, event_time and retention"
                )));
            }
        }
    }
    let topic = topic.ok_or_else(|| {
        QueryError::InvalidParameter(format!(
            "table \"{name}\" needs WITH (topic = '...'): lambdadb tables are fed from a Kafka topic"
        ))
    })?;
    if format != "json" {
        return Err(QueryError::FeatureNotSupported(format!(
            "message format '{format}' is not supported yet; use format = 'json'"
        )));
    }
    let mut fields = Vec::with_capacity(ct.columns.len());
    for c in &ct.columns {
        let not_null = c
            .options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::NotNull));
        let dt = sql_type(&c.data_type.to_string())?;
        fields.push(Field::new(c.name.value.clone(), dt, !not_null));
    }
    if fields.is_empty() {
        return Err(QueryError::InvalidDefinition(format!(
            "table \"{name}\" has no columns"
        )));
    }
    if let Some(et) = &event_time {
        let f = fields.iter().find(|f| f.name() == et).ok_or_else(|| {
            QueryError::UndefinedColumn(format!(
                "event_time column \"{et}\" is not a column of \"{name}\""
            ))
        })?;
        if !matches!(f.data_type(), DataType::Timestamp(..)) {
            return Err(QueryError::InvalidDefinition(format!(
                "event_time column \"{et}\" must be TIMESTAMPTZ or TIMESTAMP"
            )));
        }
    }
    if retention.is_some() && event_time.is_none() {
        return Err(QueryError::InvalidDefinition(format!(
            "table \"{name}\": retention is by event time; declare event_time = '<column>' too"
        )));
    }
    Ok(SourceSpec {
        name,
        topic,
        format,
        event_time,
        schema: Arc::new(Schema::new(fields)),
        definition,
        retention,
    })
}

/// `'90 days'`, `'12 hours'`, `'2 weeks'`, `'30 minutes'`, `'7d'`, `'36h'`.
pub fn parse_retention(text: &str) -> Result<std::time::Duration> {
    let bad = || {
        QueryError::InvalidParameter(format!(
            "retention '{text}' is not a duration such as '90 days', '12 hours' or '2 weeks'"
        ))
    };
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split].parse().map_err(|_| bad())?;
    let secs = match t[split..].trim() {
        "s" | "sec" | "second" | "seconds" => 1,
        "m" | "min" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(
        n.checked_mul(secs).ok_or_else(bad)?,
    ))
}

/// A table option's value as text (a string literal, number or identifier).
pub(crate) fn option_text(e: &Expr) -> Result<String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(s.clone()),
            other => Ok(other.to_string()),
        },
        Expr::Identifier(i) => Ok(i.value.clone()),
        other => Err(QueryError::Syntax(format!(
            "table option value {other} must be a string literal"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn parse(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn source_table() {
        let stmt = parse(
            "CREATE TABLE Events (event_time TIMESTAMPTZ NOT NULL, user_id BIGINT NOT NULL, page TEXT, revenue DOUBLE PRECISION) WITH (topic = 'events', format = 'json', event_time = 'event_time')",
        );
        let Some(Ok(CatalogStatement::CreateSource { spec, .. })) = classify(&stmt) else {
            panic!("not a source")
        };
        assert_eq!(spec.name, "events");
        assert_eq!(spec.topic, "events");
        assert_eq!(spec.schema.fields().len(), 4);
        assert!(!spec.schema.field(0).is_nullable());
        assert!(spec.schema.field(2).is_nullable());
        assert_eq!(spec.schema.field(3).data_type(), &DataType::Float64);
    }

    #[test]
    fn copy_from_file_is_a_parquet_import() {
        let stmt = parse("COPY lineitem FROM '/data/lineitem.parquet' (FORMAT parquet)");
        let Some(Ok(CatalogStatement::Import { table, path })) = classify(&stmt) else {
            panic!("not an import")
        };
        assert_eq!(
            (table.as_str(), path.as_str()),
            ("lineitem", "/data/lineitem.parquet")
        );
        let csv = parse("COPY t FROM '/data/t.csv' (FORMAT csv)");
        assert!(matches!(
            classify(&csv),
            Some(Err(QueryError::FeatureNotSupported(_)))
        ));
        let rel = parse("COPY t FROM 'x.parquet' (FORMAT parquet)");
        assert!(matches!(
            classify(&rel),
            Some(Err(QueryError::InvalidParameter(_)))
        ));
        assert!(classify(&parse("COPY t TO STDOUT")).is_none());
    }

    #[test]
    fn source_table_errors() {
        let stmt = parse("CREATE TABLE t (a INT) WITH (format = 'json')");
        assert!(matches!(
            classify(&stmt),
            Some(Err(QueryError::InvalidParameter(_)))
        ));
        let stmt = parse("CREATE TABLE t (a INT) WITH (topic = 't', event_time = 'a')");
        assert!(matches!(
            classify(&stmt),
            Some(Err(QueryError::InvalidDefinition(_)))
        ));
        let stmt = parse("CREATE TABLE t (a INT)");
        assert!(classify(&stmt).is_none(), "a plain table is DataFusion's");
    }

    #[test]
    fn refresh() {
        let Some(Ok(CatalogStatement::Refresh { name, full: false })) =
            parse_refresh("refresh materialized view Events_Hourly;")
        else {
            panic!()
        };
        assert_eq!(name, "events_hourly");
        assert!(parse_refresh("SELECT 1").is_none());
        assert!(matches!(parse_refresh("REFRESH VIEW x"), Some(Err(_))));
        assert!(matches!(
            parse_refresh("REFRESH MATERIALIZED VIEW v FULL"),
            Some(Ok(CatalogStatement::Refresh { full: true, .. }))
        ));
        assert!(matches!(
            parse_refresh("REFRESH MATERIALIZED VIEW v FULL please"),
            Some(Err(QueryError::Syntax(_)))
        ));
    }

    #[test]
    fn retention() {
        assert_eq!(
            parse_retention("90 days").unwrap(),
            std::time::Duration::from_secs(90 * 86_400)
        );
        assert_eq!(
            parse_retention(" 36H ").unwrap(),
            std::time::Duration::from_secs(36 * 3600)
        );
        for bad in [
            "",
            "days",
            "0 days",
            "3 fortnights",
            "-1 d",
            "99999999999999999 weeks",
        ] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
        let stmt = parse(
            "CREATE TABLE c (t TIMESTAMPTZ, k TEXT) WITH (topic = 'c', event_time = 't', retention = '2 weeks')",
        );
        let Some(Ok(CatalogStatement::CreateSource { spec, .. })) = classify(&stmt) else {
            panic!()
        };
        assert_eq!(
            spec.retention,
            Some(std::time::Duration::from_secs(14 * 86_400))
        );
        let stmt = parse("CREATE TABLE c (t TIMESTAMPTZ) WITH (topic = 'c', retention = '1 day')");
        assert!(matches!(
            classify(&stmt),
            Some(Err(QueryError::InvalidDefinition(_)))
        ));
    }

    #[test]
    fn rollback() {
        let Some(Ok(CatalogStatement::Rollback { name, version })) =
            parse_refresh("alter materialized view \"V\" rollback to version 12;")
        else {
            panic!()
        };
        assert_eq!((name.as_str(), version), ("V", 12));
        assert!(parse_refresh("ALTER TABLE t ADD COLUMN x int").is_none());
        for bad in [
            "ALTER MATERIALIZED VIEW v RENAME TO w",
            "ALTER MATERIALIZED VIEW v ROLLBACK TO VERSION -1",
            "ALTER MATERIALIZED VIEW v ROLLBACK TO VERSION x",
        ] {
            assert!(
                matches!(parse_refresh(bad), Some(Err(QueryError::Syntax(_)))),
                "{bad}"
            );
        }
    }
}
