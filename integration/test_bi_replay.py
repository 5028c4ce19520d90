"""Grafana's and Metabase's PostgreSQL connectors, replayed verbatim
(replay_queries.py cites the upstream file of each query) against lambdadb and
PostgreSQL 15 holding the same rows. Simple-protocol queries go through psycopg
without parameters (as Grafana's pgx Exec and Metabase's plain statements send
them), parameterized ones through asyncpg with their $n placeholders as sent.

Documented differences, normalized before comparing:
- lambdadb has one more schema, `lambdadb` (system tables);
- materialized views are served as views: relkind 'v', listed in
  information_schema (PostgreSQL leaves materialized views out of it);
- numbers are compared as numbers (a sum of doubles may differ in the last
  bits with the summation order);
- PostgreSQL's n_live_tup row estimates come from its statistics collector,
  lambdadb reports none."""

import asyncio
from decimal import Decimal

import asyncpg
import psycopg
import pytest

from replay_queries import (GRAFANA_META, GRAFANA_PANELS, GRAFANA_PING, GRAFANA_SCHEMA_API,
                            METABASE_ENUMS, METABASE_FIELDS, METABASE_FKS, METABASE_PRIVILEGES,
                            METABASE_SESSION, METABASE_TABLES)


def simple(dsn, sql):
    with psycopg.connect(dsn, autocommit=True) as c:
        cur = c.execute(sql)
        return cur.fetchall() if cur.description else cur.statusmessage


def extended(port, sql, params):
    async def run():
        c = await asyncpg.connect(host="127.0.0.1", port=port, user="lambdadb",
                                  database="lambdadb")
        try:
            return [tuple(r) for r in await c.fetch(sql, *params)]
        finally:
            await c.close()
    return asyncio.run(run())


def numbers(rows):
    return [tuple(float(v) if isinstance(v, (Decimal, int)) and not isinstance(v, bool) else v
                  for v in r) for r in rows]


def without_system(rows, col=0):
    return [r for r in rows if r[col] != "lambdadb"]


def test_grafana_health_check(pg_pair):
    server, pg = pg_pair
    for q in GRAFANA_PING:
        # EmptyQueryResponse: no rows, no command tag, no error.
        assert simple(server.dsn(), q) == simple(pg.dsn(), q) is None


@pytest.mark.parametrize("name", ["version", "timescaledb", "schemas", "tables_in_schema"])
def test_grafana_editor_metadata(pg_pair, name):
    server, pg = pg_pair
    got, want = simple(server.dsn(), GRAFANA_META[name]), simple(pg.dsn(), GRAFANA_META[name])
    if name == "schemas":
        got = without_system(got)
    if name == "tables_in_schema":
        assert ("events_hourly",) in got
        got = [r for r in got if r != ("events_hourly",)]
    assert got == want


@pytest.mark.parametrize("name", ["tables", "columns"])
def test_grafana_search_path_queries(pg_pair, name):
    """Without a chosen schema Grafana resolves search_path with
    `generate_series(...) AS i, string_to_array(...) s` in FROM and an IN
    subquery inside CASE; the names come back unqualified for schemas on the
    path. `"$user"` is schema `lambdadb`, which exists here (the system tables),
    so those are unqualified too, as PostgreSQL would list them."""
    server, pg = pg_pair
    got, want = simple(server.dsn(), GRAFANA_META[name]), simple(pg.dsn(), GRAFANA_META[name])
    if name == "tables":
        assert ("events_hourly",) in got and ("sources",) in got
        # Not in the PostgreSQL reference: the materialized view and every
        # system table (read from the server, so a new one needs no edit here).
        system = simple(server.dsn(), "SELECT table_name FROM information_schema.tables "
                                      "WHERE table_schema = 'lambdadb'")
        extra = {("events_hourly",)} | set(system)
        assert ("sources",) in extra
        got = [r for r in got if r not in extra]
    assert got == want


@pytest.mark.parametrize("sql", GRAFANA_PANELS)
def test_grafana_panels(pg_pair, sql):
    server, pg = pg_pair
    got, want = simple(server.dsn(), sql), simple(pg.dsn(), sql)
    assert len(got) == len(want) > 0
    for g, w in zip(numbers(got), numbers(want)):
        assert len(g) == len(w)
        for a, b in zip(g, w):
            if isinstance(b, float):
                assert abs(a - b) <= 1e-9 * max(1.0, abs(b)), (g, w)
            else:
                assert a == b, (g, w)


@pytest.mark.parametrize("i", range(len(GRAFANA_SCHEMA_API)))
def test_grafana_schema_api(pg_pair, i):
    server, pg = pg_pair
    sql, params = GRAFANA_SCHEMA_API[i]
    got, want = extended(server.port, sql, params), extended(pg.port, sql, params)
    if i == 0:
        got = without_system(got)
    if i == 1:
        got = [r for r in got if r != ("events_hourly",)]
    assert got == want


def test_metabase_connect_and_session(pg_pair):
    server, pg = pg_pair
    for q in METABASE_SESSION:
        assert simple(server.dsn(), q) == simple(pg.dsn(), q), q


def test_metabase_sync(pg_pair):
    server, pg = pg_pair
    got = sorted(without_system(simple(server.dsn(), METABASE_PRIVILEGES), col=1))
    assert got == sorted(simple(pg.dsn(), METABASE_PRIVILEGES))
    assert simple(server.dsn(), METABASE_ENUMS) == simple(pg.dsn(), METABASE_ENUMS) == []

    sql, params = METABASE_TABLES
    strip = lambda rows: sorted((s, n, t.replace("MATERIALIZED VIEW", "VIEW"), d)
                                for s, n, t, d, _ in rows)
    assert strip(extended(server.port, sql, params)) == strip(extended(pg.port, sql, params))

    sql, params = METABASE_FIELDS
    got, want = extended(server.port, sql, params), extended(pg.port, sql, params)
    assert [r for r in got if r[4] == "events"] == [r for r in want if r[4] == "events"]
    # The view's columns: same names, types and positions (PostgreSQL reports
    # them through the materialized-view branch, lambdadb through the view one).
    view = lambda rows: [r[:5] for r in rows if r[4] == "events_hourly"]
    assert view(got) == view(want)

    sql, params = METABASE_FKS
    assert extended(server.port, sql, params) == extended(pg.port, sql, params) == []
