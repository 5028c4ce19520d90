"""Batch view versions (issue 14): incremental refresh at the cost of the new
files, REFRESH ... FULL, lambdadb.view_versions, ROLLBACK TO VERSION, and the
versions kept by count.

Answers are compared with an oracle computed in Python from the produced
events (harness.hourly_oracle), never with lambdadb's own earlier answers."""

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from harness import assert_hourly_matches, generate, produce, read_events

BASE = datetime(2026, 5, 1, tzinfo=timezone.utc)


def chunk(tmp_path, broker, server, i, count, total):
    f = generate(tmp_path / f"c{i}.jsonl", count, seed=700 + i,
                 start=(BASE + timedelta(hours=i)).isoformat(), rate=5.0)
    produce(broker.brokers, "events", f)
    server.wait_count(total + count)
    return f


def versions(server, view="events_hourly"):
    return server.query(
        "SELECT version, serving, how, input_files, input_rows, rows, bytes, current_definition "
        "FROM lambdadb.view_versions WHERE view_name = %s ORDER BY version", (view,))


def sqlstate(server, sql):
    with pytest.raises(psycopg.Error) as e:
        server.query(sql)
    return e.value.sqlstate, str(e.value)


def test_incremental_refresh_reads_only_new_files_and_equals_full(broker, make_server, tmp_path):
    broker.create_topic("events", 2)
    server = make_server(broker.brokers, env={"LAMBDADB_ARCHIVE_INTERVAL": "500ms"})
    files, total = [], 0
    files.append(chunk(tmp_path, broker, server, 0, 3000, total))
    total += 3000
    server.query("REFRESH MATERIALIZED VIEW events_hourly")
    files.append(chunk(tmp_path, broker, server, 1, 300, total))
    total += 300
    server.query("REFRESH MATERIALIZED VIEW events_hourly")
    v = versions(server)
    # Version 1 is the view's first run at creation, over an empty master dataset.
    assert [(r[2], r[4]) for r in v] == [("full", 0), ("incremental", 3000), ("incremental", 300)], v
    # The last run read only the files archived since the version before it.
    assert v[2][1] and not v[1][1], "the newest version is served"
    events = read_events(*files)
    assert_hourly_matches(server, events)
    inc_answer = server.query("SELECT * FROM events_hourly ORDER BY 1, 2, 3")

    # A full recompute of the same events gives the same answer.
    server.query("REFRESH MATERIALIZED VIEW events_hourly FULL")
    v = versions(server)
    assert v[-1][2] == "full" and v[-1][4] == total, v
    full_answer = server.query("SELECT * FROM events_hourly ORDER BY 1, 2, 3")
    assert [r[:4] for r in full_answer] == [r[:4] for r in inc_answer]
    for a, b in zip(full_answer, inc_answer):  # float sums in another order
        assert (a[4] is None and b[4] is None) or math.isclose(a[4], b[4], rel_tol=1e-12), (a, b)
    assert_hourly_matches(server, events)
    # The incremental versions chain (each added a file of its new events'
    # partial rows); a group in two files is a row in each, so the chain
    # holds at least the full run's rows, which are one per group.
    chain = server.query("SELECT files FROM lambdadb.view_versions ORDER BY version")
    assert [c[0] for c in chain] == [1, 2, 3, 1], chain
    assert v[-2][5] >= v[-1][5] == len(full_answer), v
    views = server.query(
        "SELECT refresh_how, refresh_input_rows, versions_kept FROM lambdadb.views "
        "WHERE view_name = 'events_hourly'")
    assert views == [("full", total, 4)]


