"""Retention (issue 14): `WITH (retention = '1 day')` removes master-dataset
files whose events are all older than the limit, atomically, by event time.
Views keep their aggregated history (an incremental refresh carries the
previous version's rows forward); a FULL recompute recomputes from the raw
events that remain. Runs on local disk and on S3."""

import json
import time
from datetime import datetime, timedelta, timezone

import deltalake
import psycopg
import pytest

from harness import produce

SQL = """
CREATE TABLE clicks (t TIMESTAMPTZ NOT NULL, k TEXT, n INT)
  WITH (topic = 'clicks', event_time = 't', retention = '1 day');
CREATE MATERIALIZED VIEW clicks_daily AS
  SELECT date_trunc('day', t) AS day, count(*) AS c, sum(n) AS s FROM clicks GROUP BY 1;
"""


def write(path, when, count):
    with open(path, "w") as f:
        for i in range(count):
            f.write(json.dumps({"t": (when + timedelta(seconds=i)).isoformat(), "k": "a", "n": 1}) + "\n")
    return path


def wait(pred, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise TimeoutError(what)


def test_retention_removes_old_files_and_views_keep_history(broker, make_server, master_store, tmp_path):
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    (sql_dir / "001.sql").write_text(SQL)
    broker.create_topic("clicks", 1)
    env = {"LAMBDADB_ARCHIVE_INTERVAL": "200ms", "LAMBDADB_COMPACT_INTERVAL": "0s",
           "LAMBDADB_VACUUM_GRACE": "1s", "LAMBDADB_VIEW_VERSIONS_KEEP": "2"}
    server = make_server(broker.brokers, env=env, sql_dir=sql_dir)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    total = 0
    # Three days apart, each archived in its own files.
    for i, days in enumerate([3, 2, 0]):
        produce(broker.brokers, "clicks", write(tmp_path / f"d{i}.jsonl", now - timedelta(days=days, hours=1), 100))
        total += 100
        server.wait_count(total, table="clicks")
        wait(lambda: server.query("SELECT rows FROM lambdadb.master_dataset")[0][0] == total,
             "each chunk archived before the next (in files of its own)")
    server.query("REFRESH MATERIALIZED VIEW clicks_daily")
    assert len(server.query("SELECT * FROM clicks_daily")) == 3
    # Files past the horizon stay while a kept view version reads them (the
    # version from before the events would rebuild its speed part from them
    # on a rollback); one more refresh drops it (two versions are kept).
    server.stop()
    server.env["LAMBDADB_COMPACT_INTERVAL"] = "300ms"
    server.start()
    wait(lambda: server.query("SELECT retention_held_files FROM lambdadb.master_dataset")[0][0] == 2,
         "two files past the horizon, held for the first version")
    assert server.query("SELECT count(*) FROM clicks") == [(300,)]
    server.query("REFRESH MATERIALIZED VIEW clicks_daily")

    # With retention running (it runs with compaction), the two old files go.
    wait(lambda: server.query("SELECT count(*) FROM clicks") == [(100,)], "old events expired")
    row = server.query("SELECT files, rows, retention, retention_horizon, expired_files, retention_held_files "
                       "FROM lambdadb.master_dataset WHERE table_name = 'clicks'")[0]
    assert row[1:3] == (100, "1 day") and row[4] >= 2 and row[5] == 0, row
    assert now - timedelta(days=1, minutes=5) < row[3] < now + timedelta(minutes=5), row
    # Outside readers see the same: the removal is one Delta DELETE commit.
    table = deltalake.DeltaTable(master_store.delta_url(server.data_dir, "clicks"),
                                 storage_options=master_store.storage_options())
    assert table.to_pyarrow_table().num_rows == 100
    assert "DELETE" in {h.get("operation") for h in table.history()}

    # The view keeps its aggregated history through incremental refreshes...
    produce(broker.brokers, "clicks", write(tmp_path / "d3.jsonl", now - timedelta(minutes=30), 10))
    server.wait_count(110, table="clicks")
    server.query("REFRESH MATERIALIZED VIEW clicks_daily")
    days = server.query("SELECT c FROM clicks_daily ORDER BY day")
    assert [d[0] for d in days][:2] == [100, 100] and sum(d[0] for d in days) == 310, days
    # ...and a FULL recompute works from the raw events that remain.
    server.query("REFRESH MATERIALIZED VIEW clicks_daily FULL")
    assert sum(r[0] for r in server.query("SELECT c FROM clicks_daily")) == 110

    # Expired files leave the store after the grace period.
    wait(lambda: server.query("SELECT files_awaiting_deletion FROM lambdadb.master_dataset")
         == [(0,)], "expired files deleted")

    with pytest.raises(psycopg.Error) as e:
        server.query("CREATE TABLE bad (t TIMESTAMPTZ) WITH (topic = 'x', event_time = 't', "
                     "retention = 'forever')")
    assert e.value.sqlstate == "22023"


def test_alter_table_sets_and_resets_retention(broker, make_server, tmp_path):
    """`ALTER TABLE ... SET (retention)` applies at once, lasts across restarts
    (even for a table a `sql/` file declares without one) and `RESET` undoes it;
    with compaction off, retention still runs."""
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    (sql_dir / "001.sql").write_text(SQL.replace(", retention = '1 day'", "") + """
CREATE TABLE plain (t TIMESTAMPTZ, k TEXT) WITH (topic = 'plain');""")
    broker.create_topic("clicks", 1)
    broker.create_topic("plain", 1)
    env = {"LAMBDADB_ARCHIVE_INTERVAL": "200ms", "LAMBDADB_COMPACT_INTERVAL": "0s",
           "LAMBDADB_VIEW_VERSIONS_KEEP": "2"}
    server = make_server(broker.brokers, env=env, sql_dir=sql_dir)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for i, days in enumerate([3, 0]):
        produce(broker.brokers, "clicks", write(tmp_path / f"a{i}.jsonl", now - timedelta(days=days, hours=1), 50))
        server.wait_count(50 * (i + 1), table="clicks")
        wait(lambda: server.query("SELECT rows FROM lambdadb.master_dataset WHERE table_name = 'clicks'")[0][0]
             == 50 * (i + 1), "each chunk archived in files of its own")
    shown = "SELECT retention FROM lambdadb.master_dataset WHERE table_name = 'clicks'"
    assert server.query(shown) == [(None,)]

    def alter(sql):
        with server.connect() as conn:
            notices = []
            conn.add_notice_handler(lambda d: notices.append(d.message_primary))
            conn.execute(sql)
        return notices

    # The view's first version (from before the events) would rebuild its
    # speed part from every file on a rollback: the old file stays, and the
    # notice says why and what lets it go.
    notices = alter("ALTER TABLE clicks SET (retention = '48 hours')")
    assert any("stay while a kept version" in n for n in notices), notices
    assert server.query("SELECT count(*) FROM clicks") == [(100,)]
    server.query("REFRESH MATERIALIZED VIEW clicks_daily")
    server.query("REFRESH MATERIALIZED VIEW clicks_daily")
    notices = alter("ALTER TABLE clicks SET (retention = '48 hours')")
    assert any("past the retention" in n for n in notices), notices
    # Applied before the statement returned, not on a later pass.
    assert server.query("SELECT count(*) FROM clicks") == [(50,)]
    assert server.query(shown) == [("2 days",)]

    def refused(sql):
        with pytest.raises(psycopg.Error) as e:
            server.query(sql)
        return e.value.sqlstate

    assert refused("ALTER TABLE clicks_daily SET (retention = '1 day')") == "42809"
    assert refused("ALTER TABLE nope SET (retention = '1 day')") == "42P01"
    assert refused("ALTER TABLE clicks SET (topic = 'other')") == "22023"
    assert refused("ALTER TABLE clicks SET (retention = 'a while')") == "22023"
    assert refused("ALTER TABLE clicks ADD COLUMN x INT") == "0A000"
    assert refused("ALTER TABLE plain SET (retention = '1 day')") == "55000"
    server.query("ALTER TABLE IF EXISTS nope SET (retention = '1 day')")

    # It outlasts a restart although the sql/ file declares no retention.
    server.stop()
    server.start()
    assert server.query(shown) == [("2 days",)]
    server.query("ALTER TABLE clicks RESET (retention)")
    server.stop()
    server.start()
    assert server.query(shown) == [(None,)]
    assert server.query("SELECT count(*) FROM clicks") == [(50,)]
