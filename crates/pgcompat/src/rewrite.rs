//! Rewrites of client SQL that DataFusion cannot run as written.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, Expr, FunctionArguments, GroupByExpr, OrderByKind, Query, SelectItem, SetExpr,
    Statement, TableFactor, Value, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Parses one expression written by a rewrite; None leaves the original in place.
pub(crate) fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

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
            if let Some(new) = parse_expr(&sql) {
                *e = new;
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `(expr).field`, PostgreSQL's composite field access (pgJDBC:
/// `(information_schema._pg_expandarray(i.indkey)).n`), becomes
/// `get_field(expr, 'field')`; DataFusion plans dot access only on column names.
pub fn field_access(stmt: &mut Statement) {
    let _ = visit_expressions_mut(stmt, |e| {
        if let Expr::CompoundFieldAccess { root, access_chain } = e
            && matches!(root.as_ref(), Expr::Nested(_) | Expr::Function(_))
            && access_chain
                .iter()
                .all(|a| matches!(a, AccessExpr::Dot(Expr::Identifier(_))))
        {
            let mut sql = root.to_string();
            for a in access_chain.iter() {
                if let AccessExpr::Dot(Expr::Identifier(i)) = a {
                    sql = format!("get_field({sql}, '{}')", i.value.replace('\'', "''"));
                }
            }
            if let Some(new) = parse_expr(&sql) {
                *e = new;
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// A scalar subquery that selects one plain expression (pgJDBC's `getTypeInfo`:
/// `(SELECT c.relkind = 'c' FROM pg_class c WHERE c.oid = t.typrelid)`) takes
/// its value through `first_value(...)`: DataFusion only decorrelates
/// aggregated scalar subqueries. PostgreSQL would fail on a second row where
/// this takes the first; catalog lookups by key have one row.
pub fn scalar_subqueries(stmt: &mut Statement) {
    let _ = visit_expressions_mut(stmt, |e| {
        if let Expr::Subquery(q) = e
            && q.order_by.is_none()
            && q.limit_clause.is_none()
            && let SetExpr::Select(s) = q.body.as_mut()
            && s.projection.len() == 1
            && matches!(&s.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
            && s.having.is_none()
            && s.distinct.is_none()
        {
            let (expr, alias) = match &s.projection[0] {
                SelectItem::UnnamedExpr(x) => (x.clone(), None),
                SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
                _ => return ControlFlow::Continue(()),
            };
            // `(SELECT 0.2 * avg(x) ...)` (TPC-H Q17) is aggregated already.
            if contains_aggregate_call(&expr) {
                return ControlFlow::Continue(());
            }
            let sql = format!("first_value({expr})");
            if let Some(new) = parse_expr(&sql) {
                s.projection[0] = match alias {
                    Some(alias) => SelectItem::ExprWithAlias { expr: new, alias },
                    None => SelectItem::UnnamedExpr(new),
                };
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

fn contains_aggregate_call(e: &Expr) -> bool {
    datafusion::sql::sqlparser::ast::visit_expressions(e, |x| {
        if is_aggregate_call(x) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

fn is_aggregate_call(e: &Expr) -> bool {
    const AGGREGATES: [&str; 14] = [
        "count",
        "sum",
        "min",
        "max",
        "avg",
        "array_agg",
        "string_agg",
        "bool_and",
        "bool_or",
        "first_value",
        "last_value",
        "every",
        "json_agg",
        "approx_distinct",
    ];
    match e {
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            AGGREGATES.contains(&name.rsplit('.').next().unwrap_or(&name))
        }
        Expr::Nested(x) | Expr::Cast { expr: x, .. } => is_aggregate_call(x),
        _ => false,
    }
}

/// `typinput = 'pg_catalog.array_in'::regproc` (pgJDBC's `getTypeInfo`)
/// compares names: the static `pg_type` holds `typinput` and friends as text,
/// while the compatibility parser turns the `::regproc` literal into an OID
/// lookup `(SELECT oid FROM pg_catalog.pg_proc WHERE proname = '...')`.
pub fn regproc_literals(stmt: &mut Statement) {
    const NAME_COLUMNS: [&str; 7] = [
        "typinput",
        "typoutput",
        "typreceive",
        "typsend",
        "typmodin",
        "typmodout",
        "typanalyze",
    ];
    let is_name_column = |e: &Expr| match e {
        Expr::Identifier(i) => NAME_COLUMNS.contains(&i.value.as_str()),
        Expr::CompoundIdentifier(p) => p
            .last()
            .is_some_and(|i| NAME_COLUMNS.contains(&i.value.as_str())),
        _ => false,
    };
    let _ = visit_expressions_mut(stmt, |e| {
        if let Expr::BinaryOp { left, right, .. } = e {
            let bare = |name: String| {
                let bare = name.rsplit('.').next().unwrap_or(&name).to_string();
                Expr::Value(Value::SingleQuotedString(bare).into())
            };
            if is_name_column(left)
                && let Some(name) = regproc_lookup(right)
            {
                **right = bare(name);
            } else if is_name_column(right)
                && let Some(name) = regproc_lookup(left)
            {
                **left = bare(name);
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The function name of `(SELECT oid FROM pg_catalog.pg_proc WHERE proname = 'name')`
/// or of `'name'::regproc`.
fn regproc_lookup(e: &Expr) -> Option<String> {
    match e {
        Expr::Cast {
            expr, data_type, ..
        } if data_type.to_string().eq_ignore_ascii_case("regproc") => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        },
        Expr::Subquery(q) => {
            let text = q.to_string();
            let rest = text.strip_prefix("SELECT oid FROM pg_catalog.pg_proc WHERE proname = '")?;
            let name = rest.strip_suffix('\'')?;
            (!name.contains('\'')).then(|| name.to_string())
        }
        _ => None,
    }
}

/// An integer literal selected as a column (`SELECT 1`, the health check of
/// Metabase, pools and ORMs) is `integer` in PostgreSQL when it fits, `bigint`
/// in DataFusion; drivers map them differently (node-postgres returns int8 as a
/// string). Only whole select items are typed this way: inside expressions the
/// literal's type follows the other operand anyway.
pub fn int4_literals(stmt: &mut Statement) {
    let Statement::Query(q) = stmt else { return };
    let SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    for item in select.projection.iter_mut() {
        let e = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => continue,
        };
        let text = e.to_string();
        if text.parse::<i32>().is_ok()
            && let Some(new) = parse_expr(&format!("CAST({text} AS INTEGER)"))
        {
            *e = new;
        }
    }
}

/// `col_description(...)` and `obj_description(...)` become `NULL::text`
/// without evaluating their arguments: lambdadb has no comments, and Metabase
/// passes `CAST(format('%I.%I', schema, table) AS regclass)`, a cast of a
/// computed name that the catalog layer cannot resolve.
pub fn descriptions(stmt: &mut Statement) {
    let _ = visit_expressions_mut(stmt, |e| {
        if let Expr::Function(f) = e {
            let name = f.name.to_string().to_ascii_lowercase();
            let name = name.rsplit('.').next().unwrap_or(&name);
            if (name == "col_description" || name == "obj_description")
                && let Some(new) = parse_expr("CAST(NULL AS TEXT)")
            {
                *e = new;
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `extract(field FROM x)` becomes `pg_extract('field', x)`, PostgreSQL's
/// numeric-valued EXTRACT (crate::pgtyping); DataFusion would plan it with its
/// built-in `date_part` directly.
pub fn extract_calls(stmt: &mut Statement) {
    let _ = visit_expressions_mut(stmt, |e| {
        if let Expr::Extract { field, expr, .. } = e {
            let field = field.to_string().to_ascii_lowercase().replace('\'', "");
            let sql = format!("{}('{field}', {expr})", crate::pgtyping::EXTRACT_FUNCTION);
            if let Some(new) = parse_expr(&sql) {
                *e = new;
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `x IN (SELECT ...)` in a select list, ORDER BY or a CASE in WHERE (Grafana's
/// table and column lists put their search_path test there) becomes
/// `array_has((SELECT array_agg(v) FROM (...)), x)`: DataFusion turns IN
/// subqueries into joins only in WHERE, and cannot execute them elsewhere.
/// A NULL `x` gives false rather than NULL, which CASE WHEN treats alike.
pub fn in_subqueries_outside_where(stmt: &mut Statement) -> bool {
    let Statement::Query(q) = stmt else {
        return false;
    };
    let changed = std::cell::Cell::new(false);
    let rewrite = |e: &mut Expr| {
        let _ = visit_expressions_mut(e, |e| {
            if let Expr::InSubquery {
                expr,
                subquery,
                negated,
            } = e
            {
                let not = if *negated { "NOT " } else { "" };
                let sql = format!(
                    "{not}array_has((SELECT array_agg(__in.v) FROM ({subquery}) AS __in(v)), {expr})"
                );
                if let Some(new) = parse_expr(&sql) {
                    *e = new;
                    changed.set(true);
                }
            }
            ControlFlow::<()>::Continue(())
        });
    };
    if let SetExpr::Select(select) = q.body.as_mut() {
        for item in select.projection.iter_mut() {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                rewrite(e)
            }
        }
        // In WHERE, DataFusion decorrelates IN subqueries among the conjuncts,
        // but not inside a CASE (Grafana's column list).
        if let Some(selection) = select.selection.as_mut() {
            let _ = visit_expressions_mut(selection, |e| {
                if matches!(e, Expr::Case { .. }) {
                    rewrite(e);
                }
                ControlFlow::<()>::Continue(())
            });
        }
    }
    if let Some(order) = q.order_by.as_mut()
        && let OrderByKind::Expressions(exprs) = &mut order.kind
    {
        for o in exprs.iter_mut() {
            rewrite(&mut o.expr);
        }
    }
    changed.get()
}

/// Whether `stmt` has an IN subquery anywhere: the cheap test that spares
/// every other statement the copy [`in_subqueries_outside_where`] works on.
pub fn has_in_subquery(stmt: &Statement) -> bool {
    datafusion::sql::sqlparser::ast::visit_expressions(stmt, |e| {
        if matches!(e, Expr::InSubquery { .. }) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// `pg_get_viewdef(oid[, pretty])` (psql's `\d+ view`) becomes a lookup of the
/// view's definition in information_schema.views through pg_class, whose OIDs
/// datafusion-pg-catalog assigns.
pub fn viewdef_calls(stmt: &mut Statement) {
    let _ = visit_expressions_mut(stmt, |e| {
        if let Expr::Function(f) = e
            && f.name
                .to_string()
                .to_ascii_lowercase()
                .ends_with("pg_get_viewdef")
            && let FunctionArguments::List(list) = &f.args
            && let Some(first) = list.args.first()
        {
            let sql = format!(
                "(SELECT __v.view_definition FROM information_schema.views __v \
                 JOIN pg_catalog.pg_class __c ON __c.relname = __v.table_name \
                 JOIN pg_catalog.pg_namespace __n ON __n.oid = __c.relnamespace \
                 AND __n.nspname = __v.table_schema WHERE __c.oid = {first})"
            );
            if let Some(new) = parse_expr(&sql) {
                *e = new;
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `generate_subscripts(a, d)` (SQLAlchemy's key reflection, beside
/// `unnest(conkey)`) becomes `unnest(generate_series(1, array_length(a, d)))`,
/// which DataFusion unnests in step with the other unnest, as PostgreSQL does.
pub fn generate_subscripts(stmt: &mut Statement) {
    let _ = visit_expressions_mut(stmt, |e| {
        if let Expr::Function(f) = e
            && f.name
                .to_string()
                .to_ascii_lowercase()
                .ends_with("generate_subscripts")
            && let FunctionArguments::List(list) = &f.args
            && list.args.len() == 2
        {
            let (a, d) = (&list.args[0], &list.args[1]);
            let sql = format!("unnest(generate_series(1, array_length({a}, {d})))");
            if let Some(new) = parse_expr(&sql) {
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

/// Every rewrite a statement goes through after the compatibility parser, in
/// order.
pub fn apply_all(stmt: &mut Statement, ctx: &datafusion::prelude::SessionContext) {
    crate::naming::apply_postgres_names(stmt);
    crate::rewrite::array_subqueries(stmt);
    crate::rewrite::field_access(stmt);
    crate::rewrite::int4_literals(stmt);
    crate::rewrite::extract_calls(stmt);
    // state_ref: state() would copy the whole session state per statement.
    let state = ctx.state_ref();
    crate::fromfuncs::rewrite(stmt, &|name| {
        state.read().table_functions().contains_key(name)
    });
    crate::rewrite::descriptions(stmt);
    crate::rewrite::viewdef_calls(stmt);
    crate::rewrite::generate_subscripts(stmt);
    // Before scalar_subqueries, which would wrap the OID lookup it matches.
    crate::rewrite::regproc_literals(stmt);
    crate::rewrite::scalar_subqueries(stmt);
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

    #[test]
    fn scalar_subquery_over_an_aggregate_expression_is_left_alone() {
        let rewrite = |sql: &str| {
            let mut s = Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .unwrap()
                .remove(0);
            scalar_subqueries(&mut s);
            s.to_string()
        };
        let q17 = "SELECT 1 FROM l WHERE q < (SELECT 0.2 * avg(q) FROM l AS l2 WHERE l2.p = l.p)";
        assert_eq!(rewrite(q17), q17);
        assert_eq!(
            rewrite("SELECT (SELECT c.x = 1 FROM c WHERE c.k = t.k) FROM t"),
            "SELECT (SELECT first_value(c.x = 1) FROM c WHERE c.k = t.k) FROM t"
        );
    }
}
