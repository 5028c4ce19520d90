"""The replica benchmark (issue 15): queries per second served by one and by
two reader replicas of one shared master dataset (moto S3, Tansu), and how
long a writer's death leaves the deployment without a writer.

1. A writer and two readers share `s3://lambdadb/bench`; `--events` demo
   events are produced, archived and refreshed into the view.
2. Queries per second: `--clients` client processes run a dashboard mix for
   `--seconds` against reader 1 alone, then spread over readers 1 and 2. The
   result cache is off in these sessions, so every query runs.
3. Takeover: a second writer stands by; the holder is killed with `kill -9`
   and the time until the other writes (`lambdadb.replicas.writing`) and until
   its first archive run is measured, `--takeovers` times.

Every process shares this machine's cores with the others and with the
clients, so the figures say what one machine does, not what N machines do.

    .venv/bin/python bench/replicas.py --bin target/release/lambdadb
"""

import argparse
import multiprocessing as mp
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "integration"))

QUERIES = [
    "SELECT count(*) FROM events",
    "SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC",
    "SELECT country, sum(revenue) FROM events WHERE event_type = 'purchase' GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
    "SELECT hour, sum(events) FROM events_hourly GROUP BY 1 ORDER BY 1 DESC LIMIT 24",
    "SELECT event_type, country, sum(events) FROM events_hourly GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10",
]


