"""Replicas on one shared store (issue 15): two writer-capable processes and
two readers share a master dataset in S3 (moto) and consume the same topic
from Tansu, each into its own speed layer. Exactly one holds the writer
lease and archives; the others follow its commits. Events are produced
throughout; at every checkpoint each replica's answers are compared with the
produced events (count, sums, the hourly view), and Python `deltalake` checks
that the master dataset holds every (partition, offset) once.

The lease holder is killed with `kill -9`: the other writer takes over after
the lease lapses and continues from the table's offsets. Then the new holder
is paused (SIGSTOP, by a fault point placed just before its next Delta
commit) past its lease: the first writer takes over, and when the paused one
resumes, its commit fails (it conflicts with the new holder's takeover
commit), so nothing is written twice."""

import os
import signal
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import deltalake
import psycopg
import pytest

from harness import Moto, Server, assert_hourly_matches, generate, produce, read_events

EXPIRY = 3.0
ENV = {
    "LAMBDADB_LEASE_EXPIRY": f"{EXPIRY:.0f}s",
    "LAMBDADB_FOLLOW_INTERVAL": "200ms",
    "LAMBDADB_ARCHIVE_INTERVAL": "300ms",
    "LAMBDADB_COMPACT_INTERVAL": "2s",
    "LAMBDADB_COMPACT_MIN_FILES": "3",
}


def writing(server):
    return server.query("SELECT writing FROM lambdadb.replicas")[0][0]


