"""Extended query protocol, parameters and result formats through psycopg."""

from datetime import datetime, timezone

import psycopg

from harness import generate, produce, read_events


def test_prepared_statements_text_and_binary(broker, make_server, tmp_path):
    broker.create_topic("events", 2)
    server = make_server(broker.brokers)
    produce(broker.brokers, "events",
            generate(tmp_path / "e.jsonl", 2_000, seed=11, start="2026-04-01T00:00:00Z", late_fraction=0))
    server.wait_count(2_000)
    since = datetime(2026, 4, 1, 0, 1, 40, tzinfo=timezone.utc)
    sql = ("SELECT country, count(*) AS n, sum(revenue) AS r, min(event_time) AS first "
           "FROM events WHERE event_time >= %s AND user_id > %s AND event_type <> %s AND coalesce(revenue, 0) >= %s "
           "GROUP BY country ORDER BY n DESC, country")
    params = (since, 0, "nope", 0.0)
    with server.connect() as c:
        text = c.execute(sql, params, prepare=True).fetchall()
        again = c.execute(sql, params, prepare=True).fetchall()
        with c.cursor(binary=True) as cur:
            binary = cur.execute(sql, params).fetchall()
    assert text == again == binary
    events = read_events(tmp_path / "e.jsonl")
    assert 0 < sum(r[1] for r in text) < len(events)
    assert sum(r[1] for r in text) == sum(1 for e in events if e["event_time"] >= "2026-04-01T00:01:40")
    for country, n, revenue, first in text:
        assert isinstance(first, datetime) and first.tzinfo is not None
        assert first >= since


def test_types_and_text_format(broker, make_server):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers)
    out = server.psql("SELECT TIMESTAMPTZ '2026-01-01 10:00:00+00' AS t, 1.5::double precision AS f, true AS b")
    assert out == "2026-01-01 10:00:00+00|1.5|t"
    with server.connect() as c:
        cur = c.execute("SELECT event_time, user_id, duration_ms, revenue, page FROM events LIMIT 0")
        types = [d.type_code for d in cur.description]
    # timestamptz, int8, int4, float8, text as PostgreSQL reports them.
    assert types == [1184, 20, 23, 701, 25]


def test_transactions_and_session_commands(broker, make_server):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers)
    with psycopg.connect(server.dsn()) as c:  # not autocommit: psycopg sends BEGIN
        assert c.execute("SELECT 1").fetchone() == (1,)
        c.commit()
        c.execute("SET application_name = 'x'")
        assert c.execute("SHOW server_version").fetchone()[0].startswith("15")
        c.rollback()


def test_protocol_garbage_and_oversized_startup(broker, make_server):
    import socket
    import struct

    broker.create_topic("events", 1)
    server = make_server(broker.brokers)

    def send_and_read(payload):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(payload)
            chunks = []
            try:
                while True:
                    data = s.recv(4096)
                    if not data:
                        break
                    chunks.append(data)
            except (ConnectionResetError, socket.timeout):
                pass
            return b"".join(chunks)

    # A startup packet claiming to be 1 MB is refused (the limit is 10 kB, as in
    # PostgreSQL), not buffered.
    send_and_read(struct.pack("!ii", 1_000_000, 196608) + b"x" * 100)
    # Random bytes instead of a startup packet.
    send_and_read(bytes(range(256)) * 4)
    # A normal client afterwards is served.
    with server.connect() as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    assert server.alive()
