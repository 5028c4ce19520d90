"""`make bench`: lambdadb against DuckDB, DataFusion and PostgreSQL, one run.

Generates (or reuses) TPC-H and the clickstream, starts Tansu, lambdadb and a
private PostgreSQL 15, loads every engine as a user would, runs the TPC-H and
dashboard suites, the one-million-row result, the batch refresh and the
streaming figures, then writes RESULTS.md and charts and prints the summary
table last. Every ratio compares figures measured in this same run.

    .venv/bin/python bench/run.py [--smoke] [--out DIR]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "integration"))

import data  # noqa: E402
import engines  # noqa: E402
import report  # noqa: E402
import streaming  # noqa: E402
import suites  # noqa: E402
from data import log  # noqa: E402
from results import disagreements, write_results  # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny data, one run: checks the suite works")
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "lambdadb"))
    ap.add_argument("--data", default=str(ROOT / "target" / "bench-data"))
    ap.add_argument("--out", default=str(BENCH))
    ap.add_argument("--sf", type=float, default=1)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ingest-events", type=int, default=3_000_000)
    ap.add_argument("--fresh-seconds", type=float, default=12)
    ap.add_argument("--rates", default="1000,10000,100000")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite RESULTS.md and the charts from OUT/results.json (e.g. after editing ANALYSIS.md)")
    a = ap.parse_args()
    if a.smoke:
        a.sf, a.events, a.runs, a.ingest_events, a.fresh_seconds = 0.01, 20_000, 1, 20_000, 4
        a.rates = "200,1000"
    a.sf = int(a.sf) if a.sf == int(a.sf) else a.sf
    return a


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // (1024 * 1024)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "os": platform.platform()}


def versions(binary, pg):
    import datafusion
    import duckdb
    import psycopg

    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    tpchgen = subprocess.run([str(Path(sys.executable).parent / "tpchgen-cli"), "--version"],
                             capture_output=True, text=True).stdout.strip()
    with pg.connect() as c:
        pgv = c.execute("SHOW server_version").fetchone()[0]
    lam = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout.strip()
    return {"lambdadb": f"{lam} (commit {git}, release build)", "DuckDB": duckdb.__version__,
            "DataFusion (Python)": datafusion.__version__, "PostgreSQL": pgv,
            "psycopg": psycopg.__version__, "tpchgen-cli": tpchgen}


def large_result(targets, runs):
    """The 1M-row result to psycopg in binary and text: {engine: {format: fig}}."""
    out = {}
    for name, dsn, setup in targets:
        out[name] = {}
        for binary in (True, False):
            eng = engines.Wire(name, dsn, setup, binary=binary)
            out[name]["binary" if binary else "text"] = suites.timed(eng, suites.LARGE_RESULT, runs)
            eng.close()
        log(f"{name}: 1M-row result binary {out[name]['binary']['median']:.2f} s, "
            f"text {out[name]['text']['median']:.2f} s")
    return out


def report_only(out):
    res = json.loads((out / "results.json").read_text())
    res["freshness"] = {int(k): v for k, v in res["freshness"].items()}
    print(write_results(res, out))


def main():
    a = parse_args()
    if a.report_only:
        return report_only(Path(a.out))
    started = time.time()
    binary = Path(a.bin)
    if not binary.exists():
        sys.exit(f"{binary} does not exist: build it first (make bench builds the release binary)")
    os.environ["LAMBDADB_TEST_BIN"] = str(binary)
    import harness
    from pgref import Postgres

    root = Path(a.data)
    tpch_dir = data.tpch(root, a.sf)
    clicks = data.clickstream(root, binary, a.events)
    out = Path(a.out)
    (out / "charts").mkdir(parents=True, exist_ok=True)
    res = {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "params": {"sf": a.sf, "events": a.events, "runs": a.runs, "ingest_events": a.ingest_events,
                      "fresh_seconds": a.fresh_seconds, "smoke": a.smoke}}

    with tempfile.TemporaryDirectory(prefix="lambdadb-bench-") as tmp:
        tmp = Path(tmp)
        broker = harness.Tansu(tmp)
        server = harness.Server(broker.brokers, tmp / "data", tmp,
                                env={"LAMBDADB_LOG": "warn", "LAMBDADB_RESULT_CACHE_SIZE": "256MB",
                                     "LAMBDADB_IMPORT_DIR": str(root.resolve())})
        pg = Postgres("-c shared_buffers=2GB -c work_mem=256MB -c max_parallel_workers_per_gather=2 "
                      "-c effective_cache_size=8GB -c jit=off")
        peers = []
        try:
            broker.create_topic("events", 3)
            server.start()
            pg.start()
            res["versions"] = versions(binary, pg)
            res["load"] = {
                "lambdadb TPC-H import": engines.load_lambdadb_tpch(server, tpch_dir, BENCH / "tpch" / "schema.sql"),
                "lambdadb clickstream import": engines.load_lambdadb_events(server, clicks["parquet"]),
                "PostgreSQL clickstream COPY + indexes": engines.load_postgres_events(pg, clicks["csv"]),
            }
            t = time.time()
            with server.connect() as c:
                for v in suites.DASHBOARD_VIEWS:
                    c.execute(v)
            res["load"]["lambdadb dashboard views (CREATE)"] = time.time() - t
            log(f"lambdadb: {len(suites.DASHBOARD_VIEWS)} dashboard views computed in {time.time() - t:.1f} s")

            lam = engines.lambdadb(server)
            duck = engines.DuckDB({**engines.tpch_files(tpch_dir), "events": clicks["parquet"]})
            fusion = engines.DataFusion({**engines.tpch_files(tpch_dir), "events": clicks["parquet"]})
            pgw = engines.postgres(pg)
            peers = [lam, duck, fusion, pgw]

            log("TPC-H suite")
            res["tpch"] = suites.run_suite([lam, fusion, duck], suites.tpch_queries(), a.runs)

            log("dashboard suite")
            dash = suites.dashboard_queries(a.events)
            raw = [(n, r) for n, r, _ in dash]
            res["dashboard"] = suites.run_suite([lam, duck, fusion, pgw], raw, a.runs)
            views = [(n, {"lambdadb": v}) for n, _, v in dash if v]
            res["dashboard"]["lambdadb views"] = suites.run_suite([lam], views, a.runs)["lambdadb"]
            res["dashboard_queries"] = [{"name": n, "raw": r, "view": v} for n, r, v in dash]

            log("one-million-row result")
            res["large"] = large_result([("lambdadb", server.dsn(), ["SET lambdadb.result_cache = off"]),
                                         ("PostgreSQL", pg.dsn(), [])], a.runs)
            for p in peers:
                p.close()
            peers = []
            pg.stop()

            log("batch refresh")
            res["refresh"] = streaming.refresh_vs_datafusion(server, clicks["parquet"], max(a.runs, 1))
            log("ingest")
            res["ingest"] = streaming.ingest(harness, broker, server, clicks["jsonl"], a.ingest_events)
            log("freshness")
            res["freshness"] = streaming.freshness(server, broker, clicks["jsonl"],
                                                   [int(r) for r in a.rates.split(",")], a.fresh_seconds)
        finally:
            for p in peers:
                p.close()
            pg.stop()
            server.stop()
            broker.stop()

    res["total_seconds"] = time.time() - started
    res["disagreements"] = disagreements(res)
    (out / "results.json").write_text(json.dumps(res, indent=1, default=str))
    summary = write_results(res, out)
    print(summary)


if __name__ == "__main__":
    main()
