//! Materialized view definitions planned into partial-state form.
//!
//! One SQL definition serves both layers. `SELECT keys, aggs FROM source WHERE ...
//! GROUP BY keys` becomes
//!
//! - a *partial* query, `SELECT key AS __g0, .., partial-agg AS __p0, .. FROM source
//!   WHERE .. GROUP BY ..`, run by the batch layer over the master dataset and by the
//!   speed layer over the offsets above the batch version's watermark; both produce
//!   rows of the same schema;
//! - a *merge* query over the union of partial rows, `SELECT __g0 AS key, ..,
//!   merge-expr AS agg FROM parts GROUP BY __g0, .. HAVING ..`, which folds the
//!   partial states of each group into the view's answer.
//!
//! Counts and sums add, min and max fold, avg is a sum and a count, bool_and and
//! bool_or fold. A definition that cannot be merged exactly is refused with an error
//! naming what to use instead.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, ObjectNamePart,
    Query, SelectItem, SetExpr, Statement, TableFactor, Value, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::error::{Result, ViewError};

/// Table name under which the batch version's partial rows are registered.
pub const BATCH_PARTS: &str = "__batch_parts";
/// Table name under which the speed layer's folded partial rows are registered.
pub const SPEED_PARTS: &str = "__speed_parts";

/// A view definition in partial-state form.
#[derive(Debug, Clone)]
pub struct Decomposition {
    /// The source table the view reads.
    pub source: String,
    /// Partial-state query over `source`.
    pub partial_sql: String,
    /// Merge query text around the partial rows: `{select} FROM (parts) {tail}`.
    merge_select: String,
    merge_tail: String,
    /// Partial rows folded into fewer partial rows of the same schema:
    /// `SELECT __g0, .., combine(__p0) AS __p0, .. FROM SPEED_PARTS GROUP BY __g0, ..`.
    pub combine_sql: String,
    /// An incremental batch run: the previous version's partial rows
    /// (`BATCH_PARTS`) and the partial states of the events committed since its
    /// watermark (the source table) combined into the new version's rows.
    /// Partial states merge exactly, so this equals a run over everything.
    pub incremental_sql: String,
    /// Output column names, in order.
    pub columns: Vec<String>,
}

impl Decomposition {
    /// The view's answer over the batch version's partial rows (`BATCH_PARTS`),
    /// the speed layer's folded ones (`SPEED_PARTS`) and the partial query over the
    /// events not folded yet (the source table).
    pub fn merge_sql(&self) -> String {
        format!(
            "SELECT {} FROM (SELECT * FROM {BATCH_PARTS} UNION ALL SELECT * FROM {SPEED_PARTS} UNION ALL {}) AS __parts{}",
            self.merge_select, self.partial_sql, self.merge_tail
        )
    }
}

