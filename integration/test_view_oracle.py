"""The invariant for materialized views, checked against an oracle outside
lambdadb: at every checkpoint, each view's answer through the wire equals the
same SQL run by DuckDB over every event produced so far.

The stream has late events (5%, up to two hours early). Between checkpoints a
seeded random schedule refreshes some views (incrementally, in full, or rolls
them back to an older version; sometimes while the next chunk is still being
consumed) and restarts the server twice, so answers come from every
mix of batch version, folded speed state and events not folded yet.

Column kinds: K group key, E exact (floats within 1e-9 relative), D approximate
distinct count (HyperLogLog, 2^14 registers: standard error 0.81%; accepted
within 3% or 2), P approximate percentile (t-digest: accepted between DuckDB's
exact quantiles at q - 0.05 and q + 0.05)."""

import math
import random
import shutil
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from harness import ROOT, generate, produce

CHUNKS = 12
PER_CHUNK = 1500
BASE = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def pct(col, q, where=None):
    """DuckDB's bounds for approx_percentile_cont(col, q)."""
    f = f" FILTER (WHERE {where})" if where else ""
    lo, hi = max(q - 0.05, 0), min(q + 0.05, 1)
    return f"list_value(quantile_cont({col}, {lo}){f}, quantile_cont({col}, {hi}){f})"


# (name, kinds, lambdadb definition, DuckDB query or None for the same text)
VIEWS = [
    ("v01_types", "KE", "SELECT event_type, count(*) AS n FROM events GROUP BY event_type", None),
    ("v02_hourly", "KKKEE",
     "SELECT date_trunc('hour', event_time) AS hour, event_type, country, count(*) AS events, "
     "sum(revenue) AS revenue FROM events GROUP BY 1, 2, 3", None),
    ("v03_counts", "KEE",
     "SELECT device, count(revenue) AS with_revenue, count(country) AS with_country FROM events "
     "GROUP BY device", None),
    ("v04_int_sums", "KEE",
     "SELECT country, sum(duration_ms) AS duration, sum(user_id) AS users FROM events GROUP BY country",
     None),
    ("v05_min_max", "KEEEEEE",
     "SELECT event_type, min(revenue) AS lo, max(revenue) AS hi, min(event_time) AS first, "
     "max(event_time) AS last, min(page) AS pmin, max(page) AS pmax FROM events GROUP BY event_type",
     None),
    ("v06_avg", "KEE",
     "SELECT country, avg(revenue) AS rev, avg(duration_ms) AS dur FROM events GROUP BY country", None),
    ("v07_bools", "KEE",
     "SELECT device, bool_and(duration_ms > 0) AS all_timed, bool_or(revenue > 150) AS big_sale "
     "FROM events GROUP BY device", None),
    ("v08_reach", "KD",
     "SELECT country, approx_distinct(user_id) AS users FROM events GROUP BY country",
     "SELECT country, count(DISTINCT user_id) FROM events GROUP BY country"),
    ("v09_percentiles", "KPP",
     "SELECT event_type, approx_percentile_cont(duration_ms, 0.5) AS p50, "
     "approx_percentile_cont(duration_ms, 0.9) AS p90 FROM events GROUP BY event_type",
     f"SELECT event_type, {pct('duration_ms', 0.5)}, {pct('duration_ms', 0.9)} FROM events "
     "GROUP BY event_type"),
    ("v10_where", "KEE",
     "SELECT country, count(*) AS orders, sum(revenue) AS revenue FROM events "
     "WHERE event_type = 'purchase' GROUP BY country", None),
    ("v11_date_bin", "KE",
     "SELECT date_bin(INTERVAL '15 minutes', event_time, TIMESTAMPTZ '2020-01-01 00:00:00+00') AS q, "
     "count(*) AS n FROM events GROUP BY 1",
     "SELECT time_bucket(INTERVAL '15 minutes', event_time, TIMESTAMP '2020-01-01 00:00:00') AS q, "
     "count(*) FROM events GROUP BY 1"),
    ("v12_cast", "KE",
     "SELECT CAST(event_time AS DATE) AS day, count(*) AS n FROM events GROUP BY 1", None),
    ("v13_case", "KEE",
     "SELECT CASE WHEN revenue IS NULL THEN 'free' WHEN revenue < 50 THEN 'small' ELSE 'big' END AS tier, "
     "count(*) AS n, sum(revenue) AS revenue FROM events GROUP BY 1", None),
    ("v14_strings", "KKE",
     "SELECT lower(country) AS cc, substr(page, 1, 6) AS section, count(*) AS n FROM events GROUP BY 1, 2",
     None),
    ("v15_expr", "KEE",
     "SELECT country, sum(revenue) / count(*) AS per_event, max(duration_ms) - min(duration_ms) AS spread "
     "FROM events GROUP BY country", None),
    ("v16_having", "KE",
     "SELECT page, count(*) AS n FROM events GROUP BY page HAVING count(*) >= 150", None),
    ("v17_global", "EEED",
     "SELECT count(*) AS n, sum(revenue) AS revenue, avg(duration_ms) AS dur, "
     "approx_distinct(session_id) AS sessions FROM events",
     "SELECT count(*), sum(revenue), avg(duration_ms), count(DISTINCT session_id) FROM events"),
    ("v18_filter", "KEE",
     "SELECT country, count(*) FILTER (WHERE event_type = 'purchase') AS purchases, "
     "sum(revenue) FILTER (WHERE device = 'mobile') AS mobile_revenue FROM events GROUP BY country",
     None),
    ("v19_nulls", "KKEE",
     "SELECT country, device, min(duration_ms) AS fastest, count(*) AS n FROM events GROUP BY 1, 2", None),
    ("v20_within_group", "KPE",
     "SELECT date_trunc('day', event_time) AS day, "
     "approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY revenue) AS median_revenue, "
     "count(revenue) AS purchases FROM events GROUP BY 1",
     f"SELECT date_trunc('day', event_time), {pct('revenue', 0.5)}, count(revenue) FROM events GROUP BY 1"),
    ("v21_extract", "KEE",
     "SELECT EXTRACT(hour FROM event_time) AS h, count(*) AS n, avg(revenue) AS rev FROM events "
     "WHERE event_type <> 'page_view' GROUP BY 1", None),
]


