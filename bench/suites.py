"""The query suites and how they are timed.

Every query runs once to warm caches (file pages, DataFusion's and DuckDB's
metadata, PostgreSQL's buffers), then `runs` more times; a figure is the median
of those runs, its spread the range (max - min) over the median.
"""

import statistics
import time
from pathlib import Path

from data import click_span, log

TPCH_DIR = Path(__file__).resolve().parent / "tpch"


def tpch_queries():
    return [(f"Q{i}", (TPCH_DIR / f"q{i:02d}.sql").read_text()) for i in range(1, 23)]


def timed(engine, sql, runs):
    rows = engine.run(sql)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        engine.run(sql)
        times.append(time.perf_counter() - t)
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "rows": rows}


def run_suite(engines, queries, runs):
    """{engine name: {query name: figure}}; queries maps name -> sql or
    name -> {engine name: sql} (engines without an entry skip the query).
    Engines take turns query by query, so that drift over the run (page cache,
    background work, the machine's clock) falls on all of them alike."""
    out = {e.name: {} for e in engines}
    spent = {e.name: 0.0 for e in engines}
    for name, q in queries:
        for e in engines:
            sql = q.get(e.name) if isinstance(q, dict) else q
            if sql is None:
                continue
            t = time.time()
            try:
                out[e.name][name] = timed(e, sql, runs)
            except Exception as ex:  # a failing query is a result, not a crash
                out[e.name][name] = {"error": str(ex).splitlines()[0][:200]}
                log(f"{e.name} {name}: {out[e.name][name]['error']}")
            spent[e.name] += time.time() - t
    for e in engines:
        log(f"{e.name}: {len(out[e.name])} queries in {spent[e.name]:.1f} s")
    return out


# Materialized views a dashboard author declares for the panels below: one per
# panel shape, at the coarsest time grain the panel needs.
DASHBOARD_VIEWS = [
    """CREATE MATERIALIZED VIEW dash_hourly AS
       SELECT date_trunc('hour', event_time) AS hour, event_type,
              count(*) AS events, sum(revenue) AS revenue
       FROM events GROUP BY 1, 2""",
    """CREATE MATERIALIZED VIEW dash_country_daily AS
       SELECT date_trunc('day', event_time) AS day, country, event_type,
              count(*) AS events, sum(revenue) AS revenue
       FROM events GROUP BY 1, 2, 3""",
    """CREATE MATERIALIZED VIEW dash_device_daily AS
       SELECT date_trunc('day', event_time) AS day, device, event_type, count(*) AS events
       FROM events GROUP BY 1, 2, 3""",
    """CREATE MATERIALIZED VIEW dash_pages_daily AS
       SELECT date_trunc('day', event_time) AS day, page, count(*) AS views
       FROM events WHERE event_type = 'page_view' GROUP BY 1, 2""",
    """CREATE MATERIALIZED VIEW dash_users_hourly AS
       SELECT date_trunc('hour', event_time) AS hour, approx_distinct(user_id) AS users
       FROM events GROUP BY 1""",
    """CREATE MATERIALIZED VIEW dash_duration_hourly AS
       SELECT date_trunc('hour', event_time) AS hour,
              approx_percentile_cont(duration_ms, 0.5) AS p50,
              approx_percentile_cont(duration_ms, 0.95) AS p95
       FROM events WHERE event_type = 'page_view' GROUP BY 1""",
]


