"""Issue 2's acceptance: Tansu and `lambdadb serve` as separate processes, events
produced with `lambdadb produce`, answers checked through psql and psycopg against
the same aggregate computed in Python over the produced files."""

import psycopg
import pytest

from harness import assert_hourly_matches, generate, produce, read_events


def test_pipeline_end_to_end(broker, make_server, tmp_path):
    broker.create_topic("events", 3)
    server = make_server(broker.brokers)

    # 1. 100,000 demo events: every layer agrees with the oracle.
    first = generate(tmp_path / "first.jsonl", 100_000, seed=1, start="2026-01-01T00:00:00Z")
    out = produce(broker.brokers, "events", first)
    assert "100000 acknowledged" in out, out
    server.wait_count(100_000)
    assert server.psql("SELECT count(*) FROM events") == "100000"
    assert server.psql("SELECT sum(events) FROM events_hourly") == "100000"
    events = read_events(first)
    groups = assert_hourly_matches(server, events)
    assert groups > 100

    # 2. After a refresh the batch view covers everything; the answer is unchanged.
    # (Version 1 is the empty one CREATE computed at start-up.)
    with server.connect() as c:
        c.execute("REFRESH MATERIALIZED VIEW events_hourly")
        version, watermark = c.execute(
            "SELECT batch_version, watermark FROM lambdadb.views WHERE view_name = 'events_hourly'"
        ).fetchone()
    assert version == 2
    covered = sum(int(p.split(":")[1]) for p in watermark.strip("{}").split(","))
    assert covered == 100_000, watermark
    assert server.psql("SELECT sum(events) FROM events_hourly") == "100000"
    assert_hourly_matches(server, events)

    # 3. 50,000 more, 5,000 of them late into hours the batch view already covers.
    more = generate(tmp_path / "more.jsonl", 45_000, seed=2, start="2026-01-01T03:00:00Z")
    late = generate(tmp_path / "late.jsonl", 5_000, seed=3, start="2026-01-01T00:10:00Z",
                    rate=2.0, late_fraction=0.0)
    produce(broker.brokers, "events", more)
    produce(broker.brokers, "events", late)
    server.wait_count(150_000)
    events = read_events(first, more, late)
    assert server.psql("SELECT sum(events) FROM events_hourly") == "150000"
    assert_hourly_matches(server, events)
    # The late events landed in their own (already covered) hours.
    early = server.query(
        "SELECT sum(events) FROM events_hourly WHERE hour < TIMESTAMPTZ '2026-01-01 01:00:00+00'")[0][0]
    assert early == sum(1 for e in events if e["event_time"] < "2026-01-01T01")

    # 4. kill -9 and restart on the same broker and data directory: nothing lost or
    # counted twice.
    server.kill9()
    server.start()
    server.wait_count(150_000)
    assert server.psql("SELECT sum(events) FROM events_hourly") == "150000"
    assert_hourly_matches(server, events)
    # Still exact after another refresh over the restarted state.
    server.query("REFRESH MATERIALIZED VIEW events_hourly")
    assert_hourly_matches(server, events)
    assert server.query("SELECT count(*) FROM events")[0][0] == 150_000


def test_bad_messages_are_counted_and_skipped(broker, make_server, tmp_path):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers)
    good = generate(tmp_path / "good.jsonl", 1_000, seed=5, start="2026-02-01T00:00:00Z")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "this is not json\n"
        '{"event_time": "2026-02-01T00:00:00Z", "user_id": "seven", "event_type": "click"}\n'
        '{"user_id": 1, "event_type": "click"}\n'
        "[1, 2, 3]\n"
    )
    produce(broker.brokers, "events", good)
    produce(broker.brokers, "events", bad)
    after = generate(tmp_path / "after.jsonl", 500, seed=6, start="2026-02-01T01:00:00Z")
    produce(broker.brokers, "events", after)
    # The partition keeps flowing past the bad messages.
    server.wait_count(1_500)
    rows = server.query(
        "SELECT partition, \"offset\", reason FROM lambdadb.rejected_messages ORDER BY \"offset\"")
    assert [r[1] for r in rows] == [1000, 1001, 1002, 1003]
    assert all(r[0] == 0 for r in rows)
    assert "not valid JSON" in rows[0][2]
    assert "user_id" in rows[1][2]
    assert "event_time" in rows[2][2] and "NOT NULL" in rows[2][2]
    assert "not an object" in rows[3][2]
    rejected = server.query("SELECT rejected_messages FROM lambdadb.sources")[0][0]
    assert rejected == 4
    # The broker's high watermark comes from Fetch responses (librdkafka statistics).
    import time
    for _ in range(50):
        high, lag = server.query(
            "SELECT broker_high_watermark, lag_messages FROM lambdadb.sources")[0]
        if high == 1504:
            break
        time.sleep(0.1)
    assert (high, lag) == (1504, 0)
    assert_hourly_matches(server, read_events(good, after))


