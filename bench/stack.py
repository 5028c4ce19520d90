"""The processes a benchmark runs against: Tansu and `lambdadb serve` in a
temporary directory, stopped on the way out."""

import contextlib
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))


@contextlib.contextmanager
def stack(binary, partitions, env=None):
    """Yields (harness, broker, server, tmp) with topic `events` created."""
    if binary:
        os.environ["LAMBDADB_TEST_BIN"] = str(Path(binary).resolve())
    import harness  # reads LAMBDADB_TEST_BIN

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        broker = harness.Tansu(tmp)
        server = None
        try:
            broker.create_topic("events", partitions)
            server = harness.Server(broker.brokers, tmp / "data", tmp, env=env).start()
            yield harness, broker, server, tmp
        finally:
            if server:
                server.stop()
            broker.stop()
