"""Compaction (issue 14): the small files of each archive run are merged while
events flow and views refresh (incrementally, in full) and roll back, and no
answer changes: every checkpoint is compared with an oracle computed from the
produced events. Replaced files leave the store after the grace period; a
Delta reader still sees every event once. Runs on local disk and on S3."""

import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import deltalake

from harness import assert_hourly_matches, generate, produce, read_events

ENV = {
    "LAMBDADB_ARCHIVE_INTERVAL": "150ms",
    "LAMBDADB_COMPACT_INTERVAL": "700ms",
    "LAMBDADB_COMPACT_MIN_FILES": "3",
    "LAMBDADB_VACUUM_GRACE": "1s",
}


def master(server):
    return server.query(
        "SELECT files, rows, compactions, files_awaiting_deletion, table_version "
        "FROM lambdadb.master_dataset WHERE table_name = 'events'")[0]


def test_compaction_keeps_every_answer(broker, make_server, master_store, tmp_path):
    broker.create_topic("events", 2)
    server = make_server(broker.brokers, env=ENV)
    rng = random.Random(14)
    files, total = [], 0
    for i in range(12):
        f = generate(tmp_path / f"c{i}.jsonl", 400, seed=900 + i,
                     start=(datetime(2026, 7, 1, tzinfo=timezone.utc) + timedelta(hours=i)).isoformat(),
                     rate=3.0, late_fraction=0.05)
        files.append(f)
        # In four pieces: several archive runs (small files) per chunk.
        lines = Path(f).read_text().splitlines(keepends=True)
        for k in range(4):
            piece = tmp_path / f"c{i}.{k}.jsonl"
            piece.write_text("".join(lines[k * 100:(k + 1) * 100]))
            produce(broker.brokers, "events", piece)
            time.sleep(0.2)
        total += 400
        # Views refresh less often than archives run (as with the defaults,
        # 60 s and 10 s): compaction merges between the versions views keep.
        what = rng.random() if i % 3 == 2 else 1.0
        if what < 0.5:
            server.query("REFRESH MATERIALIZED VIEW events_hourly")
        elif what < 0.7:
            server.query("REFRESH MATERIALIZED VIEW events_hourly FULL")
        elif what < 0.85:
            older = server.query(
                "SELECT version FROM lambdadb.view_versions WHERE view_name = 'events_hourly' "
                "AND NOT serving AND current_definition")
            if older:
                server.query("ALTER MATERIALIZED VIEW events_hourly ROLLBACK TO VERSION "
                             f"{rng.choice(older)[0]}")
        server.wait_count(total)
        assert_hourly_matches(server, read_events(*files))
        time.sleep(0.3)  # let archive runs and a compaction happen between checkpoints

    deadline = time.time() + 30
    while time.time() < deadline and master(server)[2] < 3:
        time.sleep(0.3)
    files_now, rows, compactions, _, version = master(server)
    assert compactions >= 3, master(server)
    assert rows == total
    server.query("REFRESH MATERIALIZED VIEW events_hourly")
    assert_hourly_matches(server, read_events(*files))

    # Many archive runs, few files: each compaction merged at least 3 into 1.
    commits = version
    assert files_now < commits / 2, (files_now, commits)

    # A Delta reader sees every event once, after the rewrites.
    table = deltalake.DeltaTable(master_store.delta_url(server.data_dir),
                                 storage_options=master_store.storage_options())
    assert table.to_pyarrow_table().num_rows == total
    ops = {h.get("operation") for h in table.history()}
    assert "OPTIMIZE" in ops, ops

    # Replaced files leave the store after the grace period.
    deadline = time.time() + 20
    while time.time() < deadline and master(server)[3] > 0:
        time.sleep(0.3)
    assert master(server)[3] == 0
    if master_store.kind == "local":
        on_disk = [p for p in (Path(server.data_dir) / "sources" / "events").rglob("*.parquet")
                   if "_delta_log" not in p.parts]
        assert len(on_disk) == master(server)[0], "only the files of the table remain"

    # And after a restart everything is still exact.
    server.stop()
    server.start()
    server.wait_count(total)
    assert_hourly_matches(server, read_events(*files))


