"""psql 15's meta-commands against lambdadb and PostgreSQL 15 holding the same
definitions and rows. Outputs are compared whole where lambdadb matches
PostgreSQL exactly and row by row otherwise, after the documented
normalizations: materialized views are served as views (`\\dv`, not `\\dm`),
schema `lambdadb` (system tables) is extra, and PostgreSQL's storage details
(`Access method: heap`, sizes of its heap files) have no counterpart."""

import subprocess

import psycopg
import pytest


def psql(port, command, tuples=False):
    """`command` is one meta-command or statement, or a list run in order."""
    commands = command if isinstance(command, list) else [command]
    args = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "lambdadb", "-d", "lambdadb",
            "-X", "-v", "ON_ERROR_STOP=1"] + [a for c in commands for a in ("-c", c)]
    if tuples:
        args[1:1] = ["-tA"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{command}: {out.stderr}"
    return out.stdout


def both(pg_pair, command, tuples=False):
    server, pg = pg_pair
    return psql(server.port, command, tuples), psql(pg.port, command, tuples)


def test_describe_table_like_postgres(pg_pair):
    got, want = both(pg_pair, r"\d events")
    assert got == want
    got, want = both(pg_pair, r"\d+ events")
    assert got == want.replace("Access method: heap\n", "")


def test_describe_view_columns_like_postgres(pg_pair):
    got, want = both(pg_pair, r"\d+ events_hourly", tuples=True)
    # name, type of each column (PostgreSQL shows a materialized view).
    cols = lambda text: [tuple(l.split("|")[:2]) for l in text.splitlines()
                         if l.count("|") >= 4]
    assert cols(got) == cols(want) and len(cols(got)) == 5
    assert "View definition:" in psql(pg_pair[0].port, r"\d+ events_hourly")


def test_list_relations_like_postgres(pg_pair):
    server, pg = pg_pair
    rows = lambda text: sorted(l for l in text.splitlines() if l and not l.startswith("lambdadb|"))
    for command in (r"\dt", r"\d"):
        got, want = both(pg_pair, command, tuples=True)
        got = [l for l in rows(got) if "|events_hourly|" not in l]
        want = [l for l in rows(want) if "|events_hourly|" not in l]
        assert got == want and got, command
    # \dv here lists what \dm lists there.
    views = psql(server.port, r"\dv", tuples=True).splitlines()
    matviews = psql(pg.port, r"\dm", tuples=True).replace("materialized view", "view")
    assert views == matviews.splitlines() == ["public|events_hourly|view|lambdadb"]
    # Sizes differ (PostgreSQL's heap files); names, types and owners agree.
    plus = lambda text: sorted("|".join(l.split("|")[:4]) for l in rows(text))
    got, want = both(pg_pair, r"\dt+", tuples=True)
    assert plus(got) == plus(want)


def test_other_meta_commands(pg_pair):
    server, pg = pg_pair
    got, want = both(pg_pair, [r"\x", "SELECT 1 AS a, 'x' AS b"])
    assert got == want
    databases = psql(server.port, r"\l", tuples=True)
    assert "lambdadb|lambdadb|UTF8|" in databases
    assert "public|" in psql(server.port, r"\dn", tuples=True)
    assert psql(server.port, r"\du", tuples=True).startswith("lambdadb|")
    assert "pg_catalog|version|" in psql(server.port, r"\df version", tuples=True)
    assert psql(server.port, r"\dT", tuples=True) == psql(pg.port, r"\dT", tuples=True) == ""


def test_time_zones_like_postgres(pg_pair):
    """SET TimeZone: timestamptz text in the session's zone with its offset,
    literals without an offset read in that zone, ParameterStatus tells the
    client (Metabase sends `SET SESSION TIMEZONE TO '...'` for a report zone)."""
    query = ("SELECT event_time, CAST('2026-07-01 12:00:00' AS timestamptz) AS lit, "
             "date_trunc('day', CAST('2026-07-01 23:30:00+00' AS timestamptz)) AS d "
             "FROM events ORDER BY event_time LIMIT 5")
    for zone in ("Europe/Berlin", "America/St_Johns", "Asia/Kolkata", "UTC"):
        got, want = both(pg_pair, [f"SET SESSION TIMEZONE TO '{zone}';", query], tuples=True)
        assert got == want, zone
    server, pg = pg_pair
    for dsn in (server.dsn(), pg.dsn()):
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("SET TimeZone = 'Asia/Kolkata'")
            assert c.info.parameter_status("TimeZone") == "Asia/Kolkata"
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        with pytest.raises(psycopg.Error) as e:
            c.execute("SET TimeZone = 'Mars/Olympus'")
        assert e.value.sqlstate == "22023"