def test_rollback_serves_an_older_version_exactly_and_survives_a_restart(
        broker, make_server, tmp_path):
    broker.create_topic("events", 3)
    server = make_server(broker.brokers, env={"LAMBDADB_ARCHIVE_INTERVAL": "500ms"})
    files, total = [], 0
    for i in range(3):
        files.append(chunk(tmp_path, broker, server, i, 1000, total))
        total += 1000
        server.query("REFRESH MATERIALIZED VIEW events_hourly")
    assert [r[0] for r in versions(server)] == [1, 2, 3, 4]

    assert server.query("ALTER MATERIALIZED VIEW events_hourly ROLLBACK TO VERSION 2") \
        == "ALTER MATERIALIZED VIEW"
    v = versions(server)
    assert [r[0] for r in v if r[1]] == [2], "version 2 is served"
    # Version 2 covers the first chunk only: the speed part covers the rest, exactly.
    assert_hourly_matches(server, read_events(*files))
    served = server.query(
        "SELECT batch_version FROM lambdadb.views WHERE view_name = 'events_hourly'")
    assert served == [(2,)]

    # More events on top of the rolled-back version, then a restart.
    files.append(chunk(tmp_path, broker, server, 3, 500, total))
    total += 500
    server.stop()
    server.start()
    server.wait_count(total)
    assert server.query(
        "SELECT batch_version FROM lambdadb.views WHERE view_name = 'events_hourly'") == [(2,)]
    assert_hourly_matches(server, read_events(*files))

    # The next refresh starts from the version served: incremental from 2.
    server.query("REFRESH MATERIALIZED VIEW events_hourly")
    v = versions(server)
    assert v[-1][0] == 5 and v[-1][1] and v[-1][2] == "incremental", v
    assert v[-1][4] == total - 1000, "it read everything above version 2's watermark"
    assert_hourly_matches(server, read_events(*files))

    state, msg = sqlstate(server, "ALTER MATERIALIZED VIEW events_hourly ROLLBACK TO VERSION 99")
    assert state == "42704" and "1, 2, 3, 4, 5" in msg, msg
    state, _ = sqlstate(server, "ALTER MATERIALIZED VIEW events_hourly RENAME TO x")
    assert state == "42601"
    state, _ = sqlstate(server, "ALTER MATERIALIZED VIEW nope ROLLBACK TO VERSION 1")
    assert state == "42P01"


def test_versions_are_kept_by_count_and_a_new_definition_cannot_roll_back_to_old_ones(
        broker, make_server, tmp_path):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers, env={
        "LAMBDADB_ARCHIVE_INTERVAL": "500ms", "LAMBDADB_VIEW_VERSIONS_KEEP": "3"})
    total = 0
    files = []
    for i in range(5):
        files.append(chunk(tmp_path, broker, server, i, 200, total))
        total += 200
        server.query("REFRESH MATERIALIZED VIEW events_hourly")
    assert [r[0] for r in versions(server)] == [4, 5, 6]
    view_dir = Path(server.data_dir) / "views" / "events_hourly"
    # The versions whose files are on disk (on a shared store a file's name
    # also carries the replica that wrote it: v0000000001-<replica>.parquet).
    on_disk = lambda: sorted(int(p.name[1:11]) for p in view_dir.glob("*.parquet"))  # noqa: E731
    # Each incremental run chained on the one before: version 6 still holds
    # the rows of versions 1 to 5 in their files.
    assert on_disk() == list(range(1, 7))
    assert_hourly_matches(server, read_events(*files))
    # Full runs hold one file each: once the chain's versions are dropped, its files go.
    for _ in range(3):
        server.query("REFRESH MATERIALIZED VIEW events_hourly FULL")
    assert on_disk() == [7, 8, 9], "the dropped versions' files are gone"
    assert_hourly_matches(server, read_events(*files))

    server.query(
        "CREATE OR REPLACE MATERIALIZED VIEW events_hourly AS SELECT date_trunc('hour', event_time) "
        "AS hour, event_type, country, count(*) AS events, sum(revenue) AS revenue, "
        "max(duration_ms) AS longest FROM events GROUP BY 1, 2, 3")
    v = versions(server)
    assert v[-1][2] == "full" and v[-1][7], "a new definition starts with a full run"
    assert not v[0][7], "older versions belong to the old definition"
    state, msg = sqlstate(server, f"ALTER MATERIALIZED VIEW events_hourly ROLLBACK TO VERSION {v[0][0]}")
    assert state == "55000", msg
