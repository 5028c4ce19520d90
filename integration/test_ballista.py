"""Full recomputes on Ballista (issue 15): a scheduler and two executors as
separate processes (`lambdadb ballista-scheduler`, `lambdadb ballista-executor`)
recompute every view of the view-oracle test, and each version's partial rows
equal those of a local full recompute over the same files (same watermark),
row for row. Runs on local disk and on S3 (moto), where the executors read
the master dataset from the bucket themselves.

Compared row for row: group keys, counts, sums (floats within 1e-9 relative:
the executors add in another order), min/max and the HyperLogLog registers
(a maximum per register, so they do not depend on the order). t-digest states
depend on the order centroids are merged in, so for the percentile views the
digests are left out of the row comparison and the answers are checked
against DuckDB's bounds instead (as the view-oracle test does).

Then the cluster goes away: a full recompute fails with an error that names
the scheduler and what to do, the served version stays, and an incremental
refresh (always local) still works."""

import math
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from harness import BIN, free_port, generate, produce, stop_process, wait_port
from test_view_oracle import VIEWS, compare, oracle

EVENTS = 4000


class Process:
    """A lambdadb subcommand in a process of its own, with its log."""

    def __init__(self, logs, name, args, env):
        self.log = open(Path(logs) / f"{name}.log", "w")
        self.proc = subprocess.Popen([BIN, *args], stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def stop(self):
        stop_process(self.proc, self.log, self.proc.terminate)


@pytest.fixture
def cluster(logs, master_store, tmp_path):
    """A Ballista scheduler and two executors on 127.0.0.1; yields the
    scheduler's HOST:PORT and a function that stops them all."""
    import os

    env = {**os.environ, **master_store.server_env()}
    port = free_port()
    addr = f"127.0.0.1:{port}"
    procs = [Process(logs, "scheduler", ["ballista-scheduler", "--listen", addr], env)]

    def stop():
        while procs:
            procs.pop().stop()

    try:
        wait_port(port, proc=procs[0].proc)
        for i in range(2):
            flight = free_port()
            procs.append(Process(logs, f"executor{i}", [
                "ballista-executor", "--listen", f"127.0.0.1:{flight}", "--scheduler", addr,
                "--work-dir", str(tmp_path / f"executor{i}"), "--slots", "2"], env))
            wait_port(flight, proc=procs[-1].proc)
        yield addr, stop
    finally:
        stop()


def version_rows(server, name, version):
    """The partial-state rows of `name`'s batch version `version`, as read from
    its file in the server's data directory."""
    files = sorted((Path(server.data_dir) / "views" / name).glob(f"v{version:010}*.parquet"))
    assert len(files) == 1, (name, version, files)
    return pq.read_table(files[0])


def normalized(table, skip_binary):
    cols = [c for c in table.column_names
            if not (skip_binary and str(table.schema.field(c).type) in ("binary", "large_binary"))]
    rows = [tuple(r[c] for c in cols) for r in table.select(cols).to_pylist()]
    return cols, sorted(rows, key=repr)


def same_value(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def refresh_all_full(server):
    """A full recompute of every view; returns {view: (version, watermark, engine)}."""
    out = {}
    for name, *_ in VIEWS:
        server.query(f"REFRESH MATERIALIZED VIEW {name} FULL")
        (out[name],) = server.query(
            "SELECT version, watermark, engine, how FROM lambdadb.view_versions "
            "WHERE view_name = %s AND serving", (name,))
    return out


def write_views(tmp_path):
    import shutil

    from harness import ROOT

    d = tmp_path / "sql"
    d.mkdir()
    shutil.copy(ROOT / "sql" / "001_events.sql", d)
    (d / "100_views.sql").write_text(
        "\n".join(f"CREATE MATERIALIZED VIEW {n} AS {sql};" for n, _, sql, _ in VIEWS))
    return d


def test_full_recompute_on_ballista_equals_local(broker, make_server, cluster, tmp_path):
    addr, stop_cluster = cluster
    broker.create_topic("events", 3)
    f = generate(tmp_path / "events.jsonl", EVENTS, seed=15, start="2026-03-01T08:00:00Z",
                 rate=2.0, late_fraction=0.05)
    produce(broker.brokers, "events", f)
    sql = write_views(tmp_path)
    server = make_server(broker.brokers, sql_dir=sql,
                         env={"LAMBDADB_BATCH_ENGINE": f"ballista://{addr}"})
    server.wait_count(EVENTS)
    on_ballista = refresh_all_full(server)
    assert {e for _, _, e, _ in on_ballista.values()} == {"ballista"}, on_ballista
    assert {h for *_, h in on_ballista.values()} == {"full"}
    db = oracle([f])
    for name, kinds, view_sql, duck in VIEWS:
        compare(name, kinds, server.query(f"SELECT * FROM {name}"), db.execute(duck or view_sql).fetchall(),
                "ballista")

    # The same server and data directory with the local engine: no event
    # arrived in between, so a full run reads the same files.
    server.stop()
    server.env["LAMBDADB_BATCH_ENGINE"] = "local"
    server.start()
    server.wait_count(EVENTS)
    local = refresh_all_full(server)
    assert {e for _, _, e, _ in local.values()} == {"local"}, local
    for name, kinds, view_sql, duck in VIEWS:
        (bv, bwm, *_), (lv, lwm, *_) = on_ballista[name], local[name]
        assert bwm == lwm, (name, bwm, lwm)
        digests = "P" in kinds
        bcols, brows = normalized(version_rows(server, name, bv), digests)
        lcols, lrows = normalized(version_rows(server, name, lv), digests)
        assert bcols == lcols and len(brows) == len(lrows) > 0, (name, bcols, lcols, len(brows), len(lrows))
        for b, l in zip(brows, lrows):
            assert all(same_value(x, y) for x, y in zip(b, l)), (name, b, l)
        compare(name, kinds, server.query(f"SELECT * FROM {name}"), db.execute(duck or view_sql).fetchall(),
                "local")
    db.close()

    # Without the cluster: a full recompute fails and says what to do; the
    # served version stays; an incremental refresh runs here.
    server.stop()
    server.env["LAMBDADB_BATCH_ENGINE"] = f"ballista://{addr}"
    stop_cluster()
    server.start()
    name = VIEWS[0][0]
    with pytest.raises(Exception) as failed:
        server.query(f"REFRESH MATERIALIZED VIEW {name} FULL")
    assert "Ballista job" in str(failed.value) and 'batch_engine = "local"' in str(failed.value), failed.value
    assert server.query(f"SELECT version FROM lambdadb.view_versions WHERE view_name = '{name}' AND serving") \
        == [(local[name][0],)]
    server.query(f"REFRESH MATERIALIZED VIEW {name}")
    assert server.query(
        f"SELECT how, engine FROM lambdadb.view_versions WHERE view_name = '{name}' AND serving") \
        == [("incremental", "local")]
    assert server.query(f"SELECT sum(n) FROM {name}") == [(EVENTS,)]


def test_the_test_build_ships_the_ballista_subcommands():
    """`make test` builds with the `ballista` feature, so the executor's
    subcommand and its options exist (a build without the feature refuses
    batch_engine = "ballista://..." at start: crates/lambdadb/src/ballista.rs)."""
    out = subprocess.run([BIN, "ballista-executor", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "--scheduler" in out.stdout, out.stderr
