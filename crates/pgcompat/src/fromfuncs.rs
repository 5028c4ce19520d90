//! Functions used as relations in FROM the way PostgreSQL allows (Grafana
//! resolves search_path with `generate_series(...) AS i, string_to_array(...) s`
//! and reads `s[i]`):
//! - a table function aliased without column names names its one column after
//!   the alias (`generate_series(1, 3) AS i` has column `i`), where DataFusion
//!   would call it `value`;
//! - a scalar function in FROM is a one-row relation whose column is named after
//!   the alias; DataFusion only accepts table functions there.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArguments, Ident, ObjectName, SetExpr, Statement, TableAliasColumnDef,
    TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rewrites `stmt`; `is_table_function` tells the session's table functions.
pub fn rewrite(stmt: &mut Statement, is_table_function: &dyn Fn(&str) -> bool) {
    let mut v = FromFunctions { is_table_function };
    let _ = stmt.visit(&mut v);
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(stmt, |e| {
        // `user` (parsed as a function without parentheses) is current_user.
        if let Expr::Function(f) = e
            && matches!(f.args, FunctionArguments::None)
            && f.name.to_string().eq_ignore_ascii_case("user")
        {
            f.name = ObjectName::from(vec![Ident::new("current_user")]);
        }
        ControlFlow::<()>::Continue(())
    });
}

struct FromFunctions<'a> {
    is_table_function: &'a dyn Fn(&str) -> bool,
}

impl VisitorMut for FromFunctions<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            args: Some(args),
            alias: Some(alias),
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let fname = name
            .0
            .last()
            .map(|p| p.to_string().trim_matches('"').to_ascii_lowercase())
            .unwrap_or_default();
        if (self.is_table_function)(&fname) {
            if alias.columns.is_empty() && matches!(fname.as_str(), "generate_series" | "range") {
                alias.columns = vec![TableAliasColumnDef {
                    name: alias.name.clone(),
                    data_type: None,
                }];
            }
            return ControlFlow::Continue(());
        }
        if !alias.columns.is_empty() {
            return ControlFlow::Continue(());
        }
        let call = format!("{name}({})", args_text(args));
        let sql = format!(
            "SELECT * FROM (SELECT {call} AS {a}) AS {a}",
            a = alias.name
        );
        if let Ok(Some(new)) = Parser::parse_sql(&PostgreSqlDialect {}, &sql).map(first_relation) {
            *factor = new;
        }
        ControlFlow::Continue(())
    }
}

fn args_text(args: &datafusion::sql::sqlparser::ast::TableFunctionArgs) -> String {
    args.args
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn first_relation(mut stmts: Vec<Statement>) -> Option<TableFactor> {
    let Statement::Query(q) = stmts.pop()? else {
        return None;
    };
    let SetExpr::Select(s) = *q.body else {
        return None;
    };
    s.from.into_iter().next().map(|t| t.relation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut s = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut s, &|n| n == "generate_series");
        s.to_string()
    }

    #[test]
    fn functions_in_from_like_postgres() {
        assert_eq!(
            rewritten("SELECT s[i] FROM generate_series(1, 2) AS i, string_to_array('a,b', ',') s"),
            "SELECT s[i] FROM generate_series(1, 2) AS i (i), (SELECT string_to_array('a,b', ',') AS s) AS s"
        );
        assert_eq!(
            rewritten("SELECT user, \"user\" FROM t"),
            "SELECT current_user, \"user\" FROM t"
        );
    }
}
