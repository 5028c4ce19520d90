//! Functions whose value changes between evaluations (the clock, random
//! numbers): a view calling them cannot be maintained, because the batch layer
//! and the speed layer would evaluate them at different moments, and a full
//! recompute would give another answer. Such definitions are refused; the
//! advice is to compute in the query that reads the view.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Statement, visit_expressions};

use crate::error::{Result, ViewError};

/// Volatile and clock functions (PostgreSQL's and DataFusion's names).
const VOLATILE: &[&str] = &[
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtime",
    "localtimestamp",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "random",
    "setseed",
    "uuid",
    "gen_random_uuid",
    "nextval",
    "pg_backend_pid",
];

/// Refuses a definition that calls a volatile function anywhere.
pub fn refuse_volatile(stmt: &Statement) -> Result<()> {
    let mut found = None;
    let _ = visit_expressions(stmt, |e| {
        if let Expr::Function(f) = e {
            let name = f
                .name
                .0
                .last()
                .map(|p| p.to_string().trim_matches('"').to_ascii_lowercase())
                .unwrap_or_default();
            if VOLATILE.contains(&name.as_str()) {
                found = Some(name);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    match found {
        Some(name) => Err(ViewError::Refused(format!(
            "a materialized view cannot call {name}(): its value changes between evaluations, so the batch and speed layers would disagree and a recompute would change the answer; \
             compare with {name}() in the queries you run on the view (or in a plain view over it)"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn check(sql: &str) -> Result<()> {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap();
        refuse_volatile(&stmt)
    }

    #[test]
    fn refuses_clock_and_random_functions() {
        for sql in [
            "SELECT count(*) FROM events WHERE event_time > now() - interval '1 hour'",
            "SELECT count(*) FROM events WHERE event_time > CURRENT_TIMESTAMP",
            "SELECT sum(random()) FROM events",
            "SELECT date_trunc('day', CURRENT_DATE) AS d, count(*) FROM events GROUP BY 1",
        ] {
            let e = check(sql).unwrap_err().to_string();
            assert!(e.contains("cannot call"), "{sql}: {e}");
        }
        check("SELECT user_id, count(*) FROM events GROUP BY user_id").unwrap();
    }
}
