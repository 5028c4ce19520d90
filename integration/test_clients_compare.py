"""The Python drivers and tools of test_clients.py (psycopg2, pg8000, asyncpg,
SQLAlchemy 2 with inspect, pandas.read_sql) run one script against lambdadb and
against PostgreSQL 15 holding the same rows; the results must agree but for
the documented differences (schema `lambdadb`, materialized views as views)."""

import asyncio
from datetime import datetime, timezone

import asyncpg
import pg8000.native
import psycopg2
import sqlalchemy as sa

QUERY = ("SELECT event_type, count(*) AS n, sum(duration_ms) AS d, max(revenue) AS r, "
         "min(event_time) AS t FROM events WHERE user_id > {p} GROUP BY event_type "
         "ORDER BY event_type")


def psycopg2_script(port):
    c = psycopg2.connect(host="127.0.0.1", port=port, user="lambdadb", dbname="lambdadb")
    cur = c.cursor()
    cur.execute(QUERY.format(p="%s"), (1000,))
    rows = cur.fetchall()
    types = [d.type_code for d in cur.description]
    c.close()
    return rows, types


def pg8000_script(port):
    c = pg8000.native.Connection("lambdadb", host="127.0.0.1", port=port, database="lambdadb")
    rows = c.run(QUERY.format(p=":p"), p=1000)
    types = [col["type_oid"] for col in c.columns]
    c.close()
    return [tuple(r) for r in rows], types


def asyncpg_script(port):
    async def run():
        c = await asyncpg.connect(host="127.0.0.1", port=port, user="lambdadb",
                                  database="lambdadb")
        try:
            stmt = await c.prepare(QUERY.format(p="$1"))
            rows = await stmt.fetch(1000)
            types = [a.type.name for a in stmt.get_attributes()]
            since = await c.fetchval(
                "SELECT count(*) FROM events WHERE event_time >= $1",
                datetime(2026, 7, 1, 0, 2, tzinfo=timezone.utc))
            return [tuple(r) for r in rows], types, since
        finally:
            await c.close()
    return asyncio.run(run())


def sqlalchemy_script(port):
    import pandas as pd

    engine = sa.create_engine(f"postgresql+psycopg://lambdadb@127.0.0.1:{port}/lambdadb")
    try:
        insp = sa.inspect(engine)
        schemas = sorted(s for s in insp.get_schema_names() if s != "lambdadb")
        tables = sorted(t for t in insp.get_table_names(schema="public"))
        views = sorted(insp.get_view_names(schema="public")
                       + insp.get_materialized_view_names(schema="public"))
        cols = [(c["name"], str(c["type"]), c["nullable"])
                for c in insp.get_columns("events", schema="public")]
        meta = sa.MetaData()
        ev = sa.Table("events", meta, autoload_with=engine)
        stmt = (sa.select(ev.c.country, sa.func.count().label("n"))
                .where(ev.c.user_id > sa.bindparam("u"))
                .group_by(ev.c.country).order_by(ev.c.country))
        with engine.connect() as c:
            core = [tuple(r) for r in c.execute(stmt, {"u": 1000})]
        df = pd.read_sql(sa.text("SELECT device, count(*) AS n FROM events "
                                 "GROUP BY device ORDER BY device"), engine)
        return schemas, tables, views, cols, core, df.to_dict("list"), str(df["n"].dtype)
    finally:
        engine.dispose()


def test_psycopg2_same_as_postgres(pg_pair):
    server, pg = pg_pair
    got = psycopg2_script(server.port)
    assert len(got[0]) >= 3
    assert got == psycopg2_script(pg.port)


def test_pg8000_same_as_postgres(pg_pair):
    server, pg = pg_pair
    got = pg8000_script(server.port)
    assert len(got[0]) >= 3
    assert got == pg8000_script(pg.port)


def test_asyncpg_same_as_postgres(pg_pair):
    server, pg = pg_pair
    got = asyncpg_script(server.port)
    assert len(got[0]) >= 3 and got[2] > 0
    assert got == asyncpg_script(pg.port)


def test_sqlalchemy_and_pandas_same_as_postgres(pg_pair):
    server, pg = pg_pair
    got, want = sqlalchemy_script(server.port), sqlalchemy_script(pg.port)
    names = ["schemas", "tables", "views", "columns", "core select", "read_sql", "dtype"]
    assert got[1] == ["events"] and len(got[3]) == 9 and got[4]
    for name, g, w in zip(names, got, want):
        assert g == w, f"{name}: lambdadb {g!r}, PostgreSQL {w!r}"