def wait(pred, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if pred():
                return
        except psycopg.OperationalError:
            pass
        time.sleep(0.2)
    raise TimeoutError(what)


class Producer:
    """Produces chunks of events in the background, remembering each file."""

    def __init__(self, brokers, tmp):
        self.brokers, self.tmp = brokers, Path(tmp)
        self.files, self.n = [], 0

    def chunk(self, count=300):
        start = datetime(2026, 8, 1, tzinfo=timezone.utc) + timedelta(hours=self.n)
        f = generate(self.tmp / f"r{self.n}.jsonl", count, seed=1500 + self.n, start=start.isoformat(),
                     rate=0.2, late_fraction=0.05)
        self.n += 1
        produce(self.brokers, "events", f)
        self.files.append(f)

    def background(self, chunks, pause=0.3):
        def run():
            for _ in range(chunks):
                self.chunk()
                time.sleep(pause)
        t = threading.Thread(target=run)
        t.start()
        return t


def check_all(replicas, files):
    """Every replica: each produced event once (count and sums) and the view
    equal to the oracle, once it has consumed everything."""
    events = read_events(*files)
    want = (len(events), sum(e["user_id"] for e in events),
            sum(e["duration_ms"] for e in events if e.get("duration_ms") is not None))
    for r in replicas:
        r.wait_count(len(events), timeout=60)
        got = r.query("SELECT count(*), sum(user_id), sum(duration_ms) FROM events")[0]
        assert got == want, (r.port, got, want)
        assert_hourly_matches(r, events)


def check_master(moto, prefix, total):
    table = deltalake.DeltaTable(f"s3://{moto.bucket}/{prefix}/events",
                                 storage_options=moto.storage_options())
    t = table.to_pyarrow_table(columns=["_partition", "_offset"])
    keys = set(zip(t.column("_partition").to_pylist(), t.column("_offset").to_pylist()))
    assert t.num_rows == total and len(keys) == total, (t.num_rows, len(keys), total)


def test_one_writer_by_lease_readers_follow(broker, logs, tmp_path):
    moto = Moto(logs)
    prefix = "replicas"
    faults = tmp_path / "failpoints"
    faults.write_text("")
    servers = []

    def server(name, role):
        env = {**ENV, **moto.server_env(prefix), "LAMBDADB_TEST_FAILPOINTS_FILE": str(faults)}
        s = Server(broker.brokers, tmp_path / name, logs, env=env)
        s.role = role
        servers.append(s)
        return s

    try:
        broker.create_topic("events", 2)
        w1, w2 = server("w1", "writer"), server("w2", "writer")
        r1, r2 = server("r1", "reader"), server("r2", "reader")
        for s in (w1, w2, r1, r2):
            s.start(extra=["--role", s.role])
        wait(lambda: [writing(s) for s in (w1, w2, r1, r2)].count(True) == 1, "one writer")
        holder, other = (w1, w2) if writing(w1) else (w2, w1)
        assert not writing(r1) and not writing(r2)

        p = Producer(broker.brokers, tmp_path)
        t = p.background(4)
        # Answers while events flow: never more than produced, never less than before.
        seen = {s.port: 0 for s in servers}
        while t.is_alive():
            for s in servers:
                n = s.query("SELECT count(*) FROM events")[0][0]
                assert n >= seen[s.port]
                seen[s.port] = n
            time.sleep(0.1)
        t.join()
        check_all([w1, w2, r1, r2], p.files)
        wait(lambda: holder.query("SELECT rows FROM lambdadb.master_dataset")[0][0] == 1200, "archived")
        # Readers follow: their table version is the writer's.
        v = holder.query("SELECT table_version FROM lambdadb.master_dataset")[0][0]
        wait(lambda: r1.query("SELECT table_version FROM lambdadb.master_dataset")[0][0] >= v, "r1 follows")
        # Readers serve the versions the writer publishes.
        holder.query("REFRESH MATERIALIZED VIEW events_hourly")
        served = "SELECT version FROM lambdadb.view_versions WHERE view_name = 'events_hourly' AND serving"
        want_version = holder.query(served)
        for r in (other, r1, r2):
            wait(lambda: r.query(served) == want_version, f"{r.port} serves the writer's version {want_version}")
        check_all([w1, w2, r1, r2], p.files)
        with pytest.raises(psycopg.Error) as e:
            r1.query("REFRESH MATERIALIZED VIEW events_hourly")
        assert e.value.sqlstate == "25006", e.value
        assert "reader" in str(e.value)

        # kill -9 the holder while events flow: the other takes over.
        t = p.background(3)
        holder.kill9()
        wait(lambda: writing(other), "takeover after kill -9", timeout=EXPIRY * 6)
        t.join()
        alive = [other, r1, r2]
        check_all(alive, p.files)
        # The new writer continues the view's versions where the dead one left them.
        other.query("REFRESH MATERIALIZED VIEW events_hourly")
        after = other.query(served)
        assert after[0][0] > want_version[0][0], (after, want_version)
        for r in (r1, r2):
            wait(lambda: r.query(served) == after, f"{r.port} serves {after}")
        check_all(alive, p.files)
        wait(lambda: other.query("SELECT rows FROM lambdadb.master_dataset")[0][0] == 300 * p.n, "archived after takeover")
        check_master(moto, prefix, 300 * p.n)

        # The killed one comes back (same data_dir) as a follower.
        holder.start(extra=["--role", "writer"])
        time.sleep(EXPIRY)
        assert not writing(holder) and writing(other)

        # Pause the holder just before its next Delta commit, past its lease.
        faults.write_text("archive.manifest.begin=pause@1\n")
        p.chunk()
        wait(lambda: open(other.log_path).read().count("failpoint archive.manifest.begin: pausing") == 1,
             "the holder paused mid-commit", timeout=30)
        faults.write_text("")
        wait(lambda: writing(holder), "takeover from the paused holder", timeout=EXPIRY * 6)
        p.chunk()
        check_all([holder, r1, r2], p.files)
        os.kill(other.proc.pid, signal.SIGCONT)
        # Its commit fails (a conflict with the takeover), it steps down and follows.
        wait(lambda: not writing(other), "the paused holder steps down", timeout=30)
        wait(lambda: "archiving failed" in open(other.log_path).read(),
             "the paused holder's commit fails", timeout=30)
        log = open(other.log_path).read()
        assert "Concurrent transaction" in log or "conflict" in log.lower(), log[-3000:]
        p.chunk()
        check_all([holder, other, r1, r2], p.files)
        wait(lambda: holder.query("SELECT rows FROM lambdadb.master_dataset")[0][0] == 300 * p.n, "all archived")
        check_master(moto, prefix, 300 * p.n)
        assert sum(writing(s) for s in (holder, other, r1, r2)) == 1
    finally:
        for s in servers:
            if s.proc and s.proc.poll() is None:
                os.kill(s.proc.pid, signal.SIGCONT)
            s.stop()
        moto.stop()


def test_declarations_reach_every_replica(broker, logs, tmp_path):
    """The catalog on the shared store: what is declared over the wire on one
    replica (a source table, a materialized view, a plain view, a setting, a
    drop) is served by the other too, with the same answers."""
    moto = Moto(logs)
    servers = []
    try:
        broker.create_topic("events", 1)
        broker.create_topic("clicks", 1)
        for name, role in (("w", "writer"), ("r", "reader")):
            s = Server(broker.brokers, tmp_path / name, logs, env={**ENV, **moto.server_env("cat")})
            s.start(extra=["--role", role])
            servers.append(s)
        w, r = servers
        wait(lambda: writing(w), "the writer holds the lease")
        w.query("CREATE TABLE clicks (user_id BIGINT, page TEXT, ts TIMESTAMPTZ) "
                "WITH (topic = 'clicks', format = 'json', event_time = 'ts')")
        w.query("CREATE MATERIALIZED VIEW clicks_by_page AS "
                "SELECT page, count(*) AS n FROM clicks GROUP BY page")
        # Declarations reach the others within follow_interval.
        wait(lambda: r.query("SELECT count(*) FROM lambdadb.views WHERE view_name = 'clicks_by_page'") == [(1,)],
             "the reader has the writer's view", timeout=30)
        # A reader declares too; the writer computes the view's versions.
        r.query("CREATE VIEW big_pages AS SELECT page FROM clicks_by_page WHERE n > 1")
        rows = [f'{{"user_id": {i}, "page": "p{i % 3}", "ts": "2026-08-01T00:00:{i:02d}Z"}}' for i in range(30)]
        f = tmp_path / "clicks.jsonl"
        f.write_text("\n".join(rows) + "\n")
        produce(broker.brokers, "clicks", f)
        want = [("p0", 10), ("p1", 10), ("p2", 10)]
        for s in (w, r):
            wait(lambda: s.query("SELECT page, n FROM clicks_by_page ORDER BY page") == want,
                 f"{s.port} serves the view declared on the writer")
            wait(lambda: s.query("SELECT page FROM big_pages ORDER BY page") == [("p0",), ("p1",), ("p2",)],
                 f"{s.port} serves the plain view declared on the reader")
        # A setting and a drop made on the reader reach the writer.
        r.query("ALTER TABLE clicks SET (retention = '400 days')")
        wait(lambda: w.query("SELECT retention FROM lambdadb.master_dataset WHERE table_name = 'clicks'")[0][0]
             is not None, "the writer applies the reader's setting")
        r.query("DROP VIEW big_pages")
        wait(lambda: w.query("SELECT count(*) FROM information_schema.views WHERE table_name = 'big_pages'")
             == [(0,)], "the writer drops what the reader dropped")
        # A restarted replica starts from the shared catalog.
        r.stop()
        r.start(extra=["--role", "reader"])
        assert r.query("SELECT page, n FROM clicks_by_page ORDER BY page") == want
        assert r.query("SELECT count(*) FROM information_schema.views WHERE table_name = 'big_pages'") == [(0,)]
    finally:
        for s in servers:
            s.stop()
        moto.stop()
