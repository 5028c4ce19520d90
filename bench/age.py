"""The age benchmark (issue 14): what a month of a deployment costs compared
with the same events loaded fresh.

1. *Aged*: events spread over `--days` days of event time are produced in many
   small chunks with a short `archive_interval`, the way a month of 10-second
   archive runs would leave the master dataset: thousands of small commits.
   Measured before and after compaction.
2. *Fresh*: the same events produced at once into a new data directory and
   archived in one run per partition.

For each: files, Delta table version, time to open (restart until the server
answers; median of 5), `count(*)` and a small dashboard suite (best of 5 on one
open connection), a full view refresh. For the aged one also a steady phase after compaction (1% new
events in 100 small runs, compaction on) and then an incremental refresh
against a full one. The same topic is then read from its start into a new
data directory for the fresh figures. Resident memory of the server is sampled
throughout. Prints one table; every figure is from this run.

The broker (Tansu) holds every event in memory: 10 million events take about
3 GB there, and the fresh load holds them in the speed layer until it archives.

    .venv/bin/python bench/age.py --bin target/release/lambdadb [--events N]
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "integration"))

DASHBOARD = [
    "SELECT count(*) FROM events",
    "SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC",
    "SELECT date_trunc('day', event_time) AS d, sum(revenue) FROM events GROUP BY 1 ORDER BY 1",
    "SELECT country, count(DISTINCT user_id) FROM events "
    "WHERE event_time >= TIMESTAMPTZ '2026-01-20 00:00:00+00' GROUP BY 1",
    "SELECT * FROM events_hourly WHERE hour >= TIMESTAMPTZ '2026-01-25 00:00:00+00' ORDER BY hour LIMIT 50",
]


def log(msg):
    print(f"[age {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Sampler:
    """Samples the server's resident memory every 0.5 s."""

    def __init__(self):
        self.samples, self.pid, self._stop = [], None, threading.Event()
        self.phase = "setup"
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self._stop.wait(0.5):
            if self.pid and (kb := rss_kb(self.pid)):
                self.samples.append((self.phase, kb))

    def stop(self):
        self._stop.set()


def timed(fn, repeat=3):
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        d = time.perf_counter() - t
        best = d if best is None else min(best, d)
    return best


def measure(server, label, sampler):
    m = server.query("SELECT files, table_version FROM lambdadb.master_dataset WHERE table_name = 'events'")[0]
    opens = []
    for _ in range(5):
        server.stop()
        t = time.perf_counter()
        server.start()  # returns once the port is open: every table and view is loaded
        server.query("SELECT 1")
        opens.append(time.perf_counter() - t)
    open_s = statistics.median(opens)
    sampler.pid = server.proc.pid
    # On one open connection, as a dashboard's pool runs them: the figures
    # are the queries', not a connection set-up's (a few ms each).
    with server.connect() as conn:
        def run(q):
            conn.execute(q).fetchall()
        count_s = timed(lambda: run("SELECT count(*) FROM events"), repeat=5)
        dash_s = sum(timed(lambda q=q: run(q), repeat=5) for q in DASHBOARD)
    full_s = timed(lambda: server.query("REFRESH MATERIALIZED VIEW events_hourly FULL"), repeat=1)
    log(f"{label}: {m[0]} files, table version {m[1]}, open {open_s:.2f}s, count {count_s*1000:.0f}ms, "
        f"dashboard {dash_s*1000:.0f}ms, full refresh {full_s:.2f}s")
    return {"files": m[0], "version": m[1], "open": open_s, "count": count_s, "dash": dash_s, "full": full_s}


def chunks(path, skip, count, per):
    """Yields the lines skip..skip+count of `path` in lists of `per` lines,
    reading the file once (a month of events does not fit in a Python list)."""
    piece = []
    with open(path) as f:
        for i, line in enumerate(f):
            if i < skip:
                continue
            if i >= skip + count:
                break
            piece.append(line)
            if len(piece) == per:
                yield piece
                piece = []
    if piece:
        yield piece