def log(msg):
    print(f"[replicas {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def client(dsn, seconds, out):
    import psycopg
    n = 0
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SET lambdadb.result_cache = off")
        deadline = time.time() + seconds
        i = 0
        while time.time() < deadline:
            c.execute(QUERIES[i % len(QUERIES)]).fetchall()
            i += 1
            n += 1
    out.put(n)


def qps(dsns, clients, seconds):
    out = mp.Queue()
    procs = [mp.Process(target=client, args=(dsns[i % len(dsns)], seconds, out)) for i in range(clients)]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "lambdadb"))
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--takeovers", type=int, default=3)
    ap.add_argument("--lease-expiry", default="10s")
    args = ap.parse_args()
    os.environ["LAMBDADB_TEST_BIN"] = args.bin
    from harness import Moto, Server, Tansu, generate, produce  # noqa: E402

    work = Path(tempfile.mkdtemp(prefix="lambdadb-replicas-"))
    logs = work / "logs"
    logs.mkdir()
    broker = Tansu(logs)
    moto = Moto(logs)
    servers = []
    t_all = time.perf_counter()
    try:
        broker.create_topic("events", 3)
        env = {**moto.server_env("bench"), "LAMBDADB_LEASE_EXPIRY": args.lease_expiry,
               "LAMBDADB_FOLLOW_INTERVAL": "500ms", "LAMBDADB_ARCHIVE_INTERVAL": "2s"}

        def server(name, role):
            s = Server(broker.brokers, work / name, logs, env=env)
            servers.append(s)
            return s.start(extra=["--role", role])

        w1 = server("w1", "writer")
        deadline = time.time() + 30
        while not w1.query("SELECT writing FROM lambdadb.replicas")[0][0]:
            assert time.time() < deadline, "the first writer never took the lease"
            time.sleep(0.2)
        w2, r1, r2 = server("w2", "writer"), server("r1", "reader"), server("r2", "reader")
        log(f"producing {args.events} events")
        events = generate(work / "e.jsonl", args.events, seed=15, start="2026-06-01T00:00:00Z", rate=50)
        produce(broker.brokers, "events", events, timeout=1800)
        # Speed-layer bytes per event, sampled on a reader while it consumes
        # (archived events leave the speed layer, so the sample is the rows above the seam).
        per_event = []
        deadline = time.time() + 900
        while r1.query("SELECT count(*) FROM events")[0][0] < args.events and time.time() < deadline:
            rows, nbytes = r1.query("SELECT sum(speed_rows), sum(speed_bytes) FROM lambdadb.sources")[0]
            if rows and rows >= 10_000:
                per_event.append(nbytes / rows)
            time.sleep(0.5)
        for s in (w1, w2, r1, r2):
            s.wait_count(args.events, timeout=900)
        w1.query("REFRESH MATERIALIZED VIEW events_hourly")
        served = "SELECT version FROM lambdadb.view_versions WHERE view_name = 'events_hourly' AND serving"
        want = w1.query(served)
        for r in (r1, r2):
            deadline = time.time() + 60
            while r.query(served) != want:
                assert time.time() < deadline, "a reader never served the writer's version"
                time.sleep(0.2)

        log(f"{args.clients} clients, {args.seconds:.0f} s against one reader")
        one = qps([r1.dsn()], args.clients, args.seconds)
        log(f"one reader: {one:.1f} queries/s")
        two = qps([r1.dsn(), r2.dsn()], args.clients, args.seconds)
        log(f"two readers: {two:.1f} queries/s")

        # Object-store requests of an idle deployment (two writers, two
        # readers, no new events): lease renewals and takeover checks, the
        # followers' polls of the Delta log, view histories and catalog.
        window = 30.0
        before = Path(moto.log.name).read_text().count('HTTP/1.1"')
        time.sleep(window)
        lines = [l for l in Path(moto.log.name).read_text().splitlines() if 'HTTP/1.1"' in l]
        idle = lines[before:]
        methods = {}
        for l in idle:
            m = re.search(r"\b(GET|PUT|HEAD|POST|DELETE)\b", l)
            m = m.group(1) if m else "other"
            methods[m] = methods.get(m, 0) + 1
        requests_per_min = len(idle) * 60 / window
        log(f"idle deployment: {requests_per_min:.0f} object-store requests/min {methods}")

        # Takeovers: kill the holder, time until the other writes and archives.
        takeovers, archives = [], []
        holder, standby = w1, w2
        for i in range(args.takeovers):
            before = standby.query("SELECT table_version FROM lambdadb.master_dataset")[0][0]
            t = time.perf_counter()
            holder.kill9()
            while not standby.query("SELECT writing FROM lambdadb.replicas")[0][0]:
                time.sleep(0.05)
            takeovers.append(time.perf_counter() - t)
            produce(broker.brokers, "events", generate(work / f"t{i}.jsonl", 100, seed=900 + i,
                                                       start="2026-07-01T00:00:00Z"))
            while standby.query("SELECT table_version FROM lambdadb.master_dataset")[0][0] <= before + 1:
                time.sleep(0.05)
            archives.append(time.perf_counter() - t)
            log(f"takeover {i + 1}: writing after {takeovers[-1]:.2f} s, first archive after {archives[-1]:.2f} s")
            holder.start()  # back on its data_dir, as the standby now
            holder, standby = standby, holder
            time.sleep(2)
    finally:
        for s in servers:
            s.stop()
        moto.stop()
        broker.stop()

    print()
    print(f"replica benchmark: {args.events} events, {args.clients} clients, lease_expiry {args.lease_expiry}; "
          f"binary {args.bin}; took {(time.perf_counter() - t_all) / 60:.1f} min")
    print(f"queries/s, one reader:  {one:8.1f}")
    print(f"queries/s, two readers: {two:8.1f}  ({two / one:.2f}x; every process shares {os.cpu_count()} cores)")
    if per_event:
        print(f"speed-layer bytes per event (reader, while consuming): median {statistics.median(per_event):.0f}")
    print(f"object-store requests per minute, idle (2 writers, 2 readers, follow_interval 500ms): {requests_per_min:.0f} "
          f"({', '.join(f'{k} {v * 60 / window:.0f}' for k, v in sorted(methods.items()))})")
    print(f"takeover after kill -9: writing after median {statistics.median(takeovers):.2f} s "
          f"(max {max(takeovers):.2f}), first archive after median {statistics.median(archives):.2f} s")


if __name__ == "__main__":
    main()
