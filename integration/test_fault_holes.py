"""Each hole issue 13 found, as a test that failed before its fix: retention
overtaking the consumer, broker outages, back-pressure and a failing archive,
imports that could count twice, a catalog that could fail to come back, one
snapshot per statement, INSERT in a transaction or with NaN, bad values, and
consumer problems that were invisible."""

import time

import duckdb
import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from harness import MockBroker, generate, produce, read_events, assert_hourly_matches


def wait_for(what, check, timeout=60.0, every=0.2):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def status(server, table="events"):
    return server.query(
        "SELECT partition, status, archived_offset FROM lambdadb.sources "
        f"WHERE table_name = '{table}' ORDER BY partition")


def lost(server, table="events"):
    return server.query(f"SELECT lost_messages FROM lambdadb.sources WHERE table_name = '{table}'")[0][0]


def raw_producer(brokers, **extra):
    conf = {"bootstrap.servers": brokers, "compression.type": "none", "linger.ms": 0}
    conf.update(extra)
    return Producer(conf)


def send_lines(p, topic, lines, flush_every=100):
    for i, line in enumerate(lines):
        p.produce(topic, value=line.encode(), partition=0)
        if (i + 1) % flush_every == 0:
            p.flush(30)
    p.flush(30)


def log_start(brokers, topic):
    c = Consumer({"bootstrap.servers": brokers, "group.id": "probe"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()


@pytest.fixture
def mock(logs):
    m = MockBroker(logs, ["events:1"])
    yield m
    m.stop()


def event_lines(tmp_path, count, seed, start="2026-03-01T00:00:00Z"):
    path = generate(tmp_path / f"ev-{seed}.jsonl", count, seed=seed, start=start)
    return [l for l in path.read_text().splitlines() if l.strip()]


def test_retention_overtaking_a_stopped_server_stops_or_counts_the_gap(mock, make_server, tmp_path):
    first = event_lines(tmp_path, 2000, seed=1)
    server = make_server(mock.brokers, env={"LAMBDADB_ARCHIVE_INTERVAL": "300ms"})
    send_lines(raw_producer(mock.brokers), "events", first)
    server.wait_count(2000)
    wait_for("archived", lambda: status(server)[0][2] == 2000)
    server.stop()

    # ~15 MB more while the server is down: the mock keeps 5 MB, so the oldest
    # offsets (the 2000 archived ones and many after) are deleted.
    more = event_lines(tmp_path, 60000, seed=2, start="2026-03-02T00:00:00Z")
    send_lines(raw_producer(mock.brokers), "events", more, flush_every=1000)
    low, high = log_start(mock.brokers, "events")
    assert low > 2000 and high == 62000, (low, high)

    # Default retention_gap = "stop": stopped, visibly, with the gap in the reason.
    server.start()
    st = wait_for("partition stopped", lambda: [r for r in status(server) if r[1].startswith("stopped:")])
    assert "retention deleted offsets 2000" in st[0][1], st
    assert server.query("SELECT count(*) FROM events")[0][0] == 2000
    server.stop()

    # retention_gap = "skip": continues at the log start and counts the loss.
    server.env["LAMBDADB_RETENTION_GAP"] = "skip"
    server.start()
    server.wait_count(2000 + high - low)
    row = status(server)[0]
    assert row[1] == "consuming" and lost(server) == low - 2000, row
    assert server.query("SELECT CAST(sum(events) AS BIGINT) FROM events_hourly")[0][0] == 2000 + high - low
    assert "skipping them" in server.log_path.read_text()


def test_retention_deleting_only_the_last_archived_message_resumes(mock, make_server, tmp_path):
    lines = event_lines(tmp_path, 2000, seed=3)
    server = make_server(mock.brokers, env={"LAMBDADB_ARCHIVE_INTERVAL": "300ms"})
    # Message sets of 100: offsets 1900..1999 are the last one.
    send_lines(raw_producer(mock.brokers), "events", lines, flush_every=100)
    server.wait_count(2000)
    wait_for("archived", lambda: status(server)[0][2] == 2000)
    server.stop()

    # One big message set from offset 2000, then single small ones until the
    # log starts exactly at 2000: W-1 (1999) deleted, W (2000) kept.
    big = event_lines(tmp_path, 16000, seed=4, start="2026-03-02T00:00:00Z")
    p = raw_producer(mock.brokers, **{"batch.size": 50_000_000, "linger.ms": 5000,
                                      "batch.num.messages": 1_000_000,
                                      "message.max.bytes": 50_000_000})
    send_lines(p, "events", big, flush_every=len(big))
    small = event_lines(tmp_path, 8000, seed=5, start="2026-03-03T00:00:00Z")
    single = raw_producer(mock.brokers)
    sent = 0
    while log_start(mock.brokers, "events")[0] < 2000:
        send_lines(single, "events", small[sent:sent + 20], flush_every=1)
        sent += 20
        assert sent < len(small), "the log never started at 2000"
    assert log_start(mock.brokers, "events")[0] == 2000, "the big message set was deleted too"

    server.start()
    server.wait_count(2000 + len(big) + sent, timeout=60)
    assert status(server)[0][1] == "consuming"


def test_broker_outage_is_visible_and_loses_nothing(mock, make_server, tmp_path):
    server = make_server(mock.brokers)
    a = generate(tmp_path / "a.jsonl", 3000, seed=6, start="2026-03-01T00:00:00Z")
    produce(mock.brokers, "events", a)
    server.wait_count(3000)
    mock.command("down")
    st = wait_for("outage visible", lambda: [r for r in status(server) if r[1].startswith("problem:")], timeout=30)
    assert "cannot reach the Kafka broker" in st[0][1], st
    assert server.query("SELECT count(*) FROM events")[0][0] == 3000, "reads keep working"
    mock.command("up")
    b = generate(tmp_path / "b.jsonl", 3000, seed=7, start="2026-03-02T00:00:00Z")
    produce(mock.brokers, "events", b)
    server.wait_count(6000)
    wait_for("recovered", lambda: status(server)[0][1] == "consuming")
    assert_hourly_matches(server, read_events(a, b))


def test_failing_archive_pauses_ingest_at_the_memory_ceiling(broker, make_server, tmp_path):
    broker.create_topic("events", 1)
    faults = tmp_path / "failpoints"
    faults.write_text("archive.file.written=enospc\n")
    server = make_server(broker.brokers, env={
        "LAMBDADB_ARCHIVE_INTERVAL": "200ms", "LAMBDADB_SPEED_MEMORY_LIMIT": "2MB",
        "LAMBDADB_TEST_FAILPOINTS_FILE": str(faults)})
    ev = generate(tmp_path / "ev.jsonl", 40000, seed=8, start="2026-03-01T00:00:00Z")
    produce(broker.brokers, "events", ev)
    st = wait_for("paused by the failing archive", lambda: [
        r for r in status(server) if r[1].startswith("paused:") and "No space left on device" in r[1]])
    held = server.query("SELECT count(*) FROM events")[0][0]
    assert 0 < held < 40000
    time.sleep(2)
    assert server.query("SELECT count(*) FROM events")[0][0] == held, "paused means paused"
    failures = server.query("SELECT archive_failures FROM lambdadb.sources")[0][0]
    assert failures > 0
    # An INSERT whose row cannot become visible says so instead of succeeding.
    with pytest.raises(psycopg.Error) as e:
        server.query("INSERT INTO events (event_time, user_id, event_type) VALUES (now(), 1, 'x')")
    assert e.value.sqlstate == "55000" and "Do not run the INSERT again" in str(e.value)
    faults.write_text("")
    server.wait_count(40001, timeout=120)
    wait_for("resumed", lambda: status(server)[0][1] == "consuming")


def test_import_is_idempotent_and_durable_before_views_refresh(broker, make_server, tmp_path):
    broker.create_topic("events", 1)
    imports = tmp_path / "imports"
    imports.mkdir()
    faults = tmp_path / "failpoints"
    faults.write_text("")
    server = make_server(broker.brokers, env={"LAMBDADB_IMPORT_DIR": str(imports),
                                               "LAMBDADB_TEST_FAILPOINTS_FILE": str(faults)})
    faults.write_text("view.file.written=enospc\n")
    f = imports / "hist.parquet"
    duckdb.sql(f"COPY (SELECT TIMESTAMPTZ '2025-01-01 00:00:00+00' + i * INTERVAL 1 MINUTE AS event_time, "
               f"i::BIGINT AS user_id, 'view' AS event_type FROM range(500) t(i)) TO '{f}' (FORMAT parquet)")
    # The view cannot be recomputed (no space for its file), but the import is
    # durable: COPY succeeds and the view includes the rows anyway.
    with server.connect() as c:
        assert c.execute(f"COPY events FROM '{f}' (FORMAT parquet)").statusmessage == "COPY 500"
        notices = []
        c.add_notice_handler(lambda n: notices.append(n.message_primary))
        # A retry (the client never saw the answer) imports nothing twice.
        assert c.execute(f"COPY events FROM '{f}' (FORMAT parquet)").statusmessage == "COPY 0"
        assert any("already imported" in n for n in notices), notices
    assert server.query("SELECT count(*) FROM events") == [(500,)]
    assert server.query("SELECT CAST(sum(events) AS BIGINT) FROM events_hourly") == [(500,)]
    faults.write_text("")
    server.stop()
    server.start()
    assert server.query("SELECT count(*) FROM events") == [(500,)]
    assert server.query("SELECT CAST(sum(events) AS BIGINT) FROM events_hourly") == [(500,)]


def test_catalog_comes_back_and_failed_ddl_changes_nothing(broker, make_server, tmp_path):
    broker.create_topic("events", 1)
    broker.create_topic("other", 1)
    faults = tmp_path / "failpoints"
    faults.write_text("")
    server = make_server(broker.brokers, env={"LAMBDADB_TEST_FAILPOINTS_FILE": str(faults)})
    server.query("CREATE VIEW pv AS SELECT count(*) AS n FROM events")
    server.query("CREATE TABLE other (t TIMESTAMPTZ NOT NULL, k TEXT) WITH (topic = 'other')")
    # Replaced to read a table declared after it: must still come back.
    server.query("CREATE OR REPLACE VIEW pv AS SELECT count(*) AS n FROM other")

    # A declaration that cannot be saved fails, and is not in effect.
    faults.write_text("catalog.written=enospc\n")
    with pytest.raises(psycopg.Error) as e:
        server.query("CREATE MATERIALIZED VIEW mv1 AS SELECT k, count(*) AS n FROM other GROUP BY k")
    assert e.value.sqlstate == "58030", e.value
    assert "not made" in str(e.value)
    faults.write_text("view.file.written=enospc\n")
    # A view whose first computation fails is not left behind half-declared.
    with pytest.raises(psycopg.Error):
        server.query("CREATE MATERIALIZED VIEW mv2 AS SELECT k, count(*) AS n FROM other GROUP BY k")
    faults.write_text("")
    for v in ("mv1", "mv2"):
        with pytest.raises(psycopg.errors.UndefinedTable):
            server.query(f"SELECT * FROM {v}")

    server.stop()
    server.start()
    assert server.query("SELECT n FROM pv") == [(0,)]
    names = {r[0] for r in server.query("SELECT view_name FROM lambdadb.views")}
    assert names == {"events_hourly"}, names


def test_one_snapshot_per_statement_during_ingest(broker, make_server, tmp_path):
    broker.create_topic("events", 3)
    server = make_server(broker.brokers, env={"LAMBDADB_ARCHIVE_INTERVAL": "100ms",
                                               "LAMBDADB_SPEED_FOLD_INTERVAL": "20ms",
                                               "LAMBDADB_RESULT_CACHE_SIZE": "0"})
    ev = generate(tmp_path / "ev.jsonl", 200000, seed=9, start="2026-03-01T00:00:00Z", rate=1000)
    import subprocess
    from harness import BIN
    feeder = subprocess.Popen([BIN, "produce", "--brokers", broker.brokers, "--topic", "events", str(ev)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    disagreements, checks = [], 0
    try:
        with server.connect() as c:
            while feeder.poll() is None or checks < 50:
                a, b, v = c.execute(
                    "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM events e2), "
                    "(SELECT CAST(sum(events) AS BIGINT) FROM events_hourly)").fetchone()
                j = c.execute("SELECT count(*) FROM (SELECT count(*) AS n FROM events) x "
                              "JOIN (SELECT count(*) AS n FROM events) y ON x.n = y.n").fetchone()[0]
                checks += 1
                if not (a == b == (v or 0)) or j != 1:
                    disagreements.append((a, b, v, j))
    finally:
        feeder.wait(120)
    assert not disagreements, f"{len(disagreements)} of {checks} statements saw two snapshots: {disagreements[:3]}"
    server.wait_count(200000)


def test_insert_in_a_transaction_and_non_finite_floats(broker, make_server):
    broker.create_topic("m", 1)
    server = make_server(broker.brokers)
    server.query("CREATE TABLE m (t TIMESTAMPTZ NOT NULL, x DOUBLE PRECISION NOT NULL, r REAL) WITH (topic = 'm')")
    with server.connect() as c:
        c.execute("BEGIN")
        with pytest.raises(psycopg.Error) as e:
            c.execute("INSERT INTO m VALUES (now(), 1, 1)")
        assert e.value.sqlstate == "25001", e.value
        c.execute("ROLLBACK")
    server.query("INSERT INTO m VALUES (now(), 'NaN'::float8, 'Infinity'::float4), "
                 "(now(), '-Infinity'::float8, 2.5::float4)")
    rows = server.query("SELECT x, r FROM m ORDER BY r")
    assert len(rows) == 2, rows
    assert rows[0][0] == float("-inf") and rows[0][1] == 2.5, rows
    assert rows[1][0] != rows[1][0] and rows[1][1] == float("inf"), rows  # NaN
    assert server.query("SELECT count(*) FROM lambdadb.rejected_messages") == [(0,)]


def test_bad_values_are_rejected_and_volatile_views_refused(broker, make_server, logs):
    broker.create_topic("b", 1)
    server = make_server(broker.brokers)
    server.query("CREATE TABLE b (t TIMESTAMPTZ NOT NULL, r REAL) WITH (topic = 'b', event_time = 't')")
    p = raw_producer(broker.brokers)
    for line in ['{"t": 1e300}', '{"t": 1700000000000, "r": 1e39}', '{"t": 1700000000000, "r": 1.5}',
                 '{"t": -1e17}']:
        p.produce("b", value=line.encode())
    p.flush(10)
    wait_for("decoded", lambda: server.query("SELECT count(*) FROM lambdadb.rejected_messages")[0][0] == 3)
    assert server.query("SELECT r FROM b") == [(1.5,)]
    reasons = [r[0] for r in server.query("SELECT reason FROM lambdadb.rejected_messages ORDER BY \"offset\"")]
    assert "RFC 3339" in reasons[0] and "out of range for type real" in reasons[1], reasons
    for sql in ["CREATE MATERIALIZED VIEW v1 AS SELECT count(*) AS n FROM b WHERE t > now() - interval '1 hour'",
                "CREATE MATERIALIZED VIEW v2 AS SELECT sum(random()) AS s FROM b"]:
        with pytest.raises(psycopg.Error) as e:
            server.query(sql)
        assert "cannot call" in str(e.value), e.value


def test_a_missing_topic_is_reported_at_warn(broker, make_server):
    server = make_server(broker.brokers)
    server.query("CREATE TABLE nowhere (t TIMESTAMPTZ NOT NULL) WITH (topic = 'no_such_topic')")
    st = wait_for("status", lambda: [r for r in status(server, "nowhere") if "does not exist" in r[1]], timeout=20)
    assert st
    log = server.log_path.read_text()
    assert "WARN" in log and "no_such_topic does not exist" in log