def consumed(server, total, timeout=60):
    """Waits until the server has consumed `total` messages (the rows of
    expired files no longer count in `SELECT count(*)`)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.query("SELECT sum(consumed_offset) FROM lambdadb.sources")[0][0] == total:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{total} messages not consumed in {timeout}s")


def test_retention_and_compaction_keep_view_answers(broker, make_server, tmp_path):
    """Retention and compaction run every 0.7 s while events flow, views
    refresh incrementally and roll back, and at every checkpoint the view
    equals the oracle over every produced event (views keep the history of
    expired events), the raw table holds every young event once and no more
    old ones than were produced, and expired files do go. Old events (an hour
    before now, past the 10-minute retention) and young ones arrive in files
    of their own, so whole files expire."""
    broker.create_topic("events", 2)
    env = dict(ENV, LAMBDADB_VIEW_VERSIONS_KEEP="2")
    server = make_server(broker.brokers, env=env)
    server.query("ALTER TABLE events SET (retention = '10 minutes')")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    rng = random.Random(41)
    files, young, old = [], 0, 0
    young_from = now - timedelta(minutes=2)
    for i in range(8):
        for kind, start, n in (("old", now - timedelta(hours=1, minutes=10 - i), 150),
                               ("young", young_from + timedelta(seconds=10 * i), 250)):
            f = generate(tmp_path / f"{kind}{i}.jsonl", n, seed=700 + i * 2 + (kind == "old"),
                         start=start.isoformat(), rate=50.0, late_fraction=0.0)
            files.append(f)
            produce(broker.brokers, "events", f)
            if kind == "old":
                old += n
            else:
                young += n
            consumed(server, young + old)
            time.sleep(0.4)  # archived apart: files hold old or young events only
        # Refresh first, then (sometimes) roll back to the one older version kept.
        server.query("REFRESH MATERIALIZED VIEW events_hourly")
        if rng.random() < 0.3:
            older = server.query(
                "SELECT version FROM lambdadb.view_versions WHERE view_name = 'events_hourly' "
                "AND NOT serving AND current_definition")
            if older:
                server.query(f"ALTER MATERIALIZED VIEW events_hourly ROLLBACK TO VERSION {older[0][0]}")
        assert_hourly_matches(server, read_events(*files))
        # Young events: every one, once (count and sums as the oracle has them).
        want = [e for e in read_events(*files)
                if datetime.fromisoformat(e["event_time"].replace("Z", "+00:00")) >= young_from]
        got = server.query("SELECT count(*), sum(user_id), sum(duration_ms) FROM events WHERE event_time >= %s",
                           (young_from,))[0]
        assert len(want) == young
        assert got == (young, sum(e["user_id"] for e in want),
                       sum(e["duration_ms"] for e in want if e.get("duration_ms") is not None)), got
        seen_old = server.query("SELECT count(*) FROM events WHERE event_time < %s", (young_from,))[0][0]
        assert seen_old <= old, (seen_old, old)

    # Retention did remove files while the checks ran.
    deadline = time.time() + 30
    while time.time() < deadline and server.query(
            "SELECT expired_files FROM lambdadb.master_dataset WHERE table_name = 'events'")[0][0] == 0:
        server.query("REFRESH MATERIALIZED VIEW events_hourly")
        time.sleep(0.5)
    expired, compactions = server.query(
        "SELECT expired_files, compactions FROM lambdadb.master_dataset WHERE table_name = 'events'")[0]
    assert expired > 0 and compactions > 0, (expired, compactions)
    assert_hourly_matches(server, read_events(*files))
    assert server.query("SELECT count(*) FROM events WHERE event_time < %s", (young_from,))[0][0] < old

    server.stop()
    server.start()
    consumed(server, young + old)
    assert_hourly_matches(server, read_events(*files))