def norm(v):
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return v.timestamp()
    if isinstance(v, Decimal):
        return float(v)
    if hasattr(v, "isoformat") and not isinstance(v, str):  # dates
        return v.isoformat()
    return v


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if a == b:
            return True
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def compare(name, kinds, got_rows, want_rows, checkpoint):
    keys = [i for i, k in enumerate(kinds) if k == "K"]

    def keyed(rows):
        out = {}
        for r in rows:
            r = [norm(v) for v in r]
            k = tuple(r[i] for i in keys)
            assert k not in out, f"{name}: group {k} appears twice (checkpoint {checkpoint})"
            out[k] = r
        return out

    got, want = keyed(got_rows), keyed(want_rows)
    assert set(got) == set(want), (
        f"{name} at checkpoint {checkpoint}: groups differ; missing {sorted(set(want) - set(got), key=str)[:3]}, "
        f"extra {sorted(set(got) - set(want), key=str)[:3]}")
    for k, w in want.items():
        g = got[k]
        for i, kind in enumerate(kinds):
            where = f"{name}[{k}] column {i} at checkpoint {checkpoint}: got {g[i]!r}, want {w[i]!r}"
            if kind == "D":
                assert g[i] is not None and abs(g[i] - w[i]) <= max(2, 0.03 * w[i]), where
            elif kind == "P":
                lo, hi = w[i]
                if lo is None:
                    assert g[i] is None, where
                else:
                    assert lo - 1e-9 <= g[i] <= hi + 1e-9, where
            else:
                assert close(g[i], w[i]), where


