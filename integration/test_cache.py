"""The result cache: an answer is never served after new events changed it when
lambdadb.max_staleness is 0 (the default), and is served within the allowed
staleness otherwise. Figures come from lambdadb.cache."""

import time

import psycopg
import pytest


def insert(server, n, start=0):
    rows = ", ".join(
        f"('2026-01-01 10:00:00+00'::timestamptz + interval '{i} minutes', {i}, 'view', 'DE', {i}.5)"
        for i in range(start, start + n))
    server.query(f"INSERT INTO events (event_time, user_id, event_type, country, revenue) VALUES {rows}")


def stats(conn):
    row = conn.execute("SELECT hits, stale_hits, misses, inserts FROM lambdadb.cache").fetchone()
    return dict(zip(("hits", "stale", "misses", "inserts"), row))


@pytest.fixture
def server(broker, make_server):
    broker.create_topic("events", 2)
    s = make_server(broker.brokers)
    insert(s, 10)
    return s


def test_exact_by_default_stale_only_when_allowed(server):
    q = "SELECT count(*), sum(revenue) FROM events"
    with server.connect() as a, server.connect() as b:
        first = a.execute(q).fetchone()
        assert first[0] == 10
        before = stats(b)
        assert a.execute(q).fetchone() == first
        after = stats(b)
        assert after["hits"] == before["hits"] + 1, (before, after)

        # New events: the same statement is answered afresh, never from the cache.
        insert(server, 1, start=10)
        for _ in range(20):
            assert a.execute(q).fetchone()[0] == 11
        assert stats(b)["stale"] == 0

        # A session that allows staleness takes the entry computed before the
        # next event; the default session does not.
        a.execute("SET lambdadb.max_staleness = '60s'")
        assert a.execute(q).fetchone()[0] == 11
        insert(server, 1, start=11)
        assert b.execute(q).fetchone()[0] == 12
        s0 = stats(b)
        assert a.execute(q).fetchone()[0] in (11, 12)
        # b's run above stored the fresh answer under the same key (same user and
        # settings), so a sees 12 from the cache as an exact hit, or 11 as stale.
        a.execute("SET lambdadb.max_staleness = '0'")
        assert a.execute(q).fetchone()[0] == 12
        assert stats(b)["hits"] + stats(b)["stale"] > s0["hits"] + s0["stale"]


def test_stale_answer_within_the_allowance_then_fresh(server):
    q = "SELECT count(*) FROM events WHERE country = 'DE'"
    with server.connect() as a:
        a.execute("SET lambdadb.max_staleness = '1s'")
        assert a.execute(q).fetchone()[0] == 10
        insert(server, 5, start=100)
        # Within a second of the cached run: the old answer, counted as stale.
        got = a.execute(q).fetchone()[0]
        s = stats(a)
        if got == 10:
            assert s["stale"] >= 1
        time.sleep(1.2)
        assert a.execute(q).fetchone()[0] == 15


def test_views_between_refreshes_and_prepared_statements_hit(server):
    with server.connect() as a:
        q = "SELECT event_type, sum(events) FROM events_hourly GROUP BY event_type"
        a.execute(q).fetchall()
        a.execute("REFRESH MATERIALIZED VIEW events_hourly")
        s0 = stats(a)
        assert a.execute(q).fetchall() == [("view", 10)]
        assert stats(a)["hits"] == s0["hits"] + 1, "a refresh without new events keeps the answer"

        # Extended protocol with parameters: one entry per parameter value.
        pq = "SELECT count(*) FROM events WHERE user_id >= %s"
        for v in (3, 3, 7, 7):
            assert a.execute(pq, (v,), prepare=True).fetchone()[0] == 10 - v
        s1 = stats(a)
        assert s1["hits"] >= s0["hits"] + 3


def test_volatile_and_catalog_queries_are_not_cached(server):
    with server.connect() as a:
        s0 = stats(a)
        a.execute("SELECT now(), count(*) FROM events").fetchone()
        a.execute("SELECT count(*) FROM pg_catalog.pg_class").fetchone()
        a.execute("SELECT random() FROM events LIMIT 1").fetchone()
        assert stats(a)["inserts"] == s0["inserts"]
        t1 = a.execute("SELECT now()").fetchone()[0]
        time.sleep(0.01)
        assert a.execute("SELECT now()").fetchone()[0] > t1


def test_ddl_invalidates(server):
    with server.connect() as a:
        a.execute("CREATE VIEW de AS SELECT * FROM events WHERE country = 'DE'")
        assert a.execute("SELECT count(*) FROM de").fetchone()[0] == 10
        a.execute("CREATE OR REPLACE VIEW de AS SELECT * FROM events WHERE country = 'FR'")
        assert a.execute("SELECT count(*) FROM de").fetchone()[0] == 0


def test_freshness_and_speed_state_are_visible(server):
    with server.connect() as a:
        a.execute("REFRESH MATERIALIZED VIEW events_hourly")
        insert(server, 3, start=200)
        time.sleep(0.6)  # a few fold intervals
        rows = {r[0]: r for r in a.execute(
            "SELECT name, kind, consumed_offsets, lag_messages, latest_event_time, batch_version, "
            "events_above_batch FROM lambdadb.freshness").fetchall()}
        src, view = rows["events"], rows["events_hourly"]
        assert src[1] == "source" and view[1] == "materialized view"
        assert src[3] == 0, "caught up"
        assert src[4].isoformat().startswith("2026-01-01T13:22"), src[4]  # minute 202
        assert view[5] >= 2 and view[6] == 3, view
        speed = a.execute(
            "SELECT speed_events, speed_groups, folds FROM lambdadb.views "
            "WHERE view_name = 'events_hourly'").fetchone()
        assert speed[0] == 3 and speed[1] >= 1 and speed[2] >= 1, speed
