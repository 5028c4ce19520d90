#!/usr/bin/env python3
"""Run the 22 TPC-H queries in this directory on DuckDB and DataFusion (and
optionally PostgreSQL) and compare the results.

    .venv/bin/python bench/tpch/check_queries.py [--data /tmp/tpch1] [--sf1] [1 3 22 ...]
    .venv/bin/python bench/tpch/check_queries.py --data DIR \
        --postgres 'host=/path/to/socket port=5432 user=postgres' --load-postgres

The data directory holds <table>.parquet for the eight TPC-H tables (as
written by tpchgen-cli parquet). Numbers are compared with a relative
tolerance of 1e-6 (or within one unit of a DECIMAL's last digit), strings
and dates exactly; row order is compared exactly when the query has an
ORDER BY, otherwise both results are sorted first. --sf1 also checks the row
counts known for scale factor 1. With --postgres each query also runs on that
server and is compared with DuckDB; --load-postgres first (re)creates the
tables there from the Parquet files (slow in Python beyond small scales).
Exits non-zero if any query fails or disagrees.
"""
import argparse
import datetime
import decimal
import math
import os
import re
import sys
import time

import duckdb
import datafusion

HERE = os.path.dirname(os.path.abspath(__file__))
TABLES = ["lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region"]
SF1_ROWS = {1: 4, 2: 100, 3: 10, 4: 5, 5: 5, 6: 1, 7: 4, 8: 2, 9: 175, 10: 20, 11: 1048,
            12: 2, 13: 42, 14: 1, 15: 1, 16: 18314, 17: 1, 18: 57, 19: 1, 20: 186,
            21: 100, 22: 7}
RTOL = 1e-6
# Keys for PostgreSQL, so that its correlated subqueries (Q2, Q17, Q20) are not
# full scans per outer row.
PG_KEYS = {
    "region": ["PRIMARY KEY (r_regionkey)"],
    "nation": ["PRIMARY KEY (n_nationkey)"],
    "supplier": ["PRIMARY KEY (s_suppkey)"],
    "customer": ["PRIMARY KEY (c_custkey)"],
    "part": ["PRIMARY KEY (p_partkey)"],
    "partsupp": ["PRIMARY KEY (ps_partkey, ps_suppkey)"],
    "orders": ["PRIMARY KEY (o_orderkey)"],
    "lineitem": ["PRIMARY KEY (l_orderkey, l_linenumber)"],
}
PG_INDEXES = ["CREATE INDEX ON lineitem (l_partkey, l_suppkey)",
              "CREATE INDEX ON orders (o_custkey)"]


def norm(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float, decimal.Decimal)):
        return float(v)
    return v


def rounding(v):
    """One unit in the last place of a DECIMAL value, else 0.

    Engines differ in the type of a DECIMAL average (DataFusion truncates
    avg(NUMERIC(15,2)) to 6 places, DuckDB returns a DOUBLE), so a value cut to
    its declared scale also counts as equal."""
    if isinstance(v, decimal.Decimal) and v.is_finite():
        return 10.0 ** v.as_tuple().exponent
    return 0.0


def same(a, b):
    tol = max(rounding(a), rounding(b))
    a, b = norm(a), norm(b)
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return (math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-9)
                or abs(a - b) <= tol * (1 + 1e-9))
    if isinstance(a, datetime.date) and isinstance(b, datetime.date):
        return a == b
    return type(a) is type(b) and a == b


def sort_key(row):
    return tuple((0, "") if v is None else (1, str(norm(v))) for v in row)


def compare(rows_a, rows_b, ordered):
    if len(rows_a) != len(rows_b):
        return f"row count {len(rows_a)} vs {len(rows_b)}"
    if not ordered:
        rows_a, rows_b = sorted(rows_a, key=sort_key), sorted(rows_b, key=sort_key)
    for i, (ra, rb) in enumerate(zip(rows_a, rows_b)):
        if len(ra) != len(rb):
            return f"row {i}: {len(ra)} vs {len(rb)} columns"
        for j, (a, b) in enumerate(zip(ra, rb)):
            if not same(a, b):
                return f"row {i} column {j}: {a!r} vs {b!r}"
    return None


def has_order_by(sql):
    # Only an ORDER BY of the outermost SELECT counts; every query here that has
    # one has it at the start of a line without indentation.
    return re.search(r"^ORDER BY", sql, re.MULTILINE | re.IGNORECASE) is not None


