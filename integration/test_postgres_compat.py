"""What psql and drivers send before they run a user's query: catalog queries,
session parameters, transactions, timeouts."""

import socket
import time

import psycopg
import pytest


@pytest.fixture
def server(broker, make_server):
    broker.create_topic("events", 1)
    return make_server(broker.brokers)


def psql_meta(server, command):
    import subprocess
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(server.port), "-U", "lambdadb", "-d", "lambdadb",
         "-X", "-v", "ON_ERROR_STOP=1", "-c", command],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_psql_describes_tables_and_views(server):
    dt = psql_meta(server, r"\dt")
    assert "public   | events" in dt
    assert "lambdadb | rejected_messages" in dt
    d = psql_meta(server, r"\d events")
    assert "event_time  | timestamp with time zone |           | not null" in d
    assert "revenue     | double precision" in d
    assert "events_hourly" in psql_meta(server, r"\dv")
    assert "lambdadb" in psql_meta(server, r"\l")
    assert "public" in psql_meta(server, r"\dn")
    assert "hour       | timestamp with time zone" in psql_meta(server, r"\d events_hourly")
    assert "lambdadb" in psql_meta(server, r"\du")
    assert "0 bytes" in psql_meta(server, r"\dt+")
    assert "List of functions" in psql_meta(server, r"\df")


def test_session_parameters(server):
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        assert c.info.parameter_status("server_version").startswith("15.0 (lambdadb")
        assert c.info.parameter_status("TimeZone") == "UTC"
        c.execute("SET application_name = 'dash'")
        # ParameterStatus tells the driver.
        assert c.info.parameter_status("application_name") == "dash"
        assert c.execute("SELECT current_setting('application_name')").fetchone() == ("dash",)
        assert c.execute("SHOW application_name").fetchone() == ("dash",)
        c.execute("SELECT set_config('statement_timeout', '5s', false)")
        assert c.execute("SHOW statement_timeout").fetchone() == ("5000",)
        assert c.execute("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'").fetchone() == ("5000",)
        c.execute("RESET statement_timeout")
        assert c.execute("SHOW statement_timeout").fetchone() == ("0",)
        c.execute("DISCARD ALL")
        assert c.execute("SHOW application_name").fetchone() == ("",)
        with pytest.raises(psycopg.Error) as e:
            c.execute("SHOW no_such_parameter")
        assert e.value.sqlstate == "42704"
        version = c.execute("SELECT version()").fetchone()[0]
        assert version.startswith("PostgreSQL 15.0 (lambdadb")
        # One version everywhere: ParameterStatus, SHOW and version().
        reported = c.info.parameter_status("server_version")
        assert c.execute("SHOW server_version").fetchone() == (reported,)
        assert version.startswith(f"PostgreSQL {reported} ")
        cur = c.execute("SELECT count(*), sum(revenue) FROM events")
        assert [d.name for d in cur.description] == ["count", "sum"]


def test_aborted_transaction(server):
    with psycopg.connect(server.dsn()) as c:  # psycopg opens a transaction block
        c.execute("SELECT 1")
        with pytest.raises(psycopg.Error) as e:
            c.execute("SELECT no_such_column FROM events")
        assert e.value.sqlstate == "42703"
        with pytest.raises(psycopg.Error) as e:
            c.execute("SELECT 1")
        assert e.value.sqlstate == "25P02"
        c.rollback()
        assert c.execute("SELECT 2").fetchone() == (2,)


def test_statement_timeout_stops_execution(server):
    slow = "SELECT count(*) FROM generate_series(1, 2000000000) AS a"
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        c.execute("SET statement_timeout = '300ms'")
        started = time.time()
        with pytest.raises(psycopg.Error) as e:
            c.execute(slow)
        assert e.value.sqlstate == "57014", e.value
        assert "statement timeout" in str(e.value)
        # Counting two billion rows takes far longer than this in any build.
        assert time.time() - started < 20
        c.execute("SET statement_timeout = 0")
        assert c.execute("SELECT 1").fetchone() == (1,)
    assert server.alive()


