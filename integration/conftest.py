import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Moto, Server, Tansu, generate, produce, read_events  # noqa: E402
from pgref import Postgres  # noqa: E402


@pytest.fixture
def logs(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    return d


@pytest.fixture
def broker(logs):
    b = Tansu(logs)
    yield b
    b.stop()


class MasterStore:
    """Where the servers of one test keep their master dataset, chosen by the
    environment variable LAMBDADB_TEST_STORE: "local" (the default: under each
    server's data_dir) or "s3" (one moto server per test, started at first use;
    every server of the test uses the same prefix in its bucket, so a restarted
    server, or a second one on the same data_dir, finds the same dataset)."""

    def __init__(self, log_dir):
        self.kind = os.environ.get("LAMBDADB_TEST_STORE") or "local"
        if self.kind not in ("local", "s3"):
            raise ValueError(f"LAMBDADB_TEST_STORE={self.kind!r}: expected local or s3")
        self.prefix = "t" + uuid.uuid4().hex[:8]
        self._log_dir = log_dir
        self._moto = None

    @property
    def moto(self):
        """The test's Moto (started now if not yet), or None when local."""
        if self.kind == "s3" and self._moto is None:
            self._moto = Moto(self._log_dir)
        return self._moto

    def server_env(self):
        """What a server needs in its environment to keep its master dataset here."""
        return self.moto.server_env(self.prefix) if self.kind == "s3" else {}

    def delta_url(self, data_dir, table="events"):
        """The URL a Delta reader opens for the master dataset of source `table`."""
        if self.kind == "s3":
            return f"s3://{self.moto.bucket}/{self.prefix}/{table}"
        return str(Path(data_dir) / "sources" / table)

    def storage_options(self):
        """The `storage_options` for `deltalake` to read `delta_url(...)`."""
        return self.moto.storage_options() if self.kind == "s3" else {}

    def table_names(self, data_dir):
        """The names the source tables' master datasets are stored under, and
        (on S3) every key of the bucket outside the test's prefix."""
        if self.kind == "local":
            return sorted(p.name for p in (Path(data_dir) / "sources").iterdir()), []
        import boto3
        s3 = boto3.client("s3", endpoint_url=self.moto.endpoint, region_name=Moto.REGION,
                          aws_access_key_id=Moto.KEY, aws_secret_access_key=Moto.KEY)
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.moto.bucket)
                for o in page.get("Contents", [])]
        inside = [k[len(self.prefix) + 1:] for k in keys if k.startswith(self.prefix + "/")]
        return sorted({k.split("/")[0] for k in inside}), [k for k in keys if not k.startswith(self.prefix + "/")]

    def stop(self):
        if self._moto is not None:
            self._moto.stop()


@pytest.fixture
def master_store(logs):
    """The test's MasterStore; `make_server` puts every server's master dataset there."""
    store = MasterStore(logs)
    yield store
    store.stop()


@pytest.fixture
def make_server(tmp_path, logs, request, master_store):
    """Starts lambdadb servers; stops every one at the end and shows their logs
    when the test failed. Each server keeps its master dataset in `master_store`
    (environment entries passed by the test win over the store's)."""
    servers = []

    def make(brokers, data_dir=None, env=None, config=None, start=True, sql_dir=None):
        env = {**master_store.server_env(), **(env or {})}
        s = Server(brokers, data_dir or tmp_path / "data", logs, env, config, sql_dir)
        servers.append(s)
        return s.start() if start else s

    yield make
    for s in servers:
        s.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        for log in sorted(logs.glob("lambdadb-*.log")):
            text = log.read_text()
            print(f"==== {log.name} (last 4000 chars)\n{text[-4000:]}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep


@pytest.fixture(scope="session")
def pg_pair(tmp_path_factory):
    """lambdadb and a real PostgreSQL 15 holding the same definitions (sql/) and
    the same 3,000 events, for tests that run one client script against both.
    Half the view is in the batch layer (one REFRESH), new events in the speed
    layer are not added afterwards, so both hold the same rows throughout."""
    base = tmp_path_factory.mktemp("pgpair")
    logs = base / "logs"
    logs.mkdir()
    broker = Tansu(logs)
    server = Server(broker.brokers, base / "data", logs)
    pg = Postgres()
    try:
        broker.create_topic("events", 3)
        server.start()
        path = generate(base / "e.jsonl", 3_000, seed=77, start="2026-07-01T00:00:00Z")
        produce(broker.brokers, "events", path)
        server.wait_count(3_000)
        server.query("REFRESH MATERIALIZED VIEW events_hourly")
        pg.start()
        pg.load_demo(read_events(path))
        yield server, pg
    finally:
        pg.stop()
        server.stop()
        broker.stop()
