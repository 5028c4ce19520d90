//! Result column names as PostgreSQL chooses them: `count(*)` is `count`,
//! `sum(x)` is `sum`, `CASE ...` is `case`, other expressions `?column?`.
//! DataFusion would name them after the whole expression (`count(*)`), which
//! breaks clients that read columns by name.

use std::collections::HashMap;

use datafusion::sql::sqlparser::ast::{Expr, Ident, ObjectName, SelectItem, SetExpr, Statement};

use crate::error::QueryError;

/// Marks the end of a result column's PostgreSQL name in an internal alias.
/// DataFusion needs unique names in a select list where PostgreSQL repeats them
/// (`SELECT count(*), count(x)` gives two columns called `count`), so a repeat
/// is aliased `count<MARK>1` and the wire layer shows only the part before the
/// mark. A private-use character, so no real identifier contains it.
pub const NAME_MARK: char = '\u{E000}';

/// The name a client sees for a result column.
pub fn display_name(name: &str) -> &str {
    name.split(NAME_MARK).next().unwrap_or(name)
}

/// Adds PostgreSQL's default alias to unnamed select items of a top-level query;
/// repeated names get a unique internal alias (see [`NAME_MARK`]).
pub fn apply_postgres_names(stmt: &mut Statement) {
    let Statement::Query(q) = stmt else { return };
    let SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    // Names taken by plain column references and explicit aliases stay theirs.
    let mut used: HashMap<String, usize> = HashMap::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_))) => {
                *used.entry(figure_name(e)).or_default() += 1;
            }
            SelectItem::ExprWithAlias { alias, .. } => {
                *used.entry(alias.value.clone()).or_default() += 1;
            }
            _ => {}
        }
    }
    for item in select.projection.iter_mut() {
        let SelectItem::UnnamedExpr(e) = item else {
            continue;
        };
        if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            continue;
        }
        let name = figure_name(e);
        let seen = used.entry(name.clone()).or_default();
        let alias = if *seen == 0 {
            name
        } else {
            format!("{name}{NAME_MARK}{seen}")
        };
        *seen += 1;
        *item = SelectItem::ExprWithAlias {
            expr: e.clone(),
            alias: Ident::with_quote('"', alias),
        };
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
        Expr::Extract { .. } => "extract".into(),
        Expr::Exists { .. } => "exists".into(),
        _ => "?column?".into(),
    }
}

/// The longest identifier PostgreSQL keeps, in bytes (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Checks a name an object is created with. PostgreSQL truncates a longer
/// identifier to 63 bytes; lambdadb refuses it (42622) instead, so that the
/// name a client declares is the name it queries.
pub fn check_new_name(name: &str) -> Result<(), QueryError> {
    if name.is_empty() {
        return Err(QueryError::Syntax(
            "zero-length delimited identifier; give the object a name".into(),
        ));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(QueryError::NameTooLong(format!(
            "identifier \"{name}\" is longer than {MAX_IDENTIFIER_BYTES} bytes; choose a shorter name"
        )));
    }
    Ok(())
}

/// An identifier as PostgreSQL resolves it: unquoted, it folds to lower case.
pub fn fold_ident(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

/// The object a possibly qualified name refers to (`public.events` is
/// `events`), its last part folded as PostgreSQL does. Parts are read from the
/// parsed name, so a quoted name may hold dots, quotes or anything else.
pub fn object_name(name: &ObjectName) -> String {
    match name.0.last() {
        Some(part) => match part.as_ident() {
            Some(ident) => fold_ident(ident),
            None => part.to_string().to_ascii_lowercase(),
        },
        None => String::new(),
    }
}

/// `s` as an SQL identifier: bare when it reads back the same, else quoted
/// (PostgreSQL's `quote_ident`).
pub fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
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
        // Repeats get unique internal names that display as PostgreSQL's.
        let sql = named("SELECT max(a), max(b), a AS max FROM t");
        assert_eq!(
            sql,
            format!(
                "SELECT max(a) AS \"max{m}1\", max(b) AS \"max{m}2\", a AS max FROM t",
                m = NAME_MARK
            )
        );
        assert_eq!(display_name(&format!("max{NAME_MARK}2")), "max");
    }
}
