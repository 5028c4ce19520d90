"""Python drivers and tools beyond psycopg: psycopg2, pg8000, SQLAlchemy 2
(connect, Core select with a bound parameter, inspect) and pandas.read_sql."""

import pg8000.native
import psycopg2
import pytest
import sqlalchemy as sa

from harness import generate, produce, read_events


@pytest.fixture
def loaded(broker, make_server, tmp_path):
    broker.create_topic("events", 2)
    server = make_server(broker.brokers)
    path = generate(tmp_path / "e.jsonl", 1_000, seed=31, start="2026-07-01T00:00:00Z")
    produce(broker.brokers, "events", path)
    server.wait_count(1_000)
    return server, read_events(path)


def test_psycopg2_and_pg8000(loaded):
    server, events = loaded
    want = sum(1 for e in events if e["user_id"] > 100)
    c = psycopg2.connect(host="127.0.0.1", port=server.port, user="lambdadb", dbname="lambdadb")
    cur = c.cursor()
    cur.execute("SELECT count(*) FROM events WHERE user_id > %s", (100,))
    assert cur.fetchone() == (want,)
    c.close()
    p = pg8000.native.Connection("lambdadb", host="127.0.0.1", port=server.port, database="lambdadb")
    assert p.run("SELECT count(*) FROM events WHERE user_id > :u", u=100) == [[want]]
    p.close()


def test_sqlalchemy_and_pandas(loaded):
    import pandas as pd

    server, events = loaded
    engine = sa.create_engine(f"postgresql+psycopg://lambdadb@127.0.0.1:{server.port}/lambdadb")
    meta = sa.MetaData()
    ev = sa.Table("events", meta, sa.Column("user_id", sa.BigInteger), sa.Column("country", sa.Text))
    stmt = sa.select(sa.func.count()).select_from(ev).where(ev.c.user_id > sa.bindparam("u"))
    with engine.connect() as c:
        assert c.execute(stmt, {"u": 100}).scalar() == sum(1 for e in events if e["user_id"] > 100)
    insp = sa.inspect(engine)
    assert {"public", "lambdadb"} <= set(insp.get_schema_names())
    assert "events" in insp.get_table_names()
    assert insp.get_view_names() == ["events_hourly"]
    cols = {c["name"]: c["type"] for c in insp.get_columns("events")}
    assert isinstance(cols["user_id"], sa.BigInteger)
    assert isinstance(cols["event_time"], sa.TIMESTAMP) and cols["event_time"].timezone
    df = pd.read_sql(sa.text("SELECT country, count(*) AS n FROM events GROUP BY country"), engine)
    assert int(df["n"].sum()) == len(events)
    engine.dispose()
