//! Rewrites of client SQL that DataFusion cannot run as written.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArguments, GroupByExpr, Query, SelectItem, SetExpr, Statement, TableFactor,
    visit_expressions_mut,
};
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
            // ARRAY(SELECT ... FROM unnest(outer.col) x) needs LATERAL, which
            // DataFusion lacks; psql uses it only for TOAST table options, which
            // lambdadb never has, so the answer is an empty (NULL) array.
            if unnests_outer_column(q) {
                *e = Expr::Value(datafusion::sql::sqlparser::ast::Value::Null.into());
                return ControlFlow::Continue(());
            }
            // A plain one-column SELECT aggregates in place, which keeps a
            // correlated subquery simple enough for DataFusion to decorrelate;
            // anything else aggregates over a derived table.
            let sql = match simple_projection(q) {
                Some((item, rest)) => format!("(SELECT array_agg({item}) {rest})"),
                None => format!("(SELECT array_agg(__arr.v) FROM ({q}) AS __arr(v))"),
            };
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

fn unnests_outer_column(q: &Query) -> bool {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return false;
    };
    s.from.iter().any(|f| {
        matches!(&f.relation, TableFactor::Table { name, args: Some(_), .. }
            if name.to_string().to_ascii_lowercase().ends_with("unnest"))
    })
}

/// `(projection, "FROM ... WHERE ...")` of `SELECT x FROM ... [WHERE ...]`.
fn simple_projection(q: &Query) -> Option<(String, String)> {
    if q.order_by.is_some() || q.limit_clause.is_some() || q.with.is_some() {
        return None;
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    if s.projection.len() != 1
        || s.distinct.is_some()
        || s.having.is_some()
        || !matches!(&s.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
    {
        return None;
    }
    let item = match &s.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.to_string(),
        _ => return None,
    };
    let from: Vec<String> = s.from.iter().map(|f| f.to_string()).collect();
    let mut rest = format!("FROM {}", from.join(", "));
    if let Some(w) = &s.selection {
        rest.push_str(&format!(" WHERE {w}"));
    }
    Some((item, rest))
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
            "SELECT (SELECT array_agg(a) FROM t WHERE t.b = r.c) AS m FROM r"
        );
        let mut s = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SELECT ARRAY(SELECT a FROM t ORDER BY a)",
        )
        .unwrap()
        .remove(0);
        array_subqueries(&mut s);
        assert_eq!(
            s.to_string(),
            "SELECT (SELECT array_agg(__arr.v) FROM (SELECT a FROM t ORDER BY a) AS __arr (v))"
        );
    }
}