/// Decomposes `query` (the text after `AS`). `source_columns(name)` returns the
/// columns of a source table, or `None` when `name` is not a source.
pub fn decompose(
    query: &str,
    source_columns: &dyn Fn(&str) -> Option<Vec<String>>,
) -> Result<Decomposition> {
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, query)
        .map_err(|e| ViewError::Syntax(e.to_string()))?;
    let Some(stmt) = stmts.pop() else {
        return Err(refuse("the definition must be a single SELECT"));
    };
    crate::volatile::refuse_volatile(&stmt)?;
    let Statement::Query(q) = stmt else {
        return Err(refuse("the definition must be a single SELECT"));
    };
    let Query {
        body,
        order_by,
        limit_clause,
        fetch,
        with,
        ..
    } = *q;
    if with.is_some() {
        return Err(refuse(
            "WITH clauses are not supported in materialized views; write the subquery as a plain view (CREATE VIEW) over the materialized view instead",
        ));
    }
    if limit_clause.is_some() || fetch.is_some() || order_by.is_some() {
        return Err(refuse(
            "LIMIT, OFFSET and ORDER BY cannot be maintained incrementally; put them in the queries you run on the view",
        ));
    }
    let SetExpr::Select(select) = *body else {
        return Err(refuse(
            "UNION, INTERSECT and EXCEPT are not supported in materialized views; create one view per branch and combine them in a plain view",
        ));
    };
    let select = *select;
    if select.distinct.is_some() {
        return Err(refuse(
            "SELECT DISTINCT cannot be merged exactly; use GROUP BY on the same columns",
        ));
    }
    if select.from.len() != 1 || !select.from[0].joins.is_empty() {
        return Err(refuse(
            "a materialized view reads exactly one source table (no joins); join in a plain view (CREATE VIEW) over the materialized views",
        ));
    }
    let TableFactor::Table { name, .. } = &select.from[0].relation else {
        return Err(refuse(
            "a materialized view must read a source table, not a subquery",
        ));
    };
    let source = name.0.last().map(part_name).unwrap_or_default();
    let columns_of_source = source_columns(&source).ok_or_else(|| {
        ViewError::UndefinedTable(format!(
            "relation \"{source}\" is not a source table; materialized views read tables declared with CREATE TABLE ... WITH (topic = ...)"
        ))
    })?;
    let from_text = select.from[0].to_string();

    // Group keys, resolving ordinals and output aliases as PostgreSQL does.
    let raw_groups = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs.clone(),
        GroupByExpr::Expressions(..) => {
            return Err(refuse(
                "ROLLUP, CUBE and GROUPING SETS are not supported in materialized views",
            ));
        }
        GroupByExpr::All(_) => {
            return Err(refuse(
                "GROUP BY ALL is not supported; list the grouping columns",
            ));
        }
    };
    let items: Vec<(Expr, Option<Ident>)> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Ok((e.clone(), None)),
            SelectItem::ExprWithAlias { expr, alias } => Ok((expr.clone(), Some(alias.clone()))),
            _ => Err(refuse("SELECT * is not allowed in a materialized view; list the grouping columns and aggregates")),
        })
        .collect::<Result<_>>()?;
    let mut groups: Vec<Expr> = Vec::new();
    for g in raw_groups {
        let resolved = match &g {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => {
                    let i: usize = n.parse().map_err(|_| refuse("bad GROUP BY position"))?;
                    items
                        .get(i.wrapping_sub(1))
                        .map(|(e, _)| e.clone())
                        .ok_or_else(|| {
                            ViewError::InvalidDefinition(format!(
                                "GROUP BY position {i} is not in select list"
                            ))
                        })?
                }
                _ => g.clone(),
            },
            Expr::Identifier(id) if !columns_of_source.contains(&folded(id)) => items
                .iter()
                .find(|(_, a)| a.as_ref().is_some_and(|a| folded(a) == folded(id)))
                .map(|(e, _)| e.clone())
                .unwrap_or(g.clone()),
            _ => g.clone(),
        };
        groups.push(resolved);
    }
    let group_texts: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    if groups.is_empty() && !items.iter().any(|(e, _)| has_aggregate(e)) {
        return Err(refuse(
            "a materialized view needs GROUP BY or an aggregate; for a filter or projection of the raw events use a plain view (CREATE VIEW)",
        ));
    }

    let mut rw = Rewriter {
        groups: &group_texts,
        partials: Vec::new(),
        combines: Vec::new(),
        merges: Vec::new(),
        error: None,
    };
    let mut merge_items = Vec::with_capacity(items.len());
    let mut columns = Vec::with_capacity(items.len());
    for (expr, alias) in items {
        let name = match &alias {
            Some(a) => folded(a),
            None => default_name(&expr),
        };
        if columns.contains(&name) {
            return Err(ViewError::InvalidDefinition(format!(
                "column \"{name}\" specified more than once; give the select items distinct aliases"
            )));
        }
        let mut e = expr.clone();
        let _ = e.visit(&mut rw);
        if let Some(err) = rw.error.take() {
            return Err(err);
        }
        merge_items.push(format!("{} AS {}", rw.expand(&e.to_string()), quote(&name)));
        columns.push(name);
    }
    let having = match &select.having {
        Some(h) => {
            let mut e = h.clone();
            let _ = e.visit(&mut rw);
            if let Some(err) = rw.error.take() {
                return Err(err);
            }
            format!(" HAVING {}", rw.expand(&e.to_string()))
        }
        None => String::new(),
    };

    let mut partial_items: Vec<String> = group_texts
        .iter()
        .enumerate()
        .map(|(i, g)| format!("{g} AS __g{i}"))
        .collect();
    partial_items.extend(
        rw.partials
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{p} AS __p{i}")),
    );
    if partial_items.is_empty() {
        return Err(refuse("the view computes nothing"));
    }
    let mut partial_sql = format!("SELECT {} FROM {from_text}", partial_items.join(", "));
    if let Some(w) = &select.selection {
        partial_sql.push_str(&format!(" WHERE {w}"));
    }
    let group_keys: Vec<String> = (0..groups.len()).map(|i| format!("__g{i}")).collect();
    if !groups.is_empty() {
        partial_sql.push_str(&format!(" GROUP BY {}", group_texts.join(", ")));
    }
    let mut combine_items = group_keys.clone();
    combine_items.extend(
        rw.combines
            .iter()
            .enumerate()
            .map(|(i, f)| format!("{f}(__p{i}) AS __p{i}")),
    );
    let combine_group = if group_keys.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", group_keys.join(", "))
    };
    let combine_sql = format!(
        "SELECT {} FROM {SPEED_PARTS}{combine_group}",
        combine_items.join(", ")
    );
    let incremental_sql = format!(
        "SELECT {} FROM (SELECT * FROM {BATCH_PARTS} UNION ALL {partial_sql}) AS __parts{combine_group}",
        combine_items.join(", ")
    );
    let mut merge_tail = String::new();
    if !group_keys.is_empty() {
        merge_tail.push_str(&format!(" GROUP BY {}", group_keys.join(", ")));
    }
    merge_tail.push_str(&having);
    Ok(Decomposition {
        source,
        partial_sql,
        merge_select: merge_items.join(", "),
        merge_tail,
        combine_sql,
        incremental_sql,
        columns,
    })
}

