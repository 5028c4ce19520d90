import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Server, Tansu  # noqa: E402


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

    def make(brokers, data_dir=None, env=None, config=None, start=True):
        s = Server(brokers, data_dir or tmp_path / "data", logs, env, config)
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
