"""Planning cost: EXPLAIN of the 22 TPC-H queries against a server, median of 5 each.

Separates planning from execution (the tables are declared but empty), e.g. to compare
a release build with one whose dependencies are at a lower opt-level:

    .venv/bin/python bench/plancost.py --bin target/release/lambdadb
    .venv/bin/python bench/plancost.py --bin target/debug/lambdadb
"""
import argparse
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import psycopg

BENCH = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "integration"))
from harness import free_port, wait_port  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(BENCH.parent / "target" / "release" / "lambdadb"))
    args = ap.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        data, sql = pathlib.Path(tmp) / "data", pathlib.Path(tmp) / "sql"
        sql.mkdir()
        # No broker: planning needs none (127.0.0.1:1 refuses at once).
        proc = subprocess.Popen(
            [args.bin, "serve", "--brokers", "127.0.0.1:1", "--data-dir", str(data),
             "--listen", f"127.0.0.1:{port}", "--sql-dir", str(sql)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port, timeout=60, proc=proc)
            with psycopg.connect(f"host=127.0.0.1 port={port} user=lambdadb dbname=lambdadb",
                                 autocommit=True) as c:
                c.execute("SET lambdadb.result_cache = off")
                c.execute((BENCH / "tpch" / "schema.sql").read_text())
                total = 0.0
                for q in sorted((BENCH / "tpch").glob("q*.sql")):
                    text = "EXPLAIN " + q.read_text().strip().rstrip(";")
                    times = []
                    for _ in range(5):
                        started = time.perf_counter()
                        c.execute(text).fetchall()
                        times.append(time.perf_counter() - started)
                    total += statistics.median(times)
            print(f"{args.bin}: EXPLAIN of the 22 TPC-H queries {total * 1000:.0f} ms "
                  f"({total * 1000 / 22:.1f} ms per query)")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