/// Whether `e` calls an aggregate function (outside a window).
fn has_aggregate(e: &Expr) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        if let Expr::Function(f) = x
            && f.over.is_none()
        {
            let name = f.name.to_string().to_ascii_lowercase();
            found |= AGGREGATES.contains(&name.as_str());
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// Aggregate names recognised in definitions (supported or refused with advice).
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "mean",
    "bool_and",
    "bool_or",
    "median",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "approx_distinct",
    "approx_percentile_cont",
    "approx_median",
    "array_agg",
    "string_agg",
    "first_value",
    "last_value",
    "stddev",
    "stddev_samp",
    "stddev_pop",
    "variance",
    "var_samp",
    "var_pop",
    "corr",
    "covar_samp",
    "covar_pop",
    "any_value",
    "bit_and",
    "bit_or",
    "bit_xor",
];

fn refuse(msg: &str) -> ViewError {
    ViewError::Refused(msg.to_string())
}

/// An identifier as PostgreSQL resolves it: unquoted names fold to lower case.
fn folded(i: &Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_ascii_lowercase(),
    }
}

fn part_name(p: &ObjectNamePart) -> String {
    match p.as_ident() {
        Some(i) => folded(i),
        None => p.to_string().to_ascii_lowercase(),
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// PostgreSQL's default output name: the column or function name, else `?column?`.
fn default_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => folded(i),
        Expr::CompoundIdentifier(parts) => parts.last().map(folded).unwrap_or_default(),
        Expr::Function(f) => f.name.0.last().map(part_name).unwrap_or_default(),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => default_name(expr),
        _ => "?column?".into(),
    }
}

