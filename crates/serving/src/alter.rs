//! `ALTER TABLE name SET (retention = '30 days')` and `ALTER TABLE name RESET
//! (retention)`: the one setting of a source table that may change after its
//! declaration. Its topic, format, event-time column and columns are what the
//! master dataset was written with, so they stay fixed.
//!
//! The change is saved in `catalog.json` as a setting of the table (replayed
//! after the `sql/` files and the declarations, so it outlasts a restart even
//! for a table a `sql/` file declares) and applied at once: files whose events
//! are all older than the new limit are removed before the statement returns.

use std::time::Duration;

use lambdadb_pgcompat::naming::{object_name, quote_ident};
use lambdadb_pgcompat::{QueryError, Result};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;
use tracing::{info, warn};

use crate::ddl::{CatalogStatement, option_text, parse_retention};
use crate::engine::Engine;
use crate::objects::Executed;

/// The `catalog.json` setting key of a table's retention.
const RETENTION: &str = "retention";

const EXPECTED: &str =
    "ALTER TABLE name SET (retention = '30 days') or ALTER TABLE name RESET (retention)";

/// Recognises `ALTER TABLE` (sqlparser does not parse `RESET (...)`).
/// `None`: the text is not an ALTER TABLE.
pub fn parse_alter_table(sql: &str) -> Option<Result<CatalogStatement>> {
    let mut words = sql.split_whitespace();
    if !(words.next()?.eq_ignore_ascii_case("alter") && words.next()?.eq_ignore_ascii_case("table"))
    {
        return None;
    }
    Some(parse(sql))
}

