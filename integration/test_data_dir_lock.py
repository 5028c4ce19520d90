"""A data_dir is used by one process: a second server on it refuses to start and
says who holds it; the lock of a killed server is taken over."""

import subprocess

from harness import BIN, ROOT, free_port


def test_second_server_refuses_and_stale_lock_is_taken_over(broker, make_server, tmp_path):
    data_dir = tmp_path / "data"
    first = make_server(broker.brokers, data_dir=data_dir)
    second = subprocess.run(
        [BIN, "serve", "--brokers", broker.brokers, "--data-dir", str(data_dir),
         "--listen", f"127.0.0.1:{free_port()}", "--sql-dir", str(ROOT / "sql")],
        capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert second.returncode != 0
    assert "in use by another lambdadb" in second.stderr, second.stderr
    assert f"listening on 127.0.0.1:{first.port}" in second.stderr, second.stderr
    assert first.alive() and first.query("SELECT 1") == [(1,)]

    first.kill9()
    third = make_server(broker.brokers, data_dir=data_dir)
    assert third.query("SELECT 1") == [(1,)]
    assert "taking over the data directory" in third.log_path.read_text()