/// The value and the other arguments of `approx_percentile_cont(x, q [, size])`,
/// `approx_percentile_cont(q [, size]) WITHIN GROUP (ORDER BY x)` or
/// `approx_median(x)`.
fn percentile_args(
    f: &sqlparser::ast::Function,
    name: &str,
) -> std::result::Result<(String, Vec<String>), String> {
    let args: Vec<String> = match &f.args {
        FunctionArguments::List(l) => l.args.iter().map(|a| a.to_string()).collect(),
        _ => Vec::new(),
    };
    let usage = "use approx_percentile_cont(column, fraction) or approx_percentile_cont(fraction) WITHIN GROUP (ORDER BY column)";
    if let Some(order) = f.within_group.first() {
        if f.within_group.len() != 1 || args.is_empty() || args.len() > 2 {
            return Err(format!("{name}: {usage}"));
        }
        return Ok((order.expr.to_string(), args));
    }
    match (name, args.as_slice()) {
        ("approx_median", [x]) => Ok((x.clone(), Vec::new())),
        ("approx_percentile_cont", [x, rest @ ..]) if (1..=2).contains(&rest.len()) => {
            Ok((x.clone(), rest.to_vec()))
        }
        _ => Err(format!("{name}: {usage}")),
    }
}

/// Replaces group keys with `__gN` and aggregates with placeholders `__mN__` whose
/// merge expressions are substituted textually afterwards (so that the merge
/// expression's own aggregate calls are not rewritten again).
struct Rewriter<'a> {
    groups: &'a [String],
    partials: Vec<String>,
    /// How partial `__pN` folds into itself (parallel to `partials`).
    combines: Vec<&'static str>,
    merges: Vec<String>,
    error: Option<ViewError>,
}

