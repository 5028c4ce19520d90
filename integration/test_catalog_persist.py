"""Tables and views declared over the wire survive a restart (data_dir/catalog.json);
DROP and CREATE OR REPLACE are remembered too."""


def test_wire_declarations_survive_restarts(broker, make_server):
    broker.create_topic("events", 1)
    broker.create_topic("orders", 1)
    server = make_server(broker.brokers)
    server.query("CREATE TABLE orders (ts TIMESTAMPTZ NOT NULL, sku TEXT, qty BIGINT) "
                 "WITH (topic = 'orders', event_time = 'ts')")
    server.query("INSERT INTO orders VALUES ('2026-01-01 10:00:00+00', 'a', 2), "
                 "('2026-01-01 11:00:00+00', 'b', 3), ('2026-01-01 11:30:00+00', 'a', 5)")
    server.query("CREATE MATERIALIZED VIEW by_sku AS SELECT sku, sum(qty) AS qty FROM orders GROUP BY sku")
    server.query("CREATE VIEW big AS SELECT * FROM by_sku WHERE qty > 5")
    server.query("CREATE MATERIALIZED VIEW gone AS SELECT count(*) AS n FROM orders")
    server.query("CREATE OR REPLACE MATERIALIZED VIEW by_sku AS "
                 "SELECT sku, sum(qty) AS qty, count(*) AS n FROM orders GROUP BY sku")
    server.query("DROP MATERIALIZED VIEW gone")
    want = sorted(server.query("SELECT * FROM by_sku"))
    assert want == [("a", 7, 2), ("b", 3, 1)]

    server.stop()
    server.start()
    server.wait_count(3, table="orders")
    assert sorted(server.query("SELECT * FROM by_sku")) == want
    assert server.query("SELECT sku FROM big") == [("a",)]
    names = {r[0] for r in server.query("SELECT view_name FROM lambdadb.views")}
    assert "gone" not in names and "by_sku" in names

    server.query("DROP VIEW big")
    server.stop()
    server.start()
    tables = {r[0] for r in server.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"orders", "by_sku", "events", "events_hourly"} <= tables
    assert "big" not in tables