def oracle(files):
    db = duckdb.connect()
    paths = ", ".join(f"'{f}'" for f in files)
    db.execute(f"""CREATE TABLE raw AS SELECT * FROM read_json([{paths}], format = 'newline_delimited',
        columns = {{event_time: 'VARCHAR', user_id: 'BIGINT', session_id: 'VARCHAR', event_type: 'VARCHAR',
                   page: 'VARCHAR', country: 'VARCHAR', device: 'VARCHAR', duration_ms: 'INTEGER',
                   revenue: 'DOUBLE'}})""")
    db.execute("""CREATE TABLE events AS SELECT * REPLACE (
        CAST(replace(replace(event_time, 'T', ' '), 'Z', '') AS TIMESTAMP) AS event_time) FROM raw""")
    return db


@pytest.fixture
def sql_dir(tmp_path):
    d = tmp_path / "sql"
    d.mkdir()
    shutil.copy(ROOT / "sql" / "001_events.sql", d)
    (d / "100_views.sql").write_text(
        "\n".join(f"CREATE MATERIALIZED VIEW {n} AS {sql};" for n, _, sql, _ in VIEWS))
    return d


def test_views_equal_the_oracle_at_every_checkpoint(broker, make_server, sql_dir, tmp_path):
    assert len(VIEWS) >= 20
    broker.create_topic("events", 3)
    env = {"LAMBDADB_ARCHIVE_INTERVAL": "1s"}
    server = make_server(broker.brokers, env=env, sql_dir=sql_dir)
    rng = random.Random(20261126)
    restarts = set(rng.sample(range(2, CHUNKS), 2))
    files, total, refreshed, rolled_back = [], 0, 0, 0
    for c in range(CHUNKS):
        f = generate(tmp_path / f"chunk{c}.jsonl", PER_CHUNK, seed=1000 + c,
                     start=(BASE + timedelta(seconds=c * PER_CHUNK / 2.0)).isoformat(),
                     rate=2.0, late_fraction=0.05)
        files.append(f)
        produce(broker.brokers, "events", f)
        total += PER_CHUNK
        # Refresh some views (incrementally, in full, or back to an older
        # version), sometimes while the chunk is still being consumed.
        for name, *_ in rng.sample(VIEWS, rng.randint(0, 6)):
            how = rng.random()
            older = server.query(
                "SELECT version FROM lambdadb.view_versions WHERE view_name = %s "
                "AND NOT serving AND current_definition ORDER BY version", (name,))
            if how < 0.5 and older:
                server.query(f"ALTER MATERIALIZED VIEW {name} ROLLBACK TO VERSION "
                             f"{rng.choice(older)[0]}")
                rolled_back += 1
            else:
                full = " FULL" if how > 0.8 else ""
                server.query(f"REFRESH MATERIALIZED VIEW {name}{full}")
                refreshed += 1
        if c in restarts:
            server.stop()
            server.start()
        server.wait_count(total)
        db = oracle(files)
        for name, kinds, sql, duck in VIEWS:
            try:
                got = server.query(f"SELECT * FROM {name}")
            except Exception as e:
                raise AssertionError(f"{name} at checkpoint {c}: {e}") from e
            want = db.execute(duck or sql).fetchall()
            compare(name, kinds, got, want, c)
        db.close()
    assert refreshed > 10 and rolled_back >= 2, (refreshed, rolled_back)
    hows = dict(server.query("SELECT how, count(*) FROM lambdadb.view_versions GROUP BY how"))
    assert hows.get("incremental", 0) >= 5 and hows.get("full", 0) >= len(VIEWS), hows
    # Every layer took part: batch versions, folded speed state, restarts.
    rows = server.query("SELECT count(*) FROM lambdadb.views WHERE batch_version > 0")
    assert rows[0][0] >= 10
