//! Rewrites of client SQL that DataFusion cannot run as written.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, FunctionArguments, Statement, visit_expressions_mut};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// `ARRAY(SELECT x ...)` (psql's `\du`, `\d+`) becomes a scalar subquery that
/// aggregates the rows into an array.
pub fn array_subqueries(stmt: &mut Statement) {
    let _ = visit_expressions_mut(stmt, |e| {
        if let Expr::Function(f) = e
            && f.name.to_string().eq_ignore_ascii_case("array")
            && let FunctionArguments::Subquery(q) = &f.args
        {
            let sql = format!("(SELECT array_agg(__arr.v) FROM ({q}) AS __arr(v))");
            if let Ok(new) = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&sql)
                .and_then(|mut p| p.parse_expr())
            {
                *e = new;
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_subquery() {
        let mut s = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT ARRAY(SELECT a FROM t WHERE t.b = r.c) AS m FROM r",
        )
        .unwrap()
        .remove(0);
        array_subqueries(&mut s);
        assert_eq!(
            s.to_string(),
            "SELECT (SELECT array_agg(__arr.v) FROM (SELECT a FROM t WHERE t.b = r.c) AS __arr (v)) AS m FROM r"
        );
    }
}
