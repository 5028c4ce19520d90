"""Materialized views against the raw table, the result cache, and the speed
layer's cost (issue 4's benchmark; prints figures, asserts nothing).

Starts Tansu and `lambdadb serve`, produces N demo events (10 million by
default), refreshes the demo view so the batch layer covers them, produces a
further 1% so the speed layer holds state too, then through the wire (psycopg,
simple protocol):

- the demo dashboard queries from `events_hourly` and the same questions over
  the raw `events` table (result cache off for both: `lambdadb.result_cache`);
- the result cache's hit latency (round trip, an upper bound of server time);
- the speed layer's fold cost (from `lambdadb.views`) while events stream in.

    cargo build --release -p lambdadb
    .venv/bin/python bench/views.py [--events 10000000] [--bin target/release/lambdadb]
"""

import argparse
import math
import statistics
import time

from stack import stack

# (what, from the view, over the raw table)
DASHBOARD = [
    ("events per hour",
     "SELECT hour, sum(events) FROM events_hourly GROUP BY hour ORDER BY hour",
     "SELECT date_trunc('hour', event_time) AS hour, count(*) FROM events GROUP BY 1 ORDER BY 1"),
    ("revenue by country",
     "SELECT country, sum(revenue) AS r FROM events_hourly GROUP BY country ORDER BY r DESC NULLS LAST",
     "SELECT country, sum(revenue) AS r FROM events GROUP BY country ORDER BY r DESC NULLS LAST"),
    ("event types, last 6 hours",
     "SELECT event_type, sum(events) FROM events_hourly WHERE hour >= (SELECT max(hour) FROM events_hourly) "
     "- INTERVAL '6 hours' GROUP BY 1 ORDER BY 2 DESC",
     "SELECT event_type, count(*) FROM events WHERE date_trunc('hour', event_time) >= "
     "(SELECT max(date_trunc('hour', event_time)) FROM events) - INTERVAL '6 hours' GROUP BY 1 ORDER BY 2 DESC"),
    ("purchases per hour and country",
     "SELECT hour, country, sum(events) FROM events_hourly WHERE event_type = 'purchase' "
     "GROUP BY 1, 2 ORDER BY 1, 2",
     "SELECT date_trunc('hour', event_time), country, count(*) FROM events WHERE event_type = 'purchase' "
     "GROUP BY 1, 2 ORDER BY 1, 2"),
]


def timed(conn, sql, runs):
    conn.execute(sql).fetchall()  # warm
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        rows = conn.execute(sql).fetchall()
        times.append(time.perf_counter() - t)
    return times, rows


def same_rows(a, b):
    """Equal rows, floats within 1e-9 relative (sums of doubles depend on order)."""
    def eq(x, y):
        if isinstance(x, float) and isinstance(y, float):
            return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
        return x == y
    return len(a) == len(b) and all(
        len(r) == len(s) and all(eq(x, y) for x, y in zip(r, s)) for r, s in zip(a, b))


def pctl(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bin", default=None)
    args = ap.parse_args()
    env = {"LAMBDADB_ARCHIVE_INTERVAL": "5s"}
    with stack(args.bin, args.partitions, env) as (harness, broker, server, tmp):
        n, extra = args.events, max(args.events // 100, 1000)
        print(f"generating {n:,} + {extra:,} events ...", flush=True)
        main_file = harness.generate(tmp / "main.jsonl", n, seed=1, start="2026-01-01T00:00:00Z",
                                     rate=200.0)
        extra_file = harness.generate(tmp / "extra.jsonl", extra, seed=2,
                                      start="2026-01-01T06:00:00Z", rate=200.0)
        t0 = time.perf_counter()
        harness.produce(broker.brokers, "events", main_file)
        server.wait_count(n, timeout=3600)
        t1 = time.perf_counter()
        print(f"ingested {n:,} events in {t1 - t0:.1f} s ({n / (t1 - t0):,.0f}/s end to end)", flush=True)
        server.query("REFRESH MATERIALIZED VIEW events_hourly")
        t2 = time.perf_counter()
        # The speed layer: produce the extra events and watch the folds.
        with server.connect() as c:
            before = c.execute("SELECT folds, fold_events, fold_ms FROM lambdadb.views "
                               "WHERE view_name = 'events_hourly'").fetchone()
        harness.produce(broker.brokers, "events", extra_file)
        server.wait_count(n + extra, timeout=600)
        time.sleep(1.0)  # one more fold interval
        with server.connect() as c:
            *after, groups = c.execute(
                "SELECT folds, fold_events, fold_ms, speed_groups FROM lambdadb.views "
                "WHERE view_name = 'events_hourly'").fetchone()
        folds = after[0] - before[0]
        fold_events = after[1] - before[1]
        fold_ms = after[2] - before[2]

        print()
        print(f"binary: {harness.BIN}")
        print(f"events: {n:,} in the batch view + {extra:,} in the speed layer, "
              f"{args.partitions} partitions; median of {args.runs} warm runs, result cache off")
        print(f"REFRESH over {n:,} events: {t2 - t1:.2f} s")
        print()
        print(f"{'dashboard query':34} {'view ms':>9} {'raw ms':>9} {'raw/view':>9}")
        ratios = []
        with server.connect() as c:
            c.execute("SET lambdadb.result_cache = off")
            for what, view_sql, raw_sql in DASHBOARD:
                vt, vrows = timed(c, view_sql, args.runs)
                rt, rrows = timed(c, raw_sql, args.runs)
                same = same_rows(vrows, rrows)
                v, r = statistics.median(vt), statistics.median(rt)
                ratios.append(r / v)
                print(f"{what:34} {1000 * v:9.1f} {1000 * r:9.1f} {r / v:8.1f}x"
                      f"{'' if same else '  (answers differ!)'}")
        print(f"{'geometric mean':34} {'':9} {'':9} {statistics.geometric_mean(ratios):8.1f}x")
        print()
        with server.connect() as c:
            q = DASHBOARD[0][1]
            c.execute(q).fetchall()
            hits = []
            for _ in range(2000):
                t = time.perf_counter()
                c.execute(q).fetchall()
                hits.append(time.perf_counter() - t)
            c.execute("SET lambdadb.result_cache = off")
            miss = [timed(c, q, 1)[0][0] for _ in range(20)]
            stats = c.execute("SELECT hits, misses, entries, bytes FROM lambdadb.cache").fetchone()
        print(f"cache hit round trip (2,000 runs): p50 {1e3 * pctl(hits, 0.5):.3f} ms, "
              f"p99 {1e3 * pctl(hits, 0.99):.3f} ms; the same query computed: "
              f"p50 {1e3 * pctl(miss, 0.5):.1f} ms")
        print(f"lambdadb.cache: hits {stats[0]}, misses {stats[1]}, entries {stats[2]}, bytes {stats[3]}")
        print()
        print(f"speed layer: {fold_events:,.0f} events folded in {folds:.0f} folds, "
              f"{fold_ms:.1f} ms in all: {fold_ms / max(folds, 1):.2f} ms per fold, "
              f"{1000 * fold_ms / max(fold_events, 1):.2f} us per event; "
              f"{groups} groups in the speed state")


if __name__ == "__main__":
    main()
