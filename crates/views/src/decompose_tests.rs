//! Unit tests of `decompose` (kept apart to keep the module short).
use super::*;

fn cols(name: &str) -> Option<Vec<String>> {
    (name == "events").then(|| {
        ["event_time", "event_type", "country", "revenue", "user_id"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    })
}

#[test]
fn hourly_view() {
    let d = decompose(
        "SELECT date_trunc('hour', event_time) AS hour, event_type, country, count(*) AS events, sum(revenue) AS revenue FROM events GROUP BY 1, 2, 3",
        &cols,
    )
    .unwrap();
    assert_eq!(d.source, "events");
    assert_eq!(
        d.columns,
        vec!["hour", "event_type", "country", "events", "revenue"]
    );
    assert_eq!(
        d.partial_sql,
        "SELECT date_trunc('hour', event_time) AS __g0, event_type AS __g1, country AS __g2, count(*) AS __p0, sum(revenue) AS __p1 FROM events GROUP BY date_trunc('hour', event_time), event_type, country"
    );
    let m = d.merge_sql();
    assert!(m.starts_with("SELECT __g0 AS \"hour\", __g1 AS \"event_type\", __g2 AS \"country\", CAST(coalesce(sum(__p0), 0) AS BIGINT) AS \"events\", sum(__p1) AS \"revenue\" FROM"), "{m}");
    assert!(m.ends_with("GROUP BY __g0, __g1, __g2"), "{m}");
}

#[test]
fn avg_expressions_having_and_filters() {
    let d = decompose(
        "SELECT country, avg(revenue) AS a, sum(revenue) / count(*) AS per_event, max(revenue) FROM events WHERE event_type = 'purchase' GROUP BY country HAVING count(*) > 10",
        &cols,
    )
    .unwrap();
    assert!(d.partial_sql.contains("WHERE event_type = 'purchase'"));
    assert_eq!(d.columns[3], "max");
    let m = d.merge_sql();
    assert!(m.contains("HAVING CAST(coalesce(sum(__p"), "{m}");
    // count(*) appears twice but is computed once.
    assert_eq!(
        d.partial_sql.matches("count(*)").count(),
        1,
        "{}",
        d.partial_sql
    );
}

#[test]
fn refusals_name_the_alternative() {
    let err = |sql: &str| decompose(sql, &cols).unwrap_err().to_string();
    assert!(
        err("SELECT country, count(DISTINCT user_id) FROM events GROUP BY country")
            .contains("approx_distinct(user_id)")
    );
    assert!(
        err("SELECT country, median(revenue) FROM events GROUP BY country")
            .contains("approx_percentile_cont")
    );
    assert!(err("SELECT country, count(*) FROM events GROUP BY country LIMIT 3").contains("LIMIT"));
    assert!(
        err("SELECT country, revenue FROM events GROUP BY country").contains("GROUP BY clause")
    );
    assert!(
        err("SELECT country, row_number() OVER () FROM events GROUP BY country")
            .contains("plain view")
    );
    assert!(err("SELECT count(*) FROM nope").contains("not a source table"));
    assert!(err("SELECT country FROM events").contains("plain view"));
}
