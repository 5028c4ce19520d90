"""The fault-injection suite (issue 13): kill -9 at random instants, a crash at
every commit-protocol failpoint, a full disk, a broker outage, Kafka retention
overtaking a stopped server, and malformed messages. Every scenario checks the
invariant against an oracle outside lambdadb (the produced events, in Python):
`count(*)` of events and every group of events_hourly.

    python integration/faults.py [--events N] [--kills K] [--outage S]

`make faults` runs the full size (1,000,000 events, 20 kills, a 30 s outage);
`integration/test_fault_suite.py` runs a reduced size inside `make test`. The
binary must be a test build (`make build-test`: failpoints compiled in).
Prints a table at the end: scenario, events, faults injected, lost,
duplicated, result."""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb  # noqa: E402
from harness import (BIN, MockBroker, Server, Tansu, generate, hourly_oracle,  # noqa: E402
                     produce, read_events)

# Every named step of every commit protocol (lambdadb_common::failpoint).
DURABLE_STEPS = ["written", "synced", "renamed", "dir_synced"]
FAILPOINTS = (
    [f"archive.file.{s}" for s in DURABLE_STEPS]
    + [f"archive.manifest.{s}" for s in DURABLE_STEPS]
    + ["archive.pruned"]
    + [f"view.file.{s}" for s in DURABLE_STEPS]
    + [f"view.current.{s}" for s in DURABLE_STEPS]
    + [f"import.file.{s}" for s in DURABLE_STEPS]
    + [f"import.manifest.{s}" for s in DURABLE_STEPS]
    + [f"catalog.{s}" for s in DURABLE_STEPS]
    + [f"compact.file.{s}" for s in DURABLE_STEPS]
    + [f"compact.manifest.{s}" for s in DURABLE_STEPS]
    + [f"retention.manifest.{s}" for s in DURABLE_STEPS]
)
# Events older than RETENTION are produced only to be expired (never in the oracle).
RETENTION = "2000 days"
EXPIRED_AT = "2019-03-01T00:00:00Z"


def feed(brokers, path):
    """`lambdadb produce` of `path` to topic events, in the background."""
    return subprocess.Popen([BIN, "produce", "--brokers", brokers, "--topic", "events", str(path)],
                            stdout=subprocess.DEVNULL)