def pg_type(duck_type):
    t = duck_type.upper()
    if t in ("VARCHAR", "STRING"):
        return "TEXT"
    if t.startswith("DECIMAL"):
        return t.replace("DECIMAL", "NUMERIC")
    return t  # BIGINT, INTEGER, DATE


def load_postgres(duck, pg):
    with pg.cursor() as cur:
        for t in TABLES:
            cols = duck.execute(f"DESCRIBE {t}").fetchall()
            defs = [f"{name} {pg_type(typ)} NOT NULL" for name, typ, *_ in cols]
            cur.execute(f"DROP TABLE IF EXISTS {t}")
            cur.execute(f"CREATE TABLE {t} ({', '.join(defs + PG_KEYS[t])})")
            res = duck.execute(f"SELECT * FROM {t}")
            with cur.copy(f"COPY {t} FROM STDIN") as copy:
                while batch := res.fetchmany(10000):
                    for row in batch:
                        copy.write_row(row)
        for stmt in PG_INDEXES:
            cur.execute(stmt)
    pg.commit()
    pg.autocommit = True
    pg.execute("ANALYZE")
    pg.autocommit = False


def timed(fn):
    t0 = time.perf_counter()
    try:
        return fn(), time.perf_counter() - t0, None
    except Exception as e:  # noqa: BLE001
        return None, float("nan"), str(e).splitlines()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/tmp/tpch1")
    ap.add_argument("--sf1", action="store_true", help="also check the SF1 row counts")
    ap.add_argument("--postgres", metavar="DSN", help="also run on this PostgreSQL server")
    ap.add_argument("--load-postgres", action="store_true",
                    help="(re)create and fill the tables on the PostgreSQL server first")
    ap.add_argument("queries", nargs="*", type=int)
    args = ap.parse_args()
    queries = args.queries or list(range(1, 23))

    duck = duckdb.connect()
    ctx = datafusion.SessionContext()
    for t in TABLES:
        path = os.path.join(args.data, f"{t}.parquet")
        duck.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{path}')")
        ctx.register_parquet(t, path)
    pg = None
    if args.postgres:
        import psycopg
        pg = psycopg.connect(args.postgres)
        if args.load_postgres:
            t0 = time.perf_counter()
            load_postgres(duck, pg)
            print(f"loaded PostgreSQL in {time.perf_counter() - t0:.1f} s")

    failures = 0
    print(f"{'query':<6}{'rows':>7}{'duckdb s':>10}{'datafusion s':>14}"
          + (f"{'postgres s':>12}" if pg else "") + "  agree")
    for n in queries:
        sql = open(os.path.join(HERE, f"q{n:02d}.sql")).read()
        notes = []
        d_rows, d_time, err = timed(lambda: duck.execute(sql).fetchall())
        if err:
            notes.append(f"duckdb error: {err}")
        f_rows, f_time, err = timed(
            lambda: [tuple(r.values()) for r in ctx.sql(sql).to_arrow_table().to_pylist()])
        if err:
            notes.append(f"datafusion error: {err}")
        ordered = has_order_by(sql)
        if d_rows is not None and f_rows is not None:
            diff = compare(d_rows, f_rows, ordered)
            if diff:
                notes.append(f"datafusion: {diff}")
        if pg:
            def run_pg():
                with pg.cursor() as cur:
                    cur.execute(sql)
                    return cur.fetchall()
            p_rows, p_time, err = timed(run_pg)
            pg.rollback()
            if err:
                notes.append(f"postgres error: {err}")
            elif d_rows is not None:
                diff = compare(d_rows, p_rows, ordered)
                if diff:
                    notes.append(f"postgres: {diff}")
        if args.sf1 and d_rows is not None and len(d_rows) != SF1_ROWS[n]:
            notes.append(f"expected {SF1_ROWS[n]} rows at SF1")
        failures += bool(notes)
        rows = len(d_rows) if d_rows is not None else "-"
        print(f"Q{n:02d}   {rows:>7}{d_time:>10.3f}{f_time:>14.3f}"
              + (f"{p_time:>12.3f}" if pg else "")
              + f"  {'NO' if notes else 'yes'}" + "".join(f"  {x}" for x in notes), flush=True)
    print(f"{len(queries) - failures} of {len(queries)} queries agree")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
