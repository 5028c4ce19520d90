"""A Kafka cluster's faults (issue 15): librdkafka's mock cluster with three
brokers, every topic replicated on all of them. While events are produced and
the server ingests and archives, partition leaders move between brokers, and
a broker goes down (its partitions' leadership moved away, as a controller
would) and comes back. Afterwards every event is counted once, in the table,
the master dataset and the view, before and after a restart."""

import time
from datetime import datetime, timedelta, timezone

from harness import MockBroker, assert_hourly_matches, generate, produce, read_events

PARTITIONS = 3


def test_leader_changes_and_a_broker_outage_lose_nothing(make_server, logs, tmp_path):
    cluster = MockBroker(logs, [f"events:{PARTITIONS}"], brokers=3)
    try:
        server = make_server(cluster.brokers, env={"LAMBDADB_ARCHIVE_INTERVAL": "300ms"})
        files = []

        def chunk(i, n=400):
            start = datetime(2026, 9, 1, tzinfo=timezone.utc) + timedelta(hours=i)
            f = generate(tmp_path / f"k{i}.jsonl", n, seed=2100 + i, start=start.isoformat(),
                         rate=0.5, late_fraction=0.05)
            produce(cluster.brokers, "events", f)
            files.append(f)

        def leaders(*brokers):
            for p, b in enumerate(brokers):
                cluster.command(f"leader events {p} {b}")

        leaders(1, 2, 3)
        chunk(0)
        server.wait_count(400, timeout=60)

        # Leadership moves while the next chunk is consumed and archived.
        chunk(1)
        leaders(2, 3, 1)
        time.sleep(0.5)
        leaders(3, 1, 2)
        chunk(2)
        server.wait_count(1200, timeout=60)

        # Broker 1 goes down; its partitions get leaders elsewhere.
        leaders(2, 2, 3)
        cluster.command("down 1")
        chunk(3)
        server.wait_count(1600, timeout=90)
        server.query("REFRESH MATERIALIZED VIEW events_hourly")
        chunk(4)
        server.wait_count(2000, timeout=90)
        assert_hourly_matches(server, read_events(*files))

        # It comes back and takes its partitions again.
        cluster.command("up 1")
        leaders(1, 2, 3)
        chunk(5)
        server.wait_count(2400, timeout=90)
        events = read_events(*files)
        assert_hourly_matches(server, events)
        deadline = time.time() + 30
        while time.time() < deadline and server.query("SELECT sum(rows) FROM lambdadb.master_dataset")[0][0] != 2400:
            time.sleep(0.2)
        assert server.query("SELECT sum(rows) FROM lambdadb.master_dataset")[0][0] == 2400
        want = (2400, sum(e["user_id"] for e in events))
        assert server.query("SELECT count(*), sum(user_id) FROM events")[0] == want

        server.stop()
        server.start()
        server.wait_count(2400, timeout=60)
        assert server.query("SELECT count(*), sum(user_id) FROM events")[0] == want
        server.query("REFRESH MATERIALIZED VIEW events_hourly FULL")
        assert_hourly_matches(server, events)
    finally:
        cluster.stop()