def log(msg):
    print(f"[faults {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Oracle:
    """The produced events and what lambdadb must answer for them."""

    def __init__(self):
        self.events = []

    def add(self, path):
        self.events.extend(read_events(path))

    def compare(self, server, timeout=300.0):
        """(lost, duplicated, detail): waits until the count settles at the
        oracle's, then compares every group of events_hourly."""
        want = len(self.events)
        deadline = time.time() + timeout
        got = None
        while time.time() < deadline:
            got = server.query("SELECT count(*) FROM events")[0][0]
            if got >= want:
                break
            time.sleep(0.2)
        time.sleep(0.3)
        got = server.query("SELECT count(*) FROM events")[0][0]
        lost, dup = max(0, want - got), max(0, got - want)
        oracle = hourly_oracle(self.events)
        # Views keep the aggregated history of expired events (the failpoint
        # round's retention): only hours the oracle can hold are compared.
        rows = server.query("SELECT hour, event_type, country, events, revenue FROM events_hourly "
                            "WHERE hour >= TIMESTAMPTZ '2020-01-01 00:00:00+00'")
        groups = {}
        bad = 0
        for hour, et, country, n, rev in rows:
            key = (hour, et, country)
            bad += key in groups
            groups[key] = (n, rev)
        view_lost = view_dup = 0
        for k, (n, rev) in oracle.items():
            gn = groups.pop(k, (0, None))[0]
            view_lost += max(0, n - gn)
            view_dup += max(0, gn - n)
        view_dup += sum(n for n, _ in groups.values()) + bad
        detail = "" if lost == dup == view_lost == view_dup == 0 else \
            f"count {got} vs {want}; view lost {view_lost}, duplicated {view_dup}"
        return lost + view_lost, dup + view_dup, detail


class Run:
    def __init__(self, work, args):
        self.work = Path(work)
        self.args = args
        self.logs = self.work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.rows = []
        self.seed = 100

    def events(self, count, start):
        self.seed += 1
        return generate(self.work / f"ev-{self.seed}.jsonl", count, seed=self.seed, start=start,
                        rate=1000.0)

    def server(self, brokers, name, env=None):
        base = {"LAMBDADB_ARCHIVE_INTERVAL": "100ms", "LAMBDADB_REFRESH_INTERVAL": "1s",
                "LAMBDADB_RESULT_CACHE_SIZE": "0"}
        base.update(env or {})
        return Server(brokers, self.work / name, self.logs, base)

    def record(self, scenario, events, faults, lost, dup, detail=""):
        ok = lost == 0 and dup == 0 and not detail
        self.rows.append((scenario, events, faults, lost, dup, "ok" if ok else f"FAIL {detail}"))
        log(f"{scenario}: {'ok' if ok else 'FAIL ' + detail}")

    # --- scenarios ---------------------------------------------------------

    def kill9(self):
        broker = Tansu(self.logs)
        try:
            broker.create_topic("events", 3)
            server = self.server(broker.brokers, "kill9").start()
            oracle = Oracle()
            chunk = self.args.events // self.args.kills
            rng = random.Random(7)
            passed = lost = dup = mid = 0
            details = []
            for i in range(self.args.kills):
                ev = self.events(chunk, f"2026-04-{1 + i % 28:02d}T00:00:00Z")
                feeder = feed(broker.brokers, ev)
                time.sleep(rng.uniform(0.05, 1.5))
                # Killed while catching up: the instant lies inside ingest
                # (and, with archives every 100 ms, often inside a commit).
                behind = server.query("SELECT count(*) FROM events")[0][0] < len(oracle.events) + chunk
                mid += behind
                server.kill9()
                feeder.wait(600)
                oracle.add(ev)
                server.start()
                l, d, detail = oracle.compare(server)
                lost, dup = lost + l, dup + d
                passed += not detail
                if detail:
                    details.append(f"kill {i + 1}: {detail}")
                log(f"kill {i + 1}/{self.args.kills}: {len(oracle.events)} events, {detail or 'exact'}")
            server.stop()
            self.record(f"kill -9 at random instants ({passed} of {self.args.kills} exact, "
                        f"{mid} while ingesting)",
                        len(oracle.events), self.args.kills, lost, dup, "; ".join(details))
        finally:
            broker.stop()

    def failpoints(self):
        broker = Tansu(self.logs)
        imports = self.work / "imports"
        imports.mkdir(exist_ok=True)
        try:
            broker.create_topic("events", 2)
            server = self.server(broker.brokers, "failpoints",
                                 {"LAMBDADB_IMPORT_DIR": str(imports), "LAMBDADB_COMPACT_MIN_FILES": "2",
                                  "LAMBDADB_VACUUM_GRACE": "1s", "LAMBDADB_VIEW_VERSIONS_KEEP": "2"}).start()
            oracle = Oracle()
            lost = dup = crashed = 0
            details = []
            for n, point in enumerate(FAILPOINTS):
                server.stop()
                server.env["LAMBDADB_TEST_FAILPOINTS"] = f"{point}=crash@2"
                # Compaction runs all the time for its own points; off for the
                # others (it would merge the files retention is to remove).
                server.env["LAMBDADB_COMPACT_INTERVAL"] = "500ms" if point.startswith("compact.") else "0s"
                server.start()
                # Two waves, so that every protocol commits at least twice.
                for wave in range(2):
                    ev = self.events(self.args.chunk // 2, f"2026-05-{1 + n % 28:02d}T0{wave}:00:00Z")
                    produce(broker.brokers, "events", ev)
                    oracle.add(ev)
                    time.sleep(0.5)
                self.provoke(server, point, imports, n, oracle)
                deadline = time.time() + 30
                while server.alive() and time.time() < deadline:
                    time.sleep(0.1)
                if server.alive():
                    details.append(f"{point}: never reached")
                    continue
                crashed += 1
                server.proc.wait()
                server.log.close()
                del server.env["LAMBDADB_TEST_FAILPOINTS"]
                server.start()
                self.retry_after_crash(server, point, imports, n)
                l, d, detail = oracle.compare(server)
                lost, dup = lost + l, dup + d
                if detail:
                    details.append(f"{point}: {detail}")
                log(f"crash at {point}: {detail or 'exact'}")
            server.stop()
            self.record(f"crash at each failpoint ({crashed} of {len(FAILPOINTS)} points)",
                        len(oracle.events), crashed, lost, dup, "; ".join(details))
        finally:
            broker.stop()

    def provoke(self, server, point, imports, n, oracle):
        """Makes the protocol of `point` run twice (the crash is at the second hit)."""
        try:
            if point.startswith("import."):
                for k in range(2):
                    f = imports / f"f{n}-{k}.parquet"
                    duckdb.sql(
                        f"COPY (SELECT TIMESTAMPTZ '2024-01-0{k + 1} 00:00:00+00' + i * INTERVAL 1 MINUTE "
                        f"AS event_time, i::BIGINT AS user_id, 'imp{n}' AS event_type, 'zz' AS country "
                        f"FROM range(100) t(i)) TO '{f}' (FORMAT parquet)")
                    oracle.events.extend({"event_time": f"2024-01-0{k + 1}T{i // 60:02d}:{i % 60:02d}:00Z",
                                          "event_type": f"imp{n}", "country": "zz", "revenue": None}
                                         for i in range(100))
                    server.query(f"COPY events FROM '{f}' (FORMAT parquet)")
            elif point.startswith("catalog."):
                for k in range(2):
                    server.query(f"CREATE OR REPLACE VIEW cat_{n}_{k} AS SELECT count(*) AS n FROM events")
            elif point.startswith("retention."):
                # Files holding only long-expired events, each removed by an ALTER.
                for k in range(2):
                    self.archived(server, oracle, extra=0)
                    old = self.events(100, EXPIRED_AT)
                    produce(server.brokers, "events", old)
                    self.archived(server, oracle, extra=100)
                    # Both kept view versions past the old file: retention
                    # removes no file a kept version reads (rollbacks rebuild from them).
                    for _ in range(2):
                        server.query("REFRESH MATERIALIZED VIEW events_hourly")
                    server.query(f"ALTER TABLE events SET (retention = '{RETENTION}')")
                    server.query("ALTER TABLE events RESET (retention)")
        except Exception:
            pass  # the crash interrupts the statement

    @staticmethod
    def archived(server, oracle, extra, timeout=60):
        """Waits until the oracle's events plus `extra` are all archived."""
        want = len(oracle.events) + extra
        deadline = time.time() + timeout
        while time.time() < deadline:
            if server.query("SELECT sum(rows) FROM lambdadb.master_dataset")[0][0] == want:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{want} events not archived")

    def retry_after_crash(self, server, point, imports, n):
        """What a client does when it never saw the answer: runs it again.
        Imports are idempotent, so a retried COPY never counts twice."""
        if point.startswith("import."):
            for k in range(2):
                server.query(f"COPY events FROM '{imports / f'f{n}-{k}.parquet'}' (FORMAT parquet)")
        elif point.startswith("retention."):
            server.query(f"ALTER TABLE events SET (retention = '{RETENTION}')")
            server.query("ALTER TABLE events RESET (retention)")

    def disk_full(self):
        broker = Tansu(self.logs)
        faults = self.work / "disk-full"
        faults.write_text("")
        try:
            broker.create_topic("events", 2)
            server = self.server(broker.brokers, "diskfull", {
                "LAMBDADB_TEST_FAILPOINTS_FILE": str(faults),
                "LAMBDADB_SPEED_MEMORY_LIMIT": "4MB"}).start()
            oracle = Oracle()
            lost = dup = 0
            details = []
            for where, point in [("archive", "archive.file.written"), ("refresh", "view.file.written")]:
                faults.write_text(f"{point}=enospc\n")
                ev = self.events(self.args.chunk * 20, "2026-06-01T00:00:00Z")
                produce(broker.brokers, "events", ev)
                oracle.add(ev)
                time.sleep(3)
                st = server.query("SELECT status FROM lambdadb.sources")
                vs = server.query("SELECT status FROM lambdadb.views")
                serving = server.query("SELECT count(*) FROM events")[0][0] > 0
                visible = any("No space" in s[0] for s in st + vs)
                if not (serving and visible):
                    details.append(f"{where}: serving {serving}, visible {visible}")
                faults.write_text("")
                l, d, detail = oracle.compare(server)
                lost, dup = lost + l, dup + d
                if detail:
                    details.append(f"{where}: {detail}")
                log(f"disk full during {where}: {detail or 'exact'}; statuses {st[0][0][:60]!r}")
            server.stop()
            self.record("disk full during archive and refresh", len(oracle.events), 2, lost, dup,
                        "; ".join(details))
        finally:
            broker.stop()

    def outage(self):
        broker = MockBroker(self.logs, ["events:2"])
        try:
            server = self.server(broker.brokers, "outage").start()
            oracle = Oracle()
            ev = self.events(self.args.chunk * 20, "2026-07-01T00:00:00Z")
            feeder = feed(broker.brokers, ev)
            time.sleep(0.5)
            broker.command("down")
            seen = False
            deadline = time.time() + self.args.outage
            while time.time() < deadline:
                st = server.query("SELECT status FROM lambdadb.sources")
                seen |= any(s[0].startswith("problem:") for s in st)
                time.sleep(0.5)
            broker.command("up")
            feeder.wait(600)
            oracle.add(ev)
            lost, dup, detail = oracle.compare(server)
            if not seen:
                detail = (detail + "; " if detail else "") + "outage not visible in lambdadb.sources"
            server.stop()
            self.record(f"broker down {self.args.outage} s mid-ingest", len(oracle.events), 1,
                        lost, dup, detail)
        finally:
            broker.stop()

    def retention(self):
        broker = MockBroker(self.logs, ["events:1"])
        try:
            server = self.server(broker.brokers, "retention").start()
            first = self.events(2000, "2026-08-01T00:00:00Z")
            produce(broker.brokers, "events", first)
            server.wait_count(2000)
            while server.query("SELECT archived_offset FROM lambdadb.sources")[0][0] < 2000:
                time.sleep(0.2)
            server.stop()
            from confluent_kafka import Consumer, Producer, TopicPartition
            more = self.events(60000, "2026-08-02T00:00:00Z")
            p = Producer({"bootstrap.servers": broker.brokers, "compression.type": "none"})
            for i, line in enumerate(Path(more).read_text().splitlines()):
                p.produce("events", value=line.encode(), partition=0)
                if i % 1000 == 999:
                    p.flush(30)
            p.flush(30)
            c = Consumer({"bootstrap.servers": broker.brokers, "group.id": "probe"})
            low, high = c.get_watermark_offsets(TopicPartition("events", 0), timeout=10)
            c.close()
            detail = []
            server.start()
            time.sleep(5)
            st = server.query("SELECT status FROM lambdadb.sources")[0][0]
            if not st.startswith("stopped:") or server.query("SELECT count(*) FROM events")[0][0] != 2000:
                detail.append(f"stop mode: {st[:80]}")
            server.stop()
            server.env["LAMBDADB_RETENTION_GAP"] = "skip"
            server.start()
            want = 2000 + high - low
            server.wait_count(want, timeout=120)
            counted = server.query("SELECT lost_messages FROM lambdadb.sources")[0][0]
            if counted != low - 2000:
                detail.append(f"skip mode counted {counted}, retention deleted {low - 2000}")
            server.stop()
            self.record(f"retention overtook a stopped server (stop, then skip: {counted} counted as lost)",
                        high, 1, 0, 0, "; ".join(detail))
        finally:
            broker.stop()

    def malformed(self):
        broker = Tansu(self.logs)
        try:
            broker.create_topic("events", 3)
            n = self.args.events
            ev = self.events(n, "2026-09-01T00:00:00Z")
            lines = Path(ev).read_text().splitlines()
            rng = random.Random(11)
            kinds = [
                lambda e: "{not json",
                lambda e: json.dumps({**e, "user_id": "abc"}),
                lambda e: json.dumps({k: v for k, v in e.items() if k != "event_type"}),
                lambda e: json.dumps({**e, "duration_ms": 2 ** 40}),
                lambda e: json.dumps({**e, "event_time": "yesterday"}),
                lambda e: json.dumps({**e, "event_time": 1e300}),
                lambda e: json.dumps([1, 2, 3]),
                lambda e: "null",
            ]
            good, bad = [], 0
            out = self.work / "mixed.jsonl"
            with open(out, "w") as f:
                for line in lines:
                    if rng.random() < 0.026:
                        f.write(kinds[bad % len(kinds)](json.loads(line)).replace("\n", " ") + "\n")
                        bad += 1
                    else:
                        f.write(line + "\n")
                        good.append(json.loads(line))
            server = self.server(broker.brokers, "malformed").start()
            produce(broker.brokers, "events", out, timeout=1200)
            oracle = Oracle()
            oracle.events = good
            lost, dup, detail = oracle.compare(server)
            accepted, rejected = server.query(
                "SELECT sum(accepted_messages) / count(*), sum(rejected_messages) / count(*) FROM lambdadb.sources")[0]
            kept = server.query("SELECT count(*), count(DISTINCT partition * 10000000000 + \"offset\"), "
                                "min(length(reason)) FROM lambdadb.rejected_messages")[0]
            if rejected != bad or accepted != len(good) or kept[0] != min(bad, 10000) or kept[1] != kept[0] \
                    or not kept[2]:
                detail += f" counters accepted {accepted}/{len(good)}, rejected {rejected}/{bad}, kept {kept}"
            server.stop()
            self.record(f"{bad} malformed of {n} ({100 * bad / n:.1f}%)", n, bad, lost, dup, detail.strip())
        finally:
            broker.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--chunk", type=int, default=2000, help="events per failpoint round")
    ap.add_argument("--outage", type=float, default=30.0, help="broker outage seconds")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--work", default="")
    args = ap.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="lambdadb-faults-")
    run = Run(work, args)
    started = time.time()
    names = ["kill9", "failpoints", "disk_full", "outage", "retention", "malformed"]
    for name in names:
        if args.only and name not in args.only.split(","):
            continue
        try:
            getattr(run, name)()
        except Exception as e:  # a scenario that breaks is a failed row, not a lost table
            run.rows.append((name, 0, 0, "?", "?", f"FAIL {type(e).__name__}: {e}"))
            log(f"{name}: FAIL {e}")
    width = max(len(r[0]) for r in run.rows)
    print()
    print(f"{'scenario':<{width}}  {'events':>9}  {'faults':>6}  {'lost':>4}  {'dup':>4}  result")
    for r in run.rows:
        print(f"{r[0]:<{width}}  {r[1]:>9}  {r[2]:>6}  {r[3]:>4}  {r[4]:>4}  {r[5]}")
    print(f"\n{len(run.rows)} scenarios in {time.time() - started:.0f} s; logs in {run.logs}")
    if not args.work and all(r[5] == "ok" for r in run.rows):
        shutil.rmtree(work, ignore_errors=True)
    return run.rows


if __name__ == "__main__":
    rows = main()
    sys.exit(0 if all(r[5] == "ok" for r in rows) else 1)
