"""Planning cost: EXPLAIN of the 22 TPC-H queries against a server, median of 5 each.

Separates planning from execution (the tables are declared but empty), e.g. to compare
a release build with one whose dependencies are at a lower opt-level:

    .venv/bin/python bench/plancost.py --bin target/release/lambdadb
    .venv/bin/python bench/plancost.py --bin target/debug/lambdadb
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "integration"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(BENCH.parent / "target" / "release" / "lambdadb"))
    a = ap.parse_args()
    os.environ["LAMBDADB_TEST_BIN"] = a.bin  # read by harness at import
    import harness

    with tempfile.TemporaryDirectory(prefix="lambdadb-plancost-") as tmp:
        tmp = Path(tmp)
        # No broker and no catalog files: planning needs neither.
        server = harness.Server("127.0.0.1:1", tmp / "data", tmp, sql_dir=tmp,
                                env={"LAMBDADB_LOG": "warn"}).start()
        try:
            with server.connect() as c:
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
        finally:
            server.stop()
    print(f"{a.bin}: EXPLAIN of the 22 TPC-H queries {total * 1000:.0f} ms "
          f"({total * 1000 / 22:.1f} ms per query)")


if __name__ == "__main__":
    main()
