"""Benchmark data, generated once and kept under the data directory (reused when
the same parameters ask for it again: a marker file records them).

- TPC-H at a scale factor, by tpchgen-cli (one Parquet file per table).
- The demo clickstream (`lambdadb generate`, deterministic for a seed) as JSON
  lines, converted to Parquet and CSV by DuckDB with the declared column types.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb

TPCH_TABLES = ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]

# The demo table's columns, as `sql/001_events.sql` declares them (DuckDB types).
EVENT_COLUMNS = {
    "event_time": "TIMESTAMPTZ",
    "user_id": "BIGINT",
    "session_id": "VARCHAR",
    "event_type": "VARCHAR",
    "page": "VARCHAR",
    "country": "VARCHAR",
    "device": "VARCHAR",
    "duration_ms": "INTEGER",
    "revenue": "DOUBLE",
}

# Clickstream start and pace: 4 events/s puts 10 million events over ~29 days,
# the span a dashboard's "last 7 days" or "by day" panels expect.
CLICK_START = "2026-01-01T00:00:00Z"
CLICK_RATE = 4.0
CLICK_SEED = 20260101


def _fresh(marker, params):
    return marker.exists() and json.loads(marker.read_text()) == params


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def tpch(root, sf):
    """Directory of `<table>.parquet` at scale factor `sf`."""
    out = Path(root) / f"tpch-sf{sf}"
    marker = out / ".done"
    params = {"sf": sf, "tool": "tpchgen-cli"}
    if _fresh(marker, params):
        return out
    out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    exe = Path(sys.executable).parent / "tpchgen-cli"
    subprocess.run([str(exe), "parquet", "-s", str(sf), f"--output-dir={out}"], check=True)
    marker.write_text(json.dumps(params))
    log(f"TPC-H SF{sf} generated in {time.time() - t:.1f} s")
    return out


def clickstream(root, binary, events):
    """Paths of the clickstream as JSON lines, Parquet and CSV."""
    out = Path(root) / f"clicks-{events}"
    paths = {k: out / f"events.{k}" for k in ("jsonl", "parquet", "csv")}
    marker = out / ".done"
    params = {"events": events, "seed": CLICK_SEED, "start": CLICK_START, "rate": CLICK_RATE}
    if _fresh(marker, params):
        return paths
    out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    with open(paths["jsonl"], "wb") as f:
        subprocess.run([str(binary), "generate", "--count", str(events), "--seed", str(CLICK_SEED),
                        "--start", CLICK_START, "--rate", str(CLICK_RATE)], stdout=f, check=True)
    log(f"{events:,} events generated as JSON lines in {time.time() - t:.1f} s")
    t = time.time()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    cols = ", ".join(f"'{k}': '{v}'" for k, v in EVENT_COLUMNS.items())
    con.execute(f"CREATE TABLE e AS SELECT * FROM read_json('{paths['jsonl']}', "
                f"format = 'newline_delimited', columns = {{{cols}}})")
    # Row groups of ~1M rows: what the master dataset writes too.
    con.execute(f"COPY e TO '{paths['parquet']}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1048576)")
    con.execute(f"COPY e TO '{paths['csv']}' (FORMAT csv, HEADER)")
    con.close()
    marker.write_text(json.dumps(params))
    log(f"converted to Parquet and CSV in {time.time() - t:.1f} s")
    return paths


def click_span(events):
    """(first, end) of the clickstream's on-time event times, as ISO text."""
    from datetime import datetime, timedelta, timezone
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return start, start + timedelta(seconds=events / CLICK_RATE)
