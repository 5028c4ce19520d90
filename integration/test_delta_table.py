"""The master dataset is a Delta Lake table (issue 14), on local disk or on S3
(moto, with LAMBDADB_TEST_STORE=s3): a reader outside lambdadb — Python's
`deltalake` — sees exactly the archived rows of `events`, and the table's
application transactions hold the offsets lambdadb resumes from. On a store
that does not refuse a second create of the same key, the server refuses to
start."""

import http.server
import threading
import time
import urllib.request
from datetime import datetime, timezone

import deltalake
import pytest

from harness import Moto, generate, produce


def archived(server):
    return dict(server.query(
        "SELECT partition, archived_offset FROM lambdadb.sources WHERE table_name = 'events'"))


def wait_archived(server, total, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sum(archived(server).values()) == total:
            return
        time.sleep(0.2)
    raise TimeoutError(f"archived offsets {archived(server)} never reached {total}")


def test_a_delta_reader_sees_exactly_the_archived_rows(broker, make_server, master_store, tmp_path):
    broker.create_topic("events", 3)
    server = make_server(broker.brokers, env={"LAMBDADB_ARCHIVE_INTERVAL": "300ms"})
    total = 0
    for i in range(3):  # several commits
        f = generate(tmp_path / f"e{i}.jsonl", 700, seed=40 + i,
                     start=datetime(2026, 6, 1, i, tzinfo=timezone.utc).isoformat())
        produce(broker.brokers, "events", f)
        total += 700
        server.wait_count(total)
        wait_archived(server, total)

    table = deltalake.DeltaTable(master_store.delta_url(server.data_dir),
                                 storage_options=master_store.storage_options())
    got = table.to_pyarrow_table().to_pylist()
    assert len(got) == total
    # Every event once: (partition, offset) pairs are unique and dense per partition.
    offsets = {}
    for r in got:
        offsets.setdefault(r["_partition"], []).append(r["_offset"])
    for p, offs in offsets.items():
        assert sorted(offs) == list(range(len(offs))), f"partition {p}: offsets not each once"
    cols = "session_id, user_id, event_type, page, country, device, duration_ms, revenue, event_time"
    ours = server.query(f"SELECT {cols} FROM events")
    names = [c.strip() for c in cols.split(",")]
    key = lambda r: tuple("" if v is None else str(v) for v in r)  # noqa: E731
    theirs = [tuple(r[n] for n in names) for r in got]
    assert sorted(ours, key=key) == sorted(theirs, key=key), "the Delta reader and lambdadb differ"

    # The offset vector lives in the table: one application transaction per partition.
    for p, offset in archived(server).items():
        assert table.transaction_version(f"lambdadb.wm.{p}") == offset
    history = table.history()
    assert len(history) >= 4, "one commit at creation, then one per archive run"
    # On S3 the writer also commits its lease epoch when it takes the table
    # over (a STREAMING UPDATE without files; it fences earlier writers).
    assert all(h.get("operation") in ("CREATE TABLE", "WRITE", "STREAMING UPDATE") for h in history), history

    # A restart resumes from the table alone: nothing lost, nothing twice.
    server.stop()
    server.start()
    server.wait_count(total)
    time.sleep(1)
    assert server.query("SELECT count(*) FROM events") == [(total,)]


class _NoConditionalPut(http.server.BaseHTTPRequestHandler):
    """A proxy in front of moto that drops If-None-Match: a store whose creates
    always overwrite, like S3-compatible stores without conditional writes."""

    upstream = ""

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("if-none-match", "host", "content-length")}
        req = urllib.request.Request(self.upstream + self.path, data=body, headers=headers,
                                     method=self.command)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, rheaders, data = r.status, r.getheaders(), r.read()
        except urllib.error.HTTPError as e:
            status, rheaders, data = e.code, e.headers.items(), e.read()
        self.send_response(status)
        for k, v in rheaders:
            if k.lower() not in ("transfer-encoding", "content-length", "connection", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    def log_message(self, *args):
        pass


def test_a_store_without_conditional_writes_is_refused_at_start(broker, make_server, logs):
    moto = Moto(logs)
    handler = type("H", (_NoConditionalPut,), {"upstream": moto.endpoint})
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        broker.create_topic("events", 1)
        env = moto.server_env("refused")
        env["LAMBDADB_S3_ENDPOINT"] = f"http://127.0.0.1:{proxy.server_address[1]}"
        server = make_server(broker.brokers, env=env, start=False)
        with pytest.raises(Exception):
            server.start()
        server.proc.wait(30)
        log = server.log_path.read_text()
        assert server.proc.returncode != 0
        assert "does not support conditional writes" in log, log[-2000:]

        # The same bucket straight through moto (which honours If-None-Match) works.
        env["LAMBDADB_S3_ENDPOINT"] = moto.endpoint
        good = make_server(broker.brokers, env=env, data_dir=logs.parent / "good")
        assert good.query("SELECT count(*) FROM events") == [(0,)]
    finally:
        proxy.shutdown()
        moto.stop()
