//! Result column names as PostgreSQL chooses them: `count(*)` is `count`,
//! `sum(x)` is `sum`, `CASE ...` is `case`, other expressions `?column?`.
//! DataFusion would name them after the whole expression (`count(*)`), which
//! breaks clients that read columns by name.

use std::collections::HashMap;

use datafusion::sql::sqlparser::ast::{Expr, Ident, SelectItem, SetExpr, Statement};

/// Adds PostgreSQL's default alias to unnamed select items of a top-level query,
/// where the name is unique in its select list.
pub fn apply_postgres_names(stmt: &mut Statement) {
    let Statement::Query(q) = stmt else { return };
    let SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    let names: Vec<Option<String>> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Some(figure_name(e)),
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
            _ => None,
        })
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for n in names.iter().flatten() {
        *counts.entry(n.as_str()).or_default() += 1;
    }
    let unique: Vec<Option<String>> = names
        .iter()
        .map(|n| n.clone().filter(|n| counts.get(n.as_str()) == Some(&1)))
        .collect();
    for (item, name) in select.projection.iter_mut().zip(unique) {
        let SelectItem::UnnamedExpr(e) = item else {
            continue;
        };
        if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            continue;
        }
        if let Some(name) = name {
            *item = SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', name),
            };
        }
    }
}

fn figure_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(parts) => {
            parts.last().map(|p| p.value.clone()).unwrap_or_default()
        }
        Expr::Function(f) => f
            .name
            .0
            .last()
            .map(|p| p.to_string().trim_matches('"').to_ascii_lowercase())
            .unwrap_or_else(|| "?column?".into()),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => figure_name(expr),
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        _ => "?column?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn named(sql: &str) -> String {
        let mut s = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        apply_postgres_names(&mut s);
        s.to_string()
    }

    #[test]
    fn names_like_postgres() {
        assert_eq!(
            named("SELECT count(*), sum(x) AS s, y, 1 FROM t"),
            "SELECT count(*) AS \"count\", sum(x) AS s, y, 1 AS \"?column?\" FROM t"
        );
        // Duplicates keep DataFusion's distinct names.
        assert_eq!(
            named("SELECT max(a), max(b) FROM t"),
            "SELECT max(a), max(b) FROM t"
        );
    }
}