def settle(server, what, timeout=1800):
    """Waits for a compaction since the server started, then until the master
    dataset's file count stays the same for 5 s."""
    t = time.perf_counter()
    last, stable = None, 0
    while stable < 5 and time.perf_counter() - t < timeout:
        files, runs = server.query("SELECT files, compactions FROM lambdadb.master_dataset")[0]
        stable = stable + 1 if files == last and runs > 0 else 0
        last = files
        time.sleep(1)
    log(f"{what} settled at {last} files in {time.perf_counter() - t:.0f}s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "lambdadb"))
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--chunks", type=int, default=1500, help="produce runs (each archived apart)")
    ap.add_argument("--partitions", type=int, default=3)
    args = ap.parse_args()
    os.environ["LAMBDADB_TEST_BIN"] = args.bin
    from harness import Server, Tansu, generate, produce  # noqa: E402

    work = Path(tempfile.mkdtemp(prefix="lambdadb-age-"))
    logs = work / "logs"
    logs.mkdir()
    sampler = Sampler()
    broker = Tansu(logs)
    t_all = time.perf_counter()
    try:
        broker.create_topic("events", args.partitions)
        start = datetime(2026, 1, 1, tzinfo=timezone.utc)
        rate = args.events / (args.days * 86400.0)
        log(f"generating {args.events} events over {args.days} days")
        events = generate(work / "all.jsonl", args.events, seed=14, start=start.isoformat(), rate=rate,
                          late_fraction=0.01)
        new = args.events // 100
        base = args.events - new

        # Aged: many small archive runs, no compaction yet.
        # The result cache off: repeated timings must run the query.
        aged_env = {"LAMBDADB_ARCHIVE_INTERVAL": "50ms", "LAMBDADB_COMPACT_INTERVAL": "0s",
                    "LAMBDADB_REFRESH_INTERVAL": "0s", "LAMBDADB_RESULT_CACHE_SIZE": "0"}
        aged = Server(broker.brokers, work / "aged", logs, env=aged_env).start()
        sampler.pid, sampler.phase = aged.proc.pid, "aged load"
        per = max(1, base // args.chunks)
        t = time.perf_counter()
        piece = work / "piece.jsonl"
        for i, lines in enumerate(chunks(events, 0, base, per)):
            piece.write_text("".join(lines))
            produce(broker.brokers, "events", piece)
            time.sleep(0.06)
            if i % 100 == 0:
                log(f"aged load: {(i + 1) * per}/{base} events")
        aged.wait_count(base, timeout=1800)
        log(f"aged load took {time.perf_counter() - t:.0f}s")
        aged.query("REFRESH MATERIALIZED VIEW events_hourly FULL")
        sampler.phase = "measuring"
        before = measure(aged, "aged, before compaction", sampler)

        # Compaction.
        aged.stop()
        aged.env.update({"LAMBDADB_COMPACT_INTERVAL": "1s", "LAMBDADB_COMPACT_MIN_FILES": "4",
                         "LAMBDADB_VACUUM_GRACE": "1s"})
        aged.start()
        sampler.pid, sampler.phase = aged.proc.pid, "compaction"
        settle(aged, "compaction")

        # Steady state: 1% new events in small runs, compaction on. Then an
        # incremental refresh (from the FULL version made above) against a full one.
        aged.query("REFRESH MATERIALIZED VIEW events_hourly FULL")
        sampler.phase = "steady"
        for lines in chunks(events, base, new, max(1, new // 100)):
            piece.write_text("".join(lines))
            produce(broker.brokers, "events", piece)
            time.sleep(0.06)
        aged.wait_count(args.events, timeout=600)
        settle(aged, "compaction of the new events")
        sampler.phase = "measuring"
        inc = timed(lambda: aged.query("REFRESH MATERIALIZED VIEW events_hourly"), repeat=1)
        how = aged.query("SELECT how, input_rows FROM lambdadb.view_versions WHERE serving")[0]
        full = timed(lambda: aged.query("REFRESH MATERIALIZED VIEW events_hourly FULL"), repeat=1)
        log(f"refresh after 1% new events: incremental {inc:.2f}s ({how}), full {full:.2f}s")
        after = measure(aged, "aged, after compaction", sampler)
        aged.stop()

        # Fresh: the same topic from its start into a new data directory, all
        # at once, archived at shutdown in one run per partition.
        fresh = Server(broker.brokers, work / "fresh", logs,
                       env={"LAMBDADB_ARCHIVE_INTERVAL": "3600s", "LAMBDADB_COMPACT_INTERVAL": "0s",
                            "LAMBDADB_REFRESH_INTERVAL": "0s", "LAMBDADB_RESULT_CACHE_SIZE": "0",
                            "LAMBDADB_SPEED_MEMORY_LIMIT": "12GB"}).start()
        sampler.pid, sampler.phase = fresh.proc.pid, "fresh load"
        fresh.wait_count(args.events, timeout=1800)
        fresh.stop()
        fresh.start()
        fresh.query("REFRESH MATERIALIZED VIEW events_hourly FULL")
        fr = measure(fresh, "fresh", sampler)
        fresh.stop()
    finally:
        sampler.stop()
        broker.stop()

    def rss_trend(phase):
        rss = [kb for p, kb in sampler.samples if p == phase]
        if not rss:
            return f"{phase}: no samples"
        q = len(rss) // 4 or 1
        return (f"{phase} ({len(rss)} samples): first quarter median {statistics.median(rss[:q])/1024:.0f} MB, "
                f"last quarter median {statistics.median(rss[-q:])/1024:.0f} MB, max {max(rss)/1024:.0f} MB")

    print()
    print(f"age benchmark: {args.events} events over {args.days} days, {args.partitions} partitions, "
          f"{args.chunks} produce runs; binary {args.bin}; took {(time.perf_counter() - t_all)/60:.1f} min")
    print(f"{'':32}{'files':>8}{'version':>9}{'open s':>9}{'count ms':>10}{'dash ms':>9}{'full s':>8}")
    for label, r in (("aged, before compaction", before), ("aged, after compaction", after), ("fresh", fr)):
        print(f"{label:32}{r['files']:>8}{r['version']:>9}{r['open']:>9.2f}{r['count']*1000:>10.0f}"
              f"{r['dash']*1000:>9.0f}{r['full']:>8.2f}")
    print(f"after compaction / fresh: open {after['open']/fr['open']:.2f}x, count {after['count']/fr['count']:.2f}x, "
          f"dashboard {after['dash']/fr['dash']:.2f}x (target: within 1.2x)")
    print(f"incremental refresh after 1% new events: {inc:.2f}s = {inc/full*100:.1f}% of a full one ({full:.2f}s)"
          f" (target: at most 5%)")
    print("resident memory: " + "; ".join(rss_trend(p) for p in ("aged load", "compaction", "steady")))


if __name__ == "__main__":
    main()
