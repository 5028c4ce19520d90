"""Where lambdadb's time goes for one query: a sampling profile of the server
(perf, cpu-clock: hardware counters are not available on every machine) while a
client runs the query in a loop. Prints the top functions by self time. This is
how the "why" of a missed target in RESULTS.md is found.

    .venv/bin/python bench/profile.py --table events "SELECT date_trunc('hour', event_time), count(*) FROM events GROUP BY 1"
    .venv/bin/python bench/profile.py --table lineitem --binary "SELECT * FROM events LIMIT 1000000"

The data is the benchmark's (target/bench-data, made by `make bench`): the
clickstream is imported as `events`, TPC-H tables on demand (`--table`).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "integration"))

import data  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("query")
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "lambdadb"))
    ap.add_argument("--data", default=str(ROOT / "target" / "bench-data"))
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--sf", default="1")
    ap.add_argument("--table", action="append", default=[], help="tables to import (events, lineitem, ...)")
    ap.add_argument("--binary", action="store_true", help="fetch results in binary format")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    os.environ["LAMBDADB_TEST_BIN"] = a.bin
    import harness

    with tempfile.TemporaryDirectory(prefix="lambdadb-profile-") as tmp:
        tmp = Path(tmp)
        server = harness.Server("127.0.0.1:1", tmp / "data", tmp, env={"LAMBDADB_LOG": "warn"}).start()
        try:
            with server.connect() as c:
                tpch = [t for t in a.table if t != "events"]
                if tpch:
                    c.execute((BENCH / "tpch" / "schema.sql").read_text())
                for t in a.table:
                    path = (data.clickstream(a.data, a.bin, a.events)["parquet"] if t == "events"
                            else Path(a.data) / f"tpch-sf{a.sf}" / f"{t}.parquet")
                    c.execute(f"COPY {t} FROM '{Path(path).resolve()}' (FORMAT parquet)")
            stop, runs = threading.Event(), [0]

            def loop():
                with server.connect() as c:
                    c.execute("SET lambdadb.result_cache = off")
                    while not stop.is_set():
                        c.cursor(binary=a.binary).execute(a.query).fetchall()
                        runs[0] += 1

            th = threading.Thread(target=loop)
            th.start()
            time.sleep(1)
            out = tmp / "perf.data"
            subprocess.run(["perf", "record", "-F", "499", "-e", "cpu-clock", "-g", "-p",
                            str(server.proc.pid), "-o", str(out), "--", "sleep", str(a.seconds)],
                           check=True, capture_output=True)
            stop.set()
            th.join()
            print(f"{runs[0]} runs of: {a.query}")
            for sort in ("comm", "sym"):
                rep = subprocess.run(["perf", "report", "-i", str(out), "--no-children", "--sort", sort,
                                      "-q", "-g", "none"], capture_output=True, text=True).stdout
                print("\n".join(line[:160] for line in rep.splitlines()[: a.top if sort == "sym" else 8]))
                print()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