@pytest.mark.parametrize("sql,code", [
    ("SELEC 1", "42601"),
    ("SELECT * FROM no_such_table", "42P01"),
    ("SELECT no_such_column FROM events", "42703"),
    ("SELECT count(* FROM events", "42601"),
])
def test_sql_errors_carry_sqlstate(broker, make_server, sql, code):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers)
    with server.connect() as c:
        with pytest.raises(psycopg.Error) as err:
            c.execute(sql)
        assert err.value.sqlstate == code, err.value
        # The connection and the server keep serving.
        assert c.execute("SELECT 1").fetchone() == (1,)
    assert server.alive()


def partition_status_when_stopped(server, timeout=10.0):
    """Partition 0's status once it reports stopped (or the last seen after timeout)."""
    import time

    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        status = server.query("SELECT status FROM lambdadb.sources WHERE partition = 0")[0][0]
        if status.startswith("stopped"):
            break
        time.sleep(0.1)
    return status


def test_broker_offsets_going_backwards_stop_the_partition_loudly(broker, make_server, tmp_path, logs):
    from harness import Tansu

    broker.create_topic("events", 1)
    server = make_server(broker.brokers)
    events = generate(tmp_path / "e.jsonl", 2_000, seed=7, start="2026-03-01T00:00:00Z")
    produce(broker.brokers, "events", events)
    server.wait_count(2_000)
    server.query("REFRESH MATERIALIZED VIEW events_hourly")  # archives everything
    server.stop()

    # A new, empty broker (a recreated topic): its offsets start again at 0.
    fresh = Tansu(logs)
    try:
        fresh.create_topic("events", 1)
        small = generate(tmp_path / "small.jsonl", 10, seed=8, start="2026-03-02T00:00:00Z")
        produce(fresh.brokers, "events", small)
        server.brokers = fresh.brokers
        server.start()
        # Archived data keeps serving; nothing from the new broker is mixed in.
        status = partition_status_when_stopped(server)
        assert status.startswith("stopped") and "went backwards" in status, status
        assert server.query("SELECT count(*) FROM events")[0][0] == 2_000
        assert "went backwards" in server.log_path.read_text()
    finally:
        server.stop()
        fresh.stop()

    # A recreated topic that already holds *more* messages than were archived: the
    # offsets alone look plausible, the log fingerprint does not match.
    bigger = Tansu(logs)
    try:
        bigger.create_topic("events", 1)
        produce(bigger.brokers, "events",
                generate(tmp_path / "other.jsonl", 3_000, seed=9, start="2026-03-03T00:00:00Z"))
        server.brokers = bigger.brokers
        server.start()
        status = partition_status_when_stopped(server)
        assert status.startswith("stopped") and "not the one lambdadb archived" in status, status
        assert server.query("SELECT count(*) FROM events")[0][0] == 2_000
    finally:
        server.stop()
        bigger.stop()


def test_restart_on_the_same_broker_verifies_the_log(broker, make_server, tmp_path):
    broker.create_topic("events", 2)
    server = make_server(broker.brokers)
    first = generate(tmp_path / "a.jsonl", 3_000, seed=12, start="2026-06-01T00:00:00Z")
    produce(broker.brokers, "events", first)
    server.wait_count(3_000)
    server.query("REFRESH MATERIALIZED VIEW events_hourly")  # archives everything
    server.kill9()
    second = generate(tmp_path / "b.jsonl", 1_000, seed=13, start="2026-06-01T01:00:00Z")
    produce(broker.brokers, "events", second)
    server.start()
    server.wait_count(4_000)
    assert "log fingerprint matches" in server.log_path.read_text()
    assert_hourly_matches(server, read_events(first, second))
