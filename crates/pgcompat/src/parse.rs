//! Parsing client SQL as PostgreSQL would accept it: the statements as written,
//! and the same statements after the compatibility rewrites clients' catalog
//! queries need before DataFusion can plan them.

use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use crate::error::{QueryError, Result, syntax_message};

/// One statement text, parsed twice.
pub struct ParsedSql {
    /// The statements as written, when sqlparser's PostgreSQL dialect parses them:
    /// what lambdadb's own statements (catalog DDL, INSERT) are recognised on.
    pub original: Option<Vec<Statement>>,
    /// The statements to plan, after datafusion-pg-catalog's rewrites.
    pub rewritten: Vec<Statement>,
}

impl ParsedSql {
    /// Each statement to plan with the statement as written it came from (None
    /// when the two parses disagree on the number of statements).
    pub fn into_pairs(self) -> Vec<(Option<Statement>, Statement)> {
        let n = self.rewritten.len();
        let originals: Vec<Option<Statement>> = match self.original {
            Some(o) if o.len() == n => o.into_iter().map(Some).collect(),
            _ => vec![None; n],
        };
        originals.into_iter().zip(self.rewritten).collect()
    }
}

/// Parses SQL text in PostgreSQL's dialect with the compatibility rewrites.
pub struct SqlParser {
    compat: PostgresCompatibilityParser,
}

impl Default for SqlParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SqlParser {
    /// A parser with datafusion-pg-catalog's compatibility rules.
    pub fn new() -> Self {
        Self {
            compat: PostgresCompatibilityParser::new(),
        }
    }

    /// Parses every statement of `sql`. Text the compatibility parser refuses
    /// but sqlparser accepts is kept as written; text neither accepts is a
    /// syntax error (42601).
    pub fn parse(&self, sql: &str) -> Result<ParsedSql> {
        let original = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok();
        // Rewrites that must precede the compatibility rules (which replace
        // subqueries they cannot plan in a select list with NULL).
        let early = original
            .as_ref()
            .filter(|stmts| stmts.iter().any(crate::rewrite::has_in_subquery))
            .and_then(|stmts| {
                let mut out = stmts.clone();
                let mut changed = false;
                for s in &mut out {
                    changed |= crate::rewrite::in_subqueries_outside_where(s);
                }
                changed.then_some(out)
            });
        let parsed = match early {
            Some(stmts) => Ok(stmts.into_iter().map(|s| self.compat.rewrite(s)).collect()),
            None => self.compat.parse(sql),
        };
        let rewritten = match parsed {
            Ok(r) => r,
            Err(e) => match &original {
                Some(p) => p.clone(),
                None => return Err(QueryError::Syntax(syntax_message(&e.to_string()))),
            },
        };
        Ok(ParsedSql {
            original,
            rewritten,
        })
    }
}
