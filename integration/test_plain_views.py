"""Plain views (CREATE [OR REPLACE] VIEW, DROP VIEW) over source tables and
materialized views: expanded at every use, so they always show the current
events; listed as views in psql and information_schema; admin-only."""

import psycopg
import pytest

from harness import generate, produce, read_events


def test_plain_views(broker, make_server, tmp_path):
    broker.create_topic("events", 2)
    server = make_server(broker.brokers)
    with server.connect() as c:
        c.execute("CREATE VIEW purchases AS SELECT user_id, revenue FROM events "
                  "WHERE event_type = 'purchase'")
        c.execute("CREATE VIEW hourly_total AS SELECT hour, sum(events) AS events "
                  "FROM events_hourly GROUP BY hour")
        assert c.execute("SELECT count(*) FROM purchases").fetchone() == (0,)
        path = generate(tmp_path / "e.jsonl", 2_000, seed=5, start="2026-07-01T00:00:00Z")
        produce(broker.brokers, "events", path)
        server.wait_count(2_000)
        events = read_events(path)
        want = sorted((e["user_id"], e.get("revenue")) for e in events
                      if e["event_type"] == "purchase")
        assert sorted(c.execute("SELECT * FROM purchases").fetchall()) == want
        assert c.execute("SELECT sum(events) FROM hourly_total").fetchone() == (2_000,)
        # A view over a view, and the same answer as the query it stands for.
        c.execute("CREATE VIEW big AS SELECT * FROM purchases WHERE revenue > 100")
        assert c.execute("SELECT count(*) FROM big").fetchone() == \
            c.execute("SELECT count(*) FROM events WHERE event_type = 'purchase' "
                      "AND revenue > 100").fetchone()
        assert "purchases" in server.psql(r"\dv")
        assert c.execute("SELECT view_definition FROM information_schema.views "
                         "WHERE table_name = 'purchases'").fetchone()[0].startswith("SELECT")
        with pytest.raises(psycopg.Error) as e:
            c.execute("CREATE VIEW purchases AS SELECT 1 AS one")
        assert e.value.sqlstate == "42P07"
        c.execute("CREATE OR REPLACE VIEW purchases AS SELECT 1 AS one")
        assert c.execute("SELECT * FROM purchases").fetchone() == (1,)
        with pytest.raises(psycopg.Error) as e:
            c.execute("CREATE VIEW v AS SELECT nope FROM events")
        assert e.value.sqlstate == "42703"
        with pytest.raises(psycopg.Error) as e:
            c.execute("DROP VIEW events_hourly")
        assert e.value.sqlstate == "42809"
        c.execute("DROP VIEW big, purchases")
        with pytest.raises(psycopg.Error) as e:
            c.execute("SELECT * FROM purchases")
        assert e.value.sqlstate == "42P01"
        with pytest.raises(psycopg.Error) as e:
            c.execute("DROP VIEW purchases")
        assert e.value.sqlstate == "42P01"
        c.execute("DROP VIEW IF EXISTS purchases")
