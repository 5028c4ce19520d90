//! `COPY (SELECT ...) TO STDOUT` and `COPY table TO STDOUT`, in text, CSV and
//! binary format (psql's `\copy ... TO file` uses this). COPY to a server file and
//! COPY FROM are refused: the server's filesystem is not for clients, and data
//! arrives through Kafka.

use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};

use lambdadb_pgcompat::{QueryError, Result};

/// The format of COPY data, as `FORMAT` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyKind {
    /// PostgreSQL's text format: tab-separated, `\N` for NULL (the default).
    Text,
    /// Comma-separated values, quoted where needed.
    Csv,
    /// PostgreSQL's binary COPY format, with its file header and trailer.
    Binary,
}

/// How rows are written out.
#[derive(Debug, Clone)]
pub struct CopyFormat {
    /// Text, CSV or binary.
    pub kind: CopyKind,
    /// Whether the CSV output starts with a line of column names (`HEADER`); text and
    /// binary ignore it.
    pub header: bool,
    /// The column separator (`DELIMITER`); `None` for the format's own (tab, or comma in CSV).
    pub delimiter: Option<char>,
    /// The text written for NULL (`NULL`); `None` for the format's own (`\N`, or nothing in CSV).
    pub null: Option<String>,
}

/// The query a `COPY ... TO STDOUT` runs, and its format.
pub fn parse_copy(stmt: &Statement) -> Option<Result<(String, CopyFormat)>> {
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = stmt
    else {
        return None;
    };
    if !to {
        return Some(Err(QueryError::FeatureNotSupported(
            "COPY FROM is not supported: lambdadb tables are fed from Kafka; produce the rows to the table's topic (lambdadb produce)".into(),
        )));
    }
    if !matches!(target, CopyTarget::Stdout) {
        return Some(Err(QueryError::InsufficientPrivilege(
            "COPY to a server file or program is not allowed; use COPY ... TO STDOUT (psql: \\copy ... TO 'file')".into(),
        )));
    }
    let query = match source {
        CopySource::Query(q) => q.to_string(),
        CopySource::Table {
            table_name,
            columns,
        } if columns.is_empty() => format!("SELECT * FROM {table_name}"),
        CopySource::Table {
            table_name,
            columns,
        } => format!(
            "SELECT {} FROM {table_name}",
            columns
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut f = CopyFormat {
        kind: CopyKind::Text,
        header: false,
        delimiter: None,
        null: None,
    };
    for o in options {
        match o {
            CopyOption::Format(name) => {
                f.kind = match name.value.to_ascii_lowercase().as_str() {
                    "text" => CopyKind::Text,
                    "csv" => CopyKind::Csv,
                    "binary" => CopyKind::Binary,
                    other => {
                        return Some(Err(QueryError::InvalidParameter(format!(
                            "COPY format \"{other}\" not recognized; use text, csv or binary"
                        ))));
                    }
                }
            }
            CopyOption::Header(h) => f.header = *h,
            CopyOption::Delimiter(c) => f.delimiter = Some(*c),
            CopyOption::Null(s) => f.null = Some(s.clone()),
            other => {
                return Some(Err(QueryError::FeatureNotSupported(format!(
                    "COPY option {other} is not supported; use FORMAT, HEADER, DELIMITER or NULL"
                ))));
            }
        }
    }
    for o in legacy_options {
        match o {
            CopyLegacyOption::Binary => f.kind = CopyKind::Binary,
            CopyLegacyOption::Delimiter(c) => f.delimiter = Some(*c),
            CopyLegacyOption::Null(s) => f.null = Some(s.clone()),
            CopyLegacyOption::Header => f.header = true,
            CopyLegacyOption::Csv(csv) => {
                f.kind = CopyKind::Csv;
                f.header |= csv.iter().any(|c| matches!(c, CopyLegacyCsvOption::Header));
            }
            other => {
                return Some(Err(QueryError::FeatureNotSupported(format!(
                    "COPY option {other} is not supported"
                ))));
            }
        }
    }
    Some(Ok((query, f)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn copy(sql: &str) -> Result<(String, CopyFormat)> {
        let s = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        parse_copy(&s).unwrap()
    }

    #[test]
    fn forms() {
        let (q, f) = copy("COPY (SELECT 1 AS a) TO STDOUT WITH (FORMAT csv, HEADER true)").unwrap();
        assert_eq!(q, "SELECT 1 AS a");
        assert_eq!((f.kind, f.header), (CopyKind::Csv, true));
        let (q, f) = copy("COPY events (user_id, page) TO STDOUT").unwrap();
        assert_eq!(q, "SELECT user_id, page FROM events");
        assert_eq!(f.kind, CopyKind::Text);
        assert_eq!(
            copy("COPY (SELECT 1) TO STDOUT BINARY").unwrap().1.kind,
            CopyKind::Binary
        );
        assert_eq!(
            copy("COPY events TO '/tmp/x'").unwrap_err().sqlstate(),
            "42501"
        );
        assert_eq!(
            copy("COPY events FROM STDIN").unwrap_err().sqlstate(),
            "0A000"
        );
    }
}