impl Rewriter<'_> {
    fn partial(&mut self, text: String, combine: &'static str) -> String {
        let i = self
            .partials
            .iter()
            .position(|p| *p == text)
            .unwrap_or_else(|| {
                self.partials.push(text);
                self.combines.push(combine);
                self.partials.len() - 1
            });
        format!("__p{i}")
    }

    fn placeholder(&mut self, merge: String) -> Expr {
        self.merges.push(merge);
        Expr::Identifier(Ident::new(format!("__m{}__", self.merges.len() - 1)))
    }

    fn expand(&self, text: &str) -> String {
        let mut out = text.to_string();
        // Highest index first so that __m1__ never matches inside __m11__.
        for (i, m) in self.merges.iter().enumerate().rev() {
            out = out.replace(&format!("__m{i}__"), m);
        }
        out
    }

    fn aggregate(&mut self, e: &Expr) -> std::result::Result<Option<Expr>, ViewError> {
        let Expr::Function(f) = e else {
            return Ok(None);
        };
        let name = f
            .name
            .0
            .last()
            .map(|p| p.to_string().to_ascii_lowercase())
            .unwrap_or_default();
        if f.over.is_some() {
            return Err(refuse(&format!(
                "window function {name}(...) OVER cannot be maintained incrementally; use a plain view (CREATE VIEW) over the raw table"
            )));
        }
        let distinct = matches!(&f.args, FunctionArguments::List(l) if l.duplicate_treatment.is_some_and(|d| d.to_string().eq_ignore_ascii_case("DISTINCT")));
        let args_text = match &f.args {
            FunctionArguments::List(l) => l
                .args
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        };
        let single_arg = match &f.args {
            FunctionArguments::List(l) if l.args.len() == 1 => Some(&l.args[0]),
            _ => None,
        };
        let is_star = matches!(
            single_arg,
            Some(FunctionArg::Unnamed(FunctionArgExpr::Wildcard))
        );
        let filter = f
            .filter
            .as_ref()
            .map(|w| format!(" FILTER (WHERE {w})"))
            .unwrap_or_default();
        let text = e.to_string();
        let merge = match name.as_str() {
            "count" if distinct => {
                return Err(refuse(&format!(
                    "{text}: an exact count(DISTINCT ...) cannot be merged across the batch and speed layers; use approx_distinct({args_text}) in the materialized view, or a plain view (CREATE VIEW) over the raw table for an exact answer"
                )));
            }
            _ if distinct => {
                return Err(refuse(&format!(
                    "{text}: DISTINCT aggregates cannot be merged exactly; use a plain view (CREATE VIEW) over the raw table"
                )));
            }
            "count" => {
                let p = self.partial(text, "sum");
                format!("CAST(coalesce(sum({p}), 0) AS BIGINT)")
            }
            "sum" => format!("sum({})", self.partial(text, "sum")),
            "min" => format!("min({})", self.partial(text, "min")),
            "max" => format!("max({})", self.partial(text, "max")),
            "bool_and" => format!("bool_and({})", self.partial(text, "bool_and")),
            "bool_or" => format!("bool_or({})", self.partial(text, "bool_or")),
            "avg" | "mean" if !is_star && single_arg.is_some() => {
                let s = self.partial(format!("sum({args_text}){filter}"), "sum");
                let c = self.partial(format!("count({args_text}){filter}"), "sum");
                format!("(CAST(sum({s}) AS DOUBLE PRECISION) / CAST(sum({c}) AS DOUBLE PRECISION))")
            }
            "median" | "percentile_cont" | "percentile_disc" | "mode" => {
                return Err(refuse(&format!(
                    "{text} cannot be merged exactly; use approx_percentile_cont({args_text}, 0.5) in the materialized view, or a plain view (CREATE VIEW) over the raw table"
                )));
            }
            "approx_distinct" if single_arg.is_some() && !is_star => {
                let p = self.partial(format!("__hll_sketch({args_text}){filter}"), "__hll_merge");
                format!("__hll_count({p})")
            }
            "approx_percentile_cont" | "approx_median" => {
                let (value, rest) = percentile_args(f, &name).map_err(|m| refuse(&m))?;
                let q = rest.first().cloned().unwrap_or_else(|| "0.5".into());
                let size = rest.get(1).map(|s| format!(", {s}")).unwrap_or_default();
                let p = self.partial(
                    format!("__tdigest_sketch(CAST({value} AS DOUBLE PRECISION){size}){filter}"),
                    "__tdigest_merge",
                );
                format!("__tdigest_quantile({p}, {q})")
            }
            "array_agg" | "string_agg" | "first_value" | "last_value" | "stddev"
            | "stddev_samp" | "stddev_pop" | "variance" | "var_samp" | "var_pop" | "corr"
            | "covar_samp" | "covar_pop" | "any_value" | "bit_and" | "bit_or" | "bit_xor" => {
                return Err(refuse(&format!(
                    "{text} is not supported in materialized views yet; the supported aggregates are count, sum, min, max, avg, bool_and, bool_or, approx_distinct, approx_percentile_cont and approx_median; use a plain view (CREATE VIEW) over the raw table"
                )));
            }
            _ => return Ok(None),
        };
        Ok(Some(self.placeholder(merge)))
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if self.error.is_some() {
            return ControlFlow::Break(());
        }
        let text = expr.to_string();
        if let Some(i) = self.groups.iter().position(|g| *g == text) {
            *expr = Expr::Identifier(Ident::new(format!("__g{i}")));
            return ControlFlow::Continue(());
        }
        match self.aggregate(expr) {
            Ok(Some(replacement)) => *expr = replacement,
            Ok(None) => {
                if let Expr::Identifier(id) = expr
                    && !id.value.starts_with("__")
                {
                    self.error = Some(ViewError::Grouping(format!(
                        "column \"{}\" must appear in the GROUP BY clause or be used in an aggregate function",
                        id.value
                    )));
                    return ControlFlow::Break(());
                }
                if let Expr::CompoundIdentifier(parts) = expr {
                    self.error = Some(ViewError::Grouping(format!(
                        "column \"{}\" must appear in the GROUP BY clause or be used in an aggregate function",
                        parts
                            .iter()
                            .map(|p| p.value.clone())
                            .collect::<Vec<_>>()
                            .join(".")
                    )));
                    return ControlFlow::Break(());
                }
            }
            Err(e) => {
                self.error = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
#[path = "decompose_tests.rs"]
mod tests;
