"""Silent-socket flood: what connections that never log in cost the server, and
whether a client can still log in meanwhile. Prints figures, asserts nothing.

    .venv/bin/python bench/flood.py --bin target/release/lambdadb          # 2,000 sockets
    .venv/bin/python bench/flood.py --bin target/release/lambdadb --sockets 500
    .venv/bin/python bench/flood.py --bin target/release/lambdadb --limit 4000  # no eviction

Opens N TCP connections that send nothing, waits, and reads the server's
resident memory (VmRSS) before, during and after; during the flood it times
full logins (connect, authenticate, SELECT 1) with psycopg. Connections beyond
max_unauthenticated_connections close the oldest silent ones (counted here as
closed by the server).
"""
import argparse
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "integration"))


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def closed_by_server(sockets):
    n = 0
    for s in sockets:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                n += 1
        except BlockingIOError:
            pass
        except OSError:
            n += 1
    return n


def login_ms(server):
    import psycopg
    started = time.perf_counter()
    with psycopg.connect(server.dsn(), connect_timeout=30) as c:
        c.execute("SELECT 1").fetchone()
    return (time.perf_counter() - started) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(BENCH.parent / "target" / "release" / "lambdadb"))
    ap.add_argument("--sockets", type=int, default=2000)
    ap.add_argument("--logins", type=int, default=10)
    ap.add_argument("--limit", type=int, default=None,
                    help="max_unauthenticated_connections (default: the server's, 256)")
    ap.add_argument("--sessions", type=int, default=50,
                    help="logged-in idle sessions held open to measure what a session costs")
    a = ap.parse_args()
    os.environ["LAMBDADB_TEST_BIN"] = a.bin
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * a.sockets + 1024)), hard))
    import harness

    with tempfile.TemporaryDirectory(prefix="lambdadb-flood-") as tmp:
        tmp = Path(tmp)
        env = {"LAMBDADB_LOG": "warn"}
        if a.limit is not None:
            env["LAMBDADB_MAX_UNAUTHENTICATED_CONNECTIONS"] = str(a.limit)
        server = harness.Server("127.0.0.1:1", tmp / "data", tmp, sql_dir=tmp, env=env).start()
        sockets = []
        try:
            pid = server.proc.pid
            for _ in range(3):
                login_ms(server)
            time.sleep(1)
            base = rss_mb(pid)
            quiet = [login_ms(server) for _ in range(a.logins)]
            started = time.perf_counter()
            for _ in range(a.sockets):
                sockets.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
            opened = time.perf_counter() - started
            time.sleep(2)
            during = rss_mb(pid)
            flooded = [login_ms(server) for _ in range(a.logins)]
            closed = closed_by_server(sockets)
            peak = rss_mb(pid)
            for s in sockets:
                s.close()
            sockets = []
            time.sleep(2)
            after = rss_mb(pid)
            import psycopg
            held = [psycopg.connect(server.dsn()) for _ in range(a.sessions)]
            for c in held:
                c.execute("SELECT 1").fetchone()
            time.sleep(1)
            with_sessions = rss_mb(pid)
            for c in held:
                c.close()
        finally:
            for s in sockets:
                s.close()
            server.stop()
    print(f"\n{a.bin}")
    print(f"silent sockets opened           {a.sockets} in {opened:.2f} s")
    print(f"closed by the server (evicted)  {closed}")
    print(f"resident memory before          {base:.1f} MB")
    print(f"resident memory with the flood  {during:.1f} MB (+{during - base:.1f} MB)")
    print(f"  after {a.logins} logins           {peak:.1f} MB")
    print(f"resident memory after closing   {after:.1f} MB")
    per_session = (with_sessions - after) / max(a.sessions, 1) * 1024
    print(f"{a.sessions} logged-in idle sessions     +{with_sessions - after:.1f} MB ({per_session:.0f} kB each)")
    print(f"login without flood             median {statistics.median(quiet):.1f} ms, max {max(quiet):.1f} ms")
    print(f"login during flood              median {statistics.median(flooded):.1f} ms, max {max(flooded):.1f} ms")


if __name__ == "__main__":
    main()
