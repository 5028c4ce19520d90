"""node-postgres (npm `pg`, pinned in integration/node/package-lock.json) against
lambdadb and PostgreSQL 15 holding the same rows: simple and extended protocol,
int/text/timestamptz/float parameters, a named prepared statement, array rows,
information_schema, and an error that leaves the connection usable."""

import json
import subprocess
from pathlib import Path

NODE_DIR = Path(__file__).parent / "node"


def run_client(port):
    out = subprocess.run(["node", "client.js", str(port)], cwd=NODE_DIR,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(l) for l in out.stdout.splitlines()]


def test_node_postgres_same_as_postgres(pg_pair):
    server, pg = pg_pair
    got, want = run_client(server.port), run_client(pg.port)
    assert [g["section"] for g in got] == [w["section"] for w in want]
    for g, w in zip(got, want):
        assert g == w, f"{g['section']}: lambdadb {g['value']!r}, PostgreSQL {w['value']!r}"
    facts = {g["section"]: g["value"] for g in got}
    assert facts["error"] == "42703"
    assert facts["after_error"] == [{"one": 1}]