fn parse(sql: &str) -> Result<CatalogStatement> {
    let syntax =
        |what: &str| QueryError::Syntax(format!("syntax error: {what}; expected {EXPECTED}"));
    let mut parser = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .map_err(|e| QueryError::Syntax(e.to_string()))?;
    parser
        .expect_keywords(&[Keyword::ALTER, Keyword::TABLE])
        .map_err(|e| syntax(&e.to_string()))?;
    let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let _ = parser.parse_keyword(Keyword::ONLY);
    let name = object_name(
        &parser
            .parse_object_name(false)
            .map_err(|e| syntax(&e.to_string()))?,
    );
    let set = match parser.parse_one_of_keywords(&[Keyword::SET, Keyword::RESET]) {
        Some(Keyword::SET) => true,
        Some(_) => false,
        None => {
            return Err(QueryError::FeatureNotSupported(format!(
                "ALTER TABLE changes only a source table's retention: {EXPECTED}; its columns, topic and event time are fixed by CREATE TABLE (declare a new table for a new schema)"
            )));
        }
    };
    parser
        .expect_token(&Token::LParen)
        .map_err(|e| syntax(&e.to_string()))?;
    let mut retention = None;
    loop {
        let key = parser
            .parse_identifier()
            .map_err(|e| syntax(&e.to_string()))?;
        if !key.value.eq_ignore_ascii_case(RETENTION) {
            return Err(QueryError::InvalidParameter(format!(
                "cannot change table option \"{}\": only retention can change after CREATE TABLE",
                key.value
            )));
        }
        if set {
            parser
                .expect_token(&Token::Eq)
                .map_err(|e| syntax(&e.to_string()))?;
            let value = parser.parse_expr().map_err(|e| syntax(&e.to_string()))?;
            retention = Some(parse_retention(&option_text(&value)?)?);
        }
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    parser
        .expect_token(&Token::RParen)
        .map_err(|e| syntax(&e.to_string()))?;
    while parser.consume_token(&Token::SemiColon) {}
    if parser.peek_token().token != Token::EOF {
        return Err(syntax("unexpected text after the options"));
    }
    Ok(CatalogStatement::AlterRetention {
        name,
        if_exists,
        retention,
    })
}

/// How a retention is shown and saved: whole weeks, days, hours, minutes or seconds.
pub fn retention_text(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = [
        (86_400, "day"),
        (3600, "hour"),
        (60, "minute"),
        (1, "second"),
    ]
    .into_iter()
    .find(|(unit, _)| s.is_multiple_of(*unit))
    .map(|(size, unit)| (s / size, unit))
    .expect("every duration is whole seconds");
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

impl Engine {
    /// Sets or resets the retention of source `name`, saves it in the catalog
    /// and removes what has expired under it.
    pub async fn alter_retention(
        &self,
        name: &str,
        if_exists: bool,
        retention: Option<Duration>,
    ) -> Result<Executed> {
        let Some(source) = self.source(name) else {
            if self.view(name).is_some() || self.plain_view(name).is_some() {
                return Err(QueryError::WrongObjectType(format!(
                    "\"{name}\" is a view; retention applies to the source table it reads"
                )));
            }
            if if_exists {
                return Ok(Executed {
                    tag: "ALTER TABLE".into(),
                    notices: vec![format!("relation \"{name}\" does not exist, skipping")],
                });
            }
            return Err(QueryError::UndefinedTable(format!(
                "relation \"{name}\" does not exist"
            )));
        };
        if retention.is_some() && source.spec.event_time.is_none() {
            return Err(QueryError::NotInPrerequisiteState(format!(
                "table \"{name}\" has no event_time column, and retention is by event time; declare the table with event_time = '<column>'"
            )));
        }
        let sql = match retention {
            Some(d) => format!(
                "ALTER TABLE {} SET (retention = '{}')",
                quote_ident(name),
                retention_text(d)
            ),
            None => format!("ALTER TABLE {} RESET (retention)", quote_ident(name)),
        };
        self.catalog_log().set(name, RETENTION, sql)?;
        source.upkeep.set_retention(retention);
        info!(table = %name, retention = ?retention.map(retention_text), "retention changed");
        let mut notices = Vec::new();
        if retention.is_some() {
            match source.apply_retention(&self.view_watermarks(name)).await {
                Ok(done) => {
                    if done.removed > 0 {
                        notices.push(format!(
                            "{} master-dataset file(s) of \"{name}\" held only events past the retention and were removed",
                            done.removed
                        ));
                    }
                    if done.held > 0 {
                        notices.push(format!(
                            "{} more file(s) past the retention stay while a kept version of a view over \"{name}\" reads them (a rollback rebuilds from them); they go once REFRESH has replaced those versions (view_versions_keep, view_versions_max_age), see lambdadb.master_dataset.retention_held_files",
                            done.held
                        ));
                    }
                }
                Err(e) => {
                    warn!(table = %name, "applying the new retention failed, will retry: {e}");
                    notices.push(format!(
                        "the retention is set, but removing expired files failed ({e}); it is retried on every compaction pass"
                    ));
                }
            }
        }
        Ok(Executed {
            tag: "ALTER TABLE".into(),
            notices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alter(sql: &str) -> Result<CatalogStatement> {
        parse_alter_table(sql).expect("an ALTER TABLE")
    }

    #[test]
    fn set_and_reset() {
        let Ok(CatalogStatement::AlterRetention {
            name,
            if_exists,
            retention,
        }) = alter("alter table IF EXISTS \"Ev\" set (retention = '30 days');")
        else {
            panic!()
        };
        assert_eq!((name.as_str(), if_exists), ("Ev", true));
        assert_eq!(retention, Some(Duration::from_secs(30 * 86_400)));
        let Ok(CatalogStatement::AlterRetention { retention, .. }) =
            alter("ALTER TABLE ONLY events RESET (retention)")
        else {
            panic!()
        };
        assert_eq!(retention, None);
        assert!(parse_alter_table("ALTER MATERIALIZED VIEW v ROLLBACK TO VERSION 1").is_none());
        assert!(parse_alter_table("SELECT 1").is_none());
    }

    #[test]
    fn refusals() {
        let code = |sql: &str| match alter(sql) {
            Err(e) => e.sqlstate().to_string(),
            Ok(s) => panic!("{sql} accepted: {s:?}"),
        };
        assert_eq!(code("ALTER TABLE t ADD COLUMN x int"), "0A000");
        assert_eq!(code("ALTER TABLE t SET (topic = 'x')"), "22023");
        assert_eq!(code("ALTER TABLE t SET (retention = 'forever')"), "22023");
        assert_eq!(code("ALTER TABLE t SET (retention = '1 day') x"), "42601");
        assert_eq!(code("ALTER TABLE t SET ()"), "42601");
        assert_eq!(code("ALTER TABLE t RESET (retention = '1 day')"), "42601");
    }

    #[test]
    fn shown_in_whole_units() {
        assert_eq!(retention_text(Duration::from_secs(90 * 86_400)), "90 days");
        assert_eq!(retention_text(Duration::from_secs(36 * 3600)), "36 hours");
        assert_eq!(retention_text(Duration::from_secs(90)), "90 seconds");
        assert_eq!(retention_text(Duration::from_secs(120)), "2 minutes");
        assert_eq!(retention_text(Duration::from_secs(86_400)), "1 day");
        // What is shown parses back to the same duration.
        for s in [90 * 86_400, 36 * 3600, 90, 120] {
            let d = Duration::from_secs(s);
            assert_eq!(parse_retention(&retention_text(d)).unwrap(), d);
        }
    }
}
