"""SCRAM-SHA-256 authentication from configured verifiers, and TLS."""

import asyncio
import subprocess

import asyncpg

import psycopg
import pytest

from accounts import write_config
from harness import BIN, ROOT, free_port


def make_cert(tmp_path):
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


async def asyncpg_login_error(port, user, password):
    try:
        conn = await asyncpg.connect(host="127.0.0.1", port=port, user=user, password=password,
                                     database="lambdadb", ssl=False)
    except asyncpg.PostgresError as e:
        return e.sqlstate
    await conn.close()
    return None


def test_scram_authentication(broker, make_server, tmp_path):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers, config=write_config(tmp_path))
    server.user, server.password = "alice", "s3cret"
    with server.connect() as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    messages = []
    for user, password in [("alice", "wrong"), ("mallory", "s3cret")]:
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(server.dsn(user=user, password=password))
        messages.append(str(e.value))
        code = asyncio.run(asyncpg_login_error(server.port, user, password))
        assert code == "28P01"
    # An unknown user and a wrong password are indistinguishable.
    assert messages[0] == messages[1]
    assert "authentication failed" in messages[0]
    with server.connect() as c:
        assert c.execute("SELECT 2").fetchone() == (2,)


def test_tls_and_prefer(broker, make_server, tmp_path):
    broker.create_topic("events", 1)
    cert, key = make_cert(tmp_path)
    server = make_server(broker.brokers, config=write_config(tmp_path, tls=(cert, key)))
    server.user, server.password = "alice", "s3cret"
    for mode in ["require", "prefer"]:
        with psycopg.connect(server.dsn(sslmode=mode)) as c:
            assert c.pgconn.ssl_in_use
            assert c.execute("SELECT 1").fetchone() == (1,)
    out = subprocess.run(
        ["psql", f"host=127.0.0.1 port={server.port} user=alice dbname=lambdadb sslmode=require",
         "-XtAc", "SELECT 42"], capture_output=True, text=True, env={"PGPASSWORD": "s3cret"})
    assert out.stdout.strip() == "42", out.stderr


def test_tls_required_refuses_plaintext(broker, make_server, tmp_path):
    broker.create_topic("events", 1)
    cert, key = make_cert(tmp_path)
    config = write_config(tmp_path, tls=(cert, key), extra=["tls_required = true"])
    server = make_server(broker.brokers, config=config)
    server.user, server.password = "alice", "s3cret"
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(server.dsn(sslmode="disable"))
    assert "TLS connections only" in str(e.value), e.value
    # prefer negotiates TLS, and a client stripped of it would be refused as above.
    for mode in ["prefer", "require"]:
        with psycopg.connect(server.dsn(sslmode=mode)) as c:
            assert c.pgconn.ssl_in_use
            assert c.execute("SELECT 1").fetchone() == (1,)
    # Without a certificate the setting would lock everyone out: refused at start.
    bad = tmp_path / "required.toml"
    bad.write_text("tls_required = true\n")
    out = run_serve(["--listen", f"127.0.0.1:{free_port()}"], tmp_path, bad)
    assert out.returncode != 0 and "tls_required" in out.stderr, out.stderr


def test_prefer_without_tls_falls_back_to_plaintext(broker, make_server):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers)
    with psycopg.connect(server.dsn(sslmode="prefer")) as c:
        assert not c.pgconn.ssl_in_use
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.dsn(sslmode="require"))


def run_serve(args, tmp_path, config=None):
    cmd = [BIN, "serve", "--data-dir", str(tmp_path / "d"), "--brokers", "127.0.0.1:1"] + args
    if config:
        cmd += ["--config", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=str(ROOT))


def test_refuses_unsafe_or_broken_setups(tmp_path):
    # Trust beyond loopback.
    out = run_serve(["--listen", f"0.0.0.0:{free_port()}"], tmp_path)
    assert out.returncode != 0 and "refusing to listen" in out.stderr
    # TLS configured but unusable: no silent plaintext.
    bad = tmp_path / "bad.toml"
    bad.write_text('tls_cert = "/nonexistent.crt"\ntls_key = "/nonexistent.key"\n')
    out = run_serve(["--listen", f"127.0.0.1:{free_port()}"], tmp_path, bad)
    assert out.returncode != 0 and "does not start without the TLS" in out.stderr
    # Plaintext passwords are refused.
    plain = tmp_path / "plain.toml"
    plain.write_text('auth = "scram-sha-256"\n[[users]]\nname = "a"\npassword = "hunter2"\n')
    out = run_serve(["--listen", f"127.0.0.1:{free_port()}"], tmp_path, plain)
    assert out.returncode != 0 and "never a plaintext password" in out.stderr


def test_roles(broker, make_server, tmp_path):
    broker.create_topic("events", 1)
    config = write_config(tmp_path, users=(("reader", "r", "reader"), ("boss", "b", "admin")))
    server = make_server(broker.brokers, config=config)
    view = ("CREATE MATERIALIZED VIEW by_device AS SELECT device, count(*) AS n "
            "FROM events GROUP BY device")
    with psycopg.connect(server.dsn(user="reader", password="r"), autocommit=True) as c:
        for sql in [view, "REFRESH MATERIALIZED VIEW events_hourly",
                    "COPY (SELECT 1) TO '/tmp/lambdadb-should-not-exist.csv'",
                    "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/'",
                    "create unbounded external table y (a int) stored as csv location '/tmp/'",
                    "INSERT INTO events (user_id) VALUES (1)",
                    "COPY events FROM '/etc/hostname.parquet' (FORMAT parquet)",
                    "DELETE FROM events",
                    "CREATE TABLE t AS SELECT 1 AS a",
                    "CREATE VIEW v AS SELECT 1 AS a",
                    "DROP VIEW IF EXISTS v",
                    "DROP TABLE events"]:
            with pytest.raises(psycopg.Error) as e:
                c.execute(sql)
            assert e.value.sqlstate == "42501", (sql, e.value)
        assert c.execute("SELECT count(*) FROM events").fetchone() == (0,)
    import os
    assert not os.path.exists("/tmp/lambdadb-should-not-exist.csv")
    with psycopg.connect(server.dsn(user="boss", password="b"), autocommit=True) as c:
        c.execute(view)
        c.execute("REFRESH MATERIALIZED VIEW by_device")
        assert c.execute("SELECT count(*) FROM by_device").fetchone() == (0,)
        # An admin's INSERT goes to the topic and is read back before it returns.
        cur = c.execute(
            "INSERT INTO events (event_time, user_id, event_type, device, revenue) "
            "VALUES ('2026-07-01T10:00:00Z', 7, 'purchase', 'tv', 9.5), "
            "(%s, %s, 'click', 'tv', NULL)", ("2026-07-01T10:00:01Z", 8))
        assert cur.statusmessage == "INSERT 0 2"
        assert c.execute("SELECT user_id, revenue FROM events ORDER BY user_id").fetchall() == \
            [(7, 9.5), (8, None)]
        assert c.execute("SELECT n FROM by_device WHERE device = 'tv'").fetchone() == (2,)
        with pytest.raises(psycopg.Error) as e:
            c.execute("INSERT INTO events (user_id, event_type) VALUES (9, 'click')")
        assert e.value.sqlstate == "23502", e.value
        with pytest.raises(psycopg.Error) as e:
            c.execute("INSERT INTO events (nope) VALUES (1)")
        assert e.value.sqlstate == "42703", e.value
        assert c.execute("SELECT count(*) FROM events").fetchone() == (2,)
