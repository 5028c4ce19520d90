"""SQL names never become paths: any identifier PostgreSQL accepts names a source
table or a view, and no statement that names an object (create, replace,
refresh, insert, import, drop) reaches outside data_dir, as admin or as reader."""

import re
import shutil
import tempfile
from pathlib import Path

import duckdb
import psycopg
import pytest

from accounts import write_config


def tree(root):
    """Every path under `root` with its bytes (None for directories)."""
    return {p: (None if p.is_dir() else p.read_bytes()) for p in sorted(Path(root).rglob("*"))}


def ident(name):
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture
def victim():
    """A directory outside data_dir with a short absolute path (names are at
    most 63 bytes), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="v", dir="/tmp"))
    yield d
    shutil.rmtree(d)


def test_names_stay_inside_data_dir(broker, make_server, master_store, tmp_path, victim):
    (victim / "views").mkdir(parents=True)
    (victim / "keep.txt").write_text("not lambdadb's")
    (victim / "views" / "current.json").write_text("{}")
    (victim / "p0").mkdir()
    (victim / "p0" / "old.parquet").write_bytes(b"unlisted, would be deleted by an archiver")
    imports = tmp_path / "imports"
    imports.mkdir()
    duckdb.sql(f"COPY (SELECT TIMESTAMPTZ '2025-01-01 00:00:00+00' AS t, 'hist' AS k) "
               f"TO '{imports / 'h.parquet'}' (FORMAT parquet)")
    before = tree(victim)

    sources = [str(victim), f"{victim}/p0/..", "../../escape", "a/b", "x y", "ünï", ".", "%2F",
               'quo"te']
    views = [str(victim / "views"), "..", "../v", "a/b/c", "v w", "💥", "%2E%2E"]
    broker.create_topic("clicks", 1)
    config = write_config(tmp_path, users=(("boss", "b", "admin"), ("reader", "r", "reader")),
                          extra=[f'import_dir = "{imports}"'])
    data_dir = tmp_path / "data"
    no_catalog = tmp_path / "sql"
    no_catalog.mkdir()
    server = make_server(broker.brokers, data_dir=data_dir, config=config, sql_dir=no_catalog)
    server.user, server.password = "boss", "b"

    def declare_views(c, replace=""):
        for i, v in enumerate(views):
            src = sources[i % len(sources)]
            c.execute(f"CREATE {replace} MATERIALIZED VIEW {ident(v)} AS "
                      f"SELECT k, count(*) AS n FROM {ident(src)} GROUP BY k")

    with server.connect() as c:
        for s in sources:
            c.execute(f"CREATE TABLE {ident(s)} (t TIMESTAMPTZ NOT NULL, k TEXT) "
                      "WITH (topic = 'clicks', event_time = 't')")
        c.execute(f"INSERT INTO {ident(sources[0])} VALUES ('2026-01-01 00:00:00+00', 'live')")
        declare_views(c)
        declare_views(c, replace="OR REPLACE")
        for v in views:
            c.execute(f"REFRESH MATERIALIZED VIEW {ident(v)}")
        for s in sources:
            assert c.execute(f"COPY {ident(s)} FROM '{imports / 'h.parquet'}' (FORMAT parquet)"
                             ).statusmessage == "COPY 1"
        for v in views:
            c.execute(f"CREATE VIEW {ident('plain ' + v)} AS SELECT * FROM {ident(v)}")
        for s in sources:
            server.wait_count(2, table=ident(s))
        with pytest.raises(psycopg.Error) as e:
            c.execute(f"CREATE MATERIALIZED VIEW {ident('x' * 64)} AS "
                      f"SELECT k, count(*) AS n FROM {ident(sources[0])} GROUP BY k")
        assert e.value.sqlstate == "42622", e.value

    # A reader is refused every statement that names an object to write.
    with psycopg.connect(server.dsn(user="reader", password="r"), autocommit=True) as c:
        for sql in [f"CREATE TABLE {ident('/tmp/r')} (k TEXT) WITH (topic = 'clicks')",
                    f"CREATE MATERIALIZED VIEW {ident('..')} AS SELECT k, count(*) AS n "
                    f"FROM {ident(sources[0])} GROUP BY k",
                    f"CREATE OR REPLACE MATERIALIZED VIEW {ident(views[0])} AS SELECT k, "
                    f"count(*) AS n FROM {ident(sources[0])} GROUP BY k",
                    f"REFRESH MATERIALIZED VIEW {ident(views[0])}",
                    f"DROP MATERIALIZED VIEW {ident(views[1])}",
                    f"COPY {ident(sources[0])} FROM '{imports / 'h.parquet'}' (FORMAT parquet)",
                    f"INSERT INTO {ident(sources[0])} VALUES (now(), 'r')"]:
            with pytest.raises(psycopg.Error) as e:
                c.execute(sql)
            assert e.value.sqlstate == "42501", (sql, e.value)

    # The objects and their data come back after a restart.
    server.stop()
    server.start()
    with server.connect() as c:
        for s in sources:
            server.wait_count(2, table=ident(s))
        for i, v in enumerate(views):
            n = c.execute(f"SELECT sum(n) FROM {ident(v)}").fetchone()[0]
            assert n == 2, (v, n)
            assert c.execute(f"SELECT sum(n) FROM {ident('plain ' + v)}").fetchone()[0] == 2
        for v in views:
            c.execute(f"DROP VIEW {ident('plain ' + v)}")
            c.execute(f"DROP MATERIALIZED VIEW {ident(v)}")

    assert tree(victim) == before, "files outside data_dir changed"
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()
    # Views use %XX escapes; source tables -XX (their names are URLs too, and
    # on S3 key prefixes, which stay inside the configured prefix).
    for entry in (data_dir / "views").iterdir():
        assert re.fullmatch(r"[A-Za-z0-9_%]+", entry.name), entry
    tables, outside = master_store.table_names(data_dir)
    # `.lambdadb` (the writer lease beside the tables on S3) has a dot, which
    # no table's name can encode to.
    for name in tables:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", name) or name == ".lambdadb", name
    assert outside == [], "keys outside the master_url prefix"
    # Dropped views leave nothing behind; every source keeps its archive.
    assert list((data_dir / "views").iterdir()) == []
    assert len([t for t in tables if t != ".lambdadb"]) == len(sources), tables