def dashboard_queries(events):
    """(name, raw SQL, view SQL or None): panels of the kind Grafana and
    Metabase send, over the last 7 days (day-aligned) of the clickstream."""
    from datetime import timedelta
    _, end = click_span(events)
    t1 = (end + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    t0, d1 = t1 - timedelta(days=7), t1 - timedelta(days=1)
    q = lambda t: f"'{t.strftime('%Y-%m-%d %H:%M:%S')}+00'"  # noqa: E731
    rng = f"event_time >= {q(t0)} AND event_time < {q(t1)}"
    hrs = f"hour >= {q(t0)} AND hour < {q(t1)}"
    days = f"day >= {q(t0)} AND day < {q(t1)}"
    return [
        ("events per hour",
         f"SELECT date_trunc('hour', event_time) AS t, count(*) AS n FROM events WHERE {rng} GROUP BY 1 ORDER BY 1",
         f"SELECT hour AS t, sum(events) AS n FROM dash_hourly WHERE {hrs} GROUP BY 1 ORDER BY 1"),
        ("events per hour by type",
         f"SELECT date_trunc('hour', event_time) AS t, event_type, count(*) AS n FROM events WHERE {rng} "
         "GROUP BY 1, 2 ORDER BY 1, 2",
         f"SELECT hour AS t, event_type, events AS n FROM dash_hourly WHERE {hrs} ORDER BY 1, 2"),
        ("top 10 pages",
         f"SELECT page, count(*) AS views FROM events WHERE event_type = 'page_view' AND {rng} "
         "GROUP BY page ORDER BY views DESC, page LIMIT 10",
         f"SELECT page, sum(views) AS views FROM dash_pages_daily WHERE {days} "
         "GROUP BY page ORDER BY views DESC, page LIMIT 10"),
        ("revenue by country",
         f"SELECT country, sum(revenue) AS revenue FROM events WHERE {rng} "
         "GROUP BY country ORDER BY revenue DESC NULLS LAST, country",
         f"SELECT country, sum(revenue) AS revenue FROM dash_country_daily WHERE {days} "
         "GROUP BY country ORDER BY revenue DESC NULLS LAST, country"),
        ("distinct users per hour",
         f"SELECT date_trunc('hour', event_time) AS t, count(DISTINCT user_id) AS users FROM events "
         f"WHERE {rng} GROUP BY 1 ORDER BY 1",
         f"SELECT hour AS t, users FROM dash_users_hourly WHERE {hrs} ORDER BY 1"),
        ("duration p50/p95 per hour",
         "SELECT date_trunc('hour', event_time) AS t, "
         "percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50, "
         "percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95 "
         f"FROM events WHERE event_type = 'page_view' AND {rng} GROUP BY 1 ORDER BY 1",
         f"SELECT hour AS t, p50, p95 FROM dash_duration_hourly WHERE {hrs} ORDER BY 1"),
        ("revenue and purchases per day",
         "SELECT date_trunc('day', event_time) AS d, sum(revenue) AS revenue, "
         "count(*) FILTER (WHERE event_type = 'purchase') AS purchases FROM events GROUP BY 1 ORDER BY 1",
         "SELECT date_trunc('day', hour) AS d, sum(revenue) AS revenue, "
         "sum(events) FILTER (WHERE event_type = 'purchase') AS purchases FROM dash_hourly GROUP BY 1 ORDER BY 1"),
        ("events by device and type",
         f"SELECT device, event_type, count(*) AS n FROM events WHERE {rng} GROUP BY 1, 2 ORDER BY 1, 2",
         f"SELECT device, event_type, sum(events) AS n FROM dash_device_daily WHERE {days} "
         "GROUP BY 1, 2 ORDER BY 1, 2"),
        ("last 24 hours: events and revenue",
         f"SELECT count(*) AS n, sum(revenue) AS revenue FROM events "
         f"WHERE event_time >= {q(d1)} AND event_time < {q(t1)}",
         f"SELECT sum(events) AS n, sum(revenue) AS revenue FROM dash_hourly "
         f"WHERE hour >= {q(d1)} AND hour < {q(t1)}"),
        ("purchases per day and country",
         f"SELECT date_trunc('day', event_time) AS d, country, count(*) AS n FROM events "
         f"WHERE event_type = 'purchase' AND {rng} GROUP BY 1, 2 ORDER BY 1, 2",
         f"SELECT day AS d, country, events AS n FROM dash_country_daily "
         f"WHERE event_type = 'purchase' AND {days} ORDER BY 1, 2"),
        ("one user's last 100 events",
         "SELECT * FROM events WHERE user_id = 4242 ORDER BY event_time DESC LIMIT 100", None),
        ("table preview (LIMIT 1000)", "SELECT * FROM events LIMIT 1000", None),
    ]


LARGE_RESULT = "SELECT * FROM events LIMIT 1000000"
