import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Server, Tansu, generate, produce, read_events  # noqa: E402
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


@pytest.fixture
def make_server(tmp_path, logs, request):
    """Starts lambdadb servers; stops every one at the end and shows their logs
    when the test failed."""
    servers = []

    def make(brokers, data_dir=None, env=None, config=None, start=True, sql_dir=None):
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
