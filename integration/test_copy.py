"""COPY ... TO STDOUT in text, CSV and binary, and psql's \\copy."""

import subprocess

import psycopg
import pytest

from harness import generate, produce, read_events


def test_copy_formats(broker, make_server, tmp_path):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers)
    path = generate(tmp_path / "e.jsonl", 300, seed=21, start="2026-05-01T00:00:00Z")
    produce(broker.brokers, "events", path)
    server.wait_count(300)
    events = read_events(path)
    q = "SELECT user_id, event_type, revenue FROM events ORDER BY user_id, event_time, event_type"
    with server.connect() as c, c.cursor() as cur:
        with cur.copy(f"COPY ({q}) TO STDOUT (FORMAT csv, HEADER true)") as copy:
            csv_text = b"".join(bytes(b) for b in copy).decode()
        with cur.copy(f"COPY ({q}) TO STDOUT") as copy:
            text = b"".join(bytes(b) for b in copy).decode()
        with cur.copy(f"COPY ({q}) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(["int8", "text", "float8"])
            binary_rows = list(copy.rows())
        rows = c.execute(q).fetchall()
        with cur.copy("COPY (SELECT user_id FROM events WHERE false) TO STDOUT (FORMAT csv)") as copy:
            assert b"".join(bytes(b) for b in copy) == b""
        assert c.execute("SELECT 1").fetchone() == (1,)
    lines = csv_text.splitlines()
    assert lines[0] == "user_id,event_type,revenue"
    assert len(lines) == 301
    purchase = next(r for r in rows if r[2] is not None)
    assert f"{purchase[0]},{purchase[1]},{purchase[2]}" in lines
    text_lines = text.splitlines()
    assert len(text_lines) == 300
    assert any(line.endswith("\t\\N") for line in text_lines), "NULL is \\N in text format"
    assert binary_rows == rows
    assert sorted(r[0] for r in rows) == sorted(e["user_id"] for e in events)

    out = tmp_path / "out.csv"
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(server.port), "-U", "lambdadb", "-d", "lambdadb",
         "-X", "-v", "ON_ERROR_STOP=1", "-c",
         f"\\copy (SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY 1) TO '{out}' WITH CSV HEADER"],
        check=True, capture_output=True, text=True)
    got = out.read_text().splitlines()
    assert got[0] == "event_type,n"
    counts = {}
    for e in events:
        counts[e["event_type"]] = counts.get(e["event_type"], 0) + 1
    assert got[1:] == [f"{k},{v}" for k, v in sorted(counts.items())]


def test_copy_to_file_and_from_are_refused(broker, make_server):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers)
    with server.connect() as c:
        with pytest.raises(psycopg.Error) as e:
            c.execute("COPY events TO '/tmp/lambdadb-copy-test.csv'")
        assert e.value.sqlstate == "42501"
        with pytest.raises(psycopg.Error) as e:
            c.execute("COPY events FROM STDIN")
        assert e.value.sqlstate == "0A000"
        assert c.execute("SELECT 1").fetchone() == (1,)


def copy_bytes(dsn, sql):
    out = b""
    with psycopg.connect(dsn, autocommit=True) as c:
        with c.cursor().copy(sql) as copy:
            for chunk in copy:
                out += bytes(chunk)
    return out


def test_copy_bytes_like_postgres(pg_pair):
    """Byte for byte the same COPY output as PostgreSQL 15, including a binary
    COPY of zero rows (header and trailer only)."""
    server, pg = pg_pair
    q = ("SELECT user_id, event_type, duration_ms, revenue, event_time FROM events "
         "ORDER BY event_time, user_id, event_type LIMIT 20")
    for fmt in ("text", "csv", "binary"):
        sql = f"COPY ({q}) TO STDOUT (FORMAT {fmt})"
        assert copy_bytes(server.dsn(), sql) == copy_bytes(pg.dsn(), sql), fmt
    empty = "COPY (SELECT user_id FROM events WHERE user_id < 0) TO STDOUT (FORMAT binary)"
    got = copy_bytes(server.dsn(), empty)
    assert got == copy_bytes(pg.dsn(), empty)
    assert got.startswith(b"PGCOPY\n\xff\r\n\x00") and got.endswith(b"\xff\xff")
