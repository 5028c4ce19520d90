"""`make run`'s configuration: no brokers, so the embedded broker and the demo
generator run in-process; the demo view answers and the event count grows."""

import os
import subprocess
import time

from harness import BIN, ROOT, Server, free_port, wait_port


def test_embedded_demo_answers_and_grows(tmp_path):
    port = free_port()
    env = dict(os.environ, LAMBDADB_DEMO_RATE="1000", LAMBDADB_ARCHIVE_INTERVAL="1s")
    log = open(tmp_path / "serve.log", "w")
    started = time.time()
    proc = subprocess.Popen([BIN, "serve", "--data-dir", str(tmp_path / "data"),
                             "--listen", f"127.0.0.1:{port}"],
                            cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=30, proc=proc)
        s = Server("", tmp_path / "data", tmp_path)
        s.port = port
        deadline = started + 30
        rows = []
        while time.time() < deadline and not rows:
            rows = s.query("SELECT * FROM events_hourly ORDER BY hour DESC LIMIT 5")
            time.sleep(0.2)
        assert rows, "events_hourly did not answer within 30 s of start"
        first = s.query("SELECT count(*) FROM events")[0][0]
        time.sleep(1.5)
        second = s.query("SELECT count(*) FROM events")[0][0]
        assert second > first > 0
        # The demo clickstream's shape: revenue only on purchases, ~50 countries.
        assert s.query("SELECT count(*) FROM events WHERE revenue IS NOT NULL AND event_type <> 'purchase'")[0][0] == 0
        assert s.query("SELECT count(DISTINCT country) FROM events")[0][0] >= 20
        assert "embedded Kafka broker" in (tmp_path / "serve.log").read_text()
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