def test_cancel_request_stops_execution(server):
    import threading

    slow = "SELECT count(*) FROM generate_series(1, 2000000000) AS a"
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        timer = threading.Timer(0.5, c.cancel)
        timer.start()
        started = time.time()
        with pytest.raises(psycopg.Error) as e:
            c.execute(slow)
        timer.join()
        assert e.value.sqlstate == "57014", e.value
        assert "user request" in str(e.value)
        assert time.time() - started < 20
        # The connection serves the next query.
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_connection_limit(broker, make_server):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers, env={"LAMBDADB_MAX_CONNECTIONS": "2"})
    # A connection that never sends a startup message (a port probe, a load
    # balancer's health check) does not take a slot.
    probe = socket.create_connection(("127.0.0.1", server.port))
    first = psycopg.connect(server.dsn(), autocommit=True)
    second = psycopg.connect(server.dsn(), autocommit=True)
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(server.dsn())
    assert "too many clients" in str(e.value)
    first.close()
    # The slot frees when the server sees the close, which under load can take a
    # moment: retry for a few seconds.
    deadline = time.time() + 10
    while True:
        try:
            third = psycopg.connect(server.dsn(), autocommit=True)
            break
        except psycopg.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    with third:
        assert third.execute("SELECT 1").fetchone() == (1,)
    second.close()
    probe.close()


def test_query_memory_limit(broker, make_server):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers, env={"LAMBDADB_QUERY_MEMORY_LIMIT": "16MB"})
    hungry = ("SELECT x % 3000000 AS k, count(*) FROM generate_series(1, 6000000) AS t(x) "
              "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1")
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        with pytest.raises(psycopg.Error) as e:
            c.execute(hungry)
        assert e.value.sqlstate == "53200", e.value
        assert "query_memory_limit" in str(e.value)
        # The server survives and the next query runs.
        assert c.execute("SELECT count(*) FROM generate_series(1, 1000)").fetchone() == (1000,)
    assert server.alive()


def test_idle_session_timeout(broker, make_server):
    broker.create_topic("events", 1)
    # The server default (idle_session_timeout in the configuration) applies to
    # every session; SET changes it for one session, RESET returns to it.
    server = make_server(broker.brokers, env={"LAMBDADB_IDLE_SESSION_TIMEOUT": "1s"})
    with psycopg.connect(server.dsn(), autocommit=True) as busy:
        assert busy.execute("SHOW idle_session_timeout").fetchone() == ("1000",)
        # A statement that runs longer than the timeout is not idle time.
        busy.execute("SELECT count(*) FROM generate_series(1, 40000000)")
        time.sleep(0.3)
        assert busy.execute("SELECT 1").fetchone() == (1,)
    keeper = psycopg.connect(server.dsn(), autocommit=True)
    keeper.execute("SET idle_session_timeout = 0")
    idle = psycopg.connect(server.dsn(), autocommit=True)
    time.sleep(2.0)
    with pytest.raises(psycopg.OperationalError) as e:
        idle.execute("SELECT 1")
    assert "idle-session timeout" in str(e.value)
    # The session that turned it off is still there, and new sessions work.
    assert keeper.execute("SELECT 2").fetchone() == (2,)
    keeper.close()
    with psycopg.connect(server.dsn(), autocommit=True) as fresh:
        assert fresh.execute("SELECT 3").fetchone() == (3,)
    assert server.alive()


def test_max_result_size(broker, make_server):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers)
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        c.execute("SET lambdadb.max_result_size = '64kB'")
        with pytest.raises(psycopg.Error) as e:
            c.execute("SELECT x, 'padding padding' AS p FROM generate_series(1, 100000) AS t(x)")
        assert e.value.sqlstate == "54000", e.value
        assert "max_result_size" in str(e.value) and "LIMIT" in str(e.value)
        # The connection and the server keep serving; a small result is fine.
        assert len(c.execute("SELECT x FROM generate_series(1, 100) AS t(x)").fetchall()) == 100
        with pytest.raises(psycopg.Error):
            c.execute("SET lambdadb.max_result_size = 'lots'")
        c.execute("RESET lambdadb.max_result_size")
        assert c.execute("SHOW lambdadb.max_result_size").fetchone() == ("1GB",)
        assert len(c.execute("SELECT x FROM generate_series(1, 100000) AS t(x)").fetchall()) == 100000


def test_authentication_timeout(broker, make_server):
    import socket

    broker.create_topic("events", 1)
    server = make_server(broker.brokers, env={"LAMBDADB_AUTHENTICATION_TIMEOUT": "1s"})
    logged_in = psycopg.connect(server.dsn(), autocommit=True)
    # A client that connects and never logs in is dropped after the timeout.
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.settimeout(15)
        started = time.time()
        assert s.recv(100) == b""
        assert 0.8 <= time.time() - started < 5
    # The timeout covers logging in only: a session idle past it stays, and
    # the server keeps accepting new ones.
    time.sleep(0.5)
    assert logged_in.execute("SELECT 1").fetchone() == (1,)
    logged_in.close()
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        assert c.execute("SELECT 2").fetchone() == (2,)
