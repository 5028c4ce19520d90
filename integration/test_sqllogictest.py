"""The sqllogictest files under sql/tests/, run by `lambdadb-slt` over the wire
against a real server fed by a real broker. Each file is one test; its source
tables' topics are created first (read from the file's `topic = '...'`)."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from harness import ROOT

SLT = Path(os.environ.get("LAMBDADB_TEST_BIN", str(ROOT / "target" / "debug" / "lambdadb"))).with_name(
    "lambdadb-slt")
FILES = sorted((ROOT / "sql" / "tests").glob("*.slt"))


@pytest.fixture(scope="module")
def slt_server(tmp_path_factory):
    from harness import Server, Tansu

    base = tmp_path_factory.mktemp("slt")
    logs = base / "logs"
    logs.mkdir()
    broker = Tansu(logs)
    server = None
    try:
        broker.create_topic("events", 3)
        for f in FILES:
            for topic in re.findall(r"topic\s*=\s*'([^']+)'", f.read_text()):
                broker.create_topic(topic, 2)
        server = Server(broker.brokers, base / "data", logs).start()
        yield server
    finally:
        if server:
            server.stop()
        broker.stop()


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_slt(slt_server, path):
    out = subprocess.run([str(SLT), slt_server.dsn(), str(path)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
