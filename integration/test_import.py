"""`COPY t FROM '/file.parquet' (FORMAT parquet)` imports historical files into the
master dataset: the rows join the table and its views next to the Kafka events,
each counted once, across restarts; bad files get an error and change nothing."""

import duckdb
import psycopg
import pytest


def write_parquet(path, sql):
    duckdb.sql(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")


def test_import_joins_table_and_views(broker, make_server, tmp_path):
    broker.create_topic("orders", 1)
    # Imports read only inside import_dir.
    server = make_server(broker.brokers, env={"LAMBDADB_IMPORT_DIR": str(tmp_path)})
    server.query("CREATE TABLE orders (ts TIMESTAMPTZ NOT NULL, sku TEXT NOT NULL, "
                 "qty INTEGER, price NUMERIC(10,2)) WITH (topic = 'orders', event_time = 'ts')")
    server.query("INSERT INTO orders VALUES ('2026-01-02 10:00:00+00', 'a', 1, 2.50)")
    server.query("CREATE MATERIALIZED VIEW by_sku AS "
                 "SELECT sku, count(*) AS n, sum(qty) AS qty, sum(price) AS price FROM orders GROUP BY sku")
    server.wait_count(1, table="orders")

    hist = tmp_path / "hist"
    hist.mkdir()
    # Columns in another order and case, wider and narrower types, one absent
    # nullable column: matched by name and cast.
    write_parquet(hist / "a.parquet",
                  "SELECT 'a' AS SKU, TIMESTAMPTZ '2025-01-01 00:00:00+00' + i * INTERVAL 1 MINUTE AS ts, "
                  "i::BIGINT AS qty FROM range(1000) t(i)")
    write_parquet(hist / "b.parquet",
                  "SELECT TIMESTAMPTZ '2025-02-01 00:00:00+00' AS ts, 'b' AS sku, 3 AS qty, "
                  "1.25::DECIMAL(6,2) AS price")
    assert server.psql(f"COPY orders FROM '{hist}' (FORMAT parquet)").strip() == "COPY 1001"

    # The view includes the imported rows as soon as COPY returns.
    assert sorted(server.query("SELECT sku, n, qty, price::text FROM by_sku")) == [
        ("a", 1001, 1 + sum(range(1000)), "2.50"), ("b", 1, 3, "1.25")]
    assert server.query("SELECT count(*), count(price) FROM orders") == [(1002, 2)]

    # Kafka events keep arriving beside the imports.
    server.query("INSERT INTO orders VALUES ('2026-01-02 11:00:00+00', 'b', 4, 1.00)")
    server.wait_count(1003, table="orders")
    assert sorted(server.query("SELECT sku, n FROM by_sku")) == [("a", 1001), ("b", 2)]

    # Refused files change nothing: undeclared column, missing NOT NULL column,
    # values that do not fit, not Parquet, relative path, CSV.
    write_parquet(tmp_path / "extra.parquet", "SELECT now() AS ts, 'x' AS sku, 1 AS bogus")
    write_parquet(tmp_path / "nosku.parquet", "SELECT now() AS ts")
    write_parquet(tmp_path / "big.parquet", "SELECT now() AS ts, 'x' AS sku, 99999999999 AS qty")
    (tmp_path / "junk.parquet").write_text("not parquet")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.parquet"
    write_parquet(outside, "SELECT now() AS ts, 'x' AS sku")
    (tmp_path / "link.parquet").symlink_to(outside)
    bad = {
        f"COPY orders FROM '{tmp_path / 'extra.parquet'}' (FORMAT parquet)": ("22000", "bogus"),
        f"COPY orders FROM '{tmp_path / 'nosku.parquet'}' (FORMAT parquet)": ("22000", "sku"),
        f"COPY orders FROM '{tmp_path / 'big.parquet'}' (FORMAT parquet)": ("22000", "qty"),
        f"COPY orders FROM '{tmp_path / 'junk.parquet'}' (FORMAT parquet)": ("22000", "not a Parquet"),
        "COPY orders FROM 'rel.parquet' (FORMAT parquet)": ("22023", "absolute"),
        f"COPY orders FROM '{tmp_path / 'x.csv'}' (FORMAT csv)": ("0A000", "Parquet only"),
        f"COPY by_sku FROM '{hist}' (FORMAT parquet)": ("42809", "source table"),
        f"COPY orders FROM '{outside}' (FORMAT parquet)": ("42501", "import_dir"),
        f"COPY orders FROM '{tmp_path}/../{outside.name}' (FORMAT parquet)": ("42501", "import_dir"),
        f"COPY orders FROM '{tmp_path / 'link.parquet'}' (FORMAT parquet)": ("42501", "import_dir"),
        "COPY orders FROM '/etc/hostname' (FORMAT parquet)": ("42501", "import_dir"),
    }
    with server.connect() as conn:
        conn.autocommit = True
        for sql, (state, words) in bad.items():
            with pytest.raises(psycopg.Error) as e:
                conn.execute(sql)
            assert e.value.sqlstate == state, (sql, e.value)
            assert words in str(e.value), (sql, e.value)
    assert server.query("SELECT count(*) FROM orders") == [(1003,)]

    # Imports are part of the master dataset: they survive a restart, and a
    # refresh after one does not count them twice.
    server.stop()
    server.start()
    server.wait_count(1003, table="orders")
    server.query("REFRESH MATERIALIZED VIEW by_sku")
    assert sorted(server.query("SELECT sku, n FROM by_sku")) == [("a", 1001), ("b", 2)]
    # Imported files are listed under partition -1, one "offset" per file.
    parts = server.query("SELECT partition, archived_offset FROM lambdadb.sources "
                         "WHERE table_name = 'orders' AND partition < 0")
    assert parts == [(-1, 2)]

